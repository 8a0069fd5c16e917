/* SPDX-License-Identifier: GPL-2.0-only */
/* UDP (RFC 768): a few bound ports with handlers; checksums checked when
 * present and always sent. */
#include "net.h"
#include "../virtio-net.h"

#define UDP_PORTS 4

static struct {
	uint16_t port;
	udp_handler fn;
} binds[UDP_PORTS];

int udp_bind(uint16_t port, udp_handler fn)
{
	for (unsigned int i = 0; i < UDP_PORTS; i++) {
		if (!binds[i].fn) {
			binds[i].port = port;
			binds[i].fn = fn;
			return 0;
		}
	}
	return -1;
}

void udp_input(uint32_t src, uint32_t dst, const uint8_t *p, size_t len)
{
	uint16_t ulen, dport;

	if (len < UDP_HLEN || (ulen = get16(p + 4)) < UDP_HLEN || ulen > len) {
		net_stats.udp_bad++;
		return;
	}
	if (get16(p + 6) &&
	    csum_fold(csum_add(csum_pseudo(src, dst, IP_PROTO_UDP, ulen), p, ulen))) {
		net_stats.udp_bad++;
		return;
	}
	dport = get16(p + 2);
	for (unsigned int i = 0; i < UDP_PORTS; i++) {
		if (binds[i].fn && binds[i].port == dport) {
			binds[i].fn(src, get16(p), dport, p + UDP_HLEN, ulen - UDP_HLEN);
			return;
		}
	}
	net_stats.udp_no_port++;
}

int udp_send(uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len)
{
	uint8_t *f, *q;
	uint16_t ulen = (uint16_t)(UDP_HLEN + len), sum;

	if (len > VNET_MTU - IP_HLEN - UDP_HLEN || !(f = eth_alloc()))
		return -1;
	q = ip_payload(f);
	put16(q, sport);
	put16(q + 2, dport);
	put16(q + 4, ulen);
	put16(q + 6, 0);
	memcpy(q + UDP_HLEN, data, len);
	sum = csum_fold(csum_add(csum_pseudo(net_cfg.ip, dst, IP_PROTO_UDP, ulen), q, ulen));
	put16(q + 6, sum ? sum : 0xffff);
	ip_send(f, dst, IP_PROTO_UDP, ulen);
	return 0;
}
