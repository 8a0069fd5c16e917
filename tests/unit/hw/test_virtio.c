/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hw.virtio: split virtqueues built by hand in a small guest memory, the
 * virtio-mmio transport driven through its registers without KVM, and the
 * net (hook backend) and blk devices on top. Hostile rings must end in the
 * failed state (DEVICE_NEEDS_RESET), never in a crash (run under ASan).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <cmocka.h>

#include "hw/virtio.h"

#define MEM_SIZE (1 * MiB)
#define DESC	 0x1000ull
#define AVAIL	 0x2000ull
#define USED	 0x3000ull
#define IND	 0x4000ull
#define BUF	 0x10000ull
#define QNUM	 8

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct fx {
	struct guest_mem mem;
	struct virtq q;
	struct virtq_elem e;
};

static uint8_t *gp(struct fx *f, uint64_t gpa)
{
	return mem_ptr(&f->mem, gpa, 1);
}

static void set_desc(struct fx *f, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	struct vring_desc d = {addr, len, flags, next};

	memcpy(gp(f, table + 16ull * i), &d, sizeof(d));
}

static void wr16(struct fx *f, uint64_t gpa, uint16_t v)
{
	memcpy(gp(f, gpa), &v, 2);
}

static uint16_t rd16(struct fx *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, gp(f, gpa), 2);
	return v;
}

static uint32_t rd32(struct fx *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, gp(f, gpa), 4);
	return v;
}

/* Make chain `head` available at the driver's next avail slot. */
static void offer(struct fx *f, uint16_t head)
{
	uint16_t idx = rd16(f, AVAIL + 2);

	wr16(f, AVAIL + 4 + 2 * (idx % f->q.s.num), head);
	wr16(f, AVAIL + 2, (uint16_t)(idx + 1));
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(mem_init(&f->mem, MEM_SIZE), 0);
	f->q.s.num = QNUM;
	f->q.s.desc = DESC;
	f->q.s.avail = AVAIL;
	f->q.s.used = USED;
	assert_int_equal(virtq_start(&f->q, &f->mem, false, true), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	mem_free(&f->mem);
	free(f);
	return 0;
}

/* ---- queue walker ----------------------------------------------------------- */

static void test_chain(void **state)
{
	struct fx *f = *state;
	uint64_t *bm = calloc(MEM_SIZE / PAGE_SIZE / 64 + 1, 8);
	const char msg[] = "hello";

	mem_harvest_vmm_dirty(&f->mem, bm); /* start clean */
	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 3);
	set_desc(f, DESC, 3, BUF + 0x100, 100, VIRTQ_DESC_F_NEXT, 5);
	set_desc(f, DESC, 5, BUF + 0x5000, 200, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 0);
	assert_int_equal(f->e.nout, 2);
	assert_int_equal(f->e.nin, 1);
	assert_int_equal(f->e.out_len, 116);
	assert_int_equal(f->e.in_len, 200);
	assert_ptr_equal(f->e.iov[1].iov_base, gp(f, BUF + 0x100));
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);

	assert_false(mem_test_dirty(&f->mem, BUF + 0x5000));
	assert_int_equal(virtq_elem_write(&f->q, &f->e, 0, msg, sizeof(msg)), sizeof(msg));
	assert_string_equal((char *)gp(f, BUF + 0x5000), msg);
	assert_true(mem_test_dirty(&f->mem, BUF + 0x5000));

	virtq_push(&f->q, 0, sizeof(msg));
	assert_int_equal(rd16(f, USED + 2), 0); /* not published before flush */
	assert_true(virtq_flush(&f->q));
	assert_int_equal(rd16(f, USED + 2), 1);
	assert_int_equal(rd32(f, USED + 4), 0);
	assert_int_equal(rd32(f, USED + 8), sizeof(msg));
	assert_true(mem_test_dirty(&f->mem, USED));

	/* harvest returns and clears exactly the used ring and buffer pages */
	assert_int_equal(mem_harvest_vmm_dirty(&f->mem, bm), 2);
	assert_true(bm[0] & (1ull << (USED >> PAGE_SHIFT)));
	assert_true(bm[0] & (1ull << ((BUF + 0x5000) >> PAGE_SHIFT)));
	assert_false(mem_test_dirty(&f->mem, USED));
	free(bm);
}

static void test_readable_after_writable(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 16, 0, 0);
	offer(f, 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_true(f->q.broken);
}

static void test_indirect(void **state)
{
	struct fx *f = *state;

	set_desc(f, IND, 0, BUF, 10, VIRTQ_DESC_F_NEXT, 2);
	set_desc(f, IND, 2, BUF + 0x20, 20, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, IND, 1, BUF + 0x40, 30, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, DESC, 4, IND, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 4);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_int_equal(f->e.head, 4);
	assert_int_equal(f->e.nout, 2);
	assert_int_equal(f->e.nin, 1);
	assert_int_equal(f->e.in_len, 30);
	assert_ptr_equal(f->e.iov[2].iov_base, gp(f, BUF + 0x40));
}

static void test_wrap(void **state)
{
	struct fx *f = *state;

	f->q.s.last_avail = f->q.s.used_idx = 65534;
	wr16(f, AVAIL + 2, 65534);
	wr16(f, USED + 2, 65534);
	for (int i = 0; i < 4; i++) {
		set_desc(f, DESC, (unsigned int)i, BUF + 0x100ull * i, 64, VIRTQ_DESC_F_WRITE, 0);
		offer(f, (uint16_t)i);
	}
	assert_int_equal(rd16(f, AVAIL + 2), 2);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&f->q, &f->e), 1);
		assert_int_equal(f->e.head, i);
		virtq_push(&f->q, f->e.head, 64);
	}
	assert_int_equal(virtq_pop(&f->q, &f->e), 0);
	assert_true(virtq_flush(&f->q));
	assert_int_equal(rd16(f, USED + 2), 2);
	assert_int_equal(f->q.s.last_avail, 2);
	/* slot of used idx 65535 is 65535 % 8 = 7, of idx 1 is 1 */
	assert_int_equal(rd32(f, USED + 4 + 8 * 7), 1);
	assert_int_equal(rd32(f, USED + 4 + 8 * 1), 3);
}

static void test_event_idx(void **state)
{
	struct fx *f = *state;
	uint64_t used_event = AVAIL + 4 + 2 * QNUM, avail_event = USED + 4 + 8 * QNUM;

	assert_int_equal(virtq_start(&f->q, &f->mem, true, false), 0);
	set_desc(f, DESC, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	set_desc(f, DESC, 1, BUF + 0x100, 64, VIRTQ_DESC_F_WRITE, 0);
	wr16(f, used_event, 1); /* interrupt when used idx passes 1 */
	offer(f, 0);
	offer(f, 1);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, f->e.head, 1);
	assert_false(virtq_flush(&f->q)); /* used idx 0 -> 1: not past used_event 1 */
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, f->e.head, 1);
	assert_true(virtq_flush(&f->q)); /* 1 -> 2 crosses it */

	assert_false(virtq_enable_notify(&f->q));
	assert_int_equal(rd16(f, avail_event), 2);
	assert_true(mem_test_dirty(&f->mem, avail_event));
	offer(f, 0);
	assert_true(virtq_enable_notify(&f->q)); /* a buffer arrived meanwhile */

	/* no event idx: NO_INTERRUPT suppresses */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), 0);
	wr16(f, AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	virtq_push(&f->q, f->e.head, 1);
	assert_false(virtq_flush(&f->q));
}

/* Without event idx, NO_NOTIFY in used->flags asks the driver not to kick. */
static void test_no_notify(void **state)
{
	struct fx *f = *state;
	uint64_t *bm = calloc(MEM_SIZE / PAGE_SIZE / 64 + 1, 8);

	wr16(f, USED, VIRTQ_USED_F_NO_NOTIFY);
	/* A restore binds the rings without writing guest RAM ... */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), 0);
	assert_int_equal(rd16(f, USED), VIRTQ_USED_F_NO_NOTIFY);
	/* ... a queue the driver just made ready loses a stale flag. */
	virtq_enable_notify_fresh(&f->q);
	assert_int_equal(rd16(f, USED), 0);
	mem_harvest_vmm_dirty(&f->mem, bm);
	virtq_disable_notify(&f->q);
	assert_int_equal(rd16(f, USED), VIRTQ_USED_F_NO_NOTIFY);
	assert_true(mem_test_dirty(&f->mem, USED));
	set_desc(f, DESC, 0, BUF, 64, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	assert_true(virtq_enable_notify(&f->q)); /* a buffer came while we looked */
	assert_int_equal(rd16(f, USED), 0);
	assert_int_equal(virtq_pop(&f->q, &f->e), 1);
	assert_false(virtq_enable_notify(&f->q));
	/* with event idx the flags stay 0 */
	assert_int_equal(virtq_start(&f->q, &f->mem, true, false), 0);
	virtq_disable_notify(&f->q);
	assert_int_equal(rd16(f, USED), 0);
	free(bm);
}

/* ---- hostile rings ------------------------------------------------------------ */

static void expect_broken(struct fx *f, const char *why_part)
{
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	assert_true(f->q.broken);
	if (!strstr(f->q.why, why_part))
		fail_msg("reason '%s' lacks '%s'", f->q.why, why_part);
	/* stays broken, touches nothing */
	assert_int_equal(virtq_pop(&f->q, &f->e), -EIO);
	virtq_push(&f->q, 0, 1);
	assert_false(virtq_flush(&f->q));
}

static void test_addr_outside_ram(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, MEM_SIZE - 8, 16, 0, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_len_overflow(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, 0xfffffffffffff000ull, 0xffffffff, VIRTQ_DESC_F_WRITE, 0);
	offer(f, 0);
	expect_broken(f, "outside guest RAM");
}

static void test_loop(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, DESC, 1, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	offer(f, 0);
	expect_broken(f, "loop");
}

static void test_self_loop_indirect(void **state)
{
	struct fx *f = *state;

	set_desc(f, IND, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 0);
	set_desc(f, DESC, 0, IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "loop");
}

static void test_next_out_of_range(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, BUF, 16, VIRTQ_DESC_F_NEXT, QNUM);
	offer(f, 0);
	expect_broken(f, "out of range");
}

static void test_head_out_of_range(void **state)
{
	struct fx *f = *state;

	offer(f, 0xffff);
	expect_broken(f, "out of range");
}

static void test_indirect_in_indirect(void **state)
{
	struct fx *f = *state;

	set_desc(f, IND, 0, IND + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	set_desc(f, DESC, 0, IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "inside an indirect");
}

static void test_indirect_bad_len(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, IND, 17, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "indirect table length");
}

static void test_indirect_huge(void **state)
{
	struct fx *f = *state;

	set_desc(f, DESC, 0, 0, 0xfffffff0u, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "indirect table length");
}

static void test_indirect_not_negotiated(void **state)
{
	struct fx *f = *state;

	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), 0);
	set_desc(f, DESC, 0, IND, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(f, 0);
	expect_broken(f, "not negotiated");
}

static void test_avail_runaway(void **state)
{
	struct fx *f = *state;

	wr16(f, AVAIL + 2, QNUM + 1);
	expect_broken(f, "ahead");
}

static void test_bad_queue_setup(void **state)
{
	struct fx *f = *state;

	f->q.s.num = 512; /* huge */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), -EIO);
	assert_true(f->q.broken);
	f->q.s.num = 6; /* not a power of two */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), -EIO);
	f->q.s.num = QNUM;
	f->q.s.used = MEM_SIZE - 16; /* runs off the end of RAM */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), -EIO);
	assert_non_null(strstr(f->q.why, "outside guest RAM"));
	f->q.s.used = USED + 2; /* misaligned */
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), -EIO);
	f->q.s.used = USED;
	f->q.s.desc = 0xfffffffffffffff0ull;
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), -EIO);
	f->q.s.desc = DESC;
	assert_int_equal(virtq_start(&f->q, &f->mem, false, false), 0);
	assert_false(f->q.broken);
}

/* ---- transport + devices (no KVM) ------------------------------------------ */

#define TBUF 0x20000ull

static uint32_t reg_rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v;

	virtio_mmio_access(t, off, (uint8_t *)&v, 4, false);
	return v;
}

static void reg_wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	virtio_mmio_access(t, off, (uint8_t *)&v, 4, true);
}

/* Layout of queue qi: rings at 0x1000 * (1 + 3 qi) .. */
static uint64_t qdesc(unsigned int qi)
{
	return 0x1000ull * (1 + 3 * qi);
}

static void drive_setup(struct virtio_mmio *t, unsigned int nq, uint64_t features)
{
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_VERSION), 2);
	reg_wr(t, VIRTIO_MMIO_STATUS, 0);
	reg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	reg_wr(t, VIRTIO_MMIO_STATUS,
	       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	for (unsigned int i = 0; i < nq; i++) {
		reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, i);
		assert_int_equal(reg_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTQ_NUM_MAX);
		reg_wr(t, VIRTIO_MMIO_QUEUE_NUM, QNUM);
		reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)qdesc(i));
		reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		reg_wr(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)qdesc(i) + 0x1000);
		reg_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)qdesc(i) + 0x2000);
		reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
		assert_int_equal(reg_rd(t, VIRTIO_MMIO_QUEUE_READY), 1);
	}
	reg_wr(t, VIRTIO_MMIO_STATUS,
	       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		   VIRTIO_STATUS_DRIVER_OK);
}

/* Offer chain head on transport queue qi (driver side). */
static void t_offer(struct fx *f, unsigned int qi, uint16_t head)
{
	uint64_t avail = qdesc(qi) + 0x1000;
	uint16_t idx = rd16(f, avail + 2);

	wr16(f, avail + 4 + 2 * (idx % QNUM), head);
	__atomic_store_n((uint16_t *)gp(f, avail + 2), (uint16_t)(idx + 1), __ATOMIC_RELEASE);
}

static bool wait_used(struct fx *f, unsigned int qi, uint16_t want)
{
	uint64_t used = qdesc(qi) + 0x2000;

	for (int i = 0; i < 2000; i++) {
		if (__atomic_load_n((uint16_t *)gp(f, used + 2), __ATOMIC_ACQUIRE) == want)
			return true;
		usleep(1000);
	}
	return false;
}

static bool wait_status(struct virtio_mmio *t, uint32_t bit)
{
	for (int i = 0; i < 2000; i++) {
		if (reg_rd(t, VIRTIO_MMIO_STATUS) & bit)
			return true;
		usleep(1000);
	}
	return false;
}

static uint64_t irq_count(struct virtio_mmio *t)
{
	uint64_t v = 0;

	if (read(t->irq_fd, &v, sizeof(v)) < 0)
		return 0;
	return v;
}

struct hook_rec {
	int calls;
	uint8_t frame[128];
	size_t len;
};

static bool rec_tx(void *opaque, const uint8_t *frame, size_t len)
{
	struct hook_rec *r = opaque;

	r->calls++;
	r->len = len;
	memcpy(r->frame, frame, MIN(len, sizeof(r->frame)));
	return true;
}

static const struct net_hook_ops rec_ops = {.guest_tx = rec_tx};

#define F_V1 (1ull << VIRTIO_F_VERSION_1)

static void test_features(void **state)
{
	struct fx *f = *state;
	struct net_backend *be;
	struct virtio_net *n;
	struct virtio_mmio *t;

	assert_int_equal(net_null_open(&be), 0);
	assert_int_equal(
	    virtio_net_create(&f->mem, -1, 0, 5, (uint8_t[6]){2, 0, 0, 0, 0, 1}, be, &n), 0);
	t = virtio_net_transport(n);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
	reg_wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_true(reg_rd(t, VIRTIO_MMIO_DEVICE_FEATURES) & 1); /* VERSION_1 */
	/* no VERSION_1: FEATURES_OK does not stick */
	reg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1u << 5);
	reg_wr(t, VIRTIO_MMIO_STATUS, 0xb);
	assert_false(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	/* a feature never offered */
	reg_wr(t, VIRTIO_MMIO_STATUS, 0);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	reg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, 1 | 4);
	reg_wr(t, VIRTIO_MMIO_STATUS, 0xb);
	assert_false(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK);
	/* config space: MAC then status (link up) */
	{
		uint8_t mac[6];
		uint16_t st;

		for (int i = 0; i < 6; i++)
			virtio_mmio_access(t, VIRTIO_MMIO_CONFIG + (uint64_t)i, &mac[i], 1, false);
		assert_memory_equal(mac, ((uint8_t[6]){2, 0, 0, 0, 0, 1}), 6);
		virtio_mmio_access(t, VIRTIO_MMIO_CONFIG + 6, (uint8_t *)&st, 2, false);
		assert_int_equal(st, 1);
	}
	/* odd-sized register access reads zero, writes nothing */
	{
		uint16_t v = 0xffff;

		virtio_mmio_access(t, VIRTIO_MMIO_MAGIC_VALUE, (uint8_t *)&v, 2, false);
		assert_int_equal(v, 0);
	}
	virtio_net_free(n);
}

static void test_net_tx_rx(void **state)
{
	struct fx *f = *state;
	struct hook_rec rec = {0};
	struct hw_net_stats st;
	struct net_backend *be;
	struct virtio_net *n;
	struct virtio_mmio *t;
	uint8_t frame[60];
	struct virtio_net_hdr hdr = {0};

	assert_int_equal(net_null_open(&be), 0);
	assert_int_equal(
	    virtio_net_create(&f->mem, -1, 0, 5, (uint8_t[6]){2, 0, 0, 0, 0, 1}, be, &n), 0);
	t = virtio_net_transport(n);
	virtio_net_set_hook(n, &rec_ops, &rec);
	drive_setup(t, 2, F_V1);

	/* TX: header + frame in two descriptors */
	for (size_t i = 0; i < sizeof(frame); i++)
		frame[i] = (uint8_t)i;
	memcpy(gp(f, TBUF), &hdr, sizeof(hdr));
	memcpy(gp(f, TBUF + 0x100), frame, sizeof(frame));
	set_desc(f, qdesc(1), 0, TBUF, sizeof(hdr), VIRTQ_DESC_F_NEXT, 1);
	set_desc(f, qdesc(1), 1, TBUF + 0x100, sizeof(frame), 0, 0);
	t_offer(f, 1, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_true(wait_used(f, 1, 1));
	pthread_mutex_lock(&t->lock); /* the hook ran under it */
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec.len, sizeof(frame));
	assert_memory_equal(rec.frame, frame, sizeof(frame));
	pthread_mutex_unlock(&t->lock);
	assert_true(irq_count(t) >= 1);
	assert_true(reg_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_USED);
	reg_wr(t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_USED);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	/* RX: inject before any buffer is posted: it waits, counted */
	assert_int_equal(virtio_net_inject(n, frame, sizeof(frame)), 0);
	assert_int_equal(virtio_net_inject(n, frame, 20), 0);
	usleep(20000);
	virtio_net_stats(n, &st);
	assert_int_equal(st.rx_queued, 2);
	assert_int_equal(st.rx_dropped, 0);
	{
		uint64_t *bm = calloc(MEM_SIZE / PAGE_SIZE / 64 + 1, 8);

		mem_harvest_vmm_dirty(&f->mem, bm);
		set_desc(f, qdesc(0), 0, TBUF + 0x3000, 1526, VIRTQ_DESC_F_WRITE, 0);
		set_desc(f, qdesc(0), 1, TBUF + 0x4000, 1526, VIRTQ_DESC_F_WRITE, 0);
		t_offer(f, 0, 0);
		t_offer(f, 0, 1);
		reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		assert_true(wait_used(f, 0, 2));
		/* buffers were waiting: the driver need not notify */
		assert_int_equal(rd16(f, qdesc(0) + 0x2000), VIRTQ_USED_F_NO_NOTIFY);
		assert_int_equal(rd32(f, qdesc(0) + 0x2000 + 8), sizeof(hdr) + sizeof(frame));
		assert_int_equal(rd16(f, TBUF + 0x3000 + 10), 1); /* num_buffers */
		assert_memory_equal(gp(f, TBUF + 0x3000 + sizeof(hdr)), frame, sizeof(frame));
		assert_true(mem_test_dirty(&f->mem, TBUF + 0x3000));
		assert_true(mem_test_dirty(&f->mem, TBUF + 0x4000));
		assert_true(mem_test_dirty(&f->mem, qdesc(0) + 0x2000));
		free(bm);
	}
	virtio_net_stats(n, &st);
	assert_int_equal(st.rx_frames, 2);
	assert_int_equal(st.rx_queued, 0);
	assert_int_equal(st.tx_frames, 1);
	/* a frame and no buffer: the device asks to be notified again, and a
	 * buffer posted with a notify takes the frame */
	assert_int_equal(virtio_net_inject(n, frame, sizeof(frame)), 0);
	for (int i = 0; i < 200 && rd16(f, qdesc(0) + 0x2000); i++)
		usleep(1000);
	assert_int_equal(rd16(f, qdesc(0) + 0x2000), 0);
	t_offer(f, 0, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_used(f, 0, 3));
	/* TX: done with the queue, notifications are on again */
	assert_int_equal(rd16(f, qdesc(1) + 0x2000), 0);

	/* a hostile TX chain: the device fails, once, with a config interrupt */
	set_desc(f, qdesc(1), 2, 0xffffffff0000ull, 64, 0, 0);
	t_offer(f, 1, 2);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_true(wait_status(t, VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	assert_true(reg_rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_INT_CONFIG);
	/* reset clears it; the device can be set up again */
	reg_wr(t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_STATUS), 0);
	memset(gp(f, 0x1000), 0, 0x6000);
	drive_setup(t, 2, F_V1);
	assert_false(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	virtio_net_free(n);
}

static void test_bad_ring_address(void **state)
{
	struct fx *f = *state;
	struct net_backend *be;
	struct virtio_net *n;
	struct virtio_mmio *t;

	assert_int_equal(net_null_open(&be), 0);
	assert_int_equal(
	    virtio_net_create(&f->mem, -1, 0, 5, (uint8_t[6]){2, 0, 0, 0, 0, 1}, be, &n), 0);
	t = virtio_net_transport(n);
	reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NUM, 4096);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DRIVER_LOW, 0x2000);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_LOW, 0x3000);
	reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_QUEUE_READY), 0);
	assert_true(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	reg_wr(t, VIRTIO_MMIO_STATUS, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NUM, 8);
	reg_wr(t, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, 0x100);
	reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_true(reg_rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* selecting a queue that does not exist */
	reg_wr(t, VIRTIO_MMIO_QUEUE_SEL, 7);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 7);
	virtio_net_free(n);
}

/* ---- blk ---------------------------------------------------------------------- */

struct blk_hdr {
	uint32_t type, reserved;
	uint64_t sector;
};

/* Issue one request on the blk queue; returns the status byte. */
static uint8_t blk_req(struct fx *f, struct virtio_mmio *t, uint16_t *used, uint32_t type,
		       uint64_t sector, uint64_t data, uint32_t len, bool data_in)
{
	struct blk_hdr h = {type, 0, sector};
	uint64_t hdr = 0x30000, status = 0x30100;
	unsigned int d = 0;

	memcpy(gp(f, hdr), &h, sizeof(h));
	*gp(f, status) = 0xee;
	set_desc(f, qdesc(0), d, hdr, sizeof(h), VIRTQ_DESC_F_NEXT, (uint16_t)(d + 1));
	d++;
	if (len) {
		set_desc(f, qdesc(0), d, data, len,
			 VIRTQ_DESC_F_NEXT | (data_in ? VIRTQ_DESC_F_WRITE : 0), (uint16_t)(d + 1));
		d++;
	}
	set_desc(f, qdesc(0), d, status, 1, VIRTQ_DESC_F_WRITE, 0);
	t_offer(f, 0, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_used(f, 0, ++*used));
	return *gp(f, status);
}

static void test_blk(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/colovm-test-blk.XXXXXX";
	struct blk_spec spec = {0};
	struct virtio_blk *b;
	struct virtio_mmio *t;
	uint16_t used = 0;
	uint64_t cap = 0;
	uint8_t buf[1024];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * 512), 0);
	snprintf(spec.path, sizeof(spec.path), "%s", path);
	assert_int_equal(virtio_blk_create(&f->mem, -1, 0, 6, &spec, &b), 0);
	t = virtio_blk_transport(b);
	assert_int_equal(reg_rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLK);
	for (int i = 0; i < 2; i++)
		virtio_mmio_access(t, VIRTIO_MMIO_CONFIG + 4ull * i, (uint8_t *)&cap + 4 * i, 4,
				   false);
	assert_int_equal(cap, 64);
	drive_setup(t, 1, F_V1 | (1ull << 9));

	for (int i = 0; i < 1024; i++)
		*gp(f, 0x40000 + (uint64_t)i) = (uint8_t)(i * 7);
	assert_int_equal(blk_req(f, t, &used, 1, 10, 0x40000, 1024, false), 0);
	assert_int_equal(pread(fd, buf, sizeof(buf), 10 * 512), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, gp(f, 0x40000), sizeof(buf));
	assert_int_equal(blk_req(f, t, &used, 4, 0, 0, 0, false), 0); /* flush */

	{
		uint64_t *bm = calloc(MEM_SIZE / PAGE_SIZE / 64 + 1, 8);

		mem_harvest_vmm_dirty(&f->mem, bm);
		memset(gp(f, 0x50000), 0, 1024);
		assert_int_equal(blk_req(f, t, &used, 0, 10, 0x50000, 1024, true), 0);
		assert_memory_equal(buf, gp(f, 0x50000), sizeof(buf));
		assert_true(mem_test_dirty(&f->mem, 0x50000));
		assert_true(mem_test_dirty(&f->mem, 0x30100)); /* status byte */
		assert_int_equal(rd32(f, qdesc(0) + 0x2000 + 4 + 8 * 2 + 4), 1025);
		free(bm);
	}
	/* beyond capacity, straddling the end, partial sector, huge sector */
	assert_int_equal(blk_req(f, t, &used, 0, 64, 0x50000, 512, true), 1);
	assert_int_equal(blk_req(f, t, &used, 1, 63, 0x50000, 1024, false), 1);
	assert_int_equal(blk_req(f, t, &used, 0, 0, 0x50000, 100, true), 1);
	assert_int_equal(blk_req(f, t, &used, 0, ~0ull, 0x50000, 512, true), 1);
	/* GET_ID, unknown type */
	assert_int_equal(blk_req(f, t, &used, 8, 0, 0x50000, 20, true), 0);
	assert_memory_equal(gp(f, 0x50000), "colovm-test-blk", 15);
	assert_int_equal(blk_req(f, t, &used, 99, 0, 0, 0, false), 2);
	/* no status byte: the device fails */
	set_desc(f, qdesc(0), 0, 0x30000, 16, 0, 0);
	t_offer(f, 0, 0);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_status(t, VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	virtio_blk_free(b);

	/* read-only: writes fail with IOERR, RO advertised */
	spec.readonly = true;
	assert_int_equal(virtio_blk_create(&f->mem, -1, 0, 6, &spec, &b), 0);
	t = virtio_blk_transport(b);
	assert_true(reg_rd(t, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << 5));
	memset(gp(f, 0x1000), 0, 0x3000);
	used = 0;
	drive_setup(t, 1, F_V1);
	assert_int_equal(blk_req(f, t, &used, 1, 0, 0x40000, 512, false), 1);
	assert_int_equal(blk_req(f, t, &used, 0, 10, 0x50000, 512, true), 0);
	virtio_blk_free(b);

	close(fd);
	unlink(path);
}

/* Put one blk request in descriptors d.. (header at hdr, status byte at st). */
static void blk_chain(struct fx *f, unsigned int d, uint32_t type, uint64_t sector, uint64_t hdr,
		      uint64_t data, uint32_t len, bool data_in, uint64_t st)
{
	struct blk_hdr h = {type, 0, sector};

	memcpy(gp(f, hdr), &h, sizeof(h));
	*gp(f, st) = 0xee;
	set_desc(f, qdesc(0), d, hdr, sizeof(h), VIRTQ_DESC_F_NEXT, (uint16_t)(d + 1));
	if (len) {
		d++;
		set_desc(f, qdesc(0), d, data, len,
			 VIRTQ_DESC_F_NEXT | (data_in ? VIRTQ_DESC_F_WRITE : 0), (uint16_t)(d + 1));
	}
	set_desc(f, qdesc(0), d + 1, st, 1, VIRTQ_DESC_F_WRITE, 0);
}

/* A replicated disk: the tap sees each write that reached the image, with
 * its data; the overlay keeps the guest's writes off the image (reads mix
 * both per sector), a drop forgets them, a merge puts them in the image. */
struct tap_log {
	unsigned int calls, disk;
	uint64_t off, len;
	uint8_t data[2048];
	int img_fd;
	bool on_image; /* the data was in the image when the tap saw it */
};

static void tap_cb(void *opaque, unsigned int disk, uint64_t off, const struct iovec *iov,
		   unsigned int cnt, uint64_t len)
{
	struct tap_log *l = opaque;
	uint8_t img[2048];
	uint64_t at = 0;

	l->calls++;
	l->disk = disk;
	l->off = off;
	l->len = len;
	for (unsigned int i = 0; i < cnt && at + iov[i].iov_len <= sizeof(l->data); i++) {
		memcpy(l->data + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	l->on_image = len <= sizeof(img) &&
		      pread(l->img_fd, img, len, (off_t)off) == (ssize_t)len &&
		      !memcmp(img, l->data, len);
}

static void test_blk_replicate(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/colovm-test-blk.XXXXXX";
	struct blk_spec spec = {0};
	struct tap_log log = {0};
	struct virtio_blk *b;
	struct virtio_mmio *t;
	uint16_t used = 0;
	uint8_t a[64 * 512], buf[2048];
	uint64_t merged = 0, d0, d1;
	int fd = mkstemp(path), err;
	char msg[128];

	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(pwrite(fd, a, sizeof(a), 0), (ssize_t)sizeof(a));
	snprintf(spec.path, sizeof(spec.path), "%s", path);
	spec.replicate = true;
	spec.index = 3;
	assert_int_equal(virtio_blk_create(&f->mem, -1, 0, 6, &spec, &b), 0);
	t = virtio_blk_transport(b);
	drive_setup(t, 1, F_V1 | (1ull << 9));
	assert_true(virtio_blk_replicated(b));
	assert_int_equal(virtio_blk_bytes(b), sizeof(a));

	/* tap: the write, after it reached the image */
	log.img_fd = fd;
	virtio_blk_set_tap(b, tap_cb, &log);
	for (int i = 0; i < 1024; i++)
		*gp(f, 0x40000 + (uint64_t)i) = (uint8_t)(i * 5 + 3);
	assert_int_equal(blk_req(f, t, &used, 1, 4, 0x40000, 1024, false), 0);
	assert_int_equal(log.calls, 1);
	assert_int_equal(log.disk, 3);
	assert_int_equal(log.off, 4 * 512);
	assert_int_equal(log.len, 1024);
	assert_memory_equal(log.data, gp(f, 0x40000), 1024);
	assert_true(log.on_image);
	assert_int_equal(blk_req(f, t, &used, 0, 4, 0x50000, 512, true), 0); /* reads: no tap */
	assert_int_equal(log.calls, 1);
	virtio_blk_set_tap(b, NULL, NULL);
	assert_int_equal(blk_req(f, t, &used, 1, 4, 0x40000, 512, false), 0);
	assert_int_equal(log.calls, 1);
	memcpy(a + 4 * 512, gp(f, 0x40000), 1024);

	/* overlay: the guest's writes stay off the image */
	assert_int_equal(virtio_blk_overlay_start(b), 0);
	for (int i = 0; i < 1024; i++)
		*gp(f, 0x40000 + (uint64_t)i) = (uint8_t)(i * 3 + 7);
	assert_int_equal(blk_req(f, t, &used, 1, 10, 0x40000, 1024, false), 0);
	assert_int_equal(virtio_blk_overlay_sectors(b), 2);
	assert_int_equal(pread(fd, buf, 1024, 10 * 512), 1024);
	assert_memory_equal(buf, a + 10 * 512, 1024);
	/* a read across: sector 9 from the image, 10-11 from the overlay, 12 the image */
	memset(gp(f, 0x50000), 0, 2048);
	assert_int_equal(blk_req(f, t, &used, 0, 9, 0x50000, 2048, true), 0);
	assert_memory_equal(gp(f, 0x50000), a + 9 * 512, 512);
	assert_memory_equal(gp(f, 0x50000 + 512), gp(f, 0x40000), 1024);
	assert_memory_equal(gp(f, 0x50000 + 1536), a + 12 * 512, 512);
	/* the host writes the image (the primary's writes at a checkpoint) */
	assert_int_equal(virtio_blk_pwrite(b, a, 512, 40 * 512), 0);
	memcpy(a + 40 * 512, a, 512);
	assert_int_equal(virtio_blk_pwrite(b, a, 512, 64 * 512), -ERANGE);
	assert_int_equal(virtio_blk_pread(b, buf, 512, 63 * 512 + 1), -ERANGE);
	/* drop: the guest sees the image again */
	assert_int_equal(virtio_blk_overlay_drop(b), 0);
	assert_int_equal(virtio_blk_overlay_sectors(b), 0);
	assert_int_equal(blk_req(f, t, &used, 0, 9, 0x50000, 2048, true), 0);
	assert_memory_equal(gp(f, 0x50000), a + 9 * 512, 2048);
	/* merge: what the overlay holds goes into the image, flushed */
	d0 = virtio_blk_digest(b, &err);
	assert_int_equal(err, 0);
	assert_int_equal(blk_req(f, t, &used, 1, 20, 0x40000, 1024, false), 0);
	assert_int_equal(virtio_blk_digest(b, &err), d0); /* (the image only) */
	assert_int_equal(virtio_blk_overlay_merge(b, &merged), 0);
	assert_int_equal(merged, 2);
	assert_int_equal(pread(fd, buf, 1024, 20 * 512), 1024);
	assert_memory_equal(buf, gp(f, 0x40000), 1024);
	d1 = virtio_blk_digest(b, &err);
	assert_true(d1 != d0);
	/* no overlay any more: writes go to the image */
	assert_int_equal(virtio_blk_overlay_sectors(b), 0);
	assert_int_equal(blk_req(f, t, &used, 1, 30, 0x40000, 512, false), 0);
	assert_int_equal(pread(fd, buf, 512, 30 * 512), 512);
	assert_memory_equal(buf, gp(f, 0x40000), 512);
	virtio_blk_free(b);
	close(fd);
	unlink(path);

	/* replicate excludes readonly and direct */
	assert_int_equal(blk_spec_parse("x.img,replicate", &spec, msg, sizeof(msg)), 0);
	assert_true(spec.replicate);
	assert_int_equal(blk_spec_parse("x.img,replicate,readonly", &spec, msg, sizeof(msg)),
			 -EINVAL);
	assert_non_null(strstr(msg, "replicate excludes"));
	assert_int_equal(blk_spec_parse("x.img,direct,replicate", &spec, msg, sizeof(msg)),
			 -EINVAL);
}

/* Several requests made available at once: consecutive reads/writes are
 * merged into one call, a flush runs after the writes before it, a bad
 * request in between fails alone. */
static void test_blk_merge(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/colovm-test-blkm.XXXXXX";
	struct blk_spec spec = {0};
	struct virtio_blk *b;
	struct virtio_mmio *t;
	uint8_t buf[1536];
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64 * 512), 0);
	snprintf(spec.path, sizeof(spec.path), "%s", path);
	assert_int_equal(virtio_blk_create(&f->mem, -1, 0, 6, &spec, &b), 0);
	t = virtio_blk_transport(b);
	drive_setup(t, 1, F_V1 | (1ull << 9));
	for (int i = 0; i < 1536; i++)
		*gp(f, 0x40000 + (uint64_t)i) = (uint8_t)(i * 13 + 1);
	/* sectors 4-5 and 6 (a separate buffer), then a flush */
	blk_chain(f, 0, 1, 4, 0x30000, 0x40000, 1024, false, 0x30100);
	blk_chain(f, 3, 1, 6, 0x30020, 0x40400, 512, false, 0x30101);
	blk_chain(f, 6, 4, 0, 0x30040, 0, 0, false, 0x30102);
	t_offer(f, 0, 0);
	t_offer(f, 0, 3);
	t_offer(f, 0, 6);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_used(f, 0, 3));
	assert_memory_equal(gp(f, 0x30100), "\0\0\0", 3);
	assert_int_equal(pread(fd, buf, sizeof(buf), 4 * 512), (ssize_t)sizeof(buf));
	assert_memory_equal(buf, gp(f, 0x40000), sizeof(buf));
	/* read 4-5 and 6 into two buffers, a bad range in between ends the merge */
	memset(gp(f, 0x50000), 0, 0x2000);
	blk_chain(f, 0, 0, 4, 0x30000, 0x50000, 1024, true, 0x30100);
	blk_chain(f, 3, 1, 64, 0x30020, 0, 0, false, 0x30101);
	blk_chain(f, 5, 0, 6, 0x30040, 0x51000, 512, true, 0x30102);
	t_offer(f, 0, 0);
	t_offer(f, 0, 3);
	t_offer(f, 0, 5);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_used(f, 0, 6));
	assert_int_equal(*gp(f, 0x30100), 0);
	assert_int_equal(*gp(f, 0x30101), 0); /* sector 64 = capacity, no data: in range */
	assert_int_equal(*gp(f, 0x30102), 0);
	assert_memory_equal(gp(f, 0x50000), buf, 1024);
	assert_memory_equal(gp(f, 0x51000), buf + 1024, 512);
	assert_true(mem_test_dirty(&f->mem, 0x51000));
	/* used lengths: data + status */
	assert_int_equal(rd32(f, qdesc(0) + 0x2000 + 4 + 8 * 3 + 4), 1025);
	assert_int_equal(rd32(f, qdesc(0) + 0x2000 + 4 + 8 * 5 + 4), 513);
	/* a read past the end next to a good one: only the bad one fails */
	blk_chain(f, 0, 0, 62, 0x30000, 0x50000, 1024, true, 0x30100);
	blk_chain(f, 3, 0, 64, 0x30020, 0x51000, 512, true, 0x30101);
	t_offer(f, 0, 0);
	t_offer(f, 0, 3);
	reg_wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(wait_used(f, 0, 8));
	assert_int_equal(*gp(f, 0x30100), 0);
	assert_int_equal(*gp(f, 0x30101), 1);
	virtio_blk_free(b);
	close(fd);
	unlink(path);
}

static void test_specs(void **state)
{
	struct net_spec ns;
	struct blk_spec bs;
	char err[128];

	(void)state;
	assert_int_equal(net_spec_parse("tap=tap0,mac=52:54:00:ab:cd:ef", &ns, err, sizeof(err)),
			 0);
	assert_string_equal(ns.kind, "tap");
	assert_string_equal(ns.arg, "tap0");
	assert_true(ns.has_mac);
	assert_int_equal(ns.mac[5], 0xef);
	assert_int_equal(net_spec_parse("hook", &ns, err, sizeof(err)), 0);
	assert_int_equal(net_spec_parse("", &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_spec_parse("tap=", &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_spec_parse("tap=a,mac=01:00:00:00:00:00", &ns, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(net_spec_parse("tap=a,mac=52:54:00:00:00", &ns, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(net_spec_parse("tap=a,foo=1", &ns, err, sizeof(err)), -EINVAL);
	assert_int_equal(net_spec_parse("tap=waytoolonginterfacename", &ns, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(blk_spec_parse("/x.img,readonly,direct", &bs, err, sizeof(err)), 0);
	assert_string_equal(bs.path, "/x.img");
	assert_true(bs.readonly && bs.direct);
	assert_int_equal(blk_spec_parse(",readonly", &bs, err, sizeof(err)), -EINVAL);
	assert_int_equal(blk_spec_parse("/x.img,ro", &bs, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_readable_after_writable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event_idx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_notify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_addr_outside_ram, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_len_overflow, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_loop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_self_loop_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_next_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_out_of_range, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_in_indirect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_bad_len, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_huge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_indirect_not_negotiated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_avail_runaway, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_queue_setup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_features, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_net_tx_rx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_ring_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blk_replicate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blk_merge, setup, teardown),
	    cmocka_unit_test(test_specs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
