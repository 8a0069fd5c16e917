/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Live (precopy) migration, source side, and snapshot-save (primary.h).
 *
 * The protocol (transport/transport.h, "Checkpoint protocol"), one unit:
 *
 *   source (migration thread)                    target (secondary/)
 *   transport_connect(uri, key) ------------->   transport_accept
 *   StreamStart{MIGRATE, ram_bytes} --------->   RAM size == --mem?
 *   round 0: every non-zero page (bulk) ----->   straight into guest RAM
 *   round 1..n: pages of the dirty log        >   (a VM that never ran)
 *     (KVM's + the VMM's own writes), until
 *     they fit in downtime-limit; BulkCommit
 *     every 16 MiB and at the end of a round
 *   -- main loop: vm stop -> FINISH_MIGRATE --
 *   (fdatasync every --disk image)
 *   last dirty pages, from guest RAM (bulk) ->
 *   DeviceState{machine, kvmclock, irqchip,  >   staged + validated, applied
 *     pit, cpu 0..n-1, uart, i8042,
 *     virtio-net 0.., virtio-blk 0..; last}
 *        <----------------------- CheckpointAck   INMIGRATE -> RUNNING, RARP
 *   POSTMIGRATE (stays paused)
 *
 * Devices. Backends are not state: the target opens its own --net tap and
 * --disk images and must have as many nets and disks as the source (a
 * mismatch is refused naming the device). Disks assume shared storage: both
 * hosts reach the same image file, and the source flushes (fdatasync) it
 * after the VM stopped, before the final device state; the target must not
 * have written to it. Virtio pause completes every request a device popped,
 * so no request is in flight in the stream.
 *
 * Any error on the source (connect, send, no ack, cancel) gives every page
 * it took from the dirty log and did not send back to the log, turns
 * logging off and, if it had stopped the VM, runs it again: the source goes
 * on as if nothing happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/common.h"
#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "primary/internal.h"
#include "primary/primary.h"
#include "transport/transport.h"

#define MIG_MAX_ROUNDS 64
/* Rounds in a row whose dirty set came out no smaller than 7/8 of the
 * smallest one so far: the guest dirties as fast as the pages are sent,
 * more rounds only move the same pages again; stop and copy. */
#define MIG_STALL_ROUNDS     5
#define MIG_ACK_TIMEOUT_MS   60000
#define MIG_CHANNEL_TIMEOUT  30000 /* ms: a stalled peer fails the migration */
#define MIG_BULK_STREAMS     1
#define MIG_STATE_CHUNK	     (512u << 10) /* device-state bytes per DeviceState */

static const char *const mig_status_name[] = {
    [MIG_NONE] = "none",	   [MIG_SETUP] = "setup",   [MIG_ACTIVE] = "active",
    [MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed", [MIG_CANCELLING] = "cancelling",
    [MIG_CANCELLED] = "cancelled", [MIG_COLO] = "colo",
};

static void mig_set_status(struct primary *m, enum mig_status st)
{
	pthread_mutex_lock(&m->lock);
	m->status = st;
	pthread_mutex_unlock(&m->lock);
}

/* Main loop thread only. */
static void mig_event(struct primary *m, enum mig_status st)
{
	if (m->qmp)
		qmp_event(m->qmp, "MIGRATION", json_pack("{s:s}", "status", mig_status_name[st]));
}

void mig_notify(struct primary *m, enum mig_req req)
{
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	m->req = req;
	pthread_mutex_unlock(&m->lock);
	if (write(m->evfd, &one, sizeof(one)) < 0)
		log_err("migration: eventfd: %s", strerror(errno));
}

/* A peer that goes away is an error to report (EPIPE), not a signal that
 * kills the VMM: SIGPIPE stays blocked (and pending) in the stream thread. */
static void mig_block_sigpipe(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* tcp:HOST:PORT or rdma:HOST:PORT (transport checks the rest). */
static bool uri_valid(const char *uri)
{
	const char *p = !strncmp(uri, "tcp:", 4)    ? uri + 4
			: !strncmp(uri, "rdma:", 5) ? uri + 5
						    : NULL;
	const char *colon = p ? strrchr(p, ':') : NULL;

	return colon && colon != p && colon[1];
}

/* ---- the migration thread ---------------------------------------------------- */

static void mig_progress(void *opaque, uint64_t bytes, uint64_t pages)
{
	struct primary *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->transferred += bytes;
	m->remaining -= MIN(m->remaining, pages * HW_PAGE_SIZE);
	pthread_mutex_unlock(&m->lock);
}

static void mig_stats_round(struct primary *m, uint64_t dirty, uint64_t bytes, uint64_t dt_ns,
			    uint64_t *bw)
{
	pthread_mutex_lock(&m->lock);
	m->rounds++;
	m->remaining = dirty * HW_PAGE_SIZE;
	if (dt_ns) {
		m->dirty_rate = dirty * 1000000000ull / dt_ns;
		if (bytes >= 64 * HW_PAGE_SIZE) {
			*bw = bytes * 1000000000ull / dt_ns; /* bytes/s */
			m->mbps = (double)bytes * 8 * 1000 / (double)dt_ns;
		}
	}
	m->expected_downtime_ms = *bw ? dirty * HW_PAGE_SIZE * 1000 / *bw : 0;
	pthread_mutex_unlock(&m->lock);
}

static int send_stream_start(struct primary *m, struct transport_channel *ch, uint64_t ram_bytes,
			     struct vmstate_error *err)
{
	Colovm__Transport__StreamStart st = COLOVM__TRANSPORT__STREAM_START__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;
	int ret;

	st.protocol = TRANSPORT_CKPT_VERSION;
	st.mode = m->colo ? COLOVM__TRANSPORT__STREAM_START__MODE__COLO
			  : COLOVM__TRANSPORT__STREAM_START__MODE__MIGRATE;
	st.ram_bytes = ram_bytes;
	st.page_size = HW_PAGE_SIZE;
	st.vm_config = m->colo && m->vm_config ? m->vm_config : "";
	if (m->colo) {
		uint8_t pair[sizeof(m->pair)];

		if (getrandom(pair, sizeof(pair), 0) != (ssize_t)sizeof(pair))
			return vmstate_seterr(err, -EIO, "getrandom: %s", strerror(errno));
		/* (under the lock: query-colo-status shows it) */
		pthread_mutex_lock(&m->lock);
		st.heartbeat_interval_ms = (uint32_t)m->hb_interval_ms;
		st.heartbeat_misses = (uint32_t)m->hb_misses;
		memcpy(m->pair, pair, sizeof(pair));
		pthread_mutex_unlock(&m->lock);
		st.pair.data = m->pair;
		st.pair.len = sizeof(m->pair);
		st.witness = m->witness != NULL;
	}
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_STREAM_START;
	msg.stream_start = &st;
	ret = transport_send(ch, &msg);
	return ret ? vmstate_seterr(err, ret, "cannot start the stream: %s", strerror(-ret)) : 0;
}

/* The device state of unit id, as one vmstate stream in DeviceState chunks. */
int mig_send_device_state(struct primary *m, struct transport_channel *ch, uint64_t id,
			  uint64_t *bytes, struct vmstate_error *err)
{
	Colovm__Transport__DeviceState ds = COLOVM__TRANSPORT__DEVICE_STATE__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;
	unsigned int nwire = m->colo ? colo_wire_ports(m->wire) : 0;
	ProtobufCBinaryData offs[nwire ? nwire : 1];
	uint8_t *obuf[nwire ? nwire : 1];
	size_t olen[nwire ? nwire : 1];
	struct vmstate_sink *sink = NULL;
	const uint8_t *data;
	size_t len, off = 0;
	int ret;

	ret = vmstate_sink_new_mem(&sink);
	if (ret)
		return vmstate_seterr(err, ret, "out of memory");
	ret = hw_vm_save_devices(m->vm, sink, err);
	if (ret)
		goto out;
	/* A former secondary: the offsets it applies at its wire, for the
	 * secondary to apply at its own if it takes over (net.c). */
	if (nwire) {
		ret = colo_wire_save(m->wire, obuf, olen, nwire);
		if (ret) {
			vmstate_seterr(err, ret, "saving the wire offsets: %s", strerror(-ret));
			nwire = 0;
			goto out;
		}
		for (unsigned int i = 0; i < nwire; i++)
			offs[i] = (ProtobufCBinaryData){.data = obuf[i], .len = olen[i]};
	}
	data = vmstate_sink_mem_data(sink, &len);
	*bytes = len;
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_DEVICE_STATE;
	msg.device_state = &ds;
	ds.id = id;
	do {
		ds.data.data = (uint8_t *)data + off;
		ds.data.len = MIN(len - off, (size_t)MIG_STATE_CHUNK);
		off += ds.data.len;
		ds.last = off == len;
		ds.n_net_offsets = ds.last ? nwire : 0;
		ds.net_offsets = ds.last && nwire ? offs : NULL;
		ret = transport_send(ch, &msg);
	} while (!ret && off < len);
	if (ret)
		vmstate_seterr(err, ret, "sending the device state: %s", strerror(-ret));
out:
	for (unsigned int i = 0; i < nwire; i++)
		free(obuf[i]);
	vmstate_sink_free(sink);
	return ret;
}

/* Wait for CheckpointAck{id}: 0, or the target's refusal in err. */
static int wait_ack(struct primary *m, struct transport_channel *ch, uint64_t id,
		    struct vmstate_error *err)
{
	uint64_t deadline = clock_ns() + MIG_ACK_TIMEOUT_MS * 1000000ull;
	const char *peer = m->colo ? "the secondary" : "the target";
	transport_msg *msg = NULL;
	int ret;

	for (;;) {
		if (atomic_load(&m->cancel))
			return vmstate_seterr(err, -ECANCELED, "migration cancelled");
		ret = transport_recv(ch, 100, &msg);
		if (ret == -EAGAIN) {
			if (clock_ns() < deadline)
				continue;
			return vmstate_seterr(err, -ETIMEDOUT, "%s did not acknowledge the %s",
					      peer, m->colo ? "first sync" : "migration");
		}
		if (ret)
			return vmstate_seterr(err, ret,
					      "%s did not acknowledge the %s (it refused the "
					      "stream or went away): %s",
					      peer, m->colo ? "first sync" : "migration",
					      strerror(-ret));
		if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK &&
		    msg->checkpoint_ack->id == id)
			break;
		if (msg->body_case == COLOVM__TRANSPORT__MSG__BODY_ERROR) {
			ret = vmstate_seterr(err, -ECONNRESET, "%s refused the stream: %s", peer,
					     msg->error->message);
			transport_msg_free(msg);
			return ret;
		}
		transport_msg_free(msg); /* nothing else is expected: skip it */
	}
	ret = msg->checkpoint_ack->status;
	if (ret)
		vmstate_seterr(err, ret < 0 ? ret : -EPROTO, "%s refused %s: %s", peer,
			       m->colo ? "to pair" : "the stream", msg->checkpoint_ack->message);
	transport_msg_free(msg);
	return ret ? (ret < 0 ? ret : -EPROTO) : 0;
}

/* Ask the main loop for req (REQ_STOP, REQ_COLO_*) and wait for its answer. */
int mig_call(struct primary *m, enum mig_req req)
{
	int ret;

	pthread_mutex_lock(&m->lock);
	m->call_done = false;
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, req);
	pthread_mutex_lock(&m->lock);
	while (!m->call_done && !m->freeing)
		pthread_cond_wait(&m->cond, &m->lock);
	ret = m->call_done ? m->call_ret : -ECANCELED;
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static void *mig_thread(void *arg)
{
	struct primary *m = arg;
	struct vm *vm = m->vm;
	uint64_t ram_bytes, npages = hw_vm_ram_pages(vm), words = HW_BITMAP_WORDS(npages);
	uint8_t *ram = hw_vm_ram(vm, &ram_bytes);
	uint64_t *bitmap = NULL, bw = 0, downtime, b0, t0, tm[4], last, state_bytes = 0;
	struct transport_opts topts = {
	    .key = &m->key,
	    .timeout_ms = MIG_CHANNEL_TIMEOUT,
	    .bulk_streams = MIG_BULK_STREAMS,
	    .send_region = ram,
	    .send_region_len = ram_bytes,
	    .name = m->colo ? "colovm COLO primary" : "colovm migration source",
	};
	struct ram_send p = {
	    .vm = vm, .id = 1, .cancel = &m->cancel, .progress = mig_progress, .opaque = m};
	struct transport_channel *ch = NULL;
	struct colo_disk *disk = NULL;
	struct vmstate_error err = {0};
	bool logging = false;
	int ret;

	mig_block_sigpipe();
	ret = transport_connect(m->uri, &topts, &ch);
	/* (a standby that is getting ready refuses for a moment) */
	for (uint64_t until = clock_ns() + m->connect_wait_ms * 1000000ull;
	     ret == -ECONNREFUSED && clock_ns() < until && !atomic_load(&m->cancel);) {
		usleep(20000);
		ret = transport_connect(m->uri, &topts, &ch);
	}
	if (ret) {
		vmstate_seterr(&err, ret, "cannot connect to %s: %s%s", m->uri, strerror(-ret),
			       ret == -EACCES ? " (the two ends have different --peer-key)" : "");
		goto out;
	}
	p.ch = ch;
	if (atomic_load(&m->cancel)) {
		ret = vmstate_seterr(&err, -ECANCELED, "migration cancelled");
		goto out;
	}
	bitmap = malloc(words * sizeof(uint64_t));
	p.bounce = aligned_alloc(HW_PAGE_SIZE, (size_t)RAM_COMMIT_PAGES * HW_PAGE_SIZE);
	if (!bitmap || !p.bounce) {
		ret = vmstate_seterr(&err, -ENOMEM, "out of memory");
		goto out;
	}
	memset(bitmap, 0xff, words * sizeof(uint64_t));
	if (npages % 64)
		bitmap[words - 1] = (1ull << (npages % 64)) - 1;
	ret = hw_dirty_log_start(vm);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot start dirty logging: %s", strerror(-ret));
		goto out;
	}
	logging = true;
	ret = send_stream_start(m, ch, ram_bytes, &err);
	/* COLO: the secondary answers StreamStart at once (CheckpointAck id 0):
	 * a VM that differs is refused before any page is sent. */
	if (!ret && m->colo)
		ret = wait_ack(m, ch, 0, &err);
	if (ret)
		goto out;
	/* Replicated disks first (whole images, then what the guest rewrote):
	 * the RAM rounds that follow are short beside them. */
	if (m->colo) {
		ret = colo_disk_new(vm, ch, &disk);
		if (ret) {
			vmstate_seterr(&err, ret, "disks: %s", strerror(-ret));
			goto out;
		}
		pthread_mutex_lock(&m->lock);
		m->disk = disk;
		pthread_mutex_unlock(&m->lock);
		ret = colo_disk_sync(disk, false, &m->cancel, &err);
		if (ret)
			goto out;
	}
	pthread_mutex_lock(&m->lock);
	m->total = m->remaining = ram_bytes;
	m->setup_ms = (clock_ns() - m->start_ns) / 1000000;
	if (m->status == MIG_SETUP)
		m->status = MIG_ACTIVE;
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_NONE); /* MIGRATION active */

	/* Rounds while the guest runs: round 0 is all of RAM, into a target
	 * whose RAM reads as zero (it never ran), so its zero pages are
	 * skipped; later rounds send every dirty page, zero or not. */
	p.skip_zero = true;
	uint64_t best = UINT64_MAX;
	unsigned int stalled = 0;

	for (;;) {
		uint64_t dirty;

		pthread_mutex_lock(&m->lock);
		p.limit = m->max_bw;
		downtime = m->downtime_limit_ms;
		pthread_mutex_unlock(&m->lock);
		t0 = clock_ns();
		ram_send_begin(&p);
		ret = ram_send_bitmap(&p, bitmap, &err);
		if (ret)
			goto out;
		b0 = p.bytes;
		if (!m->rounds) {
			pthread_mutex_lock(&m->lock);
			m->round0_ns = clock_ns() - t0;
			m->round0_bytes = b0;
			pthread_mutex_unlock(&m->lock);
		}
		p.skip_zero = false;
		ret = hw_dirty_log_sync(vm, bitmap);
		if (ret) {
			vmstate_seterr(&err, ret, "dirty log: %s", strerror(-ret));
			goto out;
		}
		dirty = ram_bitmap_count(bitmap, npages);
		mig_stats_round(m, dirty, b0, clock_ns() - t0, &bw);
		if (bw && dirty * HW_PAGE_SIZE * 1000 / bw <= downtime)
			break;
		if (dirty < best - best / 8) {
			best = dirty;
			stalled = 0;
		} else if (++stalled >= MIG_STALL_ROUNDS) {
			log_info("migration: the dirty set stopped shrinking (%llu pages after %d "
				 "rounds): stopping the VM",
				 (unsigned long long)dirty, (int)m->rounds);
			break;
		}
		if (m->rounds >= MIG_MAX_ROUNDS) {
			log_info("migration: %d rounds without converging, stopping the VM",
				 MIG_MAX_ROUNDS);
			break;
		}
	}

	/* The main loop stops the VM (FINISH_MIGRATE); then the last round,
	 * straight from guest RAM. */
	ret = mig_call(m, REQ_STOP);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot stop the VM: %s", strerror(-ret));
		goto out;
	}
	tm[0] = clock_ns();
	/* Shared storage: the target opens the same images; what the source
	 * wrote must be on disk before the target can read it. */
	ret = m->colo ? 0 : hw_vm_flush_disks(vm);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot flush the disks: %s", strerror(-ret));
		goto out;
	}
	ret = hw_dirty_log_sync(vm, bitmap);
	if (ret) {
		vmstate_seterr(&err, ret, "dirty log: %s", strerror(-ret));
		goto out;
	}
	/* what the guest wrote to replicated disks since their last pass */
	ret = colo_disk_sync(disk, true, &m->cancel, &err);
	if (ret)
		goto out;
	tm[1] = clock_ns();
	last = ram_bitmap_count(bitmap, npages);
	p.limit = 0;
	free(p.bounce);
	p.bounce = NULL;
	ram_send_begin(&p);
	ret = ram_send_bitmap(&p, bitmap, &err);
	tm[2] = clock_ns();
	if (!ret)
		ret = mig_send_device_state(m, ch, p.id, &state_bytes, &err);
	if (ret)
		goto out;
	tm[3] = clock_ns();
	log_debug("migration: stop-and-copy: stopping the VM %llu us, thread resumed %llu us "
		  "later, disk flush + dirty sync %llu us, last %llu pages %llu us, device state "
		  "(%llu bytes) %llu us",
		  (unsigned long long)((m->stopped_ns - m->stop_ns) / 1000),
		  (unsigned long long)((tm[0] - m->stopped_ns) / 1000),
		  (unsigned long long)((tm[1] - tm[0]) / 1000), (unsigned long long)last,
		  (unsigned long long)((tm[2] - tm[1]) / 1000), (unsigned long long)state_bytes,
		  (unsigned long long)((tm[3] - tm[2]) / 1000));
	pthread_mutex_lock(&m->lock);
	m->transferred += state_bytes;
	m->remaining = 0;
	pthread_mutex_unlock(&m->lock);
	ret = wait_ack(m, ch, p.id, &err);
	if (!ret) {
		pthread_mutex_lock(&m->lock);
		m->ack_ns = clock_ns();
		pthread_mutex_unlock(&m->lock);
	}
	if (!ret && m->colo) {
		/* (the VM is still stopped: from its first run on, each write
		 * of its guest goes to the secondary as it is made) */
		colo_disk_stream(disk);
		ret = colo_run(m, ch, &p, bitmap, &err);
	}
out:
	if (ret && atomic_load(&m->cancel) && !m->colo_started)
		vmstate_seterr(&err, -ECANCELED, "migration cancelled");
	if (logging)
		hw_dirty_log_stop(vm);
	/* The packet path mirrors over ch: no more (it still holds and
	 * compares until the main loop ends protection). */
	if (m->net)
		colo_net_detach(m->net);
	pthread_mutex_lock(&m->lock);
	m->colo_ch = NULL;
	if (disk) {
		json_decref(m->disk_last);
		m->disk_last = colo_disk_stats(disk);
		m->disk = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	/* No more writes to the secondary: a send stuck on a peer that is
	 * gone must not hold the tap (and the guest's disk) meanwhile. */
	if (disk && ch && ret)
		transport_abort(ch, ret);
	colo_disk_free(disk);
	transport_close(ch);
	free(p.bounce);
	free(bitmap);
	colo_claim(m);
	pthread_mutex_lock(&m->lock);
	m->result = ret;
	m->end_ns = clock_ns();
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", ret ? err.msg : "");
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_DONE);
	return NULL;
}

/* ---- main loop side ------------------------------------------------------------ */

static void mig_finish(struct primary *m)
{
	int ret;

	pthread_join(m->thread, NULL);
	m->thread_live = false;
	pthread_mutex_lock(&m->lock);
	ret = m->result;
	pthread_mutex_unlock(&m->lock);
	if (m->colo && m->colo_started) {
		/* Protection ended after it began: the VM runs on (colo.c). */
		colo_finish(m, ret, m->errmsg);
		mig_set_status(m, MIG_COMPLETED);
		mig_event(m, MIG_COMPLETED);
		return;
	}
	if (!ret) {
		runstate_set(m->rs, RUN_STATE_POSTMIGRATE);
		mig_set_status(m, MIG_COMPLETED);
		log_info("migration completed: downtime %llu us, total %llu ms",
			 (unsigned long long)((m->ack_ns - m->stop_ns) / 1000),
			 (unsigned long long)((m->end_ns - m->start_ns) / 1000000));
	} else {
		if (m->stopped_vm) {
			if (m->was_running)
				runstate_vm_start(m->rs);
			else
				runstate_set(m->rs, RUN_STATE_PAUSED);
		}
		mig_set_status(m, atomic_load(&m->cancel) ? MIG_CANCELLED : MIG_FAILED);
		log_err("%s %s: %s", m->colo ? "COLO first sync" : "migration",
			atomic_load(&m->cancel) ? "cancelled" : "failed", m->errmsg);
		if (m->colo)
			colo_finish(m, ret, m->errmsg);
	}
	pthread_mutex_lock(&m->lock);
	m->downtime_ms = m->stop_ns && m->ack_ns ? (m->ack_ns - m->stop_ns) / 1000000 : 0;
	if (!ret && m->end_ns > m->start_ns + m->setup_ms * 1000000)
		m->mbps = (double)m->transferred * 8 * 1000 /
			  (double)(m->end_ns - m->start_ns - m->setup_ms * 1000000);
	pthread_mutex_unlock(&m->lock);
	mig_event(m, m->status);
}

static void mig_ev_cb(void *opaque, uint32_t events)
{
	struct primary *m = opaque;
	enum mig_req req;
	uint64_t v, stop_ns;
	int ret;

	if (read(m->evfd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&m->lock);
	req = m->req;
	m->req = REQ_NONE;
	pthread_mutex_unlock(&m->lock);
	switch (req) {
	case REQ_NONE:
		if (m->status == MIG_ACTIVE)
			mig_event(m, MIG_ACTIVE);
		break;
	case REQ_STOP:
		m->was_running = runstate_is_running(m->rs);
		stop_ns = clock_ns();
		ret = runstate_vm_stop_force(m->rs, RUN_STATE_FINISH_MIGRATE);
		m->stopped_vm = !ret;
		pthread_mutex_lock(&m->lock);
		m->stop_ns = stop_ns;
		m->stopped_ns = clock_ns();
		m->call_done = true;
		m->call_ret = ret;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		break;
	case REQ_COLO_START:
	case REQ_CKPT_STOP:
	case REQ_CKPT_RESUME:
	case REQ_SWITCH_STOP:
		ret = colo_main_call(m, req);
		pthread_mutex_lock(&m->lock);
		m->call_done = true;
		m->call_ret = ret;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		break;
	case REQ_DONE:
		mig_finish(m);
		break;
	}
}

/* ---- QMP ------------------------------------------------------------------------ */

/* Start an outgoing stream to uri (colo: protection; standby, with colo:
 * then switch over, migrate with continue). Main loop. 0, or -errno with
 * msg set. */
static int mig_start(struct primary *m, const char *uri, bool colo, const char *standby,
		     unsigned int wait_ms, char *msg, size_t len)
{
	char *sb = NULL;
	int r;

	if (m->thread_live) {
		snprintf(msg, len, "%s",
			 m->colo && m->colo_started ? "The VM is already protected (COLO)"
						    : "There's a migration process in progress");
		return -EBUSY;
	}
	if (runstate_check(m->rs, RUN_STATE_INMIGRATE)) {
		snprintf(msg, len, "Guest is waiting for an incoming migration");
		return -EBUSY;
	}
	if (!uri || !uri_valid(uri)) {
		snprintf(msg, len, "Invalid %s URI '%s' (expected tcp:HOST:PORT or rdma:HOST:PORT)",
			 colo ? "peer" : "migration", uri ? uri : "");
		return -EINVAL;
	}
	if (runstate_needs_reset(m->rs) || runstate_check(m->rs, RUN_STATE_POSTMIGRATE) ||
	    (colo && !runstate_is_running(m->rs))) {
		snprintf(msg, len, "The VM cannot be %s in state '%s'",
			 colo ? "protected" : "migrated", runstate_name(runstate_get(m->rs)));
		return -EINVAL;
	}
	for (unsigned int i = 0; colo && i < hw_vm_disk_count(m->vm); i++) {
		struct hw_disk_info info;

		/* Two images written apart would part after a failover. */
		if (!hw_vm_disk_info(m->vm, i, &info) && !info.replicate && !info.readonly) {
			snprintf(msg, len,
				 "disk %u is neither replicated nor read-only: a VM with a "
				 "writable --disk is protected only with PATH,replicate",
				 i);
			return -EOPNOTSUPP;
		}
	}
	free(m->uri);
	m->uri = strdup(uri);
	if (!m->uri || (standby && !(sb = strdup(standby)))) {
		free(sb);
		return -ENOMEM;
	}
	if (colo && !m->wire && m->opts.take_rewriters) {
		/* A copy that was a secondary and took over: the offsets of
		 * the connections open then move to this role's wire edge. */
		unsigned int nports = hw_vm_net_count(m->vm);
		struct compare_rewrite *rw[nports ? nports : 1];

		r = m->opts.take_rewriters(m->opts.opaque, rw, nports, msg, len);
		if (r < 0) {
			free(sb);
			return r;
		}
		if (r > 0) {
			int got = r;

			r = colo_wire_new(m, rw, (unsigned int)got, &m->wire);
			if (r) {
				/* (out of memory: the rewriters stay with the hooks
				 * that use them, the secondary's) */
				snprintf(msg, len, "cannot take the packet path over: %s",
					 strerror(-r));
				free(sb);
				return r;
			}
			log_info("COLO: re-protect: %llu connection(s) of the takeover rewritten "
				 "at the wire",
				 (unsigned long long)colo_wire_active(m->wire));
		}
	}
	if (colo) {
		uint64_t tmo;

		pthread_mutex_lock(&m->lock);
		tmo = m->compare_timeout_ms;
		pthread_mutex_unlock(&m->lock);
		/* m->net is NULL: the last protection's was freed when it ended. */
		r = colo_net_new(m, tmo, &m->net);
		if (r) {
			snprintf(msg, len, "cannot set up the packet comparison: %s", strerror(-r));
			free(sb);
			return r;
		}
	}
	pthread_mutex_lock(&m->lock);
	m->status = MIG_SETUP;
	m->transferred = m->remaining = m->total = m->dirty_rate = m->rounds = 0;
	m->expected_downtime_ms = m->downtime_ms = m->setup_ms = 0;
	m->round0_bytes = m->round0_ns = m->ack_ns = 0;
	m->mbps = 0;
	m->start_ns = clock_ns();
	m->stop_ns = m->end_ns = 0;
	m->errmsg[0] = 0;
	m->req = REQ_NONE;
	m->colo = colo;
	m->colo_started = false;
	m->colo_shutdown = false;
	m->pending = 0;
	free(m->standby);
	m->standby = sb;
	m->switched = false;
	m->connect_wait_ms = wait_ms;
	if (colo)
		m->ndigest = 0; /* checkpoint ids start again at 2 */
	pthread_mutex_unlock(&m->lock);
	atomic_store(&m->cancel, false);
	m->stopped_vm = false;
	if (colo)
		colo_set_state(m, COLO_SYNC, "first sync to %s", uri);
	/* The witness's session, opened while the first sync runs (kept for
	 * the protections after this one). */
	if (colo && m->witness && !m->witness_session) {
		r = transport_witness_session_new(
		    m->witness, &m->witness_key, TRANSPORT_SIDE_PRIMARY, NULL, &m->witness_session);
		if (r)
			log_err(
			    "COLO: cannot start the witness's session: %s (each claim opens its "
			    "own channel)",
			    strerror(-r));
	}
	r = -pthread_create(&m->thread, NULL, mig_thread, m);
	if (r) {
		mig_set_status(m, MIG_FAILED);
		if (colo)
			colo_set_state(m, COLO_UNPROTECTED, "cannot start the COLO thread");
		colo_net_free(m->net);
		m->net = NULL;
		snprintf(msg, len, "cannot start the migration thread");
		return r;
	}
	m->thread_live = true;
	mig_event(m, MIG_SETUP);
	return 0;
}

/*
 * migrate with continue: the guest goes to the secondary at uri and this
 * host stays its standby on standby. Unprotected: protect first (the first
 * sync is the live migration), then switch over; protected by that very
 * secondary: switch over at the next checkpoint.
 */
static int mig_continue(struct primary *m, const char *uri, const char *standby, char *msg,
			size_t len)
{
	char *sb;

	if (!standby || !uri_valid(standby)) {
		snprintf(msg, len,
			 "migrate with continue needs standby: the URI (tcp:HOST:PORT or "
			 "rdma:HOST:PORT) where this host then waits, as the guest's hot "
			 "standby, for its new primary%s%s%s",
			 standby ? " ('" : "", standby ? standby : "",
			 standby ? "' is not one)" : "");
		return -EINVAL;
	}
	if (!m->thread_live)
		return mig_start(m, uri, true, standby, 0, msg, len);
	if (!m->colo) {
		snprintf(msg, len, "There's a migration process in progress");
		return -EBUSY;
	}
	if (!uri || strcmp(uri, m->uri)) {
		snprintf(msg, len,
			 "The VM is protected by %s: migrate with continue hands it over to "
			 "that secondary only (uri=%s), or cancel protection first",
			 m->uri, m->uri);
		return -EBUSY;
	}
	sb = strdup(standby);
	if (!sb)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	if (m->standby) {
		pthread_mutex_unlock(&m->lock);
		free(sb);
		snprintf(msg, len, "A switchover to %s is under way already", m->uri);
		return -EBUSY;
	}
	m->standby = sb;
	pthread_mutex_unlock(&m->lock);
	if (write(m->colo_evfd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
		log_err("colo: eventfd: %s", strerror(errno));
	log_info("COLO: switchover to %s asked: at the next checkpoint", uri);
	return 0;
}

static int qmp_migrate(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;
	const char *uri = json_string_value(json_object_get(args, "uri"));
	const char *standby = json_string_value(json_object_get(args, "standby"));
	char msg[320];
	int r;

	if (json_is_true(json_object_get(args, "continue"))) {
		r = mig_continue(m, uri, standby, msg, sizeof(msg));
	} else if (standby) {
		snprintf(msg, sizeof(msg), "standby is an argument of continue");
		r = -EINVAL;
	} else {
		r = mig_start(m, uri, false, NULL, 0, msg, sizeof(msg));
	}
	return r == -ENOMEM ? r : r ? qmp_error_set(err, QMP_ERROR_GENERIC, "%s", msg) : 0;
}

int primary_colo_protect(struct primary *m, const char *uri, unsigned int wait_ms, char *msg,
			 size_t len)
{
	return mig_start(m, uri, true, NULL, wait_ms, msg, len);
}

static int qmp_colo_protect(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;
	char msg[256];
	int r = mig_start(m, json_string_value(json_object_get(args, "uri")), true, NULL, 0, msg,
			  sizeof(msg));

	return r == -ENOMEM ? r : r ? qmp_error_set(err, QMP_ERROR_GENERIC, "%s", msg) : 0;
}

static int qmp_migrate_cancel(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;

	if (!m->thread_live)
		return 0;
	atomic_store(&m->cancel, true);
	pthread_mutex_lock(&m->lock);
	if (m->status == MIG_SETUP || m->status == MIG_ACTIVE || m->status == MIG_COLO)
		m->status = MIG_CANCELLING;
	pthread_mutex_unlock(&m->lock);
	if (m->colo_evfd >= 0 && write(m->colo_evfd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
		log_err("colo: eventfd: %s", strerror(errno));
	mig_event(m, MIG_CANCELLING);
	return 0;
}

static int qmp_query_migrate(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;
	uint64_t now = clock_ns();
	json_t *o;

	pthread_mutex_lock(&m->lock);
	if (m->status == MIG_NONE) {
		pthread_mutex_unlock(&m->lock);
		*ret = json_object();
		return 0;
	}
	o = json_pack("{s:s,s:{s:I,s:I,s:I,s:I,s:f,s:I},s:I}", "status", mig_status_name[m->status],
		      "ram", "transferred", (json_int_t)m->transferred, "remaining",
		      (json_int_t)m->remaining, "total", (json_int_t)m->total, "dirty-pages-rate",
		      (json_int_t)m->dirty_rate, "mbps", m->mbps, "dirty-sync-count",
		      (json_int_t)m->rounds, "total-time",
		      (json_int_t)(((m->end_ns ? m->end_ns : now) - m->start_ns) / 1000000));
	if (o && (m->status == MIG_ACTIVE || m->status == MIG_SETUP))
		json_object_set_new(o, "expected-downtime",
				    json_integer((json_int_t)m->expected_downtime_ms));
	if (o && m->status == MIG_COMPLETED) {
		json_object_set_new(o, "downtime", json_integer((json_int_t)m->downtime_ms));
		json_object_set_new(o, "x-downtime-us",
				    json_integer((json_int_t)((m->ack_ns - m->stop_ns) / 1000)));
		json_object_set_new(o, "setup-time", json_integer((json_int_t)m->setup_ms));
	}
	if (o && m->round0_ns) {
		json_t *ram = json_object_get(o, "ram");

		json_object_set_new(ram, "x-round0-bytes",
				    json_integer((json_int_t)m->round0_bytes));
		json_object_set_new(ram, "x-round0-ns", json_integer((json_int_t)m->round0_ns));
		json_object_set_new(ram, "x-round0-bytes-per-second",
				    json_integer((json_int_t)(m->round0_bytes * 1000000000.0 /
							      (double)m->round0_ns)));
	}
	if (o && (m->status == MIG_FAILED || m->status == MIG_CANCELLED) && m->errmsg[0])
		json_object_set_new(o, "error-desc", json_string(m->errmsg));
	pthread_mutex_unlock(&m->lock);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static int qmp_set_params(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;
	json_t *dl = json_object_get(args, "downtime-limit");
	json_t *bw = json_object_get(args, "max-bandwidth");
	json_t *ci = json_object_get(args, "checkpoint-interval");
	json_t *cd = json_object_get(args, "x-checkpoint-delay");
	json_t *dg = json_object_get(args, "x-colo-ram-digest");
	json_t *ct = json_object_get(args, "compare-timeout");
	json_t *hi = json_object_get(args, "heartbeat-interval");
	json_t *hm = json_object_get(args, "heartbeat-misses");

	if (ct && (json_integer_value(ct) < PRIMARY_COMPARE_TIMEOUT_MIN ||
		   json_integer_value(ct) > PRIMARY_COMPARE_TIMEOUT_MAX))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'compare-timeout' expects an integer in the "
				     "range of %d to %d milliseconds",
				     PRIMARY_COMPARE_TIMEOUT_MIN, PRIMARY_COMPARE_TIMEOUT_MAX);
	if (hi && (json_integer_value(hi) < PRIMARY_HEARTBEAT_INTERVAL_MIN ||
		   json_integer_value(hi) > PRIMARY_HEARTBEAT_INTERVAL_MAX))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'heartbeat-interval' expects an integer in the "
				     "range of %d to %d milliseconds",
				     PRIMARY_HEARTBEAT_INTERVAL_MIN,
				     PRIMARY_HEARTBEAT_INTERVAL_MAX);
	if (hm && (json_integer_value(hm) < PRIMARY_HEARTBEAT_MISSES_MIN ||
		   json_integer_value(hm) > PRIMARY_HEARTBEAT_MISSES_MAX))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'heartbeat-misses' expects an integer in the "
				     "range of %d to %d",
				     PRIMARY_HEARTBEAT_MISSES_MIN, PRIMARY_HEARTBEAT_MISSES_MAX);
	if (!ci)
		ci = cd; /* QEMU's name for the same period */
	if (ci && (json_integer_value(ci) < PRIMARY_CKPT_INTERVAL_MIN ||
		   json_integer_value(ci) > PRIMARY_CKPT_INTERVAL_MAX))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'checkpoint-interval' expects an integer in the "
				     "range of %d to %d milliseconds",
				     PRIMARY_CKPT_INTERVAL_MIN, PRIMARY_CKPT_INTERVAL_MAX);

	if (dl && (json_integer_value(dl) < PRIMARY_DOWNTIME_LIMIT_MIN ||
		   json_integer_value(dl) > PRIMARY_DOWNTIME_LIMIT_MAX))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'downtime_limit' expects an integer in the range "
				     "of %d to %d milliseconds",
				     PRIMARY_DOWNTIME_LIMIT_MIN, PRIMARY_DOWNTIME_LIMIT_MAX);
	if (bw && json_integer_value(bw) < 0)
		return qmp_error_set(
		    err, QMP_ERROR_GENERIC,
		    "Parameter 'max_bandwidth' expects a size in bytes per second");
	pthread_mutex_lock(&m->lock);
	if (dl)
		m->downtime_limit_ms = (uint64_t)json_integer_value(dl);
	if (bw)
		m->max_bw = (uint64_t)json_integer_value(bw);
	if (ci)
		m->ckpt_interval_ms = (uint64_t)json_integer_value(ci);
	if (dg)
		m->ram_digest = json_is_true(dg);
	if (ct)
		m->compare_timeout_ms = (uint64_t)json_integer_value(ct);
	if (hi)
		m->hb_interval_ms = (uint64_t)json_integer_value(hi);
	if (hm)
		m->hb_misses = (uint64_t)json_integer_value(hm);
	pthread_mutex_unlock(&m->lock);
	if (ct && m->net)
		colo_net_set_timeout(m->net, (uint64_t)json_integer_value(ct));
	/* The checkpoint thread takes the new period at once. */
	if (ci && m->colo_evfd >= 0 && write(m->colo_evfd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
		log_err("colo: eventfd: %s", strerror(errno));
	return 0;
}

static int qmp_query_params(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;

	pthread_mutex_lock(&m->lock);
	*ret = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "downtime-limit",
			 (json_int_t)m->downtime_limit_ms, "max-bandwidth", (json_int_t)m->max_bw,
			 "checkpoint-interval", (json_int_t)m->ckpt_interval_ms,
			 "x-checkpoint-delay", (json_int_t)m->ckpt_interval_ms, "compare-timeout",
			 (json_int_t)m->compare_timeout_ms, "heartbeat-interval",
			 (json_int_t)m->hb_interval_ms, "heartbeat-misses",
			 (json_int_t)m->hb_misses, "x-colo-ram-digest", m->ram_digest);
	pthread_mutex_unlock(&m->lock);
	return *ret ? 0 : -ENOMEM;
}

int primary_set_parameters(struct primary *p, json_t *args, char *msg, size_t len)
{
	struct qmp_error err = {0};
	json_t *ret = NULL;
	int r = qmp_set_params(p, args, &ret, &err);

	json_decref(ret);
	if (r)
		snprintf(msg, len, "%s", err.desc[0] ? err.desc : strerror(-r));
	return r;
}

static int qmp_snapshot_save(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct primary *m = opaque;
	const char *path = json_string_value(json_object_get(args, "file"));
	struct vmstate_error verr = {0};
	bool was_running = runstate_is_running(m->rs);
	char *tmp = NULL;
	int fd, r;

	if (m->thread_live || runstate_check(m->rs, RUN_STATE_INMIGRATE))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "a migration is in progress");
	if (runstate_needs_reset(m->rs))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "the VM cannot be saved in state '%s'",
				     runstate_name(runstate_get(m->rs)));
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = qmp_error_set(err, QMP_ERROR_GENERIC, "cannot create '%s': %s", tmp,
				  strerror(errno));
		free(tmp);
		return r;
	}
	if (was_running) {
		r = runstate_vm_stop(m->rs, RUN_STATE_SAVE_VM);
		if (r) {
			close(fd);
			unlink(tmp);
			free(tmp);
			return qmp_error_set(err, QMP_ERROR_GENERIC, "cannot stop the VM");
		}
	}
	r = hw_vm_save(m->vm, fd, &verr);
	if (!r && fsync(fd) < 0)
		r = vmstate_seterr(&verr, -errno, "fsync: %s", strerror(errno));
	if (close(fd) < 0 && !r)
		r = vmstate_seterr(&verr, -errno, "close: %s", strerror(errno));
	if (!r && rename(tmp, path) < 0)
		r = vmstate_seterr(&verr, -errno, "rename to '%s': %s", path, strerror(errno));
	if (r)
		unlink(tmp);
	free(tmp);
	if (was_running)
		runstate_vm_start(m->rs);
	if (r)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "snapshot-save: %s", verr.msg);
	log_info("snapshot saved to %s", path);
	return 0;
}

static const struct qmp_arg migrate_args[] = {
    {"uri", QMP_ARG_STRING, false},
    {"detach", QMP_ARG_BOOL, true},
    {"blk", QMP_ARG_BOOL, true},
    {"inc", QMP_ARG_BOOL, true},
    {"continue", QMP_ARG_BOOL, true},
    {"standby", QMP_ARG_STRING, true},
    {NULL, 0, false},
};
static const struct qmp_arg params_args[] = {
    {"downtime-limit", QMP_ARG_INT, true},
    {"max-bandwidth", QMP_ARG_INT, true},
    {"checkpoint-interval", QMP_ARG_INT, true},
    {"x-checkpoint-delay", QMP_ARG_INT, true},
    {"x-colo-ram-digest", QMP_ARG_BOOL, true},
    {"compare-timeout", QMP_ARG_INT, true},
    {"heartbeat-interval", QMP_ARG_INT, true},
    {"heartbeat-misses", QMP_ARG_INT, true},
    {NULL, 0, false},
};
static const struct qmp_arg protect_args[] = {
    {"uri", QMP_ARG_STRING, false},
    {NULL, 0, false},
};
static const struct qmp_arg snapshot_args[] = {
    {"file", QMP_ARG_STRING, false},
    {NULL, 0, false},
};

static const char *const cmd_names[] = {
    "migrate",
    "migrate_cancel",
    "query-migrate",
    "migrate-set-parameters",
    "query-migrate-parameters",
    "snapshot-save",
    "colo-protect",
};

int primary_new(struct vm *vm, struct runstate *rs, struct loop *loop, struct qmp *qmp,
		const struct primary_opts *opts, struct primary **out)
{
	static const struct {
		const struct qmp_arg *args;
		qmp_cmd_fn fn;
	} cmds[] = {
	    {migrate_args, qmp_migrate},      {NULL, qmp_migrate_cancel},
	    {NULL, qmp_query_migrate},	      {params_args, qmp_set_params},
	    {NULL, qmp_query_params},	      {snapshot_args, qmp_snapshot_save},
	    {protect_args, qmp_colo_protect},
	};
	struct primary *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	m->vm = vm;
	m->rs = rs;
	m->loop = loop;
	m->downtime_limit_ms = PRIMARY_DOWNTIME_LIMIT_DEFAULT;
	m->ckpt_interval_ms = PRIMARY_CKPT_INTERVAL_DEFAULT;
	m->compare_timeout_ms = PRIMARY_COMPARE_TIMEOUT_DEFAULT;
	m->hb_interval_ms = PRIMARY_HEARTBEAT_INTERVAL_DEFAULT;
	m->hb_misses = PRIMARY_HEARTBEAT_MISSES_DEFAULT;
	m->colo_evfd = -1;
	if (opts && opts->key)
		m->key = *opts->key;
	else
		transport_key_public(&m->key);
	if (opts)
		m->opts = *opts;
	m->opts.key = NULL;
	m->vm_config = strdup(opts && opts->vm_config ? opts->vm_config : "");
	m->opts.vm_config = NULL;
	m->opts.witness = NULL;
	m->opts.witness_key = NULL;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	hist_init(&m->pause_hist, hist_pause_us, HIST_PAUSE_BUCKETS);
	m->colo_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!m->vm_config || m->colo_evfd < 0) {
		ret = -ENOMEM;
		m->evfd = m->evfd < 0 ? -1 : (close(m->evfd), -1);
		goto err;
	}
	if (m->evfd < 0) {
		ret = -errno;
		goto err;
	}
	ret = loop_add_fd(loop, m->evfd, 0x001 /* EPOLLIN */, mig_ev_cb, m);
	if (ret) {
		close(m->evfd);
		m->evfd = -1;
		goto err;
	}
	if (opts && opts->witness) {
		m->witness = strdup(opts->witness);
		m->witness_key = opts->witness_key ? *opts->witness_key : m->key;
		if (!m->witness) {
			ret = -ENOMEM;
			goto err;
		}
	}
	m->qmp = qmp;
	for (unsigned int i = 0; qmp && i < ARRAY_SIZE(cmds) && !ret; i++)
		ret = qmp_register(qmp, cmd_names[i], cmds[i].args, cmds[i].fn, m);
	if (!ret)
		ret = colo_register(m);
	if (ret)
		goto err;
	*out = m;
	return 0;
err:
	primary_free(m);
	return ret;
}

void primary_free(struct primary *m)
{
	if (!m)
		return;
	if (m->thread_live) {
		/* A thread waiting for the main loop (which no longer runs)
		 * gets -ECANCELED; a protected pair ends: the secondary is
		 * told to shut down too. */
		/* cancel first: a thread that wakes on freeing must find it
		 * (else a checkpoint cut short by the quit reads as a failure
		 * and the secondary, never told, takes over) */
		atomic_store(&m->cancel, true);
		pthread_mutex_lock(&m->lock);
		m->colo_shutdown = true;
		m->freeing = true;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		if (write(m->colo_evfd, &(uint64_t){1}, sizeof(uint64_t)) < 0)
			log_err("colo: eventfd: %s", strerror(errno));
		pthread_join(m->thread, NULL);
	}
	colo_net_free(m->net);
	m->net = NULL;
	colo_wire_free(m->wire);
	m->wire = NULL;
	json_decref(m->net_last);
	json_decref(m->disk_last);
	hw_ram_hash_ring_free(&m->page_hashes);
	colo_unregister(m);
	if (m->evfd >= 0) {
		loop_del_fd(m->loop, m->evfd);
		close(m->evfd);
	}
	for (unsigned int i = 0; m->qmp && i < ARRAY_SIZE(cmd_names); i++)
		qmp_unregister(m->qmp, cmd_names[i]);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	if (m->colo_evfd >= 0)
		close(m->colo_evfd);
	memset(&m->key, 0, sizeof(m->key));
	transport_witness_session_free(m->witness_session);
	memset(&m->witness_key, 0, sizeof(m->witness_key));
	free(m->witness);
	free(m->vm_config);
	free(m->uri);
	free(m->standby);
	free(m);
}
