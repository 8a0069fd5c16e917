/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The hardware-reduced ACPI sleep registers (ACPI 6.5, 4.8.3.7/8): one
 * I/O port, ACPI_SLEEP_PORT, is both the FADT's SLEEP_CONTROL_REG and its
 * SLEEP_STATUS_REG (as in cloud-hypervisor). The DSDT's \_S5 says the
 * soft-off sleep type is ACPI_S5_TYPE; when the guest writes SLP_EN with
 * that type (Linux's acpi_power_off, i.e. `poweroff`), the machine is off:
 * reported as a halt, which ends the run like a guest that halts for good.
 * Any other sleep type is ignored (only S5 is declared). Reads answer 0:
 * WAK_STS never sets, nothing wakes an S5 guest.
 */
#include <string.h>

#include "hw/internal.h"

#define SLP_TYP_SHIFT 2
#define SLP_TYP_MASK  0x1c
#define SLP_EN	      0x20

static void acpi_sleep_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	(void)addr;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if ((data[0] & SLP_EN) && (data[0] & SLP_TYP_MASK) >> SLP_TYP_SHIFT == ACPI_S5_TYPE) {
		log_info("guest powered off (ACPI S5)");
		vm_report(opaque, VM_EVENT_HALT, 0);
	}
}

int acpi_sleep_create(struct vm *vm)
{
	return io_bus_register(&vm->pio, ACPI_SLEEP_PORT, 1, acpi_sleep_io, vm);
}
