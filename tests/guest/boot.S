/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * testguest boot: PVH entry (32-bit), the static tables, and the drop to CPL 3.
 *
 * Why the split. On the PVM hosts this project runs on, guest code at CPL 0
 * is *emulated* (~1.5 million instructions/s) while CPL 3 runs natively. So
 * CPL 0 does only what needs CPL 0 — load GDT/CR3/EFER/CR0/IDT/TR, fill 32
 * IDT gates — and everything else (serial, timer calibration, command line,
 * apps) runs at CPL 3 with IF = 0 (nothing takes interrupts; every device is
 * polled). The only way back to CPL 0 is a CPU exception: exc.S + cpu.c
 * print a diagnostic and end the run through isa-debug-exit.
 *
 * Port I/O at CPL 3 is allowed twice over: RFLAGS.IOPL = 3, and the TSS has
 * an I/O permission bitmap that allows every port. Hardware virtualization
 * honours IOPL. PVM does not: it forces IOPL 0 in guest user mode, takes the
 * resulting #GP itself and emulates the in/out after checking the guest's
 * TSS bitmap, so the guest's CPL 0 never runs for it.
 *
 * Page tables are initialised in the image (.rept below), not built by a
 * loop: one PML4, one PDPT and four PDs identity-map 0..4 GiB with 2 MiB
 * pages, all writable and user-accessible (U/S set at every level), so CPL 3
 * can touch RAM, the image itself and MMIO. CR4.SMEP/SMAP and EFER.NXE stay
 * off. Addresses above 4 GiB are not mapped.
 *
 * Physical memory layout (identity mapped, virtual == physical):
 *
 *   0x000000 - 0x0fffff  firmware/loader area: hvm_start_info, memmap and
 *                         command line usually live here (copied out early)
 *   0x100000             image start (guest.ld): .note.xen, .text, .rodata,
 *                         .data (GDT, page tables), .bss (stacks, IDT, TSS)
 *   _end                  end of the image
 *   above _end            free RAM per the PVH memory map; app=dirty puts its
 *                         buffer here (bootinfo_free_ram())
 *
 * Entry state (PVH ABI): 32-bit protected mode, paging off, flat CS/DS/ES/SS,
 * %ebx = physical address of struct hvm_start_info.
 *
 * GDT selectors: 0x08 kernel code64, 0x10 kernel data, 0x1b user code64,
 * 0x23 user data, 0x28 TSS (filled in by cpu_setup()).
 */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS   (0x18 | 3)
#define USER_DS   (0x20 | 3)

#define CR0_PE	  (1 << 0)
#define CR0_WP	  (1 << 16)
#define CR0_PG	  (1 << 31)
#define CR4_PAE	  (1 << 5)
#define MSR_EFER  0xc0000080
#define EFER_LME  (1 << 8)

#define PTE_P	  0x001
#define PTE_RW	  0x002
#define PTE_US	  0x004
#define PTE_A	  0x020
#define PTE_D	  0x040
#define PTE_PS	  0x080

#define RFLAGS_FIXED  0x0002
#define RFLAGS_IOPL3  0x3000

/*
 * The PVH note. QEMU reads the descriptor as a pointer-sized value placed
 * after the 4-byte-aligned name (as Linux emits it), so: 8-byte descriptor,
 * section aligned to 4.
 */
	.section .note.xen, "a", @note
	.balign 4
	.long 2f - 1f		/* namesz */
	.long 4f - 3f		/* descsz */
	.long XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz "Xen"
2:	.balign 4
3:	.quad pvh_start32
4:	.balign 4

	.section .text.boot, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	movl %ebx, %esi			/* hvm_start_info, kept for guest_main */
	lgdt gdt_ptr
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_WP | CR0_PE), %eax
	movl %eax, %cr0
	ljmp $KERNEL_CS, $start64

	.code64
start64:
	movl $KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	movq $kstack_top, %rsp
	movl %esi, %r12d		/* callee-saved across cpu_setup */
	call cpu_setup			/* IDT gates, TSS; lidt, ltr */

	/* iretq to guest_main(start_info) at CPL 3, IOPL 3, IF 0. */
	pushq $USER_DS
	pushq $ustack_top
	pushq $(RFLAGS_FIXED | RFLAGS_IOPL3)
	pushq $USER_CS
	pushq $guest_main
	movq %r12, %rdi
	iretq

	.section .data
	.balign 16
	.globl gdt, gdt_tss
gdt:
	.quad 0				/* 0x00 null */
	.quad 0x00af9a000000ffff	/* 0x08 kernel code, 64-bit, DPL 0 */
	.quad 0x00cf92000000ffff	/* 0x10 kernel data, DPL 0 */
	.quad 0x00affa000000ffff	/* 0x18 user code, 64-bit, DPL 3 */
	.quad 0x00cff2000000ffff	/* 0x20 user data, DPL 3 */
gdt_tss:
	.quad 0, 0			/* 0x28 64-bit TSS, set by cpu_setup() */
gdt_end:
	.balign 8
	.word 0
gdt_ptr:				/* read as limit + 32-bit base in 32-bit mode */
	.word gdt_end - gdt - 1
	.quad gdt

/* Identity map of 0..4 GiB: 2048 2 MiB pages, present, writable, user.
 * Accessed and dirty are set from the start, so the CPU's page walks never
 * write these tables: in host VMs (nested SVM under QEMU TCG) the guest
 * triple-faulted during live migration, with KVM's dirty log
 * write-protecting every page, these tables included, while its walks set
 * A/D bits; with the bits preset it did not (tests/e2e/migrate-dirty.sh). */
	.section .data.pagetables, "aw"
	.balign 4096
pml4:
	.quad pdpt + (PTE_P | PTE_RW | PTE_US | PTE_A)
	.fill 511, 8, 0
pdpt:
	.set i, 0
	.rept 4
	.quad pd + i * 4096 + (PTE_P | PTE_RW | PTE_US | PTE_A)
	.set i, i + 1
	.endr
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) + (PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_A | PTE_D)
	.set i, i + 1
	.endr

	.section .bss
	.balign 4096
	.globl kstack_top, ist_stack_top
kstack:
	.skip 16384			/* CPL 0 stack (exception handlers) */
kstack_top:
	.skip 4096			/* IST 1: #DF, NMI, #MC */
ist_stack_top:
ustack:
	.skip 65536			/* CPL 3 stack */
ustack_top:

	.section .note.GNU-stack, "", @progbits
