// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for net-compare: the frame parser, the compare feed (both sides,
 * timeouts, checkpoints) and the rewriter. Input: records of
 *   u8 op | u16 len (LE) | len bytes
 * op & 3: 0 primary, 1 secondary, 2 rewrite outbound, 3 rewrite inbound;
 * op & 4: advance time 20 ms and poll; op & 8: checkpoint begin, op & 16: ack;
 * op & 32: passthrough add for the frame's protocol/port; op & 128: the bytes are a
 * saved rewrite table (compare_rewrite_load), and what the rewriter saves then must
 * load into a fresh one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net-compare/compare.h"

static void on_rel(void *o, const uint8_t *f, size_t n)
{
	volatile uint8_t sink = n ? f[n - 1] : 0;

	(void)sink;
}

static void on_ck(void *o, enum compare_reason r)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct compare_ops ops = {.release = on_rel, .checkpoint = on_ck};
	struct compare_config cfg = {.max_conns = 64, .max_conn_bytes = 65536};
	struct compare_rewrite *rw;
	struct compare *c;
	uint64_t now = 1000000000ull;
	uint8_t buf[65536];

	if (compare_new(&c, &cfg, &ops, NULL) < 0)
		return 0;
	if (compare_rewrite_new(&rw, 64) < 0) {
		compare_free(c);
		return 0;
	}
	while (size >= 3) {
		uint8_t op = data[0];
		size_t len = (size_t)(data[1] | data[2] << 8);
		struct compare_flow fl;

		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		memcpy(buf, data, len);
		data += len;
		size -= len;
		now += 1000;
		if (op & 128) {
			struct compare_rewrite *rw2;
			uint8_t *saved;
			size_t n;

			compare_rewrite_load(rw, buf, len, now);
			if (compare_rewrite_save(rw, &saved, &n) >= 0) {
				if (compare_rewrite_new(&rw2, 64) == 0) {
					if (compare_rewrite_load(rw2, saved, n, now)) {
						fprintf(stderr, "a saved table does not load\n");
						abort();
					}
					compare_rewrite_free(rw2);
				}
				free(saved);
			}
			continue;
		}
		if (len) {
			compare_flow_parse(buf, len, &fl);
			switch (op & 3) {
			case 0:
			case 1:
				compare_feed(c, (enum compare_side)(op & 1), buf, len, now);
				break;
			case 2:
				compare_rewrite_outbound(rw, buf, len, 0, now);
				break;
			case 3:
				compare_rewrite_inbound(rw, buf, len, op & 64 ? 1 : 0, now);
				break;
			}
			if ((op & 32) && compare_flow_parse(buf, len, &fl) == 0)
				compare_passthrough_add(c, fl.proto, fl.sport);
		}
		if (op & 4) {
			now += 20000000;
			compare_poll(c, now);
			compare_rewrite_gc(rw, now, 1000000);
		}
		if (op & 8) {
			compare_checkpoint_begin(c, now);
			compare_rewrite_checkpoint(rw);
		}
		if (op & 16)
			compare_checkpoint_acked(c, now);
	}
	compare_rewrite_free(rw);
	compare_free(c);
	return 0;
}
