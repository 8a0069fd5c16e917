/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * guest_main: the first code at CPL 3 (boot.S irets here). Boot order, top
 * to bottom: serial, boot information, timer, command line, then the app.
 *
 * Exit convention (the same on colovm and QEMU):
 *   code != 0  write code to isa-debug-exit (port 0xf4): the VMM exits with
 *              status (code << 1) | 1.
 *   code == 0  reset the VM: colovm treats a guest reset as a clean shutdown
 *              and exits 0, and so does QEMU with -no-reboot. The reset goes
 *              through the ACPI FADT reset register when the platform has one
 *              (QEMU microvm: no i8042, a GED reset register), else through
 *              the i8042 (0xfe to port 0x64; colovm, QEMU pc). If the VM is
 *              still running a second later, write 0 to port 0xf4 (status 1:
 *              the reset did not work).
 * Either way the last line is "testguest: exit <code>"; tests should look
 * for it, since a triple fault also resets the VM.
 */
#include "guest.h"

#define DEBUG_EXIT_PORT 0xf4
#define I8042_CMD	0x64
#define I8042_RESET	0xfe

static const struct app apps[] = {
    {"hello", "", app_hello},
    {"dirty", "mb=N rate=MiB/s [seconds=S]", app_dirty},
    {"panic", "[kind=pf|gp|ud|de]", app_panic},
    {"exits", "[n=N] [port=P]", app_exits},
    {"udp-echo", "[port=7] [ip=A/N] [gw=A]", app_udp_echo},
    {"tcp-echo", "[port=7] [ip=A/N] [gw=A] [isn=fixed]", app_tcp_echo},
    {"kv", "[port=7000] [ip=A/N] [gw=A] [isn=fixed]", app_kv},
    {"http", "[port=80] [ip=A/N] [gw=A] [isn=fixed] [stamp=1]", app_http},
    {"blk", "[mb=4] [loop=0|1] [bs=64] [idle=halt|poll]", app_blk},
    {"console", "", app_console},
    {"halt", "", app_halt},
};

void guest_exit(int code)
{
	printf("testguest: exit %d\n", code);
	if (code) {
		outb(DEBUG_EXIT_PORT, (uint8_t)code);
	} else {
		if (!acpi_reset())
			outb(I8042_CMD, I8042_RESET);
		delay_ns(1000000000);
		outb(DEBUG_EXIT_PORT, 0);
	}
	for (;;)
		cpu_relax();
}

static void usage(void)
{
	printf("testguest: apps:\n");
	for (unsigned int i = 0; i < ARRAY_SIZE(apps); i++)
		printf("testguest:   app=%s%s%s\n", apps[i].name, *apps[i].usage ? " " : "",
		       apps[i].usage);
}

void guest_main(const struct hvm_start_info *si);
void guest_main(const struct hvm_start_info *si)
{
	const char *name;

	serial_init();
	if (bootinfo_init(si))
		guest_exit(EXIT_PLATFORM);
	if (timer_init()) {
		printf("testguest: cannot find the TSC frequency (no CPUID leaf, no PIT)\n");
		guest_exit(EXIT_PLATFORM);
	}
	printf("testguest: booted, cmdline=\"%s\" mem=%lu tsc=%lu\n", bootinfo_cmdline(),
	       bootinfo_ram_mib(), (tsc_khz + 500) / 1000);
	printf("testguest: tsc %lu.%03lu MHz from %s\n", tsc_khz / 1000, tsc_khz % 1000,
	       timer_source());
	if (cmdline_parse(bootinfo_cmdline()))
		guest_exit(EXIT_USAGE);
	if (!nr_virtio_mmio_devs) {
		const struct virtio_mmio_dev *d;
		unsigned int n = acpi_virtio_mmio(&d);

		for (unsigned int i = 0; i < n; i++)
			virtio_mmio_devs[i] = d[i];
		nr_virtio_mmio_devs = n;
		if (n)
			printf("testguest: virtio-mmio devices from the ACPI DSDT\n");
	}
	for (unsigned int i = 0; i < nr_virtio_mmio_devs; i++)
		printf("testguest: virtio-mmio device at 0x%lx size 0x%lx irq %u\n",
		       virtio_mmio_devs[i].base, virtio_mmio_devs[i].size, virtio_mmio_devs[i].irq);

	name = cmdline_get("app");
	if (!name || !*name) {
		printf("testguest: no app= on the command line\n");
		usage();
		guest_exit(EXIT_USAGE);
	}
	for (unsigned int i = 0; i < ARRAY_SIZE(apps); i++)
		if (!strcmp(apps[i].name, name))
			guest_exit(apps[i].run());
	printf("testguest: bad value app=%s: unknown app\n", name);
	usage();
	guest_exit(EXIT_USAGE);
}
