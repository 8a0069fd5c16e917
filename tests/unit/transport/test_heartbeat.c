// SPDX-License-Identifier: GPL-2.0-only
/*
 * Heartbeat round trip (transport.h): two real channels over TCP on
 * 127.0.0.1, both sides beating and reading; each side measures its own
 * round trip from the echoes in the peer's beats. A reader that holds the
 * beats unread for a while shows in the other side's round trip.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"
#include "transport/transport.h"

static struct transport_key key;

struct side {
	struct transport_channel *ch;
	const char *uri;
	uint64_t read_for_ms, pause_ms; /* read beats for this long, pausing after each */
	uint64_t beats;
};

/* Read (and drop) beats for s->read_for_ms. */
static void read_beats(struct side *s)
{
	uint64_t end = clock_ns() + s->read_for_ms * 1000000ull;

	while (clock_ns() < end) {
		transport_msg *m = NULL;

		if (transport_recv(s->ch, 20, &m))
			continue;
		if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT)
			s->beats++;
		transport_msg_free(m);
		if (s->pause_ms)
			usleep((useconds_t)(s->pause_ms * 1000));
	}
}

static void *client(void *arg)
{
	struct side *s = arg;
	struct transport_opts o = {.key = &key, .timeout_ms = 2000, .name = "hb-client"};

	if (transport_connect(s->uri, &o, &s->ch))
		return NULL;
	if (!transport_heartbeat_start(s->ch, 10, 100, NULL, NULL))
		read_beats(s);
	return NULL;
}

static void pair_run(uint64_t client_pause_ms, struct transport_rtt *srv, struct transport_rtt *cli)
{
	struct transport_opts o = {.key = &key, .timeout_ms = 2000, .name = "hb-server"};
	struct transport_listener *l = NULL;
	struct side c = {.read_for_ms = 800, .pause_ms = client_pause_ms};
	struct side s = {.read_for_ms = 800};
	pthread_t t;

	assert_int_equal(transport_listen("tcp:127.0.0.1:0", &o, &l), 0);
	c.uri = transport_listener_uri(l);
	assert_int_equal(pthread_create(&t, NULL, client, &c), 0);
	assert_int_equal(transport_accept(l, &s.ch), 0);
	assert_int_equal(transport_heartbeat_start(s.ch, 10, 100, NULL, NULL), 0);
	read_beats(&s);
	pthread_join(t, NULL);
	assert_non_null(c.ch);
	transport_heartbeat_rtt(s.ch, srv);
	transport_heartbeat_rtt(c.ch, cli);
	assert_true(s.beats > 10 && c.beats > 10);
	transport_close(c.ch);
	transport_close(s.ch);
	transport_listener_close(l);
}

static void check_sane(const struct transport_rtt *r, uint64_t max_ns)
{
	assert_true(r->samples > 10);
	assert_true(r->last_ns > 0);
	assert_true(r->min_ns > 0);
	assert_true(r->min_ns <= r->avg_ns && r->avg_ns <= r->max_ns);
	assert_true(r->last_ns >= r->min_ns && r->last_ns <= r->max_ns);
	assert_true(r->max_ns < max_ns);
}

/* Both sides read at once: a loopback round trip, well under a beat. */
static void test_rtt_both_ways(void **state)
{
	struct transport_rtt srv, cli;

	pair_run(0, &srv, &cli);
	check_sane(&srv, 200000000ull);
	check_sane(&cli, 200000000ull);
	printf("    rtt server: last %llu avg %llu max %llu us (%llu samples); client avg %llu "
	       "us\n",
	       (unsigned long long)srv.last_ns / 1000, (unsigned long long)srv.avg_ns / 1000,
	       (unsigned long long)srv.max_ns / 1000, (unsigned long long)srv.samples,
	       (unsigned long long)cli.avg_ns / 1000);
}

/* The client reads a beat only every 30 ms (it sleeps after each): its
 * beats still echo how long it held the server's, so the server's round
 * trip includes the time its beats waited to be read, not the client's
 * own beat interval; the client's own view is not slowed by that. */
static void test_rtt_slow_reader(void **state)
{
	struct transport_rtt srv, cli;

	pair_run(30, &srv, &cli);
	check_sane(&srv, 2000000000ull);
	check_sane(&cli, 2000000000ull);
	/* the server's beats wait in the client's socket: on average well
	 * above a loopback round trip */
	assert_true(srv.avg_ns > 5000000ull);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rtt_both_ways),
	    cmocka_unit_test(test_rtt_slow_reader),
	};

	memset(key.bytes, 0x5a, sizeof(key.bytes));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
