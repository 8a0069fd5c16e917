/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-blk (device id 2) on a raw image file or block device: one queue,
 * requests IN/OUT/FLUSH/GET_ID done with preadv/pwritev/fdatasync on the
 * transport's I/O thread. Each pass pops up to BLK_BATCH chains and merges
 * runs of reads or writes to consecutive sectors (in ring order) into one
 * preadv/pwritev of up to BLK_MERGE_IOV segments and BLK_MERGE_BYTES (as
 * QEMU's virtio-blk does): a 64 KiB x 16 stream becomes a few large calls.
 * The first merged call of a pass is capped at BLK_MERGE_FIRST bytes and
 * the cap doubles per call: a driver that waits for its first completion
 * gets it after one request's copy, not after four.
 * A failed merged call fails every request in it. Other requests (FLUSH
 * among them) run in ring order after the merged I/O before them, so a
 * flush covers every write the driver made available before it. Requests
 * are parsed without assuming a
 * descriptor layout: 16-byte header at the start of the readable part, the
 * status byte last in the writable part. Sector ranges are checked against
 * the capacity (overflow-safe); a read-only disk answers writes with
 * VIRTIO_BLK_S_IOERR and advertises VIRTIO_BLK_F_RO. With `direct`, the
 * image is opened O_DIRECT and data goes through an aligned bounce buffer.
 *
 * A `replicate` disk (COLO, hw.h "replicated disks") has two more modes,
 * switched under the transport lock (so never in the middle of a pass):
 *   tap      (primary) every write that reached the image is shown to the
 *            tap, with its data, before the driver hears of it
 *   overlay  (secondary) the guest's writes go to a sparse overlay file of
 *            the disk's size, one bit per sector says which sectors it
 *            holds; reads take each run of sectors from the overlay or the
 *            image. Dropping it (a checkpoint) empties it; merging it (a
 *            failover) copies its sectors into the image.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "hw/virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_RO	      5
#define VIRTIO_BLK_F_FLUSH    9

#define VIRTIO_BLK_T_IN	    0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define SECTOR		512ull
#define BLK_ID_BYTES	20
#define BLK_SIZE_MAX	(1u << 20)
#define BLK_SEG_MAX	(VIRTQ_MAX_SEGS - 2)
#define BOUNCE_SIZE	(1u << 20)
#define BLK_BATCH	32   /* chains popped per pass */
#define BLK_MERGE_IOV	1024 /* IOV_MAX */
#define BLK_MERGE_BYTES (256u << 10)
#define BLK_MERGE_FIRST (64u << 10) /* cap of a pass's first merged call */

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct virtio_blk {
	struct virtio_blk_state s;
	struct virtio_mmio *t;
	int fd;
	bool readonly;
	bool direct;
	bool replicate;
	uint8_t *bounce; /* direct only */
	char path[4096];
	/* replicate: tap mode (primary) */
	hw_disk_tap tap;
	void *tap_opaque;
	unsigned int index;    /* the disk's number, for the tap */
	struct iovec *tap_iov; /* a write's segments, kept from pwritev */
	/* replicate: overlay mode (secondary) */
	int ovl_fd;	    /* -1: off */
	uint64_t *ovl_map;  /* one bit per sector */
	uint64_t ovl_count; /* sectors set */
	struct iovec *sub;  /* one run of a mixed read */
	char id[BLK_ID_BYTES];
	/* one pass: popped chains, their results, the merged I/O being built */
	struct virtq_elem *elem; /* [BLK_BATCH] */
	uint64_t written[BLK_BATCH];
	uint8_t status[BLK_BATCH];
	bool in_group[BLK_BATCH];
	unsigned int pushed; /* requests [0, pushed) are published */
	struct iovec iov[BLK_MERGE_IOV + VIRTQ_MAX_SEGS];
	unsigned int niov;		  /* iov[0, niov): the group's segments */
	unsigned int g_first, g_end, g_n; /* g_n requests in [g_first, g_end), in_group */
	bool g_write;
	uint64_t g_sector, g_len;
	uint64_t g_cap; /* bytes the next group may reach (BLK_MERGE_FIRST, doubling) */
};

static uint64_t blk_features(void *dev)
{
	struct virtio_blk *b = dev;

	return (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) |
	       (1ull << VIRTIO_BLK_F_FLUSH) | (b->readonly ? 1ull << VIRTIO_BLK_F_RO : 0);
}

static void blk_config_read(void *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_blk *b = dev;
	uint8_t cfg[24] = {0};
	uint32_t v;

	memcpy(cfg, &b->s.capacity, 8);
	v = BLK_SIZE_MAX;
	memcpy(cfg + 8, &v, 4);
	v = BLK_SEG_MAX;
	memcpy(cfg + 12, &v, 4);
	if (off < sizeof(cfg))
		memcpy(data, cfg + off, MIN(len, sizeof(cfg) - off));
}

static void blk_config_write(void *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	(void)dev, (void)off, (void)data, (void)len; /* no writable fields offered */
}

/* iov[at..] := the chain's segments from byte `skip` of part [first, first+n),
 * len bytes; returns how many (at most VIRTQ_MAX_SEGS). */
static unsigned int blk_slice(struct iovec *iov, const struct virtq_elem *e, unsigned int first,
			      unsigned int n, uint64_t skip, uint64_t len)
{
	unsigned int k = 0;

	for (unsigned int i = first; i < first + n && len; i++) {
		uint64_t seg = e->iov[i].iov_len;

		if (skip >= seg) {
			skip -= seg;
			continue;
		}
		iov[k].iov_base = (uint8_t *)e->iov[i].iov_base + skip;
		iov[k].iov_len = MIN(seg - skip, len);
		len -= iov[k].iov_len;
		skip = 0;
		k++;
	}
	return k;
}

static int blk_rw_buffered(int fd, struct iovec *iov, unsigned int cnt, uint64_t off, bool wr)
{
	while (cnt) {
		ssize_t n = wr ? pwritev(fd, iov, (int)cnt, (off_t)off)
			       : preadv(fd, iov, (int)cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* image shrank under us */
		off += (uint64_t)n;
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static int blk_rw_direct(struct virtio_blk *b, struct iovec *iov, unsigned int cnt, uint64_t off,
			 uint64_t len, bool wr)
{
	unsigned int i = 0;
	size_t in_seg = 0;

	while (len) {
		size_t chunk = (size_t)MIN(len, (uint64_t)BOUNCE_SIZE), done = 0;
		struct iovec bv = {b->bounce, chunk};
		int ret;

		if (wr) {
			for (; done < chunk && i < cnt;) {
				size_t n = MIN(iov[i].iov_len - in_seg, chunk - done);

				memcpy(b->bounce + done, (uint8_t *)iov[i].iov_base + in_seg, n);
				done += n;
				in_seg += n;
				if (in_seg == iov[i].iov_len)
					i++, in_seg = 0;
			}
		}
		ret = blk_rw_buffered(b->fd, &bv, 1, off, wr);
		if (ret)
			return ret;
		if (!wr) {
			for (; done < chunk && i < cnt;) {
				size_t n = MIN(iov[i].iov_len - in_seg, chunk - done);

				memcpy((uint8_t *)iov[i].iov_base + in_seg, b->bounce + done, n);
				done += n;
				in_seg += n;
				if (in_seg == iov[i].iov_len)
					i++, in_seg = 0;
			}
		}
		off += chunk;
		len -= chunk;
	}
	return 0;
}

static int blk_rw(struct virtio_blk *b, struct iovec *iov, unsigned int cnt, uint64_t off,
		  uint64_t len, bool wr)
{
	if (b->direct)
		return blk_rw_direct(b, iov, cnt, off, len, wr);
	return blk_rw_buffered(b->fd, iov, cnt, off, wr);
}

static bool ovl_test(const struct virtio_blk *b, uint64_t sector)
{
	return b->ovl_map[sector / 64] >> (sector % 64) & 1;
}

static void ovl_set(struct virtio_blk *b, uint64_t sector, uint64_t n)
{
	for (uint64_t s = sector; s < sector + n; s++) {
		if (!ovl_test(b, s)) {
			b->ovl_map[s / 64] |= 1ull << (s % 64);
			b->ovl_count++;
		}
	}
}

/* dst := bytes [skip, skip + len) of src's cnt segments; returns how many. */
static unsigned int iov_sub(const struct iovec *src, unsigned int cnt, uint64_t skip, uint64_t len,
			    struct iovec *dst)
{
	unsigned int k = 0;

	for (unsigned int i = 0; i < cnt && len; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		dst[k].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[k].iov_len = MIN(src[i].iov_len - skip, len);
		len -= dst[k].iov_len;
		skip = 0;
		k++;
	}
	return k;
}

/* A read with the overlay on: each run of sectors from where it lives. */
static int ovl_read(struct virtio_blk *b, unsigned int cnt, uint64_t sector, uint64_t len)
{
	uint64_t end = sector + len / SECTOR;

	for (uint64_t s = sector; s < end;) {
		bool in = ovl_test(b, s);
		uint64_t e = s + 1;
		unsigned int k;
		int ret;

		while (e < end && ovl_test(b, e) == in)
			e++;
		k = iov_sub(b->iov, cnt, (s - sector) * SECTOR, (e - s) * SECTOR, b->sub);
		ret = in ? blk_rw_buffered(b->ovl_fd, b->sub, k, s * SECTOR, false)
			 : blk_rw(b, b->sub, k, s * SECTOR, (e - s) * SECTOR, false);
		if (ret)
			return ret;
		s = e;
	}
	return 0;
}

/* The merged group's I/O, in the disk's mode. */
static int blk_group_io(struct virtio_blk *b)
{
	uint64_t off = b->g_sector * SECTOR;
	int ret;

	if (b->ovl_fd >= 0 && b->g_write) {
		ret = blk_rw_buffered(b->ovl_fd, b->iov, b->niov, off, true);
		if (!ret)
			ovl_set(b, b->g_sector, b->g_len / SECTOR);
		return ret;
	}
	if (b->ovl_fd >= 0 && b->ovl_count)
		return ovl_read(b, b->niov, b->g_sector, b->g_len);
	if (!b->tap || !b->g_write)
		return blk_rw(b, b->iov, b->niov, off, b->g_len, b->g_write);
	/* pwritev may consume the segments: the tap sees a copy */
	memcpy(b->tap_iov, b->iov, b->niov * sizeof(*b->iov));
	ret = blk_rw(b, b->iov, b->niov, off, b->g_len, true);
	if (!ret)
		b->tap(b->tap_opaque, b->index, off, b->tap_iov, b->niov, b->g_len);
	return ret;
}

/* Sector range check: [sector, sector + len/512) inside the disk. */
static bool blk_range_ok(const struct virtio_blk *b, uint64_t sector, uint64_t len)
{
	return !(len % SECTOR) && sector <= b->s.capacity && len / SECTOR <= b->s.capacity - sector;
}

/* Requests [pushed, upto) are done: give them to the driver now, so it can
 * reuse their buffers while the rest of the pass runs. */
static void blk_publish(struct virtio_blk *b, struct virtq *q, unsigned int upto)
{
	for (; b->pushed < upto; b->pushed++) {
		const struct virtq_elem *e = &b->elem[b->pushed];

		virtq_elem_write(q, e, e->in_len - 1, &b->status[b->pushed], 1);
		virtq_push(q, e->head, (uint32_t)MIN(b->written[b->pushed] + 1, UINT32_MAX));
	}
	virtio_mmio_complete(b->t, q);
}

/* Do the merged read or write, if any, record its requests' results and
 * publish every request before upto (all done once the group is). */
static void blk_group_submit(struct virtio_blk *b, struct virtq *q, unsigned int upto)
{
	bool failed;

	if (!b->g_n) {
		blk_publish(b, q, upto);
		return;
	}
	failed = blk_group_io(b) != 0;
	for (unsigned int i = b->g_first; i < b->g_end; i++) {
		const struct virtq_elem *e = &b->elem[i];

		if (!b->in_group[i])
			continue;
		b->in_group[i] = false;
		if (failed) {
			b->status[i] = VIRTIO_BLK_S_IOERR;
		} else if (!b->g_write) {
			virtq_elem_mark_dirty(q, e, e->in_len - 1);
			b->written[i] = e->in_len - 1;
		}
	}
	b->g_n = 0;
	b->niov = 0;
	b->g_cap = MIN(b->g_cap * 2, (uint64_t)BLK_MERGE_BYTES);
	blk_publish(b, q, upto);
}

/* A read or write whose range checked out: join the group or start one. */
static void blk_group_add(struct virtio_blk *b, struct virtq *q, unsigned int i, bool wr,
			  uint64_t sector, uint64_t len)
{
	const struct virtq_elem *e = &b->elem[i];
	struct iovec *at = b->iov + b->niov;
	unsigned int k;

	if (wr)
		k = blk_slice(at, e, 0, e->nout, sizeof(struct blk_req_hdr), len);
	else
		k = blk_slice(at, e, e->nout, e->nin, 0, len);
	if (b->g_n && (wr != b->g_write || sector != b->g_sector + b->g_len / SECTOR ||
		       b->niov + k > BLK_MERGE_IOV || b->g_len + len > b->g_cap)) {
		unsigned int from = b->niov;

		blk_group_submit(b, q, i);
		memmove(b->iov, b->iov + from, k * sizeof(*b->iov));
	}
	if (!b->g_n) {
		b->g_first = i;
		b->g_write = wr;
		b->g_sector = sector;
		b->g_len = 0;
	}
	b->in_group[i] = true;
	b->g_end = i + 1;
	b->g_n++;
	b->g_len += len;
	b->niov += k;
}

/* Start request i: reads and writes join the merged group, the rest run now
 * (after the group, so they are ordered after the I/O before them). */
static void blk_request(struct virtio_blk *b, struct virtq *q, unsigned int i)
{
	const struct virtq_elem *e = &b->elem[i];
	struct blk_req_hdr h;
	uint64_t data_len;

	b->status[i] = VIRTIO_BLK_S_OK;
	b->written[i] = 0;
	virtq_elem_read(e, 0, &h, sizeof(h));
	switch (h.type) {
	case VIRTIO_BLK_T_IN:
		data_len = e->in_len - 1;
		if (!blk_range_ok(b, h.sector, data_len)) {
			b->status[i] = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (data_len)
			blk_group_add(b, q, i, false, h.sector, data_len);
		break;
	case VIRTIO_BLK_T_OUT:
		data_len = e->out_len - sizeof(h);
		if (b->readonly || !blk_range_ok(b, h.sector, data_len)) {
			b->status[i] = VIRTIO_BLK_S_IOERR;
			break;
		}
		if (data_len)
			blk_group_add(b, q, i, true, h.sector, data_len);
		break;
	case VIRTIO_BLK_T_FLUSH:
		blk_group_submit(b, q, i);
		/* (an overlay is dropped or merged, never kept: not flushed) */
		if (!b->readonly && b->ovl_fd < 0 && fdatasync(b->fd) < 0)
			b->status[i] = VIRTIO_BLK_S_IOERR;
		break;
	case VIRTIO_BLK_T_GET_ID:
		b->written[i] = virtq_elem_write(q, e, 0, b->id, MIN(e->in_len - 1, BLK_ID_BYTES));
		break;
	default:
		b->status[i] = VIRTIO_BLK_S_UNSUPP;
		break;
	}
}

/* Pop up to BLK_BATCH requests, do them, publish them; false if the queue
 * or a request was bad (the device has failed). */
static bool blk_pass(struct virtio_blk *b, struct virtq *q, unsigned int *popped)
{
	unsigned int n = 0;
	char why[96] = "";
	int ret = 0;

	b->pushed = 0;
	b->g_cap = BLK_MERGE_FIRST;
	while (n < BLK_BATCH && (ret = virtq_pop(q, &b->elem[n])) > 0) {
		const struct virtq_elem *e = &b->elem[n];

		if (e->out_len < sizeof(struct blk_req_hdr) || e->in_len < 1) {
			snprintf(why, sizeof(why),
				 "bad request on queue 0: chain %u has %llu readable and "
				 "%llu writable bytes",
				 e->head, (unsigned long long)e->out_len,
				 (unsigned long long)e->in_len);
			break;
		}
		blk_request(b, q, n++);
	}
	blk_group_submit(b, q, n);
	*popped = n;
	if (why[0]) {
		virtio_mmio_fail(b->t, why);
		return false;
	}
	return ret >= 0;
}

static void blk_queue_notify(void *dev, unsigned int idx)
{
	struct virtio_blk *b = dev;
	struct virtq *q = virtio_mmio_queue(b->t, idx);
	unsigned int n;

	do {
		virtq_disable_notify(q); /* we are looking: no kicks until we stop */
		do {
			if (!blk_pass(b, q, &n))
				return;
		} while (n == BLK_BATCH);
	} while (!q->broken && virtq_enable_notify(q));
}

static void blk_activate(void *dev, uint64_t features)
{
	struct virtio_blk *b = dev;

	b->s.features = features;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;

	b->s.features = 0;
}

static const struct virtio_dev_ops virtio_blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLK,
    .nqueues = 1,
    .features = blk_features,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .activate = blk_activate,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
};

static int blk_size(int fd, uint64_t *bytes)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*bytes = (uint64_t)st.st_size;
	return 0;
}

int virtio_blk_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		      const struct blk_spec *spec, struct virtio_blk **out)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	const char *name = strrchr(spec->path, '/');
	uint64_t bytes;
	int flags = (spec->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int ret;

	if (!b)
		return -ENOMEM;
	b->fd = -1;
	b->ovl_fd = -1;
	b->readonly = spec->readonly;
	b->direct = spec->direct;
	b->replicate = spec->replicate;
	b->index = spec->index;
	snprintf(b->path, sizeof(b->path), "%s", spec->path);
	b->fd = open(spec->path, flags | (spec->direct ? O_DIRECT : 0));
	if (b->fd < 0) {
		ret = -errno;
		log_err("--disk %s: cannot open: %s", spec->path, strerror(-ret));
		goto err;
	}
	ret = blk_size(b->fd, &bytes);
	if (ret) {
		log_err("--disk %s: not a regular file or block device", spec->path);
		goto err;
	}
	if (bytes % SECTOR)
		log_warn("--disk %s: size is not a multiple of 512; the tail is not used",
			 spec->path);
	b->s.capacity = bytes / SECTOR;
	b->elem = calloc(BLK_BATCH, sizeof(*b->elem));
	if (!b->elem) {
		ret = -ENOMEM;
		goto err;
	}
	if (b->replicate) {
		b->tap_iov = calloc(BLK_MERGE_IOV + VIRTQ_MAX_SEGS, sizeof(*b->tap_iov));
		b->sub = calloc(BLK_MERGE_IOV + VIRTQ_MAX_SEGS, sizeof(*b->sub));
		b->ovl_map = calloc((b->s.capacity + 63) / 64 + 1, sizeof(uint64_t));
		if (!b->tap_iov || !b->sub || !b->ovl_map) {
			ret = -ENOMEM;
			goto err;
		}
	}
	if (b->direct && posix_memalign((void **)&b->bounce, 4096, BOUNCE_SIZE)) {
		ret = -ENOMEM;
		goto err;
	}
	name = name ? name + 1 : spec->path;
	memcpy(b->id, name, MIN(strlen(name), sizeof(b->id))); /* not NUL-terminated at 20 */
	ret = virtio_mmio_create(mem, vm_fd, base, gsi, &virtio_blk_ops, b, &b->t);
	if (ret)
		goto err;
	*out = b;
	return 0;
err:
	virtio_blk_free(b);
	return ret;
}

void virtio_blk_free(struct virtio_blk *b)
{
	if (!b)
		return;
	virtio_mmio_free(b->t);
	if (b->fd >= 0)
		close(b->fd);
	if (b->ovl_fd >= 0)
		close(b->ovl_fd);
	free(b->tap_iov);
	free(b->sub);
	free(b->ovl_map);
	free(b->bounce);
	free(b->elem);
	free(b);
}

struct virtio_mmio *virtio_blk_transport(struct virtio_blk *b)
{
	return b->t;
}

struct virtio_blk_state *virtio_blk_get_state(struct virtio_blk *b)
{
	return &b->s;
}

int virtio_blk_flush(struct virtio_blk *b)
{
	if (b->readonly)
		return 0;
	return fdatasync(b->fd) < 0 ? -errno : 0;
}

int blk_spec_parse(const char *s, struct blk_spec *out, char *err, size_t errlen)
{
	const char *comma = strchr(s, ',');
	size_t plen = comma ? (size_t)(comma - s) : strlen(s);

	memset(out, 0, sizeof(*out));
	if (!plen || plen >= sizeof(out->path)) {
		snprintf(err, errlen, "expected PATH[,readonly][,direct][,replicate]");
		return -EINVAL;
	}
	memcpy(out->path, s, plen);
	while (comma) {
		const char *opt = comma + 1;
		size_t olen;

		comma = strchr(opt, ',');
		olen = comma ? (size_t)(comma - opt) : strlen(opt);
		if (olen == 8 && !strncmp(opt, "readonly", 8)) {
			out->readonly = true;
		} else if (olen == 6 && !strncmp(opt, "direct", 6)) {
			out->direct = true;
		} else if (olen == 9 && !strncmp(opt, "replicate", 9)) {
			out->replicate = true;
		} else {
			snprintf(err, errlen,
				 "unknown option '%.*s' (expected readonly, direct, replicate)",
				 (int)MIN(olen, 64), opt);
			return -EINVAL;
		}
	}
	if (out->replicate && (out->readonly || out->direct)) {
		snprintf(err, errlen, "replicate excludes readonly and direct");
		return -EINVAL;
	}
	return 0;
}

/* ---- replicated disks (hw.h) ------------------------------------------------ */

bool virtio_blk_replicated(const struct virtio_blk *b)
{
	return b->replicate;
}

bool virtio_blk_readonly(const struct virtio_blk *b)
{
	return b->readonly;
}

uint64_t virtio_blk_bytes(const struct virtio_blk *b)
{
	return b->s.capacity * SECTOR;
}

void virtio_blk_set_tap(struct virtio_blk *b, hw_disk_tap tap, void *opaque)
{
	pthread_mutex_lock(&b->t->lock);
	b->tap = b->replicate ? tap : NULL;
	b->tap_opaque = opaque;
	pthread_mutex_unlock(&b->t->lock);
}

/* Whole-buffer pread/pwrite on the image (the host's side, not the guest's). */
static int blk_host_io(int fd, void *buf, size_t len, uint64_t off, bool wr)
{
	struct iovec iov = {buf, len};

	return len ? blk_rw_buffered(fd, &iov, 1, off, wr) : 0;
}

static bool blk_host_range_ok(const struct virtio_blk *b, uint64_t off, size_t len)
{
	return off <= b->s.capacity * SECTOR && len <= b->s.capacity * SECTOR - off;
}

int virtio_blk_pread(struct virtio_blk *b, void *buf, size_t len, uint64_t off)
{
	if (!blk_host_range_ok(b, off, len))
		return -ERANGE;
	return blk_host_io(b->fd, buf, len, off, false);
}

int virtio_blk_pwrite(struct virtio_blk *b, const void *buf, size_t len, uint64_t off)
{
	if (b->readonly)
		return -EROFS;
	if (!blk_host_range_ok(b, off, len))
		return -ERANGE;
	return blk_host_io(b->fd, (void *)buf, len, off, true);
}

/* An unlinked file beside the image (same filesystem: the space the
 * operator gave the VM), else in $TMPDIR. */
static int ovl_open(const struct virtio_blk *b)
{
	char dir[4096], tmpl[4200];
	const char *slash = strrchr(b->path, '/');
	int fd;

	if (slash)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == b->path ? 1 : slash - b->path),
			 b->path);
	else
		snprintf(dir, sizeof(dir), ".");
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(tmpl, sizeof(tmpl), "%s/colovm-overlay.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

int virtio_blk_overlay_start(struct virtio_blk *b)
{
	int fd, ret = 0;

	if (!b->replicate)
		return 0;
	fd = ovl_open(b);
	if (fd < 0) {
		log_err("--disk %s: cannot create the overlay: %s", b->path, strerror(-fd));
		return fd;
	}
	if (ftruncate(fd, (off_t)(b->s.capacity * SECTOR)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	pthread_mutex_lock(&b->t->lock);
	if (b->ovl_fd >= 0)
		close(b->ovl_fd);
	b->ovl_fd = fd;
	memset(b->ovl_map, 0, ((b->s.capacity + 63) / 64) * sizeof(uint64_t));
	b->ovl_count = 0;
	pthread_mutex_unlock(&b->t->lock);
	return 0;
}

uint64_t virtio_blk_overlay_sectors(struct virtio_blk *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->t->lock);
	n = b->ovl_fd >= 0 ? b->ovl_count : 0;
	pthread_mutex_unlock(&b->t->lock);
	return n;
}

int virtio_blk_overlay_drop(struct virtio_blk *b)
{
	int ret = 0;

	pthread_mutex_lock(&b->t->lock);
	if (b->ovl_fd >= 0 && b->ovl_count) {
		memset(b->ovl_map, 0, ((b->s.capacity + 63) / 64) * sizeof(uint64_t));
		b->ovl_count = 0;
		/* give the space back: an empty sparse file again */
		if (ftruncate(b->ovl_fd, 0) < 0 ||
		    ftruncate(b->ovl_fd, (off_t)(b->s.capacity * SECTOR)) < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&b->t->lock);
	return ret;
}

int virtio_blk_overlay_merge(struct virtio_blk *b, uint64_t *merged)
{
	uint8_t *buf = NULL;
	uint64_t n = 0;
	int ret = 0;

	pthread_mutex_lock(&b->t->lock);
	if (b->ovl_fd < 0)
		goto out;
	if (b->ovl_count && !(buf = malloc(BLK_MERGE_BYTES))) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t s = 0; s < b->s.capacity && n < b->ovl_count;) {
		uint64_t e = s;

		if (!ovl_test(b, s)) {
			s++;
			continue;
		}
		while (e < b->s.capacity && ovl_test(b, e) && (e - s) * SECTOR < BLK_MERGE_BYTES)
			e++;
		ret = blk_host_io(b->ovl_fd, buf, (e - s) * SECTOR, s * SECTOR, false);
		if (!ret)
			ret = blk_host_io(b->fd, buf, (e - s) * SECTOR, s * SECTOR, true);
		if (ret)
			goto out;
		n += e - s;
		s = e;
	}
	if (n && fdatasync(b->fd) < 0) {
		ret = -errno;
		goto out;
	}
	/* The image holds everything now: the overlay goes. */
	close(b->ovl_fd);
	b->ovl_fd = -1;
	b->ovl_count = 0;
out:
	pthread_mutex_unlock(&b->t->lock);
	free(buf);
	if (merged)
		*merged = n;
	return ret;
}

uint64_t virtio_blk_digest(struct virtio_blk *b, int *err)
{
	XXH3_state_t *st = XXH3_createState();
	uint8_t *buf = malloc(1u << 20);
	uint64_t h = 0;
	int ret = st && buf ? 0 : -ENOMEM;

	if (!ret)
		XXH3_64bits_reset(st);
	for (uint64_t off = 0, size = b->s.capacity * SECTOR; !ret && off < size;) {
		size_t n = (size_t)MIN(size - off, 1u << 20);

		ret = blk_host_io(b->fd, buf, n, off, false);
		if (!ret)
			XXH3_64bits_update(st, buf, n);
		off += n;
	}
	if (!ret)
		h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	free(buf);
	*err = ret;
	return h;
}
