/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Guest RAM: one memfd, mapped once in the VMM, split into a low region
 * (below the 3 GiB MMIO hole) and a high region at 4 GiB. Each region is a
 * KVM memory slot; slots are created ready for KVM_MEM_LOG_DIRTY_PAGES.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hw/internal.h"

int mem_init(struct guest_mem *mem, uint64_t size)
{
	uint64_t low = MIN(size, LOW_RAM_MAX);
	uint64_t pages = size >> PAGE_SHIFT;
	int ret;

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (!size || size & (PAGE_SIZE - 1))
		return -EINVAL;
	mem->memfd = memfd_create("colovm-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) < 0) {
		ret = -errno;
		goto err;
	}
	mem->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 mem->memfd, 0);
	if (mem->host == MAP_FAILED) {
		mem->host = NULL;
		ret = -errno;
		goto err;
	}
	madvise(mem->host, size, MADV_MERGEABLE); /* advisory: errors ignored */
	mem->size = size;
	mem->regions[0] = (struct mem_region){.gpa = 0, .size = low, .offset = 0, .slot = 0};
	mem->nregions = 1;
	if (size > low) {
		mem->regions[1] = (struct mem_region){
			.gpa = HIGH_RAM_BASE, .size = size - low, .offset = low, .slot = 1};
		mem->nregions = 2;
	}
	mem->vmm_dirty = calloc((pages + 63) / 64, sizeof(uint64_t));
	if (!mem->vmm_dirty) {
		ret = -ENOMEM;
		goto err;
	}
	return 0;
err:
	mem_free(mem);
	return ret;
}

uint64_t mem_host_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	uint64_t kib = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1)
			break;
	fclose(f);
	return kib * 1024;
}

struct prealloc_slice {
	uint8_t *p;
	size_t len;
	bool threaded;
	int ret;
};

static void *prealloc_thread(void *arg)
{
	struct prealloc_slice *s = arg;

	s->ret = 0;
	if (madvise(s->p, s->len, MADV_POPULATE_WRITE) == 0)
		return NULL;
	if (errno != EINVAL) {
		s->ret = -errno;
		return NULL;
	}
	/* Linux < 5.14: no MADV_POPULATE_WRITE; write each page instead. */
	for (size_t off = 0; off < s->len; off += PAGE_SIZE)
		((volatile uint8_t *)s->p)[off] = 0;
	return NULL;
}

/*
 * Allocate and map every page of guest RAM now, a slice per online CPU (up
 * to 16, at least 64 MiB each), so that neither the guest's first touch of
 * a page nor an incoming migration's copy into it has to fault the page in.
 * RAM is still untouched here (nothing was loaded yet), so writing zeroes
 * in the fallback changes nothing the guest could see.
 */
int mem_prealloc(struct guest_mem *mem)
{
	struct prealloc_slice s[16];
	pthread_t t[16];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = (size_t)MAX(1, MIN(MIN(cpus, 16), (long)(mem->size / (64 * MiB)))), i;
	size_t step = ALIGN_UP(mem->size / n, PAGE_SIZE);
	int ret = 0;

	for (i = 0; i < n; i++) {
		uint64_t off = MIN(mem->size, i * step);

		s[i] = (struct prealloc_slice){.p = mem->host + off, .len = MIN(step, mem->size - off)};
		s[i].threaded = i && !pthread_create(&t[i], NULL, prealloc_thread, &s[i]);
	}
	for (i = 0; i < n; i++) {
		if (s[i].threaded)
			pthread_join(t[i], NULL);
		else
			prealloc_thread(&s[i]); /* slice 0, or no thread could start */
	}
	for (i = 0; i < n && !ret; i++)
		ret = s[i].ret;
	if (!ret)
		mem->prealloc = true;
	return ret;
}

void mem_free(struct guest_mem *mem)
{
	if (mem->host)
		munmap(mem->host, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	free(mem->vmm_dirty);
	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
}

static const struct mem_region *mem_find(const struct guest_mem *mem, uint64_t gpa,
					 uint64_t len)
{
	for (unsigned int i = 0; i < mem->nregions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (gpa >= r->gpa && len <= r->size && gpa - r->gpa <= r->size - len)
			return r;
	}
	return NULL;
}

void *mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = mem_find(mem, gpa, len);

	return r ? mem->host + r->offset + (gpa - r->gpa) : NULL;
}

void mem_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = mem_find(mem, gpa, len);
	uint64_t first, last;

	if (!r || !len)
		return;
	first = (r->offset + gpa - r->gpa) >> PAGE_SHIFT;
	last = (r->offset + gpa - r->gpa + len - 1) >> PAGE_SHIFT;
	for (uint64_t p = first; p <= last; p++)
		atomic_fetch_or_explicit(&mem->vmm_dirty[p / 64], 1ull << (p % 64),
					 memory_order_relaxed);
}

int mem_write(struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len)
{
	void *dst = mem_ptr(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	mem_mark_dirty(mem, gpa, len);
	return 0;
}

bool mem_test_dirty(const struct guest_mem *mem, uint64_t gpa)
{
	const struct mem_region *r = mem_find(mem, gpa, 1);
	uint64_t p;

	if (!r)
		return false;
	p = (r->offset + gpa - r->gpa) >> PAGE_SHIFT;
	return atomic_load_explicit(&mem->vmm_dirty[p / 64], memory_order_relaxed) &
	       (1ull << (p % 64));
}

uint64_t mem_harvest_vmm_dirty(struct guest_mem *mem, uint64_t *out)
{
	uint64_t words = ((mem->size >> PAGE_SHIFT) + 63) / 64, n = 0;

	for (uint64_t i = 0; i < words; i++) {
		out[i] = atomic_exchange_explicit(&mem->vmm_dirty[i], 0, memory_order_relaxed);
		n += (uint64_t)__builtin_popcountll(out[i]);
	}
	return n;
}
