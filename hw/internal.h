/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * hw private header: shared between the files of the hw module only.
 *
 * Guest physical layout (x86-64, like microvm):
 *
 *   0x0000_0000  RAM (low)      up to MIN(mem, 3 GiB)
 *       0x0500    boot GDT (bzImage 64-bit entry)
 *       0x6000    hvm_start_info + memmap + modlist (PVH)
 *       0x7000    boot_params "zero page" (bzImage)
 *       0x9000    identity page tables for the bzImage 64-bit entry
 *       0x20000   kernel command line (up to 64 KiB)
 *       0x9fc00   EBDA / 0xa0000-0xfffff legacy hole (reserved in the map)
 *       0xe0000   ACPI tables, RSDP first (acpi.c)
 *       0xffff0   reset vector: i8042 reset (boot.c)
 *       0x100000  kernel (PVH: ELF p_paddr; bzImage: pref_address)
 *       top       initrd, page aligned, below initrd_addr_max
 *   0xc000_0000  MMIO hole: virtio-mmio devices from 0xd000_0000,
 *                IOAPIC 0xfec0_0000, LAPIC 0xfee0_0000
 *   0x1_0000_0000 RAM (high), the rest of mem
 */
#ifndef COLOVM_HW_INTERNAL_H
#define COLOVM_HW_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>

#include "hw/hw.h"

#define PAGE_SIZE	 4096ull
#define PAGE_SHIFT	 12
#define MiB		 (1ull << 20)
#define GiB		 (1ull << 30)

#define LOW_RAM_MAX	 (3 * GiB)
#define HIGH_RAM_BASE	 (4 * GiB)
#define MMIO_HOLE_BASE	 LOW_RAM_MAX
#define VIRTIO_MMIO_BASE 0xd0000000ull
#define IOAPIC_BASE	 0xfec00000ull
#define LAPIC_BASE	 0xfee00000ull

#define BOOT_GDT_ADDR	  0x500ull
#define PVH_INFO_ADDR	  0x6000ull
#define ZERO_PAGE_ADDR	  0x7000ull
#define BOOT_PML4_ADDR	  0x9000ull
#define BOOT_PDPT_ADDR	  0xa000ull
#define BOOT_PD_ADDR	  0xb000ull /* four PDs: identity map of 4 GiB */
#define CMDLINE_ADDR	  0x20000ull
#define CMDLINE_MAX	  0x10000ull
#define EBDA_START	  0x9fc00ull
#define ACPI_BASE	  0xe0000ull
#define ACPI_SIZE	  0x10000ull
#define ACPI_RSDP_ADDR	  ACPI_BASE
#define RESET_VECTOR_ADDR 0xffff0ull
#define HIMEM_START	  0x100000ull

/* ---- guest memory --------------------------------------------------------- */

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t offset; /* into the memfd and into ram_host */
	uint32_t slot;
};

struct guest_mem {
	int memfd;
	uint8_t *host; /* whole RAM, mapped once: region i at host + offset */
	uint64_t size;
	struct mem_region regions[2];
	unsigned int nregions;
	/* Pages the VMM itself wrote (device DMA), one bit per page of
	 * host-offset space; KVM's dirty log does not see these. */
	_Atomic uint64_t *vmm_dirty;
	/* Every page is allocated and mapped (--mem-prealloc): keep it so,
	 * never punch pages out of the memfd. */
	bool prealloc;
};

int mem_init(struct guest_mem *mem, uint64_t size);
uint64_t mem_host_available(void); /* MemAvailable in bytes, 0: unknown */
/* Allocate and map all of RAM now (threads); -errno (e.g. -ENOMEM). */
int mem_prealloc(struct guest_mem *mem);
void mem_free(struct guest_mem *mem);
/* Host pointer for [gpa, gpa+len) if wholly inside one RAM region, else NULL. */
void *mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Record a VMM write into guest RAM (for checkpoints). */
void mem_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len);
/* Copy into guest RAM with bounds check and dirty tracking. */
int mem_write(struct guest_mem *mem, uint64_t gpa, const void *src, uint64_t len);
/* Whether the VMM wrote the page holding gpa since the last harvest. */
bool mem_test_dirty(const struct guest_mem *mem, uint64_t gpa);
/* Move the VMM dirty bitmap (one bit per page of RAM, in host-offset order:
 * low region then high region; (size/4096 + 63)/64 words) into out and
 * clear it. Returns the number of dirty pages. */
uint64_t mem_harvest_vmm_dirty(struct guest_mem *mem, uint64_t *out);

/* ---- I/O dispatch --------------------------------------------------------- */

/* A device handler for port I/O or MMIO. `data` is len bytes (1, 2, 4, 8). */
typedef void (*io_handler)(void *opaque, uint64_t addr, uint8_t *data, uint32_t len,
			   bool is_write);

struct io_range {
	uint64_t base;
	uint64_t len;
	io_handler fn;
	void *opaque;
};

#define IO_MAX_RANGES 32

struct io_bus {
	struct io_range r[IO_MAX_RANGES];
	unsigned int n;
};

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler fn,
		    void *opaque);
/* Returns false if nothing is mapped at addr (reads then see all ones). */
bool io_bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		     bool is_write);

/* ---- the VM ----------------------------------------------------------------- */

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	bool parked;
	bool halted; /* last look: halted with interrupts off */
	/* The last exit was handled here (MMIO, port I/O, ...): KVM finishes
	 * the instruction (register written, RIP advanced) only in the next
	 * KVM_RUN. Owned by the vCPU thread. */
	bool exit_pending;
	struct kvm_lapic_state lapic_power_on;
};

struct boot_info {
	uint64_t entry;
	bool pvh;	     /* 32-bit PVH entry, else 64-bit Linux entry */
	uint64_t zero_page;  /* bzImage: boot_params address (rsi) */
};

struct uart;
struct i8042;

/* Power-on state of the in-kernel devices, written back by hw_vm_reset(). */
struct power_on {
	struct kvm_irqchip chips[3];
	struct kvm_pit_state2 pit;
};
struct virtio_net;
struct virtio_blk;

#define VM_MAX_VIRTIO 10 /* IRQ pins 5, 6, 7, 9..15 */

struct vm {
	int kvm_fd;
	int vm_fd;
	struct guest_mem mem;
	struct vcpu *vcpus;
	unsigned int ncpus;
	unsigned int ncpus_planned;
	struct io_bus pio;
	struct io_bus mmio;
	struct boot_info boot;
	struct vm_config cfg; /* what the VM was built from (strings not owned) */
	char *boot_cmdline;   /* cfg's command line + virtio_mmio.device= entries */
	struct power_on power_on;
	struct loop *loop;
	vm_event_cb event_cb;
	void *event_opaque;

	/* pause/resume: protected by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool pause_req;
	bool quit;
	bool running;
	unsigned int nparked;
	_Atomic bool event_sent;

	int halt_timer_fd;
	struct uart *uart;
	struct i8042 *kbd;
	/* virtio-mmio devices: nets first, then disks, at VIRTIO_MMIO_BASE + n * 0x1000 */
	struct virtio_net *net[VM_MAX_VIRTIO];
	unsigned int nnet;
	struct virtio_blk *blk[VM_MAX_VIRTIO];
	unsigned int nblk;

	/* Device state (persist.c) and dirty logging (dirty.c). */
	struct vmstate_registry *vmstate;
	struct persist *persist;
	struct virtio_persist *virtio_persist;
	uint64_t *kvm_dirty; /* scratch for KVM_GET_DIRTY_LOG, one region at a time */
	bool dirty_logging;
	/* start and stop (and a stop left for later: dirty_stop_later) */
	pthread_mutex_t dirty_lock;
	bool dirty_stop_later;

	/* The RAM anchor (anchor.c): 0 when there is none. */
	pid_t anchor_pid;
	int anchor_pipe; /* its write end */
	void *anchor_stack;
	void *anchor_arg;
};

/* Start the process that keeps guest RAM and the VM alive past a killed VMM's
 * threads (anchor.c); an optimisation: failures are logged, never fatal. */
void anchor_start(struct vm *vm);
/* Kill and reap it (before the VM's fds close). */
void anchor_stop(struct vm *vm);

/* Report a guest life-cycle event once (later ones are dropped). */
void vm_report(struct vm *vm, enum vm_event ev, int code);
/* Assert or deassert an ISA interrupt line of the in-kernel PIC/IOAPIC. */
int vm_irq_line(struct vm *vm, unsigned int irq, bool level);

/* ---- vCPU ------------------------------------------------------------------- */

int vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned int id);
int vcpu_setup_boot(struct vcpu *vcpu, const struct boot_info *boot);
int vcpu_setup_msrs(struct vcpu *vcpu);
/* KVM_GET_MSRS or KVM_SET_MSRS on n entries: the count KVM processed, or -errno. */
int vcpu_msrs_io(struct vcpu *vcpu, unsigned long req, struct kvm_msr_entry *e, unsigned int n);
void vcpu_free(struct vcpu *vcpu);
void *vcpu_thread(void *arg);

/* ---- boot loaders --------------------------------------------------------- */

struct boot_e820 {
	uint64_t addr, size;
	uint32_t type; /* 1 RAM, 2 reserved */
};

/* The guest's memory map (what the loaders tell the kernel). */
int boot_memmap(const struct vm *vm, struct boot_e820 *map, int max);
/* Load kernel (+initrd, cmdline) into guest RAM; fills vm->boot. */
int boot_load(struct vm *vm, const struct vm_config *cfg);
int boot_load_pvh(struct vm *vm, const uint8_t *img, size_t len, const struct vm_config *cfg,
		  const uint8_t *initrd, size_t initrd_len);
int boot_load_bzimage(struct vm *vm, const uint8_t *img, size_t len,
		      const struct vm_config *cfg, const uint8_t *initrd, size_t initrd_len);
bool boot_is_pvh_elf(const uint8_t *img, size_t len);
bool boot_is_bzimage(const uint8_t *img, size_t len);

/* ---- AML encoder (aml.c) -------------------------------------------------- */

#define AML_MAX_DEPTH 8

/* Bytes into buf; a write past cap sets overflow and is dropped. */
struct aml {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
	unsigned int depth;
	size_t open[AML_MAX_DEPTH]; /* where each open Scope/Device's PkgLength is */
};

/* Extended Interrupt descriptor flags. */
#define AML_IRQ_CONSUMER   (1u << 0)
#define AML_IRQ_EDGE	   (1u << 1)
#define AML_IRQ_ACTIVE_LOW (1u << 2)
#define AML_IRQ_SHARED	   (1u << 3)

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_byte(struct aml *a, uint8_t v);
void aml_bytes(struct aml *a, const void *p, size_t n);
void aml_name(struct aml *a, const char *path); /* "\_SB_.COM1", "VR00" */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
void aml_eisaid(struct aml *a, const char *id); /* "PNP0501" */
void aml_name_decl(struct aml *a, const char *path); /* Name(path, ...): object follows */
void aml_begin_scope(struct aml *a, const char *path);
void aml_begin_device(struct aml *a, const char *path);
void aml_begin_package(struct aml *a, uint8_t n); /* n elements follow */
void aml_begin_method(struct aml *a, const char *path, unsigned int nargs, bool serialized);
void aml_begin_if(struct aml *a); /* predicate, then body follow */
void aml_end(struct aml *a); /* closes the innermost Scope/Device/Package/Method/If */
void aml_lequal(struct aml *a); /* LEqual(x, y): x and y follow */
void aml_notify(struct aml *a); /* Notify(object, value): both follow */
void aml_arg(struct aml *a, unsigned int n); /* Arg0..Arg6 */
void aml_buffer(struct aml *a, const uint8_t *p, size_t n);
/* ResourceTemplate items, written into their own struct aml, ended by
 * aml_res_end(), then wrapped with aml_buffer(). */
void aml_res_io(struct aml *a, uint16_t base, uint8_t len);
void aml_res_irq_no_flags(struct aml *a, unsigned int irq);
void aml_res_memory32_fixed(struct aml *a, uint32_t base, uint32_t len);
void aml_res_interrupt(struct aml *a, uint32_t gsi, uint8_t flags);
void aml_res_end(struct aml *a);

/* ---- ACPI tables (acpi.c) ---------------------------------------------------- */

#define ACPI_MAX_CPUS	254
/* The sleep control/status register (acpi-sleep.c) and \_S5's sleep type. */
#define ACPI_SLEEP_PORT 0x3c0
#define ACPI_S5_TYPE	5
#define ACPI_MAX_VIRTIO 16
/*
 * The Generic Event Device's interrupt (the power button): GSI 16, the
 * first IOAPIC pin with no ISA IRQ behind it, so neither the UART (4), the
 * virtio-mmio devices (5, 6, 7, 9..15) nor the PIT (0) ever share it and no
 * 8259 sees it. Edge-triggered, active high.
 */
#define ACPI_GED_GSI		   16
#define ACPI_NOTIFY_BUTTON_PRESSED 0x80

struct acpi_virtio {
	uint64_t base;
	uint32_t size;
	uint32_t gsi;
};

/* What the tables describe. APIC ids are 0..ncpus-1. */
struct acpi_machine {
	unsigned int ncpus;
	unsigned int nvirtio;
	struct acpi_virtio virtio[ACPI_MAX_VIRTIO];
};

/* Write RSDP (at buf[0]), XSDT, DSDT, FADT and MADT into buf, which the
 * guest will see at gpa (16-byte aligned). Returns the bytes used,
 * -ENOSPC if they do not fit, -EINVAL for a machine it cannot describe. */
int acpi_build(const struct acpi_machine *m, uint64_t gpa, uint8_t *buf, size_t size);
uint8_t acpi_checksum(const uint8_t *p, size_t n); /* the byte that makes the sum 0 */
/* Build the tables for vm and write them at ACPI_BASE (RSDP there). */
int acpi_load(struct vm *vm);
/* The sleep register: S5 powers the machine off (VM_EVENT_HALT). */
int acpi_sleep_create(struct vm *vm);
/* The power button (acpi-ged.c): press it, one edge on ACPI_GED_GSI.
 * (Whether the guest listens: hw_vm_power_button_listened(), hw.h.) */
int acpi_ged_press(struct vm *vm);

/* ---- legacy devices ------------------------------------------------------- */

/* "stdio", "file:PATH" or "none" (checked before anything is opened). */
bool uart_spec_valid(const char *spec);
int uart_create(struct vm *vm, const char *spec, struct uart **out);
void uart_free(struct uart *uart);
void uart_reset(struct uart *uart);
int i8042_create(struct vm *vm, struct i8042 **out);
void i8042_free(struct i8042 *kbd);
void i8042_reset(struct i8042 *kbd);

/* ---- reset ------------------------------------------------------------------ */

int power_on_capture(struct vm *vm);
int debugexit_create(struct vm *vm);

/* ---- device state (persist.c, uart.c, i8042.c) ----------------------------- */

struct vmstate_registry;
struct vmstate_error;

/* Build vm->vmstate: machine, kvmclock, irqchip, PIT, every vCPU, UART, i8042. */
int persist_register(struct vm *vm);
/* The VM runs again: the TSC and kvmclock frozen by a save or load thaw. */
void persist_thaw(struct vm *vm);
void persist_free(struct vm *vm);
int uart_persist_register(struct uart *u, struct vmstate_registry *reg,
			  struct vmstate_error *err);
int i8042_persist_register(struct i8042 *k, struct vmstate_registry *reg,
			   struct vmstate_error *err);

/* ---- virtio devices (virtio-devices.c) --------------------------------------- */

/* Create cfg's --net/--disk devices; *cmdline is the kernel command line
 * with their virtio_mmio.device= entries appended (malloc'd; free it). */
int virtio_devices_create(struct vm *vm, const struct vm_config *cfg, char **cmdline);
void virtio_devices_free(struct vm *vm);
/* Quiesce device I/O threads while the vCPUs are parked (checkpoints). */
void virtio_devices_reset(struct vm *vm);
void virtio_devices_pause(struct vm *vm);
void virtio_devices_resume(struct vm *vm);

/* ---- virtio device state (virtio-persist.c) ---------------------------------- */

/* Register "virtio-net" i and "virtio-blk" i (instance = device index). */
int virtio_persist_register(struct vm *vm, struct vmstate_error *err);
void virtio_persist_free(struct vm *vm);
/* A load failed: if a virtio check (or the machine's device counts)
 * refused it, put that reason in err; if it failed on the section of a
 * virtio device this VM lacks, say so ("stream has virtio-blk 1, this VM
 * has only 1"). */
void virtio_persist_explain(struct vm *vm, struct vmstate_error *err);
/* Whether the stream's device counts match this VM (machine post_load). */
int virtio_persist_check_counts(struct vm *vm, uint32_t nnet, uint32_t nblk);
/* hw_vm_flush_disks() and hw_vm_announce() (hw.h) live in virtio-persist.c. */

#endif
