// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rewrite (secondary) tests: seq/ack/SACK fixed, checksums verified with the helper's
 * independent RFC 1071 routine; offsets learnt both ways, reset by a checkpoint, kept by
 * failover; mirror/redirect ordering.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net-compare/compare.h"
#include "pkt_helper.h"

struct side {
	struct pkt_ep g, c; /* guest, client */
};

static size_t seg(uint8_t *f, struct pkt_ep src, struct pkt_ep dst, uint32_t seq, uint32_t ack,
		  uint8_t flags, const uint8_t *d, size_t n)
{
	struct pkt_tcp t = {.src = src, .dst = dst, .seq = seq, .ack = ack, .flags = flags,
			    .data = d, .len = n};

	return pkt_tcp(f, &t);
}

static void flow_of(struct pkt_ep g, struct pkt_ep c, struct compare_flow *fl)
{
	uint8_t f[PKT_MAX];
	size_t n = seg(f, g, c, 0, 0, F_ACK, NULL, 0);

	assert_int_equal(compare_flow_parse(f, n, fl), 0);
}

/* client-opened connection: learn from the client's ACK */
static void client_opened(bool v6, uint32_t P, uint32_t S)
{
	struct pkt_ep g = v6 ? pkt_ep6(2, 80) : pkt_ep4(10, 0, 0, 2, 80);
	struct pkt_ep c = v6 ? pkt_ep6(1, 5555) : pkt_ep4(10, 0, 0, 1, 5555);
	struct compare_rewrite *rw;
	struct compare_flow fl;
	uint8_t f[PKT_MAX], d[10] = "0123456789";
	uint32_t off;
	size_t n;

	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	flow_of(g, c, &fl);
	n = seg(f, c, g, 7000, 0, F_SYN, NULL, 0);
	assert_int_equal(compare_rewrite_inbound(rw, f, n, 0, 1), 0);
	n = seg(f, g, c, S, 7001, F_SYN | F_ACK, NULL, 0);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 1), 0);
	assert_int_equal(pkt_tcp_seq(f), S); /* SYN never rewritten */
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), -EAGAIN);
	n = seg(f, c, g, 7001, P + 1, F_ACK, NULL, 0);
	assert_int_equal(compare_rewrite_inbound(rw, f, n, 0, 1), P != S);
	assert_int_equal(pkt_tcp_ack(f), S + 1);
	assert_true(pkt_csum_ok(f, n));
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), 0);
	assert_int_equal(off, P - S);
	/* guest data: seq into the primary's space */
	n = seg(f, g, c, S + 1, 7001, F_ACK | F_PSH, d, 10);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 2), P != S);
	assert_int_equal(pkt_tcp_seq(f), P + 1);
	assert_int_equal(pkt_tcp_ack(f), 7001);
	assert_true(pkt_csum_ok(f, n));
	compare_rewrite_free(rw);
}

static void test_offsets_client_opened(void **state)
{
	client_opened(false, 1000000, 5000);	   /* primary ahead */
	client_opened(false, 5000, 1000000);	   /* secondary ahead */
	client_opened(false, 10, 0xfffffff0u);	   /* across the wrap */
	client_opened(false, 0xabcdef01, 0xabcdef01); /* same ISN */
	client_opened(true, 0x80000000u, 3);
}

static void test_offset_guest_opened(void **state)
{
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 40000), c = pkt_ep4(10, 0, 0, 1, 443);
	struct compare_rewrite *rw;
	struct compare_flow fl;
	uint8_t f[PKT_MAX];
	uint32_t P = 0x12345678, S = 0x9abcdef0, off;
	size_t n;

	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	flow_of(g, c, &fl);
	n = seg(f, g, c, S, 0, F_SYN, NULL, 0);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 1), 0);
	/* retransmitted SYN keeps the ISN */
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 1), 0);
	n = seg(f, c, g, 99, P + 1, F_SYN | F_ACK, NULL, 0);
	assert_int_equal(compare_rewrite_inbound(rw, f, n, 0, 1), 1);
	assert_int_equal(pkt_tcp_ack(f), S + 1);
	assert_true(pkt_csum_ok(f, n));
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), 0);
	assert_int_equal(off, P - S);
	compare_rewrite_free(rw);
}

/* learn P-S for g<->c on rw */
static void learn(struct compare_rewrite *rw, struct pkt_ep g, struct pkt_ep c, uint32_t P,
		  uint32_t S)
{
	uint8_t f[PKT_MAX];
	size_t n;

	n = seg(f, g, c, S, 7001, F_SYN | F_ACK, NULL, 0);
	compare_rewrite_outbound(rw, f, n, 0, 1);
	n = seg(f, c, g, 7001, P + 1, F_ACK, NULL, 0);
	compare_rewrite_inbound(rw, f, n, 0, 1);
}

static void test_sack_and_partial_csum(void **state)
{
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 5555);
	/* NOP NOP SACK(2 blocks) */
	uint8_t opts[20] = {1, 1, 5, 18}, f[PKT_MAX], csum[2];
	struct compare_rewrite *rw;
	struct pkt_tcp t;
	uint32_t P = 500000, S = 100, e[4] = {P + 101, P + 201, P + 301, P + 401};
	size_t n, off;
	int i;

	for (i = 0; i < 4; i++) {
		opts[4 + 4 * i] = (uint8_t)(e[i] >> 24);
		opts[5 + 4 * i] = (uint8_t)(e[i] >> 16);
		opts[6 + 4 * i] = (uint8_t)(e[i] >> 8);
		opts[7 + 4 * i] = (uint8_t)e[i];
	}
	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	learn(rw, g, c, P, S);
	t = (struct pkt_tcp){.src = c, .dst = g, .seq = 7001, .ack = P + 1, .flags = F_ACK,
			     .opts = opts, .optlen = 20};
	n = pkt_tcp(f, &t);
	assert_int_equal(compare_rewrite_inbound(rw, f, n, 0, 2), 1);
	assert_true(pkt_csum_ok(f, n));
	off = 14 + 20 + 20 + 4;
	for (i = 0; i < 4; i++) {
		uint8_t *p = f + off + 4 * i;
		uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

		assert_int_equal(v, e[i] - (P - S));
	}
	/* partial checksum (virtio NEEDS_CSUM): the field is left alone */
	n = seg(f, g, c, S + 1, 7001, F_ACK, (const uint8_t *)"x", 1);
	memcpy(csum, f + 14 + 20 + 16, 2);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, COMPARE_RW_CSUM_PARTIAL, 3), 1);
	assert_int_equal(pkt_tcp_seq(f), P + 1);
	assert_memory_equal(csum, f + 14 + 20 + 16, 2);
	compare_rewrite_free(rw);
}

static void test_checkpoint_failover_teardown(void **state)
{
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 5555);
	struct pkt_ep c2 = pkt_ep4(10, 0, 0, 1, 6666), c3 = pkt_ep4(10, 0, 0, 1, 7777);
	struct compare_rewrite *rw;
	struct compare_flow fl, fl2, fl3;
	uint8_t f[PKT_MAX];
	uint32_t off;
	size_t n;

	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	flow_of(g, c, &fl);
	flow_of(g, c2, &fl2);
	flow_of(g, c3, &fl3);
	learn(rw, g, c, 1000, 10);
	compare_rewrite_checkpoint(rw);
	/* after a checkpoint the secondary's TCP state is the primary's */
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), 0);
	assert_int_equal(off, 0);
	n = seg(f, g, c, 1001, 7001, F_ACK, (const uint8_t *)"a", 1);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 2), 0);
	assert_int_equal(pkt_tcp_seq(f), 1001);

	/* a later connection learns again, then failover keeps its offset */
	learn(rw, g, c2, 2000, 20);
	compare_rewrite_failover(rw);
	n = seg(f, g, c2, 21, 7001, F_ACK, (const uint8_t *)"b", 1);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 3), 1);
	assert_int_equal(pkt_tcp_seq(f), 2001);
	assert_true(pkt_csum_ok(f, n));
	/* new connections after failover are not rewritten */
	learn(rw, g, c3, 3000, 30);
	assert_int_equal(compare_rewrite_offset(rw, &fl3, &off), -ENOENT);

	/* FIN both ways, then gc after the linger time */
	n = seg(f, g, c2, 22, 7001, F_ACK | F_FIN, NULL, 0);
	compare_rewrite_outbound(rw, f, n, 0, 10);
	n = seg(f, c2, g, 7001, 2003, F_ACK | F_FIN, NULL, 0);
	compare_rewrite_inbound(rw, f, n, 0, 10);
	assert_int_equal(pkt_tcp_ack(f), 23);
	compare_rewrite_gc(rw, 11, 5);
	assert_int_equal(compare_rewrite_offset(rw, &fl2, &off), 0);
	compare_rewrite_gc(rw, 15, 5);
	assert_int_equal(compare_rewrite_offset(rw, &fl2, &off), -ENOENT);
	/* RST closes at once */
	n = seg(f, c, g, 7001, 0, F_RST, NULL, 0);
	compare_rewrite_inbound(rw, f, n, 0, 20);
	compare_rewrite_gc(rw, 20, 0);
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), -ENOENT);
	compare_rewrite_free(rw);
}

/* Rewritten secondary + compare: different ISNs, still a match. */
struct cnt {
	int released, ckpts;
};

static void on_rel(void *o, const uint8_t *f, size_t n)
{
	((struct cnt *)o)->released++;
}

static void on_ck(void *o, enum compare_reason r)
{
	((struct cnt *)o)->ckpts++;
}

static void test_rewrite_then_compare(void **state)
{
	static const struct compare_ops ops = {.release = on_rel, .checkpoint = on_ck};
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 5555);
	struct compare_rewrite *rw;
	struct compare *cmp;
	struct cnt k = {0};
	uint8_t f[PKT_MAX], d[500];
	uint32_t P = 77777, S = 0xfffffe00u;
	size_t n;
	int i;

	for (i = 0; i < 500; i++)
		d[i] = (uint8_t)(i * 13);
	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	assert_int_equal(compare_new(&cmp, NULL, &ops, &k), 0);
	n = seg(f, g, c, P, 7001, F_SYN | F_ACK, NULL, 0);
	compare_feed(cmp, COMPARE_PRIMARY, f, n, 1);
	n = seg(f, g, c, S, 7001, F_SYN | F_ACK, NULL, 0);
	compare_rewrite_outbound(rw, f, n, 0, 1);
	compare_feed(cmp, COMPARE_SECONDARY, f, n, 1);
	n = seg(f, c, g, 7001, P + 1, F_ACK, NULL, 0);
	compare_rewrite_inbound(rw, f, n, 0, 1);
	for (i = 0; i < 5; i++) {
		n = seg(f, g, c, P + 1 + 100 * i, 7001, F_ACK, d + 100 * i, 100);
		compare_feed(cmp, COMPARE_PRIMARY, f, n, 2);
	}
	for (i = 0; i < 2; i++) { /* secondary: 250-byte segments, crossing 2^32 */
		n = seg(f, g, c, S + 1 + 250 * i, 7001, F_ACK, d + 250 * i, 250);
		assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 2), 1);
		assert_true(pkt_csum_ok(f, n));
		compare_feed(cmp, COMPARE_SECONDARY, f, n, 3);
	}
	assert_int_equal(k.released, 6);
	assert_int_equal(k.ckpts, 0);
	compare_free(cmp);
	compare_rewrite_free(rw);
}

/* ---- mirror / redirect ---------------------------------------------------------- */

static char order[16];
static int fail_channel;

static int out_guest(void *o, const uint8_t *f, size_t n)
{
	strcat(order, "G");
	return 0;
}

static int out_channel(void *o, const uint8_t *f, size_t n)
{
	strcat(order, "C");
	return fail_channel ? -EAGAIN : 0;
}

static int out_wire(void *o, const uint8_t *f, size_t n)
{
	strcat(order, "W");
	return 0;
}

static void test_mirror_redirect(void **state)
{
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 5555);
	struct compare_redirect *rd;
	struct compare_mirror *m;
	struct compare_rewrite *rw;
	uint8_t f[PKT_MAX];
	size_t n;

	assert_int_equal(compare_mirror_new(&m, out_guest, out_channel, NULL), 0);
	n = seg(f, c, g, 1, 1, F_ACK, NULL, 0);
	order[0] = 0;
	assert_int_equal(compare_mirror_input(m, f, n), 0);
	assert_string_equal(order, "CG");
	fail_channel = 1;
	order[0] = 0;
	assert_int_equal(compare_mirror_input(m, f, n), -EAGAIN);
	assert_string_equal(order, "CG"); /* the guest still gets it */
	assert_int_equal(compare_mirror_errors(m), 1);
	fail_channel = 0;
	compare_mirror_free(m);

	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	assert_int_equal(compare_redirect_new(&rd, rw, out_channel, out_wire, out_guest, NULL), 0);
	learn(rw, g, c, 1000, 10);
	order[0] = 0;
	n = seg(f, g, c, 11, 7001, F_ACK, (const uint8_t *)"z", 1);
	assert_int_equal(compare_redirect_output(rd, f, n, 0, 5), 0);
	assert_int_equal(pkt_tcp_seq(f), 1001);
	n = seg(f, c, g, 7001, 1002, F_ACK, NULL, 0);
	assert_int_equal(compare_redirect_input(rd, f, n, 0, 5), 0);
	assert_int_equal(pkt_tcp_ack(f), 12);
	assert_false(compare_redirect_failed_over(rd));
	compare_redirect_failover(rd);
	assert_true(compare_redirect_failed_over(rd));
	n = seg(f, g, c, 12, 7001, F_ACK, (const uint8_t *)"y", 1);
	assert_int_equal(compare_redirect_output(rd, f, n, 0, 6), 0);
	assert_int_equal(pkt_tcp_seq(f), 1002); /* offsets survive failover */
	assert_string_equal(order, "CGW");
	compare_redirect_free(rd);
	compare_rewrite_free(rw);
}

/* re-protect: a survivor's offsets saved, loaded by its new secondary (added to what
 * it has), applied there after its own failover; bad strings refused, nothing changed */
static void test_save_load(void **state)
{
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 5555);
	struct pkt_ep c2 = pkt_ep6(1, 6666), c3 = pkt_ep4(10, 0, 0, 1, 7777);
	struct compare_rewrite *rw, *rw2;
	struct compare_flow fl, fl2, fl3;
	uint8_t f[PKT_MAX], *buf, *buf2;
	uint32_t off;
	size_t n, len, len2;

	assert_int_equal(compare_rewrite_new(&rw, 0), 0);
	assert_int_equal(compare_rewrite_new(&rw2, 0), 0);
	flow_of(g, c, &fl);
	flow_of(pkt_ep6(2, 80), c2, &fl2);
	flow_of(g, c3, &fl3);
	learn(rw, g, c, 1000, 10);		 /* offset 990 */
	learn(rw, pkt_ep6(2, 80), c2, 5000, 10); /* offset 4990 */
	learn(rw, g, c3, 77, 77);		 /* offset 0: not kept */
	compare_rewrite_failover(rw);
	assert_int_equal(compare_rewrite_active(rw), 2);
	assert_int_equal(compare_rewrite_save(rw, &buf, &len), 2);
	assert_int_equal(len, 8 + 2 * 44);

	/* the new secondary learnt nothing of these (its guest is a copy) */
	assert_int_equal(compare_rewrite_load(rw2, buf, len, 5), 0);
	assert_int_equal(compare_rewrite_offset(rw2, &fl, &off), 0);
	assert_int_equal(off, 990);
	assert_int_equal(compare_rewrite_offset(rw2, &fl2, &off), 0);
	assert_int_equal(off, 4990);
	assert_int_equal(compare_rewrite_offset(rw2, &fl3, &off), -ENOENT);
	n = seg(f, g, c, 11, 7001, F_ACK, (const uint8_t *)"a", 1);
	assert_int_equal(compare_rewrite_outbound(rw2, f, n, 0, 6), 1);
	assert_int_equal(pkt_tcp_seq(f), 1001);
	assert_true(pkt_csum_ok(f, n));
	n = seg(f, c, g, 7001, 1002, F_ACK, NULL, 0);
	assert_int_equal(compare_rewrite_inbound(rw2, f, n, 0, 6), 1);
	assert_int_equal(pkt_tcp_ack(f), 12);
	/* loaded again (the next checkpoint's string onto a rewriter that has them):
	 * offsets add up, as for a connection its own pair had learnt */
	assert_int_equal(compare_rewrite_load(rw2, buf, len, 7), 0);
	assert_int_equal(compare_rewrite_offset(rw2, &fl, &off), 0);
	assert_int_equal(off, 1980);

	/* bad strings: nothing changes */
	assert_int_equal(compare_rewrite_load(rw2, buf, len - 1, 8), -EINVAL);
	assert_int_equal(compare_rewrite_load(rw2, buf, 4, 8), -EINVAL);
	buf2 = malloc(len);
	assert_non_null(buf2);
	memcpy(buf2, buf, len);
	buf2[0] ^= 1;
	assert_int_equal(compare_rewrite_load(rw2, buf2, len, 8), -EINVAL);
	memcpy(buf2, buf, len);
	buf2[8 + 44 + 38] = 17; /* the second record says UDP */
	assert_int_equal(compare_rewrite_load(rw2, buf2, len, 8), -EINVAL);
	memcpy(buf2, buf, len);
	buf2[7] = 3; /* count beyond the records */
	assert_int_equal(compare_rewrite_load(rw2, buf2, len, 8), -EINVAL);
	free(buf2);
	assert_int_equal(compare_rewrite_offset(rw2, &fl, &off), 0);
	assert_int_equal(off, 1980);
	assert_int_equal(compare_rewrite_load(rw2, NULL, 0, 8), -EINVAL);

	/* what it applies now is what it would hand on */
	assert_int_equal(compare_rewrite_save(rw2, &buf2, &len2), 2);
	free(buf2);

	/* after failover, the guest opening the tuple again drops the old offset */
	n = seg(f, g, c, 99999, 0, F_SYN, NULL, 0);
	assert_int_equal(compare_rewrite_outbound(rw, f, n, 0, 9), 0);
	assert_int_equal(pkt_tcp_seq(f), 99999);
	assert_int_equal(compare_rewrite_offset(rw, &fl, &off), -ENOENT);
	free(buf);
	compare_rewrite_free(rw2);
	compare_rewrite_free(rw);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offsets_client_opened),
		cmocka_unit_test(test_offset_guest_opened),
		cmocka_unit_test(test_sack_and_partial_csum),
		cmocka_unit_test(test_checkpoint_failover_teardown),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_rewrite_then_compare),
		cmocka_unit_test(test_mirror_redirect),
	};

	return cmocka_run_group_tests_name("netcompare.rewrite", tests, NULL, NULL);
}
