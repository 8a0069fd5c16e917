/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Every device description of a real VM (machine, kvmclock, irqchip, PIT,
 * vCPUs, UART, i8042): boot the test guest, run it a little, pause, save;
 * load the stream into a fresh VM created for restore; save that VM: the
 * two streams must be identical byte for byte. Skips (77) without /dev/kvm
 * or TESTGUEST.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "roundtrip.h"

int main(void)
{
	const char *kernel = getenv("TESTGUEST");
	struct vm_config cfg = {.kernel = kernel, .mem_mib = 64, .cpus = 2, .serial = "none",
				.cmdline = "app=dirty mb=4 rate=4 seconds=30"};
	struct vmstate_error err = {0};
	struct loop *loop = NULL;
	struct vm *a = NULL, *b = NULL;
	int fa = memfd_create("a", 0), fb = memfd_create("b", 0);
	uint8_t *ba = NULL;
	size_t la = 0;
	int status = 1;

	if (!kernel || access(kernel, R_OK) || access("/dev/kvm", R_OK | W_OK)) {
		fprintf(stderr, "SKIP: needs /dev/kvm and TESTGUEST\n");
		return 77;
	}
	if (loop_new(&loop) || hw_vm_create(&cfg, loop, on_event, NULL, &a)) {
		fprintf(stderr, "FAIL: cannot create the VM\n");
		goto out;
	}
	hw_vm_resume(a);
	nanosleep(&(struct timespec){0, 500 * 1000 * 1000}, NULL);
	hw_vm_pause(a);
	if (hw_vm_save(a, fa, &err)) {
		fprintf(stderr, "FAIL: save: %s\n", err.msg);
		goto out;
	}
	cfg.restore = true;
	if (hw_vm_create(&cfg, loop, on_event, NULL, &b)) {
		fprintf(stderr, "FAIL: cannot create the restore VM\n");
		goto out;
	}
	lseek(fa, 0, SEEK_SET);
	if (hw_vm_load(b, fa, &err)) {
		fprintf(stderr, "FAIL: load: %s\n", err.msg);
		goto out;
	}
	if (hw_vm_save(b, fb, &err)) {
		fprintf(stderr, "FAIL: save again: %s\n", err.msg);
		goto out;
	}
	if (same_streams(fa, fb, &ba, &la))
		goto out;
	printf("PASS: %zu bytes identical after save -> load -> save\n", la);
	status = 0;
out:
	free(ba);
	hw_vm_destroy(b);
	hw_vm_destroy(a);
	loop_free(loop);
	close(fa);
	close(fb);
	return status;
}
