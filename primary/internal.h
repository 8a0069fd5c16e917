/* SPDX-License-Identifier: GPL-2.0-only */
/* primary/ internals: the role's state, shared by migrate.c (the first sync,
 * QMP) and colo.c (checkpoints), and the RAM sender (not public). */
#ifndef COLOVM_PRIMARY_INTERNAL_H
#define COLOVM_PRIMARY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/qmp/qmp.h"
#include "hw/hw.h" /* struct hw_ram_hash_ring */
#include "primary/primary.h"
#include "transport/transport.h"

struct vm;
struct transport_channel;
struct vmstate_error;
struct runstate;
struct loop;
struct qmp;
typedef struct json_t json_t;

enum mig_status {
	MIG_NONE,
	MIG_SETUP,
	MIG_ACTIVE,
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLING,
	MIG_CANCELLED,
	MIG_COLO, /* QEMU's "colo": the first sync is done, checkpoints run */
};

/* Thread -> main loop requests (mig_call waits for the answer). */
enum mig_req {
	REQ_NONE,	 /* progress: emit MIGRATION active */
	REQ_STOP,	 /* running -> finish-migrate (the first sync's end) */
	REQ_DONE,	 /* the thread ended: join it, settle the run state */
	REQ_COLO_START,	 /* finish-migrate -> colo -> running: protected */
	REQ_CKPT_STOP,	 /* running -> colo; -EAGAIN when not running */
	REQ_CKPT_RESUME, /* colo -> running (unless stopped meanwhile) */
	REQ_SWITCH_STOP, /* running -> finish-migrate: the switchover's unit;
			  * -EAGAIN when not running */
};

enum colo_state {
	COLO_NONE,	  /* never protected */
	COLO_SYNC,	  /* first sync (live migration) to the secondary */
	COLO_PROTECTED,	  /* checkpoints run */
	COLO_UNPROTECTED, /* protection failed or ended: the VM runs alone */
	COLO_FENCED,	  /* the pair broke, the witness did not grant: stopped */
};

/* The parts of a checkpoint's pause, in order (query-colo-stats
 * "pause-phases"). */
enum colo_phase {
	PHASE_STOP,   /* the vCPUs stopped */
	PHASE_DISK,   /* the disk writes it covers sent (the queue drained) */
	PHASE_RAM,    /* request, dirty log, pages sent */
	PHASE_STATE,  /* digests (x-colo-ram-digest), device state sent */
	PHASE_ACK,    /* the secondary's acknowledgement awaited */
	PHASE_RESUME, /* the released packets, the vCPUs running again */
	PHASE__MAX
};

#define COLO_PAUSE_RING	 4096 /* checkpoints kept for the pause percentiles */
#define COLO_DIGEST_RING 64   /* x-colo-ram-digest entries kept */
/* The secondary's second ack (unit applied) is this late: it is stuck. */
#define COLO_APPLY_TIMEOUT_MS 30000

struct primary {
	struct vm *vm;
	struct runstate *rs;
	struct loop *loop;
	struct qmp *qmp;
	struct transport_key key;
	struct primary_opts opts; /* hooks; vm_config copied below */
	char *vm_config;
	char *witness;			  /* NULL: none */
	struct transport_key witness_key; /* (its key) */
	struct transport_witness_session *witness_session; /* held open to it */
	int evfd;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum mig_req req; /* thread -> main loop */
	bool call_done;	  /* main loop -> thread */
	bool freeing;	  /* primary_free: the main loop answers no more calls */
	int call_ret;
	_Atomic bool cancel;

	/* parameters (main loop writes, under lock) */
	uint64_t downtime_limit_ms;
	uint64_t max_bw; /* bytes/s, 0: unlimited */
	uint64_t ckpt_interval_ms;
	uint64_t compare_timeout_ms;
	uint64_t hb_interval_ms, hb_misses; /* the next pair's heartbeat */
	bool ram_digest;		    /* x-colo-ram-digest: hash guest RAM in each pause */
	/* ... and each page's hash at the last few such checkpoints (lock) */
	struct hw_ram_hash_ring page_hashes;

	/* outgoing */
	pthread_t thread;
	bool thread_live;
	char *uri;
	bool stopped_vm, was_running;
	int result;
	enum mig_status status; /* under lock */
	char errmsg[256];
	uint64_t start_ns, stop_ns, end_ns;
	uint64_t stopped_ns; /* the VM is stopped (FINISH_MIGRATE, STOP sent) */
	uint64_t transferred, remaining, total, dirty_rate, rounds;
	uint64_t expected_downtime_ms, downtime_ms, setup_ms;
	uint64_t round0_bytes, round0_ns; /* page data of round 0, its duration */
	uint64_t ack_ns;		  /* the target's ack read */
	double mbps;

	/* COLO (colo.c); under lock unless said otherwise */
	bool colo;	    /* the outgoing stream is mode COLO (main loop, set at start) */
	bool colo_started;  /* the first sync was acknowledged (thread, then main loop) */
	bool colo_shutdown; /* primary_free: tell the secondary to shut down */
	/* migrate with continue: once protected, the next checkpoint is the
	 * switchover (the secondary serves from it on and protects the guest
	 * with this host, its standby on this URI); NULL: none asked */
	char *standby;
	bool switched; /* that checkpoint was acknowledged (thread, then main loop) */
	unsigned int connect_wait_ms; /* a refused connect is retried that long */
	int colo_evfd;		      /* wakes the checkpoint thread (requests, cancel) */
	enum colo_state colo_state;
	struct colo_net *net;	/* the packet path (net.c): main loop creates and frees */
	struct colo_wire *wire; /* offsets at the wire (re-protect, net.c); set once */
	struct transport_channel *colo_ch; /* the thread's channel, for REQ_COLO_START */
	json_t *net_last;	/* the packet path's figures when protection last ended */
	struct colo_disk *disk; /* replicated disks (disk.c; the thread's, under lock) */
	json_t *disk_last;	/* their figures when protection last ended */
	_Atomic unsigned int hb_silent_ms; /* the heartbeat gave the secondary up */
	_Atomic bool hb_drill;		   /* x-colo-lost-heartbeat did */
	uint8_t pair[TRANSPORT_PAIR_LEN];  /* this pairing, for the witness (thread) */
	char fence_why[256]; /* the witness did not grant: why ("": run on; thread, then main) */
	char colo_why[256];  /* reason of the last state change */
	uint64_t colo_since_ns;
	unsigned int pending; /* 1 << enum colo_reason, requested */
	uint64_t ckpt_id;     /* last acknowledged checkpoint */
	uint64_t ckpt_ns;     /* its time (CLOCK_MONOTONIC) */
	uint64_t ckpt_count[COLO_REASON__MAX];
	uint64_t ckpt_failed;
	uint32_t pause_us[COLO_PAUSE_RING];
	uint64_t npause;
	uint64_t pages_total, bytes_total, pages_max, bytes_max, last_pages, last_bytes;
	struct hist pause_hist; /* every pause (us), for metrics */
	/* where the pauses went, summed over the checkpoints (ns), and the
	 * last checkpoint's */
	uint64_t phase_ns[PHASE__MAX], phase_last_ns[PHASE__MAX];
	uint64_t failovers[COLO_FAILOVER__MAX]; /* the secondary given up, by why */
	uint64_t fences;			/* the witness did not grant: stopped */
	struct transport_rtt rtt;		/* the heartbeat's, this pairing */
	struct {
		uint64_t id, digest, disk;
	} digests[COLO_DIGEST_RING];
	uint64_t ndigest;
};

/* migrate.c, for colo.c */
int mig_call(struct primary *m, enum mig_req req);
void mig_notify(struct primary *m, enum mig_req req);
int mig_send_device_state(struct primary *m, struct transport_channel *ch, uint64_t id,
			  uint64_t *bytes, struct vmstate_error *err);
/* colo.c, for migrate.c */
struct ram_send;
/* The thread's part after the first sync was acknowledged: checkpoints
 * until a failure or a cancel (err says why it ended); 0 once the switchover
 * checkpoint was acknowledged (m->switched, migrate with continue). */
int colo_run(struct primary *m, struct transport_channel *ch, struct ram_send *p, uint64_t *bitmap,
	     struct vmstate_error *err);
/* Main loop: the request REQ_COLO_START/CKPT_STOP/CKPT_RESUME; returns
 * the answer for mig_call. */
int colo_main_call(struct primary *m, enum mig_req req);
/* Main loop, from mig_finish: the COLO thread ended with ret. */
void colo_finish(struct primary *m, int ret, const char *msg);
void colo_set_state(struct primary *m, enum colo_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int colo_register(struct primary *m);
/* The witness's verdict once the pair broke (thread): m->fence_why. */
void colo_claim(struct primary *m);
void colo_unregister(struct primary *m);

/* net.c: COLO's packet path on the primary (see there). */
typedef struct Colovm__Transport__Packet Colovm__Transport__Packet;
struct colo_net;
/* Main loop, when protection starts: a comparator per virtio-net device. */
int colo_net_new(struct primary *m, uint64_t timeout_ms, struct colo_net **out);
/* Main loop, the VM paused at the end of the first sync: from its resume,
 * inbound frames are mirrored over ch and outbound frames compared. */
int colo_net_start(struct colo_net *n, struct transport_channel *ch);
/* Checkpoint thread, before the channel is closed: mirror no more. */
void colo_net_detach(struct colo_net *n);
/* Checkpoint thread: a Packet from the secondary (its guest's output). */
void colo_net_secondary(struct colo_net *n, const Colovm__Transport__Packet *pk);
/* Checkpoint thread: the VM is paused for a checkpoint / it was acknowledged. */
void colo_net_checkpoint_begin(struct colo_net *n);
void colo_net_checkpoint_acked(struct colo_net *n);
/* Any thread: compare-timeout (ms). */
void colo_net_set_timeout(struct colo_net *n, uint64_t timeout_ms);
/* Main loop: protection is over: held frames are released, frames pass
 * straight again. NULL is fine. */
void colo_net_free(struct colo_net *n);
/* Fenced: what the comparator still holds (and will release) is dropped. */
void colo_net_fence(struct colo_net *n);
/* query-colo-stats "network" (any thread; NULL: zeros). */
json_t *colo_net_stats(struct colo_net *n);

/*
 * net.c: the wire edge of a primary that was a secondary and took over. The
 * clients of the connections open then talk the old primary's sequence
 * numbers, its guest its own: at this VM's wire, outbound seq += offset and
 * inbound ack -= offset, for good (protected or not; the new secondary's
 * guest is a copy of this one, so the comparison is on raw guest output).
 * Main loop: adopt the rewriters (one per port, owned from now on) and hook
 * the ports (when no colo_net has them). NULL rw entries: no offsets.
 */
struct colo_wire;
int colo_wire_new(struct primary *m, struct compare_rewrite **rw, unsigned int n,
		  struct colo_wire **out);
void colo_wire_free(struct colo_wire *w);
/* Checkpoint thread: the offsets, one string per port (compare_rewrite_save,
 * NULL/0 when none), for DeviceState.net_offsets; the caller frees them. */
int colo_wire_save(struct colo_wire *w, uint8_t **bufs, size_t *lens, unsigned int n);
unsigned int colo_wire_ports(const struct colo_wire *w);
/* query-colo-stats: connections rewritten at the wire (any thread). */
uint64_t colo_wire_active(struct colo_wire *w);

/*
 * disk.c: replicated disks (--disk PATH,replicate), see there. Migration
 * thread: new (no replicated disk: *out NULL, 0) installs the tap, which
 * marks the blocks written; sync sends the images (stopped: only what was
 * marked); stream (VM stopped) hands what is marked from then on to a
 * sender thread; free removes the tap and stops the sender (before the channel
 * closes; after a transport_abort if a send may be stuck). NULL is fine
 * everywhere.
 */
struct colo_disk;
int colo_disk_new(struct vm *vm, struct transport_channel *ch, struct colo_disk **out);
int colo_disk_sync(struct colo_disk *k, bool stopped, _Atomic bool *cancel,
		   struct vmstate_error *err);
void colo_disk_stream(struct colo_disk *k);
/* Checkpoint thread, the VM running, before the stop: the limit of what
 * may be marked and not sent drops to 4 MiB (the guest's writes wait
 * beyond) and this waits (at most 1 s) until no more is marked, so the
 * stop sends little. */
void colo_disk_settle(struct colo_disk *k);
/* ... and the whole limit again when no stop follows (a skipped checkpoint;
 * colo_disk_drain does it after a stop). */
void colo_disk_unsettle(struct colo_disk *k);
/* Checkpoint thread, the VM stopped: wait until every marked block was
 * sent (they go ahead of the checkpoint's request); an error once a send
 * failed (the channel has too). */
int colo_disk_drain(struct colo_disk *k, struct vmstate_error *err);
void colo_disk_free(struct colo_disk *k);
/* {dirty-bytes, writes, write-bytes, sent-bytes, sync-bytes, sync-total,
 * sync-remaining, settle-last-ms, settle-max-ms}; NULL: none. */
json_t *colo_disk_stats(struct colo_disk *k);
/* The first run of consecutive marked blocks of bitmap word w (*bits, not
 * 0), taken out of *bits: its byte offset in an image of image_bytes in
 * *off, its length returned (whole 4 KiB blocks, the image's last one
 * possibly short; 256 KiB at most: a DiskWrite). */
size_t colo_disk_take_run(uint64_t *bits, uint64_t w, uint64_t image_bytes, uint64_t *off);

#define RAM_BATCH_PAGES	 256u  /* pages per rate-limit / cancel step (1 MiB) */
#define RAM_COMMIT_PAGES 4096u /* pages per bulk commit (16 MiB) */

/*
 * Sends pages named by a dirty bitmap over the channel's bulk path, into
 * the peer's receive region at page * HW_PAGE_SIZE, and commits them as
 * checkpoint `id` every RAM_COMMIT_PAGES pages and at the end of each pass.
 *
 * Live (bounce != NULL): the guest runs, so each batch is copied into a
 * ring of RAM_COMMIT_PAGES pages first (the bulk path needs the bytes to
 * stay put until the commit); a page the guest writes meanwhile is in the
 * next sync. Paused (bounce == NULL): pages go from guest RAM itself
 * (zero-copy over RDMA).
 */
struct ram_send {
	struct vm *vm;
	struct transport_channel *ch;
	uint64_t id;	      /* checkpoint id given to the commits */
	uint8_t *bounce;      /* RAM_COMMIT_PAGES pages, or NULL (paused) */
	bool skip_zero;	      /* the peer's region reads as zero: skip zero pages */
	_Atomic bool *cancel; /* NULL: cannot be cancelled */
	uint64_t limit;	      /* bytes/s, 0: unlimited */
	/* Called after each batch went out: page bytes sent, pages taken. */
	void (*progress)(void *opaque, uint64_t bytes, uint64_t pages);
	void *opaque;

	/* private */
	uint8_t *ram;
	uint64_t npages;
	uint64_t taken[RAM_BATCH_PAGES][2]; /* runs taken from the bitmap (first, n) */
	unsigned int ntaken, nbatch;
	struct {
		const uint8_t *src;
		uint64_t page, n;
	} out[RAM_BATCH_PAGES]; /* non-zero runs to send */
	unsigned int nout;
	uint64_t ring_used;   /* pages of the ring since the last commit */
	uint64_t uncommitted; /* pages sent since the last commit */
	uint64_t bw_start_ns, bw_bytes;
	uint64_t bytes; /* page bytes sent in this pass */
};

/* Set up p (p->vm, ch, id, bounce, skip_zero, cancel, limit, progress set). */
void ram_send_begin(struct ram_send *p);
/*
 * Send every page whose bit is set (clearing the bits) and commit. On
 * failure the pages of the failing batch and every bit still set go back
 * to the dirty log and the bitmap is cleared; err says why (-ECANCELED
 * after a cancel). Pages of earlier batches were handed to the channel: a
 * failed channel drops what it had not committed, so a caller that goes on
 * (a COLO checkpoint) puts back everything since the peer's last ack.
 */
int ram_send_bitmap(struct ram_send *p, uint64_t *bitmap, struct vmstate_error *err);
uint64_t ram_bitmap_count(const uint64_t *bitmap, uint64_t npages);

#endif
