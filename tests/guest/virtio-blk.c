/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-blk (virtio 1.2, 5.2): requests on queue 0 as three-descriptor
 * chains: the 16-byte header (type, sector) read by the device, the data
 * (read or written), the status byte written by the device. A flush has
 * no data. Features asked for: RO (to know), FLUSH; capacity (in 512-byte
 * sectors) is read from the configuration space.
 */
#include "virtio-blk.h"
#include "virtio.h"

#define VIRTIO_BLK_F_RO	   5
#define VIRTIO_BLK_F_FLUSH 9
#define MAX_TAGS	   32

struct req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct req {
	struct req_hdr hdr;
	uint8_t status;
};

static struct virtio_dev dev;
static struct virtq vq;
static struct req *reqs;

int vblk_init(struct vblk_info *info)
{
	if (virtio_find(VIRTIO_ID_BLK, 0, &dev)) {
		printf("blk: no virtio-blk device (virtio_mmio.device= entries: %u)\n",
		       nr_virtio_mmio_devs);
		return -1;
	}
	if (virtio_negotiate(&dev, 1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_FLUSH))
		return -1;
	if (virtq_init(&dev, &vq, 0, 128))
		return -1;
	reqs = mem_alloc(MAX_TAGS * sizeof(*reqs), 64);
	virtio_driver_ok(&dev);
	info->sectors = virtio_config64(&dev, 0);
	info->readonly = virtio_has(&dev, VIRTIO_BLK_F_RO);
	info->flush = virtio_has(&dev, VIRTIO_BLK_F_FLUSH);
	info->max_inflight = vq.size / 3 < MAX_TAGS ? vq.size / 3 : MAX_TAGS;
	return 0;
}

int vblk_submit(unsigned int tag, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct req *r = &reqs[tag];
	struct vbuf b[3];
	unsigned int n = 0;

	r->hdr.type = type;
	r->hdr.reserved = 0;
	r->hdr.sector = sector;
	r->status = 0xff;
	b[n++] = (struct vbuf){&r->hdr, sizeof(r->hdr)};
	if (len)
		b[n++] = (struct vbuf){buf, len};
	b[n++] = (struct vbuf){&r->status, 1};
	if (type == VBLK_IN && len)
		return virtq_add(&vq, b, 1, 2, r);
	return virtq_add(&vq, b, n - 1, 1, r);
}

void vblk_kick(void)
{
	virtq_kick(&vq);
}

int vblk_poll(uint8_t *status)
{
	struct req *r = virtq_get(&vq, NULL);

	if (!r)
		return -1;
	barrier();
	*status = *(volatile uint8_t *)&r->status;
	return (int)(r - reqs);
}

void vblk_idle(void)
{
	virtq_idle(&vq);
}

unsigned int vblk_irq(void)
{
	return virtio_mmio_devs[dev.index].irq;
}

const char *vblk_status_name(uint8_t status)
{
	switch (status) {
	case VBLK_S_OK:
		return "OK";
	case VBLK_S_IOERR:
		return "IOERR";
	case VBLK_S_UNSUPP:
		return "UNSUPP";
	default:
		return "unknown";
	}
}
