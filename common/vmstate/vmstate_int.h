/* SPDX-License-Identifier: GPL-2.0-only */
/* common/vmstate private: shared by desc.c, io.c and stream.c. */
#ifndef COLOVM_VMSTATE_INT_H
#define COLOVM_VMSTATE_INT_H

#include <endian.h>
#include <string.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"

#define VMSTATE_MAX_DEPTH	 8
#define VMSTATE_MAX_SUBSECTIONS	 64
#define VMSTATE_SUBSECTION_MARK	 0x05

enum vmstate_rec {
	VMSTATE_REC_EOF = 0x00,
	VMSTATE_REC_START = 0x01,
	VMSTATE_REC_PART = 0x02,
	VMSTATE_REC_END = 0x03,
	VMSTATE_REC_FULL = 0x04,
	VMSTATE_REC_CMD = 0x08,
};

enum vmstate_run_flag {
	VMSTATE_RUN_RAW = 0x00,
	VMSTATE_RUN_ZERO = 0x01,
	VMSTATE_RUN_ZSTD = 0x02,
};
#define VMSTATE_RUN_HDR 13 /* flags u8 | gfn u64 | npages u32 */

struct vmstate_entry {
	const struct vmstate_desc *desc;
	uint32_t instance_id;
	void *opaque;
	size_t extent; /* bytes of opaque covered by the description */
};

struct vmstate_registry {
	struct vmstate_entry *entries;
	size_t n, cap;
};

/* Growable byte buffer. */
struct vbuf {
	uint8_t *p;
	size_t len, cap;
};

int vbuf_reserve(struct vbuf *b, size_t more);
int vbuf_put(struct vbuf *b, const void *data, size_t len);
void vbuf_free(struct vbuf *b);

/* Read cursor over a byte range. */
struct vcur {
	const uint8_t *p;
	size_t len, pos;
};


struct vmstate_entry *vmstate_find(struct vmstate_registry *reg, const char *name,
				   size_t name_len, uint32_t instance_id);
/* Device payload: fields and subsections of e->desc from opaque. */
int vmstate_encode(const struct vmstate_entry *e, struct vbuf *out, const char *what,
		   struct vmstate_error *err);
/* Decode a whole payload of stream version `version` into base. */
int vmstate_decode(const struct vmstate_desc *desc, void *base, uint32_t version,
		   const uint8_t *p, size_t len, const char *what, struct vmstate_error *err);

/* Sink write that counts bytes; source read of exactly len bytes. */
int vmstate_sink_writev(struct vmstate_sink *sink, const struct iovec *iov, int iovcnt);
int vmstate_source_read(struct vmstate_source *src, void *buf, size_t len);

uint32_t vmstate_crc(uint32_t crc, const void *p, size_t len);

static inline void put_le16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}
static inline void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}
static inline uint16_t get_le16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}
static inline uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}
static inline uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

#endif
