// SPDX-License-Identifier: GPL-2.0-only
/*
 * Frame parser: Ethernet (+ up to two VLAN tags), IPv4, IPv6 (hop-by-hop, routing and
 * destination-options headers skipped), TCP, UDP, ICMP/ICMPv6, ARP. Every length is
 * checked against the frame; IP lengths trim Ethernet padding. Anything that does not
 * parse is classified NC_RAW so that it is still compared, never dropped.
 */
#include <errno.h>
#include <string.h>
#include <urcu/urcu-memb.h>
#include <pthread.h>
#include <xxhash.h>

#include "net-compare/nc_internal.h"

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_v4(uint8_t dst[16], const uint8_t *a)
{
	memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	memcpy(dst + 12, a, 4);
}

static void raw(struct nc_parsed *p, const uint8_t *l3, size_t len, bool malformed)
{
	p->kind = NC_RAW;
	p->payload = l3;
	p->plen = (uint32_t)len;
	p->malformed = malformed;
}

static void l4(struct nc_parsed *p, const uint8_t *frame, const uint8_t *h, size_t len)
{
	struct compare_flow *f = &p->flow;

	switch (f->proto) {
	case 6: { /* TCP */
		size_t hlen;

		if (len < 20)
			goto bad;
		hlen = (size_t)(h[12] >> 4) * 4;
		if (hlen < 20 || hlen > len)
			goto bad;
		f->sport = rd16(h);
		f->dport = rd16(h + 2);
		p->seq = rd32(h + 4);
		p->ack = rd32(h + 8);
		p->tflags = h[13];
		p->l4_off = (uint16_t)(h - frame);
		p->tcp_hlen = (uint16_t)hlen;
		p->kind = NC_TCP;
		p->payload = h + hlen;
		p->plen = (uint32_t)(len - hlen);
		return;
	}
	case 17: { /* UDP */
		size_t ulen;

		if (len < 8)
			goto bad;
		ulen = rd16(h + 4);
		if (ulen < 8 || ulen > len)
			goto bad;
		f->sport = rd16(h);
		f->dport = rd16(h + 2);
		p->kind = NC_DGRAM;
		p->payload = h + 8;
		p->plen = (uint32_t)(ulen - 8);
		return;
	}
	default: /* ICMP, ICMPv6 and other IP protocols: the whole L4 message */
		p->kind = NC_DGRAM;
		p->payload = h;
		p->plen = (uint32_t)len;
		return;
	}
bad:
	/* Keyed by addresses and protocol, compared as bytes. */
	f->sport = f->dport = 0;
	raw(p, h, len, true);
}

static void ipv4(struct nc_parsed *p, const uint8_t *frame, const uint8_t *h, size_t len)
{
	size_t ihl, tot;

	if (len < 20 || (h[0] >> 4) != 4)
		return raw(p, h, len, true);
	ihl = (size_t)(h[0] & 0xf) * 4;
	tot = rd16(h + 2);
	if (ihl < 20 || tot < ihl || tot > len)
		return raw(p, h, len, true);
	p->flow.proto = h[9];
	set_v4(p->flow.src, h + 12);
	set_v4(p->flow.dst, h + 16);
	if (rd16(h + 6) & 0x3fff) /* MF or fragment offset: no L4 header to trust */
		return raw(p, h + ihl, tot - ihl, false);
	l4(p, frame, h + ihl, tot - ihl);
}

static void ipv6(struct nc_parsed *p, const uint8_t *frame, const uint8_t *h, size_t len)
{
	size_t plen, off = 40;
	uint8_t nh;
	int hops;

	if (len < 40 || (h[0] >> 4) != 6)
		return raw(p, h, len, true);
	plen = rd16(h + 4);
	if (40 + plen > len)
		return raw(p, h, len, true);
	len = 40 + plen;
	memcpy(p->flow.src, h + 8, 16);
	memcpy(p->flow.dst, h + 24, 16);
	nh = h[6];
	for (hops = 0; hops < 8; hops++) {
		if (nh != 0 && nh != 43 && nh != 60)
			break;
		if (off + 8 > len)
			return raw(p, h, len, true);
		nh = h[off];
		off += ((size_t)h[off + 1] + 1) * 8;
		if (off > len)
			return raw(p, h, len, true);
	}
	p->flow.proto = nh;
	if (nh == 44 || hops == 8) /* fragment, or too many extension headers */
		return raw(p, h + off, len - off, false);
	l4(p, frame, h + off, len - off);
}

int nc_parse(const uint8_t *frame, size_t len, struct nc_parsed *p)
{
	size_t off = 14;
	uint16_t et;
	int tags;

	memset(p, 0, sizeof(*p));
	if (!frame || len == 0)
		return -EINVAL;
	if (len < 14) {
		raw(p, frame, len, true);
		return 0;
	}
	et = rd16(frame + 12);
	for (tags = 0; tags < 2 && (et == 0x8100 || et == 0x88a8); tags++) {
		if (off + 4 > len) {
			raw(p, frame, len, true);
			return 0;
		}
		et = rd16(frame + off + 2);
		off += 4;
	}
	p->flow.ethertype = et;
	switch (et) {
	case 0x0800:
		ipv4(p, frame, frame + off, len - off);
		break;
	case 0x86dd:
		ipv6(p, frame, frame + off, len - off);
		break;
	case 0x0806: /* ARP: keyed by sender and target protocol addresses */
		if (len - off >= 28 && rd16(frame + off + 4) == 0x0604) {
			set_v4(p->flow.src, frame + off + 14);
			set_v4(p->flow.dst, frame + off + 24);
			raw(p, frame + off, 28, false);
		} else {
			raw(p, frame + off, len - off, true);
		}
		break;
	default:
		raw(p, frame + off, len - off, false);
		break;
	}
	return 0;
}

int compare_flow_parse(const uint8_t *frame, size_t len, struct compare_flow *out)
{
	struct nc_parsed p;
	int r = nc_parse(frame, len, &p);

	if (r < 0)
		return r;
	if (p.malformed)
		return -EINVAL;
	*out = p.flow;
	return 0;
}

void nc_flow_swap(struct compare_flow *f)
{
	uint8_t tmp[16];
	uint16_t t;

	memcpy(tmp, f->src, 16);
	memcpy(f->src, f->dst, 16);
	memcpy(f->dst, tmp, 16);
	t = f->sport;
	f->sport = f->dport;
	f->dport = t;
}

uint64_t nc_flow_hash(const struct compare_flow *f)
{
	return XXH3_64bits(f, sizeof(*f));
}

/* ---- RCU thread registration -------------------------------------------- */

static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static __thread bool rcu_registered;

static void rcu_thread_exit(void *arg)
{
	(void)arg;
	urcu_memb_unregister_thread();
}

static void rcu_key_init(void)
{
	if (pthread_key_create(&rcu_key, rcu_thread_exit))
		rcu_key = 0;
}

void nc_rcu_thread(void)
{
	if (__builtin_expect(rcu_registered, 1))
		return;
	pthread_once(&rcu_once, rcu_key_init);
	urcu_memb_register_thread();
	pthread_setspecific(rcu_key, (void *)1);
	rcu_registered = true;
}
