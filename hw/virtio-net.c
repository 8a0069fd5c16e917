/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-net (device id 1): one RX queue (0) and one TX queue (1).
 *
 * Features: VERSION_1 (12-byte header with num_buffers), MAC, STATUS
 * (link always up). No checksum or segmentation offloads: the guest sends
 * and expects complete frames, so the header is all zero on RX except
 * num_buffers = 1.
 *
 * Frame sources for the guest's RX queue: the backend (a tap) and frames
 * injected through the hook API from any thread. Injected frames wait in a
 * bounded FIFO while the guest has no RX buffers; the backend fd is simply
 * not polled then, so the kernel queues (and, when full, counts) for us.
 * Guest TX frames go to the hook if one is installed (as a copy), else to
 * the backend straight from guest memory (one writev per frame).
 * All queue work runs on the transport's I/O thread with its lock held.
 * RX publishes every frame as soon as it is written (a polling driver
 * starts on it while the next one is read); TX publishes once per batch.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hw/virtio.h"

#define VIRTIO_NET_F_MAC     5
#define VIRTIO_NET_F_STATUS  16
#define VIRTIO_NET_S_LINK_UP 1

#define NET_RXQ	       0
#define NET_TXQ	       1
#define NET_FRAME_MAX  65536 /* largest frame taken from the guest or a backend */
#define NET_INJECT_MAX 1024
#define NET_BUDGET     256 /* frames per queue per pass */

struct net_frame {
	struct net_frame *next;
	size_t len;
	uint8_t data[];
};

struct virtio_net {
	struct virtio_net_state s;
	struct virtio_mmio *t;
	struct net_backend *be;
	int be_fd;
	bool be_watched;
	struct virtq_elem elem; /* scratch, I/O thread */
	struct iovec txiov[VIRTQ_MAX_SEGS];
	uint8_t buf[NET_FRAME_MAX];

	/* hook: changed with the transport lock held */
	const struct net_hook_ops *hook;
	void *hook_opaque;

	/* injected frames: any thread, under inj_lock */
	pthread_mutex_t inj_lock;
	struct net_frame *inj_head, *inj_tail;
	unsigned int inj_count;
	int inj_fd;

	_Atomic uint64_t tx_frames, tx_bytes, tx_dropped;
	_Atomic uint64_t rx_frames, rx_bytes, rx_dropped;
};

static const struct virtio_net_hdr rx_hdr = {.num_buffers = 1};

static uint64_t net_features(void *dev)
{
	(void)dev;
	return (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS);
}

static void net_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = dev;
	uint8_t cfg[12] = {0};

	memcpy(cfg, n->s.mac, 6);
	memcpy(cfg + 6, &n->s.link_status, 2);
	if (off < sizeof(cfg))
		memcpy(data, cfg + off, MIN(len, sizeof(cfg) - off));
}

static void net_config_write(void *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	(void)dev, (void)off, (void)data, (void)len; /* read-only in virtio 1.x */
}

static void net_watch_backend(struct virtio_net *n, bool on)
{
	if (n->be_fd < 0 || on == n->be_watched)
		return;
	if (!virtio_mmio_modify_fd(n->t, n->be_fd, on ? EPOLLIN : 0))
		n->be_watched = on;
}

/* Pop an RX chain big enough for hdr + len; 1 ok, 0 none, -1 broken. */
static int net_rx_one(struct virtio_net *n, struct virtq *q, const uint8_t *frame, size_t len)
{
	struct virtq_elem *e = &n->elem;
	int ret = virtq_pop(q, e);

	if (ret <= 0)
		return ret;
	if (e->in_len < sizeof(rx_hdr) + len) {
		/* Without MRG_RXBUF the driver must post buffers for whole
		 * frames; this one cannot take it. Keep the buffer. */
		virtq_unpop(q);
		n->rx_dropped++;
		return 2;
	}
	virtq_elem_write(q, e, 0, &rx_hdr, sizeof(rx_hdr));
	virtq_elem_write(q, e, sizeof(rx_hdr), frame, len);
	virtq_push(q, e->head, (uint32_t)(sizeof(rx_hdr) + len));
	/* Publish each frame at once (as QEMU does): the polling driver
	 * starts on it while the next one is read. No interrupt is asked for,
	 * so this is a store, not a syscall. */
	virtio_mmio_complete(n->t, q);
	n->rx_frames++;
	n->rx_bytes += len;
	return 1;
}

static struct net_frame *inj_pop(struct virtio_net *n)
{
	struct net_frame *f;

	pthread_mutex_lock(&n->inj_lock);
	f = n->inj_head;
	if (f) {
		n->inj_head = f->next;
		if (!n->inj_head)
			n->inj_tail = NULL;
		n->inj_count--;
	}
	pthread_mutex_unlock(&n->inj_lock);
	return f;
}

static void inj_unpop(struct virtio_net *n, struct net_frame *f)
{
	pthread_mutex_lock(&n->inj_lock);
	f->next = n->inj_head;
	n->inj_head = f;
	if (!n->inj_tail)
		n->inj_tail = f;
	n->inj_count++;
	pthread_mutex_unlock(&n->inj_lock);
}

static void signal_inject(struct virtio_net *n)
{
	uint64_t one = 1;

	if (write(n->inj_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("virtio-net: eventfd write: %s", strerror(errno));
}

static void net_rx(struct virtio_net *n)
{
	struct virtq *q = virtio_mmio_queue(n->t, NET_RXQ);
	unsigned int budget = NET_BUDGET;
	bool starved = false, hooked = false;
	struct net_frame *f;
	int ret;

	if (!virtio_mmio_active(n->t) || !q->s.ready) {
		net_watch_backend(n, false);
		return;
	}
again:
	/* While buffers wait, the device takes them when frames come: the
	 * driver need not notify (it is asked to again once they run out). */
	if (virtq_avail_pending(q))
		virtq_disable_notify(q);
	while (budget && (f = inj_pop(n))) {
		ret = net_rx_one(n, q, f->data, f->len);
		if (ret == 0 || ret < 0) {
			inj_unpop(n, f);
			starved = ret == 0;
			goto out;
		}
		free(f);
		budget--;
	}
	while (budget && n->be_fd >= 0) {
		ssize_t len;

		if (q->broken)
			goto out;
		/* Only take a frame off the backend when a buffer waits. */
		if (!virtq_avail_pending(q)) {
			starved = true;
			break;
		}
		len = n->be->ops->recv(n->be, n->buf, sizeof(n->buf));
		if (len < 0)
			break;
		budget--;
		if (n->hook && n->hook->wire_rx &&
		    n->hook->wire_rx(n->hook_opaque, n->buf, (size_t)len)) {
			hooked = true;
			continue;
		}
		ret = net_rx_one(n, q, n->buf, (size_t)len);
		if (ret < 0)
			goto out;
	}
out:
	if (starved && !q->broken && virtq_enable_notify(q)) {
		starved = false;
		if (budget)
			goto again;
	}
	if (hooked && n->hook->wire_rx_done)
		n->hook->wire_rx_done(n->hook_opaque);
	if (!budget) /* more may wait: come back after other work */
		signal_inject(n);
	net_watch_backend(n, !starved && !q->broken);
	virtio_mmio_complete(n->t, q);
}

/* txiov := the chain's readable part after the first skip bytes. */
static unsigned int net_tx_slice(struct virtio_net *n, const struct virtq_elem *e, uint64_t skip)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < e->nout; i++) {
		uint64_t seg = e->iov[i].iov_len;

		if (skip >= seg) {
			skip -= seg;
			continue;
		}
		n->txiov[k].iov_base = (uint8_t *)e->iov[i].iov_base + skip;
		n->txiov[k].iov_len = seg - skip;
		skip = 0;
		k++;
	}
	return k;
}

static void net_tx(struct virtio_net *n)
{
	struct virtq *q = virtio_mmio_queue(n->t, NET_TXQ);
	struct virtq_elem *e = &n->elem;
	int ret;

	if (!virtio_mmio_active(n->t) || !q->s.ready)
		return;
	for (;;) {
		unsigned int budget = NET_BUDGET;
		bool hooked = false;

		virtq_disable_notify(q); /* we are looking: no kicks until we stop */
		while (budget-- && (ret = virtq_pop(q, e)) > 0) {
			uint64_t len = e->out_len;

			if (len < sizeof(struct virtio_net_hdr) ||
			    len - sizeof(struct virtio_net_hdr) > sizeof(n->buf)) {
				n->tx_dropped++;
			} else if (!n->hook) {
				/* Straight from guest memory: no copy. */
				unsigned int k = net_tx_slice(n, e, sizeof(struct virtio_net_hdr));

				len -= sizeof(struct virtio_net_hdr);
				if (n->be->ops->send(n->be, n->txiov, k) < 0) {
					n->tx_dropped++;
				} else {
					n->tx_frames++;
					n->tx_bytes += len;
				}
			} else {
				/* The hook gets a copy the guest can no longer change. */
				struct iovec iov;

				len -= sizeof(struct virtio_net_hdr);
				virtq_elem_read(e, sizeof(struct virtio_net_hdr), n->buf, len);
				iov = (struct iovec){n->buf, len};
				if (n->hook && n->hook->guest_tx(n->hook_opaque, n->buf, len)) {
					n->tx_frames++;
					n->tx_bytes += len;
					hooked = true;
				} else if (n->be->ops->send(n->be, &iov, 1) < 0) {
					n->tx_dropped++;
				} else {
					n->tx_frames++;
					n->tx_bytes += len;
				}
			}
			virtq_push(q, e->head, 0);
		}
		if (hooked && n->hook && n->hook->guest_tx_done)
			n->hook->guest_tx_done(n->hook_opaque);
		virtio_mmio_complete(n->t, q);
		if (q->broken || !virtq_enable_notify(q))
			break;
	}
}

static void net_queue_notify(void *dev, unsigned int idx)
{
	struct virtio_net *n = dev;

	if (idx == NET_RXQ)
		net_rx(n);
	else
		net_tx(n);
}

static void net_activate(void *dev, uint64_t features)
{
	struct virtio_net *n = dev;

	n->s.features = features;
	net_watch_backend(n, true);
}

static void net_reset(void *dev)
{
	struct virtio_net *n = dev;

	n->s.features = 0;
	net_watch_backend(n, false);
}

static const struct virtio_dev_ops virtio_net_ops = {
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .nqueues = 2,
    .features = net_features,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
};

static void net_backend_cb(void *opaque, uint32_t events)
{
	(void)events;
	net_rx(opaque);
}

static void net_inject_cb(void *opaque, uint32_t events)
{
	struct virtio_net *n = opaque;
	uint64_t v;

	(void)events;
	if (read(n->inj_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("virtio-net: eventfd read: %s", strerror(errno));
	net_rx(n);
}

int virtio_net_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		      const uint8_t mac[6], struct net_backend *be, struct virtio_net **out)
{
	struct virtio_net *n = calloc(1, sizeof(*n));
	int ret;

	if (!n) {
		be->ops->free(be);
		return -ENOMEM;
	}
	memcpy(n->s.mac, mac, 6);
	n->s.link_status = VIRTIO_NET_S_LINK_UP;
	n->be = be;
	n->be_fd = be->ops->fd(be);
	pthread_mutex_init(&n->inj_lock, NULL);
	n->inj_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->inj_fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = virtio_mmio_create(mem, vm_fd, base, gsi, &virtio_net_ops, n, &n->t);
	if (ret)
		goto err;
	pthread_mutex_lock(&n->t->lock);
	ret = virtio_mmio_watch_fd(n->t, n->inj_fd, EPOLLIN, net_inject_cb, n);
	if (!ret && n->be_fd >= 0)
		ret = virtio_mmio_watch_fd(n->t, n->be_fd, 0, net_backend_cb, n);
	pthread_mutex_unlock(&n->t->lock);
	if (ret)
		goto err;
	*out = n;
	return 0;
err:
	virtio_net_free(n);
	return ret;
}

void virtio_net_free(struct virtio_net *n)
{
	struct net_frame *f;

	if (!n)
		return;
	virtio_mmio_free(n->t);
	n->be->ops->free(n->be);
	while ((f = inj_pop(n)))
		free(f);
	if (n->inj_fd >= 0)
		close(n->inj_fd);
	pthread_mutex_destroy(&n->inj_lock);
	free(n);
}

struct virtio_mmio *virtio_net_transport(struct virtio_net *n)
{
	return n->t;
}

struct virtio_net_state *virtio_net_get_state(struct virtio_net *n)
{
	return &n->s;
}

int virtio_net_inject_copy(struct virtio_net *n, uint8_t *buf, size_t cap, uint32_t *lens,
			   unsigned int maxn, unsigned int *nframes, size_t *nbytes)
{
	size_t used = 0;
	unsigned int k = 0;
	int ret = 0;

	pthread_mutex_lock(&n->inj_lock);
	for (struct net_frame *f = n->inj_head; f; f = f->next, k++) {
		if (k == maxn || f->len > cap - used) {
			ret = -ENOSPC;
			break;
		}
		memcpy(buf + used, f->data, f->len);
		lens[k] = (uint32_t)f->len;
		used += f->len;
	}
	pthread_mutex_unlock(&n->inj_lock);
	*nframes = k;
	*nbytes = used;
	return ret;
}

void virtio_net_inject_clear(struct virtio_net *n)
{
	struct net_frame *f;

	while ((f = inj_pop(n)))
		free(f);
}

void virtio_net_set_hook(struct virtio_net *n, const struct net_hook_ops *ops, void *opaque)
{
	pthread_mutex_lock(&n->t->lock);
	n->hook = ops;
	n->hook_opaque = opaque;
	pthread_mutex_unlock(&n->t->lock);
}

int virtio_net_inject(struct virtio_net *n, const void *frame, size_t len)
{
	struct net_frame *f;

	if (len > NET_FRAME_MAX) {
		n->rx_dropped++;
		return -EMSGSIZE;
	}
	f = malloc(sizeof(*f) + len);
	if (!f) {
		n->rx_dropped++;
		return -ENOMEM;
	}
	f->next = NULL;
	f->len = len;
	memcpy(f->data, frame, len);
	pthread_mutex_lock(&n->inj_lock);
	if (n->inj_count >= NET_INJECT_MAX) {
		pthread_mutex_unlock(&n->inj_lock);
		free(f);
		n->rx_dropped++;
		return -ENOBUFS;
	}
	if (n->inj_tail)
		n->inj_tail->next = f;
	else
		n->inj_head = f;
	n->inj_tail = f;
	n->inj_count++;
	pthread_mutex_unlock(&n->inj_lock);
	signal_inject(n);
	return 0;
}

int virtio_net_send(struct virtio_net *n, const void *frame, size_t len)
{
	struct iovec iov = {(void *)frame, len};

	return n->be->ops->send(n->be, &iov, 1);
}

void virtio_net_stats(struct virtio_net *n, struct hw_net_stats *out)
{
	out->tx_frames = n->tx_frames;
	out->tx_bytes = n->tx_bytes;
	out->tx_dropped = n->tx_dropped;
	out->rx_frames = n->rx_frames;
	out->rx_bytes = n->rx_bytes;
	out->rx_dropped = n->rx_dropped;
	pthread_mutex_lock(&n->inj_lock);
	out->rx_queued = n->inj_count;
	pthread_mutex_unlock(&n->inj_lock);
}

/* ---- hw.h entry points ------------------------------------------------------ */

unsigned int hw_vm_net_count(const struct vm *vm)
{
	return vm->nnet;
}

unsigned int hw_vm_disk_count(const struct vm *vm)
{
	return vm->nblk;
}

int hw_vm_net_set_hook(struct vm *vm, unsigned int idx, const struct net_hook_ops *ops,
		       void *opaque)
{
	if (idx >= vm->nnet)
		return -ENODEV;
	if (ops && !ops->guest_tx)
		return -EINVAL;
	virtio_net_set_hook(vm->net[idx], ops, opaque);
	return 0;
}

int hw_vm_net_inject(struct vm *vm, unsigned int idx, const void *frame, size_t len)
{
	return idx < vm->nnet ? virtio_net_inject(vm->net[idx], frame, len) : -ENODEV;
}

int hw_vm_net_send(struct vm *vm, unsigned int idx, const void *frame, size_t len)
{
	return idx < vm->nnet ? virtio_net_send(vm->net[idx], frame, len) : -ENODEV;
}

int hw_vm_net_stats(struct vm *vm, unsigned int idx, struct hw_net_stats *out)
{
	if (idx >= vm->nnet)
		return -ENODEV;
	virtio_net_stats(vm->net[idx], out);
	return 0;
}
