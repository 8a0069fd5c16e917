// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP backend: one control socket (TCP_NODELAY) and N bulk sockets.
 *
 * Every socket gets keepalive and TCP_USER_TIMEOUT derived from the channel
 * timeout, and SO_SNDTIMEO/SO_RCVTIMEO so no call blocks longer than that: a
 * dead peer or a cut link surfaces as -ETIMEDOUT/-ECONNRESET/-EPIPE.
 *
 * Bulk: bulk_write() splits a large write across the streams (fork-join:
 * stream 0 is sent by the caller, the others by one sender thread each) and
 * sends straight from the caller's iovecs with sendmsg(). Each stream has a
 * receiver thread that reads BULK_DATA frames directly into the receive
 * region and keeps a Poly1305 over the stream; BULK_END closes an epoch and
 * carries the sender's tag. bulk_verify() waits until every stream has
 * verified the committed epoch.
 *
 * Listener: the server takes a channel's bulk sockets on its listening
 * socket, where any other peer may connect meanwhile. A connection whose
 * first frame is not a StreamJoin (another peer's control connection and
 * its Hello) is kept, with the header read from it, for the next
 * tcp_accept; l->fd is an epoll fd over the listening socket and an eventfd
 * that is readable while such connections wait, so a caller polling it
 * comes back for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "transport/internal.h"

#define FRAME_DATA_MAX (16u << 20) /* data bytes per BULK_DATA frame */
#define SPLIT_MIN      (1u << 20)  /* smaller writes go to one stream */
#define BATCH	       64	   /* iovecs per sendmsg */
/*
 * Bytes per sendmsg/recv on the bulk streams, each MAC'd right before it is
 * sent or right after it arrived, while it is still in cache: MAC'ing a
 * whole 16 MiB frame after (or before) the copy read it from memory twice.
 */
#define PIECE (256u << 10)

struct tcp_stream {
	struct transport_channel *ch;
	int fd;
	uint32_t idx;
	/* sending side */
	struct tp_poly tx_mac;
	pthread_t tx_thread;
	bool tx_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const struct iovec *job_iov;
	int job_n;
	uint64_t job_skip, job_len, job_off;
	bool job_pending, job_quit;
	int job_ret;
	/* receiving side */
	pthread_t rx_thread;
	bool rx_started;
	struct tp_poly rx_mac;
	uint64_t rx_epoch;
	uint64_t verified; /* epochs verified, under tcp_chan.vlock */
	bool eof;	   /* peer closed the stream cleanly, ditto */
};

/* Control frames are read through a buffer: one recv takes every frame
 * the socket holds (up to its size), where a header and a body were two,
 * and a poll before them a third. */
#define RX_BUF (64u << 10)

struct tcp_chan {
	int fd;
	/* the receiver's (transport_recv's lock): bytes read from fd, not yet
	 * handed out, at rx[rx_off..rx_off + rx_len); rx_short: the last read
	 * took less than it could (the socket was empty then) */
	uint8_t *rx;
	size_t rx_off, rx_len;
	bool rx_short;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned int n;
	unsigned int rr;
	bool closing;
	pthread_mutex_t vlock;
	pthread_cond_t vcond;
	struct tcp_stream s[TRANSPORT_MAX_STREAMS];
};

static struct tcp_chan *tc(const struct transport_channel *ch)
{
	return ch->be;
}

/* Connections accept_streams took that were not bulk streams: at most this
 * many wait, oldest first; more are closed. */
#define KEPT_MAX 16

struct tcp_kept {
	int fd;
	char peer[64];
	uint8_t hdr[TRANSPORT_HDR_LEN]; /* read from fd, for the handshake */
};

struct tcp_lst {
	int fd; /* the listening socket (non-blocking) */
	int ev; /* eventfd: readable while kept holds connections */
	/* accept's thread only (transport_accept: one at a time) */
	struct tcp_kept kept[KEPT_MAX];
	unsigned int head, n;
};

static struct tcp_lst *tl(const struct transport_listener *l)
{
	return l->be;
}

/* ---- socket helpers ------------------------------------------------------ */

static int errno_link(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK)
		return -ETIMEDOUT;
	return -e;
}

static void set_sockopts(int fd, int timeout_ms, bool control)
{
	int one = 1, idle = MAX(1, timeout_ms / 2000), intvl = 1;
	int cnt = MAX(1, timeout_ms / 1000 - idle);
	unsigned int uto = (unsigned int)timeout_ms;
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	if (control)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (control)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Send all of v[0..cnt) (modified on partial writes). */
static int sendv_all(int fd, struct iovec *v, int cnt)
{
	while (cnt) {
		struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)cnt};
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno_link(errno);
		}
		while (cnt && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* One recv: *got bytes (> 0), or -EAGAIN (flags MSG_DONTWAIT: nothing
 * there), or the link's error (-ECONNRESET at its end). */
static int recv_some(int fd, void *buf, size_t len, int flags, size_t *got)
{
	*got = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, len, flags);

		if (n > 0) {
			*got = (size_t)n;
			return 0;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if ((flags & MSG_DONTWAIT) && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -EAGAIN;
		return errno_link(errno);
	}
}

static int recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		size_t n;
		int ret = recv_some(fd, p, len, 0, &n);

		if (ret)
			return ret;
		p += n;
		len -= n;
	}
	return 0;
}

static int wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = ev};
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r ? 0 : -EAGAIN;
}

static void addr_str(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(buf, len, "%s:%u", host, port);
}

static int connect_addr(const struct sockaddr *sa, socklen_t len, int timeout_ms, int *out)
{
	int fd, ret, err = 0;
	socklen_t elen = sizeof(err);

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
		ret = -errno;
		goto err;
	}
	ret = wait_fd(fd, POLLOUT, timeout_ms);
	if (ret) {
		ret = ret == -EAGAIN ? -ETIMEDOUT : ret;
		goto err;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
	if (err) {
		ret = -err;
		goto err;
	}
	/* back to blocking; the socket timeouts bound every call */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		ret = -errno;
		goto err;
	}
	*out = fd;
	return 0;
err:
	close(fd);
	return ret;
}

/* ---- bulk streams: sending ----------------------------------------------- */

static void tx_mac_init(struct tcp_stream *s, uint64_t epoch)
{
	tp_poly_init_bulk(&s->tx_mac, s->ch->kb_send, epoch, s->idx);
}

static void rx_mac_init(struct tcp_stream *s, uint64_t epoch)
{
	tp_poly_init_bulk(&s->rx_mac, s->ch->kb_recv, epoch, s->idx);
}

/* Send len bytes of iov (after skipping skip bytes) as frames at off. */
static int stream_send(struct tcp_stream *s, const struct iovec *iov, int n, uint64_t skip,
		       uint64_t len, uint64_t off)
{
	int i = 0;
	size_t in = 0; /* offset inside iov[i] */

	while (i < n && skip >= iov[i].iov_len) {
		skip -= iov[i].iov_len;
		i++;
	}
	in = (size_t)skip;
	while (len) {
		uint32_t flen = (uint32_t)MIN(len, (uint64_t)FRAME_DATA_MAX);
		struct frame_hdr h = {
		    .magic = TRANSPORT_FRAME_MAGIC,
		    .version = TRANSPORT_WIRE_VERSION,
		    .type = TRANSPORT_FRAME_BULK_DATA,
		    .length = flen + 8,
		    .seq = s->ch->send_epoch,
		};
		uint8_t hdr[TRANSPORT_HDR_LEN + 8];
		struct iovec v[BATCH];
		uint64_t left = flen;
		int cnt = 1, ret;

		frame_hdr_encode(hdr, &h);
		put_le64(hdr + TRANSPORT_HDR_LEN, off);
		tp_poly_update(&s->tx_mac, hdr, sizeof(hdr));
		v[0].iov_base = hdr;
		v[0].iov_len = sizeof(hdr);
		while (left) {
			struct iovec sv[BATCH];
			uint64_t piece = 0;
			int first = cnt; /* v[0] is the header in the first batch */

			while (cnt < BATCH && left && piece < PIECE) {
				size_t take;

				if (i >= n)
					return -EINVAL;
				take = (size_t)MIN((uint64_t)(iov[i].iov_len - in), left);
				take = (size_t)MIN((uint64_t)take, PIECE - piece);
				v[cnt].iov_base = (char *)iov[i].iov_base + in;
				v[cnt].iov_len = take;
				cnt++;
				piece += take;
				left -= take;
				in += take;
				if (in == iov[i].iov_len) {
					i++;
					in = 0;
				}
			}
			/*
			 * MAC after the kernel's copy pulled the piece into the
			 * cache (the memory must not change until the commit).
			 */
			memcpy(sv, v, (size_t)cnt * sizeof(v[0]));
			ret = sendv_all(s->fd, sv, cnt);
			if (ret)
				return ret;
			for (int k = first; k < cnt; k++)
				tp_poly_update(&s->tx_mac, v[k].iov_base, v[k].iov_len);
			cnt = 0;
		}
		len -= flen;
		off += flen;
	}
	return 0;
}

static void *tx_thread(void *arg)
{
	struct tcp_stream *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->job_pending && !s->job_quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->job_quit)
			break;
		pthread_mutex_unlock(&s->lock);
		int ret = stream_send(s, s->job_iov, s->job_n, s->job_skip, s->job_len, s->job_off);
		pthread_mutex_lock(&s->lock);
		s->job_ret = ret;
		s->job_pending = false;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int tcp_bulk_write(struct transport_channel *ch, const struct iovec *iov, int n,
			  uint64_t off, uint64_t len)
{
	struct tcp_chan *t = tc(ch);
	uint64_t share, pos = 0;
	unsigned int k, used;
	int ret = 0;

	if (t->n == 1 || len < SPLIT_MIN) {
		struct tcp_stream *s = &t->s[t->rr++ % t->n];

		return stream_send(s, iov, n, 0, len, off);
	}
	share = ALIGN_UP((len + t->n - 1) / t->n, (uint64_t)4096);
	for (k = 1, pos = share; k < t->n && pos < len; k++, pos += share) {
		struct tcp_stream *s = &t->s[k];

		pthread_mutex_lock(&s->lock);
		s->job_iov = iov;
		s->job_n = n;
		s->job_skip = pos;
		s->job_len = MIN(share, len - pos);
		s->job_off = off + pos;
		s->job_ret = 0;
		s->job_pending = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->lock);
	}
	used = k;
	ret = stream_send(&t->s[0], iov, n, 0, MIN(share, len), off);
	for (k = 1; k < used; k++) {
		struct tcp_stream *s = &t->s[k];

		pthread_mutex_lock(&s->lock);
		while (s->job_pending)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!ret)
			ret = s->job_ret;
		pthread_mutex_unlock(&s->lock);
	}
	return ret;
}

static int tcp_bulk_flush(struct transport_channel *ch, uint64_t epoch,
			  uint8_t mac[crypto_onetimeauth_BYTES], bool *has_mac)
{
	struct tcp_chan *t = tc(ch);

	*has_mac = false;
	for (unsigned int k = 0; k < t->n; k++) {
		struct tcp_stream *s = &t->s[k];
		struct frame_hdr h = {
		    .magic = TRANSPORT_FRAME_MAGIC,
		    .version = TRANSPORT_WIRE_VERSION,
		    .type = TRANSPORT_FRAME_BULK_END,
		    .length = crypto_onetimeauth_BYTES,
		    .seq = epoch,
		};
		uint8_t buf[TRANSPORT_HDR_LEN + crypto_onetimeauth_BYTES];
		struct iovec v = {buf, sizeof(buf)};
		int ret;

		frame_hdr_encode(buf, &h);
		tp_poly_final(&s->tx_mac, buf + TRANSPORT_HDR_LEN);
		tx_mac_init(s, epoch + 1);
		ret = sendv_all(s->fd, &v, 1);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- bulk streams: receiving --------------------------------------------- */

static int rx_frame(struct tcp_stream *s)
{
	struct transport_channel *ch = s->ch;
	uint8_t hdr[TRANSPORT_HDR_LEN + 8];
	struct frame_hdr h;
	int ret;

	ret = recv_all(s->fd, hdr, 1);
	if (ret == -ECONNRESET)
		return 1; /* clean close between frames: the control path reports it */
	if (!ret)
		ret = recv_all(s->fd, hdr + 1, TRANSPORT_HDR_LEN - 1);
	if (ret)
		return ret;
	frame_hdr_decode(hdr, &h);
	if (h.magic != TRANSPORT_FRAME_MAGIC || h.version != TRANSPORT_WIRE_VERSION || h.flags ||
	    h.seq != s->rx_epoch)
		return -EPROTO;
	if (h.type == TRANSPORT_FRAME_BULK_DATA) {
		uint64_t off, len;

		if (h.length < 8 || h.length - 8 > FRAME_DATA_MAX)
			return -EPROTO;
		ret = recv_all(s->fd, hdr + TRANSPORT_HDR_LEN, 8);
		if (ret)
			return ret;
		off = get_le64(hdr + TRANSPORT_HDR_LEN);
		len = h.length - 8;
		if (off > ch->opts.recv_region_len || len > ch->opts.recv_region_len - off)
			return -EPROTO;
		tp_poly_update(&s->rx_mac, hdr, sizeof(hdr));
		if (ch->opts.recv_prepare)
			ch->opts.recv_prepare(ch->opts.recv_opaque, off, len);
		while (len) {
			uint8_t *p = (uint8_t *)ch->opts.recv_region + off;
			size_t take = (size_t)MIN(len, (uint64_t)PIECE);

			ret = recv_all(s->fd, p, take);
			if (ret)
				return ret;
			tp_poly_update(&s->rx_mac, p, take);
			off += take;
			len -= take;
		}
		return 0;
	}
	if (h.type == TRANSPORT_FRAME_BULK_END && h.length == crypto_onetimeauth_BYTES) {
		uint8_t tag[crypto_onetimeauth_BYTES], mine[crypto_onetimeauth_BYTES];
		struct tcp_chan *t = tc(ch);

		ret = recv_all(s->fd, tag, sizeof(tag));
		if (ret)
			return ret;
		tp_poly_final(&s->rx_mac, mine);
		if (sodium_memcmp(tag, mine, sizeof(tag))) {
			log_err("transport: bulk stream %u from %s: bad MAC for epoch %llu", s->idx,
				ch->peer, (unsigned long long)s->rx_epoch);
			return -EBADMSG;
		}
		s->rx_epoch++;
		rx_mac_init(s, s->rx_epoch);
		pthread_mutex_lock(&t->vlock);
		s->verified = s->rx_epoch;
		pthread_cond_broadcast(&t->vcond);
		pthread_mutex_unlock(&t->vlock);
		return 0;
	}
	return -EPROTO;
}

static void *rx_thread(void *arg)
{
	struct tcp_stream *s = arg;
	struct tcp_chan *t = tc(s->ch);
	int ret;

	do
		ret = rx_frame(s);
	while (!ret);
	pthread_mutex_lock(&t->vlock);
	if (ret > 0)
		s->eof = true;
	else if (!t->closing)
		tp_fail(s->ch, ret);
	pthread_cond_broadcast(&t->vcond);
	pthread_mutex_unlock(&t->vlock);
	return NULL;
}

static int tcp_bulk_verify(struct transport_channel *ch, const Colovm__Transport__BulkCommit *c,
			   int timeout_ms)
{
	struct tcp_chan *t = tc(ch);
	struct timespec dl = tp_deadline((uint64_t)timeout_ms * 1000000u);
	int ret = 0;

	pthread_mutex_lock(&t->vlock);
	for (;;) {
		unsigned int k;

		ret = tp_get_err(ch);
		if (ret)
			break;
		for (k = 0; k < t->n && t->s[k].verified > c->epoch; k++)
			;
		if (k == t->n)
			break;
		if (t->s[k].eof) {
			ret = -ECONNRESET;
			break;
		}
		if (pthread_cond_timedwait(&t->vcond, &t->vlock, &dl) == ETIMEDOUT) {
			ret = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&t->vlock);
	return ret;
}

static int streams_start(struct transport_channel *ch)
{
	struct tcp_chan *t = tc(ch);

	for (unsigned int k = 0; k < t->n; k++) {
		struct tcp_stream *s = &t->s[k];

		tx_mac_init(s, 0);
		rx_mac_init(s, 0);
		if (pthread_create(&s->rx_thread, NULL, rx_thread, s))
			return -EAGAIN;
		s->rx_started = true;
		if (k == 0)
			continue;
		if (pthread_create(&s->tx_thread, NULL, tx_thread, s))
			return -EAGAIN;
		s->tx_started = true;
	}
	return 0;
}

static void join_proof(struct transport_channel *ch, uint32_t idx, uint8_t out[32])
{
	crypto_generichash_state st;
	uint8_t i4[4] = {(uint8_t)idx, (uint8_t)(idx >> 8), (uint8_t)(idx >> 16),
			 (uint8_t)(idx >> 24)};

	crypto_generichash_init(&st, ch->k_c2s, 32, 32);
	crypto_generichash_update(&st, (const uint8_t *)"join", 4);
	crypto_generichash_update(&st, ch->session_id, sizeof(ch->session_id));
	crypto_generichash_update(&st, i4, sizeof(i4));
	crypto_generichash_final(&st, out, 32);
}

static int send_join(struct transport_channel *ch, int fd, uint32_t idx)
{
	Colovm__Transport__StreamJoin j = COLOVM__TRANSPORT__STREAM_JOIN__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;
	uint8_t proof[32], *buf;
	struct iovec v;
	size_t len;
	int ret;

	join_proof(ch, idx, proof);
	j.session_id.data = ch->session_id;
	j.session_id.len = sizeof(ch->session_id);
	j.index = idx;
	j.proof.data = proof;
	j.proof.len = sizeof(proof);
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_STREAM_JOIN;
	m.stream_join = &j;
	ret = frame_seal(&m, TRANSPORT_WIRE_VERSION, 0, NULL, &buf, &len);
	if (ret)
		return ret;
	v.iov_base = buf;
	v.iov_len = len;
	ret = sendv_all(fd, &v, 1);
	free(buf);
	return ret;
}

/* The rest of the frame whose header buf holds, from fd. */
static int recv_frame_rest(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	struct frame_hdr h;
	size_t flen;
	int ret;

	frame_hdr_decode(buf, &h);
	ret = frame_check_ctrl_hdr(&h, &flen);
	if (ret)
		return ret;
	if (flen > cap)
		return -EMSGSIZE;
	ret = recv_all(fd, buf + TRANSPORT_HDR_LEN, flen - TRANSPORT_HDR_LEN);
	if (ret)
		return ret;
	*len = flen;
	return 0;
}

/* Keep another peer's connection (hdr: the frame header read from it) for
 * the next tcp_accept: 0, or -ENOSPC when KEPT_MAX wait already. */
static int kept_push(struct tcp_lst *ls, int fd, const char *who, const uint8_t *hdr)
{
	struct tcp_kept *k;
	uint64_t one = 1;

	if (ls->n == KEPT_MAX)
		return -ENOSPC;
	/* the first one makes l->fd readable */
	if (!ls->n && write(ls->ev, &one, sizeof(one)) < 0)
		return -errno;
	k = &ls->kept[(ls->head + ls->n++) % KEPT_MAX];
	k->fd = fd;
	snprintf(k->peer, sizeof(k->peer), "%s", who);
	memcpy(k->hdr, hdr, TRANSPORT_HDR_LEN);
	return 0;
}

/* The oldest kept connection (NULL: none), valid until the next push. */
static const struct tcp_kept *kept_pop(struct tcp_lst *ls)
{
	const struct tcp_kept *k = &ls->kept[ls->head];
	uint64_t v;

	if (!ls->n)
		return NULL;
	ls->head = (ls->head + 1) % KEPT_MAX;
	/* the last one gone: l->fd is readable only for the socket again */
	if (!--ls->n && read(ls->ev, &v, sizeof(v)) < 0)
		log_warn("transport: listener: eventfd: %s", strerror(errno));
	return k;
}

/*
 * Server: accept the client's stream sockets and check their joins. Any
 * peer may connect to the listening socket meanwhile: a connection whose
 * first frame is not a StreamJoin (another peer's Hello) is kept for the
 * next tcp_accept, not closed under that peer; a StreamJoin that is not
 * this session's is refused.
 */
static int accept_streams(struct transport_channel *ch, struct transport_listener *l)
{
	struct tcp_chan *t = tc(ch);
	struct tcp_lst *ls = tl(l);
	uint64_t deadline = clock_ns() + (uint64_t)ch->opts.timeout_ms * 1000000u;
	unsigned int joined = 0;
	uint8_t buf[512];

	while (joined < t->n) {
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		char who[64];
		transport_msg *m = NULL;
		struct frame_hdr h;
		uint8_t proof[32];
		size_t len;
		int fd, ret;
		uint64_t now = clock_ns();

		if (now >= deadline)
			return -ETIMEDOUT;
		/* the socket, not l->fd: that stays readable while any are kept */
		ret = wait_fd(ls->fd, POLLIN, (int)((deadline - now) / 1000000u) + 1);
		if (ret == -EAGAIN)
			return -ETIMEDOUT;
		if (ret)
			return ret;
		fd = accept4(ls->fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			return -errno;
		}
		addr_str((struct sockaddr *)&sa, who, sizeof(who));
		set_sockopts(fd, ch->opts.timeout_ms, false);
		{
			struct timeval tv = {.tv_sec = ch->opts.timeout_ms / 1000,
					     .tv_usec = (ch->opts.timeout_ms % 1000) * 1000};
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		}
		ret = recv_all(fd, buf, TRANSPORT_HDR_LEN);
		if (!ret) {
			frame_hdr_decode(buf, &h);
			/* another peer's: its own transport_accept judges and
			 * answers it (past KEPT_MAX: refused below, as before) */
			if (h.type != COLOVM__TRANSPORT__MSG__BODY_STREAM_JOIN &&
			    !kept_push(ls, fd, who, buf)) {
				log_debug("transport: %s connected during the bulk streams of %s: "
					  "kept for the next accept",
					  who, ch->peer);
				continue;
			}
			ret = recv_frame_rest(fd, buf, sizeof(buf), &len);
		}
		if (!ret)
			ret = frame_open(buf, len, NULL, 0, &m);
		if (!ret && m->body_case == COLOVM__TRANSPORT__MSG__BODY_STREAM_JOIN &&
		    m->stream_join->index < t->n && t->s[m->stream_join->index].fd < 0 &&
		    m->stream_join->session_id.len == sizeof(ch->session_id) &&
		    !memcmp(m->stream_join->session_id.data, ch->session_id,
			    sizeof(ch->session_id)) &&
		    m->stream_join->proof.len == 32) {
			join_proof(ch, m->stream_join->index, proof);
			if (!sodium_memcmp(proof, m->stream_join->proof.data, 32)) {
				struct timeval zero = {0};

				/* bulk sockets may sit idle: no receive timeout */
				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &zero, sizeof(zero));
				t->s[m->stream_join->index].fd = fd;
				joined++;
				transport_msg_free(m);
				continue;
			}
		}
		log_warn("transport: %s: not a valid bulk stream join for session with %s, closed",
			 who, ch->peer);
		transport_msg_free(m);
		close(fd);
	}
	return 0;
}

static int tcp_bulk_setup(struct transport_channel *ch, struct transport_listener *l)
{
	struct tcp_chan *t = tc(ch);
	int ret;

	t->n = ch->streams;
	if (l) {
		ret = accept_streams(ch, l);
	} else {
		ret = 0;
		for (unsigned int k = 0; k < t->n && !ret; k++) {
			ret = connect_addr((struct sockaddr *)&t->addr, t->addrlen,
					   ch->opts.timeout_ms, &t->s[k].fd);
			if (ret)
				break;
			set_sockopts(t->s[k].fd, ch->opts.timeout_ms, false);
			ret = send_join(ch, t->s[k].fd, k);
		}
	}
	if (ret)
		return ret;
	return streams_start(ch);
}

/* ---- control socket ------------------------------------------------------ */

static int tcp_send_frame(struct transport_channel *ch, const void *buf, size_t len)
{
	struct iovec v = {(void *)buf, len};

	return sendv_all(tc(ch)->fd, &v, 1);
}

/* One frame from the buffer into buf, the part of a frame longer than the
 * buffer straight from the socket: 0; 1: not all of it is buffered yet. */
static int rx_take(struct tcp_chan *t, uint8_t *buf, size_t cap, size_t *len)
{
	const uint8_t *p = t->rx + t->rx_off;
	struct frame_hdr h;
	size_t flen;
	int ret;

	if (t->rx_len < TRANSPORT_HDR_LEN)
		return 1;
	frame_hdr_decode(p, &h);
	ret = frame_check_ctrl_hdr(&h, &flen);
	if (ret)
		return ret;
	if (flen > cap)
		return -EMSGSIZE;
	if (t->rx_len < flen && t->rx_off + flen <= RX_BUF)
		return 1; /* it fits: more reads */
	if (t->rx_len >= flen) {
		memcpy(buf, p, flen);
		t->rx_off += flen;
		t->rx_len -= flen;
	} else {
		/* larger than what is left of the buffer: the rest straight in
		 * (a frame once begun comes whole within the socket timeout) */
		memcpy(buf, p, t->rx_len);
		ret = recv_all(t->fd, buf + t->rx_len, flen - t->rx_len);
		if (ret)
			return ret;
		t->rx_off = t->rx_len = 0;
	}
	if (!t->rx_len)
		t->rx_off = 0;
	*len = flen;
	return 0;
}

static int tcp_recv_frame(struct transport_channel *ch, uint8_t *buf, size_t cap, size_t *len,
			  int timeout_ms)
{
	struct tcp_chan *t = tc(ch);
	int ret;

	if (!t->rx && !(t->rx = malloc(RX_BUF)))
		return -ENOMEM;
	for (;;) {
		/* a frame begun comes whole, as recv_all would wait for it */
		int wait_ms = t->rx_len ? (int)ch->opts.timeout_ms : timeout_ms;
		size_t room, n;

		ret = rx_take(t, buf, cap, len);
		if (ret <= 0)
			return ret;
		if (t->rx_short) {
			/* The socket was empty at the last read: wait first.
			 * A caller that only looks (timeout 0) is told at once,
			 * without a system call: its poll of the fd sees what
			 * came since. */
			t->rx_short = false;
			if (!wait_ms)
				return -EAGAIN;
			ret = wait_fd(t->fd, POLLIN, wait_ms);
			if (ret)
				return ret == -EAGAIN && t->rx_len ? -ETIMEDOUT : ret;
		}
		if (t->rx_off && t->rx_off + t->rx_len == RX_BUF) {
			memmove(t->rx, t->rx + t->rx_off, t->rx_len);
			t->rx_off = 0;
		}
		room = RX_BUF - t->rx_off - t->rx_len;
		ret = recv_some(t->fd, t->rx + t->rx_off + t->rx_len, room, MSG_DONTWAIT, &n);
		if (ret == -EAGAIN) {
			if (!wait_ms)
				return -EAGAIN;
			ret = wait_fd(t->fd, POLLIN, wait_ms);
			if (ret)
				return ret == -EAGAIN && t->rx_len ? -ETIMEDOUT : ret;
			continue;
		}
		if (ret)
			return ret;
		t->rx_short = n < room;
		t->rx_len += n;
	}
}

static int tcp_region_info(struct transport_channel *ch, uint64_t *addr, uint32_t *rkey)
{
	*addr = 0;
	*rkey = 0;
	return 0;
}

static int tcp_fd(const struct transport_channel *ch)
{
	return tc(ch)->fd;
}

/* The kernel's count (TCP_INFO), on the control socket and every bulk one:
 * a peer that sent anything anywhere is not silent. */
static int tcp_rx_idle_ms(const struct transport_channel *ch, unsigned int *ms)
{
	const struct tcp_chan *t = tc(ch);
	unsigned int best = UINT32_MAX;

	for (unsigned int k = 0; k <= t->n && k <= TRANSPORT_MAX_STREAMS; k++) {
		int fd = k == 0 ? t->fd : t->s[k - 1].fd;
		struct tcp_info ti;
		socklen_t len = sizeof(ti);

		if (fd >= 0 && !getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
			best = MIN(best, ti.tcpi_last_data_recv);
	}
	if (best == UINT32_MAX)
		return -EIO;
	*ms = best;
	return 0;
}

/* transport_abort: every socket shut down (closed by tcp_close), so a send or
 * recv blocked on a dead peer returns now. */
static void tcp_abort(struct transport_channel *ch)
{
	struct tcp_chan *t = tc(ch);

	if (t->fd >= 0)
		shutdown(t->fd, SHUT_RDWR);
	for (unsigned int k = 0; k < t->n && k < TRANSPORT_MAX_STREAMS; k++)
		if (t->s[k].fd >= 0)
			shutdown(t->s[k].fd, SHUT_RDWR);
}

static int chan_alloc(struct transport_channel *ch)
{
	struct tcp_chan *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;

	if (!t)
		return -ENOMEM;
	t->fd = -1;
	for (unsigned int k = 0; k < TRANSPORT_MAX_STREAMS; k++) {
		t->s[k].fd = -1;
		t->s[k].ch = ch;
		t->s[k].idx = k;
		pthread_mutex_init(&t->s[k].lock, NULL);
		pthread_cond_init(&t->s[k].cond, NULL);
	}
	pthread_mutex_init(&t->vlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->vcond, &ca);
	pthread_condattr_destroy(&ca);
	ch->be = t;
	return 0;
}

static void tcp_close(struct transport_channel *ch)
{
	struct tcp_chan *t = tc(ch);

	if (!t)
		return;
	pthread_mutex_lock(&t->vlock);
	t->closing = true;
	pthread_mutex_unlock(&t->vlock);
	for (unsigned int k = 0; k < TRANSPORT_MAX_STREAMS; k++) {
		struct tcp_stream *s = &t->s[k];

		if (s->tx_started) {
			pthread_mutex_lock(&s->lock);
			s->job_quit = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			pthread_join(s->tx_thread, NULL);
		}
		if (s->fd >= 0)
			shutdown(s->fd, SHUT_RDWR);
		if (s->rx_started)
			pthread_join(s->rx_thread, NULL);
		if (s->fd >= 0)
			close(s->fd);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		tp_poly_free(&s->tx_mac);
		tp_poly_free(&s->rx_mac);
	}
	if (t->fd >= 0)
		close(t->fd);
	free(t->rx);
	pthread_mutex_destroy(&t->vlock);
	pthread_cond_destroy(&t->vcond);
	free(t);
	ch->be = NULL;
}

static int tcp_connect(struct transport_channel *ch, const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	struct tcp_chan *t;
	int ret;

	ret = chan_alloc(ch);
	if (ret)
		return ret;
	t = tc(ch);
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return -EHOSTUNREACH;
	ret = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = connect_addr(ai->ai_addr, ai->ai_addrlen, ch->opts.timeout_ms, &t->fd);
		if (!ret) {
			memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
			t->addrlen = ai->ai_addrlen;
			break;
		}
	}
	freeaddrinfo(res);
	if (ret)
		return ret;
	set_sockopts(t->fd, ch->opts.timeout_ms, true);
	return 0;
}

/* A connection accept_streams kept: its header goes into the receive
 * buffer, where the handshake reads its Hello as if it came now. */
static int accept_kept(struct tcp_lst *ls, struct transport_channel *ch)
{
	struct tcp_chan *t = tc(ch);
	const struct tcp_kept *k;

	t->rx = malloc(RX_BUF);
	if (!t->rx)
		return -ENOMEM;
	k = kept_pop(ls);
	t->fd = k->fd;
	snprintf(ch->peer, sizeof(ch->peer), "%s", k->peer);
	memcpy(t->rx, k->hdr, TRANSPORT_HDR_LEN);
	t->rx_len = TRANSPORT_HDR_LEN;
	set_sockopts(t->fd, ch->opts.timeout_ms, true);
	return 0;
}

static int tcp_accept(struct transport_listener *l, struct transport_channel *ch)
{
	struct tcp_lst *ls = tl(l);
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	struct tcp_chan *t;
	int ret, fd;

	ret = chan_alloc(ch);
	if (ret)
		return ret;
	t = tc(ch);
	/* the kept ones came first */
	if (ls->n)
		return accept_kept(ls, ch);
	for (;;) {
		ret = wait_fd(ls->fd, POLLIN, -1);
		if (ret)
			return ret;
		fd = accept4(ls->fd, (struct sockaddr *)&sa, &salen, SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			return -errno;
	}
	t->fd = fd;
	addr_str((struct sockaddr *)&sa, ch->peer, sizeof(ch->peer));
	set_sockopts(fd, ch->opts.timeout_ms, true);
	return 0;
}

static void tcp_listener_close(struct transport_listener *l)
{
	struct tcp_lst *ls = tl(l);
	const struct tcp_kept *k;

	if (!ls)
		return;
	while ((k = kept_pop(ls)))
		close(k->fd);
	if (l->fd >= 0)
		close(l->fd);
	if (ls->ev >= 0)
		close(ls->ev);
	if (ls->fd >= 0)
		close(ls->fd);
	free(ls);
	l->be = NULL;
}

/* l->fd: an epoll fd, readable when the listening socket has a connection
 * or accept_streams kept one (the eventfd). */
static int listener_poll_setup(struct transport_listener *l)
{
	struct tcp_lst *ls = tl(l);
	struct epoll_event ev = {.events = EPOLLIN};

	ls->ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ls->ev < 0)
		return -errno;
	l->fd = epoll_create1(EPOLL_CLOEXEC);
	if (l->fd < 0)
		return -errno;
	ev.data.fd = ls->fd;
	if (epoll_ctl(l->fd, EPOLL_CTL_ADD, ls->fd, &ev))
		return -errno;
	ev.data.fd = ls->ev;
	if (epoll_ctl(l->fd, EPOLL_CTL_ADD, ls->ev, &ev))
		return -errno;
	return 0;
}

static int tcp_listen(struct transport_listener *l, const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	struct tcp_lst *ls = calloc(1, sizeof(*ls));
	char bound[64];
	int fd, one = 1, ret;

	if (!ls)
		return -ENOMEM;
	ls->fd = ls->ev = l->fd = -1;
	l->be = ls;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		tcp_listener_close(l);
		return -EADDRNOTAVAIL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 64) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &salen) < 0) {
		ret = -errno;
		close(fd);
		goto out;
	}
	addr_str((struct sockaddr *)&sa, bound, sizeof(bound));
	if (sa.ss_family == AF_INET6)
		snprintf(l->uri, sizeof(l->uri), "tcp:[%s]:%s", host, strrchr(bound, ':') + 1);
	else
		snprintf(l->uri, sizeof(l->uri), "tcp:%s", bound);
	ls->fd = fd;
	ret = listener_poll_setup(l);
out:
	freeaddrinfo(res);
	if (ret)
		tcp_listener_close(l);
	return ret;
}

const struct transport_ops transport_tcp_ops = {
    .scheme = "tcp",
    .listen = tcp_listen,
    .accept = tcp_accept,
    .connect = tcp_connect,
    .send_frame = tcp_send_frame,
    .recv_frame = tcp_recv_frame,
    .batch_frames = true,
    .region_info = tcp_region_info,
    .bulk_setup = tcp_bulk_setup,
    .bulk_write = tcp_bulk_write,
    .bulk_flush = tcp_bulk_flush,
    .bulk_verify = tcp_bulk_verify,
    .fd = tcp_fd,
    .rx_idle_ms = tcp_rx_idle_ms,
    .abort = tcp_abort,
    .close = tcp_close,
    .listener_close = tcp_listener_close,
};
