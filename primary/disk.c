/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, primary side: replicated disks (--disk PATH,replicate; the
 * protocol is in transport/transport.h, "Replicated disks").
 *
 * Like RAM, a disk is replicated by what is dirty, not by each write: a
 * bitmap per image, one bit per 4 KiB block, set by the tap on the disk's
 * I/O thread once a write of the guest reached the image (before the guest
 * hears of it). Blocks are sent read back from the image after their bit
 * was taken, so a block the guest rewrote ten times between two sends goes
 * once, with its latest content, and a write that lands while its block is
 * read marks it again (it goes again, whole). The secondary buffers what
 * comes and applies it in order at the checkpoint's commit: the latest
 * copy of each block wins.
 *
 *   first sync   every bit set: the migration thread sends the whole image,
 *                then what the guest marked meanwhile, pass after pass
 *                while the guest runs, and the rest once the VM is stopped
 *                (colo_disk_sync)
 *   protected    a sender thread sends the marked blocks, in runs of up
 *                to 256 KiB (one DiskWrite each), whenever more than
 *                DISK_LAZY bytes are marked: less waits for the checkpoint,
 *                so a small set the guest keeps rewriting goes once per
 *                checkpoint, not once per write. A checkpoint,
 *                once the VM is stopped (the pause waits for the device's
 *                current requests, so nothing more is marked), waits until
 *                no bit is left and the sender is idle before its request
 *                goes out: every block it covers is ahead of the request on
 *                the channel. At most DISK_DIRTY_MAX bytes may be marked
 *                and not sent: beyond, the tap waits (the guest's writes
 *                slow to the link's pace and a pause sends little). Before
 *                a checkpoint stops the VM the disk settles
 *                (colo_disk_settle): the limit drops to DISK_SETTLE and the
 *                checkpoint waits, the guest running, until no more is
 *                marked
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

#define DISK_BLOCK     (4u << 10) /* the unit marked; a bitmap word is 256 KiB */
#define DISK_MAX       16
#define DISK_PASSES    8	   /* first sync: passes while the guest runs, at most */
#define DISK_FEW_BYTES (1u << 20)  /* ... or until this little is left for the stop */
#define DISK_DIRTY_MAX (32u << 20) /* protected: bytes marked and not yet sent */
#define DISK_SETTLE    (4u << 20)  /* ... and before a checkpoint's stop */
#define DISK_LAZY      DISK_SETTLE /* the sender waits for this much marked */
#define DISK_SETTLE_NS (1000ull * 1000 * 1000) /* the longest a settle waits */
#define DISK_RUN       (64u * DISK_BLOCK)      /* a DiskWrite: a word's blocks at most */

enum disk_mode { DISK_SYNC, DISK_PROTECTED };

struct colo_disk {
	struct vm *vm;
	struct transport_channel *ch;
	_Atomic int mode;
	_Atomic int err; /* the first failed send (the channel has failed too) */
	unsigned int n;	 /* disks (all of them; unreplicated ones stay out) */
	struct {
		bool replicate;
		uint64_t bytes, blocks;
		_Atomic uint64_t *map; /* one bit per block */
	} d[DISK_MAX];
	/* bytes marked: every set bit's block (signed: a sender may take bits
	 * a tap set before the tap counted them; read through dirty()) */
	_Atomic int64_t dirty;
	uint8_t *rbuf, *sbuf;	/* a run read: migration thread, sender thread */
	/* protected: the sender and those who wait for it */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* blocks marked, blocks sent, the sender idle, stop */
	uint64_t limit;	     /* DISK_DIRTY_MAX, or DISK_SETTLE while a checkpoint settles */
	uint64_t lazy;	     /* the sender sends above: DISK_LAZY, 0 in a checkpoint's stop */
	bool busy;	     /* the sender holds taken bits not yet sent */
	bool stop, sender_live;
	pthread_t sender;
	/* figures */
	_Atomic uint64_t writes, write_bytes, sent_bytes, sync_bytes, sync_total;
	_Atomic uint64_t settle_ns_max, settle_ns_last;
};

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

static uint64_t dirty(struct colo_disk *k)
{
	int64_t v = atomic_load(&k->dirty);

	return v > 0 ? (uint64_t)v : 0;
}

/* Mark the blocks of [off, off + len) of disk; returns the bytes newly
 * marked. */
static uint64_t mark(struct colo_disk *k, unsigned int disk, uint64_t off, uint64_t len)
{
	uint64_t first = off / DISK_BLOCK, last = (off + len - 1) / DISK_BLOCK, fresh = 0;

	for (uint64_t b = first; b <= last;) {
		uint64_t w = b / 64, hi = MIN(last, w * 64 + 63);
		unsigned int lo_bit = (unsigned int)(b % 64), n = (unsigned int)(hi - b + 1);
		uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << lo_bit;
		uint64_t old = atomic_fetch_or(&k->d[disk].map[w], mask);

		fresh += (uint64_t)__builtin_popcountll(mask & ~old);
		b = hi + 1;
	}
	fresh *= DISK_BLOCK;
	atomic_fetch_add(&k->dirty, (int64_t)fresh);
	return fresh;
}

size_t colo_disk_take_run(uint64_t *bits, uint64_t w, uint64_t image_bytes, uint64_t *off)
{
	unsigned int lo = (unsigned int)__builtin_ctzll(*bits);
	uint64_t rest = ~*bits >> lo; /* zero past a run that reaches bit 63 */
	unsigned int n = rest ? (unsigned int)__builtin_ctzll(rest) : 64 - lo;

	*bits &= n == 64 ? 0 : ~(((1ull << n) - 1) << lo);
	*off = (w * 64 + lo) * DISK_BLOCK;
	return (size_t)MIN((uint64_t)n * DISK_BLOCK, image_bytes - *off);
}

/* Send the marked blocks of word w of disk (its bits taken first: a write
 * after that marks them again), a run of consecutive blocks per DiskWrite,
 * read from the image into buf (DISK_RUN bytes). */
static int send_word(struct colo_disk *k, unsigned int disk, uint64_t w, uint8_t *buf, bool sync,
		     struct vmstate_error *err)
{
	uint64_t bits = atomic_exchange(&k->d[disk].map[w], 0);

	atomic_fetch_sub(&k->dirty, (int64_t)__builtin_popcountll(bits) * DISK_BLOCK);
	while (bits) {
		uint64_t off;
		size_t len = colo_disk_take_run(&bits, w, k->d[disk].bytes, &off);
		int ret;

		ret = hw_vm_disk_read(k->vm, disk, buf, len, off);
		if (ret)
			return vmstate_seterr(err, ret, "disk %u: cannot read: %s", disk,
					      strerror(-ret));
		ret = send_piece(k->ch, disk, off, buf, len);
		if (ret)
			return vmstate_seterr(err, ret, "the secondary went away: %s",
					      strerror(-ret));
		atomic_fetch_add(sync ? &k->sync_bytes : &k->sent_bytes, len);
	}
	return 0;
}

/* One pass over every bitmap: what is marked, sent. */
static int pass(struct colo_disk *k, uint8_t *buf, bool sync, _Atomic bool *cancel,
		struct vmstate_error *err)
{
	for (unsigned int i = 0; i < k->n; i++) {
		for (uint64_t w = 0; k->d[i].replicate && w <= k->d[i].blocks / 64; w++) {
			int ret;

			if (!atomic_load(&k->d[i].map[w]))
				continue;
			if (cancel && atomic_load(cancel))
				return vmstate_seterr(err, -ECANCELED, "cancelled");
			ret = send_word(k, i, w, buf, sync, err);
			if (ret)
				return ret;
			if (!sync) {
				/* a settle, a drain or the tap may wait on less */
				pthread_mutex_lock(&k->lock);
				pthread_cond_broadcast(&k->cond);
				pthread_mutex_unlock(&k->lock);
			}
		}
	}
	return 0;
}

/* The sender thread (protected): passes while anything is marked. */
static void *sender(void *arg)
{
	struct colo_disk *k = arg;

	pthread_mutex_lock(&k->lock);
	for (;;) {
		struct vmstate_error err = {0};
		int ret;

		while ((atomic_load(&k->mode) != DISK_PROTECTED ||
			dirty(k) <= k->lazy) &&
		       !k->stop)
			pthread_cond_wait(&k->cond, &k->lock);
		if (k->stop)
			break;
		k->busy = true;
		pthread_mutex_unlock(&k->lock);
		ret = atomic_load(&k->err) ? 0 : pass(k, k->sbuf, false, NULL, &err);
		pthread_mutex_lock(&k->lock);
		k->busy = false;
		if (ret)
			fail(k, ret);
		pthread_cond_broadcast(&k->cond);
		if (atomic_load(&k->err))
			/* (nothing more goes: wait for the end) */
			while (!k->stop)
				pthread_cond_wait(&k->cond, &k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* The disk's I/O thread: a write of the guest reached the image. */
static void tap(void *opaque, unsigned int disk, uint64_t off, const struct iovec *iov,
		unsigned int cnt, uint64_t len)
{
	struct colo_disk *k = opaque;
	uint64_t fresh;

	(void)iov; /* the blocks are read back when they go */
	(void)cnt;
	if (disk >= k->n || !k->d[disk].replicate || !len)
		return;
	fresh = mark(k, disk, off, len);
	if (atomic_load(&k->mode) != DISK_PROTECTED)
		return; /* the first sync's passes find it */
	atomic_fetch_add(&k->writes, 1);
	atomic_fetch_add(&k->write_bytes, len);
	if (!fresh)
		return; /* already marked: the sender has it to send */
	pthread_mutex_lock(&k->lock);
	/* (the sender waits for more than lazy: not woken for less, which is
	 * most writes) */
	if (dirty(k) > k->lazy)
		pthread_cond_broadcast(&k->cond);
	while (dirty(k) > k->limit && !atomic_load(&k->err) && !k->stop)
		pthread_cond_wait(&k->cond, &k->lock);
	pthread_mutex_unlock(&k->lock);
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
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	k->limit = DISK_DIRTY_MAX;
	k->lazy = DISK_LAZY;
	atomic_store(&k->mode, DISK_SYNC);
	for (unsigned int i = 0; i < n; i++) {
		struct hw_disk_info info;

		if (hw_vm_disk_info(vm, i, &info) || !info.replicate)
			continue;
		any = true;
		k->d[i].replicate = true;
		k->d[i].bytes = info.bytes;
		k->d[i].blocks = (info.bytes + DISK_BLOCK - 1) / DISK_BLOCK;
		k->d[i].map = calloc(k->d[i].blocks / 64 + 1, sizeof(uint64_t));
		if (!k->d[i].map)
			goto nomem;
		/* every block: the first pass copies the whole image */
		if (info.bytes)
			mark(k, i, 0, info.bytes);
		k->sync_total += info.bytes;
	}
	if (!any) {
		colo_disk_free(k);
		return 0;
	}
	k->rbuf = malloc(DISK_RUN);
	k->sbuf = malloc(DISK_RUN);
	if (!k->rbuf || !k->sbuf)
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
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	/* blocks not sent when protection ends: the secondary is gone or told
	 * to stand down; they are on this side's image */
	if (k->sender_live && dirty(k) && atomic_load(&k->mode) == DISK_PROTECTED)
		fail(k, -ECANCELED);
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
	if (k->sender_live)
		pthread_join(k->sender, NULL);
	for (unsigned int i = 0; i < k->n; i++)
		free((void *)k->d[i].map);
	pthread_mutex_destroy(&k->lock);
	pthread_cond_destroy(&k->cond);
	free(k->rbuf);
	free(k->sbuf);
	free(k);
}

void colo_disk_settle(struct colo_disk *k)
{
	struct timespec until;
	uint64_t t0 = clock_ns(), took;

	if (!k || atomic_load(&k->mode) != DISK_PROTECTED)
		return;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += DISK_SETTLE_NS / 1000000000ull;
	pthread_mutex_lock(&k->lock);
	k->limit = DISK_SETTLE;
	while (dirty(k) > DISK_SETTLE && !atomic_load(&k->err) &&
	       pthread_cond_timedwait(&k->cond, &k->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&k->lock);
	took = clock_ns() - t0;
	atomic_store(&k->settle_ns_last, took);
	if (took > atomic_load(&k->settle_ns_max))
		atomic_store(&k->settle_ns_max, took);
}

void colo_disk_unsettle(struct colo_disk *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->limit = DISK_DIRTY_MAX;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

int colo_disk_drain(struct colo_disk *k, struct vmstate_error *err)
{
	int ret;

	if (!k)
		return 0;
	/* (the VM is stopped: nothing is marked until it runs again) */
	pthread_mutex_lock(&k->lock);
	k->lazy = 0;
	pthread_cond_broadcast(&k->cond);
	while ((dirty(k) || k->busy) && !atomic_load(&k->err))
		pthread_cond_wait(&k->cond, &k->lock);
	k->lazy = DISK_LAZY;
	pthread_mutex_unlock(&k->lock);
	colo_disk_unsettle(k);
	ret = atomic_load(&k->err);
	return ret ? vmstate_seterr(err, ret, "the disk writes did not reach the secondary: %s",
				    strerror(-ret))
		   : 0;
}

int colo_disk_sync(struct colo_disk *k, bool stopped, _Atomic bool *cancel,
		   struct vmstate_error *err)
{
	int ret = 0;

	if (!k)
		return 0;
	if (stopped)
		return pass(k, k->rbuf, true, cancel, err);
	/* Passes while what is left shrinks: a guest that rewrites as fast as
	 * the link copies would keep them going for nothing. */
	for (uint64_t i = 0, prev = UINT64_MAX, left = dirty(k);
	     i < DISK_PASSES && !ret && left > DISK_FEW_BYTES && left < prev - prev / 8;
	     i++, prev = left, left = dirty(k))
		ret = pass(k, k->rbuf, true, cancel, err);
	if (!ret)
		log_info("COLO: disks: %llu MiB copied to the secondary, %llu KiB left for the "
			 "stop",
			 (unsigned long long)(atomic_load(&k->sync_bytes) >> 20),
			 (unsigned long long)(dirty(k) >> 10));
	return ret;
}

void colo_disk_stream(struct colo_disk *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	atomic_store(&k->mode, DISK_PROTECTED);
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

json_t *colo_disk_stats(struct colo_disk *k)
{
	uint64_t marked;

	if (!k)
		return NULL;
	marked = dirty(k);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "dirty-bytes", (json_int_t)marked,
			 "writes", (json_int_t)atomic_load(&k->writes), "write-bytes",
			 (json_int_t)atomic_load(&k->write_bytes), "sent-bytes",
			 (json_int_t)atomic_load(&k->sent_bytes), "sync-bytes",
			 (json_int_t)atomic_load(&k->sync_bytes), "sync-total",
			 (json_int_t)atomic_load(&k->sync_total), "sync-remaining",
			 (json_int_t)(atomic_load(&k->mode) == DISK_SYNC ? marked : 0),
			 "settle-last-ms", (double)atomic_load(&k->settle_ns_last) / 1e6,
			 "settle-max-ms", (double)atomic_load(&k->settle_ns_max) / 1e6);
}
