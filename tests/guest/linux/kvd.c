/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kvd [-p PORT]: the Linux guest's key-value service, the same line
 * protocol as the test guest's app=kv (tests/guest/apps/kv.c), so the same
 * clients (tests/guest/tools/kvclient.py) check both:
 *
 *     SET <key> <value>   -> OK          (value: the rest of the line)
 *     GET <key>           -> <value> | NIL
 *     INCR <key>          -> <new value> (a missing key counts as 0;
 *                                         ERR not an integer otherwise)
 *
 * Lines end in "\n" (a "\r" before it is dropped); anything else gets
 * "ERR unknown command" / "ERR syntax". Keys are at most KEY_MAX bytes,
 * values VAL_MAX ("ERR too long"); a line longer than LINE_MAX closes the
 * connection after "ERR line too long". Requests may be pipelined; many
 * connections are served at once by one poll() loop, each kept open for as
 * long as the client wants. Built with `gcc -static -O2` by ./build.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY_MAX	  64
#define VAL_MAX	  256
#define LINE_MAX  (KEY_MAX + VAL_MAX + 16)
#define MAX_CONNS 256
#define BUCKETS	  4096
#define OUT_MAX	  65536

struct entry {
	struct entry *next;
	size_t klen, vlen;
	char key[KEY_MAX];
	char val[VAL_MAX];
};

struct conn {
	int fd;
	size_t len;		/* bytes in line[] */
	size_t out_len, out_off; /* pending answer bytes in out[] */
	char line[LINE_MAX];
	char out[OUT_MAX];
	bool closing;  /* stop serving once out[] is sent */
	bool draining; /* answer sent and write side shut: discard until EOF */
};

static struct entry *table[BUCKETS];
static struct conn *conns[MAX_CONNS];

static uint32_t hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ (uint8_t)*k++) * 16777619u;
	return h;
}

/* The entry for key k, created (empty) when create is set; NULL if none. */
static struct entry *lookup(const char *k, size_t n, bool create)
{
	struct entry **b = &table[hash(k, n) % BUCKETS], *e;

	for (e = *b; e; e = e->next)
		if (e->klen == n && !memcmp(e->key, k, n))
			return e;
	if (!create || !(e = calloc(1, sizeof(*e))))
		return NULL;
	e->klen = n;
	memcpy(e->key, k, n);
	e->next = *b;
	*b = e;
	return e;
}

static void answer(struct conn *c, const char *s, size_t n)
{
	/* serve_conn() makes sure there is room for a whole answer */
	memcpy(c->out + c->out_len, s, n);
	c->out[c->out_len + n] = '\n';
	c->out_len += n + 1;
}

static void answer_str(struct conn *c, const char *s)
{
	answer(c, s, strlen(s));
}

static void do_incr(struct conn *c, const char *k, size_t klen)
{
	struct entry *e = lookup(k, klen, false);
	int64_t v = 0;
	size_t i = 0;
	bool neg = false;
	char num[24];
	int n;

	if (e) {
		if (e->vlen && e->val[0] == '-') {
			neg = true;
			i++;
		}
		if (i == e->vlen)
			return answer_str(c, "ERR not an integer");
		for (; i < e->vlen; i++) {
			if (e->val[i] < '0' || e->val[i] > '9' || v > (INT64_MAX - 9) / 10)
				return answer_str(c, "ERR not an integer");
			v = v * 10 + (e->val[i] - '0');
		}
		if (neg)
			v = -v;
	}
	if (v == INT64_MAX)
		return answer_str(c, "ERR overflow");
	if (!e && !(e = lookup(k, klen, true)))
		return answer_str(c, "ERR out of memory");
	n = snprintf(num, sizeof(num), "%" PRId64, v + 1);
	e->vlen = (size_t)n;
	memcpy(e->val, num, e->vlen);
	answer(c, num, e->vlen);
}

/* Answer one request line l (n bytes, without its "\n"). */
static void serve_line(struct conn *c, char *l, size_t n)
{
	struct entry *e;
	size_t klen;
	int cmd;

	if (n && l[n - 1] == '\r')
		n--;
	if (n > 4 && !memcmp(l, "SET ", 4))
		cmd = 0, l += 4, n -= 4;
	else if (n > 4 && !memcmp(l, "GET ", 4))
		cmd = 1, l += 4, n -= 4;
	else if (n > 5 && !memcmp(l, "INCR ", 5))
		cmd = 2, l += 5, n -= 5;
	else
		return answer_str(c, "ERR unknown command");
	for (klen = 0; klen < n && l[klen] != ' '; klen++)
		;
	if (!klen || (cmd != 0 && klen != n) || (cmd == 0 && klen == n))
		return answer_str(c, "ERR syntax");
	if (klen > KEY_MAX || (cmd == 0 && n - klen - 1 > VAL_MAX))
		return answer_str(c, "ERR too long");
	switch (cmd) {
	case 0:
		if (!(e = lookup(l, klen, true)))
			return answer_str(c, "ERR out of memory");
		e->vlen = n - klen - 1;
		memcpy(e->val, l + klen + 1, e->vlen);
		return answer_str(c, "OK");
	case 1:
		if (!(e = lookup(l, klen, false)))
			return answer_str(c, "NIL");
		return answer(c, e->val, e->vlen);
	default:
		return do_incr(c, l, klen);
	}
}

/* Serve the complete lines in c->line while answers fit in c->out. */
static void serve_conn(struct conn *c)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(c->line + start, '\n', c->len - start))) {
		if (OUT_MAX - c->out_len < VAL_MAX + 2)
			break; /* the rest once the client has read its answers */
		serve_line(c, c->line + start, (size_t)(nl - (c->line + start)));
		start = (size_t)(nl - c->line) + 1;
	}
	memmove(c->line, c->line + start, c->len - start);
	c->len -= start;
	if (c->len == LINE_MAX && !memchr(c->line, '\n', c->len)) {
		answer_str(c, "ERR line too long");
		c->closing = true;
	}
}

/* Send what is pending; false: the connection is gone. */
static bool flush_conn(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	if (c->closing && !c->draining) {
		/* closing with unread input would send a RST that can discard
		 * the answer at the client: shut our side, read until EOF */
		shutdown(c->fd, SHUT_WR);
		c->draining = true;
	}
	return true;
}

/* Read and serve; false: the connection is gone. */
static bool read_conn(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->draining) {
			n = recv(c->fd, c->line, LINE_MAX, 0);
			if (n > 0)
				continue;
			return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
		}
		if (c->len == LINE_MAX || OUT_MAX - c->out_len < VAL_MAX + 2)
			return true; /* wait for the client to read its answers */
		n = recv(c->fd, c->line + c->len, LINE_MAX - c->len, 0);
		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
		c->len += (size_t)n;
		serve_conn(c);
		if (c->closing)
			return true;
	}
}

static void drop_conn(int i)
{
	close(conns[i]->fd);
	free(conns[i]);
	conns[i] = NULL;
}

static void accept_conns(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1, i;

		if (fd < 0)
			return;
		for (i = 0; i < MAX_CONNS && conns[i]; i++)
			;
		if (i == MAX_CONNS || !(conns[i] = calloc(1, sizeof(struct conn)))) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		conns[i]->fd = fd;
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	struct pollfd pfd[MAX_CONNS + 1];
	int idx[MAX_CONNS + 1];
	long port = 7000;
	int lfd, one = 1, opt;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		char *end;

		if (opt != 'p')
			goto usage;
		errno = 0;
		port = strtol(optarg, &end, 10);
		if (errno || *end || port < 1 || port > 65535)
			goto usage;
	}
	if (optind != argc)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	sa.sin_port = htons((uint16_t)port);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 64)) {
		fprintf(stderr, "kvd: port %ld: %s\n", port, strerror(errno));
		return 1;
	}
	for (;;) {
		int n = 1, i;

		pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (i = 0; i < MAX_CONNS; i++) {
			struct conn *c = conns[i];

			if (!c)
				continue;
			pfd[n].fd = c->fd;
			pfd[n].events = c->out_len ? POLLOUT : POLLIN;
			idx[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("kvd: poll");
			return 1;
		}
		for (i = 1; i < n; i++) {
			struct conn *c = conns[idx[i]];

			if (!pfd[i].revents)
				continue;
			if ((pfd[i].revents & (POLLERR | POLLNVAL)) ||
			    ((pfd[i].revents & (POLLIN | POLLHUP)) && !c->out_len && !read_conn(c)) ||
			    (c->out_len && !flush_conn(c))) {
				drop_conn(idx[i]);
				continue;
			}
			/* answers sent: serve lines that waited for room, then read on */
			if (!c->out_len && c->len && !c->closing) {
				serve_conn(c);
				if (c->out_len && !flush_conn(c))
					drop_conn(idx[i]);
			}
		}
		if (pfd[0].revents & POLLIN)
			accept_conns(lfd);
	}
usage:
	fprintf(stderr, "usage: kvd [-p PORT]\n");
	return 2;
}
