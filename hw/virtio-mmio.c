/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mmio transport, register layout version 2 (virtio 1.x, 4.2.2).
 *
 * Interrupts: one eventfd bound to the device's GSI with KVM_IRQFD; with
 * the in-kernel PIC/IOAPIC the GSI is the ISA pin, and each eventfd write
 * is an edge. InterruptStatus says why (used buffer, config change).
 *
 * Notifications: one eventfd per queue bound with KVM_IOEVENTFD to
 * QueueNotify with datamatch = queue index, so a notify does not leave the
 * kernel. If KVM refuses (or the driver writes through a path KVM does not
 * match), the MMIO handler signals the same eventfd: queue work always
 * happens on the device's I/O thread, never on a vCPU thread.
 *
 * The I/O thread epolls the queue eventfds, a wake eventfd (stop, resume,
 * DRIVER_OK) and whatever fds the device adds (a tap). Every callback runs
 * with the transport lock held; register accesses take the same lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hw/virtio.h"

#define VIRTIO_MAX_WATCHES 8

struct virtio_watch {
	int fd;
	virtio_fd_cb cb;
	void *opaque;
};

struct virtio_kick {
	struct virtio_mmio *t;
	unsigned int idx;
};

struct virtio_mmio_priv {
	struct virtio_mmio t;
	struct virtio_watch watch[VIRTIO_MAX_WATCHES];
	struct virtio_kick kick[VIRTIO_MAX_QUEUES];
};

#define TRANSPORT_FEATURES                                                                         \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_RING_EVENT_IDX) |                        \
	 (1ull << VIRTIO_F_RING_INDIRECT_DESC))

static struct virtio_mmio_priv *priv_of(struct virtio_mmio *t)
{
	return container_of(t, struct virtio_mmio_priv, t);
}

static uint64_t offered_features(struct virtio_mmio *t)
{
	return TRANSPORT_FEATURES | t->ops->features(t->dev);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("virtio: eventfd write: %s", strerror(errno));
}

static void raise_irq(struct virtio_mmio *t, uint32_t why)
{
	t->s.interrupt_status |= why;
	signal_fd(t->irq_fd);
}

/* ---- device-facing helpers (lock held) ------------------------------------ */

uint64_t virtio_mmio_offered_features(struct virtio_mmio *t)
{
	return offered_features(t);
}

struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned int idx)
{
	return idx < t->ops->nqueues ? &t->q[idx] : NULL;
}

bool virtio_mmio_active(const struct virtio_mmio *t)
{
	return (t->s.status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->s.status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)) &&
	       !t->paused;
}

void virtio_mmio_notify(struct virtio_mmio *t)
{
	raise_irq(t, VIRTIO_INT_USED);
}

void virtio_mmio_fail(struct virtio_mmio *t, const char *why)
{
	if (t->s.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	log_warn("%s: %s; device needs reset", t->ops->name, why);
	t->s.status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	raise_irq(t, VIRTIO_INT_CONFIG);
}

void virtio_mmio_complete(struct virtio_mmio *t, struct virtq *q)
{
	char why[128];

	if (q->broken) {
		/* Publish what was done before the bad chain, then fail. */
		snprintf(why, sizeof(why), "bad descriptor on queue %u: %s",
			 (unsigned int)(q - t->q), q->why);
		virtio_mmio_fail(t, why);
		return;
	}
	if (virtq_flush(q))
		raise_irq(t, VIRTIO_INT_USED);
}

void virtio_mmio_config_changed(struct virtio_mmio *t)
{
	t->s.config_generation++;
	if (t->s.status & VIRTIO_STATUS_DRIVER_OK)
		raise_irq(t, VIRTIO_INT_CONFIG);
}

int virtio_mmio_watch_fd(struct virtio_mmio *t, int fd, uint32_t events, virtio_fd_cb cb,
			 void *opaque)
{
	struct virtio_mmio_priv *p = priv_of(t);

	for (unsigned int i = 0; i < VIRTIO_MAX_WATCHES; i++) {
		struct virtio_watch *w = &p->watch[i];
		struct epoll_event ev = {.events = events, .data.ptr = w};

		if (w->cb)
			continue;
		if (epoll_ctl(t->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		*w = (struct virtio_watch){fd, cb, opaque};
		return 0;
	}
	return -ENOSPC;
}

static struct virtio_watch *find_watch(struct virtio_mmio *t, int fd)
{
	struct virtio_mmio_priv *p = priv_of(t);

	for (unsigned int i = 0; i < VIRTIO_MAX_WATCHES; i++)
		if (p->watch[i].cb && p->watch[i].fd == fd)
			return &p->watch[i];
	return NULL;
}

int virtio_mmio_modify_fd(struct virtio_mmio *t, int fd, uint32_t events)
{
	struct virtio_watch *w = find_watch(t, fd);
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (!w)
		return -ENOENT;
	return epoll_ctl(t->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void virtio_mmio_unwatch_fd(struct virtio_mmio *t, int fd)
{
	struct virtio_watch *w = find_watch(t, fd);

	if (!w)
		return;
	epoll_ctl(t->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
	memset(w, 0, sizeof(*w));
}

/* ---- the I/O thread -------------------------------------------------------- */

static void drain_fd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("virtio: eventfd read: %s", strerror(errno));
}

static void kick_all(struct virtio_mmio *t)
{
	for (unsigned int i = 0; i < t->ops->nqueues && virtio_mmio_active(t); i++)
		if (t->q[i].s.ready)
			t->ops->queue_notify(t->dev, i);
}

static void wake_cb(void *opaque, uint32_t events)
{
	struct virtio_mmio *t = opaque;

	(void)events;
	drain_fd(t->wake_fd);
	kick_all(t);
}

static void queue_kick_cb(void *opaque, uint32_t events)
{
	struct virtio_kick *k = opaque;
	struct virtio_mmio *t = k->t;

	(void)events;
	drain_fd(t->kick_fd[k->idx]);
	if (virtio_mmio_active(t) && t->q[k->idx].s.ready)
		t->ops->queue_notify(t->dev, k->idx);
}

static void *io_thread(void *arg)
{
	struct virtio_mmio *t = arg;
	struct epoll_event evs[8];

	while (!atomic_load(&t->stop)) {
		int n = epoll_wait(t->epoll_fd, evs, ARRAY_SIZE(evs), -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("%s: epoll_wait: %s", t->ops->name, strerror(errno));
			break;
		}
		pthread_mutex_lock(&t->lock);
		for (int i = 0; i < n && !atomic_load(&t->stop); i++) {
			struct virtio_watch *w = evs[i].data.ptr;

			if (w->cb)
				w->cb(w->opaque, evs[i].events);
		}
		pthread_mutex_unlock(&t->lock);
	}
	return NULL;
}

/* ---- registers ------------------------------------------------------------- */

static void transport_reset(struct virtio_mmio *t)
{
	uint32_t gen = t->s.config_generation;

	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		virtq_stop(&t->q[i]);
		memset(&t->q[i], 0, sizeof(t->q[i]));
	}
	memset(&t->s, 0, sizeof(t->s));
	t->s.config_generation = gen + 1;
	t->ops->reset(t->dev);
}

static void set_status(struct virtio_mmio *t, uint32_t val)
{
	uint32_t old = t->s.status;

	if (!val) {
		transport_reset(t);
		return;
	}
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t f = t->s.driver_features;

		if ((f & ~offered_features(t)) || !(f & (1ull << VIRTIO_F_VERSION_1))) {
			log_debug("%s: driver features %#llx refused (offered %#llx)", t->ops->name,
				  (unsigned long long)f, (unsigned long long)offered_features(t));
			val &= ~VIRTIO_STATUS_FEATURES_OK;
		}
	}
	t->s.status = val | (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    virtio_mmio_active(t)) {
		t->ops->activate(t->dev, t->s.driver_features);
		signal_fd(t->wake_fd); /* buffers may already be waiting */
	}
}

static void set_queue_ready(struct virtio_mmio *t, struct virtq *q, uint32_t val)
{
	uint64_t f = t->s.driver_features;
	char why[128];

	if (!val) {
		q->s.ready = false;
		virtq_stop(q);
		return;
	}
	if (q->s.ready)
		return;
	q->s.last_avail = 0;
	q->s.used_idx = 0;
	if (virtq_start(q, t->mem, f & (1ull << VIRTIO_F_RING_EVENT_IDX),
			f & (1ull << VIRTIO_F_RING_INDIRECT_DESC))) {
		snprintf(why, sizeof(why), "bad ring on queue %u: %s", (unsigned int)(q - t->q),
			 q->why);
		virtio_mmio_fail(t, why);
		return;
	}
	virtq_enable_notify_fresh(q);
	q->s.ready = true;
}

static void set_u64_half(uint64_t *v, bool high, uint32_t val)
{
	if (high)
		*v = (*v & 0xffffffffull) | ((uint64_t)val << 32);
	else
		*v = (*v & ~0xffffffffull) | val;
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = virtio_mmio_queue(t, t->s.queue_sel);

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (t->s.device_features_sel > 1)
			return 0;
		return (uint32_t)(offered_features(t) >> (32 * t->s.device_features_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? VIRTQ_NUM_MAX : 0;
	case VIRTIO_MMIO_QUEUE_NUM:
		return q ? q->s.num : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->s.ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return t->s.interrupt_status;
	case VIRTIO_MMIO_STATUS:
		return t->s.status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffff; /* no shared memory regions */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->s.config_generation;
	default:
		return 0;
	}
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	struct virtq *q = virtio_mmio_queue(t, t->s.queue_sel);
	bool qw = q && !q->s.ready; /* queue registers are writable while not ready */

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->s.device_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->s.driver_features_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (!(t->s.status & VIRTIO_STATUS_FEATURES_OK) && t->s.driver_features_sel < 2)
			set_u64_half(&t->s.driver_features, t->s.driver_features_sel, val);
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->s.queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (qw)
			q->s.num = (uint16_t)MIN(val, 0xffffu);
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q)
			set_queue_ready(t, q, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (val < t->ops->nqueues)
			signal_fd(t->kick_fd[val]);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->s.interrupt_status &= ~val;
		break;
	case VIRTIO_MMIO_STATUS:
		set_status(t, val);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (qw)
			set_u64_half(&q->s.desc, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		if (qw)
			set_u64_half(&q->s.avail, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		if (qw)
			set_u64_half(&q->s.used, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, val);
		break;
	default:
		log_debug("%s: write %#x to read-only or unknown register %#llx", t->ops->name, val,
			  (unsigned long long)off);
		break;
	}
}

void virtio_mmio_access(struct virtio_mmio *t, uint64_t off, uint8_t *data, uint32_t len,
			bool is_write)
{
	uint32_t v = 0;

	pthread_mutex_lock(&t->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (len > 8 ||
		    off - VIRTIO_MMIO_CONFIG + len > VIRTIO_MMIO_SIZE - VIRTIO_MMIO_CONFIG) {
			if (!is_write)
				memset(data, 0, len);
		} else if (is_write) {
			t->ops->config_write(t->dev, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data,
					     len);
		} else {
			memset(data, 0, len);
			t->ops->config_read(t->dev, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data,
					    len);
		}
	} else if (len != 4 || (off & 3)) {
		/* Registers are 32-bit only (4.2.2.2). */
		if (!is_write)
			memset(data, 0, len);
	} else if (is_write) {
		memcpy(&v, data, 4);
		reg_write(t, off, v);
	} else {
		v = reg_read(t, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- life cycle ------------------------------------------------------------ */

void virtio_mmio_reset(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	transport_reset(t);
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_pause(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	t->paused = true;
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_resume(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	t->paused = false;
	if (t->irq_on_resume)
		signal_fd(t->irq_fd);
	t->irq_on_resume = false;
	signal_fd(t->wake_fd);
	pthread_mutex_unlock(&t->lock);
}

static int kvm_bind(struct virtio_mmio *t, bool assign)
{
	struct kvm_irqfd irqfd = {
	    .fd = (uint32_t)t->irq_fd,
	    .gsi = t->gsi,
	    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (t->vm_fd < 0)
		return 0;
	if (ioctl(t->vm_fd, KVM_IRQFD, &irqfd) < 0 && assign) {
		log_err("%s: KVM_IRQFD on GSI %u: %s", t->ops->name, t->gsi, strerror(errno));
		return -errno;
	}
	for (unsigned int i = 0; i < t->ops->nqueues; i++) {
		struct kvm_ioeventfd io = {
		    .datamatch = i,
		    .addr = t->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		    .len = 4,
		    .fd = t->kick_fd[i],
		    .flags =
			KVM_IOEVENTFD_FLAG_DATAMATCH | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
		};

		if (!assign && !t->kick_in_kernel)
			break;
		if (ioctl(t->vm_fd, KVM_IOEVENTFD, &io) < 0 && assign) {
			/* Fall back: the MMIO handler signals the eventfd itself. */
			log_debug("%s: KVM_IOEVENTFD: %s (notifications exit to colovm)",
				  t->ops->name, strerror(errno));
			for (unsigned int j = 0; j < i; j++) {
				io.datamatch = j;
				io.fd = t->kick_fd[j];
				io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
				ioctl(t->vm_fd, KVM_IOEVENTFD, &io);
			}
			t->kick_in_kernel = false;
			return 0;
		}
		t->kick_in_kernel = assign;
	}
	return 0;
}

int virtio_mmio_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		       const struct virtio_dev_ops *ops, void *dev, struct virtio_mmio **out)
{
	struct virtio_mmio_priv *p;
	struct virtio_mmio *t;
	int ret;

	if (ops->nqueues > VIRTIO_MAX_QUEUES)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	t = &p->t;
	t->ops = ops;
	t->dev = dev;
	t->mem = mem;
	t->base = base;
	t->gsi = gsi;
	t->vm_fd = vm_fd;
	t->irq_fd = t->epoll_fd = t->wake_fd = -1;
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->kick_fd[i] = -1;
	pthread_mutex_init(&t->lock, NULL);

	t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (t->irq_fd < 0 || t->wake_fd < 0 || t->epoll_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = virtio_mmio_watch_fd(t, t->wake_fd, EPOLLIN, wake_cb, t);
	if (ret)
		goto err;
	for (unsigned int i = 0; i < ops->nqueues; i++) {
		t->kick_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->kick_fd[i] < 0) {
			ret = -errno;
			goto err;
		}
		p->kick[i].t = t;
		p->kick[i].idx = i;
		ret = virtio_mmio_watch_fd(t, t->kick_fd[i], EPOLLIN, queue_kick_cb, &p->kick[i]);
		if (ret)
			goto err;
	}
	ret = kvm_bind(t, true);
	if (ret)
		goto err;
	ret = -pthread_create(&t->thread, NULL, io_thread, t);
	if (ret)
		goto err;
	t->thread_started = true;
	*out = t;
	return 0;
err:
	virtio_mmio_free(t);
	return ret;
}

void virtio_mmio_free(struct virtio_mmio *t)
{
	if (!t)
		return;
	if (t->thread_started) {
		atomic_store(&t->stop, true);
		signal_fd(t->wake_fd);
		pthread_join(t->thread, NULL);
	}
	if (t->irq_fd >= 0)
		kvm_bind(t, false);
	for (unsigned int i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (t->kick_fd[i] >= 0)
			close(t->kick_fd[i]);
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	if (t->wake_fd >= 0)
		close(t->wake_fd);
	if (t->epoll_fd >= 0)
		close(t->epoll_fd);
	pthread_mutex_destroy(&t->lock);
	free(priv_of(t));
}
