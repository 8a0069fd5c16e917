/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Boot loaders: the guest memory map, kernel command line and initrd
 * placement shared by both, then boot_load() writes the ACPI tables
 * (acpi.c) and picks the loader by looking at the image: an ELF with a Xen
 * PVH entry note, or a bzImage ("HdrS"). Both hand the kernel the RSDP.
 */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hw/internal.h"

int boot_memmap(const struct vm *vm, struct boot_e820 *map, int max)
{
	const struct guest_mem *m = &vm->mem;
	uint64_t low_end = m->regions[0].size;
	int n = 0;

	if (max < 4)
		return -ENOSPC;
	map[n++] = (struct boot_e820){0, EBDA_START, 1};
	map[n++] = (struct boot_e820){EBDA_START, HIMEM_START - EBDA_START, 2};
	map[n++] = (struct boot_e820){HIMEM_START, low_end - HIMEM_START, 1};
	if (m->nregions > 1)
		map[n++] = (struct boot_e820){m->regions[1].gpa, m->regions[1].size, 1};
	return n;
}

/* Place the initrd page-aligned at the top of low RAM, below `max_addr`,
 * above `kernel_end`. Returns its address or 0 if it does not fit. */
static uint64_t boot_place_initrd(struct vm *vm, const uint8_t *initrd, size_t len,
				  uint64_t kernel_end, uint64_t max_addr)
{
	uint64_t top = MIN(vm->mem.regions[0].size, max_addr);
	uint64_t addr;

	if (len > top)
		return 0;
	addr = ALIGN_DOWN(top - len, PAGE_SIZE);
	if (addr < ALIGN_UP(kernel_end, PAGE_SIZE))
		return 0;
	if (mem_write(&vm->mem, addr, initrd, len))
		return 0;
	return addr;
}

static int boot_write_cmdline(struct vm *vm, const char *cmdline, uint64_t max)
{
	size_t len = cmdline ? strlen(cmdline) : 0;

	if (len + 1 > max) {
		log_err("kernel command line too long (%zu bytes, at most %llu)", len,
			(unsigned long long)(max - 1));
		return -E2BIG;
	}
	return mem_write(&vm->mem, CMDLINE_ADDR, cmdline ? cmdline : "", len + 1);
}

/* ---- PVH ----------------------------------------------------------------- */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr, size, cmdline_paddr, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

/* Bounds-checked view of the ELF64 program headers. */
static const Elf64_Phdr *elf_phdrs(const uint8_t *img, size_t len, unsigned int *n)
{
	const Elf64_Ehdr *eh = (const void *)img;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return NULL;
	*n = eh->e_phnum;
	return (const void *)(img + eh->e_phoff);
}

/* Find the PVH entry in the PT_NOTE segments; 0 if none. */
static uint64_t elf_pvh_entry(const uint8_t *img, size_t len)
{
	unsigned int n = 0;
	const Elf64_Phdr *ph = elf_phdrs(img, len, &n);

	for (unsigned int i = 0; ph && i < n; i++) {
		uint64_t off = ph[i].p_offset, end;

		if (ph[i].p_type != PT_NOTE || off > len || ph[i].p_filesz > len - off)
			continue;
		end = off + ph[i].p_filesz;
		while (end - off >= sizeof(Elf64_Nhdr)) {
			const Elf64_Nhdr *nh = (const void *)(img + off);
			uint64_t name = off + sizeof(*nh);
			uint64_t desc = name + ALIGN_UP((uint64_t)nh->n_namesz, 4);
			uint64_t next = desc + ALIGN_UP((uint64_t)nh->n_descsz, 4);

			if (next > end || next <= off)
				break;
			if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
			    !memcmp(img + name, "Xen", 4) && nh->n_descsz >= 4) {
				uint64_t v = 0;

				memcpy(&v, img + desc, nh->n_descsz >= 8 ? 8 : 4);
				return nh->n_descsz >= 8 ? v : (uint32_t)v;
			}
			off = next;
		}
	}
	return 0;
}

bool boot_is_pvh_elf(const uint8_t *img, size_t len)
{
	return elf_pvh_entry(img, len) != 0;
}

int boot_load_pvh(struct vm *vm, const uint8_t *img, size_t len, const struct vm_config *cfg,
		  const uint8_t *initrd, size_t initrd_len)
{
	struct {
		struct hvm_start_info si;
		struct hvm_modlist_entry mod;
		struct hvm_memmap_entry map[8];
	} info = {0};
	struct boot_e820 e820[8];
	uint64_t kernel_end = 0;
	unsigned int n = 0;
	const Elf64_Phdr *ph = elf_phdrs(img, len, &n);
	int nmap, ret;

	for (unsigned int i = 0; ph && i < n; i++) {
		const Elf64_Phdr *p = &ph[i];
		void *dst;

		if (p->p_type != PT_LOAD || !p->p_memsz)
			continue;
		if (p->p_filesz > p->p_memsz || p->p_offset > len || p->p_filesz > len - p->p_offset) {
			log_err("%s: corrupt ELF: segment %u lies outside the file", cfg->kernel, i);
			return -ENOEXEC;
		}
		dst = mem_ptr(&vm->mem, p->p_paddr, p->p_memsz);
		if (!dst || p->p_paddr < HIMEM_START) {
			log_err("%s: segment %u [%#llx, +%#llx) does not fit in guest RAM "
				"(--mem %llu MiB)",
				cfg->kernel, i, (unsigned long long)p->p_paddr,
				(unsigned long long)p->p_memsz, (unsigned long long)cfg->mem_mib);
			return -E2BIG;
		}
		memcpy(dst, img + p->p_offset, p->p_filesz);
		memset((uint8_t *)dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		mem_mark_dirty(&vm->mem, p->p_paddr, p->p_memsz);
		kernel_end = MAX(kernel_end, p->p_paddr + p->p_memsz);
	}
	if (!kernel_end) {
		log_err("%s: ELF has no loadable segment", cfg->kernel);
		return -ENOEXEC;
	}
	ret = boot_write_cmdline(vm, cfg->cmdline, CMDLINE_MAX);
	if (ret)
		return ret;

	info.si.magic = HVM_START_MAGIC;
	info.si.version = 1;
	info.si.cmdline_paddr = CMDLINE_ADDR;
	info.si.rsdp_paddr = ACPI_RSDP_ADDR;
	if (initrd) {
		uint64_t at = boot_place_initrd(vm, initrd, initrd_len, kernel_end, LOW_RAM_MAX);

		if (!at) {
			log_err("%s: initrd (%zu bytes) does not fit in guest RAM with the kernel",
				cfg->initrd, initrd_len);
			return -E2BIG;
		}
		info.mod = (struct hvm_modlist_entry){.paddr = at, .size = initrd_len};
		info.si.nr_modules = 1;
		info.si.modlist_paddr = PVH_INFO_ADDR + offsetof(__typeof__(info), mod);
	}
	nmap = boot_memmap(vm, e820, (int)ARRAY_SIZE(e820));
	if (nmap < 0)
		return nmap;
	for (int i = 0; i < nmap; i++)
		info.map[i] = (struct hvm_memmap_entry){e820[i].addr, e820[i].size, e820[i].type, 0};
	info.si.memmap_paddr = PVH_INFO_ADDR + offsetof(__typeof__(info), map);
	info.si.memmap_entries = (uint32_t)nmap;
	ret = mem_write(&vm->mem, PVH_INFO_ADDR, &info, sizeof(info));
	if (ret)
		return ret;
	vm->boot = (struct boot_info){.entry = elf_pvh_entry(img, len), .pvh = true};
	return 0;
}

/* ---- Linux bzImage, 64-bit boot protocol ---------------------------------- */

/* Offsets in boot_params / the setup header (Documentation/x86/boot.rst). */
#define BP_ACPI_RSDP_ADDR   0x070
#define BP_E820_ENTRIES	    0x1e8
#define BP_SETUP_SECTS	    0x1f1
#define BP_BOOT_FLAG	    0x1fe
#define BP_JUMP		    0x200
#define BP_HEADER	    0x202
#define BP_VERSION	    0x206
#define BP_TYPE_OF_LOADER   0x210
#define BP_LOADFLAGS	    0x211
#define BP_RAMDISK_IMAGE    0x218
#define BP_RAMDISK_SIZE	    0x21c
#define BP_HEAP_END_PTR	    0x224
#define BP_CMD_LINE_PTR	    0x228
#define BP_INITRD_ADDR_MAX  0x22c
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_RELOCATABLE	    0x234
#define BP_XLOADFLAGS	    0x236
#define BP_CMDLINE_SIZE	    0x238
#define BP_PREF_ADDRESS	    0x258
#define BP_INIT_SIZE	    0x260
#define BP_E820_TABLE	    0x2d0
#define BP_E820_MAX	    128

#define XLF_KERNEL_64	 (1u << 0)
#define LOADED_HIGH	 (1u << 0)
#define CAN_USE_HEAP	 (1u << 7)

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

bool boot_is_bzimage(const uint8_t *img, size_t len)
{
	return len >= 0x300 && !memcmp(img + BP_HEADER, "HdrS", 4) &&
	       rd16(img + BP_BOOT_FLAG) == 0xaa55;
}

/* Identity map of the first 4 GiB with 2 MiB pages, and a GDT with the
 * __BOOT_CS/__BOOT_DS selectors the 64-bit entry expects. */
static int boot_write_long_mode_tables(struct vm *vm)
{
	static const uint64_t gdt[4] = {0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
	uint64_t *pml4 = mem_ptr(&vm->mem, BOOT_PML4_ADDR, PAGE_SIZE);
	uint64_t *pdpt = mem_ptr(&vm->mem, BOOT_PDPT_ADDR, PAGE_SIZE);
	uint64_t *pd = mem_ptr(&vm->mem, BOOT_PD_ADDR, 4 * PAGE_SIZE);

	if (!pml4 || !pdpt || !pd)
		return -EFAULT;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = BOOT_PDPT_ADDR | 0x3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + i * PAGE_SIZE) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB */
	mem_mark_dirty(&vm->mem, BOOT_PML4_ADDR, 6 * PAGE_SIZE);
	return mem_write(&vm->mem, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

int boot_load_bzimage(struct vm *vm, const uint8_t *img, size_t len,
		      const struct vm_config *cfg, const uint8_t *initrd, size_t initrd_len)
{
	uint8_t *bp = mem_ptr(&vm->mem, ZERO_PAGE_ADDR, PAGE_SIZE);
	uint16_t version = rd16(img + BP_VERSION);
	size_t setup_sects = img[BP_SETUP_SECTS] ? img[BP_SETUP_SECTS] : 4;
	size_t setup_size = (setup_sects + 1) * 512, hdr_end = BP_HEADER + img[BP_JUMP + 1];
	uint64_t load, init_size, kernel_end, low_end = vm->mem.regions[0].size;
	struct boot_e820 e820[8];
	uint32_t cmdline_max;
	int nmap, ret;

	if (version < 0x20c || !(rd16(img + BP_XLOADFLAGS) & XLF_KERNEL_64)) {
		log_err("%s: bzImage boot protocol %u.%02u without a 64-bit entry point "
			"(need 2.12+ with XLF_KERNEL_64)",
			cfg->kernel, version >> 8, version & 0xff);
		return -ENOEXEC;
	}
	if (setup_size >= len || hdr_end > 0x300 || !bp) {
		log_err("%s: corrupt bzImage: setup size %zu, file %zu bytes", cfg->kernel,
			setup_size, len);
		return -ENOEXEC;
	}
	init_size = rd32(img + BP_INIT_SIZE);
	load = img[BP_RELOCATABLE] ? rd64(img + BP_PREF_ADDRESS) : HIMEM_START;
	if (load < HIMEM_START)
		load = HIMEM_START;
	init_size = MAX(init_size, len - setup_size);
	kernel_end = load + init_size;
	if (kernel_end > low_end || !mem_ptr(&vm->mem, load, len - setup_size)) {
		log_err("%s: kernel needs %llu MiB at %#llx, more than --mem %llu MiB", cfg->kernel,
			(unsigned long long)((init_size + MiB - 1) / MiB), (unsigned long long)load,
			(unsigned long long)cfg->mem_mib);
		return -E2BIG;
	}
	ret = mem_write(&vm->mem, load, img + setup_size, len - setup_size);
	if (ret)
		return ret;

	memset(bp, 0, PAGE_SIZE);
	memcpy(bp + BP_SETUP_SECTS, img + BP_SETUP_SECTS, hdr_end - BP_SETUP_SECTS);
	bp[BP_TYPE_OF_LOADER] = 0xff;
	bp[BP_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	bp[BP_HEAP_END_PTR] = 0x00, bp[BP_HEAP_END_PTR + 1] = 0xfe; /* 0xfe00 - 0x200 */
	wr32(bp + BP_CMD_LINE_PTR, CMDLINE_ADDR);
	if (version >= 0x20e) /* acpi_rsdp_addr; older kernels scan 0xe0000-0xfffff */
		wr64(bp + BP_ACPI_RSDP_ADDR, ACPI_RSDP_ADDR);
	cmdline_max = rd32(img + BP_CMDLINE_SIZE);
	ret = boot_write_cmdline(vm, cfg->cmdline, MIN((uint64_t)cmdline_max + 1, CMDLINE_MAX));
	if (ret)
		return ret;
	if (initrd) {
		uint64_t max = (uint64_t)rd32(img + BP_INITRD_ADDR_MAX) + 1;
		uint64_t at = boot_place_initrd(vm, initrd, initrd_len, kernel_end, max);

		if (!at) {
			log_err("%s: initrd (%zu bytes) does not fit in guest RAM with the kernel",
				cfg->initrd, initrd_len);
			return -E2BIG;
		}
		wr32(bp + BP_RAMDISK_IMAGE, (uint32_t)at);
		wr32(bp + BP_RAMDISK_SIZE, (uint32_t)initrd_len);
	}
	nmap = boot_memmap(vm, e820, (int)ARRAY_SIZE(e820));
	if (nmap < 0)
		return nmap;
	bp[BP_E820_ENTRIES] = (uint8_t)nmap;
	for (int i = 0; i < nmap; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * i;

		memcpy(e, &e820[i].addr, 8);
		memcpy(e + 8, &e820[i].size, 8);
		memcpy(e + 16, &e820[i].type, 4);
	}
	mem_mark_dirty(&vm->mem, ZERO_PAGE_ADDR, PAGE_SIZE);
	ret = boot_write_long_mode_tables(vm);
	if (ret)
		return ret;
	vm->boot = (struct boot_info){.entry = load + 0x200, .pvh = false,
				      .zero_page = ZERO_PAGE_ADDR};
	return 0;
}

/*
 * There is no firmware, but a kernel may still jump to the BIOS reset
 * vector F000:FFF0: Linux does when it reboots a hardware-reduced ACPI
 * machine without EFI (reboot_type BOOT_EFI, then BOOT_BIOS). A BIOS's
 * POST would reset the machine; these bytes do it through the i8042:
 * mov al, 0xfe; out 0x64, al; cli; hlt; jmp $-1.
 */
static int boot_write_reset_vector(struct vm *vm)
{
	static const uint8_t code[] = {0xb0, 0xfe, 0xe6, 0x64, 0xfa, 0xf4, 0xeb, 0xfd};

	return mem_write(&vm->mem, RESET_VECTOR_ADDR, code, sizeof(code));
}

int boot_load(struct vm *vm, const struct vm_config *cfg)
{
	uint8_t *img = NULL, *initrd = NULL;
	size_t len = 0, initrd_len = 0;
	int ret;

	ret = file_read_all(cfg->kernel, &img, &len);
	if (ret) {
		log_err("cannot read kernel %s: %s", cfg->kernel,
			ret == -EINVAL ? "not a regular file" : strerror(-ret));
		return ret;
	}
	if (cfg->initrd) {
		ret = file_read_all(cfg->initrd, &initrd, &initrd_len);
		if (ret) {
			log_err("cannot read initrd %s: %s", cfg->initrd,
				ret == -EINVAL ? "not a regular file" : strerror(-ret));
			goto out;
		}
	}
	/* Both loaders point the kernel at the RSDP (acpi.c). */
	ret = acpi_load(vm);
	if (!ret)
		ret = boot_write_reset_vector(vm);
	if (ret)
		goto out;
	if (boot_is_pvh_elf(img, len)) {
		ret = boot_load_pvh(vm, img, len, cfg, initrd, initrd_len);
	} else if (boot_is_bzimage(img, len)) {
		ret = boot_load_bzimage(vm, img, len, cfg, initrd, initrd_len);
	} else {
		log_err("%s: not a bootable kernel: neither an ELF with a PVH entry note "
			"(XEN_ELFNOTE_PHYS32_ENTRY) nor a Linux bzImage",
			cfg->kernel);
		ret = -ENOEXEC;
	}
out:
	free(img);
	free(initrd);
	return ret;
}
