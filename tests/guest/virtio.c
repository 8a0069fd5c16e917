/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mmio transport and split virtqueues (virtio 1.2, 4.2 and 2.7).
 *
 * The registers are reached at CPL 3 through the identity map (boot.S maps
 * 0-4 GiB user-accessible), so every access is a plain load or store that the
 * VMM sees as an MMIO exit. The rings live in RAM from mem_alloc() in the
 * legacy layout (descriptors, available ring, used ring at the next 4 KiB),
 * which a modern device accepts as three addresses and a legacy one as a PFN.
 *
 * No interrupts: avail->flags carries VRING_AVAIL_F_NO_INTERRUPT and the
 * driver polls used->idx; only an idle halt clears the flag for its
 * duration (virtq_interrupts_on). A device may interrupt anyway (the flag is a
 * hint); virtio_ack_interrupt() clears InterruptStatus so the line drops.
 */
#include "virtio.h"

#define MMIO_MAGIC	      0x000
#define MMIO_VERSION	      0x004
#define MMIO_DEVICE_ID	      0x008
#define MMIO_DEVICE_FEATURES  0x010
#define MMIO_DEVICE_FEAT_SEL  0x014
#define MMIO_DRIVER_FEATURES  0x020
#define MMIO_DRIVER_FEAT_SEL  0x024
#define MMIO_GUEST_PAGE_SIZE  0x028 /* legacy */
#define MMIO_QUEUE_SEL	      0x030
#define MMIO_QUEUE_NUM_MAX    0x034
#define MMIO_QUEUE_NUM	      0x038
#define MMIO_QUEUE_ALIGN      0x03c /* legacy */
#define MMIO_QUEUE_PFN	      0x040 /* legacy */
#define MMIO_QUEUE_READY      0x044
#define MMIO_QUEUE_NOTIFY     0x050
#define MMIO_INTERRUPT_STATUS 0x060
#define MMIO_INTERRUPT_ACK    0x064
#define MMIO_STATUS	      0x070
#define MMIO_QUEUE_DESC	      0x080
#define MMIO_QUEUE_DRIVER     0x090
#define MMIO_QUEUE_DEVICE     0x0a0
#define MMIO_CONFIG_GEN	      0x0fc
#define MMIO_CONFIG	      0x100

#define MAGIC 0x74726976 /* "virt" */

#define STATUS_ACKNOWLEDGE 1
#define STATUS_DRIVER	   2
#define STATUS_DRIVER_OK   4
#define STATUS_FEATURES_OK 8
#define STATUS_FAILED	   128

#define FOUR_GIB   (4ULL << 30)
#define RING_ALIGN 4096

static uint32_t rd32(struct virtio_dev *d, unsigned int off)
{
	return *(volatile uint32_t *)(d->base + off);
}

static void wr32(struct virtio_dev *d, unsigned int off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}

static void wr64(struct virtio_dev *d, unsigned int off, uint64_t v)
{
	wr32(d, off, (uint32_t)v);
	wr32(d, off + 4, (uint32_t)(v >> 32));
}

int virtio_find(uint32_t device_id, unsigned int n, struct virtio_dev *d)
{
	for (unsigned int i = 0; i < nr_virtio_mmio_devs; i++) {
		const struct virtio_mmio_dev *m = &virtio_mmio_devs[i];
		uint32_t version;

		if (m->base >= FOUR_GIB || m->size > FOUR_GIB - m->base || m->size < 0x100) {
			printf("virtio: device at 0x%lx is outside the identity map\n", m->base);
			continue;
		}
		d->base = m->base;
		d->index = i;
		if (rd32(d, MMIO_MAGIC) != MAGIC)
			continue;
		version = rd32(d, MMIO_VERSION);
		if (version != 1 && version != 2)
			continue;
		if (rd32(d, MMIO_DEVICE_ID) != device_id)
			continue;
		if (n--)
			continue;
		d->version = version;
		d->device_id = device_id;
		d->features = 0;
		return 0;
	}
	return -1;
}

int virtio_negotiate(struct virtio_dev *d, uint64_t wanted)
{
	uint64_t offered;

	wr32(d, MMIO_STATUS, 0);
	while (rd32(d, MMIO_STATUS))
		cpu_relax();
	wr32(d, MMIO_STATUS, STATUS_ACKNOWLEDGE);
	wr32(d, MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
	wr32(d, MMIO_DEVICE_FEAT_SEL, 0);
	offered = rd32(d, MMIO_DEVICE_FEATURES);
	wr32(d, MMIO_DEVICE_FEAT_SEL, 1);
	offered |= (uint64_t)rd32(d, MMIO_DEVICE_FEATURES) << 32;
	if (d->version == 2) {
		if (!(offered & (1ULL << VIRTIO_F_VERSION_1))) {
			printf("virtio: device at 0x%lx: modern transport without VERSION_1\n",
			       d->base);
			wr32(d, MMIO_STATUS, STATUS_FAILED);
			return -1;
		}
		wanted |= 1ULL << VIRTIO_F_VERSION_1;
	} else {
		wanted &= ~(1ULL << VIRTIO_F_VERSION_1);
	}
	d->features = offered & wanted;
	wr32(d, MMIO_DRIVER_FEAT_SEL, 0);
	wr32(d, MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	wr32(d, MMIO_DRIVER_FEAT_SEL, 1);
	wr32(d, MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
	if (d->version == 1) {
		wr32(d, MMIO_GUEST_PAGE_SIZE, 4096);
		return 0;
	}
	wr32(d, MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
	if (!(rd32(d, MMIO_STATUS) & STATUS_FEATURES_OK)) {
		printf("virtio: device at 0x%lx refused features 0x%lx\n", d->base, d->features);
		wr32(d, MMIO_STATUS, STATUS_FAILED);
		return -1;
	}
	return 0;
}

int virtq_init(struct virtio_dev *d, struct virtq *vq, uint16_t index, uint16_t max_size)
{
	uint32_t num_max, size = 1, avail_end, used_off, bytes;
	uint8_t *ring;

	wr32(d, MMIO_QUEUE_SEL, index);
	if (d->version == 2 && rd32(d, MMIO_QUEUE_READY)) {
		printf("virtio: device at 0x%lx: queue %u already live\n", d->base, index);
		return -1;
	}
	num_max = rd32(d, MMIO_QUEUE_NUM_MAX);
	if (!num_max) {
		printf("virtio: device at 0x%lx has no queue %u\n", d->base, index);
		return -1;
	}
	while (size * 2 <= num_max && size * 2 <= max_size && size < 32768)
		size *= 2;
	avail_end = 16 * size + 6 + 2 * size;
	used_off = (avail_end + RING_ALIGN - 1) & ~(RING_ALIGN - 1);
	bytes = used_off + 6 + 8 * size;
	ring = mem_alloc(bytes, RING_ALIGN);

	vq->dev = d;
	vq->index = index;
	vq->size = (uint16_t)size;
	vq->desc = (void *)ring;
	vq->avail = (void *)(ring + 16 * size);
	vq->used = (void *)(ring + used_off);
	vq->token = mem_alloc(size * sizeof(void *), 8);
	for (uint32_t i = 0; i < size; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->nr_free = (uint16_t)size;
	vq->last_used = 0;
	vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;

	wr32(d, MMIO_QUEUE_NUM, size);
	if (d->version == 1) {
		wr32(d, MMIO_QUEUE_ALIGN, RING_ALIGN);
		wr32(d, MMIO_QUEUE_PFN, (uint32_t)((uint64_t)ring / 4096));
	} else {
		wr64(d, MMIO_QUEUE_DESC, (uint64_t)vq->desc);
		wr64(d, MMIO_QUEUE_DRIVER, (uint64_t)vq->avail);
		wr64(d, MMIO_QUEUE_DEVICE, (uint64_t)vq->used);
		wr32(d, MMIO_QUEUE_READY, 1);
	}
	return 0;
}

void virtio_driver_ok(struct virtio_dev *d)
{
	uint32_t s = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK;

	if (d->version == 2)
		s |= STATUS_FEATURES_OK;
	wr32(d, MMIO_STATUS, s);
}

uint32_t virtio_status(struct virtio_dev *d)
{
	return rd32(d, MMIO_STATUS);
}

void virtio_ack_interrupt(struct virtio_dev *d)
{
	uint32_t s = rd32(d, MMIO_INTERRUPT_STATUS);

	if (s)
		wr32(d, MMIO_INTERRUPT_ACK, s);
}

uint8_t virtio_config8(struct virtio_dev *d, unsigned int off)
{
	return *(volatile uint8_t *)(d->base + MMIO_CONFIG + off);
}

uint32_t virtio_config32(struct virtio_dev *d, unsigned int off)
{
	return rd32(d, MMIO_CONFIG + off);
}

uint64_t virtio_config64(struct virtio_dev *d, unsigned int off)
{
	uint32_t gen, lo, hi;

	do {
		gen = d->version == 2 ? rd32(d, MMIO_CONFIG_GEN) : 0;
		lo = rd32(d, MMIO_CONFIG + off);
		hi = rd32(d, MMIO_CONFIG + off + 4);
	} while (d->version == 2 && gen != rd32(d, MMIO_CONFIG_GEN));
	return (uint64_t)hi << 32 | lo;
}

int virtq_add(struct virtq *vq, const struct vbuf *b, unsigned int nout, unsigned int nin,
	      void *token)
{
	unsigned int n = nout + nin;
	uint16_t head = vq->free_head, i = head, last = head;

	if (!n || n > vq->nr_free)
		return -1;
	for (unsigned int k = 0; k < n; k++) {
		struct vring_desc *desc = &vq->desc[i];

		desc->addr = (uint64_t)b[k].addr;
		desc->len = b[k].len;
		desc->flags = (uint16_t)((k >= nout ? VRING_DESC_F_WRITE : 0) |
					 (k + 1 < n ? VRING_DESC_F_NEXT : 0));
		last = i;
		i = desc->next;
	}
	vq->free_head = vq->desc[last].next;
	vq->nr_free = (uint16_t)(vq->nr_free - n);
	vq->token[head] = token;
	vq->avail->ring[vq->avail->idx & (vq->size - 1)] = head;
	barrier();
	vq->avail->idx++;
	return 0;
}

void virtq_kick(struct virtq *vq)
{
	mb(); /* avail->idx before reading used->flags */
	if (vq->used->flags & VRING_USED_F_NO_NOTIFY) {
		vq->kicks_skipped++;
		return;
	}
	vq->kicks++;
	wr32(vq->dev, MMIO_QUEUE_NOTIFY, vq->index);
}

bool virtq_interrupts_on(struct virtq *vq)
{
	vq->avail->flags = 0;
	mb(); /* the flag before reading used->idx: the device does the reverse */
	return *(volatile uint16_t *)&vq->used->idx != vq->last_used;
}

void virtq_interrupts_off(struct virtq *vq)
{
	vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
}

void virtq_idle(struct virtq *vq)
{
	if (!virtq_interrupts_on(vq))
		cpu_idle();
	virtq_interrupts_off(vq);
}

void *virtq_get(struct virtq *vq, uint32_t *len)
{
	struct vring_used_elem e;
	uint16_t i, n = 1;
	void *token;

	if (*(volatile uint16_t *)&vq->used->idx == vq->last_used)
		return NULL;
	barrier();
	e = vq->used->ring[vq->last_used & (vq->size - 1)];
	vq->last_used++;
	if (e.id >= vq->size)
		return NULL;
	i = (uint16_t)e.id;
	while (vq->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vq->desc[i].next;
		n++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)e.id;
	vq->nr_free = (uint16_t)(vq->nr_free + n);
	token = vq->token[e.id];
	if (len)
		*len = e.len;
	return token;
}
