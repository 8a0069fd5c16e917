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
	const char *kernel;  /* PVH ELF or bzImage (required) */
	const char *initrd;  /* optional */
	const char *cmdline; /* optional kernel command line */
	uint64_t mem_mib;    /* guest RAM in MiB */
	unsigned int cpus;   /* vCPUs */
	const char *serial;  /* "stdio", "file:PATH" or "none" */
	/* virtio-net devices: "tap=IFNAME[,mac=52:54:00:xx:xx:xx]" or
	 * "hook[,mac=...]" (frames only through hw_vm_net_set_hook/inject) */
	const char *const *net;
	unsigned int nnet;
	/* virtio-blk devices: "PATH[,readonly][,direct][,replicate]" (raw image) */
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
	VM_EVENT_DEBUG_EXIT,	 /* write to isa-debug-exit port 0xf4; code = value */
	VM_EVENT_RESET,		 /* i8042 reset pulse, triple fault, port 0xcf9 */
	VM_EVENT_HALT,		 /* every vCPU halted with interrupts disabled */
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
/* Where a vCPU is (the x-query-registers command: a guest that hangs). */
struct hw_vcpu_regs {
	uint64_t rip, rsp, rflags, cr0, cr3, cr4, efer;
	uint16_t cs;
};
/* Every vCPU's registers into out[0..n) (n: hw_vm_ncpus). A running VM is
 * paused for the reading (its vCPUs kicked out of KVM_RUN, devices still)
 * and resumed. Main loop. */
unsigned int hw_vm_ncpus(const struct vm *vm);
int hw_vm_vcpu_regs(struct vm *vm, struct hw_vcpu_regs *out, unsigned int n);
/* Machine reset: back to power-on device state, the kernel loaded again and
 * the boot vCPU at its entry point. Call from the main loop; the VM runs
 * again afterwards if it was running. The config given to hw_vm_create()
 * (and its strings) must still be valid. */
int hw_vm_reset(struct vm *vm);
/* Stop and join vCPU threads, close KVM fds, unmap RAM. */
void hw_vm_destroy(struct vm *vm);

/* ---- the run state (lifecycle.c) ---------------------------------------------
 *
 * What every role does with the VM under common/runstate, in one place:
 * stopping the run state parks the vCPUs (and starting it runs them), its
 * reset notifier resets the machine, its powerdown notifier presses the
 * power button, and guest events become shutdown or reset requests
 * (applied by the main loop: hw only asks, it never moves the run state
 * itself). Attach before the VM first runs; it takes the VM's event
 * callback.
 */
struct runstate;
struct hw_runstate;

/* reboot: a guest reset reboots (else it ends the run, like -no-reboot). */
int hw_runstate_attach(struct vm *vm, struct runstate *rs, bool reboot, struct hw_runstate **out);
/* The guest event that ended the run (enum vm_event, *code its code), or
 * -1: none, or a reset that rebooted. Takes it (the next call gives -1). */
int hw_runstate_take_event(struct hw_runstate *h, int *code);
void hw_runstate_detach(struct hw_runstate *h);
/*
 * The ACPI power button: a RUNSTATE_NOTIFY_POWERDOWN (QMP system_powerdown,
 * runstate_request_powerdown()) presses it. Whether pressing it can do
 * anything: true once the guest has unmasked the button's interrupt (a
 * Linux guest does at boot); a guest that never did would not notice.
 */
bool hw_vm_power_button_listened(struct vm *vm);

/* ---- migratable: what the roles (primary/, secondary/) need -----------------
 *
 * Like cloud-hypervisor's Migratable: start/stop the dirty log, take it,
 * give back what was not sent, save and restore device state. The roles
 * own the loops, the channel and the run state; hw owns RAM and devices.
 *
 * RAM geometry: guest RAM is one host mapping of hw_vm_ram_pages() pages
 * of HW_PAGE_SIZE bytes in "host-offset" order (the low RAM region, then
 * the high one): page p is at hw_vm_ram() + p * HW_PAGE_SIZE, whatever its
 * guest-physical address. Dirty bitmaps have one bit per such page, bit p
 * in word p / 64, HW_BITMAP_WORDS(pages) words.
 */
#define HW_PAGE_SIZE	       4096u
#define HW_BITMAP_WORDS(pages) (((pages) + 63) / 64)

struct vmstate_error;
struct vmstate_sink;

/* Guest RAM, for checkpointing and tests. */
uint8_t *hw_vm_ram(struct vm *vm, uint64_t *size);
uint64_t hw_vm_ram_pages(const struct vm *vm);
/* Pages [first, first + n) were never written (they read as zero and are
 * not allocated): a sender may skip them without reading them. */
bool hw_vm_ram_unbacked(struct vm *vm, uint64_t first, uint64_t n);
/* Make all of guest RAM read as zero again, as a VM's that never ran (the
 * VM paused, dirty logging off; the pages stay mapped, zeroed in place): a
 * copy that was a primary and becomes the standby of its guest's new
 * primary receives a first sync into it. */
int hw_vm_ram_discard(struct vm *vm);
/* Allocate pages [first, first + n) now, in one call, before a receiver
 * fills them (best effort; nothing to do with --mem-prealloc). */
void hw_vm_ram_populate(struct vm *vm, uint64_t first, uint64_t n);
/* A digest of all of guest RAM (tests: are two copies equal?): the XXH3-64
 * of the pages' XXH3-64s, each page's in hashes[hw_vm_ram_pages(vm)] when
 * not NULL (where two copies differ). Reads every backed page: seconds for
 * GiBs, never on a production path. hw_ram_hashes_write puts the pages'
 * hashes in a text file: a line "checkpoint ID pages N", then "PAGE HASH"
 * per page (both hex). */
uint64_t hw_vm_ram_digest_pages(struct vm *vm, uint64_t *hashes);
int hw_ram_hashes_write(const char *path, uint64_t id, const uint64_t *hashes, uint64_t n);
/* The pages' hashes of the last HW_RAM_HASH_KEEP digests, by checkpoint
 * (where a mismatch names its pages, however far the pair went on since).
 * put takes the array (malloc'd; NULL: none to keep) and frees the one it
 * displaces; write puts checkpoint id's (0: the latest) in a file as
 * hw_ram_hashes_write does, *got its id: -ENODATA when none is kept,
 * -ENOENT not that one. The caller serialises them. */
#define HW_RAM_HASH_KEEP 8
struct hw_ram_hash_ring {
	struct {
		uint64_t id, *hashes;
	} e[HW_RAM_HASH_KEEP];
	uint64_t n;
};
void hw_ram_hash_ring_put(struct hw_ram_hash_ring *r, uint64_t id, uint64_t *hashes);
int hw_ram_hash_ring_write(const struct hw_ram_hash_ring *r, uint64_t id, const char *path,
			   uint64_t pages, uint64_t *got);
void hw_ram_hash_ring_free(struct hw_ram_hash_ring *r);
/* What a COLO pair must agree on, as "mem=256M cpus=1 net=1 disk=0
 * kernel=<xxh3 of the file> initrd=<xxh3, or 0>", then per disk
 * " diskN=BYTES[,ro|,replicate]" (backends, the command line and paths may
 * differ). -ENOSPC if len is too small. */
int hw_vm_describe(const struct vm *vm, char *buf, size_t len);

/* Dirty log (dirty.c): KVM's log of every RAM slot merged with the VMM's
 * own writes into guest RAM (device DMA). Start clears both: the caller
 * sends all of RAM next. Sync ORs the pages dirtied since the last sync
 * into bitmap and clears both sources: the caller owns those bits now and
 * must put back the pages it fails to send. Any thread; one caller. */
int hw_dirty_log_start(struct vm *vm);
void hw_dirty_log_stop(struct vm *vm);
/* A stop off the critical path (a takeover: the guest serves first):
 * stop_later marks it due, stop_now does it if still due, and the next
 * start does it first if nobody has -- so a start that comes between is
 * never undone. */
void hw_dirty_log_stop_later(struct vm *vm);
void hw_dirty_log_stop_now(struct vm *vm);
int hw_dirty_log_sync(struct vm *vm, uint64_t *bitmap);
void hw_dirty_log_putback(struct vm *vm, uint64_t first, uint64_t n);

/* Device state (snapshot.c). The VM must be paused. Save writes one
 * common/vmstate stream (header, every device's FULL record, EOF; no RAM)
 * into sink. Load reads such a stream from buf, checks all of it, then
 * applies it (two phases: a bad stream changes nothing); err names the
 * section that failed, e.g. "stream has virtio-net 0, this VM has none". */
int hw_vm_save_devices(struct vm *vm, struct vmstate_sink *sink, struct vmstate_error *err);
int hw_vm_load_devices(struct vm *vm, const void *buf, size_t len, struct vmstate_error *err);
/* The same two phases apart (a COLO secondary checks a checkpoint's state,
 * acknowledges, then applies): stage reads and validates all of buf (which
 * must outlive the handle) and changes nothing, the VM may run; apply (VM
 * paused) applies it and frees the handle, drop frees it unapplied. */
struct hw_devload;
int hw_vm_devices_stage(struct vm *vm, const void *buf, size_t len, struct hw_devload **out,
			struct vmstate_error *err);
int hw_vm_devices_apply(struct hw_devload *d, struct vmstate_error *err);
void hw_vm_devices_drop(struct hw_devload *d);
/* fdatasync every disk image (shared storage: before the final state). */
int hw_vm_flush_disks(struct vm *vm);
/* Broadcast a RARP from each virtio-net MAC through its backend (the VM
 * now runs on this host: switches learn the port at once). */
void hw_vm_announce(struct vm *vm);

/* ---- replicated disks (COLO; --disk PATH,replicate) ------------------------
 *
 * What the roles need to keep a disk the same on both sides, checkpoint by
 * checkpoint. Disks are numbered in --disk order; calls on a disk without
 * `replicate` do nothing (tap, overlay) or work on its image all the same
 * (read, write, digest). Mode switches wait for the device's current pass:
 * when they return, no request is half-way through the old mode.
 *
 *   primary    a tap sees every write of the guest that reached the image,
 *              on the device's I/O thread, before the guest is told: it
 *              must not block for long, and must copy what it keeps.
 *   secondary  an overlay takes its own guest's writes (a sparse unlinked
 *              file beside the image; its reads see them); the image gets
 *              only what the roles write into it (the primary's writes,
 *              applied at a checkpoint). A checkpoint drops the overlay, a
 *              failover merges it into the image and ends it.
 */
#include <sys/uio.h>
typedef void (*hw_disk_tap)(void *opaque, unsigned int disk, uint64_t off, const struct iovec *iov,
			    unsigned int cnt, uint64_t len);
struct hw_disk_info {
	uint64_t bytes;
	bool replicate;
	bool readonly;
};
int hw_vm_disk_info(struct vm *vm, unsigned int idx, struct hw_disk_info *out);
/* Install (tap != NULL) or remove the tap of every replicated disk. */
void hw_vm_disk_set_tap(struct vm *vm, hw_disk_tap tap, void *opaque);
/* The image itself (the host's view; not through the overlay). -ERANGE
 * outside the disk. */
int hw_vm_disk_read(struct vm *vm, unsigned int idx, void *buf, size_t len, uint64_t off);
int hw_vm_disk_write(struct vm *vm, unsigned int idx, const void *buf, size_t len, uint64_t off);
/* Start (empty), drop (empty it again; VM paused) or merge (into the image,
 * flushed; then it ends) the overlay of every replicated disk. Merge: the
 * sectors it copied in *sectors (may be NULL). */
int hw_vm_disk_overlay_start(struct vm *vm);
int hw_vm_disk_overlay_drop(struct vm *vm);
int hw_vm_disk_overlay_merge(struct vm *vm, uint64_t *sectors);
/* Sectors the overlays hold now. */
uint64_t hw_vm_disk_overlay_sectors(struct vm *vm);
/* XXH3-64 over the images of the replicated disks, in order (tests: are two
 * copies equal? reads every byte). 0 with *err set on a read error. */
uint64_t hw_vm_disk_digest(struct vm *vm, int *err);

/* Snapshot files (snapshot.c): the whole VM (RAM + devices) as one
 * common/vmstate stream. Save: the VM must be paused. Load: into a VM
 * created with cfg->restore that has not run; its RAM is the staging area,
 * so on failure the VM must not be started (RAM is half-written). */
int hw_vm_save(struct vm *vm, int fd, struct vmstate_error *err);
int hw_vm_load(struct vm *vm, int fd, struct vmstate_error *err);

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
	/* After the guest_tx calls of one pass over the TX queue that took a
	 * frame (a batch). NULL: none. */
	void (*guest_tx_done)(void *opaque);
	/* A frame the backend received, on its way to the guest. true: the
	 * hook took it; false: the guest gets it. NULL: always the guest. */
	bool (*wire_rx)(void *opaque, const uint8_t *frame, size_t len);
	/* After the wire_rx calls of one read of the backend that took a
	 * frame (a batch: what they queued can go now). NULL: none. */
	void (*wire_rx_done)(void *opaque);
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
/* Number of virtio-blk devices (--disk). */
unsigned int hw_vm_disk_count(const struct vm *vm);
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
