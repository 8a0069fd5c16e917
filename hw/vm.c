/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The VM: KVM fds, memory slots, in-kernel irqchip and PIT, the vCPU
 * threads and the pause/resume protocol.
 *
 * Pause protocol. hw_vm_pause() sets pause_req and, under the lock, sets
 * every vCPU's kvm_run.immediate_exit and signals its thread (SIGUSR1, an
 * empty handler installed without SA_RESTART). A vCPU thread checks
 * pause_req and clears immediate_exit under the same lock before it enters
 * KVM_RUN, so a request made between the check and KVM_RUN cannot be
 * missed: KVM_RUN then returns -EINTR at once. Parked threads wait on a
 * condition variable until hw_vm_resume() or hw_vm_destroy().
 *
 * The vCPU threads are created with the VM (hw_vm_create, with the caller's
 * signal mask) and park at once: resuming is a broadcast, not a
 * pthread_create in the middle of an incoming migration's downtime.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "hw/internal.h"
#include "hw/virtio.h"

#define KVM_TSS_ADDR	  0xfffbd000ull
#define KVM_IDENTITY_ADDR 0xfffbc000ull
#define VCPU_KICK_SIGNAL  SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

static int kvm_open(struct vm *vm)
{
	int ver;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		log_err("cannot open /dev/kvm: %s%s", strerror(e),
			e == ENOENT ? " (is the kvm module loaded?)"
			: e == EACCES ? " (is this user in the kvm group?)"
				      : "");
		return -e;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		log_err("/dev/kvm: unsupported KVM API version %d", ver);
		return -ENOTSUP;
	}
	static const struct {
		int cap;
		const char *name;
	} need[] = {
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
		{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
		{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	};
	for (unsigned int i = 0; i < ARRAY_SIZE(need); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, need[i].cap) <= 0) {
			log_err("/dev/kvm lacks %s", need[i].name);
			return -ENOTSUP;
		}
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		log_err("KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int vm_setup_memory(struct vm *vm, uint64_t size)
{
	int ret = mem_init(&vm->mem, size);

	if (ret) {
		log_err("cannot allocate %llu MiB of guest RAM: %s",
			(unsigned long long)(size / MiB), strerror(-ret));
		return ret;
	}
	if (vm->cfg.mem_prealloc) {
		uint64_t t0 = clock_ns(), avail = mem_host_available();

		/* Past what the host has, populating would not fail: the OOM
		 * killer would pick a process, likely this one. */
		if (avail && size > avail) {
			log_err("--mem-prealloc: %llu MiB of guest RAM, but the host has only "
				"%llu MiB available",
				(unsigned long long)(size / MiB), (unsigned long long)(avail / MiB));
			return -ENOMEM;
		}
		ret = mem_prealloc(&vm->mem);
		if (ret) {
			log_err("--mem-prealloc: cannot allocate %llu MiB of guest RAM: %s",
				(unsigned long long)(size / MiB), strerror(-ret));
			return ret;
		}
		log_info("guest RAM: %llu MiB preallocated in %llu ms",
			 (unsigned long long)(size / MiB),
			 (unsigned long long)((clock_ns() - t0) / 1000000));
	}
	for (unsigned int i = 0; i < vm->mem.nregions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
			.slot = r->slot,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)(vm->mem.host + r->offset),
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			log_err("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int vm_setup_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){KVM_IDENTITY_ADDR}) < 0) {
		log_err("KVM_SET_TSS_ADDR/IDENTITY_MAP_ADDR: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		log_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_err("KVM_CREATE_PIT2: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int vm_irq_line(struct vm *vm, unsigned int irq, bool level)
{
	struct kvm_irq_level l = {.irq = irq, .level = level};

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

void vm_report(struct vm *vm, enum vm_event ev, int code)
{
	bool expected = false;

	if (atomic_compare_exchange_strong(&vm->event_sent, &expected, true))
		vm->event_cb(vm->event_opaque, ev, code);
}

/*
 * Halt detection. With the in-kernel irqchip KVM handles HLT itself, so a
 * guest that halts for good (cli; hlt) never exits to us. Once a second
 * every vCPU is kicked out of KVM_RUN and looks at its own MP state and
 * RFLAGS.IF (vcpu.c); when all of them are halted with interrupts off,
 * nothing can wake them and the guest has halted.
 */
static void halt_timer_cb(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t ticks;
	unsigned int halted = 0;

	if (read(vm->halt_timer_fd, &ticks, sizeof(ticks)) < 0)
		return;
	pthread_mutex_lock(&vm->lock);
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		halted += v->halted;
		if (v->started && !v->parked) {
			v->run->immediate_exit = 1;
			pthread_kill(v->thread, VCPU_KICK_SIGNAL);
		}
	}
	pthread_mutex_unlock(&vm->lock);
	if (halted == vm->ncpus)
		vm_report(vm, VM_EVENT_HALT, 0);
}

static int vm_setup_halt_timer(struct vm *vm)
{
	struct itimerspec its = {.it_interval = {1, 0}, .it_value = {1, 0}};

	vm->halt_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->halt_timer_fd < 0)
		return -errno;
	if (timerfd_settime(vm->halt_timer_fd, 0, &its, NULL) < 0)
		return -errno;
	return loop_add_fd(vm->loop, vm->halt_timer_fd, 0x001 /* EPOLLIN */, halt_timer_cb, vm);
}

/* One thread per vCPU; each parks at once (pause_req is set). */
static int vm_start_threads(struct vm *vm)
{
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	for (unsigned int i = 0; i < vm->ncpus && !ret; i++) {
		struct vcpu *v = &vm->vcpus[i];

		ret = -pthread_create(&v->thread, NULL, vcpu_thread, v);
		if (ret)
			log_err("cannot start vCPU %u thread: %s", i, strerror(-ret));
		else
			v->started = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Everything in the config that can be checked without KVM, so that a bad
 * flag gets its own message even on a host without /dev/kvm. */
static int vm_config_check(const struct vm_config *cfg)
{
	struct net_spec ns;
	struct blk_spec bs;
	char err[160];

	if (!cfg->kernel) {
		log_err("no kernel given (--kernel FILE)");
		return -EINVAL;
	}
	if (cfg->cpus < 1 || cfg->cpus > 64) {
		log_err("--cpus %u: must be 1..64", cfg->cpus);
		return -EINVAL;
	}
	if (cfg->mem_mib < 16 || cfg->mem_mib > 1024 * 1024) {
		log_err("--mem %llu: must be 16..1048576 MiB", (unsigned long long)cfg->mem_mib);
		return -EINVAL;
	}
	if (!uart_spec_valid(cfg->serial ? cfg->serial : "stdio")) {
		log_err("--serial %s: expected stdio, file:PATH or none", cfg->serial);
		return -EINVAL;
	}
	if (cfg->nnet + cfg->ndisk > VM_MAX_VIRTIO) {
		log_err("too many virtio devices (%u --net + %u --disk; at most %u)", cfg->nnet,
			cfg->ndisk, VM_MAX_VIRTIO);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < cfg->nnet; i++) {
		if (net_spec_parse(cfg->net[i], &ns, err, sizeof(err))) {
			log_err("--net %s: %s", cfg->net[i], err);
			return -EINVAL;
		}
	}
	for (unsigned int i = 0; i < cfg->ndisk; i++) {
		if (blk_spec_parse(cfg->disk[i], &bs, err, sizeof(err))) {
			log_err("--disk %s: %s", cfg->disk[i], err);
			return -EINVAL;
		}
	}
	return 0;
}

int hw_vm_create(const struct vm_config *cfg, struct loop *loop, vm_event_cb cb, void *opaque,
		 struct vm **out)
{
	struct sigaction sa = {.sa_handler = kick_handler};
	struct vm_config boot_cfg = *cfg;
	char *cmdline = NULL;
	struct vm *vm;
	int ret;

	ret = vm_config_check(cfg);
	if (ret)
		return ret;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->kvm_fd = vm->vm_fd = vm->halt_timer_fd = vm->anchor_pipe = -1;
	vm->mem.memfd = -1;
	vm->loop = loop;
	vm->cfg = *cfg;
	vm->ncpus_planned = cfg->cpus;
	vm->event_cb = cb;
	vm->event_opaque = opaque;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->dirty_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);

	ret = kvm_open(vm);
	if (ret)
		goto err;
	ret = vm_setup_memory(vm, cfg->mem_mib * MiB);
	if (ret)
		goto err;
	ret = vm_setup_irqchip(vm);
	if (ret)
		goto err;
	ret = uart_create(vm, cfg->serial ? cfg->serial : "stdio", &vm->uart);
	if (ret)
		goto err;
	ret = i8042_create(vm, &vm->kbd);
	if (ret)
		goto err;
	ret = debugexit_create(vm);
	if (ret)
		goto err;
	ret = acpi_sleep_create(vm);
	if (ret)
		goto err;
	ret = virtio_devices_create(vm, cfg, &cmdline);
	if (ret)
		goto err;
	boot_cfg.cmdline = vm->boot_cmdline = cmdline;
	cmdline = NULL;
	/* A restored or incoming VM gets RAM and registers from the stream. */
	ret = cfg->restore ? 0 : boot_load(vm, &boot_cfg);
	if (ret)
		goto err;

	vm->vcpus = calloc(cfg->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < cfg->cpus; i++) {
		ret = vcpu_init(vm, &vm->vcpus[i], i);
		if (ret)
			goto err;
		vm->ncpus++;
	}
	if (!cfg->restore) {
		ret = vcpu_setup_boot(&vm->vcpus[0], &vm->boot);
		if (ret)
			goto err;
	}
	ret = persist_register(vm);
	if (ret)
		goto err;
	ret = power_on_capture(vm);
	if (ret)
		goto err;
	ret = vm_setup_halt_timer(vm);
	if (ret)
		goto err;
	vm->pause_req = true; /* created paused */
	ret = vm_start_threads(vm);
	if (ret)
		goto err;
	anchor_start(vm);
	*out = vm;
	return 0;
err:
	free(cmdline);
	hw_vm_destroy(vm);
	return ret;
}

static void vm_kick_all_locked(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->started)
			continue;
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
}

int hw_vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	vm_kick_all_locked(vm);
	for (;;) {
		unsigned int want = 0;

		for (unsigned int i = 0; i < vm->ncpus; i++)
			want += vm->vcpus[i].started;
		if (vm->nparked >= want)
			break;
		pthread_cond_wait(&vm->cond, &vm->lock);
	}
	vm->running = false;
	pthread_mutex_unlock(&vm->lock);
	virtio_devices_pause(vm);
	return 0;
}

int hw_vm_resume(struct vm *vm)
{
	virtio_devices_resume(vm);
	persist_thaw(vm);
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = false;
	vm->running = true;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

bool hw_vm_running(const struct vm *vm)
{
	return vm->running;
}

unsigned int hw_vm_ncpus(const struct vm *vm)
{
	return vm->ncpus;
}

int hw_vm_vcpu_regs(struct vm *vm, struct hw_vcpu_regs *out, unsigned int n)
{
	bool was_running = vm->running;
	int ret = 0;

	if (n < vm->ncpus)
		return -EINVAL;
	/* (a vCPU inside KVM_RUN holds its fd's mutex: the ioctls below would
	 * wait for its next exit to user space, which a guest looping in the
	 * kernel's fault path never makes) */
	if (was_running)
		hw_vm_pause(vm);
	for (unsigned int i = 0; i < vm->ncpus && !ret; i++) {
		struct kvm_regs r;
		struct kvm_sregs sr;

		if (ioctl(vm->vcpus[i].fd, KVM_GET_REGS, &r) < 0 ||
		    ioctl(vm->vcpus[i].fd, KVM_GET_SREGS, &sr) < 0) {
			ret = -errno;
			break;
		}
		out[i] = (struct hw_vcpu_regs){.rip = r.rip,
					       .rsp = r.rsp,
					       .rflags = r.rflags,
					       .cr0 = sr.cr0,
					       .cr3 = sr.cr3,
					       .cr4 = sr.cr4,
					       .efer = sr.efer,
					       .cs = sr.cs.selector};
	}
	if (was_running)
		hw_vm_resume(vm);
	return ret;
}

uint8_t *hw_vm_ram(struct vm *vm, uint64_t *size)
{
	*size = vm->mem.size;
	return vm->mem.host;
}

void hw_vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	pthread_mutex_lock(&vm->lock);
	vm->quit = true;
	vm->pause_req = true;
	vm_kick_all_locked(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned int i = 0; i < vm->ncpus; i++) {
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
		vcpu_free(&vm->vcpus[i]);
	}
	free(vm->vcpus);
	virtio_devices_free(vm);
	if (vm->halt_timer_fd >= 0) {
		loop_del_fd(vm->loop, vm->halt_timer_fd);
		close(vm->halt_timer_fd);
	}
	persist_free(vm);
	hw_dirty_log_stop(vm);
	uart_free(vm->uart);
	i8042_free(vm->kbd);
	anchor_stop(vm);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	mem_free(&vm->mem);
	pthread_mutex_destroy(&vm->lock);
	pthread_mutex_destroy(&vm->dirty_lock);
	pthread_cond_destroy(&vm->cond);
	free(vm->boot_cmdline);
	free(vm);
}
