/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Whole-VM and device-state streams (hw.h "migratable" and snapshot files).
 *
 * A snapshot file is one common/vmstate stream: header, START "ram", one
 * PART of every page (zero pages as ZERO runs), END, a FULL record per
 * device, EOF. Its loader writes RAM runs straight into the guest RAM of a
 * VM that has never run (created with vm_config.restore): that RAM is the
 * staging area. Device sections are staged and validated by the two-phase
 * reader and only applied after the EOF; on any failure the caller must not
 * start the VM, and the error names the section.
 *
 * Device state alone (hw_vm_save_devices / hw_vm_load_devices) is the same
 * stream without a RAM section: the roles ship it in the checkpoint protocol
 * (transport/transport.h) and load it into a paused VM with the same two
 * phases.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/vmstate/vmstate.h"
#include "hw/internal.h"
#include "hw/virtio.h"

int hw_vm_save(struct vm *vm, int fd, struct vmstate_error *err)
{
	struct vmstate_sink *sink = NULL;
	struct vmstate_writer *w = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "the VM must be stopped for a snapshot");
	ret = vmstate_sink_new_fd(&sink, fd);
	if (!ret)
		ret = vmstate_writer_new(&w, sink, NULL);
	if (ret) {
		vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto out;
	}
	ret = vmstate_write_header(w, err);
	if (!ret)
		ret = vmstate_write_ram_start(w, vm->mem.size, err);
	if (!ret)
		ret = vmstate_write_ram_pages(w, vm->mem.host, 0, vm->mem.size / PAGE_SIZE, err);
	if (!ret)
		ret = vmstate_write_ram_end(w, err);
	if (!ret)
		ret = vmstate_write_devices(w, vm->vmstate, err);
	if (!ret)
		ret = vmstate_write_eof(w, err);
out:
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	return ret;
}

struct load_ctx {
	struct vm *vm;
	struct vmstate_reader *r;
	uint64_t bad_ram;
	uint64_t ram_end_ns; /* the RAM section's END record was read */
};

/* The VM has never run: its RAM is the staging area (see the top). */
static void *load_ram_map(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	uint64_t bytes = vmstate_reader_ram_bytes(c->r);

	if (bytes != c->vm->mem.size) {
		c->bad_ram = bytes;
		return NULL;
	}
	if (gfn >= c->vm->mem.size / PAGE_SIZE || npages > c->vm->mem.size / PAGE_SIZE - gfn)
		return NULL;
	return c->vm->mem.host + gfn * PAGE_SIZE;
}

/* Pages about to be filled from the stream: allocate the whole run at once. */
static void *load_ram_map_data(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	void *p = load_ram_map(opaque, gfn, npages);

	if (p)
		hw_vm_ram_populate(c->vm, gfn, npages);
	return p;
}

/* Zero runs: pages of the target's memfd that are still holes are zero
 * already; others are punched out (no page is allocated for zeroes). With
 * --mem-prealloc every page stays allocated: only pages that hold something
 * are cleared. */
static int load_ram_zero(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	off_t off = (off_t)(gfn * PAGE_SIZE), len = (off_t)npages * (off_t)PAGE_SIZE;

	if (!load_ram_map(opaque, gfn, npages))
		return -EINVAL;
	if (c->vm->mem.prealloc) {
		for (uint32_t i = 0; i < npages; i++) {
			uint8_t *pg = c->vm->mem.host + off + (size_t)i * PAGE_SIZE;

			if (!vmstate_page_is_zero(pg))
				memset(pg, 0, PAGE_SIZE);
		}
		return 0;
	}
	if (hw_vm_ram_unbacked(c->vm, gfn, npages))
		return 0;
	if (fallocate(c->vm->mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0) {
		memset(c->vm->mem.host + off, 0, (size_t)len);
		return 0;
	}
	return 0;
}

static void load_ram_end(void *opaque)
{
	struct load_ctx *c = opaque;

	c->ram_end_ns = clock_ns();
}

static int vm_load(struct load_ctx *c, int fd, struct vmstate_error *err)
{
	struct vm *vm = c->vm;
	struct vmstate_load_ops ops = {.ram_map = load_ram_map_data,
				       .ram_zero = load_ram_zero,
				       .ram_end = load_ram_end,
				       .opaque = c};
	uint64_t t_read = 0, t_commit = 0;
	struct vmstate_source *src = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "cannot load into a running VM");
	ret = vmstate_source_new_fd(&src, fd);
	if (!ret)
		ret = vmstate_reader_new(&c->r, src, vm->vmstate, &ops, NULL);
	if (ret) {
		vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto out;
	}
	ret = vmstate_read_header(c->r, err);
	if (!ret)
		ret = vmstate_load_begin(c->r, err);
	if (ret && c->bad_ram)
		vmstate_seterr(err, -EINVAL,
			       "section 'ram': the saved VM has %llu MiB of RAM, this one %llu "
			       "(--mem must match)",
			       (unsigned long long)(c->bad_ram / MiB),
			       (unsigned long long)(vm->mem.size / MiB));
	if (!ret && !vmstate_reader_ram_bytes(c->r))
		ret = vmstate_seterr(err, -EINVAL, "the stream has no RAM section");
	if (!ret) {
		t_read = clock_ns();
		ret = vmstate_load_commit(c->r, err);
		if (ret && !err->msg[0])
			vmstate_seterr(err, ret, "device state refused: %s", strerror(-ret));
		t_commit = clock_ns();
	} else {
		vmstate_load_abort(c->r);
	}
	if (ret)
		virtio_persist_explain(vm, err);
	else if (c->ram_end_ns)
		log_debug("load: RAM end to end of stream %llu us, device state applied in %llu us",
			  (unsigned long long)((t_read - c->ram_end_ns) / 1000),
			  (unsigned long long)((t_commit - t_read) / 1000));
out:
	vmstate_reader_free(c->r);
	vmstate_source_free(src);
	return ret;
}

int hw_vm_load(struct vm *vm, int fd, struct vmstate_error *err)
{
	struct load_ctx c = {.vm = vm};

	return vm_load(&c, fd, err);
}

/* ---- device state alone ----------------------------------------------------- */

int hw_vm_save_devices(struct vm *vm, struct vmstate_sink *sink, struct vmstate_error *err)
{
	struct vmstate_writer *w = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "the VM must be stopped to save its devices");
	ret = vmstate_writer_new(&w, sink, NULL);
	if (ret)
		return vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
	ret = vmstate_write_header(w, err);
	if (!ret)
		ret = vmstate_write_devices(w, vm->vmstate, err);
	if (!ret)
		ret = vmstate_write_eof(w, err);
	vmstate_writer_free(w);
	return ret;
}

/* A device-state stream carries no RAM: any RAM run is refused. */
static void *load_no_ram(void *opaque, uint64_t gfn, uint32_t npages)
{
	return NULL;
}

struct hw_devload {
	struct vm *vm;
	struct vmstate_source *src;
	struct vmstate_reader *r;
};

void hw_vm_devices_drop(struct hw_devload *d)
{
	if (!d)
		return;
	if (d->r)
		vmstate_load_abort(d->r);
	vmstate_reader_free(d->r);
	vmstate_source_free(d->src);
	free(d);
}

int hw_vm_devices_stage(struct vm *vm, const void *buf, size_t len, struct hw_devload **out,
			struct vmstate_error *err)
{
	struct vmstate_load_ops ops = {.ram_map = load_no_ram};
	struct hw_devload *d = calloc(1, sizeof(*d));
	int ret;

	if (!d)
		return vmstate_seterr(err, -ENOMEM, "out of memory");
	d->vm = vm;
	ret = vmstate_source_new_mem(&d->src, buf, len);
	if (!ret)
		ret = vmstate_reader_new(&d->r, d->src, vm->vmstate, &ops, NULL);
	if (ret) {
		vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto err;
	}
	ret = vmstate_read_header(d->r, err);
	if (!ret)
		ret = vmstate_load_begin(d->r, err);
	if (!ret && vmstate_reader_ram_bytes(d->r)) {
		vmstate_load_abort(d->r);
		ret = vmstate_seterr(err, -EINVAL, "a device-state stream with a RAM section");
	}
	if (ret) {
		vmstate_reader_free(d->r);
		d->r = NULL;
		virtio_persist_explain(vm, err);
		goto err;
	}
	*out = d;
	return 0;
err:
	hw_vm_devices_drop(d);
	return ret;
}

int hw_vm_devices_apply(struct hw_devload *d, struct vmstate_error *err)
{
	int ret;

	if (d->vm->running) {
		ret = vmstate_seterr(err, -EBUSY, "cannot load into a running VM");
	} else {
		ret = vmstate_load_commit(d->r, err);
		if (ret && !err->msg[0])
			vmstate_seterr(err, ret, "device state refused: %s", strerror(-ret));
		if (ret)
			virtio_persist_explain(d->vm, err);
		else {
			vmstate_reader_free(d->r);
			d->r = NULL;
		}
	}
	hw_vm_devices_drop(d);
	return ret;
}

int hw_vm_load_devices(struct vm *vm, const void *buf, size_t len, struct vmstate_error *err)
{
	struct hw_devload *d = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "cannot load into a running VM");
	ret = hw_vm_devices_stage(vm, buf, len, &d, err);
	return ret ? ret : hw_vm_devices_apply(d, err);
}

/* ---- RAM helpers for senders and receivers ----------------------------------- */

uint64_t hw_vm_ram_pages(const struct vm *vm)
{
	return vm->mem.size / PAGE_SIZE;
}

bool hw_vm_ram_unbacked(struct vm *vm, uint64_t first, uint64_t n)
{
	off_t data = lseek(vm->mem.memfd, (off_t)(first * PAGE_SIZE), SEEK_DATA);

	return (data < 0 && errno == ENXIO) ||
	       (data >= 0 && (uint64_t)data >= (first + n) * PAGE_SIZE);
}

/* On a PVM host every page fault is a trip through the hypervisor: one
 * MADV_POPULATE_WRITE call per run instead. Without it (Linux < 5.14) the
 * copy faults the pages in as before. */
void hw_vm_ram_populate(struct vm *vm, uint64_t first, uint64_t n)
{
	if (!vm->mem.prealloc && first < vm->mem.size / PAGE_SIZE &&
	    n <= vm->mem.size / PAGE_SIZE - first)
		madvise(vm->mem.host + first * PAGE_SIZE, n * PAGE_SIZE, MADV_POPULATE_WRITE);
}

/* A copy that was a primary becomes its new primary's standby: its guest
 * RAM must read as zero again, as a VM's that never ran. Zeroed in place,
 * the pages the guest touched only (SEEK_DATA: holes read as zero already):
 * punching them out would hand KVM's mappings of them new pages, and the
 * VM keeps its slots. */
int hw_vm_ram_discard(struct vm *vm)
{
	struct guest_mem *mem = &vm->mem;
	off_t off = 0, end;

	for (;;) {
		off = lseek(mem->memfd, off, SEEK_DATA);
		if (off < 0)
			break;
		end = lseek(mem->memfd, off, SEEK_HOLE);
		if (end < 0 || (uint64_t)end > mem->size)
			end = (off_t)mem->size;
		memset(mem->host + off, 0, (size_t)(end - off));
		off = end;
		if ((uint64_t)off >= mem->size)
			break;
	}
	if (off < 0 && errno != ENXIO)
		return -errno;
	memset((void *)mem->vmm_dirty, 0,
	       HW_BITMAP_WORDS(mem->size / PAGE_SIZE) * sizeof(uint64_t));
	return 0;
}

/* Test-only: XXH3-64 over the contents of guest RAM, as the XXH3-64 of
 * every page's XXH3-64 in order (hashes, when not NULL, gets those: where
 * two copies differ). Holes are hashed as the zeros they read as, without
 * touching (allocating) them. */
uint64_t hw_vm_ram_digest_pages(struct vm *vm, uint64_t *hashes)
{
	static const uint8_t zero[PAGE_SIZE];
	const uint64_t chunk = 512; /* pages: 2 MiB */
	uint64_t npages = vm->mem.size / PAGE_SIZE, h, hz = XXH3_64bits(zero, PAGE_SIZE);
	XXH3_state_t *st = XXH3_createState();

	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	for (uint64_t p = 0; p < npages; p += chunk) {
		uint64_t n = MIN(chunk, npages - p);
		bool hole = hw_vm_ram_unbacked(vm, p, n);

		for (uint64_t i = 0; i < n; i++) {
			h = hole ? hz : XXH3_64bits(vm->mem.host + (p + i) * PAGE_SIZE, PAGE_SIZE);
			if (hashes)
				hashes[p + i] = h;
			XXH3_64bits_update(st, &h, sizeof(h));
		}
	}
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

int hw_ram_hashes_write(const char *path, uint64_t id, const uint64_t *hashes, uint64_t n)
{
	FILE *f = fopen(path, "we");
	int ret = 0;

	if (!f)
		return -errno;
	fprintf(f, "checkpoint %llu pages %llu\n", (unsigned long long)id, (unsigned long long)n);
	for (uint64_t i = 0; i < n; i++)
		fprintf(f, "%llx %016llx\n", (unsigned long long)i, (unsigned long long)hashes[i]);
	if (ferror(f))
		ret = -EIO;
	if (fclose(f) && !ret)
		ret = -errno;
	return ret;
}

void hw_ram_hash_ring_put(struct hw_ram_hash_ring *r, uint64_t id, uint64_t *hashes)
{
	unsigned int k = r->n % HW_RAM_HASH_KEEP;

	if (!hashes)
		return; /* (no memory for them: the digest alone) */
	free(r->e[k].hashes);
	r->e[k].id = id;
	r->e[k].hashes = hashes;
	r->n++;
}

int hw_ram_hash_ring_write(const struct hw_ram_hash_ring *r, uint64_t id, const char *path,
			   uint64_t pages, uint64_t *got)
{
	if (!r->n)
		return -ENODATA;
	for (uint64_t i = 0; i < MIN(r->n, (uint64_t)HW_RAM_HASH_KEEP); i++) {
		unsigned int k = (r->n - 1 - i) % HW_RAM_HASH_KEEP;

		if (!id || r->e[k].id == id) {
			*got = r->e[k].id;
			return hw_ram_hashes_write(path, r->e[k].id, r->e[k].hashes, pages);
		}
	}
	return -ENOENT;
}

void hw_ram_hash_ring_free(struct hw_ram_hash_ring *r)
{
	for (unsigned int k = 0; k < HW_RAM_HASH_KEEP; k++)
		free(r->e[k].hashes);
	memset(r, 0, sizeof(*r));
}

/* XXH3-64 of a file's contents, 0 when it cannot be read. */
static uint64_t file_digest(const char *path)
{
	uint8_t buf[1 << 16];
	XXH3_state_t *st;
	uint64_t h = 0;
	ssize_t n;
	int fd;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	st = fd >= 0 ? XXH3_createState() : NULL;
	if (st) {
		XXH3_64bits_reset(st);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			XXH3_64bits_update(st, buf, (size_t)n);
		h = n < 0 ? 0 : XXH3_64bits_digest(st);
		XXH3_freeState(st);
	}
	if (fd >= 0)
		close(fd);
	return h;
}

int hw_vm_describe(const struct vm *vm, char *buf, size_t len)
{
	const struct vm_config *c = &vm->cfg;
	int n;

	n = snprintf(buf, len, "mem=%lluM cpus=%u net=%u disk=%u kernel=%016llx initrd=%016llx",
		     (unsigned long long)c->mem_mib, c->cpus, vm->nnet, vm->nblk,
		     (unsigned long long)file_digest(c->kernel),
		     (unsigned long long)file_digest(c->initrd));
	for (unsigned int i = 0; i < vm->nblk && n >= 0 && (size_t)n < len; i++) {
		struct virtio_blk *b = vm->blk[i];
		int k = snprintf(buf + n, len - (size_t)n, " disk%u=%llu%s", i,
				 (unsigned long long)virtio_blk_bytes(b),
				 virtio_blk_replicated(b) ? ",replicate"
				 : virtio_blk_readonly(b) ? ",ro"
							  : "");

		n = k < 0 ? k : n + k;
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
