/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * colovm's metric families (metrics.h), rendered from the bodies of
 * query-colo-status and query-colo-stats: one set of counters, two views.
 * Names follow Prometheus' conventions: base units (seconds, bytes),
 * counters end in _total, one HELP and TYPE per family.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "common/metrics/metrics.h"

static uint64_t num(json_t *o, const char *path)
{
	char key[64];
	const char *dot;

	/* "a.b.c": nested objects */
	while (o && (dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	o = o ? json_object_get(o, path) : NULL;
	if (json_is_integer(o))
		return json_integer_value(o) > 0 ? (uint64_t)json_integer_value(o) : 0;
	if (json_is_real(o))
		return json_real_value(o) > 0 ? (uint64_t)json_real_value(o) : 0;
	return 0;
}

static void one_hot(struct metrics_text *t, const char *name, const char *label,
		    const char *const *values, unsigned int n, const char *cur)
{
	char l[96];

	for (unsigned int i = 0; i < n; i++) {
		if (!values[i])
			continue;
		snprintf(l, sizeof(l), "%s=\"%s\"", label, values[i]);
		metrics_u64(t, name, l, cur && !strcmp(values[i], cur));
	}
}

static void build_info(struct metrics_text *t, const char *what, const char *name,
		       const char *version)
{
	char esc[160], l[256];

	metrics_family(t, "colovm_build_info", "gauge",
		       "colovm's version (and the VM's --name), always 1");
	if (name && name[0])
		snprintf(l, sizeof(l), "version=\"%s\",command=\"%s\",name=\"%s\"", version, what,
			 metrics_escape(name, esc, sizeof(esc)));
	else
		snprintf(l, sizeof(l), "version=\"%s\",command=\"%s\"", version, what);
	metrics_u64(t, "colovm_build_info", l, 1);
}

static void pause_histogram(struct metrics_text *t, json_t *h)
{
	uint64_t le[HIST_MAX_BUCKETS], counts[HIST_MAX_BUCKETS + 1];
	json_t *jle = json_object_get(h, "le"), *jc = json_object_get(h, "counts");
	size_t n = json_array_size(jle);

	metrics_family(t, "colovm_checkpoint_pause_seconds", "histogram",
		       "how long each checkpoint held the guest (stop to resume)");
	if (n > HIST_MAX_BUCKETS || json_array_size(jc) != n + 1)
		n = 0;
	for (size_t i = 0; i < n; i++) {
		le[i] = (uint64_t)json_integer_value(json_array_get(jle, i));
		counts[i] = (uint64_t)json_integer_value(json_array_get(jc, i));
	}
	metrics_histogram(t, "colovm_checkpoint_pause_seconds", NULL, le, counts, (unsigned int)n,
			  num(h, "sum"), num(h, "count"), 1e-6);
}

void metrics_colo(struct metrics_text *t, const char *role, const char *run_state,
		  const char *const *run_states, unsigned int n_run_states, json_t *status,
		  json_t *stats, const char *name, const char *version)
{
	static const char *const roles[] = {"standalone", "primary", "secondary"};
	static const char *const colo_states[] = {"none",      "waiting",     "sync",
						  "protected", "unprotected", "fenced"};
	static const char *const reasons[] = {"periodic", "request", "mismatch", "compare-timeout",
					      "compare-limit"};
	static const char *const failovers[] = {"heartbeat", "drill", "peer-lost"};
	static const struct {
		const char *verdict, *key;
	} verdicts[] = {
	    {"match", "compared"},
	    {"mismatch", "miscompares"},
	    {"timeout", "timeouts"},
	    {"unverified", "released-unverified"},
	    {"passthrough", "released-passthrough"},
	};
	json_t *by = json_object_get(stats, "by-reason");
	json_t *net = json_object_get(stats, "network");
	json_t *rtt = json_object_get(status, "heartbeat-rtt");
	const char *colo_state = json_string_value(json_object_get(status, "state"));
	char l[96], key[96];

	build_info(t, "run", name, version);
	metrics_family(t, "colovm_run_state", "gauge",
		       "the VM's run state (QMP query-status): "
		       "1 for the current one");
	one_hot(t, "colovm_run_state", "state", run_states, n_run_states, run_state);
	metrics_family(t, "colovm_colo_role", "gauge",
		       "the COLO role this colovm plays: 1 for the current one");
	one_hot(t, "colovm_colo_role", "role", roles, ARRAY_SIZE(roles), role);
	metrics_family(t, "colovm_colo_state", "gauge",
		       "COLO protection (query-colo-status state): 1 for the current one");
	one_hot(t, "colovm_colo_state", "state", colo_states, ARRAY_SIZE(colo_states),
		colo_state ? colo_state : "none");

	metrics_family(t, "colovm_checkpoints_total", "counter",
		       "checkpoints completed (acknowledged), by why they were taken");
	for (unsigned int i = 0; i < ARRAY_SIZE(reasons); i++) {
		snprintf(l, sizeof(l), "reason=\"%s\"", reasons[i]);
		metrics_u64(t, "colovm_checkpoints_total", l, num(by, reasons[i]));
	}
	metrics_family(t, "colovm_checkpoint_failures_total", "counter",
		       "checkpoints that failed (each ends the pair)");
	metrics_u64(t, "colovm_checkpoint_failures_total", NULL, num(stats, "failed"));
	pause_histogram(t, json_object_get(stats, "pause-us"));
	metrics_family(t, "colovm_checkpoint_pages_total", "counter",
		       "guest RAM pages sent (primary) or received (secondary) in checkpoints");
	metrics_u64(t, "colovm_checkpoint_pages_total", NULL, num(stats, "pages.total"));
	metrics_family(t, "colovm_checkpoint_bytes_total", "counter",
		       "bytes of pages and device state in checkpoints");
	metrics_u64(t, "colovm_checkpoint_bytes_total", NULL, num(stats, "bytes.total"));
	if (!strcmp(role ? role : "", "primary") || json_object_get(net, "compared")) {
		metrics_family(t, "colovm_compare_packets_total", "counter",
			       "the primary guest's outbound frames by the compare's verdict: "
			       "match (the secondary sent the same), mismatch, timeout (held "
			       "too long), unverified (released unchecked: ACK-only, "
			       "retransmits), passthrough (not compared)");
		for (unsigned int i = 0; i < ARRAY_SIZE(verdicts); i++) {
			snprintf(l, sizeof(l), "verdict=\"%s\"", verdicts[i].verdict);
			metrics_u64(t, "colovm_compare_packets_total", l,
				    num(net, verdicts[i].key));
		}
		metrics_family(t, "colovm_held_packets", "gauge",
			       "the primary guest's outbound frames held now, waiting for the "
			       "secondary's or a checkpoint");
		metrics_u64(t, "colovm_held_packets", NULL, num(net, "held"));
	}
	metrics_family(t, "colovm_failovers_total", "counter",
		       "pairs broken while protected, by why: heartbeat (the peer fell "
		       "silent), drill (x-colo-lost-heartbeat), peer-lost (its connection "
		       "failed, it refused or gave up)");
	for (unsigned int i = 0; i < ARRAY_SIZE(failovers); i++) {
		snprintf(l, sizeof(l), "reason=\"%s\"", failovers[i]);
		snprintf(key, sizeof(key), "failovers.%s", failovers[i]);
		metrics_u64(t, "colovm_failovers_total", l, num(stats, key));
	}
	metrics_family(t, "colovm_fences_total", "counter",
		       "times the witness did not grant and the guest was stopped");
	metrics_u64(t, "colovm_fences_total", NULL, num(stats, "fences"));
	if (rtt && num(rtt, "samples")) {
		metrics_family(t, "colovm_heartbeat_rtt_seconds", "gauge",
			       "the heartbeat's last round trip to the peer (while paired)");
		metrics_f64(t, "colovm_heartbeat_rtt_seconds", NULL, num(rtt, "last-us") * 1e-6);
		metrics_family(t, "colovm_heartbeat_rtt_avg_seconds", "gauge",
			       "the heartbeat's mean round trip over this pairing");
		metrics_f64(t, "colovm_heartbeat_rtt_avg_seconds", NULL, num(rtt, "avg-us") * 1e-6);
	}
}

void metrics_witness(struct metrics_text *t, uint64_t granted, uint64_t refused, uint64_t bad,
		     uint64_t pairs, uint64_t sessions, const char *version)
{
	build_info(t, "witness", NULL, version);
	metrics_family(t, "colovm_witness_claims_total", "counter",
		       "claims answered, by verdict (granted: the claimant may serve)");
	metrics_u64(t, "colovm_witness_claims_total", "verdict=\"granted\"", granted);
	metrics_u64(t, "colovm_witness_claims_total", "verdict=\"refused\"", refused);
	metrics_family(t, "colovm_witness_bad_peers_total", "counter",
		       "peers that failed the handshake (key) or sent no valid claim");
	metrics_u64(t, "colovm_witness_bad_peers_total", NULL, bad);
	metrics_family(t, "colovm_witness_pairs", "gauge", "pairings whose grant is remembered");
	metrics_u64(t, "colovm_witness_pairs", NULL, pairs);
	metrics_family(t, "colovm_witness_sessions", "gauge",
		       "sides holding a session open (their claims: one round trip)");
	metrics_u64(t, "colovm_witness_sessions", NULL, sessions);
}
