/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Copy what the loader left in hvm_start_info (command line, memory map,
 * module extents) into the image, so that nothing later has to keep the
 * loader's memory intact.
 */
#include "guest.h"

#define MAX_CMDLINE 4096
#define MAX_MEMMAP  64
#define FOUR_GIB    (4ULL << 30) /* boot.S maps only this much */

extern char _end[];

static char cmdline[MAX_CMDLINE];
static struct hvm_memmap_entry memmap[MAX_MEMMAP];
static unsigned int nr_memmap;
static uint64_t modules_end;

int bootinfo_init(const struct hvm_start_info *si)
{
	if (si->magic != HVM_START_MAGIC) {
		printf("testguest: bad hvm_start_info magic 0x%x\n", si->magic);
		return -1;
	}
	if (si->cmdline_paddr) {
		const char *s = (const char *)si->cmdline_paddr;
		size_t n = 0;
		while (s[n] && n < MAX_CMDLINE - 1) {
			cmdline[n] = s[n];
			n++;
		}
		cmdline[n] = '\0';
	}
	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *e = (const void *)si->memmap_paddr;
		nr_memmap = si->memmap_entries < MAX_MEMMAP ? si->memmap_entries : MAX_MEMMAP;
		memcpy(memmap, e, nr_memmap * sizeof(*e));
	}
	acpi_init(si->rsdp_paddr);
	if (si->nr_modules && si->modlist_paddr) {
		const struct hvm_modlist_entry *m = (const void *)si->modlist_paddr;
		for (uint32_t i = 0; i < si->nr_modules; i++)
			if (m[i].paddr + m[i].size > modules_end)
				modules_end = m[i].paddr + m[i].size;
	}
	return 0;
}

const char *bootinfo_cmdline(void)
{
	return cmdline;
}

uint64_t bootinfo_ram_mib(void)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < nr_memmap; i++)
		if (memmap[i].type == HVM_MEMMAP_RAM)
			sum += memmap[i].size;
	return sum / MIB;
}

bool bootinfo_free_ram(struct ram_range *out)
{
	uint64_t floor = (uint64_t)_end > modules_end ? (uint64_t)_end : modules_end;
	bool found = false;

	floor = (floor + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	for (unsigned int i = 0; i < nr_memmap; i++) {
		uint64_t s = memmap[i].addr, e = memmap[i].addr + memmap[i].size;
		if (memmap[i].type != HVM_MEMMAP_RAM)
			continue;
		if (s < floor)
			s = floor;
		if (e > FOUR_GIB)
			e = FOUR_GIB;
		s = (s + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
		e &= ~(PAGE_SIZE - 1);
		if (s >= e)
			continue;
		if (!found || e - s > out->end - out->start) {
			out->start = s;
			out->end = e;
			found = true;
		}
	}
	return found;
}
