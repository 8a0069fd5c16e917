/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Just enough ACPI to find the platform's reset register: RSDP (from
 * hvm_start_info) -> XSDT or RSDT -> FADT ("FACP") -> RESET_REG and
 * RESET_VALUE, used when the FADT flags say RESET_REG_SUP. QEMU microvm has
 * no i8042 and describes its reset register (in the GED) this way; a VMM
 * without ACPI passes rsdp_paddr = 0 and guest_exit() uses the i8042.
 */
#include "guest.h"

#define FADT_FLAGS	   112
#define FADT_RESET_REG	   116
#define FADT_RESET_VALUE   128
#define FADT_RESET_REG_SUP (1u << 10)
#define GAS_SYSTEM_MEMORY  0
#define GAS_SYSTEM_IO	   1
#define FOUR_GIB	   (4ULL << 30) /* boot.S maps only this much */

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
