/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The main event loop: one epoll set; every watched fd carries a callback.
 * Registrations live in a small table indexed by fd so that a callback may
 * remove its own (or another) fd while events are being dispatched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/common.h"

struct watch {
	loop_fd_cb cb;
	void *opaque;
	bool used;
};

struct loop {
	int epfd;
	int kickfd;
	struct watch *w;
	size_t nw;
};

static void kick_drain(void *opaque, uint32_t events)
{
	struct loop *loop = opaque;
	uint64_t v;

	if (read(loop->kickfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("loop: kick read: %s", strerror(errno));
}

int loop_new(struct loop **out)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	int ret;

	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->kickfd < 0) {
		ret = -errno;
		goto err;
	}
	ret = loop_add_fd(loop, loop->kickfd, EPOLLIN, kick_drain, loop);
	if (ret)
		goto err;
	*out = loop;
	return 0;
err:
	loop_free(loop);
	return ret;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->kickfd >= 0)
		close(loop->kickfd);
	free(loop->w);
	free(loop);
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *opaque)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (fd < 0)
		return -EBADF;
	if ((size_t)fd >= loop->nw) {
		size_t n = (size_t)fd * 2 + 16;
		struct watch *w = realloc(loop->w, n * sizeof(*w));

		if (!w)
			return -ENOMEM;
		memset(w + loop->nw, 0, (n - loop->nw) * sizeof(*w));
		loop->w = w;
		loop->nw = n;
	}
	if (loop->w[fd].used)
		return -EEXIST;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	loop->w[fd] = (struct watch){.cb = cb, .opaque = opaque, .used = true};
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (fd < 0 || (size_t)fd >= loop->nw || !loop->w[fd].used)
		return -ENOENT;
	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int loop_del_fd(struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nw || !loop->w[fd].used)
		return -ENOENT;
	loop->w[fd].used = false;
	return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(loop->epfd, evs, ARRAY_SIZE(evs), timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;

		/* A previous callback in this batch may have removed it. */
		if ((size_t)fd < loop->nw && loop->w[fd].used)
			loop->w[fd].cb(loop->w[fd].opaque, evs[i].events);
	}
	return n;
}

void loop_kick(struct loop *loop)
{
	uint64_t one = 1;

	if (write(loop->kickfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("loop: kick: %s", strerror(errno));
}
