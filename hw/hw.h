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
	/* virtio-net devices: "tap=IFNAME[,mac=52:54:00:xx:xx:xx]" or
	 * "hook[,mac=...]" (frames only through hw_vm_net_set_hook/inject) */
	const char *const *net;
	unsigned int nnet;
	/* virtio-blk devices: "PATH[,readonly][,direct]" (raw image) */
	const char *const *disk;
	unsigned int ndisk;
	/* RAM and device state come from a snapshot or an incoming migration:
	 * the kernel is not loaded and the boot registers are not set. */
	bool restore;
	/* Allocate and map all guest RAM before anything runs (QEMU's
	 * -mem-prealloc): no page faults later, e.g. inside an incoming
	 * migration's copy into RAM. */
	bool mem_prealloc;
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
/* Machine reset: back to power-on device state, the kernel loaded again and
 * the boot vCPU at its entry point. Call from the main loop; the VM runs
 * again afterwards if it was running. The config given to hw_vm_create()
 * (and its strings) must still be valid. */
int hw_vm_reset(struct vm *vm);
/* Stop and join vCPU threads, close KVM fds, unmap RAM. */
void hw_vm_destroy(struct vm *vm);

/* Guest RAM, for checkpointing and tests. */
uint8_t *hw_vm_ram(struct vm *vm, uint64_t *size);

/* ---- state: snapshots and live migration (persist.c, migrate.c) -------------
 *
 * Every device describes its state in the VM's vmstate registry; a stream
 * is common/vmstate's format: header, RAM, device sections, EOF.
 */
struct vmstate_error;
struct runstate;
struct qmp;
struct migration;

/* Write the whole VM (RAM + devices) to fd. The VM must be paused. */
int hw_vm_save(struct vm *vm, int fd, struct vmstate_error *err);
/* Load a whole-VM stream from fd into a VM created with cfg->restore that
 * has not run. On failure the VM must not be started (RAM is half-written). */
int hw_vm_load(struct vm *vm, int fd, struct vmstate_error *err);

/* QMP commands migrate, migrate_cancel, query-migrate, migrate-set-parameters,
 * query-migrate-parameters and snapshot-save, and the MIGRATION event (qmp
 * may be NULL). The outgoing migration streams on its own thread; the main
 * loop stops the VM (finish-migrate) for the last round, then postmigrate. */
int hw_migration_new(struct vm *vm, struct runstate *rs, struct qmp *qmp,
		     struct migration **out);
/* Listen on uri ("tcp:HOST:PORT"), accept one source and load its stream on
 * a thread. done runs on the main loop: ret 0 (the VM is loaded and may be
 * started) or -errno with msg naming the section that failed. */
int hw_migration_incoming(struct migration *m, const char *uri,
			  void (*done)(void *opaque, int ret, const char *msg), void *opaque);
void hw_migration_free(struct migration *m);

/* ---- virtio-net hook (net-compare sits here) ---------------------------------
 *
 * Frames are plain Ethernet frames, no virtio-net header. Callbacks run on
 * the device's I/O thread; they may call hw_vm_net_inject/hw_vm_net_send
 * but not hw_vm_net_set_hook.
 */
struct net_hook_ops {
	/* A frame the guest sent. true: the hook took it (the backend never
	 * sees it); false: it goes on to the backend (tap). */
	bool (*guest_tx)(void *opaque, const uint8_t *frame, size_t len);
	/* A frame the backend received, on its way to the guest. true: the
	 * hook took it; false: the guest gets it. NULL: always the guest. */
	bool (*wire_rx)(void *opaque, const uint8_t *frame, size_t len);
};

struct hw_net_stats {
	uint64_t tx_frames, tx_bytes; /* guest frames handed to the hook or backend */
	uint64_t tx_dropped;	      /* bad header, too big, backend refused */
	uint64_t rx_frames, rx_bytes; /* frames written into guest RX buffers */
	uint64_t rx_dropped;	      /* inject queue full, frame bigger than the buffer */
	uint64_t rx_queued;	      /* injected frames waiting for guest RX buffers */
};

/* Number of virtio-net devices (index 0.. in --net order). */
unsigned int hw_vm_net_count(const struct vm *vm);
/* Install (ops != NULL) or remove the hook of net device idx. */
int hw_vm_net_set_hook(struct vm *vm, unsigned int idx, const struct net_hook_ops *ops,
		       void *opaque);
/* Queue a frame for the guest's RX (any thread; copied). Frames wait while
 * the guest has no RX buffers; -ENOBUFS (and rx_dropped) when 1024 wait. */
int hw_vm_net_inject(struct vm *vm, unsigned int idx, const void *frame, size_t len);
/* Send a frame out of the backend (the wire), bypassing the hook. */
int hw_vm_net_send(struct vm *vm, unsigned int idx, const void *frame, size_t len);
int hw_vm_net_stats(struct vm *vm, unsigned int idx, struct hw_net_stats *out);

#endif
