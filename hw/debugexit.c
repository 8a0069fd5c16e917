/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * isa-debug-exit at port 0xf4 (4 ports), QEMU's convention: the guest
 * writes v and the VMM exits with status (v << 1) | 1. The same guest can
 * thus report success or failure on colovm and on QEMU alike.
 */
#include <string.h>

#include "hw/internal.h"

#define DEBUG_EXIT_PORT 0xf4

static void debugexit_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len,
			 bool is_write)
{
	uint32_t v = 0;

	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	memcpy(&v, data, MIN(len, sizeof(v)));
	vm_report(opaque, VM_EVENT_DEBUG_EXIT, (int)v);
}

int debugexit_create(struct vm *vm)
{
	return io_bus_register(&vm->pio, DEBUG_EXIT_PORT, 4, debugexit_io, vm);
}
