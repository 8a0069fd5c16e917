// SPDX-License-Identifier: GPL-2.0-only
/*
 * One TCP listener, two peers at once (transport.h): while the server takes
 * peer A's bulk streams on the listening socket, peer B's control
 * connection arrives there with its Hello. B is kept for the listener's
 * next transport_accept (the listener's fd polls readable for it), not
 * closed: both channels come up and carry messages. Real channels over
 * 127.0.0.1; the order of the connections in the kernel's accept queue is
 * arranged by watching its length in /proc/net/tcp.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"
#include "transport/transport.h"

#define TMO 5000 /* ms: B waits for its HelloReply while A is served */

static struct transport_key key;

struct client {
	const char *uri, *name;
	unsigned int streams;
	struct transport_channel *ch;
	int ret;
	pthread_t thread;
};

static void *client_run(void *arg)
{
	struct client *c = arg;
	struct transport_opts o = {
	    .key = &key, .timeout_ms = TMO, .bulk_streams = c->streams, .name = c->name};

	c->ret = transport_connect(c->uri, &o, &c->ch);
	return NULL;
}

static void client_start(struct client *c, const char *uri, const char *name, unsigned int streams)
{
	memset(c, 0, sizeof(*c));
	c->uri = uri;
	c->name = name;
	c->streams = streams;
	assert_int_equal(pthread_create(&c->thread, NULL, client_run, c), 0);
}

/* Connections waiting in the accept queue of the listener on 127.0.0.1:port
 * (a LISTEN socket's rx_queue in /proc/net/tcp); -1: no such socket. */
static int accept_queue_len(unsigned int port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[256];
	int len = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned int lport, st, txq, rxq;

		if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %x:%x", &lport, &st, &txq, &rxq) == 4 &&
		    lport == port && st == 0x0a)
			len = (int)rxq;
	}
	fclose(f);
	return len;
}

static void wait_accept_queue(unsigned int port, int len)
{
	uint64_t end = clock_ns() + TMO * 1000000ull;

	while (accept_queue_len(port) < len && clock_ns() < end)
		usleep(1000);
	assert_int_equal(accept_queue_len(port), len);
}

static bool listener_readable(struct transport_listener *l)
{
	struct pollfd p = {.fd = transport_listener_fd(l), .events = POLLIN};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void send_ack(struct transport_channel *ch, uint64_t id)
{
	Colovm__Transport__CheckpointAck a = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	a.id = id;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
	m.checkpoint_ack = &a;
	assert_int_equal(transport_send(ch, &m), 0);
}

static void recv_ack(struct transport_channel *ch, uint64_t id)
{
	transport_msg *m = NULL;

	assert_int_equal(transport_recv(ch, TMO, &m), 0);
	assert_int_equal(m->body_case, COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK);
	assert_int_equal(m->checkpoint_ack->id, id);
	transport_msg_free(m);
}

/* One message each way between the two ends of a channel. */
static void exchange(struct transport_channel *server, struct transport_channel *client,
		     uint64_t id)
{
	send_ack(server, id);
	recv_ack(client, id);
	send_ack(client, id + 1);
	recv_ack(server, id + 1);
}

/*
 * Listen; A (4 bulk streams) connects and waits for its HelloReply; then B
 * connects and sends its Hello: the accept queue holds A, B. The server
 * accepts A (the queue's head) and, in A's handshake, takes A's streams
 * from the same queue, behind B.
 */
static struct transport_listener *two_peers(struct client *a, struct client *b)
{
	struct transport_opts o = {.key = &key, .timeout_ms = TMO, .name = "server"};
	struct transport_listener *l = NULL;
	struct transport_channel *sa = NULL;
	const char *uri;
	unsigned int port;

	assert_int_equal(transport_listen("tcp:127.0.0.1:0", &o, &l), 0);
	uri = transport_listener_uri(l);
	port = (unsigned int)atoi(strrchr(uri, ':') + 1);
	assert_int_equal(accept_queue_len(port), 0);
	client_start(a, uri, "peer-a", 4);
	wait_accept_queue(port, 1);
	client_start(b, uri, "peer-b", 1);
	wait_accept_queue(port, 2);

	assert_int_equal(transport_accept(l, &sa), 0);
	assert_string_equal(transport_peer_name(sa), "peer-a");
	pthread_join(a->thread, NULL);
	assert_int_equal(a->ret, 0);
	exchange(sa, a->ch, 10);
	transport_close(sa);
	return l;
}

static void test_peer_kept_across_streams(void **state)
{
	struct client a, b;
	struct transport_listener *l = two_peers(&a, &b);
	struct transport_channel *sb = NULL;

	/* B came while A's streams were accepted: the listener says so */
	assert_true(listener_readable(l));
	assert_int_equal(transport_accept(l, &sb), 0);
	assert_string_equal(transport_peer_name(sb), "peer-b");
	pthread_join(b.thread, NULL);
	assert_int_equal(b.ret, 0);
	exchange(sb, b.ch, 20);
	/* and nobody else waits */
	assert_false(listener_readable(l));
	transport_close(sb);
	transport_close(b.ch);
	transport_close(a.ch);
	transport_listener_close(l);
}

/* A listener closed with B still kept: B's connection is closed with it
 * (B hears at once, not at its timeout). */
static void test_close_drops_kept_peer(void **state)
{
	struct client a, b;
	struct transport_listener *l = two_peers(&a, &b);
	uint64_t t0 = clock_ns();

	transport_listener_close(l);
	pthread_join(b.thread, NULL);
	assert_int_not_equal(b.ret, 0);
	assert_true(clock_ns() - t0 < TMO * 1000000ull / 2);
	transport_close(a.ch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_peer_kept_across_streams),
	    cmocka_unit_test(test_close_drops_kept_peer),
	};

	memset(key.bytes, 0x3c, sizeof(key.bytes));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
