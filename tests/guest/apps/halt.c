/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=halt: halt the CPU for good, with interrupts disabled, as a kernel's
 * halt path does. A VMM that detects this ends the VM (colovm exits 0); QEMU
 * leaves such a VM halted.
 */
#include "../guest.h"

int app_halt(void)
{
	printf("testguest: halting\n");
	halt_requested = 1;
	__asm__ volatile("hlt"); /* privileged at CPL 3: the #GP handler halts */
	return EXIT_PANIC;	 /* not reached */
}
