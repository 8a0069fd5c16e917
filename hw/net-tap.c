/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-net backends: a tap device (IFF_TAP | IFF_NO_PI, non-blocking) and
 * the null backend of `--net hook` (frames only through the hook API), plus
 * the --net option parser.
 *
 * The tap is opened without IFF_VNET_HDR: the device offers no checksum or
 * segmentation offloads, so a vnet header would carry nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hw/virtio.h"

struct net_tap {
	struct net_backend be;
	int fd;
};

static int tap_send(struct net_backend *be, const struct iovec *iov, unsigned int iovcnt)
{
	struct net_tap *t = container_of(be, struct net_tap, be);
	ssize_t n;

	do {
		n = writev(t->fd, iov, (int)iovcnt);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

static ssize_t tap_recv(struct net_backend *be, uint8_t *buf, size_t len)
{
	struct net_tap *t = container_of(be, struct net_tap, be);
	ssize_t n;

	do {
		n = read(t->fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int tap_fd(struct net_backend *be)
{
	return container_of(be, struct net_tap, be)->fd;
}

static void tap_free(struct net_backend *be)
{
	struct net_tap *t = container_of(be, struct net_tap, be);

	close(t->fd);
	free(t);
}

static const struct net_backend_ops net_tap_ops = {
    .name = "tap",
    .send = tap_send,
    .recv = tap_recv,
    .fd = tap_fd,
    .free = tap_free,
};

int net_tap_open(const char *ifname, struct net_backend **out)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
	struct net_tap *t;
	int fd, e;

	if (strlen(ifname) >= IFNAMSIZ) {
		log_err("--net tap=%s: interface name too long", ifname);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		log_err("--net tap=%s: cannot open /dev/net/tun: %s", ifname, strerror(e));
		return -e;
	}
	memcpy(ifr.ifr_name, ifname, strlen(ifname) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		e = errno;
		log_err("--net tap=%s: cannot attach to the tap: %s%s", ifname, strerror(e),
			e == EPERM ? " (needs CAP_NET_ADMIN or a tap owned by this user)" : "");
		close(fd);
		return -e;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->be.ops = &net_tap_ops;
	t->fd = fd;
	*out = &t->be;
	return 0;
}

/* ---- null: no wire (the hook is the only way in and out) ------------------ */

static int null_send(struct net_backend *be, const struct iovec *iov, unsigned int iovcnt)
{
	(void)be, (void)iov, (void)iovcnt;
	return -ENOTCONN;
}

static ssize_t null_recv(struct net_backend *be, uint8_t *buf, size_t len)
{
	(void)be, (void)buf, (void)len;
	return -EAGAIN;
}

static int null_fd(struct net_backend *be)
{
	(void)be;
	return -1;
}

static void null_free(struct net_backend *be)
{
	free(be);
}

static const struct net_backend_ops net_null_ops = {
    .name = "hook",
    .send = null_send,
    .recv = null_recv,
    .fd = null_fd,
    .free = null_free,
};

int net_null_open(struct net_backend **out)
{
	struct net_backend *be = calloc(1, sizeof(*be));

	if (!be)
		return -ENOMEM;
	be->ops = &net_null_ops;
	*out = be;
	return 0;
}

/* ---- --net SPEC ------------------------------------------------------------- */

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char end;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
				      &b[4], &b[5], &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if (mac[0] & 1) /* multicast */
		return -EINVAL;
	return 0;
}

int net_spec_parse(const char *s, struct net_spec *out, char *err, size_t errlen)
{
	char buf[256], *save = NULL, *tok;
	bool first = true;

	memset(out, 0, sizeof(*out));
	if (strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "too long");
		return -EINVAL;
	}
	memcpy(buf, s, strlen(s) + 1);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save), first = false) {
		char *eq = strchr(tok, '=');
		const char *val = eq ? eq + 1 : NULL;

		if (eq)
			*eq = '\0';
		if (first && !strcmp(tok, "tap") && val && *val && strlen(val) < IFNAMSIZ) {
			snprintf(out->kind, sizeof(out->kind), "tap");
			snprintf(out->arg, sizeof(out->arg), "%s", val);
		} else if (first && !strcmp(tok, "hook") && !val) {
			snprintf(out->kind, sizeof(out->kind), "hook");
		} else if (first) {
			snprintf(err, errlen, "expected tap=IFNAME or hook first, got '%s%s%s'",
				 tok, val ? "=" : "", val ? val : "");
			return -EINVAL;
		} else if (!strcmp(tok, "mac") && val) {
			if (parse_mac(val, out->mac)) {
				snprintf(err, errlen,
					 "bad MAC address '%s' (want 52:54:00:xx:xx:xx, unicast)",
					 val);
				return -EINVAL;
			}
			out->has_mac = true;
		} else {
			snprintf(err, errlen, "unknown option '%s'", tok);
			return -EINVAL;
		}
	}
	if (first) {
		snprintf(err, errlen, "empty");
		return -EINVAL;
	}
	return 0;
}
