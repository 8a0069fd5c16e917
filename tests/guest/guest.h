/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testguest: shared declarations. See boot.S for the memory layout and the
 * CPL 0 / CPL 3 split: everything declared here runs at CPL 3 (IOPL 3, IF 0)
 * unless it says otherwise.
 */
#ifndef TESTGUEST_GUEST_H
#define TESTGUEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_SIZE     4096UL
#define MIB	      (1024UL * 1024UL)

/* Exit codes passed to guest_exit(); QEMU and colovm exit with (code << 1) | 1. */
#define EXIT_OK	      0
#define EXIT_USAGE    2 /* bad command line */
#define EXIT_PANIC    3 /* CPU exception (reported by the CPL 0 handler) */
#define EXIT_VERIFY   4 /* app=dirty found memory that does not hold what it wrote */
#define EXIT_PLATFORM 5 /* missing boot information or timer */
#define EXIT_DEVICE   6 /* a device is missing, failed or refused a request */

/* Xen PVH boot ABI (xen/include/public/arch-x86/hvm/start_info.h). */
#define HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;	 /* version >= 1 */
	uint32_t memmap_entries; /* version >= 1 */
	uint32_t reserved;
};
struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};
struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* 1 = RAM */
	uint32_t reserved;
};
#define HVM_MEMMAP_RAM 1

/* Port I/O: allowed at CPL 3 because RFLAGS.IOPL = 3. */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
/* splitmix64's finaliser: the one mixing function of app=dirty's pattern and
 * checksum, app=blk's pattern and TCP's initial sequence numbers. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(sub));
}

/* string.c: what gcc may call even in freestanding code. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memchr(const void *s, int c, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* serial.c: 8250/16550 UART at 0x3f8, polled. Safe at CPL 0 too. */
void serial_init(void);
void serial_write(const char *s, size_t n);
int serial_getc(void);

/* print.c: a small printf (%s %c %d %u %x %p, l/ll/z, width, '0'). Safe at CPL 0. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cpu.c: runs at CPL 0, called once from boot.S before dropping to CPL 3. */
void cpu_setup(void);

/* irq.c (CPL 3): PIC lines and the periodic tick that end an idle halt. */
bool irq_pic_present(void);
void irq_unmask(unsigned int line); /* a PIC line: 0..15 */
void irq_tick_start(unsigned int hz);
/* idle=halt|poll (default halt) from the command line into *halt; a bad
 * value: a message and EXIT_USAGE. */
int idle_option(bool *halt);
/* Halting for a device's interrupt (irq.c): true with its PIC line
 * unmasked; false (the device is polled) when it is not a PIC line or no
 * PIC answers, said as "WHO: idle=poll: the WHAT's interrupt ...". */
bool idle_on_line(const char *who, const char *what, unsigned int line);
/* Halt until an unmasked line interrupts (at once if one is pending). */
void cpu_idle(void);

/* timer.c: TSC frequency, calibrated once. */
int timer_init(void);
extern uint64_t tsc_khz;
const char *timer_source(void);
uint64_t tsc_to_ns(uint64_t cycles);
void delay_ns(uint64_t ns);
uint64_t now_us(void); /* microseconds since the TSC started */

/* bootinfo.c: what the loader told us, copied out of hvm_start_info. */
struct ram_range {
	uint64_t start, end; /* [start, end) */
};
int bootinfo_init(const struct hvm_start_info *si);
const char *bootinfo_cmdline(void);
uint64_t bootinfo_ram_mib(void);
/* The largest free RAM range above the image (and modules), below 4 GiB. */
bool bootinfo_free_ram(struct ram_range *out);

#define MAX_VIRTIO_MMIO 8
struct virtio_mmio_dev {
	uint64_t base, size;
	uint32_t irq;
};

/* acpi.c: the FADT reset register and the DSDT's virtio-mmio transports. */
void acpi_init(uint64_t rsdp_paddr);
bool acpi_reset(void); /* false: no reset register */
unsigned int acpi_virtio_mmio(const struct virtio_mmio_dev **devs);

/* mem.c: zeroed, never freed; addresses are physical == virtual. */
void *mem_alloc(size_t size, size_t align);

/* cmdline.c: "key=value key=value ..." */
extern struct virtio_mmio_dev virtio_mmio_devs[MAX_VIRTIO_MMIO];
extern unsigned int nr_virtio_mmio_devs;
int cmdline_parse(const char *cmdline);
/* The value of the last "key=...", or NULL. */
const char *cmdline_get(const char *key);
/* Decimal (or 0x hex) number; def when absent. A bad value prints an error. */
int cmdline_u64(const char *key, uint64_t def, uint64_t max, uint64_t *out);

/* main.c */
void guest_exit(int code) __attribute__((noreturn));

/* apps/ */
struct app {
	const char *name;
	const char *usage;
	int (*run)(void); /* returns an exit code */
};
int app_hello(void);
int app_dirty(void);
int app_panic(void);
int app_exits(void);
int app_udp_echo(void);
int app_tcp_echo(void);
int app_kv(void);
int app_http(void);
int app_blk(void);
int app_console(void);
int app_halt(void);

/* Set by app=halt: the #GP of a CPL 3 `hlt` halts the CPU for good. */
extern volatile int halt_requested;

/* Memory barriers for rings shared with a device (x86: compiler barriers do
 * for loads and stores among themselves; a full fence orders a store before
 * a later load). */
#define barrier() __asm__ volatile("" ::: "memory")
#define mb()	  __asm__ volatile("mfence" ::: "memory")

#endif
