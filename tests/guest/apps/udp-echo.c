/* SPDX-License-Identifier: GPL-2.0-only */
/* app=udp-echo [port=7]: every datagram goes back to its sender. */
#include "../net/net.h"

static void echo(uint32_t src, uint16_t sport, uint16_t dport, const uint8_t *data, size_t len)
{
	udp_send(src, dport, sport, data, len);
}

int app_udp_echo(void)
{
	uint16_t port = net_port(7);
	int rc;

	if (!port)
		return EXIT_USAGE;
	if ((rc = net_init("udp-echo", port)))
		return rc;
	udp_bind(port, echo);
	for (;;) {
		net_poll();
		net_flush();
	}
}
