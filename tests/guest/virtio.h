/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mmio transport (virtio 1.x "modern", version 2; legacy version 1
 * also works) and split virtqueues, driven by polling at CPL 3: no
 * interrupts are taken (IF = 0) and the driver asks the device not to send
 * any (VRING_AVAIL_F_NO_INTERRUPT), except around an idle halt
 * (virtq_interrupts_on/off, irq.c).
 */
#ifndef TESTGUEST_VIRTIO_H
#define TESTGUEST_VIRTIO_H

#include "guest.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLK 2

#define VIRTIO_F_VERSION_1 32

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VRING_DESC_F_NEXT  1
#define VRING_DESC_F_WRITE 2

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};
struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};
#define VRING_USED_F_NO_NOTIFY 1

struct virtio_dev {
	uint64_t base;
	uint32_t version; /* 1: legacy, 2: modern */
	uint32_t device_id;
	uint64_t features;  /* negotiated */
	unsigned int index; /* in virtio_mmio_devs[] */
};

struct virtq {
	struct virtio_dev *dev;
	uint16_t index, size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t free_head, nr_free, last_used;
	void **token; /* per descriptor chain head */
	uint64_t kicks, kicks_skipped;
};

/* One buffer of a chain: out (device reads) or in (device writes). */
struct vbuf {
	void *addr;
	uint32_t len;
};

/* The n-th (from 0) transport on the command line with this device id. */
int virtio_find(uint32_t device_id, unsigned int n, struct virtio_dev *d);
/* Reset, ACKNOWLEDGE, DRIVER, features (wanted & offered, plus VERSION_1 on a
 * modern transport), FEATURES_OK. Returns 0 or -1 (message printed). */
int virtio_negotiate(struct virtio_dev *d, uint64_t wanted);
int virtq_init(struct virtio_dev *d, struct virtq *vq, uint16_t index, uint16_t max_size);
void virtio_driver_ok(struct virtio_dev *d);
/* Acknowledge whatever InterruptStatus holds (so a level line drops). */
void virtio_ack_interrupt(struct virtio_dev *d);
uint32_t virtio_status(struct virtio_dev *d);
uint8_t virtio_config8(struct virtio_dev *d, unsigned int off);
uint32_t virtio_config32(struct virtio_dev *d, unsigned int off);
uint64_t virtio_config64(struct virtio_dev *d, unsigned int off);

static inline bool virtio_has(const struct virtio_dev *d, unsigned int bit)
{
	return d->features & (1ULL << bit);
}

/* Queue a chain of nout device-readable then nin device-writable buffers;
 * -1 if the ring has too few free descriptors. Visible to the device at
 * once, but it is told only by virtq_kick(). */
int virtq_add(struct virtq *vq, const struct vbuf *b, unsigned int nout, unsigned int nin,
	      void *token);
/* Notify the device unless it said it is already polling the ring. */
void virtq_kick(struct virtq *vq);
/* The next used chain's token (its descriptors freed) and written length,
 * or NULL when the device has not returned anything new. */
void *virtq_get(struct virtq *vq, uint32_t *len);
/* Ask the device to interrupt when it returns buffers (true: some are
 * already there, do not wait for one), and to stop again. */
bool virtq_interrupts_on(struct virtq *vq);
void virtq_interrupts_off(struct virtq *vq);
/* Halt until the queue's device uses a buffer (or another interrupt),
 * unless it already did: interrupts on, halt, off again. */
void virtq_idle(struct virtq *vq);

#endif
