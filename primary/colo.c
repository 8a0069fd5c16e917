/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, primary side (primary.h): the checkpoint loop that follows the
 * first sync (migrate.c's thread with StreamStart mode COLO), its run-state
 * moves, status and statistics.
 *
 *   checkpoint thread                main loop              secondary
 *   wait: interval elapsed, a request (x-colo-checkpoint, net-compare),
 *         a message or EOF from the secondary, a cancel
 *   REQ_CKPT_STOP ----------------> RUNNING -> COLO (vCPUs parked)
 *   CheckpointRequest{id, reason} -------------------------> stops its guest
 *   dirty log sync (KVM + VMM writes)
 *   bulk: the dirty pages, straight from guest RAM (zero-copy over RDMA),
 *   BulkCommit{id} ----------------------------------------> into its cache
 *   [x-colo-ram-digest: hash guest RAM]
 *   DeviceState{id}... {last} -----------------------------> staged, checked
 *   <----------------------------------------- CheckpointReply{id} (stopped)
 *   <----------------------------------------- CheckpointAck{id, 0}
 *   net.c: the packets this checkpoint covers go to the wire
 *   REQ_CKPT_RESUME --------------> COLO -> RUNNING        flush cache, load
 *                                                         devices, resume
 *
 * The request goes out before the dirty sync so that the secondary stops
 * while the primary collects; its reply is only checked with the ack, so
 * the pause is: stop + sync + send + one round trip + resume.
 *
 * Any failure (the channel broke or timed out, the secondary refused, the
 * main loop is gone) ends protection: dirty bits not sent go back to the
 * log (ram_send), the channel is dropped, the VM leaves COLO for RUNNING if
 * a checkpoint held it, and runs on alone (query-colo-status "unprotected",
 * with the reason). An orderly end on this side (quit, guest shutdown,
 * migrate_cancel) sends FailoverNotice{SHUTDOWN}: the secondary must not
 * run on as a second copy.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"
#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "primary/internal.h"
#include "primary/primary.h"
#include "transport/transport.h"

#define COLO_ACK_TIMEOUT_MS 20000 /* a checkpoint not acknowledged by then fails */

static const char *const reason_names[COLO_REASON__MAX] = {
    [COLO_REASON_PERIODIC] = "periodic",
    [COLO_REASON_REQUEST] = "request",
    [COLO_REASON_MISMATCH] = "mismatch",
    [COLO_REASON_COMPARE_TIMEOUT] = "compare-timeout",
    [COLO_REASON_COMPARE_LIMIT] = "compare-limit",
};

static const char *const state_names[] = {
    [COLO_NONE] = "none",	    [COLO_SYNC] = "sync",
    [COLO_PROTECTED] = "protected", [COLO_UNPROTECTED] = "unprotected",
    [COLO_FENCED] = "fenced",
};

const char *colo_reason_name(enum colo_reason r)
{
	return (unsigned int)r < COLO_REASON__MAX ? reason_names[r] : "unknown";
}

void colo_set_state(struct primary *m, enum colo_state st, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->lock);
	m->colo_state = st;
	m->colo_since_ns = clock_ns();
	va_start(ap, fmt);
	vsnprintf(m->colo_why, sizeof(m->colo_why), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&m->lock);
}

static void colo_wake(struct primary *m)
{
	uint64_t one = 1;

	if (write(m->colo_evfd, &one, sizeof(one)) < 0)
		log_err("colo: eventfd: %s", strerror(errno));
}

int primary_checkpoint_request(struct primary *m, enum colo_reason reason)
{
	int ret = 0;

	if ((unsigned int)reason >= COLO_REASON__MAX)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (m->colo_state != COLO_PROTECTED)
		ret = -ENOTCONN;
	else
		m->pending |= 1u << reason;
	pthread_mutex_unlock(&m->lock);
	if (!ret)
		colo_wake(m);
	return ret;
}

/* ---- main loop side ------------------------------------------------------------ */

int colo_main_call(struct primary *m, enum mig_req req)
{
	switch (req) {
	case REQ_COLO_START: {
		/* The first sync is acknowledged: FINISH_MIGRATE -> COLO (the
		 * table's path for the primary), then COLO -> RUNNING. */
		int ret = runstate_set(m->rs, RUN_STATE_COLO);

		/* The VM is paused: the packet path switches over between
		 * two frames (net.c). */
		if (!ret && m->net)
			ret = colo_net_start(m->net, m->colo_ch);
		if (!ret)
			ret = m->was_running ? runstate_vm_start(m->rs)
					     : runstate_set(m->rs, RUN_STATE_PAUSED);
		if (!ret)
			log_info("COLO: the secondary holds a copy of the guest: protected, a "
				 "checkpoint every %llu ms",
				 (unsigned long long)m->ckpt_interval_ms);
		return ret;
	}
	case REQ_CKPT_STOP:
		/* A VM stopped by the user (QMP stop) changes nothing: skip. */
		if (!runstate_is_running(m->rs))
			return -EAGAIN;
		return runstate_vm_stop_force(m->rs, RUN_STATE_COLO);
	case REQ_SWITCH_STOP:
		/* The switchover's unit: the guest leaves this host, as at the
		 * end of a live migration (RUNNING -> FINISH_MIGRATE, then
		 * POSTMIGRATE once the secondary has it). */
		if (!runstate_is_running(m->rs))
			return -EAGAIN;
		return runstate_vm_stop_force(m->rs, RUN_STATE_FINISH_MIGRATE);
	case REQ_CKPT_RESUME:
		/* A "stop" during the checkpoint moved COLO -> PAUSED: stay. */
		if (!runstate_check(m->rs, RUN_STATE_COLO))
			return 0;
		return runstate_vm_start(m->rs);
	default:
		return -EINVAL;
	}
}

/* The pair broke and this side would run on alone: only with the witness's
 * grant (transport.h, no split brain). Migration thread, the channel
 * closed; the guest's output stays held meanwhile. colo_finish reads the
 * verdict. */
void colo_claim(struct primary *m)
{
	char why[sizeof(m->fence_why)];
	uint64_t t0 = clock_ns();
	bool shutdown;
	int r;

	pthread_mutex_lock(&m->lock);
	shutdown = m->colo_shutdown || m->switched;
	m->fence_why[0] = 0;
	pthread_mutex_unlock(&m->lock);
	if (!m->witness || !m->colo_started || shutdown)
		return;
	r = m->witness_session ? transport_witness_session_claim(m->witness_session, m->pair,
								 TRANSPORT_SIDE_PRIMARY, m->ckpt_id,
								 m->uri, why, sizeof(why))
			       : transport_witness_claim(m->witness, &m->witness_key, m->pair,
							 TRANSPORT_SIDE_PRIMARY, m->ckpt_id, m->uri,
							 why, sizeof(why));
	if (r == 1) {
		log_info("COLO: %s in %llu ms: the VM runs on", why,
			 (unsigned long long)((clock_ns() - t0) / 1000000));
		return;
	}
	log_err("COLO: %s: the VM stops (no split brain)", why);
	pthread_mutex_lock(&m->lock);
	snprintf(m->fence_why, sizeof(m->fence_why), "%s", why);
	pthread_mutex_unlock(&m->lock);
}

/* Protection is over (main loop): the packet path's figures are kept for
 * query-colo-stats, and it goes (what it held is released, unless fenced). */
static void colo_net_end(struct primary *m)
{
	if (m->net) {
		json_decref(m->net_last);
		m->net_last = colo_net_stats(m->net);
	}
	colo_net_free(m->net);
	m->net = NULL;
}

/* Refused by the witness: the guest stops (RUNNING -> PAUSED; stopped by
 * a checkpoint it stays in COLO, which the run-state table leaves only for
 * RUNNING or SHUTDOWN) and what it sent since the last acknowledged
 * checkpoint never reaches the wire. */
static void colo_fence(struct primary *m, const char *why)
{
	if (runstate_is_running(m->rs) && runstate_vm_stop(m->rs, RUN_STATE_PAUSED))
		log_err("COLO: cannot stop the VM");
	log_err("COLO: fenced: %s; the VM stays stopped (an operator may 'cont')", why);
	colo_set_state(m, COLO_FENCED, "%s", why);
	if (m->net)
		colo_net_fence(m->net);
	colo_net_end(m);
}

/* The switchover checkpoint was acknowledged: the guest is the secondary's
 * now. This side keeps nothing of the pair (its held packets went out with
 * the ack, its wire's offsets went with the checkpoint) and becomes the
 * standby (opts.switched). */
static void colo_switched(struct primary *m)
{
	char why[400];

	runstate_set(m->rs, RUN_STATE_POSTMIGRATE);
	snprintf(why, sizeof(why), "switched over: the guest runs on %s, this host is its standby",
		 m->uri);
	colo_set_state(m, COLO_UNPROTECTED, "%s", why);
	log_event(LOG_INFO, "switchover",
		  "COLO: switchover: the guest runs on %s now; this host becomes its standby on %s",
		  m->uri, m->standby);
	qmp_event_colo_exit(m->qmp, "primary", true, why, 0, false);
	colo_net_end(m);
	colo_wire_free(m->wire);
	m->wire = NULL;
	if (m->opts.switched)
		m->opts.switched(m->opts.opaque, m->standby);
}

void colo_finish(struct primary *m, int ret, const char *msg)
{
	const char *why = msg && msg[0] ? msg : ret ? strerror(-ret) : "ended";
	char fenced[512] = "";

	if (!ret && m->switched) {
		colo_switched(m);
		return;
	}

	pthread_mutex_lock(&m->lock);
	if (m->colo_started && m->fence_why[0])
		snprintf(fenced, sizeof(fenced), "%s; %s", why, m->fence_why);
	pthread_mutex_unlock(&m->lock);
	if (fenced[0]) {
		pthread_mutex_lock(&m->lock);
		m->fences++;
		pthread_mutex_unlock(&m->lock);
		log_event(LOG_ERROR, "fence", "COLO: the witness did not grant: fencing");
		qmp_event_colo_exit(m->qmp, "primary", false, fenced, 0, true);
		colo_fence(m, fenced);
		return;
	}
	if (m->colo_started) {
		/* A checkpoint held the VM: COLO -> RUNNING (the table's way
		 * out), and on it goes alone. */
		if ((runstate_check(m->rs, RUN_STATE_COLO) ||
		     runstate_check(m->rs, RUN_STATE_FINISH_MIGRATE)) &&
		    runstate_vm_start(m->rs))
			log_err("COLO: cannot resume the VM after the checkpoint");
		log_err("COLO: protection lost: %s; the VM runs on unprotected", why);
	} else {
		log_err("COLO: cannot protect the VM: %s; it runs on unprotected", why);
	}
	colo_set_state(m, COLO_UNPROTECTED, "%s", why);
	if (m->colo_started && (ret != -ECANCELED || atomic_load(&m->hb_drill))) {
		enum colo_failover f = atomic_load(&m->hb_drill)       ? COLO_FAILOVER_DRILL
				       : atomic_load(&m->hb_silent_ms) ? COLO_FAILOVER_HEARTBEAT
								       : COLO_FAILOVER_PEER_LOST;

		pthread_mutex_lock(&m->lock);
		m->failovers[f]++;
		pthread_mutex_unlock(&m->lock);
		log_event(LOG_ERROR, "failover", "COLO: failover (%s): the primary runs on alone",
			  qmp_colo_failover_name(f));
	}
	if (m->colo_started)
		qmp_event_colo_exit(m->qmp, "primary", ret == -ECANCELED, why,
				    atomic_load(&m->hb_silent_ms), false);
	/* Held packets go out now; from here on they pass straight. */
	colo_net_end(m);
}

/* ---- the checkpoint thread ------------------------------------------------------ */

static int send_request(struct transport_channel *ch, uint64_t id, enum colo_reason reason,
			bool digest, const char *standby, struct vmstate_error *err)
{
	Colovm__Transport__CheckpointRequest rq = COLOVM__TRANSPORT__CHECKPOINT_REQUEST__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;
	int ret;

	rq.id = id;
	rq.reason = reason;
	rq.digest = digest;
	rq.switchover = standby != NULL;
	rq.standby = (char *)(standby ? standby : "");
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_REQUEST;
	msg.checkpoint_request = &rq;
	ret = transport_send(ch, &msg);
	return ret ? vmstate_seterr(err, ret, "the secondary went away: %s", strerror(-ret)) : 0;
}

/* A message outside a checkpoint, or in place of the expected one. */
static int unexpected(transport_msg *msg, struct vmstate_error *err)
{
	switch (msg->body_case) {
	case COLOVM__TRANSPORT__MSG__BODY_ERROR:
		return vmstate_seterr(err, -ECONNRESET, "the secondary gave up: %s",
				      msg->error->message);
	case COLOVM__TRANSPORT__MSG__BODY_FAILOVER:
		return vmstate_seterr(err, -ECONNRESET, "the secondary left the pair: %s",
				      msg->failover->reason);
	case COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK:
		if (msg->checkpoint_ack->status)
			return vmstate_seterr(err, -EPROTO,
					      "the secondary refused checkpoint %llu: %s",
					      (unsigned long long)msg->checkpoint_ack->id,
					      msg->checkpoint_ack->message);
		/* fall through */
	default:
		return vmstate_seterr(err, -EPROTO, "unexpected message from the secondary (%d)",
				      (int)msg->body_case);
	}
}

/* A beat was read: the round trip it measured, for status and metrics. */
static void note_rtt(struct primary *m, struct transport_channel *ch)
{
	struct transport_rtt r;

	transport_heartbeat_rtt(ch, &r);
	pthread_mutex_lock(&m->lock);
	m->rtt = r;
	pthread_mutex_unlock(&m->lock);
}

/* CheckpointReply{id, 0} and CheckpointAck{id, 0}, in that order (the
 * secondary's packets from before it stopped may come in between). */
static int wait_reply_ack(struct primary *m, struct transport_channel *ch, uint64_t id,
			  struct vmstate_error *err)
{
	uint64_t deadline = clock_ns() + COLO_ACK_TIMEOUT_MS * 1000000ull;
	bool replied = false;

	for (;;) {
		transport_msg *msg = NULL;
		int64_t left = (int64_t)(deadline - clock_ns()) / 1000000;
		int ret = left > 0 ? transport_recv(ch, (int)left, &msg) : -EAGAIN;

		if (ret == -EAGAIN)
			return vmstate_seterr(err, -ETIMEDOUT,
					      "the secondary did not acknowledge checkpoint %llu "
					      "within %d s",
					      (unsigned long long)id, COLO_ACK_TIMEOUT_MS / 1000);
		if (ret)
			return vmstate_seterr(err, ret, "the secondary went away: %s",
					      strerror(-ret));
		if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_PACKET) {
			if (m->net)
				colo_net_secondary(m->net, msg->packet);
		} else if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT) {
			/* its liveness is the heartbeat thread's business */
			note_rtt(m, ch);
		} else if (!replied &&
			   msg->body_case == COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_REPLY &&
			   msg->checkpoint_reply->id == id) {
			ret = msg->checkpoint_reply->status;
			if (ret)
				vmstate_seterr(
				    err, ret < 0 ? ret : -EPROTO,
				    "the secondary could not stop for checkpoint %llu: %s",
				    (unsigned long long)id, strerror(ret < 0 ? -ret : ret));
			replied = true;
		} else if (replied &&
			   msg->body_case == COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK &&
			   msg->checkpoint_ack->id == id && !msg->checkpoint_ack->status) {
			transport_msg_free(msg);
			return 0;
		} else {
			ret = unexpected(msg, err);
		}
		transport_msg_free(msg);
		if (ret)
			return ret < 0 ? ret : -EPROTO;
	}
}

static const char *const phase_names[PHASE__MAX] = {"stop",	    "disk", "ram",
						    "device-state", "ack",  "resume"};

/* phase_at: when each part of the pause began, then its end */
static void record(struct primary *m, uint64_t id, enum colo_reason reason, uint64_t pages,
		   uint64_t bytes, bool have_digest, uint64_t digest, uint64_t disk_digest,
		   const uint64_t *phase_at)
{
	uint64_t pause_ns = phase_at[PHASE__MAX] - phase_at[PHASE_STOP];

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < PHASE__MAX; i++) {
		m->phase_last_ns[i] = phase_at[i + 1] - phase_at[i];
		m->phase_ns[i] += m->phase_last_ns[i];
	}
	m->ckpt_id = id;
	m->ckpt_ns = clock_ns();
	m->ckpt_count[reason]++;
	m->pause_us[m->npause++ % COLO_PAUSE_RING] = (uint32_t)MIN(pause_ns / 1000, UINT32_MAX);
	hist_add(&m->pause_hist, pause_ns / 1000);
	m->pages_total += pages;
	m->bytes_total += bytes;
	m->pages_max = pages > m->pages_max ? pages : m->pages_max;
	m->bytes_max = bytes > m->bytes_max ? bytes : m->bytes_max;
	m->last_pages = pages;
	m->last_bytes = bytes;
	if (have_digest) {
		m->digests[m->ndigest % COLO_DIGEST_RING].id = id;
		m->digests[m->ndigest % COLO_DIGEST_RING].digest = digest;
		m->digests[m->ndigest % COLO_DIGEST_RING].disk = disk_digest;
		m->ndigest++;
	}
	pthread_mutex_unlock(&m->lock);
}

/* One checkpoint. -EAGAIN: skipped (the VM is not running). standby (not
 * NULL): the switchover, the pair's last: the VM stays stopped after the
 * ack, the secondary serves from it on (migrate with continue). */
static int checkpoint(struct primary *m, struct transport_channel *ch, struct ram_send *p,
		      uint64_t *bitmap, enum colo_reason reason, const char *standby,
		      struct vmstate_error *err)
{
	uint64_t id = m->ckpt_id + 1, pages, state_bytes = 0, digest = 0;
	uint64_t disk_digest = 0, at[PHASE__MAX + 1];
	uint64_t npages = hw_vm_ram_pages(m->vm);
	bool want_digest;
	int ret;

	pthread_mutex_lock(&m->lock);
	want_digest = m->ram_digest;
	pthread_mutex_unlock(&m->lock);
	/* (not in the pause: the guest runs, its disk writes held to the
	 * link's pace, until little is queued) */
	colo_disk_settle(m->disk);
	at[PHASE_STOP] = clock_ns();
	ret = mig_call(m, standby ? REQ_SWITCH_STOP : REQ_CKPT_STOP);
	if (ret)
		colo_disk_unsettle(m->disk);
	if (ret == -EAGAIN)
		return ret;
	if (ret)
		return vmstate_seterr(err, ret, "cannot stop the VM for checkpoint %llu: %s",
				      (unsigned long long)id, strerror(-ret));
	/* Packets the guest sent until now are covered by this checkpoint. */
	if (m->net)
		colo_net_checkpoint_begin(m->net);
	at[PHASE_DISK] = clock_ns();
	/* ... and its disk writes, which go ahead of the request */
	ret = colo_disk_drain(m->disk, err);
	if (ret)
		return ret;
	at[PHASE_RAM] = clock_ns();
	ret = send_request(ch, id, reason, want_digest, standby, err);
	if (ret)
		return ret;
	ret = hw_dirty_log_sync(m->vm, bitmap);
	if (ret)
		return vmstate_seterr(err, ret, "dirty log: %s", strerror(-ret));
	pages = ram_bitmap_count(bitmap, npages);
	p->id = id;
	p->bounce = NULL; /* paused: straight from guest RAM */
	p->skip_zero = false;
	p->limit = 0;
	p->progress = NULL;
	ram_send_begin(p);
	ret = ram_send_bitmap(p, bitmap, err);
	if (ret)
		return ret;
	at[PHASE_STATE] = clock_ns();
	if (want_digest) {
		/* (without memory for the pages' hashes: the digest alone) */
		uint64_t *ph = malloc(npages * sizeof(*ph));
		int derr;

		digest = hw_vm_ram_digest_pages(m->vm, ph);
		pthread_mutex_lock(&m->lock);
		hw_ram_hash_ring_put(&m->page_hashes, id, ph);
		pthread_mutex_unlock(&m->lock);
		/* (the disks' I/O is paused with the VM: the images hold
		 * exactly what this checkpoint covers) */
		disk_digest = hw_vm_disk_digest(m->vm, &derr);
		if (derr)
			return vmstate_seterr(err, derr, "disk digest: %s", strerror(-derr));
	}
	ret = mig_send_device_state(m, ch, id, &state_bytes, err);
	at[PHASE_ACK] = clock_ns();
	if (!ret)
		ret = wait_reply_ack(m, ch, id, err);
	if (ret)
		return ret;
	at[PHASE_RESUME] = clock_ns();
	/* After the ack: what this checkpoint covers is safe on the secondary. */
	if (m->net)
		colo_net_checkpoint_acked(m->net);
	if (standby) {
		/* The secondary has the guest and serves it now. */
		at[PHASE__MAX] = clock_ns();
		record(m, id, reason, pages, p->bytes + state_bytes, want_digest, digest,
		       disk_digest, at);
		pthread_mutex_lock(&m->lock);
		m->switched = true;
		pthread_mutex_unlock(&m->lock);
		log_info("COLO: switchover: checkpoint %llu acknowledged, the guest paused %llu us "
			 "here: %s serves it from now on",
			 (unsigned long long)id,
			 (unsigned long long)((at[PHASE__MAX] - at[PHASE_STOP]) / 1000),
			 transport_peer_name(ch));
		return 0;
	}
	ret = mig_call(m, REQ_CKPT_RESUME);
	if (ret)
		return vmstate_seterr(err, ret, "cannot resume the VM after checkpoint %llu: %s",
				      (unsigned long long)id, strerror(-ret));
	at[PHASE__MAX] = clock_ns();
	record(m, id, reason, pages, p->bytes + state_bytes, want_digest, digest, disk_digest, at);
	log_debug("COLO: checkpoint %llu (%s): %llu pages, %llu bytes of device state, pause "
		  "%llu us",
		  (unsigned long long)id, colo_reason_name(reason), (unsigned long long)pages,
		  (unsigned long long)state_bytes,
		  (unsigned long long)((at[PHASE__MAX] - at[PHASE_STOP]) / 1000));
	return 0;
}

/* The most urgent reason among the pending ones. */
static enum colo_reason pick_reason(unsigned int pending)
{
	static const enum colo_reason order[] = {COLO_REASON_MISMATCH, COLO_REASON_COMPARE_TIMEOUT,
						 COLO_REASON_COMPARE_LIMIT, COLO_REASON_REQUEST,
						 COLO_REASON_PERIODIC};

	for (unsigned int i = 0; i < ARRAY_SIZE(order); i++) {
		if (pending & (1u << order[i]))
			return order[i];
	}
	return COLO_REASON_PERIODIC;
}

static void send_shutdown(struct transport_channel *ch, const char *why)
{
	uint64_t deadline;
	transport_msg *in = NULL;
	Colovm__Transport__FailoverNotice fn = COLOVM__TRANSPORT__FAILOVER_NOTICE__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;

	fn.kind = COLOVM__TRANSPORT__FAILOVER_NOTICE__KIND__SHUTDOWN;
	fn.reason = (char *)why;
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_FAILOVER;
	msg.failover = &fn;
	if (transport_send(ch, &msg))
		return;
	/* Let the secondary read it and close first: closing with its last
	 * reply unread would reset the connection, and a reset may drop the
	 * notice before the secondary reads it. */
	deadline = clock_ns() + 2000000000ull;
	while (clock_ns() < deadline) {
		int r = transport_recv(ch, 100, &in);

		if (r && r != -EAGAIN)
			break; /* the secondary closed */
		transport_msg_free(in);
		in = NULL;
	}
}

/* Protection ends on this side (quit, guest shutdown, migrate_cancel): tell
 * the secondary why. Returns true when colovm itself is shutting down. */
static bool end_protection(struct primary *m, struct transport_channel *ch)
{
	bool shutdown;

	pthread_mutex_lock(&m->lock);
	shutdown = m->colo_shutdown;
	pthread_mutex_unlock(&m->lock);
	send_shutdown(ch, shutdown ? "the primary is shutting down"
				   : "protection cancelled on the primary");
	return shutdown;
}

/* The heartbeat thread gives the secondary up (the channel fails right
 * after: the checkpoint thread's next call returns -ETIMEDOUT). */
static void hb_lost(void *opaque, unsigned int silent_ms)
{
	struct primary *m = opaque;

	atomic_store(&m->hb_silent_ms, silent_ms ? silent_ms : 1);
	log_err("COLO: heartbeat: nothing from the secondary for %u ms: it is given up", silent_ms);
	colo_wake(m);
}

/* Why the secondary is lost, in buf: the heartbeat, or the error. */
static const char *lost_why(struct primary *m, int ret, char *buf, size_t len)
{
	unsigned int silent = atomic_load(&m->hb_silent_ms);

	if (silent)
		snprintf(buf, len, "the secondary fell silent: no heartbeat for %u ms", silent);
	else
		snprintf(buf, len, "the secondary went away: %s", strerror(-ret));
	return buf;
}

int colo_run(struct primary *m, struct transport_channel *ch, struct ram_send *p, uint64_t *bitmap,
	     struct vmstate_error *err)
{
	uint64_t next, v, applied = p->id, unapplied_since = 0;
	bool more = false; /* the last look at the channel stopped at its bound */
	unsigned int hb_ms, hb_misses;
	const char *standby; /* (m->standby: set once, freed by the next mig_start) */
	int ret;

	/* Unit 1 was the first sync; checkpoints count from 2. */
	pthread_mutex_lock(&m->lock);
	m->ckpt_id = p->id;
	m->colo_started = true;
	m->status = MIG_COLO;
	m->colo_ch = ch; /* for colo_net_start, on the main loop */
	memset(&m->rtt, 0, sizeof(m->rtt));
	hb_ms = (unsigned int)m->hb_interval_ms;
	hb_misses = (unsigned int)m->hb_misses;
	pthread_mutex_unlock(&m->lock);
	/* Beats first: the secondary watches this side from its ack on, and
	 * starting the VM waits for the main loop, which may be slow. */
	atomic_store(&m->hb_silent_ms, 0);
	atomic_store(&m->hb_drill, false);
	ret = transport_heartbeat_start(ch, hb_ms, hb_misses, hb_lost, m);
	if (ret)
		return vmstate_seterr(err, ret, "cannot start the heartbeat: %s", strerror(-ret));
	ret = mig_call(m, REQ_COLO_START);
	if (ret)
		return vmstate_seterr(err, ret, "cannot run the VM after the first sync: %s",
				      strerror(-ret));
	colo_set_state(m, COLO_PROTECTED, "paired with %s", transport_peer_name(ch));
	log_event(LOG_INFO, "pair-formed", "COLO: paired with %s: protected",
		  transport_peer_name(ch));
	log_info("COLO: heartbeat every %u ms, the secondary given up after %u ms of silence",
		 hb_ms, hb_ms * hb_misses);
	mig_notify(m, REQ_NONE);
	next = clock_ns();
	for (;;) {
		struct pollfd pfd[2] = {{.fd = transport_fd(ch), .events = POLLIN},
					{.fd = m->colo_evfd, .events = POLLIN}};
		uint64_t now = clock_ns(), interval;
		unsigned int pending;
		transport_msg *msg = NULL;

		if (atomic_load(&m->cancel)) {
			const char *why = "protection cancelled (migrate_cancel)";

			if (end_protection(m, ch))
				why = "colovm is shutting down";
			else if (atomic_load(&m->hb_drill))
				why = "x-colo-lost-heartbeat (a drill): the secondary is given up";
			return vmstate_seterr(err, -ECANCELED, "%s", why);
		}
		pthread_mutex_lock(&m->lock);
		interval = m->ckpt_interval_ms * 1000000ull;
		pending = m->pending;
		standby = m->standby;
		pthread_mutex_unlock(&m->lock);
		if (standby)
			pending |= 1u << COLO_REASON_REQUEST;
		if (next > now + interval)
			next = now + interval; /* the period was shortened */
		if (now >= next)
			pending |= 1u << COLO_REASON_PERIODIC;
		/* The next checkpoint's pages land in the secondary's RAM
		 * cache: only once it has copied the last one out of it (its
		 * second ack, usually long in by now). */
		if (pending && applied < m->ckpt_id) {
			if (!unapplied_since)
				unapplied_since = now;
			else if (now - unapplied_since > COLO_APPLY_TIMEOUT_MS * 1000000ull)
				return vmstate_seterr(err, -ETIMEDOUT,
						      "the secondary did not apply checkpoint %llu "
						      "in %d s",
						      (unsigned long long)m->ckpt_id,
						      COLO_APPLY_TIMEOUT_MS / 1000);
			next = now + 1000000; /* (poll below: 1 ms) */
			pending = 0;
		}
		if (pending) {
			unapplied_since = 0;
			enum colo_reason reason = pick_reason(pending);

			pthread_mutex_lock(&m->lock);
			m->pending &= ~pending;
			pthread_mutex_unlock(&m->lock);
			ret = checkpoint(m, ch, p, bitmap, reason, standby, err);
			more = true; /* (it read the channel: frames may wait in its buffer) */
			if (!ret && standby)
				return 0; /* switched over: the pair ends here */
			if (ret == -EAGAIN) {
				/* Not running: requests wait for the VM to run. */
				pthread_mutex_lock(&m->lock);
				m->pending |= pending & ~(1u << COLO_REASON_PERIODIC);
				pthread_mutex_unlock(&m->lock);
				next = clock_ns() + interval;
				usleep(10000);
				continue;
			}
			if (ret && atomic_load(&m->cancel)) {
				/* Ended on this side in the middle of a checkpoint:
				 * the secondary must not run on as a second copy. */
				end_protection(m, ch);
				return ret;
			}
			if (ret) {
				char why[sizeof(err->msg)];

				pthread_mutex_lock(&m->lock);
				m->ckpt_failed++;
				pthread_mutex_unlock(&m->lock);
				log_event(LOG_ERROR, "checkpoint-failure",
					  "COLO: checkpoint %llu failed: %s",
					  (unsigned long long)m->ckpt_id + 1, err->msg);
				snprintf(why, sizeof(why), "%s", err->msg);
				if (atomic_load(&m->hb_silent_ms))
					lost_why(m, ret, why, sizeof(why));
				if (transport_error(ch) && !strstr(why, "secondary"))
					vmstate_seterr(err, ret,
						       "lost the secondary at checkpoint %llu: %s",
						       (unsigned long long)m->ckpt_id + 1, why);
				else
					vmstate_seterr(err, ret, "checkpoint %llu failed: %s",
						       (unsigned long long)m->ckpt_id + 1, why);
				return ret;
			}
			next = clock_ns() + interval;
			continue;
		}
		/* (frames the last look left read but not taken are in the
		 * channel's buffer, where poll cannot see them: look again at
		 * once) */
		ret = poll(pfd, 2, more ? 0 : (int)((next - now + 999999) / 1000000));
		if (ret < 0 && errno != EINTR)
			return vmstate_seterr(err, -errno, "poll: %s", strerror(errno));
		if (pfd[1].revents && read(m->colo_evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			return vmstate_seterr(err, -errno, "eventfd: %s", strerror(errno));
		/* (the channel's fd is a hint: over RDMA another thread, the
		 * heartbeat's, may have taken the completion event of a frame
		 * that waits for us; while the second ack is awaited, look
		 * every time) */
		if (!pfd[0].revents && !more && applied >= m->ckpt_id)
			continue;
		char why[160];

		/* Between checkpoints the secondary sends its guest's
		 * packets (all that are there, up to a bound, before the next
		 * look at requests); any other message is a farewell, EOF a
		 * lost secondary. */
		more = true; /* unless the look below ends empty */
		for (unsigned int n = 0; n < 64; n++) {
			ret = transport_recv(ch, 0, &msg);
			if (ret == -EAGAIN) {
				more = false;
				break;
			}
			if (ret)
				return vmstate_seterr(err, ret, "%s",
						      lost_why(m, ret, why, sizeof(why)));
			if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT) {
				note_rtt(m, ch);
				transport_msg_free(msg);
				continue;
			}
			if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK &&
			    msg->checkpoint_ack->applied && !msg->checkpoint_ack->status &&
			    msg->checkpoint_ack->id == m->ckpt_id) {
				applied = m->ckpt_id;
				transport_msg_free(msg);
				continue;
			}
			if (msg->body_case != COLOVM__TRANSPORT__MSG__BODY_PACKET) {
				ret = unexpected(msg, err);
				transport_msg_free(msg);
				return ret;
			}
			if (m->net)
				colo_net_secondary(m->net, msg->packet);
			transport_msg_free(msg);
		}
	}
}

/* ---- status (main loop) ----------------------------------------------------------- */

json_t *primary_colo_status(struct primary *m)
{
	json_t *o;

	pthread_mutex_lock(&m->lock);
	o = json_pack(
	    "{s:s,s:s,s:s,s:s,s:I,s:I}", "mode",
	    m->colo_state == COLO_SYNC || m->colo_state == COLO_PROTECTED ? "primary" : "none",
	    "last-mode", m->colo_state == COLO_NONE ? "none" : "primary", "state",
	    state_names[m->colo_state], "reason", m->colo_why, "last-checkpoint",
	    (json_int_t)(m->colo_started ? m->ckpt_id : 0), "last-checkpoint-age-ms",
	    (json_int_t)(m->colo_started && m->ckpt_ns ? (clock_ns() - m->ckpt_ns) / 1000000 : 0));
	if (o && m->uri && m->colo_state != COLO_NONE)
		json_object_set_new(o, "peer", json_string(m->uri));
	if (o && m->witness)
		json_object_set_new(o, "witness", json_string(m->witness));
	if (m->colo_state != COLO_NONE)
		qmp_colo_status_pair(o, m->pair, sizeof(m->pair));
	if (o && m->colo_state == COLO_PROTECTED)
		json_object_set_new(o, "heartbeat-rtt",
				    qmp_rtt_json(m->rtt.samples, m->rtt.last_ns, m->rtt.min_ns,
						 m->rtt.avg_ns, m->rtt.max_ns));
	pthread_mutex_unlock(&m->lock);
	return o;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Median, p99 and max (ms) of the pauses kept in ring (n of them). */
static json_t *colo_pause_stats(const uint32_t *ring, uint64_t n, uint64_t ring_size)
{
	uint64_t k = MIN(n, ring_size);
	uint32_t *v = k ? malloc(k * sizeof(*v)) : NULL;
	json_t *o;

	if (!k || !v) {
		free(v);
		return json_pack("{s:f,s:f,s:f,s:I}", "median-ms", 0.0, "p99-ms", 0.0, "max-ms",
				 0.0, "samples", (json_int_t)0);
	}
	memcpy(v, ring, k * sizeof(*v));
	qsort(v, k, sizeof(*v), cmp_u32);
	o = json_pack("{s:f,s:f,s:f,s:I}", "median-ms", v[k / 2] / 1000.0, "p99-ms",
		      v[MIN(k - 1, (k * 99) / 100)] / 1000.0, "max-ms", v[k - 1] / 1000.0,
		      "samples", (json_int_t)k);
	free(v);
	return o;
}

json_t *primary_colo_stats(struct primary *m)
{
	json_t *o, *by = json_object();
	uint64_t n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned int r = 0; r < COLO_REASON__MAX; r++) {
		json_object_set_new(by, reason_names[r],
				    json_integer((json_int_t)m->ckpt_count[r]));
		n += m->ckpt_count[r];
	}
	o = json_pack(
	    "{s:s,s:I,s:o,s:I,s:o,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I}}", "mode", "primary",
	    "checkpoints", (json_int_t)n, "by-reason", by, "failed", (json_int_t)m->ckpt_failed,
	    "pause", colo_pause_stats(m->pause_us, m->npause, COLO_PAUSE_RING), "pages", "last",
	    (json_int_t)m->last_pages, "mean", (json_int_t)(n ? m->pages_total / n : 0), "max",
	    (json_int_t)m->pages_max, "total", (json_int_t)m->pages_total, "bytes", "last",
	    (json_int_t)m->last_bytes, "mean", (json_int_t)(n ? m->bytes_total / n : 0), "max",
	    (json_int_t)m->bytes_max, "total", (json_int_t)m->bytes_total);
	if (o) {
		json_t *ph = json_object();

		qmp_colo_stats_breaks(o, m->failovers, m->fences, &m->pause_hist);
		/* where the pauses go: each part's mean and the last one's, ms */
		for (unsigned int i = 0; ph && i < PHASE__MAX; i++)
			json_object_set_new(
			    ph, phase_names[i],
			    json_pack("{s:f,s:f}", "mean",
				      n ? (double)m->phase_ns[i] / (double)n / 1e6 : 0.0, "last",
				      (double)m->phase_last_ns[i] / 1e6));
		json_object_set_new(o, "pause-phases", ph);
	}
	pthread_mutex_unlock(&m->lock);
	/* The packets of the pair protecting this VM, or of the last one;
	 * wire-offsets: connections of a takeover rewritten at this wire. */
	if (o) {
		json_t *net =
		    !m->net && m->net_last ? json_deep_copy(m->net_last) : colo_net_stats(m->net);

		json_t *disk;

		if (net)
			json_object_set_new(net, "wire-offsets",
					    json_integer((json_int_t)colo_wire_active(m->wire)));
		json_object_set_new(o, "network", net);
		pthread_mutex_lock(&m->lock);
		disk = m->disk ? colo_disk_stats(m->disk) : json_deep_copy(m->disk_last);
		pthread_mutex_unlock(&m->lock);
		if (disk)
			json_object_set_new(o, "disk", disk);
	}
	return o;
}

int primary_colo_page_hashes(struct primary *m, uint64_t id, const char *path, uint64_t *got)
{
	int ret;

	pthread_mutex_lock(&m->lock);
	ret = hw_ram_hash_ring_write(&m->page_hashes, id, path, hw_vm_ram_pages(m->vm), got);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int primary_colo_digest(struct primary *m, uint64_t id, uint64_t *id_out, uint64_t *digest,
			uint64_t *disk)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&m->lock);
	for (uint64_t i = 0; i < MIN(m->ndigest, COLO_DIGEST_RING); i++) {
		uint64_t k = (m->ndigest - 1 - i) % COLO_DIGEST_RING;

		if (!id || m->digests[k].id == id) {
			*id_out = m->digests[k].id;
			*digest = m->digests[k].digest;
			*disk = m->digests[k].disk;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int primary_colo_lost_heartbeat(struct primary *m)
{
	int ret = -ENOTCONN;

	pthread_mutex_lock(&m->lock);
	if (m->colo_ch && m->colo_state == COLO_PROTECTED) {
		/* As if the secondary were gone, but it is not: it is told to
		 * stand down (never a second copy), as migrate_cancel does. */
		atomic_store(&m->hb_drill, true);
		atomic_store(&m->cancel, true);
		log_info("COLO: x-colo-lost-heartbeat: giving the secondary up (a drill)");
		ret = 0;
	}
	pthread_mutex_unlock(&m->lock);
	if (!ret)
		colo_wake(m);
	return ret;
}

/* ---- QMP ---------------------------------------------------------------------------- */

static int qmp_checkpoint(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;

	if (primary_checkpoint_request(m, COLO_REASON_REQUEST))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "The VM is not protected (COLO)");
	return 0;
}

int colo_register(struct primary *m)
{
	return m->qmp ? qmp_register(m->qmp, "x-colo-checkpoint", NULL, qmp_checkpoint, m) : 0;
}

void colo_unregister(struct primary *m)
{
	if (m->qmp)
		qmp_unregister(m->qmp, "x-colo-checkpoint");
}
