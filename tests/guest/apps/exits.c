/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=exits [n=N] [port=P]: N "outb" to an I/O port no device claims, timed
 * with the TSC: the round-trip cost of a VM exit to the VMM and back.
 *
 * Default port 0x80, the POST/"I/O delay" port: Linux itself writes to it,
 * so every VMM must tolerate it, and neither QEMU microvm nor colovm puts a
 * device there (0x510 would be QEMU's fw_cfg).
 */
#include "../guest.h"

#define MAX_N 10000000000ULL /* keeps n * 10^9 within 64 bits */

int app_exits(void)
{
	uint64_t n, port, t0, ns;

	if (cmdline_u64("n", 1000, MAX_N, &n) || cmdline_u64("port", 0x80, 0xffff, &port))
		return EXIT_USAGE;
	if (port == 0xf4 || port == 0x64) {
		printf("testguest: bad value port=0x%lx: that port ends the run\n", port);
		return EXIT_USAGE;
	}
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		outb((uint16_t)port, 0);
	ns = tsc_to_ns(rdtsc() - t0);
	printf("exits: n=%lu ns=%lu per_exit_ns=%lu rate=%lu\n", n, ns, n ? ns / n : 0,
	       ns ? n * 1000000000 / ns : 0);
	return EXIT_OK;
}
