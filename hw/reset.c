/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Machine reset. The power-on state of the in-kernel irqchip, the PIT and
 * each LAPIC is captured right after the VM is built (power_on_capture) and
 * written back on reset; vCPU registers are set as at boot, the kernel is
 * loaded again and the legacy devices return to their reset values. RAM is
 * otherwise left as it is, as on real hardware.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "hw/internal.h"

int power_on_capture(struct vm *vm)
{
	struct power_on *p = &vm->power_on;

	for (unsigned int i = 0; i < ARRAY_SIZE(p->chips); i++) {
		p->chips[i].chip_id = i; /* PIC master, PIC slave, IOAPIC */
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &p->chips[i]) < 0)
			return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &p->pit) < 0)
		return -errno;
	return 0;
}

static int vcpu_reset(struct vcpu *vcpu, const struct boot_info *boot)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp = {
		.mp_state = vcpu->id ? KVM_MP_STATE_UNINITIALIZED : KVM_MP_STATE_RUNNABLE,
	};
	int ret;

	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &vcpu->lapic_power_on) < 0 ||
	    ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 || ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		return -errno;
	/* Drop any pending exception, interrupt or NMI. */
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		return -errno;
	memset(&events.exception, 0, sizeof(events.exception));
	memset(&events.interrupt, 0, sizeof(events.interrupt));
	memset(&events.nmi, 0, sizeof(events.nmi));
	events.flags = 0;
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		return -errno;
	ret = vcpu_setup_msrs(vcpu);
	if (!ret && vcpu->id == 0)
		ret = vcpu_setup_boot(vcpu, boot);
	vcpu->halted = false;
	return ret;
}

int hw_vm_reset(struct vm *vm)
{
	struct vm_config boot_cfg = vm->cfg;
	bool was_running = vm->running;
	int ret;

	hw_vm_pause(vm);
	for (unsigned int i = 0; i < ARRAY_SIZE(vm->power_on.chips); i++) {
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &vm->power_on.chips[i]) < 0) {
			ret = -errno;
			goto fail;
		}
	}
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &vm->power_on.pit) < 0) {
		ret = -errno;
		goto fail;
	}
	uart_reset(vm->uart);
	i8042_reset(vm->kbd);
	virtio_devices_reset(vm);
	boot_cfg.cmdline = vm->boot_cmdline;
	ret = boot_load(vm, &boot_cfg);
	if (ret)
		goto fail;
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		ret = vcpu_reset(&vm->vcpus[i], &vm->boot);
		if (ret)
			goto fail;
	}
	atomic_store(&vm->event_sent, false);
	persist_thaw(vm); /* saved device state no longer describes the VM */
	log_info("machine reset");
	return was_running ? hw_vm_resume(vm) : 0;
fail:
	log_err("machine reset failed: %s", strerror(-ret));
	return ret;
}
