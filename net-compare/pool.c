// SPDX-License-Identifier: GPL-2.0-only
/*
 * Frame buffer pool: a cds_lfs lock-free stack. Kept apart from the _LGPL_SOURCE
 * units on purpose: the inline lfstack push forms &head->node from a NULL head, which
 * UBSan reports; the out-of-line liburcu-cds functions are the same algorithm.
 */
#include <stdlib.h>
#include <urcu/lfstack.h>

#include "net-compare/nc_internal.h"

struct nc_pool {
	struct cds_lfs_stack s;
};

struct nc_pool *nc_pool_new(void)
{
	struct nc_pool *p = calloc(1, sizeof(*p));

	if (p)
		cds_lfs_init(&p->s);
	return p;
}

void nc_pool_push(struct nc_pool *p, struct cds_lfs_node *n)
{
	cds_lfs_node_init(n);
	cds_lfs_push(&p->s, n);
}

struct cds_lfs_node *nc_pool_pop(struct nc_pool *p)
{
	return cds_lfs_pop_blocking(&p->s);
}

void nc_pool_free(struct nc_pool *p, void (*fn)(struct cds_lfs_node *n))
{
	struct cds_lfs_node *n;

	if (!p)
		return;
	while ((n = cds_lfs_pop_blocking(&p->s)))
		fn(n);
	cds_lfs_destroy(&p->s);
	free(p);
}
