// SPDX-License-Identifier: GPL-2.0-only
/*
 * Transport conformance suite: the same checks against any backend.
 *
 *   transport_conformance URI_BASE [CLIENT_NETNS]
 *     URI_BASE      "tcp:127.0.0.1" or "rdma:10.0.0.2" (the listening side's
 *                   address; the suite picks the port)
 *     CLIENT_NETNS  optional netns file the forked client enters first
 *                   (RDMA in the TCG VM: server and client on two veth ends)
 *     agent:HOST:PORT  or: peers run on another machine, by the agent there
 *                   (RDMA across a link: two TCG VMs)
 *   transport_conformance serve URI KEYFILE   } one-shot peers for the
 *   transport_conformance connect URI KEYFILE } link-cut tests (e2e)
 *   transport_conformance agent PORT          runs commands for the suite
 *   transport_conformance remote HOST:PORT ARGV...  run ARGV on that agent
 *
 * The listening side is this process; the peer is a forked child, so a
 * peer can be killed with SIGKILL mid-transfer. Prints one line per test and
 * "N passed, N failed"; exit status 1 if anything failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "transport/internal.h"
#include "transport/transport.h"

#define TMO	   tmo
#define REGION_LEN (64u << 20)
#define PAGE	   4096u

static unsigned int tmo = 2000; /* ms; slower under TCG + Soft-RoCE */
static const char *base;
static const char *client_netns;
static bool is_rdma;
static struct transport_key key, bad_key;
static uint8_t *src; /* same pseudo-random content in parent and child */
static uint8_t *region;
static int passed, failed, skipped;

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "  check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__);   \
			return -1;                                                                 \
		}                                                                                  \
	} while (0)

static struct transport_opts opts(const struct transport_key *k)
{
	struct transport_opts o = {
	    .key = k,
	    .timeout_ms = TMO,
	    .recv_region = region,
	    .recv_region_len = REGION_LEN,
	    .send_region = src,
	    .send_region_len = REGION_LEN,
	    .name = "conformance",
	};
	return o;
}

static int listen_here(struct transport_listener **l, const struct transport_opts *o)
{
	char uri[128];

	snprintf(uri, sizeof(uri), "%s:0", base);
	return transport_listen(uri, o, l);
}

static int cconnect(const char *uri, const struct transport_opts *o, struct transport_channel **ch)
{
	int ret = transport_connect(uri, o, ch);

	if (ret)
		printf("    client: connect to %s: %s\n", uri, strerror(-ret));
	return ret;
}

typedef int (*child_fn)(const char *uri, void *arg);

static const char *child_name(child_fn fn);

/*
 * The peer is a fresh exec of this program, not just a fork: verbs device
 * files opened by librdmacm in the parent refuse a forked child (the kernel
 * checks the opener's credentials), so RDMA needs a clean process.
 */
/* ---- remote peers: an agent in another machine runs them ---------------- */

/*
 * "transport_conformance agent PORT" listens on plain TCP; each connection
 * carries one argv (NUL-terminated strings, then an empty one). The agent
 * runs it (execvp; "/proc/self/exe" is the agent's own binary) and sends
 * back one byte, the exit status as reap() gives it. If the connection
 * closes first (the proxy on the other side was killed), the command is
 * SIGKILLed: killing the local proxy kills the remote peer, so the
 * peer-killed tests work across machines unchanged.
 */
static int agent_handle(int fd)
{
	char buf[1024], *argv[16];
	size_t len = 0;
	int argc = 0;
	pid_t pid;

	while (len < 2 || buf[len - 1] || buf[len - 2]) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n <= 0 || (len += (size_t)n) == sizeof(buf))
			return 2;
	}
	for (char *p = buf; *p && argc < 15; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	pid = fork();
	if (pid == 0) {
		close(fd);
		execvp(argv[0], argv);
		perror("agent: exec");
		_exit(127);
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int st;
		uint8_t code;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			code = (uint8_t)(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			(void)!write(fd, &code, 1);
			return 0;
		}
		if (poll(&p, 1, 20) > 0) {
			kill(pid, SIGKILL); /* the proxy went away */
			waitpid(pid, &st, 0);
			return 0;
		}
	}
}

static int agent(const char *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	signal(SIGCHLD, SIG_DFL);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 16) < 0) {
		perror("agent: listen");
		return 2;
	}
	printf("agent: listening on port %s\n", port);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			continue;
		if (fork() == 0)
			_exit(agent_handle(fd));
		close(fd);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

/* Run argv on the agent at "HOST:PORT"; returns its exit status. */
static int agent_run(const char *at, char *const *argv)
{
	char host[64], buf[1024];
	const char *colon = strrchr(at, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	size_t len = 0;
	uint8_t code;
	int fd = -1;

	if (!colon)
		return 2;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - at), at);
	for (int i = 0; argv[i]; i++) {
		size_t l = strlen(argv[i]) + 1;

		if (len + l + 1 > sizeof(buf))
			return 2;
		memcpy(buf + len, argv[i], l);
		len += l;
	}
	buf[len++] = 0;
	if (getaddrinfo(host, colon + 1, &hints, &res))
		return 2;
	/* the agent may still be starting: retry for 60 s */
	for (int tries = 0; tries < 600; tries++) {
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && !connect(fd, res->ai_addr, res->ai_addrlen))
			break;
		close(fd);
		fd = -1;
		usleep(100000);
	}
	freeaddrinfo(res);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || read(fd, &code, 1) != 1)
		return 3;
	close(fd);
	return code;
}

static const char *client_agent; /* "HOST:PORT": peers run there */

static pid_t fork_peer(child_fn fn, const char *uri, void *arg)
{
	pid_t pid = fork();

	if (pid == 0 && client_agent) {
		char a[32];
		char *const argv[] = {"/proc/self/exe", "peer", (char *)child_name(fn),
				      (char *)uri,	a,	NULL};

		snprintf(a, sizeof(a), "%lu", (unsigned long)(uintptr_t)arg);
		_exit(agent_run(client_agent, argv));
	}
	if (pid == 0) {
		char a[32];

		if (client_netns) {
			int fd = open(client_netns, O_RDONLY);

			if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
				perror("setns");
				_exit(2);
			}
			close(fd);
		}
		snprintf(a, sizeof(a), "%lu", (unsigned long)(uintptr_t)arg);
		execl("/proc/self/exe", "transport_conformance", "peer", child_name(fn), uri, a,
		      (char *)NULL);
		perror("exec");
		_exit(2);
	}
	return pid;
}

static int reap(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

static transport_msg *hb(uint64_t seq, Colovm__Transport__Heartbeat *h, transport_msg *m)
{
	colovm__transport__heartbeat__init(h);
	colovm__transport__msg__init(m);
	h->seq = seq;
	h->time_ns = clock_ns();
	m->body_case = COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT;
	m->heartbeat = h;
	return m;
}

static int send_ack(struct transport_channel *ch, uint64_t id)
{
	Colovm__Transport__CheckpointAck a = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	a.id = id;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
	m.checkpoint_ack = &a;
	return transport_send(ch, &m);
}

static int wait_ack(struct transport_channel *ch, uint64_t id)
{
	transport_msg *m = NULL;
	int ret = transport_recv(ch, TMO * 5, &m);

	if (ret)
		return ret;
	ret = m->body_case == COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK &&
		      m->checkpoint_ack->id == id
		  ? 0
		  : -EPROTO;
	transport_msg_free(m);
	return ret;
}

/* ---- ordered delivery ---------------------------------------------------- */

#define N_ORDER (is_rdma ? 300 : 2000) /* TCG: ~20 ms per message */

static int c_order(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	Colovm__Transport__Heartbeat h;
	transport_msg m;

	if (cconnect(uri, &o, &ch))
		return -1;
	/* sent at once, queued (transport_send_more: a later send or a flush
	 * sends them), flushed: one order */
	for (uint64_t i = 0; i < (uint64_t)N_ORDER; i++) {
		int r = i % 7 < 4 ? transport_send_more(ch, hb(i, &h, &m))
				  : transport_send(ch, hb(i, &h, &m));

		if (!r && i % 50 == 49)
			r = transport_flush(ch);
		if (r)
			return -1;
	}
	if (transport_send_more(ch, hb(N_ORDER, &h, &m)) || transport_flush(ch))
		return -1;
	int ret = wait_ack(ch, 1);
	transport_close(ch);
	return ret;
}

static int t_order(struct transport_listener *l)
{
	struct transport_channel *ch;
	transport_msg *m;
	pid_t pid = fork_peer(c_order, transport_listener_uri(l), NULL);
	int ret = -1;

	if (transport_accept(l, &ch))
		goto out;
	for (uint64_t i = 0; i <= (uint64_t)N_ORDER; i++) {
		if (transport_recv(ch, TMO, &m))
			goto close;
		bool ok = m->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT &&
			  m->heartbeat->seq == i;
		transport_msg_free(m);
		if (!ok) {
			fprintf(stderr, "  message %llu out of order\n", (unsigned long long)i);
			goto close;
		}
	}
	ret = send_ack(ch, 1);
close:
	transport_close(ch);
out:
	return reap(pid) || ret ? -1 : 0;
}

/* ---- full duplex: a sender and a receiver thread on each end ------------- */

/*
 * Both ends send N heartbeats from one thread while another receives the
 * peer's N, in order, at the same time: the send and receive paths of one
 * channel used concurrently, as a checkpointing primary does (on RDMA both
 * wait on the same completion queue).
 */
struct duplex_tx {
	struct transport_channel *ch;
	int ret;
};

static void *duplex_sender(void *p)
{
	struct duplex_tx *a = p;
	Colovm__Transport__Heartbeat h;
	transport_msg m;

	for (uint64_t i = 0; i < (uint64_t)N_ORDER && !a->ret; i++)
		a->ret = transport_send(a->ch, hb(i, &h, &m));
	return NULL;
}

static int duplex(struct transport_channel *ch, const char *who)
{
	struct duplex_tx a = {.ch = ch};
	pthread_t t;
	int ret = 0;

	if (pthread_create(&t, NULL, duplex_sender, &a))
		return -1;
	for (uint64_t i = 0; i < (uint64_t)N_ORDER && !ret; i++) {
		transport_msg *r;

		ret = transport_recv(ch, TMO * 5, &r);
		if (ret) {
			printf("    %s: receive %llu: %s\n", who, (unsigned long long)i,
			       strerror(-ret));
			break;
		}
		if (r->body_case != COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT ||
		    r->heartbeat->seq != i) {
			printf("    %s: message %llu out of order\n", who, (unsigned long long)i);
			ret = -EPROTO;
		}
		transport_msg_free(r);
	}
	pthread_join(t, NULL);
	if (!ret && a.ret)
		printf("    %s: send: %s\n", who, strerror(-a.ret));
	if (!ret)
		ret = a.ret;
	if (!ret)
		ret = send_ack(ch, 1);
	if (!ret)
		ret = wait_ack(ch, 1);
	return ret;
}

static int c_duplex(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	int ret;

	if (cconnect(uri, &o, &ch))
		return -1;
	ret = duplex(ch, "client");
	transport_close(ch);
	return ret;
}

static int t_duplex(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_duplex, transport_listener_uri(l), NULL);
	int ret = transport_accept(l, &ch);

	if (!ret) {
		ret = duplex(ch, "server");
		printf("    %d heartbeats each way, concurrently: %s\n", N_ORDER,
		       ret ? strerror(-ret) : "all in order");
		transport_close(ch);
	}
	if (reap(pid) || ret)
		return -1;
	return 0;
}

/* ---- message sizes (echo) ------------------------------------------------ */

static const size_t sizes[] = {0, 1, 100, 4096, 65536, 300000, TRANSPORT_MAX_MSG - 64};

static int c_echo(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	transport_msg *m;
	int ret = 0;

	if (cconnect(uri, &o, &ch))
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(sizes) && !ret; i++) {
		ret = transport_recv(ch, TMO, &m);
		if (ret)
			break;
		ret = transport_send(ch, m);
		transport_msg_free(m);
	}
	if (!ret)
		ret = wait_ack(ch, 2);
	transport_close(ch);
	return ret;
}

static int t_sizes(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_echo, transport_listener_uri(l), NULL);
	Colovm__Transport__Packet p = COLOVM__TRANSPORT__PACKET__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT, *r;
	int ret = -1;

	if (transport_accept(l, &ch))
		goto out;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_PACKET;
	m.packet = &p;
	p.data.len = TRANSPORT_MAX_MSG + 1;
	p.data.data = src;
	if (transport_send(ch, &m) != -EMSGSIZE || transport_error(ch)) {
		fprintf(stderr, "  oversized message not refused with -EMSGSIZE\n");
		goto close;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		p.dir = COLOVM__TRANSPORT__PACKET__DIR__REDIRECTED;
		p.port = (uint32_t)i;
		p.data.len = sizes[i];
		p.data.data = src + i;
		if (transport_send(ch, &m) || transport_recv(ch, TMO, &r))
			goto close;
		bool ok = r->body_case == COLOVM__TRANSPORT__MSG__BODY_PACKET &&
			  r->packet->port == i && r->packet->data.len == sizes[i] &&
			  (!sizes[i] || !memcmp(r->packet->data.data, src + i, sizes[i]));
		transport_msg_free(r);
		if (!ok) {
			fprintf(stderr, "  echo of %zu bytes differs\n", sizes[i]);
			goto close;
		}
	}
	ret = send_ack(ch, 2);
close:
	transport_close(ch);
out:
	return reap(pid) || ret ? -1 : 0;
}

/* ---- bulk page runs ------------------------------------------------------ */

struct bulk_arg {
	unsigned int streams;
	unsigned int rounds;
};

/* Deterministic run list for round r: both sides compute the same. */
static unsigned int runs_for(unsigned int r, uint64_t *off, uint64_t *len, unsigned int max)
{
	uint64_t x = 0x9e3779b97f4a7c15ull * (r + 1);
	unsigned int n = 0;
	uint64_t pos = 0;

	if (r == 0) { /* one big contiguous run: exercises the stream split */
		off[0] = 0;
		len[0] = is_rdma ? 4u << 20 : 24u << 20;
		return 1;
	}
	if (is_rdma)
		max = MIN(max, 150u);
	while (n < max) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pos += (1 + x % 8) * PAGE;		 /* gap */
		uint64_t l = (1 + (x >> 8) % 32) * PAGE; /* 1..32 pages */
		if (pos + l > REGION_LEN)
			break;
		off[n] = pos;
		len[n++] = l;
		pos += l;
	}
	return n;
}

static int c_bulk(const char *uri, void *varg)
{
	struct bulk_arg aa = {.streams = (unsigned int)(uintptr_t)varg, .rounds = 4}, *a = &aa;
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	static uint64_t off[2048], len[2048];
	int ret = 0;

	o.bulk_streams = a->streams;
	if (cconnect(uri, &o, &ch))
		return -1;
	for (unsigned int r = 0; r < a->rounds && !ret; r++) {
		unsigned int n = runs_for(r, off, len, 2048);

		for (unsigned int i = 0; i < n && !ret; i++) {
			/* two iovecs per run: scatter-gather from "guest RAM" */
			struct iovec v[2] = {
			    {src + off[i], PAGE},
			    {src + off[i] + PAGE, len[i] - PAGE},
			};
			ret = transport_bulk_write(ch, v, 2, off[i]);
		}
		if (!ret)
			ret = transport_bulk_commit(ch, 100 + r);
		if (!ret)
			ret = wait_ack(ch, 100 + r);
	}
	transport_close(ch);
	return ret;
}

static int t_bulk_n(struct transport_listener *l, unsigned int streams)
{
	struct bulk_arg a = {.streams = streams, .rounds = 4};
	struct transport_channel *ch;
	static uint64_t off[2048], len[2048];
	transport_msg *m;
	pid_t pid;
	int ret = -1;

	memset(region, 0, REGION_LEN);
	pid = fork_peer(c_bulk, transport_listener_uri(l), (void *)(uintptr_t)streams);
	if (transport_accept(l, &ch))
		goto out;
	for (unsigned int r = 0; r < a.rounds; r++) {
		unsigned int n = runs_for(r, off, len, 2048);
		uint64_t total = 0;

		if (transport_recv(ch, TMO * 5, &m))
			goto close;
		bool ok = m->body_case == COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT &&
			  m->bulk_commit->id == 100 + r;
		transport_msg_free(m);
		if (!ok) {
			fprintf(stderr, "  round %u: no commit\n", r);
			goto close;
		}
		for (unsigned int i = 0; i < n; i++) {
			total += len[i];
			if (memcmp(region + off[i], src + off[i], len[i])) {
				fprintf(stderr, "  round %u run %u differs\n", r, i);
				goto close;
			}
		}
		if (send_ack(ch, 100 + r))
			goto close;
		printf("    round %u: %u runs, %llu bytes checked\n", r, n,
		       (unsigned long long)total);
	}
	ret = 0;
close:
	transport_close(ch);
out:
	return reap(pid) || ret ? -1 : 0;
}

static int t_bulk(struct transport_listener *l)
{
	return t_bulk_n(l, 1);
}

static int t_bulk4(struct transport_listener *l)
{
	return t_bulk_n(l, 4);
}

/* ---- bulk range errors --------------------------------------------------- */

static int c_range(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	struct iovec v = {src, PAGE};
	int ret = 0;

	if (cconnect(uri, &o, &ch))
		return -1;
	if (transport_bulk_write(ch, &v, 1, REGION_LEN - PAGE / 2) != -ERANGE)
		ret = -1;
	if (transport_bulk_write(ch, &v, 1, UINT64_MAX - 10) != -ERANGE)
		ret = -1;
	if (transport_error(ch))
		ret = -1;
	if (!ret)
		ret = wait_ack(ch, 3);
	transport_close(ch);
	return ret;
}

static int t_range(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_range, transport_listener_uri(l), NULL);
	int ret = -1;

	if (transport_accept(l, &ch))
		goto out;
	ret = send_ack(ch, 3);
	transport_close(ch);
out:
	return reap(pid) || ret ? -1 : 0;
}

/* ---- peer killed mid-transfer -------------------------------------------- */

static int c_stream_forever(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	Colovm__Transport__Heartbeat h;
	transport_msg m;

	if (cconnect(uri, &o, &ch))
		return -1;
	for (uint64_t i = 0;; i++) {
		struct iovec v = {src, 8u << 20};

		if (transport_bulk_write(ch, &v, 1, 0) || transport_bulk_commit(ch, i) ||
		    transport_send(ch, hb(i, &h, &m)))
			break;
	}
	transport_close(ch);
	return 0;
}

static int c_idle_forever(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;

	if (cconnect(uri, &o, &ch))
		return -1;
	for (;;)
		pause();
	return 0;
}

/* A receiver that reads (and so verifies) whatever comes, for ever: a
 * sender must not write over bytes of an epoch the receiver has not
 * verified (RDMA waits for that), so a peer that reads nothing would stall
 * it at its second epoch. */
static int c_drain_forever(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;
	transport_msg *m;

	if (cconnect(uri, &o, &ch))
		return -1;
	for (;;) {
		int ret = transport_recv(ch, 200, &m);

		if (!ret)
			transport_msg_free(m);
		else if (ret != -EAGAIN)
			pause();
	}
	return 0;
}

/* Receiver side sees the sender die. */
static int t_kill_sender(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_stream_forever, transport_listener_uri(l), NULL);
	transport_msg *m;
	uint64_t t0 = 0, got = 0;
	int ret = -1, err;

	if (transport_accept(l, &ch)) {
		kill(pid, SIGKILL);
		reap(pid);
		return -1;
	}
	for (;;) {
		err = transport_recv(ch, 100, &m);
		if (err == -EAGAIN && (!t0 || clock_ns() - t0 < 3ull * TMO * 1000000))
			continue;
		if (err)
			break;
		transport_msg_free(m);
		if (++got == 20) {
			kill(pid, SIGKILL);
			t0 = clock_ns();
		}
	}
	uint64_t ms = t0 ? (clock_ns() - t0) / 1000000 : 0;
	printf("    receiver error %d (%s) %llu ms after SIGKILL\n", err, strerror(-err),
	       (unsigned long long)ms);
	ret = t0 && err && ms < TMO + 1000 ? 0 : -1;
	if (transport_recv(ch, 0, &m) != err) /* sticky */
		ret = -1;
	transport_close(ch);
	return reap(pid) == 128 + SIGKILL && !ret ? 0 : -1;
}

/* Sender side sees the receiver die. */
static int t_kill_receiver(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_drain_forever, transport_listener_uri(l), NULL);
	uint64_t t0 = 0;
	int err = 0, ret;

	if (transport_accept(l, &ch)) {
		kill(pid, SIGKILL);
		reap(pid);
		return -1;
	}
	for (uint64_t i = 0; !err; i++) {
		struct iovec v = {src, 4u << 20};

		err = transport_bulk_write(ch, &v, 1, 0);
		if (!err)
			err = transport_bulk_commit(ch, i);
		if (i == 5) {
			kill(pid, SIGKILL);
			t0 = clock_ns();
		}
		if (t0 && clock_ns() - t0 > 3ull * TMO * 1000000)
			break;
	}
	uint64_t ms = (clock_ns() - t0) / 1000000;
	printf("    sender error %d (%s) %llu ms after SIGKILL\n", err, strerror(-err),
	       (unsigned long long)ms);
	ret = err && ms < TMO + 1000 ? 0 : -1;
	transport_close(ch);
	return reap(pid) == 128 + SIGKILL && !ret ? 0 : -1;
}

/* ---- wrong key ----------------------------------------------------------- */

static int c_connect_expect(const char *uri, void *arg)
{
	struct transport_opts o = opts(arg ? &bad_key : &key);
	struct transport_channel *ch;
	int ret = transport_connect(uri, &o, &ch);

	if (ret) {
		printf("    client: connect refused: %s\n", strerror(-ret));
		return ret == -EACCES || ret == -EPROTONOSUPPORT ? 0 : -1;
	}
	transport_close(ch);
	return -1;
}

static int c_connect_ok(const char *uri, void *arg)
{
	struct transport_opts o = opts(&key);
	struct transport_channel *ch;

	if (cconnect(uri, &o, &ch))
		return -1;
	int ret = wait_ack(ch, 7);
	transport_close(ch);
	return ret;
}

/* After a refused peer the listener must still take a good one. */
static int good_after(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_connect_ok, transport_listener_uri(l), NULL);
	int ret = -1;

	if (!transport_accept(l, &ch)) {
		ret = send_ack(ch, 7);
		transport_close(ch);
	}
	return reap(pid) || ret ? -1 : 0;
}

static int t_wrong_key(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_connect_expect, transport_listener_uri(l), (void *)1);
	int ret = transport_accept(l, &ch);

	printf("    server: accept refused: %s\n", strerror(-ret));
	if (!ret)
		transport_close(ch);
	if (reap(pid) || ret != -EACCES)
		return -1;
	return good_after(l);
}

/* ---- version mismatch ---------------------------------------------------- */

static int c_bad_version(const char *uri, void *arg)
{
	transport_test_hello_version = 99;
	return c_connect_expect(uri, NULL);
}

static int t_version(struct transport_listener *l)
{
	struct transport_channel *ch;
	pid_t pid = fork_peer(c_bad_version, transport_listener_uri(l), NULL);
	int ret = transport_accept(l, &ch);

	printf("    server: accept refused: %s\n", strerror(-ret));
	if (!ret)
		transport_close(ch);
	if (reap(pid) || ret != -EPROTONOSUPPORT)
		return -1;
	return good_after(l);
}

/* ---- garbage on the port ------------------------------------------------- */

/*
 * A peer that connects at the medium's level (a TCP connection, or an
 * rdma_cm connection with its own queue pair) and sends bytes that are not
 * a hello: random-looking, or starting with our frame magic. On RDMA the
 * bytes arrive as one SEND in a posted receive buffer.
 */
static int c_garbage(const char *uri, void *arg)
{
	struct transport_opts o = opts(&bad_key);
	struct transport_channel *ch;
	uint8_t buf[4096];
	int ret;

	o.recv_region_len = 0;
	o.send_region_len = 0;
	ret = transport_test_connect_raw(uri, &o, &ch);
	if (ret) {
		printf("    garbage peer: connect to %s: %s\n", uri, strerror(-ret));
		return -1;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + (uintptr_t)arg);
	if (arg)
		memcpy(buf, "CVTP", 4);
	ret = transport_test_send_raw(ch, buf, sizeof(buf));
	if (ret)
		printf("    garbage peer: send: %s\n", strerror(-ret));
	sleep(1);
	transport_close(ch);
	return ret ? -1 : 0;
}

static int t_garbage(struct transport_listener *l)
{
	for (uintptr_t variant = 0; variant < 2; variant++) {
		struct transport_channel *ch;
		pid_t pid = fork_peer(c_garbage, transport_listener_uri(l), (void *)variant);
		int ret = transport_accept(l, &ch);

		printf("    garbage variant %lu: accept refused: %s\n", (unsigned long)variant,
		       strerror(-ret));
		if (!ret)
			transport_close(ch);
		if (reap(pid) || !ret)
			return -1;
	}
	return good_after(l);
}

/* ---- runner -------------------------------------------------------------- */

static const struct {
	const char *name;
	child_fn fn;
} children[] = {
    {"order", c_order},
    {"duplex", c_duplex},
    {"echo", c_echo},
    {"bulk", c_bulk},
    {"range", c_range},
    {"stream", c_stream_forever},
    {"idle", c_idle_forever},
    {"drain", c_drain_forever},
    {"expect", c_connect_expect},
    {"ok", c_connect_ok},
    {"badver", c_bad_version},
    {"garbage", c_garbage},
};

static const char *child_name(child_fn fn)
{
	for (size_t i = 0; i < ARRAY_SIZE(children); i++)
		if (children[i].fn == fn)
			return children[i].name;
	return "?";
}

static int run_child(const char *name, const char *uri, const char *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(children); i++)
		if (!strcmp(children[i].name, name))
			return children[i].fn(uri, (void *)(uintptr_t)strtoul(arg, NULL, 0)) ? 1
											     : 0;
	return 2;
}

static const struct {
	const char *name;
	int (*fn)(struct transport_listener *l);
	bool tcp_only;
} tests[] = {
    {"ordered_delivery", t_order, false},
    {"full_duplex", t_duplex, false},
    {"message_sizes", t_sizes, false},
    {"bulk_runs", t_bulk, false},
    {"bulk_runs_4_streams", t_bulk4, true},
    {"bulk_range", t_range, false},
    {"peer_killed_sender", t_kill_sender, false},
    {"peer_killed_receiver", t_kill_receiver, false},
    {"wrong_key", t_wrong_key, false},
    {"version_mismatch", t_version, false},
    {"garbage_on_port", t_garbage, false},
};

static int load_or_die(const char *path, struct transport_key *k)
{
	int ret = transport_key_load(path, k);

	if (ret)
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
	return ret;
}

/* One-shot peers for the netns link-cut test: both report when they fail. */
static int oneshot(const char *mode, const char *uri, const char *keyfile)
{
	struct transport_opts o;
	struct transport_listener *l = NULL;
	struct transport_channel *ch;
	Colovm__Transport__Heartbeat h;
	transport_msg m, *r;
	int ret;

	if (load_or_die(keyfile, &key))
		return 2;
	o = opts(&key);
	if (!strcmp(mode, "serve")) {
		ret = transport_listen(uri, &o, &l);
		if (!ret)
			ret = transport_accept(l, &ch);
	} else {
		ret = transport_connect(uri, &o, &ch);
	}
	if (ret) {
		fprintf(stderr, "%s: %s\n", mode, strerror(-ret));
		return 2;
	}
	printf("%s: connected\n", mode);
	fflush(stdout);
	/* both sides: heartbeat every 100 ms, bulk every round */
	uint64_t last = 0, t_fail;
	for (uint64_t i = 0;; i++) {
		struct iovec v = {src, 1u << 20};

		ret = transport_send(ch, hb(i, &h, &m));
		if (!ret)
			ret = transport_bulk_write(ch, &v, 1, 0);
		if (!ret)
			ret = transport_bulk_commit(ch, i);
		while (!ret) {
			ret = transport_recv(ch, 100, &r);
			if (ret == -EAGAIN) {
				ret = 0;
				break;
			}
			if (!ret) {
				last = clock_ns();
				transport_msg_free(r);
			}
		}
		if (ret)
			break;
	}
	t_fail = clock_ns();
	printf("%s: error %s, %llu ms after the last message\n", mode, strerror(-ret),
	       (unsigned long long)((t_fail - last) / 1000000));
	fflush(stdout);
	transport_close(ch);
	transport_listener_close(l);
	return 0;
}

int main(int argc, char **argv)
{
	struct transport_listener *l;
	struct transport_opts o;
	int ret;

	signal(SIGPIPE, SIG_IGN);
	if (getenv("TRANSPORT_DEBUG"))
		log_set_level(LOG_DEBUG);
	setvbuf(stdout, NULL, _IOLBF, 0);
	src = mmap(NULL, REGION_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region = mmap(NULL, REGION_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || region == MAP_FAILED)
		return 2;
	srandom(42);
	for (size_t i = 0; i < REGION_LEN / sizeof(long); i++)
		((long *)src)[i] = random();

	if (sodium_init() < 0)
		return 2;
	/* fixed test keys: the peer is a separate exec */
	crypto_generichash(key.bytes, sizeof(key.bytes), (const uint8_t *)"good", 4, NULL, 0);
	crypto_generichash(bad_key.bytes, sizeof(bad_key.bytes), (const uint8_t *)"bad", 3, NULL,
			   0);
	if (argc == 5 && !strcmp(argv[1], "peer")) {
		is_rdma = !strncmp(argv[3], "rdma:", 5);
		tmo = is_rdma ? 5000 : 2000;
		return run_child(argv[2], argv[3], argv[4]);
	}
	if (argc == 3 && !strcmp(argv[1], "agent"))
		return agent(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "remote"))
		return agent_run(argv[2], argv + 3);
	if (argc == 4) {
		if (!strncmp(argv[2], "rdma:", 5))
			tmo = 5000;
		return oneshot(argv[1], argv[2], argv[3]);
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr,
			"usage: %s URI_BASE [CLIENT_NETNS|agent:HOST:PORT]\n"
			"       %s serve|connect URI KEYFILE\n"
			"       %s agent PORT\n"
			"       %s remote HOST:PORT ARGV...\n",
			argv[0], argv[0], argv[0], argv[0]);
		return 2;
	}
	base = argv[1];
	client_netns = argc == 3 ? argv[2] : NULL;
	if (client_netns && !strncmp(client_netns, "agent:", 6)) {
		client_agent = client_netns + 6;
		client_netns = NULL;
	}
	is_rdma = !strncmp(base, "rdma:", 5);
	if (is_rdma)
		tmo = 5000;
	o = opts(&key);
	ret = listen_here(&l, &o);
	if (ret) {
		fprintf(stderr, "listen on %s: %s\n", base, strerror(-ret));
		return 1;
	}
	printf("transport conformance on %s\n", transport_listener_uri(l));
	for (size_t i = 0; i < ARRAY_SIZE(tests); i++) {
		uint64_t t0 = clock_ns();

		if (tests[i].tcp_only && is_rdma) {
			printf("SKIP %s (tcp only)\n", tests[i].name);
			skipped++;
			continue;
		}
		ret = tests[i].fn(l);
		printf("%s %s (%llu ms)\n", ret ? "FAIL" : "PASS", tests[i].name,
		       (unsigned long long)((clock_ns() - t0) / 1000000));
		if (ret)
			failed++;
		else
			passed++;
	}
	transport_listener_close(l);
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
