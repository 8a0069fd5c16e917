/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * net-compare: the COLO proxy between the guests' virtio-net and the wire.
 *
 *            client
 *              |  inbound                        outbound ^
 *   PRIMARY    v                                          |
 *   +--------------------+                  +---------------------------+
 *   | compare_mirror     |--- channel ----->| compare_redirect (+rewrite)|
 *   |  -> guest RX       |                  |  inbound: ack -= off  -> RX|
 *   |                    |<-- channel ------|  outbound: seq += off      |
 *   | compare (table) ---+--> wire          +---------------------------+
 *   |  primary TX feed   |                        SECONDARY
 *   +--------------------+
 *
 * Four parts, each an opaque object:
 *
 *  - compare_mirror   (primary)   every inbound frame goes to the channel, then to
 *                                 the local guest, in order.
 *  - compare_redirect (secondary) the guest's outbound frames go to the channel until
 *                                 failover, then to the wire; inbound frames from the
 *                                 channel are rewritten and delivered to the guest.
 *  - compare_rewrite  (secondary) per TCP connection the ISN offset between the guests.
 *  - compare          (primary)   the comparator: held primary frames are released once
 *                                 the secondary produced the same bytes; a miscompare,
 *                                 timeout or limit asks for a checkpoint.
 *
 * Rewrite side: the SECONDARY. Clients only ever talk to the primary's sequence space,
 * so the secondary must be made to look like the primary, and after failover the
 * secondary (alone) keeps talking to those same clients: the offsets must live where the
 * surviving guest is. Keeping it off the primary also keeps the primary's hot path
 * (compare) free of per-frame writes, and the compare can then work in a single
 * (primary) sequence space. The offset of a connection is learnt from the first inbound
 * ACK after the secondary guest's SYN or SYN-ACK (ack - 1 is the primary's ISN); both
 * connections opened by clients and by the guest are covered. SYN segments are never
 * rewritten (the offset is not known yet); the compare does not compare their sequence
 * numbers. After a checkpoint the secondary's TCP state equals the primary's: offsets
 * are reset to 0 (compare_rewrite_checkpoint). After failover offsets keep applying to
 * connections that existed; new connections get offset 0.
 *
 * Time is injected: every call that needs time takes now_ns (any monotonic clock, e.g.
 * clock_ns()); the library never reads a clock itself.
 *
 * Threads: compare_enqueue() may be called from any number of threads (a wait-free
 * queue per side). compare_feed(), compare_poll(), compare_checkpoint_*() and the
 * release/checkpoint callbacks run on ONE thread, the compare thread. Stats,
 * compare_conn_lookup() and the passthrough calls are safe from any thread.
 * Callbacks must not call back into the same compare object.
 *
 * Errors are -errno. Bad frames are never fatal: they are counted, and (primary) released
 * unchanged only when they cannot be attributed to a flow (never silently dropped).
 */
#ifndef COLOVM_NET_COMPARE_H
#define COLOVM_NET_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- flows ------------------------------------------------------------ */

enum compare_side { COMPARE_PRIMARY = 0, COMPARE_SECONDARY = 1 };

/*
 * A flow as seen from the guest (src = guest side for outbound frames). proto is the IP
 * protocol (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...), or 0 for non-IP frames, where
 * ethertype says what it is (0x0806 ARP). IPv4 addresses are IPv4-mapped (::ffff:a.b.c.d).
 */
struct compare_flow {
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport, dport; /* host order; ICMP: 0 */
	uint16_t ethertype;    /* host order */
	uint8_t proto;
	uint8_t pad;
};

/* Parse an Ethernet frame into its flow (outbound orientation). 0 or -EINVAL. */
int compare_flow_parse(const uint8_t *frame, size_t len, struct compare_flow *out);

/* ---- compare (primary) ------------------------------------------------------ */

enum compare_reason {
	COMPARE_REASON_MISCOMPARE, /* payload, flags or close differ */
	COMPARE_REASON_TIMEOUT,	   /* a primary frame held longer than timeout */
	COMPARE_REASON_TABLE_FULL, /* connection table at max_conns */
	COMPARE_REASON_LIMIT,	   /* per-connection buffer / hole limit */
	COMPARE_REASON_QUEUE_FULL, /* an input queue at max_queue */
	COMPARE_REASON__COUNT,
};
const char *compare_reason_name(enum compare_reason r);

struct compare_ops {
	/* A primary frame may go to the wire. frame is valid only during the call. */
	void (*release)(void *opaque, const uint8_t *frame, size_t len);
	/* Ask for a checkpoint; called once until compare_checkpoint_begin(). */
	void (*checkpoint)(void *opaque, enum compare_reason reason);
};

struct compare_config {
	uint64_t timeout_ns;	   /* compare-timeout; 0: 10 ms */
	uint32_t max_conns;	   /* 0: 262144 */
	uint32_t max_queue;	   /* frames per input queue; 0: 65536 */
	uint32_t max_conn_bytes;   /* buffered bytes per connection and side; 0: 1 MiB */
	uint64_t close_linger_ns;  /* closed connections kept for retransmits; 0: 2 s */
	uint64_t idle_ns;	   /* idle connections dropped at a checkpoint; 0: 60 s */
};

struct compare_stats {
	uint64_t frames_primary;   /* frames fed, per side */
	uint64_t frames_secondary;
	uint64_t compared;	   /* primary frames verified against the secondary */
	uint64_t released;	   /* primary frames released (all reasons) */
	uint64_t released_passthrough;
	uint64_t released_unverified; /* ACK-only, retransmits, unparsable */
	uint64_t released_checkpoint; /* held frames released by a checkpoint ack */
	uint64_t secondary_dropped;   /* secondary frames consumed w/o a primary peer */
	uint64_t bytes_compared;
	uint64_t miscompares;
	uint64_t timeouts;
	uint64_t malformed;
	uint64_t checkpoints[COMPARE_REASON__COUNT]; /* requests by reason */
	uint64_t checkpoints_done;
	uint64_t conns;		   /* connections in the table now */
	uint64_t held;		   /* primary frames held now */
};

enum compare_verdict {
	COMPARE_VERDICT_NONE,	    /* nothing compared yet */
	COMPARE_VERDICT_MATCH,	    /* last comparison matched */
	COMPARE_VERDICT_MISCOMPARE, /* diverged: waiting for a checkpoint */
	COMPARE_VERDICT_TIMEOUT,
};

struct compare_conn_stats {
	uint64_t frames_primary, frames_secondary;
	uint64_t released, bytes_compared;
	uint64_t miscompares, timeouts;
	uint32_t held; /* primary frames held now */
	enum compare_verdict verdict;
	bool closed;
};

struct compare;

int compare_new(struct compare **out, const struct compare_config *cfg,
		const struct compare_ops *ops, void *opaque);
/* Frees everything; held frames are discarded (not released). */
void compare_free(struct compare *c);

/* Synchronous: parse, compare and release on the calling (compare) thread. */
int compare_feed(struct compare *c, enum compare_side side, const uint8_t *frame, size_t len,
		 uint64_t now_ns);
/*
 * Any thread: copy the frame into the side's wait-free queue. -ENOBUFS (and a
 * QUEUE_FULL checkpoint request on the next poll) when max_queue frames are queued.
 */
int compare_enqueue(struct compare *c, enum compare_side side, const uint8_t *frame,
		    size_t len, uint64_t now_ns);
/* Compare thread: drain both queues, then check timeouts. Returns frames processed. */
int compare_poll(struct compare *c, uint64_t now_ns);
/* When compare_poll should run next for timeouts (UINT64_MAX: nothing held). */
uint64_t compare_next_deadline(const struct compare *c);

/*
 * Checkpoint protocol. begin: the guests are stopped; every primary frame held now or
 * fed until acked is covered by this checkpoint; secondary frames fed in between are
 * from the old secondary state and are discarded; the comparison state is reset.
 * acked: the secondary has loaded the checkpoint: covered frames are released, and
 * comparison resumes from the primary's current sequence numbers.
 */
int compare_checkpoint_begin(struct compare *c, uint64_t now_ns);
int compare_checkpoint_acked(struct compare *c, uint64_t now_ns);

/* Compare thread: a new compare-timeout (0: 10 ms), for the frames held now too. */
int compare_set_timeout(struct compare *c, uint64_t timeout_ns);

/* Failover of the secondary: release everything held, stop comparing (passthrough). */
void compare_disable(struct compare *c);

/* Flows with this IP protocol and (source or destination) port are not compared.
 * port 0: the whole protocol. Any thread, at any time. */
int compare_passthrough_add(struct compare *c, uint8_t proto, uint16_t port);
int compare_passthrough_del(struct compare *c, uint8_t proto, uint16_t port);

void compare_stats_get(const struct compare *c, struct compare_stats *out);
/* Any thread. 0 or -ENOENT. */
int compare_conn_lookup(struct compare *c, const struct compare_flow *flow,
			struct compare_conn_stats *out);

/* ---- rewrite (secondary) ---------------------------------------------------- */

struct compare_rewrite;

/* The frame's TCP checksum is a partial (pseudo-header) sum, as with virtio-net
 * VIRTIO_NET_HDR_F_NEEDS_CSUM: leave it alone, it does not cover seq/ack. */
#define COMPARE_RW_CSUM_PARTIAL 0x1u

int compare_rewrite_new(struct compare_rewrite **out, uint32_t max_conns);
void compare_rewrite_free(struct compare_rewrite *rw);
/* Secondary guest TX, rewritten in place (seq += offset). 1 if changed, 0 if not, -errno. */
int compare_rewrite_outbound(struct compare_rewrite *rw, uint8_t *frame, size_t len,
			     unsigned flags, uint64_t now_ns);
/* Frames for the secondary guest (ack and SACK edges -= offset). Same returns. */
int compare_rewrite_inbound(struct compare_rewrite *rw, uint8_t *frame, size_t len,
			    unsigned flags, uint64_t now_ns);
/* The secondary just loaded a checkpoint: all offsets become 0. */
void compare_rewrite_checkpoint(struct compare_rewrite *rw);
/* Failover: keep existing offsets; new connections are not learnt (offset 0); a
 * connection the guest opens again (SYN) on the tuple of a known one drops its offset. */
void compare_rewrite_failover(struct compare_rewrite *rw);
/* Drop connections closed (FIN both ways or RST) more than linger_ns ago. */
void compare_rewrite_gc(struct compare_rewrite *rw, uint64_t now_ns, uint64_t linger_ns);
/*
 * The offsets that still apply, as a byte string, for a copy of the guest elsewhere:
 * a survivor that re-protects its guest hands the connections it rewrites at its wire
 * (the clients talk the old primary's sequence numbers) to its new secondary with every
 * checkpoint. Only connections with a known, non-zero offset that are not closed.
 *
 *   "CRW1" count:u32 { src[16] dst[16] sport:u16 dport:u16 ethertype:u16 proto:u8
 *                      flags:u8 (1 FIN out, 2 FIN in) offset:u32 } * count   (big endian)
 *
 * save: *buf (malloc'd, the caller frees) and *len; returns the count or -errno.
 * load: the offsets are ADDED to those of the same connections in rw (a new entry
 * otherwise, known at once); all or nothing: -EINVAL for a malformed string (nothing
 * changed), -ENOSPC beyond max_conns.
 */
#define COMPARE_RW_SAVE_MAGIC 0x43525731u /* "CRW1" */
#define COMPARE_RW_SAVE_HDR   8
#define COMPARE_RW_SAVE_REC   44
int compare_rewrite_save(struct compare_rewrite *rw, uint8_t **buf, size_t *len);
int compare_rewrite_load(struct compare_rewrite *rw, const uint8_t *buf, size_t len,
			 uint64_t now_ns);
/* Connections with a known, non-zero offset that are not closed (what save keeps). */
uint64_t compare_rewrite_active(struct compare_rewrite *rw);
/* Offset (primary ISN - secondary ISN) of a flow given in outbound orientation.
 * 0, -ENOENT, or -EAGAIN while not learnt yet. */
int compare_rewrite_offset(struct compare_rewrite *rw, const struct compare_flow *flow,
			   uint32_t *offset);

/* ---- mirror (primary) and redirect (secondary) ----------------------------- */

/* Output callbacks return 0 or -errno. */
typedef int (*compare_out_fn)(void *opaque, const uint8_t *frame, size_t len);

struct compare_mirror;
int compare_mirror_new(struct compare_mirror **out, compare_out_fn to_guest,
		       compare_out_fn to_channel, void *opaque);
void compare_mirror_free(struct compare_mirror *m);
/* Inbound frame: to the channel, then to the guest. The guest always gets it; an error
 * of the channel is returned (and counted) so the role can act on it. */
int compare_mirror_input(struct compare_mirror *m, const uint8_t *frame, size_t len);
uint64_t compare_mirror_errors(const struct compare_mirror *m);

struct compare_redirect;
/* rw may be NULL (no rewriting). to_guest gets inbound frames from the channel. */
int compare_redirect_new(struct compare_redirect **out, struct compare_rewrite *rw,
			 compare_out_fn to_channel, compare_out_fn to_wire,
			 compare_out_fn to_guest, void *opaque);
void compare_redirect_free(struct compare_redirect *rd);
/* Secondary guest TX: rewrite (frame is modified), then channel or, after failover, wire. */
int compare_redirect_output(struct compare_redirect *rd, uint8_t *frame, size_t len,
			    unsigned flags, uint64_t now_ns);
/* A mirrored inbound frame from the channel: rewrite, then to the guest. */
int compare_redirect_input(struct compare_redirect *rd, uint8_t *frame, size_t len,
			   unsigned flags, uint64_t now_ns);
void compare_redirect_failover(struct compare_redirect *rd);
bool compare_redirect_failed_over(const struct compare_redirect *rd);

#endif
