/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, secondary side (secondary.h): the first sync and the checkpoints of
 * transport/transport.h's COLO mode, into the RAM cache.
 *
 *   main loop                 COLO thread                       primary
 *   transport_listen (region: the RAM cache)
 *                             accept: handshake, key  <-------- connect
 *                             StreamStart: version, RAM, VM config
 *                             CheckpointAck{0, ok | refused} -->
 *                             unit 1: BulkCommit (noted in the cache),
 *                             DeviceState ... last:
 *                               cache -> guest RAM (noted pages; the rest
 *                               is zero on both), devices loaded, dirty
 *                               log started
 *                             CheckpointAck{1} ---------------->
 *   INMIGRATE -> COLO -> <--- REQ_FIRST_RUN
 *   RUNNING
 *                             CheckpointRequest{n} <------------
 *   RUNNING -> COLO <-------- REQ_STOP
 *                             CheckpointReply{n} -------------->
 *                             BulkCommit{n}: noted   <==========  pages
 *                             DeviceState{n}... last: staged + checked
 *                             CheckpointAck{n} ---------------->  resumes
 *                             flush: pages noted + pages this guest wrote
 *                             (own dirty log), apply the staged devices,
 *                             [digest]
 *   COLO -> RUNNING <-------- REQ_RESUME
 *
 * Failures: before any page arrived (bad key, other VM, other protocol)
 * the primary is refused with a message and the next one awaited; during
 * the first sync (pages arrived, the guest never ran) opts.done gets the
 * error (colovm exits 2); during a checkpoint the cache is aborted, the
 * staged devices dropped and the guest runs on from its previous state,
 * unprotected (the primary is gone: failover proper comes with the
 * heartbeat); FailoverNotice{SHUTDOWN} from the primary shuts this side
 * down.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "secondary/internal.h"
#include "secondary/secondary.h"
#include "transport/transport.h"

#define SC_TIMEOUT_MS	   30000	/* channel: a stalled primary fails the unit */
#define SC_MAX_STATE_BYTES (256u << 20) /* device state of one unit */
#define SC_PAUSE_RING	   4096
#define SC_DIGEST_RING	   64
#define SC_NREASON	   5 /* primary.h enum colo_reason */

static const char *const sc_reason_names[SC_NREASON] = {"periodic", "request", "mismatch",
							"compare-timeout", "compare-limit"};

enum sc_state { SC_WAITING, SC_SYNC, SC_PROTECTED, SC_UNPROTECTED, SC_FENCED };
static const char *const sc_state_names[] = {"waiting", "sync", "protected", "unprotected",
					     "fenced"};

enum sc_req {
	SC_REQ_NONE,
	SC_REQ_FIRST_RUN,
	SC_REQ_STOP,
	SC_REQ_RESUME,
	SC_REQ_SHUTDOWN,
	SC_REQ_FAILED,
	SC_REQ_EXIT, /* took over: the COLO_EXIT event */
	SC_REQ_FENCE /* the witness did not grant: stop, COLO_EXIT */
};

struct secondary_colo {
	struct vm *vm;
	struct runstate *rs;
	struct loop *loop;
	struct secondary_opts opts;
	char *vm_config;
	struct transport_key key;
	char *witness; /* NULL: none */
	struct transport_key witness_key;
	struct transport_witness_session *witness_session; /* held open to it */
	uint8_t pair[TRANSPORT_PAIR_LEN]; /* this pairing (StreamStart) */
	struct transport_listener *listener;
	struct ram_cache *cache;
	struct sc_net *net;		   /* the packet path (net.c) */
	struct sc_disk *disk;		   /* replicated disks (disk.c); NULL: none */
	bool disk_fault;		   /* (thread) this side could not keep them */
	uint64_t *dirty;		   /* this guest's dirty pages at a flush */
	unsigned int hb_ms, hb_misses;	   /* the pair's heartbeat (StreamStart) */
	_Atomic unsigned int hb_silent_ms; /* the heartbeat gave the primary up */
	_Atomic bool hb_drill;		   /* x-colo-lost-heartbeat did */
	struct transport_channel *ch;	   /* while paired, under lock (the drill) */
	int evfd, quit;
	pthread_t thread;
	bool thread_live;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum sc_req req;
	bool call_done, freeing;
	bool ending;	   /* the thread's last request is posted: it is returning */
	char standby[256]; /* the switchover's (thread, then main loop): "" none */
	int call_ret;
	int fail_ret; /* SC_REQ_FAILED */
	char fail_msg[256];

	/* status, under lock */
	enum sc_state state;
	char why[256];
	uint64_t ckpt_id, ckpt_ns;
	uint64_t count[SC_NREASON];
	uint32_t pause_us[SC_PAUSE_RING];
	uint64_t npause;
	uint64_t pages_total, pages_max, copied_total, bytes_total;
	struct hist pause_hist;			/* every pause (us), for metrics */
	uint64_t failovers[COLO_FAILOVER__MAX]; /* took over, by why */
	uint64_t fences;			/* the witness did not grant: stopped */
	struct transport_rtt rtt;		/* the heartbeat's, this pairing */
	struct {
		uint64_t id, digest, disk;
	} digests[SC_DIGEST_RING];
	struct hw_ram_hash_ring page_hashes; /* the last digests' pages (lock) */
	uint64_t ndigest;
};

static void sc_set_state(struct secondary_colo *s, enum sc_state st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sc_set_state(struct secondary_colo *s, enum sc_state st, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->lock);
	s->state = st;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->lock);
}

/* ---- main loop side --------------------------------------------------------------- */

static int sc_main(struct secondary_colo *s, enum sc_req req)
{
	char why[sizeof(s->why)];
	int ret;

	switch (req) {
	case SC_REQ_FIRST_RUN:
		/* INMIGRATE -> COLO (the table's path for the secondary), then
		 * COLO -> RUNNING: both copies run. */
		ret = runstate_set(s->rs, RUN_STATE_COLO);
		if (!ret)
			ret = runstate_vm_start(s->rs);
		if (s->opts.done)
			s->opts.done(s->opts.opaque, ret, ret ? "cannot run the guest" : "");
		return ret;
	case SC_REQ_STOP:
		return runstate_vm_stop_force(s->rs, RUN_STATE_COLO);
	case SC_REQ_RESUME:
		if (!runstate_check(s->rs, RUN_STATE_COLO))
			return 0;
		return runstate_vm_start(s->rs);
	case SC_REQ_SHUTDOWN:
		runstate_request_shutdown(s->rs, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
		return 0;
	case SC_REQ_FAILED:
		if (s->opts.done)
			s->opts.done(s->opts.opaque, s->fail_ret, s->fail_msg);
		return 0;
	case SC_REQ_EXIT:
	case SC_REQ_FENCE:
		/* Fenced: RUNNING -> PAUSED; stopped by a checkpoint it stays in
		 * COLO (the run-state table leaves COLO only for RUNNING or
		 * SHUTDOWN) */
		ret = req == SC_REQ_FENCE && runstate_is_running(s->rs)
			  ? runstate_vm_stop(s->rs, RUN_STATE_PAUSED)
			  : 0;
		pthread_mutex_lock(&s->lock);
		snprintf(why, sizeof(why), "%s", s->why);
		pthread_mutex_unlock(&s->lock);
		qmp_event_colo_exit(
		    s->opts.qmp, "secondary",
		    req == SC_REQ_EXIT && (atomic_load(&s->hb_drill) || s->standby[0]), why,
		    req == SC_REQ_EXIT && !s->standby[0] ? atomic_load(&s->hb_silent_ms) : 0,
		    req == SC_REQ_FENCE);
		if (req == SC_REQ_EXIT && s->standby[0] && s->opts.switched)
			s->opts.switched(s->opts.opaque, s->standby);
		return ret;
	default:
		return 0;
	}
}

static void sc_ev_cb(void *opaque, uint32_t events)
{
	struct secondary_colo *s = opaque;
	enum sc_req req;
	uint64_t v;
	int ret;

	if (read(s->evfd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&s->lock);
	req = s->req;
	s->req = SC_REQ_NONE;
	pthread_mutex_unlock(&s->lock);
	if (req == SC_REQ_NONE)
		return;
	ret = sc_main(s, req);
	pthread_mutex_lock(&s->lock);
	s->call_done = true;
	s->call_ret = ret;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Thread: hand req to the main loop (last: the thread returns next). */
static int sc_request(struct secondary_colo *s, enum sc_req req, bool last)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	s->call_done = false;
	s->req = req;
	s->ending = last;
	pthread_mutex_unlock(&s->lock);
	return write(s->evfd, &one, sizeof(one)) < 0 ? -errno : 0;
}

/* Thread: ask the main loop for req and wait for its answer. */
static int sc_call(struct secondary_colo *s, enum sc_req req)
{
	int ret = sc_request(s, req, false);

	if (ret)
		return ret;
	pthread_mutex_lock(&s->lock);
	while (!s->call_done && !s->freeing)
		pthread_cond_wait(&s->cond, &s->lock);
	ret = s->call_done ? s->call_ret : -ECANCELED;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Thread: its last request, not waited for (the main loop may join the
 * thread when it handles it: secondary_colo_handover). */
static void sc_post(struct secondary_colo *s, enum sc_req req)
{
	int ret = sc_request(s, req, true);

	if (ret)
		log_err("COLO: eventfd: %s", strerror(-ret));
}

/* ---- the COLO thread ---------------------------------------------------------------- */

static int ack_msg(struct transport_channel *ch, uint64_t id, int status, const char *message,
		   bool applied)
{
	Colovm__Transport__CheckpointAck ack = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	ack.id = id;
	ack.status = status;
	ack.message = (char *)(message ? message : "");
	ack.applied = applied;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
	m.checkpoint_ack = &ack;
	return transport_send(ch, &m);
}

static int send_ack(struct transport_channel *ch, uint64_t id, int status, const char *message)
{
	return ack_msg(ch, id, status, message, false);
}

/* The primary's buffered disk writes into the images, flushed; a fault
 * here is this side's (disk_fault: it stands down, never takes over). */
static int disk_commit(struct secondary_colo *s, struct vmstate_error *err)
{
	int ret = sd_disk_commit(s->disk, err);

	if (ret)
		s->disk_fault = true;
	return ret;
}

/* Unit id is applied: its pages are out of the cache, the next unit's may
 * land in it (checkpoint protocol 2). */
static int send_applied(struct transport_channel *ch, uint64_t id)
{
	return ack_msg(ch, id, 0, NULL, true);
}

static void send_error(struct transport_channel *ch, int code, const char *message)
{
	Colovm__Transport__Error e = COLOVM__TRANSPORT__ERROR__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	e.code = code;
	e.message = (char *)message;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_ERROR;
	m.error = &e;
	transport_send(ch, &m);
}

static int send_reply(struct transport_channel *ch, uint64_t id, int status)
{
	Colovm__Transport__CheckpointReply r = COLOVM__TRANSPORT__CHECKPOINT_REPLY__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	r.id = id;
	r.status = status;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_REPLY;
	m.checkpoint_reply = &r;
	return transport_send(ch, &m);
}

/* The first key=value of a that b has otherwise (or lacks); 0 if equal. */
static int config_diff(const char *a, const char *b, char *out, size_t len)
{
	char *ca = strdup(a), *save = NULL;
	int ret = 0;

	if (!ca)
		return -ENOMEM;
	for (char *tok = strtok_r(ca, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		const char *eq = strchr(tok, '=');
		size_t klen = eq ? (size_t)(eq - tok) + 1 : strlen(tok);
		const char *p = b, *mine = NULL;

		while (p && *p) {
			if (!strncmp(p, tok, klen) && (p == b || p[-1] == ' ')) {
				mine = p;
				break;
			}
			p = strchr(p, ' ');
			p = p ? p + 1 : NULL;
		}
		if (!mine || strncmp(mine, tok, strlen(tok)) ||
		    (mine[strlen(tok)] && mine[strlen(tok)] != ' ')) {
			int n = mine ? (int)strcspn(mine, " ") : 0;

			snprintf(out, len, "the primary's VM has %s, this one %.*s", tok,
				 mine ? n : 4, mine ? mine : "none");
			ret = 1;
			break;
		}
	}
	free(ca);
	if (!ret && strlen(a) != strlen(b)) {
		snprintf(out, len, "the primary's VM is '%s', this one '%s'", a, b);
		ret = 1;
	}
	return ret;
}

static int check_start(struct secondary_colo *s, const Colovm__Transport__StreamStart *st,
		       struct vmstate_error *err)
{
	char diff[200];
	uint64_t bytes;

	hw_vm_ram(s->vm, &bytes);
	if (st->protocol != TRANSPORT_CKPT_VERSION)
		return vmstate_seterr(err, -EPROTONOSUPPORT,
				      "checkpoint protocol %u, this colovm speaks %u", st->protocol,
				      TRANSPORT_CKPT_VERSION);
	if (st->mode != COLOVM__TRANSPORT__STREAM_START__MODE__COLO)
		return vmstate_seterr(err, -EOPNOTSUPP,
				      "a live migration was sent to a COLO secondary (--colo "
				      "secondary takes colo-protect / --colo primary)");
	if (st->page_size != HW_PAGE_SIZE)
		return vmstate_seterr(err, -EINVAL, "page size %u, this one %u", st->page_size,
				      HW_PAGE_SIZE);
	if (st->ram_bytes != bytes)
		return vmstate_seterr(err, -EINVAL,
				      "the primary's VM has %llu MiB of RAM, this one %llu (--mem "
				      "must match)",
				      (unsigned long long)(st->ram_bytes >> 20),
				      (unsigned long long)(bytes >> 20));
	if (config_diff(st->vm_config ? st->vm_config : "", s->vm_config, diff, sizeof(diff)))
		return vmstate_seterr(err, -EINVAL, "%s (the VM flags must match)", diff);
	if (st->witness != (s->witness != NULL))
		return vmstate_seterr(err, -EINVAL,
				      "the primary %s a witness, this secondary %s (--witness on "
				      "both or neither: with one side alone a cut link could leave "
				      "two copies serving)",
				      st->witness ? "has" : "has no",
				      s->witness ? "has" : "has none");
	if (s->witness && st->pair.len != TRANSPORT_PAIR_LEN)
		return vmstate_seterr(err, -EPROTO, "the primary names no pairing for the witness");
	if (st->pair.len == TRANSPORT_PAIR_LEN) {
		pthread_mutex_lock(&s->lock);
		memcpy(s->pair, st->pair.data, TRANSPORT_PAIR_LEN);
		pthread_mutex_unlock(&s->lock);
	}
	s->hb_ms = st->heartbeat_interval_ms ? st->heartbeat_interval_ms : TRANSPORT_HEARTBEAT_MS;
	s->hb_misses = st->heartbeat_misses ? st->heartbeat_misses : TRANSPORT_HEARTBEAT_MISSES;
	return 0;
}

/* Note the runs of a BulkCommit in the cache. */
static int note_runs(struct secondary_colo *s, const Colovm__Transport__BulkCommit *c,
		     uint64_t *pages, struct vmstate_error *err)
{
	for (size_t i = 0; i + 1 < c->n_runs; i += 2) {
		int ret = ram_cache_note(s->cache, c->runs[i], c->runs[i + 1]);

		if (ret)
			return vmstate_seterr(err, ret, "pages outside guest RAM (%llu+%llu)",
					      (unsigned long long)c->runs[i],
					      (unsigned long long)c->runs[i + 1]);
		*pages += c->runs[i + 1] / HW_PAGE_SIZE;
	}
	return 0;
}

/* Device-state chunks of unit id gathered in *buf. 1: that was the last. */
static int gather_state(const Colovm__Transport__DeviceState *ds, uint64_t id, uint8_t **buf,
			size_t *len, struct vmstate_error *err)
{
	uint8_t *grown;

	if (ds->id != id || ds->data.len > SC_MAX_STATE_BYTES - *len)
		return vmstate_seterr(err, -EPROTO, "bad device state for unit %llu",
				      (unsigned long long)id);
	grown = realloc(*buf, *len + ds->data.len + 1);
	if (!grown)
		return vmstate_seterr(err, -ENOMEM, "out of memory");
	*buf = grown;
	memcpy(grown + *len, ds->data.data, ds->data.len);
	*len += ds->data.len;
	return ds->last ? 1 : 0;
}

/* Wait for the next message; -EINTR when quitting. */
static int sc_recv(struct secondary_colo *s, struct transport_channel *ch, transport_msg **m)
{
	for (;;) {
		struct pollfd q = {.fd = s->quit, .events = POLLIN};
		int ret = transport_recv(ch, 200, m);

		if (ret != -EAGAIN)
			return ret;
		if (poll(&q, 1, 0) > 0)
			return -EINTR;
	}
}

/* Why the channel gave nothing more, for a person, in buf. */
static const char *recv_error(struct secondary_colo *s, int ret, char *buf, size_t len)
{
	unsigned int silent = atomic_load(&s->hb_silent_ms);

	if (atomic_load(&s->hb_drill))
		return "x-colo-lost-heartbeat: taking over";
	if (silent) {
		snprintf(buf, len, "the primary fell silent: no heartbeat for %u ms", silent);
		return buf;
	}
	switch (ret) {
	case -EINTR:
		return "colovm is shutting down";
	case -EBADMSG:
	case -EPROTO:
		return "a bad frame from the primary (MAC, sequence or format)";
	case -ETIMEDOUT:
		return "the primary fell silent";
	default:
		return "the primary went away";
	}
}

/* The heartbeat thread gives the primary up: the channel fails right after,
 * and the checkpoint loop's next receive (within 200 ms) takes over. */
static void hb_lost(void *opaque, unsigned int silent_ms)
{
	struct secondary_colo *s = opaque;

	atomic_store(&s->hb_silent_ms, silent_ms ? silent_ms : 1);
	log_err("COLO: heartbeat: nothing from the primary for %u ms: taking over", silent_ms);
}

/* StreamStart and unit 1. 0: the guest runs. *pages_seen: a page arrived. */
static int first_sync(struct secondary_colo *s, struct transport_channel *ch, bool *pages_seen,
		      struct vmstate_error *err)
{
	transport_msg *m = NULL;
	uint8_t *state = NULL;
	size_t nstate = 0;
	uint64_t pages = 0, copied = 0;
	bool started = false, accepted = false;
	int ret;

	for (;;) {
		ret = sc_recv(s, ch, &m);
		if (ret) {
			vmstate_seterr(err, ret, "%s",
				       ret == -EINTR
					   ? "cancelled"
					   : "the primary went away during the first sync");
			break;
		}
		if (!started && m->body_case != COLOVM__TRANSPORT__MSG__BODY_STREAM_START) {
			ret = vmstate_seterr(err, -EPROTO, "no StreamStart");
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_STREAM_START) {
			ret = started ? vmstate_seterr(err, -EPROTO, "a second StreamStart")
				      : check_start(s, m->stream_start, err);
			started = true;
			if (!ret && send_ack(ch, 0, 0, NULL))
				ret = vmstate_seterr(err, -EPIPE, "the primary went away");
			accepted = !ret;
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT) {
			*pages_seen = true;
			ret = m->bulk_commit->id != 1
				  ? vmstate_seterr(err, -EPROTO, "pages outside unit 1")
				  : note_runs(s, m->bulk_commit, &pages, err);
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_DISK_WRITE) {
			*pages_seen = true; /* (the image is written: no way back) */
			ret = !accepted ? vmstate_seterr(err, -EPROTO,
							 "a disk write before "
							 "StreamStart")
					: sd_disk_sync_write(s->disk, m->disk_write, err);
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_DEVICE_STATE) {
			*pages_seen = true;
			ret = gather_state(m->device_state, 1, &state, &nstate, err);
			if (ret == 1 && sc_net_inherit(s->net, m->device_state->net_offsets,
						       m->device_state->n_net_offsets))
				ret = vmstate_seterr(err, -EPROTO, "bad net offsets in unit 1");
			if (ret == 1) {
				transport_msg_free(m);
				m = NULL;
				break;
			}
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_ERROR) {
			ret = vmstate_seterr(err, -ECONNRESET, "the primary gave up: %s",
					     m->error->message);
		} else {
			ret = vmstate_seterr(err, -EPROTO, "unexpected message (type %d)",
					     (int)m->body_case);
		}
		transport_msg_free(m);
		m = NULL;
		if (ret) {
			/* The primary waits for ack 0 (StreamStart), then 1. */
			send_ack(ch, accepted ? 1 : 0, ret, err->msg);
			break;
		}
	}
	if (ret < 0) {
		free(state);
		return ret;
	}
	/* The whole unit is here and verified: the cache becomes the guest's
	 * RAM (the pages not noted are zero in both: a guest that ran here
	 * before, as the primary, is forgotten first), then the devices. */
	ret = s->opts.ran ? hw_vm_ram_discard(s->vm) : 0;
	if (!ret)
		ret = ram_cache_commit(s->cache, NULL, &copied);
	if (!ret)
		ret = hw_vm_load_devices(s->vm, state, nstate, err);
	else
		vmstate_seterr(err, ret, "RAM cache: %s", strerror(-ret));
	free(state);
	if (!ret) {
		ret = hw_dirty_log_start(s->vm);
		if (ret)
			vmstate_seterr(err, ret, "cannot start dirty logging: %s", strerror(-ret));
	}
	if (!ret)
		ret = sd_disk_first_done(s->disk, err);
	if (ret) {
		send_ack(ch, 1, ret, err->msg);
		return ret;
	}
	log_info("COLO: first sync: %llu pages (%llu copied into guest RAM)",
		 (unsigned long long)pages, (unsigned long long)copied);
	/* Beats from now on: the primary watches this side from the ack, and
	 * the first run below waits for the main loop, which may be slow. */
	atomic_store(&s->hb_silent_ms, 0);
	atomic_store(&s->hb_drill, false);
	ret = transport_heartbeat_start(ch, s->hb_ms, s->hb_misses, hb_lost, s);
	if (ret)
		log_err("COLO: cannot start the heartbeat: %s", strerror(-ret));
	else
		log_info("COLO: heartbeat every %u ms, the primary given up after %u ms of silence",
			 s->hb_ms, s->hb_ms * s->hb_misses);
	if (send_ack(ch, 1, 0, NULL))
		return vmstate_seterr(err, -EPIPE, "cannot acknowledge the first sync");
	/* From its first instruction the guest talks through the primary. */
	sc_net_attach(s->net, ch);
	ret = sc_call(s, SC_REQ_FIRST_RUN);
	if (ret)
		return vmstate_seterr(err, ret, "cannot run the guest: %s", strerror(-ret));
	pthread_mutex_lock(&s->lock);
	s->ckpt_id = 1;
	s->ckpt_ns = clock_ns();
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void record(struct secondary_colo *s, uint64_t id, uint32_t reason, uint64_t pause_ns,
		   uint64_t pages, uint64_t copied, uint64_t bytes, bool have_digest,
		   uint64_t digest, uint64_t disk_digest)
{
	pthread_mutex_lock(&s->lock);
	s->ckpt_id = id;
	s->ckpt_ns = clock_ns();
	s->count[reason < SC_NREASON ? reason : 0]++;
	s->pause_us[s->npause++ % SC_PAUSE_RING] = (uint32_t)MIN(pause_ns / 1000, UINT32_MAX);
	hist_add(&s->pause_hist, pause_ns / 1000);
	s->pages_total += pages;
	s->pages_max = pages > s->pages_max ? pages : s->pages_max;
	s->copied_total += copied;
	s->bytes_total += bytes;
	if (have_digest) {
		s->digests[s->ndigest % SC_DIGEST_RING].id = id;
		s->digests[s->ndigest % SC_DIGEST_RING].digest = digest;
		s->digests[s->ndigest % SC_DIGEST_RING].disk = disk_digest;
		s->ndigest++;
	}
	pthread_mutex_unlock(&s->lock);
}

static void note_rtt(struct secondary_colo *s, struct transport_channel *ch)
{
	struct transport_rtt r;

	transport_heartbeat_rtt(ch, &r);
	pthread_mutex_lock(&s->lock);
	s->rtt = r;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Checkpoints until the primary goes. 0: it shut the pair down in order
 * (FailoverNotice); 1: it handed the guest over (the switchover's
 * checkpoint is applied, the guest stopped; s->standby set); else err says
 * why the pair broke. *stopped: a checkpoint holds the guest (to be
 * dropped and resumed by the caller).
 */
static int checkpoints(struct secondary_colo *s, struct transport_channel *ch, bool *stopped,
		       struct vmstate_error *err)
{
	uint64_t words = HW_BITMAP_WORDS(hw_vm_ram_pages(s->vm));
	uint64_t id = 0, pages = 0, t0 = 0;
	uint32_t reason = 0;
	bool in_ckpt = false, want_digest = false, lost = false;
	const char *standby = NULL; /* the switchover's (in the request below) */
	transport_msg *req = NULL;
	uint8_t *state = NULL;
	size_t nstate = 0;
	int ret;

	for (;;) {
		transport_msg *m = NULL;
		struct hw_devload *staged = NULL;
		uint64_t copied = 0, digest = 0, disk_digest = 0;

		ret = sc_recv(s, ch, &m);
		if (ret) {
			char why[128];

			vmstate_seterr(err, ret, "%s", recv_error(s, ret, why, sizeof(why)));
			break;
		}
		switch (m->body_case) {
		case COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT:
			/* its liveness is the heartbeat thread's business; the
			 * round trip it measured is status */
			note_rtt(s, ch);
			break;
		case COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_REQUEST:
			if (in_ckpt || m->checkpoint_request->id != s->ckpt_id + 1) {
				ret = vmstate_seterr(err, -EPROTO, "checkpoint %llu out of order",
						     (unsigned long long)m->checkpoint_request->id);
				break;
			}
			if (m->checkpoint_request->switchover &&
			    (!m->checkpoint_request->standby ||
			     !m->checkpoint_request->standby[0] ||
			     strlen(m->checkpoint_request->standby) >= sizeof(s->standby))) {
				ret = vmstate_seterr(err, -EPROTO,
						     "a switchover without a standby URI");
				break;
			}
			id = m->checkpoint_request->id;
			reason = m->checkpoint_request->reason;
			want_digest = m->checkpoint_request->digest;
			/* (the request is kept until the unit ends: its URI) */
			transport_msg_free(req);
			req = m;
			m = NULL;
			standby = req->checkpoint_request->switchover
				      ? req->checkpoint_request->standby
				      : NULL;
			t0 = clock_ns();
			pages = 0;
			nstate = 0;
			in_ckpt = true;
			ret = sc_call(s, SC_REQ_STOP);
			*stopped = !ret;
			if (send_reply(ch, id, ret) && !ret)
				ret = vmstate_seterr(err, -EPIPE, "the primary went away");
			else if (ret)
				vmstate_seterr(err, ret, "cannot stop the guest: %s",
					       strerror(-ret));
			break;
		case COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT:
			ret = !in_ckpt || m->bulk_commit->id != id
				  ? vmstate_seterr(err, -EPROTO, "pages outside a checkpoint")
				  : note_runs(s, m->bulk_commit, &pages, err);
			break;
		case COLOVM__TRANSPORT__MSG__BODY_DEVICE_STATE:
			if (!in_ckpt) {
				ret = vmstate_seterr(err, -EPROTO,
						     "device state outside a checkpoint");
				break;
			}
			ret = gather_state(m->device_state, id, &state, &nstate, err);
			if (ret != 1)
				break;
			/* All of unit id is here: check its device state, ack,
			 * then apply (the primary resumes meanwhile). */
			ret = hw_vm_devices_stage(s->vm, state, nstate, &staged, err);
			if (ret)
				break;
			/* (the primary's wire offsets: kept for a takeover) */
			ret = sc_net_inherit(s->net, m->device_state->net_offsets,
					     m->device_state->n_net_offsets);
			if (ret) {
				hw_vm_devices_drop(staged);
				ret = vmstate_seterr(err, ret, "bad net offsets in checkpoint %llu",
						     (unsigned long long)id);
				break;
			}
			/* A switchover's ack hands the guest over: its images
			 * hold the primary's writes first. */
			if (standby && (ret = disk_commit(s, err))) {
				hw_vm_devices_drop(staged);
				break;
			}
			/* From here the unit is whole and checked (its disk
			 * writes buffered): it is applied whatever becomes of
			 * the primary. A send that fails now (the primary died,
			 * or the link) ends the pair after the apply, and a
			 * takeover goes on from checkpoint id -- never from id's
			 * images and RAM with the last one's devices. (Not a
			 * switchover: its ack hands the guest over.) */
			lost = send_ack(ch, id, 0, NULL) != 0;
			if (lost && standby) {
				hw_vm_devices_drop(staged);
				ret = vmstate_seterr(err, -EPIPE, "the primary went away");
				break;
			}
			/* The primary's writes up to this checkpoint into the
			 * images, durably, while the primary runs on (it
			 * starts no checkpoint before the applied ack below;
			 * this guest is stopped: its overlay goes too). */
			if (!standby && (ret = disk_commit(s, err))) {
				hw_vm_devices_drop(staged);
				break;
			}
			memset(s->dirty, 0, words * sizeof(uint64_t));
			ret = hw_dirty_log_sync(s->vm, s->dirty);
			if (!ret)
				ret = ram_cache_commit(s->cache, s->dirty, &copied);
			if (ret) {
				hw_vm_devices_drop(staged);
				vmstate_seterr(err, ret, "cannot flush the RAM cache: %s",
					       strerror(-ret));
				break;
			}
			/* The cache is free for the next unit (not after the
			 * switchover: the primary has gone its way). */
			if (!standby && !lost && send_applied(ch, id))
				lost = true;
			ret = hw_vm_devices_apply(staged, err);
			if (ret)
				break;
			sc_net_checkpoint(s->net);
			if (want_digest) {
				uint64_t *ph = malloc(hw_vm_ram_pages(s->vm) * sizeof(*ph));
				int derr;

				digest = hw_vm_ram_digest_pages(s->vm, ph);
				pthread_mutex_lock(&s->lock);
				hw_ram_hash_ring_put(&s->page_hashes, id, ph);
				pthread_mutex_unlock(&s->lock);
				/* (the images, not the overlays: this checkpoint) */
				disk_digest = hw_vm_disk_digest(s->vm, &derr);
			}
			if (standby) {
				/* The primary's last: this copy serves from here
				 * on, once its packets go to its own wire (the
				 * caller), the guest stopped meanwhile. */
				record(s, id, reason, clock_ns() - t0, pages, copied,
				       pages * HW_PAGE_SIZE + nstate, want_digest, digest,
				       disk_digest);
				snprintf(s->standby, sizeof(s->standby), "%s", standby);
				log_info("COLO: switchover: checkpoint %llu applied, the primary "
					 "hands the guest over: this copy serves it now",
					 (unsigned long long)id);
				transport_msg_free(m);
				transport_msg_free(req);
				free(state);
				return 1;
			}
			ret = sc_call(s, SC_REQ_RESUME);
			if (ret) {
				vmstate_seterr(err, ret, "cannot resume: %s", strerror(-ret));
				break;
			}
			in_ckpt = false;
			*stopped = false;
			record(s, id, reason, clock_ns() - t0, pages, copied,
			       pages * HW_PAGE_SIZE + nstate, want_digest, digest, disk_digest);
			if (lost) {
				log_warn("COLO: checkpoint %llu applied, but the primary did not "
					 "hear of it",
					 (unsigned long long)id);
				ret = vmstate_seterr(err, -EPIPE, "the primary went away");
				break;
			}
			log_debug("COLO: checkpoint %llu applied: %llu pages, %llu copied, pause "
				  "%llu us",
				  (unsigned long long)id, (unsigned long long)pages,
				  (unsigned long long)copied,
				  (unsigned long long)((clock_ns() - t0) / 1000));
			break;
		case COLOVM__TRANSPORT__MSG__BODY_DISK_WRITE:
			/* A write of the primary's guest, for the next commit;
			 * none comes while its VM is paused for a checkpoint. */
			if (in_ckpt) {
				ret = vmstate_seterr(err, -EPROTO,
						     "a disk write inside checkpoint %llu",
						     (unsigned long long)id);
				break;
			}
			ret = sd_disk_buffer(s->disk, &m, err);
			s->disk_fault = ret < 0;
			break;
		case COLOVM__TRANSPORT__MSG__BODY_PACKET:
			/* A frame the primary's guest got: this guest gets it
			 * too, in the same order. The primary is paused during
			 * a checkpoint, so none come between its request and
			 * its last device state. */
			ret = sc_net_input(s->net, m->packet);
			if (ret)
				vmstate_seterr(err, ret, "a packet for port %u, direction %d",
					       m->packet->port, (int)m->packet->dir);
			break;
		case COLOVM__TRANSPORT__MSG__BODY_FAILOVER:
			log_info("COLO: the primary ends the pair: %s", m->failover->reason);
			vmstate_seterr(err, 0, "the primary ended the pair: %s",
				       m->failover->reason);
			transport_msg_free(m);
			transport_msg_free(req);
			free(state);
			return 0;
		case COLOVM__TRANSPORT__MSG__BODY_ERROR:
			ret = vmstate_seterr(err, -ECONNRESET, "the primary gave up: %s",
					     m->error->message);
			break;
		default:
			ret = vmstate_seterr(err, -EPROTO, "unexpected message (type %d)",
					     (int)m->body_case);
			break;
		}
		transport_msg_free(m);
		if (ret < 0) {
			if (in_ckpt)
				send_ack(ch, id, ret, err->msg);
			else if (s->disk_fault)
				send_error(ch, ret, err->msg);
			break;
		}
		ret = 0;
	}
	free(state);
	transport_msg_free(req);
	if (in_ckpt) {
		/* Never a mix: the cache is dropped, guest RAM and devices
		 * are those of the last complete checkpoint (+ this guest's
		 * own run since). */
		ram_cache_abort(s->cache);
		log_event(LOG_ERROR, "checkpoint-failure",
			  "COLO: checkpoint %llu dropped half-way: the guest stays on checkpoint "
			  "%llu",
			  (unsigned long long)id, (unsigned long long)s->ckpt_id);
	}
	return ret ? ret : -EPIPE;
}

/* The pair broke: with a witness, this side serves only once it granted
 * (transport.h). When the primary fell silent (or a drill said so) it may
 * live: this side asks two heartbeat intervals after the primary would (the
 * primary is preferred: a link that failed leaves it serving, no needless
 * takeover); when its connection was reset or closed, its colovm is gone
 * and this side asks at once. false: fenced (state, reason set). */
static bool claim(struct secondary_colo *s, const char *broke)
{
	struct pollfd pfd = {.fd = s->quit, .events = POLLIN};
	char why[200];
	uint64_t t0;
	int r;

	if (!s->witness)
		return true;
	if ((atomic_load(&s->hb_silent_ms) || atomic_load(&s->hb_drill)) &&
	    poll(&pfd, 1, (int)(2 * s->hb_ms)) > 0)
		return true; /* colovm is ending: no verdict needed */
	t0 = clock_ns();
	r = transport_witness_session_claim(s->witness_session, s->pair, TRANSPORT_SIDE_SECONDARY,
					    s->ckpt_id, s->vm_config, why, sizeof(why));
	if (r == 1) {
		log_info("COLO: %s in %llu ms: taking over", why,
			 (unsigned long long)((clock_ns() - t0) / 1000000));
		return true;
	}
	log_err("COLO: the pair broke (%s) and %s: the guest stops (no split brain)", broke, why);
	sc_set_state(s, SC_FENCED, "%s; %s", broke, why);
	return false;
}

/* The pair ended and this copy does not serve (it shuts down or is
 * fenced): the dirty log's stop, left for later, now. */
static void *not_serving(struct secondary_colo *s)
{
	hw_dirty_log_stop_now(s->vm);
	return NULL;
}

static void *sc_thread(void *arg)
{
	struct secondary_colo *s = arg;
	struct transport_channel *ch = NULL;
	struct vmstate_error err = {0};
	bool stopped = false, switched;
	sigset_t set;
	int ret;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		struct pollfd pfd[2] = {
		    {.fd = transport_listener_fd(s->listener), .events = POLLIN},
		    {.fd = s->quit, .events = POLLIN}};
		bool pages_seen = false;

		while (poll(pfd, 2, -1) < 0 && errno == EINTR)
			;
		if (pfd[1].revents)
			return NULL;
		ret = transport_accept(s->listener, &ch);
		if (ret) {
			char why[128];

			sc_accept_error(ret, "the primary", "a colovm primary", why, sizeof(why));
			log_err("COLO: refused a primary: %s", why);
			sc_set_state(s, SC_WAITING, "refused a primary: %s", why);
			continue;
		}
		log_info("COLO: primary %s connected", transport_peer_name(ch));
		sc_set_state(s, SC_SYNC, "first sync from %s", transport_peer_name(ch));
		memset(&err, 0, sizeof(err));
		ret = first_sync(s, ch, &pages_seen, &err);
		if (!ret)
			break;
		transport_close(ch);
		ch = NULL;
		if (ret == -EINTR)
			return NULL;
		if (pages_seen) {
			/* Half a first sync in the cache, a guest that never ran. */
			log_err("COLO: the first sync failed: %s", err.msg);
			sc_set_state(s, SC_UNPROTECTED, "the first sync failed: %s", err.msg);
			pthread_mutex_lock(&s->lock);
			s->fail_ret = ret;
			snprintf(s->fail_msg, sizeof(s->fail_msg), "%s", err.msg);
			pthread_mutex_unlock(&s->lock);
			sc_call(s, SC_REQ_FAILED);
			return NULL;
		}
		log_err("COLO: refused to pair: %s", err.msg);
		sc_set_state(s, SC_WAITING, "refused a primary: %s", err.msg);
	}
	pthread_mutex_lock(&s->lock);
	memset(&s->rtt, 0, sizeof(s->rtt));
	pthread_mutex_unlock(&s->lock);
	sc_set_state(s, SC_PROTECTED, "paired with %s", transport_peer_name(ch));
	log_event(LOG_INFO, "pair-formed", "COLO: paired with %s: protected",
		  transport_peer_name(ch));
	memset(&err, 0, sizeof(err));
	pthread_mutex_lock(&s->lock);
	s->ch = ch;
	pthread_mutex_unlock(&s->lock);
	ret = checkpoints(s, ch, &stopped, &err);
	switched = ret == 1;
	if (switched)
		snprintf(err.msg, sizeof(err.msg),
			 "switchover: %s handed the guest over at checkpoint %llu",
			 transport_peer_name(ch), (unsigned long long)s->ckpt_id);
	/* A drill or the heartbeat's verdict is why the pair broke, whatever
	 * the checkpoint under way then failed on (a send, a reset): the same
	 * reason whether the channel broke in a read or in a write. */
	if (ret < 0 && ret != -EINTR && !s->disk_fault &&
	    (atomic_load(&s->hb_drill) || atomic_load(&s->hb_silent_ms))) {
		char why[128];

		snprintf(err.msg, sizeof(err.msg), "%s", recv_error(s, ret, why, sizeof(why)));
	}
	pthread_mutex_lock(&s->lock);
	s->ch = NULL;
	pthread_mutex_unlock(&s->lock);
	/* No more packets over ch: the guest's go to its own wire now, or,
	 * with a witness, are dropped until this side serves or stops. */
	if (s->witness)
		sc_net_attach(s->net, NULL);
	else
		sc_net_failover(s->net);
	/* (stopped once the guest serves, or by whoever starts the log next:
	 * a re-protect may come at once) */
	hw_dirty_log_stop_later(s->vm);
	/* The primary's writes since the last checkpoint go, as its RAM does;
	 * a guest that runs on keeps its own (the overlay, merged). */
	sd_disk_end(s->disk, ret && ret != -EINTR && !s->disk_fault);
	if (!ret) {
		transport_close(ch);
		sc_set_state(s, SC_UNPROTECTED, "%s", err.msg);
		sc_call(s, SC_REQ_SHUTDOWN);
		return not_serving(s);
	}
	if (ret == -EINTR) {
		transport_close(ch);
		sc_set_state(s, SC_UNPROTECTED, "colovm is shutting down");
		return not_serving(s);
	}
	if (s->disk_fault) {
		/* This side's own fault: its disk is not the checkpoint's.
		 * The primary serves on; this copy must never run as one. */
		transport_close(ch);
		log_err("COLO: cannot keep the replicated disks: %s; this side stands down (the "
			"primary serves on, unprotected)",
			err.msg);
		sc_set_state(s, SC_UNPROTECTED, "stood down: %s", err.msg);
		sc_call(s, SC_REQ_SHUTDOWN);
		return not_serving(s);
	}
	if (!claim(s, err.msg)) {
		transport_close(ch);
		pthread_mutex_lock(&s->lock);
		s->fences++;
		pthread_mutex_unlock(&s->lock);
		log_event(LOG_ERROR, "fence", "COLO: the witness did not grant: fencing");
		sc_call(s, SC_REQ_FENCE);
		return not_serving(s);
	}
	if (switched) {
		log_event(LOG_INFO, "switchover", "COLO: %s: serving it from checkpoint %llu",
			  err.msg, (unsigned long long)s->ckpt_id);
	} else {
		enum colo_failover f = atomic_load(&s->hb_drill)       ? COLO_FAILOVER_DRILL
				       : atomic_load(&s->hb_silent_ms) ? COLO_FAILOVER_HEARTBEAT
								       : COLO_FAILOVER_PEER_LOST;

		pthread_mutex_lock(&s->lock);
		s->failovers[f]++;
		pthread_mutex_unlock(&s->lock);
		log_event(LOG_ERROR, "failover", "COLO: failover (%s): taking over",
			  qmp_colo_failover_name(f));
		log_err("COLO: the pair broke: %s; the guest runs on from checkpoint %llu, "
			"unprotected",
			err.msg, (unsigned long long)s->ckpt_id);
	}
	/* This copy serves now: its guest's packets go to its own wire, and
	 * the switches learn where its MACs are. */
	sc_net_failover(s->net);
	hw_vm_announce(s->vm);
	sc_set_state(s, SC_UNPROTECTED, "%s", err.msg);
	if (stopped && sc_call(s, SC_REQ_RESUME))
		log_err("COLO: cannot resume the guest");
	/* (not waited for: after a switchover the main loop re-protects the
	 * guest at once, which joins this thread) */
	sc_post(s, SC_REQ_EXIT);
	/* The broken channel goes after the takeover (joining its threads,
	 * freeing its buffers: milliseconds in a host VM). */
	transport_close(ch);
	hw_dirty_log_stop_now(s->vm);
	return NULL;
}

int secondary_colo_lost_heartbeat(struct secondary_colo *s)
{
	int ret = -ENOTCONN;

	pthread_mutex_lock(&s->lock);
	if (s->ch && s->state == SC_PROTECTED) {
		atomic_store(&s->hb_drill, true);
		log_info("COLO: x-colo-lost-heartbeat: taking over from the primary");
		transport_abort(s->ch, -ETIMEDOUT);
		ret = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int secondary_colo_handover(struct secondary_colo *s, struct compare_rewrite **rw, unsigned int max)
{
	int ret;

	bool ending;

	/* Only once the takeover is complete: the COLO thread has ended, or
	 * is returning (its last request posted). */
	pthread_mutex_lock(&s->lock);
	ending = s->ending;
	pthread_mutex_unlock(&s->lock);
	if (!s->thread_live ||
	    (pthread_tryjoin_np(s->thread, NULL) && (!ending || pthread_join(s->thread, NULL))))
		return -EBUSY;
	s->thread_live = false;
	ret = sc_net_handover(s->net, rw, max);
	if (ret < 0)
		return ret;
	/* No primary comes here any more: its port and the RAM cache go. */
	transport_listener_close(s->listener);
	s->listener = NULL;
	ram_cache_free(s->cache);
	s->cache = NULL;
	sc_set_state(s, SC_UNPROTECTED, "re-protecting its guest as the primary");
	return ret;
}

/* ---- set-up, status -------------------------------------------------------------------- */

int secondary_colo_new(struct vm *vm, struct runstate *rs, struct loop *loop, const char *uri,
		       const struct secondary_opts *opts, struct secondary_colo **out)
{
	struct secondary_colo *s = calloc(1, sizeof(*s));
	struct transport_opts topts = {.timeout_ms = SC_TIMEOUT_MS,
				       .name = "colovm COLO secondary"};
	uint64_t bytes;
	uint8_t *ram = hw_vm_ram(vm, &bytes);
	int ret;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->rs = rs;
	s->loop = loop;
	s->evfd = s->quit = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	hist_init(&s->pause_hist, hist_pause_us, HIST_PAUSE_BUCKETS);
	if (opts)
		s->opts = *opts;
	s->opts.key = NULL;
	s->vm_config = strdup(opts && opts->vm_config ? opts->vm_config : "");
	s->opts.vm_config = NULL;
	if (opts && opts->key)
		s->key = *opts->key;
	else
		transport_key_public(&s->key);
	s->opts.witness = NULL;
	s->opts.witness_key = NULL;
	if (opts && opts->witness) {
		s->witness = strdup(opts->witness);
		s->witness_key = opts->witness_key ? *opts->witness_key : s->key;
	}
	s->dirty = calloc(HW_BITMAP_WORDS(hw_vm_ram_pages(vm)), sizeof(uint64_t));
	ret = sc_net_new(vm, &s->net);
	if (ret) {
		log_err("COLO: cannot set up the packet path: %s", strerror(-ret));
		goto err;
	}
	ret = sd_disk_new(vm, (uint64_t)(opts ? opts->disk_buffer_mib : 0) << 20, &s->disk);
	if (ret)
		goto err;
	ret = s->vm_config && s->dirty && (s->witness || !opts || !opts->witness)
		  ? ram_cache_new_empty(ram, bytes, &s->cache)
		  : -ENOMEM;
	if (ret) {
		log_err("COLO: cannot allocate the RAM cache (%llu MiB): %s",
			(unsigned long long)(bytes >> 20), strerror(-ret));
		goto err;
	}
	topts.key = &s->key;
	topts.recv_region = ram_cache_region(s->cache, &bytes);
	topts.recv_region_len = bytes;
	ret = transport_listen(uri, &topts, &s->listener);
	if (ret) {
		log_err("--listen %s: %s", uri,
			ret == -EINVAL ? "expected tcp:HOST:PORT or rdma:HOST:PORT"
				       : strerror(-ret));
		goto err;
	}
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->quit = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->evfd < 0 || s->quit < 0) {
		ret = -errno;
		goto err;
	}
	ret = loop_add_fd(loop, s->evfd, 0x001 /* EPOLLIN */, sc_ev_cb, s);
	if (ret) {
		close(s->evfd);
		s->evfd = -1;
		goto err;
	}
	if (s->witness) {
		ret = transport_witness_session_new(s->witness, &s->witness_key,
						    TRANSPORT_SIDE_SECONDARY, NULL,
						    &s->witness_session);
		if (ret)
			goto err;
	}
	sc_set_state(s, SC_WAITING, "waiting for a primary on %s",
		     transport_listener_uri(s->listener));
	ret = -pthread_create(&s->thread, NULL, sc_thread, s);
	if (ret)
		goto err;
	s->thread_live = true;
	log_info("COLO secondary: waiting for a primary on %s%s",
		 transport_listener_uri(s->listener),
		 opts && opts->key ? "" : " (no --peer-key: trusted link only)");
	*out = s;
	return 0;
err:
	secondary_colo_free(s);
	return ret;
}

void secondary_colo_free(struct secondary_colo *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->thread_live) {
		pthread_mutex_lock(&s->lock);
		s->freeing = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
		if (write(s->quit, &one, sizeof(one)) < 0)
			log_err("COLO: eventfd: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	if (s->evfd >= 0) {
		loop_del_fd(s->loop, s->evfd);
		close(s->evfd);
	}
	if (s->quit >= 0)
		close(s->quit);
	transport_listener_close(s->listener);
	sc_net_free(s->net);
	sd_disk_free(s->disk);
	ram_cache_free(s->cache);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	memset(&s->key, 0, sizeof(s->key));
	transport_witness_session_free(s->witness_session);
	memset(&s->witness_key, 0, sizeof(s->witness_key));
	free(s->witness);
	free(s->dirty);
	hw_ram_hash_ring_free(&s->page_hashes);
	free(s->vm_config);
	free(s);
}

json_t *secondary_colo_status(struct secondary_colo *s)
{
	json_t *o;

	pthread_mutex_lock(&s->lock);
	o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "mode",
		      s->state == SC_UNPROTECTED || s->state == SC_FENCED ? "none" : "secondary",
		      "last-mode", "secondary", "state", sc_state_names[s->state], "reason", s->why,
		      "last-checkpoint", (json_int_t)s->ckpt_id, "last-checkpoint-age-ms",
		      (json_int_t)(s->ckpt_ns ? (clock_ns() - s->ckpt_ns) / 1000000 : 0));
	if (o && s->witness)
		json_object_set_new(o, "witness", json_string(s->witness));
	qmp_colo_status_pair(o, s->pair, sizeof(s->pair));
	if (o && s->state == SC_PROTECTED)
		json_object_set_new(o, "heartbeat-rtt",
				    qmp_rtt_json(s->rtt.samples, s->rtt.last_ns, s->rtt.min_ns,
						 s->rtt.avg_ns, s->rtt.max_ns));
	pthread_mutex_unlock(&s->lock);
	return o;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

json_t *secondary_colo_stats(struct secondary_colo *s)
{
	json_t *o, *by = json_object(), *pause;
	uint64_t n = 0, k;
	uint32_t *v;

	pthread_mutex_lock(&s->lock);
	for (unsigned int r = 0; r < SC_NREASON; r++) {
		json_object_set_new(by, sc_reason_names[r], json_integer((json_int_t)s->count[r]));
		n += s->count[r];
	}
	k = MIN(s->npause, SC_PAUSE_RING);
	v = k ? malloc(k * sizeof(*v)) : NULL;
	if (v) {
		memcpy(v, s->pause_us, k * sizeof(*v));
		qsort(v, k, sizeof(*v), cmp_u32);
		pause = json_pack("{s:f,s:f,s:f,s:I}", "median-ms", v[k / 2] / 1000.0, "p99-ms",
				  v[MIN(k - 1, (k * 99) / 100)] / 1000.0, "max-ms",
				  v[k - 1] / 1000.0, "samples", (json_int_t)k);
	} else {
		pause = json_pack("{s:f,s:f,s:f,s:I}", "median-ms", 0.0, "p99-ms", 0.0, "max-ms",
				  0.0, "samples", (json_int_t)0);
	}
	free(v);
	o = json_pack(
	    "{s:s,s:I,s:o,s:o,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I}}", "mode", "secondary", "checkpoints",
	    (json_int_t)n, "by-reason", by, "pause", pause, "pages", "mean",
	    (json_int_t)(n ? s->pages_total / n : 0), "max", (json_int_t)s->pages_max, "total",
	    (json_int_t)s->pages_total, "copied-total", (json_int_t)s->copied_total, "bytes",
	    "mean", (json_int_t)(n ? s->bytes_total / n : 0), "total", (json_int_t)s->bytes_total);
	if (o)
		qmp_colo_stats_breaks(o, s->failovers, s->fences, &s->pause_hist);
	pthread_mutex_unlock(&s->lock);
	if (o && s->net)
		json_object_set_new(o, "network", sc_net_stats(s->net));
	if (o && s->disk)
		json_object_set_new(o, "disk", sd_disk_stats(s->disk));
	return o;
}

int secondary_colo_page_hashes(struct secondary_colo *s, uint64_t id, const char *path,
			       uint64_t *got)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = hw_ram_hash_ring_write(&s->page_hashes, id, path, hw_vm_ram_pages(s->vm), got);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int secondary_colo_digest(struct secondary_colo *s, uint64_t id, uint64_t *id_out, uint64_t *digest,
			  uint64_t *disk)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&s->lock);
	for (uint64_t i = 0; i < MIN(s->ndigest, SC_DIGEST_RING); i++) {
		uint64_t k = (s->ndigest - 1 - i) % SC_DIGEST_RING;

		if (!id || s->digests[k].id == id) {
			*id_out = s->digests[k].id;
			*digest = s->digests[k].digest;
			*disk = s->digests[k].disk;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}
