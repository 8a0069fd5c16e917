/* SPDX-License-Identifier: GPL-2.0-only */
/* transport internals shared by the core and the backends (not public). */
#ifndef COLOVM_TRANSPORT_INTERNAL_H
#define COLOVM_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <time.h>
#include <sodium.h>

#include "common/common.h"
#include "transport/transport.h"

struct frame_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t length;
	uint32_t flags;
	uint64_t seq;
};

/* frame.c: header codec and control frame open/seal (the fuzzed parser). */
void frame_hdr_encode(uint8_t out[TRANSPORT_HDR_LEN], const struct frame_hdr *h);
void frame_hdr_decode(const uint8_t in[TRANSPORT_HDR_LEN], struct frame_hdr *h);
/*
 * Check a control frame header: magic (-EPROTO), version
 * (-EPROTONOSUPPORT), length (-EMSGSIZE). Returns the whole frame size.
 */
int frame_check_ctrl_hdr(const struct frame_hdr *h, size_t *frame_len);
/*
 * Verify a whole control frame (header, MAC with key unless key is NULL, seq
 * == expect_seq) and unpack it. -EBADMSG on a bad MAC or seq, -EPROTO on a
 * bad payload or a type that does not match the body.
 */
int frame_open(const uint8_t *buf, size_t len, const uint8_t *key, uint64_t expect_seq,
	       transport_msg **out);
/* Serialize msg into a malloc'd frame (MAC'd with key unless NULL). */
int frame_seal(const transport_msg *msg, uint16_t version, uint64_t seq, const uint8_t *key,
	       uint8_t **out, size_t *out_len);

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* CLOCK_MONOTONIC time ns from now, for pthread_cond_timedwait(). */
static inline struct timespec tp_deadline(uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ns / 1000000000u);
	ts.tv_nsec += (long)(ns % 1000000000u);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Poly1305 one-time key for (epoch, stream) derived from a bulk base key. */
/* A control frame's one-time Poly1305 key: BLAKE2b(key, "ctrl" | seq). */
void tp_frame_key(const uint8_t key[32], uint64_t seq, uint8_t out[crypto_onetimeauth_KEYBYTES]);
void tp_bulk_key(const uint8_t base[32], uint64_t epoch, uint32_t stream,
		 uint8_t out[crypto_onetimeauth_KEYBYTES]);

/*
 * mac.c: Poly1305 (tags identical to crypto_onetimeauth), through libcrypto
 * when built with it. Zero-initialise before the first init; init may be
 * called again to start a new tag; free releases the context.
 */
struct tp_poly {
	void *ctx; /* EVP_MAC_CTX */
	bool ossl;
	crypto_onetimeauth_state st;
};

int tp_poly_init(struct tp_poly *p, const uint8_t key[crypto_onetimeauth_KEYBYTES]);
/* Key from tp_bulk_key(base, epoch, stream). */
void tp_poly_init_bulk(struct tp_poly *p, const uint8_t base[32], uint64_t epoch, uint32_t stream);
/* bulk bytes: skipped under the benchmark knob below */
void tp_poly_update(struct tp_poly *p, const void *data, size_t len);
/* control frames: always */
void tp_poly_update_always(struct tp_poly *p, const void *data, size_t len);
/*
 * Benchmark knob (tests/bench only, never set by colovm): bulk bytes are
 * not fed to the MAC, so the tags of both ends cover nothing. It measures
 * what the per-byte MAC costs; both ends of a channel must set it.
 */
extern bool transport_bench_unauthenticated_bulk;
void tp_poly_final(struct tp_poly *p, uint8_t tag[crypto_onetimeauth_BYTES]);
void tp_poly_free(struct tp_poly *p);

struct transport_ops {
	const char *scheme;
	int (*listen)(struct transport_listener *l, const char *host, const char *port);
	/* Wait for one raw connection (no handshake yet). */
	int (*accept)(struct transport_listener *l, struct transport_channel *ch);
	int (*connect)(struct transport_channel *ch, const char *host, const char *port);
	/* Send one whole frame (batch_frames: or several, back to back). */
	int (*send_frame)(struct transport_channel *ch, const void *buf, size_t len);
	bool batch_frames;
	/* Receive one whole control frame into buf (cap bytes); -EAGAIN on timeout. */
	int (*recv_frame)(struct transport_channel *ch, uint8_t *buf, size_t cap, size_t *len,
			  int timeout_ms);
	/*
	 * Local receive region as the peer must address it (RDMA addr/rkey).
	 * Called only once the peer has proved the key: RDMA registers the
	 * region for remote writes here, not before.
	 */
	int (*region_info)(struct transport_channel *ch, uint64_t *addr, uint32_t *rkey);
	/* RDMA: the word where this side counts the bulk epochs it verified
	 * (the peer reads it before it overwrites bytes of an earlier epoch);
	 * NULL, or 0s: none. */
	int (*verified_info)(struct transport_channel *ch, uint64_t *addr, uint32_t *rkey);
	/* After Auth: open (client) or accept (server) the bulk paths. */
	int (*bulk_setup)(struct transport_channel *ch, struct transport_listener *l);
	int (*bulk_write)(struct transport_channel *ch, const struct iovec *iov, int n,
			  uint64_t off, uint64_t len);
	/* End the epoch on the sending side; may fill mac (RDMA). */
	int (*bulk_flush)(struct transport_channel *ch, uint64_t epoch,
			  uint8_t mac[crypto_onetimeauth_BYTES], bool *has_mac);
	/* Receiving side: wait for and check the epoch's bytes. */
	int (*bulk_verify)(struct transport_channel *ch, const Colovm__Transport__BulkCommit *c,
			   int timeout_ms);
	int (*fd)(const struct transport_channel *ch);
	/* Milliseconds since any byte arrived from the peer on any socket
	 * (NULL: not known on this medium). */
	int (*rx_idle_ms)(const struct transport_channel *ch, unsigned int *ms);
	/* Shut the medium down under the callers (transport_abort); NULL:
	 * nothing to do. */
	void (*abort)(struct transport_channel *ch);
	void (*close)(struct transport_channel *ch);
	void (*listener_close)(struct transport_listener *l);
};

extern const struct transport_ops transport_tcp_ops;
#ifdef TRANSPORT_HAVE_RDMA
extern const struct transport_ops transport_rdma_ops;
#endif

struct transport_listener {
	const struct transport_ops *ops;
	struct transport_opts opts;
	struct transport_key key;
	char uri[128];
	int fd; /* readable when a peer waits (set by the backend) */
	void *be;
	struct tp_heartbeat *hb; /* transport_heartbeat_start */
};

#define TRANSPORT_TXQ_MAX (64u << 10) /* transport_send_more's buffer */

struct transport_channel {
	const struct transport_ops *ops;
	struct transport_opts opts;
	struct transport_key key;
	bool is_server;
	char peer[96];
	char peer_name[64];
	int err; /* sticky, accessed with __atomic */

	pthread_mutex_t send_lock;
	pthread_mutex_t recv_lock;
	uint64_t send_seq, recv_seq;
	uint8_t k_send[32], k_recv[32], kb_send[32], kb_recv[32];
	uint8_t k_c2s[32];
	uint8_t session_id[16];
	unsigned int streams;
	uint8_t *rxbuf; /* TRANSPORT_HDR_LEN + MAX_MSG + MAC */
	/* frames sealed by transport_send_more, not yet sent (under send_lock) */
	uint8_t *txq;
	size_t txq_len;

	/* bulk, sending side (under send_lock) */
	uint64_t send_epoch;
	uint64_t *runs; /* off, len pairs */
	size_t nruns;
	uint64_t run_bytes;
	uint64_t peer_region_len, peer_region_addr;
	uint32_t peer_region_rkey;
	uint64_t peer_verified_addr; /* RDMA: the peer's verified-epoch word */
	uint32_t peer_verified_rkey;
	/* bulk, receiving side (under recv_lock) */
	uint64_t recv_epoch;

	void *be;
	struct tp_heartbeat *hb; /* transport_heartbeat_start */

	/* heartbeat round trip (transport_heartbeat_rtt), under rtt_lock */
	pthread_mutex_t rtt_lock;
	uint64_t echo_time_ns, echo_recv_ns; /* the peer's beat to echo (0: none) */
	struct transport_rtt rtt;
	uint64_t rtt_sum_ns;
};

static inline int tp_get_err(const struct transport_channel *ch)
{
	return __atomic_load_n(&ch->err, __ATOMIC_ACQUIRE);
}

/* Record the first failure; returns err for tail calls. */
int tp_fail(struct transport_channel *ch, int err);

/* Test knob (conformance suite): wire version put in our Hello header. */
extern uint16_t transport_test_hello_version;
/*
 * Hostile peers for the conformance suite: connect at the medium's level
 * (TCP connection, or rdma_cm connection with its queue pair) without the
 * handshake, and put arbitrary bytes on it as one frame (a SEND on RDMA).
 * Release with transport_close().
 */
int transport_test_connect_raw(const char *uri, const struct transport_opts *opts,
			       struct transport_channel **out);
int transport_test_send_raw(struct transport_channel *ch, const void *buf, size_t len);

#endif
