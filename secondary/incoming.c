/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Incoming live migration (secondary.h): the target side of the checkpoint
 * protocol's MIGRATE mode (transport/transport.h has the diagram).
 *
 *   main loop                 incoming thread
 *   transport_listen  ------> wait for the listener (or quit)
 *   "waiting for ..."         transport_accept: handshake, key
 *                             StreamStart: version, RAM size
 *                             BulkCommit*: pages verified in guest RAM
 *                             DeviceState* ... last: hw_vm_load_devices
 *                             CheckpointAck{status} -> source
 *   done: INMIGRATE -> <----- eventfd
 *   RUNNING, RARP, opts.done
 *
 * The guest RAM of this VM, which has never run, is the receive region:
 * the transport writes pages straight into it. Nothing starts the vCPUs
 * unless the whole unit arrived and the device state loaded; any failure
 * ends the incoming migration (colovm exits 2), so a half-loaded guest
 * never runs.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/common.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "hw/hw.h"
#include "secondary/internal.h"
#include "secondary/secondary.h"
#include "transport/transport.h"

#define IN_TIMEOUT_MS	   30000	/* channel: a stalled source fails the load */
#define IN_IDLE_MS	   60000	/* no message at all for this long: give up */
#define IN_MAX_STATE_BYTES (256u << 20) /* device state of one unit */

struct secondary {
	struct vm *vm;
	struct runstate *rs;
	struct loop *loop;
	struct secondary_opts opts;
	struct transport_key key;
	struct transport_listener *listener;
	int evfd; /* thread -> main loop: done */
	int quit; /* eventfd: main loop -> thread: give up */
	pthread_t thread;
	bool thread_live;
	int ret;
	char msg[256];
	uint64_t loaded_ns;
};

static void in_prepare(void *opaque, uint64_t off, uint64_t len)
{
	struct secondary *s = opaque;

	hw_vm_ram_populate(s->vm, off / HW_PAGE_SIZE,
			   (off % HW_PAGE_SIZE + len + HW_PAGE_SIZE - 1) / HW_PAGE_SIZE);
}

/* Refuse the unit: tell the source why (best effort), return err's code. */
static int refuse(struct transport_channel *ch, uint64_t id, struct vmstate_error *err)
{
	Colovm__Transport__CheckpointAck ack = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
	transport_msg m = COLOVM__TRANSPORT__MSG__INIT;

	ack.id = id;
	ack.status = err->code ? err->code : -EPROTO;
	ack.message = err->msg;
	m.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
	m.checkpoint_ack = &ack;
	transport_send(ch, &m);
	return ack.status;
}

static int check_start(struct secondary *s, const Colovm__Transport__StreamStart *st,
		       struct vmstate_error *err)
{
	uint64_t bytes;

	hw_vm_ram(s->vm, &bytes);
	if (st->protocol != TRANSPORT_CKPT_VERSION)
		return vmstate_seterr(err, -EPROTONOSUPPORT,
				      "checkpoint protocol %u, this colovm speaks %u", st->protocol,
				      TRANSPORT_CKPT_VERSION);
	if (st->mode != COLOVM__TRANSPORT__STREAM_START__MODE__MIGRATE)
		return vmstate_seterr(err, -EOPNOTSUPP,
				      "the source wants a COLO pair; --incoming takes a migration");
	if (st->page_size != HW_PAGE_SIZE)
		return vmstate_seterr(err, -EINVAL, "page size %u, this one %u", st->page_size,
				      HW_PAGE_SIZE);
	if (st->ram_bytes != bytes)
		return vmstate_seterr(err, -EINVAL,
				      "section 'ram': the source VM has %llu MiB of RAM, this one "
				      "%llu (--mem must match)",
				      (unsigned long long)(st->ram_bytes >> 20),
				      (unsigned long long)(bytes >> 20));
	return 0;
}

/* Receive one MIGRATE unit into the VM; 0 once it is loaded and acknowledged. */
static int in_receive(struct secondary *s, struct transport_channel *ch, struct vmstate_error *err)
{
	Colovm__Transport__CheckpointAck ack = COLOVM__TRANSPORT__CHECKPOINT_ACK__INIT;
	transport_msg *m = NULL, out = COLOVM__TRANSPORT__MSG__INIT;
	uint8_t *state = NULL;
	size_t nstate = 0;
	uint64_t id = 1, pages = 0;
	bool started = false, done = false;
	int ret = 0;

	uint64_t idle_since = clock_ns();

	while (!done) {
		struct pollfd q = {.fd = s->quit, .events = POLLIN};

		ret = transport_recv(ch, 200, &m);
		if (ret == -EAGAIN && !poll(&q, 1, 0) &&
		    clock_ns() - idle_since < IN_IDLE_MS * 1000000ull)
			continue;
		if (ret) {
			vmstate_seterr(err, ret, "%s",
				       ret != -EAGAIN ? strerror(-ret)
				       : q.revents    ? "cancelled"
						      : "the source sent nothing for 60 s");
			break;
		}
		idle_since = clock_ns();
		switch (m->body_case) {
		case COLOVM__TRANSPORT__MSG__BODY_STREAM_START:
			ret = started ? vmstate_seterr(err, -EPROTO, "a second StreamStart")
				      : check_start(s, m->stream_start, err);
			started = true;
			break;
		case COLOVM__TRANSPORT__MSG__BODY_BULK_COMMIT:
			/* The pages are in guest RAM and their MAC checked. */
			if (!started || m->bulk_commit->id != id)
				ret = vmstate_seterr(err, -EPROTO, "pages outside unit %llu",
						     (unsigned long long)id);
			pages += m->bulk_commit->total_bytes / HW_PAGE_SIZE;
			break;
		case COLOVM__TRANSPORT__MSG__BODY_DEVICE_STATE: {
			const Colovm__Transport__DeviceState *ds = m->device_state;
			uint8_t *grown;

			if (!started || ds->id != id ||
			    ds->data.len > IN_MAX_STATE_BYTES - nstate) {
				ret = vmstate_seterr(err, -EPROTO, "bad device state for unit %llu",
						     (unsigned long long)id);
				break;
			}
			grown = realloc(state, nstate + ds->data.len + 1);
			if (!grown) {
				ret = vmstate_seterr(err, -ENOMEM, "out of memory");
				break;
			}
			state = grown;
			memcpy(state + nstate, ds->data.data, ds->data.len);
			nstate += ds->data.len;
			if (!ds->last)
				break;
			log_debug("incoming migration: %llu pages, %zu bytes of device state",
				  (unsigned long long)pages, nstate);
			ret = hw_vm_load_devices(s->vm, state, nstate, err);
			done = !ret;
			break;
		}
		case COLOVM__TRANSPORT__MSG__BODY_ERROR:
			ret = vmstate_seterr(err, -ECONNRESET, "the source gave up: %s",
					     m->error->message);
			break;
		default:
			ret = vmstate_seterr(err, -EPROTO, "unexpected message (type %d)",
					     (int)m->body_case);
			break;
		}
		transport_msg_free(m);
		m = NULL;
		if (ret) {
			refuse(ch, id, err);
			break;
		}
	}
	free(state);
	if (ret)
		return ret;
	ack.id = id;
	out.body_case = COLOVM__TRANSPORT__MSG__BODY_CHECKPOINT_ACK;
	out.checkpoint_ack = &ack;
	ret = transport_send(ch, &out);
	if (ret)
		return vmstate_seterr(err, ret, "cannot acknowledge to the source: %s",
				      strerror(-ret));
	return 0;
}

const char *sc_accept_error(int ret, const char *who, const char *what, char *buf, size_t len)
{
	switch (ret) {
	case -EACCES:
		snprintf(buf, len, "%s's key differs from ours (--peer-key)", who);
		break;
	case -EPROTO:
	case -EPROTONOSUPPORT:
	case -EBADMSG:
		snprintf(buf, len, "not %s (handshake refused)", what);
		break;
	default:
		snprintf(buf, len, "%s", strerror(-ret));
		break;
	}
	return buf;
}

static void *in_thread(void *arg)
{
	struct secondary *s = arg;
	struct transport_channel *ch = NULL;
	struct vmstate_error err = {0};
	struct pollfd pfd[2] = {{.fd = transport_listener_fd(s->listener), .events = POLLIN},
				{.fd = s->quit, .events = POLLIN}};
	uint64_t one = 1;
	sigset_t set;
	int ret;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	while (poll(pfd, 2, -1) < 0 && errno == EINTR)
		;
	if (pfd[1].revents) {
		ret = vmstate_seterr(&err, -ECANCELED, "cancelled");
		goto out;
	}
	ret = transport_accept(s->listener, &ch);
	if (ret) {
		char why[128];

		vmstate_seterr(&err, ret, "%s",
			       sc_accept_error(ret, "the source", "a colovm migration", why,
					       sizeof(why)));
		goto out;
	}
	log_info("incoming migration: connection accepted, loading");
	ret = in_receive(s, ch, &err);
out:
	s->loaded_ns = clock_ns();
	s->ret = ret;
	snprintf(s->msg, sizeof(s->msg), "%s", ret ? err.msg : "");
	if (write(s->evfd, &one, sizeof(one)) < 0)
		log_err("incoming migration: eventfd: %s", strerror(errno));
	/* The source closes once it has the ack: not part of the downtime. */
	transport_close(ch);
	return NULL;
}

/* Main loop: run the loaded guest, or report the failure. */
static void in_done(void *opaque, uint32_t events)
{
	struct secondary *s = opaque;
	uint64_t v, t0 = clock_ns();
	int ret;

	if (read(s->evfd, &v, sizeof(v)) < 0)
		return;
	ret = s->ret;
	if (!ret)
		ret = runstate_vm_start(s->rs);
	if (!ret) {
		/* Running on the new host: tell the switches where the MACs are. */
		hw_vm_announce(s->vm);
		log_debug("incoming migration: loaded and acknowledged; main loop %llu us later, "
			  "guest started in %llu us",
			  (unsigned long long)((t0 - s->loaded_ns) / 1000),
			  (unsigned long long)((clock_ns() - t0) / 1000));
	}
	if (s->opts.done)
		s->opts.done(s->opts.opaque, ret, s->ret ? s->msg : strerror(-ret));
	pthread_join(s->thread, NULL);
	s->thread_live = false;
	transport_listener_close(s->listener);
	s->listener = NULL;
}

int secondary_incoming(struct vm *vm, struct runstate *rs, struct loop *loop, const char *uri,
		       const struct secondary_opts *opts, struct secondary **out)
{
	struct secondary *s = calloc(1, sizeof(*s));
	struct transport_opts topts = {.timeout_ms = IN_TIMEOUT_MS,
				       .recv_prepare = in_prepare,
				       .name = "colovm migration target"};
	uint64_t bytes;
	int ret;

	if (!s)
		return -ENOMEM;
	s->vm = vm;
	s->rs = rs;
	s->loop = loop;
	s->evfd = s->quit = -1;
	if (opts)
		s->opts = *opts;
	if (opts && opts->key)
		s->key = *opts->key;
	else
		transport_key_public(&s->key);
	topts.key = &s->key;
	topts.recv_region = hw_vm_ram(vm, &bytes);
	topts.recv_region_len = bytes;
	topts.recv_opaque = s;
	ret = transport_listen(uri, &topts, &s->listener);
	if (ret) {
		log_err("--incoming %s: %s", uri,
			ret == -EINVAL ? "expected tcp:HOST:PORT or rdma:HOST:PORT"
				       : strerror(-ret));
		goto err;
	}
	s->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->quit = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->evfd < 0 || s->quit < 0) {
		ret = -errno;
		goto err;
	}
	ret = loop_add_fd(loop, s->evfd, 0x001 /* EPOLLIN */, in_done, s);
	if (ret) {
		close(s->evfd);
		s->evfd = -1;
		goto err;
	}
	ret = -pthread_create(&s->thread, NULL, in_thread, s);
	if (ret)
		goto err;
	s->thread_live = true;
	log_info("waiting for an incoming migration on %s%s", transport_listener_uri(s->listener),
		 opts && opts->key ? "" : " (no --peer-key: trusted link only)");
	*out = s;
	return 0;
err:
	secondary_free(s);
	return ret;
}

void secondary_free(struct secondary *s)
{
	uint64_t one = 1;

	if (!s)
		return;
	if (s->thread_live) {
		/* Waiting for a peer: wake it. Loading: the channel's timeout
		 * bounds the wait. */
		if (write(s->quit, &one, sizeof(one)) < 0)
			log_err("incoming migration: eventfd: %s", strerror(errno));
		pthread_join(s->thread, NULL);
	}
	if (s->evfd >= 0) {
		loop_del_fd(s->loop, s->evfd);
		close(s->evfd);
	}
	if (s->quit >= 0)
		close(s->quit);
	transport_listener_close(s->listener);
	memset(&s->key, 0, sizeof(s->key));
	free(s);
}
