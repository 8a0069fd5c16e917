/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * metrics: Prometheus text exposition (format 0.0.4) over HTTP, served by
 * libmicrohttpd on its own thread.
 *
 *   scraper ---- GET /metrics ----> MHD thread
 *                                   asks the main loop (an eventfd) and waits
 *                                   (METRICS_RENDER_TIMEOUT_MS at most: 503)
 *   main loop: render(opaque, text) reads what QMP reads, on the thread
 *              QMP reads it on: no counter is read while it is written
 *   scraper <--- 200 text/plain ---- MHD thread
 *
 * So the figures of one scrape are those of one instant, the same counters
 * query-colo-stats shows (no second set), and a stalled main loop shows as
 * failing scrapes (503) rather than stale figures. Any other path: 404;
 * other methods: 405. At most METRICS_MAX_CONNECTIONS connections at once
 * (more are refused by MHD), each closed after METRICS_CONN_TIMEOUT_S idle:
 * a flood of connections costs the VM nothing but the refusals.
 */
#ifndef COLOVM_METRICS_H
#define COLOVM_METRICS_H

#include <stdint.h>

struct loop;
struct metrics;
struct metrics_text;

#define METRICS_MAX_CONNECTIONS	  16
#define METRICS_CONN_TIMEOUT_S	  10
#define METRICS_RENDER_TIMEOUT_MS 3000

/* Called on the main loop: append the exposition to t. */
typedef void (*metrics_render_fn)(void *opaque, struct metrics_text *t);

/*
 * Serve on uri "tcp:HOST:PORT" (HOST a name or address, [v6] in brackets;
 * PORT 0: any, see metrics_uri). -EINVAL: not such a URI (msg says why);
 * other -errno: cannot listen there (msg says why). Main loop.
 */
int metrics_new(struct loop *loop, const char *uri, metrics_render_fn render, void *opaque,
		struct metrics **out, char *msg, unsigned int len);
/* "http://HOST:PORT/metrics" with the bound port. */
const char *metrics_uri(const struct metrics *m);
/* Stops the server (a scrape in flight gets 503). NULL is fine. Main loop. */
void metrics_free(struct metrics *m);

/* ---- building the text ---- */
/* "# HELP name help\n# TYPE name type\n" */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* "name{labels} value\n"; labels NULL or "" for none; already escaped. */
void metrics_u64(struct metrics_text *t, const char *name, const char *labels, uint64_t v);
void metrics_f64(struct metrics_text *t, const char *name, const char *labels, double v);
/* A label value escaped (\\, \", \n) into buf. */
const char *metrics_escape(const char *s, char *buf, unsigned int len);
/*
 * A histogram from query-colo-stats' shape (qmp.h qmp_hist_json: bounds le,
 * per-bucket counts, sum, count) in a unit `scale` times the base unit
 * (1e-6 for us -> seconds): _bucket{le=...} cumulative, +Inf, _sum, _count.
 */
void metrics_histogram(struct metrics_text *t, const char *name, const char *labels,
		       const uint64_t *le, const uint64_t *counts, unsigned int n, uint64_t sum,
		       uint64_t count, double scale);

/* ---- colovm's figures (colo.c) ---- */
typedef struct json_t json_t;
/*
 * The families of a `colovm run`, from what QMP shows (the same counters):
 * role ("standalone", "primary", "secondary"), the run state's name and
 * all run states' (run_states[0..n_run_states), each a 0/1 sample),
 * query-colo-status and query-colo-stats bodies (NULL: not a COLO role),
 * the VM's name (NULL: none) and version for colovm_build_info.
 */
void metrics_colo(struct metrics_text *t, const char *role, const char *run_state,
		  const char *const *run_states, unsigned int n_run_states, json_t *status,
		  json_t *stats, const char *name, const char *version);
/* The families of a `colovm witness` (transport.h struct transport_witness_stats). */
void metrics_witness(struct metrics_text *t, uint64_t granted, uint64_t refused, uint64_t bad,
		     uint64_t pairs, uint64_t sessions, const char *version);

#endif
