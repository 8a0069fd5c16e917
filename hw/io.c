/* SPDX-License-Identifier: GPL-2.0-only */
/* Port-I/O and MMIO dispatch: a short table of ranges, searched linearly. */
#include <errno.h>
#include <string.h>

#include "hw/internal.h"

int io_bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler fn,
		    void *opaque)
{
	if (!len || base + len < base)
		return -EINVAL;
	if (bus->n == IO_MAX_RANGES)
		return -ENOSPC;
	for (unsigned int i = 0; i < bus->n; i++) {
		const struct io_range *r = &bus->r[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EBUSY;
	}
	bus->r[bus->n++] = (struct io_range){base, len, fn, opaque};
	return 0;
}

bool io_bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len,
		     bool is_write)
{
	for (unsigned int i = 0; i < bus->n; i++) {
		const struct io_range *r = &bus->r[i];

		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr, data, len, is_write);
			return true;
		}
	}
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
