/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Checkpoint state of the virtio-mmio devices: one section per device,
 * "virtio-net" i and "virtio-blk" i (instance id = the device's index among
 * the VM's nets or disks, so two nets and two disks each get their own).
 * A section is the transport (nested description "virtio-mmio"), each
 * queue ("virtq") and the device's own state:
 *
 *   virtio-mmio  status, device/driver feature selectors, negotiated driver
 *                features, features the device offered, queue_sel,
 *                interrupt status, config generation
 *   virtq        num, ready, desc/avail/used addresses, last_avail (the
 *                next avail slot the device reads), used idx (published),
 *                broken. With EVENT_IDX, avail_event/used_event live in the
 *                rings (guest RAM), so the RAM carries them; a queue keeps no
 *                other shadow (pre_save refuses a queue with unpublished used
 *                entries, which pause never leaves).
 *   virtio-net   MAC, link status, features; the frames waiting for
 *                injection (hook API) are saved, whole, in order (at most
 *                NET_SAVE_FRAMES frames / NET_SAVE_BYTES bytes: more fails
 *                the save with a message, nothing is dropped silently) and
 *                replace the target's queue on load. Frames the backend
 *                (tap) still holds are not state: the kernel keeps them.
 *                Packet counters are host statistics and are not saved.
 *   virtio-blk   capacity (must equal the target's --disk), features
 *
 * What pause guarantees. Every queue pass runs on the device's I/O thread
 * with the transport lock held, and virtio_mmio_pause() takes that lock: it
 * returns only after the pass in progress has published every request it
 * popped (virtio-blk does its preadv/pwritev synchronously inside the pass;
 * virtio-net pushes each frame it takes). After that the device is inactive
 * and pops nothing. So at save no request is in flight: the stream has
 * every completed request in the used ring (RAM) and every other one still
 * in the avail ring past last_avail, and the target processes those when
 * it resumes; the guest sees each request completed exactly once.
 *
 * Backends are not state: the tap and the image come from the target's own
 * --net/--disk. The target must have as many nets and disks as the stream:
 * the machine section (version 2) carries the counts, and a section for a
 * device this VM lacks is explained by virtio_persist_explain().
 *
 * On load (post_load) the saved state is checked first (features offered
 * must match, every ready queue's rings must be valid guest RAM: a bad
 * address is a load error, never a crash), then the transport is reset,
 * the registers and queues are set and the rings re-mapped (virtq_start),
 * the device is re-activated if the driver had set DRIVER_OK, and it stays
 * paused until the VM resumes (hw_vm_resume -> virtio_mmio_resume kicks
 * every ready queue).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vmstate/vmstate.h"
#include "hw/virtio.h"

#define NET_QUEUES	2
#define BLK_QUEUES	1
#define NET_SAVE_FRAMES 1024
#define NET_SAVE_BYTES	(1u << 20)

struct vq_persist {
	struct virtq_state s;
	bool broken;
};

struct mmio_persist {
	struct virtio_mmio_state s;
	uint64_t device_features; /* what the device offered */
};

struct net_persist {
	struct vm *vm; /* not saved */
	unsigned int idx;
	struct mmio_persist mmio;
	struct vq_persist q[NET_QUEUES];
	struct virtio_net_state net;
	uint32_t ninj;
	uint32_t inj_bytes;
	uint32_t inj_len[NET_SAVE_FRAMES];
	uint8_t inj_data[NET_SAVE_BYTES];
};

struct blk_persist {
	struct vm *vm; /* not saved */
	unsigned int idx;
	struct mmio_persist mmio;
	struct vq_persist q[BLK_QUEUES];
	struct virtio_blk_state blk;
};

struct virtio_persist {
	struct net_persist *net[VM_MAX_VIRTIO];
	struct blk_persist *blk[VM_MAX_VIRTIO];
	char why[200]; /* why the last load was refused (for the load's error) */
};

/* Log why a load is refused and keep it for virtio_persist_explain(). */
static void PRINTF_LIKE(2, 3) vp_refuse(struct vm *vm, const char *fmt, ...)
{
	struct virtio_persist *vp = vm->virtio_persist;
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("%s", msg);
	if (vp)
		snprintf(vp->why, sizeof(vp->why), "%s", msg);
}

/* ---- descriptions ------------------------------------------------------------ */

static const struct vmstate_field mmio_fields[] = {
	VMSTATE_U32(struct mmio_persist, s.status),
	VMSTATE_U32(struct mmio_persist, s.device_features_sel),
	VMSTATE_U32(struct mmio_persist, s.driver_features_sel),
	VMSTATE_U64(struct mmio_persist, s.driver_features),
	VMSTATE_U32(struct mmio_persist, s.queue_sel),
	VMSTATE_U32(struct mmio_persist, s.interrupt_status),
	VMSTATE_U32(struct mmio_persist, s.config_generation),
	VMSTATE_U64(struct mmio_persist, device_features),
	VMSTATE_END,
};

static const struct vmstate_desc mmio_desc = {
	.name = "virtio-mmio",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = mmio_fields,
};

static const struct vmstate_field vq_fields[] = {
	VMSTATE_U16(struct vq_persist, s.num),
	VMSTATE_BOOL(struct vq_persist, s.ready),
	VMSTATE_U64(struct vq_persist, s.desc),
	VMSTATE_U64(struct vq_persist, s.avail),
	VMSTATE_U64(struct vq_persist, s.used),
	VMSTATE_U16(struct vq_persist, s.last_avail),
	VMSTATE_U16(struct vq_persist, s.used_idx),
	VMSTATE_BOOL(struct vq_persist, broken),
	VMSTATE_END,
};

static const struct vmstate_desc vq_desc = {
	.name = "virtq",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = vq_fields,
};

/* ---- transport ---------------------------------------------------------------- */

/* Copy the transport and its queues (lock held). */
static int mmio_save(struct virtio_mmio *t, struct mmio_persist *m, struct vq_persist *q,
		     unsigned int nq, const char *what)
{
	m->s = t->s;
	m->device_features = virtio_mmio_offered_features(t);
	for (unsigned int i = 0; i < nq; i++) {
		if (t->q[i].pending) {
			log_err("%s: queue %u has %u unpublished used entries at save", what, i,
				t->q[i].pending);
			return -EBUSY;
		}
		q[i].s = t->q[i].s;
		q[i].broken = t->q[i].broken;
	}
	return 0;
}

/* Check the saved transport against this device before anything changes. */
static int mmio_check(struct vm *vm, struct virtio_mmio *t, const struct mmio_persist *m,
		      const struct vq_persist *q, unsigned int nq, const char *what)
{
	uint64_t offered = virtio_mmio_offered_features(t);
	uint64_t f = m->s.driver_features;

	if (m->device_features != offered) {
		vp_refuse(vm, "%s: the stream's device offers features %#llx, this one %#llx (the "
			"--net/--disk options must match)",
			what, (unsigned long long)m->device_features, (unsigned long long)offered);
		return -EINVAL;
	}
	if (f & ~offered) {
		vp_refuse(vm, "%s: negotiated features %#llx were never offered (%#llx)", what,
			(unsigned long long)f, (unsigned long long)offered);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < nq; i++) {
		struct virtq tmp = {.s = q[i].s};

		if (!q[i].s.ready)
			continue;
		if (virtq_start(&tmp, t->mem, f & (1ull << VIRTIO_F_RING_EVENT_IDX),
				f & (1ull << VIRTIO_F_RING_INDIRECT_DESC))) {
			vp_refuse(vm, "%s: queue %u: %s", what, i, tmp.why);
			return -EINVAL;
		}
	}
	return 0;
}

/* Reset the transport, then set the saved registers and queues (the
 * device's own state is set by the caller in between, under the lock). */
static void mmio_apply_begin(struct virtio_mmio *t)
{
	virtio_mmio_reset(t);
	virtio_mmio_pause(t); /* until hw_vm_resume */
	pthread_mutex_lock(&t->lock);
}

static void mmio_apply_end(struct virtio_mmio *t, const struct mmio_persist *m,
			   const struct vq_persist *q, unsigned int nq)
{
	uint64_t f = m->s.driver_features;

	t->s = m->s;
	/* An interrupt the driver had not acknowledged: its line is still up.
	 * The irqfd pulses it (edge): the pulse may have reached the saved
	 * irqchip state or not (KVM injects a PIC/IOAPIC irqfd from a work
	 * queue, after the completion that raised it was in guest RAM), so the
	 * restored guest gets it once more when it resumes -- a spurious
	 * interrupt costs a driver a look at its used ring; a lost one leaves
	 * a guest that halted for its disk halted for ever. */
	t->irq_on_resume = t->s.interrupt_status != 0;
	for (unsigned int i = 0; i < nq; i++) {
		struct virtq *vq = &t->q[i];

		memset(vq, 0, sizeof(*vq));
		vq->s = q[i].s;
		if (vq->s.ready)
			virtq_start(vq, t->mem, f & (1ull << VIRTIO_F_RING_EVENT_IDX),
				    f & (1ull << VIRTIO_F_RING_INDIRECT_DESC));
		if (q[i].broken) {
			vq->broken = true;
			snprintf(vq->why, sizeof(vq->why), "broken before the checkpoint");
		}
	}
	if ((t->s.status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(t->s.status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED)))
		t->ops->activate(t->dev, f);
	pthread_mutex_unlock(&t->lock);
}

/* ---- virtio-net ------------------------------------------------------------------- */

static int net_pre_save(void *opaque)
{
	struct net_persist *p = opaque;
	struct virtio_net *n = p->vm->net[p->idx];
	struct virtio_mmio *t = virtio_net_transport(n);
	unsigned int nframes;
	size_t nbytes;
	char what[32];
	int ret;

	snprintf(what, sizeof(what), "virtio-net %u", p->idx);
	pthread_mutex_lock(&t->lock);
	ret = mmio_save(t, &p->mmio, p->q, NET_QUEUES, what);
	p->net = *virtio_net_get_state(n);
	if (!ret) {
		ret = virtio_net_inject_copy(n, p->inj_data, sizeof(p->inj_data), p->inj_len,
					     NET_SAVE_FRAMES, &nframes, &nbytes);
		if (ret)
			log_err("%s: more frames wait for injection than a checkpoint carries "
				"(%u frames, %u bytes); try again when the guest has taken them",
				what, NET_SAVE_FRAMES, NET_SAVE_BYTES);
		p->ninj = nframes;
		p->inj_bytes = (uint32_t)nbytes;
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static int net_post_load(void *opaque, uint32_t version_id)
{
	struct net_persist *p = opaque;
	struct virtio_net *n = p->vm->net[p->idx];
	struct virtio_mmio *t = virtio_net_transport(n);
	uint64_t sum = 0;
	char what[32];
	int ret;

	(void)version_id;
	snprintf(what, sizeof(what), "virtio-net %u", p->idx);
	for (uint32_t i = 0; i < p->ninj; i++)
		sum += p->inj_len[i];
	if (sum != p->inj_bytes) {
		vp_refuse(p->vm, "%s: injected frames add up to %llu bytes, the stream says %u", what,
			(unsigned long long)sum, p->inj_bytes);
		return -EINVAL;
	}
	ret = mmio_check(p->vm, t, &p->mmio, p->q, NET_QUEUES, what);
	if (ret)
		return ret;
	mmio_apply_begin(t);
	*virtio_net_get_state(n) = p->net;
	mmio_apply_end(t, &p->mmio, p->q, NET_QUEUES);
	virtio_net_inject_clear(n);
	for (uint32_t i = 0, off = 0; i < p->ninj; off += p->inj_len[i++])
		virtio_net_inject(n, p->inj_data + off, p->inj_len[i]);
	return 0;
}

static const struct vmstate_field net_fields[] = {
	VMSTATE_STRUCT(struct net_persist, mmio, &mmio_desc),
	VMSTATE_STRUCT_ARRAY(struct net_persist, q, &vq_desc),
	VMSTATE_BUFFER(struct net_persist, net.mac),
	VMSTATE_U16(struct net_persist, net.link_status),
	VMSTATE_U64(struct net_persist, net.features),
	VMSTATE_U32(struct net_persist, ninj),
	VMSTATE_U32(struct net_persist, inj_bytes),
	VMSTATE_VARRAY(struct net_persist, inj_len, ninj, VMSTATE_KIND_U32),
	VMSTATE_VARRAY(struct net_persist, inj_data, inj_bytes, VMSTATE_KIND_U8),
	VMSTATE_END,
};

static const struct vmstate_desc net_desc = {
	.name = "virtio-net",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = net_fields,
	.pre_save = net_pre_save,
	.post_load = net_post_load,
};

/* ---- virtio-blk -------------------------------------------------------------------- */

static int blk_pre_save(void *opaque)
{
	struct blk_persist *p = opaque;
	struct virtio_blk *b = p->vm->blk[p->idx];
	struct virtio_mmio *t = virtio_blk_transport(b);
	char what[32];
	int ret;

	snprintf(what, sizeof(what), "virtio-blk %u", p->idx);
	pthread_mutex_lock(&t->lock);
	ret = mmio_save(t, &p->mmio, p->q, BLK_QUEUES, what);
	p->blk = *virtio_blk_get_state(b);
	pthread_mutex_unlock(&t->lock);
	return ret;
}

static int blk_post_load(void *opaque, uint32_t version_id)
{
	struct blk_persist *p = opaque;
	struct virtio_blk *b = p->vm->blk[p->idx];
	struct virtio_mmio *t = virtio_blk_transport(b);
	struct virtio_blk_state *s = virtio_blk_get_state(b);
	char what[32];
	int ret;

	(void)version_id;
	snprintf(what, sizeof(what), "virtio-blk %u", p->idx);
	if (p->blk.capacity != s->capacity) {
		vp_refuse(p->vm, "%s: the stream's disk has %llu sectors, --disk %s has %llu", what,
			(unsigned long long)p->blk.capacity, p->vm->cfg.disk[p->idx],
			(unsigned long long)s->capacity);
		return -EINVAL;
	}
	ret = mmio_check(p->vm, t, &p->mmio, p->q, BLK_QUEUES, what);
	if (ret)
		return ret;
	mmio_apply_begin(t);
	*s = p->blk;
	mmio_apply_end(t, &p->mmio, p->q, BLK_QUEUES);
	return 0;
}

static const struct vmstate_field blk_fields[] = {
	VMSTATE_STRUCT(struct blk_persist, mmio, &mmio_desc),
	VMSTATE_STRUCT_ARRAY(struct blk_persist, q, &vq_desc),
	VMSTATE_U64(struct blk_persist, blk.capacity),
	VMSTATE_U64(struct blk_persist, blk.features),
	VMSTATE_END,
};

static const struct vmstate_desc blk_desc = {
	.name = "virtio-blk",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = blk_fields,
	.pre_save = blk_pre_save,
	.post_load = blk_post_load,
};

/* ---- registration and VM-level helpers --------------------------------------------- */

static struct virtio_persist *persist_of(struct vm *vm)
{
	return vm->virtio_persist;
}

int virtio_persist_register(struct vm *vm, struct vmstate_error *err)
{
	struct virtio_persist *vp = calloc(1, sizeof(*vp));
	int ret = 0;

	if (!vp)
		return -ENOMEM;
	vm->virtio_persist = vp;
	for (unsigned int i = 0; i < vm->nnet && !ret; i++) {
		vp->net[i] = calloc(1, sizeof(*vp->net[i]));
		if (!vp->net[i])
			return -ENOMEM;
		vp->net[i]->vm = vm;
		vp->net[i]->idx = i;
		/* A valid state to roll back to if a load is refused. */
		ret = net_pre_save(vp->net[i]);
		if (!ret)
			ret = vmstate_register(vm->vmstate, &net_desc, i, vp->net[i], err);
	}
	for (unsigned int i = 0; i < vm->nblk && !ret; i++) {
		vp->blk[i] = calloc(1, sizeof(*vp->blk[i]));
		if (!vp->blk[i])
			return -ENOMEM;
		vp->blk[i]->vm = vm;
		vp->blk[i]->idx = i;
		ret = blk_pre_save(vp->blk[i]);
		if (!ret)
			ret = vmstate_register(vm->vmstate, &blk_desc, i, vp->blk[i], err);
	}
	return ret;
}

void virtio_persist_free(struct vm *vm)
{
	struct virtio_persist *vp = persist_of(vm);

	if (!vp)
		return;
	for (unsigned int i = 0; i < VM_MAX_VIRTIO; i++) {
		free(vp->net[i]);
		free(vp->blk[i]);
	}
	free(vp);
	vm->virtio_persist = NULL;
}

static const char *count_words(unsigned int n, char *buf, size_t len)
{
	if (!n)
		return "none";
	snprintf(buf, len, "only %u", n);
	return buf;
}

void virtio_persist_explain(struct vm *vm, struct vmstate_error *err)
{
	struct virtio_persist *vp = vm->virtio_persist;
	char name[32], buf[32];
	unsigned int inst;

	if (vp && vp->why[0]) {
		if (err)
			snprintf(err->msg, sizeof(err->msg), "%s", vp->why);
		vp->why[0] = '\0';
		return;
	}
	if (!err || err->code != -ENOENT ||
	    sscanf(err->msg, "section '%31[^']' instance %u", name, &inst) != 2)
		return;
	if (!strcmp(name, "virtio-net"))
		snprintf(err->msg, sizeof(err->msg),
			 "stream has virtio-net %u, this VM has %s (--net must match)", inst,
			 count_words(vm->nnet, buf, sizeof(buf)));
	else if (!strcmp(name, "virtio-blk"))
		snprintf(err->msg, sizeof(err->msg),
			 "stream has virtio-blk %u, this VM has %s (--disk must match)", inst,
			 count_words(vm->nblk, buf, sizeof(buf)));
}

static int check_count(struct vm *vm, const char *kind, const char *opt, uint32_t stream, unsigned int here)
{
	char buf[32];

	if (stream < here) {
		vp_refuse(vm, "this VM has %s %u, the stream has %s (%s must match)", kind, stream,
			count_words(stream, buf, sizeof(buf)), opt);
		return -EINVAL;
	}
	if (stream > here) {
		vp_refuse(vm, "stream has %s %u, this VM has %s (%s must match)", kind, here,
			count_words(here, buf, sizeof(buf)), opt);
		return -EINVAL;
	}
	return 0;
}

int virtio_persist_check_counts(struct vm *vm, uint32_t nnet, uint32_t nblk)
{
	int ret = check_count(vm, "virtio-net", "--net", nnet, vm->nnet);

	return ret ? ret : check_count(vm, "virtio-blk", "--disk", nblk, vm->nblk);
}

int hw_vm_flush_disks(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nblk; i++) {
		int ret = virtio_blk_flush(vm->blk[i]);

		if (ret) {
			log_err("virtio-blk %u: cannot flush %s: %s", i, vm->cfg.disk[i],
				strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* RARP "reverse request" from the MAC, like QEMU's announce_self: bridges
 * and switches learn the port at once. Padded to the 60-byte minimum. */
void hw_vm_announce(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nnet; i++) {
		const uint8_t *mac = virtio_net_get_state(vm->net[i])->mac;
		uint8_t f[60] = {0};
		int ret;

		memset(f, 0xff, 6);
		memcpy(f + 6, mac, 6);
		f[12] = 0x80, f[13] = 0x35; /* RARP */
		f[14] = 0x00, f[15] = 0x01; /* Ethernet */
		f[16] = 0x08, f[17] = 0x00; /* IPv4 */
		f[18] = 6, f[19] = 4;
		f[20] = 0x00, f[21] = 0x03; /* reverse request */
		memcpy(f + 22, mac, 6);	    /* sender MAC, IP 0 */
		memcpy(f + 32, mac, 6);	    /* target MAC, IP 0 */
		ret = hw_vm_net_send(vm, i, f, sizeof(f));
		if (ret < 0)
			log_warn("virtio-net %u: announce: %s", i, strerror(-ret));
		else
			log_info("virtio-net %u: announced %02x:%02x:%02x:%02x:%02x:%02x (RARP)", i,
				 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	}
}
