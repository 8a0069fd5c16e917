/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Idling. The test guest polls its devices at CPL 3 with interrupts off;
 * when a pass of its main loop found nothing to do it halts instead of
 * spinning, as a real guest's idle loop does, so an idle vCPU gives its
 * host CPU back (on a host that runs both copies of a COLO pair, or a
 * client beside them, a spinning guest takes a core from them).
 *
 * The wake-ups are interrupts: a device's line (the device is asked for
 * them only around the halt, see vnet_idle()) and the PIT's channel 0 as a
 * periodic tick, so timers still run when nothing arrives. cpu.c remapped
 * the PIC to vectors 32..47 (automatic EOI) and masked every line; exc.S
 * has their stub (it only returns) and the idle halt itself: `hlt` at CPL
 * 3 faults, and the #GP stub halts in its place with interrupts on.
 * Everything here runs at CPL 3 (port I/O is allowed there).
 *
 * Only the PIC's lines are used (no IOAPIC or local APIC programming): on a
 * VMM that wires the NIC to a line the PIC does not see (QEMU microvm puts
 * virtio-mmio on IOAPIC pins 16 and up) the guest polls as before.
 */
#include "guest.h"

#define PIC1_DATA     0x21
#define PIC2_DATA     0xa1
#define PIT_HZ	      1193182u
#define PIT_CH0	      0x40
#define PIT_CMD	      0x43
#define PIT_CH0_MODE2 0x34 /* channel 0, lobyte/hibyte, rate generator */

bool irq_pic_present(void)
{
	uint8_t v;

	/* cpu.c masked every line: an 8259 reads back what was written to
	 * its mask register, a port nobody answers reads 0xff. */
	outb(PIC1_DATA, 0xa5);
	v = inb(PIC1_DATA);
	outb(PIC1_DATA, 0xff);
	return v == 0xa5;
}

void irq_unmask(unsigned int line)
{
	if (line >= 16)
		return;
	if (line >= 8) {
		outb(PIC2_DATA, inb(PIC2_DATA) & ~(1u << (line - 8)));
		line = 2; /* the cascade */
	}
	outb(PIC1_DATA, inb(PIC1_DATA) & ~(1u << line));
}

void irq_tick_start(unsigned int hz)
{
	uint32_t count = PIT_HZ / hz;

	if (count > 0xffff)
		count = 0; /* 65536: the slowest the PIT goes (18.2 Hz) */
	outb(PIT_CMD, PIT_CH0_MODE2);
	outb(PIT_CH0, count & 0xff);
	outb(PIT_CH0, count >> 8 & 0xff);
	irq_unmask(0);
}

void cpu_idle(void)
{
	__asm__ volatile("hlt" : : : "memory"); /* #GP: exc.S halts for us */
}

int idle_option(bool *halt)
{
	const char *idle = cmdline_get("idle");

	if (idle && strcmp(idle, "halt") && strcmp(idle, "poll")) {
		printf("testguest: bad value idle=%s: expected halt or poll\n", idle);
		return EXIT_USAGE;
	}
	*halt = !idle || !strcmp(idle, "halt");
	return 0;
}

bool idle_on_line(const char *who, const char *what, unsigned int line)
{
	if (line >= 16 || !irq_pic_present()) {
		printf("%s: idle=poll: the %s's interrupt (%u) is not a PIC line, or no PIC "
		       "answers\n",
		       who, what, line);
		return false;
	}
	irq_unmask(line);
	return true;
}
