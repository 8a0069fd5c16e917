/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-net (virtio 1.2, 5.1): queue 0 receives, queue 1 transmits. The
 * only feature asked for is MAC; without it the MAC is 52:54:00:12:34:56.
 * No offloads, no mergeable buffers: every frame travels in one descriptor
 * that starts with the virtio-net header (12 bytes on a modern device, 10 on
 * a legacy one), always zero on transmit.
 *
 * Receive: RX_BUFS buffers of BUF_SIZE bytes stay posted; vnet_rx() hands
 * each filled one to the stack and re-posts it. Transmit: a free list of
 * TX_BUFS buffers; used ones are reclaimed when a new one is wanted. Both
 * queues are kicked once per vnet_flush(), i.e. once per stack iteration.
 */
#include "virtio-net.h"
#include "virtio.h"

#define VIRTIO_NET_F_MAC 5
#define RX_QUEUE	 0
#define TX_QUEUE	 1
#define RX_BUFS		 256
#define TX_BUFS		 256
#define BUF_SIZE	 2048

static struct virtio_dev dev;
static struct virtq rxq, txq;
static unsigned int hdr_len;
static uint8_t *tx_free[TX_BUFS];
static unsigned int nr_tx_free;
static bool rx_kick, tx_kick;

static void rx_post(uint8_t *buf)
{
	struct vbuf b = {buf, BUF_SIZE};

	virtq_add(&rxq, &b, 0, 1, buf);
	rx_kick = true;
}

int vnet_init(uint8_t mac[6])
{
	uint8_t *bufs;

	if (virtio_find(VIRTIO_ID_NET, 0, &dev)) {
		printf("net: no virtio-net device (virtio_mmio.device= entries: %u)\n",
		       nr_virtio_mmio_devs);
		return -1;
	}
	if (virtio_negotiate(&dev, 1ULL << VIRTIO_NET_F_MAC))
		return -1;
	hdr_len = virtio_has(&dev, VIRTIO_F_VERSION_1) ? 12 : 10;
	if (virtq_init(&dev, &rxq, RX_QUEUE, RX_BUFS) || virtq_init(&dev, &txq, TX_QUEUE, TX_BUFS))
		return -1;
	if (virtio_has(&dev, VIRTIO_NET_F_MAC)) {
		for (unsigned int i = 0; i < 6; i++)
			mac[i] = virtio_config8(&dev, i);
	} else {
		static const uint8_t def[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
		memcpy(mac, def, 6);
	}
	bufs = mem_alloc((size_t)(rxq.size + txq.size) * BUF_SIZE, 4096);
	virtio_driver_ok(&dev);
	for (unsigned int i = 0; i < rxq.size; i++)
		rx_post(bufs + (size_t)i * BUF_SIZE);
	for (unsigned int i = 0; i < txq.size; i++)
		tx_free[nr_tx_free++] = bufs + (size_t)(rxq.size + i) * BUF_SIZE;
	vnet_flush();
	virtio_ack_interrupt(&dev);
	return 0;
}

unsigned int vnet_rx(void (*fn)(uint8_t *frame, size_t len), unsigned int budget)
{
	unsigned int n = 0;
	uint8_t *buf;
	uint32_t len;

	while (n < budget && (buf = virtq_get(&rxq, &len))) {
		if (len > hdr_len && len <= BUF_SIZE)
			fn(buf + hdr_len, len - hdr_len);
		rx_post(buf);
		n++;
	}
	return n;
}

void vnet_idle(void)
{
	virtq_idle(&rxq);
}

unsigned int vnet_irq(void)
{
	return virtio_mmio_devs[dev.index].irq;
}

uint8_t *vnet_tx_buf(void)
{
	uint8_t *buf;

	while ((buf = virtq_get(&txq, NULL)))
		tx_free[nr_tx_free++] = buf;
	if (!nr_tx_free)
		return NULL;
	buf = tx_free[--nr_tx_free];
	memset(buf, 0, hdr_len);
	return buf + hdr_len;
}

void vnet_tx_send(uint8_t *frame, size_t len)
{
	struct vbuf b = {frame - hdr_len, (uint32_t)(len + hdr_len)};

	if (len < 60) { /* pad to the Ethernet minimum */
		memset(frame + len, 0, 60 - len);
		b.len = 60 + hdr_len;
	}
	virtq_add(&txq, &b, 1, 0, frame - hdr_len);
	tx_kick = true;
}

void vnet_tx_drop(uint8_t *frame)
{
	tx_free[nr_tx_free++] = frame - hdr_len;
}

void vnet_flush(void)
{
	if (tx_kick)
		virtq_kick(&txq);
	if (rx_kick)
		virtq_kick(&rxq);
	tx_kick = rx_kick = false;
}

void vnet_ack_interrupt(void)
{
	virtio_ack_interrupt(&dev);
}
