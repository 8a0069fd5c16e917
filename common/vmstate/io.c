/* SPDX-License-Identifier: GPL-2.0-only */
/* common/vmstate: byte sinks (fd, memory, custom) and sources. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/vmstate/vmstate_int.h"

struct vmstate_sink {
	const struct vmstate_sink_ops *ops;
	void *opaque;
	uint64_t bytes;
	int fd;		 /* fd sink */
	struct vbuf mem; /* memory sink */
};

/* fd sources read ahead into rbuf: a record is a handful of small fields
 * (type, id, name, lengths, CRC), and one read() each made the target's
 * stop-and-copy a string of syscalls. Reads of at least FD_RBUF bytes
 * (runs of RAM pages) go straight to the caller's buffer. */
#define FD_RBUF 16384

struct vmstate_source {
	const struct vmstate_source_ops *ops;
	void *opaque;
	int fd;
	const uint8_t *buf;
	size_t len, pos;
	size_t rpos, rlen; /* fd: unread bytes are rbuf[rpos..rlen) */
	uint8_t rbuf[FD_RBUF];
};

static int fd_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct vmstate_sink *s = opaque;
	int done = 0;

	while (done < iovcnt) {
		int n = MIN(iovcnt - done, IOV_MAX);
		const struct iovec *v = iov + done;
		ssize_t w = writev(s->fd, v, n);
		size_t left;
		int i;

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Skip the fully written iovecs; finish a partial one by hand. */
		left = (size_t)w;
		for (i = 0; i < n && left >= v[i].iov_len; i++)
			left -= v[i].iov_len;
		done += i;
		if (i < n && left) {
			int ret = write_full(s->fd, (const uint8_t *)v[i].iov_base + left,
					     v[i].iov_len - left);

			if (ret)
				return ret;
			done++;
		}
	}
	return 0;
}

static int mem_writev(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct vmstate_sink *s = opaque;
	size_t total = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (vbuf_reserve(&s->mem, total))
		return -ENOMEM;
	for (i = 0; i < iovcnt; i++) {
		memcpy(s->mem.p + s->mem.len, iov[i].iov_base, iov[i].iov_len);
		s->mem.len += iov[i].iov_len;
	}
	return 0;
}

static const struct vmstate_sink_ops fd_sink_ops = {.writev = fd_writev};
static const struct vmstate_sink_ops mem_sink_ops = {.writev = mem_writev};

int vmstate_sink_new(struct vmstate_sink **out, const struct vmstate_sink_ops *ops, void *opaque)
{
	struct vmstate_sink *s;

	if (!ops || !ops->writev)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->opaque = opaque;
	s->fd = -1;
	*out = s;
	return 0;
}

int vmstate_sink_new_fd(struct vmstate_sink **out, int fd)
{
	int ret = vmstate_sink_new(out, &fd_sink_ops, NULL);

	if (ret)
		return ret;
	(*out)->opaque = *out;
	(*out)->fd = fd;
	return 0;
}

int vmstate_sink_new_mem(struct vmstate_sink **out)
{
	int ret = vmstate_sink_new(out, &mem_sink_ops, NULL);

	if (ret)
		return ret;
	(*out)->opaque = *out;
	return 0;
}

const uint8_t *vmstate_sink_mem_data(const struct vmstate_sink *sink, size_t *len)
{
	*len = sink->mem.len;
	return sink->mem.p;
}

void vmstate_sink_mem_reset(struct vmstate_sink *sink)
{
	sink->mem.len = 0;
}

void vmstate_sink_free(struct vmstate_sink *sink)
{
	if (!sink)
		return;
	vbuf_free(&sink->mem);
	free(sink);
}

uint64_t vmstate_sink_bytes(const struct vmstate_sink *sink)
{
	return sink->bytes;
}

int vmstate_sink_writev(struct vmstate_sink *sink, const struct iovec *iov, int iovcnt)
{
	int ret = sink->ops->writev(sink->opaque, iov, iovcnt);
	int i;

	if (ret)
		return ret;
	for (i = 0; i < iovcnt; i++)
		sink->bytes += iov[i].iov_len;
	return 0;
}

static int fd_read(void *opaque, void *buf, size_t len)
{
	struct vmstate_source *s = opaque;
	uint8_t *p = buf;

	for (;;) {
		size_t n = MIN(len, s->rlen - s->rpos);
		ssize_t r;

		memcpy(p, s->rbuf + s->rpos, n);
		s->rpos += n;
		p += n;
		len -= n;
		if (!len)
			return 0;
		if (len >= FD_RBUF) {
			int ret = read_full(s->fd, p, len);

			return ret == -EPIPE ? -ENODATA : ret;
		}
		r = read(s->fd, s->rbuf, FD_RBUF);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		s->rpos = 0;
		s->rlen = (size_t)r;
	}
}

static int mem_read(void *opaque, void *buf, size_t len)
{
	struct vmstate_source *s = opaque;

	if (len > s->len - s->pos)
		return -ENODATA;
	memcpy(buf, s->buf + s->pos, len);
	s->pos += len;
	return 0;
}

static const struct vmstate_source_ops fd_source_ops = {.read = fd_read};
static const struct vmstate_source_ops mem_source_ops = {.read = mem_read};

int vmstate_source_new(struct vmstate_source **out, const struct vmstate_source_ops *ops,
		       void *opaque)
{
	struct vmstate_source *s;

	if (!ops || !ops->read)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	s->opaque = opaque;
	s->fd = -1;
	*out = s;
	return 0;
}

int vmstate_source_new_fd(struct vmstate_source **out, int fd)
{
	int ret = vmstate_source_new(out, &fd_source_ops, NULL);

	if (ret)
		return ret;
	(*out)->opaque = *out;
	(*out)->fd = fd;
	return 0;
}

int vmstate_source_new_mem(struct vmstate_source **out, const void *buf, size_t len)
{
	int ret = vmstate_source_new(out, &mem_source_ops, NULL);

	if (ret)
		return ret;
	(*out)->opaque = *out;
	(*out)->buf = buf;
	(*out)->len = len;
	return 0;
}

void vmstate_source_free(struct vmstate_source *src)
{
	free(src);
}

int vmstate_source_read(struct vmstate_source *src, void *buf, size_t len)
{
	if (!len)
		return 0;
	return src->ops->read(src->opaque, buf, len);
}
