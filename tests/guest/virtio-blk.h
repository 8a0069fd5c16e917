/* SPDX-License-Identifier: GPL-2.0-only */
/* virtio-blk driver: one request queue, several requests in flight, polled
 * (or halting until the device's interrupt: vblk_idle). */
#ifndef TESTGUEST_VIRTIO_BLK_H
#define TESTGUEST_VIRTIO_BLK_H

#include "guest.h"

#define VBLK_SECTOR 512
#define VBLK_IN	    0
#define VBLK_OUT    1
#define VBLK_FLUSH  4

#define VBLK_S_OK     0
#define VBLK_S_IOERR  1
#define VBLK_S_UNSUPP 2

struct vblk_info {
	uint64_t sectors;
	bool readonly; /* VIRTIO_BLK_F_RO */
	bool flush;    /* VIRTIO_BLK_F_FLUSH */
	unsigned int max_inflight;
};

int vblk_init(struct vblk_info *info);
/* Queue a request (len bytes at buf; none for a flush) under tag
 * (0 .. max_inflight - 1); -1 if the ring is full. */
int vblk_submit(unsigned int tag, uint32_t type, uint64_t sector, void *buf, uint32_t len);
void vblk_kick(void);
/* A completed request: its tag, status in *status; -1 if none yet. */
int vblk_poll(uint8_t *status);
/* Nothing completed yet: halt until the device completes a request (its
 * interrupt, on a PIC line the caller unmasked) or another interrupt. */
void vblk_idle(void);
unsigned int vblk_irq(void);
const char *vblk_status_name(uint8_t status);

#endif
