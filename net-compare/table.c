// SPDX-License-Identifier: GPL-2.0-only
/* Connection-table teardown shared by the compare and the rewriter. */
#define _LGPL_SOURCE
#include <stdlib.h>
#include <urcu/urcu-memb.h>
#include <urcu/rculfhash.h>

#include "net-compare/nc_internal.h"

void nc_lfht_teardown(struct cds_lfht *ht, size_t nconns,
		      bool (*unlink)(void *ctx, struct cds_lfht_node *node, bool defer), void *ctx,
		      const uint64_t *deferred)
{
	struct cds_lfht_node **gone = calloc(nconns + 1, sizeof(*gone));
	struct cds_lfht_node *node;
	struct cds_lfht_iter it;
	size_t ngone = 0;

	urcu_memb_read_lock();
	for (cds_lfht_first(ht, &it); (node = cds_lfht_iter_get_node(&it)); cds_lfht_next(ht, &it)) {
		if (unlink(ctx, node, !gone) && gone)
			gone[ngone++] = node;
	}
	urcu_memb_read_unlock();
	if (ngone)
		urcu_memb_synchronize_rcu();
	while (ngone)
		free(gone[--ngone]);
	free(gone);
	if (*deferred || !gone)
		urcu_memb_barrier();
	cds_lfht_destroy(ht, NULL);
}
