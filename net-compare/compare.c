// SPDX-License-Identifier: GPL-2.0-only
/*
 * The comparator (primary side).
 *
 * Frames come in per side, either synchronously (compare_feed) or through a wait-free
 * queue per side (compare_enqueue from any thread, drained by compare_poll). Each frame
 * is parsed once, its flow hashed with XXH3 and looked up in a cds_lfht connection
 * table (RCU read side; removed connections are freed with call_rcu so that stats
 * readers on other threads stay safe). Only the compare thread writes the table.
 *
 * TCP: both guests' outbound bytes are reassembled per connection into a ring each,
 * indexed by sequence number (the secondary's are already rewritten into the primary's
 * sequence space). `base` is the first byte not yet compared; whenever both sides have
 * contiguous bytes beyond base they are compared and base advances. A held primary
 * segment is released (in per-connection arrival order) when all its bytes are below
 * base, and its SYN/FIN/RST has a counterpart from the secondary. So segmentation,
 * reordering and retransmissions do not matter; ACK-only segments (window updates) are
 * not compared at all. UDP/ICMP/other: FIFO per flow, payloads compared pairwise.
 *
 * The ACK gate: a primary segment that acknowledges the client's bytes tells the
 * client they are delivered, and the client never sends them again. So none leaves
 * before the secondary's guest has acknowledged as far (its own segments' ACK field,
 * the highest seen: it has those bytes), or a checkpoint has given the secondary the
 * primary's state: otherwise a primary that dies right after its guest acknowledged a
 * request whose mirrored copy had not reached the secondary yet leaves a client
 * waiting for an answer to a request the surviving guest never saw. ACK-only segments
 * wait for this gate alone (they are released as soon as the secondary has caught up).
 *
 * Frame buffers come from a pool (lock-free stack), so the common path allocates
 * nothing per frame; rings grow by doubling and are kept with the connection.
 */
#define _LGPL_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>
#include <urcu/wfcqueue.h>
#include <urcu/lfstack.h>
#include <urcu/list.h>

#include "common/common.h"
#include "net-compare/nc_internal.h"

#define POOL_CAP     2048 /* frame bytes per pooled buffer */
#define MAX_HOLES    16   /* out-of-order intervals per side */
#define RING_MIN     512
#define MAX_PENDING  1024 /* secondary frames waiting for a flow's primary peer */

struct nc_buf {
	struct cds_wfcq_node qnode;
	struct cds_lfs_node snode;
	struct cds_list_head glist; /* global held list / covered list */
	struct cds_list_head clist; /* connection's held or pending list */
	struct conn *conn;
	uint64_t ts;
	uint32_t len, cap;
	uint32_t seq, end; /* TCP data range */
	uint32_t ack;      /* TCP: the ACK field, when has_ack */
	uint8_t side, tflags;
	bool has_ack, ack_only;
	uint8_t data[];
};

struct stream {
	uint8_t *ring;
	uint32_t cap; /* power of two */
	uint32_t n;   /* intervals */
	struct {
		uint32_t s, e;
	} iv[MAX_HOLES];
	uint32_t fin_seq;
	bool fin, rst;
	uint8_t syn; /* TH_SYN or TH_SYN|TH_ACK of the first SYN seen, 0: none */
};

struct conn {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	struct compare_flow key;
	uint8_t kind;
	bool base_valid, nxt_valid, diverged, closed;
	bool s_ack_valid, p_ack_valid;
	uint32_t base, p_nxt;
	/* the highest ACK field seen from each guest (the ACK gate, top of file) */
	uint32_t s_ack, p_ack;
	struct stream st[2];
	struct cds_list_head held;    /* primary frames, arrival order */
	struct cds_list_head pending; /* secondary frames (DGRAM FIFO; TCP before base) */
	uint32_t nheld, npending;
	struct cds_list_head closed_link;
	uint64_t closed_at, last_ns;
	struct compare_conn_stats s;
};

struct queue {
	struct cds_wfcq_head head;
	struct cds_wfcq_tail tail;
	unsigned long count;
};

struct compare {
	struct compare_config cfg;
	struct compare_ops ops;
	void *opaque;
	struct cds_lfht *ht;
	struct queue q[2];
	struct nc_pool *pool;
	struct cds_list_head held;    /* all held primary frames, arrival order */
	struct cds_list_head covered; /* frames covered by the running checkpoint */
	struct cds_list_head closed;  /* closed connections, close order */
	uint32_t nconns;
	uint64_t deferred; /* call_rcu frees issued */
	bool ckpt_requested, in_ckpt, table_was_full, disabled;
	int queue_full; /* set by producers */
	uint64_t pt_any[4];
	uint64_t pt_port[2][1024]; /* [0] TCP, [1] UDP */
	struct compare_stats st;
};

const char *compare_reason_name(enum compare_reason r)
{
	static const char *const names[] = {"miscompare", "timeout", "table_full", "limit",
					    "queue_full"};

	return (unsigned)r < ARRAY_SIZE(names) ? names[r] : "unknown";
}

/* ---- buffers -------------------------------------------------------------------- */

static struct nc_buf *buf_get(struct compare *c, const uint8_t *frame, size_t len)
{
	struct cds_lfs_node *n;
	struct nc_buf *b;

	if (len > UINT32_MAX - sizeof(*b))
		return NULL;
	if (len <= POOL_CAP && (n = nc_pool_pop(c->pool))) {
		b = caa_container_of(n, struct nc_buf, snode);
	} else {
		size_t cap = len <= POOL_CAP ? POOL_CAP : len;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = (uint32_t)cap;
	}
	b->len = (uint32_t)len;
	b->conn = NULL;
	b->has_ack = b->ack_only = false;
	memcpy(b->data, frame, len);
	return b;
}

static void buf_put(struct compare *c, struct nc_buf *b)
{
	if (b->cap == POOL_CAP) {
		nc_pool_push(c->pool, &b->snode);
	} else {
		free(b);
	}
}

/* ---- verdicts ------------------------------------------------------------------- */

static void request_checkpoint(struct compare *c, enum compare_reason reason)
{
	if (c->ckpt_requested || c->in_ckpt || c->disabled)
		return;
	c->ckpt_requested = true;
	CNT_INC(c->st.checkpoints[reason]);
	log_debug("net-compare: checkpoint requested (%s)", compare_reason_name(reason));
	if (c->ops.checkpoint)
		c->ops.checkpoint(c->opaque, reason);
}

static void emit(struct compare *c, const uint8_t *frame, size_t len)
{
	CNT_INC(c->st.released);
	if (c->ops.release)
		c->ops.release(c->opaque, frame, len);
}

/* Release a held buffer: unlink from both lists, emit, recycle. */
static void release_held(struct compare *c, struct nc_buf *b)
{
	struct conn *cn = b->conn;

	cds_list_del(&b->glist);
	if (cn) {
		cds_list_del(&b->clist);
		cn->nheld--;
		CNT_INC(cn->s.released);
		__atomic_store_n(&cn->s.held, cn->nheld, __ATOMIC_RELAXED);
	}
	CNT_ADD(c->st.held, (uint64_t)-1);
	emit(c, b->data, b->len);
	buf_put(c, b);
}

static void hold(struct compare *c, struct conn *cn, struct nc_buf *b)
{
	b->conn = cn;
	cds_list_add_tail(&b->glist, c->in_ckpt ? &c->covered : &c->held);
	if (cn && !c->in_ckpt) {
		cds_list_add_tail(&b->clist, &cn->held);
		cn->nheld++;
		__atomic_store_n(&cn->s.held, cn->nheld, __ATOMIC_RELAXED);
	} else {
		b->conn = NULL;
	}
	CNT_INC(c->st.held);
}

static void diverge(struct compare *c, struct conn *cn, enum compare_reason reason)
{
	if (!cn->diverged) {
		cn->diverged = true;
		if (reason == COMPARE_REASON_MISCOMPARE) {
			CNT_INC(cn->s.miscompares);
			CNT_INC(c->st.miscompares);
			__atomic_store_n(&cn->s.verdict, COMPARE_VERDICT_MISCOMPARE,
					 __ATOMIC_RELAXED);
		}
	}
	request_checkpoint(c, reason);
}

/* ---- TCP byte streams ------------------------------------------------------------ */

static void ring_put(struct stream *s, uint32_t seq, const uint8_t *src, uint32_t n)
{
	uint32_t off = seq & (s->cap - 1), first = MIN(n, s->cap - off);

	memcpy(s->ring + off, src, first);
	memcpy(s->ring, src + first, n - first);
}

/* memcmp of n bytes at seq in the ring against src. */
static bool ring_eq(const struct stream *s, uint32_t seq, const uint8_t *src, uint32_t n)
{
	uint32_t off = seq & (s->cap - 1), first = MIN(n, s->cap - off);

	return !memcmp(s->ring + off, src, first) && !memcmp(s->ring, src + first, n - first);
}

static int ring_reserve(struct stream *s, uint32_t base, uint32_t need, uint32_t max)
{
	uint32_t cap, off;
	uint8_t *r;

	if (need <= s->cap)
		return 0;
	if (need > max)
		return -E2BIG;
	cap = s->cap ? s->cap : RING_MIN;
	while (cap < need)
		cap *= 2;
	r = malloc(cap);
	if (!r)
		return -ENOMEM;
	if (s->cap) {
		struct stream tmp = {.ring = r, .cap = cap};

		off = base & (s->cap - 1);
		ring_put(&tmp, base, s->ring + off, s->cap - off);
		ring_put(&tmp, base + (s->cap - off), s->ring, off);
		free(s->ring);
	}
	s->ring = r;
	s->cap = cap;
	return 0;
}

static uint32_t contig(const struct stream *s, uint32_t base)
{
	return s->n && seq_le(s->iv[0].s, base) ? s->iv[0].e : base;
}

static uint32_t stream_end(const struct stream *s, uint32_t base)
{
	return s->n ? s->iv[s->n - 1].e : base;
}

/*
 * Add bytes [seq, seq + n) (already clipped to >= base). -EILSEQ if they differ from
 * bytes this side already sent for the same range, -E2BIG on a limit.
 */
static int stream_add(struct stream *s, uint32_t base, uint32_t seq, const uint8_t *d,
		      uint32_t n, uint32_t max)
{
	uint32_t e = seq + n, i, j, ns, ne;
	int r;

	r = ring_reserve(s, base, e - base, max);
	if (r < 0)
		return r;
	for (i = 0; i < s->n; i++) {
		uint32_t a = s->iv[i].s, b = s->iv[i].e, lo, hi;

		lo = seq_lt(a, seq) ? seq : a;
		hi = seq_lt(b, e) ? b : e;
		if (seq_lt(lo, hi) && !ring_eq(s, lo, d + (lo - seq), hi - lo))
			return -EILSEQ;
	}
	ring_put(s, seq, d, n);
	/* merge into the sorted interval list */
	ns = seq;
	ne = e;
	for (i = 0; i < s->n && seq_lt(s->iv[i].e, ns); i++)
		;
	for (j = i; j < s->n && seq_le(s->iv[j].s, ne); j++) {
		if (seq_lt(s->iv[j].s, ns))
			ns = s->iv[j].s;
		if (seq_lt(ne, s->iv[j].e))
			ne = s->iv[j].e;
	}
	/* intervals [i, j) merge into one */
	if (j == i) {
		if (s->n == MAX_HOLES)
			return -E2BIG;
		memmove(&s->iv[i + 1], &s->iv[i], (s->n - i) * sizeof(s->iv[0]));
		s->n++;
	} else if (j - i > 1) {
		memmove(&s->iv[i + 1], &s->iv[j], (s->n - j) * sizeof(s->iv[0]));
		s->n -= j - i - 1;
	}
	s->iv[i].s = ns;
	s->iv[i].e = ne;
	return 0;
}

static void stream_trim(struct stream *s, uint32_t base)
{
	if (!s->n || seq_lt(base, s->iv[0].s))
		return;
	if (seq_le(s->iv[0].e, base)) {
		memmove(&s->iv[0], &s->iv[1], (s->n - 1) * sizeof(s->iv[0]));
		s->n--;
	} else {
		s->iv[0].s = base;
	}
}

/* Number of equal bytes from seq (n if all n are equal). */
static uint32_t streams_eq(const struct stream *a, const struct stream *b, uint32_t seq,
			   uint32_t n)
{
	uint32_t done = 0;

	while (done < n) {
		uint32_t oa = seq & (a->cap - 1), ob = seq & (b->cap - 1);
		uint32_t k = MIN(n - done, MIN(a->cap - oa, b->cap - ob)), i;

		if (memcmp(a->ring + oa, b->ring + ob, k)) {
			for (i = 0; a->ring[oa + i] == b->ring[ob + i]; i++)
				;
			return done + i;
		}
		seq += k;
		done += k;
	}
	return n;
}

static void mark_closed(struct compare *c, struct conn *cn, uint64_t now)
{
	if (cn->closed)
		return;
	cn->closed = true;
	cn->closed_at = now;
	__atomic_store_n(&cn->s.closed, true, __ATOMIC_RELAXED);
	cds_list_add_tail(&cn->closed_link, &c->closed);
}

/* The ACK gate: the secondary has every client byte b acknowledges. */
static bool ack_covered(const struct conn *cn, const struct nc_buf *b)
{
	return !b->has_ack || (cn->s_ack_valid && seq_le(b->ack, cn->s_ack));
}

static void note_ack(bool *valid, uint32_t *ack, const struct nc_parsed *pp)
{
	if ((pp->tflags & TH_ACK) && (!*valid || seq_lt(*ack, pp->ack))) {
		*ack = pp->ack;
		*valid = true;
	}
}

static bool held_ready(const struct conn *cn, const struct nc_buf *b)
{
	const struct stream *s = &cn->st[COMPARE_SECONDARY];

	if (!ack_covered(cn, b))
		return false;
	if (b->ack_only)
		return true;
	if (b->tflags & TH_SYN)
		return s->syn == (b->tflags & (TH_SYN | TH_ACK));
	if (b->tflags & TH_RST)
		return s->rst;
	if (!cn->base_valid || !seq_le(b->end, cn->base))
		return false;
	if (b->tflags & TH_FIN)
		return s->fin && s->fin_seq == b->end;
	return true;
}

static void release_ready(struct compare *c, struct conn *cn)
{
	struct nc_buf *b, *tmp;

	cds_list_for_each_entry_safe(b, tmp, &cn->held, clist) {
		if (!held_ready(cn, b))
			break;
		if (b->ack_only)
			CNT_INC(c->st.released_unverified);
		else
			CNT_INC(c->st.compared);
		release_held(c, b);
	}
}

static void tcp_advance(struct compare *c, struct conn *cn, uint64_t now)
{
	struct stream *p = &cn->st[COMPARE_PRIMARY], *s = &cn->st[COMPARE_SECONDARY];

	if (cn->diverged || !cn->base_valid)
		return;
	if (p->syn && s->syn && p->syn != s->syn)
		return diverge(c, cn, COMPARE_REASON_MISCOMPARE);
	if (p->n && s->n) {
		uint32_t pc = contig(p, cn->base), sc = contig(s, cn->base);
		uint32_t m = seq_lt(pc, sc) ? pc : sc, n = m - cn->base;

		if (seq_lt(cn->base, m)) {
			uint32_t eq = streams_eq(p, s, cn->base, n);

			/* bytes before a difference are still good: release up to it */
			cn->base += eq;
			stream_trim(p, cn->base);
			stream_trim(s, cn->base);
			CNT_ADD(cn->s.bytes_compared, eq);
			CNT_ADD(c->st.bytes_compared, eq);
			if (eq < n) {
				release_ready(c, cn);
				return diverge(c, cn, COMPARE_REASON_MISCOMPARE);
			}
			__atomic_store_n(&cn->s.verdict, COMPARE_VERDICT_MATCH, __ATOMIC_RELAXED);
		}
	}
	/* A FIN must close both streams at the same place, with nothing beyond it. */
	if ((p->fin && s->fin && p->fin_seq != s->fin_seq) ||
	    (p->fin && seq_lt(p->fin_seq, stream_end(s, cn->base))) ||
	    (s->fin && seq_lt(s->fin_seq, stream_end(p, cn->base))))
		return diverge(c, cn, COMPARE_REASON_MISCOMPARE);
	if (p->rst && s->rst)
		__atomic_store_n(&cn->s.verdict, COMPARE_VERDICT_MATCH, __ATOMIC_RELAXED);

	release_ready(c, cn);
	if (!cn->nheld && ((p->rst && s->rst) || (p->fin && s->fin && cn->base == p->fin_seq)))
		mark_closed(c, cn, now);
}

static void tcp_set_base(struct compare *c, struct conn *cn, uint32_t base);

static int tcp_data(struct compare *c, struct conn *cn, int side, const struct nc_parsed *pp)
{
	struct stream *st = &cn->st[side];
	uint32_t seq = pp->seq, n = pp->plen, end = seq + n;
	int r;

	if (pp->tflags & TH_FIN) {
		if (st->fin && st->fin_seq != end)
			return -EILSEQ;
		st->fin = true;
		st->fin_seq = end;
	}
	if (!n || seq_le(end, cn->base))
		return 0;
	if (seq_lt(seq, cn->base)) {
		n = end - cn->base;
		seq = cn->base;
	}
	r = stream_add(st, cn->base, seq, pp->payload + (seq - pp->seq), n,
		       c->cfg.max_conn_bytes);
	return r;
}

static void tcp_error(struct compare *c, struct conn *cn, int r)
{
	diverge(c, cn, r == -EILSEQ ? COMPARE_REASON_MISCOMPARE : COMPARE_REASON_LIMIT);
}

static void tcp_secondary_frame(struct compare *c, struct conn *cn, struct nc_buf *b,
				const uint8_t *frame, size_t len, const struct nc_parsed *pp,
				uint64_t now);

static void tcp_set_base(struct compare *c, struct conn *cn, uint32_t base)
{
	struct nc_buf *b, *tmp;
	struct nc_parsed pp;

	cn->base = base;
	cn->base_valid = true;
	/* replay secondary frames that came before we knew where to start */
	cds_list_for_each_entry_safe(b, tmp, &cn->pending, clist) {
		cds_list_del(&b->clist);
		cn->npending--;
		nc_parse(b->data, b->len, &pp);
		tcp_secondary_frame(c, cn, b, b->data, b->len, &pp, b->ts);
	}
}

static void tcp_primary(struct compare *c, struct conn *cn, struct nc_buf *b,
			const struct nc_parsed *pp, uint64_t now)
{
	struct stream *p = &cn->st[COMPARE_PRIMARY];
	uint8_t f = pp->tflags;
	uint32_t end = pp->seq + pp->plen;
	int r;

	b->seq = pp->seq;
	b->end = end;
	b->ack = pp->ack;
	b->has_ack = (f & TH_ACK) && !(f & TH_RST);
	note_ack(&cn->p_ack_valid, &cn->p_ack, pp);
	b->tflags = f & (TH_SYN | TH_ACK | TH_FIN | TH_RST);
	if (!(f & TH_SYN))
		b->tflags &= (uint8_t)~TH_ACK;
	if (f & TH_SYN) {
		end = pp->seq + 1;
		if (!p->syn)
			p->syn = f & (TH_SYN | TH_ACK);
	} else if (f & TH_FIN) {
		end++;
	}
	if (!cn->nxt_valid || seq_lt(cn->p_nxt, end)) {
		cn->p_nxt = end;
		cn->nxt_valid = true;
	}
	if (cn->diverged) {
		hold(c, cn, b);
		return;
	}
	if (f & TH_SYN) {
		hold(c, cn, b);
		if (!cn->base_valid)
			tcp_set_base(c, cn, pp->seq + 1);
		tcp_advance(c, cn, now);
		return;
	}
	if (f & TH_RST) {
		p->rst = true;
		hold(c, cn, b);
		tcp_advance(c, cn, now);
		return;
	}
	if (!pp->plen && !(f & TH_FIN)) {
		/* ACK only / window update: nothing to compare, only the ACK gate */
		b->ack_only = true;
		if (cds_list_empty(&cn->held) && ack_covered(cn, b)) {
			CNT_INC(c->st.released_unverified);
			emit(c, b->data, b->len);
			buf_put(c, b);
			return;
		}
		hold(c, cn, b);
		return;
	}
	if (!cn->base_valid)
		tcp_set_base(c, cn, pp->seq);
	if (seq_le(b->end, cn->base) && cds_list_empty(&cn->held) && ack_covered(cn, b) &&
	    (!(f & TH_FIN) || (p->fin && p->fin_seq == b->end && cn->st[1].fin &&
			       cn->st[1].fin_seq == b->end && cn->base == b->end))) {
		/* retransmission of bytes (and FIN) already verified */
		CNT_INC(c->st.released_unverified);
		CNT_INC(cn->s.released);
		emit(c, b->data, b->len);
		buf_put(c, b);
		return;
	}
	hold(c, cn, b);
	r = tcp_data(c, cn, COMPARE_PRIMARY, pp);
	if (r < 0)
		return tcp_error(c, cn, r);
	tcp_advance(c, cn, now);
}

/* b is NULL when the frame is still the caller's: copied only if it has to wait. */
static void tcp_secondary_frame(struct compare *c, struct conn *cn, struct nc_buf *b,
				const uint8_t *frame, size_t len, const struct nc_parsed *pp,
				uint64_t now)
{
	struct stream *s = &cn->st[COMPARE_SECONDARY];
	uint8_t f = pp->tflags;
	int r;

	if (!(f & TH_RST))
		note_ack(&cn->s_ack_valid, &cn->s_ack, pp);
	if (cn->diverged)
		goto drop;
	if (f & TH_SYN) {
		if (!s->syn)
			s->syn = f & (TH_SYN | TH_ACK);
		tcp_advance(c, cn, now);
		goto drop;
	}
	if (f & TH_RST) {
		s->rst = true;
		tcp_advance(c, cn, now);
		goto drop;
	}
	if (!pp->plen && !(f & TH_FIN)) {
		release_ready(c, cn); /* what waited for this ACK */
		goto drop;
	}
	if (!cn->base_valid) {
		if (cn->npending >= MAX_PENDING) {
			diverge(c, cn, COMPARE_REASON_LIMIT);
			goto drop;
		}
		if (!b)
			b = buf_get(c, frame, len);
		if (!b) {
			diverge(c, cn, COMPARE_REASON_LIMIT);
			return;
		}
		b->ts = now;
		cds_list_add_tail(&b->clist, &cn->pending);
		cn->npending++;
		return;
	}
	r = tcp_data(c, cn, COMPARE_SECONDARY, pp);
	if (r < 0)
		tcp_error(c, cn, r);
	else
		tcp_advance(c, cn, now);
drop:
	if (b)
		buf_put(c, b);
}

/* ---- datagrams and raw frames ------------------------------------------------------ */

/* For datagrams seq/end hold the payload offset and length (parsed once). */
static bool dgram_eq(const struct nc_buf *a, const struct nc_buf *b)
{
	return a->end == b->end && !memcmp(a->data + a->seq, b->data + b->seq, a->end);
}

static void dgram_match(struct compare *c, struct conn *cn)
{
	while (!cn->diverged && !cds_list_empty(&cn->held) && !cds_list_empty(&cn->pending)) {
		struct nc_buf *p = cds_list_first_entry(&cn->held, struct nc_buf, clist);
		struct nc_buf *s = cds_list_first_entry(&cn->pending, struct nc_buf, clist);

		if (!dgram_eq(p, s))
			return diverge(c, cn, COMPARE_REASON_MISCOMPARE);
		cds_list_del(&s->clist);
		cn->npending--;
		buf_put(c, s);
		CNT_ADD(cn->s.bytes_compared, p->len);
		CNT_ADD(c->st.bytes_compared, p->len);
		__atomic_store_n(&cn->s.verdict, COMPARE_VERDICT_MATCH, __ATOMIC_RELAXED);
		CNT_INC(c->st.compared);
		release_held(c, p);
	}
}

static void dgram_frame(struct compare *c, struct conn *cn, int side, struct nc_buf *b,
			const struct nc_parsed *pp)
{
	b->seq = (uint32_t)(pp->payload - b->data);
	b->end = pp->plen;
	if (side == COMPARE_PRIMARY) {
		hold(c, cn, b);
	} else {
		if (cn->diverged) {
			buf_put(c, b);
			return;
		}
		if (cn->npending >= MAX_PENDING) {
			CNT_INC(c->st.secondary_dropped);
			buf_put(c, b);
			return diverge(c, cn, COMPARE_REASON_LIMIT);
		}
		cds_list_add_tail(&b->clist, &cn->pending);
		cn->npending++;
	}
	dgram_match(c, cn);
}

/* ---- connection table ------------------------------------------------------------ */

_Static_assert(offsetof(struct conn, node) == 0, "nc_lfht_each needs node first");

static int conn_match(struct cds_lfht_node *node, const void *key)
{
	const struct conn *cn = caa_container_of(node, struct conn, node);

	return !memcmp(&cn->key, key, sizeof(cn->key));
}

static void conn_free_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct conn, rcu));
}

static void conn_flush_pending(struct compare *c, struct conn *cn)
{
	struct nc_buf *b, *tmp;

	cds_list_for_each_entry_safe(b, tmp, &cn->pending, clist) {
		cds_list_del(&b->clist);
		buf_put(c, b);
	}
	cn->npending = 0;
}

/* Remove from the table; caller guarantees nothing is held. !defer: caller frees. */
static void conn_remove(struct compare *c, struct conn *cn, bool defer)
{
	cds_lfht_del(c->ht, &cn->node);
	if (cn->closed)
		cds_list_del(&cn->closed_link);
	conn_flush_pending(c, cn);
	free(cn->st[0].ring);
	free(cn->st[1].ring);
	c->nconns--;
	CNT_ADD(c->st.conns, (uint64_t)-1);
	if (defer) {
		c->deferred++;
		urcu_memb_call_rcu(&cn->rcu, conn_free_rcu);
	}
}

/* Forget the comparison state (not the counters, not p_nxt). */
static void conn_reset(struct compare *c, struct conn *cn)
{
	int i;

	conn_flush_pending(c, cn);
	for (i = 0; i < 2; i++) {
		struct stream *s = &cn->st[i];

		s->n = 0;
		s->fin = s->rst = false;
		s->syn = 0;
	}
	cn->base_valid = false;
	cn->diverged = false;
}

static void conn_reopen(struct compare *c, struct conn *cn)
{
	conn_reset(c, cn);
	cds_list_del(&cn->closed_link);
	cn->closed = false;
	cn->nxt_valid = false;
	cn->s_ack_valid = cn->p_ack_valid = false;
	__atomic_store_n(&cn->s.closed, false, __ATOMIC_RELAXED);
}

static struct conn *conn_get(struct compare *c, const struct nc_parsed *pp, unsigned long hash,
			     int side, uint64_t now)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	struct conn *cn;

	cds_lfht_lookup(c->ht, hash, conn_match, &pp->flow, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node) {
		cn = caa_container_of(node, struct conn, node);
		/* a new connection on a closed tuple */
		if (cn->closed && cn->kind == NC_TCP && (pp->tflags & TH_SYN) &&
		    !(pp->tflags & TH_ACK) && !cn->nheld)
			conn_reopen(c, cn);
		return cn;
	}
	if (c->nconns >= c->cfg.max_conns) {
		c->table_was_full = true;
		request_checkpoint(c, COMPARE_REASON_TABLE_FULL);
		return NULL;
	}
	cn = calloc(1, sizeof(*cn));
	if (!cn) {
		request_checkpoint(c, COMPARE_REASON_LIMIT);
		return NULL;
	}
	cn->key = pp->flow;
	cn->kind = pp->kind;
	CDS_INIT_LIST_HEAD(&cn->held);
	CDS_INIT_LIST_HEAD(&cn->pending);
	cds_lfht_node_init(&cn->node);
	cds_lfht_add(c->ht, hash, &cn->node);
	c->nconns++;
	CNT_INC(c->st.conns);
	return cn;
}

static bool passthrough(const struct compare *c, const struct nc_parsed *pp)
{
	uint8_t proto = pp->flow.proto;
	int t;

	if (!pp->flow.ethertype || (pp->flow.ethertype != 0x0800 && pp->flow.ethertype != 0x86dd))
		return false;
	if (__atomic_load_n(&c->pt_any[proto / 64], __ATOMIC_RELAXED) & (1ull << (proto % 64)))
		return true;
	if (pp->kind == NC_RAW)
		return false;
	if (proto == 6)
		t = 0;
	else if (proto == 17)
		t = 1;
	else
		return false;
	return (__atomic_load_n(&c->pt_port[t][pp->flow.sport / 64], __ATOMIC_RELAXED) >>
		(pp->flow.sport % 64) & 1) ||
	       (__atomic_load_n(&c->pt_port[t][pp->flow.dport / 64], __ATOMIC_RELAXED) >>
		(pp->flow.dport % 64) & 1);
}

/* One frame, buffer owned by the compare from here on. */
/*
 * One frame. b owns a copy of it, or is NULL (secondary only) when frame is the caller's
 * memory: the common secondary frame is compared in place and never copied.
 */
static void process(struct compare *c, int side, struct nc_buf *b, const uint8_t *frame,
		    size_t len, uint64_t now)
{
	struct nc_parsed pp;
	struct conn *cn;

	if (b) {
		b->ts = now;
		b->side = (uint8_t)side;
	}
	CNT_INC(*(side == COMPARE_PRIMARY ? &c->st.frames_primary : &c->st.frames_secondary));
	nc_parse(frame, len, &pp);
	if (pp.malformed)
		CNT_INC(c->st.malformed);
	if (c->disabled || passthrough(c, &pp)) {
		if (side == COMPARE_PRIMARY) {
			if (!c->disabled)
				CNT_INC(c->st.released_passthrough);
			emit(c, frame, len);
		}
		if (b)
			buf_put(c, b);
		return;
	}
	if (side == COMPARE_SECONDARY && c->in_ckpt) {
		/* old secondary state, overwritten by the running checkpoint */
		CNT_INC(c->st.secondary_dropped);
		if (b)
			buf_put(c, b);
		return;
	}
	cn = conn_get(c, &pp, (unsigned long)nc_flow_hash(&pp.flow), side, now);
	if (!cn) {
		/* no state: a primary frame waits for the (requested) checkpoint */
		if (side == COMPARE_PRIMARY) {
			hold(c, NULL, b);
		} else {
			CNT_INC(c->st.secondary_dropped);
			if (b)
				buf_put(c, b);
		}
		return;
	}
	cn->last_ns = now;
	CNT_INC(*(side == COMPARE_PRIMARY ? &cn->s.frames_primary : &cn->s.frames_secondary));
	if (c->in_ckpt) { /* primary: covered by the checkpoint */
		if (cn->kind == NC_TCP && pp.kind == NC_TCP) {
			uint32_t end = pp.seq + pp.plen + !!(pp.tflags & (TH_SYN | TH_FIN));

			if (!cn->nxt_valid || seq_lt(cn->p_nxt, end)) {
				cn->p_nxt = end;
				cn->nxt_valid = true;
			}
			if (side == COMPARE_PRIMARY)
				note_ack(&cn->p_ack_valid, &cn->p_ack, &pp);
		}
		hold(c, cn, b);
		return;
	}
	if (cn->kind == NC_TCP && pp.kind == NC_TCP) {
		if (side == COMPARE_PRIMARY)
			tcp_primary(c, cn, b, &pp, now);
		else
			tcp_secondary_frame(c, cn, b, frame, len, &pp, now);
	} else {
		if (!b) {
			b = buf_get(c, frame, len);
			if (!b)
				return diverge(c, cn, COMPARE_REASON_LIMIT);
			b->ts = now;
			b->side = (uint8_t)side;
			nc_parse(b->data, b->len, &pp);
		}
		dgram_frame(c, cn, side, b, &pp);
	}
}

/* Has span passed since `since`? A stamp later than now (taken by another
 * thread after the caller read its clock) has not aged at all. */
static bool aged(uint64_t now, uint64_t since, uint64_t span)
{
	return now >= since && now - since >= span;
}

static void check_timeouts(struct compare *c, uint64_t now)
{
	struct nc_buf *b;

	if (cds_list_empty(&c->held) || c->ckpt_requested || c->in_ckpt)
		return;
	b = cds_list_first_entry(&c->held, struct nc_buf, glist);
	if (!aged(now, b->ts, c->cfg.timeout_ns))
		return;
	CNT_INC(c->st.timeouts);
	if (b->conn) {
		CNT_INC(b->conn->s.timeouts);
		__atomic_store_n(&b->conn->s.verdict, COMPARE_VERDICT_TIMEOUT, __ATOMIC_RELAXED);
	}
	request_checkpoint(c, COMPARE_REASON_TIMEOUT);
}

static void reap_closed(struct compare *c, uint64_t now)
{
	struct conn *cn, *tmp;

	cds_list_for_each_entry_safe(cn, tmp, &c->closed, closed_link) {
		if (!aged(now, cn->closed_at, c->cfg.close_linger_ns))
			break;
		if (cn->nheld)
			continue;
		conn_remove(c, cn, true);
	}
}

/* ---- public API ------------------------------------------------------------------- */

int compare_new(struct compare **out, const struct compare_config *cfg,
		const struct compare_ops *ops, void *opaque)
{
	struct compare *c;
	int i;

	if (!out || !ops)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (cfg)
		c->cfg = *cfg;
	if (!c->cfg.timeout_ns)
		c->cfg.timeout_ns = 10 * 1000 * 1000;
	if (!c->cfg.max_conns)
		c->cfg.max_conns = 262144;
	if (!c->cfg.max_queue)
		c->cfg.max_queue = 65536;
	if (!c->cfg.max_conn_bytes)
		c->cfg.max_conn_bytes = 1u << 20;
	if (c->cfg.max_conn_bytes > (1u << 30))
		c->cfg.max_conn_bytes = 1u << 30;
	if (!c->cfg.close_linger_ns)
		c->cfg.close_linger_ns = 2ull * 1000 * 1000 * 1000;
	if (!c->cfg.idle_ns)
		c->cfg.idle_ns = 60ull * 1000 * 1000 * 1000;
	c->ops = *ops;
	c->opaque = opaque;
	c->ht = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				    &urcu_memb_flavor, NULL);
	if (!c->ht) {
		free(c);
		return -ENOMEM;
	}
	for (i = 0; i < 2; i++)
		cds_wfcq_init(&c->q[i].head, &c->q[i].tail);
	c->pool = nc_pool_new();
	if (!c->pool) {
		cds_lfht_destroy(c->ht, NULL);
		free(c);
		return -ENOMEM;
	}
	CDS_INIT_LIST_HEAD(&c->held);
	CDS_INIT_LIST_HEAD(&c->covered);
	CDS_INIT_LIST_HEAD(&c->closed);
	*out = c;
	return 0;
}

static void free_list(struct compare *c, struct cds_list_head *l)
{
	struct nc_buf *b, *tmp;

	cds_list_for_each_entry_safe(b, tmp, l, glist) {
		cds_list_del(&b->glist);
		if (b->conn)
			cds_list_del(&b->clist);
		free(b);
	}
}

static void pool_node_free(struct cds_lfs_node *n)
{
	free(caa_container_of(n, struct nc_buf, snode));
}

/* Teardown: the held frames are gone already; every connection is unlinked. */
static bool conn_unlink(void *ctx, struct cds_lfht_node *node, bool defer)
{
	struct conn *cn = (struct conn *)(void *)node;

	cn->nheld = 0;
	conn_remove(ctx, cn, defer);
	return true;
}

void compare_free(struct compare *c)
{
	int i;

	if (!c)
		return;
	nc_rcu_thread();
	for (i = 0; i < 2; i++) {
		struct cds_wfcq_node *qn;

		while ((qn = __cds_wfcq_dequeue_blocking(&c->q[i].head, &c->q[i].tail)))
			free(caa_container_of(qn, struct nc_buf, qnode));
		cds_wfcq_destroy(&c->q[i].head, &c->q[i].tail);
	}
	free_list(c, &c->held);
	free_list(c, &c->covered);
	nc_lfht_teardown(c->ht, c->nconns, conn_unlink, c, &c->deferred);
	nc_pool_free(c->pool, pool_node_free);
	free(c);
}

int compare_feed(struct compare *c, enum compare_side side, const uint8_t *frame, size_t len,
		 uint64_t now_ns)
{
	struct nc_buf *b;

	if (!c || !frame || !len || (side != COMPARE_PRIMARY && side != COMPARE_SECONDARY))
		return -EINVAL;
	nc_rcu_thread();
	if (side == COMPARE_PRIMARY) {
		b = buf_get(c, frame, len);
		if (!b) {
			request_checkpoint(c, COMPARE_REASON_LIMIT);
			return -ENOMEM;
		}
		frame = b->data;
	} else {
		b = NULL;
	}
	urcu_memb_read_lock();
	process(c, side, b, frame, len, now_ns);
	check_timeouts(c, now_ns);
	urcu_memb_read_unlock();
	if (!cds_list_empty(&c->closed))
		reap_closed(c, now_ns);
	return 0;
}

int compare_enqueue(struct compare *c, enum compare_side side, const uint8_t *frame,
		    size_t len, uint64_t now_ns)
{
	struct nc_buf *b;

	if (!c || !frame || !len || (side != COMPARE_PRIMARY && side != COMPARE_SECONDARY))
		return -EINVAL;
	if (__atomic_add_fetch(&c->q[side].count, 1, __ATOMIC_RELAXED) > c->cfg.max_queue) {
		__atomic_sub_fetch(&c->q[side].count, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&c->queue_full, 1, __ATOMIC_RELAXED);
		return -ENOBUFS;
	}
	b = buf_get(c, frame, len);
	if (!b) {
		__atomic_sub_fetch(&c->q[side].count, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&c->queue_full, 1, __ATOMIC_RELAXED);
		return -ENOMEM;
	}
	b->ts = now_ns;
	cds_wfcq_node_init(&b->qnode);
	cds_wfcq_enqueue(&c->q[side].head, &c->q[side].tail, &b->qnode);
	return 0;
}

int compare_poll(struct compare *c, uint64_t now_ns)
{
	int i, done = 0;

	if (!c)
		return -EINVAL;
	nc_rcu_thread();
	if (__atomic_exchange_n(&c->queue_full, 0, __ATOMIC_RELAXED))
		request_checkpoint(c, COMPARE_REASON_QUEUE_FULL);
	urcu_memb_read_lock();
	for (i = 0; i < 2; i++) {
		struct cds_wfcq_head head;
		struct cds_wfcq_tail tail;
		struct cds_wfcq_node *n, *next;
		int k = 0;

		cds_wfcq_init(&head, &tail);
		if (__cds_wfcq_splice_blocking(&head, &tail, &c->q[i].head, &c->q[i].tail) ==
		    CDS_WFCQ_RET_SRC_EMPTY) {
			cds_wfcq_destroy(&head, &tail);
			continue;
		}
		__cds_wfcq_for_each_blocking_safe(&head, &tail, n, next) {
			struct nc_buf *b = caa_container_of(n, struct nc_buf, qnode);

			process(c, i, b, b->data, b->len, b->ts);
			k++;
		}
		cds_wfcq_destroy(&head, &tail);
		__atomic_sub_fetch(&c->q[i].count, (unsigned long)k, __ATOMIC_RELAXED);
		done += k;
	}
	check_timeouts(c, now_ns);
	urcu_memb_read_unlock();
	reap_closed(c, now_ns);
	return done;
}

uint64_t compare_next_deadline(const struct compare *c)
{
	const struct nc_buf *b;

	if (c->held.next == &c->held || c->ckpt_requested || c->in_ckpt)
		return UINT64_MAX;
	b = cds_list_first_entry(&c->held, struct nc_buf, glist);
	return b->ts + c->cfg.timeout_ns;
}

int compare_checkpoint_begin(struct compare *c, uint64_t now_ns)
{
	struct cds_lfht_iter it;
	struct nc_buf *b, *tmp;
	struct conn *cn;

	if (!c)
		return -EINVAL;
	if (c->in_ckpt)
		return -EBUSY;
	nc_rcu_thread();
	c->in_ckpt = true;
	c->ckpt_requested = false;
	cds_list_for_each_entry_safe(b, tmp, &c->held, glist) {
		if (b->conn) {
			cds_list_del(&b->clist);
			b->conn->nheld--;
			__atomic_store_n(&b->conn->s.held, 0, __ATOMIC_RELAXED);
			b->conn = NULL;
		}
		cds_list_del(&b->glist);
		cds_list_add_tail(&b->glist, &c->covered);
	}
	urcu_memb_read_lock();
	nc_lfht_each(c->ht, &it, cn, conn)
		conn_reset(c, cn);
	urcu_memb_read_unlock();
	return 0;
}

int compare_checkpoint_acked(struct compare *c, uint64_t now_ns)
{
	struct cds_lfht_iter it;
	struct nc_buf *b, *tmp;
	struct conn *cn;

	if (!c)
		return -EINVAL;
	if (!c->in_ckpt)
		return -EINVAL;
	nc_rcu_thread();
	cds_list_for_each_entry_safe(b, tmp, &c->covered, glist) {
		CNT_INC(c->st.released_checkpoint);
		release_held(c, b);
	}
	c->in_ckpt = false;
	CNT_INC(c->st.checkpoints_done);
	urcu_memb_read_lock();
	nc_lfht_each(c->ht, &it, cn, conn) {
		if (c->table_was_full || cn->closed || now_ns - cn->last_ns >= c->cfg.idle_ns) {
			conn_remove(c, cn, true);
			continue;
		}
		conn_reset(c, cn);
		/* both guests continue from the primary's next sequence number */
		if (cn->kind == NC_TCP && cn->nxt_valid) {
			cn->base = cn->p_nxt;
			cn->base_valid = true;
		}
		/* and the secondary holds every byte the primary had acknowledged */
		if (cn->p_ack_valid && (!cn->s_ack_valid || seq_lt(cn->s_ack, cn->p_ack))) {
			cn->s_ack = cn->p_ack;
			cn->s_ack_valid = true;
		}
	}
	urcu_memb_read_unlock();
	c->table_was_full = false;
	return 0;
}

int compare_set_timeout(struct compare *c, uint64_t timeout_ns)
{
	if (!c)
		return -EINVAL;
	c->cfg.timeout_ns = timeout_ns ? timeout_ns : 10 * 1000 * 1000;
	return 0;
}

void compare_disable(struct compare *c)
{
	struct nc_buf *b, *tmp;

	if (!c)
		return;
	c->disabled = true;
	cds_list_for_each_entry_safe(b, tmp, &c->held, glist)
		release_held(c, b);
	cds_list_for_each_entry_safe(b, tmp, &c->covered, glist)
		release_held(c, b);
}

static int pt_update(struct compare *c, uint8_t proto, uint16_t port, bool set)
{
	uint64_t *w, bit;

	if (!c)
		return -EINVAL;
	if (!port) {
		w = &c->pt_any[proto / 64];
		bit = 1ull << (proto % 64);
	} else if (proto == 6 || proto == 17) {
		w = &c->pt_port[proto == 17][port / 64];
		bit = 1ull << (port % 64);
	} else {
		return -EINVAL;
	}
	if (set)
		__atomic_fetch_or(w, bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(w, ~bit, __ATOMIC_RELAXED);
	return 0;
}

int compare_passthrough_add(struct compare *c, uint8_t proto, uint16_t port)
{
	return pt_update(c, proto, port, true);
}

int compare_passthrough_del(struct compare *c, uint8_t proto, uint16_t port)
{
	return pt_update(c, proto, port, false);
}

void compare_stats_get(const struct compare *c, struct compare_stats *out)
{
	const uint64_t *src = (const uint64_t *)&c->st;
	uint64_t *dst = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

int compare_conn_lookup(struct compare *c, const struct compare_flow *flow,
			struct compare_conn_stats *out)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	struct compare_flow key;
	int r = -ENOENT;

	if (!c || !flow || !out)
		return -EINVAL;
	key = *flow;
	key.pad = 0;
	nc_rcu_thread();
	urcu_memb_read_lock();
	cds_lfht_lookup(c->ht, (unsigned long)nc_flow_hash(&key), conn_match, &key, &it);
	node = cds_lfht_iter_get_node(&it);
	if (node) {
		const struct conn *cn = caa_container_of(node, struct conn, node);

		out->frames_primary = CNT_GET(cn->s.frames_primary);
		out->frames_secondary = CNT_GET(cn->s.frames_secondary);
		out->released = CNT_GET(cn->s.released);
		out->bytes_compared = CNT_GET(cn->s.bytes_compared);
		out->miscompares = CNT_GET(cn->s.miscompares);
		out->timeouts = CNT_GET(cn->s.timeouts);
		out->held = CNT_GET(cn->s.held);
		out->verdict = CNT_GET(cn->s.verdict);
		out->closed = CNT_GET(cn->s.closed);
		r = 0;
	}
	urcu_memb_read_unlock();
	return r;
}
