/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, primary side: replicated disks (--disk PATH,replicate; the
 * protocol is in transport/transport.h, "Replicated disks").
 *
 *   first sync   the tap marks the 64 KiB chunks the guest writes (TRACK);
 *                the migration thread sends every chunk of every image, then
 *                what was marked meanwhile, pass after pass while the guest
 *                runs, and the rest once the VM is stopped (disk_sync)
 *   protected    the tap queues a copy of each write as it reached the image
 *                (STREAM), and the guest hears of it at once; a sender
 *                thread sends the queue, in order, as DiskWrites. A
 *                checkpoint waits for the queue to drain (the VM stopped:
 *                nothing joins it) before its request goes out, so every
 *                write it covers is ahead of the request on the channel.
 *                The queue holds at most DISK_QUEUE_MAX bytes: beyond, the
 *                tap waits for room (the guest's writes slow to the link's
 *                pace instead of memory growing). Before a checkpoint stops
 *                the VM the queue settles (colo_disk_settle): the limit
 *                drops to DISK_SETTLE and the checkpoint waits, the guest
 *                running, until no more is queued, so the pause drains at
 *                most that much rather than up to the whole queue
 *
 * The tap goes when protection ends (disk_free, before the channel is
 * closed): from then on the guest writes its image alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "primary/internal.h"
#include "transport/transport.h"

#define DISK_CHUNK	(64u << 10)  /* first sync: the unit marked and sent */
#define DISK_PIECE	(256u << 10) /* data bytes per DiskWrite */
#define DISK_MAX	16
#define DISK_PASSES	8	    /* first sync: passes while the guest runs, at most */
#define DISK_FEW_CHUNKS 16	    /* ... or until this few are left for the stop */
#define DISK_QUEUE_MAX	(32u << 20) /* protected: write bytes queued for the sender */
#define DISK_SETTLE	(4u << 20)  /* ... and before a checkpoint's stop */
#define DISK_SETTLE_NS	(1000ull * 1000 * 1000) /* the longest a settle waits */

struct disk_write {
	struct disk_write *next;
	unsigned int disk;
	uint64_t off, len;
	uint8_t data[];
};

enum disk_mode { DISK_TRACK, DISK_STREAM };

struct colo_disk {
	struct vm *vm;
	struct transport_channel *ch;
	_Atomic int mode;
	_Atomic int err; /* the first failed send (the channel has failed too) */
	unsigned int n;	 /* disks (all of them; unreplicated ones stay out) */
	struct {
		bool replicate;
		uint64_t bytes, chunks;
		_Atomic uint64_t *map; /* TRACK: one bit per chunk */
	} d[DISK_MAX];
	uint8_t *rbuf; /* first sync: a chunk read (the migration thread) */
	/* STREAM: the writes not yet sent, oldest first (under qlock) */
	pthread_mutex_t qlock;
	pthread_cond_t qcond; /* an entry, room, the queue drained, stop */
	struct disk_write *head, **tail;
	uint64_t queued; /* bytes in the queue and in the sender's hands */
	uint64_t limit;	 /* DISK_QUEUE_MAX, or DISK_SETTLE while a checkpoint settles */
	bool stop, sender_live;
	pthread_t sender;
	/* figures */
	_Atomic uint64_t writes, write_bytes, sync_bytes, sync_total, sync_left;
	_Atomic uint64_t settle_ns_max, settle_ns_last;
};

static void mark(struct colo_disk *k, unsigned int disk, uint64_t off, uint64_t len)
{
	for (uint64_t c = off / DISK_CHUNK; c <= (off + len - 1) / DISK_CHUNK; c++)
		atomic_fetch_or(&k->d[disk].map[c / 64], 1ull << (c % 64));
}

static int send_piece(struct transport_channel *ch, unsigned int disk, uint64_t off,
		      const uint8_t *data, size_t len)
{
	Colovm__Transport__DiskWrite w = COLOVM__TRANSPORT__DISK_WRITE__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;

	w.disk = disk;
	w.offset = off;
	w.data.data = (uint8_t *)data;
	w.data.len = len;
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_DISK_WRITE;
	msg.disk_write = &w;
	return transport_send(ch, &msg);
}

/* The first error is the one kept (the channel has failed, or writes were
 * lost): checkpoints fail on it from then on. */
static void fail(struct colo_disk *k, int err)
{
	int zero = 0;

	atomic_compare_exchange_strong(&k->err, &zero, err);
}

/* The sender thread: the queue, in order, as DiskWrite pieces. */
static void *sender(void *arg)
{
	struct colo_disk *k = arg;

	pthread_mutex_lock(&k->qlock);
	for (;;) {
		struct disk_write *w;
		int ret = 0;

		while (!k->head && !k->stop)
			pthread_cond_wait(&k->qcond, &k->qlock);
		if (!k->head)
			break;
		w = k->head;
		k->head = w->next;
		if (!k->head)
			k->tail = &k->head;
		pthread_mutex_unlock(&k->qlock);
		for (uint64_t done = 0; !ret && !atomic_load(&k->err) && done < w->len;) {
			size_t piece = (size_t)MIN(w->len - done, (uint64_t)DISK_PIECE);

			ret = send_piece(k->ch, w->disk, w->off + done, w->data + done, piece);
			done += piece;
		}
		if (ret)
			fail(k, ret);
		pthread_mutex_lock(&k->qlock);
		k->queued -= w->len;
		free(w);
		pthread_cond_broadcast(&k->qcond);
	}
	pthread_mutex_unlock(&k->qlock);
	return NULL;
}

/* The disk's I/O thread: a write of the guest reached the image. */
static void tap(void *opaque, unsigned int disk, uint64_t off, const struct iovec *iov,
		unsigned int cnt, uint64_t len)
{
	struct colo_disk *k = opaque;
	struct disk_write *w;
	uint64_t at = 0;

	if (disk >= k->n || !len)
		return;
	if (atomic_load(&k->mode) == DISK_TRACK) {
		mark(k, disk, off, len);
		return;
	}
	if (atomic_load(&k->err))
		return; /* the pair is breaking: the channel failed */
	w = malloc(sizeof(*w) + len);
	if (!w) {
		/* (the next checkpoint fails: protection ends, nothing lost) */
		fail(k, -ENOMEM);
		return;
	}
	w->next = NULL;
	w->disk = disk;
	w->off = off;
	w->len = len;
	for (unsigned int i = 0; i < cnt && at < len; i++) {
		size_t c = (size_t)MIN(iov[i].iov_len, len - at);

		memcpy(w->data + at, iov[i].iov_base, c);
		at += c;
	}
	atomic_fetch_add(&k->writes, 1);
	atomic_fetch_add(&k->write_bytes, len);
	pthread_mutex_lock(&k->qlock);
	while (k->queued && k->queued + len > k->limit && !atomic_load(&k->err) && !k->stop)
		pthread_cond_wait(&k->qcond, &k->qlock);
	k->queued += len;
	*k->tail = w;
	k->tail = &w->next;
	pthread_cond_broadcast(&k->qcond);
	pthread_mutex_unlock(&k->qlock);
}

int colo_disk_new(struct vm *vm, struct transport_channel *ch, struct colo_disk **out)
{
	struct colo_disk *k;
	unsigned int n = hw_vm_disk_count(vm);
	bool any = false;

	*out = NULL;
	if (n > DISK_MAX)
		return -E2BIG;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->vm = vm;
	k->ch = ch;
	k->n = n;
	pthread_mutex_init(&k->qlock, NULL);
	pthread_cond_init(&k->qcond, NULL);
	k->tail = &k->head;
	k->limit = DISK_QUEUE_MAX;
	atomic_store(&k->mode, DISK_TRACK);
	for (unsigned int i = 0; i < n; i++) {
		struct hw_disk_info info;

		if (hw_vm_disk_info(vm, i, &info) || !info.replicate)
			continue;
		any = true;
		k->d[i].replicate = true;
		k->d[i].bytes = info.bytes;
		k->d[i].chunks = (info.bytes + DISK_CHUNK - 1) / DISK_CHUNK;
		k->d[i].map = calloc(k->d[i].chunks / 64 + 1, sizeof(uint64_t));
		if (!k->d[i].map)
			goto nomem;
		/* every chunk: the first pass copies the whole image */
		for (uint64_t c = 0; c < k->d[i].chunks; c++)
			atomic_fetch_or(&k->d[i].map[c / 64], 1ull << (c % 64));
		k->sync_total += info.bytes;
	}
	if (!any) {
		colo_disk_free(k);
		return 0;
	}
	k->rbuf = malloc(DISK_CHUNK);
	if (!k->rbuf)
		goto nomem;
	if (pthread_create(&k->sender, NULL, sender, k)) {
		colo_disk_free(k);
		return -EAGAIN;
	}
	k->sender_live = true;
	hw_vm_disk_set_tap(vm, tap, k);
	*out = k;
	return 0;
nomem:
	colo_disk_free(k);
	return -ENOMEM;
}

void colo_disk_free(struct colo_disk *k)
{
	if (!k)
		return;
	hw_vm_disk_set_tap(k->vm, NULL, NULL); /* waits for a write in the tap */
	pthread_mutex_lock(&k->qlock);
	k->stop = true;
	/* writes not sent when protection ends: the secondary is gone or
	 * told to stand down; they are on this side's image */
	if (k->sender_live && k->head)
		fail(k, -ECANCELED);
	pthread_cond_broadcast(&k->qcond);
	pthread_mutex_unlock(&k->qlock);
	if (k->sender_live)
		pthread_join(k->sender, NULL);
	while (k->head) {
		struct disk_write *w = k->head;

		k->head = w->next;
		free(w);
	}
	for (unsigned int i = 0; i < k->n; i++)
		free((void *)k->d[i].map);
	pthread_mutex_destroy(&k->qlock);
	pthread_cond_destroy(&k->qcond);
	free(k->rbuf);
	free(k);
}

void colo_disk_settle(struct colo_disk *k)
{
	struct timespec until;
	uint64_t t0 = clock_ns(), took;

	if (!k || atomic_load(&k->mode) != DISK_STREAM)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DISK_SETTLE_NS / 1000000000ull;
	pthread_mutex_lock(&k->qlock);
	k->limit = DISK_SETTLE;
	while (k->queued > DISK_SETTLE && !atomic_load(&k->err) &&
	       pthread_cond_timedwait(&k->qcond, &k->qlock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&k->qlock);
	took = clock_ns() - t0;
	atomic_store(&k->settle_ns_last, took);
	if (took > atomic_load(&k->settle_ns_max))
		atomic_store(&k->settle_ns_max, took);
}

void colo_disk_unsettle(struct colo_disk *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->qlock);
	k->limit = DISK_QUEUE_MAX;
	pthread_cond_broadcast(&k->qcond);
	pthread_mutex_unlock(&k->qlock);
}

int colo_disk_drain(struct colo_disk *k, struct vmstate_error *err)
{
	int ret;

	if (!k)
		return 0;
	pthread_mutex_lock(&k->qlock);
	while (k->queued && !atomic_load(&k->err))
		pthread_cond_wait(&k->qcond, &k->qlock);
	pthread_mutex_unlock(&k->qlock);
	/* (the VM is stopped: no write joins the queue until it runs again) */
	colo_disk_unsettle(k);
	ret = atomic_load(&k->err);
	return ret ? vmstate_seterr(err, ret, "the disk writes did not reach the secondary: %s",
				    strerror(-ret))
		   : 0;
}

static uint64_t marked(struct colo_disk *k)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < k->n; i++)
		for (uint64_t w = 0; k->d[i].replicate && w <= k->d[i].chunks / 64; w++)
			n += (uint64_t)__builtin_popcountll(atomic_load(&k->d[i].map[w]));
	return n;
}

/* One pass: every marked chunk, read from the image after its bit was
 * taken (a write after that marks it again). */
static int pass(struct colo_disk *k, _Atomic bool *cancel, struct vmstate_error *err)
{
	for (unsigned int i = 0; i < k->n; i++) {
		for (uint64_t w = 0; k->d[i].replicate && w <= k->d[i].chunks / 64; w++) {
			uint64_t bits = atomic_exchange(&k->d[i].map[w], 0);

			while (bits) {
				uint64_t c = w * 64 + (uint64_t)__builtin_ctzll(bits);
				uint64_t off = c * DISK_CHUNK;
				size_t len = (size_t)MIN((uint64_t)DISK_CHUNK, k->d[i].bytes - off);
				int ret;

				bits &= bits - 1;
				if (cancel && atomic_load(cancel))
					return vmstate_seterr(err, -ECANCELED, "cancelled");
				ret = hw_vm_disk_read(k->vm, i, k->rbuf, len, off);
				if (ret)
					return vmstate_seterr(err, ret, "disk %u: cannot read: %s",
							      i, strerror(-ret));
				ret = send_piece(k->ch, i, off, k->rbuf, len);
				if (ret)
					return vmstate_seterr(err, ret,
							      "the secondary went away: %s",
							      strerror(-ret));
				atomic_fetch_add(&k->sync_bytes, len);
			}
			atomic_store(&k->sync_left, marked(k) * DISK_CHUNK);
		}
	}
	return 0;
}

int colo_disk_sync(struct colo_disk *k, bool stopped, _Atomic bool *cancel,
		   struct vmstate_error *err)
{
	int ret = 0;

	if (!k)
		return 0;
	if (stopped)
		return pass(k, cancel, err);
	/* Passes while what is left shrinks: a guest that rewrites as fast as
	 * the link copies would keep them going for nothing. */
	for (uint64_t i = 0, prev = UINT64_MAX, left = marked(k);
	     i < DISK_PASSES && !ret && left > DISK_FEW_CHUNKS && left < prev - prev / 8;
	     i++, prev = left, left = marked(k))
		ret = pass(k, cancel, err);
	if (!ret)
		log_info("COLO: disks: %llu MiB copied to the secondary, %llu KiB left for the "
			 "stop",
			 (unsigned long long)(atomic_load(&k->sync_bytes) >> 20),
			 (unsigned long long)(marked(k) * DISK_CHUNK >> 10));
	return ret;
}

void colo_disk_stream(struct colo_disk *k)
{
	if (k)
		atomic_store(&k->mode, DISK_STREAM);
}

json_t *colo_disk_stats(struct colo_disk *k)
{
	uint64_t queued;

	if (!k)
		return NULL;
	pthread_mutex_lock(&k->qlock);
	queued = k->queued;
	pthread_mutex_unlock(&k->qlock);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "queued-bytes", (json_int_t)queued,
			 "writes", (json_int_t)atomic_load(&k->writes), "write-bytes",
			 (json_int_t)atomic_load(&k->write_bytes), "sync-bytes",
			 (json_int_t)atomic_load(&k->sync_bytes), "sync-total",
			 (json_int_t)atomic_load(&k->sync_total), "sync-remaining",
			 (json_int_t)atomic_load(&k->sync_left), "settle-last-ms",
			 (double)atomic_load(&k->settle_ns_last) / 1e6, "settle-max-ms",
			 (double)atomic_load(&k->settle_ns_max) / 1e6);
}
