/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=blk [mb=4] [loop=0|1] [bs=64] [idle=halt|poll]: write a deterministic
 * pattern over the first N MiB of the virtio-blk disk, flush, read it back
 * and verify, then print
 *
 *     blk: ok sectors=<capacity> MB/s write=<W> read=<R>
 *
 * (MB = 10^6 bytes; write time includes the flush) and exit 0. The 64-bit
 * little-endian word i (0..63) of sector s holds mix64(s << 6 | i), so a
 * host can check the image. loop=1 goes on for ever: pass g = 1, 2, ...
 * writes the words mix64(s << 6 | i) ^ g * 0x9e3779b97f4a7c15, flushes,
 * reads them all back and prints "blk: pass <g> ok ..." (a disk that lost
 * or reordered a write, e.g. across a COLO failover, fails a later read).
 * Requests are bs KiB (4..64, a power of two; default 64), up to DEPTH in
 * flight. idle=halt|poll (default halt): while its requests are in flight
 * and none has completed, the guest halts until the disk's interrupt
 * (irq.c; poll: it spins, as it also does when the disk's interrupt is not
 * a PIC line). A device error (e.g. a write to a read-only disk) prints
 * "blk: write error: ..." and a mismatch "blk: verify failed: ..."; both
 * exit with EXIT_DEVICE / EXIT_VERIFY.
 */
#include "../virtio-blk.h"

#define CHUNK_MAX	  (64 * 1024)
#define DEPTH		  16

static uint64_t gen_salt; /* loop=1: the pass's generation * a constant */
static bool idle_halt;	  /* wait for completions halted, not spinning */
static uint32_t chunk;	  /* bytes per request (bs) */

static void wait_some(void)
{
	if (idle_halt)
		vblk_idle();
	else
		cpu_relax();
}

static void fill(uint64_t *w, uint64_t sector, unsigned int sectors)
{
	for (unsigned int s = 0; s < sectors; s++)
		for (unsigned int i = 0; i < 64; i++)
			*w++ = mix64((sector + s) << 6 | i) ^ gen_salt;
}

static int check(const uint64_t *w, uint64_t sector, unsigned int sectors)
{
	for (unsigned int s = 0; s < sectors; s++)
		for (unsigned int i = 0; i < 64; i++, w++)
			if (*w != (mix64((sector + s) << 6 | i) ^ gen_salt)) {
				printf("blk: verify failed: sector %lu word %u holds 0x%016lx, "
				       "expected 0x%016lx\n",
				       sector + s, i, *w, mix64((sector + s) << 6 | i) ^ gen_salt);
				return -1;
			}
	return 0;
}

/* One pass over the chunks; returns 0 or an exit code. */
static int pass(uint32_t type, uint64_t chunks, uint8_t **bufs, unsigned int depth)
{
	uint64_t chunk_of[DEPTH], next = 0, done = 0;
	unsigned int free_tags[DEPTH], nr_free = 0;
	uint8_t status;
	int tag;

	for (unsigned int i = 0; i < depth; i++)
		free_tags[nr_free++] = i;
	while (done < chunks) {
		bool queued = false, completed = false;

		while (nr_free && next < chunks) {
			unsigned int t = free_tags[--nr_free];
			uint64_t sector = next * (chunk / VBLK_SECTOR);

			if (type == VBLK_OUT)
				fill((uint64_t *)bufs[t], sector, chunk / VBLK_SECTOR);
			if (vblk_submit(t, type, sector, bufs[t], chunk)) {
				free_tags[nr_free++] = t;
				break;
			}
			chunk_of[t] = next++;
			queued = true;
		}
		if (queued)
			vblk_kick();
		while ((tag = vblk_poll(&status)) >= 0) {
			uint64_t sector = chunk_of[tag] * (chunk / VBLK_SECTOR);

			if (status != VBLK_S_OK) {
				printf("blk: %s error: sector=%lu status=%u (%s)\n",
				       type == VBLK_OUT ? "write" : "read", sector, status,
				       vblk_status_name(status));
				return EXIT_DEVICE;
			}
			if (type == VBLK_IN &&
			    check((uint64_t *)bufs[tag], sector, chunk / VBLK_SECTOR))
				return EXIT_VERIFY;
			free_tags[nr_free++] = (unsigned int)tag;
			done++;
			completed = true;
		}
		if (!queued && !completed)
			wait_some();
	}
	return 0;
}

static int flush(void)
{
	uint8_t status;
	int tag;

	if (vblk_submit(0, VBLK_FLUSH, 0, NULL, 0))
		return EXIT_DEVICE;
	vblk_kick();
	while ((tag = vblk_poll(&status)) < 0)
		wait_some();
	if (status != VBLK_S_OK) {
		printf("blk: flush error: status=%u (%s)\n", status, vblk_status_name(status));
		return EXIT_DEVICE;
	}
	return 0;
}

/* MB/s with one decimal, as tenths. */
static uint64_t rate_tenths(uint64_t bytes, uint64_t us)
{
	return us ? bytes * 10 / us : 0;
}

/* Write the pattern over the chunks, flush, read it back and verify: MB/s
 * (tenths) of the write (with the flush) and of the read. */
static int write_read(uint64_t chunks, uint8_t **bufs, unsigned int depth, bool has_flush,
		      uint64_t *w, uint64_t *r)
{
	uint64_t t0 = now_us(), t1, t2;
	int rc;

	if ((rc = pass(VBLK_OUT, chunks, bufs, depth)))
		return rc;
	if (has_flush && (rc = flush()))
		return rc;
	t1 = now_us();
	if ((rc = pass(VBLK_IN, chunks, bufs, depth)))
		return rc;
	t2 = now_us();
	*w = rate_tenths(chunks * chunk, t1 - t0);
	*r = rate_tenths(chunks * chunk, t2 - t1);
	return 0;
}

int app_blk(void)
{
	struct vblk_info info;
	uint8_t *bufs[DEPTH];
	uint64_t mb, chunks, w, r, loop, bs;
	unsigned int depth;
	int rc;

	if (cmdline_u64("mb", 4, 1 << 20, &mb) || cmdline_u64("loop", 0, 1, &loop) ||
	    cmdline_u64("bs", 64, CHUNK_MAX / 1024, &bs))
		return EXIT_USAGE;
	if (bs < 4 || (bs & (bs - 1))) {
		printf("testguest: bad value bs=%lu: 4, 8, 16, 32 or 64 (KiB)\n", bs);
		return EXIT_USAGE;
	}
	if (idle_option(&idle_halt))
		return EXIT_USAGE;
	if (!mb) {
		printf("testguest: bad value mb=0: at least 1\n");
		return EXIT_USAGE;
	}
	if (vblk_init(&info))
		return EXIT_DEVICE;
	depth = info.max_inflight < DEPTH ? info.max_inflight : DEPTH;
	idle_halt = idle_halt && idle_on_line("blk", "disk", vblk_irq());
	printf("blk: device sectors=%lu readonly=%d flush=%d depth=%u testing %lu MiB\n",
	       info.sectors, info.readonly, info.flush, depth, mb);
	if (mb * MIB / VBLK_SECTOR > info.sectors) {
		printf("blk: disk too small: %lu sectors, mb=%lu needs %lu\n", info.sectors, mb,
		       mb * MIB / VBLK_SECTOR);
		return EXIT_DEVICE;
	}
	if (info.readonly)
		printf("blk: device is read-only (VIRTIO_BLK_F_RO); writing anyway\n");
	for (unsigned int i = 0; i < depth; i++)
		bufs[i] = mem_alloc(CHUNK_MAX, 4096);
	chunk = (uint32_t)bs * 1024;
	chunks = mb * MIB / chunk;

	for (uint64_t g = 1; loop; g++) {
		gen_salt = g * 0x9e3779b97f4a7c15ull;
		if ((rc = write_read(chunks, bufs, depth, info.flush, &w, &r)))
			return rc;
		printf("blk: pass %lu ok MB/s write=%lu.%lu read=%lu.%lu\n", g, w / 10, w % 10,
		       r / 10, r % 10);
	}
	if ((rc = write_read(chunks, bufs, depth, info.flush, &w, &r)))
		return rc;
	printf("blk: ok sectors=%lu MB/s write=%lu.%lu read=%lu.%lu\n", info.sectors, w / 10,
	       w % 10, r / 10, r % 10);
	return EXIT_OK;
}
