/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio queue walker fuzzer: the input is a queue set-up (size, ring
 * addresses, start indices, negotiated features) followed by the contents
 * of a 64 KiB guest memory. The walker pops, reads, writes and completes
 * chains until the queue is empty or broken; it must never crash or touch
 * host memory outside guest RAM (ASan), and must stop in bounded time.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hw/virtio.h"

#define FUZZ_MEM (64 * 1024)

struct fuzz_hdr {
	uint8_t num_log2;
	uint8_t flags; /* bit 0: event idx, bit 1: indirect */
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t pad;
	uint32_t desc, avail, used;
} __attribute__((packed));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_mem mem;
	static struct virtq_elem e;
	static bool ready;
	struct fuzz_hdr h;
	struct virtq q;
	uint8_t scratch[64];

	if (size < sizeof(h))
		return 0;
	if (!ready) {
		if (mem_init(&mem, FUZZ_MEM))
			return 0;
		ready = true;
	}
	memcpy(&h, data, sizeof(h));
	data += sizeof(h);
	size -= sizeof(h);
	memset(mem.host, 0, FUZZ_MEM);
	memcpy(mem.host, data, size < FUZZ_MEM ? size : FUZZ_MEM);

	memset(&q, 0, sizeof(q));
	q.s.num = (uint16_t)(h.num_log2 < 16 ? 1u << h.num_log2 : h.num_log2);
	q.s.desc = h.desc % (2 * FUZZ_MEM);
	q.s.avail = h.avail % (2 * FUZZ_MEM);
	q.s.used = h.used % (2 * FUZZ_MEM);
	q.s.last_avail = h.last_avail;
	q.s.used_idx = h.used_idx;
	if (virtq_start(&q, &mem, h.flags & 1, h.flags & 2))
		return 0;
	for (unsigned int round = 0; round < 2; round++) {
		int ret;

		while ((ret = virtq_pop(&q, &e)) > 0) {
			virtq_elem_read(&e, 0, scratch, sizeof(scratch));
			virtq_elem_read(&e, e.out_len / 2, scratch, sizeof(scratch));
			virtq_elem_write(&q, &e, 0, scratch,
					 e.in_len < sizeof(scratch) ? e.in_len : sizeof(scratch));
			virtq_elem_write(&q, &e, e.in_len ? e.in_len - 1 : 0, scratch, 1);
			virtq_elem_mark_dirty(&q, &e, e.in_len);
			if (e.in_len & 1) {
				virtq_unpop(&q);
				if (virtq_pop(&q, &e) <= 0)
					break;
			}
			virtq_push(&q, e.head, (uint32_t)e.in_len);
		}
		virtq_flush(&q);
		if (ret < 0 || !virtq_enable_notify(&q))
			break;
	}
	return 0;
}
