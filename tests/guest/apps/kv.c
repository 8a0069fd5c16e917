/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * app=kv [port=7000]: a key-value store in guest RAM behind a line protocol,
 * any number of clients at once (up to TCP_MAX_CONNS connections):
 *
 *     SET <key> <value>   -> OK          (value: the rest of the line)
 *     GET <key>           -> <value> | NIL
 *     INCR <key>          -> <new value> (a missing key counts as 0;
 *                                         ERR not an integer otherwise)
 *
 * Lines end in "\n" (a "\r" before it is dropped); anything else gets
 * "ERR unknown command". Keys are at most KEY_MAX bytes, values VAL_MAX;
 * longer ones get "ERR too long". Requests may be pipelined: a connection
 * is served line by line as long as its send buffer has room for an answer.
 *
 * Table: open addressing with linear probing, SLOTS entries, FNV-1a hash.
 */
#include "../net/net.h"

#define KEY_MAX	 64
#define VAL_MAX	 256
#define SLOTS	 16384
#define LINE_MAX (KEY_MAX + VAL_MAX + 16)
#define ANSWER	 (VAL_MAX + 2)

struct slot {
	uint8_t klen;
	uint16_t vlen;
	char key[KEY_MAX];
	char val[VAL_MAX];
};

struct client {
	struct tcp_conn *c;
	size_t len;
	char line[LINE_MAX];
};

static struct slot *table;
static unsigned int nr_keys;
static struct client clients[TCP_MAX_CONNS];

static uint32_t hash(const char *k, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ (uint8_t)*k++) * 16777619u;
	return h;
}

/* The key's slot, or the empty slot where it would go (NULL: table full). */
static struct slot *find(const char *k, size_t n)
{
	uint32_t i = hash(k, n) % SLOTS;

	for (unsigned int probes = 0; probes < SLOTS; probes++, i = (i + 1) % SLOTS) {
		struct slot *s = &table[i];

		if (!s->klen || (s->klen == n && !memcmp(s->key, k, n)))
			return s;
	}
	return NULL;
}

static size_t put_answer(char *out, const char *s)
{
	size_t n = strlen(s);

	memcpy(out, s, n);
	out[n] = '\n';
	return n + 1;
}

static size_t do_incr(struct slot *s, const char *k, size_t klen, char *out)
{
	int64_t v = 0;
	bool neg = false;
	size_t i = 0;
	char num[24];

	if (s->klen) {
		if (i < s->vlen && s->val[0] == '-') {
			neg = true;
			i++;
		}
		if (i == s->vlen)
			return put_answer(out, "ERR not an integer");
		for (; i < s->vlen; i++) {
			if (s->val[i] < '0' || s->val[i] > '9' || v > (INT64_MAX - 9) / 10)
				return put_answer(out, "ERR not an integer");
			v = v * 10 + (s->val[i] - '0');
		}
		if (neg)
			v = -v;
	}
	if (v == INT64_MAX)
		return put_answer(out, "ERR overflow");
	v++;
	if (!s->klen) {
		s->klen = (uint8_t)klen;
		memcpy(s->key, k, klen);
		nr_keys++;
	}
	s->vlen = (uint16_t)snprintf(num, sizeof(num), "%ld", v);
	memcpy(s->val, num, s->vlen);
	memcpy(out, num, s->vlen);
	out[s->vlen] = '\n';
	return s->vlen + 1u;
}

/* Answer one line (without its newline) into out; returns the length. */
static size_t serve(char *l, size_t n, char *out)
{
	const char *k;
	size_t klen;
	struct slot *s;
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
		return put_answer(out, "ERR unknown command");
	k = l;
	for (klen = 0; klen < n && l[klen] != ' '; klen++)
		;
	if (!klen || (cmd != 0 && klen != n) || (cmd == 0 && klen == n))
		return put_answer(out, "ERR syntax");
	if (klen > KEY_MAX || (cmd == 0 && n - klen - 1 > VAL_MAX))
		return put_answer(out, "ERR too long");
	if (!(s = find(k, klen)))
		return put_answer(out, "ERR table full");
	switch (cmd) {
	case 0:
		if (!s->klen) {
			s->klen = (uint8_t)klen;
			memcpy(s->key, k, klen);
			nr_keys++;
		}
		s->vlen = (uint16_t)(n - klen - 1);
		memcpy(s->val, l + klen + 1, s->vlen);
		return put_answer(out, "OK");
	case 1:
		if (!s->klen)
			return put_answer(out, "NIL");
		memcpy(out, s->val, s->vlen);
		out[s->vlen] = '\n';
		return s->vlen + 1u;
	default:
		return do_incr(s, k, klen, out);
	}
}

/* Serve complete lines while answers fit; false: close the connection. */
static bool serve_client(struct client *cl)
{
	char out[ANSWER];
	size_t start = 0;

	for (;;) {
		char *nl;
		size_t n;

		if (cl->len < LINE_MAX) {
			n = tcp_recv(cl->c, cl->line + cl->len, LINE_MAX - cl->len);
			cl->len += n;
		}
		nl = memchr(cl->line + start, '\n', cl->len - start);
		if (!nl) {
			if (start == 0 && cl->len == LINE_MAX) {
				tcp_send(cl->c, "ERR line too long\n", 18);
				return false;
			}
			memmove(cl->line, cl->line + start, cl->len - start);
			cl->len -= start;
			start = 0;
			if (cl->len == LINE_MAX || !tcp_recv_ready(cl->c))
				return true;
			continue;
		}
		if (tcp_send_space(cl->c) < ANSWER)
			break;
		n = serve(cl->line + start, (size_t)(nl - (cl->line + start)), out);
		tcp_send(cl->c, out, n);
		start = (size_t)(nl - cl->line) + 1;
	}
	memmove(cl->line, cl->line + start, cl->len - start);
	cl->len -= start;
	return true;
}

int app_kv(void)
{
	uint16_t port = net_port(7000);
	struct tcp_conn *c;
	int rc;

	if (!port)
		return EXIT_USAGE;
	if ((rc = net_init("kv", port)))
		return rc;
	table = mem_alloc(SLOTS * sizeof(*table), 4096);
	tcp_listen(port);
	for (;;) {
		net_poll();
		while ((c = tcp_accept(port))) {
			struct client *cl = &clients[tcp_conn_id(c)];

			cl->c = c;
			cl->len = 0;
		}
		for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
			struct client *cl = &clients[i];

			if (!cl->c)
				continue;
			if (!serve_client(cl) ||
			    (tcp_eof(cl->c) && !memchr(cl->line, '\n', cl->len))) {
				tcp_close(cl->c);
				cl->c = NULL;
			}
		}
		net_flush();
	}
}
