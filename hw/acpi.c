/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ACPI tables for the machine, so a distribution kernel finds its vCPUs
 * (MADT) and its virtio-mmio devices (DSDT, _HID "LNRO0005") as it does on
 * QEMU microvm, Firecracker and cloud-hypervisor. Hardware-reduced ACPI
 * (ACPI 6.5, 4.1): no PM1/GPE blocks, no SCI, no FACS.
 *
 * At ACPI_BASE (0xe0000, inside the BIOS area the memory map reserves, on
 * a 16-byte boundary, so the legacy RSDP scan finds it too):
 *
 *   RSDP (rev 2) -> XSDT -> FADT (rev 6, HW_REDUCED_ACPI) -> DSDT
 *                        -> MADT
 *
 * MADT: one Processor Local APIC per vCPU (APIC id = vCPU index, as
 * vcpu.c's CPUID says), the in-kernel IOAPIC (id 0, GSI base 0), LINT1 as
 * NMI on every CPU. No Interrupt Source Override: KVM's default GSI routing
 * is the identity for ISA IRQs 0-15 (the PIT raises GSI 0 = IOAPIC pin 0;
 * QEMU reroutes it to pin 2 and so must declare 0 -> 2, colovm does not),
 * and every ISA line is edge-triggered, active high, the ISA default.
 *
 * FADT: the reset register is the i8042 command port (0x64 <- 0xfe, the
 * reset i8042.c honours); the sleep control and status registers are
 * ACPI_SLEEP_PORT (acpi-sleep.c); no CMOS RTC, no VGA, no MSI. The boot
 * flags do not claim an 8042: colovm's has a reset line but no keyboard,
 * and Linux, told it is there, probes it and fails ("probe of i8042 failed
 * with error -22"). (Linux does not use the reset register on a hardware-reduced
 * machine without EFI: it jumps to the BIOS reset vector, see boot.c.)
 *
 * DSDT: \_S5 (soft-off is sleep type ACPI_S5_TYPE, so `poweroff` works),
 * \_SB.COM1 (PNP0501, I/O 0x3f8-0x3ff, IRQ 4) and one \_SB.VRnn per
 * virtio-mmio transport: Memory32Fixed window + an edge, active-high
 * Extended Interrupt on its GSI, as QEMU microvm writes it; the power
 * button: \_SB.GED (ACPI0013, on ACPI_GED_GSI) and \_SB.PWRB (PNP0C0C).
 *
 * acpi_build() is pure (a description in, bytes out) so tests run it
 * without KVM; acpi_load() describes this VM and writes the result into
 * guest RAM. The tables are ordinary RAM: snapshots, checkpoints and
 * migration carry them with the rest, a reset writes them again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/virtio.h"

#define ACPI_OEM_ID	  "COLOVM"
#define ACPI_OEM_TABLE_ID "COLOVM  "
#define ACPI_CREATOR_ID	  "CLVM"
#define ACPI_HEADER_SIZE  36

#define RSDP_SIZE 36
#define FADT_SIZE 276

/* FADT field offsets (ACPI 6.5, table 5.9). */
#define FADT_DSDT	    40
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS	    112
#define FADT_RESET_REG	    116
#define FADT_RESET_VALUE    128
#define FADT_MINOR_VERSION  131
#define FADT_X_DSDT	    140
#define FADT_SLEEP_CONTROL  244
#define FADT_SLEEP_STATUS   256
#define FADT_HYPERVISOR_ID  268

#define FADT_F_WBINVD	     (1u << 0)
#define FADT_F_PWR_BUTTON    (1u << 4) /* no fixed power button */
#define FADT_F_SLP_BUTTON    (1u << 5) /* no fixed sleep button */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED    (1u << 20)

#define IAPC_NO_VGA	 (1u << 2)
#define IAPC_NO_MSI	 (1u << 3)
#define IAPC_NO_CMOS_RTC (1u << 5)

#define GAS_SYSTEM_IO	   1
#define GAS_ACCESS_BYTE	   1
#define I8042_COMMAND_PORT 0x64
#define I8042_CMD_RESET	   0xfe

#define MADT_PCAT_COMPAT (1u << 0) /* the two 8259s are there too */
#define MADT_LAPIC	 0
#define MADT_IOAPIC	 1
#define MADT_LAPIC_NMI	 4
#define MADT_ENABLED	 (1u << 0)
#define MADT_ALL_CPUS	 0xff

#define UART_PORT 0x3f8
#define UART_IRQ  4

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

uint8_t acpi_checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)-sum;
}

/* The common table header; length and checksum are filled by sdt_finish(). */
static void sdt_header(uint8_t *t, const char *sig, uint8_t revision)
{
	memcpy(t, sig, 4);
	t[8] = revision;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	put32(t + 24, 1); /* OEM revision */
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	put32(t + 32, 1); /* creator revision */
}

static void sdt_finish(uint8_t *t, size_t len)
{
	put32(t + 4, (uint32_t)len);
	t[9] = 0;
	t[9] = acpi_checksum(t, len);
}

/* Where the next table goes: 16-byte aligned, or 0 if n bytes do not fit. */
struct acpi_out {
	uint8_t *buf;
	size_t size, len;
	uint64_t gpa;
};

static uint8_t *acpi_alloc(struct acpi_out *o, size_t n, uint64_t *gpa)
{
	size_t at = (o->len + 15) & ~(size_t)15;

	if (at > o->size || n > o->size - at)
		return NULL;
	memset(o->buf + at, 0, n);
	o->len = at + n;
	*gpa = o->gpa + at;
	return o->buf + at;
}

/*
 * The power button, as QEMU microvm and cloud-hypervisor have it: a Generic
 * Event Device (ACPI 6.5, 5.6.9) whose interrupt is ACPI_GED_GSI, and a
 * control-method power button it notifies:
 *
 *   Device (GED) {
 *     Name (_HID, "ACPI0013")  Name (_UID, 0)
 *     Name (_CRS, ResourceTemplate () {
 *       Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { GSI } })
 *     Method (_EVT, 1) {           // Arg0: the GSI that fired
 *       If (LEqual (Arg0, GSI)) { Notify (\_SB.PWRB, 0x80) }  // pressed
 *     }
 *   }
 *   Device (PWRB) { Name (_HID, EisaId ("PNP0C0C"))  Name (_UID, 0) }
 *
 * Linux's GED driver (drivers/acpi/evged.c) requests the interrupt, which
 * unmasks its IOAPIC pin, and runs _EVT on each edge; the button driver
 * turns 0x80 into KEY_POWER. acpi-ged.c pulses the line.
 */
static void acpi_build_power_button(struct aml *a)
{
	uint8_t res[16];
	struct aml r;

	aml_begin_device(a, "GED");
	aml_name_decl(a, "_HID");
	aml_string(a, "ACPI0013");
	aml_name_decl(a, "_UID");
	aml_integer(a, 0);
	aml_init(&r, res, sizeof(res));
	aml_res_interrupt(&r, ACPI_GED_GSI, AML_IRQ_CONSUMER | AML_IRQ_EDGE);
	aml_res_end(&r);
	aml_name_decl(a, "_CRS");
	aml_buffer(a, res, r.len);
	aml_begin_method(a, "_EVT", 1, false);
	aml_begin_if(a);
	aml_lequal(a);
	aml_arg(a, 0);
	aml_integer(a, ACPI_GED_GSI);
	aml_notify(a);
	aml_name(a, "\\_SB_.PWRB");
	aml_integer(a, ACPI_NOTIFY_BUTTON_PRESSED);
	aml_end(a); /* If */
	aml_end(a); /* Method */
	aml_end(a); /* Device */
	if (r.overflow)
		a->overflow = true;

	aml_begin_device(a, "PWRB");
	aml_name_decl(a, "_HID");
	aml_eisaid(a, "PNP0C0C");
	aml_name_decl(a, "_UID");
	aml_integer(a, 0);
	aml_end(a);
}

static int acpi_build_dsdt(const struct acpi_machine *m, struct acpi_out *o, uint64_t *gpa)
{
	size_t room = o->size > o->len + 16 + ACPI_HEADER_SIZE ? o->size - o->len - 16 : 0;
	uint8_t res[64], *t;
	struct aml a, r;
	char name[16];

	/* Encode into the free space after a header-sized gap, then claim it. */
	t = room ? acpi_alloc(o, room, gpa) : NULL;
	if (!t)
		return -ENOSPC;
	aml_init(&a, t + ACPI_HEADER_SIZE, room - ACPI_HEADER_SIZE);

	aml_name_decl(&a, "\\_S5_");
	aml_begin_package(&a, 2); /* SLP_TYPa, SLP_TYPb */
	aml_integer(&a, ACPI_S5_TYPE);
	aml_integer(&a, 0);
	aml_end(&a);

	aml_begin_scope(&a, "\\_SB_");

	aml_begin_device(&a, "COM1");
	aml_name_decl(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name_decl(&a, "_UID");
	aml_integer(&a, 1);
	aml_init(&r, res, sizeof(res));
	aml_res_io(&r, UART_PORT, 8);
	aml_res_irq_no_flags(&r, UART_IRQ);
	aml_res_end(&r);
	aml_name_decl(&a, "_CRS");
	aml_buffer(&a, res, r.len);
	aml_end(&a);

	for (unsigned int i = 0; i < m->nvirtio; i++) {
		snprintf(name, sizeof(name), "VR%02u", i);
		aml_begin_device(&a, name);
		aml_name_decl(&a, "_HID");
		aml_string(&a, "LNRO0005");
		aml_name_decl(&a, "_UID");
		aml_integer(&a, i);
		aml_name_decl(&a, "_CCA"); /* DMA is cache-coherent */
		aml_integer(&a, 1);
		aml_init(&r, res, sizeof(res));
		aml_res_memory32_fixed(&r, (uint32_t)m->virtio[i].base, m->virtio[i].size);
		aml_res_interrupt(&r, m->virtio[i].gsi, AML_IRQ_CONSUMER | AML_IRQ_EDGE);
		aml_res_end(&r);
		aml_name_decl(&a, "_CRS");
		aml_buffer(&a, res, r.len);
		aml_end(&a);
	}

	acpi_build_power_button(&a);

	aml_end(&a);
	if (a.overflow || r.overflow || a.depth)
		return -ENOSPC;
	o->len = (size_t)(t - o->buf) + ACPI_HEADER_SIZE + a.len;
	sdt_header(t, "DSDT", 2);
	sdt_finish(t, ACPI_HEADER_SIZE + a.len);
	return 0;
}

static int acpi_build_fadt(struct acpi_out *o, uint64_t dsdt, uint64_t *gpa)
{
	uint8_t *t = acpi_alloc(o, FADT_SIZE, gpa);

	if (!t)
		return -ENOSPC;
	sdt_header(t, "FACP", 6);
	put32(t + FADT_DSDT, (uint32_t)dsdt);
	put64(t + FADT_X_DSDT, dsdt);
	put16(t + FADT_IAPC_BOOT_ARCH, IAPC_NO_VGA | IAPC_NO_MSI | IAPC_NO_CMOS_RTC);
	put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON |
				  FADT_F_RESET_REG_SUP | FADT_F_HW_REDUCED);
	t[FADT_RESET_REG] = GAS_SYSTEM_IO;
	t[FADT_RESET_REG + 1] = 8; /* bit width */
	t[FADT_RESET_REG + 3] = GAS_ACCESS_BYTE;
	put64(t + FADT_RESET_REG + 4, I8042_COMMAND_PORT);
	t[FADT_RESET_VALUE] = I8042_CMD_RESET;
	for (int i = 0; i < 2; i++) {
		uint8_t *gas = t + (i ? FADT_SLEEP_STATUS : FADT_SLEEP_CONTROL);

		gas[0] = GAS_SYSTEM_IO;
		gas[1] = 8;
		gas[3] = GAS_ACCESS_BYTE;
		put64(gas + 4, ACPI_SLEEP_PORT);
	}
	t[FADT_MINOR_VERSION] = 5; /* ACPI 6.5 */
	memcpy(t + FADT_HYPERVISOR_ID, "COLOVM\0\0", 8);
	sdt_finish(t, FADT_SIZE);
	return 0;
}

static int acpi_build_madt(const struct acpi_machine *m, struct acpi_out *o, uint64_t *gpa)
{
	size_t len = ACPI_HEADER_SIZE + 8 + 8 * (size_t)m->ncpus + 12 + 6;
	uint8_t *t = acpi_alloc(o, len, gpa), *e;

	if (!t)
		return -ENOSPC;
	sdt_header(t, "APIC", 5);
	put32(t + ACPI_HEADER_SIZE, (uint32_t)LAPIC_BASE);
	put32(t + ACPI_HEADER_SIZE + 4, MADT_PCAT_COMPAT);
	e = t + ACPI_HEADER_SIZE + 8;
	for (unsigned int i = 0; i < m->ncpus; i++, e += 8) {
		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i; /* ACPI processor UID */
		e[3] = (uint8_t)i; /* APIC id */
		put32(e + 4, MADT_ENABLED);
	}
	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = 0; /* IOAPIC id: KVM's reset value */
	put32(e + 4, (uint32_t)IOAPIC_BASE);
	put32(e + 8, 0); /* GSI base */
	e += 12;
	e[0] = MADT_LAPIC_NMI;
	e[1] = 6;
	e[2] = MADT_ALL_CPUS;
	put16(e + 3, 0); /* conforming polarity and trigger */
	e[5] = 1;	 /* LINT1 */
	sdt_finish(t, len);
	return 0;
}

int acpi_build(const struct acpi_machine *m, uint64_t gpa, uint8_t *buf, size_t size)
{
	struct acpi_out o = {.buf = buf, .size = size, .gpa = gpa};
	uint64_t rsdp_gpa, xsdt, fadt, madt, dsdt;
	uint8_t *rsdp, *x;
	int ret;

	if (m->ncpus < 1 || m->ncpus > ACPI_MAX_CPUS || m->nvirtio > ACPI_MAX_VIRTIO || (gpa & 15))
		return -EINVAL;
	for (unsigned int i = 0; i < m->nvirtio; i++) {
		if (m->virtio[i].base > UINT32_MAX - m->virtio[i].size ||
		    m->virtio[i].gsi == ACPI_GED_GSI)
			return -EINVAL;
	}
	rsdp = acpi_alloc(&o, RSDP_SIZE, &rsdp_gpa);
	x = acpi_alloc(&o, ACPI_HEADER_SIZE + 2 * 8, &xsdt);
	if (!rsdp || !x)
		return -ENOSPC;
	ret = acpi_build_dsdt(m, &o, &dsdt);
	if (!ret)
		ret = acpi_build_fadt(&o, dsdt, &fadt);
	if (!ret)
		ret = acpi_build_madt(m, &o, &madt);
	if (ret)
		return ret;

	sdt_header(x, "XSDT", 1);
	put64(x + ACPI_HEADER_SIZE, fadt);
	put64(x + ACPI_HEADER_SIZE + 8, madt);
	sdt_finish(x, ACPI_HEADER_SIZE + 2 * 8);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, ACPI_OEM_ID, 6);
	rsdp[15] = 2; /* revision: XSDT */
	put32(rsdp + 20, RSDP_SIZE);
	put64(rsdp + 24, xsdt);
	rsdp[8] = acpi_checksum(rsdp, 20);
	rsdp[32] = acpi_checksum(rsdp, RSDP_SIZE);
	return (int)o.len;
}

int acpi_load(struct vm *vm)
{
	struct acpi_machine m = {.ncpus = vm->cfg.cpus};
	uint8_t *buf;
	int n;

	for (unsigned int i = 0; i < vm->nnet + vm->nblk && i < ACPI_MAX_VIRTIO; i++) {
		const struct virtio_mmio *t = i < vm->nnet
						  ? virtio_net_transport(vm->net[i])
						  : virtio_blk_transport(vm->blk[i - vm->nnet]);

		m.virtio[m.nvirtio++] = (struct acpi_virtio){t->base, VIRTIO_MMIO_SIZE, t->gsi};
	}
	buf = calloc(1, ACPI_SIZE);
	if (!buf)
		return -ENOMEM;
	n = acpi_build(&m, ACPI_BASE, buf, ACPI_SIZE);
	if (n < 0) {
		log_err("cannot build the ACPI tables: %s", strerror(-n));
		free(buf);
		return n;
	}
	/* The whole area, so a rebuild after a reset leaves nothing stale. */
	n = mem_write(&vm->mem, ACPI_BASE, buf, ACPI_SIZE);
	free(buf);
	return n;
}
