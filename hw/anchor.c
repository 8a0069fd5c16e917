/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The RAM anchor: a process that shares the VMM's address space (CLONE_VM,
 * but not a thread of it) and holds the KVM VM's fd, so that a VMM that dies
 * (SIGKILL, a crash, the OOM killer) closes its sockets first and frees its
 * guest second.
 *
 * Why. A process's exit releases its address space (exit_mm) before it closes
 * its files (exit_files). For a VMM the first is the expensive part: every
 * page of guest RAM unmapped, and KVM's MMU notifier zapping the VM's nested
 * page tables; it grows with the guest's size (measured in a host VM with a
 * 128 MiB guest: the peer saw the killed side's socket close 15-18 ms after
 * the SIGKILL, nearly all of it in exit_mmap). A COLO peer learns of the
 * death from that socket, so failover detection waited on the dead side's
 * page tables. With the anchor holding a reference to the address space and
 * to the VM, the VMM's threads exit at once, its files close (the peer sees
 * the connection end), and only then does the anchor, woken by EOF on a
 * pipe, free guest RAM and the VM off the critical path.
 *
 * The anchor runs on a small stack of its own in the shared address space,
 * with every signal blocked (SIGKILL cannot be), at the lowest priority,
 * makes raw system calls only (it shares the creating thread's TLS, so no
 * errno, no libc state), closes every fd it inherited except the VM's and
 * a pipe's read end, and waits for EOF there: the VMM alone holds the write
 * end, so EOF comes once every thread of the VMM has exited and its files
 * are closed, its sockets among them; it then waits a quarter of a
 * second, so that what reacts to the death runs first, and exits.
 * (PR_SET_PDEATHSIG fires when the creating thread exits, which in a
 * SIGKILLed process may come before another thread's exit: the anchor gone
 * first, that thread freed the address space before the sockets after all,
 * in about half of the drills measured.) hw_vm_destroy stops it first. It
 * is an optimisation only: if it cannot start, the VM runs on and a killed
 * VMM's peer waits longer.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hw/internal.h"

#define ANCHOR_STACK (64 * 1024)
/* after the VMM's death, before the teardown (below) */
#define ANCHOR_GRACE_MS 250

static inline long anchor_syscall(long n, long a, long b, long c, long d)
{
	register long r10 __asm__("r10") = d;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

struct anchor_arg {
	int vm_fd;
	int pipe_rd; /* EOF once the VMM's files are closed: the VMM holds the write end */
};

__attribute__((no_sanitize("address", "undefined"), noinline)) static int anchor_main(void *opaque)
{
	const struct anchor_arg *a = opaque;
	static const char name[] = "colovm-anchor";
	static const uint64_t all = ~0ull;
	static const struct timespec grace = {.tv_nsec = ANCHOR_GRACE_MS * 1000000L};
	int lo = MIN(a->vm_fd, a->pipe_rd), hi = MAX(a->vm_fd, a->pipe_rd);
	char c;

	/* libc's mask left glibc's own two signals open: close them too */
	anchor_syscall(SYS_rt_sigprocmask, SIG_SETMASK, (long)&all, 0, sizeof(all));
	anchor_syscall(SYS_prctl, PR_SET_NAME, (long)name, 0, 0);
	/* freeing a dead VMM's guest yields to the living (a peer taking over
	 * on the same host, as in drills) */
	anchor_syscall(SYS_setpriority, PRIO_PROCESS, 0, 19, 0);
	if ((lo > 0 && anchor_syscall(SYS_close_range, 0, lo - 1, 0, 0) < 0) ||
	    (hi > lo + 1 && anchor_syscall(SYS_close_range, lo + 1, hi - 1, 0, 0) < 0) ||
	    anchor_syscall(SYS_close_range, hi + 1, ~0u, 0, 0) < 0)
		return 0;
	while (anchor_syscall(SYS_read, a->pipe_rd, (long)&c, 1, 0) == -EINTR)
		;
	/* The VMM has died. Its peer (on this host in drills), its restart or
	 * whatever else reacts to the death goes first: the teardown below
	 * runs in the kernel, and nice 19 does not preempt it there (traced in
	 * a host VM: the anchor's exit_mmap held a vCPU for 11 ms while the
	 * peer's main loop, woken on it, waited 8.7 ms to post its takeover). */
	anchor_syscall(SYS_nanosleep, (long)&grace, 0, 0, 0);
	return 0;
}

void anchor_start(struct vm *vm)
{
	struct anchor_arg *a;
	sigset_t all, old;
	const char *env = getenv("COLOVM_RAM_ANCHOR");
	int fds[2];
	pid_t pid;

	/* (hw_vm_create left anchor_pid 0 and anchor_pipe -1: none) */
	if (env && !strcmp(env, "0"))
		return;
	if (pipe2(fds, O_CLOEXEC) < 0) {
		log_warn("guest RAM anchor: pipe: %s", strerror(errno));
		return;
	}
	a = malloc(sizeof(*a));
	vm->anchor_stack = mmap(NULL, ANCHOR_STACK, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (!a || vm->anchor_stack == MAP_FAILED) {
		if (vm->anchor_stack != MAP_FAILED)
			munmap(vm->anchor_stack, ANCHOR_STACK);
		vm->anchor_stack = NULL;
		free(a);
		close(fds[0]);
		close(fds[1]);
		return;
	}
	*a = (struct anchor_arg){.vm_fd = vm->vm_fd, .pipe_rd = fds[0]};
	vm->anchor_arg = a;
	/* born with every signal blocked: no handler of the VMM's ever runs in it */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = clone(anchor_main, (char *)vm->anchor_stack + ANCHOR_STACK, CLONE_VM | CLONE_UNTRACED,
		    a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(fds[0]);
	if (pid < 0) {
		log_warn("guest RAM anchor: clone: %s (a killed VMM's peer learns of it only "
			 "after its guest RAM is freed)",
			 strerror(errno));
		close(fds[1]);
		return;
	}
	vm->anchor_pid = pid;
	vm->anchor_pipe = fds[1];
}

void anchor_stop(struct vm *vm)
{
	if (vm->anchor_pipe >= 0)
		close(vm->anchor_pipe);
	vm->anchor_pipe = -1;
	if (vm->anchor_pid > 0) {
		kill(vm->anchor_pid, SIGKILL);
		while (waitpid(vm->anchor_pid, NULL, __WALL) < 0 && errno == EINTR)
			;
		vm->anchor_pid = 0;
	}
	if (vm->anchor_stack)
		munmap(vm->anchor_stack, ANCHOR_STACK);
	vm->anchor_stack = NULL;
	free(vm->anchor_arg);
	vm->anchor_arg = NULL;
}
