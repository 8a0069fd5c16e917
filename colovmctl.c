/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * colovmctl: the management client. Connects to colovm's QMP socket,
 * negotiates capabilities, sends one command and prints the answer, or
 * prints events as they arrive (--watch).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "common/qmp/qmp.h"
#include "ctl/ctl.h"

static const char usage_text[] =
    "Usage: colovmctl --qmp PATH [OPTIONS] COMMAND [NAME=VALUE...]\n"
    "       colovmctl --qmp PATH [OPTIONS] '{\"execute\": ..., \"arguments\": ...}'\n"
    "       colovmctl --qmp PATH --watch [COMMAND...]\n"
    "       colovmctl drill failover|secondary-loss|link-cut --primary PSOCK\n"
    "                 --secondary SSOCK [--link IFACE] [--timeout SEC] [--json]\n"
    "       colovmctl --help | --version\n"
    "\n"
    "colovmctl talks to a running colovm through its QMP management socket (the\n"
    "one given to `colovm run --qmp unix:PATH,server`). It reads the greeting,\n"
    "negotiates capabilities (qmp_capabilities), sends one command and prints\n"
    "the answer on standard output as JSON.\n"
    "\n"
    "Options:\n"
    "  -s, --qmp PATH        the QMP socket (PATH or unix:PATH[,...]); required\n"
    "  -w, --watch           print every event (one JSON object per line) as it\n"
    "                        arrives, until colovm closes the socket or colovmctl\n"
    "                        is interrupted; with a COMMAND, run it first\n"
    "  -t, --timeout SEC     give up waiting for an answer after SEC seconds\n"
    "                        (default 10, snapshot-save: 0; 0 waits forever)\n"
    "  -r, --raw             print the whole reply ({\"return\": ...}) rather than\n"
    "                        only its \"return\" value\n"
    "  -h, --help            show this help and exit\n"
    "  -V, --version         show the version and exit\n"
    "\n"
    "Commands (any QMP command colovm knows; `query-commands` lists them):\n"
    "  query-status          run state: {\"status\": \"running\", \"running\": true, ...}\n"
    "  stop                  pause every vCPU (state \"paused\"; event STOP)\n"
    "  cont                  resume (state \"running\"; event RESUME)\n"
    "  system_reset          reset the guest (event RESET)\n"
    "  system_powerdown      press the power button (event POWERDOWN)\n"
    "  quit                  end colovm (event SHUTDOWN, reason host-qmp-quit)\n"
    "  query-version         colovm's version\n"
    "  query-commands        the commands this colovm offers\n"
    "  colo-status           COLO protection for a person: mode, state, the reason\n"
    "                        of the last change, the last checkpoint, the\n"
    "                        heartbeat's round trip (while paired), checkpoints\n"
    "                        by reason, pause median/p99/max, pages and bytes per\n"
    "                        checkpoint, failovers, packets compared and released\n"
    "                        (query-colo-status + query-colo-stats)\n"
    "  x-colo-lost-heartbeat failover now: a secondary takes over, a primary\n"
    "                        gives its secondary up (a drill, or a person's call)\n"
    "  migrate tcp:HOST:PORT live-migrate to `colovm run --incoming tcp:HOST:PORT`\n"
    "                        with a progress bar (polls query-migrate); exit 0\n"
    "                        when it completed, 1 when it failed or was cancelled\n"
    "  migrate --continue STANDBY URI\n"
    "                        checkpointed continuation: move the guest live to\n"
    "                        the COLO secondary at URI (`colovm run --colo\n"
    "                        secondary --listen URI`; the one protecting it\n"
    "                        already, or a new one: protected first) and leave\n"
    "                        this host as its hot standby, waiting on STANDBY\n"
    "                        (tcp:HOST:PORT or rdma:HOST:PORT, reachable from\n"
    "                        URI's host) for the new primary's first sync: the\n"
    "                        roles swap, protection goes on. Exit 0 once this\n"
    "                        host is protected as the standby, 1 when the\n"
    "                        switchover or the new pairing failed (the guest\n"
    "                        then runs on where it is, the reason is printed)\n"
    "\n"
    "`colovmctl drill` runs a failure drill on a live COLO pair (SIGKILL of the\n"
    "primary or the secondary, or the replication link cut) and prints a report\n"
    "with a verdict: `colovmctl drill --help`.\n"
    "\n"
    "Arguments are NAME=VALUE; VALUE is taken as JSON when it parses as JSON\n"
    "(numbers, true, false, null, objects, arrays, \"strings\") and as a plain\n"
    "string otherwise. A single argument starting with '{' is sent as it is (raw\n"
    "JSON pass-through) and the whole reply is printed; if it is itself\n"
    "qmp_capabilities it replaces the automatic negotiation.\n"
    "\n"
    "Exit status:\n"
    "  0   the command succeeded (or --watch ended because colovm went away)\n"
    "  1   colovm answered with an error; its class and description are printed\n"
    "      on standard error\n"
    "  2   bad arguments, cannot connect, connection lost or timed out\n"
    "\n"
    "Examples:\n"
    "  colovmctl --qmp /run/colovm/vm1.qmp query-status\n"
    "  colovmctl --qmp /run/colovm/vm1.qmp stop\n"
    "  colovmctl --qmp /run/colovm/vm1.qmp '{\"execute\": \"cont\", \"id\": 1}'\n"
    "  colovmctl --qmp /run/colovm/vm1.qmp --watch > events.jsonl &\n";

/* --watch: every event as it comes. */
static void print_event(void *opaque, json_t *ev)
{
	qmpc_print(ev);
}

/*
 * `migrate URI`: after the migrate command returned, poll query-migrate and
 * draw a progress bar on stderr. 0 when it completed, CTL_EXIT_FAIL when it
 * failed or was cancelled, CTL_EXIT_USAGE when the connection was lost.
 */
static int migrate_progress(struct qmpc *c)
{
	for (;;) {
		int status = -1;
		json_t *ret = qmpc_query(c, "query-migrate", NULL, NULL, false, &status), *ram;
		const char *st;
		double total, rem, pct;

		if (!ret)
			return status;
		st = json_string_value(json_object_get(ret, "status")) ?: "none";
		ram = json_object_get(ret, "ram");
		total = json_number_value(json_object_get(ram, "total"));
		rem = json_number_value(json_object_get(ram, "remaining"));
		pct = total > 0 ? 100.0 * (total - rem) / total : 0;
		if (!strcmp(st, "completed"))
			pct = 100;
		fprintf(stderr, "\r[%-40.*s] %5.1f%% %-10s %8.1f MiB sent %7.0f Mbps",
			(int)(pct * 0.4), "########################################", pct, st,
			json_number_value(json_object_get(ram, "transferred")) / 1048576.0,
			json_number_value(json_object_get(ram, "mbps")));
		if (!strcmp(st, "completed")) {
			fprintf(stderr, "\n");
			qmpc_print(ret);
			status = 0;
		} else if (!strcmp(st, "failed") || !strcmp(st, "cancelled") ||
			   !strcmp(st, "none")) {
			fprintf(stderr, "\ncolovmctl: migration %s%s%s\n", st,
				json_object_get(ret, "error-desc") ? ": " : "",
				json_string_value(json_object_get(ret, "error-desc")) ?: "");
			status = CTL_EXIT_FAIL;
		}
		json_decref(ret);
		if (status >= 0)
			return status;
		usleep(200 * 1000);
	}
}

/*
 * `migrate --continue`: after the migration part completed, this colovm is
 * the guest's standby: wait until its new primary protects it. 0 once
 * protected, CTL_EXIT_FAIL when the switchover did not happen or the new
 * pairing failed.
 */
static int continue_progress(struct qmpc *c)
{
	const char *last = "";

	for (;;) {
		int status = -1;
		json_t *ret = qmpc_query(c, "query-colo-status", NULL, NULL, false, &status);
		const char *mode, *st, *why;

		if (!ret)
			return status;
		mode = json_string_value(json_object_get(ret, "last-mode")) ?: "";
		st = json_string_value(json_object_get(ret, "state")) ?: "";
		why = json_string_value(json_object_get(ret, "reason")) ?: "";
		if (strcmp(mode, "secondary")) {
			fprintf(stderr, "colovmctl: no switchover: %s (state %s)\n", why, st);
			status = CTL_EXIT_FAIL;
		} else if (!strcmp(st, "protected")) {
			fprintf(stderr, "switched over: this host is the guest's standby (%s)\n",
				why);
			qmpc_print(ret);
			status = 0;
		} else if (strcmp(st, "waiting") && strcmp(st, "sync")) {
			fprintf(stderr,
				"colovmctl: switched over, but the new pairing failed: %s\n", why);
			status = CTL_EXIT_FAIL;
		} else if (strcmp(st, last)) {
			fprintf(stderr, "switched over: standby %s: %s\n", st, why);
		}
		last = !strcmp(st, "waiting") ? "waiting" : !strcmp(st, "sync") ? "sync" : "";
		json_decref(ret);
		if (status >= 0)
			return status;
		usleep(200 * 1000);
	}
}

/* `colo-status`: query-colo-status and query-colo-stats, for a person. */
static int colo_status(struct qmpc *c)
{
	json_t *st, *stats, *by, *pause, *phases, *v;
	const char *k;
	int status = 0;

	st = qmpc_query(c, "query-colo-status", NULL, NULL, false, &status);
	if (!st)
		return status;
	stats = qmpc_query(c, "query-colo-stats", NULL, NULL, false, &status);
	if (!stats) {
		json_decref(st);
		return status;
	}
	printf("COLO mode:        %s (last: %s)\n",
	       json_string_value(json_object_get(st, "mode")) ?: "?",
	       json_string_value(json_object_get(st, "last-mode")) ?: "?");
	printf("state:            %s\n", json_string_value(json_object_get(st, "state")) ?: "?");
	printf("reason:           %s\n", json_string_value(json_object_get(st, "reason")) ?: "");
	if (json_object_get(st, "peer"))
		printf("peer:             %s\n", json_string_value(json_object_get(st, "peer")));
	if (json_object_get(st, "witness"))
		printf("witness:          %s\n", json_string_value(json_object_get(st, "witness")));
	printf("last checkpoint:  %lld (%lld ms ago)\n",
	       (long long)ctl_jint(st, "last-checkpoint", NULL),
	       (long long)ctl_jint(st, "last-checkpoint-age-ms", NULL));
	if (json_object_get(st, "heartbeat-rtt"))
		printf("heartbeat RTT:    last %lld us, min %lld, avg %lld, max %lld (%lld "
		       "samples)\n",
		       (long long)ctl_jint(st, "heartbeat-rtt", "last-us"),
		       (long long)ctl_jint(st, "heartbeat-rtt", "min-us"),
		       (long long)ctl_jint(st, "heartbeat-rtt", "avg-us"),
		       (long long)ctl_jint(st, "heartbeat-rtt", "max-us"),
		       (long long)ctl_jint(st, "heartbeat-rtt", "samples"));
	printf("checkpoints:      %lld", (long long)ctl_jint(stats, "checkpoints", NULL));
	by = json_object_get(stats, "by-reason");
	json_object_foreach(by, k, v)
	    printf("%s%s %lld", k == json_object_iter_key(json_object_iter(by)) ? " (" : ", ", k,
		   (long long)json_integer_value(v));
	printf("%s\n", json_object_size(by) ? ")" : "");
	if (json_object_get(stats, "failed"))
		printf("failed:           %lld\n", (long long)ctl_jint(stats, "failed", NULL));
	if (json_object_get(stats, "failovers"))
		printf("failovers:        %lld heartbeat, %lld drill, %lld peer lost; %lld "
		       "fenced\n",
		       (long long)ctl_jint(stats, "failovers", "heartbeat"),
		       (long long)ctl_jint(stats, "failovers", "drill"),
		       (long long)ctl_jint(stats, "failovers", "peer-lost"),
		       (long long)ctl_jint(stats, "fences", NULL));
	pause = json_object_get(stats, "pause");
	printf("pause:            median %.3f ms, p99 %.3f ms, max %.3f ms\n",
	       json_number_value(json_object_get(pause, "median-ms")),
	       json_number_value(json_object_get(pause, "p99-ms")),
	       json_number_value(json_object_get(pause, "max-ms")));
	phases = json_object_get(stats, "pause-phases");
	if (json_is_object(phases)) {
		const char *part;

		/* where the pauses go (the primary's): each part's mean */
		printf("pause parts:     ");
		json_object_foreach(phases, part, v)
			printf(" %s %.3f", part, json_number_value(json_object_get(v, "mean")));
		printf(" (mean ms)\n");
	}
	printf("pages/checkpoint: mean %lld, max %lld (total %lld)\n",
	       (long long)ctl_jint(stats, "pages", "mean"),
	       (long long)ctl_jint(stats, "pages", "max"),
	       (long long)ctl_jint(stats, "pages", "total"));
	printf("bytes/checkpoint: mean %lld (total %lld)\n",
	       (long long)ctl_jint(stats, "bytes", "mean"),
	       (long long)ctl_jint(stats, "bytes", "total"));
	if (json_object_get(stats, "network") &&
	    json_object_get(json_object_get(stats, "network"), "compared")) {
		printf("packets:          %lld compared, %lld miscompares, %lld timeouts\n",
		       (long long)ctl_jint(stats, "network", "compared"),
		       (long long)ctl_jint(stats, "network", "miscompares"),
		       (long long)ctl_jint(stats, "network", "timeouts"));
		printf("released:         %lld (%lld by a checkpoint, %lld bare ACKs); held %lld "
		       "now, %lld at most\n",
		       (long long)ctl_jint(stats, "network", "released"),
		       (long long)ctl_jint(stats, "network", "released-checkpoint"),
		       (long long)ctl_jint(stats, "network", "released-unverified"),
		       (long long)ctl_jint(stats, "network", "held"),
		       (long long)ctl_jint(stats, "network", "held-max"));
		printf("mirrored:         %lld frames to the secondary\n",
		       (long long)ctl_jint(stats, "network", "mirrored"));
	} else if (json_object_get(stats, "network")) {
		printf("packets:          %lld mirrored in, %lld sent to the primary, %lld of its "
		       "own wire dropped\n",
		       (long long)ctl_jint(stats, "network", "mirrored"),
		       (long long)ctl_jint(stats, "network", "redirected"),
		       (long long)ctl_jint(stats, "network", "own-wire-dropped"));
	}
	json_decref(st);
	json_decref(stats);
	return 0;
}

/* COMMAND NAME=VALUE... -> {"execute": COMMAND, "arguments": {...}} */
static json_t *build_command(int argc, char **argv)
{
	json_t *args = json_object(), *req;

	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		json_error_t e;
		json_t *v;

		if (!eq || eq == argv[i]) {
			fprintf(stderr, "colovmctl: argument '%s' is not NAME=VALUE\n", argv[i]);
			json_decref(args);
			return NULL;
		}
		*eq = 0;
		v = json_loads(eq + 1, JSON_DECODE_ANY, &e);
		if (!v)
			v = json_string(eq + 1);
		json_object_set_new(args, argv[i], v);
	}
	req = json_pack("{s:s}", "execute", argv[0]);
	if (json_object_size(args))
		json_object_set(req, "arguments", args);
	json_decref(args);
	return req;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"qmp", required_argument, NULL, 's'},
	    {"watch", no_argument, NULL, 'w'},
	    {"timeout", required_argument, NULL, 't'},
	    {"raw", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct qmpc *c = calloc(1, sizeof(*c));
	const char *sock = NULL;
	bool watch = false, whole = false, raw_caps = false, progress = false, colo = false;
	bool cont = false;
	json_t *req = NULL, *m;
	uint64_t secs = 10;
	bool secs_given = false;
	int opt, status = CTL_EXIT_USAGE;

	if (!c)
		return CTL_EXIT_USAGE;
	c->fd = -1;
	if (argc > 1 && !strcmp(argv[1], "drill")) {
		free(c);
		return ctl_drill(argc - 1, argv + 1);
	}
	/* A closed socket is an error to report, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "+s:wt:rhV", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'w':
			watch = true;
			break;
		case 't':
			secs_given = true;
			if (parse_u64(optarg, 0, 86400, &secs)) {
				fprintf(stderr, "colovmctl: bad --timeout '%s'\n", optarg);
				goto out;
			}
			break;
		case 'r':
			whole = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			status = 0;
			goto out;
		case 'V':
			printf("colovmctl %s\n", qmp_version());
			status = 0;
			goto out;
		default:
			fputs("Try 'colovmctl --help'.\n", stderr);
			goto out;
		}
	}
	/* snapshot-save answers once the whole guest is written: its time
	 * grows with guest RAM and disk speed, so it waits unless told. */
	if (!secs_given && optind < argc && !strcmp(argv[optind], "snapshot-save"))
		secs = 0;
	c->timeout_ms = (int)secs * 1000;
	if (!sock || (optind >= argc && !watch)) {
		fprintf(stderr, "colovmctl: %s\nTry 'colovmctl --help'.\n",
			sock ? "no command given" : "--qmp PATH is required");
		goto out;
	}
	if (optind < argc && argv[optind][0] == '{') {
		json_error_t e;

		if (optind + 1 < argc) {
			fprintf(stderr, "colovmctl: raw JSON takes no further arguments\n");
			goto out;
		}
		/* Parsed only to look for qmp_capabilities; sent as given. */
		req = json_loads(argv[optind], JSON_DECODE_ANY, &e);
		raw_caps =
		    req && json_is_string(json_object_get(req, "execute")) &&
		    !strcmp(json_string_value(json_object_get(req, "execute")), "qmp_capabilities");
		json_decref(req);
		req = NULL;
		whole = true;
	} else if (optind + 1 == argc && !strcmp(argv[optind], "colo-status")) {
		colo = true;
	} else if (optind + 2 == argc && !strcmp(argv[optind], "migrate") &&
		   !strchr(argv[optind + 1], '=')) {
		/* colovmctl migrate tcp:HOST:PORT: progress until it ends */
		req = json_pack("{s:s,s:{s:s}}", "execute", "migrate", "arguments", "uri",
				argv[optind + 1]);
		progress = true;
	} else if (optind + 4 == argc && !strcmp(argv[optind], "migrate") &&
		   !strcmp(argv[optind + 1], "--continue")) {
		/* colovmctl migrate --continue STANDBY URI */
		req = json_pack("{s:s,s:{s:s,s:b,s:s}}", "execute", "migrate", "arguments", "uri",
				argv[optind + 3], "continue", 1, "standby", argv[optind + 2]);
		progress = cont = true;
	} else if (optind < argc && !strcmp(argv[optind], "migrate") && optind + 1 < argc &&
		   !strcmp(argv[optind + 1], "--continue")) {
		fprintf(stderr, "colovmctl: usage: migrate --continue STANDBY URI\n"
				"Try 'colovmctl --help'.\n");
		goto out;
	} else if (optind < argc) {
		req = build_command(argc - optind, argv + optind);
		if (!req)
			goto out;
	}
	if (qmpc_open(c, sock) ||
	    qmpc_handshake(c, sock, !raw_caps, watch ? print_event : NULL, NULL))
		goto out;
	status = 0;
	if (colo) {
		status = colo_status(c);
	} else if (optind < argc) {
		const char *raw = argv[optind];

		if (req ? qmpc_send(c, req) < 0 : qmpc_send_raw(c, raw) < 0) {
			fprintf(stderr, "colovmctl: connection lost\n");
			status = CTL_EXIT_USAGE;
			goto out;
		}
		m = qmpc_reply(c, watch ? print_event : NULL, NULL);
		if (progress && m && json_object_get(m, "return")) {
			status = migrate_progress(c);
			if (cont && !status)
				status = continue_progress(c);
		} else
			status = qmpc_report(m, whole);
		json_decref(m);
	}
	if (watch && status == 0) {
		c->timeout_ms = 0;
		while ((m = qmpc_recv(c))) {
			qmpc_print(m);
			json_decref(m);
		}
	}
out:
	json_decref(req);
	qmpc_close(c);
	free(c);
	return status;
}
