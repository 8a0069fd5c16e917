/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The witness (transport.h): who of a broken pair may serve alone.
 *
 * A claim is one short channel of its own, under the same key scheme as the
 * pair's (handshake, MAC'd and sequenced frames), so a claim can be neither
 * forged nor replayed, and a verdict neither:
 *
 *   side                                           witness
 *   |== transport_connect (Hello, Auth, ...) ========>|
 *   |-- WitnessClaim{pair, side, checkpoint, vm} ---->|  first claim of
 *   |                                                 |  `pair`: granted,
 *   |                                                 |  recorded (state
 *   |                                                 |  file, fsync'd)
 *   |<- WitnessVerdict{granted, holder, since} -------|  before the answer
 *
 * A probe (is it serving, under this key?) takes the same road and records
 * nothing:
 *
 *   prober                                         witness
 *   |== transport_connect (Hello, Auth, ...) ========>|
 *   |-- WitnessProbe{name} -------------------------->|
 *   |<- WitnessStatus{pairs, granted, refused} -------|
 *
 * A side keeps a standing session (transport_witness_session): a probe with
 * `hold` keeps its channel open, probed again every WITNESS_KEEPALIVE_MS,
 * so that a claim, when the pair breaks, is one round trip on it. The
 * session is taken by the claim and never reused after it (a verdict late
 * on it can answer no later claim); without one (the witness unreachable
 * then, or one that holds none) a claim opens its own channel:
 *
 *   side                                           witness
 *   |== transport_connect (Hello, Auth, ...) ========>|
 *   |-- WitnessProbe{name, hold} -------------------->|
 *   |<- WitnessStatus{..., held} ---------------------|  channel kept
 *   |-- WitnessProbe{name, hold} (every 5 s) -------->|
 *   |<- WitnessStatus{..., held} ---------------------|
 *   |-- WitnessClaim{pair, side, checkpoint, vm} ---->|  (as above)
 *   |<- WitnessVerdict{granted, holder, since} -------|
 *
 * The witness answers one peer at a time; a handshake and each message are
 * bounded by WITNESS_TIMEOUT_MS, so a peer that connects and says nothing,
 * or half a message, delays the next one by at most that.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/common.h"
#include "transport/transport.h"

#define WITNESS_TIMEOUT_MS   2000
#define WITNESS_MAX_PAIRS    4096	   /* grants remembered (the oldest go first) */
#define WITNESS_RETRY_NS     3000000000ull /* a claim without a verdict: tried again */
#define WITNESS_RETRY_GAP_NS 250000000ull  /* for this long, this far apart */
#define WITNESS_KEEPALIVE_MS 5000	   /* a side's session probed this often */
#define WITNESS_REOPEN_MS    1000	   /* a session that cannot open: again after */
#define WITNESS_MAX_SESSIONS 1024	   /* sessions held open at once */

static const char *side_name(int side)
{
	return side == TRANSPORT_SIDE_SECONDARY ? "secondary" : "primary";
}

static uint64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the claimant ----------------------------------------------------------------- */

/* A channel to the witness at uri, or msg says why not (for a person).
 * < 0 when none: -ETIMEDOUT for no answer in time, -EACCES another key. */
static int witness_connect(const char *uri, const struct transport_key *key, const char *name,
			   struct transport_channel **ch, char *msg, size_t len)
{
	struct transport_opts opts = {.key = key, .timeout_ms = WITNESS_TIMEOUT_MS, .name = name};
	int ret = transport_connect(uri, &opts, ch);

	if (ret)
		snprintf(msg, len, "cannot reach the witness at %s: %s%s", uri,
			 ret == -EAGAIN ? "no answer in time" : strerror(-ret),
			 ret == -EACCES ? " (it has another key)" : "");
	return ret == -EAGAIN ? -ETIMEDOUT : ret;
}

/* One claim on ch, open to the witness at uri: 1 granted, 0 refused, < 0
 * no verdict. */
static int claim_on(struct transport_channel *ch, const char *uri,
		    const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
		    uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	Colovm__Transport__WitnessClaim wc = COLOVM__TRANSPORT__WITNESS_CLAIM__INIT;
	transport_msg out = COLOVM__TRANSPORT__MSG__INIT, *in = NULL;
	const Colovm__Transport__WitnessVerdict *v;
	int ret;

	wc.pair.data = (uint8_t *)pair;
	wc.pair.len = TRANSPORT_PAIR_LEN;
	wc.side = side == TRANSPORT_SIDE_SECONDARY
		      ? COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__SECONDARY
		      : COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__PRIMARY;
	wc.checkpoint_id = checkpoint_id;
	wc.vm = (char *)(vm ? vm : "");
	out.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_CLAIM;
	out.witness_claim = &wc;
	ret = transport_send(ch, &out);
	if (!ret)
		ret = transport_recv(ch, WITNESS_TIMEOUT_MS, &in);
	if (ret) {
		snprintf(msg, len, "the witness at %s gave no verdict: %s", uri,
			 ret == -EAGAIN ? "no answer in time" : strerror(-ret));
		return ret == -EAGAIN ? -ETIMEDOUT : ret;
	}
	if (in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_VERDICT) {
		snprintf(msg, len,
			 "the witness at %s answered with something else (message type %d)", uri,
			 (int)in->body_case);
		transport_msg_free(in);
		return -EPROTO;
	}
	v = in->witness_verdict;
	if (v->granted && (int)v->holder != (int)wc.side) {
		snprintf(msg, len, "the witness at %s granted the %s's claim to the %s", uri,
			 side_name(side), side_name((int)v->holder));
		ret = -EPROTO;
	} else if (v->granted) {
		snprintf(msg, len, "the witness at %s granted it", uri);
		ret = 1;
	} else {
		snprintf(msg, len, "the witness at %s refused: %.160s", uri,
			 v->message ? v->message : "");
		ret = 0;
	}
	transport_msg_free(in);
	return ret;
}

static const char *claimant_name(enum transport_side side)
{
	return side == TRANSPORT_SIDE_SECONDARY ? "colovm COLO secondary" : "colovm COLO primary";
}

/* A claim on a channel of its own. */
static int claim_once(const char *uri, const struct transport_key *key,
		      const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
		      uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	struct transport_channel *ch = NULL;
	int ret;

	ret = witness_connect(uri, key, claimant_name(side), &ch, msg, len);
	if (ret)
		return ret;
	ret = claim_on(ch, uri, pair, side, checkpoint_id, vm, msg, len);
	transport_close(ch);
	return ret;
}

/* Claims on channels of their own until a verdict, a wrong key or end. */
static int claim_until(uint64_t end, const char *uri, const struct transport_key *key,
		       const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
		       uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	int ret;

	/* A verdict is final; no verdict is tried again for a while (a
	 * witness restarting, a lost SYN), except a wrong key. */
	for (;;) {
		ret = claim_once(uri, key, pair, side, checkpoint_id, vm, msg, len);
		if (ret >= 0 || ret == -EACCES || clock_ns() + WITNESS_RETRY_GAP_NS >= end)
			return ret;
		usleep(WITNESS_RETRY_GAP_NS / 1000);
	}
}

int transport_witness_claim(const char *uri, const struct transport_key *key,
			    const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
			    uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	return claim_until(clock_ns() + WITNESS_RETRY_NS, uri, key, pair, side, checkpoint_id, vm,
			   msg, len);
}

/* One probe on ch: 0 and *st (the caller frees it) once a status came;
 * < 0 and msg otherwise. */
static int probe_on(struct transport_channel *ch, const char *uri, const char *name, bool hold,
		    transport_msg **st, char *msg, size_t len)
{
	Colovm__Transport__WitnessProbe wp = COLOVM__TRANSPORT__WITNESS_PROBE__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT, *in = NULL;
	int ret;

	wp.name = (char *)name;
	wp.hold = hold;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_PROBE;
	m.witness_probe = &wp;
	ret = transport_send(ch, &m);
	if (!ret)
		ret = transport_recv(ch, WITNESS_TIMEOUT_MS, &in);
	if (ret) {
		snprintf(msg, len, "the witness at %s did not answer the probe: %s", uri,
			 ret == -EAGAIN ? "no answer in time" : strerror(-ret));
		return ret == -EAGAIN ? -ETIMEDOUT : ret;
	}
	if (in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_STATUS) {
		snprintf(msg, len, "the witness at %s answered the probe with message type %d", uri,
			 (int)in->body_case);
		transport_msg_free(in);
		return -EPROTO;
	}
	*st = in;
	return 0;
}

int transport_witness_probe(const char *uri, const struct transport_key *key, const char *name,
			    struct transport_witness_stats *out, char *msg, size_t len)
{
	struct transport_channel *ch = NULL;
	transport_msg *in = NULL;
	int ret;

	name = name ? name : "witness probe";
	ret = witness_connect(uri, key, name, &ch, msg, len);
	if (ret)
		return ret;
	ret = probe_on(ch, uri, name, false, &in, msg, len);
	if (!ret) {
		memset(out, 0, sizeof(*out));
		out->pairs = in->witness_status->pairs;
		out->granted = in->witness_status->granted;
		out->refused = in->witness_status->refused;
		out->sessions = in->witness_status->sessions;
		snprintf(msg, len,
			 "the witness at %s answers: %llu pairings, %llu granted, "
			 "%llu refused since it started, %llu sessions held%s",
			 uri, (unsigned long long)out->pairs, (unsigned long long)out->granted,
			 (unsigned long long)out->refused, (unsigned long long)out->sessions,
			 in->witness_status->state_kept ? ""
							: " (grants not kept across restarts)");
	}
	transport_msg_free(in);
	transport_close(ch);
	return ret;
}

/* ---- a side's standing session ----------------------------------------------------- */

struct transport_witness_session {
	char *uri;
	struct transport_key key;
	char name[64];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* (CLOCK_MONOTONIC) the keeper's waits */
	bool quit;
	struct transport_channel *ch; /* the open session, NULL: none (lock) */
};

/* Open a session: 0 and *out; -EOPNOTSUPP when the witness answered but
 * does not hold it open. */
static int session_open(struct transport_witness_session *ws, struct transport_channel **out,
			char *msg, size_t len)
{
	struct transport_channel *ch = NULL;
	transport_msg *in = NULL;
	int ret;

	ret = witness_connect(ws->uri, &ws->key, ws->name, &ch, msg, len);
	if (ret)
		return ret;
	ret = probe_on(ch, ws->uri, ws->name, true, &in, msg, len);
	if (!ret && !in->witness_status->held) {
		snprintf(msg, len,
			 "the witness at %s holds no session open (an older colovm, or too many)",
			 ws->uri);
		ret = -EOPNOTSUPP;
	}
	transport_msg_free(in);
	if (ret) {
		transport_close(ch);
		return ret;
	}
	*out = ch;
	return 0;
}

/* Wait on the keeper's condition for ms (lock held). */
static void session_wait(struct transport_witness_session *ws, unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (!ws->quit)
		pthread_cond_timedwait(&ws->cond, &ws->lock, &ts);
}

/* The keeper: opens the session, probes it every WITNESS_KEEPALIVE_MS, opens
 * another when it breaks or a claim took it. */
static void *session_thread(void *arg)
{
	struct transport_witness_session *ws = arg;
	unsigned int fails = 0;
	bool down = false;
	char msg[256];
	int ret;

	pthread_mutex_lock(&ws->lock);
	while (!ws->quit) {
		struct transport_channel *ch = ws->ch;
		transport_msg *in = NULL;

		if (!ch) {
			pthread_mutex_unlock(&ws->lock);
			ret = session_open(ws, &ch, msg, sizeof(msg));
			pthread_mutex_lock(&ws->lock);
			if (!ret) {
				ws->ch = ch;
				if (down)
					log_info("witness: %s: session open again", ws->uri);
				down = false;
				fails = 0;
				continue;
			}
			if (ret == -EOPNOTSUPP) {
				/* (the keeper ends: claims open their own) */
				log_info("%s: each claim opens its own channel", msg);
				break;
			}
			/* The first tries again soon: the witness serves one peer
			 * at a time, and a connection that comes while it admits
			 * another may be turned away. */
			if (++fails == 3 && !down) {
				log_warn(
				    "witness: %s (tried again every %u ms; a claim would ask it "
				    "on a channel of its own)",
				    msg, WITNESS_REOPEN_MS);
				down = true;
			}
			session_wait(ws,
				     fails < 3 ? 50 + randombytes_uniform(200) : WITNESS_REOPEN_MS);
			continue;
		}
		session_wait(ws, WITNESS_KEEPALIVE_MS);
		if (ws->quit || ws->ch != ch)
			continue; /* ending, or a claim took it */
		/* (the lock held: a claim waits for this round trip) */
		ret = probe_on(ch, ws->uri, ws->name, true, &in, msg, sizeof(msg));
		if (!ret && !in->witness_status->held)
			ret = -EOPNOTSUPP;
		transport_msg_free(in);
		if (ret) {
			log_warn("witness: the session with %s ended: %s; opening another", ws->uri,
				 ret == -EOPNOTSUPP ? "no longer held" : msg);
			transport_close(ch);
			ws->ch = NULL;
			down = true;
		}
	}
	if (ws->ch) {
		transport_close(ws->ch);
		ws->ch = NULL;
	}
	pthread_mutex_unlock(&ws->lock);
	return NULL;
}

int transport_witness_session_new(const char *uri, const struct transport_key *key,
				  enum transport_side side, const char *vm,
				  struct transport_witness_session **out)
{
	struct transport_witness_session *ws = calloc(1, sizeof(*ws));
	pthread_condattr_t ca;
	int ret;

	if (!ws || !(ws->uri = strdup(uri))) {
		free(ws);
		return -ENOMEM;
	}
	ws->key = *key;
	snprintf(ws->name, sizeof(ws->name), "%s%s%.32s", claimant_name(side), vm ? " " : "",
		 vm ? vm : "");
	pthread_mutex_init(&ws->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ws->cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = -pthread_create(&ws->thread, NULL, session_thread, ws);
	if (ret) {
		pthread_cond_destroy(&ws->cond);
		pthread_mutex_destroy(&ws->lock);
		sodium_memzero(&ws->key, sizeof(ws->key));
		free(ws->uri);
		free(ws);
		return ret;
	}
	*out = ws;
	return 0;
}

bool transport_witness_session_up(struct transport_witness_session *ws)
{
	bool up;

	pthread_mutex_lock(&ws->lock);
	up = ws->ch != NULL;
	pthread_mutex_unlock(&ws->lock);
	return up;
}

int transport_witness_session_claim(struct transport_witness_session *ws,
				    const uint8_t pair[TRANSPORT_PAIR_LEN],
				    enum transport_side side, uint64_t checkpoint_id,
				    const char *vm, char *msg, size_t len)
{
	uint64_t end = clock_ns() + WITNESS_RETRY_NS;
	struct transport_channel *ch;
	int ret;

	/* Taken, never given back: a verdict late on it must answer no
	 * later claim. The keeper opens another. */
	pthread_mutex_lock(&ws->lock);
	ch = ws->ch;
	ws->ch = NULL;
	pthread_cond_signal(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	if (ch) {
		ret = claim_on(ch, ws->uri, pair, side, checkpoint_id, vm, msg, len);
		transport_close(ch);
		if (ret >= 0) {
			size_t n = strnlen(msg, len);

			/* (where a verdict ends: "granted it", "refused: ...") */
			if (ret == 1 && n < len)
				snprintf(msg + n, len - n, " over the standing session");
			return ret;
		}
		log_warn(
		    "witness: the claim on the session failed (%s): asking on a channel of its "
		    "own",
		    msg);
	}
	return claim_until(end, ws->uri, &ws->key, pair, side, checkpoint_id, vm, msg, len);
}

void transport_witness_session_free(struct transport_witness_session *ws)
{
	if (!ws)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->quit = true;
	pthread_cond_signal(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	pthread_join(ws->thread, NULL);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->lock);
	sodium_memzero(&ws->key, sizeof(ws->key));
	free(ws->uri);
	free(ws);
}

/* ---- the witness ------------------------------------------------------------------ */

struct grant {
	uint8_t pair[TRANSPORT_PAIR_LEN];
	int side;
	uint64_t since_ms;
};

struct transport_witness {
	struct transport_listener *listener;
	int epfd;			     /* the listener and the sessions */
	struct transport_channel **sessions; /* held open (WITNESS_MAX_SESSIONS) */
	unsigned int nsessions;
	int state_fd;
	struct grant *grants; /* a ring of WITNESS_MAX_PAIRS */
	unsigned int ngrants, next;
	uint64_t claims, granted, refused, bad, probes;
};

static struct grant *find(struct transport_witness *w, const uint8_t *pair)
{
	for (unsigned int i = 0; i < w->ngrants; i++) {
		if (!memcmp(w->grants[i].pair, pair, TRANSPORT_PAIR_LEN))
			return &w->grants[i];
	}
	return NULL;
}

static struct grant *remember(struct transport_witness *w, const uint8_t *pair, int side,
			      uint64_t since_ms)
{
	struct grant *g = &w->grants[w->next];

	memcpy(g->pair, pair, TRANSPORT_PAIR_LEN);
	g->side = side;
	g->since_ms = since_ms;
	w->next = (w->next + 1) % WITNESS_MAX_PAIRS;
	if (w->ngrants < WITNESS_MAX_PAIRS)
		w->ngrants++;
	return g;
}

/* State file: one grant per line, "PAIR-HEX SIDE UNIX-MS", oldest first. */
static int load_state(struct transport_witness *w, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[256];
	unsigned int n = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		char hex[2 * TRANSPORT_PAIR_LEN + 2], side[16];
		uint8_t pair[TRANSPORT_PAIR_LEN];
		unsigned long long since;
		size_t bin;

		n++;
		if (sscanf(line, "%33s %15s %llu", hex, side, &since) != 3 ||
		    strlen(hex) != 2 * TRANSPORT_PAIR_LEN ||
		    sodium_hex2bin(pair, sizeof(pair), hex, strlen(hex), NULL, &bin, NULL) ||
		    bin != TRANSPORT_PAIR_LEN ||
		    (strcmp(side, "primary") && strcmp(side, "secondary"))) {
			log_err("witness: %s:%u: expected 'PAIR(32 hex digits) primary|secondary "
				"UNIX-MS'",
				path, n);
			fclose(f);
			return -EBADMSG;
		}
		remember(w, pair,
			 strcmp(side, "primary") ? TRANSPORT_SIDE_SECONDARY
						 : TRANSPORT_SIDE_PRIMARY,
			 since);
	}
	fclose(f);
	log_info("witness: %s: %u grants remembered", path, w->ngrants);
	return 0;
}

/* Rewrite the state file with what is remembered (it never grows beyond
 * WITNESS_MAX_PAIRS lines at a start), then keep it open for appending. */
static int open_state(struct transport_witness *w, const char *path)
{
	char *tmp = NULL;
	FILE *f;
	int ret;

	ret = load_state(w, path);
	if (ret)
		return ret;
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	f = fopen(tmp, "w");
	if (!f) {
		ret = -errno;
		free(tmp);
		return ret;
	}
	for (unsigned int k = 0; k < w->ngrants; k++) {
		/* oldest first: the ring starts at next once it is full */
		const struct grant *g =
		    &w->grants[w->ngrants < WITNESS_MAX_PAIRS ? k
							      : (w->next + k) % WITNESS_MAX_PAIRS];
		char hex[2 * TRANSPORT_PAIR_LEN + 1];

		sodium_bin2hex(hex, sizeof(hex), g->pair, TRANSPORT_PAIR_LEN);
		fprintf(f, "%s %s %llu\n", hex, side_name(g->side),
			(unsigned long long)g->since_ms);
	}
	ret = fflush(f) || fsync(fileno(f)) ? -errno : 0;
	if (fclose(f) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	free(tmp);
	if (ret)
		return ret;
	w->state_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	return w->state_fd < 0 ? -errno : 0;
}

static int record(struct transport_witness *w, const struct grant *g)
{
	char hex[2 * TRANSPORT_PAIR_LEN + 1], line[128];
	int n;

	if (w->state_fd < 0)
		return 0;
	sodium_bin2hex(hex, sizeof(hex), g->pair, TRANSPORT_PAIR_LEN);
	n = snprintf(line, sizeof(line), "%s %s %llu\n", hex, side_name(g->side),
		     (unsigned long long)g->since_ms);
	if (write(w->state_fd, line, (size_t)n) != n || fdatasync(w->state_fd))
		return errno ? -errno : -EIO;
	return 0;
}

int transport_witness_new(const char *uri, const struct transport_key *key, const char *state_path,
			  struct transport_witness **out)
{
	struct transport_witness *w = calloc(1, sizeof(*w));
	struct transport_opts opts = {.key = key,
				      .timeout_ms = WITNESS_TIMEOUT_MS,
				      .name = "colovm witness",
				      .quiet_accept = true};
	int ret;

	if (!w)
		return -ENOMEM;
	w->state_fd = -1;
	w->epfd = -1;
	w->grants = calloc(WITNESS_MAX_PAIRS, sizeof(*w->grants));
	w->sessions = calloc(WITNESS_MAX_SESSIONS, sizeof(*w->sessions));
	if (!w->grants || !w->sessions) {
		transport_witness_free(w);
		return -ENOMEM;
	}
	if (state_path) {
		ret = open_state(w, state_path);
		if (ret) {
			if (ret != -EBADMSG)
				log_err("witness: state file %s: %s", state_path, strerror(-ret));
			transport_witness_free(w);
			return ret;
		}
	}
	ret = transport_listen(uri, &opts, &w->listener);
	if (!ret) {
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		if (w->epfd < 0 ||
		    epoll_ctl(w->epfd, EPOLL_CTL_ADD, transport_listener_fd(w->listener), &ev))
			ret = -errno;
	}
	if (ret) {
		transport_witness_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

const char *transport_witness_uri(const struct transport_witness *w)
{
	return transport_listener_uri(w->listener);
}

int transport_witness_fd(const struct transport_witness *w)
{
	return w->epfd;
}

static int verdict(struct transport_channel *ch, bool granted, const struct grant *g,
		   const char *message)
{
	Colovm__Transport__WitnessVerdict v = COLOVM__TRANSPORT__WITNESS_VERDICT__INIT;
	transport_msg out = COLOVM__TRANSPORT__MSG__INIT;

	v.granted = granted;
	if (g) {
		v.holder = g->side == TRANSPORT_SIDE_SECONDARY
			       ? COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__SECONDARY
			       : COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__PRIMARY;
		v.since_unix_ms = g->since_ms;
	}
	v.message = (char *)message;
	out.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_VERDICT;
	out.witness_verdict = &v;
	return transport_send(ch, &out);
}

static int status(const struct transport_witness *w, struct transport_channel *ch, bool held)
{
	Colovm__Transport__WitnessStatus st = COLOVM__TRANSPORT__WITNESS_STATUS__INIT;
	transport_msg out = COLOVM__TRANSPORT__MSG__INIT;

	st.pairs = w->ngrants;
	st.granted = w->granted;
	st.refused = w->refused;
	st.state_kept = w->state_fd >= 0;
	st.held = held;
	st.sessions = w->nsessions;
	out.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_STATUS;
	out.witness_status = &st;
	return transport_send(ch, &out);
}

/* A claim's verdict. */
static void judge(struct transport_witness *w, struct transport_channel *ch,
		  const Colovm__Transport__WitnessClaim *c)
{
	char hex[2 * TRANSPORT_PAIR_LEN + 1], why[160];
	struct grant *g;
	int ret, side;

	side = c->side == COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__SECONDARY
		   ? TRANSPORT_SIDE_SECONDARY
		   : TRANSPORT_SIDE_PRIMARY;
	sodium_bin2hex(hex, sizeof(hex), c->pair.data, TRANSPORT_PAIR_LEN);
	w->claims++;
	g = find(w, c->pair.data);
	if (!g) {
		struct grant fresh = {.side = side, .since_ms = unix_ms()};

		memcpy(fresh.pair, c->pair.data, TRANSPORT_PAIR_LEN);
		/* on disk before the answer: a witness restarted after this
		 * never grants the pair to the other side */
		ret = record(w, &fresh);
		if (ret) {
			log_err("witness: cannot record the grant: %s: refusing", strerror(-ret));
			verdict(ch, false, NULL, "the witness cannot record a grant");
			w->refused++;
			return;
		}
		g = remember(w, fresh.pair, fresh.side, fresh.since_ms);
	}
	if (g->side == side) {
		w->granted++;
		log_event(LOG_INFO, "witness-grant",
			  "witness: pair %.8s (%.64s): granted to the %s (checkpoint %llu)", hex,
			  c->vm, side_name(side), (unsigned long long)c->checkpoint_id);
		verdict(ch, true, g, "granted");
	} else {
		w->refused++;
		snprintf(why, sizeof(why), "the %s holds this pair's grant (for %llu ms)",
			 side_name(g->side), (unsigned long long)(unix_ms() - g->since_ms));
		log_event(LOG_INFO, "witness-refuse",
			  "witness: pair %.8s (%.64s): refused the %s: %s", hex, c->vm,
			  side_name(side), why);
		verdict(ch, false, g, why);
	}
}

/* Answer one message on ch (held: a session already). true: keep ch open. */
static bool answer(struct transport_witness *w, struct transport_channel *ch, transport_msg *in,
		   bool held)
{
	const Colovm__Transport__WitnessClaim *c = in->witness_claim;

	if (in->body_case == COLOVM__TRANSPORT__MSG__BODY_WITNESS_PROBE) {
		bool hold =
		    in->witness_probe->hold && (held || w->nsessions < WITNESS_MAX_SESSIONS);

		if (!held)
			w->probes++;
		if (!held && hold)
			log_debug("witness: %s holds a session", transport_peer_name(ch));
		else if (!held)
			log_debug("witness: probed by %s", transport_peer_name(ch));
		return !status(w, ch, hold) && hold;
	}
	if (in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_CLAIM ||
	    c->pair.len != TRANSPORT_PAIR_LEN ||
	    (c->side != COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__PRIMARY &&
	     c->side != COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__SECONDARY)) {
		w->bad++;
		log_err("witness: %s: not a claim", transport_peer_name(ch));
		verdict(ch, false, NULL, "not a claim");
		return false;
	}
	judge(w, ch, c);
	return held;
}

static void session_drop(struct transport_witness *w, unsigned int i)
{
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, transport_fd(w->sessions[i]), NULL);
	transport_close(w->sessions[i]);
	w->sessions[i] = w->sessions[--w->nsessions];
	w->sessions[w->nsessions] = NULL;
}

static void accept_one(struct transport_witness *w)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct transport_channel *ch = NULL;
	transport_msg *in = NULL;
	bool keep;
	int ret;

	ret = transport_accept(w->listener, &ch);
	if (ret) {
		w->bad++;
		log_err("witness: refused a peer: %s%s", strerror(-ret),
			ret == -EACCES ? " (wrong key)" : "");
		return;
	}
	ret = transport_recv(ch, WITNESS_TIMEOUT_MS, &in);
	if (ret) {
		w->bad++;
		log_err("witness: %s: %s", transport_peer_name(ch),
			strerror(ret == -EAGAIN ? ETIMEDOUT : -ret));
		transport_close(ch);
		return;
	}
	keep = answer(w, ch, in, false);
	transport_msg_free(in);
	ev.data.ptr = ch;
	if (keep && !epoll_ctl(w->epfd, EPOLL_CTL_ADD, transport_fd(ch), &ev)) {
		w->sessions[w->nsessions++] = ch;
		return;
	}
	transport_close(ch);
}

/* A session readable: its messages answered, or it ends. */
static void session_ready(struct transport_witness *w, struct transport_channel *ch)
{
	unsigned int i;
	int ret, tmo = WITNESS_TIMEOUT_MS;

	for (i = 0; i < w->nsessions && w->sessions[i] != ch; i++)
		;
	if (i == w->nsessions)
		return;
	/* the first message waited for (the socket has it), then those
	 * already read with it */
	for (;; tmo = 0) {
		transport_msg *in = NULL;
		bool keep;

		ret = transport_recv(ch, tmo, &in);
		if (ret == -EAGAIN && !tmo)
			return;
		if (ret) {
			if (ret != -EPIPE && ret != -ECONNRESET)
				log_err("witness: session with %s: %s", transport_peer_name(ch),
					strerror(ret == -EAGAIN ? ETIMEDOUT : -ret));
			else
				log_debug("witness: %s ended its session", transport_peer_name(ch));
			session_drop(w, i);
			return;
		}
		keep = answer(w, ch, in, true);
		transport_msg_free(in);
		if (!keep) {
			session_drop(w, i);
			return;
		}
	}
}

void transport_witness_serve_one(struct transport_witness *w)
{
	struct epoll_event ev[16];
	int n = epoll_wait(w->epfd, ev, 16, 0);

	for (int k = 0; k < n; k++) {
		if (ev[k].data.ptr)
			session_ready(w, ev[k].data.ptr);
		else
			accept_one(w);
	}
}

void transport_witness_stats(const struct transport_witness *w, struct transport_witness_stats *out)
{
	out->granted = w->granted;
	out->refused = w->refused;
	out->bad = w->bad;
	out->pairs = w->ngrants;
	out->probes = w->probes;
	out->sessions = w->nsessions;
}

void transport_witness_free(struct transport_witness *w)
{
	if (!w)
		return;
	while (w->nsessions)
		session_drop(w, w->nsessions - 1);
	if (w->epfd >= 0)
		close(w->epfd);
	free(w->sessions);
	if (w->listener)
		transport_listener_close(w->listener);
	if (w->state_fd >= 0)
		close(w->state_fd);
	free(w->grants);
	free(w);
}
