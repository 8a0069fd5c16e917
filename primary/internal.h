/* SPDX-License-Identifier: GPL-2.0-only */
/* primary/ internals: the RAM sender shared by the role's loops (not public). */
#ifndef COLOVM_PRIMARY_INTERNAL_H
#define COLOVM_PRIMARY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct transport_channel;
struct vmstate_error;

#define RAM_BATCH_PAGES	 256u  /* pages per rate-limit / cancel step (1 MiB) */
#define RAM_COMMIT_PAGES 4096u /* pages per bulk commit (16 MiB) */

/*
 * Sends pages named by a dirty bitmap over the channel's bulk path, into
 * the peer's receive region at page * HW_PAGE_SIZE, and commits them as
 * checkpoint `id` every RAM_COMMIT_PAGES pages and at the end of each pass.
 *
 * Live (bounce != NULL): the guest runs, so each batch is copied into a
 * ring of RAM_COMMIT_PAGES pages first (the bulk path needs the bytes to
 * stay put until the commit); a page the guest writes meanwhile is in the
 * next sync. Paused (bounce == NULL): pages go from guest RAM itself
 * (zero-copy over RDMA).
 */
struct ram_send {
	struct vm *vm;
	struct transport_channel *ch;
	uint64_t id;	      /* checkpoint id given to the commits */
	uint8_t *bounce;      /* RAM_COMMIT_PAGES pages, or NULL (paused) */
	bool skip_zero;	      /* the peer's region reads as zero: skip zero pages */
	_Atomic bool *cancel; /* NULL: cannot be cancelled */
	uint64_t limit;	      /* bytes/s, 0: unlimited */
	/* Called after each batch went out: page bytes sent, pages taken. */
	void (*progress)(void *opaque, uint64_t bytes, uint64_t pages);
	void *opaque;

	/* private */
	uint8_t *ram;
	uint64_t npages;
	uint64_t taken[RAM_BATCH_PAGES][2]; /* runs taken from the bitmap (first, n) */
	unsigned int ntaken, nbatch;
	struct {
		const uint8_t *src;
		uint64_t page, n;
	} out[RAM_BATCH_PAGES]; /* non-zero runs to send */
	unsigned int nout;
	uint64_t ring_used;   /* pages of the ring since the last commit */
	uint64_t uncommitted; /* pages sent since the last commit */
	uint64_t bw_start_ns, bw_bytes;
	uint64_t bytes; /* page bytes sent in this pass */
};

/* Set up p (p->vm, ch, id, bounce, skip_zero, cancel, limit, progress set). */
void ram_send_begin(struct ram_send *p);
/*
 * Send every page whose bit is set (clearing the bits) and commit. On
 * failure the pages of the failing batch and every bit still set go back
 * to the dirty log and the bitmap is cleared; err says why (-ECANCELED
 * after a cancel). Pages of earlier batches were handed to the channel: a
 * failed channel drops what it had not committed, so a caller that goes on
 * (a COLO checkpoint) puts back everything since the peer's last ack.
 */
int ram_send_bitmap(struct ram_send *p, uint64_t *bitmap, struct vmstate_error *err);
uint64_t ram_bitmap_count(const uint64_t *bitmap, uint64_t npages);

#endif
