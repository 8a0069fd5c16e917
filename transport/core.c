// SPDX-License-Identifier: GPL-2.0-only
/*
 * transport core: URIs, keys, the authenticated handshake, the message path
 * and the bulk commit protocol. Backends (tcp.c, rdma.c) only move frames
 * and bytes; everything about trust lives here and in frame.c.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport/internal.h"

uint16_t transport_test_hello_version;

static const struct transport_ops *const backends[] = {
    &transport_tcp_ops,
#ifdef TRANSPORT_HAVE_RDMA
    &transport_rdma_ops,
#endif
};

int tp_fail(struct transport_channel *ch, int err)
{
	int zero = 0;

	if (err >= 0)
		err = -EIO;
	if (__atomic_compare_exchange_n(&ch->err, &zero, err, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		log_warn("transport: channel to %s failed: %s", ch->peer, strerror(-err));
	return err;
}

/* ---- keys ---------------------------------------------------------------- */

int transport_key_set(struct transport_key *key, const void *bytes, size_t len)
{
	if (len != TRANSPORT_KEY_LEN)
		return -EINVAL;
	memcpy(key->bytes, bytes, len);
	return 0;
}

void transport_key_public(struct transport_key *key)
{
	memset(key->bytes, 0, sizeof(key->bytes));
}

int transport_key_load(const char *path, struct transport_key *key)
{
	uint8_t *buf;
	size_t len, bin_len;
	int ret;

	if (sodium_init() < 0)
		return -EIO;
	ret = file_read_all(path, &buf, &len);
	if (ret)
		return ret;
	ret = -EINVAL;
	if (len == TRANSPORT_KEY_LEN) {
		ret = transport_key_set(key, buf, len);
	} else {
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			len--;
		if (len == 2 * TRANSPORT_KEY_LEN &&
		    !sodium_hex2bin(key->bytes, TRANSPORT_KEY_LEN, (const char *)buf, len, NULL,
				    &bin_len, NULL) &&
		    bin_len == TRANSPORT_KEY_LEN)
			ret = 0;
	}
	sodium_memzero(buf, len);
	free(buf);
	if (ret)
		log_err("transport: %s: key must be 32 raw bytes or 64 hex digits", path);
	return ret;
}

/* ---- URIs ---------------------------------------------------------------- */

static int parse_uri(const char *uri, const struct transport_ops **ops, char *host, size_t host_len,
		     char *port, size_t port_len)
{
	const char *colon = strchr(uri, ':');
	const char *last = strrchr(uri, ':');
	size_t hl;

	if (!colon || last == colon)
		return -EINVAL;
	*ops = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(backends); i++)
		if (strlen(backends[i]->scheme) == (size_t)(colon - uri) &&
		    !strncmp(uri, backends[i]->scheme, (size_t)(colon - uri)))
			*ops = backends[i];
	if (!*ops)
		return -EPROTONOSUPPORT;
	hl = (size_t)(last - colon - 1);
	/* [v6addr] */
	if (hl >= 2 && colon[1] == '[' && last[-1] == ']') {
		colon++;
		hl -= 2;
	}
	if (hl == 0 || hl >= host_len || strlen(last + 1) == 0 || strlen(last + 1) >= port_len)
		return -EINVAL;
	memcpy(host, colon + 1, hl);
	host[hl] = 0;
	strcpy(port, last + 1);
	return 0;
}

static void opts_fixup(struct transport_opts *o, struct transport_key *key_store)
{
	*key_store = *o->key;
	o->key = key_store;
	if (o->timeout_ms <= 0)
		o->timeout_ms = TRANSPORT_DEFAULT_TIMEOUT;
	if (o->bulk_streams == 0)
		o->bulk_streams = 1;
	if (!o->recv_region)
		o->recv_region_len = 0;
	o->name = NULL; /* the caller's string may not outlive us */
}

/* ---- channel lifetime ---------------------------------------------------- */

static int channel_new(const struct transport_ops *ops, const struct transport_opts *opts,
		       const struct transport_key *key, struct transport_channel **out)
{
	struct transport_channel *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return -ENOMEM;
	ch->ops = ops;
	ch->opts = *opts;
	ch->opts.key = key;
	opts_fixup(&ch->opts, &ch->key);
	ch->rxbuf = malloc(TRANSPORT_HDR_LEN + TRANSPORT_MAX_MSG + TRANSPORT_MAC_LEN);
	if (!ch->rxbuf) {
		free(ch);
		return -ENOMEM;
	}
	pthread_mutex_init(&ch->send_lock, NULL);
	pthread_mutex_init(&ch->recv_lock, NULL);
	pthread_mutex_init(&ch->rtt_lock, NULL);
	strcpy(ch->peer, "?");
	*out = ch;
	return 0;
}

static void channel_free(struct transport_channel *ch)
{
	if (ch->ops->close)
		ch->ops->close(ch);
	pthread_mutex_destroy(&ch->send_lock);
	pthread_mutex_destroy(&ch->recv_lock);
	pthread_mutex_destroy(&ch->rtt_lock);
	sodium_memzero(ch->k_send, sizeof(ch->k_send));
	sodium_memzero(ch->k_recv, sizeof(ch->k_recv));
	sodium_memzero(ch->kb_send, sizeof(ch->kb_send));
	sodium_memzero(ch->kb_recv, sizeof(ch->kb_recv));
	sodium_memzero(ch->k_c2s, sizeof(ch->k_c2s));
	sodium_memzero(&ch->key, sizeof(ch->key));
	free(ch->runs);
	free(ch->rxbuf);
	free(ch->txq);
	free(ch);
}

void transport_close(struct transport_channel *ch)
{
	if (!ch)
		return;
	transport_heartbeat_stop(ch);
	channel_free(ch);
}

/* ---- frames -------------------------------------------------------------- */

/* The frames transport_send_more kept, sent (send_lock held). */
static int txq_flush(struct transport_channel *ch)
{
	int ret;

	if (!ch->txq_len)
		return 0;
	ret = ch->ops->send_frame(ch, ch->txq, ch->txq_len);
	ch->txq_len = 0;
	return ret;
}

static int send_msg(struct transport_channel *ch, const transport_msg *m, const uint8_t *key,
		    uint16_t version)
{
	uint8_t *buf;
	size_t len;
	int ret;

	ret = frame_seal(m, version, ch->send_seq, key, &buf, &len);
	if (ret)
		return ret;
	ret = txq_flush(ch); /* (sealed before this one: they go first) */
	if (!ret)
		ret = ch->ops->send_frame(ch, buf, len);
	free(buf);
	if (!ret)
		ch->send_seq++;
	return ret;
}

/* Receive and open one control frame (key NULL: handshake, no MAC). */
static int recv_msg(struct transport_channel *ch, const uint8_t *key, int timeout_ms,
		    transport_msg **out)
{
	size_t len;
	int ret;

	ret = ch->ops->recv_frame(ch, ch->rxbuf,
				  TRANSPORT_HDR_LEN + TRANSPORT_MAX_MSG + TRANSPORT_MAC_LEN, &len,
				  timeout_ms);
	if (ret)
		return ret;
	/* In the handshake the peer may refuse us with a plain Error frame. */
	if (len >= TRANSPORT_HDR_LEN && key && !ch->rxbuf[7] &&
	    ch->rxbuf[6] == COLOVM__TRANSPORT__MSG__BODY_ERROR && ch->recv_seq < 2)
		key = NULL;
	ret = frame_open(ch->rxbuf, len, key, ch->recv_seq, out);
	if (ret) {
		struct frame_hdr h;

		frame_hdr_decode(ch->rxbuf, &h);
		log_debug("transport: frame from %s refused (%s): type %u len %u seq %llu, "
			  "expected seq %llu, %zu bytes",
			  ch->peer, strerror(-ret), h.type, h.length, (unsigned long long)h.seq,
			  (unsigned long long)ch->recv_seq, len);
		return ret;
	}
	ch->recv_seq++;
	return 0;
}

static void send_error(struct transport_channel *ch, int code, const char *text)
{
	Colovm__Transport__Error e = COLOVM__TRANSPORT__ERROR__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	e.code = code;
	e.message = (char *)text;
	e.supported_min = TRANSPORT_WIRE_VERSION;
	e.supported_max = TRANSPORT_WIRE_VERSION;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_ERROR;
	m.error = &e;
	send_msg(ch, &m, NULL, TRANSPORT_WIRE_VERSION);
}

/* The peer answered with Error during the handshake: log it, map it. */
static int peer_refused(struct transport_channel *ch, const transport_msg *m)
{
	const Colovm__Transport__Error *e = m->error;
	int code = e->code == EPROTONOSUPPORT ? -EPROTONOSUPPORT : -EACCES;

	log_err("transport: peer %s refused us: %s (code %d, speaks versions %u..%u)", ch->peer,
		e->message ? e->message : "", e->code, e->supported_min, e->supported_max);
	return code;
}

/* ---- handshake ----------------------------------------------------------- */

#define NONCE_LEN 32

static void derive(const struct transport_key *psk, const char *label, const uint8_t *nc,
		   const uint8_t *ns, uint8_t out[32])
{
	crypto_generichash_state st;
	uint8_t v[2] = {TRANSPORT_WIRE_VERSION & 0xff, TRANSPORT_WIRE_VERSION >> 8};

	crypto_generichash_init(&st, psk->bytes, TRANSPORT_KEY_LEN, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
	crypto_generichash_update(&st, v, sizeof(v));
	crypto_generichash_update(&st, nc, NONCE_LEN);
	crypto_generichash_update(&st, ns, NONCE_LEN);
	crypto_generichash_final(&st, out, 32);
}

static void derive_session(struct transport_channel *ch, const uint8_t *nc, const uint8_t *ns)
{
	uint8_t c2s[32], s2c[32], bc2s[32], bs2c[32];

	derive(&ch->key, "colovm-tp ctrl c2s", nc, ns, c2s);
	derive(&ch->key, "colovm-tp ctrl s2c", nc, ns, s2c);
	derive(&ch->key, "colovm-tp bulk c2s", nc, ns, bc2s);
	derive(&ch->key, "colovm-tp bulk s2c", nc, ns, bs2c);
	memcpy(ch->k_c2s, c2s, 32);
	memcpy(ch->k_send, ch->is_server ? s2c : c2s, 32);
	memcpy(ch->k_recv, ch->is_server ? c2s : s2c, 32);
	memcpy(ch->kb_send, ch->is_server ? bs2c : bc2s, 32);
	memcpy(ch->kb_recv, ch->is_server ? bc2s : bs2c, 32);
	sodium_memzero(c2s, 32);
	sodium_memzero(s2c, 32);
	sodium_memzero(bc2s, 32);
	sodium_memzero(bs2c, 32);
}

static void copy_name(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src && src[i] && i + 1 < len; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = 0;
}

static int handshake_client(struct transport_channel *ch, const char *name)
{
	Colovm__Transport__Hello hello = COLOVM__TRANSPORT__HELLO__INIT;
	Colovm__Transport__Auth auth = COLOVM__TRANSPORT__AUTH__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT, *r = NULL;
	uint8_t nc[NONCE_LEN], ns[NONCE_LEN], proof[32];
	uint16_t ver =
	    transport_test_hello_version ? transport_test_hello_version : TRANSPORT_WIRE_VERSION;
	int tmo = ch->opts.timeout_ms, ret;

	randombytes_buf(nc, sizeof(nc));
	hello.min_version = hello.max_version = TRANSPORT_WIRE_VERSION;
	hello.nonce.data = nc;
	hello.nonce.len = sizeof(nc);
	hello.name = (char *)(name ? name : "");
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_HELLO;
	m.hello = &hello;
	ret = send_msg(ch, &m, NULL, ver);
	if (ret)
		return ret;

	ret = recv_msg(ch, NULL, tmo, &r);
	if (ret)
		return ret;
	if (r->body_case == COLOVM__TRANSPORT__MSG__BODY_ERROR) {
		ret = peer_refused(ch, r);
		goto out;
	}
	ret = -EPROTO;
	if (r->body_case != COLOVM__TRANSPORT__MSG__BODY_HELLO_REPLY ||
	    r->hello_reply->nonce.len != NONCE_LEN || r->hello_reply->proof.len != 32 ||
	    r->hello_reply->session_id.len != sizeof(ch->session_id))
		goto out;
	if (r->hello_reply->version != TRANSPORT_WIRE_VERSION) {
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	memcpy(ns, r->hello_reply->nonce.data, NONCE_LEN);
	memcpy(ch->session_id, r->hello_reply->session_id.data, sizeof(ch->session_id));
	copy_name(ch->peer_name, sizeof(ch->peer_name), r->hello_reply->name);
	derive(&ch->key, "colovm-tp server proof", nc, ns, proof);
	if (sodium_memcmp(proof, r->hello_reply->proof.data, 32)) {
		log_err("transport: server %s failed authentication (wrong key?)", ch->peer);
		send_error(ch, EACCES, "authentication failed: keys differ");
		ret = -EACCES;
		goto out;
	}
	colovm__transport__msg__free_unpacked(r, NULL);
	r = NULL;
	derive_session(ch, nc, ns);

	derive(&ch->key, "colovm-tp client proof", nc, ns, proof);
	auth.proof.data = proof;
	auth.proof.len = sizeof(proof);
	auth.bulk_streams = ch->opts.bulk_streams;
	auth.region_len = ch->opts.recv_region_len;
	ret = ch->ops->region_info(ch, &auth.region_addr, &auth.region_rkey);
	if (!ret && ch->ops->verified_info)
		ret = ch->ops->verified_info(ch, &auth.verified_addr, &auth.verified_rkey);
	if (ret)
		return ret;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_AUTH;
	m.auth = &auth;
	ret = send_msg(ch, &m, ch->k_send, TRANSPORT_WIRE_VERSION);
	if (ret)
		return ret;
	ch->streams = ch->opts.bulk_streams;
	ret = ch->ops->bulk_setup(ch, NULL);
	if (ret)
		return ret;

	ret = recv_msg(ch, ch->k_recv, tmo, &r);
	if (ret == -EBADMSG) {
		log_err("transport: server %s failed authentication (bad MAC on AuthOk)", ch->peer);
		return -EACCES;
	}
	if (ret) {
		log_err("transport: no AuthOk from %s: %s", ch->peer, strerror(-ret));
		return ret;
	}
	if (r->body_case == COLOVM__TRANSPORT__MSG__BODY_ERROR) {
		ret = peer_refused(ch, r);
		goto out;
	}
	ret = -EPROTO;
	if (r->body_case != COLOVM__TRANSPORT__MSG__BODY_AUTH_OK)
		goto out;
	ch->peer_region_len = r->auth_ok->region_len;
	ch->peer_region_addr = r->auth_ok->region_addr;
	ch->peer_region_rkey = r->auth_ok->region_rkey;
	ch->peer_verified_addr = r->auth_ok->verified_addr;
	ch->peer_verified_rkey = r->auth_ok->verified_rkey;
	ret = 0;
out:
	if (r)
		colovm__transport__msg__free_unpacked(r, NULL);
	return ret;
}

static int handshake_server(struct transport_channel *ch, struct transport_listener *l)
{
	Colovm__Transport__HelloReply rep = COLOVM__TRANSPORT__HELLO_REPLY__INIT;
	Colovm__Transport__AuthOk ok = COLOVM__TRANSPORT__AUTH_OK__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT, *r = NULL;
	uint8_t nc[NONCE_LEN], ns[NONCE_LEN], proof[32];
	int tmo = ch->opts.timeout_ms, ret;
	char text[128];

	ret = recv_msg(ch, NULL, tmo, &r);
	if (ret == -EPROTONOSUPPORT) {
		struct frame_hdr h;

		frame_hdr_decode(ch->rxbuf, &h);
		snprintf(text, sizeof(text), "wire version %u not supported (we speak %u)",
			 h.version, TRANSPORT_WIRE_VERSION);
		log_err("transport: peer %s: %s", ch->peer, text);
		send_error(ch, EPROTONOSUPPORT, text);
		return ret;
	}
	if (ret) {
		if (ret != -EAGAIN)
			log_err("transport: peer %s sent no valid hello: %s", ch->peer,
				strerror(-ret));
		return ret == -EBADMSG || ret == -EMSGSIZE ? -EPROTO : ret;
	}
	ret = -EPROTO;
	if (r->body_case != COLOVM__TRANSPORT__MSG__BODY_HELLO ||
	    r->hello->nonce.len != NONCE_LEN) {
		log_err("transport: peer %s: first frame is not a hello", ch->peer);
		goto out;
	}
	if (r->hello->min_version > TRANSPORT_WIRE_VERSION ||
	    r->hello->max_version < TRANSPORT_WIRE_VERSION) {
		snprintf(text, sizeof(text), "versions %u..%u not supported (we speak %u)",
			 r->hello->min_version, r->hello->max_version, TRANSPORT_WIRE_VERSION);
		log_err("transport: peer %s: %s", ch->peer, text);
		send_error(ch, EPROTONOSUPPORT, text);
		ret = -EPROTONOSUPPORT;
		goto out;
	}
	memcpy(nc, r->hello->nonce.data, NONCE_LEN);
	copy_name(ch->peer_name, sizeof(ch->peer_name), r->hello->name);
	colovm__transport__msg__free_unpacked(r, NULL);
	r = NULL;

	randombytes_buf(ns, sizeof(ns));
	randombytes_buf(ch->session_id, sizeof(ch->session_id));
	derive(&ch->key, "colovm-tp server proof", nc, ns, proof);
	rep.version = TRANSPORT_WIRE_VERSION;
	rep.nonce.data = ns;
	rep.nonce.len = sizeof(ns);
	rep.proof.data = proof;
	rep.proof.len = sizeof(proof);
	rep.session_id.data = ch->session_id;
	rep.session_id.len = sizeof(ch->session_id);
	rep.name = (char *)(l->opts.name ? l->opts.name : "");
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_HELLO_REPLY;
	m.hello_reply = &rep;
	ret = send_msg(ch, &m, NULL, TRANSPORT_WIRE_VERSION);
	if (ret)
		return ret;
	derive_session(ch, nc, ns);

	ret = recv_msg(ch, ch->k_recv, tmo, &r);
	if (ret == -EBADMSG) {
		log_err("transport: peer %s failed authentication (bad MAC), refused", ch->peer);
		return -EACCES;
	}
	if (ret)
		return ret;
	if (r->body_case == COLOVM__TRANSPORT__MSG__BODY_ERROR) {
		ret = peer_refused(ch, r);
		log_err("transport: peer %s refused, authentication failed", ch->peer);
		goto out;
	}
	ret = -EPROTO;
	if (r->body_case != COLOVM__TRANSPORT__MSG__BODY_AUTH || r->auth->proof.len != 32)
		goto out;
	derive(&ch->key, "colovm-tp client proof", nc, ns, proof);
	if (sodium_memcmp(proof, r->auth->proof.data, 32)) {
		log_err("transport: peer %s failed authentication (bad proof), refused", ch->peer);
		send_error(ch, EACCES, "authentication failed");
		ret = -EACCES;
		goto out;
	}
	if (r->auth->bulk_streams < 1 || r->auth->bulk_streams > TRANSPORT_MAX_STREAMS)
		goto out;
	ch->streams = r->auth->bulk_streams;
	ch->peer_region_len = r->auth->region_len;
	ch->peer_region_addr = r->auth->region_addr;
	ch->peer_region_rkey = r->auth->region_rkey;
	ch->peer_verified_addr = r->auth->verified_addr;
	ch->peer_verified_rkey = r->auth->verified_rkey;
	colovm__transport__msg__free_unpacked(r, NULL);
	r = NULL;

	ret = ch->ops->bulk_setup(ch, l);
	if (ret)
		return ret;
	ok.region_len = ch->opts.recv_region_len;
	ret = ch->ops->region_info(ch, &ok.region_addr, &ok.region_rkey);
	if (!ret && ch->ops->verified_info)
		ret = ch->ops->verified_info(ch, &ok.verified_addr, &ok.verified_rkey);
	if (ret)
		return ret;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_AUTH_OK;
	m.auth_ok = &ok;
	ret = send_msg(ch, &m, ch->k_send, TRANSPORT_WIRE_VERSION);
out:
	if (r)
		colovm__transport__msg__free_unpacked(r, NULL);
	return ret;
}

/* ---- listen / accept / connect ------------------------------------------- */

int transport_listen(const char *uri, const struct transport_opts *opts,
		     struct transport_listener **out)
{
	struct transport_listener *l;
	char host[64], port[16];
	const struct transport_ops *ops;
	int ret;

	if (!opts || !opts->key)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	ret = parse_uri(uri, &ops, host, sizeof(host), port, sizeof(port));
	if (ret)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->ops = ops;
	l->opts = *opts;
	opts_fixup(&l->opts, &l->key);
	l->opts.name = opts->name ? strdup(opts->name) : NULL;
	ret = ops->listen(l, host, port);
	if (ret) {
		free((char *)l->opts.name);
		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

const char *transport_listener_uri(const struct transport_listener *l)
{
	return l->uri;
}

int transport_listener_fd(const struct transport_listener *l)
{
	return l->fd;
}

void transport_listener_close(struct transport_listener *l)
{
	if (!l)
		return;
	l->ops->listener_close(l);
	free((char *)l->opts.name);
	sodium_memzero(&l->key, sizeof(l->key));
	free(l);
}

int transport_accept(struct transport_listener *l, struct transport_channel **out)
{
	struct transport_channel *ch;
	int ret;

	ret = channel_new(l->ops, &l->opts, &l->key, &ch);
	if (ret)
		return ret;
	ch->is_server = true;
	ret = l->ops->accept(l, ch);
	if (ret)
		goto err;
	ret = handshake_server(ch, l);
	if (ret)
		goto err;
	log_msg(l->opts.quiet_accept ? LOG_DEBUG : LOG_INFO,
		"transport: %s peer %s (%s) connected, %u bulk stream(s)", l->ops->scheme, ch->peer,
		ch->peer_name, ch->streams);
	*out = ch;
	return 0;
err:
	channel_free(ch);
	return ret;
}

/* Parse, allocate and connect at the medium's level: no handshake yet. */
static int connect_medium(const char *uri, const struct transport_opts *opts,
			  struct transport_channel **out)
{
	struct transport_channel *ch;
	const struct transport_ops *ops;
	char host[64], port[16];
	int ret;

	if (!opts || !opts->key)
		return -EINVAL;
	if (opts->bulk_streams > TRANSPORT_MAX_STREAMS)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	ret = parse_uri(uri, &ops, host, sizeof(host), port, sizeof(port));
	if (ret)
		return ret;
	ret = channel_new(ops, opts, opts->key, &ch);
	if (ret)
		return ret;
	snprintf(ch->peer, sizeof(ch->peer), "%s:%s", host, port);
	ret = ops->connect(ch, host, port);
	if (ret) {
		channel_free(ch);
		return ret;
	}
	*out = ch;
	return 0;
}

int transport_connect(const char *uri, const struct transport_opts *opts,
		      struct transport_channel **out)
{
	struct transport_channel *ch;
	int ret;

	ret = connect_medium(uri, opts, &ch);
	if (ret)
		return ret;
	ret = handshake_client(ch, opts->name);
	if (ret) {
		channel_free(ch);
		return ret;
	}
	*out = ch;
	return 0;
}

int transport_test_connect_raw(const char *uri, const struct transport_opts *opts,
			       struct transport_channel **out)
{
	return connect_medium(uri, opts, out);
}

int transport_test_send_raw(struct transport_channel *ch, const void *buf, size_t len)
{
	return ch->ops->send_frame(ch, buf, len);
}

/* ---- message path -------------------------------------------------------- */

static bool user_body(int c)
{
	return c >= COLOVM__TRANSPORT__MSG__BODY_ERROR &&
	       c != COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT &&
	       c <= COLOVM__TRANSPORT__MSG__BODY_WITNESS_STATUS;
}

int transport_send(struct transport_channel *ch, const transport_msg *msg)
{
	int ret;

	if (!msg || !user_body(msg->body_case))
		return -EINVAL;
	pthread_mutex_lock(&ch->send_lock);
	ret = tp_get_err(ch);
	if (!ret) {
		ret = send_msg(ch, msg, ch->k_send, TRANSPORT_WIRE_VERSION);
		if (ret && ret != -EMSGSIZE)
			ret = tp_fail(ch, ret);
	}
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

int transport_send_more(struct transport_channel *ch, const transport_msg *msg)
{
	uint8_t *buf;
	size_t len;
	int ret;

	if (!ch->ops->batch_frames)
		return transport_send(ch, msg);
	if (!msg || !user_body(msg->body_case))
		return -EINVAL;
	pthread_mutex_lock(&ch->send_lock);
	ret = tp_get_err(ch);
	if (ret)
		goto out;
	ret = frame_seal(msg, TRANSPORT_WIRE_VERSION, ch->send_seq, ch->k_send, &buf, &len);
	if (ret)
		goto out;
	if (ch->txq_len + len > TRANSPORT_TXQ_MAX || !ch->txq) {
		ret = txq_flush(ch);
		if (!ret && !ch->txq && !(ch->txq = malloc(TRANSPORT_TXQ_MAX)))
			ret = -ENOMEM;
	}
	if (!ret && len > TRANSPORT_TXQ_MAX) {
		ret = ch->ops->send_frame(ch, buf, len);
	} else if (!ret) {
		memcpy(ch->txq + ch->txq_len, buf, len);
		ch->txq_len += len;
	}
	free(buf);
	if (!ret)
		ch->send_seq++;
	else if (ret != -ENOMEM && ret != -EMSGSIZE)
		ret = tp_fail(ch, ret);
out:
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

int transport_flush(struct transport_channel *ch)
{
	int ret;

	pthread_mutex_lock(&ch->send_lock);
	ret = tp_get_err(ch);
	if (!ret && (ret = txq_flush(ch)))
		ret = tp_fail(ch, ret);
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

static int check_commit(struct transport_channel *ch, const Colovm__Transport__BulkCommit *c)
{
	uint64_t total = 0;

	if (c->epoch != ch->recv_epoch || c->n_runs % 2 || c->n_runs / 2 > TRANSPORT_MAX_RUNS)
		return -EPROTO;
	for (size_t i = 0; i < c->n_runs; i += 2) {
		uint64_t off = c->runs[i], len = c->runs[i + 1];

		if (off > ch->opts.recv_region_len || len > ch->opts.recv_region_len - off)
			return -EPROTO;
		total += len;
	}
	return total == c->total_bytes ? 0 : -EPROTO;
}

/* A beat read (transport_recv): keep it to echo, and take the round trip
 * of ours that it echoes. */
static void hb_received(struct transport_channel *ch, const Colovm__Transport__Heartbeat *h)
{
	uint64_t now = clock_ns(), rtt;
	struct transport_rtt *r = &ch->rtt;

	pthread_mutex_lock(&ch->rtt_lock);
	ch->echo_time_ns = h->time_ns;
	ch->echo_recv_ns = now;
	/* Our own clock's time; an echo from the future or held longer than
	 * it took is garbage (or forged by nobody: frames are MAC'd). */
	if (h->echo_time_ns && h->echo_time_ns <= now &&
	    h->echo_delay_ns <= now - h->echo_time_ns) {
		rtt = now - h->echo_time_ns - h->echo_delay_ns;
		r->last_ns = rtt;
		r->min_ns = !r->samples || rtt < r->min_ns ? rtt : r->min_ns;
		r->max_ns = rtt > r->max_ns ? rtt : r->max_ns;
		r->samples++;
		ch->rtt_sum_ns += rtt;
		r->avg_ns = ch->rtt_sum_ns / r->samples;
	}
	pthread_mutex_unlock(&ch->rtt_lock);
}

void transport_heartbeat_rtt(struct transport_channel *ch, struct transport_rtt *out)
{
	pthread_mutex_lock(&ch->rtt_lock);
	*out = ch->rtt;
	pthread_mutex_unlock(&ch->rtt_lock);
}

int transport_recv(struct transport_channel *ch, int timeout_ms, transport_msg **out)
{
	transport_msg *m = NULL;
	int ret;

	pthread_mutex_lock(&ch->recv_lock);
	for (;;) {
		ret = tp_get_err(ch);
		if (ret)
			break;
		ret = recv_msg(ch, ch->k_recv, timeout_ms, &m);
		if (ret == -EAGAIN)
			break;
		if (ret) {
			if (ret == -EBADMSG || ret == -EPROTO)
				log_err("transport: bad frame from %s (MAC, sequence or format): "
					"dropping the channel",
					ch->peer);
			ret = tp_fail(ch, ret);
			break;
		}
		if (m->body_case == COLOVM__TRANSPORT__MSG__BODY__NOT_SET) {
			log_debug("transport: ignoring a message of unknown type");
			colovm__transport__msg__free_unpacked(m, NULL);
			continue;
		}
		if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT) {
			ret = check_commit(ch, m->bulk_commit);
			if (!ret)
				ret = ch->ops->bulk_verify(ch, m->bulk_commit, ch->opts.timeout_ms);
			if (ret) {
				log_err(
				    "transport: bulk commit %llu from %s failed verification: %s",
				    (unsigned long long)m->bulk_commit->id, ch->peer,
				    strerror(-ret));
				colovm__transport__msg__free_unpacked(m, NULL);
				ret = tp_fail(ch, ret);
				break;
			}
			ch->recv_epoch++;
		} else if (m->body_case == COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT) {
			hb_received(ch, m->heartbeat);
		} else if (!user_body(m->body_case)) {
			colovm__transport__msg__free_unpacked(m, NULL);
			ret = tp_fail(ch, -EPROTO);
			break;
		}
		*out = m;
		ret = 0;
		break;
	}
	pthread_mutex_unlock(&ch->recv_lock);
	return ret;
}

void transport_msg_free(transport_msg *msg)
{
	if (msg)
		colovm__transport__msg__free_unpacked(msg, NULL);
}

int transport_fd(const struct transport_channel *ch)
{
	return ch->ops->fd(ch);
}

/* ---- bulk path ----------------------------------------------------------- */

int transport_bulk_write(struct transport_channel *ch, const struct iovec *iov, int n,
			 uint64_t remote_offset)
{
	uint64_t len = 0;
	int ret;

	if (n < 0 || (n && !iov))
		return -EINVAL;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (!len)
		return 0;
	pthread_mutex_lock(&ch->send_lock);
	ret = tp_get_err(ch);
	if (ret)
		goto out;
	ret = -ERANGE;
	if (remote_offset > ch->peer_region_len || len > ch->peer_region_len - remote_offset)
		goto out;
	if (ch->nruns &&
	    ch->runs[2 * ch->nruns - 2] + ch->runs[2 * ch->nruns - 1] == remote_offset) {
		ch->runs[2 * ch->nruns - 1] += len;
	} else {
		ret = -E2BIG;
		if (ch->nruns == TRANSPORT_MAX_RUNS)
			goto out;
		if (!ch->runs) {
			ret = -ENOMEM;
			ch->runs = malloc(2 * TRANSPORT_MAX_RUNS * sizeof(*ch->runs));
			if (!ch->runs)
				goto out;
		}
		ch->runs[2 * ch->nruns] = remote_offset;
		ch->runs[2 * ch->nruns + 1] = len;
		ch->nruns++;
	}
	ch->run_bytes += len;
	ret = ch->ops->bulk_write(ch, iov, n, remote_offset, len);
	if (ret)
		ret = tp_fail(ch, ret);
out:
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

int transport_bulk_commit(struct transport_channel *ch, uint64_t id)
{
	Colovm__Transport__BulkCommit c = COLOVM__TRANSPORT__BULK_COMMIT__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;
	uint8_t mac[crypto_onetimeauth_BYTES];
	bool has_mac = false;
	int ret;

	pthread_mutex_lock(&ch->send_lock);
	ret = tp_get_err(ch);
	if (ret)
		goto out;
	ret = ch->ops->bulk_flush(ch, ch->send_epoch, mac, &has_mac);
	if (ret) {
		ret = tp_fail(ch, ret);
		goto out;
	}
	c.id = id;
	c.epoch = ch->send_epoch;
	c.runs = ch->runs;
	c.n_runs = 2 * ch->nruns;
	c.total_bytes = ch->run_bytes;
	if (has_mac) {
		c.mac.data = mac;
		c.mac.len = sizeof(mac);
	}
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT;
	m.bulk_commit = &c;
	ret = send_msg(ch, &m, ch->k_send, TRANSPORT_WIRE_VERSION);
	if (ret) {
		ret = tp_fail(ch, ret);
		goto out;
	}
	ch->send_epoch++;
	ch->nruns = 0;
	ch->run_bytes = 0;
out:
	pthread_mutex_unlock(&ch->send_lock);
	return ret;
}

int transport_error(const struct transport_channel *ch)
{
	return tp_get_err(ch);
}

/* ---- heartbeats ---------------------------------------------------------- */

struct tp_heartbeat {
	pthread_t thread, watch; /* beats; the peer's silence (apart: a beat may block) */
	uint64_t t0;
	int stop; /* eventfd */
	unsigned int interval_ms, misses;
	void (*lost)(void *opaque, unsigned int silent_ms);
	void *opaque;
};

void transport_abort(struct transport_channel *ch, int err)
{
	tp_fail(ch, err < 0 ? err : -EIO);
	if (ch->ops->abort)
		ch->ops->abort(ch);
}

/* One beat, unless another thread is sending on the control path (it
 * feeds the peer as well): never wait behind a send to a dead peer. */
static void beat(struct transport_channel *ch, uint64_t seq)
{
	Colovm__Transport__Heartbeat h = COLOVM__TRANSPORT__HEARTBEAT__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;
	uint64_t echo_time, echo_recv;

	h.seq = seq;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_HEARTBEAT;
	m.heartbeat = &h;
	if (pthread_mutex_trylock(&ch->send_lock))
		return;
	/* The peer's latest beat, echoed once (a skipped beat keeps it for
	 * the next, which tells how long it was held). */
	pthread_mutex_lock(&ch->rtt_lock);
	echo_time = ch->echo_time_ns;
	echo_recv = ch->echo_recv_ns;
	ch->echo_time_ns = 0;
	pthread_mutex_unlock(&ch->rtt_lock);
	h.time_ns = clock_ns();
	if (echo_time) {
		h.echo_time_ns = echo_time;
		h.echo_delay_ns = h.time_ns - echo_recv;
	}
	if (!tp_get_err(ch) && send_msg(ch, &m, ch->k_send, TRANSPORT_WIRE_VERSION))
		tp_fail(ch, -EPIPE);
	pthread_mutex_unlock(&ch->send_lock);
}

static void *hb_thread(void *arg)
{
	struct transport_channel *ch = arg;
	struct tp_heartbeat *hb = ch->hb;
	uint64_t seq = 0;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (;;) {
		struct pollfd p = {.fd = hb->stop, .events = POLLIN};

		if (poll(&p, 1, (int)hb->interval_ms) > 0 || tp_get_err(ch))
			break;
		beat(ch, ++seq);
	}
	return NULL;
}

/* The peer's silence, on a thread of its own: a beat to a dead peer can
 * block in its send (RDMA: the send queue waits for completions that only
 * come once the queue pair gives up), and the verdict must not wait. */
static void *hb_watch(void *arg)
{
	struct transport_channel *ch = arg;
	struct tp_heartbeat *hb = ch->hb;
	uint64_t limit = (uint64_t)hb->interval_ms * hb->misses;

	for (;;) {
		struct pollfd p = {.fd = hb->stop, .events = POLLIN};
		unsigned int idle;

		if (poll(&p, 1, (int)hb->interval_ms) > 0 || tp_get_err(ch))
			break;
		/* Silence counts from this start on: before it the peer had no
		 * reason to send (e.g. it waited while this side loaded a unit). */
		if (ch->ops->rx_idle_ms && !ch->ops->rx_idle_ms(ch, &idle) &&
		    (idle = (unsigned int)MIN((uint64_t)idle, (clock_ns() - hb->t0) / 1000000)) >
			limit) {
			/* first the why, then the failure its readers will see */
			if (hb->lost)
				hb->lost(hb->opaque, idle);
			transport_abort(ch, -ETIMEDOUT);
			break;
		}
	}
	return NULL;
}

int transport_heartbeat_start(struct transport_channel *ch, unsigned int interval_ms,
			      unsigned int misses,
			      void (*lost)(void *opaque, unsigned int silent_ms), void *opaque)
{
	struct tp_heartbeat *hb;
	int ret;

	if (!ch || ch->hb || !interval_ms || !misses)
		return -EINVAL;
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->stop = eventfd(0, EFD_CLOEXEC);
	if (hb->stop < 0) {
		ret = -errno;
		free(hb);
		return ret;
	}
	hb->interval_ms = interval_ms;
	hb->misses = misses;
	hb->lost = lost;
	hb->opaque = opaque;
	hb->t0 = clock_ns();
	ch->hb = hb;
	ret = -pthread_create(&hb->watch, NULL, hb_watch, ch);
	if (!ret) {
		ret = -pthread_create(&hb->thread, NULL, hb_thread, ch);
		if (ret) {
			if (write(hb->stop, &(uint64_t){1}, sizeof(uint64_t)) < 0)
				log_warn("transport: heartbeat: eventfd: %s", strerror(errno));
			pthread_join(hb->watch, NULL);
		}
	}
	if (ret) {
		close(hb->stop);
		free(hb);
		ch->hb = NULL;
	}
	return ret;
}

void transport_heartbeat_stop(struct transport_channel *ch)
{
	struct tp_heartbeat *hb = ch ? ch->hb : NULL;
	uint64_t one = 1;

	if (!hb)
		return;
	if (write(hb->stop, &one, sizeof(one)) < 0)
		log_warn("transport: heartbeat: eventfd: %s", strerror(errno));
	pthread_join(hb->watch, NULL);
	pthread_join(hb->thread, NULL);
	close(hb->stop);
	free(hb);
	ch->hb = NULL;
}

const char *transport_backend(const struct transport_channel *ch)
{
	return ch->ops->scheme;
}

const char *transport_peer_name(const struct transport_channel *ch)
{
	return ch->peer_name;
}
