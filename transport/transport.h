/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * transport: the channel between primary and secondary.
 *
 * One API, two backends behind a const ops table:
 *   tcp:HOST:PORT   one control socket (TCP_NODELAY) + N bulk sockets
 *   rdma:HOST:PORT  one RC queue pair set up through rdma_cm; bulk data is
 *                   RDMA WRITE into the peer's registered receive region,
 *                   control frames are SENDs
 *
 * Two paths:
 *   message path  small control messages (transport.proto: the checkpoint
 *                 protocol below, heartbeat, failover notice, error,
 *                 mirrored/redirected packets), in order, MAC'd, sequenced.
 *   bulk path     page runs written from local memory (iovecs, not copied on
 *                 the way out) into the peer's receive region (on the
 *                 secondary: its RAM cache) at a given offset, then made
 *                 visible by a commit. The receiver sees the commit as a
 *                 BulkCommit message from transport_recv() only after the
 *                 bulk MAC over the committed bytes has been checked.
 *
 * Errors are -errno. A channel that failed stays failed (every later call
 * returns the same error); the caller (failover logic) decides what to do.
 * Nothing here blocks longer than the timeout: a dead peer or a cut link
 * gives -ECONNRESET, -EPIPE or -ETIMEDOUT, never a hang.
 *
 * ---- Wire format, version 2 ----------------------------------------------
 *
 * Every frame starts with a fixed 24-byte little-endian header:
 *
 *   0       4         6      8        12      16               24
 *   | magic | version | type | length | flags |      seq       |
 *   magic   "CVTP" (0x50545643)
 *   version TRANSPORT_WIRE_VERSION (2); a frame with another version is
 *           refused with an Error message naming the versions we speak
 *   type    control frames: the field number of the Msg body (1..20);
 *           bulk stream frames: TRANSPORT_FRAME_BULK_DATA / _BULK_END
 *   length  payload bytes (control: <= TRANSPORT_MAX_MSG)
 *   flags   0
 *   seq     control: per-direction frame counter; bulk: commit epoch
 *
 * Control frame: header | protobuf Msg (length bytes) | MAC (16 bytes)
 *   MAC = Poly1305(header | payload) under the one-time key
 *   BLAKE2b-256(k_dir, "ctrl" | seq), k_dir the session key of the sending
 *   direction (version 1: keyed BLAKE2b-256 over the frame, a 32-byte MAC;
 *   12 times slower on a DiskWrite). The receiver requires seq == next
 *   expected seq, so frames can be neither replayed nor reordered nor
 *   reflected.
 *   Hello and HelloReply carry an all-zero MAC (no session key yet); they
 *   carry the challenge-response proofs instead.
 *
 * TCP bulk frames (on the bulk sockets only, no trailing MAC):
 *   BULK_DATA  header | u64 offset | data        (length = 8 + data bytes)
 *   BULK_END   header | Poly1305 tag (16 bytes)  (seq = epoch just ended)
 *   The tag covers every BULK_DATA header, offset and data byte sent on
 *   that stream during the epoch; key = BLAKE2b(kb_dir, epoch | stream).
 * RDMA bulk: RDMA WRITEs (no framing); the BulkCommit message carries the
 *   runs and a Poly1305 tag over their bytes in run order, key as above
 *   with stream 0.
 *
 * Connection set-up (C = connecting side, S = listening side):
 *
 *   C                                                     S
 *   |-- Hello{min,max version, nonce_c}  seq 0, no MAC -->|
 *   |<- HelloReply{version, nonce_s, session_id,          |
 *   |      proof_s = BLAKE2b(PSK, "server"|v|nc|ns)} ------|  C checks proof_s
 *   |-- Auth{proof_c = BLAKE2b(PSK, "client"|v|nc|ns),    |
 *   |        bulk_streams, region}  seq 1, MAC(k_c2s) --->|  S checks proof_c
 *   |== TCP only: N new sockets, each StreamJoin{session, |
 *   |        index, BLAKE2b(k_c2s, "join"|session|index)}=>|
 *   |<- AuthOk{region}  seq 1, MAC(k_s2c) ----------------|
 *   |<========= control frames / bulk, both ways ========>|
 *
 *   Session keys: k_dir, kb_dir = BLAKE2b(PSK, label | dir | nc | ns).
 *   A peer failing any check is logged and disconnected; nothing it sent is
 *   delivered to the caller.
 *
 * Bulk commit (either direction; S -> primary-to-secondary shown):
 *
 *   P                                                     S
 *   |== bulk_write(iov, off) (BULK_DATA / RDMA WRITE) ===>|  lands in region
 *   |== BULK_END{tag} per stream (TCP) ==================>|  tag checked
 *   |-- BulkCommit{id, epoch, runs, [rdma tag]} ---------->|  wait + check,
 *   |                                                     |  then delivered
 *
 * ---- Threads ---------------------------------------------------------------
 *
 * A channel has two sides that may run at the same time on two threads:
 *   sending    transport_send, _send_more, _flush, transport_bulk_write,
 *              transport_bulk_commit
 *              (one lock: calls from several threads are serialized, but a
 *              bulk epoch is everything written between two commits, so
 *              keep bulk writes and their commit on one thread)
 *   receiving  transport_recv (its own lock; one receiver thread)
 * transport_error, transport_backend, transport_peer_name and transport_fd
 * may be called from any thread at any time. transport_close must be the
 * last call: no other call on the channel may be running or follow.
 * A listener: transport_accept on one thread at a time; transport_listen,
 * _listener_uri/_fd anywhere; transport_listener_close last, as above.
 * Inside, the TCP backend runs one receiver thread per bulk stream (and one
 * sender thread per extra stream): those write the receive region (and call
 * opts.recv_prepare) at any time while the channel is open, so the owner of
 * the region reads a range only after transport_recv() delivered the
 * BulkCommit that covers it, and never writes it while the peer may.
 *
 * ---- Checkpoint protocol, version 2 (TRANSPORT_CKPT_VERSION) ----------------
 *
 * The one vocabulary between primary/ and secondary/, for live migration
 * and COLO checkpoints. RAM travels only on the bulk path, straight
 * into the secondary's receive region (zero-copy over RDMA); device state
 * travels on the message path as one common/vmstate stream (header, FULL
 * records, EOF; no RAM section) cut into DeviceState chunks. Pages and state
 * of unit `id` form one checkpoint; the secondary loads nothing of it into
 * the guest before the whole unit arrived and was verified (BulkCommit MACs,
 * the vmstate CRCs, the two-phase vmstate load).
 *
 *   primary                                               secondary
 *   |-- StreamStart{protocol 2, mode, ram_bytes, page} -->|  refuse: other
 *   |                                                     |  version or RAM size
 *   Live migration (mode MIGRATE, unit 1; the region is the target's guest
 *   RAM, which has never run and reads as zero, so zero pages are skipped):
 *   |== bulk: pages of round 0, 1, ... (guest running) ==>|
 *   |-- BulkCommit{id 1} (every few MiB) ---------------->|
 *   |   (VM stopped: finish-migrate, disks flushed)       |
 *   |== bulk: the last dirty pages =====================>|
 *   |-- BulkCommit{id 1} -------------------------------->|
 *   |-- DeviceState{id 1, data...} ... {last} ----------->|  staged, checked,
 *   |                                                     |  applied (2 phases)
 *   |<- CheckpointAck{id 1, status 0 | -errno, message} --|  runs (INMIGRATE
 *   postmigrate                                           |  -> RUNNING), RARP
 *   COLO (mode COLO; the region is the secondary's RAM cache, never its
 *   live guest RAM). StreamStart also carries vm_config ("mem=.. cpus=..
 *   net=.. disk=.. kernel=<xxh3> initrd=<xxh3>") and is answered at once:
 *   |<- CheckpointAck{id 0, 0 | -errno, "the primary's VM has cpus=2, this
 *   |      one cpus=1 ..."} ------------------------------|  refused: no page
 *   Unit 1 is the live migration above, into the cache; once it is complete
 *   the cache's pages are copied into the secondary's guest RAM (all zero
 *   before), its devices loaded, its dirty log started, and both guests
 *   run (secondary INMIGRATE -> COLO -> RUNNING, primary FINISH_MIGRATE ->
 *   COLO -> RUNNING). Then checkpoint n = 2, 3, ...:
 *   (vCPUs stopped: RUNNING -> COLO)                      |
 *   |-- CheckpointRequest{id n, reason, digest} --------->|  stops (-> COLO)
 *   |== bulk: dirty pages; BulkCommit{id n} ============>|  into the cache
 *   |-- DeviceState{id n, ...} ... {last} --------------->|  staged + checked
 *   |<- CheckpointReply{id n, status} --------------------|  (sent once stopped)
 *   |<- CheckpointAck{id n, 0} ---------------------------|  flush the cache
 *   releases held packets, resumes (COLO -> RUNNING)      |  (pages dirtied by
 *                                                         |  either side),
 *                                                         |  apply state, run
 *   |<- CheckpointAck{id n, 0, applied} ------------------|  (version 2)
 *   The primary does not wait for the reply before sending: the secondary
 *   stops while the pages stream (they land in the cache, not in its guest).
 *   But it stops its VM for checkpoint n + 1 only once unit n is applied
 *   (the second ack; unit 1 is applied at its ack): the cache is the region
 *   its pages land in, and the secondary copies unit n out of it after its
 *   first ack. (Version 1 streamed into the cache meanwhile: a checkpoint
 *   that followed at once could put pages of n + 1 into the secondary's
 *   guest at n, seen as differing RAM digests in slow host VMs.)
 *   Re-protect: a primary that was a secondary and took over still rewrites
 *   at its wire the TCP connections that were open then (their clients talk
 *   the old primary's sequence numbers); the last DeviceState of every unit
 *   carries those offsets (net_offsets, per port), and a secondary that
 *   takes over applies the last ones it loaded at its own wire.
 *   Replicated disks (--disk PATH,replicate): during unit 1 (after the ack
 *   of StreamStart, and again with the VM stopped) the primary sends the
 *   image in DiskWrite{disk, offset, data} pieces (all of it, then what its
 *   guest rewrote meanwhile); the secondary writes them into its image at
 *   once (its guest never ran). From the first run on, the blocks the
 *   primary's guest writes follow as DiskWrites, read back from its image
 *   after it marked them (a block rewritten before it went goes once, with
 *   its latest content; one written again after it went goes again), all
 *   of them ahead of the CheckpointRequest of the checkpoint that covers
 *   them; the secondary buffers them (its own guest writes into an
 *   overlay) and, when unit n is complete and checked, acks it, then
 *   applies all it buffered up to the request to its image, in the order
 *   received, flushes it and drops the overlay before the applied
 *   CheckpointAck{n} (its guest stopped meanwhile; the primary's runs on
 *   and its DiskWrites for n + 1 wait in the channel); the primary's VM was
 *   paused from the request to the ack, so the image then equals the
 *   primary's at checkpoint n. After the ack the unit is applied whatever
 *   becomes of the primary, as its RAM is; a fault applying it is the
 *   secondary's (it stands down). A switchover applies before its ack. A
 *   broken pair before the ack: the buffer is dropped, the overlay merged
 *   into the image (the secondary's guest came from its own writes since
 *   the last checkpoint).
 *   Switchover (migrate with continue): CheckpointRequest{switchover,
 *   standby URI} makes unit n the pair's last. The primary stops with
 *   RUNNING -> FINISH_MIGRATE and never resumes; the secondary acks, applies
 *   (no second ack: the primary has gone its way), takes over as at a
 *   failover, and protects the guest with the old primary, which waits on
 *   the standby URI as a new secondary (a new pairing, from unit 1).
 *   FailoverNotice{SHUTDOWN} from the primary: it ends the pair in order
 *   (quit, guest shutdown, migrate_cancel); the secondary shuts down.
 *   Any failure: CheckpointAck{status -errno, message} if the secondary can
 *   still say so, then the channel is dropped; the secondary stays on its
 *   last complete checkpoint and the primary puts its dirty bits back.
 */
#ifndef COLOVM_TRANSPORT_H
#define COLOVM_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "transport/transport.pb-c.h"

#define TRANSPORT_WIRE_VERSION	   2
#define TRANSPORT_CKPT_VERSION	   2 /* checkpoint protocol (StreamStart.protocol) */
#define TRANSPORT_FRAME_MAGIC	   0x50545643u /* "CVTP" */
#define TRANSPORT_HDR_LEN	   24
#define TRANSPORT_MAC_LEN	   16
#define TRANSPORT_MAX_MSG	   (1u << 20) /* control payload limit */
#define TRANSPORT_MAX_RUNS	   32768      /* runs per bulk commit */
#define TRANSPORT_MAX_STREAMS	   16
#define TRANSPORT_FRAME_BULK_DATA  0x100
#define TRANSPORT_FRAME_BULK_END   0x101
#define TRANSPORT_KEY_LEN	   32
#define TRANSPORT_DEFAULT_TIMEOUT  5000 /* ms */

typedef Colovm__Transport__Msg transport_msg;

struct transport_key {
	uint8_t bytes[TRANSPORT_KEY_LEN];
};

/*
 * Key file: 32 raw bytes, or 64 hex digits (optionally followed by a
 * newline). Anything else is -EINVAL. Generate one with
 *   head -c32 /dev/urandom > peer.key
 */
int transport_key_load(const char *path, struct transport_key *key);
/* Key bytes: exactly TRANSPORT_KEY_LEN, else -EINVAL. */
int transport_key_set(struct transport_key *key, const void *bytes, size_t len);
/*
 * The public key: 32 zero bytes, known to everyone. A channel under it is
 * protocol-identical (framing, sequence numbers, MACs: corruption and
 * truncation are still caught) but NOT authenticated: anyone who reaches
 * the port passes. For plain migration on a trusted link without a key
 * file; both ends must use it (a peer with a real key refuses it, -EACCES).
 */
void transport_key_public(struct transport_key *key);

struct transport_opts {
	const struct transport_key *key; /* required: pre-shared key */
	int timeout_ms;			 /* link/peer timeout; 0: default */
	unsigned int bulk_streams;	 /* tcp, connecting side: 1..16 */
	/* Where the peer's bulk writes land (the secondary's RAM cache). */
	void *recv_region;
	size_t recv_region_len;
	/*
	 * Optional, tcp: called on a bulk receiver thread right before bytes
	 * [off, off + len) of the receive region are written (e.g. to allocate
	 * those pages in one call instead of one fault per page). RDMA writes
	 * land without the CPU and never call it.
	 */
	void (*recv_prepare)(void *opaque, uint64_t off, uint64_t len);
	void *recv_opaque;
	/*
	 * rdma: local memory bulk_write() sends from without copying (the
	 * primary's guest RAM), registered once at set-up. iovecs outside it
	 * go through a bounce buffer. Ignored by tcp.
	 */
	void *send_region;
	size_t send_region_len;
	const char *name; /* shown to the peer and in logs */
	/* listener: a peer's connection logged at debug level, not info (the
	 * witness, probed every few seconds, logs what each peer wanted) */
	bool quiet_accept;
};

struct transport_listener;
struct transport_channel;

/* Listen on "tcp:HOST:PORT" / "rdma:HOST:PORT" (PORT 0: pick one). */
int transport_listen(const char *uri, const struct transport_opts *opts,
		     struct transport_listener **out);
/* The bound URI (with the real port). */
const char *transport_listener_uri(const struct transport_listener *l);
/* Readable when a peer is waiting to be accepted (for a struct loop). */
int transport_listener_fd(const struct transport_listener *l);
/*
 * Accept one peer and run the handshake (bounded by the timeout). A peer
 * that fails authentication gives -EACCES, a wrong version
 * -EPROTONOSUPPORT, garbage -EPROTO; the listener stays usable.
 */
int transport_accept(struct transport_listener *l, struct transport_channel **out);
void transport_listener_close(struct transport_listener *l);

int transport_connect(const char *uri, const struct transport_opts *opts,
		      struct transport_channel **out);
void transport_close(struct transport_channel *ch);

/* Message path. Hello/Auth/StreamJoin/BulkCommit are refused (-EINVAL). */
int transport_send(struct transport_channel *ch, const transport_msg *msg);
/*
 * Wait up to timeout_ms (-1: forever, 0: poll) for the next message.
 * -EAGAIN: nothing arrived in time (the channel is fine). Other errors are
 * channel failures. Free the message with transport_msg_free().
 */
int transport_recv(struct transport_channel *ch, int timeout_ms, transport_msg **out);
/*
 * transport_send, but the frame may wait (TCP: up to 64 KiB of frames) for
 * transport_flush or the next transport_send, whichever comes first, and go
 * with the others in one system call: for a burst of small messages (the
 * packets a NIC read in one go). Errors as transport_send's (a failed send
 * may show at the flush). Over RDMA: transport_send.
 */
int transport_send_more(struct transport_channel *ch, const transport_msg *msg);
int transport_flush(struct transport_channel *ch);
void transport_msg_free(transport_msg *msg);
/* Readable when transport_recv() may have something (for a struct loop).
 * A hint only: frames already read may wait in the channel's buffer, where
 * poll cannot see them, so poll only after transport_recv() said -EAGAIN
 * (TCP: one read takes every frame the socket holds; a look with timeout 0
 * right after a read that emptied the socket says -EAGAIN without another
 * system call). */
int transport_fd(const struct transport_channel *ch);

/*
 * Bulk path. Write the bytes of iov[0..n) to the peer's receive region at
 * remote_offset (contiguously). The memory must not change until
 * transport_bulk_commit() returns. -ERANGE if the run does not fit the
 * peer's region, -E2BIG if the commit would exceed TRANSPORT_MAX_RUNS
 * (commit first). Ranges written within one commit must not overlap (the
 * RDMA tag is recomputed over the final region contents). The peer must not be reading the same ranges while they
 * are rewritten: the checkpoint protocol above orders that.
 */
int transport_bulk_write(struct transport_channel *ch, const struct iovec *iov, int n,
			 uint64_t remote_offset);
/* Make everything written since the last commit visible as commit `id`. */
int transport_bulk_commit(struct transport_channel *ch, uint64_t id);

/* Sticky channel error (0 if healthy). */
int transport_error(const struct transport_channel *ch);

/*
 * Heartbeats, once two roles are paired. A thread sends Heartbeat{seq,
 * time_ns} every interval_ms (skipping a beat while another thread is
 * sending on the control path: that feeds the peer too; the receiver's
 * roles drop Heartbeat messages) and watches how long the peer has sent
 * nothing at all: any byte on any of the channel's sockets, counted when the
 * kernel received it (TCP_INFO), so a receiver busy with a checkpoint does
 * not take its peer for silent. After `misses` intervals of silence the
 * channel fails with -ETIMEDOUT (its sockets shut down: a call blocked on
 * the dead peer returns at once, every later call returns -ETIMEDOUT), right
 * after lost(opaque, silent_ms) is called, once, from that thread (so the
 * callers that see the failure find the reason recorded). On rdma: beats
 * are sent, silence is not watched (the transport's own timeouts apply).
 * Stopped by transport_heartbeat_stop() (idempotent) or transport_close().
 */
#define TRANSPORT_HEARTBEAT_MS	   100 /* defaults: a beat every 100 ms, */
#define TRANSPORT_HEARTBEAT_MISSES 8   /* the peer given up after 800 ms of silence */
int transport_heartbeat_start(struct transport_channel *ch, unsigned int interval_ms,
			      unsigned int misses, void (*lost)(void *opaque, unsigned int silent_ms),
			      void *opaque);
void transport_heartbeat_stop(struct transport_channel *ch);
/*
 * The heartbeat's round trip, both ways (each side measures its own). Each
 * beat echoes the peer's latest beat it has read (its time_ns, and how long
 * it was held here before this beat went out); the peer's reader, when it
 * reads the echo, takes now - time_ns - held. So a round trip is the link's
 * plus the time each side's reader took to read the beat (a checkpoint in
 * progress delays it): what a heartbeat really waits for. Samples are taken
 * by transport_recv() (the roles read beats and drop them). Any thread.
 */
struct transport_rtt {
	uint64_t samples;
	uint64_t last_ns, min_ns, max_ns, avg_ns;
};
void transport_heartbeat_rtt(struct transport_channel *ch, struct transport_rtt *out);
/* Fail the channel now with err (< 0), as a lost heartbeat does: sockets
 * shut down, blocked and later calls return err. Any thread. */
void transport_abort(struct transport_channel *ch, int err);
/* "tcp" or "rdma". */
const char *transport_backend(const struct transport_channel *ch);
/* Peer's name from the handshake. */
const char *transport_peer_name(const struct transport_channel *ch);

/*
 * ---- The witness: no split brain -------------------------------------------
 *
 * When the pair's link fails and both hosts live, each side sees the other
 * fall silent. A side that would serve alone (the secondary taking over, the
 * primary running on unprotected) first claims the right from the witness,
 * a third small process (`colovm witness`, on a third host) under the same
 * key scheme. Per pairing (StreamStart.pair, new at every pairing) the
 * witness grants the first claim and refuses every claim of the other side,
 * durably (its state file is fsync'd before it answers). A side that is
 * refused, or cannot reach the witness, or gets anything but a verdict,
 * stops its guest. So at most one copy ever serves on:
 *   link down, witness up        the first claimant serves (the secondary
 *                                claims two heartbeats later: the primary
 *                                is preferred), the other stops;
 *   primary dead, witness up     the secondary is granted and takes over;
 *   witness down, link up        nothing changes (it is asked only when the
 *                                pair breaks);
 *   witness down and link down   nobody is granted: both copies stop, and
 *   (or the other host dead)     an operator decides (`cont`).
 * Not covered: a pair whose sides name different witnesses (a config error
 * colovm cannot see), and a witness whose state file is lost.
 */
#define TRANSPORT_PAIR_LEN 16
enum transport_side { TRANSPORT_SIDE_PRIMARY, TRANSPORT_SIDE_SECONDARY };
/* Claim pairing `pair` for `side` at the witness at uri. 1: granted; 0:
 * refused; < 0: no verdict (unreachable, another key, garbage, no answer
 * within 2 s), after trying again every 250 ms for 3 s (not for another
 * key). msg says which, for a person. */
int transport_witness_claim(const char *uri, const struct transport_key *key,
			    const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
			    uint64_t checkpoint_id, const char *vm, char *msg, size_t len);
/* What a witness answered since it started (the thread that serves). */
struct transport_witness_stats {
	uint64_t granted, refused; /* claims, by verdict */
	uint64_t bad;		   /* peers that failed the handshake or sent no claim */
	uint64_t pairs;		   /* pairings whose grant is remembered */
	uint64_t probes;	   /* probes answered (transport_witness_probe) */
	uint64_t sessions;	   /* sides' sessions held open now */
};
/* Is the witness at uri serving claims under key? One authenticated probe
 * (no retry, answered within 2 s), which records nothing at the witness.
 * 0: it answers, out holds its counts (bad, probes: 0); < 0: no answer
 * (-EACCES: another key). msg says which, for a person. name: for its logs. */
int transport_witness_probe(const char *uri, const struct transport_key *key, const char *name,
			    struct transport_witness_stats *out, char *msg, size_t len);
/* A side's standing session with the witness at uri: an authenticated
 * channel held open by a thread of its own (probed every 5 s, opened again
 * a second after it breaks or cannot open; its going down and up logged),
 * so that a claim, when the pair breaks, is one round trip on it instead of
 * a connection, a handshake and a round trip. name: side and vm, for the
 * witness's logs. Returns at once, the session opening in the background. */
struct transport_witness_session;
int transport_witness_session_new(const char *uri, const struct transport_key *key,
				  enum transport_side side, const char *vm,
				  struct transport_witness_session **out);
/* Is the session open now? */
bool transport_witness_session_up(struct transport_witness_session *ws);
/* transport_witness_claim, on the session when it is open (which the claim
 * takes: never reused after a claim, the thread opens another); without
 * it, or when it fails to give a verdict, on channels of its own within
 * the same 3 s. */
int transport_witness_session_claim(struct transport_witness_session *ws,
				    const uint8_t pair[TRANSPORT_PAIR_LEN],
				    enum transport_side side, uint64_t checkpoint_id,
				    const char *vm, char *msg, size_t len);
void transport_witness_session_free(struct transport_witness_session *ws);
struct transport_witness;
/* Listen on uri; state_path (NULL: none) keeps the grants across restarts
 * (a bad line: -EBADMSG, logged with its number; other state file errors logged too). */
int transport_witness_new(const char *uri, const struct transport_key *key,
			  const char *state_path, struct transport_witness **out);
const char *transport_witness_uri(const struct transport_witness *w);
/* Readable when a claimant waits or a session has a message (an epoll fd:
 * the listener and the sessions held open, at most 1024). */
int transport_witness_fd(const struct transport_witness *w);
/* Answer what waits: a new peer accepted and its first message answered,
 * a session's messages (each bounded: 2 s for a handshake, 2 s for a
 * message). */
void transport_witness_serve_one(struct transport_witness *w);
/* What it answered since it started (the thread that serves). */
void transport_witness_stats(const struct transport_witness *w,
			     struct transport_witness_stats *out);
void transport_witness_free(struct transport_witness *w);

#endif
