/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * State descriptions of the VM's KVM-side state: the machine shape, the
 * kvmclock, the in-kernel irqchip (PIC master, PIC slave, IOAPIC), the PIT
 * and every vCPU. The UART and the i8042 describe themselves beside their
 * code (uart.c, i8042.c). Each VM owns one registry (vm->vmstate); sections
 * are saved in registration order:
 *
 *   machine   ncpus, RAM bytes: refused on load when --cpus/--mem differ
 *   kvmclock  KVM_GET_CLOCK
 *   irqchip   KVM_GET_IRQCHIP x3
 *   pit       KVM_GET_PIT2
 *   cpu N     regs, sregs, XSAVE (or FPU), XCRs, MSRs, LAPIC, MP state,
 *             debug registers, vCPU events
 *   uart, i8042
 *   virtio-net N, virtio-blk N (virtio-persist.c; the machine section,
 *             version 2, carries their counts: refused when they differ)
 *
 * pre_save reads the kernel state into the description's struct, post_load
 * writes it back. vCPU restore order (after QEMU's kvm_arch_put_registers
 * and what KVM checks): sregs (CR0/CR4/EFER and APIC base first, so that
 * the mode the rest is loaded in is right), regs, XSAVE/FPU, XCRs, MSRs
 * (the TSC: the guest's rdtsc continues from the saved value), LAPIC (after
 * sregs: the APIC base decides x2APIC), MP state, debug registers, and vCPU
 * events last (pending exceptions/NMIs/interrupt shadow refer to the
 * restored registers).
 *
 * Frozen state. The guest TSC, the LAPIC timer's current count and the
 * kvmclock keep advancing in the kernel while the VM is paused. The first
 * save after a pause freezes each vCPU's state and the clock (a load sets
 * them frozen too), so saving a paused VM twice gives the same bytes, and a
 * restored VM saved again before it runs gives the bytes it loaded (the TSC
 * continues from the saved value). hw_vm_resume() thaws them
 * (persist_thaw); anything that changes a paused vCPU must thaw too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/vmstate/vmstate.h"
#include "hw/internal.h"

#define PERSIST_MAX_MSRS  96
#define PERSIST_XSAVE_MAX 16384
#define MSR_IA32_TSC	  0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0

struct vcpu_state {
	struct vcpu *vcpu; /* not saved */
	bool frozen;	   /* not saved: the struct holds the paused vCPU's state */

	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t xsave_len; /* 0: no XSAVE, the FPU block is used */
	uint8_t xsave[PERSIST_XSAVE_MAX];
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	uint32_t nmsrs;
	uint32_t msr_index[PERSIST_MAX_MSRS];
	uint64_t msr_data[PERSIST_MAX_MSRS];
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	struct kvm_debugregs dregs;
	struct kvm_vcpu_events events;
};

struct machine_state {
	struct vm *vm;
	uint32_t ncpus;
	uint64_t ram_bytes;
	uint32_t nnet, nblk; /* version 2: virtio devices (virtio-persist.c) */
};

struct clock_state {
	struct vm *vm;
	bool frozen;
	struct kvm_clock_data clock;
};

struct irqchip_state {
	struct vm *vm;
	struct kvm_irqchip chip[3]; /* PIC master, PIC slave, IOAPIC */
	struct kvm_pit_state2 pit;
	bool chip_frozen, pit_frozen; /* not saved */
};

struct persist {
	struct machine_state machine;
	struct clock_state clock;
	struct irqchip_state irq;
	bool has_xsave, has_xcrs, has_dregs;
	int has_tsc_offset;	 /* KVM_VCPU_TSC_OFFSET: -1 not probed yet, 0 no, 1 yes */
	bool tsc_ref_valid;	 /* tsc_ref read during this load (until the VM runs) */
	uint64_t tsc_ref;	 /* the host TSC, as KVM scales it for the guest */
	uint32_t xsave_size;
	uint32_t nmsrs;
	uint32_t msr_index[PERSIST_MAX_MSRS];
	struct vcpu_state *cpus;
};

/* Saved if KVM lists them (KVM_GET_MSR_INDEX_LIST) and reads them. EFER,
 * FS/GS base are in sregs. */
static const uint32_t msr_wanted[] = {
	MSR_IA32_TSC,
	0x3b,	    /* TSC_ADJUST */
	0x1b,	    /* APIC_BASE */
	0x174,	    /* SYSENTER_CS */
	0x175,	    /* SYSENTER_ESP */
	0x176,	    /* SYSENTER_EIP */
	0x1a0,	    /* MISC_ENABLE */
	0x277,	    /* PAT */
	0x2ff,	    /* MTRR_DEF_TYPE */
	MSR_IA32_TSC_DEADLINE,
	0x48,	    /* SPEC_CTRL */
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR */
	0xc0000083, /* CSTAR */
	0xc0000084, /* SFMASK */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
	0x11,	    /* KVM_WALL_CLOCK (old) */
	0x12,	    /* KVM_SYSTEM_TIME (old) */
	0x4b564d00, /* KVM_WALL_CLOCK_NEW */
	0x4b564d01, /* KVM_SYSTEM_TIME_NEW */
	0x4b564d02, /* KVM_ASYNC_PF_EN */
	0x4b564d03, /* KVM_STEAL_TIME */
	0x4b564d04, /* KVM_PV_EOI_EN */
	0x4b564d06, /* KVM_POLL_CONTROL */
};

/* ---- machine ---------------------------------------------------------------- */

static int machine_pre_save(void *opaque)
{
	struct machine_state *m = opaque;

	m->ncpus = m->vm->ncpus;
	m->ram_bytes = m->vm->mem.size;
	m->nnet = m->vm->nnet;
	m->nblk = m->vm->nblk;
	return 0;
}

static int machine_post_load(void *opaque, uint32_t version_id)
{
	struct machine_state *m = opaque;

	if (m->ncpus != m->vm->ncpus) {
		log_err("the saved VM has %u vCPUs, this one %u (--cpus must match)", m->ncpus,
			m->vm->ncpus);
		return -EINVAL;
	}
	if (m->ram_bytes != m->vm->mem.size) {
		log_err("the saved VM has %llu MiB of RAM, this one %llu (--mem must match)",
			(unsigned long long)(m->ram_bytes / MiB),
			(unsigned long long)(m->vm->mem.size / MiB));
		return -EINVAL;
	}
	if (version_id < 2 && (m->vm->nnet || m->vm->nblk)) {
		log_err("the stream predates virtio device state; this VM has --net/--disk");
		return -EINVAL;
	}
	return version_id < 2 ? 0 : virtio_persist_check_counts(m->vm, m->nnet, m->nblk);
}

static const struct vmstate_field machine_fields[] = {
	VMSTATE_U32(struct machine_state, ncpus),
	VMSTATE_U64(struct machine_state, ram_bytes),
	VMSTATE_U32_V(struct machine_state, nnet, 2),
	VMSTATE_U32_V(struct machine_state, nblk, 2),
	VMSTATE_END,
};

static const struct vmstate_desc machine_desc = {
	.name = "machine",
	.version_id = 2,
	.minimum_version_id = 1,
	.fields = machine_fields,
	.pre_save = machine_pre_save,
	.post_load = machine_post_load,
};

/* ---- kvmclock --------------------------------------------------------------- */

static int clock_pre_save(void *opaque)
{
	struct clock_state *c = opaque;
	struct kvm_clock_data d = {0};

	if (c->frozen)
		return 0;
	if (ioctl(c->vm->vm_fd, KVM_GET_CLOCK, &d) < 0)
		return -errno;
	c->clock = (struct kvm_clock_data){.clock = d.clock};
	c->frozen = !c->vm->running;
	return 0;
}

static int clock_post_load(void *opaque, uint32_t version_id)
{
	struct clock_state *c = opaque;
	struct kvm_clock_data d = {.clock = c->clock.clock};

	if (ioctl(c->vm->vm_fd, KVM_SET_CLOCK, &d) < 0)
		return -errno;
	c->frozen = true;
	return 0;
}

static const struct vmstate_field clock_fields[] = {
	VMSTATE_BUFFER(struct clock_state, clock),
	VMSTATE_END,
};

static const struct vmstate_desc clock_desc = {
	.name = "kvmclock",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = clock_fields,
	.pre_save = clock_pre_save,
	.post_load = clock_post_load,
};

/* ---- irqchip and PIT ---------------------------------------------------------- */

static int irqchip_pre_save(void *opaque)
{
	struct irqchip_state *s = opaque;

	if (s->chip_frozen)
		return 0;
	for (unsigned int i = 0; i < 3; i++) {
		memset(&s->chip[i], 0, sizeof(s->chip[i]));
		s->chip[i].chip_id = i;
		if (ioctl(s->vm->vm_fd, KVM_GET_IRQCHIP, &s->chip[i]) < 0)
			return -errno;
	}
	s->chip_frozen = !s->vm->running;
	return 0;
}

static int irqchip_post_load(void *opaque, uint32_t version_id)
{
	struct irqchip_state *s = opaque;

	for (unsigned int i = 0; i < 3; i++) {
		if (s->chip[i].chip_id != i) {
			log_err("irqchip: chip %u has id %u", i, s->chip[i].chip_id);
			return -EINVAL;
		}
		if (ioctl(s->vm->vm_fd, KVM_SET_IRQCHIP, &s->chip[i]) < 0)
			return -errno;
	}
	s->chip_frozen = true;
	return 0;
}

static const struct vmstate_field irqchip_fields[] = {
	VMSTATE_BUFFER(struct irqchip_state, chip),
	VMSTATE_END,
};

static const struct vmstate_desc irqchip_desc = {
	.name = "irqchip",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = irqchip_fields,
	.pre_save = irqchip_pre_save,
	.post_load = irqchip_post_load,
};

static int pit_pre_save(void *opaque)
{
	struct irqchip_state *s = opaque;

	if (s->pit_frozen)
		return 0;
	memset(&s->pit, 0, sizeof(s->pit));
	if (ioctl(s->vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0)
		return -errno;
	s->pit_frozen = !s->vm->running;
	return 0;
}

static int pit_post_load(void *opaque, uint32_t version_id)
{
	struct irqchip_state *s = opaque;

	if (ioctl(s->vm->vm_fd, KVM_SET_PIT2, &s->pit) < 0)
		return -errno;
	s->pit_frozen = true; /* KVM rebases the count load times to now */
	return 0;
}

static const struct vmstate_field pit_fields[] = {
	VMSTATE_BUFFER(struct irqchip_state, pit),
	VMSTATE_END,
};

static const struct vmstate_desc pit_desc = {
	.name = "pit",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = pit_fields,
	.pre_save = pit_pre_save,
	.post_load = pit_post_load,
};

/* ---- vCPU ------------------------------------------------------------------- */

static int cpu_pre_save(void *opaque)
{
	struct vcpu_state *s = opaque;
	struct persist *p = s->vcpu->vm->persist;
	int fd = s->vcpu->fd;
	struct kvm_msr_entry msrs[PERSIST_MAX_MSRS];
	int n;

	if (s->frozen)
		return 0;
	if (ioctl(fd, KVM_GET_REGS, &s->regs) < 0 || ioctl(fd, KVM_GET_SREGS, &s->sregs) < 0)
		return -errno;
	memset(s->xsave, 0, sizeof(s->xsave));
	memset(&s->fpu, 0, sizeof(s->fpu));
	s->xsave_len = 0;
	if (p->has_xsave) {
		unsigned long req = p->xsave_size > sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2
									     : KVM_GET_XSAVE;

		if (ioctl(fd, req, s->xsave) < 0)
			return -errno;
		s->xsave_len = p->xsave_size;
	} else if (ioctl(fd, KVM_GET_FPU, &s->fpu) < 0) {
		return -errno;
	}
	memset(&s->xcrs, 0, sizeof(s->xcrs));
	if (p->has_xcrs && ioctl(fd, KVM_GET_XCRS, &s->xcrs) < 0)
		return -errno;

	memset(msrs, 0, sizeof(msrs));
	for (uint32_t i = 0; i < p->nmsrs; i++)
		msrs[i].index = p->msr_index[i];
	n = vcpu_msrs_io(s->vcpu, KVM_GET_MSRS, msrs, p->nmsrs);
	if (n < 0 || (uint32_t)n != p->nmsrs)
		return n < 0 ? n : -EIO;
	memset(s->msr_index, 0, sizeof(s->msr_index));
	memset(s->msr_data, 0, sizeof(s->msr_data));
	s->nmsrs = p->nmsrs;
	for (uint32_t i = 0; i < p->nmsrs; i++) {
		s->msr_index[i] = msrs[i].index;
		s->msr_data[i] = msrs[i].data;
	}

	if (ioctl(fd, KVM_GET_LAPIC, &s->lapic) < 0 || ioctl(fd, KVM_GET_MP_STATE, &s->mp) < 0)
		return -errno;
	memset(&s->dregs, 0, sizeof(s->dregs));
	if (p->has_dregs && ioctl(fd, KVM_GET_DEBUGREGS, &s->dregs) < 0)
		return -errno;
	memset(&s->events, 0, sizeof(s->events));
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		return -errno;
	s->frozen = !s->vcpu->vm->running;
	return 0;
}

/*
 * The guest TSC after a load. KVM takes a host write of MSR_IA32_TSC that
 * lands within a second of what it expects (its last write plus the time
 * since) as an attempt to synchronise the vCPUs, and where the host's TSC is
 * marked unstable (a host that is itself a VM) it then adds the time since
 * that last write: a loaded TSC came out seconds ahead (16464117961 written,
 * 33351578274 read back), and a COLO secondary, written every checkpoint, ran
 * ahead of its primary. Where KVM offers the vCPU's TSC offset
 * (KVM_VCPU_TSC_OFFSET, Linux 5.16) colovm sets it directly — guest TSC =
 * scaled host TSC + offset — from one reading of the host TSC per load, so
 * every vCPU continues from its saved value and the vCPUs keep the distances
 * they were saved with. Elsewhere the MSR write stands.
 */
static int cpu_set_tsc(struct vcpu_state *s, uint64_t want)
{
	struct persist *p = s->vcpu->vm->persist;
	uint64_t off = 0;
	struct kvm_device_attr a = {
	    .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET, .addr = (uintptr_t)&off};
	int fd = s->vcpu->fd;

	if (p->has_tsc_offset < 0)
		p->has_tsc_offset = ioctl(fd, KVM_HAS_DEVICE_ATTR, &a) == 0;
	if (!p->has_tsc_offset)
		return 0;
	if (!p->tsc_ref_valid) {
		struct kvm_msr_entry e = {.index = MSR_IA32_TSC};

		if (ioctl(fd, KVM_GET_DEVICE_ATTR, &a) < 0)
			return -errno;
		if (vcpu_msrs_io(s->vcpu, KVM_GET_MSRS, &e, 1) != 1)
			return -EIO;
		p->tsc_ref = e.data - off;
		p->tsc_ref_valid = true;
	}
	off = want - p->tsc_ref;
	if (ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0)
		return -errno;
	return 0;
}

/* The saved value of MSR index in s; false when it was not saved. */
static bool saved_msr(const struct vcpu_state *s, uint32_t index, uint64_t *val)
{
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msr_index[i] == index) {
			*val = s->msr_data[i];
			return true;
		}
	return false;
}

static int cpu_post_load(void *opaque, uint32_t version_id)
{
	struct vcpu_state *s = opaque;
	struct persist *p = s->vcpu->vm->persist;
	int fd = s->vcpu->fd;
	struct kvm_vcpu_events ev = s->events;
	struct kvm_msr_entry msrs[PERSIST_MAX_MSRS];
	uint64_t val;
	int n;

	if (s->xsave_len && (!p->has_xsave || s->xsave_len > p->xsave_size)) {
		log_err("cpu %u: saved XSAVE area of %u bytes, KVM has %u", s->vcpu->id,
			s->xsave_len, p->has_xsave ? p->xsave_size : 0);
		return -EINVAL;
	}
	if (ioctl(fd, KVM_SET_SREGS, &s->sregs) < 0 || ioctl(fd, KVM_SET_REGS, &s->regs) < 0)
		return -errno;
	if (s->xsave_len) {
		if (ioctl(fd, KVM_SET_XSAVE, s->xsave) < 0)
			return -errno;
	} else if (ioctl(fd, KVM_SET_FPU, &s->fpu) < 0) {
		return -errno;
	}
	if (p->has_xcrs && s->xcrs.nr_xcrs && ioctl(fd, KVM_SET_XCRS, &s->xcrs) < 0)
		return -errno;

	memset(msrs, 0, sizeof(msrs));
	for (uint32_t i = 0; i < s->nmsrs; i++) {
		msrs[i].index = s->msr_index[i];
		msrs[i].data = s->msr_data[i];
	}
	n = vcpu_msrs_io(s->vcpu, KVM_SET_MSRS, msrs, s->nmsrs);
	if (n >= 0 && (uint32_t)n != s->nmsrs)
		log_err("cpu %u: KVM refused MSR %#x", s->vcpu->id, msrs[n].index);
	if (n < 0 || (uint32_t)n != s->nmsrs)
		return n < 0 ? n : -EINVAL;
	if (saved_msr(s, MSR_IA32_TSC, &val)) {
		int r = cpu_set_tsc(s, val);

		if (r < 0) {
			log_err("cpu %u: setting the TSC offset: %s", s->vcpu->id, strerror(-r));
			return r;
		}
	}

	if (ioctl(fd, KVM_SET_LAPIC, &s->lapic) < 0 || ioctl(fd, KVM_SET_MP_STATE, &s->mp) < 0)
		return -errno;
	/* KVM ignores a TSC deadline written while the LAPIC timer is not in
	 * TSC-deadline mode, which a fresh vCPU's is not: once more after the
	 * LAPIC, or the guest's armed timer is lost (and an idle guest sleeps). */
	if (saved_msr(s, MSR_IA32_TSC_DEADLINE, &val)) {
		struct kvm_msr_entry e = {.index = MSR_IA32_TSC_DEADLINE, .data = val};

		if (vcpu_msrs_io(s->vcpu, KVM_SET_MSRS, &e, 1) != 1) {
			log_err("cpu %u: KVM refused the TSC deadline", s->vcpu->id);
			return -EINVAL;
		}
	}
	if (p->has_dregs && ioctl(fd, KVM_SET_DEBUGREGS, &s->dregs) < 0)
		return -errno;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		    KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	s->frozen = true;
	return 0;
}

static const struct vmstate_field cpu_fields[] = {
	VMSTATE_BUFFER(struct vcpu_state, regs),
	VMSTATE_BUFFER(struct vcpu_state, sregs),
	VMSTATE_U32(struct vcpu_state, xsave_len),
	VMSTATE_VARRAY(struct vcpu_state, xsave, xsave_len, VMSTATE_KIND_U8),
	VMSTATE_BUFFER(struct vcpu_state, fpu),
	VMSTATE_BUFFER(struct vcpu_state, xcrs),
	VMSTATE_U32(struct vcpu_state, nmsrs),
	VMSTATE_VARRAY(struct vcpu_state, msr_index, nmsrs, VMSTATE_KIND_U32),
	VMSTATE_VARRAY(struct vcpu_state, msr_data, nmsrs, VMSTATE_KIND_U64),
	VMSTATE_BUFFER(struct vcpu_state, lapic),
	VMSTATE_BUFFER(struct vcpu_state, mp),
	VMSTATE_BUFFER(struct vcpu_state, dregs),
	VMSTATE_BUFFER(struct vcpu_state, events),
	VMSTATE_END,
};

static const struct vmstate_desc cpu_desc = {
	.name = "cpu",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = cpu_fields,
	.pre_save = cpu_pre_save,
	.post_load = cpu_post_load,
};

/* MSRs in msr_wanted that KVM lists and that vCPU 0 can read. */
static int persist_probe_msrs(struct vm *vm, struct persist *p)
{
	struct kvm_msr_list *list;
	uint32_t cap = 1024;
	int ret = 0;

	list = calloc(1, sizeof(*list) + cap * sizeof(list->indices[0]));
	if (!list)
		return -ENOMEM;
	list->nmsrs = cap;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		ret = -errno;
		log_err("KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
		goto out;
	}
	for (unsigned int w = 0; w < ARRAY_SIZE(msr_wanted); w++) {
		struct kvm_msr_entry one = {.index = msr_wanted[w]};
		bool listed = false;

		for (uint32_t i = 0; i < list->nmsrs && !listed; i++)
			listed = list->indices[i] == msr_wanted[w];
		if (!listed || vcpu_msrs_io(&vm->vcpus[0], KVM_GET_MSRS, &one, 1) != 1)
			continue;
		p->msr_index[p->nmsrs++] = msr_wanted[w];
	}
out:
	free(list);
	return ret;
}

int persist_register(struct vm *vm)
{
	struct persist *p;
	struct vmstate_error err = {0};
	int ret, x;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	vm->persist = p;
	p->cpus = calloc(vm->ncpus, sizeof(*p->cpus));
	if (!p->cpus)
		return -ENOMEM;
	ret = vmstate_registry_new(&vm->vmstate);
	if (ret)
		return ret;
	p->machine.vm = p->clock.vm = p->irq.vm = vm;

	x = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (x < (int)sizeof(struct kvm_xsave))
		x = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0
			    ? (int)sizeof(struct kvm_xsave)
			    : 0;
	if (x > PERSIST_XSAVE_MAX) {
		log_err("KVM's XSAVE area is %d bytes, more than %d", x, PERSIST_XSAVE_MAX);
		return -ENOTSUP;
	}
	p->has_xsave = x > 0;
	p->xsave_size = (uint32_t)x;
	p->has_xcrs = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	p->has_dregs = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DEBUGREGS) > 0;
	p->has_tsc_offset = -1;
	ret = persist_probe_msrs(vm, p);
	if (ret)
		return ret;

	ret = vmstate_register(vm->vmstate, &machine_desc, 0, &p->machine, &err);
	if (!ret)
		ret = vmstate_register(vm->vmstate, &clock_desc, 0, &p->clock, &err);
	if (!ret)
		ret = vmstate_register(vm->vmstate, &irqchip_desc, 0, &p->irq, &err);
	if (!ret)
		ret = vmstate_register(vm->vmstate, &pit_desc, 0, &p->irq, &err);
	for (unsigned int i = 0; i < vm->ncpus && !ret; i++) {
		p->cpus[i].vcpu = &vm->vcpus[i];
		ret = vmstate_register(vm->vmstate, &cpu_desc, i, &p->cpus[i], &err);
	}
	if (!ret && vm->uart)
		ret = uart_persist_register(vm->uart, vm->vmstate, &err);
	if (!ret && vm->kbd)
		ret = i8042_persist_register(vm->kbd, vm->vmstate, &err);
	if (!ret)
		ret = virtio_persist_register(vm, &err);
	if (ret)
		log_err("device state: %s", err.msg[0] ? err.msg : strerror(-ret));
	return ret;
}

void persist_thaw(struct vm *vm)
{
	struct persist *p = vm->persist;

	if (!p)
		return;
	p->clock.frozen = false;
	p->tsc_ref_valid = false;
	p->irq.chip_frozen = p->irq.pit_frozen = false;
	for (unsigned int i = 0; i < vm->ncpus; i++)
		p->cpus[i].frozen = false;
}

void persist_free(struct vm *vm)
{
	if (vm->vmstate)
		vmstate_registry_free(vm->vmstate);
	vm->vmstate = NULL;
	virtio_persist_free(vm);
	if (vm->persist)
		free(vm->persist->cpus);
	free(vm->persist);
	vm->persist = NULL;
}
