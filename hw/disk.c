/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Replicated disks, VM level (hw.h "replicated disks"): each call goes to
 * every virtio-blk device, or to the one asked for.
 */
#include <errno.h>

#include "hw/virtio.h"

static struct virtio_blk *disk(struct vm *vm, unsigned int idx)
{
	return idx < vm->nblk ? vm->blk[idx] : NULL;
}

int hw_vm_disk_info(struct vm *vm, unsigned int idx, struct hw_disk_info *out)
{
	struct virtio_blk *b = disk(vm, idx);

	if (!b)
		return -ENODEV;
	out->bytes = virtio_blk_bytes(b);
	out->replicate = virtio_blk_replicated(b);
	out->readonly = virtio_blk_readonly(b);
	return 0;
}

void hw_vm_disk_set_tap(struct vm *vm, hw_disk_tap tap, void *opaque)
{
	for (unsigned int i = 0; i < vm->nblk; i++)
		virtio_blk_set_tap(vm->blk[i], tap, opaque);
}

int hw_vm_disk_read(struct vm *vm, unsigned int idx, void *buf, size_t len, uint64_t off)
{
	struct virtio_blk *b = disk(vm, idx);

	return b ? virtio_blk_pread(b, buf, len, off) : -ENODEV;
}

int hw_vm_disk_write(struct vm *vm, unsigned int idx, const void *buf, size_t len, uint64_t off)
{
	struct virtio_blk *b = disk(vm, idx);

	return b ? virtio_blk_pwrite(b, buf, len, off) : -ENODEV;
}

int hw_vm_disk_overlay_start(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nblk; i++) {
		int ret = virtio_blk_overlay_start(vm->blk[i]);

		if (ret)
			return ret;
	}
	return 0;
}

int hw_vm_disk_overlay_drop(struct vm *vm)
{
	int ret = 0;

	for (unsigned int i = 0; i < vm->nblk; i++) {
		int r = virtio_blk_overlay_drop(vm->blk[i]);

		ret = ret ? ret : r;
	}
	return ret;
}

int hw_vm_disk_overlay_merge(struct vm *vm, uint64_t *sectors)
{
	uint64_t total = 0;
	int ret = 0;

	for (unsigned int i = 0; i < vm->nblk; i++) {
		uint64_t n = 0;
		int r = virtio_blk_overlay_merge(vm->blk[i], &n);

		total += n;
		ret = ret ? ret : r;
	}
	if (sectors)
		*sectors = total;
	return ret;
}

uint64_t hw_vm_disk_overlay_sectors(struct vm *vm)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < vm->nblk; i++)
		n += virtio_blk_overlay_sectors(vm->blk[i]);
	return n;
}

uint64_t hw_vm_disk_digest(struct vm *vm, int *err)
{
	uint64_t h = 0;

	*err = 0;
	for (unsigned int i = 0; i < vm->nblk && !*err; i++) {
		if (virtio_blk_replicated(vm->blk[i]))
			h = h * 0x9e3779b97f4a7c15ull ^ virtio_blk_digest(vm->blk[i], err);
	}
	return *err ? 0 : h;
}
