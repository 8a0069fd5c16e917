/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Crafted frames for the net-compare tests (the shape of lwIP's tcp_helper.h):
 * Ethernet + IPv4/IPv6 + TCP/UDP/ICMP/ICMPv6, ARP, with correct checksums computed by
 * an independent RFC 1071 routine (not the library's incremental update).
 */
#ifndef NC_PKT_HELPER_H
#define NC_PKT_HELPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_MAX 9216

struct pkt_ep {
	bool v6;
	uint8_t ip[16]; /* v4: first 4 bytes */
	uint16_t port;
};

struct pkt_tcp {
	struct pkt_ep src, dst;
	uint32_t seq, ack;
	uint8_t flags; /* TH_* */
	uint16_t win;
	const uint8_t *data;
	size_t len;
	const uint8_t *opts; /* multiple of 4 bytes */
	size_t optlen;
	bool v6_hbh; /* add an IPv6 hop-by-hop header */
};

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_PSH 0x08
#define F_ACK 0x10

struct pkt_ep pkt_ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port);
struct pkt_ep pkt_ep6(uint16_t last, uint16_t port);

size_t pkt_tcp(uint8_t *buf, const struct pkt_tcp *t);
size_t pkt_udp(uint8_t *buf, struct pkt_ep src, struct pkt_ep dst, const uint8_t *data,
	       size_t len);
/* ICMP (v4) or ICMPv6 echo request/reply */
size_t pkt_icmp_echo(uint8_t *buf, struct pkt_ep src, struct pkt_ep dst, bool reply, uint16_t id,
		     uint16_t seq, const uint8_t *data, size_t len);
size_t pkt_arp(uint8_t *buf, uint16_t op, const uint8_t sip[4], const uint8_t tip[4]);

/* RFC 1071 checksum over data, starting from sum (pre-fold). */
uint16_t pkt_csum(const void *data, size_t len, uint32_t sum);
/* IPv4 header checksum and the TCP/UDP/ICMP checksum are valid. */
bool pkt_csum_ok(const uint8_t *frame, size_t len);

/* Field access on a TCP frame built by pkt_tcp (no VLAN). */
uint32_t pkt_tcp_seq(const uint8_t *frame);
uint32_t pkt_tcp_ack(const uint8_t *frame);

/* A TCP endpoint sending a byte stream: tracks seq. */
struct pkt_flow {
	struct pkt_ep src, dst;
	uint32_t seq, ack;
};
size_t pkt_flow_seg(uint8_t *buf, struct pkt_flow *f, uint8_t flags, const uint8_t *data,
		    size_t len);

/* Deterministic PRNG (xorshift64*). */
uint64_t pkt_rand(uint64_t *state);

#endif
