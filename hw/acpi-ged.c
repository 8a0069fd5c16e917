/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The power button: the DSDT's Generic Event Device (acpi.c) on
 * ACPI_GED_GSI, edge-triggered, active high. A press is one edge on that
 * line of the in-kernel IOAPIC: raise, then lower (an edge pin latches the
 * rising edge and delivers it once; leaving the line high would swallow
 * the next press). The guest's GED driver runs _EVT(ACPI_GED_GSI), which
 * notifies \_SB.PWRB: "power button pressed".
 *
 * Whether the guest listens is in the IOAPIC itself: its redirection entry
 * for the pin is masked from power-on until a driver requests the
 * interrupt (Linux's evged.c does at boot). A guest that never unmasks it
 * (the freestanding test guest, a kernel still booting) would never see a
 * press. The entry comes from KVM_GET_IRQCHIP, so it is the live state,
 * also after a restore, a migration or a reset.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hw/internal.h"

int acpi_ged_press(struct vm *vm)
{
	int ret = vm_irq_line(vm, ACPI_GED_GSI, true);

	if (!ret)
		ret = vm_irq_line(vm, ACPI_GED_GSI, false);
	if (ret)
		log_err("power button: KVM_IRQ_LINE on GSI %u: %s", ACPI_GED_GSI, strerror(-ret));
	return ret;
}

bool hw_vm_power_button_listened(struct vm *vm)
{
	struct kvm_irqchip chip = {.chip_id = KVM_IRQCHIP_IOAPIC};

	_Static_assert(ACPI_GED_GSI < KVM_IOAPIC_NUM_PINS, "the GED's GSI is an IOAPIC pin");
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
		log_err("power button: KVM_GET_IRQCHIP (IOAPIC): %s", strerror(errno));
		return false;
	}
	return !chip.chip.ioapic.redirtbl[ACPI_GED_GSI].fields.mask;
}
