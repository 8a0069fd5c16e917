// SPDX-License-Identifier: GPL-2.0-only
/*
 * pcap-driven test: the two guests' outbound traffic is written to pcap files with
 * pcap_dump (crafted frames), read back with libpcap and replayed into the comparator.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pcap/pcap.h>
#include <sys/param.h>
#include <cmocka.h>

#include "net-compare/compare.h"
#include "pkt_helper.h"

struct run {
	int released, ckpts;
	enum compare_reason reason;
};

static void on_rel(void *o, const uint8_t *f, size_t n)
{
	((struct run *)o)->released++;
}

static void on_ck(void *o, enum compare_reason r)
{
	((struct run *)o)->ckpts++;
	((struct run *)o)->reason = r;
}

/* A small session: SYN-ACK, data in seglen pieces, an ICMP reply, a UDP answer, FIN. */
static int write_pcap(const char *path, uint32_t isn, size_t seglen, int flip_at)
{
	struct pkt_ep g = pkt_ep4(192, 168, 1, 2, 8080), c = pkt_ep4(192, 168, 1, 1, 51000);
	uint8_t data[3000], f[PKT_MAX];
	struct pkt_flow fl = {g, c, isn, 1};
	struct pcap_pkthdr h = {0};
	pcap_dumper_t *d;
	pcap_t *p;
	size_t off, n;
	int frames = 0;

	for (off = 0; off < sizeof(data); off++)
		data[off] = (uint8_t)(off * 31 + 7);
	if (flip_at >= 0)
		data[flip_at] ^= 0xff;
	p = pcap_open_dead(DLT_EN10MB, 65535);
	assert_non_null(p);
	d = pcap_dump_open(p, path);
	assert_non_null(d);
#define DUMP()                                                                                     \
	do {                                                                                       \
		h.caplen = h.len = (bpf_u_int32)n;                                                 \
		h.ts.tv_usec += 10;                                                                \
		pcap_dump((u_char *)d, &h, f);                                                     \
		frames++;                                                                          \
	} while (0)
	n = pkt_flow_seg(f, &fl, F_SYN | F_ACK, NULL, 0);
	DUMP();
	fl.seq = 1000 + 1; /* as rewritten: the primary's sequence space */
	for (off = 0; off < sizeof(data); off += seglen) {
		n = pkt_flow_seg(f, &fl, F_ACK | F_PSH, data + off, MIN(seglen, sizeof(data) - off));
		DUMP();
	}
	n = pkt_icmp_echo(f, g, c, true, 9, 1, data, 32);
	DUMP();
	n = pkt_udp(f, pkt_ep4(192, 168, 1, 2, 53), pkt_ep4(192, 168, 1, 1, 5353), data, 100);
	DUMP();
	n = pkt_flow_seg(f, &fl, F_ACK | F_FIN, NULL, 0);
	DUMP();
	pcap_dump_close(d);
	pcap_close(p);
	return frames;
}

static void replay(struct compare *cmp, const char *pp, const char *sp)
{
	char err[PCAP_ERRBUF_SIZE];
	pcap_t *p[2];
	int side, r[2] = {1, 1};

	p[0] = pcap_open_offline(pp, err);
	p[1] = pcap_open_offline(sp, err);
	assert_non_null(p[0]);
	assert_non_null(p[1]);
	/* alternate between the captures, like two interleaved feeds */
	while (r[0] == 1 || r[1] == 1) {
		for (side = 0; side < 2; side++) {
			struct pcap_pkthdr *h;
			const u_char *data;

			if (r[side] != 1)
				continue;
			r[side] = pcap_next_ex(p[side], &h, &data);
			if (r[side] == 1)
				assert_int_equal(compare_feed(cmp, side, data, h->caplen,
							      (uint64_t)h->ts.tv_usec * 1000),
						 0);
		}
	}
	pcap_close(p[0]);
	pcap_close(p[1]);
}

static void check(size_t pseg, size_t sseg, int flip, int want_ckpt)
{
	static const struct compare_ops ops = {.release = on_rel, .checkpoint = on_ck};
	char pp[] = "/tmp/nc_primary_XXXXXX", sp[] = "/tmp/nc_secondary_XXXXXX";
	struct compare *cmp;
	struct run r = {0};
	int fd, nprim;

	fd = mkstemp(pp);
	assert_true(fd >= 0);
	close(fd);
	fd = mkstemp(sp);
	assert_true(fd >= 0);
	close(fd);
	nprim = write_pcap(pp, 1000, pseg, -1);
	write_pcap(sp, 0xffffff00u, sseg, flip);
	assert_int_equal(compare_new(&cmp, NULL, &ops, &r), 0);
	replay(cmp, pp, sp);
	compare_poll(cmp, 100 * 1000 * 1000);
	if (want_ckpt) {
		assert_int_equal(r.ckpts, 1);
		assert_int_equal(r.reason, COMPARE_REASON_MISCOMPARE);
		assert_true(r.released < nprim);
	} else {
		assert_int_equal(r.ckpts, 0);
		assert_int_equal(r.released, nprim);
	}
	compare_free(cmp);
	unlink(pp);
	unlink(sp);
}

static void test_pcap_same(void **state)
{
	check(1448, 1448, -1, 0);
}

static void test_pcap_segmentation(void **state)
{
	check(1448, 500, -1, 0);
}

static void test_pcap_miscompare(void **state)
{
	check(1448, 700, 2222, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcap_same),
		cmocka_unit_test(test_pcap_segmentation),
		cmocka_unit_test(test_pcap_miscompare),
	};

	return cmocka_run_group_tests_name("netcompare.pcap", tests, NULL, NULL);
}
