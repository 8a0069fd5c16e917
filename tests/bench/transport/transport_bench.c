// SPDX-License-Identifier: GPL-2.0-only
/*
 * transport_bench serve URI KEYFILE [nomac]
 *     accept one peer after another, ack commits and pings
 * transport_bench run URI KEYFILE STREAMS MB [nomac]
 *     bulk GB/s + control RTT (median, p99)
 * transport_bench memcpy MB     memcpy GB/s of the same size
 *
 * TRANSPORT_BENCH_PINGS sets the number of round trips (default 5000).
 *
 * "nomac" (both ends) feeds no bulk byte to the MAC: the same transfer
 * without its authentication, to show what the per-byte MAC costs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/common.h"
#include "transport/internal.h"
#include "transport/transport.h"

#define REGION (256u << 20)
#define CHUNK  (64u << 20)

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		exit(2);
	memset(p, 1, len);
	return p;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int serve(const char *uri, struct transport_opts *o)
{
	struct transport_listener *l;
	struct transport_channel *ch;
	transport_msg *m;

	if (transport_listen(uri, o, &l))
		return 1;
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		if (transport_accept(l, &ch))
			continue;
		while (!transport_recv(ch, -1, &m)) {
			if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT ||
			    m->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT) {
				Colovm__Transport__CheckpointAck a = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
				transport_msg r = COLOVM__TRANSPORT__MSG__INIT;

				r.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
				r.checkpoint_ack = &a;
				transport_send(ch, &r);
			}
			transport_msg_free(m);
		}
		transport_close(ch);
	}
}

static int run(const char *uri, struct transport_opts *o, unsigned int streams, uint64_t mb)
{
	struct transport_channel *ch;
	uint8_t *src = map(CHUNK);
	uint64_t total = mb << 20, t0, t1;
	transport_msg *m;
	static uint64_t rtt[5000];
	const char *pe = getenv("TRANSPORT_BENCH_PINGS");
	size_t pings = pe ? strtoul(pe, NULL, 0) : ARRAY_SIZE(rtt);
	Colovm__Transport__Heartbeat h = COLOVM__TRANSPORT__HEARTBEAT__INIT;
	transport_msg hm = COLOVM__TRANSPORT__MSG__INIT;

	o->bulk_streams = streams;
	if (transport_connect(uri, o, &ch))
		return 1;
	t0 = clock_ns();
	for (uint64_t done = 0, id = 0; done < total; done += CHUNK, id++) {
		/* page-run shaped: 64 KiB iovecs */
		struct iovec v[CHUNK / 65536];

		for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
			v[i].iov_base = src + i * 65536;
			v[i].iov_len = 65536;
		}
		if (transport_bulk_write(ch, v, ARRAY_SIZE(v), (done % REGION)) ||
		    transport_bulk_commit(ch, id) || transport_recv(ch, 10000, &m))
			return 1;
		transport_msg_free(m);
	}
	t1 = clock_ns();
	hm.body_case = COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT;
	hm.heartbeat = &h;
	if (pings < 1 || pings > ARRAY_SIZE(rtt))
		pings = ARRAY_SIZE(rtt);
	for (size_t i = 0; i < pings; i++) {
		uint64_t s = clock_ns();

		if (transport_send(ch, &hm) || transport_recv(ch, 10000, &m))
			return 1;
		transport_msg_free(m);
		rtt[i] = clock_ns() - s;
	}
	qsort(rtt, pings, sizeof(rtt[0]), cmp_u64);
	printf("%.2f %.1f %.1f\n", (double)total / (double)(t1 - t0),
	       (double)rtt[pings / 2] / 1000, (double)rtt[pings * 99 / 100] / 1000);
	transport_close(ch);
	return 0;
}

int main(int argc, char **argv)
{
	struct transport_key key;
	struct transport_opts o = { .key = &key, .timeout_ms = 10000 };

	if (argc == 3 && !strcmp(argv[1], "memcpy")) {
		uint64_t len = strtoull(argv[2], NULL, 0) << 20;
		uint8_t *a = map(CHUNK), *b = map(CHUNK);
		uint64_t t0 = clock_ns();

		for (uint64_t d = 0; d < len; d += CHUNK)
			memcpy(b, a, CHUNK);
		printf("%.2f\n", (double)len / (double)(clock_ns() - t0));
		return 0;
	}
	if (argc < 4 || transport_key_load(argv[3], &key))
		return 2;
	if (!strcmp(argv[argc - 1], "nomac")) {
		transport_bench_unauthenticated_bulk = true;
		argc--;
	}
	if (!strcmp(argv[1], "serve")) {
		o.recv_region = map(REGION);
		o.recv_region_len = REGION;
		return serve(argv[2], &o);
	}
	if (!strcmp(argv[1], "run") && argc == 6)
		return run(argv[2], &o, (unsigned int)atoi(argv[4]), strtoull(argv[5], NULL, 0));
	return 2;
}
