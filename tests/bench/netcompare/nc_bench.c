// SPDX-License-Identifier: GPL-2.0-only
/*
 * net-compare throughput and latency on one core, matching streams.
 *
 *   nc_bench [runs]
 *
 * For each frame size (64, 512, 1500 bytes on the wire) and connection count (1, 10000):
 * primary and secondary TCP segments with identical payload are fed alternately
 * (primary first, so every primary frame is held and then released by its secondary
 * twin). Throughput = primary frames compared and released per second (each one costs
 * two compare_feed calls). Latency = from the primary frame entering compare_feed to
 * its release callback, with the secondary copy fed right after it: the time the
 * compare itself adds (the secondary guest's own lag is not the library's). Prints the
 * median over the runs as a markdown table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "net-compare/compare.h"

struct ctx {
	uint64_t released;
	uint64_t t0;
	uint64_t *lat;
	size_t nlat, maxlat;
};

static void on_release(void *o, const uint8_t *f, size_t n)
{
	struct ctx *c = o;

	c->released++;
	if (c->lat && c->nlat < c->maxlat)
		c->lat[c->nlat++] = clock_ns() - c->t0;
}

static void on_checkpoint(void *o, enum compare_reason r)
{
	fprintf(stderr, "unexpected checkpoint: %s\n", compare_reason_name(r));
	exit(1);
}

static void w16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void w32(uint8_t *p, uint32_t v)
{
	w16(p, (uint16_t)(v >> 16));
	w16(p + 2, (uint16_t)v);
}

/* Ethernet + IPv4 + TCP, total frame size len (>= 54). Checksums are not checked by the
 * compare, so they are left 0. */
static void mkframe(uint8_t *f, size_t len, uint32_t conn, uint32_t seq, uint8_t flags)
{
	uint8_t *ip = f + 14, *th = f + 34;
	size_t i;

	memset(f, 0, 54);
	f[0] = 0x52;
	f[6] = 0x52;
	w16(f + 12, 0x0800);
	ip[0] = 0x45;
	w16(ip + 2, (uint16_t)(len - 14));
	ip[8] = 64;
	ip[9] = 6;
	ip[12] = 10;
	ip[15] = 2;
	ip[16] = 10;
	ip[17] = 1;
	ip[18] = (uint8_t)(conn >> 8);
	ip[19] = (uint8_t)conn;
	w16(th, 80);
	w16(th + 2, (uint16_t)(1024 + conn % 60000));
	w32(th + 4, seq);
	th[12] = 5 << 4;
	th[13] = flags;
	w16(th + 14, 65535);
	for (i = 54; i < len; i++)
		f[i] = (uint8_t)(i * 7 + conn);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double mfps;
	uint64_t p50, p99;
};

static struct result run(size_t flen, uint32_t nconns, uint64_t pairs, bool measure_lat)
{
	static const struct compare_ops ops = {.release = on_release, .checkpoint = on_checkpoint};
	struct compare_config cfg = {.timeout_ns = 3600ull * 1000000000ull};
	uint32_t *seq = calloc(nconns, sizeof(*seq));
	uint8_t f[1600];
	struct ctx ctx = {0};
	struct result r = {0};
	struct compare *c;
	uint64_t i, t0, t1, now = 1;
	uint32_t k, plen = (uint32_t)(flen - 54);

	if (!seq || compare_new(&c, &cfg, &ops, &ctx) < 0)
		exit(1);
	for (k = 0; k < nconns; k++) {
		mkframe(f, 54, k, 1000, 0x12);
		compare_feed(c, COMPARE_PRIMARY, f, 54, now);
		compare_feed(c, COMPARE_SECONDARY, f, 54, now);
		seq[k] = 1001;
	}
	if (measure_lat) {
		ctx.maxlat = pairs;
		ctx.lat = malloc(pairs * sizeof(uint64_t));
	}
	ctx.released = 0;
	/* one template per size; only the flow bytes and seq change per frame */
	mkframe(f, flen, 0, 0, 0x18);
	t0 = clock_ns();
	for (i = 0; i < pairs; i++) {
		k = (uint32_t)(i % nconns);
		f[32] = (uint8_t)(k >> 8);
		f[33] = (uint8_t)k;
		w16(f + 36, (uint16_t)(1024 + k % 60000));
		w32(f + 38, seq[k]);
		seq[k] += plen;
		if (measure_lat)
			ctx.t0 = clock_ns();
		compare_feed(c, COMPARE_PRIMARY, f, flen, now);
		compare_feed(c, COMPARE_SECONDARY, f, flen, now);
	}
	t1 = clock_ns();
	if (ctx.released != pairs) {
		fprintf(stderr, "released %llu of %llu\n", (unsigned long long)ctx.released,
			(unsigned long long)pairs);
		exit(1);
	}
	r.mfps = (double)pairs / ((double)(t1 - t0) / 1e9) / 1e6;
	if (measure_lat) {
		qsort(ctx.lat, ctx.nlat, sizeof(uint64_t), cmp_u64);
		r.p50 = ctx.lat[ctx.nlat / 2];
		r.p99 = ctx.lat[ctx.nlat * 99 / 100];
		free(ctx.lat);
	}
	compare_free(c);
	free(seq);
	return r;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const size_t sizes[] = {64, 512, 1500};
	static const uint32_t conns[] = {1, 10000};
	int runs = argc > 1 ? atoi(argv[1]) : 5, i;
	size_t s, n;

	if (runs < 1 || runs > 50)
		runs = 5;
	printf("| frame | connections | Mframes/s compared (median of %d) | compare_feed calls/s | "
	       "added latency p50 | p99 |\n",
	       runs);
	printf("|---:|---:|---:|---:|---:|---:|\n");
	for (s = 0; s < ARRAY_SIZE(sizes); s++) {
		for (n = 0; n < ARRAY_SIZE(conns); n++) {
			double m[50];
			uint64_t p50[50], p99[50];
			uint64_t pairs = sizes[s] == 1500 ? 300000 : 1000000;

			for (i = 0; i < runs; i++) {
				struct result r = run(sizes[s], conns[n], pairs, false);
				struct result l = run(sizes[s], conns[n], pairs / 4, true);

				m[i] = r.mfps;
				p50[i] = l.p50;
				p99[i] = l.p99;
			}
			qsort(m, (size_t)runs, sizeof(double), cmp_d);
			qsort(p50, (size_t)runs, sizeof(uint64_t), cmp_u64);
			qsort(p99, (size_t)runs, sizeof(uint64_t), cmp_u64);
			printf("| %zu B | %u | %.2f M | %.2f M | %.2f µs | %.2f µs |\n", sizes[s],
			       conns[n], m[runs / 2], 2 * m[runs / 2], p50[runs / 2] / 1e3,
			       p99[runs / 2] / 1e3);
			fflush(stdout);
		}
	}
	return 0;
}
