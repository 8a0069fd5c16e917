// SPDX-License-Identifier: GPL-2.0-only
/*
 * common/metrics: a real server on 127.0.0.1 with a main loop of its own,
 * fetched over a real socket. The text is what the render callback built
 * (labels escaped, histograms cumulative with +Inf, _sum, _count), rendered
 * on the loop's thread; other paths 404, a loop that does not answer 503.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#include "common/common.h"
#include "common/metrics/metrics.h"

static pthread_t loop_thread;
static int renders;

static void render(void *opaque, struct metrics_text *t)
{
	static const uint64_t le[] = {1000, 10000, 100000};
	static const uint64_t counts[] = {1, 2, 0, 3}; /* 3 above the last bound */
	char esc[64];
	char labels[96];

	assert_true(pthread_equal(pthread_self(), loop_thread));
	renders++;
	metrics_family(t, "x_total", "counter", "a test counter");
	snprintf(labels, sizeof(labels), "name=\"%s\"",
		 metrics_escape("a\"b\\c\nd", esc, sizeof(esc)));
	metrics_u64(t, "x_total", labels, 42);
	metrics_family(t, "p_seconds", "histogram", "a test histogram");
	metrics_histogram(t, "p_seconds", NULL, le, counts, 3, 2500000, 6, 1e-6);
	metrics_f64(t, "g", "", 0.25);
}

struct fetch {
	char url[128];
	char path[32];
	char reply[8192];
	_Atomic bool done;
};

static void *fetch_thread(void *arg)
{
	struct fetch *f = arg;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	unsigned int port = 0;
	char req[128];
	size_t got = 0;
	ssize_t n;
	int s = socket(AF_INET, SOCK_STREAM, 0);

	sscanf(f->url, "http://127.0.0.1:%u/", &port);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && !connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", f->path);
		if (write(s, req, strlen(req)) == (ssize_t)strlen(req))
			while ((n = read(s, f->reply + got, sizeof(f->reply) - 1 - got)) > 0)
				got += (size_t)n;
	}
	f->reply[got] = '\0';
	if (s >= 0)
		close(s);
	atomic_store(&f->done, true);
	return NULL;
}

/* GET path, the loop run (or not) meanwhile. */
static void get(struct loop *loop, struct metrics *m, const char *path, bool run_loop,
		struct fetch *f)
{
	pthread_t t;

	memset(f, 0, sizeof(*f));
	snprintf(f->url, sizeof(f->url), "%s", metrics_uri(m));
	snprintf(f->path, sizeof(f->path), "%s", path);
	assert_int_equal(pthread_create(&t, NULL, fetch_thread, f), 0);
	while (!atomic_load(&f->done)) {
		if (run_loop)
			loop_run_once(loop, 50);
		else
			usleep(50000);
	}
	pthread_join(t, NULL);
}

static void test_scrape(void **state)
{
	struct loop *loop;
	struct metrics *m = NULL;
	struct fetch f;
	char msg[128];

	loop_thread = pthread_self();
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(metrics_new(loop, "tcp:127.0.0.1:0", render, NULL, &m, msg, sizeof(msg)),
			 0);
	assert_non_null(strstr(metrics_uri(m), "http://127.0.0.1:"));
	get(loop, m, "/metrics", true, &f);
	assert_non_null(strstr(f.reply, "HTTP/1.1 200"));
	assert_non_null(strstr(f.reply, "Content-Type: text/plain; version=0.0.4"));
	assert_non_null(strstr(f.reply, "# HELP x_total a test counter\n# TYPE x_total counter\n"));
	assert_non_null(strstr(f.reply, "x_total{name=\"a\\\"b\\\\c\\nd\"} 42\n"));
	assert_non_null(strstr(f.reply, "p_seconds_bucket{le=\"0.001\"} 1\n"
					"p_seconds_bucket{le=\"0.01\"} 3\n"
					"p_seconds_bucket{le=\"0.1\"} 3\n"
					"p_seconds_bucket{le=\"+Inf\"} 6\n"
					"p_seconds_sum 2.5\n"
					"p_seconds_count 6\n"));
	assert_non_null(strstr(f.reply, "\ng 0.25\n"));
	assert_int_equal(renders, 1);

	get(loop, m, "/", true, &f);
	assert_non_null(strstr(f.reply, "HTTP/1.1 404"));
	get(loop, m, "/metrics/x", true, &f);
	assert_non_null(strstr(f.reply, "HTTP/1.1 404"));
	assert_int_equal(renders, 1);

	/* nobody runs the loop: 503 after METRICS_RENDER_TIMEOUT_MS, no render */
	get(loop, m, "/metrics", false, &f);
	assert_non_null(strstr(f.reply, "HTTP/1.1 503"));
	assert_int_equal(renders, 1);
	/* the late request is answered by nobody; the next one renders anew */
	get(loop, m, "/metrics", true, &f);
	assert_non_null(strstr(f.reply, "HTTP/1.1 200"));
	metrics_free(m);
	loop_free(loop);
}

static void test_bad_uri(void **state)
{
	static const char *const bad[] = {"127.0.0.1:1", "tcp:",	  "tcp:1.2.3.4",
					  "tcp:[::1:5",	 "tcp:1.2.3.4:x", "tcp:1.2.3.4:99999",
					  "unix:/x"};
	struct loop *loop;
	struct metrics *m = NULL;
	char msg[128];

	assert_int_equal(loop_new(&loop), 0);
	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		msg[0] = 0;
		assert_int_equal(metrics_new(loop, bad[i], render, NULL, &m, msg, sizeof(msg)),
				 -EINVAL);
		assert_non_null(strstr(msg, "expected tcp:HOST:PORT"));
	}
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scrape),
	    cmocka_unit_test(test_bad_uri),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
