/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=panic [kind=pf|gp|ud|de]: fault on purpose at CPL 3, so that the CPL 0
 * handler reports it and ends the run with EXIT_PANIC (VMM status 7).
 *   pf  write to 4 GiB, the first address boot.S does not map (default)
 *   gp  write through a non-canonical address
 *   ud  ud2
 *   de  divide by zero
 */
#include "../guest.h"

int app_panic(void)
{
	const char *kind = cmdline_get("kind");

	if (!kind)
		kind = "pf";
	printf("testguest: panic: faulting on purpose (kind=%s)\n", kind);
	if (!strcmp(kind, "pf"))
		*(volatile uint64_t *)(4ULL << 30) = 1;
	else if (!strcmp(kind, "gp"))
		*(volatile uint64_t *)0x8000000000000000ULL = 1;
	else if (!strcmp(kind, "ud"))
		__asm__ volatile("ud2");
	else if (!strcmp(kind, "de"))
		__asm__ volatile("divl %0" : : "r"(0), "a"(1), "d"(0)); /* C's 1/0 is UB */
	else {
		printf("testguest: bad value kind=%s: expected pf, gp, ud or de\n", kind);
		return EXIT_USAGE;
	}
	printf("testguest: panic: kind=%s did not fault\n", kind);
	return EXIT_PANIC + 1;
}
