/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A bump allocator over the largest free RAM range (bootinfo_free_ram()):
 * drivers and the network stack take their rings and buffers once at start
 * and never give them back. Memory comes zeroed; addresses are physical
 * (the identity map makes them usable as pointers and as DMA addresses).
 */
#include "guest.h"

static uint64_t next, end;
static bool ready;

void *mem_alloc(size_t size, size_t align)
{
	uint64_t p;

	if (!ready) {
		struct ram_range r;

		if (!bootinfo_free_ram(&r)) {
			printf("testguest: no free RAM for buffers\n");
			guest_exit(EXIT_PLATFORM);
		}
		next = r.start;
		end = r.end;
		ready = true;
	}
	if (align < 16)
		align = 16;
	p = (next + align - 1) & ~(uint64_t)(align - 1);
	if (p > end || size > end - p) {
		printf("testguest: out of memory (%zu bytes wanted, %lu left)\n", size,
		       end > next ? end - next : 0);
		guest_exit(EXIT_PLATFORM);
	}
	next = p + size;
	memset((void *)p, 0, size);
	return (void *)p;
}
