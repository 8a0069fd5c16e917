/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=dirty mb=N rate=R [seconds=S]: keep dirtying an N MiB buffer at
 * R MiB/s (R = 0: as fast as possible), for dirty-logging and migration
 * tests. Without seconds= it runs until the VM is stopped.
 *
 * The buffer is the first N MiB of the largest free RAM range above the image
 * (PVH memory map, below 4 GiB); a buffer that does not fit is refused.
 *
 * Writes. Write number w = 0, 1, 2, ... is pass k = w / pages to page
 * p = w % pages, and fills the page's 512 64-bit words with
 *
 *     word[i] = seed(k, p) + i * GOLDEN,   seed(k, p) = mix64(k << 32 | p)
 *
 * Before overwriting (k > 0) it checks that the page still holds pass k-1's
 * words and stops with EXIT_VERIFY (status 9) if not: memory lost a write,
 * e.g. a migration that missed a dirty page.
 *
 * Checksum. c(0) = 0, c(w + 1) = mix64(c(w) ^ seed(k, p)): a hash over the
 * sequence of page contents written (a page's content is a function of its
 * seed). So c depends only on w, i.e. on written bytes, never on timing.
 *
 * Lines. Second s = 1, 2, ... ends when the TSC has passed start + s seconds
 * *and* w has reached s * R MiB (rate > 0; if the writer fell behind, e.g.
 * across a VM pause, it catches up first and the line comes late) or a whole
 * MiB (rate = 0). Then it prints
 *
 *     dirty: t=<s> written=<w / 256 MiB> checksum=<c(w), 16 hex digits>
 *
 * With rate > 0 each line is a function of (mb, rate, s) only: two runs, or
 * one run across a migration, print identical lines. With rate = 0 lines
 * with equal written= have equal checksums.
 */
#include "../guest.h"

#define GOLDEN	      0x9e3779b97f4a7c15UL
#define WORDS	      (PAGE_SIZE / 8)
#define PAGES_PER_MIB (MIB / PAGE_SIZE)
#define MAX_RATE      100000 /* MiB/s: keeps the pacing arithmetic in 64 bits */
#define MAX_SECONDS   (100ULL * 365 * 24 * 3600)

static uint64_t seed(uint64_t pass, uint64_t page)
{
	return mix64(pass << 32 | page);
}

struct dirty {
	uint8_t *buf;
	uint64_t pages;
	uint64_t written; /* pages written so far: w */
	uint64_t checksum;
};

static int write_page(struct dirty *d)
{
	uint64_t k = d->written / d->pages, p = d->written % d->pages;
	uint64_t *w = (uint64_t *)(d->buf + p * PAGE_SIZE), s = seed(k, p);

	if (k) {
		uint64_t old = seed(k - 1, p);
		for (uint64_t i = 0; i < WORDS; i++) {
			if (w[i] != old + i * GOLDEN) {
				printf("dirty: verify failed: pass %lu page %lu (0x%lx) word %lu "
				       "holds "
				       "0x%016lx, pass %lu wrote 0x%016lx\n",
				       k, p, (uint64_t)&w[i], i, w[i], k - 1, old + i * GOLDEN);
				return -1;
			}
		}
	}
	for (uint64_t i = 0; i < WORDS; i++)
		w[i] = s + i * GOLDEN;
	d->checksum = mix64(d->checksum ^ s);
	d->written++;
	return 0;
}

int app_dirty(void)
{
	struct dirty d = {0};
	struct ram_range free;
	uint64_t mb, rate, seconds, pps, hz, next, s;

	if (cmdline_u64("mb", 0, UINT32_MAX, &mb) || cmdline_u64("rate", 0, MAX_RATE, &rate) ||
	    cmdline_u64("seconds", 0, MAX_SECONDS, &seconds))
		return EXIT_USAGE;
	if (!cmdline_get("mb") || !cmdline_get("rate")) {
		printf("testguest: app=dirty needs mb=N and rate=MiB/s\n");
		return EXIT_USAGE;
	}
	if (!mb) {
		printf("testguest: bad value mb=0: need at least 1 MiB\n");
		return EXIT_USAGE;
	}
	if (!bootinfo_free_ram(&free) || free.end - free.start < mb * MIB) {
		printf("testguest: bad value mb=%lu: only %lu MiB of free RAM above the image\n",
		       mb, bootinfo_free_ram(&free) ? (free.end - free.start) / MIB : 0);
		return EXIT_USAGE;
	}
	d.buf = (uint8_t *)free.start;
	d.pages = mb * PAGES_PER_MIB;
	pps = rate * PAGES_PER_MIB;
	hz = tsc_khz * 1000;
	printf("dirty: buffer 0x%lx-0x%lx mb=%lu rate=%lu seconds=%lu\n", free.start,
	       free.start + mb * MIB, mb, rate, seconds);

	next = rdtsc() + hz;
	for (s = 1;;) {
		uint64_t now = rdtsc(), goal;

		if (rate) {
			/* Pages due by now within second s, capped at its target. */
			uint64_t into = now - (next - hz);
			goal = into >= hz ? s * pps : (s - 1) * pps + into * pps / hz;
		} else {
			goal = d.written + PAGES_PER_MIB;
		}
		while (d.written < goal)
			if (write_page(&d))
				return EXIT_VERIFY;
		if ((int64_t)(now - next) >= 0 &&
		    (rate ? d.written == s * pps : d.written % PAGES_PER_MIB == 0)) {
			printf("dirty: t=%lu written=%lu checksum=%016lx\n", s,
			       d.written / PAGES_PER_MIB, d.checksum);
			if (seconds && s == seconds)
				return EXIT_OK;
			s++;
			next += hz;
		} else if (rate) {
			cpu_relax();
		}
	}
}
