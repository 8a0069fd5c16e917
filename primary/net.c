/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, primary side: the packet path (DESIGN.md, data paths 1 and 2) and
 * output release. One port per virtio-net device, each with its own
 * net-compare mirror and comparator:
 *
 *   wire (tap) --> wire_rx --> compare_mirror: Packet{MIRRORED} --> channel
 *                                              then the guest's RX
 *   guest TX ----> guest_tx -> compare queue (primary side)  \
 *   channel: Packet{REDIRECTED} (checkpoint thread) -------->  compare thread
 *                                 (secondary side, rewritten there)    |
 *   wire <-- release: a match, a checkpoint acknowledged, passthrough <-+
 *   compare: a miscompare, a timeout, a limit --> primary_checkpoint_request
 *
 * Order with checkpoints. The hooks run on the device's I/O thread with the
 * device's lock held, and pausing the VM takes that lock: once the VM is
 * paused (checkpoint, first sync) no frame is in the middle of being
 * mirrored, and none is taken from the tap until it resumes. So every
 * Packet{MIRRORED} on the channel before a CheckpointRequest went into the
 * guest before the pause -- the checkpoint's device state holds it (as RX
 * ring contents or as an injected frame waiting) -- and every one after the
 * checkpoint's last DeviceState came later. The secondary injects what it
 * gets in channel order and the checkpoint's load replaces its queue.
 *
 * Re-protect (colo_wire). A primary that was a secondary and took over
 * rewrites, for good, the TCP connections open at the takeover at its wire
 * edges (their clients talk the old primary's sequence numbers): frames from
 * the wire before they are mirrored and injected (ack -= offset), frames to
 * the wire when released (seq += offset); between pairs its own hooks do the
 * same. The comparison itself is on raw guest output on both sides (the new
 * secondary's guest is a copy of this one); the offsets go to the new
 * secondary with every checkpoint (DeviceState.net_offsets) for its own
 * takeover. One hook per NIC: colo_net's hooks replace the wire's while
 * protected and give the ports back to it when protection ends.
 *
 * Threads: hooks on the I/O thread; compare_poll on this module's compare
 * thread, and on the checkpoint thread right after it queued a redirected
 * frame (usually the later copy of a pair: released there, not after a
 * switch to the compare thread, which is woken only to arm an earlier
 * deadline); checkpoint begin/ack on the checkpoint thread; start/stop/free
 * on the main loop. The comparator is used under cmp_lock (so begin/ack
 * drain the queues first and happen between two polls); the channel
 * pointer under ch_lock.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "hw/hw.h"
#include "net-compare/compare.h"
#include "primary/internal.h"
#include "transport/transport.h"

struct colo_port {
	struct colo_net *n;
	unsigned int idx;
	struct compare *cmp;
	struct compare_mirror *mir;
	_Atomic uint64_t mirrored, tx_dropped, wire_errors;
	_Atomic uint64_t held_max;
};

struct colo_net {
	struct primary *m;
	struct vm *vm;
	unsigned int nports;
	struct colo_port *ports;
	bool hooked; /* main loop */

	pthread_mutex_t cmp_lock;
	pthread_mutex_t ch_lock;
	struct transport_channel *ch; /* under ch_lock; NULL: not mirrored */

	pthread_t thread;
	bool thread_live;
	int evfd;		/* wakes the compare thread */
	_Atomic uint64_t armed; /* its next deadline (UINT64_MAX: none), set under cmp_lock */
	_Atomic bool quit;
	_Atomic bool fenced; /* releases are dropped */
	_Atomic uint64_t bad_redirected, fenced_dropped;
};

#define WIRE_FRAME_MAX 65550 /* the largest frame virtio-net hands over */
#define WIRE_LINGER_NS (2 * 1000000000ull)
#define WIRE_GC_NS     (1000000000ull)

struct wire_port {
	struct colo_wire *w;
	unsigned int idx;
	struct compare_rewrite *rw; /* NULL: nothing to rewrite */
	pthread_mutex_t lock;	    /* rw and out[] */
	uint64_t gc_ns;
	uint8_t out[WIRE_FRAME_MAX]; /* to the wire, under lock */
	uint8_t in[WIRE_FRAME_MAX];  /* from the wire: the port's I/O thread only */
};

struct colo_wire {
	struct vm *vm;
	unsigned int nports;
	struct wire_port *ports;
	_Atomic uint64_t errors;
};

/* Frame to the wire, seq += offset. Any thread. */
static int wire_out(struct colo_wire *w, unsigned int idx, const uint8_t *frame, size_t len)
{
	struct wire_port *p = &w->ports[idx];
	uint64_t now;
	int ret;

	if (!p->rw || len > sizeof(p->out))
		return hw_vm_net_send(w->vm, idx, frame, len);
	now = clock_ns();
	pthread_mutex_lock(&p->lock);
	memcpy(p->out, frame, len);
	if (compare_rewrite_outbound(p->rw, p->out, len, 0, now) < 0)
		atomic_fetch_add(&w->errors, 1);
	if (now - p->gc_ns >= WIRE_GC_NS) {
		compare_rewrite_gc(p->rw, now, WIRE_LINGER_NS);
		p->gc_ns = now;
	}
	ret = hw_vm_net_send(w->vm, idx, p->out, len);
	pthread_mutex_unlock(&p->lock);
	return ret;
}

/* Frame from the wire, ack -= offset: the frame to pass on (the port's I/O
 * thread only; valid until its next call). */
static const uint8_t *wire_in(struct colo_wire *w, unsigned int idx, const uint8_t *frame,
			      size_t len)
{
	struct wire_port *p = &w->ports[idx];

	if (!p->rw || len > sizeof(p->in))
		return frame;
	memcpy(p->in, frame, len);
	pthread_mutex_lock(&p->lock);
	if (compare_rewrite_inbound(p->rw, p->in, len, 0, clock_ns()) < 0)
		atomic_fetch_add(&w->errors, 1);
	pthread_mutex_unlock(&p->lock);
	return p->in;
}

/* The wire's own hooks (unprotected): guest <-> wire, rewritten. */
static bool wire_hook_tx(void *opaque, const uint8_t *frame, size_t len)
{
	struct wire_port *p = opaque;

	if (wire_out(p->w, p->idx, frame, len) < 0)
		atomic_fetch_add(&p->w->errors, 1);
	return true;
}

static bool wire_hook_rx(void *opaque, const uint8_t *frame, size_t len)
{
	struct wire_port *p = opaque;

	if (hw_vm_net_inject(p->w->vm, p->idx, wire_in(p->w, p->idx, frame, len), len) < 0)
		atomic_fetch_add(&p->w->errors, 1);
	return true;
}

static const struct net_hook_ops wire_hook_ops = {.guest_tx = wire_hook_tx,
						  .wire_rx = wire_hook_rx};

/* Port idx to its resting hook: the wire's, or none. */
static void wire_rest(struct colo_wire *w, struct vm *vm, unsigned int idx)
{
	if (w && idx < w->nports && w->ports[idx].rw)
		hw_vm_net_set_hook(vm, idx, &wire_hook_ops, &w->ports[idx]);
	else
		hw_vm_net_set_hook(vm, idx, NULL, NULL);
}

int colo_wire_new(struct primary *m, struct compare_rewrite **rw, unsigned int n,
		  struct colo_wire **out)
{
	struct colo_wire *w = calloc(1, sizeof(*w));
	unsigned int i;

	if (!w)
		return -ENOMEM;
	w->vm = m->vm;
	w->nports = hw_vm_net_count(m->vm);
	w->ports = calloc(w->nports ? w->nports : 1, sizeof(*w->ports));
	if (!w->ports) {
		free(w);
		return -ENOMEM;
	}
	for (i = 0; i < w->nports; i++) {
		struct wire_port *p = &w->ports[i];

		p->w = w;
		p->idx = i;
		p->rw = i < n ? rw[i] : NULL;
		pthread_mutex_init(&p->lock, NULL);
	}
	for (; i < n; i++)
		compare_rewrite_free(rw[i]); /* (never: one per port) */
	/* Frames pass through the wire's hooks from now on (they replace
	 * the hooks the rewriters came with, between two frames). */
	if (!m->net)
		for (i = 0; i < w->nports; i++)
			wire_rest(w, m->vm, i);
	*out = w;
	return 0;
}

void colo_wire_free(struct colo_wire *w)
{
	if (!w)
		return;
	for (unsigned int i = 0; i < w->nports; i++) {
		if (w->ports[i].rw)
			hw_vm_net_set_hook(w->vm, i, NULL, NULL);
	}
	for (unsigned int i = 0; i < w->nports; i++) {
		compare_rewrite_free(w->ports[i].rw);
		pthread_mutex_destroy(&w->ports[i].lock);
	}
	free(w->ports);
	free(w);
}

unsigned int colo_wire_ports(const struct colo_wire *w)
{
	return w ? w->nports : 0;
}

int colo_wire_save(struct colo_wire *w, uint8_t **bufs, size_t *lens, unsigned int n)
{
	int ret = 0;

	for (unsigned int i = 0; i < n; i++) {
		struct wire_port *p = i < w->nports ? &w->ports[i] : NULL;

		bufs[i] = NULL;
		lens[i] = 0;
		if (!p || !p->rw || ret)
			continue;
		pthread_mutex_lock(&p->lock);
		ret = compare_rewrite_save(p->rw, &bufs[i], &lens[i]);
		pthread_mutex_unlock(&p->lock);
		ret = ret < 0 ? ret : 0;
	}
	if (ret) {
		for (unsigned int i = 0; i < n; i++) {
			free(bufs[i]);
			bufs[i] = NULL;
		}
	}
	return ret;
}

uint64_t colo_wire_active(struct colo_wire *w)
{
	uint64_t n = 0;

	for (unsigned int i = 0; w && i < w->nports; i++) {
		struct wire_port *p = &w->ports[i];

		if (!p->rw)
			continue;
		pthread_mutex_lock(&p->lock);
		n += compare_rewrite_active(p->rw);
		pthread_mutex_unlock(&p->lock);
	}
	return n;
}

static enum colo_reason map_reason(enum compare_reason r)
{
	switch (r) {
	case COMPARE_REASON_MISCOMPARE:
		return COLO_REASON_MISMATCH;
	case COMPARE_REASON_TIMEOUT:
		return COLO_REASON_COMPARE_TIMEOUT;
	default: /* the comparator cannot hold more: table, buffer, queue */
		return COLO_REASON_COMPARE_LIMIT;
	}
}

static void wake(struct colo_net *n)
{
	uint64_t one = 1;

	if (write(n->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("COLO net: eventfd: %s", strerror(errno));
}

/* ---- comparator callbacks (under cmp_lock) ------------------------------------- */

static void on_release(void *opaque, const uint8_t *frame, size_t len)
{
	struct colo_port *p = opaque;
	struct colo_wire *w = p->n->m->wire;

	if (atomic_load(&p->n->fenced)) {
		atomic_fetch_add(&p->n->fenced_dropped, 1);
		return;
	}
	if ((w ? wire_out(w, p->idx, frame, len) : hw_vm_net_send(p->n->vm, p->idx, frame, len)) <
	    0)
		atomic_fetch_add(&p->wire_errors, 1);
}

static void on_checkpoint(void *opaque, enum compare_reason reason)
{
	struct colo_port *p = opaque;

	/* -ENOTCONN: protection is ending; the held frames go with it. */
	primary_checkpoint_request(p->n->m, map_reason(reason));
}

static const struct compare_ops cmp_ops = {.release = on_release, .checkpoint = on_checkpoint};

/* ---- mirror callbacks (I/O thread) ----------------------------------------------- */

static int mirror_to_guest(void *opaque, const uint8_t *frame, size_t len)
{
	struct colo_port *p = opaque;

	return hw_vm_net_inject(p->n->vm, p->idx, frame, len);
}

static int mirror_to_channel(void *opaque, const uint8_t *frame, size_t len)
{
	struct colo_port *p = opaque;
	Colovm__Transport__Packet pk = COLOVM__TRANSPORT__PACKET__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;
	int ret = -ENOTCONN;

	pk.dir = COLOVM__TRANSPORT__PACKET__DIR__MIRRORED;
	pk.port = p->idx;
	pk.time_ns = clock_ns();
	pk.data.data = (uint8_t *)frame;
	pk.data.len = len;
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_PACKET;
	msg.packet = &pk;
	pthread_mutex_lock(&p->n->ch_lock);
	if (p->n->ch)
		ret = transport_send_more(p->n->ch, &msg); /* (hook_wire_rx_done sends) */
	pthread_mutex_unlock(&p->n->ch_lock);
	if (!ret)
		atomic_fetch_add(&p->mirrored, 1);
	return ret;
}

/* ---- virtio-net hooks (I/O thread) ------------------------------------------------ */

static bool hook_guest_tx(void *opaque, const uint8_t *frame, size_t len)
{
	struct colo_port *p = opaque;

	if (compare_enqueue(p->cmp, COMPARE_PRIMARY, frame, len, clock_ns()))
		atomic_fetch_add(&p->tx_dropped, 1); /* queue full: a checkpoint follows */
	wake(p->n);
	return true;
}

static bool hook_wire_rx(void *opaque, const uint8_t *frame, size_t len)
{
	struct colo_port *p = opaque;
	struct colo_wire *w = p->n->m->wire;

	/* The guest always gets it; a channel error is the checkpoint
	 * thread's to see (the secondary is gone or going). */
	compare_mirror_input(p->mir, w ? wire_in(w, p->idx, frame, len) : frame, len);
	return true;
}

/* The frames of one read of the tap, mirrored: sent in one go. */
static void hook_wire_rx_done(void *opaque)
{
	struct colo_port *p = opaque;

	pthread_mutex_lock(&p->n->ch_lock);
	if (p->n->ch)
		transport_flush(p->n->ch); /* (an error: the checkpoint thread's to see) */
	pthread_mutex_unlock(&p->n->ch_lock);
}

static const struct net_hook_ops hook_ops = {
    .guest_tx = hook_guest_tx, .wire_rx = hook_wire_rx, .wire_rx_done = hook_wire_rx_done};

/* ---- the compare thread ------------------------------------------------------------ */

/* Poll every comparator (cmp_lock held); their earliest deadline. */
static uint64_t poll_all(struct colo_net *n, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	for (unsigned int i = 0; i < n->nports; i++) {
		struct colo_port *p = &n->ports[i];
		struct compare_stats st;
		uint64_t d;

		compare_poll(p->cmp, now);
		compare_stats_get(p->cmp, &st);
		if (st.held > atomic_load(&p->held_max))
			atomic_store(&p->held_max, st.held);
		d = compare_next_deadline(p->cmp);
		next = d < next ? d : next;
	}
	return next;
}

static void *compare_thread(void *arg)
{
	struct colo_net *n = arg;

	while (!atomic_load(&n->quit)) {
		struct pollfd pfd = {.fd = n->evfd, .events = POLLIN};
		uint64_t now = clock_ns(), next = UINT64_MAX, v;
		int timeout = -1;

		pthread_mutex_lock(&n->cmp_lock);
		next = poll_all(n, now);
		atomic_store(&n->armed, next);
		pthread_mutex_unlock(&n->cmp_lock);
		if (next != UINT64_MAX) {
			now = clock_ns();
			timeout = next <= now ? 0 : (int)MIN((next - now + 999999) / 1000000, 1000);
		}
		if (poll(&pfd, 1, timeout) > 0 && read(n->evfd, &v, sizeof(v)) < 0 &&
		    errno != EAGAIN)
			log_err("COLO net: eventfd: %s", strerror(errno));
	}
	return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------- */

int colo_net_new(struct primary *m, uint64_t timeout_ms, struct colo_net **out)
{
	struct compare_config cfg = {.timeout_ns = timeout_ms * 1000000ull};
	struct colo_net *n = calloc(1, sizeof(*n));
	int ret = -ENOMEM;

	if (!n)
		return -ENOMEM;
	n->m = m;
	n->vm = m->vm;
	n->evfd = -1;
	atomic_init(&n->armed, UINT64_MAX);
	pthread_mutex_init(&n->cmp_lock, NULL);
	pthread_mutex_init(&n->ch_lock, NULL);
	n->nports = hw_vm_net_count(m->vm);
	n->ports = calloc(n->nports ? n->nports : 1, sizeof(*n->ports));
	if (!n->ports)
		goto err;
	for (unsigned int i = 0; i < n->nports; i++) {
		struct colo_port *p = &n->ports[i];

		p->n = n;
		p->idx = i;
		ret = compare_new(&p->cmp, &cfg, &cmp_ops, p);
		if (!ret)
			ret = compare_mirror_new(&p->mir, mirror_to_guest, mirror_to_channel, p);
		if (ret)
			goto err;
	}
	n->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (n->evfd < 0) {
		ret = -errno;
		goto err;
	}
	ret = -pthread_create(&n->thread, NULL, compare_thread, n);
	if (ret)
		goto err;
	n->thread_live = true;
	*out = n;
	return 0;
err:
	colo_net_free(n);
	return ret;
}

int colo_net_start(struct colo_net *n, struct transport_channel *ch)
{
	pthread_mutex_lock(&n->ch_lock);
	n->ch = ch;
	pthread_mutex_unlock(&n->ch_lock);
	for (unsigned int i = 0; i < n->nports; i++) {
		int ret = hw_vm_net_set_hook(n->vm, i, &hook_ops, &n->ports[i]);

		if (ret) {
			while (i--)
				wire_rest(n->m->wire, n->vm, i);
			return ret;
		}
	}
	n->hooked = true;
	return 0;
}

void colo_net_detach(struct colo_net *n)
{
	pthread_mutex_lock(&n->ch_lock);
	n->ch = NULL;
	pthread_mutex_unlock(&n->ch_lock);
}

void colo_net_secondary(struct colo_net *n, const Colovm__Transport__Packet *pk)
{
	uint64_t next;

	if (pk->dir != COLOVM__TRANSPORT__PACKET__DIR__REDIRECTED || pk->port >= n->nports) {
		if (!atomic_fetch_add(&n->bad_redirected, 1))
			log_err("COLO net: a packet from the secondary for port %u, direction "
				"%d: dropped",
				pk->port, (int)pk->dir);
		return;
	}
	compare_enqueue(n->ports[pk->port].cmp, COMPARE_SECONDARY, pk->data.data, pk->data.len,
			clock_ns());
	pthread_mutex_lock(&n->cmp_lock);
	next = poll_all(n, clock_ns());
	pthread_mutex_unlock(&n->cmp_lock);
	if (next < atomic_load(&n->armed))
		wake(n);
}

/* Drain both queues, then fn on every comparator: a checkpoint step
 * happens between two polls. */
static void checkpoint_step(struct colo_net *n, int (*fn)(struct compare *, uint64_t))
{
	uint64_t now = clock_ns();

	pthread_mutex_lock(&n->cmp_lock);
	poll_all(n, now);
	for (unsigned int i = 0; i < n->nports; i++)
		fn(n->ports[i].cmp, now);
	pthread_mutex_unlock(&n->cmp_lock);
}

void colo_net_checkpoint_begin(struct colo_net *n)
{
	checkpoint_step(n, compare_checkpoint_begin);
}

void colo_net_checkpoint_acked(struct colo_net *n)
{
	/* Frames the secondary sent before it stopped are from the old
	 * state: the drain consumes (and discards) them first. */
	checkpoint_step(n, compare_checkpoint_acked);
}

void colo_net_set_timeout(struct colo_net *n, uint64_t timeout_ms)
{
	pthread_mutex_lock(&n->cmp_lock);
	for (unsigned int i = 0; i < n->nports; i++)
		compare_set_timeout(n->ports[i].cmp, timeout_ms * 1000000ull);
	pthread_mutex_unlock(&n->cmp_lock);
	wake(n);
}

void colo_net_free(struct colo_net *n)
{
	if (!n)
		return;
	colo_net_detach(n);
	if (n->thread_live) {
		/* Held frames first, in order; then the hooks go (frames pass
		 * straight from now on); then what came in between. */
		pthread_mutex_lock(&n->cmp_lock);
		poll_all(n, clock_ns());
		for (unsigned int i = 0; i < n->nports; i++)
			compare_disable(n->ports[i].cmp);
		pthread_mutex_unlock(&n->cmp_lock);
	}
	if (n->hooked) {
		for (unsigned int i = 0; i < n->nports; i++)
			wire_rest(n->m->wire, n->vm, i);
		n->hooked = false;
	}
	if (n->thread_live) {
		atomic_store(&n->quit, true);
		wake(n);
		pthread_join(n->thread, NULL);
		pthread_mutex_lock(&n->cmp_lock);
		poll_all(n, clock_ns());
		pthread_mutex_unlock(&n->cmp_lock);
	}
	for (unsigned int i = 0; n->ports && i < n->nports; i++) {
		compare_mirror_free(n->ports[i].mir);
		compare_free(n->ports[i].cmp);
	}
	free(n->ports);
	if (n->evfd >= 0)
		close(n->evfd);
	pthread_mutex_destroy(&n->cmp_lock);
	pthread_mutex_destroy(&n->ch_lock);
	free(n);
}

void colo_net_fence(struct colo_net *n)
{
	atomic_store(&n->fenced, true);
}

json_t *colo_net_stats(struct colo_net *n)
{
	struct compare_stats t = {0};
	uint64_t mirrored = 0, mirror_err = 0, dropped = 0, wire_err = 0, held_max = 0;

	for (unsigned int i = 0; n && i < n->nports; i++) {
		struct colo_port *p = &n->ports[i];
		struct compare_stats st;

		compare_stats_get(p->cmp, &st);
		t.frames_primary += st.frames_primary;
		t.frames_secondary += st.frames_secondary;
		t.compared += st.compared;
		t.released += st.released;
		t.released_passthrough += st.released_passthrough;
		t.released_unverified += st.released_unverified;
		t.released_checkpoint += st.released_checkpoint;
		t.secondary_dropped += st.secondary_dropped;
		t.miscompares += st.miscompares;
		t.timeouts += st.timeouts;
		t.malformed += st.malformed;
		t.conns += st.conns;
		t.held += st.held;
		mirrored += atomic_load(&p->mirrored);
		mirror_err += compare_mirror_errors(p->mir);
		dropped += atomic_load(&p->tx_dropped);
		wire_err += atomic_load(&p->wire_errors);
		held_max += atomic_load(&p->held_max);
	}
	return json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "primary-frames", (json_int_t)t.frames_primary, "secondary-frames",
	    (json_int_t)t.frames_secondary, "compared", (json_int_t)t.compared, "miscompares",
	    (json_int_t)t.miscompares, "timeouts", (json_int_t)t.timeouts, "released",
	    (json_int_t)t.released, "released-checkpoint", (json_int_t)t.released_checkpoint,
	    "released-unverified", (json_int_t)t.released_unverified, "released-passthrough",
	    (json_int_t)t.released_passthrough, "secondary-unmatched",
	    (json_int_t)t.secondary_dropped, "malformed", (json_int_t)t.malformed, "connections",
	    (json_int_t)t.conns, "held", (json_int_t)t.held, "held-max", (json_int_t)held_max,
	    "mirrored", (json_int_t)mirrored, "mirror-errors", (json_int_t)mirror_err, "dropped",
	    (json_int_t)(dropped + wire_err));
}
