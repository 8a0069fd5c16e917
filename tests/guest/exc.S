/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Exception entry stubs for vectors 0..31 (CPL 0). Each stub makes the stack
 * look the same — vector, error code (0 when the CPU pushes none), then the
 * CPU's frame RIP, CS, RFLAGS, RSP, SS — and calls exc_report() in cpu.c,
 * which prints a diagnostic and ends the run. Nothing returns.
 *
 * Then the PIC's sixteen lines, vectors 32..47 (cpu.c remaps them there, in
 * automatic-EOI mode: no EOI to write, which at CPL 0 under PVM would be an
 * emulated port write): their one stub only returns; the interrupt's whole
 * purpose is to end a `hlt`.
 *
 * Idling (irq.c): CPL 3 executes `hlt`, which raises #GP there (PVM runs no
 * `int $n` from user mode, but it does deliver this #GP). The #GP stub
 * recognises it -- a fault at CPL 3 on the byte 0xf4, and app=halt has not
 * asked to halt for good -- and halts in its place with interrupts on until
 * one arrives (the sti shadow covers the hlt, so one already pending wakes
 * it at once), then returns past the instruction with them off again.
 */

	.section .text
	.code64

.macro EXC vec, has_error
exc_\vec:
	.if !\has_error
	pushq $0
	.endif
	pushq $\vec
	jmp exc_common
.endm

	EXC 0, 0
	EXC 1, 0
	EXC 2, 0
	EXC 3, 0
	EXC 4, 0
	EXC 5, 0
	EXC 6, 0
	EXC 7, 0
	EXC 8, 1
	EXC 9, 0
	EXC 10, 1
	EXC 11, 1
	EXC 12, 1
exc_13:
	pushq %rax
	testb $3, 24(%rsp)		/* from CPL 3? (CS after rax, error, RIP) */
	jz 1f
	movq 16(%rsp), %rax		/* the faulting RIP */
	cmpb $0xf4, (%rax)
	jne 1f
	cmpl $0, halt_requested(%rip)
	jne 1f
	incq 16(%rsp)			/* resume after the hlt */
	popq %rax
	addq $8, %rsp			/* the error code */
	sti
	hlt
	cli
	iretq
1:	popq %rax
	pushq $13
	jmp exc_common
	EXC 14, 1
	EXC 15, 0
	EXC 16, 0
	EXC 17, 1
	EXC 18, 0
	EXC 19, 0
	EXC 20, 0
	EXC 21, 1
	EXC 22, 0
	EXC 23, 0
	EXC 24, 0
	EXC 25, 0
	EXC 26, 0
	EXC 27, 0
	EXC 28, 0
	EXC 29, 1
	EXC 30, 1
	EXC 31, 0

exc_common:
	movq %rsp, %rdi			/* struct exc_frame * */
	andq $-16, %rsp
	call exc_report
1:	hlt
	jmp 1b

	.globl irq_stub
irq_stub:
	iretq

	.section .rodata
	.balign 8
	.globl exc_stubs
exc_stubs:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad exc_\v
	.endr

	.section .note.GNU-stack, "", @progbits
