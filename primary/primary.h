/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * primary: the sending side of the pair. Today: live migration (the
 * source) and snapshot-save; next: the COLO checkpoint loop, which starts
 * with the same live migration as its first sync.
 *
 * It drives the layers below it and owns what they must not: the precopy
 * loop (hw.h's migratable surface: dirty log, device state, disks), the
 * channel (transport/, the checkpoint protocol in transport/transport.h),
 * the run-state moves (running -> finish-migrate -> postmigrate, save-vm)
 * and the QMP commands:
 *
 *   migrate {uri: tcp:HOST:PORT | rdma:HOST:PORT}   (QEMU's shape)
 *   migrate_cancel (also ends COLO protection), query-migrate,
 *   migrate-set-parameters {downtime-limit, max-bandwidth,
 *   x-checkpoint-delay | checkpoint-interval (ms), compare-timeout (ms),
 *   x-colo-ram-digest},
 *   query-migrate-parameters, snapshot-save {file}
 *   migrate {uri, continue: true, standby: URI} (checkpointed continuation:
 *   protect the VM with the secondary at uri, or the one protecting it
 *   already, then hand the guest over to it in one last checkpoint; the
 *   secondary serves from then on and protects it with this host, which
 *   waits as its standby on standby: the roles swap, protection goes on)
 *   colo-protect {uri}, x-colo-checkpoint
 *   event MIGRATION {status}
 *
 * Threads: QMP and the run-state moves on the main loop; the migration
 * streams on its own thread while the vCPUs run, asks the main loop (an
 * eventfd) to stop the VM and to finish, and waits on a condition variable.
 * COLO: the same thread, once the first sync is acknowledged, becomes the
 * checkpoint thread; it asks the main loop for every run-state move.
 *
 * Run states (common/runstate's table, QEMU's COLO path): first sync
 * RUNNING -> FINISH_MIGRATE (the last pages) -> COLO -> RUNNING; each
 * checkpoint RUNNING -> COLO (vCPUs parked) -> RUNNING after the ack; a
 * failed checkpoint (the secondary died, refused, timed out) COLO -> RUNNING
 * and the VM goes on unprotected.
 */
#ifndef COLOVM_PRIMARY_H
#define COLOVM_PRIMARY_H

#include <stddef.h>
#include <stdint.h>

struct vm;
struct loop;
struct runstate;
struct qmp;
struct transport_key;
struct primary;
struct compare_rewrite;
typedef struct json_t json_t;

/* Why a checkpoint is taken (CheckpointRequest.reason, query-colo-stats). */
enum colo_reason {
	COLO_REASON_PERIODIC,	     /* checkpoint-interval elapsed */
	COLO_REASON_REQUEST,	     /* QMP x-colo-checkpoint */
	COLO_REASON_MISMATCH,	     /* net-compare: the two outputs differ */
	COLO_REASON_COMPARE_TIMEOUT, /* net-compare: a packet held too long */
	COLO_REASON_COMPARE_LIMIT,   /* net-compare: it cannot hold more (frames, conns) */
	COLO_REASON__MAX,
};

/* "periodic", "request", "mismatch", "compare-timeout", "compare-limit". */
const char *colo_reason_name(enum colo_reason r);

/*
 * migrate-set-parameters: the tunables' defaults and ranges (ms unless
 * said). colovm run's flags and config keys for them take the same.
 */
#define PRIMARY_CKPT_INTERVAL_DEFAULT	   200 /* (QEMU's x-checkpoint-delay: 20000) */
#define PRIMARY_CKPT_INTERVAL_MIN	   1
#define PRIMARY_CKPT_INTERVAL_MAX	   3600000
#define PRIMARY_COMPARE_TIMEOUT_DEFAULT	   3000 /* QEMU colo-compare's compare_timeout */
#define PRIMARY_COMPARE_TIMEOUT_MIN	   1
#define PRIMARY_COMPARE_TIMEOUT_MAX	   3600000
#define PRIMARY_HEARTBEAT_INTERVAL_DEFAULT 100 /* transport.h's TRANSPORT_HEARTBEAT_MS */
#define PRIMARY_HEARTBEAT_INTERVAL_MIN	   10
#define PRIMARY_HEARTBEAT_INTERVAL_MAX	   60000
#define PRIMARY_HEARTBEAT_MISSES_DEFAULT   8 /* TRANSPORT_HEARTBEAT_MISSES */
#define PRIMARY_HEARTBEAT_MISSES_MIN	   2
#define PRIMARY_HEARTBEAT_MISSES_MAX	   1000
#define PRIMARY_DOWNTIME_LIMIT_DEFAULT	   300
#define PRIMARY_DOWNTIME_LIMIT_MIN	   0
#define PRIMARY_DOWNTIME_LIMIT_MAX	   2000000
#define PRIMARY_MAX_BANDWIDTH_DEFAULT	   0 /* bytes/s; 0: no limit */

struct primary_opts {
	/*
	 * Pre-shared key for the channel (--peer-key). NULL: the public
	 * key (transport_key_public()): every frame is
	 * still checked, but anyone who can reach the port could send or
	 * receive the guest; for trusted links only.
	 */
	const struct transport_key *key;
	/*
	 * The VM's configuration, "key=value ..." (colovm.c builds it): sent in
	 * StreamStart for COLO; the secondary refuses to pair when its own
	 * differs. NULL: "" (the secondary refuses unless it has none either).
	 */
	const char *vm_config;
	/*
	 * The witness (transport.h: no split brain) at this URI, or NULL:
	 * none. With one, a primary that loses its secondary runs on only
	 * once the witness granted it; refused or unanswered, it stops its
	 * guest (PAUSED) and drops the output it held. witness_key NULL: key.
	 */
	const char *witness;
	const struct transport_key *witness_key;
	/*
	 * Re-protect of a copy that was a secondary and took over (colovm.c):
	 * at colo-protect, on the main loop, before anything starts. It fills
	 * rw[0..max) with the TCP rewriters (net-compare) of its virtio-net
	 * ports that keep the connections open at the takeover working, and
	 * returns how many (0: none, this VM was never a secondary's), or
	 * -errno with a message in msg. The primary owns them from then on and
	 * applies them at its wire for good. NULL: none.
	 */
	int (*take_rewriters)(void *opaque, struct compare_rewrite **rw, unsigned int max,
			      char *msg, size_t len);
	/*
	 * migrate with continue (colovm.c): the switchover checkpoint was
	 * acknowledged; the guest now runs on the secondary, which protects
	 * it with this host next. On the main loop, the VM stopped (run state
	 * postmigrate), nothing of this role's packet path left on its ports:
	 * this colovm is to become the guest's standby, listening on standby.
	 * NULL: none (the VM stays stopped).
	 */
	void (*switched)(void *opaque, const char *standby);
	void *opaque;
};

/* Register the QMP commands (qmp may be NULL: none) on loop's thread. */
int primary_new(struct vm *vm, struct runstate *rs, struct loop *loop, struct qmp *qmp,
		const struct primary_opts *opts, struct primary **out);
/* Cancels a migration in progress (the guest goes on here) and unregisters;
 * a protected pair is ended (the secondary is told to shut down). */
void primary_free(struct primary *p);

/*
 * What QMP migrate-set-parameters does, for colovm run's flags: args is its
 * argument object (checkpoint-interval, compare-timeout, ...). 0, or -EINVAL
 * with QMP's message in msg (size len). Main loop.
 */
int primary_set_parameters(struct primary *p, json_t *args, char *msg, size_t len);

/*
 * Protect the running VM (main loop): connect to the secondary at uri and
 * start the first sync, then checkpoints; what QMP colo-protect does (a
 * refused connection is tried again for wait_ms: a peer getting ready). 0:
 * started (query-colo-status follows it; a later failure leaves the VM
 * running unprotected); -errno and msg (size len) when it cannot start.
 */
int primary_colo_protect(struct primary *p, const char *uri, unsigned int wait_ms, char *msg,
			 size_t len);
/*
 * Any thread: take a checkpoint as soon as possible for reason (net-compare:
 * COLO_REASON_MISMATCH, COLO_REASON_COMPARE_TIMEOUT). Requests made before
 * one starts are merged into it. -ENOTCONN when not protected.
 */
int primary_checkpoint_request(struct primary *p, enum colo_reason reason);
/* x-colo-lost-heartbeat: give the secondary up now (the VM runs on
 * unprotected); the secondary, alive in a drill, is told to stand down, as
 * migrate_cancel does. -ENOTCONN: not protected. Main loop. */
int primary_colo_lost_heartbeat(struct primary *p);
/* QMP query-colo-status / query-colo-stats bodies (main loop; new refs). */
json_t *primary_colo_status(struct primary *p);
json_t *primary_colo_stats(struct primary *p);
/* x-colo-ram-digest: guest RAM's digest at checkpoint id (0: the last one
 * that has a digest), and the replicated disks' (0: none). -ENOENT: none
 * kept (x-colo-ram-digest off, too old). */
int primary_colo_digest(struct primary *p, uint64_t id, uint64_t *id_out, uint64_t *digest,
			uint64_t *disk);
/* x-colo-ram-digest [id=ID] pages-file=PATH: each page's hash at checkpoint
 * id (0: the last that had a digest; the last HW_RAM_HASH_KEEP are kept),
 * into PATH (hw_ram_hashes_write), its id in *got; -ENODATA: none yet,
 * -ENOENT: not that one. Both sides: a diff of the two files names the
 * pages that differ (tests). */
int primary_colo_page_hashes(struct primary *p, uint64_t id, const char *path, uint64_t *got);

#endif
