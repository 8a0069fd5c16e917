// SPDX-License-Identifier: GPL-2.0-only
/*
 * The witness (transport.h): a real `transport_witness` served by a thread on
 * 127.0.0.1, real claims over the transport. One grant per pairing, to the
 * first side that claims it; the other side refused; grants kept across a
 * restart through the state file; no verdict from a wrong key, a dead
 * address, a peer that answers garbage or nothing. A probe answered with
 * the counts, recording nothing.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"
#include "transport/transport.h"

static struct transport_key key, other_key;

struct served {
	struct transport_witness *w;
	pthread_t thread;
	_Atomic bool quit;
	char uri[64];
};

static void *serve(void *arg)
{
	struct served *s = arg;

	while (!atomic_load(&s->quit)) {
		struct pollfd pfd = {.fd = transport_witness_fd(s->w), .events = POLLIN};

		if (poll(&pfd, 1, 50) > 0)
			transport_witness_serve_one(s->w);
	}
	return NULL;
}

static void start_at(struct served *s, const char *uri, const char *state)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(transport_witness_new(uri, &key, state, &s->w), 0);
	snprintf(s->uri, sizeof(s->uri), "%s", transport_witness_uri(s->w));
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void start(struct served *s, const char *state)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(transport_witness_new("tcp:127.0.0.1:0", &key, state, &s->w), 0);
	snprintf(s->uri, sizeof(s->uri), "%s", transport_witness_uri(s->w));
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void stop(struct served *s)
{
	atomic_store(&s->quit, true);
	pthread_join(s->thread, NULL);
	transport_witness_free(s->w);
}

static int claim(const char *uri, const struct transport_key *k, uint8_t tag,
		 enum transport_side side, char *msg, size_t len)
{
	uint8_t pair[TRANSPORT_PAIR_LEN];

	memset(pair, tag, sizeof(pair));
	return transport_witness_claim(uri, k, pair, side, 7, "unit", msg, len);
}

static void test_first_claim_wins(void **state)
{
	struct served s;
	char msg[256];

	start(&s, NULL);
	/* pairing 1: the primary first */
	assert_int_equal(claim(s.uri, &key, 1, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 1);
	assert_int_equal(claim(s.uri, &key, 1, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "the primary holds this pair's grant"));
	/* asking again changes nothing, either way */
	assert_int_equal(claim(s.uri, &key, 1, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 1);
	assert_int_equal(claim(s.uri, &key, 1, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 0);
	/* pairing 2 is another epoch: the secondary first */
	assert_int_equal(claim(s.uri, &key, 2, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 1);
	assert_int_equal(claim(s.uri, &key, 2, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "the secondary holds"));
	stop(&s);
}

static void test_wrong_key_no_verdict(void **state)
{
	struct served s;
	char msg[256];

	start(&s, NULL);
	assert_int_equal(claim(s.uri, &other_key, 3, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)),
			 -EACCES);
	assert_non_null(strstr(msg, "another key"));
	/* and the forged claim took nothing: the right side still gets it */
	assert_int_equal(claim(s.uri, &key, 3, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 1);
	stop(&s);
}

static void test_state_file_survives_restart(void **state)
{
	char path[] = "/tmp/colovm-witness-XXXXXX", msg[256];
	struct served s;
	FILE *f;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	start(&s, path);
	assert_int_equal(claim(s.uri, &key, 4, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 1);
	stop(&s);
	/* a restarted witness remembers: the primary is still refused */
	start(&s, path);
	assert_int_equal(claim(s.uri, &key, 4, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 0);
	assert_int_equal(claim(s.uri, &key, 4, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 1);
	stop(&s);
	/* a damaged state file is refused, not half-read */
	f = fopen(path, "a");
	assert_non_null(f);
	fputs("not a grant\n", f);
	fclose(f);
	struct transport_witness *w = NULL;
	assert_int_equal(transport_witness_new("tcp:127.0.0.1:0", &key, path, &w), -EBADMSG);
	assert_null(w);
	unlink(path);
}

/* A TCP listener on 127.0.0.1 that answers every connection with `reply`
 * (NULL: says nothing, for a few seconds). */
struct fake {
	int fd;
	const char *reply;
	pthread_t thread;
	char uri[64];
};

static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	int c = accept(f->fd, NULL, NULL);

	if (c >= 0) {
		if (f->reply && write(c, f->reply, strlen(f->reply)) < 0)
			perror("write");
		if (!f->reply)
			sleep(5);
		else
			usleep(200000);
		close(c);
	}
	return NULL;
}

static void fake_start(struct fake *f, const char *reply)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t al = sizeof(a);

	f->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->fd >= 0);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->fd, 4), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
	snprintf(f->uri, sizeof(f->uri), "tcp:127.0.0.1:%u", ntohs(a.sin_port));
	f->reply = reply;
	assert_int_equal(pthread_create(&f->thread, NULL, fake_serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->fd, SHUT_RDWR);
	pthread_join(f->thread, NULL);
	close(f->fd);
}

static void test_no_witness_no_verdict(void **state)
{
	struct fake f;
	char msg[256], uri[64];
	uint64_t t0;
	int r;

	/* nobody listens */
	fake_start(&f, "x");
	snprintf(uri, sizeof(uri), "%s", f.uri);
	fake_stop(&f);
	r = claim(uri, &key, 5, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg));
	assert_true(r < 0);
	assert_non_null(strstr(msg, "cannot reach the witness"));

	/* garbage instead of a handshake */
	fake_start(&f, "HTTP/1.0 200 OK\r\n\r\ngranted granted granted granted\n");
	r = claim(f.uri, &key, 5, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg));
	assert_true(r < 0);
	fake_stop(&f);

	/* a peer that says nothing: no verdict, in bounded time */
	fake_start(&f, NULL);
	t0 = clock_ns();
	r = claim(f.uri, &key, 5, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg));
	assert_true(r < 0);
	assert_true(clock_ns() - t0 < 7000000000ull); /* two tries of 2 s at most */
	fake_stop(&f);
}

/* A probe: answered with the witness's counts under the right key, records
 * nothing (no grant, no claim counted); no answer under another key, from a
 * dead address or from a peer that says nothing. */
static void test_probe(void **state)
{
	struct transport_witness_stats st, here;
	struct served s;
	struct fake f;
	char msg[256], uri[64];
	uint64_t t0;

	start(&s, NULL);
	assert_int_equal(transport_witness_probe(s.uri, &key, "unit", &st, msg, sizeof(msg)), 0);
	assert_int_equal(st.pairs, 0);
	assert_int_equal(st.granted, 0);
	assert_non_null(strstr(msg, "answers: 0 pairings"));
	assert_int_equal(claim(s.uri, &key, 6, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 1);
	assert_int_equal(claim(s.uri, &key, 6, TRANSPORT_SIDE_SECONDARY, msg, sizeof(msg)), 0);
	assert_int_equal(transport_witness_probe(s.uri, &key, "unit", &st, msg, sizeof(msg)), 0);
	assert_int_equal(st.pairs, 1);
	assert_int_equal(st.granted, 1);
	assert_int_equal(st.refused, 1);
	assert_int_equal(transport_witness_probe(s.uri, &other_key, "unit", &st, msg, sizeof(msg)),
			 -EACCES);
	assert_non_null(strstr(msg, "another key"));
	/* the probes took no grant and counted as no claim */
	atomic_store(&s.quit, true);
	pthread_join(s.thread, NULL);
	transport_witness_stats(s.w, &here);
	assert_int_equal(here.pairs, 1);
	assert_int_equal(here.granted + here.refused, 2);
	assert_int_equal(here.probes, 2);
	assert_int_equal(here.bad, 1); /* the wrong key */
	transport_witness_free(s.w);

	/* nobody listens */
	fake_start(&f, "x");
	snprintf(uri, sizeof(uri), "%s", f.uri);
	fake_stop(&f);
	assert_true(transport_witness_probe(uri, &key, "unit", &st, msg, sizeof(msg)) < 0);
	assert_non_null(strstr(msg, "cannot reach the witness"));
	/* a peer that says nothing: no answer, in one bounded try */
	fake_start(&f, NULL);
	t0 = clock_ns();
	assert_true(transport_witness_probe(f.uri, &key, "unit", &st, msg, sizeof(msg)) < 0);
	assert_true(clock_ns() - t0 < 3500000000ull);
	fake_stop(&f);
}

/* Wait (5 s at most) for the session to be open (up) or not. */
static void session_wait_up(struct transport_witness_session *ws, bool up)
{
	uint64_t end = clock_ns() + 5000000000ull;

	while (transport_witness_session_up(ws) != up && clock_ns() < end)
		usleep(10000);
	assert_true(transport_witness_session_up(ws) == up);
}

static uint64_t sessions_held(const char *uri)
{
	struct transport_witness_stats st;
	char msg[256];

	assert_int_equal(transport_witness_probe(uri, &key, "unit", &st, msg, sizeof(msg)), 0);
	return st.sessions;
}

/* A side's standing session: held open by the witness, a claim answered on
 * it (granted, or refused to the other side as on a channel of its own),
 * opened again after a claim took it; after the witness restarts it opens
 * again, and a claim made while it is down still gets its verdict. */
static void test_session(void **state)
{
	struct transport_witness_session *ws = NULL, *other = NULL;
	uint8_t pair[TRANSPORT_PAIR_LEN];
	struct served s;
	char msg[256], uri[64];

	memset(pair, 9, sizeof(pair));
	start(&s, NULL);
	assert_int_equal(
	    transport_witness_session_new(s.uri, &key, TRANSPORT_SIDE_SECONDARY, "unit", &ws), 0);
	assert_int_equal(
	    transport_witness_session_new(s.uri, &key, TRANSPORT_SIDE_PRIMARY, "unit", &other), 0);
	session_wait_up(ws, true);
	session_wait_up(other, true);
	assert_int_equal(sessions_held(s.uri), 2);
	assert_int_equal(transport_witness_session_claim(ws, pair, TRANSPORT_SIDE_SECONDARY, 7,
							 "unit", msg, sizeof(msg)),
			 1);
	assert_non_null(strstr(msg, "granted it over the standing session"));
	assert_int_equal(transport_witness_session_claim(other, pair, TRANSPORT_SIDE_PRIMARY, 7,
							 "unit", msg, sizeof(msg)),
			 0);
	assert_non_null(strstr(msg, "the secondary holds this pair's grant"));
	/* both taken by their claims, both open again */
	session_wait_up(ws, true);
	session_wait_up(other, true);
	assert_int_equal(sessions_held(s.uri), 2);
	transport_witness_session_free(other);

	/* the witness restarts on the same address: the session breaks and
	 * opens again */
	snprintf(uri, sizeof(uri), "%s", s.uri);
	stop(&s);
	memset(pair, 10, sizeof(pair));
	/* down: a claim still asks, on channels of its own, and gets no verdict */
	assert_true(transport_witness_session_claim(ws, pair, TRANSPORT_SIDE_SECONDARY, 7, "unit",
						    msg, sizeof(msg)) < 0);
	assert_non_null(strstr(msg, "cannot reach the witness"));
	start_at(&s, uri, NULL);
	session_wait_up(ws, true);
	assert_int_equal(transport_witness_session_claim(ws, pair, TRANSPORT_SIDE_SECONDARY, 7,
							 "unit", msg, sizeof(msg)),
			 1);
	assert_non_null(strstr(msg, "over the standing session"));
	transport_witness_session_free(ws);
	stop(&s);
}

/* A held session whose peer sends garbage in place of a message, or
 * leaves: dropped, the witness serving on. */
static void test_session_bad_peer(void **state)
{
	struct transport_witness_session *ws = NULL;
	struct served s;
	char msg[256];

	start(&s, NULL);
	assert_int_equal(
	    transport_witness_session_new(s.uri, &other_key, TRANSPORT_SIDE_PRIMARY, "unit", &ws),
	    0);
	/* another key: never open */
	usleep(300000);
	assert_false(transport_witness_session_up(ws));
	transport_witness_session_free(ws);
	assert_int_equal(
	    transport_witness_session_new(s.uri, &key, TRANSPORT_SIDE_PRIMARY, "unit", &ws), 0);
	session_wait_up(ws, true);
	assert_int_equal(sessions_held(s.uri), 1);
	transport_witness_session_free(ws);
	/* its leaving seen: no session held, claims still answered */
	for (int i = 0; i < 100 && sessions_held(s.uri); i++)
		usleep(10000);
	assert_int_equal(sessions_held(s.uri), 0);
	assert_int_equal(claim(s.uri, &key, 11, TRANSPORT_SIDE_PRIMARY, msg, sizeof(msg)), 1);
	stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_claim_wins),
	    cmocka_unit_test(test_wrong_key_no_verdict),
	    cmocka_unit_test(test_state_file_survives_restart),
	    cmocka_unit_test(test_no_witness_no_verdict),
	    cmocka_unit_test(test_probe),
	    cmocka_unit_test(test_session),
	    cmocka_unit_test(test_session_bad_peer),
	};

	memset(key.bytes, 0x5a, sizeof(key.bytes));
	memset(other_key.bytes, 0xa5, sizeof(other_key.bytes));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
