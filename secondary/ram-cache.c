/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The secondary's RAM cache (secondary.h): where COLO checkpoints land
 * before they are complete. A pending bitmap records the pages of the
 * checkpoint in flight; commit copies those (and the pages the guest
 * dirtied itself) into guest RAM, abort leaves guest RAM alone.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hw/hw.h"
#include "secondary/secondary.h"

struct ram_cache {
	uint8_t *guest;
	uint8_t *cache;
	uint64_t bytes, npages;
	uint64_t *pending; /* pages noted since the last commit/abort */
	uint64_t npending;
	bool stale; /* an aborted checkpoint overwrote some pages */
};

static int cache_alloc(uint8_t *guest, uint64_t bytes, bool copy, struct ram_cache **out)
{
	struct ram_cache *c;

	if (!guest || !bytes || bytes % HW_PAGE_SIZE)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->guest = guest;
	c->bytes = bytes;
	c->npages = bytes / HW_PAGE_SIZE;
	c->pending = calloc(HW_BITMAP_WORDS(c->npages), sizeof(uint64_t));
	c->cache = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!c->pending || c->cache == MAP_FAILED) {
		if (c->cache == MAP_FAILED)
			c->cache = NULL;
		ram_cache_free(c);
		return -ENOMEM;
	}
	if (copy)
		memcpy(c->cache, guest, bytes);
	*out = c;
	return 0;
}

int ram_cache_new(uint8_t *guest, uint64_t bytes, struct ram_cache **out)
{
	return cache_alloc(guest, bytes, true, out);
}

int ram_cache_new_empty(uint8_t *guest, uint64_t bytes, struct ram_cache **out)
{
	return cache_alloc(guest, bytes, false, out);
}

void ram_cache_free(struct ram_cache *c)
{
	if (!c)
		return;
	if (c->cache)
		munmap(c->cache, c->bytes);
	free(c->pending);
	free(c);
}

uint8_t *ram_cache_region(struct ram_cache *c, uint64_t *bytes)
{
	*bytes = c->bytes;
	return c->cache;
}

int ram_cache_note(struct ram_cache *c, uint64_t off, uint64_t len)
{
	if (off % HW_PAGE_SIZE || len % HW_PAGE_SIZE)
		return -EINVAL;
	if (off > c->bytes || len > c->bytes - off)
		return -ERANGE;
	for (uint64_t p = off / HW_PAGE_SIZE; p < (off + len) / HW_PAGE_SIZE; p++) {
		uint64_t bit = 1ull << (p % 64);

		if (!(c->pending[p / 64] & bit)) {
			c->pending[p / 64] |= bit;
			c->npending++;
		}
	}
	return 0;
}

int ram_cache_store(struct ram_cache *c, uint64_t page, const void *data, uint64_t npages)
{
	if (page > c->npages || npages > c->npages - page)
		return -ERANGE;
	memcpy(c->cache + page * HW_PAGE_SIZE, data, npages * HW_PAGE_SIZE);
	return ram_cache_note(c, page * HW_PAGE_SIZE, npages * HW_PAGE_SIZE);
}

uint64_t ram_cache_pending(const struct ram_cache *c)
{
	return c->npending;
}

int ram_cache_commit(struct ram_cache *c, const uint64_t *guest_dirty, uint64_t *copied)
{
	uint64_t n = 0;

	if (c->stale)
		return -ESTALE;
	for (uint64_t w = 0; w < HW_BITMAP_WORDS(c->npages); w++) {
		uint64_t bits = c->pending[w] | (guest_dirty ? guest_dirty[w] : 0);

		while (bits) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			if (p >= c->npages)
				break;
			memcpy(c->guest + p * HW_PAGE_SIZE, c->cache + p * HW_PAGE_SIZE,
			       HW_PAGE_SIZE);
			n++;
		}
		c->pending[w] = 0;
	}
	c->npending = 0;
	if (copied)
		*copied = n;
	return 0;
}

void ram_cache_abort(struct ram_cache *c)
{
	/* The sender may have written pages it never committed, too. */
	c->stale = true;
	memset(c->pending, 0, HW_BITMAP_WORDS(c->npages) * sizeof(uint64_t));
	c->npending = 0;
}

void ram_cache_reset(struct ram_cache *c)
{
	memcpy(c->cache, c->guest, c->bytes);
	memset(c->pending, 0, HW_BITMAP_WORDS(c->npages) * sizeof(uint64_t));
	c->npending = 0;
	c->stale = false;
}
