/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * primary/disk.c: a word of the dirty-block bitmap (64 blocks of 4 KiB) cut
 * into DiskWrites, one per run of consecutive marked blocks: every marked
 * block sent once, nothing unmarked, runs as long as they can be, in order,
 * and none past the image's end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "primary/internal.h"

#define BLK 4096u

/* Cut word w of an image of image_bytes; check the runs against the word. */
static void check_word(uint64_t word, uint64_t w, uint64_t image_bytes)
{
	uint64_t bits = word, seen = 0, end = 0;
	unsigned int runs = 0, want_runs = 0;

	for (unsigned int i = 0; i < 64; i++)
		if (word >> i & 1 && (i == 0 || !(word >> (i - 1) & 1)))
			want_runs++;
	while (bits) {
		uint64_t off, before = bits;
		size_t len = colo_disk_take_run(&bits, w, image_bytes, &off);
		uint64_t first = off / BLK - w * 64, n = (len + BLK - 1) / BLK;
		uint64_t mask = (n == 64 ? ~0ull : (1ull << n) - 1) << first;

		assert_true(off % BLK == 0);
		assert_true(off >= w * 64 * BLK && off < (w + 1) * 64 * BLK);
		assert_true(len > 0 && len <= 64 * BLK);
		assert_true(off + len <= image_bytes);
		/* the run's blocks were all marked, are taken, nothing else is */
		assert_true((before & mask) == mask);
		assert_true(bits == (before & ~mask));
		/* in order, and as long as it can be: the blocks either side of
		 * it were not marked (or it ends at the image's end) */
		assert_true(runs == 0 || off >= end);
		if (first > 0)
			assert_false(word >> (first - 1) & 1);
		if (first + n < 64 && off + len < image_bytes)
			assert_false(word >> (first + n) & 1);
		if (off + len < (first + n + w * 64) * BLK)
			assert_true(off + len == image_bytes); /* a short last block */
		seen |= mask;
		end = off + len;
		runs++;
	}
	assert_true(seen == word);
	assert_int_equal(runs, want_runs);
}

static void test_edges(void **state)
{
	static const uint64_t words[] = {
	    1,
	    1ull << 63,
	    ~0ull,
	    ~0ull >> 1,
	    ~0ull << 1,
	    0x5555555555555555ull,
	    0xaaaaaaaaaaaaaaaaull,
	    0x8000000000000001ull,
	    0x00ff00ff00ff00ffull,
	    0xfffffffe00000000ull,
	    0x00000001ffffffffull,
	};

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		check_word(words[i], 0, 64 * BLK);
		check_word(words[i], 3, 1ull << 30);
	}
}

/* The image's last word, the image not a whole number of blocks: the last
 * run stops at its last byte. */
static void test_short_image(void **state)
{
	uint64_t bits = ~0ull, off;
	uint64_t bytes = 10 * 64 * BLK + 5 * BLK + 512; /* word 10: 6 blocks, the last 512 B */

	(void)state;
	bits = (1ull << 6) - 1;
	assert_int_equal(colo_disk_take_run(&bits, 10, bytes, &off), 5 * BLK + 512);
	assert_true(off == 10 * 64 * BLK);
	assert_true(bits == 0);
	bits = 1ull << 5;
	assert_int_equal(colo_disk_take_run(&bits, 10, bytes, &off), 512);
	assert_true(off == 10 * 64 * BLK + 5 * BLK);
	check_word(0x2d, 10, bytes);
}

static void test_random(void **state)
{
	(void)state;
	srand(7);
	for (int i = 0; i < 100000; i++) {
		uint64_t word = 0;

		for (int k = 0; k < 4; k++)
			word = word << 16 ^ (uint64_t)(rand() & 0xffff);
		/* sparse, dense and long runs alike */
		if (i % 3 == 1)
			word &= (uint64_t)rand() << 32 | (uint64_t)rand();
		else if (i % 3 == 2)
			word |= (uint64_t)rand() << 32 | (uint64_t)rand();
		if (word)
			check_word(word, (uint64_t)(i % 1000), (1ull << 30));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_edges),
	    cmocka_unit_test(test_short_image),
	    cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
