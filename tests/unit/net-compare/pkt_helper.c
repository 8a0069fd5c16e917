// SPDX-License-Identifier: GPL-2.0-only
#include <string.h>

#include "pkt_helper.h"

static const uint8_t mac_guest[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t mac_gw[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};

struct pkt_ep pkt_ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	struct pkt_ep e = {.v6 = false, .port = port};

	e.ip[0] = a;
	e.ip[1] = b;
	e.ip[2] = c;
	e.ip[3] = d;
	return e;
}

struct pkt_ep pkt_ep6(uint16_t last, uint16_t port)
{
	struct pkt_ep e = {.v6 = true, .port = port};

	e.ip[0] = 0x20;
	e.ip[1] = 0x01;
	e.ip[2] = 0x0d;
	e.ip[3] = 0xb8;
	e.ip[14] = (uint8_t)(last >> 8);
	e.ip[15] = (uint8_t)last;
	return e;
}

static void w16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void w32(uint8_t *p, uint32_t v)
{
	w16(p, (uint16_t)(v >> 16));
	w16(p + 2, (uint16_t)v);
}

static uint32_t r32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint16_t pkt_csum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t s = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t sum_raw(const uint8_t *p, size_t len)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

/* Ethernet + IP header; returns offset of L4; *csum_init gets the pseudo-header sum. */
static size_t l3(uint8_t *buf, struct pkt_ep src, struct pkt_ep dst, uint8_t proto,
		 size_t l4len, bool hbh, uint32_t *pseudo)
{
	size_t off = 14;

	memcpy(buf, mac_gw, 6);
	memcpy(buf + 6, mac_guest, 6);
	if (!src.v6) {
		uint8_t *ip = buf + off;

		w16(buf + 12, 0x0800);
		memset(ip, 0, 20);
		ip[0] = 0x45;
		w16(ip + 2, (uint16_t)(20 + l4len));
		w16(ip + 4, 0x1234);
		w16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = proto;
		memcpy(ip + 12, src.ip, 4);
		memcpy(ip + 16, dst.ip, 4);
		w16(ip + 10, pkt_csum(ip, 20, 0));
		*pseudo = sum_raw(ip + 12, 8) + proto + (uint32_t)l4len;
		return off + 20;
	} else {
		uint8_t *ip = buf + off;
		size_t ext = hbh ? 8 : 0;

		w16(buf + 12, 0x86dd);
		memset(ip, 0, 40 + ext);
		ip[0] = 0x60;
		w16(ip + 4, (uint16_t)(l4len + ext));
		ip[6] = hbh ? 0 : proto;
		ip[7] = 64;
		memcpy(ip + 8, src.ip, 16);
		memcpy(ip + 24, dst.ip, 16);
		if (hbh) {
			ip[40] = proto;
			ip[41] = 0;
			ip[42] = 1; /* PadN, 4 bytes */
			ip[43] = 4;
		}
		*pseudo = sum_raw(ip + 8, 32) + proto + (uint32_t)l4len;
		return off + 40 + ext;
	}
}

size_t pkt_tcp(uint8_t *buf, const struct pkt_tcp *t)
{
	size_t hlen = 20 + t->optlen, l4len = hlen + t->len;
	uint32_t pseudo;
	size_t off = l3(buf, t->src, t->dst, 6, l4len, t->v6_hbh, &pseudo);
	uint8_t *th = buf + off;

	memset(th, 0, hlen);
	w16(th, t->src.port);
	w16(th + 2, t->dst.port);
	w32(th + 4, t->seq);
	w32(th + 8, t->ack);
	th[12] = (uint8_t)((hlen / 4) << 4);
	th[13] = t->flags;
	w16(th + 14, t->win ? t->win : 65535);
	if (t->optlen)
		memcpy(th + 20, t->opts, t->optlen);
	if (t->len)
		memcpy(th + hlen, t->data, t->len);
	w16(th + 16, pkt_csum(th, l4len, pseudo));
	return off + l4len;
}

size_t pkt_udp(uint8_t *buf, struct pkt_ep src, struct pkt_ep dst, const uint8_t *data,
	       size_t len)
{
	uint32_t pseudo;
	size_t off = l3(buf, src, dst, 17, 8 + len, false, &pseudo);
	uint8_t *uh = buf + off;
	uint16_t cs;

	w16(uh, src.port);
	w16(uh + 2, dst.port);
	w16(uh + 4, (uint16_t)(8 + len));
	w16(uh + 6, 0);
	memcpy(uh + 8, data, len);
	cs = pkt_csum(uh, 8 + len, pseudo);
	w16(uh + 6, cs ? cs : 0xffff);
	return off + 8 + len;
}

size_t pkt_icmp_echo(uint8_t *buf, struct pkt_ep src, struct pkt_ep dst, bool reply, uint16_t id,
		     uint16_t seq, const uint8_t *data, size_t len)
{
	uint8_t proto = src.v6 ? 58 : 1;
	uint32_t pseudo;
	size_t off = l3(buf, src, dst, proto, 8 + len, false, &pseudo);
	uint8_t *ih = buf + off;

	if (src.v6)
		ih[0] = reply ? 129 : 128;
	else
		ih[0] = reply ? 0 : 8;
	ih[1] = 0;
	w16(ih + 2, 0);
	w16(ih + 4, id);
	w16(ih + 6, seq);
	memcpy(ih + 8, data, len);
	w16(ih + 2, pkt_csum(ih, 8 + len, src.v6 ? pseudo : 0));
	return off + 8 + len;
}

size_t pkt_arp(uint8_t *buf, uint16_t op, const uint8_t sip[4], const uint8_t tip[4])
{
	uint8_t *a = buf + 14;

	memset(buf, 0xff, 6);
	memcpy(buf + 6, mac_guest, 6);
	w16(buf + 12, 0x0806);
	w16(a, 1);
	w16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	w16(a + 6, op);
	memcpy(a + 8, mac_guest, 6);
	memcpy(a + 14, sip, 4);
	memset(a + 18, 0, 6);
	memcpy(a + 24, tip, 4);
	memset(a + 28, 0, 18); /* pad to 60 bytes */
	return 60;
}

bool pkt_csum_ok(const uint8_t *frame, size_t len)
{
	uint16_t et = (uint16_t)(frame[12] << 8 | frame[13]);
	const uint8_t *l4;
	uint32_t pseudo;
	uint8_t proto;
	size_t l4len;

	if (et == 0x0800) {
		const uint8_t *ip = frame + 14;
		size_t ihl = (size_t)(ip[0] & 15) * 4;

		if (pkt_csum(ip, ihl, 0) != 0)
			return false;
		proto = ip[9];
		l4 = ip + ihl;
		l4len = (size_t)(ip[2] << 8 | ip[3]) - ihl;
		pseudo = proto == 1 ? 0 : sum_raw(ip + 12, 8) + proto + (uint32_t)l4len;
	} else if (et == 0x86dd) {
		const uint8_t *ip = frame + 14;
		size_t off = 40;

		proto = ip[6];
		if (proto == 0) {
			proto = ip[40];
			off += ((size_t)ip[41] + 1) * 8;
		}
		l4 = ip + off;
		l4len = (size_t)(ip[4] << 8 | ip[5]) + 40 - off;
		pseudo = sum_raw(ip + 8, 32) + proto + (uint32_t)l4len;
	} else {
		return true;
	}
	(void)len;
	return pkt_csum(l4, l4len, pseudo) == 0;
}

uint32_t pkt_tcp_seq(const uint8_t *frame)
{
	size_t off = frame[12] == 0x86 ? 14 + 40 : 14 + (size_t)(frame[14] & 15) * 4;

	if (frame[12] == 0x86 && frame[14 + 6] == 0)
		off += 8;
	return r32(frame + off + 4);
}

uint32_t pkt_tcp_ack(const uint8_t *frame)
{
	size_t off = frame[12] == 0x86 ? 14 + 40 : 14 + (size_t)(frame[14] & 15) * 4;

	if (frame[12] == 0x86 && frame[14 + 6] == 0)
		off += 8;
	return r32(frame + off + 8);
}

size_t pkt_flow_seg(uint8_t *buf, struct pkt_flow *f, uint8_t flags, const uint8_t *data,
		    size_t len)
{
	struct pkt_tcp t = {.src = f->src,
			    .dst = f->dst,
			    .seq = f->seq,
			    .ack = f->ack,
			    .flags = flags,
			    .data = data,
			    .len = len};
	size_t n = pkt_tcp(buf, &t);

	f->seq += (uint32_t)len + !!(flags & (F_SYN | F_FIN));
	return n;
}

uint64_t pkt_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}
