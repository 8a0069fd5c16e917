/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * IPv4 (RFC 791): checked headers (version, lengths, checksum), options
 * skipped, fragments dropped and counted, our address or broadcast only.
 * Output: one fragment-free datagram with DF set, TTL 64, next hop on-link
 * or the gateway.
 */
#include "net.h"

#define IP_DF	      0x4000
#define IP_MF	      0x2000
#define IP_OFFSET_MSK 0x1fff

static uint16_t ip_id;

void ip_input(const uint8_t *eth_src, uint8_t *p, size_t len)
{
	size_t hlen, tlen;
	uint32_t src, dst;

	if (len < IP_HLEN || (p[0] >> 4) != 4) {
		net_stats.ip_bad++;
		return;
	}
	hlen = (size_t)(p[0] & 15) * 4;
	tlen = get16(p + 2);
	if (hlen < IP_HLEN || tlen < hlen || tlen > len) {
		net_stats.ip_bad++;
		return;
	}
	if (csum_fold(csum_add(0, p, hlen))) {
		net_stats.ip_csum++;
		return;
	}
	if (get16(p + 6) & (IP_MF | IP_OFFSET_MSK)) {
		net_stats.ip_frag++;
		return;
	}
	src = get32(p + 12);
	dst = get32(p + 16);
	if (dst != net_cfg.ip && dst != 0xffffffffu && dst != (net_cfg.ip | ~net_cfg.mask)) {
		net_stats.ip_not_us++;
		return;
	}
	if (((src ^ net_cfg.ip) & net_cfg.mask) == 0)
		arp_learn(src, eth_src);
	switch (p[9]) {
	case IP_PROTO_ICMP:
		if (dst == net_cfg.ip)
			icmp_input(src, p + hlen, tlen - hlen);
		break;
	case IP_PROTO_UDP:
		udp_input(src, dst, p + hlen, tlen - hlen);
		break;
	case IP_PROTO_TCP:
		if (dst == net_cfg.ip)
			tcp_input(src, dst, p + hlen, tlen - hlen);
		break;
	default:
		net_stats.ip_proto++;
	}
}

void ip_send(uint8_t *frame, uint32_t dst, uint8_t proto, size_t len)
{
	uint8_t *p = frame + ETH_HLEN, mac[6];
	uint32_t hop = dst;

	if (((dst ^ net_cfg.ip) & net_cfg.mask) && net_cfg.gw)
		hop = net_cfg.gw;
	if (!arp_resolve(hop, mac)) {
		eth_drop(frame);
		return;
	}
	p[0] = 0x45;
	p[1] = 0;
	put16(p + 2, (uint16_t)(IP_HLEN + len));
	put16(p + 4, ip_id++);
	put16(p + 6, IP_DF);
	p[8] = 64;
	p[9] = proto;
	put16(p + 10, 0);
	put32(p + 12, net_cfg.ip);
	put32(p + 16, dst);
	put16(p + 10, csum_fold(csum_add(0, p, IP_HLEN)));
	eth_send(frame, mac, ETH_P_IP, IP_HLEN + len);
}
