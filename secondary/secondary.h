/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * secondary: the receiving side of the pair. Today: the target of a live
 * migration (--incoming) and the RAM cache that COLO checkpoints land in;
 * next: checkpoint apply and takeover.
 *
 * It speaks the checkpoint protocol of transport/transport.h over a
 * transport channel, loads device state through hw.h (two phases) and owns
 * the run-state moves of the receiving side (INMIGRATE -> RUNNING).
 *
 * Staging. A checkpoint never writes live guest RAM before it is complete
 * and verified (common/vmstate/vmstate.h's contract):
 *   - live migration into a VM that has never run: its guest RAM is the
 *     staging area (the transport's receive region); nothing runs unless
 *     every page arrived under a verified BulkCommit and the device state
 *     loaded; on any failure colovm exits without running the guest;
 *   - COLO checkpoints: pages land in a struct ram_cache (below), a copy of
 *     guest RAM; only a complete, verified checkpoint is flushed into the
 *     guest, and only the pages dirtied since the last one (by either side).
 */
#ifndef COLOVM_SECONDARY_H
#define COLOVM_SECONDARY_H

#include <stdint.h>

struct vm;
struct loop;
struct runstate;
struct transport_key;
struct secondary;

struct qmp;

struct secondary_opts {
	/* --peer-key; NULL: the public key (primary.h says what that means). */
	const struct transport_key *key;
	/*
	 * On the main loop, once: ret 0 (the guest was loaded and now runs) or
	 * -errno and msg naming what failed (the guest never ran).
	 */
	void (*done)(void *opaque, int ret, const char *msg);
	void *opaque;
	/* COLO: this VM's configuration ("key=value ...", colovm.c builds
	 * it); a primary whose StreamStart.vm_config differs is refused. */
	const char *vm_config;
	/* COLO: where the COLO_EXIT event goes when this copy takes over
	 * (NULL: nowhere). */
	struct qmp *qmp;
	/* COLO: the witness (transport.h: no split brain), NULL: none. With
	 * one, this side takes over only once the witness granted it;
	 * refused or unanswered, its guest stops (PAUSED). The primary must
	 * have one too, or the pair is refused. witness_key NULL: key. */
	const char *witness;
	const struct transport_key *witness_key;
	/* COLO: the VM has run before (a primary that switched over and is
	 * now its guest's standby): guest RAM is discarded (hw_vm_ram_discard)
	 * before the first sync lands in it. */
	bool ran;
	/* COLO, migrate with continue: the primary handed the guest over in
	 * its last checkpoint; this copy serves it now (the takeover is
	 * complete: secondary_colo_handover works) and is to protect it with
	 * the old primary, waiting as its standby on standby. Main loop, once.
	 * NULL: none (the guest runs on unprotected). */
	void (*switched)(void *opaque, const char *standby);
	/* COLO, replicated disks: the primary's writes since the last
	 * checkpoint kept in memory up to this many MiB (--disk-buffer-mem),
	 * the rest in an unlinked file under $TMPDIR or /var/tmp. */
	unsigned int disk_buffer_mib;
};

#define SECONDARY_DISK_BUFFER_MEM_DEFAULT 64 /* MiB */

/*
 * Listen on uri (tcp:HOST:PORT or rdma:HOST:PORT) for one migration source
 * and load what it sends into vm (created with vm_config.restore, run
 * state INMIGRATE) on a thread. The first peer decides: a failed handshake
 * (wrong key, not colovm) or a refused stream ends the incoming migration.
 */
int secondary_incoming(struct vm *vm, struct runstate *rs, struct loop *loop, const char *uri,
		       const struct secondary_opts *opts, struct secondary **out);
void secondary_free(struct secondary *s);

/* ---- COLO secondary (colo.c) ---------------------------------------------------
 *
 * Listen on uri for a COLO primary (StreamStart mode COLO) and keep vm (as
 * for secondary_incoming: created with vm_config.restore, INMIGRATE) a hot
 * copy of it. A primary that fails the handshake (key) or whose VM differs
 * is refused with a message on both sides, and the next one is awaited.
 * The first sync lands in the RAM cache; once complete the cache's pages
 * are copied into guest RAM (which was all zero), the devices loaded, this
 * side's dirty log started, and the guest runs: INMIGRATE -> COLO ->
 * RUNNING. Each checkpoint: RUNNING -> COLO, pages into the cache, device
 * state staged and checked, CheckpointAck, then the cache flushed (pages
 * of the checkpoint + pages this guest dirtied), devices applied, COLO ->
 * RUNNING. A checkpoint that fails half-way is dropped (ram_cache_abort):
 * the guest stays on its previous state and runs on, unprotected. The
 * primary's FailoverNotice{SHUTDOWN} shuts this side down.
 *
 * opts.done: on the main loop, once: ret 0 when the first sync is loaded
 * and the guest runs; -errno when the first sync failed after pages
 * arrived (the guest never ran: the caller should exit).
 */
struct secondary_colo;
typedef struct json_t json_t;

int secondary_colo_new(struct vm *vm, struct runstate *rs, struct loop *loop, const char *uri,
		       const struct secondary_opts *opts, struct secondary_colo **out);
void secondary_colo_free(struct secondary_colo *s);
/* x-colo-lost-heartbeat: take over now, as when the primary's heartbeat is
 * lost (the pair breaks, the guest runs on from the last checkpoint, its
 * packets to its own wire). -ENOTCONN: not paired. Main loop. */
int secondary_colo_lost_heartbeat(struct secondary_colo *s);
/*
 * Re-protect (main loop): this copy took over and its guest is to become a
 * primary's. Once the takeover is complete, the TCP rewriters (one per
 * virtio-net port, into rw[0..max)) that keep the connections open at the
 * takeover working belong to the caller, who must install its own hooks on
 * the ports at once (until then this side's keep rewriting); the listener
 * and the RAM cache are freed. The number of ports; -EBUSY while paired,
 * waiting, taking over, or handed over already.
 */
struct compare_rewrite;
int secondary_colo_handover(struct secondary_colo *s, struct compare_rewrite **rw,
			    unsigned int max);
/* QMP query-colo-status / query-colo-stats bodies (new references). */
json_t *secondary_colo_status(struct secondary_colo *s);
json_t *secondary_colo_stats(struct secondary_colo *s);
/* Guest RAM's digest right after checkpoint id was applied (0: the last),
 * and the replicated disks' images' (0: none); only for checkpoints the
 * primary asked one for (x-colo-ram-digest). */
int secondary_colo_digest(struct secondary_colo *s, uint64_t id, uint64_t *id_out, uint64_t *digest,
			  uint64_t *disk);
/* As primary_colo_page_hashes, right after the checkpoint was applied. */
int secondary_colo_page_hashes(struct secondary_colo *s, uint64_t id, const char *path,
			       uint64_t *got);

/* ---- RAM cache (ram-cache.c) -------------------------------------------------
 *
 * A copy of guest RAM, page for page (hw.h's geometry), that is the
 * transport's receive region on a protected secondary. The checkpoint's
 * pages land in it (the sender writes the region, or ram_cache_store);
 * ram_cache_note() records each verified run (BulkCommit). Then either
 *   commit: copy into guest RAM exactly the pages noted since the last
 *           commit plus the pages the secondary's own guest dirtied (its
 *           divergence is undone), with the guest paused; or
 *   abort:  guest RAM is not touched; the cache no longer holds a
 *           consistent checkpoint (the noted pages were overwritten), so
 *           commit refuses (-ESTALE) until ram_cache_reset() copies guest
 *           RAM into it again (a new first sync).
 * One thread (the secondary's checkpoint thread) calls these.
 */
struct ram_cache;

/* bytes: a multiple of 4096. The cache starts as a copy of guest. */
int ram_cache_new(uint8_t *guest, uint64_t bytes, struct ram_cache **out);
/* The same for a guest that never ran (all zero): the cache starts zero,
 * without reading guest RAM. */
int ram_cache_new_empty(uint8_t *guest, uint64_t bytes, struct ram_cache **out);
void ram_cache_free(struct ram_cache *c);
/* The cache's memory: the receive region for transport_listen/_accept. */
uint8_t *ram_cache_region(struct ram_cache *c, uint64_t *bytes);
/* Bytes [off, off + len) of the region hold the checkpoint's data:
 * -EINVAL if not page aligned, -ERANGE if outside. */
int ram_cache_note(struct ram_cache *c, uint64_t off, uint64_t len);
/* Copy npages pages into the cache at page `page` and note them. */
int ram_cache_store(struct ram_cache *c, uint64_t page, const void *data, uint64_t npages);
/* Pages noted since the last commit or abort. */
uint64_t ram_cache_pending(const struct ram_cache *c);
/* guest_dirty: hw.h bitmap of the pages the guest wrote (may be NULL).
 * *copied (may be NULL): pages copied. -ESTALE after an abort. */
int ram_cache_commit(struct ram_cache *c, const uint64_t *guest_dirty, uint64_t *copied);
void ram_cache_abort(struct ram_cache *c);
/* Copy all of guest RAM into the cache; it is consistent again. */
void ram_cache_reset(struct ram_cache *c);

#endif
