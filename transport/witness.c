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
 * The witness serves one claimant at a time; the handshake and the claim
 * are bounded by WITNESS_TIMEOUT_MS, so a peer that connects and says
 * nothing delays the next one by at most that.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int claim_once(const char *uri, const struct transport_key *key,
		      const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
		      uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	struct transport_opts opts = {.key = key,
				      .timeout_ms = WITNESS_TIMEOUT_MS,
				      .name = side == TRANSPORT_SIDE_SECONDARY
						  ? "colovm COLO secondary"
						  : "colovm COLO primary"};
	Colovm__Transport__WitnessClaim wc = COLOVM__TRANSPORT__WITNESS_CLAIM__INIT;
	transport_msg out = COLOVM__TRANSPORT__MSG__INIT, *in = NULL;
	struct transport_channel *ch = NULL;
	const Colovm__Transport__WitnessVerdict *v;
	int ret;

	ret = transport_connect(uri, &opts, &ch);
	if (ret) {
		snprintf(msg, len, "cannot reach the witness at %s: %s%s", uri, strerror(-ret),
			 ret == -EACCES ? " (it has another key)" : "");
		return ret;
	}
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
		transport_close(ch);
		return ret == -EAGAIN ? -ETIMEDOUT : ret;
	}
	if (in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_VERDICT) {
		snprintf(msg, len,
			 "the witness at %s answered with something else (message type %d)", uri,
			 (int)in->body_case);
		transport_msg_free(in);
		transport_close(ch);
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
	transport_close(ch);
	return ret;
}

int transport_witness_claim(const char *uri, const struct transport_key *key,
			    const uint8_t pair[TRANSPORT_PAIR_LEN], enum transport_side side,
			    uint64_t checkpoint_id, const char *vm, char *msg, size_t len)
{
	uint64_t end = clock_ns() + WITNESS_RETRY_NS;
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

int transport_witness_probe(const char *uri, const struct transport_key *key, const char *name,
			    struct transport_witness_stats *out, char *msg, size_t len)
{
	struct transport_opts opts = {
	    .key = key, .timeout_ms = WITNESS_TIMEOUT_MS, .name = name ? name : "witness probe"};
	Colovm__Transport__WitnessProbe wp = COLOVM__TRANSPORT__WITNESS_PROBE__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT, *in = NULL;
	struct transport_channel *ch = NULL;
	int ret;

	ret = transport_connect(uri, &opts, &ch);
	if (ret) {
		snprintf(msg, len, "cannot reach the witness at %s: %s%s", uri,
			 ret == -EAGAIN ? "no answer in time" : strerror(-ret),
			 ret == -EACCES ? " (it has another key)" : "");
		return ret == -EAGAIN ? -ETIMEDOUT : ret;
	}
	wp.name = (char *)opts.name;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_PROBE;
	m.witness_probe = &wp;
	ret = transport_send(ch, &m);
	if (!ret)
		ret = transport_recv(ch, WITNESS_TIMEOUT_MS, &in);
	if (ret) {
		snprintf(msg, len, "the witness at %s did not answer the probe: %s", uri,
			 ret == -EAGAIN ? "no answer in time" : strerror(-ret));
		ret = ret == -EAGAIN ? -ETIMEDOUT : ret;
	} else if (in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_STATUS) {
		snprintf(msg, len, "the witness at %s answered the probe with message type %d", uri,
			 (int)in->body_case);
		ret = -EPROTO;
	} else {
		memset(out, 0, sizeof(*out));
		out->pairs = in->witness_status->pairs;
		out->granted = in->witness_status->granted;
		out->refused = in->witness_status->refused;
		snprintf(msg, len,
			 "the witness at %s answers: %llu pairings, %llu granted, "
			 "%llu refused since it started%s",
			 uri, (unsigned long long)out->pairs, (unsigned long long)out->granted,
			 (unsigned long long)out->refused,
			 in->witness_status->state_kept ? ""
							: " (grants not kept across restarts)");
	}
	transport_msg_free(in);
	transport_close(ch);
	return ret;
}

/* ---- the witness ------------------------------------------------------------------ */

struct grant {
	uint8_t pair[TRANSPORT_PAIR_LEN];
	int side;
	uint64_t since_ms;
};

struct transport_witness {
	struct transport_listener *listener;
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
	w->grants = calloc(WITNESS_MAX_PAIRS, sizeof(*w->grants));
	if (!w->grants) {
		free(w);
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
	return transport_listener_fd(w->listener);
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

static int status(const struct transport_witness *w, struct transport_channel *ch)
{
	Colovm__Transport__WitnessStatus st = COLOVM__TRANSPORT__WITNESS_STATUS__INIT;
	transport_msg out = COLOVM__TRANSPORT__MSG__INIT;

	st.pairs = w->ngrants;
	st.granted = w->granted;
	st.refused = w->refused;
	st.state_kept = w->state_fd >= 0;
	out.body_case = COLOVM__TRANSPORT__MSG__BODY_WITNESS_STATUS;
	out.witness_status = &st;
	return transport_send(ch, &out);
}

void transport_witness_serve_one(struct transport_witness *w)
{
	struct transport_channel *ch = NULL;
	const Colovm__Transport__WitnessClaim *c;
	transport_msg *in = NULL;
	char hex[2 * TRANSPORT_PAIR_LEN + 1], why[160];
	struct grant *g;
	int ret, side;

	ret = transport_accept(w->listener, &ch);
	if (ret) {
		w->bad++;
		log_err("witness: refused a peer: %s%s", strerror(-ret),
			ret == -EACCES ? " (wrong key)" : "");
		return;
	}
	ret = transport_recv(ch, WITNESS_TIMEOUT_MS, &in);
	if (!ret && in->body_case == COLOVM__TRANSPORT__MSG__BODY_WITNESS_PROBE) {
		w->probes++;
		log_debug("witness: probed by %s", transport_peer_name(ch));
		status(w, ch);
		goto out;
	}
	if (ret || in->body_case != COLOVM__TRANSPORT__MSG__BODY_WITNESS_CLAIM ||
	    in->witness_claim->pair.len != TRANSPORT_PAIR_LEN ||
	    (in->witness_claim->side != COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__PRIMARY &&
	     in->witness_claim->side != COLOVM__TRANSPORT__WITNESS_CLAIM__SIDE__SECONDARY)) {
		w->bad++;
		log_err("witness: %s: %s", transport_peer_name(ch),
			ret ? strerror(ret == -EAGAIN ? ETIMEDOUT : -ret) : "not a claim");
		if (!ret)
			verdict(ch, false, NULL, "not a claim");
		goto out;
	}
	c = in->witness_claim;
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
			goto out;
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
out:
	transport_msg_free(in);
	transport_close(ch);
}

void transport_witness_stats(const struct transport_witness *w, struct transport_witness_stats *out)
{
	out->granted = w->granted;
	out->refused = w->refused;
	out->bad = w->bad;
	out->pairs = w->ngrants;
	out->probes = w->probes;
}

void transport_witness_free(struct transport_witness *w)
{
	if (!w)
		return;
	if (w->listener)
		transport_listener_close(w->listener);
	if (w->state_fd >= 0)
		close(w->state_fd);
	free(w->grants);
	free(w);
}
