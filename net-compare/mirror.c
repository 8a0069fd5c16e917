// SPDX-License-Identifier: GPL-2.0-only
/* Mirror (primary) and redirect (secondary): where frames go, in order. */
#include <errno.h>
#include <stdlib.h>

#include "net-compare/nc_internal.h"

struct compare_mirror {
	compare_out_fn to_guest, to_channel;
	void *opaque;
	uint64_t errors;
};

int compare_mirror_new(struct compare_mirror **out, compare_out_fn to_guest,
		       compare_out_fn to_channel, void *opaque)
{
	struct compare_mirror *m;

	if (!out || !to_guest || !to_channel)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->to_guest = to_guest;
	m->to_channel = to_channel;
	m->opaque = opaque;
	*out = m;
	return 0;
}

void compare_mirror_free(struct compare_mirror *m)
{
	free(m);
}

int compare_mirror_input(struct compare_mirror *m, const uint8_t *frame, size_t len)
{
	int rc, rg;

	if (!m || !frame || !len)
		return -EINVAL;
	rc = m->to_channel(m->opaque, frame, len);
	if (rc < 0)
		__atomic_fetch_add(&m->errors, 1, __ATOMIC_RELAXED);
	rg = m->to_guest(m->opaque, frame, len);
	return rc < 0 ? rc : rg;
}

uint64_t compare_mirror_errors(const struct compare_mirror *m)
{
	return __atomic_load_n(&m->errors, __ATOMIC_RELAXED);
}

struct compare_redirect {
	struct compare_rewrite *rw;
	compare_out_fn to_channel, to_wire, to_guest;
	void *opaque;
	bool failed_over;
};

int compare_redirect_new(struct compare_redirect **out, struct compare_rewrite *rw,
			 compare_out_fn to_channel, compare_out_fn to_wire,
			 compare_out_fn to_guest, void *opaque)
{
	struct compare_redirect *rd;

	if (!out || !to_channel || !to_wire || !to_guest)
		return -EINVAL;
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->rw = rw;
	rd->to_channel = to_channel;
	rd->to_wire = to_wire;
	rd->to_guest = to_guest;
	rd->opaque = opaque;
	*out = rd;
	return 0;
}

void compare_redirect_free(struct compare_redirect *rd)
{
	free(rd);
}

int compare_redirect_output(struct compare_redirect *rd, uint8_t *frame, size_t len,
			    unsigned flags, uint64_t now_ns)
{
	int r;

	if (!rd || !frame || !len)
		return -EINVAL;
	if (rd->rw) {
		r = compare_rewrite_outbound(rd->rw, frame, len, flags, now_ns);
		if (r < 0 && r != -ENOSPC)
			return r;
	}
	if (__atomic_load_n(&rd->failed_over, __ATOMIC_ACQUIRE))
		return rd->to_wire(rd->opaque, frame, len);
	return rd->to_channel(rd->opaque, frame, len);
}

int compare_redirect_input(struct compare_redirect *rd, uint8_t *frame, size_t len,
			   unsigned flags, uint64_t now_ns)
{
	int r;

	if (!rd || !frame || !len)
		return -EINVAL;
	if (rd->rw) {
		r = compare_rewrite_inbound(rd->rw, frame, len, flags, now_ns);
		if (r < 0)
			return r;
	}
	return rd->to_guest(rd->opaque, frame, len);
}

void compare_redirect_failover(struct compare_redirect *rd)
{
	if (!rd)
		return;
	if (rd->rw)
		compare_rewrite_failover(rd->rw);
	__atomic_store_n(&rd->failed_over, true, __ATOMIC_RELEASE);
}

bool compare_redirect_failed_over(const struct compare_redirect *rd)
{
	return __atomic_load_n(&rd->failed_over, __ATOMIC_ACQUIRE);
}
