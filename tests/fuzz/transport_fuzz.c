// SPDX-License-Identifier: GPL-2.0-only
/*
 * Fuzz the transport frame decoder: header checks, MAC/sequence checks and
 * the protobuf-c Msg decoder behind them. Unkeyed opening is what a server
 * does with a stranger's Hello, so that path must survive anything.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[32] = { 1 };
	transport_msg *m = NULL;
	struct frame_hdr h;
	size_t flen;

	if (size >= TRANSPORT_HDR_LEN) {
		frame_hdr_decode(data, &h);
		(void)frame_check_ctrl_hdr(&h, &flen);
		if (!frame_open(data, size, NULL, h.seq, &m))
			colovm__transport__msg__free_unpacked(m, NULL);
		m = NULL;
		if (!frame_open(data, size, key, h.seq, &m))
			colovm__transport__msg__free_unpacked(m, NULL);
	}
	m = colovm__transport__msg__unpack(NULL, size, data);
	if (m)
		colovm__transport__msg__free_unpacked(m, NULL);
	return 0;
}
