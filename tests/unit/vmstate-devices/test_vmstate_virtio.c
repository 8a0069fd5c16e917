/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The virtio descriptions through a real KVM VM with two nets (hook
 * backends) and two disks (sparse scratch images) while app=blk writes
 * disk 0 (the guest drives the first disk only):
 *
 *  1. save the paused VM, load into a fresh VM with the same devices, save
 *     again: identical bytes (transport, queues, net, blk sections);
 *  2. a stream whose virtio-blk queue has a ring address outside guest RAM
 *     is refused at load with a message naming the queue (no crash);
 *  3. device mismatches are refused naming the device: the stream into a
 *     VM with one disk ("stream has virtio-blk 1") and into one with a third
 *     disk ("this VM has virtio-blk 2");
 *  4. a disk of another size is refused.
 *
 * Skips (77) without /dev/kvm or TESTGUEST.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "hw/virtio.h"
#include "roundtrip.h"

static int make_image(char *path, size_t len, off_t bytes)
{
	int fd;

	snprintf(path, len, "/tmp/colovm-vst-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, bytes) < 0) {
		close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

/* Create a restore VM from cfg and load fd into it; 0 or the load error. */
static int load_into(const struct vm_config *cfg, struct loop *loop, int fd,
		     struct vmstate_error *err, struct vm **out)
{
	struct vm *vm = NULL;
	int ret;

	memset(err, 0, sizeof(*err));
	ret = hw_vm_create(cfg, loop, on_event, NULL, &vm);
	if (ret) {
		snprintf(err->msg, sizeof(err->msg), "cannot create the VM: %s", strerror(-ret));
		return ret;
	}
	lseek(fd, 0, SEEK_SET);
	ret = hw_vm_load(vm, fd, err);
	if (out && !ret)
		*out = vm;
	else
		hw_vm_destroy(vm);
	return ret;
}

static int expect_refused(const char *name, const struct vm_config *cfg, struct loop *loop,
			  int fd, const char *want)
{
	struct vmstate_error err;
	int ret = load_into(cfg, loop, fd, &err, NULL);

	if (!ret) {
		fprintf(stderr, "FAIL: %s: the load was accepted\n", name);
		return -1;
	}
	if (!strstr(err.msg, want)) {
		fprintf(stderr, "FAIL: %s: message '%s' lacks '%s'\n", name, err.msg, want);
		return -1;
	}
	printf("ok: %s refused: %s\n", name, err.msg);
	return 0;
}

int main(void)
{
	const char *kernel = getenv("TESTGUEST");
	char img[3][64], spec[3][80], small[64];
	const char *nets[] = {"hook", "hook,mac=52:54:00:aa:bb:cc"};
	const char *disks[3] = {spec[0], spec[1], spec[2]};
	struct vm_config cfg = {.kernel = kernel, .mem_mib = 64, .cpus = 1, .serial = "none",
				.cmdline = "app=blk mb=200", .net = nets, .nnet = 2,
				.disk = disks, .ndisk = 2};
	struct vm_config c2;
	struct vmstate_error err = {0};
	struct loop *loop = NULL;
	struct vm *a = NULL, *b = NULL;
	int fa = memfd_create("a", 0), fb = memfd_create("b", 0), fbad = memfd_create("bad", 0);
	uint8_t *ba = NULL;
	size_t la = 0;
	struct virtio_mmio *t;
	uint64_t saved_desc;
	int status = 1;

	if (!kernel || access(kernel, R_OK) || access("/dev/kvm", R_OK | W_OK)) {
		fprintf(stderr, "SKIP: needs /dev/kvm and TESTGUEST\n");
		return 77;
	}
	img[0][0] = img[1][0] = img[2][0] = small[0] = 0;
	for (int i = 0; i < 3; i++) {
		if (make_image(img[i], sizeof(img[i]), 256 << 20)) {
			fprintf(stderr, "FAIL: cannot create a disk image\n");
			goto out;
		}
		memcpy(spec[i], img[i], sizeof(img[i])); /* spec is the larger */
	}
	if (make_image(small, sizeof(small), 16 << 20))
		goto out;
	if (loop_new(&loop) || hw_vm_create(&cfg, loop, on_event, NULL, &a)) {
		fprintf(stderr, "FAIL: cannot create the VM\n");
		goto out;
	}
	hw_vm_resume(a);
	nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	hw_vm_pause(a);
	if (hw_vm_save(a, fa, &err)) {
		fprintf(stderr, "FAIL: save: %s\n", err.msg);
		goto out;
	}
	/* 1. round trip */
	cfg.restore = true;
	if (load_into(&cfg, loop, fa, &err, &b)) {
		fprintf(stderr, "FAIL: load: %s\n", err.msg);
		goto out;
	}
	if (hw_vm_save(b, fb, &err)) {
		fprintf(stderr, "FAIL: save again: %s\n", err.msg);
		goto out;
	}
	if (same_streams(fa, fb, &ba, &la))
		goto out;
	if (!memmem(ba, la, "virtio-blk", 10) || !memmem(ba, la, "virtio-net", 10)) {
		fprintf(stderr, "FAIL: the stream has no virtio sections\n");
		goto out;
	}
	printf("ok: %zu bytes identical after save -> load -> save\n", la);

	/* 2. a ring address outside guest RAM */
	t = virtio_blk_transport(a->blk[0]);
	pthread_mutex_lock(&t->lock);
	if (!t->q[0].s.ready) {
		pthread_mutex_unlock(&t->lock);
		fprintf(stderr, "FAIL: disk 0's queue is not ready (did the guest start?)\n");
		goto out;
	}
	saved_desc = t->q[0].s.desc;
	t->q[0].s.desc = 0x7ff00000000ull;
	pthread_mutex_unlock(&t->lock);
	err = (struct vmstate_error){0};
	if (hw_vm_save(a, fbad, &err)) {
		fprintf(stderr, "FAIL: save with a bad ring: %s\n", err.msg);
		goto out;
	}
	pthread_mutex_lock(&t->lock);
	t->q[0].s.desc = saved_desc;
	pthread_mutex_unlock(&t->lock);
	if (expect_refused("bad ring address", &cfg, loop, fbad, "virtio-blk"))
		goto out;

	/* 3. device mismatches */
	c2 = cfg;
	c2.ndisk = 1;
	if (expect_refused("one disk fewer", &c2, loop, fa, "stream has virtio-blk 1"))
		goto out;
	c2.ndisk = 3;
	if (expect_refused("one disk more", &c2, loop, fa, "virtio-blk 2"))
		goto out;
	c2 = cfg;
	c2.nnet = 0;
	if (expect_refused("no nets", &c2, loop, fa, "stream has virtio-net 0, this VM has none"))
		goto out;

	/* 4. another disk size */
	c2 = cfg;
	disks[0] = small;
	if (expect_refused("smaller disk", &c2, loop, fa, "virtio-blk 0"))
		goto out;
	printf("PASS\n");
	status = 0;
out:
	free(ba);
	hw_vm_destroy(b);
	hw_vm_destroy(a);
	loop_free(loop);
	close(fa);
	close(fb);
	close(fbad);
	for (int i = 0; i < 3; i++)
		if (img[i][0])
			unlink(img[i]);
	if (small[0])
		unlink(small);
	return status;
}
