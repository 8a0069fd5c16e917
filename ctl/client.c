/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A QMP client: one connection to colovm's management socket (ctl.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/common.h"
#include "ctl/ctl.h"

int qmpc_open(struct qmpc *c, const char *spec)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = spec;
	size_t n;

	c->len = 0;
	if (!strncmp(path, "unix:", 5))
		path += 5;
	n = strcspn(path, ",");
	if (!n || n >= sizeof(sa.sun_path)) {
		fprintf(stderr, "colovmctl: bad socket path '%s'\n", spec);
		return -EINVAL;
	}
	memcpy(sa.sun_path, path, n);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		fprintf(stderr, "colovmctl: cannot connect to %s: %s\n", sa.sun_path,
			strerror(err));
		return -err;
	}
	return 0;
}

void qmpc_close(struct qmpc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

pid_t qmpc_peer_pid(const struct qmpc *c)
{
	struct ucred cr = {0};
	socklen_t len = sizeof(cr);

	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	return cr.pid;
}

int qmpc_recv_wait(struct qmpc *c, int timeout_ms, json_t **out)
{
	*out = NULL;
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		ssize_t n;
		int r;

		if (nl) {
			json_error_t e;
			size_t line = (size_t)(nl - c->buf);

			*out = json_loadb(c->buf, line, 0, &e);
			memmove(c->buf, nl + 1, c->len - line - 1);
			c->len -= line + 1;
			return *out ? 0 : -EBADMSG;
		}
		if (c->len == sizeof(c->buf))
			return -EMSGSIZE;
		r = poll(&pfd, 1, timeout_ms);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n < 0 && errno == EINTR)
			return -EINTR;
		if (n <= 0)
			return -EPIPE;
		c->len += (size_t)n;
	}
}

json_t *qmpc_recv(struct qmpc *c)
{
	json_t *m;
	int r;

	do
		r = qmpc_recv_wait(c, c->timeout_ms ? c->timeout_ms : -1, &m);
	while (r == -EINTR);
	if (r == -ETIMEDOUT)
		fprintf(stderr, "colovmctl: no answer from colovm within %d ms\n", c->timeout_ms);
	else if (r == -EBADMSG)
		fprintf(stderr, "colovmctl: bad JSON from colovm\n");
	else if (r == -EMSGSIZE)
		fprintf(stderr, "colovmctl: message from colovm too long\n");
	return m;
}

static int send_line(struct qmpc *c, const char *s, size_t n)
{
	char *line = malloc(n + 1);
	int ret;

	if (!line)
		return -ENOMEM;
	/* One write with its newline: colovm may act ("quit") and close at once. */
	memcpy(line, s, n);
	line[n] = '\n';
	ret = write_full(c->fd, line, n + 1);
	free(line);
	return ret;
}

int qmpc_send(struct qmpc *c, json_t *msg)
{
	char *s = json_dumps(msg, 0);
	int ret;

	if (!s)
		return -ENOMEM;
	ret = send_line(c, s, strlen(s));
	free(s);
	return ret;
}

int qmpc_send_raw(struct qmpc *c, const char *raw)
{
	return send_line(c, raw, strlen(raw));
}

void qmpc_print(json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY);

	if (s) {
		printf("%s\n", s);
		fflush(stdout);
	}
	free(s);
}

json_t *qmpc_reply(struct qmpc *c, void (*on_event)(void *, json_t *), void *opaque)
{
	for (;;) {
		json_t *m = qmpc_recv(c);

		if (!m)
			return NULL;
		if (!json_object_get(m, "event"))
			return m;
		if (on_event)
			on_event(opaque, m);
		json_decref(m);
	}
}

int qmpc_report(json_t *reply, bool whole)
{
	json_t *err, *ret;

	if (!reply) {
		fprintf(stderr, "colovmctl: connection closed before an answer\n");
		return CTL_EXIT_USAGE;
	}
	err = json_object_get(reply, "error");
	if (err) {
		if (whole)
			qmpc_print(reply);
		fprintf(stderr, "colovmctl: %s: %s\n",
			json_string_value(json_object_get(err, "class")) ?: "Error",
			json_string_value(json_object_get(err, "desc")) ?: "(no description)");
		return CTL_EXIT_FAIL;
	}
	ret = json_object_get(reply, "return");
	if (!ret) {
		fprintf(stderr, "colovmctl: unexpected message from colovm\n");
		return CTL_EXIT_USAGE;
	}
	qmpc_print(whole ? reply : ret);
	return 0;
}

json_t *qmpc_query(struct qmpc *c, const char *cmd, void (*on_event)(void *, json_t *),
		   void *opaque, bool quiet, int *status)
{
	json_t *q = json_pack("{s:s}", "execute", cmd), *m, *ret;

	if (qmpc_send(c, q) < 0) {
		json_decref(q);
		if (!quiet)
			fprintf(stderr, "colovmctl: connection lost\n");
		*status = CTL_EXIT_USAGE;
		return NULL;
	}
	json_decref(q);
	m = qmpc_reply(c, on_event, opaque);
	ret = json_object_get(m, "return");
	if (!ret) {
		json_t *err = json_object_get(m, "error");

		if (!quiet)
			*status = qmpc_report(m, false);
		else
			*status = err ? CTL_EXIT_FAIL : CTL_EXIT_USAGE;
		if (!*status)
			*status = CTL_EXIT_USAGE;
		json_decref(m);
		return NULL;
	}
	json_incref(ret);
	json_decref(m);
	return ret;
}

json_int_t ctl_jint(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	return json_integer_value(b ? json_object_get(v, b) : v);
}

int qmpc_handshake(struct qmpc *c, const char *spec, bool caps, void (*on_event)(void *, json_t *),
		   void *opaque)
{
	json_t *m = qmpc_recv(c), *q;

	if (!m || !json_object_get(m, "QMP")) {
		fprintf(stderr, "colovmctl: no QMP greeting from %s\n", spec);
		json_decref(m);
		return -1;
	}
	json_decref(m);
	if (!caps)
		return 0;
	q = json_pack("{s:s}", "execute", "qmp_capabilities");
	if (qmpc_send(c, q) < 0) {
		json_decref(q);
		fprintf(stderr, "colovmctl: connection lost\n");
		return -1;
	}
	json_decref(q);
	m = qmpc_reply(c, on_event, opaque);
	if (!m || !json_object_get(m, "return")) {
		qmpc_report(m, true);
		json_decref(m);
		return -1;
	}
	json_decref(m);
	return 0;
}
