/* SPDX-License-Identifier: GPL-2.0-only */
/* Prometheus exposition over libmicrohttpd (metrics.h). */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/common.h"
#include "common/metrics/metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_text {
	char *s;
	size_t len, cap;
	bool oom;
};

struct metrics {
	struct loop *loop;
	struct MHD_Daemon *d;
	int lfd, evfd;
	char uri[160];
	metrics_render_fn render;
	void *opaque;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t asked, answered; /* render requests (MHD thread) / answers (main loop) */
	bool closing;
	struct metrics_text out; /* the answer to request `answered` */
};

/* ---- text ---- */

static void text_vadd(struct metrics_text *t, const char *fmt, va_list ap)
{
	va_list aq;
	int n;

	if (t->oom)
		return;
	va_copy(aq, ap);
	n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		return;
	if (!t->s || t->len + (size_t)n + 1 > t->cap) {
		size_t cap = MAX(t->cap * 2, t->len + (size_t)n + 4096);
		char *s = realloc(t->s, cap);

		if (!s) {
			t->oom = true;
			return;
		}
		t->s = s;
		t->cap = cap;
		vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
	}
	t->len += (size_t)n;
}

static void text_add(struct metrics_text *t, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void text_add(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	text_vadd(t, fmt, ap);
	va_end(ap);
}

void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
	text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_start(struct metrics_text *t, const char *name, const char *labels)
{
	if (labels && labels[0])
		text_add(t, "%s{%s} ", name, labels);
	else
		text_add(t, "%s ", name);
}

void metrics_u64(struct metrics_text *t, const char *name, const char *labels, uint64_t v)
{
	sample_start(t, name, labels);
	text_add(t, "%llu\n", (unsigned long long)v);
}

void metrics_f64(struct metrics_text *t, const char *name, const char *labels, double v)
{
	sample_start(t, name, labels);
	text_add(t, "%.9g\n", v);
}

const char *metrics_escape(const char *s, char *buf, unsigned int len)
{
	unsigned int o = 0;

	for (; s && *s && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = *s;
		}
	}
	if (len)
		buf[o] = '\0';
	return buf;
}

void metrics_histogram(struct metrics_text *t, const char *name, const char *labels,
		       const uint64_t *le, const uint64_t *counts, unsigned int n, uint64_t sum,
		       uint64_t count, double scale)
{
	const char *sep = labels && labels[0] ? "," : "";
	uint64_t cum = 0;

	if (!labels)
		labels = "";
	for (unsigned int i = 0; i < n; i++) {
		cum += counts[i];
		text_add(t, "%s_bucket{%s%sle=\"%.9g\"} %llu\n", name, labels, sep, le[i] * scale,
			 (unsigned long long)cum);
	}
	/* +Inf is every observation (the last bucket holds those above le[n-1]) */
	text_add(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
		 (unsigned long long)count);
	text_add(t, "%s_sum%s%s%s %.9g\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
		 sum * scale);
	text_add(t, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
		 labels[0] ? "}" : "", (unsigned long long)count);
}

/* ---- the main loop's side ---- */

static void on_ask(void *opaque, uint32_t events)
{
	struct metrics *m = opaque;
	struct metrics_text t = {0};
	uint64_t v, asked;

	if (read(m->evfd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&m->lock);
	asked = m->asked;
	pthread_mutex_unlock(&m->lock);
	if (asked == m->answered)
		return;
	m->render(m->opaque, &t);
	pthread_mutex_lock(&m->lock);
	free(m->out.s);
	m->out = t;
	m->answered = asked;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- the MHD thread's side ---- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *body,
			     size_t len, const char *type)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result scrape(struct metrics *m, struct MHD_Connection *c)
{
	static const char busy[] = "colovm: the main loop did not answer in time\n";
	struct timespec deadline;
	uint64_t one = 1, want;
	enum MHD_Result ret;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += METRICS_RENDER_TIMEOUT_MS / 1000;
	deadline.tv_nsec += (METRICS_RENDER_TIMEOUT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	want = ++m->asked;
	pthread_mutex_unlock(&m->lock);
	if (write(m->evfd, &one, sizeof(one)) < 0)
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, busy, sizeof(busy) - 1, "text/plain");
	pthread_mutex_lock(&m->lock);
	while (m->answered < want && !m->closing && r != ETIMEDOUT)
		r = pthread_cond_timedwait(&m->cond, &m->lock, &deadline);
	if (m->answered >= want && !m->out.oom)
		ret = reply(c, MHD_HTTP_OK, m->out.s ? m->out.s : "", m->out.len, CONTENT_TYPE);
	else
		ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, busy, sizeof(busy) - 1, "text/plain");
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **con_cls)
{
	static const char not_found[] = "not found: the metrics are at /metrics\n";
	static const char not_allowed[] = "method not allowed: GET or HEAD\n";
	static int first;
	struct metrics *m = cls;

	/* MHD calls once with the headers, then (with a body) again: answer
	 * once the request is complete; a request body is ignored. */
	if (!*con_cls) {
		*con_cls = &first;
		return MHD_YES;
	}
	if (*upload_len) {
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, sizeof(not_allowed) - 1,
			     "text/plain");
	if (strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, not_found, sizeof(not_found) - 1, "text/plain");
	return scrape(m, c);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];

	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	/* (refusals at the connection limit land here: debug, never a flood) */
	log_debug("metrics: %s", line);
}

/* ---- set-up ---- */

static int listen_on(const char *uri, int *fd, char *name, size_t namelen, char *msg,
		     unsigned int len)
{
	char host[128], port[16], bound[64];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
	const char *p = uri + 4, *colon;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, ret, s;

	if (strncmp(uri, "tcp:", 4))
		goto bad;
	if (*p == '[') {
		const char *e = strchr(p, ']');

		if (!e || e[1] != ':')
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(e - p - 1), p + 1);
		colon = e + 1;
	} else {
		colon = strrchr(p, ':');
		if (!colon)
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
	}
	if (!colon[1] || strlen(colon + 1) >= sizeof(port) ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atoi(colon + 1) > 65535)
		goto bad;
	snprintf(port, sizeof(port), "%s", colon + 1);
	hints.ai_flags |= AI_NUMERICSERV;
	ret = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (ret) {
		snprintf(msg, len, "cannot resolve '%s': %s", host, gai_strerror(ret));
		return -EINVAL;
	}
	s = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		ret = -errno;
		goto fail;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, ai->ai_addr, ai->ai_addrlen) || listen(s, 64) ||
	    getsockname(s, (struct sockaddr *)&ss, &sl)) {
		ret = -errno;
		close(s);
		goto fail;
	}
	freeaddrinfo(ai);
	if (getnameinfo((struct sockaddr *)&ss, sl, bound, sizeof(bound), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(bound, sizeof(bound), "?");
	snprintf(name, namelen,
		 ss.ss_family == AF_INET6 ? "http://[%s]:%s/metrics" : "http://%s:%s/metrics",
		 bound, port);
	*fd = s;
	return 0;
fail:
	snprintf(msg, len, "cannot listen on %s: %s", uri + 4, strerror(-ret));
	freeaddrinfo(ai);
	return ret;
bad:
	snprintf(msg, len, "expected tcp:HOST:PORT (HOST may be empty or [IPv6])");
	return -EINVAL;
}

int metrics_new(struct loop *loop, const char *uri, metrics_render_fn render, void *opaque,
		struct metrics **out, char *msg, unsigned int len)
{
	struct metrics *m = calloc(1, sizeof(*m));
	pthread_condattr_t ca;
	int ret;

	if (!m)
		return -ENOMEM;
	m->loop = loop;
	m->render = render;
	m->opaque = opaque;
	m->lfd = m->evfd = -1;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	ret = listen_on(uri, &m->lfd, m->uri, sizeof(m->uri), msg, len);
	if (ret)
		goto err;
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->evfd < 0) {
		ret = -errno;
		snprintf(msg, len, "eventfd: %s", strerror(-ret));
		goto err;
	}
	ret = loop_add_fd(loop, m->evfd, 0x001 /* EPOLLIN */, on_ask, m);
	if (ret) {
		close(m->evfd);
		m->evfd = -1;
		snprintf(msg, len, "main loop: %s", strerror(-ret));
		goto err;
	}
	m->d = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				on_request, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m,
				MHD_OPTION_LISTEN_SOCKET, m->lfd, MHD_OPTION_CONNECTION_LIMIT,
				(unsigned int)METRICS_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)METRICS_CONN_TIMEOUT_S, MHD_OPTION_END);
	if (!m->d) {
		ret = -EIO;
		snprintf(msg, len, "libmicrohttpd would not start");
		goto err;
	}
	m->lfd = -1; /* MHD's now: MHD_stop_daemon closes it */
	*out = m;
	return 0;
err:
	metrics_free(m);
	return ret;
}

const char *metrics_uri(const struct metrics *m)
{
	return m->uri;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->closing = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (m->d)
		MHD_stop_daemon(m->d);
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->evfd >= 0) {
		loop_del_fd(m->loop, m->evfd);
		close(m->evfd);
	}
	free(m->out.s);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m);
}
