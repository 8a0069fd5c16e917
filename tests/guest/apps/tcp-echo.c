/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=tcp-echo [port=7]: every connection gets back what it sends; when the
 * peer has finished sending, the guest closes after the last echoed byte.
 * Reading only as much as fits into the send buffer keeps the receive
 * window tied to how fast the peer reads its echo.
 */
#include "../net/net.h"

static struct tcp_conn *conns[TCP_MAX_CONNS];
static uint8_t buf[65536];

int app_tcp_echo(void)
{
	uint16_t port = net_port(7);
	struct tcp_conn *c;
	int rc;

	if (!port)
		return EXIT_USAGE;
	if ((rc = net_init("tcp-echo", port)))
		return rc;
	tcp_listen(port);
	for (;;) {
		net_poll();
		while ((c = tcp_accept(port)))
			conns[tcp_conn_id(c)] = c;
		for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
			size_t n;

			if (!(c = conns[i]))
				continue;
			n = tcp_send_space(c);
			if (n > sizeof(buf))
				n = sizeof(buf);
			if (n && (n = tcp_recv(c, buf, n)))
				tcp_send(c, buf, n);
			if (tcp_eof(c)) {
				tcp_close(c);
				conns[i] = NULL;
			}
		}
		net_flush();
	}
}
