/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * `colovmctl drill failover|secondary-loss|link-cut`: a scripted failure
 * on a live, protected pair, watched from both sides' QMP sockets, and a
 * report with a verdict.
 *
 *   drill            primary (PSOCK)             secondary (SSOCK)
 *     |-- query-colo-status/-stats, query-status both: protected, same pair
 *     |   failover:        SIGKILL (its pid: SO_PEERCRED)     watch it -->|
 *     |   secondary-loss:  |<-- watch it         SIGKILL (SO_PEERCRED)
 *     |   link-cut:        IFACE down; watch both; IFACE up at the end
 *     |-- COLO_EXIT events as they come, query-colo-status every 100 ms:
 *     |   the time each side is seen leaving protection, then running alone
 *     |-- query-* again on the sides that live; the verdict
 *
 * PASS: the side that should survive runs the guest and exactly one side
 * serves (runs its guest outside a secondary's COLO mode). Times are this
 * process's own clock, from the kill or the cut to the moment it saw the
 * event or the state: no clock of another host enters them.
 */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "ctl/ctl.h"

static const char drill_usage[] =
    "Usage: colovmctl drill failover       --primary PSOCK --secondary SSOCK [OPTIONS]\n"
    "       colovmctl drill secondary-loss --primary PSOCK --secondary SSOCK [OPTIONS]\n"
    "       colovmctl drill link-cut       --primary PSOCK --secondary SSOCK --link IFACE\n"
    "                                      [OPTIONS]\n"
    "\n"
    "Runs a failure drill on a live COLO pair and prints a report. PSOCK and\n"
    "SSOCK are the QMP sockets of the pair's primary and secondary (PATH or\n"
    "unix:PATH). Both must answer, be protected, and be the same pairing\n"
    "(query-colo-status \"pair\"); otherwise nothing is done (exit 2).\n"
    "\n"
    "Drills:\n"
    "  failover        the primary's host loses power: its colovm is sent\n"
    "                  SIGKILL (the process at the other end of PSOCK, from the\n"
    "                  socket's SO_PEERCRED: run the drill on the primary's host).\n"
    "                  PASS when the secondary takes over and runs the guest.\n"
    "  secondary-loss  the same for the secondary (run it on the secondary's\n"
    "                  host). PASS when the primary runs on, unprotected.\n"
    "  link-cut        the replication link IFACE is set down (run the drill in\n"
    "                  the network namespace that holds IFACE, as root), both\n"
    "                  sides watched until each has given the other up, and\n"
    "                  IFACE set up again at the end, also after a failure, a\n"
    "                  timeout or SIGINT/SIGTERM. With a witness one side is\n"
    "                  granted and serves, the other stops its guest (fenced):\n"
    "                  PASS. Without a witness both run on alone: FAIL (two\n"
    "                  copies serve: a split brain).\n"
    "The other side's socket may be forwarded from its host (OpenSSH forwards\n"
    "UNIX sockets: ssh -L /tmp/b.qmp:/run/colovm/vm.qmp HOST); the side that is\n"
    "killed must be a colovm process on this host (checked, never guessed).\n"
    "\n"
    "Options:\n"
    "  -p, --primary PSOCK    the primary's QMP socket (required)\n"
    "  -s, --secondary SSOCK  the secondary's QMP socket (required)\n"
    "  -l, --link IFACE       link-cut: the interface of the replication link\n"
    "  -t, --timeout SEC      how long to wait for the verdicts after the kill\n"
    "                         or the cut (default 30)\n"
    "  -j, --json             the report as one JSON object\n"
    "  -h, --help             show this help and exit\n"
    "\n"
    "The report: the drill, its start (UTC), the pairing, the action and its\n"
    "target; before it, the primary's checkpoints (count, last id) and, when\n"
    "query-colo-stats has them, packets compared and held at that moment;\n"
    "after it, for each side: the time it was seen leaving protection\n"
    "(COLO_EXIT or query-colo-status, ms after the action), its COLO state and\n"
    "reason, its run state, its last checkpoint, failovers by reason and\n"
    "fences; the takeover time (the action to the surviving side leaving\n"
    "protection; link-cut: to the last side's verdict), the sides that serve,\n"
    "and a line 'VERDICT: PASS' or 'VERDICT: FAIL: REASON'.\n"
    "\n"
    "Exit status: 0 PASS, 1 FAIL, 2 bad usage, a socket that does not answer,\n"
    "or a pair not fit for the drill (nothing was done).\n"
    "\n"
    "Examples:\n"
    "  colovmctl drill failover --primary /run/colovm/kv.qmp --secondary /tmp/b.qmp\n"
    "  ip netns exec hostA colovmctl drill link-cut -p a.qmp -s b.qmp -l eth1 --json\n";

enum drill_kind { DRILL_FAILOVER, DRILL_SECONDARY_LOSS, DRILL_LINK_CUT, DRILL__MAX };
static const char *const drill_names[] = {"failover", "secondary-loss", "link-cut"};

#define QUERY_EVERY_MS 100

struct side {
	const char *name; /* "primary", "secondary" */
	const char *sock;
	struct qmpc c;
	pid_t pid;
	bool alive;		      /* its socket answers */
	bool killed;		      /* this drill sent it SIGKILL */
	int64_t gone_ms;	      /* its socket closed, ms after the action; -1 */
	int64_t left_ms;	      /* seen out of protection (COLO_EXIT or state); -1 */
	int64_t serving_ms;	      /* seen running its guest alone; -1 */
	json_t *status, *stats, *run; /* the last answers */
	json_t *colo_exit;	      /* the data of its first COLO_EXIT */
	uint64_t t0;		      /* the action (clock_ns), 0 before */
};

static volatile sig_atomic_t drill_signal;

static void on_signal(int sig)
{
	drill_signal = sig;
}

static int64_t since_ms(uint64_t t0)
{
	return t0 ? (int64_t)((clock_ns() - t0) / 1000000) : -1;
}

static void on_event(void *opaque, json_t *ev)
{
	struct side *s = opaque;
	const char *name = json_string_value(json_object_get(ev, "event"));

	if (!s->t0 || !name || strcmp(name, "COLO_EXIT") || s->colo_exit)
		return;
	s->colo_exit = json_deep_copy(json_object_get(ev, "data"));
	if (s->left_ms < 0)
		s->left_ms = since_ms(s->t0);
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key)) ?: "";
}

/* query CMD on s into *slot; false when the side no longer answers. */
static bool side_query(struct side *s, const char *cmd, json_t **slot)
{
	int status = 0;
	json_t *r;

	if (!s->alive)
		return false;
	r = qmpc_query(&s->c, cmd, on_event, s, true, &status);
	if (!r) {
		if (status == CTL_EXIT_USAGE) {
			s->alive = false;
			if (s->gone_ms < 0)
				s->gone_ms = since_ms(s->t0);
		}
		return false;
	}
	json_decref(*slot);
	*slot = r;
	return true;
}

static bool side_refresh(struct side *s)
{
	return side_query(s, "query-colo-status", &s->status) &&
	       side_query(s, "query-colo-stats", &s->stats) &&
	       side_query(s, "query-status", &s->run);
}

static bool protecting(const struct side *s)
{
	const char *st = str(s->status, "state");

	return !strcmp(st, "protected") || !strcmp(st, "sync");
}

/* Runs its guest and is nobody's secondary: its packets reach the wire. */
static bool serving(const struct side *s)
{
	return s->alive && !strcmp(str(s->run, "status"), "running") &&
	       strcmp(str(s->status, "mode"), "secondary");
}

/* Its verdict is in: gone, fenced, or out of protection and running. */
static bool settled(const struct side *s)
{
	const char *st = str(s->status, "state");

	if (!s->alive)
		return true;
	if (s->left_ms < 0 || protecting(s))
		return false;
	return !strcmp(st, "fenced") || serving(s);
}

/* The pid behind s's socket, checked to be a colovm. 0 or -1 (said). */
static int side_pid(struct side *s, bool must_kill)
{
	char path[64], comm[64] = "";
	FILE *f;

	s->pid = qmpc_peer_pid(&s->c);
	if (!must_kill)
		return 0;
	if (s->pid <= 0) {
		fprintf(stderr,
			"colovmctl: drill: cannot tell which process serves %s (SO_PEERCRED): "
			"run the drill on the %s's host\n",
			s->sock, s->name);
		return -1;
	}
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)s->pid);
	f = fopen(path, "r");
	if (f) {
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
	}
	comm[strcspn(comm, "\n")] = 0;
	if (strcmp(comm, "colovm")) {
		fprintf(stderr,
			"colovmctl: drill: the process behind %s is '%s' (pid %d), not colovm (a "
			"forwarded socket?): run the drill on the %s's host\n",
			s->sock, comm[0] ? comm : "?", (int)s->pid, s->name);
		return -1;
	}
	if (kill(s->pid, 0) < 0) {
		fprintf(stderr, "colovmctl: drill: cannot signal the %s's colovm (pid %d): %s\n",
			s->name, (int)s->pid, strerror(errno));
		return -1;
	}
	return 0;
}

/* IFACE's IFF_UP: set it (set >= 0: to set) or read it. 0 or -errno. */
static int link_flag(const char *ifname, int set, bool *up)
{
	struct ifreq ifr = {0};
	int fd, ret = 0;

	if (strlen(ifname) >= sizeof(ifr.ifr_name))
		return -ENAMETOOLONG;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(ifr.ifr_name, ifname);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		ret = -errno;
	} else if (set >= 0) {
		ifr.ifr_flags = set ? ifr.ifr_flags | IFF_UP : ifr.ifr_flags & ~IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			ret = -errno;
	}
	if (up)
		*up = ifr.ifr_flags & IFF_UP;
	close(fd);
	return ret;
}

/* The two sides fit for a drill: both protected, the same pairing. */
static int check_pair(struct side *p, struct side *s)
{
	const char *pp = str(p->status, "pair"), *sp = str(s->status, "pair");

	if (strcmp(str(p->status, "mode"), "primary") || !protecting(p) ||
	    strcmp(str(p->status, "state"), "protected")) {
		fprintf(stderr,
			"colovmctl: drill: %s is not a protected primary (mode %s, state %s)\n",
			p->sock, str(p->status, "mode"), str(p->status, "state"));
		return -1;
	}
	if (strcmp(str(s->status, "mode"), "secondary") ||
	    strcmp(str(s->status, "state"), "protected")) {
		fprintf(stderr,
			"colovmctl: drill: %s is not a protected secondary (mode %s, state %s)\n",
			s->sock, str(s->status, "mode"), str(s->status, "state"));
		return -1;
	}
	if (!pp[0] || strcmp(pp, sp)) {
		fprintf(stderr,
			"colovmctl: drill: %s and %s are not one pair (pairing %s and %s)\n",
			p->sock, s->sock, pp[0] ? pp : "unknown", sp[0] ? sp : "unknown");
		return -1;
	}
	return 0;
}

static json_t *ms_or_null(int64_t ms)
{
	return ms >= 0 ? json_integer(ms) : json_null();
}

static json_t *side_json(const struct side *s)
{
	json_t *o = json_pack("{s:s,s:I,s:b,s:b,s:o,s:o,s:o}", "socket", s->sock, "pid",
			      (json_int_t)s->pid, "alive", s->alive, "killed", s->killed, "gone-ms",
			      ms_or_null(s->gone_ms), "left-protection-ms", ms_or_null(s->left_ms),
			      "serving-ms", ms_or_null(s->serving_ms));

	json_object_set_new(o, "serves", json_boolean(serving(s)));
	json_object_set_new(o, "state", json_string(s->alive ? str(s->status, "state") : "gone"));
	json_object_set_new(o, "mode", json_string(str(s->status, "mode")));
	json_object_set_new(o, "reason", json_string(str(s->status, "reason")));
	json_object_set_new(o, "run-state", json_string(s->alive ? str(s->run, "status") : "gone"));
	json_object_set_new(o, "last-checkpoint",
			    json_integer(ctl_jint(s->status, "last-checkpoint", NULL)));
	json_object_set_new(o, "checkpoints",
			    json_integer(ctl_jint(s->stats, "checkpoints", NULL)));
	json_object_set(o, "failovers", json_object_get(s->stats, "failovers") ?: json_null());
	json_object_set_new(o, "fences", json_integer(ctl_jint(s->stats, "fences", NULL)));
	json_object_set(o, "colo-exit", s->colo_exit ?: json_null());
	return o;
}

static void print_side(const char *name, json_t *o)
{
	json_t *f = json_object_get(o, "failovers"), *ev = json_object_get(o, "colo-exit");

	printf("%-10s %s (pid %lld)", name, str(o, "socket"), (long long)ctl_jint(o, "pid", NULL));
	if (json_is_true(json_object_get(o, "killed")))
		printf(": killed");
	if (!json_is_true(json_object_get(o, "alive"))) {
		printf(", gone%s\n",
		       json_is_integer(json_object_get(o, "gone-ms")) ? "" : " (no answer)");
		return;
	}
	printf("\n           state %s, run state %s, serves: %s; last checkpoint %lld\n",
	       str(o, "state"), str(o, "run-state"),
	       json_is_true(json_object_get(o, "serves")) ? "yes" : "no",
	       (long long)ctl_jint(o, "last-checkpoint", NULL));
	if (json_is_integer(json_object_get(o, "left-protection-ms")))
		printf("           left protection after %lld ms%s\n",
		       (long long)ctl_jint(o, "left-protection-ms", NULL),
		       ev ? " (COLO_EXIT)" : " (query-colo-status)");
	if (ev)
		printf("           COLO_EXIT: reason %s%s: %s\n", str(ev, "reason"),
		       json_is_true(json_object_get(ev, "fenced")) ? ", fenced" : "",
		       str(ev, "message"));
	printf("           reason: %s\n", str(o, "reason"));
	printf("           failovers: %lld heartbeat, %lld drill, %lld peer lost; %lld fenced\n",
	       (long long)ctl_jint(f, "heartbeat", NULL), (long long)ctl_jint(f, "drill", NULL),
	       (long long)ctl_jint(f, "peer-lost", NULL), (long long)ctl_jint(o, "fences", NULL));
}

static void print_text(json_t *r)
{
	json_t *b = json_object_get(r, "before"), *net = json_object_get(b, "packets"), *v;
	size_t i;

	printf("drill:     %s\n", str(r, "drill"));
	printf("start:     %s\n", str(r, "start"));
	printf("pair:      %s\n", str(r, "pair"));
	printf("action:    %s\n", str(r, "action"));
	printf("before:    %lld checkpoints, last %lld",
	       (long long)ctl_jint(b, "checkpoints", NULL),
	       (long long)ctl_jint(b, "last-checkpoint", NULL));
	if (net)
		printf("; packets: %lld compared, %lld held",
		       (long long)ctl_jint(net, "compared", NULL),
		       (long long)ctl_jint(net, "held", NULL));
	printf("\n");
	print_side("primary:", json_object_get(r, "primary"));
	print_side("secondary:", json_object_get(r, "secondary"));
	if (json_is_integer(json_object_get(r, "takeover-ms")))
		printf("takeover:  %lld ms\n", (long long)ctl_jint(r, "takeover-ms", NULL));
	else
		printf("takeover:  none seen\n");
	printf("serving:  ");
	json_array_foreach(json_object_get(r, "serving"), i, v) printf(" %s", json_string_value(v));
	printf("%s\n", json_array_size(json_object_get(r, "serving")) ? "" : " none");
	if (json_is_true(json_object_get(r, "pass")))
		printf("VERDICT: PASS\n");
	else
		printf("VERDICT: FAIL: %s\n", str(r, "reason"));
	fflush(stdout);
}

/* The verdict: true PASS, else why in why. */
static bool verdict(enum drill_kind kind, struct side *p, struct side *s, bool witness, int sig,
		    int timeout_s, char *why, size_t len)
{
	struct side *sides[2] = {p, s}, *survivor = kind == DRILL_FAILOVER ? s : p;
	int n = serving(p) + serving(s);

	if (sig) {
		snprintf(why, len, "interrupted by signal %d", sig);
		return false;
	}
	for (int i = 0; i < 2; i++) {
		struct side *x = sides[i];

		if (x->killed && x->alive) {
			snprintf(why, len, "the %s still answers after SIGKILL", x->name);
			return false;
		}
		if (x->alive && (x->left_ms < 0 || protecting(x))) {
			snprintf(why, len, "the %s still reports %s %d s after the %s", x->name,
				 str(x->status, "state"), timeout_s,
				 kind == DRILL_LINK_CUT ? "cut" : "kill");
			return false;
		}
	}
	if (kind == DRILL_LINK_CUT) {
		if (n == 1)
			return true;
		if (n == 2)
			snprintf(why, len, "both sides serve: a split brain%s",
				 witness
				     ? ""
				     : " (the pair has no witness: configure one on both sides)");
		else
			snprintf(why, len, "no side serves (primary %s, secondary %s)",
				 str(p->status, "state"), str(s->status, "state"));
		return false;
	}
	if (!survivor->alive) {
		snprintf(why, len, "the %s is gone too", survivor->name);
		return false;
	}
	if (!serving(survivor)) {
		snprintf(why, len, "the %s does not serve: state %s, run state %s: %s",
			 survivor->name, str(survivor->status, "state"),
			 str(survivor->run, "status"), str(survivor->status, "reason"));
		return false;
	}
	if (n != 1) {
		snprintf(why, len, "%d sides serve", n);
		return false;
	}
	return true;
}

/* After the action: events and states until each side's verdict is in or
 * the deadline; the signal that cut it short, or 0. */
static int watch(enum drill_kind kind, struct side *p, struct side *s, int timeout_s)
{
	struct side *sides[2] = {p, s};
	uint64_t end = p->t0 + (uint64_t)timeout_s * 1000000000ull;
	/* The first queries come one period after the action, not with it:
	 * the survivor's COLO_EXIT event says when it took over, and a query
	 * then would be one more command for the main loop that is taking
	 * over (in a host VM a query-colo-status at the kill delayed the
	 * event by milliseconds). */
	uint64_t next = p->t0 + QUERY_EVERY_MS * 1000000ull;

	while (!drill_signal && clock_ns() < end) {
		struct pollfd pfd[2];
		int n = 0;
		bool done = true;

		for (int i = 0; i < 2; i++)
			if (sides[i]->alive)
				pfd[n++] = (struct pollfd){.fd = sides[i]->c.fd, .events = POLLIN};
		if (n && poll(pfd, (nfds_t)n, 20) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			struct side *x = sides[i];
			json_t *m;
			int r = -ETIMEDOUT;

			while (x->alive && !(r = qmpc_recv_wait(&x->c, 0, &m))) {
				if (json_object_get(m, "event"))
					on_event(x, m);
				json_decref(m);
			}
			if (x->alive && r != -ETIMEDOUT && r != -EINTR) {
				x->alive = false;
				x->gone_ms = since_ms(x->t0);
			}
		}
		if (clock_ns() < next)
			continue;
		next = clock_ns() + QUERY_EVERY_MS * 1000000ull;
		for (int i = 0; i < 2; i++) {
			struct side *x = sides[i];

			if (!x->alive || !side_query(x, "query-colo-status", &x->status))
				continue;
			if (x->left_ms < 0 && !protecting(x))
				x->left_ms = since_ms(x->t0);
			if (x->left_ms >= 0 && side_query(x, "query-status", &x->run) &&
			    serving(x) && x->serving_ms < 0)
				x->serving_ms = since_ms(x->t0);
		}
		for (int i = 0; i < 2; i++)
			if (!settled(sides[i]) ||
			    (kind != DRILL_LINK_CUT && sides[i]->killed && sides[i]->alive))
				done = false;
		if (done)
			break;
	}
	return drill_signal;
}

static json_t *before_json(struct side *p, struct side *s)
{
	json_t *net = json_object_get(p->stats, "network"), *o;

	o = json_pack("{s:I,s:I,s:I}", "checkpoints", ctl_jint(p->stats, "checkpoints", NULL),
		      "last-checkpoint", ctl_jint(p->status, "last-checkpoint", NULL),
		      "secondary-last-checkpoint", ctl_jint(s->status, "last-checkpoint", NULL));
	if (json_object_get(net, "compared"))
		json_object_set_new(o, "packets",
				    json_pack("{s:I,s:I}", "compared",
					      ctl_jint(net, "compared", NULL), "held",
					      ctl_jint(net, "held", NULL)));
	return o;
}

static int parse_args(int argc, char **argv, enum drill_kind *kind, struct side *p, struct side *s,
		      const char **link, int *timeout_s, bool *json)
{
	static const struct option opts[] = {
	    {"primary", required_argument, NULL, 'p'},
	    {"secondary", required_argument, NULL, 's'},
	    {"link", required_argument, NULL, 'l'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t secs;
	int opt;

	optind = 1;
	argv[0] = (char *)"colovmctl drill"; /* getopt's messages */
	while ((opt = getopt_long(argc, argv, "p:s:l:t:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			p->sock = optarg;
			break;
		case 's':
			s->sock = optarg;
			break;
		case 'l':
			*link = optarg;
			break;
		case 't':
			if (parse_u64(optarg, 1, 3600, &secs)) {
				fprintf(stderr,
					"colovmctl: drill: bad --timeout '%s' (1 to 3600)\n",
					optarg);
				return CTL_EXIT_USAGE;
			}
			*timeout_s = (int)secs;
			break;
		case 'j':
			*json = true;
			break;
		case 'h':
			fputs(drill_usage, stdout);
			return 0;
		default:
			fputs("Try 'colovmctl drill --help'.\n", stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "colovmctl: drill: which drill? failover, secondary-loss or "
				"link-cut\nTry 'colovmctl drill --help'.\n");
		return CTL_EXIT_USAGE;
	}
	for (*kind = 0; *kind < DRILL__MAX; (*kind)++)
		if (!strcmp(argv[optind], drill_names[*kind]))
			break;
	if (*kind == DRILL__MAX || optind + 1 < argc) {
		fprintf(stderr, "colovmctl: drill: %s '%s'%s\nTry 'colovmctl drill --help'.\n",
			*kind == DRILL__MAX ? "unknown drill" : "one drill at a time, not also",
			argv[optind + (*kind == DRILL__MAX ? 0 : 1)],
			*kind == DRILL__MAX ? " (failover, secondary-loss, link-cut)" : "");
		return CTL_EXIT_USAGE;
	}
	if (!p->sock || !s->sock) {
		fprintf(stderr, "colovmctl: drill: --primary PSOCK and --secondary SSOCK are "
				"required\nTry 'colovmctl drill --help'.\n");
		return CTL_EXIT_USAGE;
	}
	if ((*kind == DRILL_LINK_CUT) != (*link != NULL)) {
		fprintf(stderr,
			"colovmctl: drill: --link IFACE %s\nTry 'colovmctl drill --help'.\n",
			*link ? "is for link-cut only" : "is required for link-cut");
		return CTL_EXIT_USAGE;
	}
	return -1;
}

int ctl_drill(int argc, char **argv)
{
	struct side
	    p = {.name = "primary", .c.fd = -1, .gone_ms = -1, .left_ms = -1, .serving_ms = -1},
	    s = {.name = "secondary", .c.fd = -1, .gone_ms = -1, .left_ms = -1, .serving_ms = -1};
	struct side *victim;
	enum drill_kind kind = DRILL_FAILOVER;
	const char *link = NULL;
	int timeout_s = 30, status, sig = 0, err;
	bool json = false, up = false, cut = false, witness, pass;
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll wakes */
	struct timespec now;
	struct tm tm;
	char start[80], action[160], why[512] = "", pair[80];
	json_t *before, *r;
	size_t i;

	status = parse_args(argc, argv, &kind, &p, &s, &link, &timeout_s, &json);
	if (status >= 0)
		return status;
	status = CTL_EXIT_USAGE;
	/* A side that dies is a socket to notice closed, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	victim = kind == DRILL_FAILOVER ? &p : kind == DRILL_SECONDARY_LOSS ? &s : NULL;
	p.c.timeout_ms = s.c.timeout_ms = 10000;
	if (qmpc_open(&p.c, p.sock) || qmpc_handshake(&p.c, p.sock, true, NULL, NULL) ||
	    qmpc_open(&s.c, s.sock) || qmpc_handshake(&s.c, s.sock, true, NULL, NULL))
		goto out;
	p.alive = s.alive = true;
	if (!side_refresh(&p) || !side_refresh(&s)) {
		fprintf(stderr,
			"colovmctl: drill: %s does not answer query-colo-status, "
			"query-colo-stats and query-status\n",
			p.alive ? s.sock : p.sock);
		goto out;
	}
	if (check_pair(&p, &s) || side_pid(&p, victim == &p) || side_pid(&s, victim == &s))
		goto out;
	if (link) {
		err = link_flag(link, -1, &up);
		if (err || !up) {
			fprintf(stderr,
				"colovmctl: drill: %s: %s (run the drill in the network namespace "
				"that holds the replication link)\n",
				link, err ? strerror(-err) : "it is down already");
			goto out;
		}
	}
	snprintf(pair, sizeof(pair), "%s", str(p.status, "pair"));
	witness = json_object_get(p.status, "witness") || json_object_get(s.status, "witness");
	before = before_json(&p, &s);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	clock_gettime(CLOCK_REALTIME, &now);
	p.t0 = s.t0 = clock_ns();
	if (victim) {
		err = kill(victim->pid, SIGKILL) < 0 ? -errno : 0;
		snprintf(action, sizeof(action), "SIGKILL to the %s (pid %d)", victim->name,
			 (int)victim->pid);
		victim->killed = !err;
	} else {
		err = link_flag(link, 0, NULL);
		cut = !err;
		snprintf(action, sizeof(action), "%s set down", link);
	}
	if (err) {
		fprintf(stderr, "colovmctl: drill: %s: %s%s\n", action, strerror(-err),
			err == -EPERM && link ? " (needs CAP_NET_ADMIN: root)" : "");
		json_decref(before);
		goto out;
	}
	gmtime_r(&now.tv_sec, &tm);
	snprintf(start, sizeof(start), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(now.tv_nsec / 1000000));

	sig = watch(kind, &p, &s, timeout_s);
	if (cut) {
		err = link_flag(link, 1, NULL);
		if (err)
			fprintf(stderr, "colovmctl: drill: cannot set %s up again: %s\n", link,
				strerror(-err));
		else
			strncat(action, ", up again after the verdicts",
				sizeof(action) - strlen(action) - 1);
	}
	for (i = 0; i < 2; i++)
		side_refresh(i ? &s : &p);
	pass = verdict(kind, &p, &s, witness, sig, timeout_s, why, sizeof(why));
	r = json_pack("{s:s,s:s,s:s,s:s,s:o}", "drill", drill_names[kind], "start", start, "pair",
		      pair, "action", action, "before", before);
	json_object_set_new(r, "primary", side_json(&p));
	json_object_set_new(r, "secondary", side_json(&s));
	{
		struct side *t = kind == DRILL_FAILOVER ? &s : &p;
		int64_t ms = t->left_ms;

		if (kind == DRILL_LINK_CUT)
			ms = serving(&s) && !serving(&p)      ? s.left_ms
			     : serving(&p) && !serving(&s)    ? p.left_ms
			     : p.left_ms < 0 || s.left_ms < 0 ? -1
							      : MAX(p.left_ms, s.left_ms);
		json_object_set_new(r, "takeover-ms", ms_or_null(ms));
	}
	json_object_set_new(r, "serving", json_array());
	for (i = 0; i < 2; i++)
		if (serving(i ? &s : &p))
			json_array_append_new(json_object_get(r, "serving"),
					      json_string(i ? "secondary" : "primary"));
	json_object_set_new(r, "pass", json_boolean(pass));
	json_object_set_new(r, "verdict", json_string(pass ? "PASS" : "FAIL"));
	json_object_set_new(r, "reason", json_string(why));
	if (json) {
		char *out = json_dumps(r, JSON_INDENT(2));

		if (out)
			printf("%s\n", out);
		free(out);
	} else {
		print_text(r);
	}
	json_decref(r);
	status = pass ? 0 : CTL_EXIT_FAIL;
out:
	for (i = 0; i < 2; i++) {
		struct side *x = i ? &s : &p;

		qmpc_close(&x->c);
		json_decref(x->status);
		json_decref(x->stats);
		json_decref(x->run);
		json_decref(x->colo_exit);
	}
	return status;
}
