/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ctl: colovmctl's parts. A QMP client (one connection to a colovm's UNIX
 * socket: greeting, capabilities, commands and events, each a JSON line)
 * and the drills (`colovmctl drill`), which drive two of them at once.
 *
 * Errors for a person go to stderr prefixed "colovmctl: "; the functions
 * return what the caller needs to choose its exit status.
 */
#ifndef COLOVM_CTL_H
#define COLOVM_CTL_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#define CTL_EXIT_FAIL  1 /* the command failed (QMP error; a drill's verdict FAIL) */
#define CTL_EXIT_USAGE 2 /* bad arguments, no connection, protocol trouble */

struct qmpc {
	int fd;
	int timeout_ms; /* for an answer; 0: wait for ever */
	size_t len;
	char buf[1 << 16];
};

/* Connect to "PATH" or "unix:PATH[,...]". 0 or -errno (said on stderr). */
int qmpc_open(struct qmpc *c, const char *spec);
/* Read the greeting and, when caps, negotiate capabilities; events that
 * come first go to on_event (NULL: dropped). 0, or -1 (said on stderr). */
int qmpc_handshake(struct qmpc *c, const char *spec, bool caps, void (*on_event)(void *, json_t *),
		   void *opaque);
void qmpc_close(struct qmpc *c);
/* The pid of the process at the other end (SO_PEERCRED), 0 if unknown. */
pid_t qmpc_peer_pid(const struct qmpc *c);

/* Next message (a new reference), waiting c->timeout_ms; NULL on EOF,
 * timeout or bad JSON (said on stderr, but for EOF). */
json_t *qmpc_recv(struct qmpc *c);
/* Next message within timeout_ms (0: only what is there), quietly: 0 and
 * *out, -ETIMEDOUT, -EPIPE (closed), -EINTR (a signal), -EBADMSG. */
int qmpc_recv_wait(struct qmpc *c, int timeout_ms, json_t **out);
/* Send one message (a JSON object) / a raw line as given. 0 or -errno. */
int qmpc_send(struct qmpc *c, json_t *msg);
int qmpc_send_raw(struct qmpc *c, const char *raw);
/* The next non-event message; events meanwhile go to on_event (NULL:
 * dropped). NULL when the connection ends first. */
json_t *qmpc_reply(struct qmpc *c, void (*on_event)(void *, json_t *), void *opaque);
/* One command without arguments: its "return" (a new reference), or NULL
 * with *status set (CTL_EXIT_FAIL: colovm's error, CTL_EXIT_USAGE: the
 * connection) and the reason said on stderr unless quiet. */
json_t *qmpc_query(struct qmpc *c, const char *cmd, void (*on_event)(void *, json_t *),
		   void *opaque, bool quiet, int *status);
/* A reply for a person: 0 on a "return" (printed; the whole reply when
 * whole), CTL_EXIT_FAIL on an "error" (said on stderr), CTL_EXIT_USAGE else. */
int qmpc_report(json_t *reply, bool whole);
void qmpc_print(json_t *v);
/* o[a] (b: o[a][b]) as an integer; 0 when missing. */
json_int_t ctl_jint(json_t *o, const char *a, const char *b);

/* `colovmctl drill ...` (argv[0] is "drill"): the exit status. */
int ctl_drill(int argc, char **argv);

#endif
