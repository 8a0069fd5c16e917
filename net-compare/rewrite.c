// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP sequence rewriting on the secondary (see compare.h for why this side).
 *
 *   client          primary guest (ISN p)      secondary guest (ISN s)
 *   SYN  ---------------------------------------------->  (mirrored)
 *                   SYN-ACK seq p (wire)       SYN-ACK seq s: remember s
 *   ACK ack p+1 ---------------------------------------> learn off = p - s,
 *                                                          ack -> s+1
 *   guest-opened connections: SYN seq s remembered, the SYN-ACK's ack p+1 teaches.
 *
 * Afterwards outbound seq += off and inbound ack (and SACK edges) -= off, with the TCP
 * checksum updated incrementally (RFC 1624, eqn. 3). Connections live in a cds_lfht
 * keyed by the outbound-oriented flow, freed through call_rcu.
 */
#define _LGPL_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "common/common.h"
#include "net-compare/nc_internal.h"

enum { RW_LEARN, RW_KNOWN };

struct rw_conn {
	struct cds_lfht_node node;
	struct rcu_head rcu;
	struct compare_flow key;
	uint32_t s_isn, off;
	uint8_t state;
	bool fin_out, fin_in, closed;
	uint64_t closed_at;
};

struct compare_rewrite {
	struct cds_lfht *ht;
	uint32_t max_conns, nconns;
	uint64_t deferred;
	bool failover;
};

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* RFC 1624: HC' = ~(~HC + ~m + m') over the two 16-bit words of a 32-bit field. */
static void csum_replace32(uint8_t *csum, uint32_t from, uint32_t to)
{
	uint32_t sum = (uint16_t) ~(csum[0] << 8 | csum[1]);

	sum += (uint16_t) ~(from >> 16) + (uint16_t) ~(from & 0xffff);
	sum += (to >> 16) + (to & 0xffff);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (uint16_t)~sum;
	csum[0] = (uint8_t)(sum >> 8);
	csum[1] = (uint8_t)sum;
}

static void field_sub(uint8_t *field, uint8_t *csum, uint32_t delta, bool fix_csum)
{
	uint32_t old = rd32(field), nv = old - delta;

	wr32(field, nv);
	if (fix_csum)
		csum_replace32(csum, old, nv);
}

_Static_assert(offsetof(struct rw_conn, node) == 0, "nc_lfht_each needs node first");

static int rw_match(struct cds_lfht_node *node, const void *key)
{
	return !memcmp(&caa_container_of(node, struct rw_conn, node)->key, key,
		       sizeof(struct compare_flow));
}

static void rw_free_rcu(struct rcu_head *head)
{
	free(caa_container_of(head, struct rw_conn, rcu));
}

static struct rw_conn *rw_lookup(struct compare_rewrite *rw, const struct compare_flow *key,
				 unsigned long hash)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;

	cds_lfht_lookup(rw->ht, hash, rw_match, key, &it);
	node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct rw_conn, node) : NULL;
}

/* Unlink; freed after a grace period (defer) or by the caller. */
static bool rw_remove(struct compare_rewrite *rw, struct rw_conn *cn, bool defer)
{
	if (cds_lfht_del(rw->ht, &cn->node))
		return false;
	rw->nconns--;
	if (defer) {
		rw->deferred++;
		urcu_memb_call_rcu(&cn->rcu, rw_free_rcu);
	}
	return true;
}

int compare_rewrite_new(struct compare_rewrite **out, uint32_t max_conns)
{
	struct compare_rewrite *rw;

	if (!out)
		return -EINVAL;
	rw = calloc(1, sizeof(*rw));
	if (!rw)
		return -ENOMEM;
	rw->max_conns = max_conns ? max_conns : 262144;
	rw->ht = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
				     &urcu_memb_flavor, NULL);
	if (!rw->ht) {
		free(rw);
		return -ENOMEM;
	}
	*out = rw;
	return 0;
}

static bool rw_unlink(void *ctx, struct cds_lfht_node *node, bool defer)
{
	return rw_remove(ctx, (struct rw_conn *)(void *)node, defer);
}

void compare_rewrite_free(struct compare_rewrite *rw)
{
	if (!rw)
		return;
	nc_rcu_thread();
	nc_lfht_teardown(rw->ht, rw->nconns, rw_unlink, rw, &rw->deferred);
	free(rw);
}

static void rw_close_check(struct rw_conn *cn, uint64_t now)
{
	if (!cn->closed && cn->fin_in && cn->fin_out) {
		cn->closed = true;
		cn->closed_at = now;
	}
}

int compare_rewrite_outbound(struct compare_rewrite *rw, uint8_t *frame, size_t len,
			     unsigned flags, uint64_t now_ns)
{
	struct nc_parsed pp;
	struct rw_conn *cn;
	unsigned long hash;
	uint8_t *th;
	int r = 0;

	if (!rw || !frame)
		return -EINVAL;
	if (nc_parse(frame, len, &pp) < 0 || pp.kind != NC_TCP)
		return 0;
	nc_rcu_thread();
	th = frame + pp.l4_off;
	hash = (unsigned long)nc_flow_hash(&pp.flow);
	urcu_memb_read_lock();
	cn = rw_lookup(rw, &pp.flow, hash);
	if ((pp.tflags & TH_SYN) && !rw->failover && (!cn || cn->closed)) {
		if (cn) {
			rw_remove(rw, cn, true);
			cn = NULL;
		}
		if (rw->nconns >= rw->max_conns) {
			r = -ENOSPC;
			goto out;
		}
		cn = calloc(1, sizeof(*cn));
		if (!cn) {
			r = -ENOMEM;
			goto out;
		}
		cn->key = pp.flow;
		cn->s_isn = pp.seq;
		cn->state = RW_LEARN;
		cds_lfht_node_init(&cn->node);
		cds_lfht_add(rw->ht, hash, &cn->node);
		rw->nconns++;
		goto out;
	}
	if (!cn)
		goto out;
	if ((pp.tflags & TH_SYN) && rw->failover && cn->state == RW_KNOWN) {
		/* a new connection on an old tuple: its ISN is this guest's own */
		rw_remove(rw, cn, true);
		goto out;
	}
	if ((pp.tflags & TH_SYN) && cn->state == RW_LEARN) {
		cn->s_isn = pp.seq; /* SYN retransmission */
		goto out;
	}
	if (cn->state == RW_KNOWN && cn->off) {
		field_sub(th + 4, th + 16, -cn->off, !(flags & COMPARE_RW_CSUM_PARTIAL));
		r = 1;
	}
	if (pp.tflags & TH_FIN)
		cn->fin_out = true;
	if (pp.tflags & TH_RST) {
		cn->fin_in = cn->fin_out = true;
	}
	rw_close_check(cn, now_ns);
out:
	urcu_memb_read_unlock();
	return r;
}

int compare_rewrite_inbound(struct compare_rewrite *rw, uint8_t *frame, size_t len,
			    unsigned flags, uint64_t now_ns)
{
	bool fix = !(flags & COMPARE_RW_CSUM_PARTIAL);
	struct nc_parsed pp;
	struct rw_conn *cn;
	uint8_t *th;
	int r = 0;

	if (!rw || !frame)
		return -EINVAL;
	if (nc_parse(frame, len, &pp) < 0 || pp.kind != NC_TCP)
		return 0;
	nc_rcu_thread();
	th = frame + pp.l4_off;
	nc_flow_swap(&pp.flow);
	urcu_memb_read_lock();
	cn = rw_lookup(rw, &pp.flow, (unsigned long)nc_flow_hash(&pp.flow));
	if (!cn)
		goto out;
	if (cn->state == RW_LEARN && (pp.tflags & TH_ACK)) {
		cn->off = pp.ack - 1 - cn->s_isn;
		cn->state = RW_KNOWN;
	}
	if (cn->state == RW_KNOWN && cn->off) {
		uint8_t *o = th + 20, *end = th + pp.tcp_hlen;

		if (pp.tflags & TH_ACK) {
			field_sub(th + 8, th + 16, cn->off, fix);
			r = 1;
		}
		/* SACK blocks (kind 5) carry ack-space edges too */
		while (o < end) {
			if (*o == 0)
				break;
			if (*o == 1) {
				o++;
				continue;
			}
			if (o + 1 >= end || o[1] < 2 || o + o[1] > end)
				break;
			if (*o == 5) {
				uint8_t *e;

				for (e = o + 2; e + 8 <= o + o[1]; e += 8) {
					field_sub(e, th + 16, cn->off, fix);
					field_sub(e + 4, th + 16, cn->off, fix);
				}
				r = 1;
			}
			o += o[1];
		}
	}
	if (pp.tflags & TH_FIN)
		cn->fin_in = true;
	if (pp.tflags & TH_RST)
		cn->fin_in = cn->fin_out = true;
	rw_close_check(cn, now_ns);
out:
	urcu_memb_read_unlock();
	return r;
}

void compare_rewrite_checkpoint(struct compare_rewrite *rw)
{
	struct cds_lfht_iter it;
	struct rw_conn *cn;

	if (!rw)
		return;
	nc_rcu_thread();
	urcu_memb_read_lock();
	nc_lfht_each(rw->ht, &it, cn, rw_conn) {
		cn->off = 0;
		cn->state = RW_KNOWN;
	}
	urcu_memb_read_unlock();
}

void compare_rewrite_failover(struct compare_rewrite *rw)
{
	if (rw)
		rw->failover = true;
}

void compare_rewrite_gc(struct compare_rewrite *rw, uint64_t now_ns, uint64_t linger_ns)
{
	struct cds_lfht_iter it;
	struct rw_conn *cn;

	if (!rw)
		return;
	nc_rcu_thread();
	urcu_memb_read_lock();
	nc_lfht_each(rw->ht, &it, cn, rw_conn) {
		if (cn->closed && now_ns - cn->closed_at >= linger_ns)
			rw_remove(rw, cn, true);
	}
	urcu_memb_read_unlock();
}

int compare_rewrite_offset(struct compare_rewrite *rw, const struct compare_flow *flow,
			   uint32_t *offset)
{
	struct compare_flow key;
	struct rw_conn *cn;
	int r = -ENOENT;

	if (!rw || !flow || !offset)
		return -EINVAL;
	key = *flow;
	key.pad = 0;
	nc_rcu_thread();
	urcu_memb_read_lock();
	cn = rw_lookup(rw, &key, (unsigned long)nc_flow_hash(&key));
	if (cn) {
		r = cn->state == RW_KNOWN ? 0 : -EAGAIN;
		*offset = cn->off;
	}
	urcu_memb_read_unlock();
	return r;
}

/* ---- save / load (re-protect: the survivor's offsets to its new secondary) ---------- */

#define RW_REC_LEN COMPARE_RW_SAVE_REC
_Static_assert(RW_REC_LEN == 16 + 16 + 2 + 2 + 2 + 1 + 1 + 4, "record layout");

static bool rw_saved(const struct rw_conn *cn)
{
	return cn->state == RW_KNOWN && cn->off && !cn->closed;
}

uint64_t compare_rewrite_active(struct compare_rewrite *rw)
{
	struct cds_lfht_iter it;
	struct rw_conn *cn;
	uint64_t n = 0;

	if (!rw)
		return 0;
	nc_rcu_thread();
	urcu_memb_read_lock();
	nc_lfht_each(rw->ht, &it, cn, rw_conn)
	{
		if (rw_saved(cn))
			n++;
	}
	urcu_memb_read_unlock();
	return n;
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int compare_rewrite_save(struct compare_rewrite *rw, uint8_t **buf, size_t *len)
{
	struct cds_lfht_iter it;
	struct rw_conn *cn;
	uint8_t *b, *o;
	uint32_t n = 0, max;

	if (!rw || !buf || !len)
		return -EINVAL;
	/* One writer thread owns rw (its caller's lock): the count holds. */
	max = rw->nconns;
	b = malloc(8 + (size_t)max * RW_REC_LEN);
	if (!b)
		return -ENOMEM;
	o = b + 8;
	nc_rcu_thread();
	urcu_memb_read_lock();
	nc_lfht_each(rw->ht, &it, cn, rw_conn)
	{
		if (!rw_saved(cn) || n == max)
			continue;
		memcpy(o, cn->key.src, 16);
		memcpy(o + 16, cn->key.dst, 16);
		wr16(o + 32, cn->key.sport);
		wr16(o + 34, cn->key.dport);
		wr16(o + 36, cn->key.ethertype);
		o[38] = cn->key.proto;
		o[39] = (uint8_t)((cn->fin_out ? 1 : 0) | (cn->fin_in ? 2 : 0));
		wr32(o + 40, cn->off);
		o += RW_REC_LEN;
		n++;
	}
	urcu_memb_read_unlock();
	wr32(b, COMPARE_RW_SAVE_MAGIC);
	wr32(b + 4, n);
	*buf = b;
	*len = 8 + (size_t)n * RW_REC_LEN;
	return (int)n;
}

static void rw_rec_key(const uint8_t *o, struct compare_flow *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->src, o, 16);
	memcpy(k->dst, o + 16, 16);
	k->sport = rd16(o + 32);
	k->dport = rd16(o + 34);
	k->ethertype = rd16(o + 36);
	k->proto = o[38];
}

int compare_rewrite_load(struct compare_rewrite *rw, const uint8_t *buf, size_t len,
			 uint64_t now_ns)
{
	uint32_t n;
	int r = 0;

	if (!rw || (!buf && len))
		return -EINVAL;
	if (len < 8 || rd32(buf) != COMPARE_RW_SAVE_MAGIC)
		return -EINVAL;
	n = rd32(buf + 4);
	if ((len - 8) / RW_REC_LEN != n || (len - 8) % RW_REC_LEN)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *o = buf + 8 + (size_t)i * RW_REC_LEN;

		if (o[38] != 6 || (o[39] & ~3u))
			return -EINVAL; /* TCP only, two flags */
	}
	if (n > rw->max_conns - MIN(rw->nconns, rw->max_conns))
		return -ENOSPC;
	nc_rcu_thread();
	urcu_memb_read_lock();
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *o = buf + 8 + (size_t)i * RW_REC_LEN;
		struct compare_flow key;
		unsigned long hash;
		struct rw_conn *cn;

		rw_rec_key(o, &key);
		hash = (unsigned long)nc_flow_hash(&key);
		cn = rw_lookup(rw, &key, hash);
		if (cn && cn->closed) {
			rw_remove(rw, cn, true);
			cn = NULL;
		}
		if (!cn) {
			cn = calloc(1, sizeof(*cn));
			if (!cn) {
				r = -ENOMEM;
				break;
			}
			cn->key = key;
			cds_lfht_node_init(&cn->node);
			cds_lfht_add(rw->ht, hash, &cn->node);
			rw->nconns++;
		}
		cn->state = RW_KNOWN;
		cn->off += rd32(o + 40);
		cn->fin_out |= (o[39] & 1) != 0;
		cn->fin_in |= (o[39] & 2) != 0;
		rw_close_check(cn, now_ns);
	}
	urcu_memb_read_unlock();
	return r;
}
