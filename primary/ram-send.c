/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The RAM sender (internal.h): dirty bitmap -> batches -> bulk path.
 *
 * A pass walks the bitmap in runs of set bits, takes up to RAM_BATCH_PAGES
 * pages into a batch (copied into the ring when the guest runs), drops zero
 * pages when the peer's region is known to be zero (round 0 of a migration
 * into a VM that has never run), writes the other runs to the peer at
 * page * HW_PAGE_SIZE and commits every RAM_COMMIT_PAGES pages. Dirty bits
 * of a batch that fails go back to the log (Firecracker's dump_dirty()).
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include "common/common.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "primary/internal.h"
#include "transport/transport.h"

void ram_send_begin(struct ram_send *p)
{
	uint64_t size;

	p->ram = hw_vm_ram(p->vm, &size);
	p->npages = hw_vm_ram_pages(p->vm);
	p->ntaken = p->nbatch = p->nout = 0;
	p->ring_used = p->uncommitted = 0;
	p->bw_start_ns = clock_ns();
	p->bw_bytes = 0;
	p->bytes = 0;
}

static void putback_batch(struct ram_send *p)
{
	for (unsigned int i = 0; i < p->ntaken; i++)
		hw_dirty_log_putback(p->vm, p->taken[i][0], p->taken[i][1]);
	p->ntaken = p->nbatch = p->nout = 0;
}

static int commit(struct ram_send *p, struct vmstate_error *err)
{
	int ret;

	if (!p->uncommitted)
		return 0;
	ret = transport_bulk_commit(p->ch, p->id);
	if (ret)
		return vmstate_seterr(err, ret, "sending RAM: %s", strerror(-ret));
	p->uncommitted = 0;
	p->ring_used = 0;
	return 0;
}

static void rate_limit(struct ram_send *p, uint64_t sent)
{
	uint64_t due, now;

	p->bw_bytes += sent;
	if (!p->limit)
		return;
	due = p->bw_start_ns + p->bw_bytes * 1000000000ull / p->limit;
	now = clock_ns();
	if (due > now) {
		struct timespec ts = {.tv_sec = (time_t)((due - now) / 1000000000ull),
				      .tv_nsec = (long)((due - now) % 1000000000ull)};

		nanosleep(&ts, NULL);
	}
}

/* Write the batch's non-zero runs; on failure the batch goes back. */
static int flush_batch(struct ram_send *p, struct vmstate_error *err)
{
	uint64_t sent = 0, pages = 0;
	int ret = 0;

	for (unsigned int i = 0; i < p->nout && !ret; i++) {
		struct iovec v = {(void *)p->out[i].src, p->out[i].n * HW_PAGE_SIZE};

		ret = transport_bulk_write(p->ch, &v, 1, p->out[i].page * HW_PAGE_SIZE);
		sent += v.iov_len;
	}
	if (ret) {
		putback_batch(p);
		return vmstate_seterr(err, ret, "sending RAM: %s", strerror(-ret));
	}
	for (unsigned int i = 0; i < p->ntaken; i++)
		pages += p->taken[i][1];
	p->uncommitted += p->nbatch;
	p->bytes += sent;
	p->ntaken = p->nbatch = p->nout = 0;
	if (p->progress)
		p->progress(p->opaque, sent, pages);
	rate_limit(p, sent);
	if (p->bounce ? p->ring_used + RAM_BATCH_PAGES > RAM_COMMIT_PAGES
		      : p->uncommitted >= RAM_COMMIT_PAGES)
		return commit(p, err);
	return 0;
}

/* Queue the non-zero runs of pages [first, first + n) that start at src. */
static void queue_runs(struct ram_send *p, const uint8_t *src, uint64_t first, uint64_t n)
{
	uint64_t i = 0;

	while (i < n) {
		uint64_t j;

		if (p->skip_zero && vmstate_page_is_zero(src + i * HW_PAGE_SIZE)) {
			i++;
			continue;
		}
		for (j = i + 1;
		     j < n && !(p->skip_zero && vmstate_page_is_zero(src + j * HW_PAGE_SIZE)); j++)
			;
		p->out[p->nout].src = src + i * HW_PAGE_SIZE;
		p->out[p->nout].page = first + i;
		p->out[p->nout].n = j - i;
		p->nout++;
		i = j;
	}
}

/* Take pages [first, first + n) (n <= RAM_BATCH_PAGES - nbatch) into the batch. */
static void take(struct ram_send *p, uint64_t first, uint64_t n)
{
	const uint8_t *src = p->ram + first * HW_PAGE_SIZE;

	p->taken[p->ntaken][0] = first;
	p->taken[p->ntaken][1] = n;
	p->ntaken++;
	p->nbatch += (unsigned int)n;
	/* Never-touched RAM is a hole in the memfd: reading it would allocate
	 * and clear every page. The peer's region is zero there already. */
	if (p->skip_zero && hw_vm_ram_unbacked(p->vm, first, n))
		return;
	if (p->bounce) {
		uint8_t *dst = p->bounce + p->ring_used * HW_PAGE_SIZE;

		memcpy(dst, src, n * HW_PAGE_SIZE);
		p->ring_used += n;
		src = dst;
	}
	queue_runs(p, src, first, n);
}

int ram_send_bitmap(struct ram_send *p, uint64_t *bitmap, struct vmstate_error *err)
{
	uint64_t pg = 0, npages = p->npages;
	int ret = 0;

	while (pg < npages) {
		uint64_t w = bitmap[pg / 64] >> (pg % 64), n = 0;

		if (!w) {
			pg = ALIGN_DOWN(pg, 64) + 64;
			continue;
		}
		pg += (uint64_t)__builtin_ctzll(w);
		if (pg >= npages)
			break;
		while (pg + n < npages && p->nbatch + n < RAM_BATCH_PAGES &&
		       (bitmap[(pg + n) / 64] >> ((pg + n) % 64) & 1)) {
			bitmap[(pg + n) / 64] &= ~(1ull << ((pg + n) % 64));
			n++;
		}
		if (p->cancel && atomic_load(p->cancel)) {
			hw_dirty_log_putback(p->vm, pg, n);
			ret = vmstate_seterr(err, -ECANCELED, "migration cancelled");
			break;
		}
		take(p, pg, n);
		if (p->nbatch >= RAM_BATCH_PAGES || p->ntaken >= RAM_BATCH_PAGES) {
			ret = flush_batch(p, err);
			if (ret)
				break;
		}
		pg += n;
	}
	if (!ret)
		ret = flush_batch(p, err);
	if (!ret)
		ret = commit(p, err);
	if (ret) {
		putback_batch(p);
		for (uint64_t q = 0; q < npages; q++) {
			if (bitmap[q / 64] >> (q % 64) & 1)
				hw_dirty_log_putback(p->vm, q, 1);
		}
		memset(bitmap, 0, HW_BITMAP_WORDS(npages) * sizeof(uint64_t));
	}
	return ret;
}

uint64_t ram_bitmap_count(const uint64_t *bitmap, uint64_t npages)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < HW_BITMAP_WORDS(npages); w++)
		n += (uint64_t)__builtin_popcountll(bitmap[w]);
	return n;
}
