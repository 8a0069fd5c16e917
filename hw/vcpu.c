/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vCPUs: creation, CPUID, MSRs, LAPIC, the boot register state for the two
 * entry conventions, and the KVM_RUN loop that dispatches exits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hw/internal.h"

#define MAX_CPUID_ENTRIES 256

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

#define MSR_IA32_TSC		0x10
#define MSR_IA32_APICBASE	0x1b
#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI 0x4

static int vcpu_setup_cpuid(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	struct kvm_cpuid2 *cpuid;
	int ret = 0;

	cpuid = calloc(1, sizeof(*cpuid) + MAX_CPUID_ENTRIES * sizeof(cpuid->entries[0]));
	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = MAX_CPUID_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		ret = -errno;
		log_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	long tsc_khz = ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);

	for (uint32_t i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			/* We are a hypervisor; APIC ID and logical count per vCPU. */
			e->ecx |= CPUID_1_ECX_HYPERVISOR;
			e->ebx = (e->ebx & 0x0000ffffu) | (vcpu->id << 24) |
				 ((vm->ncpus_planned ? vm->ncpus_planned : 1) << 16);
			break;
		case 0xb:
		case 0x1f:
			e->edx = vcpu->id; /* x2APIC ID */
			break;
		case 0x40000000:
			/* KVM signature; max hypervisor leaf is the timing leaf. */
			e->eax = 0x40000010;
			memcpy(&e->ebx, "KVMK", 4);
			memcpy(&e->ecx, "VMKV", 4);
			memcpy(&e->edx, "M\0\0\0", 4);
			break;
		default:
			break;
		}
	}
	/* Timing leaf 0x40000010 (VMware convention, also used by QEMU):
	 * eax = TSC frequency in kHz, ebx = APIC bus frequency in kHz. */
	if (tsc_khz > 0 && cpuid->nent < MAX_CPUID_ENTRIES) {
		cpuid->entries[cpuid->nent++] = (struct kvm_cpuid_entry2){
			.function = 0x40000010, .eax = (uint32_t)tsc_khz, .ebx = 1000000};
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0) {
		ret = -errno;
		log_err("KVM_SET_CPUID2: %s", strerror(errno));
	}
out:
	free(cpuid);
	return ret;
}

int vcpu_msrs_io(struct vcpu *vcpu, unsigned long req, struct kvm_msr_entry *e, unsigned int n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(*e));
	int r;

	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	memcpy(m->entries, e, n * sizeof(*e));
	r = ioctl(vcpu->fd, req, m);
	if (r < 0)
		r = -errno;
	else if (req == KVM_GET_MSRS)
		memcpy(e, m->entries, n * sizeof(*e));
	free(m);
	return r;
}

int vcpu_setup_msrs(struct vcpu *vcpu)
{
	static const struct {
		uint32_t index;
		uint64_t data;
	} init[] = {
		{MSR_IA32_SYSENTER_CS, 0}, {MSR_IA32_SYSENTER_ESP, 0}, {MSR_IA32_SYSENTER_EIP, 0},
		{MSR_STAR, 0}, {MSR_CSTAR, 0}, {MSR_KERNEL_GS_BASE, 0}, {MSR_SYSCALL_MASK, 0},
		{MSR_LSTAR, 0}, {MSR_IA32_TSC, 0},
		{MSR_IA32_MISC_ENABLE, 1}, /* fast strings */
		{MSR_MTRR_DEF_TYPE, 0x806}, /* MTRRs enabled, default write-back */
	};
	struct kvm_msr_entry e[ARRAY_SIZE(init)] = {0};
	int n;

	for (unsigned int i = 0; i < ARRAY_SIZE(init); i++) {
		e[i].index = init[i].index;
		e[i].data = init[i].data;
	}
	n = vcpu_msrs_io(vcpu, KVM_SET_MSRS, e, ARRAY_SIZE(init));
	if (n < 0) {
		log_err("KVM_SET_MSRS: %s", strerror(-n));
		return n;
	}
	if ((unsigned int)n != ARRAY_SIZE(init))
		log_debug("vCPU %u: KVM_SET_MSRS set %d of %zu (MSR %#x refused)", vcpu->id, n,
			  ARRAY_SIZE(init), init[n].index);
	return 0;
}

/* LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as firmware does. */
static int vcpu_setup_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0 = (uint32_t *)&lapic.regs[APIC_LVT0];
	uint32_t *lvt1 = (uint32_t *)&lapic.regs[APIC_LVT1];

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	*lvt0 = (*lvt0 & ~0x700u & ~0x10000u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u & ~0x10000u) | (APIC_MODE_NMI << 8);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	vcpu->lapic_power_on = lapic;
	return 0;
}

int vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned int id)
{
	long sz;
	int ret;

	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		log_err("KVM_CREATE_VCPU %u: %s", id, strerror(errno));
		return -errno;
	}
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return -EINVAL;
	vcpu->run_size = (size_t)sz;
	vcpu->run = mmap(NULL, vcpu->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		vcpu->run = NULL;
		return -errno;
	}
	ret = vcpu_setup_cpuid(vcpu);
	if (!ret)
		ret = vcpu_setup_msrs(vcpu);
	if (!ret)
		ret = vcpu_setup_lapic(vcpu);
	return ret;
}

void vcpu_free(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->run_size);
	if (vcpu->fd > 0)
		close(vcpu->fd);
}

static struct kvm_segment seg_flat(uint16_t sel, uint8_t type, bool code64, bool db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type, .present = 1,
		.dpl = 0, .db = db, .s = 1, .l = code64, .g = 1,
	};
}

/*
 * Boot state. PVH: 32-bit protected mode, paging off, flat segments,
 * %ebx = hvm_start_info. Linux 64-bit boot protocol: long mode with the
 * identity page tables the loader built, __BOOT_CS = 0x10, __BOOT_DS = 0x18,
 * %rsi = boot_params.
 */
int vcpu_setup_boot(struct vcpu *vcpu, const struct boot_info *boot)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {.rflags = 0x2, .rip = boot->entry};
	struct kvm_segment code, data, tss = {
		.base = 0, .limit = 0x67, .selector = 0x28, .type = 11, .present = 1, .s = 0,
	};

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	if (boot->pvh) {
		code = seg_flat(0x10, 0xb, false, true);
		data = seg_flat(0x18, 0x3, false, true);
		sregs.cr0 = 0x11; /* PE | ET */
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = PVH_INFO_ADDR;
	} else {
		code = seg_flat(0x10, 0xb, true, false);
		data = seg_flat(0x18, 0x3, false, true);
		sregs.cr3 = BOOT_PML4_ADDR;
		sregs.cr4 = 0x20;		   /* PAE */
		sregs.cr0 = 0x80050033;		   /* PG | AM | WP | NE | ET | MP | PE */
		sregs.efer = 0x500;		   /* LME | LMA */
		sregs.gdt.base = BOOT_GDT_ADDR;
		sregs.gdt.limit = 4 * 8 - 1;
		regs.rsi = boot->zero_page;
	}
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.tr = tss;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0) {
		log_err("KVM_SET_SREGS: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0) {
		log_err("KVM_SET_REGS: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* After a kick: is this vCPU halted with interrupts disabled (for good)? */
static bool vcpu_halted_for_good(struct vcpu *vcpu)
{
	struct kvm_mp_state mp;
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0)
		return false;
	if (mp.mp_state == KVM_MP_STATE_UNINITIALIZED || mp.mp_state == KVM_MP_STATE_INIT_RECEIVED)
		return vcpu->id != 0; /* an AP never started by the guest */
	if (mp.mp_state != KVM_MP_STATE_HALTED)
		return false;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		return false;
	return !(regs.rflags & (1u << 9));
}

static void vcpu_handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool wr = run->io.direction == KVM_EXIT_IO_OUT;

	for (uint32_t i = 0; i < run->io.count; i++) {
		if (!io_bus_dispatch(&vcpu->vm->pio, run->io.port, data, run->io.size, wr))
			log_debug("unhandled port %s %#x size %u", wr ? "write" : "read",
				  run->io.port, run->io.size);
		data += run->io.size;
	}
}

static void vcpu_handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (run->mmio.len > 8)
		return;
	if (!io_bus_dispatch(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data,
			     run->mmio.len, run->mmio.is_write))
		log_debug("unhandled MMIO %s %#llx len %u", run->mmio.is_write ? "write" : "read",
			  (unsigned long long)run->mmio.phys_addr, run->mmio.len);
}

/* Where the vCPU was, and the code bytes at RIP when it is an
 * identity-mapped RAM address: with --verbose when the VM stops (guests that
 * hang before they print anything), always after a triple fault or an
 * error (level). On AMD, KVM has put the vCPU through INIT before it reports
 * a triple fault (the VMCB is undefined after one): rip=0xfff0 there. */
static void vcpu_log_state(struct vcpu *vcpu, enum log_level level)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	const uint8_t *code;
	char hex[2 * 32 + 1] = "";

	if (log_get_level() < level)
		return;
	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		log_msg(level, "vCPU %u: cannot read registers: %s", vcpu->id, strerror(errno));
		return;
	}
	log_msg(level,
		"vCPU %u: rip=%#llx rsp=%#llx rflags=%#llx cs=%#x cr0=%#llx cr3=%#llx "
		"cr4=%#llx efer=%#llx",
		vcpu->id, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		(unsigned long long)r.rflags, s.cs.selector, (unsigned long long)s.cr0,
		(unsigned long long)s.cr3, (unsigned long long)s.cr4, (unsigned long long)s.efer);
	code = mem_ptr(&vcpu->vm->mem, r.rip, 32);
	if (code) {
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", code[i]);
		log_msg(level, "vCPU %u: code at rip: %s", vcpu->id, hex);
	}
}

/* Returns false when the vCPU must stop running (guest event reported). */
static bool vcpu_handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		vcpu_handle_io(vcpu);
		return true;
	case KVM_EXIT_MMIO:
		vcpu_handle_mmio(vcpu);
		return true;
	case KVM_EXIT_HLT:
		vm_report(vcpu->vm, VM_EVENT_HALT, 0);
		return false;
	case KVM_EXIT_SHUTDOWN:
		log_info("vCPU %u: triple fault, guest reset", vcpu->id);
		vcpu_log_state(vcpu, LOG_INFO);
		vm_report(vcpu->vm, VM_EVENT_RESET, 0);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		vm_report(vcpu->vm,
			  run->system_event.type == KVM_SYSTEM_EVENT_RESET ? VM_EVENT_RESET
									    : VM_EVENT_HALT,
			  0);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		log_err("vCPU %u: KVM internal error, suberror %u", vcpu->id,
			run->internal.suberror);
		vcpu_log_state(vcpu, LOG_ERROR);
		vm_report(vcpu->vm, VM_EVENT_INTERNAL_ERROR, (int)run->internal.suberror);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		log_err("vCPU %u: VM entry failed, reason %#llx", vcpu->id,
			(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_log_state(vcpu, LOG_ERROR);
		vm_report(vcpu->vm, VM_EVENT_INTERNAL_ERROR, (int)run->exit_reason);
		return false;
	case KVM_EXIT_INTR:
		return true;
	default:
		log_err("vCPU %u: unexpected KVM exit reason %u", vcpu->id, run->exit_reason);
		vm_report(vcpu->vm, VM_EVENT_INTERNAL_ERROR, (int)run->exit_reason);
		return false;
	}
}


void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	bool ok = true;

	for (;;) {
		pthread_mutex_lock(&vm->lock);
		if (vm->pause_req && vcpu->exit_pending && ok && !vm->quit) {
			/* Before parking: let KVM finish the instruction whose
			 * exit was just handled, without running the guest
			 * further (immediate_exit: -EINTR right after). Its
			 * state is otherwise not what KVM_GET_REGS shows, and a
			 * load (COLO checkpoint, snapshot) over a pending
			 * completion would be corrupted by it on the next run. */
			vcpu->run->immediate_exit = 1;
			pthread_mutex_unlock(&vm->lock);
			if (ioctl(vcpu->fd, KVM_RUN, 0) == 0) {
				/* Finishing needs us again (the next part of a
				 * string I/O): handle that exit, then finish. */
				ok = vcpu_handle_exit(vcpu);
				continue;
			}
			vcpu->exit_pending = false;
			continue;
		}
		while ((vm->pause_req || !ok) && !vm->quit) {
			vcpu->parked = true;
			vm->nparked++;
			pthread_cond_broadcast(&vm->cond);
			pthread_cond_wait(&vm->cond, &vm->lock);
			vm->nparked--;
			vcpu->parked = false;
		}
		if (vm->quit) {
			pthread_mutex_unlock(&vm->lock);
			vcpu_log_state(vcpu, LOG_DEBUG);
			break;
		}
		vcpu->run->immediate_exit = 0;
		pthread_mutex_unlock(&vm->lock);

		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			vcpu->exit_pending = false; /* completed before the signal check */
			if (errno == EINTR || errno == EAGAIN) {
				bool pausing;

				pthread_mutex_lock(&vm->lock);
				pausing = vm->pause_req;
				pthread_mutex_unlock(&vm->lock);
				/* The halt check (two vCPU ioctls) answers the halt
				 * timer's kick; a pause kick parks at once. */
				if (!pausing) {
					bool h = vcpu_halted_for_good(vcpu);

					pthread_mutex_lock(&vm->lock);
					vcpu->halted = h;
					pthread_mutex_unlock(&vm->lock);
				}
				continue;
			}
			log_err("vCPU %u: KVM_RUN: %s", vcpu->id, strerror(errno));
			vm_report(vm, VM_EVENT_INTERNAL_ERROR, -errno);
			ok = false;
			continue;
		}
		if (vcpu->halted) {
			pthread_mutex_lock(&vm->lock);
			vcpu->halted = false;
			pthread_mutex_unlock(&vm->lock);
		}
		ok = vcpu_handle_exit(vcpu);
		vcpu->exit_pending = true;
	}
	return NULL;
}
