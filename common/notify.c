/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * systemd's service protocol (common.h "notify"): READY, STATUS, STOPPING,
 * and the watchdog fed from the main loop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/common.h"

struct notify_timer {
	struct loop *loop;
	int fd;
	uint64_t wd_ns;	  /* watchdog period, 0: none */
	uint64_t next_wd; /* the next WATCHDOG=1 is due then */
	uint64_t tick_ns, next_tick;
	uint64_t period; /* the timer's: a due time within half of it is now */
	void (*tick)(void *opaque);
	void *opaque;
};

static void send_state(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		log_debug("sd_notify: %s", strerror(-r));
}

void notify_ready(const char *status)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%s", status ? status : "running");
	send_state(buf);
}

void notify_status(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	send_state(buf);
}

void notify_stopping(void)
{
	send_state("STOPPING=1");
}

static void on_timer(void *opaque, uint32_t events)
{
	struct notify_timer *t = opaque;
	uint64_t n, now, due;

	if (read(t->fd, &n, sizeof(n)) < 0)
		return;
	now = clock_ns();
	due = now + t->period / 2;
	if (t->wd_ns && due >= t->next_wd) {
		send_state("WATCHDOG=1");
		t->next_wd = now + t->wd_ns / 2;
	}
	if (t->tick && t->tick_ns && due >= t->next_tick) {
		t->next_tick = now + t->tick_ns;
		t->tick(t->opaque);
	}
}

int notify_timer_new(struct loop *loop, unsigned int tick_ms, void (*tick)(void *opaque),
		     void *opaque, struct notify_timer **out)
{
	struct notify_timer *t;
	struct itimerspec its = {0};
	uint64_t usec = 0, period;
	int ret;

	*out = NULL;
	if (sd_watchdog_enabled(0, &usec) <= 0)
		usec = 0;
	if (!usec && !(tick && tick_ms))
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->wd_ns = usec * 1000;
	t->tick = tick;
	t->opaque = opaque;
	t->tick_ns = tick ? (uint64_t)tick_ms * 1000000 : 0;
	/* wake at the finer of the two: half the watchdog period, the tick */
	period = t->wd_ns ? t->wd_ns / 2 : UINT64_MAX;
	if (t->tick_ns && t->tick_ns < period)
		period = t->tick_ns;
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->fd < 0) {
		ret = -errno;
		free(t);
		return ret;
	}
	its.it_interval.tv_sec = (time_t)(period / 1000000000);
	its.it_interval.tv_nsec = (long)(period % 1000000000);
	its.it_value = its.it_interval;
	t->period = period;
	ret = timerfd_settime(t->fd, 0, &its, NULL) < 0 ? -errno : 0;
	if (!ret)
		ret = loop_add_fd(loop, t->fd, 0x001 /* EPOLLIN */, on_timer, t);
	if (ret) {
		close(t->fd);
		free(t);
		return ret;
	}
	if (t->wd_ns) {
		log_info("systemd watchdog: %llu ms, fed every %llu ms from the main loop",
			 (unsigned long long)(t->wd_ns / 1000000),
			 (unsigned long long)(t->wd_ns / 2000000));
		/* the first one now: the period counts from the start */
		send_state("WATCHDOG=1");
		t->next_wd = clock_ns() + t->wd_ns / 2;
	}
	*out = t;
	return 0;
}

void notify_timer_free(struct notify_timer *t)
{
	if (!t)
		return;
	loop_del_fd(t->loop, t->fd);
	close(t->fd);
	free(t);
}
