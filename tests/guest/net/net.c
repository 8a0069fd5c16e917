/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The stack's set-up, main-loop hooks and checksums. Configuration comes from
 * the command line: ip=A.B.C.D/N (default 10.0.0.2/24), gw=A.B.C.D,
 * isn=fixed|random, port=; stats=S prints the counters every S seconds;
 * idle=halt|poll (default halt): what net_poll() does after a pass of the
 * app's loop that neither received nor sent a frame -- halt until a frame
 * or the 100 Hz tick arrives (irq.c), or poll again at once (also what
 * halt falls back to when the NIC's interrupt is not a PIC line).
 */
#include "net.h"
#include "../virtio-net.h"

#define RX_BUDGET  64
#define TIMER_US   10000 /* timers run at most every 10 ms */
#define IRQ_ACK_US 100000
#define TICK_HZ	   (1000000 / TIMER_US)

struct net_config net_cfg;
struct net_stats net_stats;
static uint64_t next_timer, next_irq_ack, next_stats, stats_us;
static bool idle_halt;
static uint64_t seen_rx, seen_tx; /* the counters at the last net_poll() */

static int parse_ip(const char *s, uint32_t *ip, uint32_t *prefix)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		uint32_t octet = 0;
		int digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 4) {
			octet = octet * 10 + (uint32_t)(*s++ - '0');
			digits++;
		}
		if (!digits || octet > 255)
			return -1;
		v = v << 8 | octet;
		if (i < 3 && *s++ != '.')
			return -1;
	}
	*ip = v;
	if (prefix && *s == '/') {
		uint32_t p = 0;
		int digits = 0;

		for (s++; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
			p = p * 10 + (uint32_t)(*s - '0');
		if (!digits || p < 1 || p > 32)
			return -1;
		*prefix = p;
	}
	return *s ? -1 : 0;
}

uint16_t net_port(uint16_t def)
{
	uint64_t port;

	if (cmdline_u64("port", def, 65535, &port) || !port)
		return 0;
	return (uint16_t)port;
}

int net_init(const char *app, uint16_t port)
{
	const char *ip = cmdline_get("ip"), *gw = cmdline_get("gw"), *isn = cmdline_get("isn");
	uint32_t prefix = 24;
	uint64_t stats;
	uint8_t *m = net_cfg.mac;

	if (parse_ip(ip ? ip : "10.0.0.2/24", &net_cfg.ip, &prefix)) {
		printf("testguest: bad value ip=%s: expected A.B.C.D[/N]\n", ip);
		return EXIT_USAGE;
	}
	net_cfg.mask = prefix == 32 ? ~0u : ~((1u << (32 - prefix)) - 1);
	if (gw && parse_ip(gw, &net_cfg.gw, NULL)) {
		printf("testguest: bad value gw=%s: expected A.B.C.D\n", gw);
		return EXIT_USAGE;
	}
	if (isn && strcmp(isn, "fixed") && strcmp(isn, "random")) {
		printf("testguest: bad value isn=%s: expected fixed or random\n", isn);
		return EXIT_USAGE;
	}
	net_cfg.isn_fixed = isn && !strcmp(isn, "fixed");
	if (cmdline_u64("stats", 0, 3600, &stats))
		return EXIT_USAGE;
	stats_us = stats * 1000000;
	if (idle_option(&idle_halt))
		return EXIT_USAGE;
	if (vnet_init(net_cfg.mac))
		return EXIT_DEVICE;
	idle_halt = idle_halt && idle_on_line("net", "NIC", vnet_irq());
	if (idle_halt)
		irq_tick_start(TICK_HZ);
	if (tcp_init())
		return EXIT_DEVICE;
	printf("net: up ip=%u.%u.%u.%u/%u mac=%02x:%02x:%02x:%02x:%02x:%02x app=%s port=%u\n",
	       net_cfg.ip >> 24, net_cfg.ip >> 16 & 255, net_cfg.ip >> 8 & 255, net_cfg.ip & 255,
	       prefix, m[0], m[1], m[2], m[3], m[4], m[5], app, port);
	next_stats = now_us() + stats_us;
	return 0;
}

static void rx_frame(uint8_t *frame, size_t len)
{
	net_stats.rx_frames++;
	eth_input(frame, len);
}

void net_poll(void)
{
	uint64_t now;

	/* A whole pass of the app's loop since the last poll, and nothing
	 * came in or went out: wait for something to. */
	if (idle_halt && net_stats.rx_frames == seen_rx && net_stats.tx_frames == seen_tx)
		vnet_idle();
	vnet_rx(rx_frame, RX_BUDGET);
	seen_rx = net_stats.rx_frames;
	seen_tx = net_stats.tx_frames;
	now = now_us();
	if (now >= next_timer) {
		next_timer = now + TIMER_US;
		tcp_timers(now);
		if (now >= next_irq_ack) {
			next_irq_ack = now + IRQ_ACK_US;
			vnet_ack_interrupt();
		}
		if (stats_us && now >= next_stats) {
			next_stats = now + stats_us;
			net_print_stats();
		}
	}
}

void net_flush(void)
{
	tcp_output_all();
	vnet_flush();
}

void net_print_stats(void)
{
	struct net_stats *s = &net_stats;

	printf("net: stats rx=%lu tx=%lu tx_no_buf=%lu eth_short=%lu eth_other=%lu arp_bad=%lu "
	       "ip_bad=%lu ip_csum=%lu ip_frag=%lu ip_not_us=%lu ip_proto=%lu icmp_bad=%lu "
	       "icmp_echo=%lu udp_bad=%lu udp_no_port=%lu tcp_bad=%lu tcp_no_conn=%lu "
	       "tcp_rst=%lu tcp_ooo=%lu tcp_retrans=%lu tcp_full=%lu\n",
	       s->rx_frames, s->tx_frames, s->tx_no_buf, s->eth_short, s->eth_other, s->arp_bad,
	       s->ip_bad, s->ip_csum, s->ip_frag, s->ip_not_us, s->ip_proto, s->icmp_bad,
	       s->icmp_echo, s->udp_bad, s->udp_no_port, s->tcp_bad, s->tcp_no_conn,
	       s->tcp_rst_sent, s->tcp_ooo, s->tcp_retrans, s->tcp_full);
}

uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = 0;

	for (; len >= 8; len -= 8, p += 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		/* big-endian 16-bit words: sum the bytes swapped, swap at the end */
		s += (w & 0xffffffff) + (w >> 32);
	}
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	/* s now holds the sum of little-endian-read 32-bit words: fold to 16
	 * bits and swap to network order. */
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (((s & 0xff) << 8) | (s >> 8)) + sum;
	for (; len >= 2; len -= 2, p += 2)
		s += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 32)
		s = (s & 0xffffffff) + (s >> 32);
	return (uint32_t)s;
}

uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + len;
}
