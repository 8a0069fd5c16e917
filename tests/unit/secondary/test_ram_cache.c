/* SPDX-License-Identifier: GPL-2.0-only */
/* secondary/ram-cache.c: the RAM cache COLO checkpoints land in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hw/hw.h"
#include "secondary/secondary.h"

#define NPAGES 200u /* not a multiple of 64: the last bitmap word is partial */
#define PG     HW_PAGE_SIZE

static uint8_t *guest, *before;

/* Page p of "guest RAM" holds tag p + gen in every byte. */
static void fill(uint8_t *ram, unsigned int gen)
{
	for (unsigned int p = 0; p < NPAGES; p++)
		memset(ram + (size_t)p * PG, (int)((p + gen) & 0xff), PG);
}

static int setup(void **state)
{
	guest = aligned_alloc(PG, (size_t)NPAGES * PG);
	before = malloc((size_t)NPAGES * PG);
	if (!guest || !before)
		return -1;
	fill(guest, 0);
	return 0;
}

static int teardown(void **state)
{
	free(guest);
	free(before);
	return 0;
}

static void page_of(uint8_t *buf, uint8_t v)
{
	memset(buf, v, PG);
}

/* Pages that differ between guest and before. */
static unsigned int changed(void)
{
	unsigned int n = 0;

	for (unsigned int p = 0; p < NPAGES; p++)
		n += memcmp(guest + (size_t)p * PG, before + (size_t)p * PG, PG) != 0;
	return n;
}

/* The first sync of a COLO secondary: a guest that never ran (zero), a
 * cache that starts zero without reading it, the unit's pages noted, and a
 * commit that makes guest RAM the cache (pages not sent are zero in both). */
static void test_empty_first_sync(void **state)
{
	uint8_t *zero = aligned_alloc(PG, (size_t)NPAGES * PG), pg[PG];
	struct ram_cache *c = NULL;
	uint64_t bytes, copied = 0;
	uint8_t *region;

	assert_non_null(zero);
	memset(zero, 0, (size_t)NPAGES * PG);
	assert_int_equal(ram_cache_new_empty(zero, (uint64_t)NPAGES * PG, &c), 0);
	region = ram_cache_region(c, &bytes);
	for (unsigned int p = 0; p < NPAGES; p++)
		assert_int_equal(region[(size_t)p * PG + 7], 0);
	page_of(pg, 0x5a);
	memcpy(region + 3 * PG, pg, PG); /* the sender writes the region */
	memcpy(region + 150 * PG, pg, PG);
	assert_int_equal(ram_cache_note(c, 3 * PG, PG), 0);
	assert_int_equal(ram_cache_note(c, 150 * PG, PG), 0);
	assert_int_equal(ram_cache_commit(c, NULL, &copied), 0);
	assert_int_equal(copied, 2);
	assert_memory_equal(zero, region, (size_t)NPAGES * PG);
	assert_int_equal(zero[3 * PG], 0x5a);
	ram_cache_free(c);
	free(zero);
}

static void test_starts_as_copy(void **state)
{
	struct ram_cache *c;
	uint64_t bytes;

	fill(guest, 0);
	assert_int_equal(ram_cache_new(guest, (uint64_t)NPAGES * PG, &c), 0);
	assert_memory_equal(ram_cache_region(c, &bytes), guest, (size_t)NPAGES * PG);
	assert_int_equal(bytes, (uint64_t)NPAGES * PG);
	assert_int_equal(ram_cache_pending(c), 0);
	ram_cache_free(c);
	assert_int_equal(ram_cache_new(guest, PG + 1, &c), -EINVAL);
	assert_int_equal(ram_cache_new(guest, 0, &c), -EINVAL);
}

static void test_bad_ranges(void **state)
{
	struct ram_cache *c;
	uint8_t pg[PG];

	fill(guest, 0);
	page_of(pg, 0xaa);
	assert_int_equal(ram_cache_new(guest, (uint64_t)NPAGES * PG, &c), 0);
	assert_int_equal(ram_cache_note(c, 1, PG), -EINVAL);
	assert_int_equal(ram_cache_note(c, 0, PG - 1), -EINVAL);
	assert_int_equal(ram_cache_note(c, (uint64_t)NPAGES * PG, PG), -ERANGE);
	assert_int_equal(ram_cache_note(c, (uint64_t)(NPAGES - 1) * PG, 2 * PG), -ERANGE);
	assert_int_equal(ram_cache_note(c, UINT64_MAX - PG + 1, PG), -ERANGE); /* no wrap */
	assert_int_equal(ram_cache_note(c, PG, UINT64_MAX - PG + 1), -ERANGE);
	assert_int_equal(ram_cache_store(c, NPAGES, pg, 1), -ERANGE);
	assert_int_equal(ram_cache_store(c, NPAGES - 1, pg, 2), -ERANGE);
	assert_int_equal(ram_cache_pending(c), 0);
	ram_cache_free(c);
}

/* Pages land in the cache; an abort half-way changes no guest page, and a
 * stale cache refuses to commit until it is reset. */
static void test_abort_leaves_guest(void **state)
{
	struct ram_cache *c;
	uint64_t bytes, copied = 0;
	uint8_t pg[PG], *region;

	fill(guest, 0);
	assert_int_equal(ram_cache_new(guest, (uint64_t)NPAGES * PG, &c), 0);
	memcpy(before, guest, (size_t)NPAGES * PG);
	region = ram_cache_region(c, &bytes);
	page_of(pg, 0x5a);
	for (unsigned int p = 0; p < NPAGES; p += 3)
		assert_int_equal(ram_cache_store(c, p, pg, 1), 0);
	/* and bytes the sender wrote but never committed (a transport write) */
	memset(region + 7 * PG, 0x77, PG);
	assert_int_equal(ram_cache_pending(c), (NPAGES + 2) / 3);
	assert_memory_equal(region + 3 * PG, pg, PG);
	assert_int_equal(changed(), 0);
	ram_cache_abort(c);
	assert_int_equal(changed(), 0);
	assert_int_equal(ram_cache_pending(c), 0);
	assert_int_equal(ram_cache_commit(c, NULL, &copied), -ESTALE);
	assert_int_equal(changed(), 0);
	ram_cache_reset(c);
	assert_memory_equal(region, guest, (size_t)NPAGES * PG);
	assert_int_equal(ram_cache_commit(c, NULL, &copied), 0);
	assert_int_equal(copied, 0);
	assert_int_equal(changed(), 0);
	ram_cache_free(c);
}

/* A commit copies the noted pages and the pages the guest dirtied, and no
 * other page, even one whose cache bytes differ. */
static void test_commit_exact(void **state)
{
	uint64_t dirty[HW_BITMAP_WORDS(NPAGES)] = {0}, bytes, copied = 0;
	static const unsigned int noted[] = {0, 1, 2, 63, 64, 130, NPAGES - 1};
	static const unsigned int guest_wrote[] = {2, 5, 128, 191};
	uint8_t pg[PG], *region;
	struct ram_cache *c;
	unsigned int want = 0;

	fill(guest, 0);
	assert_int_equal(ram_cache_new(guest, (uint64_t)NPAGES * PG, &c), 0);
	region = ram_cache_region(c, &bytes);
	/* the checkpoint: pages from a sender writing the region + note */
	for (unsigned int i = 0; i < sizeof(noted) / sizeof(noted[0]); i++) {
		memset(region + (size_t)noted[i] * PG, 0xc0 + (int)i, PG);
		assert_int_equal(ram_cache_note(c, (uint64_t)noted[i] * PG, PG), 0);
	}
	assert_int_equal(ram_cache_note(c, 0, 2 * PG), 0); /* noted twice: counted once */
	assert_int_equal(ram_cache_pending(c), sizeof(noted) / sizeof(noted[0]));
	/* the secondary's guest diverged on these pages meanwhile */
	for (unsigned int i = 0; i < sizeof(guest_wrote) / sizeof(guest_wrote[0]); i++) {
		memset(guest + (size_t)guest_wrote[i] * PG, 0xee, PG);
		dirty[guest_wrote[i] / 64] |= 1ull << (guest_wrote[i] % 64);
	}
	/* a cache page outside both sets that differs: must not be copied */
	memset(region + 100 * PG, 0x99, PG);
	memcpy(before, guest, (size_t)NPAGES * PG);

	assert_int_equal(ram_cache_commit(c, dirty, &copied), 0);
	want = sizeof(noted) / sizeof(noted[0]) + sizeof(guest_wrote) / sizeof(guest_wrote[0]) - 1;
	assert_int_equal(copied, want); /* page 2 is in both sets */
	for (unsigned int p = 0; p < NPAGES; p++) {
		bool in = false;

		for (unsigned int i = 0; i < sizeof(noted) / sizeof(noted[0]); i++)
			in |= noted[i] == p;
		for (unsigned int i = 0; i < sizeof(guest_wrote) / sizeof(guest_wrote[0]); i++)
			in |= guest_wrote[i] == p;
		if (in)
			assert_memory_equal(guest + (size_t)p * PG, region + (size_t)p * PG, PG);
		else
			assert_memory_equal(guest + (size_t)p * PG, before + (size_t)p * PG, PG);
	}
	page_of(pg, 0x99);
	assert_memory_not_equal(guest + 100 * PG, pg, PG);
	/* the guest's own writes were undone: the cache's page won */
	page_of(pg, (uint8_t)(5 & 0xff));
	assert_memory_equal(guest + 5 * PG, pg, PG);
	assert_int_equal(ram_cache_pending(c), 0);
	/* nothing pending: a second commit copies nothing */
	assert_int_equal(ram_cache_commit(c, NULL, &copied), 0);
	assert_int_equal(copied, 0);
	ram_cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_starts_as_copy), cmocka_unit_test(test_empty_first_sync),
	    cmocka_unit_test(test_bad_ranges),	   cmocka_unit_test(test_abort_leaves_guest),
	    cmocka_unit_test(test_commit_exact),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
