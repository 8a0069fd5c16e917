/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * i8042 keyboard controller, only as much as firmware-less guests use: the
 * controller self test, the command byte, and the reset line — command 0xfe
 * or clearing bit 0 of the output port (0xd1) — which is how Linux reboots
 * with reboot=k and how the test guest asks to be shut down. There is no
 * keyboard behind it: data reads return what the last command produced.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/vmstate/vmstate.h"
#include "hw/internal.h"

#define I8042_DATA   0x60
#define I8042_STATUS 0x64

#define STS_OBF	   0x01
#define STS_SYS	   0x04
#define STS_CMD	   0x08

struct i8042 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t cmd_byte;
	uint8_t pending_cmd; /* command waiting for its data byte */
	uint8_t out;
	bool out_full;
	uint8_t status_cmd;
};

static void i8042_reply(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	k->status_cmd = STS_CMD;
	switch (cmd) {
	case 0x20: /* read command byte */
		i8042_reply(k, k->cmd_byte);
		break;
	case 0x60: /* write command byte: data follows */
	case 0xd1: /* write output port: data follows */
	case 0xd2: /* write keyboard output buffer */
	case 0xd3: /* write aux output buffer */
	case 0xd4: /* write to aux device */
		k->pending_cmd = cmd;
		break;
	case 0xa7: /* disable aux */
		k->cmd_byte |= 0x20;
		break;
	case 0xa8: /* enable aux */
		k->cmd_byte &= (uint8_t)~0x20;
		break;
	case 0xa9: /* aux interface test: no device, report clock stuck low */
		i8042_reply(k, 0x01);
		break;
	case 0xaa: /* controller self test */
		i8042_reply(k, 0x55);
		break;
	case 0xab: /* keyboard interface test */
		i8042_reply(k, 0x00);
		break;
	case 0xad: /* disable keyboard */
		k->cmd_byte |= 0x10;
		break;
	case 0xae: /* enable keyboard */
		k->cmd_byte &= (uint8_t)~0x10;
		break;
	case 0xfe: /* pulse reset line */
		log_info("guest reset through the i8042");
		vm_report(k->vm, VM_EVENT_RESET, 0);
		break;
	default:
		break;
	}
}

static void i8042_data_write(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending_cmd;

	k->pending_cmd = 0;
	k->status_cmd = 0;
	switch (cmd) {
	case 0x60:
		k->cmd_byte = v;
		break;
	case 0xd1:
		if (!(v & 1)) {
			log_info("guest reset through the i8042 output port");
			vm_report(k->vm, VM_EVENT_RESET, 0);
		}
		break;
	case 0xd2:
	case 0xd3:
		i8042_reply(k, v);
		break;
	default:
		/* A byte for a keyboard that is not there: answer "resend". */
		i8042_reply(k, 0xfe);
		break;
	}
}

static void i8042_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;

	if (len != 1) {
		if (!is_write)
			*data = 0xff;
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (addr == I8042_STATUS) {
		if (is_write)
			i8042_command(k, *data);
		else
			*data = (uint8_t)(STS_SYS | k->status_cmd | (k->out_full ? STS_OBF : 0));
	} else {
		if (is_write) {
			i8042_data_write(k, *data);
		} else {
			*data = k->out;
			k->out_full = false;
		}
	}
	pthread_mutex_unlock(&k->lock);
}

void i8042_reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	k->cmd_byte = 0x30; /* keyboard and aux disabled until enabled */
	k->pending_cmd = k->status_cmd = 0;
	k->out_full = false;
	pthread_mutex_unlock(&k->lock);
}

int i8042_create(struct vm *vm, struct i8042 **out)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int ret;

	if (!k)
		return -ENOMEM;
	k->vm = vm;
	k->cmd_byte = 0x30; /* keyboard and aux disabled until enabled */
	pthread_mutex_init(&k->lock, NULL);
	ret = io_bus_register(&vm->pio, I8042_DATA, 1, i8042_io, k);
	if (!ret)
		ret = io_bus_register(&vm->pio, I8042_STATUS, 1, i8042_io, k);
	if (ret) {
		i8042_free(k);
		return ret;
	}
	*out = k;
	return 0;
}

void i8042_free(struct i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* ---- state (persist beside the device) ------------------------------------ */

static const struct vmstate_field i8042_fields[] = {
	VMSTATE_U8(struct i8042, cmd_byte),
	VMSTATE_U8(struct i8042, pending_cmd),
	VMSTATE_U8(struct i8042, out),
	VMSTATE_BOOL(struct i8042, out_full),
	VMSTATE_U8(struct i8042, status_cmd),
	VMSTATE_END,
};

static const struct vmstate_desc i8042_desc = {
	.name = "i8042",
	.version_id = 1,
	.minimum_version_id = 1,
	.fields = i8042_fields,
};

int i8042_persist_register(struct i8042 *k, struct vmstate_registry *reg,
			   struct vmstate_error *err)
{
	return vmstate_register(reg, &i8042_desc, 0, k, err);
}
