/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Stream encode/decode throughput of RAM runs: guest buffer of N MiB with
 * zero, dirty (random) or mixed pages, zstd off/on, into /dev/null (fd
 * sink, writev without copying page data) and into a memory sink; decode
 * from memory into a RAM cache. Median of 5. Prints a markdown table.
 *   bench_vmstate [MiB]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <inttypes.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"

#define REPS 5

static uint8_t *cache;
static uint64_t cache_pages;

static void *bench_map(void *opaque, uint64_t gfn, uint32_t n)
{
	if (gfn >= cache_pages || n > cache_pages - gfn)
		return NULL;
	return cache + gfn * VMSTATE_PAGE_SIZE;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v)
{
	qsort(v, REPS, sizeof(*v), cmp_double);
	return v[REPS / 2];
}

static void fill(uint8_t *ram, uint64_t npages, const char *kind)
{
	uint64_t i, j, x = 88172645463325252ull;

	for (i = 0; i < npages; i++) {
		uint8_t *p = ram + i * VMSTATE_PAGE_SIZE;
		int k = !strcmp(kind, "zero") ? 0 : !strcmp(kind, "dirty") ? 1 : (int)(i % 3);

		if (k == 0) {
			memset(p, 0, VMSTATE_PAGE_SIZE);
		} else if (k == 1) {
			for (j = 0; j < VMSTATE_PAGE_SIZE; j += 8) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				memcpy(p + j, &x, 8);
			}
		} else {
			/* text-like: compressible */
			for (j = 0; j < VMSTATE_PAGE_SIZE; j++)
				p[j] = (uint8_t)("GET /index.html HTTP/1.1\r\nHost: colovm\r\n"[j % 40] +
						 (i & 3));
		}
	}
}

static int encode(struct vmstate_sink *sink, const uint8_t *ram, uint64_t bytes, int level,
		  struct vmstate_ram_stats *st)
{
	struct vmstate_writer_opts o = {.zstd_level = level};
	struct vmstate_writer *w;
	struct vmstate_error err = {0};
	int ret;

	ret = vmstate_writer_new(&w, sink, &o);
	if (ret)
		return ret;
	if ((ret = vmstate_write_header(w, &err)) || (ret = vmstate_write_ram_start(w, bytes, &err)) ||
	    (ret = vmstate_write_ram_pages(w, ram, 0, bytes / VMSTATE_PAGE_SIZE, &err)) ||
	    (ret = vmstate_write_ram_end(w, &err)) || (ret = vmstate_write_eof(w, &err)))
		fprintf(stderr, "encode: %s\n", err.msg);
	if (st)
		vmstate_writer_ram_stats(w, st);
	vmstate_writer_free(w);
	return ret;
}

static int decode(const uint8_t *buf, size_t len)
{
	struct vmstate_load_ops ops = {.ram_map = bench_map};
	struct vmstate_registry *reg;
	struct vmstate_source *src;
	struct vmstate_reader *r;
	struct vmstate_error err = {0};
	int ret;

	vmstate_registry_new(&reg);
	vmstate_source_new_mem(&src, buf, len);
	ret = vmstate_reader_new(&r, src, reg, &ops, NULL);
	if (!ret && ((ret = vmstate_read_header(r, &err)) || (ret = vmstate_load_begin(r, &err))))
		fprintf(stderr, "decode: %s\n", err.msg);
	vmstate_reader_free(r);
	vmstate_source_free(src);
	vmstate_registry_free(reg);
	return ret;
}

int main(int argc, char **argv)
{
	static const char *const kinds[] = {"zero", "dirty", "mixed"};
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 512, bytes = mib << 20;
	uint8_t *ram = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int devnull = open("/dev/null", O_WRONLY);
	struct vmstate_sink *null_sink, *mem_sink;
	size_t k, lv, i, slen;
	int levels[] = {0, 1, -5};

	cache = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cache_pages = bytes / VMSTATE_PAGE_SIZE;
	if (ram == MAP_FAILED || cache == MAP_FAILED || devnull < 0 ||
	    vmstate_sink_new_fd(&null_sink, devnull) || vmstate_sink_new_mem(&mem_sink))
		return 1;
	memset(cache, 1, bytes); /* fault in */
	printf("RAM %" PRIu64 " MiB, 4 KiB pages, median of %d; GB/s = guest bytes / time\n\n", mib,
	       REPS);
	printf("| pages | zstd | encode ->/dev/null GB/s | encode ->memory GB/s | stream MiB | "
	       "decode GB/s | raw/zero/zstd pages %% |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		fill(ram, bytes / VMSTATE_PAGE_SIZE, kinds[k]);
		for (lv = 0; lv < ARRAY_SIZE(levels); lv++) {
			double tn[REPS], tm[REPS], td[REPS];
			struct vmstate_ram_stats st;
			const uint8_t *d;
			uint64_t t0, tot;

			for (i = 0; i < REPS; i++) {
				t0 = clock_ns();
				if (encode(null_sink, ram, bytes, levels[lv], NULL))
					return 1;
				tn[i] = (double)bytes / (double)(clock_ns() - t0);
			}
			for (i = 0; i < REPS; i++) {
				vmstate_sink_mem_reset(mem_sink);
				t0 = clock_ns();
				if (encode(mem_sink, ram, bytes, levels[lv], &st))
					return 1;
				tm[i] = (double)bytes / (double)(clock_ns() - t0);
			}
			d = vmstate_sink_mem_data(mem_sink, &slen);
			for (i = 0; i < REPS; i++) {
				t0 = clock_ns();
				if (decode(d, slen))
					return 1;
				td[i] = (double)bytes / (double)(clock_ns() - t0);
			}
			if (memcmp(ram, cache, bytes)) {
				fprintf(stderr, "decode mismatch\n");
				return 1;
			}
			tot = st.pages_raw + st.pages_zero + st.pages_zstd;
			printf("| %s | %s | %.2f | %.2f | %.1f | %.2f | %.0f/%.0f/%.0f |\n", kinds[k],
			       levels[lv] == 1 ? "level 1" : levels[lv] ? "level -5" : "off", median(tn), median(tm),
			       (double)slen / (1 << 20), median(td), 100.0 * (double)st.pages_raw / (double)tot,
			       100.0 * (double)st.pages_zero / (double)tot,
			       100.0 * (double)st.pages_zstd / (double)tot);
			fflush(stdout);
		}
	}
	vmstate_sink_free(null_sink);
	vmstate_sink_free(mem_sink);
	close(devnull);
	return 0;
}
