/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * TCP (RFC 9293), server side only: listeners accept connections (passive
 * open); there is no active open.
 *
 * Each of TCP_MAX_CONNS control blocks owns a SBUF-byte send ring (the bytes
 * from snd_una on: sent-but-unacknowledged, then unsent) and an RBUF-byte
 * receive ring whose free space is the advertised window (no window
 * scaling, so at most 65535). Segments are at most the peer's MSS (option in
 * its SYN, else 536); ours is 1460.
 *
 * Reception: a segment that starts beyond rcv_nxt (counted as tcp_ooo) is
 * kept in the receive ring at its place, up to OOO_RANGES separate ranges,
 * and answered at once with a pure duplicate ACK (RFC 5681 4.2: an ACK that
 * carries data does not count as a duplicate, and the peer needs three to
 * retransmit fast). When the hole is filled, rcv_nxt jumps over what was
 * kept: after a loss the peer retransmits the hole, not the whole window,
 * which matters with a peer that, after a timeout, sends one old segment per
 * backed-off RTO and new data otherwise (Linux's F-RTO). A FIN is taken in
 * order only. Other ACKs are sent once per stack iteration (net_flush()),
 * riding on data when the app answered in the same iteration.
 *
 * Transmission: as much as the peer's window allows (no congestion control:
 * this stack talks to a host over a tap). Retransmission is go-back-N from
 * snd_una, on a timeout (RTO_INIT doubling per expiry up to RTO_MAX; the
 * connection is reset after MAX_RETRIES) or on three duplicate ACKs. With
 * data queued and a zero window the same timer sends one-byte probes.
 *
 * Closing: tcp_close() queues a FIN after the data. TIME_WAIT lasts TW_US
 * (not 2 MSL), and a new SYN for a connection in TIME_WAIT reopens it.
 *
 * ISN: mix64 of the connection's addresses and ports with the TSC, or with a
 * constant when isn=fixed (two guests then answer with the same sequence
 * numbers, which COLO's packet comparison likes).
 */
#include "net.h"

#define SBUF	      65536
#define RBUF	      65536
#define MSS_OURS      1460
#define MSS_DEFAULT   536
#define RTO_INIT      200000 /* µs */
#define RTO_MAX	      4000000
#define MAX_RETRIES   10
#define TW_US	      500000
#define MAX_LISTEN    4
#define OOO_RANGES    8
#define OPT_MSS	      2
#define FIXED_ISN_KEY 0x636f6c6f766d4953ULL

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

enum tcp_state {
	FREE,
	SYN_RCVD,
	ESTABLISHED,
	FIN_WAIT_1,
	FIN_WAIT_2,
	CLOSING,
	TIME_WAIT,
	CLOSE_WAIT,
	LAST_ACK,
	CLOSED, /* reset, timed out or finished: waits for the app's tcp_close() */
};

struct tcp_conn {
	enum tcp_state state;
	bool accepted;	 /* handed to the app by tcp_accept() */
	bool app_owned;	 /* accepted and not yet tcp_close()d */
	bool fin_queued; /* app closed: FIN after the data */
	bool fin_sent;	 /* FIN is in snd_una..snd_nxt */
	bool fin_valid;	 /* fin_seq is set (FIN sent at least once) */
	bool fin_rcvd;
	bool ack_pending;
	bool probe;
	uint32_t rip;
	uint16_t rport, lport;
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, fin_seq;
	uint16_t mss;
	uint32_t rcv_nxt, adv_wnd;
	uint8_t *sbuf, *rbuf;
	uint32_t s_off, s_len; /* send ring: bytes from snd_una */
	uint32_t r_off, r_len; /* receive ring: unread bytes */
	uint64_t rto_at, rto_us, tw_at;
	unsigned int retries, dupacks;
	/* received beyond rcv_nxt: sorted, disjoint, not touching [start, end) */
	uint32_t ooo_start[OOO_RANGES], ooo_end[OOO_RANGES];
	unsigned int nr_ooo;
};

static struct tcp_conn conns[TCP_MAX_CONNS];
static uint16_t listeners[MAX_LISTEN];
static unsigned int nr_listeners;

static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}
static uint32_t min32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

int tcp_init(void)
{
	uint8_t *mem = mem_alloc((size_t)TCP_MAX_CONNS * (SBUF + RBUF), 4096);

	for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
		conns[i].sbuf = mem + (size_t)i * (SBUF + RBUF);
		conns[i].rbuf = conns[i].sbuf + SBUF;
	}
	return 0;
}

int tcp_listen(uint16_t port)
{
	if (nr_listeners == MAX_LISTEN)
		return -1;
	listeners[nr_listeners++] = port;
	return 0;
}

static bool listening(uint16_t port)
{
	for (unsigned int i = 0; i < nr_listeners; i++)
		if (listeners[i] == port)
			return true;
	return false;
}

static void conn_free(struct tcp_conn *c)
{
	uint8_t *s = c->sbuf, *r = c->rbuf;

	memset(c, 0, sizeof(*c));
	c->sbuf = s;
	c->rbuf = r;
}

/* Free the block when neither the protocol nor the app needs it any more. */
static void maybe_free(struct tcp_conn *c)
{
	if (c->state == CLOSED && !c->app_owned)
		conn_free(c);
}

static void set_closed(struct tcp_conn *c)
{
	c->state = CLOSED;
	c->rto_at = 0;
	maybe_free(c);
}

static uint32_t rcv_space(const struct tcp_conn *c)
{
	return RBUF - c->r_len;
}

/* Send one segment; data_off is the offset from snd_una in the send ring.
 * false if no transmit buffer was free. */
static bool xmit(struct tcp_conn *c, uint32_t seq, uint8_t flags, uint32_t data_off, uint32_t len)
{
	uint8_t *f = eth_alloc(), *q;
	uint32_t hl = TCP_HLEN + ((flags & SYN) ? 4 : 0), wnd = min32(rcv_space(c), 65535);

	if (!f)
		return false;
	q = ip_payload(f);
	put16(q, c->lport);
	put16(q + 2, c->rport);
	put32(q + 4, seq);
	put32(q + 8, c->rcv_nxt);
	q[12] = (uint8_t)((hl / 4) << 4);
	q[13] = flags | ACK;
	put16(q + 14, (uint16_t)wnd);
	put16(q + 16, 0);
	put16(q + 18, 0);
	if (flags & SYN) {
		q[20] = OPT_MSS;
		q[21] = 4;
		put16(q + 22, MSS_OURS);
	}
	if (len) {
		uint32_t pos = (c->s_off + data_off) % SBUF, first = min32(len, SBUF - pos);

		memcpy(q + hl, c->sbuf + pos, first);
		memcpy(q + hl + first, c->sbuf, len - first);
	}
	put16(q + 16, csum_fold(csum_add(
			  csum_pseudo(net_cfg.ip, c->rip, IP_PROTO_TCP, (uint16_t)(hl + len)), q,
			  hl + len)));
	c->adv_wnd = wnd;
	c->ack_pending = false;
	ip_send(f, c->rip, IP_PROTO_TCP, hl + len);
	return true;
}

/* A reset for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
static void send_rst(uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		     uint8_t flags)
{
	uint8_t *f = eth_alloc(), *q;

	if (!f)
		return;
	net_stats.tcp_rst_sent++;
	q = ip_payload(f);
	put16(q, sport);
	put16(q + 2, dport);
	put32(q + 4, seq);
	put32(q + 8, ack);
	q[12] = (TCP_HLEN / 4) << 4;
	q[13] = flags;
	put16(q + 14, 0);
	put16(q + 16, 0);
	put16(q + 18, 0);
	put16(q + 16, csum_fold(csum_add(csum_pseudo(net_cfg.ip, dst, IP_PROTO_TCP, TCP_HLEN), q,
					 TCP_HLEN)));
	ip_send(f, dst, IP_PROTO_TCP, TCP_HLEN);
}

static void arm_rto(struct tcp_conn *c)
{
	if (!c->rto_at)
		c->rto_at = now_us() + c->rto_us;
}

static void output(struct tcp_conn *c)
{
	uint32_t end, wnd;
	bool sent = false;

	switch (c->state) {
	case ESTABLISHED:
	case CLOSE_WAIT:
	case FIN_WAIT_1:
	case CLOSING:
	case LAST_ACK:
		break;
	case FIN_WAIT_2:
	case TIME_WAIT:
		if (c->ack_pending)
			xmit(c, c->snd_nxt, 0, 0, 0);
		return;
	default:
		return;
	}
	end = c->snd_una + c->s_len;
	wnd = c->snd_wnd;
	if (c->probe && !wnd)
		wnd = 1;
	c->probe = false;
	while (seq_lt(c->snd_nxt, end)) {
		uint32_t inflight = c->snd_nxt - c->snd_una, n;

		if (inflight >= wnd)
			break;
		n = min32(min32(end - c->snd_nxt, c->mss), wnd - inflight);
		if (!xmit(c, c->snd_nxt, PSH, inflight, n))
			break;
		c->snd_nxt += n;
		sent = true;
	}
	if (c->fin_queued && !c->fin_sent && c->snd_nxt == end && xmit(c, end, FIN, 0, 0)) {
		c->fin_seq = end;
		c->fin_valid = c->fin_sent = true;
		c->snd_nxt = end + 1;
		sent = true;
	}
	if (seq_lt(c->snd_max, c->snd_nxt))
		c->snd_max = c->snd_nxt;
	if (c->ack_pending)
		xmit(c, c->snd_nxt, 0, 0, 0);
	if (c->snd_nxt != c->snd_una || (c->s_len && !c->snd_wnd))
		arm_rto(c);
	(void)sent;
}

void tcp_output_all(void)
{
	for (unsigned int i = 0; i < TCP_MAX_CONNS; i++)
		if (conns[i].state != FREE)
			output(&conns[i]);
}

static void go_back(struct tcp_conn *c)
{
	c->snd_nxt = c->snd_una;
	if (c->fin_sent && !(c->fin_valid && seq_lt(c->fin_seq, c->snd_una)))
		c->fin_sent = false;
	c->dupacks = 0;
	net_stats.tcp_retrans++;
}

void tcp_timers(uint64_t now)
{
	for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
		struct tcp_conn *c = &conns[i];

		if (c->state == TIME_WAIT && now >= c->tw_at) {
			set_closed(c);
			continue;
		}
		if (!c->rto_at || now < c->rto_at)
			continue;
		c->rto_at = 0;
		if (++c->retries > MAX_RETRIES) {
			set_closed(c);
			continue;
		}
		c->rto_us = c->rto_us * 2 > RTO_MAX ? RTO_MAX : c->rto_us * 2;
		if (c->state == SYN_RCVD) {
			net_stats.tcp_retrans++;
			xmit(c, c->iss, SYN, 0, 0);
			arm_rto(c);
			continue;
		}
		if (c->snd_nxt == c->snd_una && c->s_len && !c->snd_wnd)
			c->probe = true;
		else
			go_back(c);
		output(c);
	}
}

static struct tcp_conn *lookup(uint32_t src, uint16_t sport, uint16_t dport)
{
	for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
		struct tcp_conn *c = &conns[i];

		if (c->state != FREE && c->rip == src && c->rport == sport && c->lport == dport)
			return c;
	}
	return NULL;
}

static uint16_t peer_mss(const uint8_t *opt, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (opt[i] == 0)
			break;
		if (opt[i] == 1) {
			i++;
			continue;
		}
		if (i + 1 >= len || opt[i + 1] < 2 || i + opt[i + 1] > len)
			break;
		if (opt[i] == OPT_MSS && opt[i + 1] == 4) {
			uint16_t m = get16(opt + i + 2);
			return m < 64 ? 64 : m > MSS_OURS ? MSS_OURS : m;
		}
		i += opt[i + 1];
	}
	return MSS_DEFAULT;
}

static void passive_open(uint32_t src, uint16_t sport, uint16_t dport, uint32_t seq, uint16_t wnd,
			 const uint8_t *opt, size_t optlen)
{
	struct tcp_conn *c = NULL;
	uint64_t tuple = (uint64_t)src << 32 | (uint32_t)sport << 16 | dport;

	for (unsigned int i = 0; i < TCP_MAX_CONNS && !c; i++)
		if (conns[i].state == FREE)
			c = &conns[i];
	if (!c) {
		net_stats.tcp_full++; /* the peer's SYN retransmission may find room */
		return;
	}
	c->state = SYN_RCVD;
	c->rip = src;
	c->rport = sport;
	c->lport = dport;
	c->iss = (uint32_t)mix64(tuple ^ (net_cfg.isn_fixed ? FIXED_ISN_KEY : rdtsc()));
	c->snd_una = c->iss;
	c->snd_nxt = c->snd_max = c->iss + 1;
	c->snd_wnd = wnd;
	c->mss = peer_mss(opt, optlen);
	c->rcv_nxt = seq + 1;
	c->rto_us = RTO_INIT;
	xmit(c, c->iss, SYN, 0, 0);
	arm_rto(c);
}

static void fin_acked(struct tcp_conn *c)
{
	switch (c->state) {
	case FIN_WAIT_1:
		c->state = FIN_WAIT_2;
		break;
	case CLOSING:
		c->state = TIME_WAIT;
		c->tw_at = now_us() + TW_US;
		break;
	case LAST_ACK:
		set_closed(c);
		break;
	default:
		break;
	}
}

static void do_ack(struct tcp_conn *c, uint32_t ack, uint16_t wnd, size_t plen)
{
	if (seq_lt(c->snd_max, ack)) { /* acknowledges what we never sent */
		c->ack_pending = true;
		return;
	}
	if (seq_lt(c->snd_una, ack)) {
		uint32_t acked = ack - c->snd_una, data = min32(acked, c->s_len);

		c->s_off = (c->s_off + data) % SBUF;
		c->s_len -= data;
		c->snd_una = ack;
		if (seq_lt(c->snd_nxt, ack))
			c->snd_nxt = ack;
		c->retries = 0;
		c->dupacks = 0;
		c->rto_us = RTO_INIT;
		c->rto_at = 0;
		c->snd_wnd = wnd;
		if (c->fin_valid && seq_lt(c->fin_seq, ack))
			fin_acked(c);
		return;
	}
	if (ack == c->snd_una && !plen && wnd == c->snd_wnd && c->snd_nxt != c->snd_una &&
	    ++c->dupacks == 3)
		go_back(c);
	c->snd_wnd = wnd;
}

/* Store n bytes of stream at seq (rcv_nxt <= seq, within the free part of the
 * receive ring) if the app still reads them; a closed app's data is counted
 * as received and dropped. */
static void rcv_store(struct tcp_conn *c, uint32_t seq, const uint8_t *data, uint32_t n)
{
	uint32_t pos, first;

	if (!c->app_owned && c->accepted)
		return;
	pos = (c->r_off + c->r_len + (seq - c->rcv_nxt)) % RBUF;
	first = min32(n, RBUF - pos);
	memcpy(c->rbuf + pos, data, first);
	memcpy(c->rbuf, data + first, n - first);
}

/* Remember [seq, end) as received out of order, merging with neighbours;
 * false when there is no room for another range (the bytes are dropped). */
static bool ooo_add(struct tcp_conn *c, uint32_t seq, uint32_t end)
{
	unsigned int i = 0, j;

	while (i < c->nr_ooo && seq_lt(c->ooo_end[i], seq))
		i++;
	/* ranges i..j-1 overlap or touch [seq, end): merge them into one */
	for (j = i; j < c->nr_ooo && seq_le(c->ooo_start[j], end); j++) {
		if (seq_lt(c->ooo_start[j], seq))
			seq = c->ooo_start[j];
		if (seq_lt(end, c->ooo_end[j]))
			end = c->ooo_end[j];
	}
	if (i == j) {
		if (c->nr_ooo == OOO_RANGES)
			return false;
		memmove(&c->ooo_start[i + 1], &c->ooo_start[i], (c->nr_ooo - i) * sizeof(uint32_t));
		memmove(&c->ooo_end[i + 1], &c->ooo_end[i], (c->nr_ooo - i) * sizeof(uint32_t));
		c->nr_ooo++;
	} else if (j - i > 1) {
		memmove(&c->ooo_start[i + 1], &c->ooo_start[j], (c->nr_ooo - j) * sizeof(uint32_t));
		memmove(&c->ooo_end[i + 1], &c->ooo_end[j], (c->nr_ooo - j) * sizeof(uint32_t));
		c->nr_ooo -= j - i - 1;
	}
	c->ooo_start[i] = seq;
	c->ooo_end[i] = end;
	return true;
}

/* rcv_nxt moved: take in the kept ranges it reached. */
static void ooo_advance(struct tcp_conn *c)
{
	unsigned int k = 0;

	while (k < c->nr_ooo && seq_le(c->ooo_start[k], c->rcv_nxt)) {
		if (seq_lt(c->rcv_nxt, c->ooo_end[k])) {
			uint32_t n = c->ooo_end[k] - c->rcv_nxt;

			if (c->app_owned || !c->accepted)
				c->r_len += n;
			c->rcv_nxt = c->ooo_end[k];
		}
		k++;
	}
	if (k) {
		c->nr_ooo -= k;
		memmove(c->ooo_start, &c->ooo_start[k], c->nr_ooo * sizeof(uint32_t));
		memmove(c->ooo_end, &c->ooo_end[k], c->nr_ooo * sizeof(uint32_t));
	}
}

static void do_data(struct tcp_conn *c, const uint8_t *data, uint32_t seq, uint32_t plen,
		    uint8_t flags)
{
	if (c->state != ESTABLISHED && c->state != FIN_WAIT_1 && c->state != FIN_WAIT_2)
		return;
	if (seq_lt(seq, c->rcv_nxt)) { /* starts with bytes we have */
		uint32_t off = c->rcv_nxt - seq;

		if (off > plen)
			return;
		data += off;
		plen -= off;
		seq = c->rcv_nxt;
	}
	if (seq != c->rcv_nxt) {
		uint32_t off = seq - c->rcv_nxt, space = rcv_space(c);

		net_stats.tcp_ooo++;
		if (plen && off < space) {
			uint32_t n = min32(plen, space - off);

			if (ooo_add(c, seq, seq + n))
				rcv_store(c, seq, data, n);
		}
		xmit(c, c->snd_nxt, 0, 0, 0); /* duplicate ACK, now */
		return;
	}
	if (plen) {
		uint32_t n = min32(plen, rcv_space(c));

		rcv_store(c, seq, data, n);
		if (c->app_owned || !c->accepted)
			c->r_len += n;
		c->rcv_nxt += n;
		c->ack_pending = true;
		ooo_advance(c);
		if (n < plen || c->rcv_nxt != seq + n)
			return; /* the rest (and any FIN) comes again */
	}
	if (!(flags & FIN))
		return;
	c->rcv_nxt++;
	c->fin_rcvd = true;
	c->ack_pending = true;
	switch (c->state) {
	case ESTABLISHED:
		c->state = CLOSE_WAIT;
		break;
	case FIN_WAIT_1: /* our FIN not acked yet (else we'd be in FIN_WAIT_2) */
		c->state = CLOSING;
		break;
	case FIN_WAIT_2:
		c->state = TIME_WAIT;
		c->tw_at = now_us() + TW_US;
		break;
	default:
		break;
	}
}

void tcp_input(uint32_t src, uint32_t dst, const uint8_t *p, size_t len)
{
	uint16_t sport, dport, wnd;
	uint32_t seq, ack, hl, plen, rwnd;
	struct tcp_conn *c;
	uint8_t flags;
	bool acceptable;

	if (len < TCP_HLEN || (hl = (uint32_t)(p[12] >> 4) * 4) < TCP_HLEN || hl > len ||
	    csum_fold(csum_add(csum_pseudo(src, dst, IP_PROTO_TCP, (uint16_t)len), p, len))) {
		net_stats.tcp_bad++;
		return;
	}
	sport = get16(p);
	dport = get16(p + 2);
	seq = get32(p + 4);
	ack = get32(p + 8);
	flags = p[13];
	wnd = get16(p + 14);
	plen = (uint32_t)len - hl;

	c = lookup(src, sport, dport);
	if (c && c->state == TIME_WAIT && (flags & (SYN | ACK | RST)) == SYN &&
	    seq_lt(c->rcv_nxt, seq)) {
		set_closed(c); /* a new incarnation reopens a TIME_WAIT connection */
		c = lookup(src, sport, dport);
	}
	if (!c) {
		net_stats.tcp_no_conn++;
		if (flags & RST)
			return;
		if ((flags & (SYN | ACK | FIN)) == SYN && listening(dport)) {
			passive_open(src, sport, dport, seq, wnd, p + TCP_HLEN, hl - TCP_HLEN);
			return;
		}
		if (flags & ACK)
			send_rst(src, dport, sport, ack, 0, RST);
		else
			send_rst(src, dport, sport, 0,
				 seq + plen + ((flags & SYN) ? 1 : 0) + ((flags & FIN) ? 1 : 0),
				 RST | ACK);
		return;
	}

	if (c->state == SYN_RCVD) {
		if (flags & RST) {
			if (seq == c->rcv_nxt)
				set_closed(c);
			return;
		}
		if (flags & SYN) {
			if (seq + 1 == c->rcv_nxt)
				xmit(c, c->iss, SYN, 0, 0); /* the SYN-ACK got lost */
			return;
		}
		if (!(flags & ACK))
			return;
		if (ack != c->iss + 1) {
			send_rst(src, dport, sport, ack, 0, RST);
			return;
		}
		c->state = ESTABLISHED;
		c->snd_una = c->snd_nxt = c->snd_max = ack;
		c->snd_wnd = wnd;
		c->rto_at = 0;
		c->retries = 0;
		c->rto_us = RTO_INIT;
	}

	rwnd = rcv_space(c);
	if (!plen)
		acceptable = seq == c->rcv_nxt ||
			     (rwnd && seq_le(c->rcv_nxt, seq) && seq_lt(seq, c->rcv_nxt + rwnd));
	else
		acceptable = rwnd && ((seq_le(c->rcv_nxt, seq) && seq_lt(seq, c->rcv_nxt + rwnd)) ||
				      (seq_le(c->rcv_nxt, seq + plen - 1) &&
				       seq_lt(seq + plen - 1, c->rcv_nxt + rwnd)));
	if (!acceptable) {
		if (!(flags & RST))
			c->ack_pending = true;
		return;
	}
	if (flags & RST) {
		set_closed(c);
		return;
	}
	if (flags & SYN) { /* in a synchronized state: challenge ACK */
		c->ack_pending = true;
		return;
	}
	if (!(flags & ACK))
		return;
	do_ack(c, ack, wnd, plen);
	if (c->state == CLOSED || c->state == FREE)
		return;
	do_data(c, p + hl, seq, plen, flags);
}

struct tcp_conn *tcp_accept(uint16_t port)
{
	for (unsigned int i = 0; i < TCP_MAX_CONNS; i++) {
		struct tcp_conn *c = &conns[i];

		if (!c->accepted && c->lport == port &&
		    (c->state == ESTABLISHED || c->state == CLOSE_WAIT)) {
			c->accepted = c->app_owned = true;
			return c;
		}
	}
	return NULL;
}

size_t tcp_recv(struct tcp_conn *c, void *buf, size_t n)
{
	uint32_t k = min32((uint32_t)(n < RBUF ? n : RBUF), c->r_len), first;

	if (!k)
		return 0;
	first = min32(k, RBUF - c->r_off);
	memcpy(buf, c->rbuf + c->r_off, first);
	memcpy((uint8_t *)buf + first, c->rbuf, k - first);
	c->r_off = (c->r_off + k) % RBUF;
	c->r_len -= k;
	/* reopen a window that had shrunk by half or more */
	if (min32(rcv_space(c), 65535) - c->adv_wnd >= RBUF / 2)
		c->ack_pending = true;
	return k;
}

size_t tcp_recv_ready(const struct tcp_conn *c)
{
	return c->r_len;
}

size_t tcp_send_space(const struct tcp_conn *c)
{
	if (c->fin_queued || (c->state != ESTABLISHED && c->state != CLOSE_WAIT))
		return 0;
	return SBUF - c->s_len;
}

size_t tcp_send(struct tcp_conn *c, const void *data, size_t n)
{
	uint32_t k = min32((uint32_t)(n < SBUF ? n : SBUF), (uint32_t)tcp_send_space(c)), pos,
		 first;

	if (!k)
		return 0;
	pos = (c->s_off + c->s_len) % SBUF;
	first = min32(k, SBUF - pos);
	memcpy(c->sbuf + pos, data, first);
	memcpy(c->sbuf, (const uint8_t *)data + first, k - first);
	c->s_len += k;
	return k;
}

bool tcp_eof(const struct tcp_conn *c)
{
	return c->state == CLOSED || (c->fin_rcvd && !c->r_len);
}

bool tcp_dead(const struct tcp_conn *c)
{
	return c->state == CLOSED;
}

void tcp_close(struct tcp_conn *c)
{
	c->app_owned = false;
	c->r_len = 0;
	switch (c->state) {
	case ESTABLISHED:
		c->state = FIN_WAIT_1;
		c->fin_queued = true;
		break;
	case CLOSE_WAIT:
		c->state = LAST_ACK;
		c->fin_queued = true;
		break;
	default:
		maybe_free(c);
	}
}

unsigned int tcp_conn_id(const struct tcp_conn *c)
{
	return (unsigned int)(c - conns);
}
