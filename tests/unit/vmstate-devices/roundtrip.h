/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the device round-trip tests: read back and compare two saved
 * streams (memfds). */
#ifndef COLOVM_TEST_ROUNDTRIP_H
#define COLOVM_TEST_ROUNDTRIP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hw/hw.h"

static void on_event(void *opaque, enum vm_event ev, int code)
{
}

static int slurp(int fd, uint8_t **buf, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);

	if (end < 0)
		return -errno;
	*len = (size_t)end;
	*buf = malloc(*len ? *len : 1);
	if (!*buf)
		return -ENOMEM;
	if (pread(fd, *buf, *len, 0) != (ssize_t)*len)
		return -EIO;
	return 0;
}

/* 0 if the streams in fa and fb are byte for byte the same, else -1 with a
 * FAIL line naming the first difference. *a, *la: fa's bytes (free *a). */
static int same_streams(int fa, int fb, uint8_t **a, size_t *la)
{
	uint8_t *b = NULL;
	size_t lb = 0, i = 0;
	int ret = -1;

	*a = NULL;
	*la = 0;
	if (slurp(fa, a, la) || slurp(fb, &b, &lb)) {
		fprintf(stderr, "FAIL: cannot read the streams back\n");
	} else if (*la != lb || memcmp(*a, b, *la)) {
		while (i < *la && i < lb && (*a)[i] == b[i])
			i++;
		fprintf(stderr, "FAIL: streams differ (%zu vs %zu bytes, first at %zu)\n", *la, lb,
			i);
	} else {
		ret = 0;
	}
	free(b);
	return ret;
}

#endif
