/* SPDX-License-Identifier: GPL-2.0-only */
/* ICMP (RFC 792): echo requests get replies carrying the same data. */
#include "net.h"
#include "../virtio-net.h"

#define ICMP_ECHO_REPLY	  0
#define ICMP_ECHO_REQUEST 8
#define ICMP_HLEN	  8

void icmp_input(uint32_t src, const uint8_t *p, size_t len)
{
	uint8_t *f, *q;

	if (len < ICMP_HLEN || len > VNET_MTU - IP_HLEN || csum_fold(csum_add(0, p, len))) {
		net_stats.icmp_bad++;
		return;
	}
	if (p[0] != ICMP_ECHO_REQUEST || p[1] != 0)
		return;
	net_stats.icmp_echo++;
	if (!(f = eth_alloc()))
		return;
	q = ip_payload(f);
	memcpy(q, p, len);
	q[0] = ICMP_ECHO_REPLY;
	put16(q + 2, 0);
	put16(q + 2, csum_fold(csum_add(0, q, len)));
	ip_send(f, src, IP_PROTO_ICMP, len);
}
