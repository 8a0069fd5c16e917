/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qmp: sockets, clients, the JSON stream parser and the command dispatcher.
 * See qmp.h for the protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/qmp/qmp.h"
#include "common/qmp/qmp-internal.h"

#define READ_CHUNK 4096

struct qmp_cmd {
	struct qmp_cmd *next;
	char *name;
	const struct qmp_arg *args;
	qmp_cmd_fn fn; /* NULL: qmp_capabilities, handled by the dispatcher */
	void *opaque;
};

struct qmp_client {
	struct qmp_client *next;
	struct qmp *qmp;
	int fd;
	char *in;
	size_t in_len;
	char *out;
	size_t out_len, out_off, out_cap;
	bool negotiated;
	bool skip_line; /* drop input up to the next newline (after a parse error) */
	bool busy;	/* inside its own callback: defer freeing */
	bool dead;
	bool pollout;
};

static const char *const class_names[] = {
    [QMP_ERROR_GENERIC] = "GenericError",
    [QMP_ERROR_COMMAND_NOT_FOUND] = "CommandNotFound",
    [QMP_ERROR_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [QMP_ERROR_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [QMP_ERROR_KVM_MISSING_CAP] = "KVMMissingCap",
};

static const char *const type_names[] = {
    [QMP_ARG_STRING] = "string", [QMP_ARG_INT] = "int",	      [QMP_ARG_NUMBER] = "number",
    [QMP_ARG_BOOL] = "boolean",	 [QMP_ARG_OBJECT] = "object", [QMP_ARG_ARRAY] = "array",
    [QMP_ARG_ANY] = "any",
};

static const struct qmp_arg capabilities_args[] = {
    {"enable", QMP_ARG_ARRAY, true},
    {NULL, QMP_ARG_ANY, false},
};

const char *qmp_version(void)
{
	return COLOVM_QMP_VERSION;
}

int qmp_error_set(struct qmp_error *err, enum qmp_error_class cls, const char *fmt, ...)
{
	va_list ap;

	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

const char *qmp_error_class_name(enum qmp_error_class cls)
{
	if ((unsigned int)cls >= ARRAY_SIZE(class_names))
		return class_names[QMP_ERROR_GENERIC];
	return class_names[cls];
}

/* ---- clients: output ------------------------------------------------------ */

static void client_free(struct qmp_client *c)
{
	struct qmp *qmp = c->qmp;

	for (struct qmp_client **pp = &qmp->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	qmp->nclients--;
	loop_del_fd(qmp->loop, c->fd);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Drop a client now, or when its own callback returns. */
static void client_kill(struct qmp_client *c)
{
	if (c->busy)
		c->dead = true;
	else
		client_free(c);
}

/* Write what the socket takes; 0, or -errno when the client is gone. */
static int client_flush(struct qmp_client *c)
{
	bool want;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		c->out_off += (size_t)n;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	want = c->out_len > 0;
	if (want != c->pollout) {
		c->pollout = want;
		loop_mod_fd(c->qmp->loop, c->fd, EPOLLIN | (want ? EPOLLOUT : 0));
	}
	return 0;
}

/* Queue one message (and a newline); a client over its cap is dropped. */
static void client_send(struct qmp_client *c, json_t *msg)
{
	char *s;
	size_t n;

	if (c->dead)
		return;
	s = json_dumps(msg, JSON_ENCODE_ANY);
	if (!s)
		goto drop;
	n = strlen(s);
	if (c->out_len - c->out_off + n + 1 > QMP_MAX_OUTPUT) {
		log_warn("qmp: client fd %d does not read its output: dropped", c->fd);
		free(s);
		goto drop;
	}
	if (c->out_off && c->out_len + n + 1 > c->out_cap) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + n + 1 > c->out_cap) {
		size_t cap = MAX(c->out_cap * 2, c->out_len + n + 1);
		char *p = realloc(c->out, cap);

		if (!p) {
			free(s);
			goto drop;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
	free(s);
	if (!c->pollout && client_flush(c) < 0)
		goto drop;
	return;
drop:
	client_kill(c);
}

static void send_error(struct qmp_client *c, json_t *id, enum qmp_error_class cls, const char *desc)
{
	json_t *msg =
	    json_pack("{s:{s:s,s:s}}", "error", "class", qmp_error_class_name(cls), "desc", desc);

	if (msg && id)
		json_object_set(msg, "id", id);
	if (msg)
		client_send(c, msg);
	json_decref(msg);
}

static void send_return(struct qmp_client *c, json_t *id, json_t *ret)
{
	json_t *msg = json_object();

	if (msg) {
		json_object_set_new(msg, "return", ret ? ret : json_object());
		if (id)
			json_object_set(msg, "id", id);
		client_send(c, msg);
	} else {
		json_decref(ret);
	}
	json_decref(msg);
}

static json_t *version_json(void)
{
	unsigned int maj = 0, min = 0, mic = 0;
	char pkg[64];

	sscanf(COLOVM_QMP_VERSION, "%u.%u.%u", &maj, &min, &mic);
	snprintf(pkg, sizeof(pkg), "colovm %s", COLOVM_QMP_VERSION);
	return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", mic, "minor", min, "major", maj,
			 "package", pkg);
}

/* ---- the dispatcher ----------------------------------------------------- */

static struct qmp_cmd *cmd_find(struct qmp *qmp, const char *name)
{
	for (struct qmp_cmd *c = qmp->cmds; c; c = c->next)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static bool type_ok(enum qmp_arg_type t, json_t *v)
{
	switch (t) {
	case QMP_ARG_STRING:
		return json_is_string(v);
	case QMP_ARG_INT:
		return json_is_integer(v);
	case QMP_ARG_NUMBER:
		return json_is_number(v);
	case QMP_ARG_BOOL:
		return json_is_boolean(v);
	case QMP_ARG_OBJECT:
		return json_is_object(v);
	case QMP_ARG_ARRAY:
		return json_is_array(v);
	case QMP_ARG_ANY:
		return true;
	}
	return false;
}

static int check_args(const struct qmp_arg *spec, json_t *args, struct qmp_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(args, key, v)
	{
		const struct qmp_arg *a = spec;

		while (a && a->name && strcmp(a->name, key))
			a++;
		if (!a || !a->name)
			return qmp_error_set(err, QMP_ERROR_GENERIC, "Parameter '%s' is unexpected",
					     key);
		if (!type_ok(a->type, v))
			return qmp_error_set(err, QMP_ERROR_GENERIC,
					     "Invalid parameter type for '%s', expected: %s", key,
					     type_names[a->type]);
	}
	for (const struct qmp_arg *a = spec; a && a->name; a++)
		if (!a->optional && !json_object_get(args, a->name))
			return qmp_error_set(err, QMP_ERROR_GENERIC, "Parameter '%s' is missing",
					     a->name);
	return 0;
}

static int do_capabilities(struct qmp_client *c, json_t *args, struct qmp_error *err)
{
	json_t *en = json_object_get(args, "enable"), *v;
	size_t i;

	json_array_foreach(en, i, v)
	{
		if (!json_is_string(v))
			return qmp_error_set(err, QMP_ERROR_GENERIC,
					     "Invalid parameter type for 'enable[%zu]', expected: "
					     "string",
					     i);
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Capability '%s' not available",
				     json_string_value(v));
	}
	c->negotiated = true;
	return 0;
}

/* One request object: answer it (or not, if the client dies). */
static void dispatch(struct qmp_client *c, json_t *req)
{
	struct qmp_error err = {.cls = QMP_ERROR_GENERIC};
	json_t *id = NULL, *exec, *args, *ret = NULL, *owned = NULL, *v;
	struct qmp_cmd *cmd;
	const char *name, *key;
	int r;

	if (!json_is_object(req)) {
		qmp_error_set(&err, QMP_ERROR_GENERIC, "QMP input must be a JSON object");
		goto fail;
	}
	id = json_object_get(req, "id");
	json_object_foreach(req, key, v)
	{
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			qmp_error_set(&err, QMP_ERROR_GENERIC,
				      "QMP input member '%s' is unexpected", key);
			goto fail;
		}
	}
	exec = json_object_get(req, "execute");
	if (!exec) {
		qmp_error_set(&err, QMP_ERROR_GENERIC, "QMP input lacks member 'execute'");
		goto fail;
	}
	if (!json_is_string(exec)) {
		qmp_error_set(&err, QMP_ERROR_GENERIC,
			      "QMP input member 'execute' must be a string");
		goto fail;
	}
	name = json_string_value(exec);
	args = json_object_get(req, "arguments");
	if (args && !json_is_object(args)) {
		qmp_error_set(&err, QMP_ERROR_GENERIC,
			      "QMP input member 'arguments' must be an object");
		goto fail;
	}
	if (!args)
		args = owned = json_object();
	cmd = cmd_find(c->qmp, name);
	if (!c->negotiated && (!cmd || cmd->fn)) {
		if (cmd)
			qmp_error_set(&err, QMP_ERROR_COMMAND_NOT_FOUND,
				      "Expecting capabilities negotiation with 'qmp_capabilities'");
		else
			qmp_error_set(&err, QMP_ERROR_COMMAND_NOT_FOUND,
				      "The command %s has not been found", name);
		goto fail;
	}
	if (!cmd) {
		qmp_error_set(&err, QMP_ERROR_COMMAND_NOT_FOUND,
			      "The command %s has not been found", name);
		goto fail;
	}
	if (!cmd->fn && c->negotiated) {
		qmp_error_set(&err, QMP_ERROR_COMMAND_NOT_FOUND,
			      "Capabilities negotiation is already complete, command ignored");
		goto fail;
	}
	if (check_args(cmd->args, args, &err))
		goto fail;
	err.desc[0] = 0;
	r = cmd->fn ? cmd->fn(cmd->opaque, args, &ret, &err) : do_capabilities(c, args, &err);
	if (r < 0) {
		json_decref(ret);
		if (!err.desc[0])
			qmp_error_set(&err, QMP_ERROR_GENERIC, "%s", strerror(-r));
		goto fail;
	}
	send_return(c, id, ret);
	json_decref(owned);
	return;
fail:
	send_error(c, id, err.cls, err.desc);
	json_decref(owned);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Parse and dispatch every complete value in the client's input. */
static void client_process(struct qmp_client *c)
{
	size_t off = 0;

	while (!c->dead && off < c->in_len) {
		json_error_t e;
		json_t *v;

		if (c->skip_line) {
			char *nl = memchr(c->in + off, '\n', c->in_len - off);

			if (!nl) {
				off = c->in_len;
				break;
			}
			off = (size_t)(nl - c->in) + 1;
			c->skip_line = false;
			continue;
		}
		if (is_space(c->in[off])) {
			off++;
			continue;
		}
		v = json_loadb(c->in + off, c->in_len - off,
			       JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			       &e);
		if (!v) {
			char desc[sizeof(e.text) + 32];

			if (json_error_code(&e) == json_error_premature_end_of_input)
				break; /* wait for the rest */
			snprintf(desc, sizeof(desc), "JSON parse error, %s", e.text);
			send_error(c, NULL, QMP_ERROR_GENERIC, desc);
			c->skip_line = true;
			continue;
		}
		off += e.position ? (size_t)e.position : c->in_len - off;
		dispatch(c, v);
		json_decref(v);
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	if (!c->dead && c->in_len > QMP_MAX_INPUT) {
		char desc[96];

		snprintf(desc, sizeof(desc), "JSON parse error, input exceeds %d bytes",
			 QMP_MAX_INPUT);
		send_error(c, NULL, QMP_ERROR_GENERIC, desc);
		if (!c->dead)
			client_flush(c);
		c->dead = true;
	}
}

static void client_cb(void *opaque, uint32_t events)
{
	struct qmp_client *c = opaque;
	size_t budget = 16 * READ_CHUNK;

	c->busy = true;
	if (events & EPOLLOUT && client_flush(c) < 0)
		c->dead = true;
	while (!c->dead && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && budget) {
		ssize_t n;

		/* Room for one chunk; client_process() keeps in_len <= the limit. */
		if (!c->in) {
			c->in = malloc(QMP_MAX_INPUT + READ_CHUNK);
			if (!c->in) {
				c->dead = true;
				break;
			}
		}
		n = recv(c->fd, c->in + c->in_len, READ_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			c->dead = true; /* EOF (perhaps mid-request) or error */
			break;
		}
		c->in_len += (size_t)n;
		budget -= MIN(budget, (size_t)n);
		client_process(c);
	}
	c->busy = false;
	if (c->dead)
		client_free(c);
}

int qmp_add_client(struct qmp *qmp, int fd)
{
	struct qmp_client *c;
	json_t *greeting;
	int ret, fl;

	if (qmp->nclients >= QMP_MAX_CLIENTS) {
		log_warn("qmp: too many clients (%d): connection refused", QMP_MAX_CLIENTS);
		close(fd);
		return -EMFILE;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->qmp = qmp;
	c->fd = fd;
	ret = loop_add_fd(qmp->loop, fd, EPOLLIN, client_cb, c);
	if (ret) {
		close(fd);
		free(c);
		return ret;
	}
	c->next = qmp->clients;
	qmp->clients = c;
	qmp->nclients++;
	greeting = json_pack("{s:{s:o,s:[]}}", "QMP", "version", version_json(), "capabilities");
	if (greeting)
		client_send(c, greeting);
	json_decref(greeting);
	return 0;
}

size_t qmp_client_count(const struct qmp *qmp)
{
	return qmp->nclients;
}

/* ---- events ------------------------------------------------------------- */

void qmp_event_colo_exit(struct qmp *qmp, const char *mode, bool request, const char *message,
			 unsigned int silent_ms, bool fenced)
{
	json_t *d;

	if (!qmp)
		return;
	d = json_pack("{s:s,s:s,s:s}", "mode", mode, "reason", request ? "request" : "error",
		      "message", message);
	if (d && silent_ms)
		json_object_set_new(d, "silent-ms", json_integer(silent_ms));
	if (d && fenced)
		json_object_set_new(d, "fenced", json_true());
	qmp_event(qmp, "COLO_EXIT", d);
}

void qmp_event(struct qmp *qmp, const char *name, json_t *data)
{
	struct qmp_client *c, *next;
	struct timespec ts;
	json_t *msg;

	clock_gettime(CLOCK_REALTIME, &ts);
	msg = json_pack("{s:s,s:o,s:{s:I,s:I}}", "event", name, "data", data ? data : json_object(),
			"timestamp", "seconds", (json_int_t)ts.tv_sec, "microseconds",
			(json_int_t)(ts.tv_nsec / 1000));
	if (!msg)
		return;
	for (c = qmp->clients; c; c = next) {
		next = c->next;
		if (c->negotiated)
			client_send(c, msg);
	}
	json_decref(msg);
}

/* ---- registry ----------------------------------------------------------- */

int qmp_register(struct qmp *qmp, const char *name, const struct qmp_arg *args, qmp_cmd_fn fn,
		 void *opaque)
{
	struct qmp_cmd *cmd, **pp;

	if (!name || (!fn && strcmp(name, "qmp_capabilities")))
		return -EINVAL;
	if (cmd_find(qmp, name))
		return -EEXIST;
	cmd = calloc(1, sizeof(*cmd));
	if (!cmd)
		return -ENOMEM;
	cmd->name = strdup(name);
	if (!cmd->name) {
		free(cmd);
		return -ENOMEM;
	}
	cmd->args = args;
	cmd->fn = fn;
	cmd->opaque = opaque;
	for (pp = &qmp->cmds; *pp; pp = &(*pp)->next)
		;
	*pp = cmd;
	return 0;
}

int qmp_unregister(struct qmp *qmp, const char *name)
{
	for (struct qmp_cmd **pp = &qmp->cmds; *pp; pp = &(*pp)->next) {
		struct qmp_cmd *cmd = *pp;

		if (!strcmp(cmd->name, name)) {
			*pp = cmd->next;
			free(cmd->name);
			free(cmd);
			return 0;
		}
	}
	return -ENOENT;
}

static int cmd_query_version(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	*ret = version_json();
	return *ret ? 0 : -ENOMEM;
}

static int cmd_query_commands(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct qmp *qmp = opaque;
	json_t *list = json_array();

	if (!list)
		return -ENOMEM;
	for (struct qmp_cmd *c = qmp->cmds; c; c = c->next)
		json_array_append_new(list, json_pack("{s:s}", "name", c->name));
	*ret = list;
	return 0;
}

/* ---- the listening socket ----------------------------------------------- */

static void accept_cb(void *opaque, uint32_t events)
{
	struct qmp *qmp = opaque;

	for (;;) {
		int fd = accept4(qmp->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("qmp: accept: %s", strerror(errno));
			if (errno != EINTR)
				return;
			continue;
		}
		qmp_add_client(qmp, fd);
	}
}

/* "unix:PATH[,server][,server=on][,wait=off][,nowait]" -> PATH (malloc'd). */
static int parse_spec(const char *spec, char **path)
{
	char *s, *opt, *save = NULL;
	int ret = 0;

	if (strncmp(spec, "unix:", 5) || !spec[5] || spec[5] == ',')
		return -EINVAL;
	s = strdup(spec + 5);
	if (!s)
		return -ENOMEM;
	*path = s;
	opt = strchr(s, ',');
	if (!opt)
		return 0;
	*opt++ = 0;
	for (char *o = strtok_r(opt, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		if (!strcmp(o, "server") || !strcmp(o, "server=on") || !strcmp(o, "wait=off") ||
		    !strcmp(o, "nowait"))
			continue;
		log_err("qmp: unsupported option '%s' in '%s' (colovm only serves)", o, spec);
		ret = -EINVAL;
	}
	if (ret) {
		free(s);
		*path = NULL;
	}
	return ret;
}

int qmp_listen(struct qmp *qmp, const char *spec)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *path = NULL;
	int fd, ret;

	if (qmp->lfd >= 0)
		return -EBUSY;
	ret = parse_spec(spec, &path);
	if (ret)
		return ret;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		ret = -ENAMETOOLONG;
		goto err_path;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		goto err_path;
	}
	/* The socket inode's mode becomes the file's (Linux): 0600 from birth. */
	if (fchmod(fd, 0600) < 0) {
		ret = -errno;
		goto err_fd;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto err_fd;
	}
	if (chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	ret = loop_add_fd(qmp->loop, fd, EPOLLIN, accept_cb, qmp);
	if (ret)
		goto err_unlink;
	qmp->lfd = fd;
	qmp->path = path;
	return 0;
err_unlink:
	unlink(path);
err_fd:
	close(fd);
err_path:
	log_err("qmp: cannot listen on %s: %s", spec, strerror(-ret));
	free(path);
	return ret;
}

/* ---- life cycle ----------------------------------------------------------- */

int qmp_new(struct loop *loop, struct qmp **out)
{
	struct qmp *qmp = calloc(1, sizeof(*qmp));
	int ret;

	if (!qmp)
		return -ENOMEM;
	qmp->loop = loop;
	qmp->lfd = -1;
	ret = qmp_register(qmp, "qmp_capabilities", capabilities_args, NULL, NULL);
	if (!ret)
		ret = qmp_register(qmp, "query-version", NULL, cmd_query_version, qmp);
	if (!ret)
		ret = qmp_register(qmp, "query-commands", NULL, cmd_query_commands, qmp);
	if (ret) {
		qmp_free(qmp);
		return ret;
	}
	*out = qmp;
	return 0;
}

void qmp_free(struct qmp *qmp)
{
	if (!qmp)
		return;
	qmp_detach_runstate(qmp);
	while (qmp->clients) {
		struct qmp_client *c = qmp->clients;

		client_flush(c);
		client_free(c);
	}
	if (qmp->lfd >= 0) {
		loop_del_fd(qmp->loop, qmp->lfd);
		close(qmp->lfd);
		unlink(qmp->path);
	}
	free(qmp->path);
	while (qmp->cmds)
		qmp_unregister(qmp, qmp->cmds->name);
	free(qmp);
}

const char *qmp_colo_failover_name(enum colo_failover f)
{
	static const char *const names[COLO_FAILOVER__MAX] = {
	    [COLO_FAILOVER_HEARTBEAT] = "heartbeat",
	    [COLO_FAILOVER_DRILL] = "drill",
	    [COLO_FAILOVER_PEER_LOST] = "peer-lost",
	};

	return (unsigned int)f < COLO_FAILOVER__MAX ? names[f] : "unknown";
}

void qmp_colo_stats_breaks(json_t *o, const uint64_t failovers[COLO_FAILOVER__MAX], uint64_t fences,
			   const struct hist *pause)
{
	json_t *f = json_object();

	for (unsigned int i = 0; i < COLO_FAILOVER__MAX; i++)
		json_object_set_new(f, qmp_colo_failover_name((enum colo_failover)i),
				    json_integer((json_int_t)failovers[i]));
	json_object_set_new(o, "failovers", f);
	json_object_set_new(o, "fences", json_integer((json_int_t)fences));
	json_object_set_new(o, "pause-us", qmp_hist_json(pause));
}

json_t *qmp_hist_json(const struct hist *h)
{
	json_t *le = json_array(), *counts = json_array();

	for (unsigned int i = 0; i < h->n; i++)
		json_array_append_new(le, json_integer((json_int_t)h->le[i]));
	for (unsigned int i = 0; i <= h->n; i++)
		json_array_append_new(counts, json_integer((json_int_t)h->count[i]));
	return json_pack("{s:o,s:o,s:I,s:I}", "le", le, "counts", counts, "sum", (json_int_t)h->sum,
			 "count", (json_int_t)h->total);
}

void qmp_colo_status_pair(json_t *o, const uint8_t *pair, size_t len)
{
	char hex[2 * 32 + 1] = "";
	bool any = false;

	for (size_t i = 0; i < len && i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02x", pair[i]);
		any |= pair[i] != 0;
	}
	if (o && any)
		json_object_set_new(o, "pair", json_string(hex));
}

json_t *qmp_rtt_json(uint64_t samples, uint64_t last_ns, uint64_t min_ns, uint64_t avg_ns,
		     uint64_t max_ns)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I}", "last-us", (json_int_t)(last_ns / 1000), "min-us",
			 (json_int_t)(min_ns / 1000), "avg-us", (json_int_t)(avg_ns / 1000),
			 "max-us", (json_int_t)(max_ns / 1000), "samples", (json_int_t)samples);
}
