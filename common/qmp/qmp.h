/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qmp: the management socket, speaking QEMU's QMP (JSON over a UNIX stream
 * socket) so that qmp-shell, python qemu.qmp and colovmctl work as they are.
 *
 *   client                                   colovm
 *     |  <── {"QMP": {"version": {"qemu": {"micro", "minor", "major"},
 *     |                           "package": "colovm X"},
 *     |               "capabilities": []}}                (greeting)
 *     |  ──> {"execute": "qmp_capabilities"}             (required first)
 *     |  <── {"return": {}}
 *     |  ──> {"execute": "query-status", "id": 7}
 *     |  <── {"return": {"status": "running", "running": true,
 *     |                  "singlestep": false}, "id": 7}
 *     |  ──> {"execute": "nope"}
 *     |  <── {"error": {"class": "CommandNotFound", "desc": "..."}}
 *     |  <── {"event": "STOP", "data": {},
 *     |       "timestamp": {"seconds": S, "microseconds": US}}   (any time)
 *
 * Input is a stream of JSON objects (one per line is usual; not required).
 * A syntax error is answered with GenericError "JSON parse error, ..." and
 * the rest of that line is dropped. More than QMP_MAX_INPUT bytes of input
 * that do not make a complete value: an error, then the connection closes.
 * Output is buffered per client up to QMP_MAX_OUTPUT; a client that does not
 * read (or whose socket fails) is dropped, so nothing ever waits on a client.
 * Events go to every client that finished capabilities negotiation.
 *
 * Everything here runs on the main loop thread (commands run there too).
 */
#ifndef COLOVM_QMP_H
#define COLOVM_QMP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "common/common.h"

#define QMP_MAX_INPUT	(64 * 1024)   /* unparsed input per client */
#define QMP_MAX_OUTPUT	(1024 * 1024) /* unsent output per client */
#define QMP_MAX_CLIENTS 64

struct qmp;
struct runstate;

/* QEMU's error classes. */
enum qmp_error_class {
	QMP_ERROR_GENERIC,	     /* "GenericError" */
	QMP_ERROR_COMMAND_NOT_FOUND, /* "CommandNotFound" */
	QMP_ERROR_DEVICE_NOT_ACTIVE, /* "DeviceNotActive" */
	QMP_ERROR_DEVICE_NOT_FOUND,  /* "DeviceNotFound" */
	QMP_ERROR_KVM_MISSING_CAP,   /* "KVMMissingCap" */
};

struct qmp_error {
	enum qmp_error_class cls;
	char desc[256];
};

/* Fill err; returns -EINVAL so that a handler can "return qmp_error_set(...)". */
int qmp_error_set(struct qmp_error *err, enum qmp_error_class cls, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
const char *qmp_error_class_name(enum qmp_error_class cls);

/* Argument types a command declares; the dispatcher checks them. */
enum qmp_arg_type {
	QMP_ARG_STRING,
	QMP_ARG_INT,
	QMP_ARG_NUMBER, /* integer or real */
	QMP_ARG_BOOL,
	QMP_ARG_OBJECT,
	QMP_ARG_ARRAY,
	QMP_ARG_ANY,
};

struct qmp_arg {
	const char *name; /* NULL ends the list */
	enum qmp_arg_type type;
	bool optional;
};

/*
 * A command. args is the "arguments" object ({} when absent), already
 * checked against the declared qmp_arg list: no unknown member, every
 * required one present, each of its type. On success return 0 and set *ret
 * to a new reference (or leave it NULL for {}). On failure return -errno
 * and fill err (qmp_error_set); an empty err becomes a GenericError.
 */
typedef int (*qmp_cmd_fn)(void *opaque, json_t *args, json_t **ret, struct qmp_error *err);

int qmp_new(struct loop *loop, struct qmp **out);
/* Sends what output it can without waiting, closes every client and the
 * listening socket (removing its path). */
void qmp_free(struct qmp *qmp);

/*
 * Listen on "unix:PATH[,server][,server=on][,wait=off][,nowait]". The socket
 * file is created mode 0600 (a stale one at PATH is replaced).
 */
int qmp_listen(struct qmp *qmp, const char *spec);
/* Serve an already connected stream socket (takes ownership of fd). */
int qmp_add_client(struct qmp *qmp, int fd);
size_t qmp_client_count(const struct qmp *qmp);

/* Register a command (name unique). args: NULL-terminated list, or NULL for
 * "takes no arguments". The arrays must outlive the registration. */
int qmp_register(struct qmp *qmp, const char *name, const struct qmp_arg *args, qmp_cmd_fn fn,
		 void *opaque);
int qmp_unregister(struct qmp *qmp, const char *name);

/* Broadcast an event; steals the reference to data (NULL: {}). */
void qmp_event(struct qmp *qmp, const char *name, json_t *data);
/*
 * COLO_EXIT, as QEMU's (mode "primary" or "secondary", reason "request" or
 * "error"), with colovm's own: message (why), silent-ms (the heartbeat's
 * silence it acted on; 0: left out) and fenced (the witness did not grant:
 * this side stopped; false: left out). qmp NULL: nothing.
 */
void qmp_event_colo_exit(struct qmp *qmp, const char *mode, bool request, const char *message,
			 unsigned int silent_ms, bool fenced);

/* Why a pair broke while protected, on either side (query-colo-stats
 * "failovers", the journal's failover events). */
enum colo_failover {
	COLO_FAILOVER_HEARTBEAT, /* the peer fell silent */
	COLO_FAILOVER_DRILL,	 /* x-colo-lost-heartbeat */
	COLO_FAILOVER_PEER_LOST, /* its connection failed, it refused, it gave up */
	COLO_FAILOVER__MAX,
};
const char *qmp_colo_failover_name(enum colo_failover f);
/* query-colo-stats' figures of breaks, either side, into o: "failovers"
 * {why: count}, "fences" and "pause-us" (qmp_hist_json of pause). */
struct hist;
void qmp_colo_stats_breaks(json_t *o, const uint64_t failovers[COLO_FAILOVER__MAX], uint64_t fences,
			   const struct hist *pause);

/* query-colo-status' "pair": the pairing's id (StreamStart, new at every
 * pairing; the same on both sides of one pair) in hex, into o; nothing
 * when it is all zero (no pairing yet). */
void qmp_colo_status_pair(json_t *o, const uint8_t *pair, size_t len);

/* A histogram (common.h) for query-colo-stats: {"le": [bounds...], "counts":
 * [per bucket, not cumulative; one more than le: above the last], "sum",
 * "count"}, in the unit the histogram was filled in. A new reference. */
json_t *qmp_hist_json(const struct hist *h);
/* {"last-us", "min-us", "avg-us", "max-us", "samples"} of a heartbeat's
 * round trip (transport.h struct transport_rtt, passed as its fields). */
json_t *qmp_rtt_json(uint64_t samples, uint64_t last_ns, uint64_t min_ns, uint64_t avg_ns,
		     uint64_t max_ns);

/*
 * Add the run-state commands (query-status, stop, cont, system_reset,
 * system_powerdown, system_wakeup, quit) and forward rs's events (STOP,
 * RESUME, SHUTDOWN, RESET, POWERDOWN, SUSPEND, WAKEUP). rs must outlive qmp
 * or be detached by qmp_free() first.
 */
int qmp_attach_runstate(struct qmp *qmp, struct runstate *rs);

/* "X.Y.Z", the version reported in the greeting and by query-version. */
const char *qmp_version(void);

#endif
