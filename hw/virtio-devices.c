/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The VM's virtio-mmio devices: --net and --disk specs become devices at
 * VIRTIO_MMIO_BASE + n * 0x1000 (size 0x200) with ISA/IOAPIC pin irq_pins[n],
 * announced to the guest as `virtio_mmio.device=512@0x...:IRQ` on the
 * kernel command line (Linux's virtio_mmio module parameter when built with
 * CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES; the test guest parses the same) and
 * as LNRO0005 devices in the ACPI DSDT (acpi.c), which is how distribution
 * kernels find them.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hw/virtio.h"

static const unsigned int irq_pins[VM_MAX_VIRTIO] = {5, 6, 7, 9, 10, 11, 12, 13, 14, 15};

static void virtio_mmio_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio *t = opaque;

	virtio_mmio_access(t, addr - t->base, data, len, is_write);
}

static int cmdline_append(char **cmdline, size_t *len, const char *fmt, ...) PRINTF_LIKE(3, 4);

static int cmdline_append(char **cmdline, size_t *len, const char *fmt, ...)
{
	va_list ap;
	char add[96];
	char *n;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(add, sizeof(add), fmt, ap);
	va_end(ap);
	n = realloc(*cmdline, *len + (size_t)k + 1);
	if (!n)
		return -ENOMEM;
	memcpy(n + *len, add, (size_t)k + 1);
	*cmdline = n;
	*len += (size_t)k;
	return 0;
}

static int net_open_backend(const struct net_spec *ns, struct net_backend **be)
{
	if (!strcmp(ns->kind, "tap"))
		return net_tap_open(ns->arg, be);
	return net_null_open(be);
}

int virtio_devices_create(struct vm *vm, const struct vm_config *cfg, char **cmdline)
{
	const char *base_cmdline = cfg->cmdline ? cfg->cmdline : "";
	size_t len = strlen(base_cmdline);
	unsigned int n = 0;
	char err[160];
	int ret;

	*cmdline = strdup(base_cmdline);
	if (!*cmdline)
		return -ENOMEM;
	/* hw_vm_create checked the device count and every spec's syntax. */
	for (unsigned int i = 0; i < cfg->nnet + cfg->ndisk; i++, n++) {
		uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)n * VIRTIO_MMIO_STRIDE;
		unsigned int irq = irq_pins[n];
		struct virtio_mmio *t;

		if (i < cfg->nnet) {
			uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t)(0x56 + i)};
			struct net_backend *be;
			struct net_spec ns;

			if (net_spec_parse(cfg->net[i], &ns, err, sizeof(err))) {
				log_err("--net %s: %s", cfg->net[i], err);
				return -EINVAL;
			}
			if (ns.has_mac)
				memcpy(mac, ns.mac, 6);
			ret = net_open_backend(&ns, &be);
			if (ret)
				return ret;
			ret = virtio_net_create(&vm->mem, vm->vm_fd, base, irq, mac, be,
						&vm->net[vm->nnet]);
			if (ret) {
				log_err("--net %s: cannot create the device: %s", cfg->net[i],
					strerror(-ret));
				return ret;
			}
			t = virtio_net_transport(vm->net[vm->nnet++]);
		} else {
			const char *spec = cfg->disk[i - cfg->nnet];
			struct blk_spec bs;

			if (blk_spec_parse(spec, &bs, err, sizeof(err))) {
				log_err("--disk %s: %s", spec, err);
				return -EINVAL;
			}
			bs.index = vm->nblk;
			ret = virtio_blk_create(&vm->mem, vm->vm_fd, base, irq, &bs,
						&vm->blk[vm->nblk]);
			if (ret)
				return ret;
			t = virtio_blk_transport(vm->blk[vm->nblk++]);
		}
		ret = io_bus_register(&vm->mmio, base, VIRTIO_MMIO_SIZE, virtio_mmio_io, t);
		if (ret)
			return ret;
		ret = cmdline_append(cmdline, &len, "%svirtio_mmio.device=512@%#llx:%u",
				     len ? " " : "", (unsigned long long)base, irq);
		if (ret)
			return ret;
	}
	return 0;
}

void virtio_devices_free(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nnet; i++)
		virtio_net_free(vm->net[i]);
	for (unsigned int i = 0; i < vm->nblk; i++)
		virtio_blk_free(vm->blk[i]);
	vm->nnet = vm->nblk = 0;
}

void virtio_devices_reset(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nnet; i++)
		virtio_mmio_reset(virtio_net_transport(vm->net[i]));
	for (unsigned int i = 0; i < vm->nblk; i++)
		virtio_mmio_reset(virtio_blk_transport(vm->blk[i]));
}

void virtio_devices_pause(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nnet; i++)
		virtio_mmio_pause(virtio_net_transport(vm->net[i]));
	for (unsigned int i = 0; i < vm->nblk; i++)
		virtio_mmio_pause(virtio_blk_transport(vm->blk[i]));
}

void virtio_devices_resume(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nnet; i++)
		virtio_mmio_resume(virtio_net_transport(vm->net[i]));
	for (unsigned int i = 0; i < vm->nblk; i++)
		virtio_mmio_resume(virtio_blk_transport(vm->blk[i]));
}
