/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Split virtqueues (virtio 1.x, 2.7): the device side.
 *
 * Everything read from the rings is guest-controlled. Each field is read
 * once into a local before it is checked and used; every descriptor's
 * [addr, addr+len) must lie inside one guest RAM region (mem_ptr); a chain
 * may visit at most queue-size descriptors of the descriptor table and at
 * most table-length descriptors of an indirect table, which bounds loops;
 * an indirect table may not point to another. Any violation marks the
 * queue broken: the transport then sets DEVICE_NEEDS_RESET and the queue
 * is not touched again until the driver resets the device.
 *
 * Every write into guest RAM (used entries, used idx, avail_event, data
 * written into device-writable buffers) is recorded with mem_mark_dirty().
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hw/virtio.h"

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

#define AVAIL_FLAGS   0
#define AVAIL_IDX     2
#define AVAIL_RING    4
#define USED_FLAGS    0
#define USED_IDX      2
#define USED_RING     4
#define USED_ELEM_LEN 8

static int PRINTF_LIKE(2, 3) virtq_break(struct virtq *q, const char *fmt, ...)
{
	va_list ap;

	if (!q->broken) {
		va_start(ap, fmt);
		vsnprintf(q->why, sizeof(q->why), fmt, ap);
		va_end(ap);
		q->broken = true;
	}
	return -EIO;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t avail_idx(const struct virtq *q)
{
	return __atomic_load_n((const uint16_t *)(q->avail + AVAIL_IDX), __ATOMIC_ACQUIRE);
}

static void set_no_notify(struct virtq *q, bool on);

int virtq_start(struct virtq *q, struct guest_mem *mem, bool event_idx, bool indirect)
{
	uint64_t num = q->s.num;

	q->mem = mem;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->broken = false;
	q->why[0] = '\0';
	q->pending = 0;
	if (!num || num > VIRTQ_NUM_MAX || (num & (num - 1)))
		return virtq_break(q, "queue size %llu is not a power of two in 1..%u",
				   (unsigned long long)num, VIRTQ_NUM_MAX);
	if ((q->s.desc & 15) || (q->s.avail & 1) || (q->s.used & 3))
		return virtq_break(q, "misaligned ring (desc %#llx avail %#llx used %#llx)",
				   (unsigned long long)q->s.desc, (unsigned long long)q->s.avail,
				   (unsigned long long)q->s.used);
	q->desc = mem_ptr(mem, q->s.desc, 16 * num);
	q->avail = mem_ptr(mem, q->s.avail, AVAIL_RING + 2 * num + 2);
	q->used = mem_ptr(mem, q->s.used, USED_RING + USED_ELEM_LEN * num + 2);
	if (!q->desc || !q->avail || !q->used)
		return virtq_break(q, "ring outside guest RAM (desc %#llx avail %#llx used %#llx)",
				   (unsigned long long)q->s.desc, (unsigned long long)q->s.avail,
				   (unsigned long long)q->s.used);
	return 0;
}

void virtq_enable_notify_fresh(struct virtq *q)
{
	/* Notifications start enabled (a stale NO_NOTIFY would stall the queue). */
	if (!q->event_idx && q->used)
		set_no_notify(q, false);
}

void virtq_stop(struct virtq *q)
{
	q->desc = q->avail = q->used = NULL;
	q->pending = 0;
}

/* Append one segment to the element. */
static int elem_add(struct virtq *q, struct virtq_elem *e, const struct vring_desc *d)
{
	unsigned int n = e->nout + e->nin;
	void *p;

	if (d->flags & VIRTQ_DESC_F_WRITE) {
		e->in_len += d->len;
	} else {
		if (e->nin)
			return virtq_break(q, "chain %u: readable descriptor after a writable one",
					   e->head);
		e->out_len += d->len;
	}
	if (!d->len)
		return 0;
	p = mem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return virtq_break(q, "chain %u: buffer %#llx+%u outside guest RAM", e->head,
				   (unsigned long long)d->addr, d->len);
	if (n == VIRTQ_MAX_SEGS)
		return virtq_break(q, "chain %u: more than %u segments", e->head, VIRTQ_MAX_SEGS);
	e->iov[n].iov_base = p;
	e->iov[n].iov_len = d->len;
	e->gpa[n] = d->addr;
	if (d->flags & VIRTQ_DESC_F_WRITE)
		e->nin++;
	else
		e->nout++;
	return 0;
}

static int walk_indirect(struct virtq *q, struct virtq_elem *e, const struct vring_desc *ind)
{
	const uint8_t *table;
	uint32_t n, idx = 0;

	if (!q->indirect)
		return virtq_break(q, "chain %u: indirect descriptor not negotiated", e->head);
	if (ind->flags & VIRTQ_DESC_F_NEXT)
		return virtq_break(q, "chain %u: indirect descriptor with NEXT", e->head);
	if (!ind->len || ind->len % sizeof(struct vring_desc) ||
	    ind->len / sizeof(struct vring_desc) > VIRTQ_MAX_SEGS)
		return virtq_break(q, "chain %u: bad indirect table length %u", e->head, ind->len);
	n = ind->len / sizeof(struct vring_desc);
	table = mem_ptr(q->mem, ind->addr, ind->len);
	if (!table)
		return virtq_break(q, "chain %u: indirect table %#llx+%u outside guest RAM",
				   e->head, (unsigned long long)ind->addr, ind->len);
	for (uint32_t seen = 0;; seen++) {
		struct vring_desc d;
		int ret;

		if (seen == n)
			return virtq_break(q, "chain %u: loop in indirect table", e->head);
		memcpy(&d, table + (size_t)idx * sizeof(d), sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return virtq_break(
			    q, "chain %u: indirect descriptor inside an indirect table", e->head);
		ret = elem_add(q, e, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		idx = d.next;
		if (idx >= n)
			return virtq_break(q, "chain %u: indirect next index %u out of range (%u)",
					   e->head, idx, n);
	}
}

int virtq_pop(struct virtq *q, struct virtq_elem *e)
{
	uint16_t num = q->s.num, avail, head, idx;

	if (q->broken)
		return -EIO;
	if (!q->avail)
		return 0;
	avail = avail_idx(q);
	if ((uint16_t)(avail - q->s.last_avail) > num)
		return virtq_break(q, "avail index %u is %u ahead of %u (queue size %u)", avail,
				   (uint16_t)(avail - q->s.last_avail), q->s.last_avail, num);
	if (avail == q->s.last_avail)
		return 0;
	head = rd16(q->avail + AVAIL_RING + 2 * (q->s.last_avail & (num - 1)));
	if (head >= num)
		return virtq_break(q, "avail ring head %u out of range (queue size %u)", head, num);
	e->head = head;
	e->nout = e->nin = 0;
	e->out_len = e->in_len = 0;
	idx = head;
	for (unsigned int seen = 0;; seen++) {
		struct vring_desc d;
		int ret;

		if (seen == num)
			return virtq_break(q, "chain %u: longer than the queue (loop?)", head);
		memcpy(&d, q->desc + (size_t)idx * sizeof(d), sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			ret = walk_indirect(q, e, &d);
			if (ret)
				return ret;
			break;
		}
		ret = elem_add(q, e, &d);
		if (ret)
			return ret;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		idx = d.next;
		if (idx >= num)
			return virtq_break(q,
					   "chain %u: next index %u out of range (queue size %u)",
					   head, idx, num);
	}
	q->s.last_avail++;
	return 1;
}

uint16_t virtq_avail_pending(struct virtq *q)
{
	if (q->broken || !q->avail)
		return 0;
	return (uint16_t)(avail_idx(q) - q->s.last_avail);
}

void virtq_unpop(struct virtq *q)
{
	q->s.last_avail--;
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t len)
{
	uint16_t slot = (uint16_t)(q->s.used_idx + q->pending) & (q->s.num - 1);
	uint64_t off = USED_RING + (uint64_t)slot * USED_ELEM_LEN;
	uint32_t elem[2] = {head, len};

	if (q->broken || !q->used)
		return;
	memcpy(q->used + off, elem, sizeof(elem));
	mem_mark_dirty(q->mem, q->s.used + off, sizeof(elem));
	q->pending++;
}

bool virtq_flush(struct virtq *q)
{
	uint16_t old = q->s.used_idx, new;

	if (q->broken || !q->used || !q->pending)
		return false;
	new = (uint16_t)(old + q->pending);
	q->pending = 0;
	q->s.used_idx = new;
	__atomic_store_n((uint16_t *)(q->used + USED_IDX), new, __ATOMIC_RELEASE);
	mem_mark_dirty(q->mem, q->s.used + USED_IDX, 2);
	/* The driver's used_event/flags must be read after the index is seen. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (q->event_idx) {
		uint16_t ev = rd16(q->avail + AVAIL_RING + 2 * q->s.num);

		return (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	}
	return !(rd16(q->avail + AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

/* Without event idx: set or clear VIRTQ_USED_F_NO_NOTIFY in used->flags
 * (written only when it changes; every write is marked dirty). */
static void set_no_notify(struct virtq *q, bool on)
{
	uint16_t *flags = (uint16_t *)(q->used + USED_FLAGS);
	uint16_t old = __atomic_load_n(flags, __ATOMIC_RELAXED), val;

	val = on ? (uint16_t)(old | VIRTQ_USED_F_NO_NOTIFY)
		 : (uint16_t)(old & ~VIRTQ_USED_F_NO_NOTIFY);
	if (val == old)
		return;
	__atomic_store_n(flags, val, __ATOMIC_RELAXED);
	mem_mark_dirty(q->mem, q->s.used + USED_FLAGS, 2);
}

void virtq_disable_notify(struct virtq *q)
{
	/* With event idx, not moving avail_event is what suppresses kicks. */
	if (q->broken || !q->used || q->event_idx)
		return;
	set_no_notify(q, true);
}

bool virtq_enable_notify(struct virtq *q)
{
	uint64_t off;

	if (q->broken || !q->avail)
		return false;
	if (q->event_idx) {
		off = USED_RING + (uint64_t)USED_ELEM_LEN * q->s.num;
		__atomic_store_n((uint16_t *)(q->used + off), q->s.last_avail, __ATOMIC_RELAXED);
		mem_mark_dirty(q->mem, q->s.used + off, 2);
	} else {
		set_no_notify(q, false);
	}
	/* The driver reads flags/avail_event after publishing its avail index
	 * (its own full barrier); we read the index after our store. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return avail_idx(q) != q->s.last_avail;
}

uint64_t virtq_elem_write(struct virtq *q, const struct virtq_elem *e, uint64_t off,
			  const void *src, uint64_t len)
{
	const uint8_t *s = src;
	uint64_t done = 0;

	for (unsigned int i = e->nout; i < e->nout + e->nin && done < len; i++) {
		uint64_t seg = e->iov[i].iov_len, n;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		n = MIN(seg - off, len - done);
		memcpy((uint8_t *)e->iov[i].iov_base + off, s + done, n);
		mem_mark_dirty(q->mem, e->gpa[i] + off, n);
		done += n;
		off = 0;
	}
	return done;
}

void virtq_elem_mark_dirty(struct virtq *q, const struct virtq_elem *e, uint64_t len)
{
	for (unsigned int i = e->nout; i < e->nout + e->nin && len; i++) {
		uint64_t n = MIN(e->iov[i].iov_len, len);

		mem_mark_dirty(q->mem, e->gpa[i], n);
		len -= n;
	}
}

uint64_t virtq_elem_read(const struct virtq_elem *e, uint64_t off, void *dst, uint64_t len)
{
	uint8_t *d = dst;
	uint64_t done = 0;

	for (unsigned int i = 0; i < e->nout && done < len; i++) {
		uint64_t seg = e->iov[i].iov_len, n;

		if (off >= seg) {
			off -= seg;
			continue;
		}
		n = MIN(seg - off, len - done);
		memcpy(d + done, (const uint8_t *)e->iov[i].iov_base + off, n);
		done += n;
		off = 0;
	}
	return done;
}
