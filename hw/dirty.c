/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Dirty page tracking for migration and checkpoints: KVM's dirty log of each
 * RAM slot (KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG, which returns and
 * clears the log) merged with the VMM's own record of device writes into
 * guest RAM (guest_mem.vmm_dirty, fed by mem_mark_dirty()).
 *
 * Bits are in host-offset page space: bit p is the page at mem.host + p *
 * PAGE_SIZE, whichever slot it belongs to. A sync hands the bits to the
 * caller (both sources are cleared); pages it then fails to send go back
 * through hw_dirty_log_putback() into vmm_dirty, where the next sync finds them —
 * nothing is lost when a send fails.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hw/internal.h"

static int dirty_set_flags(struct vm *vm, uint32_t flags)
{
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = r->slot,
			.flags = flags,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)(vm->mem.host + r->offset),
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			log_err("KVM_SET_USER_MEMORY_REGION (dirty log %s): %s",
				flags ? "on" : "off", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int log_start(struct vm *vm)
{
	uint64_t words = 0;
	int ret;

	if (vm->dirty_logging)
		return 0;
	for (unsigned int i = 0; i < vm->mem.nregions; i++)
		words = MAX(words, (vm->mem.regions[i].size / PAGE_SIZE + 63) / 64);
	free(vm->kvm_dirty);
	vm->kvm_dirty = calloc(words, sizeof(uint64_t));
	if (!vm->kvm_dirty)
		return -ENOMEM;
	ret = dirty_set_flags(vm, KVM_MEM_LOG_DIRTY_PAGES);
	if (ret) {
		dirty_set_flags(vm, 0);
		return ret;
	}
	/* The caller sends all of RAM next, so what the VMM wrote before now
	 * (the kernel image and boot data, earlier device writes) is in that
	 * pass: drop it here, or every such page is sent a second time by the
	 * first sync, i.e. in the stop-and-copy of a guest that dirties little.
	 * A device write from here on sets its bit again. */
	for (uint64_t w = 0; w < (vm->mem.size / PAGE_SIZE + 63) / 64; w++)
		atomic_store_explicit(&vm->mem.vmm_dirty[w], 0, memory_order_relaxed);
	vm->dirty_logging = true;
	return 0;
}

static void log_stop(struct vm *vm)
{
	if (vm->dirty_logging && vm->vm_fd >= 0)
		dirty_set_flags(vm, 0);
	vm->dirty_logging = false;
	free(vm->kvm_dirty);
	vm->kvm_dirty = NULL;
}

int hw_dirty_log_start(struct vm *vm)
{
	int ret;

	pthread_mutex_lock(&vm->dirty_lock);
	if (vm->dirty_stop_later) {
		/* the last user's stop first: this start must not be undone */
		log_stop(vm);
		vm->dirty_stop_later = false;
	}
	ret = log_start(vm);
	pthread_mutex_unlock(&vm->dirty_lock);
	return ret;
}

void hw_dirty_log_stop(struct vm *vm)
{
	pthread_mutex_lock(&vm->dirty_lock);
	log_stop(vm);
	vm->dirty_stop_later = false;
	pthread_mutex_unlock(&vm->dirty_lock);
}

void hw_dirty_log_stop_later(struct vm *vm)
{
	pthread_mutex_lock(&vm->dirty_lock);
	vm->dirty_stop_later = vm->dirty_logging;
	pthread_mutex_unlock(&vm->dirty_lock);
}

void hw_dirty_log_stop_now(struct vm *vm)
{
	pthread_mutex_lock(&vm->dirty_lock);
	if (vm->dirty_stop_later)
		log_stop(vm);
	vm->dirty_stop_later = false;
	pthread_mutex_unlock(&vm->dirty_lock);
}

int hw_dirty_log_sync(struct vm *vm, uint64_t *bitmap)
{
	uint64_t words = (vm->mem.size / PAGE_SIZE + 63) / 64;

	if (!vm->dirty_logging)
		return -EINVAL;
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		uint64_t pages = r->size / PAGE_SIZE, base = r->offset / PAGE_SIZE;
		struct kvm_dirty_log log = {.slot = r->slot, .dirty_bitmap = vm->kvm_dirty};

		memset(vm->kvm_dirty, 0, (pages + 63) / 64 * sizeof(uint64_t));
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0) {
			log_err("KVM_GET_DIRTY_LOG slot %u: %s", r->slot, strerror(errno));
			return -errno;
		}
		/* Regions start on 1 GiB boundaries in host-offset space, so base
		 * is a multiple of 64 and words line up. */
		for (uint64_t w = 0; w < (pages + 63) / 64; w++)
			bitmap[base / 64 + w] |= vm->kvm_dirty[w];
	}
	for (uint64_t w = 0; w < words; w++) {
		if (atomic_load_explicit(&vm->mem.vmm_dirty[w], memory_order_relaxed))
			bitmap[w] |= atomic_exchange(&vm->mem.vmm_dirty[w], 0);
	}
	return 0;
}

void hw_dirty_log_putback(struct vm *vm, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		atomic_fetch_or_explicit(&vm->mem.vmm_dirty[p / 64], 1ull << (p % 64),
					 memory_order_relaxed);
}
