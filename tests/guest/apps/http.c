/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=http [port=80]: HTTP/1.1 with keep-alive. "GET /" (and "HEAD /")
 * serves a small HTML page that shows how many times it has been served;
 * "GET /static" the same page without the count (its answer does not
 * depend on the order in which connections' requests arrive, so two copies
 * of the guest answer it alike under any number of connections); any other
 * path gets 404, any other method 405. A connection stays open
 * unless the request says "Connection: close" or is HTTP/1.0 without
 * "Connection: keep-alive". Request bodies are not supported: a request
 * with Content-Length or Transfer-Encoding gets 400 and the connection is
 * closed. Pipelined requests are answered in order.
 *
 * stamp=1: every answer carries "X-Stamp: <TSC>", the CPU's time stamp
 * counter when it was built -- output that differs between two copies of
 * the guest (like a Date: header), for COLO's packet comparison.
 */
#include "../net/net.h"

#define REQ_MAX	 4096
#define RESP_MAX 1024

struct client {
	struct tcp_conn *c;
	size_t len;
	bool closing;
	char req[REQ_MAX];
};

static struct client clients[TCP_MAX_CONNS];
static uint64_t served;
static bool stamp;

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Does the header block contain "name: value" (case-insensitive)? */
static bool has_header(const char *h, size_t n, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = value ? strlen(value) : 0;

	for (size_t i = 0; i + nl + 1 <= n; i++) {
		size_t j, k;

		if (i && h[i - 1] != '\n')
			continue;
		for (j = 0; j < nl && lower(h[i + j]) == name[j]; j++)
			;
		if (j < nl || h[i + nl] != ':')
			continue;
		if (!value)
			return true;
		for (k = i + nl + 1; k < n && h[k] == ' '; k++)
			;
		for (j = 0; j < vl && k + j < n && lower(h[k + j]) == value[j]; j++)
			;
		if (j == vl)
			return true;
	}
	return false;
}

/* Build the answer to one request (head: request line and headers). */
static size_t answer(const char *head, size_t n, char *out, bool *close)
{
	static const char page_fmt[] =
	    "<!DOCTYPE html>\n<html><head><title>colovm test guest</title></head>\n"
	    "<body><h1>colovm test guest</h1>\n<p>requests: %lu</p></body></html>\n";
	static const char static_page[] =
	    "<!DOCTYPE html>\n<html><head><title>colovm test guest</title></head>\n"
	    "<body><h1>colovm test guest</h1>\n<p>a static page</p></body></html>\n";
	const char *status = "200 OK", *type = "text/html";
	char body[512];
	size_t blen, len;
	bool head_only = false, http10 = false;

	if (n >= 9 && !memcmp(head + n - 9, " HTTP/1.0", 9))
		http10 = true;
	for (size_t i = 0; i < n; i++)
		if (head[i] == '\r') {
			http10 = i >= 9 && !memcmp(head + i - 9, " HTTP/1.0", 9);
			break;
		}
	*close = has_header(head, n, "connection", "close") ||
		 (http10 && !has_header(head, n, "connection", "keep-alive"));
	if (has_header(head, n, "content-length", NULL) ||
	    has_header(head, n, "transfer-encoding", NULL)) {
		status = "400 Bad Request";
		type = "text/plain";
		blen = (size_t)snprintf(body, sizeof(body), "request bodies are not supported\n");
		*close = true;
	} else if (n >= 4 && (!memcmp(head, "GET ", 4) || (n >= 5 && !memcmp(head, "HEAD ", 5)))) {
		const char *path = head + (head[0] == 'G' ? 4 : 5);

		head_only = head[0] == 'H';
		if (path[0] == '/' && (path[1] == ' ' || path[1] == '\r' || path[1] == '?')) {
			blen = (size_t)snprintf(body, sizeof(body), page_fmt, ++served);
		} else if (!memcmp(path, "/static", 7) &&
			   (path[7] == ' ' || path[7] == '\r' || path[7] == '?')) {
			blen = sizeof(static_page) - 1;
			memcpy(body, static_page, blen);
		} else {
			status = "404 Not Found";
			type = "text/plain";
			blen = (size_t)snprintf(body, sizeof(body), "not found\n");
		}
	} else {
		status = "405 Method Not Allowed";
		type = "text/plain";
		blen = (size_t)snprintf(body, sizeof(body), "method not allowed\n");
	}
	len = (size_t)snprintf(out, RESP_MAX,
			       "HTTP/1.1 %s\r\nServer: colovm-testguest\r\nContent-Type: %s\r\n"
			       "Content-Length: %zu\r\nConnection: %s\r\n",
			       status, type, blen, *close ? "close" : "keep-alive");
	if (stamp)
		len += (size_t)snprintf(out + len, RESP_MAX - len, "X-Stamp: %lu\r\n",
					(unsigned long)rdtsc());
	len += (size_t)snprintf(out + len, RESP_MAX - len, "\r\n");
	if (!head_only) {
		memcpy(out + len, body, blen);
		len += blen;
	}
	return len;
}

static char *find_end(char *s, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++)
		if (s[i] == '\r' && !memcmp(s + i, "\r\n\r\n", 4))
			return s + i;
	return NULL;
}

/* Answer complete requests while they fit; false: close now. */
static bool serve_client(struct client *cl)
{
	char out[RESP_MAX];

	while (!cl->closing) {
		char *end;
		size_t hn, n;
		bool close;

		cl->len += tcp_recv(cl->c, cl->req + cl->len, REQ_MAX - cl->len);
		if (!(end = find_end(cl->req, cl->len)))
			return cl->len < REQ_MAX; /* a head too large: give up */
		if (tcp_send_space(cl->c) < RESP_MAX)
			return true;
		hn = (size_t)(end - cl->req);
		n = answer(cl->req, hn, out, &close);
		tcp_send(cl->c, out, n);
		memmove(cl->req, end + 4, cl->len - hn - 4);
		cl->len -= hn + 4;
		if (close)
			cl->closing = true;
	}
	return false;
}

int app_http(void)
{
	uint16_t port = net_port(80);
	struct tcp_conn *c;
	int rc;

	if (!port)
		return EXIT_USAGE;
	stamp = cmdline_get("stamp") && !strcmp(cmdline_get("stamp"), "1");
	if ((rc = net_init("http", port)))
		return rc;
	tcp_listen(port);
	for (;;) {
		net_poll();
		while ((c = tcp_accept(port))) {
			struct client *cl = &clients[tcp_conn_id(c)];

			cl->c = c;
			cl->len = 0;
			cl->closing = false;
		}
		for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
			struct client *cl = &clients[i];

			if (!cl->c)
				continue;
			if (!serve_client(cl) || tcp_eof(cl->c)) {
				tcp_close(cl->c);
				cl->c = NULL;
			}
		}
		net_flush();
	}
}
