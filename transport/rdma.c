// SPDX-License-Identifier: GPL-2.0-only
/*
 * RDMA backend (libibverbs + librdmacm), one RC queue pair per channel,
 * set up the way rdma-core's rping does: rdma_cm resolves address and
 * route, the QP is created on the cm_id, the connection is accepted with
 * rdma_accept, and a DISCONNECTED event (or a failed work completion) is a
 * channel failure.
 *
 *  - Control frames are SENDs from a small ring of registered send buffers
 *    into RECV_DEPTH posted receive buffers (each holds a whole frame).
 *    Flow control: receive buffers are reposted as soon as a frame is
 *    copied out, and the QP is connected with rnr_retry_count 7 (retry for
 *    ever), so a sender outrunning the receiver waits instead of failing.
 *  - Bulk data: one-sided RDMA WRITE from the local send region (registered
 *    once: the primary's guest RAM; anything else goes through a registered
 *    bounce buffer) into the peer's registered receive region, which is
 *    registered for remote writes only once the peer has authenticated.
 *    The commit is a SEND of the BulkCommit frame, which RC orders after the
 *    WRITEs, and which carries a Poly1305 tag over the written bytes; the
 *    receiver recomputes it over its region before reporting the commit.
 *    So bytes of an epoch must not be overwritten before the receiver has
 *    checked them (a live migration's later rounds rewrite the pages of
 *    earlier ones): each side counts the epochs it verified in a word the
 *    peer may RDMA READ, and a sender about to write over bytes of an epoch
 *    it has not seen verified reads that word until it has (a bitmap of
 *    the 4 KiB pages written since, per channel).
 *  - Completions are waited for on a completion channel (poll() with the
 *    timeout, together with the rdma_cm event channel to see disconnects).
 *    The channel's fd for its owner's poll (transport_fd) is an epoll of
 *    the completion channel and an eventfd raised whenever frames wait in
 *    the ready queue: another thread (a sender, the heartbeat) may have
 *    drained their completions, and the completion channel says nothing
 *    more of them. Each received frame also dates the peer's last sign of
 *    life (rx_idle_ms: the heartbeat's silence, as TCP's bytes do).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "transport/internal.h"

#define RECV_DEPTH 8
#define SEND_BUFS  4
#define SQ_DEPTH   64
#define CTRL_BUF   (TRANSPORT_HDR_LEN + TRANSPORT_MAX_MSG + TRANSPORT_MAC_LEN)
#define BOUNCE_LEN (1u << 20)
#define WR_MAX	   (1u << 20)
#define SLICE_MS   50

#define WR_RECV	  0x10000u
#define WR_SEND	  0x20000u
#define WR_WRITE  0x30000u
#define WR_BOUNCE 0x40000u
#define WR_READ	  0x50000u

#define UNV_SHIFT 12 /* the sender's bitmap: one bit per 4 KiB of the peer's region */

struct rdma_chan {
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
	bool qp_created, connected;
	struct ibv_mr *region_mr, *send_mr, *rbuf_mr, *sbuf_mr, *bounce_mr, *words_mr;
	uint8_t *rbufs, *sbufs, *bounce;
	pthread_mutex_t lock; /* CQ and the state below */
	pthread_cond_t cv;    /* broadcast by the poller: see wait_for() */
	bool polling;
	unsigned int ready[RECV_DEPTH], ready_len[RECV_DEPTH], rhead, rcount;
	bool sbuf_busy[SEND_BUFS];
	unsigned int snext;
	unsigned int outstanding;
	bool bounce_busy;
	int failed;
	struct tp_poly tx_mac;
	int ready_efd, poll_fd; /* frames wait (raised by drain_cq); epoll for transport_fd */
	uint64_t last_rx_ns;	/* the last frame from the peer (drain_cq) */
	/* words[0]: the epochs this side verified (the peer reads it);
	 * words[1]: where the peer's count is read into */
	uint64_t *words;
	bool read_busy;
	/* sending: epochs committed, the peer's count last read, and the
	 * pages of its region written since that count was seen complete */
	uint64_t committed, peer_verified;
	uint64_t *unverified, unverified_bits;
};

struct rdma_lst {
	struct rdma_event_channel *ec;
	struct rdma_cm_id *id;
};

static struct rdma_chan *rc(const struct transport_channel *ch)
{
	return ch->be;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* Wait for one cm event of type want on ec (anything else is an error). */
static int cm_wait(struct rdma_event_channel *ec, enum rdma_cm_event_type want, int timeout_ms,
		   struct rdma_cm_id **id_out)
{
	struct rdma_cm_event *ev;
	struct pollfd p = {.fd = ec->fd, .events = POLLIN};
	int r, ret;

	for (;;) {
		if (!rdma_get_cm_event(ec, &ev))
			break;
		if (errno != EAGAIN)
			return -errno;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return -errno;
	}
	if (ev->event == want) {
		if (id_out)
			*id_out = ev->id;
		ret = 0;
	} else {
		log_warn("transport: rdma: %s while waiting for %s (status %d)",
			 rdma_event_str(ev->event), rdma_event_str(want), ev->status);
		ret = ev->event == RDMA_CM_EVENT_REJECTED	? -ECONNREFUSED
		      : ev->event == RDMA_CM_EVENT_DISCONNECTED ? -ECONNRESET
								: -EHOSTUNREACH;
	}
	rdma_ack_cm_event(ev);
	return ret;
}

/* ---- completions ---------------------------------------------------------- */

enum want { WANT_RECV, WANT_SEND_SLOT, WANT_IDLE, WANT_BOUNCE, WANT_READ };

static bool satisfied(struct rdma_chan *r, enum want w)
{
	switch (w) {
	case WANT_RECV:
		return r->rcount > 0;
	case WANT_SEND_SLOT:
		return r->outstanding < SQ_DEPTH;
	case WANT_IDLE:
		return r->outstanding == 0;
	case WANT_BOUNCE:
		return !r->bounce_busy;
	case WANT_READ:
		return !r->read_busy;
	}
	return true;
}

static int drain_cq(struct transport_channel *ch)
{
	struct rdma_chan *r = rc(ch);
	struct ibv_wc wc[16];
	int n;
	bool got = false;

	while ((n = ibv_poll_cq(r->cq, 16, wc)) > 0) {
		got = true;
		for (int i = 0; i < n; i++) {
			uint32_t kind = (uint32_t)wc[i].wr_id & 0xffff0000u;
			uint32_t idx = (uint32_t)wc[i].wr_id & 0xffffu;

			if (wc[i].status != IBV_WC_SUCCESS) {
				if (!r->failed)
					log_warn("transport: rdma: work completion failed: %s",
						 ibv_wc_status_str(wc[i].status));
				r->failed = -ECONNRESET;
				continue;
			}
			if (kind == WR_RECV) {
				r->ready[(r->rhead + r->rcount) % RECV_DEPTH] = idx;
				r->ready_len[(r->rhead + r->rcount) % RECV_DEPTH] = wc[i].byte_len;
				r->rcount++;
				r->last_rx_ns = clock_ns();
				/* (a failed write: the counter is raised already) */
				if (r->ready_efd >= 0 &&
				    write(r->ready_efd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
				}
				continue;
			}
			r->outstanding--;
			if (kind == WR_SEND)
				r->sbuf_busy[idx] = false;
			else if (kind == WR_BOUNCE)
				r->bounce_busy = false;
			else if (kind == WR_READ)
				r->read_busy = false;
		}
	}
	if (n < 0)
		r->failed = -EIO;
	if (got)
		pthread_cond_broadcast(&r->cv); /* what another waiter may need */
	return r->failed;
}

static int check_cm(struct transport_channel *ch)
{
	struct rdma_chan *r = rc(ch);
	struct rdma_cm_event *ev;

	while (!rdma_get_cm_event(r->ec, &ev)) {
		if (ev->event == RDMA_CM_EVENT_DISCONNECTED ||
		    ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL ||
		    ev->event == RDMA_CM_EVENT_TIMEWAIT_EXIT) {
			if (!r->failed)
				log_warn("transport: rdma: %s from %s", rdma_event_str(ev->event),
					 ch->peer);
			r->failed = -ECONNRESET;
			r->connected = false;
		}
		rdma_ack_cm_event(ev);
	}
	return r->failed;
}

/*
 * Wait (lock held on entry and exit) until w holds; -EAGAIN on timeout.
 *
 * Several threads may wait on one channel (a sender for a send slot, a
 * receiver for a frame), but a completion event wakes only one reader of
 * the completion channel. So one waiter at a time polls the channel's fds
 * (r->polling); the others sleep on r->cv, and the poller broadcasts after
 * every drain and when it leaves, so no waiter misses completions another
 * thread consumed. SLICE_MS bounds each sleep all the same.
 */
static int wait_for(struct transport_channel *ch, enum want w, int timeout_ms)
{
	struct rdma_chan *r = rc(ch);
	uint64_t deadline =
	    timeout_ms < 0 ? UINT64_MAX : clock_ns() + (uint64_t)timeout_ms * 1000000u;
	int ret;

	for (;;) {
		ret = drain_cq(ch);
		if (w == WANT_RECV && satisfied(r, w))
			return 0; /* frames that arrived before a failure still count */
		if (!ret)
			ret = check_cm(ch);
		if (ret)
			return ret;
		if (satisfied(r, w))
			return 0;

		uint64_t now = clock_ns();
		if (now >= deadline)
			return -EAGAIN;
		uint64_t slice_ns = MIN(deadline - now, (uint64_t)SLICE_MS * 1000000u);

		if (r->polling) {
			struct timespec ts = tp_deadline(slice_ns);

			pthread_cond_timedwait(&r->cv, &r->lock, &ts);
			continue;
		}
		if (ibv_req_notify_cq(r->cq, 0))
			return -EIO;
		ret = drain_cq(ch);
		if (ret || satisfied(r, w))
			return ret;

		struct pollfd p[2] = {{.fd = r->cc->fd, .events = POLLIN},
				      {.fd = r->ec->fd, .events = POLLIN}};

		r->polling = true;
		pthread_mutex_unlock(&r->lock);
		int pr = poll(p, 2, (int)(slice_ns / 1000000u) + 1);
		pthread_mutex_lock(&r->lock);
		r->polling = false;
		if (pr < 0 && errno != EINTR)
			ret = -errno;
		if (pr > 0 && (p[0].revents & POLLIN)) {
			struct ibv_cq *cq;
			void *ctx;

			if (!ibv_get_cq_event(r->cc, &cq, &ctx))
				ibv_ack_cq_events(cq, 1);
		}
		/* whatever arrived, the other waiters look at it too */
		if (!ret)
			drain_cq(ch);
		pthread_cond_broadcast(&r->cv);
		if (ret)
			return ret;
	}
}

static int post_recv(struct transport_channel *ch, unsigned int i)
{
	struct rdma_chan *r = rc(ch);
	struct ibv_sge sge = {
	    .addr = (uintptr_t)(r->rbufs + (size_t)i * CTRL_BUF),
	    .length = CTRL_BUF,
	    .lkey = r->rbuf_mr->lkey,
	};
	struct ibv_recv_wr wr = {.wr_id = WR_RECV | i, .sg_list = &sge, .num_sge = 1}, *bad;

	return -ibv_post_recv(r->id->qp, &wr, &bad);
}

/* ---- set-up and teardown ------------------------------------------------- */

static struct ibv_mr *reg(struct rdma_chan *r, void *p, size_t len, int access)
{
	struct ibv_mr *mr = ibv_reg_mr(r->pd, p, len, access);

	if (!mr)
		log_err("transport: rdma: ibv_reg_mr(%zu bytes): %s", len, strerror(errno));
	return mr;
}

static int setup_qp(struct transport_channel *ch, struct rdma_cm_id *id)
{
	struct rdma_chan *r = rc(ch);
	struct ibv_qp_init_attr qa = {0};
	int ret = -ENOMEM;

	r->id = id;
	r->pd = ibv_alloc_pd(id->verbs);
	r->cc = r->pd ? ibv_create_comp_channel(id->verbs) : NULL;
	r->cq = r->cc ? ibv_create_cq(id->verbs, SQ_DEPTH + RECV_DEPTH + 8, ch, r->cc, 0) : NULL;
	if (!r->cq)
		return errno ? -errno : -ENOMEM;
	if (set_nonblock(r->cc->fd))
		return -EIO;
	r->ready_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	r->poll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (r->ready_efd < 0 || r->poll_fd < 0 ||
	    epoll_ctl(r->poll_fd, EPOLL_CTL_ADD, r->cc->fd,
		      &(struct epoll_event){.events = EPOLLIN}) ||
	    epoll_ctl(r->poll_fd, EPOLL_CTL_ADD, r->ready_efd,
		      &(struct epoll_event){.events = EPOLLIN}))
		return -errno;
	r->last_rx_ns = clock_ns();
	qa.send_cq = r->cq;
	qa.recv_cq = r->cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = SQ_DEPTH;
	qa.cap.max_recv_wr = RECV_DEPTH;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, r->pd, &qa))
		return -errno;
	r->qp_created = true;

	r->rbufs = malloc((size_t)RECV_DEPTH * CTRL_BUF);
	r->sbufs = malloc((size_t)SEND_BUFS * CTRL_BUF);
	r->bounce = malloc(BOUNCE_LEN);
	if (!r->rbufs || !r->sbufs || !r->bounce)
		return -ENOMEM;
	r->rbuf_mr = reg(r, r->rbufs, (size_t)RECV_DEPTH * CTRL_BUF, IBV_ACCESS_LOCAL_WRITE);
	r->sbuf_mr = reg(r, r->sbufs, (size_t)SEND_BUFS * CTRL_BUF, 0);
	r->bounce_mr = reg(r, r->bounce, BOUNCE_LEN, 0);
	if (!r->rbuf_mr || !r->sbuf_mr || !r->bounce_mr)
		return -ENOMEM;
	/* the receive region is registered for remote writes after authentication */
	if (ch->opts.send_region && ch->opts.send_region_len) {
		r->send_mr = reg(r, ch->opts.send_region, ch->opts.send_region_len, 0);
		if (!r->send_mr)
			return -ENOMEM;
	}
	for (unsigned int i = 0; i < RECV_DEPTH; i++) {
		ret = post_recv(ch, i);
		if (ret)
			return ret;
	}
	return 0;
}

static int chan_alloc(struct transport_channel *ch)
{
	struct rdma_chan *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->ready_efd = r->poll_fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	ch->be = r;
	r->ec = rdma_create_event_channel();
	if (!r->ec)
		return errno == ENODEV ? -ENODEV : -errno;
	return set_nonblock(r->ec->fd);
}

static void rdma_close_chan(struct transport_channel *ch)
{
	struct rdma_chan *r = rc(ch);

	if (!r)
		return;
	if (r->connected) {
		rdma_disconnect(r->id);
		r->connected = false;
	}
	if (r->qp_created)
		rdma_destroy_qp(r->id);
	if (r->cq)
		ibv_destroy_cq(r->cq);
	if (r->cc)
		ibv_destroy_comp_channel(r->cc);
	for (struct ibv_mr **mr = &r->region_mr; mr <= &r->words_mr; mr++)
		if (*mr)
			ibv_dereg_mr(*mr);
	if (r->pd)
		ibv_dealloc_pd(r->pd);
	if (r->id)
		rdma_destroy_id(r->id);
	if (r->ec)
		rdma_destroy_event_channel(r->ec);
	free(r->rbufs);
	free(r->sbufs);
	free(r->bounce);
	free(r->words);
	free(r->unverified);
	if (r->ready_efd >= 0)
		close(r->ready_efd);
	if (r->poll_fd >= 0)
		close(r->poll_fd);
	tp_poly_free(&r->tx_mac);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->cv);
	free(r);
	ch->be = NULL;
}

static void conn_param(struct rdma_conn_param *p)
{
	memset(p, 0, sizeof(*p));
	p->responder_resources = 1;
	p->initiator_depth = 1;
	p->retry_count = 7;
	p->rnr_retry_count = 7; /* infinite: receiver-not-ready is flow control */
}

static void peer_str(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *sa = rdma_get_peer_addr(id);
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
	snprintf(buf, len, "%s:%u", host, ntohs(rdma_get_dst_port(id)));
}

static int rdma_connect_chan(struct transport_channel *ch, const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	struct rdma_conn_param cp;
	struct rdma_chan *r;
	struct rdma_cm_id *id;
	uint8_t tmo = 14; /* 4.096 us * 2^14 = 67 ms per try, 7 retries */
	int ret;

	ret = chan_alloc(ch);
	if (ret)
		return ret;
	r = rc(ch);
	if (rdma_create_id(r->ec, &id, ch, RDMA_PS_TCP))
		return -errno;
	r->id = id;
	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	ret = rdma_resolve_addr(id, NULL, res->ai_addr, ch->opts.timeout_ms) ? -errno : 0;
	freeaddrinfo(res);
	if (!ret)
		ret = cm_wait(r->ec, RDMA_CM_EVENT_ADDR_RESOLVED, ch->opts.timeout_ms, NULL);
	if (!ret)
		ret = rdma_resolve_route(id, ch->opts.timeout_ms) ? -errno : 0;
	if (!ret)
		ret = cm_wait(r->ec, RDMA_CM_EVENT_ROUTE_RESOLVED, ch->opts.timeout_ms, NULL);
	if (ret)
		return ret;
	rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &tmo, sizeof(tmo));
	ret = setup_qp(ch, id);
	if (ret) {
		log_err("transport: rdma: queue pair set-up failed: %s", strerror(-ret));
		return ret;
	}
	conn_param(&cp);
	if (rdma_connect(id, &cp))
		return -errno;
	ret = cm_wait(r->ec, RDMA_CM_EVENT_ESTABLISHED, ch->opts.timeout_ms, NULL);
	if (ret) {
		log_err("transport: rdma: connect to %s: %s", ch->peer, strerror(-ret));
		return ret;
	}
	r->connected = true;
	return 0;
}

static int rdma_accept_chan(struct transport_listener *l, struct transport_channel *ch)
{
	struct rdma_lst *ls = l->be;
	struct rdma_conn_param cp;
	struct rdma_cm_id *id = NULL;
	struct rdma_chan *r;
	int ret;

	ret = chan_alloc(ch);
	if (ret)
		return ret;
	r = rc(ch);
	ret = cm_wait(ls->ec, RDMA_CM_EVENT_CONNECT_REQUEST, -1, &id);
	if (ret)
		return ret;
	peer_str(id, ch->peer, sizeof(ch->peer));
	/* this connection's events (disconnect) go to its own channel */
	if (rdma_migrate_id(id, r->ec)) {
		ret = -errno;
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return ret;
	}
	ret = setup_qp(ch, id);
	if (ret) {
		rdma_reject(id, NULL, 0);
		return ret;
	}
	conn_param(&cp);
	if (rdma_accept(id, &cp))
		return -errno;
	ret = cm_wait(r->ec, RDMA_CM_EVENT_ESTABLISHED, ch->opts.timeout_ms, NULL);
	if (ret)
		return ret;
	r->connected = true;
	return 0;
}

static int rdma_listen_l(struct transport_listener *l, const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
	struct rdma_lst *ls = calloc(1, sizeof(*ls));
	int ret = -ENOMEM;

	if (!ls)
		return ret;
	ls->ec = rdma_create_event_channel();
	if (!ls->ec) {
		ret = errno ? -errno : -ENODEV;
		goto err;
	}
	if (rdma_create_id(ls->ec, &ls->id, NULL, RDMA_PS_TCP)) {
		ret = -errno;
		goto err;
	}
	if (getaddrinfo(host, port, &hints, &res)) {
		ret = -EADDRNOTAVAIL;
		goto err;
	}
	ret = rdma_bind_addr(ls->id, res->ai_addr) ? -errno : 0;
	freeaddrinfo(res);
	if (ret || rdma_listen(ls->id, 8)) {
		ret = ret ? ret : -errno;
		log_err("transport: rdma: cannot listen on %s:%s: %s", host, port, strerror(-ret));
		goto err;
	}
	snprintf(l->uri, sizeof(l->uri), "rdma:%s:%u", host, ntohs(rdma_get_src_port(ls->id)));
	l->fd = ls->ec->fd;
	l->be = ls;
	return 0;
err:
	if (ls->id)
		rdma_destroy_id(ls->id);
	if (ls->ec)
		rdma_destroy_event_channel(ls->ec);
	free(ls);
	return ret;
}

static void rdma_listener_close(struct transport_listener *l)
{
	struct rdma_lst *ls = l->be;

	rdma_destroy_id(ls->id);
	rdma_destroy_event_channel(ls->ec);
	free(ls);
}

/* ---- control frames ------------------------------------------------------ */

static int rdma_send_frame(struct transport_channel *ch, const void *buf, size_t len)
{
	struct rdma_chan *r = rc(ch);
	int ret;

	if (len > CTRL_BUF)
		return -EMSGSIZE;
	pthread_mutex_lock(&r->lock);
	unsigned int i = r->snext;
	while (!(ret = r->failed) && (r->sbuf_busy[i] || r->outstanding >= SQ_DEPTH)) {
		ret = wait_for(ch, WANT_SEND_SLOT, ch->opts.timeout_ms);
		if (ret)
			break;
		if (r->sbuf_busy[i])
			ret = wait_for(ch, WANT_IDLE, ch->opts.timeout_ms);
		if (ret)
			break;
	}
	if (ret)
		goto out;
	uint8_t *p = r->sbufs + (size_t)i * CTRL_BUF;
	struct ibv_sge sge = {
	    .addr = (uintptr_t)p, .length = (uint32_t)len, .lkey = r->sbuf_mr->lkey};
	struct ibv_send_wr wr =
			       {
				   .wr_id = WR_SEND | i,
				   .sg_list = &sge,
				   .num_sge = 1,
				   .opcode = IBV_WR_SEND,
				   .send_flags = IBV_SEND_SIGNALED,
			       },
			   *bad;

	memcpy(p, buf, len);
	ret = -ibv_post_send(r->id->qp, &wr, &bad);
	if (ret)
		log_err("transport: rdma: post SEND to %s: %s", ch->peer, strerror(-ret));
	if (!ret) {
		r->sbuf_busy[i] = true;
		r->outstanding++;
		r->snext = (i + 1) % SEND_BUFS;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret == -EAGAIN ? -ETIMEDOUT : ret;
}

static int rdma_recv_frame(struct transport_channel *ch, uint8_t *buf, size_t cap, size_t *len,
			   int timeout_ms)
{
	struct rdma_chan *r = rc(ch);
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = wait_for(ch, WANT_RECV, timeout_ms);
	if (ret && ret != -EAGAIN)
		log_debug("transport: rdma: receive from %s: %s", ch->peer, strerror(-ret));
	if (!ret) {
		unsigned int i = r->ready[r->rhead], n = r->ready_len[r->rhead];

		r->rhead = (r->rhead + 1) % RECV_DEPTH;
		r->rcount--;
		/* (a failed read: it was not raised) */
		if (!r->rcount && r->ready_efd >= 0 &&
		    read(r->ready_efd, &(uint64_t){0}, sizeof(uint64_t)) < 0) {
		}
		if (n > cap) {
			ret = -EMSGSIZE;
		} else {
			memcpy(buf, r->rbufs + (size_t)i * CTRL_BUF, n);
			*len = n;
		}
		int pr = post_recv(ch, i);
		if (!ret)
			ret = pr;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int rdma_region_info(struct transport_channel *ch, uint64_t *addr, uint32_t *rkey)
{
	struct rdma_chan *r = rc(ch);

	/*
	 * Only now, with the peer's proof checked, is the receive region open
	 * to remote writes: an unauthenticated peer has a queue pair but no
	 * memory region it could write into, whatever rkey it guesses.
	 */
	if (ch->opts.recv_region_len && !r->region_mr) {
		pthread_mutex_lock(&r->lock);
		r->region_mr = reg(r, ch->opts.recv_region, ch->opts.recv_region_len,
				   IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
		pthread_mutex_unlock(&r->lock);
		if (!r->region_mr)
			return -ENOMEM;
	}
	*addr = r->region_mr ? (uintptr_t)ch->opts.recv_region : 0;
	*rkey = r->region_mr ? r->region_mr->rkey : 0;
	return 0;
}

static int rdma_verified_info(struct transport_channel *ch, uint64_t *addr, uint32_t *rkey)
{
	struct rdma_chan *r = rc(ch);
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (!r->words_mr) {
		r->words = aligned_alloc(16, 2 * sizeof(uint64_t));
		if (r->words) {
			r->words[0] = r->words[1] = 0;
			r->words_mr = reg(r, r->words, 2 * sizeof(uint64_t),
					  IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
		}
		ret = r->words_mr ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&r->lock);
	*addr = r->words_mr ? (uintptr_t)r->words : 0;
	*rkey = r->words_mr ? r->words_mr->rkey : 0;
	return ret;
}

/* ---- bulk ---------------------------------------------------------------- */

/* Post one signaled one-sided op (lock held): a WRITE of ours into the
 * peer's memory, or a READ of it into ours, once the send queue has room. */
static int post_rdma(struct transport_channel *ch, enum ibv_wr_opcode op, uint32_t kind,
		     uint64_t laddr, uint32_t lkey, uint32_t len, uint64_t raddr, uint32_t rkey)
{
	struct rdma_chan *r = rc(ch);
	struct ibv_sge sge = {.addr = laddr, .length = len, .lkey = lkey};
	struct ibv_send_wr wr =
			       {
				   .wr_id = kind,
				   .sg_list = &sge,
				   .num_sge = 1,
				   .opcode = op,
				   .send_flags = IBV_SEND_SIGNALED,
				   .wr.rdma = {.remote_addr = raddr, .rkey = rkey},
			       },
			   *bad;
	int ret = wait_for(ch, WANT_SEND_SLOT, ch->opts.timeout_ms);

	if (ret)
		return ret;
	ret = -ibv_post_send(r->id->qp, &wr, &bad);
	if (ret)
		log_err("transport: rdma: post %s to %s: %s",
			op == IBV_WR_RDMA_READ ? "READ" : "WRITE", ch->peer, strerror(-ret));
	if (!ret)
		r->outstanding++;
	return ret;
}

static int post_write(struct transport_channel *ch, uint64_t laddr, uint32_t lkey, uint32_t len,
		      uint64_t off, uint32_t kind)
{
	return post_rdma(ch, IBV_WR_RDMA_WRITE, kind, laddr, lkey, len, ch->peer_region_addr + off,
			 ch->peer_region_rkey);
}

/*
 * Sending side, lock held: wait until the peer has verified every epoch
 * committed so far (it reads its verified-epoch word; a receiver verifies
 * a commit when its owner reads the commit off the channel).
 */
static int wait_peer_verified(struct transport_channel *ch)
{
	struct rdma_chan *r = rc(ch);
	uint64_t deadline = clock_ns() + (uint64_t)ch->opts.timeout_ms * 1000000u;
	int ret;

	while (r->peer_verified < r->committed) {
		ret = wait_for(ch, WANT_READ, ch->opts.timeout_ms);
		if (ret)
			return ret;
		r->read_busy = true;
		ret =
		    post_rdma(ch, IBV_WR_RDMA_READ, WR_READ, (uintptr_t)&r->words[1],
			      r->words_mr->lkey, 8, ch->peer_verified_addr, ch->peer_verified_rkey);
		if (ret) {
			r->read_busy = false;
			return ret;
		}
		ret = wait_for(ch, WANT_READ, ch->opts.timeout_ms);
		if (ret)
			return ret;
		r->peer_verified = __atomic_load_n(&r->words[1], __ATOMIC_ACQUIRE);
		if (r->peer_verified >= r->committed)
			break;
		if (clock_ns() >= deadline)
			return -EAGAIN;
		pthread_mutex_unlock(&r->lock);
		usleep(500);
		pthread_mutex_lock(&r->lock);
	}
	return 0;
}

/* Sending side, lock held: bytes [off, off + len) of the peer's region are
 * about to be written: first wait, if an epoch not seen verified wrote any
 * of them. */
static int before_write(struct transport_channel *ch, uint64_t off, uint64_t len)
{
	struct rdma_chan *r = rc(ch);
	uint64_t first = off >> UNV_SHIFT, last = (off + len - 1) >> UNV_SHIFT;
	bool overlap = false;
	int ret;

	if (!ch->peer_verified_rkey || !r->words_mr || !len)
		return 0;
	if (!r->unverified) {
		r->unverified_bits = (ch->peer_region_len >> UNV_SHIFT) + 1;
		r->unverified = calloc(((r->unverified_bits + 63) / 64), sizeof(uint64_t));
		if (!r->unverified)
			return -ENOMEM;
	}
	if (last >= r->unverified_bits)
		return -ERANGE;
	for (uint64_t b = first; b <= last && !overlap; b++)
		overlap = r->unverified[b / 64] >> (b % 64) & 1;
	if (overlap) {
		ret = wait_peer_verified(ch);
		if (ret)
			return ret;
		memset(r->unverified, 0, ((r->unverified_bits + 63) / 64) * sizeof(uint64_t));
	}
	for (uint64_t b = first; b <= last; b++)
		r->unverified[b / 64] |= 1ull << (b % 64);
	return 0;
}

static void mac_init(struct tp_poly *st, const uint8_t *base, uint64_t epoch)
{
	tp_poly_init_bulk(st, base, epoch, 0);
}

static int rdma_bulk_setup(struct transport_channel *ch, struct transport_listener *l)
{
	mac_init(&rc(ch)->tx_mac, ch->kb_send, 0);
	return 0;
}

static int rdma_bulk_write(struct transport_channel *ch, const struct iovec *iov, int n,
			   uint64_t off, uint64_t total)
{
	struct rdma_chan *r = rc(ch);
	uintptr_t sr = (uintptr_t)ch->opts.send_region;
	int ret = 0;

	if (!ch->peer_region_rkey)
		return -ERANGE;
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < n && !ret; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;

		tp_poly_update(&r->tx_mac, p, left);
		while (left && !ret) {
			uint32_t len = (uint32_t)MIN(left, (size_t)WR_MAX);

			ret = before_write(ch, off, len);
			if (ret)
				break;
			if (r->send_mr && (uintptr_t)p >= sr &&
			    (uintptr_t)p + len <= sr + ch->opts.send_region_len) {
				ret = post_write(ch, (uintptr_t)p, r->send_mr->lkey, len, off,
						 WR_WRITE);
			} else {
				len = (uint32_t)MIN((size_t)len, (size_t)BOUNCE_LEN);
				ret = wait_for(ch, WANT_BOUNCE, ch->opts.timeout_ms);
				if (ret)
					break;
				memcpy(r->bounce, p, len);
				r->bounce_busy = true;
				ret = post_write(ch, (uintptr_t)r->bounce, r->bounce_mr->lkey, len,
						 off, WR_BOUNCE);
				if (ret)
					r->bounce_busy = false;
			}
			p += len;
			off += len;
			left -= len;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret == -EAGAIN ? -ETIMEDOUT : ret;
}

static int rdma_bulk_flush(struct transport_channel *ch, uint64_t epoch,
			   uint8_t mac[crypto_onetimeauth_BYTES], bool *has_mac)
{
	struct rdma_chan *r = rc(ch);
	int ret;

	pthread_mutex_lock(&r->lock);
	/* writes complete before the caller may touch its memory again */
	ret = wait_for(ch, WANT_IDLE, ch->opts.timeout_ms);
	if (!ret) {
		tp_poly_final(&r->tx_mac, mac);
		mac_init(&r->tx_mac, ch->kb_send, epoch + 1);
		*has_mac = true;
		r->committed = epoch + 1;
	}
	pthread_mutex_unlock(&r->lock);
	return ret == -EAGAIN ? -ETIMEDOUT : ret;
}

static int rdma_bulk_verify(struct transport_channel *ch, const Colovm__Transport__BulkCommit *c,
			    int timeout_ms)
{
	struct tp_poly st = {0};
	uint8_t mine[crypto_onetimeauth_BYTES];

	if (c->mac.len != sizeof(mine))
		return -EBADMSG;
	mac_init(&st, ch->kb_recv, c->epoch);
	for (size_t i = 0; i < c->n_runs; i += 2)
		tp_poly_update(&st, (const uint8_t *)ch->opts.recv_region + c->runs[i],
			       c->runs[i + 1]);
	tp_poly_final(&st, mine);
	tp_poly_free(&st);
	if (sodium_memcmp(mine, c->mac.data, sizeof(mine)))
		return -EBADMSG;
	/* the peer may write over these bytes from now on */
	if (rc(ch)->words)
		__atomic_store_n(&rc(ch)->words[0], c->epoch + 1, __ATOMIC_RELEASE);
	return 0;
}

/* transport_abort: every waiter on the queue pair sees err within a slice. */
static void rdma_abort(struct transport_channel *ch)
{
	struct rdma_chan *r = rc(ch);

	pthread_mutex_lock(&r->lock);
	if (!r->failed)
		r->failed = tp_get_err(ch) ? tp_get_err(ch) : -EIO;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->lock);
}

static int rdma_fd(const struct transport_channel *ch)
{
	return rc(ch)->poll_fd;
}

static int rdma_rx_idle_ms(const struct transport_channel *ch, unsigned int *ms)
{
	struct rdma_chan *r = rc(ch);
	uint64_t now;

	/* (frames may have arrived that nobody has drained yet) */
	pthread_mutex_lock(&r->lock);
	drain_cq((struct transport_channel *)ch);
	now = clock_ns();
	*ms = (unsigned int)MIN((now - r->last_rx_ns) / 1000000, (uint64_t)UINT32_MAX);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

const struct transport_ops transport_rdma_ops = {
    .scheme = "rdma",
    .listen = rdma_listen_l,
    .accept = rdma_accept_chan,
    .connect = rdma_connect_chan,
    .send_frame = rdma_send_frame,
    .recv_frame = rdma_recv_frame,
    .region_info = rdma_region_info,
    .verified_info = rdma_verified_info,
    .bulk_setup = rdma_bulk_setup,
    .bulk_write = rdma_bulk_write,
    .bulk_flush = rdma_bulk_flush,
    .bulk_verify = rdma_bulk_verify,
    .fd = rdma_fd,
    .rx_idle_ms = rdma_rx_idle_ms,
    .abort = rdma_abort,
    .close = rdma_close_chan,
    .listener_close = rdma_listener_close,
};
