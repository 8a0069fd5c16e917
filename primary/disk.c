/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, primary side: replicated disks (--disk PATH,replicate; the
 * protocol is in transport/transport.h, "Replicated disks").
 *
 *   first sync   the tap marks the 64 KiB chunks the guest writes (TRACK);
 *                the migration thread sends every chunk of every image, then
 *                what was marked meanwhile, pass after pass while the guest
 *                runs, and the rest once the VM is stopped (disk_sync)
 *   protected    the tap sends each write as it reached the image (STREAM),
 *                from the disk's I/O thread, before the guest hears of it:
 *                the channel keeps them in order, ahead of the checkpoint
 *                request that covers them
 *
 * The tap goes when protection ends (disk_free, before the channel is
 * closed): from then on the guest writes its image alone.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "primary/internal.h"
#include "transport/transport.h"

#define DISK_CHUNK	(64u << 10)  /* first sync: the unit marked and sent */
#define DISK_PIECE	(256u << 10) /* data bytes per DiskWrite */
#define DISK_MAX	16
#define DISK_PASSES	8  /* first sync: passes while the guest runs, at most */
#define DISK_FEW_CHUNKS 16 /* ... or until this few are left for the stop */

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
		uint8_t *buf;	       /* STREAM: a write's data (the disk's I/O thread) */
	} d[DISK_MAX];
	uint8_t *rbuf; /* first sync: a chunk read (the migration thread) */
	/* figures */
	_Atomic uint64_t writes, write_bytes, sync_bytes, sync_total, sync_left;
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

/* The disk's I/O thread: a write of the guest reached the image. */
static void tap(void *opaque, unsigned int disk, uint64_t off, const struct iovec *iov,
		unsigned int cnt, uint64_t len)
{
	struct colo_disk *k = opaque;
	uint8_t *buf = k->d[disk].buf;
	unsigned int i = 0;
	size_t in_seg = 0;

	if (disk >= k->n || !len)
		return;
	if (atomic_load(&k->mode) == DISK_TRACK) {
		mark(k, disk, off, len);
		return;
	}
	if (atomic_load(&k->err))
		return; /* the pair is breaking: the channel failed */
	atomic_fetch_add(&k->writes, 1);
	atomic_fetch_add(&k->write_bytes, len);
	while (len) {
		size_t piece = (size_t)MIN(len, (uint64_t)DISK_PIECE), done = 0;
		int ret;

		while (done < piece && i < cnt) {
			size_t c = MIN(iov[i].iov_len - in_seg, piece - done);

			memcpy(buf + done, (uint8_t *)iov[i].iov_base + in_seg, c);
			done += c;
			in_seg += c;
			if (in_seg == iov[i].iov_len)
				i++, in_seg = 0;
		}
		ret = send_piece(k->ch, disk, off, buf, piece);
		if (ret) {
			int zero = 0;

			atomic_compare_exchange_strong(&k->err, &zero, ret);
			return;
		}
		off += piece;
		len -= piece;
	}
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
		k->d[i].buf = malloc(DISK_PIECE);
		if (!k->d[i].map || !k->d[i].buf)
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
	for (unsigned int i = 0; i < k->n; i++) {
		free((void *)k->d[i].map);
		free(k->d[i].buf);
	}
	free(k->rbuf);
	free(k);
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
	if (!k)
		return NULL;
	return json_pack("{s:I,s:I,s:I,s:I,s:I}", "writes", (json_int_t)atomic_load(&k->writes),
			 "write-bytes", (json_int_t)atomic_load(&k->write_bytes), "sync-bytes",
			 (json_int_t)atomic_load(&k->sync_bytes), "sync-total",
			 (json_int_t)atomic_load(&k->sync_total), "sync-remaining",
			 (json_int_t)atomic_load(&k->sync_left));
}
