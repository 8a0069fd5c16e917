// SPDX-License-Identifier: GPL-2.0-only
/*
 * Property test: random pairs of TCP streams (seeded PRNG), randomly segmented on each
 * side, with adjacent reorderings and retransmissions, interleaved at random. The
 * comparator's verdict must equal a reference comparison of the two byte streams:
 * equal streams -> every primary frame released and no checkpoint; different streams
 * -> a checkpoint is requested (miscompare or, for a short secondary, the timeout).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "net-compare/compare.h"
#include "pkt_helper.h"

#define CASES	300
#define MAXLEN	4000
#define MAXSEGS 256

struct seg {
	uint32_t off, len;
	bool fin;
};

struct run {
	int released, ckpts;
};

static void on_rel(void *o, const uint8_t *f, size_t n)
{
	((struct run *)o)->released++;
}

static void on_ck(void *o, enum compare_reason r)
{
	((struct run *)o)->ckpts++;
}

static int segment(uint64_t *rs, uint32_t len, struct seg *out)
{
	uint32_t off = 0;
	int n = 0, i;

	while (off < len && n < MAXSEGS - 8) {
		uint32_t k = 1 + (uint32_t)(pkt_rand(rs) % 600);

		if (k > len - off)
			k = len - off;
		out[n++] = (struct seg){off, k, false};
		off += k;
	}
	if (off < len)
		out[n++] = (struct seg){off, len - off, false};
	out[n - 1].fin = true;
	/* adjacent swaps */
	for (i = 0; i + 1 < n; i++) {
		if (pkt_rand(rs) % 5 == 0) {
			struct seg t = out[i];

			out[i] = out[i + 1];
			out[i + 1] = t;
			i++;
		}
	}
	/* retransmissions */
	for (i = 0; i < 3 && n < MAXSEGS; i++) {
		if (pkt_rand(rs) % 3 == 0) {
			int at = (int)(pkt_rand(rs) % (uint64_t)n);
			int from = (int)(pkt_rand(rs) % (uint64_t)(at + 1));

			memmove(&out[at + 1], &out[at], (size_t)(n - at) * sizeof(out[0]));
			out[at] = out[from];
			n++;
		}
	}
	return n;
}

static int n_equal, n_diff;

static void run_case(uint64_t seed)
{
	static const struct compare_ops ops = {.release = on_rel, .checkpoint = on_ck};
	static uint8_t P[MAXLEN + 100], S[MAXLEN + 100], f[PKT_MAX];
	static struct seg ps[MAXSEGS], ss[MAXSEGS];
	struct pkt_ep g = pkt_ep4(10, 0, 0, 2, 80), c = pkt_ep4(10, 0, 0, 1, 4242);
	uint64_t rs = seed * 0x9E3779B97F4A7C15ull + 1, now = 1000000;
	uint32_t plen, slen, i, isn = (uint32_t)pkt_rand(&rs);
	struct compare *cmp;
	struct run r = {0};
	int np, ns, ip = 0, is = 0, mut;
	bool equal;

	plen = 1 + (uint32_t)(pkt_rand(&rs) % MAXLEN);
	for (i = 0; i < plen; i++)
		P[i] = (uint8_t)pkt_rand(&rs);
	memcpy(S, P, plen);
	slen = plen;
	mut = (int)(pkt_rand(&rs) % 6);
	if (mut == 1) { /* flip one byte */
		S[pkt_rand(&rs) % plen] ^= (uint8_t)(1 + pkt_rand(&rs) % 255);
	} else if (mut == 2 && plen > 1) { /* truncated */
		slen = 1 + (uint32_t)(pkt_rand(&rs) % (plen - 1));
	} else if (mut == 3) { /* extended */
		uint32_t k = 1 + (uint32_t)(pkt_rand(&rs) % 50);

		for (i = 0; i < k; i++)
			S[plen + i] = (uint8_t)pkt_rand(&rs);
		slen = plen + k;
	}
	equal = plen == slen && !memcmp(P, S, plen); /* the reference */
	if (equal)
		n_equal++;
	else
		n_diff++;

	np = segment(&rs, plen, ps);
	ns = segment(&rs, slen, ss);
	assert_int_equal(compare_new(&cmp, NULL, &ops, &r), 0);
	{
		struct pkt_tcp t = {.src = g, .dst = c, .seq = isn, .ack = 1, .flags = F_SYN | F_ACK};
		size_t n = pkt_tcp(f, &t);

		compare_feed(cmp, COMPARE_PRIMARY, f, n, now);
		compare_feed(cmp, COMPARE_SECONDARY, f, n, now);
	}
	while (ip < np || is < ns) {
		bool prim = is >= ns || (ip < np && pkt_rand(&rs) % 2);
		struct seg *sg = prim ? &ps[ip++] : &ss[is++];
		struct pkt_tcp t = {.src = g,
				    .dst = c,
				    .seq = isn + 1 + sg->off,
				    .ack = 1,
				    .flags = (uint8_t)(F_ACK | (sg->fin ? F_FIN : 0)),
				    .data = (prim ? P : S) + sg->off,
				    .len = sg->len};
		size_t n = pkt_tcp(f, &t);

		now += 1000;
		compare_feed(cmp, prim ? COMPARE_PRIMARY : COMPARE_SECONDARY, f, n, now);
	}
	compare_poll(cmp, now + 10 * 1000 * 1000);
	if (equal) {
		if (r.ckpts != 0 || r.released != np + 1)
			fail_msg("seed %llu: equal streams (len %u), ckpts %d released %d/%d",
				 (unsigned long long)seed, plen, r.ckpts, r.released, np + 1);
	} else {
		if (r.ckpts == 0)
			fail_msg("seed %llu: different streams (mut %d, %u/%u) not detected",
				 (unsigned long long)seed, mut, plen, slen);
	}
	compare_free(cmp);
}

static void test_random_streams(void **state)
{
	uint64_t seed;

	for (seed = 1; seed <= CASES; seed++)
		run_case(seed);
	/* both outcomes exercised */
	assert_true(n_equal > CASES / 4);
	assert_true(n_diff > CASES / 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_random_streams),
	};

	return cmocka_run_group_tests_name("netcompare.property", tests, NULL, NULL);
}
