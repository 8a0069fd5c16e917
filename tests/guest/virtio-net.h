/* SPDX-License-Identifier: GPL-2.0-only */
/* virtio-net driver: one receive and one transmit queue, polled. */
#ifndef TESTGUEST_VIRTIO_NET_H
#define TESTGUEST_VIRTIO_NET_H

#include "guest.h"

#define VNET_MTU       1500
#define VNET_FRAME_MAX 1514 /* Ethernet header + MTU, no FCS */

int vnet_init(uint8_t mac[6]);
/* Hand up to budget received frames to fn, then give their buffers back. */
unsigned int vnet_rx(void (*fn)(uint8_t *frame, size_t len), unsigned int budget);
/* A buffer for one frame of up to VNET_FRAME_MAX bytes, or NULL if every
 * transmit buffer is in flight. It must go to vnet_tx_send() or vnet_tx_drop(). */
uint8_t *vnet_tx_buf(void);
void vnet_tx_send(uint8_t *frame, size_t len);
void vnet_tx_drop(uint8_t *frame);
/* Tell the device about frames queued since the last flush (both queues). */
void vnet_flush(void);
void vnet_ack_interrupt(void);
/* Halt until a frame arrives or another interrupt ends it (at once when a
 * frame is already waiting); the device's line must be unmasked. */
void vnet_idle(void);
/* The device's interrupt line. */
unsigned int vnet_irq(void);

#endif
