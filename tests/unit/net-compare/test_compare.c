// SPDX-License-Identifier: GPL-2.0-only
/*
 * net-compare packet-level tests: crafted frames from pkt_helper, two guests' streams
 * fed to the comparator, verdicts asserted.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "net-compare/compare.h"
#include "pkt_helper.h"

#define MS    1000000ull
#define NKEEP 256

struct h {
	struct compare *c;
	int released;
	size_t rel_len[NKEEP];
	uint8_t rel[NKEEP][2048];
	int ckpts;
	enum compare_reason reason;
	uint64_t now;
};

static void on_release(void *opaque, const uint8_t *frame, size_t len)
{
	struct h *h = opaque;

	if (h->released < NKEEP) {
		h->rel_len[h->released] = len;
		memcpy(h->rel[h->released], frame, len < 2048 ? len : 2048);
	}
	h->released++;
}

static void on_checkpoint(void *opaque, enum compare_reason reason)
{
	struct h *h = opaque;

	h->ckpts++;
	h->reason = reason;
}

static const struct compare_ops ops = {.release = on_release, .checkpoint = on_checkpoint};

static struct h *h_new(const struct compare_config *cfg)
{
	struct h *h = calloc(1, sizeof(*h));

	assert_non_null(h);
	assert_int_equal(compare_new(&h->c, cfg, &ops, h), 0);
	h->now = 1000 * MS;
	return h;
}

static void h_free(struct h *h)
{
	compare_free(h->c);
	free(h);
}

static void feed(struct h *h, int side, const uint8_t *f, size_t n)
{
	h->now += 1000; /* 1 us per frame */
	assert_int_equal(compare_feed(h->c, side, f, n, h->now), 0);
}

/* guest 10.0.0.2:80 serving client 10.0.0.1:port; flows per side */
struct conn2 {
	struct pkt_flow p, s;
};

#define ISN_P 1000000u
#define ISN_S 0xfffffff0u /* the secondary wraps around; rewritten before compare */

static void conn_init(struct conn2 *c, uint32_t i, bool v6)
{
	memset(c, 0, sizeof(*c));
	if (v6) {
		c->p.src = pkt_ep6(2, 80);
		c->p.dst = pkt_ep6(1, (uint16_t)(40000 + i));
	} else {
		c->p.src = pkt_ep4(10, 0, (uint8_t)(i >> 16), 2, 80);
		c->p.dst = pkt_ep4(10, 1, (uint8_t)(i >> 8), (uint8_t)i, (uint16_t)(40000 + i));
	}
	c->p.seq = ISN_P;
	c->p.ack = 5000;
	c->s = c->p;
	c->s.seq = ISN_S;
}

/* SYN-ACK from both guests; afterwards the secondary is "rewritten" to primary space. */
static void conn_open(struct h *h, struct conn2 *c)
{
	uint8_t f[PKT_MAX];
	size_t n;

	n = pkt_flow_seg(f, &c->p, F_SYN | F_ACK, NULL, 0);
	feed(h, COMPARE_PRIMARY, f, n);
	n = pkt_flow_seg(f, &c->s, F_SYN | F_ACK, NULL, 0);
	feed(h, COMPARE_SECONDARY, f, n);
	c->s.seq = c->p.seq;
}

static void send_seg(struct h *h, int side, struct conn2 *c, uint8_t flags, const uint8_t *d,
		     size_t len)
{
	uint8_t f[PKT_MAX];
	size_t n = pkt_flow_seg(f, side == COMPARE_PRIMARY ? &c->p : &c->s, flags, d, len);

	feed(h, side, f, n);
}

static void fill(uint8_t *d, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		d[i] = (uint8_t)(seed + i * 7);
}

static void stats(struct h *h, struct compare_stats *st)
{
	compare_stats_get(h->c, st);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_identical_streams(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_conn_stats cs;
	struct compare_flow fl;
	struct compare_stats st;
	uint8_t d[1000], f[PKT_MAX];
	struct conn2 c;
	int i;

	fill(d, sizeof(d), 1);
	conn_init(&c, 1, false);
	conn_open(h, &c);
	assert_int_equal(h->released, 1); /* SYN-ACK matched */
	for (i = 0; i < 10; i++) {
		send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_PSH, d + i * 100, 100);
		assert_int_equal(h->released, 1 + i);
		send_seg(h, COMPARE_SECONDARY, &c, F_ACK | F_PSH, d + i * 100, 100);
		assert_int_equal(h->released, 2 + i);
	}
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_FIN, NULL, 0);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK | F_FIN, NULL, 0);
	assert_int_equal(h->released, 12);
	assert_int_equal(h->ckpts, 0);
	/* released in order and unchanged */
	assert_int_equal(pkt_tcp_seq(h->rel[1]), ISN_P + 1);
	assert_int_equal(pkt_tcp_seq(h->rel[10]), ISN_P + 1 + 900);
	pkt_flow_seg(f, &(struct pkt_flow){c.p.src, c.p.dst, 0, 0}, 0, NULL, 0);
	assert_int_equal(compare_flow_parse(f, 54, &fl), 0);
	assert_int_equal(compare_conn_lookup(h->c, &fl, &cs), 0);
	assert_int_equal(cs.frames_primary, 12);
	assert_int_equal(cs.bytes_compared, 1000);
	assert_int_equal(cs.verdict, COMPARE_VERDICT_MATCH);
	assert_true(cs.closed);
	stats(h, &st);
	assert_int_equal(st.compared, 12);
	assert_int_equal(st.miscompares, 0);
	assert_int_equal(st.held, 0);
	/* closed connections go away after the linger time */
	h->now += 3000 * MS;
	compare_poll(h->c, h->now);
	assert_int_equal(compare_conn_lookup(h->c, &fl, &cs), -ENOENT);
	h_free(h);
}

static void test_segmentation(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[1000];
	struct conn2 c;
	int i;

	fill(d, sizeof(d), 2);
	conn_init(&c, 2, false);
	conn_open(h, &c);
	for (i = 0; i < 10; i++)
		send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d + i * 100, 100);
	assert_int_equal(h->released, 1);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 333);
	assert_int_equal(h->released, 1 + 3);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 333, 333);
	assert_int_equal(h->released, 1 + 6);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 666, 334);
	assert_int_equal(h->released, 11);
	/* and the other way round: one big primary segment, small secondary ones */
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 1000);
	for (i = 0; i < 9; i++) {
		send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + i * 111, 111);
		assert_int_equal(h->released, 11);
	}
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 999, 1);
	assert_int_equal(h->released, 12);
	assert_int_equal(h->ckpts, 0);
	h_free(h);
}

static void test_differing_byte(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_stats st;
	uint8_t d[300], e[300];
	struct conn2 c;

	fill(d, sizeof(d), 3);
	memcpy(e, d, sizeof(e));
	e[250] ^= 0x20;
	conn_init(&c, 3, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 200);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d + 200, 100);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, e, 300);
	assert_int_equal(h->released, 2); /* SYN-ACK + first 200 bytes */
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_MISCOMPARE);
	stats(h, &st);
	assert_int_equal(st.miscompares, 1);
	assert_int_equal(st.checkpoints[COMPARE_REASON_MISCOMPARE], 1);
	assert_int_equal(st.held, 1);
	/* the divergent frame is released only by the acknowledged checkpoint */
	assert_int_equal(compare_checkpoint_begin(h->c, h->now), 0);
	assert_int_equal(h->released, 2);
	assert_int_equal(compare_checkpoint_acked(h->c, h->now), 0);
	assert_int_equal(h->released, 3);
	h_free(h);
}

static void test_reordered(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[300], f[3][PKT_MAX];
	size_t n[3];
	struct conn2 c;
	int i;

	fill(d, sizeof(d), 4);
	conn_init(&c, 4, false);
	conn_open(h, &c);
	for (i = 0; i < 3; i++)
		n[i] = pkt_flow_seg(f[i], &c.p, F_ACK, d + i * 100, 100);
	feed(h, COMPARE_PRIMARY, f[1], n[1]);
	feed(h, COMPARE_PRIMARY, f[2], n[2]);
	feed(h, COMPARE_PRIMARY, f[0], n[0]);
	/* secondary reordered differently */
	for (i = 0; i < 3; i++)
		n[i] = pkt_flow_seg(f[i], &c.s, F_ACK, d + i * 100, 100);
	feed(h, COMPARE_SECONDARY, f[2], n[2]);
	assert_int_equal(h->released, 1);
	feed(h, COMPARE_SECONDARY, f[0], n[0]);
	assert_int_equal(h->released, 1); /* head (seg 2) still waits */
	feed(h, COMPARE_SECONDARY, f[1], n[1]);
	assert_int_equal(h->released, 4);
	/* released in the primary's order */
	assert_int_equal(pkt_tcp_seq(h->rel[1]), ISN_P + 101);
	assert_int_equal(pkt_tcp_seq(h->rel[3]), ISN_P + 1);
	assert_int_equal(h->ckpts, 0);
	h_free(h);
}

static void test_retransmissions(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_stats st;
	uint8_t d[200], f[PKT_MAX];
	struct conn2 c;
	struct pkt_flow old;
	size_t n;

	fill(d, sizeof(d), 5);
	conn_init(&c, 5, false);
	conn_open(h, &c);
	old = c.p;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 2);
	/* primary retransmits verified bytes: out at once */
	n = pkt_flow_seg(f, &old, F_ACK, d, 100);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(h->released, 3);
	/* secondary retransmits: ignored */
	old.seq = c.s.seq - 100;
	n = pkt_flow_seg(f, &old, F_ACK, d, 100);
	feed(h, COMPARE_SECONDARY, f, n);
	/* retransmission of an unverified segment: both copies held, both released */
	old = c.p;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d + 100, 100);
	n = pkt_flow_seg(f, &old, F_ACK, d + 100, 100);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(h->released, 3);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 100, 50);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 150, 50);
	assert_int_equal(h->released, 5);
	assert_int_equal(h->ckpts, 0);
	/* a retransmission with different bytes for the same range: miscompare */
	old.seq = c.p.seq;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	d[3] ^= 1;
	n = pkt_flow_seg(f, &old, F_ACK, d, 100);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_MISCOMPARE);
	stats(h, &st);
	assert_int_equal(st.released_unverified, 1);
	h_free(h);
}

static void test_window_only(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[100], f[PKT_MAX];
	struct conn2 c;
	struct pkt_tcp t;
	size_t n;

	fill(d, sizeof(d), 6);
	conn_init(&c, 6, false);
	conn_open(h, &c);
	/* pure ACKs / window updates from either side: never compared */
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 2);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, NULL, 0);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, NULL, 0);
	/* data with different window and ack fields: same payload is a match */
	t = (struct pkt_tcp){.src = c.p.src, .dst = c.p.dst, .seq = c.p.seq, .ack = 5000,
			     .flags = F_ACK, .win = 1000, .data = d, .len = 100};
	n = pkt_tcp(f, &t);
	feed(h, COMPARE_PRIMARY, f, n);
	t.ack = 5100;
	t.win = 29200;
	n = pkt_tcp(f, &t);
	feed(h, COMPARE_SECONDARY, f, n);
	assert_int_equal(h->released, 3);
	assert_int_equal(h->ckpts, 0);
	h_free(h);
}

/*
 * The ACK gate: the primary guest's acknowledgement of client bytes leaves only once
 * the secondary's guest has acknowledged as far (it has those bytes) or a checkpoint
 * gave it the primary's state. Without it, a client request acknowledged by the primary
 * whose mirrored copy never reached the secondary is lost at a failover: the client
 * does not send it again, and waits for an answer forever.
 */
static void test_ack_gate(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[100];
	struct conn2 c;

	fill(d, sizeof(d), 9);
	conn_init(&c, 9, false);
	conn_open(h, &c); /* both SYN-ACKs acknowledge the client's SYN: ack 5000 */
	assert_int_equal(h->released, 1);
	/* the primary's guest acknowledges 100 client bytes the secondary has not */
	c.p.ack = 5100;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 1);
	/* an ACK of less from the secondary does not open it; one as far does */
	c.s.ack = 5050;
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 1);
	c.s.ack = 5100;
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 2);
	/* matching data whose ACK field runs ahead of the secondary's: held, in order
	 * with the ACK-only segment after it, until the secondary acknowledges as far */
	c.p.ack = 5200;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_PSH, d, sizeof(d));
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, NULL, 0);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK | F_PSH, d, sizeof(d)); /* its ack: 5100 */
	assert_int_equal(h->released, 2);
	c.s.ack = 5200;
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 4);
	/* a checkpoint gives the secondary the primary's state: what waited leaves with
	 * it, and the primary's ACK of as far leaves at once afterwards */
	c.p.ack = 5300;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 4);
	assert_int_equal(compare_checkpoint_begin(h->c, h->now), 0);
	assert_int_equal(compare_checkpoint_acked(h->c, h->now), 0);
	assert_int_equal(h->released, 5);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, NULL, 0);
	assert_int_equal(h->released, 6);
	assert_int_equal(h->ckpts, 0);
	h_free(h);
}

static void test_fin_rst_races(void **state)
{
	uint8_t d[100];
	struct conn2 c;
	struct h *h;

	fill(d, sizeof(d), 7);
	/* FIN piggybacked on data vs. data then a bare FIN: same close point */
	h = h_new(NULL);
	conn_init(&c, 7, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_FIN, d, 100);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 1);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK | F_FIN, NULL, 0);
	assert_int_equal(h->released, 2);
	assert_int_equal(h->ckpts, 0);
	h_free(h);

	/* RST vs RST at different sequence numbers: match */
	h = h_new(NULL);
	conn_init(&c, 8, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_SECONDARY, &c, F_RST, NULL, 0);
	c.p.seq += 10;
	send_seg(h, COMPARE_PRIMARY, &c, F_RST | F_ACK, NULL, 0);
	assert_int_equal(h->released, 2);
	assert_int_equal(h->ckpts, 0);
	h_free(h);

	/* primary closes with FIN, secondary resets: held until the timeout */
	h = h_new(NULL);
	conn_init(&c, 9, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_FIN, NULL, 0);
	send_seg(h, COMPARE_SECONDARY, &c, F_RST, NULL, 0);
	assert_int_equal(h->released, 1);
	compare_poll(h->c, h->now + 11 * MS);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_TIMEOUT);
	h_free(h);

	/* secondary keeps sending after the primary's FIN: miscompare */
	h = h_new(NULL);
	conn_init(&c, 10, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_FIN, d, 50);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 100);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_MISCOMPARE);
	h_free(h);

	/* FINs at different places */
	h = h_new(NULL);
	conn_init(&c, 11, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK | F_FIN, d, 40);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK | F_FIN, d, 50);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_MISCOMPARE);
	assert_int_equal(h->released, 1);
	h_free(h);
}

static void test_ipv6(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[100], f[PKT_MAX];
	struct pkt_tcp t;
	struct conn2 c;
	size_t n;

	fill(d, sizeof(d), 8);
	conn_init(&c, 12, true);
	conn_open(h, &c);
	assert_int_equal(h->released, 1);
	/* a hop-by-hop header on the primary's copy only */
	t = (struct pkt_tcp){.src = c.p.src, .dst = c.p.dst, .seq = c.p.seq, .ack = 5000,
			     .flags = F_ACK, .data = d, .len = 100, .v6_hbh = true};
	n = pkt_tcp(f, &t);
	assert_true(pkt_csum_ok(f, n));
	feed(h, COMPARE_PRIMARY, f, n);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 2);
	/* ICMPv6 echo replies: equal, then different */
	n = pkt_icmp_echo(f, c.p.src, c.p.dst, true, 7, 1, d, 56);
	feed(h, COMPARE_PRIMARY, f, n);
	feed(h, COMPARE_SECONDARY, f, n);
	assert_int_equal(h->released, 3);
	n = pkt_icmp_echo(f, c.p.src, c.p.dst, true, 7, 2, d, 56);
	feed(h, COMPARE_PRIMARY, f, n);
	n = pkt_icmp_echo(f, c.p.src, c.p.dst, true, 7, 3, d, 56);
	feed(h, COMPARE_SECONDARY, f, n);
	assert_int_equal(h->released, 3);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_MISCOMPARE);
	h_free(h);
}

static void test_udp_icmp_arp(void **state)
{
	struct h *h = h_new(NULL);
	static const uint8_t a[4] = {10, 0, 0, 2}, b[4] = {10, 0, 0, 1}, x[4] = {10, 0, 0, 9};
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 53), cl = pkt_ep4(10, 0, 0, 1, 3333);
	uint8_t d[64], f[PKT_MAX], f2[PKT_MAX];
	size_t n, n2;

	fill(d, sizeof(d), 9);
	/* UDP: secondary first, then primary */
	n = pkt_udp(f, g, cl, d, 40);
	feed(h, COMPARE_SECONDARY, f, n);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(h->released, 1);
	/* two datagrams in a row, in order */
	n2 = pkt_udp(f2, g, cl, d + 1, 40);
	feed(h, COMPARE_PRIMARY, f, n);
	feed(h, COMPARE_PRIMARY, f2, n2);
	feed(h, COMPARE_SECONDARY, f, n);
	feed(h, COMPARE_SECONDARY, f2, n2);
	assert_int_equal(h->released, 3);
	/* ICMP echo reply */
	n = pkt_icmp_echo(f, g, cl, true, 1, 1, d, 56);
	feed(h, COMPARE_PRIMARY, f, n);
	feed(h, COMPARE_SECONDARY, f, n);
	assert_int_equal(h->released, 4);
	/* ARP reply: compared as a whole, not dropped */
	n = pkt_arp(f, 2, a, b);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(h->released, 4);
	feed(h, COMPARE_SECONDARY, f, n);
	assert_int_equal(h->released, 5);
	assert_int_equal(h->ckpts, 0);
	/* different ARP target on the same flow key would be a different flow; a different
	 * opcode on the same flow is a miscompare */
	n = pkt_arp(f, 1, a, x);
	n2 = pkt_arp(f2, 2, a, x);
	feed(h, COMPARE_PRIMARY, f, n);
	feed(h, COMPARE_SECONDARY, f2, n2);
	assert_int_equal(h->ckpts, 1);
	h_free(h);
}

static void test_passthrough(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_stats st;
	uint8_t d[100];
	struct conn2 c;

	fill(d, sizeof(d), 10);
	assert_int_equal(compare_passthrough_add(h->c, 6, 80), 0);
	conn_init(&c, 13, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 2); /* no secondary needed */
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 1, 99);
	assert_int_equal(h->ckpts, 0);
	stats(h, &st);
	assert_int_equal(st.released_passthrough, 2);
	/* removed at runtime: compared again */
	assert_int_equal(compare_passthrough_del(h->c, 6, 80), 0);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 2);
	/* whole protocol (UDP) */
	assert_int_equal(compare_passthrough_add(h->c, 17, 0), 0);
	assert_int_equal(compare_passthrough_add(h->c, 1, 7), -EINVAL);
	h_free(h);
}

static void test_timeout(void **state)
{
	struct compare_config cfg = {.timeout_ns = 3 * MS};
	struct h *h = h_new(NULL);
	struct compare_conn_stats cs;
	struct compare_flow fl;
	uint8_t d[100], f[PKT_MAX];
	struct conn2 c;
	size_t n;

	fill(d, sizeof(d), 11);
	conn_init(&c, 14, false);
	conn_open(h, &c);
	n = pkt_flow_seg(f, &c.p, F_ACK, d, 100);
	feed(h, COMPARE_PRIMARY, f, n);
	assert_int_equal(compare_next_deadline(h->c), h->now + 10 * MS);
	compare_poll(h->c, h->now + 10 * MS - 1);
	assert_int_equal(h->ckpts, 0);
	compare_poll(h->c, h->now + 10 * MS);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_TIMEOUT);
	assert_int_equal(compare_flow_parse(f, n, &fl), 0);
	assert_int_equal(compare_conn_lookup(h->c, &fl, &cs), 0);
	assert_int_equal(cs.timeouts, 1);
	assert_int_equal(cs.verdict, COMPARE_VERDICT_TIMEOUT);
	assert_int_equal(cs.held, 1);
	h_free(h);

	/* configurable */
	h = h_new(&cfg);
	conn_init(&c, 14, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	compare_poll(h->c, h->now + 3 * MS);
	assert_int_equal(h->ckpts, 1);
	h_free(h);

	/* A poller's clock read before another thread stamped and queued a
	 * frame: the frame is younger than "now", not 584 years old. */
	h = h_new(NULL);
	conn_init(&c, 14, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	compare_poll(h->c, h->now - 1);
	assert_int_equal(h->ckpts, 0);
	compare_poll(h->c, h->now + 10 * MS);
	assert_int_equal(h->ckpts, 1);
	h_free(h);
}

static void test_checkpoint_release_rule(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_stats st;
	uint8_t d[400];
	struct conn2 c;

	fill(d, sizeof(d), 12);
	conn_init(&c, 15, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	assert_int_equal(compare_checkpoint_begin(h->c, h->now), 0);
	assert_int_equal(compare_checkpoint_begin(h->c, h->now), -EBUSY);
	/* primary frames during the checkpoint: covered too */
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d + 100, 100);
	/* the old secondary's frames: discarded, even if equal */
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 1);
	compare_poll(h->c, h->now + 50 * MS); /* no timeout while checkpointing */
	assert_int_equal(h->ckpts, 0);
	assert_int_equal(compare_checkpoint_acked(h->c, h->now), 0);
	assert_int_equal(h->released, 3);
	assert_int_equal(compare_checkpoint_acked(h->c, h->now), -EINVAL);
	/* after the checkpoint both continue from the primary's next byte */
	c.s.seq = c.p.seq;
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d + 200, 100);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d + 200, 100);
	assert_int_equal(h->released, 4);
	assert_int_equal(h->ckpts, 0);
	stats(h, &st);
	assert_int_equal(st.released_checkpoint, 2);
	assert_int_equal(st.checkpoints_done, 1);
	assert_int_equal(st.secondary_dropped, 1);
	h_free(h);
}

static void test_many_connections(void **state)
{
	struct compare_config cfg = {.max_conns = 131072, .timeout_ns = 100000 * MS};
	struct h *h = h_new(&cfg);
	struct compare_stats st;
	uint8_t d[64];
	struct conn2 c;
	uint32_t i, N = 100000;

	fill(d, sizeof(d), 13);
	/* all connections open and with data in flight at the same time */
	for (i = 0; i < N; i++) {
		conn_init(&c, i, false);
		conn_open(h, &c);
		send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 64);
	}
	stats(h, &st);
	assert_int_equal(st.conns, N);
	assert_int_equal(st.held, N);
	for (i = 0; i < N; i++) {
		conn_init(&c, i, false);
		c.s.seq = ISN_P + 1;
		send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 64);
	}
	stats(h, &st);
	assert_int_equal(st.held, 0);
	assert_int_equal(h->released, 2 * N);
	assert_int_equal(h->ckpts, 0);
	h_free(h);
}

static void test_table_full(void **state)
{
	struct compare_config cfg = {.max_conns = 8};
	struct h *h = h_new(&cfg);
	struct compare_stats st;
	uint8_t d[64];
	struct conn2 c;
	uint32_t i;

	fill(d, sizeof(d), 14);
	for (i = 0; i < 8; i++) {
		conn_init(&c, i, false);
		conn_open(h, &c);
	}
	assert_int_equal(h->ckpts, 0);
	conn_init(&c, 8, false);
	conn_open(h, &c);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_TABLE_FULL);
	assert_int_equal(h->released, 8);
	stats(h, &st);
	assert_int_equal(st.held, 1); /* not dropped: waits for the checkpoint */
	compare_checkpoint_begin(h->c, h->now);
	compare_checkpoint_acked(h->c, h->now);
	assert_int_equal(h->released, 9);
	stats(h, &st);
	assert_int_equal(st.conns, 0);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 64);
	send_seg(h, COMPARE_SECONDARY, &c, F_ACK, d, 64);
	assert_int_equal(h->released, 10);
	assert_int_equal(h->ckpts, 1);
	h_free(h);
}

struct producer {
	struct compare *c;
	int side, n;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 53), cl = pkt_ep4(10, 0, 0, 1, 3333);
	uint8_t f[PKT_MAX], d[32];
	int i;

	for (i = 0; i < p->n; i++) {
		size_t n;

		memset(d, i, sizeof(d));
		n = pkt_udp(f, g, cl, d, sizeof(d));
		while (compare_enqueue(p->c, p->side, f, n, 1) == -ENOBUFS)
			;
	}
	return NULL;
}

static void test_queues(void **state)
{
	struct compare_config cfg = {.max_queue = 4};
	struct producer pp[2];
	pthread_t t[2];
	struct h *h = h_new(NULL);
	uint8_t f[PKT_MAX], d[8] = {0};
	int i, done = 0;

	for (i = 0; i < 2; i++) {
		pp[i] = (struct producer){h->c, i, 1000};
		assert_int_equal(pthread_create(&t[i], NULL, produce, &pp[i]), 0);
	}
	while (done < 2000)
		done += compare_poll(h->c, 2);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(h->ckpts, 0);
	assert_int_equal(h->released, 1000);
	h_free(h);

	/* queue limit: -ENOBUFS and a checkpoint request, nothing lost silently */
	h = h_new(&cfg);
	for (i = 0; i < 4; i++)
		assert_int_equal(compare_enqueue(h->c, COMPARE_PRIMARY, f,
						 pkt_udp(f, pkt_ep4(1, 2, 3, 4, 5),
							 pkt_ep4(1, 2, 3, 5, 6), d, 8),
						 1),
				 0);
	assert_int_equal(compare_enqueue(h->c, COMPARE_PRIMARY, f, 60, 1), -ENOBUFS);
	assert_int_equal(compare_poll(h->c, 2), 4);
	assert_int_equal(h->ckpts, 1);
	assert_int_equal(h->reason, COMPARE_REASON_QUEUE_FULL);
	h_free(h);
}

static void test_malformed(void **state)
{
	struct h *h = h_new(NULL);
	struct compare_stats st;
	uint8_t f[PKT_MAX];
	struct conn2 c;
	size_t n;

	conn_init(&c, 16, false);
	n = pkt_flow_seg(f, &c.p, F_ACK, (const uint8_t *)"hello", 5);
	/* truncated IP: still compared as raw bytes, never released unverified */
	feed(h, COMPARE_PRIMARY, f, 30);
	feed(h, COMPARE_PRIMARY, f, 5);
	assert_int_equal(h->released, 0);
	feed(h, COMPARE_SECONDARY, f, 30);
	feed(h, COMPARE_SECONDARY, f, 5);
	assert_int_equal(h->released, 2);
	stats(h, &st);
	assert_int_equal(st.malformed, 4);
	assert_int_equal(compare_feed(h->c, COMPARE_PRIMARY, f, 0, h->now), -EINVAL);
	(void)n;
	h_free(h);
}

static void test_disable(void **state)
{
	struct h *h = h_new(NULL);
	uint8_t d[100];
	struct conn2 c;

	fill(d, sizeof(d), 15);
	conn_init(&c, 17, false);
	conn_open(h, &c);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	compare_disable(h->c);
	assert_int_equal(h->released, 2);
	send_seg(h, COMPARE_PRIMARY, &c, F_ACK, d, 100);
	assert_int_equal(h->released, 3);
	h_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical_streams),
		cmocka_unit_test(test_segmentation),
		cmocka_unit_test(test_differing_byte),
		cmocka_unit_test(test_reordered),
		cmocka_unit_test(test_retransmissions),
		cmocka_unit_test(test_window_only),
		cmocka_unit_test(test_ack_gate),
		cmocka_unit_test(test_fin_rst_races),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_udp_icmp_arp),
		cmocka_unit_test(test_passthrough),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_checkpoint_release_rule),
		cmocka_unit_test(test_many_connections),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_queues),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_disable),
	};

	return cmocka_run_group_tests_name("netcompare.compare", tests, NULL, NULL);
}
