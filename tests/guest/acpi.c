/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Just enough ACPI to find the platform's reset register: RSDP (from
 * hvm_start_info) -> XSDT or RSDT -> FADT ("FACP") -> RESET_REG and
 * RESET_VALUE, used when the FADT flags say RESET_REG_SUP. QEMU microvm has
 * no i8042 and describes its reset register (in the GED) this way; a VMM
 * without ACPI passes rsdp_paddr = 0 and guest_exit() uses the i8042.
 *
 * Also the virtio-mmio transports the DSDT describes: QEMU microvm with ACPI
 * (its default) does not put virtio_mmio.device= entries on the command line
 * but lists each transport as a device with _HID "LNRO0005" whose _CRS holds
 * a Memory32Fixed (base, size) and an Extended Interrupt descriptor. There is
 * no AML interpreter here: after each "LNRO0005" string the next such
 * resource descriptors (within LNRO_WINDOW bytes) are taken.
 */
#include "guest.h"

#define FADT_FLAGS	   112
#define FADT_RESET_REG	   116
#define FADT_RESET_VALUE   128
#define FADT_RESET_REG_SUP (1u << 10)
#define GAS_SYSTEM_MEMORY  0
#define GAS_SYSTEM_IO	   1
#define FADT_DSDT	   40
#define FADT_X_DSDT	   140
#define FOUR_GIB	   (4ULL << 30) /* boot.S maps only this much */
#define LNRO_WINDOW	   128
#define RES_MEM32_FIXED	   0x86
#define RES_EXT_IRQ	   0x89

struct sdt_header {
	char signature[4];
	uint32_t length;
	uint8_t revision, checksum;
	char oem_id[6], oem_table_id[8];
	uint32_t oem_revision, creator_id, creator_revision;
} __attribute__((packed));

struct rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length; /* revision >= 2 */
	uint64_t xsdt;
} __attribute__((packed));

static uint8_t reset_space; /* GAS_SYSTEM_IO or GAS_SYSTEM_MEMORY */
static uint64_t reset_addr;
static uint8_t reset_value;
static bool have_reset;
static struct virtio_mmio_dev acpi_virtio[MAX_VIRTIO_MMIO];
static unsigned int nr_acpi_virtio;

static uint64_t rd(const void *p, unsigned int size)
{
	uint64_t v = 0;
	memcpy(&v, p, size);
	return v;
}

static bool mapped(uint64_t addr, uint64_t len)
{
	return addr && addr < FOUR_GIB && len <= FOUR_GIB - addr;
}

static void scan_dsdt(uint64_t paddr)
{
	const uint8_t *t = (const void *)paddr;
	uint32_t len;

	if (!mapped(paddr, sizeof(struct sdt_header)) || memcmp(t, "DSDT", 4))
		return;
	len = (uint32_t)rd(t + 4, 4);
	if (!mapped(paddr, len))
		return;
	for (uint32_t i = sizeof(struct sdt_header); i + 8 <= len; i++) {
		struct virtio_mmio_dev d = {0, 0, 0};
		uint32_t stop;

		if (memcmp(t + i, "LNRO0005", 8))
			continue;
		stop = i + LNRO_WINDOW < len ? i + LNRO_WINDOW : len;
		for (uint32_t j = i + 8; j + 12 <= stop; j++) {
			if (!d.size && t[j] == RES_MEM32_FIXED && t[j + 1] == 9 && !t[j + 2]) {
				d.base = rd(t + j + 4, 4);
				d.size = rd(t + j + 8, 4);
			} else if (d.size && t[j] == RES_EXT_IRQ && t[j + 4] >= 1) {
				d.irq = (uint32_t)rd(t + j + 5, 4);
				break;
			}
		}
		if (d.size && nr_acpi_virtio < MAX_VIRTIO_MMIO)
			acpi_virtio[nr_acpi_virtio++] = d;
		i += 7;
	}
}

unsigned int acpi_virtio_mmio(const struct virtio_mmio_dev **devs)
{
	*devs = acpi_virtio;
	return nr_acpi_virtio;
}

void acpi_init(uint64_t rsdp_paddr)
{
	const struct rsdp *rsdp = (const void *)rsdp_paddr;
	const struct sdt_header *root;
	unsigned int entry_size;
	uint64_t root_paddr;

	if (!mapped(rsdp_paddr, sizeof(*rsdp)) || memcmp(rsdp->signature, "RSD PTR ", 8))
		return;
	if (rsdp->revision >= 2 && rsdp->xsdt) {
		root_paddr = rsdp->xsdt;
		entry_size = 8;
	} else {
		root_paddr = rsdp->rsdt;
		entry_size = 4;
	}
	if (!mapped(root_paddr, sizeof(*root)))
		return;
	root = (const void *)root_paddr;
	if (!mapped(root_paddr, root->length))
		return;
	for (uint32_t off = sizeof(*root); off + entry_size <= root->length; off += entry_size) {
		uint64_t t = rd((const uint8_t *)root + off, entry_size);
		const uint8_t *fadt = (const void *)t;

		if (!mapped(t, sizeof(struct sdt_header)) || memcmp(fadt, "FACP", 4))
			continue;
		if (rd(fadt + 4, 4) <= FADT_RESET_VALUE || !mapped(t, rd(fadt + 4, 4)))
			return;
		if (rd(fadt + 4, 4) >= FADT_X_DSDT + 8 && rd(fadt + FADT_X_DSDT, 8))
			scan_dsdt(rd(fadt + FADT_X_DSDT, 8));
		else
			scan_dsdt(rd(fadt + FADT_DSDT, 4));
		if (!(rd(fadt + FADT_FLAGS, 4) & FADT_RESET_REG_SUP))
			return;
		reset_space = fadt[FADT_RESET_REG];
		reset_addr = rd(fadt + FADT_RESET_REG + 4, 8);
		reset_value = fadt[FADT_RESET_VALUE];
		have_reset = (reset_space == GAS_SYSTEM_IO && reset_addr <= 0xffff) ||
			     (reset_space == GAS_SYSTEM_MEMORY && mapped(reset_addr, 1));
		return;
	}
}

bool acpi_reset(void)
{
	if (!have_reset)
		return false;
	if (reset_space == GAS_SYSTEM_IO)
		outb((uint16_t)reset_addr, reset_value);
	else
		*(volatile uint8_t *)reset_addr = reset_value;
	return true;
}
