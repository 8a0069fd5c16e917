/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qmp unit tests: a server on a socketpair (or a temp UNIX socket) driven by
 * a test-side client; the main loop is pumped by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"

struct env {
	struct loop *loop;
	struct runstate *rs;
	struct qmp *qmp;
	int vcpus_running; /* what the change-state handler did */
};

struct peer {
	struct env *env;
	int fd;
	char buf[1 << 16];
	size_t len;
};

static int vcpu_handler(void *opaque, bool running, enum run_state state)
{
	struct env *e = opaque;

	e->vcpus_running = running;
	return 0;
}

static void pump(struct env *e)
{
	for (int i = 0; i < 4; i++)
		loop_run_once(e->loop, 0);
	runstate_main_loop_should_exit(e->rs);
}

/* Next message from the server (NULL on EOF or after 2 s). */
static json_t *recv_msg(struct peer *p)
{
	uint64_t t0 = clock_ns();

	for (;;) {
		char *nl = memchr(p->buf, '\n', p->len);
		ssize_t n;

		if (nl) {
			json_error_t e;
			json_t *v = json_loadb(p->buf, (size_t)(nl - p->buf), 0, &e);

			if (!v)
				fail_msg("bad JSON from server: %s", e.text);
			memmove(p->buf, nl + 1, p->len - (size_t)(nl + 1 - p->buf));
			p->len -= (size_t)(nl + 1 - p->buf);
			return v;
		}
		loop_run_once(p->env->loop, 10);
		n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, MSG_DONTWAIT);
		if (n == 0)
			return NULL;
		if (n > 0)
			p->len += (size_t)n;
		if (clock_ns() - t0 > 2000000000ull)
			return NULL;
	}
}

/* True when the server closed the connection (EOF) within 2 s. */
static bool peer_closed(struct peer *p)
{
	uint64_t t0 = clock_ns();

	while (clock_ns() - t0 < 2000000000ull) {
		char tmp[4096];
		ssize_t n;

		loop_run_once(p->env->loop, 10);
		n = recv(p->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

static void send_str(struct peer *p, const char *s)
{
	assert_int_equal(write_full(p->fd, s, strlen(s)), 0);
}

static json_t *cmd(struct peer *p, const char *s)
{
	send_str(p, s);
	return recv_msg(p);
}

static void expect_error(json_t *m, const char *cls, const char *desc_part)
{
	const char *c = NULL, *d = NULL;

	assert_non_null(m);
	if (json_unpack(m, "{s:{s:s,s:s}}", "error", "class", &c, "desc", &d))
		fail_msg("not an error: %s", json_dumps(m, 0));
	assert_string_equal(c, cls);
	if (!strstr(d, desc_part))
		fail_msg("desc '%s' lacks '%s'", d, desc_part);
	json_decref(m);
}

static void expect_return(json_t *m)
{
	assert_non_null(m);
	if (!json_object_get(m, "return"))
		fail_msg("not a return: %s", json_dumps(m, 0));
	json_decref(m);
}

static void expect_event(json_t *m, const char *name)
{
	json_t *ts;

	assert_non_null(m);
	if (!json_is_string(json_object_get(m, "event")) ||
	    strcmp(json_string_value(json_object_get(m, "event")), name))
		fail_msg("expected event %s, got %s", name, json_dumps(m, 0));
	ts = json_object_get(m, "timestamp");
	assert_true(json_is_integer(json_object_get(ts, "seconds")));
	assert_true(json_is_integer(json_object_get(ts, "microseconds")));
	assert_true(json_is_object(json_object_get(m, "data")));
	json_decref(m);
}

static void peer_open(struct env *e, struct peer *p, bool negotiate)
{
	int sv[2];
	json_t *g;

	memset(p, 0, sizeof(*p));
	p->env = e;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	p->fd = sv[1];
	assert_int_equal(qmp_add_client(e->qmp, sv[0]), 0);
	g = recv_msg(p);
	assert_non_null(g);
	assert_true(json_is_array(json_object_get(json_object_get(g, "QMP"), "capabilities")));
	json_decref(g);
	if (negotiate)
		expect_return(cmd(p, "{\"execute\": \"qmp_capabilities\"}\n"));
}

static int setup(void **st)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_int_equal(loop_new(&e->loop), 0);
	assert_int_equal(runstate_new(e->loop, RUN_STATE_PRELAUNCH, &e->rs), 0);
	assert_int_equal(runstate_add_handler(e->rs, 0, vcpu_handler, e, NULL), 0);
	assert_int_equal(runstate_vm_start(e->rs), 0);
	assert_int_equal(qmp_new(e->loop, &e->qmp), 0);
	assert_int_equal(qmp_attach_runstate(e->qmp, e->rs), 0);
	*st = e;
	return 0;
}

static int teardown(void **st)
{
	struct env *e = *st;

	qmp_free(e->qmp);
	runstate_free(e->rs);
	loop_free(e->loop);
	free(e);
	return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void test_greeting(void **st)
{
	struct env *e = *st;
	struct peer p;
	json_int_t maj = -1, min = -1, mic = -1;
	const char *pkg = NULL;
	json_t *g, *caps;
	int sv[2];

	memset(&p, 0, sizeof(p));
	p.env = e;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.fd = sv[1];
	assert_int_equal(qmp_add_client(e->qmp, sv[0]), 0);
	g = recv_msg(&p);
	assert_int_equal(json_unpack(g, "{s:{s:{s:{s:I,s:I,s:I},s:s},s:o}}", "QMP", "version",
				     "qemu", "micro", &mic, "minor", &min, "major", &maj, "package",
				     &pkg, "capabilities", &caps),
			 0);
	assert_true(maj >= 0 && min >= 0 && mic >= 0);
	assert_true(!strncmp(pkg, "colovm ", 7));
	assert_int_equal(json_array_size(caps), 0);
	json_decref(g);
	close(p.fd);
}

static void test_negotiation(void **st)
{
	struct env *e = *st;
	struct peer p;

	peer_open(e, &p, false);
	expect_error(cmd(&p, "{\"execute\": \"query-status\"}\n"), "CommandNotFound",
		     "Expecting capabilities negotiation with 'qmp_capabilities'");
	expect_error(cmd(&p, "{\"execute\": \"no-such\"}\n"), "CommandNotFound",
		     "The command no-such has not been found");
	expect_error(cmd(&p, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
			     "{\"enable\": \"oob\"}}\n"),
		     "GenericError", "'enable'");
	expect_error(cmd(&p, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
			     "{\"enable\": [\"oob\"]}}\n"),
		     "GenericError", "Capability 'oob' not available");
	expect_return(cmd(&p, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
			      "{\"enable\": []}}\n"));
	expect_error(cmd(&p, "{\"execute\": \"qmp_capabilities\"}\n"), "CommandNotFound",
		     "already complete");
	expect_return(cmd(&p, "{\"execute\": \"query-status\"}\n"));
	close(p.fd);
}

static void check_status(struct peer *p, const char *want, bool running)
{
	json_t *m = cmd(p, "{\"execute\": \"query-status\", \"id\": \"s\"}\n");
	const char *status = NULL, *id = NULL;
	int r = -1, ss = -1;

	assert_int_equal(json_unpack(m, "{s:{s:s,s:b,s:b},s:s}", "return", "status", &status,
				     "running", &r, "singlestep", &ss, "id", &id),
			 0);
	assert_string_equal(status, want);
	assert_int_equal(r, running);
	assert_int_equal(ss, 0);
	assert_string_equal(id, "s");
	json_decref(m);
}

static void test_commands(void **st)
{
	struct env *e = *st;
	json_t *m, *list;
	struct peer p;
	bool found[5] = {false};
	static const char *const want[] = {"query-status", "stop", "cont", "quit", "query-version"};
	json_t *item;
	size_t i;

	peer_open(e, &p, true);
	check_status(&p, "running", true);

	send_str(&p, "{\"execute\": \"stop\", \"id\": 1}\n");
	expect_event(recv_msg(&p), "STOP");
	m = recv_msg(&p);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	expect_return(m);
	assert_int_equal(e->vcpus_running, 0);
	check_status(&p, "paused", false);
	/* stop when stopped: fine, no event */
	expect_return(cmd(&p, "{\"execute\": \"stop\"}\n"));

	send_str(&p, "{\"execute\": \"cont\"}\n");
	expect_event(recv_msg(&p), "RESUME");
	expect_return(recv_msg(&p));
	assert_int_equal(e->vcpus_running, 1);
	check_status(&p, "running", true);

	expect_return(cmd(&p, "{\"execute\": \"system_reset\"}\n"));
	pump(e);
	m = recv_msg(&p);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(m, "data"), "reason")),
	    "host-qmp-system-reset");
	expect_event(m, "RESET");

	expect_return(cmd(&p, "{\"execute\": \"system_powerdown\"}\n"));
	pump(e);
	expect_event(recv_msg(&p), "POWERDOWN");

	expect_error(cmd(&p, "{\"execute\": \"system_wakeup\"}\n"), "GenericError",
		     "not in suspended state");

	m = cmd(&p, "{\"execute\": \"query-version\"}\n");
	assert_true(json_is_integer(
	    json_object_get(json_object_get(json_object_get(m, "return"), "qemu"), "major")));
	json_decref(m);

	m = cmd(&p, "{\"execute\": \"query-commands\"}\n");
	list = json_object_get(m, "return");
	json_array_foreach(list, i, item)
	{
		for (size_t k = 0; k < ARRAY_SIZE(want); k++)
			if (!strcmp(json_string_value(json_object_get(item, "name")), want[k]))
				found[k] = true;
	}
	for (size_t k = 0; k < ARRAY_SIZE(want); k++)
		assert_true(found[k]);
	json_decref(m);

	/* quit: reply, then the main loop applies it with a SHUTDOWN event. */
	expect_return(cmd(&p, "{\"execute\": \"quit\"}\n"));
	assert_true(runstate_main_loop_should_exit(e->rs));
	m = recv_msg(&p);
	assert_false(json_is_true(json_object_get(json_object_get(m, "data"), "guest")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(m, "data"), "reason")),
	    "host-qmp-quit");
	expect_event(m, "SHUTDOWN");
	close(p.fd);
}

static int cmd_typed(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	const char *name = json_string_value(json_object_get(args, "name"));

	if (!strcmp(name, "fail"))
		return qmp_error_set(err, QMP_ERROR_DEVICE_NOT_FOUND, "Device '%s' not found",
				     name);
	if (!strcmp(name, "errno"))
		return -EPERM;
	*ret = json_pack("{s:s}", "hello", name);
	return 0;
}

static const struct qmp_arg typed_args[] = {
    {"name", QMP_ARG_STRING, false},
    {"count", QMP_ARG_INT, true},
    {"on", QMP_ARG_BOOL, true},
    {NULL, QMP_ARG_ANY, false},
};

static void test_errors(void **st)
{
	struct env *e = *st;
	const char *s = NULL;
	struct peer p;
	json_t *m;

	assert_int_equal(qmp_register(e->qmp, "x-typed", typed_args, cmd_typed, NULL), 0);
	assert_int_equal(qmp_register(e->qmp, "x-typed", typed_args, cmd_typed, NULL), -EEXIST);
	peer_open(e, &p, true);

	expect_error(cmd(&p, "{\"execute\": }\n"), "GenericError", "JSON parse error");
	/* the rest of the bad line is dropped; the next line works */
	expect_error(cmd(&p, "[1, 2}} {\"execute\": \"stop\"}\n"), "GenericError",
		     "JSON parse error");
	check_status(&p, "running", true);
	expect_error(cmd(&p, "[1]\n"), "GenericError", "must be a JSON object");
	expect_error(cmd(&p, "{\"id\": 5}\n"), "GenericError", "lacks member 'execute'");
	expect_error(cmd(&p, "{\"execute\": 5}\n"), "GenericError", "'execute' must be a string");
	expect_error(cmd(&p, "{\"execute\": \"stop\", \"arguments\": []}\n"), "GenericError",
		     "'arguments' must be an object");
	expect_error(cmd(&p, "{\"execute\": \"stop\", \"bogus\": 1}\n"), "GenericError",
		     "'bogus' is unexpected");
	m = cmd(&p, "{\"execute\": \"nope\", \"id\": [\"x\"]}\n");
	assert_true(json_is_array(json_object_get(m, "id")));
	expect_error(m, "CommandNotFound", "The command nope has not been found");
	expect_error(cmd(&p, "{\"execute\": \"stop\", \"arguments\": {\"x\": 1}}\n"),
		     "GenericError", "Parameter 'x' is unexpected");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": 3}}\n"),
		     "GenericError", "Invalid parameter type for 'name', expected: string");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": \"a\", "
			     "\"count\": \"7\"}}\n"),
		     "GenericError", "Invalid parameter type for 'count', expected: int");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": \"a\", "
			     "\"on\": 1}}\n"),
		     "GenericError", "'on', expected: boolean");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"count\": 1}}\n"),
		     "GenericError", "Parameter 'name' is missing");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": \"fail\"}}\n"),
		     "DeviceNotFound", "Device 'fail' not found");
	expect_error(cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": \"errno\"}}\n"),
		     "GenericError", "Operation not permitted");
	m = cmd(&p, "{\"execute\": \"x-typed\", \"arguments\": {\"name\": \"b\", \"count\": 2}, "
		    "\"id\": 9}\n");
	assert_int_equal(json_unpack(m, "{s:{s:s}}", "return", "hello", &s), 0);
	assert_string_equal(s, "b");
	json_decref(m);

	/* a request split over writes, then two in one write, no newlines */
	send_str(&p, "{\"exec");
	pump(e);
	send_str(&p, "ute\": \"query-status\"}");
	expect_return(recv_msg(&p));
	send_str(&p, "{\"execute\":\"query-version\"}{\"execute\":\"query-status\"}");
	expect_return(recv_msg(&p));
	expect_return(recv_msg(&p));
	assert_int_equal(qmp_unregister(e->qmp, "x-typed"), 0);
	close(p.fd);
}

static void test_oversized_input(void **st)
{
	struct env *e = *st;
	size_t n = QMP_MAX_INPUT + 8192;
	char *big = malloc(n + 1);
	struct peer p, q;

	peer_open(e, &p, true);
	peer_open(e, &q, true);
	/* An unterminated string: never a complete value. */
	memcpy(big, "{\"execute\": \"", 13);
	memset(big + 13, 'a', n - 13);
	big[n] = 0;
	/* The socket takes it in pieces while the server reads. */
	fcntl(p.fd, F_SETFL, O_NONBLOCK);
	for (size_t off = 0; off < n;) {
		ssize_t w = write(p.fd, big + off, n - off);

		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno == EPIPE)
			break;
		loop_run_once(e->loop, 10);
	}
	expect_error(recv_msg(&p), "GenericError", "exceeds");
	assert_true(peer_closed(&p));
	free(big);
	/* the other client is unaffected */
	check_status(&q, "running", true);
	close(p.fd);
	close(q.fd);
}

static void test_disconnect_mid_command(void **st)
{
	struct env *e = *st;
	struct peer p, q;

	peer_open(e, &q, true);
	peer_open(e, &p, true);
	assert_int_equal(qmp_client_count(e->qmp), 2);
	send_str(&p, "{\"execute\": \"sto");
	pump(e);
	close(p.fd);
	pump(e);
	assert_int_equal(qmp_client_count(e->qmp), 1);
	/* a complete command whose sender left before reading the reply */
	peer_open(e, &p, true);
	send_str(&p, "{\"execute\": \"stop\"}");
	close(p.fd);
	pump(e);
	pump(e);
	assert_int_equal(qmp_client_count(e->qmp), 1);
	expect_event(recv_msg(&q), "STOP");
	check_status(&q, "paused", false);
	send_str(&q, "{\"execute\": \"cont\"}\n");
	expect_event(recv_msg(&q), "RESUME");
	expect_return(recv_msg(&q));
	close(q.fd);
}

static void test_two_clients_events(void **st)
{
	struct env *e = *st;
	struct peer a, b, c;
	char tmp[256];

	peer_open(e, &a, true);
	peer_open(e, &b, true);
	peer_open(e, &c, false); /* not negotiated: no events */
	send_str(&a, "{\"execute\": \"stop\"}\n");
	expect_event(recv_msg(&a), "STOP");
	expect_return(recv_msg(&a));
	expect_event(recv_msg(&b), "STOP");
	send_str(&b, "{\"execute\": \"cont\"}\n");
	expect_event(recv_msg(&b), "RESUME");
	expect_return(recv_msg(&b));
	expect_event(recv_msg(&a), "RESUME");
	/* interleaved requests from both */
	send_str(&a, "{\"execute\": \"query-status\", \"id\": \"a\"}\n");
	send_str(&b, "{\"execute\": \"query-status\", \"id\": \"b\"}\n");
	expect_return(recv_msg(&b));
	expect_return(recv_msg(&a));
	pump(e);
	assert_true(recv(c.fd, tmp, sizeof(tmp), MSG_DONTWAIT) < 0);
	close(a.fd);
	close(b.fd);
	close(c.fd);
}

static void test_slow_client_dropped(void **st)
{
	struct env *e = *st;
	struct peer slow, ok;
	char *pad = malloc(16384);

	peer_open(e, &slow, true);
	peer_open(e, &ok, true);
	memset(pad, 'x', 16383);
	pad[16383] = 0;
	/* slow never reads; ok reads everything */
	for (int i = 0; i < 200; i++) {
		qmp_event(e->qmp, "X_TEST", json_pack("{s:s}", "pad", pad));
		expect_event(recv_msg(&ok), "X_TEST");
	}
	assert_int_equal(qmp_client_count(e->qmp), 1);
	check_status(&ok, "running", true);
	free(pad);
	close(slow.fd);
	close(ok.fd);
}

static void test_listen_socket(void **st)
{
	struct env *e = *st;
	char dir[] = "/tmp/qmp-test.XXXXXX", path[128], spec[160];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat sb;
	struct peer p;
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qmp.sock", dir);
	/* a stale file is replaced */
	fd = open(path, O_CREAT | O_WRONLY, 0644);
	close(fd);
	snprintf(spec, sizeof(spec), "unix:%s,server,wait=off", path);
	assert_int_equal(qmp_listen(e->qmp, "tcp:1.2.3.4:5"), -EINVAL);
	assert_int_equal(qmp_listen(e->qmp, "unix:/x,server=off"), -EINVAL);
	assert_int_equal(qmp_listen(e->qmp, spec), 0);
	assert_int_equal(qmp_listen(e->qmp, spec), -EBUSY);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0600);

	memset(&p, 0, sizeof(p));
	p.env = e;
	p.fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	json_decref(recv_msg(&p));
	expect_return(cmd(&p, "{\"execute\": \"qmp_capabilities\"}\n"));
	check_status(&p, "running", true);
	close(p.fd);

	qmp_free(e->qmp);
	e->qmp = NULL;
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(qmp_new(e->loop, &e->qmp), 0);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_greeting, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_negotiation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oversized_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_disconnect_mid_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_clients_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_slow_client_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_socket, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("V") ? LOG_DEBUG : LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
