/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hw: the KVM virtual machine — VM and vCPUs, guest memory, boot loaders
 * (PVH ELF and Linux bzImage) and device models.
 *
 * Threads: each vCPU runs KVM_RUN on its own thread. vCPU threads never act
 * on the VM's life cycle themselves: guest events (debug-exit, reset, halt,
 * triple fault) are *reported* through the event callback, which must only
 * queue a request for the main loop (see common/runstate).
 */
#ifndef COLOVM_HW_H
#define COLOVM_HW_H

#include <stdbool.h>
#include <stdint.h>

#include "common/common.h"

struct vm;

struct vm_config {
	const char *kernel;   /* PVH ELF or bzImage (required) */
	const char *initrd;   /* optional */
	const char *cmdline;  /* optional kernel command line */
	uint64_t mem_mib;     /* guest RAM in MiB */
	unsigned int cpus;    /* vCPUs */
	const char *serial;   /* "stdio", "file:PATH" or "none" */
};

/* What a guest did that ends (or resets) its run. */
enum vm_event {
	VM_EVENT_DEBUG_EXIT,  /* write to isa-debug-exit port 0xf4; code = value */
	VM_EVENT_RESET,	      /* i8042 reset pulse, triple fault, port 0xcf9 */
	VM_EVENT_HALT,	      /* every vCPU halted with interrupts disabled */
	VM_EVENT_INTERNAL_ERROR, /* KVM could not run the guest; code = -errno or exit reason */
};

typedef void (*vm_event_cb)(void *opaque, enum vm_event ev, int code);

/* Build the VM: KVM fds, RAM, irqchip, PIT, devices, loaded kernel. The VM
 * is created paused; hw_vm_resume() starts the vCPU threads running. */
int hw_vm_create(const struct vm_config *cfg, struct loop *loop, vm_event_cb cb, void *opaque,
		 struct vm **out);
/* Stop every vCPU and wait until each is out of KVM_RUN and parked. */
int hw_vm_pause(struct vm *vm);
/* Let parked vCPUs run again (first call starts them). */
int hw_vm_resume(struct vm *vm);
bool hw_vm_running(const struct vm *vm);
/* Stop and join vCPU threads, close KVM fds, unmap RAM. */
void hw_vm_destroy(struct vm *vm);

/* Guest RAM, for checkpointing and tests. */
uint8_t *hw_vm_ram(struct vm *vm, uint64_t *size);

#endif
