/* SPDX-License-Identifier: GPL-2.0-only */
/* net-compare internals shared by the .c files of this module (not public). */
#ifndef COLOVM_NC_INTERNAL_H
#define COLOVM_NC_INTERNAL_H

#include "net-compare/compare.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

enum nc_kind {
	NC_TCP,	  /* compared by sequence range */
	NC_DGRAM, /* UDP, ICMP, other IP: compared by L4 payload, in order */
	NC_RAW,	  /* ARP, other ethertypes, fragments, malformed: whole L3 payload */
};

struct nc_parsed {
	struct compare_flow flow;
	uint8_t kind;
	uint8_t tflags;
	bool malformed;
	uint16_t l4_off; /* TCP header offset in the frame */
	uint16_t tcp_hlen;
	uint32_t seq, ack; /* host order */
	const uint8_t *payload;
	uint32_t plen;
};

/* Always classifies (malformed frames become NC_RAW); -EINVAL only for len == 0. */
int nc_parse(const uint8_t *frame, size_t len, struct nc_parsed *p);
void nc_flow_swap(struct compare_flow *f);
uint64_t nc_flow_hash(const struct compare_flow *f);

/* Frame buffer pool (pool.c). */
struct nc_pool;
struct cds_lfs_node;
struct nc_pool *nc_pool_new(void);
void nc_pool_push(struct nc_pool *p, struct cds_lfs_node *n);
struct cds_lfs_node *nc_pool_pop(struct nc_pool *p);
void nc_pool_free(struct nc_pool *p, void (*fn)(struct cds_lfs_node *n));

/* Register the calling thread with urcu-memb once (unregistered at thread exit). */
void nc_rcu_thread(void);

/*
 * Tear down a connection table. unlink(ctx, node, defer) takes each node out
 * of the table and returns true when the node is left for this function to
 * free; with defer (no memory for the list) it must hand the node to call_rcu
 * itself and count it in *deferred. Nodes left to free are freed after one
 * grace period for all of them, not one call_rcu round trip each; then
 * deferred frees are waited for and the table is destroyed. The hash node must
 * be the first member of the connection struct (see nc_lfht_entry).
 */
struct cds_lfht;
struct cds_lfht_node;
void nc_lfht_teardown(struct cds_lfht *ht, size_t nconns,
		      bool (*unlink)(void *ctx, struct cds_lfht_node *node, bool defer), void *ctx,
		      const uint64_t *deferred);

/*
 * Entry at an lfht iterator, NULL at the end (cds_lfht_for_each_entry forms
 * container_of(NULL), which UBSan reports). The node must be the first member.
 */
#define nc_lfht_entry(it, T) ((struct T *)(void *)cds_lfht_iter_get_node(it))
#define nc_lfht_each(ht, it, cn, T)                                                              \
	for (cds_lfht_first(ht, it); ((cn) = nc_lfht_entry(it, T)); cds_lfht_next(ht, it))

/* Serial number arithmetic (RFC 1982) on 32-bit TCP sequence numbers. */
static inline bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static inline bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

/* Relaxed single-writer counters, readable from other threads. */
#define CNT_ADD(x, n) __atomic_store_n(&(x), __atomic_load_n(&(x), __ATOMIC_RELAXED) + (n), \
				       __ATOMIC_RELAXED)
#define CNT_INC(x)    CNT_ADD(x, 1)
#define CNT_GET(x)    __atomic_load_n(&(x), __ATOMIC_RELAXED)

#endif
