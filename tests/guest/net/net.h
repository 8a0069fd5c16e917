/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small IPv4 stack over virtio-net: Ethernet, ARP, IPv4 (no fragments),
 * ICMP echo, UDP and a server-side TCP. Single-threaded and polled: an app's
 * main loop is
 *
 *     for (;;) { net_poll(); ...serve sockets...; net_flush(); }
 *
 * net_poll() takes received frames through the layers and runs the timers;
 * net_flush() sends what the apps queued (TCP data, ACKs) and kicks the
 * device. Addresses and ports are kept in host byte order.
 */
#ifndef TESTGUEST_NET_H
#define TESTGUEST_NET_H

#include "../guest.h"

#define ETH_HLEN      14
#define ETH_P_IP      0x0800
#define ETH_P_ARP     0x0806
#define IP_HLEN	      20
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP  6
#define IP_PROTO_UDP  17
#define UDP_HLEN      8
#define TCP_HLEN      20

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

struct net_config {
	uint8_t mac[6];
	uint32_t ip, mask, gw; /* gw 0: none */
	bool isn_fixed;
};
extern struct net_config net_cfg;

/* Drop and error counters, printed by net_print_stats(). */
struct net_stats {
	uint64_t rx_frames, tx_frames, tx_no_buf;
	uint64_t eth_short, eth_other;
	uint64_t arp_bad, arp_requests, arp_replies, arp_unresolved;
	uint64_t ip_bad, ip_csum, ip_frag, ip_not_us, ip_proto;
	uint64_t icmp_bad, icmp_echo;
	uint64_t udp_bad, udp_no_port;
	uint64_t tcp_bad, tcp_no_conn, tcp_rst_sent, tcp_ooo, tcp_retrans, tcp_full;
};
extern struct net_stats net_stats;

/* Set up the device and the stack from ip=, gw=, isn= and print
 * "net: up ip=A/N mac=M app=NAME port=P". Returns 0 or an exit code. */
int net_init(const char *app, uint16_t port);
void net_poll(void);
void net_flush(void);
void net_print_stats(void);
/* port= from the command line, else def; 0 on a bad value (message printed). */
uint16_t net_port(uint16_t def);

/* checksum (RFC 1071): accumulate, then fold and complement */
uint32_t csum_add(uint32_t sum, const void *data, size_t len);
uint16_t csum_fold(uint32_t sum);
uint32_t csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

/* eth.c */
void eth_input(uint8_t *frame, size_t len);
/* A transmit frame; the payload starts at frame + ETH_HLEN. NULL: none free. */
uint8_t *eth_alloc(void);
void eth_send(uint8_t *frame, const uint8_t dst[6], uint16_t type, size_t payload_len);
void eth_drop(uint8_t *frame);

/* arp.c */
void arp_input(const uint8_t *pkt, size_t len);
/* The MAC for an on-link next hop; false (and a request sent) if unknown. */
bool arp_resolve(uint32_t ip, uint8_t mac[6]);
void arp_learn(uint32_t ip, const uint8_t mac[6]);

/* ip.c */
void ip_input(const uint8_t *eth_src, uint8_t *pkt, size_t len);
/* Send the frame whose IP payload (at frame + ETH_HLEN + IP_HLEN) is len
 * bytes long; consumes the frame either way. */
void ip_send(uint8_t *frame, uint32_t dst, uint8_t proto, size_t len);
static inline uint8_t *ip_payload(uint8_t *frame)
{
	return frame + ETH_HLEN + IP_HLEN;
}

/* icmp.c */
void icmp_input(uint32_t src, const uint8_t *pkt, size_t len);

/* udp.c */
typedef void (*udp_handler)(uint32_t src, uint16_t sport, uint16_t dport, const uint8_t *data,
			    size_t len);
int udp_bind(uint16_t port, udp_handler fn);
void udp_input(uint32_t src, uint32_t dst, const uint8_t *pkt, size_t len);
int udp_send(uint32_t dst, uint16_t sport, uint16_t dport, const void *data, size_t len);

/* tcp.c: passive open only. */
#define TCP_MAX_CONNS 128
struct tcp_conn;
int tcp_listen(uint16_t port);
/* A connection established on port that the app has not taken yet. */
struct tcp_conn *tcp_accept(uint16_t port);
/* Read up to n received bytes. */
size_t tcp_recv(struct tcp_conn *c, void *buf, size_t n);
size_t tcp_recv_ready(const struct tcp_conn *c); /* bytes tcp_recv() would give */
size_t tcp_send_space(const struct tcp_conn *c);
/* Queue up to n bytes (as many as fit in the send buffer). */
size_t tcp_send(struct tcp_conn *c, const void *data, size_t n);
/* Nothing more will arrive: the peer sent FIN (all of it read) or a reset. */
bool tcp_eof(const struct tcp_conn *c);
/* The connection was reset or timed out: sending is pointless. */
bool tcp_dead(const struct tcp_conn *c);
/* Give the connection back: FIN after the queued data; freed when done. */
void tcp_close(struct tcp_conn *c);
unsigned int tcp_conn_id(const struct tcp_conn *c); /* 0 .. TCP_MAX_CONNS - 1 */
void tcp_input(uint32_t src, uint32_t dst, const uint8_t *pkt, size_t len);
void tcp_timers(uint64_t now);
void tcp_output_all(void);
int tcp_init(void);

#endif
