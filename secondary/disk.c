/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, secondary side: replicated disks (--disk PATH,replicate; the
 * protocol is in transport/transport.h, "Replicated disks").
 *
 *   first sync    DiskWrite pieces go straight into the image (the guest
 *                 never ran); at its end the images are flushed and the
 *                 overlays start (hw.h: this guest's own writes go there)
 *   checkpoints   the primary's writes are buffered, not applied: the
 *                 received messages kept as they are, up to mem_max
 *                 bytes (--disk-buffer-mem), the rest appended to an
 *                 unlinked log file (page cache, then disk: memory stays
 *                 bounded whatever a checkpoint carries), indexed in
 *                 memory; when unit n is
 *                 complete, checked and acked, the buffer is applied to
 *                 the images in order, the images flushed, the buffer and
 *                 the overlays emptied (sd_disk_commit), before the
 *                 applied CheckpointAck{n} (a switchover's: before its ack)
 *   pair broken   the buffer is dropped (writes the primary made after the
 *                 last checkpoint, like its RAM), the overlays merged into
 *                 the images: this guest came from its own writes since
 *   a fault here  (a bad DiskWrite, a full disk, an image that cannot be
 *                 written) is this side's: the caller stands down, never
 *                 takes over with a disk it could not keep
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "secondary/internal.h"
#include "transport/transport.h"

#define SD_MAX_DISKS 16
#define SD_MAX_PIECE (1u << 20)

struct sd_rec {
	uint32_t disk;
	uint32_t len;
	uint64_t off, at;   /* in the image, in the log */
	transport_msg *msg; /* the data in memory: its DiskWrite; else at `at` */
};

struct sc_disk {
	struct vm *vm;
	unsigned int n;
	struct hw_disk_info info[SD_MAX_DISKS];
	int log_fd;
	uint64_t log_end, mem_bytes; /* buffered in the log, in memory */
	uint64_t mem_max;
	struct sd_rec *recs;
	size_t nrec, cap;
	uint8_t *buf;
	/* the COLO thread changes, status readers read (query-colo-stats):
	 * nrec, log_end and the figures, under lock */
	pthread_mutex_t lock;
	uint64_t applied, applied_bytes, sync_bytes, max_buffered, merged_sectors;
};

static int log_open(void)
{
	const char *dirs[] = {getenv("TMPDIR"), "/var/tmp", "/tmp"};

	for (unsigned int i = 0; i < ARRAY_SIZE(dirs); i++) {
		int fd = dirs[i] ? open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;

		if (fd >= 0)
			return fd;
	}
	return -errno;
}

static void log_reset(struct sc_disk *d)
{
	bool spilled = d->log_end;

	pthread_mutex_lock(&d->lock);
	for (size_t i = 0; i < d->nrec; i++)
		transport_msg_free(d->recs[i].msg);
	d->nrec = 0;
	d->log_end = 0;
	d->mem_bytes = 0;
	pthread_mutex_unlock(&d->lock);
	if (spilled && ftruncate(d->log_fd, 0) < 0)
		log_warn("COLO: disk write buffer: %s", strerror(errno));
}

int sd_disk_new(struct vm *vm, uint64_t mem_max, struct sc_disk **out)
{
	unsigned int n = hw_vm_disk_count(vm);
	struct sc_disk *d;
	bool any = false;

	*out = NULL;
	if (n > SD_MAX_DISKS)
		return -E2BIG;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	d->n = n;
	d->mem_max = mem_max;
	d->log_fd = -1;
	pthread_mutex_init(&d->lock, NULL);
	for (unsigned int i = 0; i < n; i++) {
		if (hw_vm_disk_info(vm, i, &d->info[i]) == 0 && d->info[i].replicate)
			any = true;
	}
	if (!any) {
		sd_disk_free(d);
		return 0;
	}
	d->buf = malloc(SD_MAX_PIECE);
	d->log_fd = log_open();
	if (!d->buf || d->log_fd < 0) {
		int ret = d->log_fd < 0 ? d->log_fd : -ENOMEM;

		log_err("COLO: cannot create the disk write buffer: %s", strerror(-ret));
		sd_disk_free(d);
		return ret;
	}
	*out = d;
	return 0;
}

void sd_disk_free(struct sc_disk *d)
{
	if (!d)
		return;
	log_reset(d);
	if (d->log_fd >= 0)
		close(d->log_fd);
	free(d->recs);
	free(d->buf);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int check_write(struct sc_disk *d, const Colovm__Transport__DiskWrite *w,
		       struct vmstate_error *err)
{
	uint64_t len = w->data.len;

	if (!d)
		return vmstate_seterr(err, -EPROTO, "a disk write, and this VM replicates no disk");
	if (w->disk >= d->n || !d->info[w->disk].replicate)
		return vmstate_seterr(err, -EPROTO, "a write to disk %u, which is not replicated",
				      w->disk);
	if (!len || len > SD_MAX_PIECE || len % 512 || w->offset % 512 ||
	    w->offset > d->info[w->disk].bytes || len > d->info[w->disk].bytes - w->offset)
		return vmstate_seterr(err, -EPROTO,
				      "a bad write to disk %u: %llu bytes at %llu (the image has "
				      "%llu; pieces are whole sectors, at most %u bytes)",
				      w->disk, (unsigned long long)len,
				      (unsigned long long)w->offset,
				      (unsigned long long)d->info[w->disk].bytes, SD_MAX_PIECE);
	return 0;
}

int sd_disk_sync_write(struct sc_disk *d, const Colovm__Transport__DiskWrite *w,
		       struct vmstate_error *err)
{
	int ret = check_write(d, w, err);

	if (ret)
		return ret;
	ret = hw_vm_disk_write(d->vm, w->disk, w->data.data, w->data.len, w->offset);
	if (ret)
		return vmstate_seterr(err, ret, "disk %u: cannot write the image: %s", w->disk,
				      strerror(-ret));
	pthread_mutex_lock(&d->lock);
	d->sync_bytes += w->data.len;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int log_append(struct sc_disk *d, const Colovm__Transport__DiskWrite *w,
		      struct vmstate_error *err)
{
	for (size_t done = 0; done < w->data.len;) {
		ssize_t k = pwrite(d->log_fd, w->data.data + done, w->data.len - done,
				   (off_t)(d->log_end + done));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return vmstate_seterr(err, k < 0 ? -errno : -EIO, "disk write buffer: %s%s",
					      strerror(k < 0 ? errno : EIO),
					      k < 0 && errno == ENOSPC
						  ? " (the secondary's temporary space is full)"
						  : "");
		done += (size_t)k;
	}
	return 0;
}

int sd_disk_buffer(struct sc_disk *d, transport_msg **m, struct vmstate_error *err)
{
	const Colovm__Transport__DiskWrite *w = (*m)->disk_write;
	bool keep;
	struct sd_rec *r;
	int ret = check_write(d, w, err);

	if (ret)
		return ret;
	if (d->nrec == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 256;
		struct sd_rec *n = realloc(d->recs, cap * sizeof(*n));

		if (!n)
			return vmstate_seterr(err, -ENOMEM, "disk write buffer: out of memory");
		d->recs = n;
		d->cap = cap;
	}
	keep = d->mem_bytes + w->data.len <= d->mem_max;
	if (!keep && (ret = log_append(d, w, err)))
		return ret;
	pthread_mutex_lock(&d->lock);
	r = &d->recs[d->nrec++];
	r->disk = w->disk;
	r->len = (uint32_t)w->data.len;
	r->off = w->offset;
	r->at = d->log_end;
	r->msg = NULL;
	if (keep) {
		r->msg = *m;
		*m = NULL;
		d->mem_bytes += w->data.len;
	} else {
		d->log_end += w->data.len;
	}
	d->max_buffered = MAX(d->max_buffered, d->log_end + d->mem_bytes);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

int sd_disk_first_done(struct sc_disk *d, struct vmstate_error *err)
{
	int ret;

	if (!d)
		return 0;
	ret = hw_vm_flush_disks(d->vm);
	if (ret)
		return vmstate_seterr(err, ret, "cannot flush the disks: %s", strerror(-ret));
	ret = hw_vm_disk_overlay_start(d->vm);
	if (ret)
		return vmstate_seterr(err, ret, "cannot start the disk overlays: %s",
				      strerror(-ret));
	log_info("COLO: disks: %llu MiB of images received; this guest's writes go to an "
		 "overlay",
		 (unsigned long long)(d->sync_bytes >> 20));
	return 0;
}

int sd_disk_commit(struct sc_disk *d, struct vmstate_error *err)
{
	int ret = 0;

	if (!d)
		return 0;
	for (size_t i = 0; i < d->nrec && !ret; i++) {
		const struct sd_rec *r = &d->recs[i];
		const uint8_t *data = r->msg ? r->msg->disk_write->data.data : d->buf;
		ssize_t k = r->msg ? r->len : pread(d->log_fd, d->buf, r->len, (off_t)r->at);

		if (k != (ssize_t)r->len)
			ret = vmstate_seterr(err, k < 0 ? -errno : -EIO,
					     "disk write buffer: cannot read it back");
		else if ((ret = hw_vm_disk_write(d->vm, r->disk, data, r->len, r->off)))
			vmstate_seterr(err, ret, "disk %u: cannot write the image: %s", r->disk,
				       strerror(-ret));
	}
	if (!ret && d->nrec && (ret = hw_vm_flush_disks(d->vm)))
		vmstate_seterr(err, ret, "cannot flush the disks: %s", strerror(-ret));
	if (ret)
		return ret;
	pthread_mutex_lock(&d->lock);
	d->applied += d->nrec;
	d->applied_bytes += d->log_end + d->mem_bytes;
	pthread_mutex_unlock(&d->lock);
	log_reset(d);
	/* this guest's own writes since the last checkpoint go with it */
	ret = hw_vm_disk_overlay_drop(d->vm);
	if (ret)
		vmstate_seterr(err, ret, "cannot empty the disk overlays: %s", strerror(-ret));
	return ret;
}

void sd_disk_end(struct sc_disk *d, bool merge)
{
	uint64_t dropped, merged = 0;
	int ret;

	if (!d)
		return;
	dropped = d->log_end + d->mem_bytes;
	log_reset(d);
	if (!merge)
		return;
	ret = hw_vm_disk_overlay_merge(d->vm, &merged);
	pthread_mutex_lock(&d->lock);
	d->merged_sectors = merged;
	pthread_mutex_unlock(&d->lock);
	if (ret)
		log_err("COLO: disks: cannot merge the overlay into the image: %s", strerror(-ret));
	else
		log_info("COLO: disks: %llu KiB of the primary's writes after the last checkpoint "
			 "dropped, %llu KiB of this guest's own merged into the images",
			 (unsigned long long)(dropped >> 10), (unsigned long long)(merged / 2));
}

json_t *sd_disk_stats(struct sc_disk *d)
{
	uint64_t ovl;
	json_t *o;

	if (!d)
		return NULL;
	ovl = hw_vm_disk_overlay_sectors(d->vm) * 512;
	pthread_mutex_lock(&d->lock);
	o = json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "buffered-writes", (json_int_t)d->nrec,
	    "buffered-bytes", (json_int_t)(d->log_end + d->mem_bytes), "spilled-bytes",
	    (json_int_t)d->log_end, "max-buffered-bytes", (json_int_t)d->max_buffered,
	    "applied-writes", (json_int_t)d->applied, "applied-bytes", (json_int_t)d->applied_bytes,
	    "sync-bytes", (json_int_t)d->sync_bytes, "overlay-bytes", (json_int_t)ovl,
	    "merged-bytes", (json_int_t)(d->merged_sectors * 512));
	pthread_mutex_unlock(&d->lock);
	return o;
}
