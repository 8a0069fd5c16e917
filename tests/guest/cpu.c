/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * CPU tables that are not static in boot.S (IDT gates and the TSS descriptor
 * hold split addresses an assembler cannot fold), and the exception report.
 *
 * Everything in this file runs at CPL 0, i.e. emulated on PVM: keep it short.
 */
#include "guest.h"

#define KERNEL_CS      0x08
#define TSS_SEL	       0x28
#define GATE_INTERRUPT 0x8e /* present, DPL 0, 64-bit interrupt gate */
#define VEC_IRQ0       32   /* the PIC's lines: 32..47 */
#define PIC1	       0x20
#define PIC2	       0xa0
#define IST_CRITICAL   1    /* #DF, NMI, #MC run on their own stack */

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t reserved;
} __attribute__((packed));

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	/* All ports allowed, plus the terminating 0xff byte the CPU reads past
	 * the end. IOPL 3 already allows CPL 3 port I/O on hardware; PVM forces
	 * the user-mode IOPL to 0 and emulates the resulting #GP, consulting this
	 * bitmap instead. */
	uint8_t iomap[65536 / 8 + 1];
} __attribute__((packed));

/* The stack exc.S builds before calling exc_report(). */
struct exc_frame {
	uint64_t vector;
	uint64_t error;
	uint64_t rip, cs, rflags, rsp, ss;
};

extern const uint64_t exc_stubs[32];
extern char irq_stub[];
extern uint64_t gdt_tss[2];
extern char kstack_top[], ist_stack_top[];

static struct idt_gate idt[VEC_IRQ0 + 16] __attribute__((aligned(16)));
static struct tss tss __attribute__((aligned(16)));

static struct idt_gate gate(uint64_t a, uint8_t ist, uint8_t type)
{
	return (struct idt_gate){
	    .off_lo = a & 0xffff,
	    .sel = KERNEL_CS,
	    .ist = ist,
	    .type = type,
	    .off_mid = (a >> 16) & 0xffff,
	    .off_hi = a >> 32,
	};
}

/* Both 8259s remapped to vectors 32..47, every line masked (irq.c unmasks
 * what it waits for). Interrupts are taken only inside an idle halt
 * (exc.S, #GP). */
static void pic_setup(void)
{
	outb(PIC1, 0x11); /* ICW1: edge, cascade, ICW4 follows */
	outb(PIC2, 0x11);
	outb(PIC1 + 1, VEC_IRQ0); /* ICW2: vector base */
	outb(PIC2 + 1, VEC_IRQ0 + 8);
	outb(PIC1 + 1, 0x04); /* ICW3: slave on line 2 */
	outb(PIC2 + 1, 0x02);
	outb(PIC1 + 1, 0x03); /* ICW4: 8086 mode, automatic EOI */
	outb(PIC2 + 1, 0x03);
	outb(PIC1 + 1, 0xff);
	outb(PIC2 + 1, 0xff);
}

void cpu_setup(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
	uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;

	for (unsigned int v = 0; v < 32; v++)
		idt[v] = gate(exc_stubs[v], (v == 2 || v == 8 || v == 18) ? IST_CRITICAL : 0,
			      GATE_INTERRUPT);
	for (unsigned int i = 0; i < 16; i++)
		idt[VEC_IRQ0 + i] = gate((uint64_t)irq_stub, 0, GATE_INTERRUPT);
	pic_setup();
	tss.rsp[0] = (uint64_t)kstack_top;
	tss.ist[IST_CRITICAL - 1] = (uint64_t)ist_stack_top;
	tss.iomap_base = offsetof(struct tss, iomap);
	tss.iomap[sizeof(tss.iomap) - 1] = 0xff;
	/* 64-bit available TSS (type 9), present. */
	gdt_tss[0] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
		     ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	gdt_tss[1] = base >> 32;

	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ltr %w0" : : "r"(TSS_SEL));
}

static const char *const exc_names[32] = {
    "#DE divide error",
    "#DB debug",
    "NMI",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack fault",
    "#GP general protection",
    "#PF page fault",
    "vector 15",
    "#MF x87 error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD error",
    "#VE virtualization",
    "#CP control protection",
    "vector 22",
    "vector 23",
    "vector 24",
    "vector 25",
    "vector 26",
    "vector 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security",
    "vector 31",
};

volatile int halt_requested;

void exc_report(const struct exc_frame *f);
void exc_report(const struct exc_frame *f)
{
	char cr2[32] = "";

	/* app=halt: the app's `hlt` faulted at CPL 3; halt here with
	 * interrupts off (the gate cleared IF), so the CPU never wakes. */
	if (f->vector == 13 && halt_requested && *(const volatile uint8_t *)f->rip == 0xf4) {
		for (;;)
			__asm__ volatile("cli; hlt");
	}

	if (f->vector == 14) {
		uint64_t v;
		__asm__ volatile("mov %%cr2, %0" : "=r"(v));
		snprintf(cr2, sizeof(cr2), " cr2=0x%lx", v);
	}
	printf("testguest: panic: %s at rip=0x%lx (error=0x%lx)%s cpl=%lu rsp=0x%lx rflags=0x%lx\n",
	       exc_names[f->vector & 31], f->rip, f->error, cr2, f->cs & 3, f->rsp, f->rflags);
	/* The stack around the faulting rsp (a return into the wrong place
	 * shows what it returned from). */
	if (f->rsp >= 0x100020 && (f->rsp & 7) == 0) {
		const uint64_t *sp = (const uint64_t *)f->rsp;

		printf("testguest: stack at rsp-0x20: %lx %lx %lx %lx | %lx %lx %lx %lx\n", sp[-4],
		       sp[-3], sp[-2], sp[-1], sp[0], sp[1], sp[2], sp[3]);
	}
	printf("testguest: exit %d\n", EXIT_PANIC);
	outb(0xf4, EXIT_PANIC);
	for (;;)
		__asm__ volatile("hlt");
}
