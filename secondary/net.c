/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * COLO, secondary side: the packet path (DESIGN.md, data paths 1 and 2).
 * One port per virtio-net device, each with a net-compare rewriter and
 * redirector:
 *
 *   channel: Packet{MIRRORED} (COLO thread) -> rewrite (ack -= offset)
 *                                           -> this guest's RX
 *   guest TX -> rewrite (seq += offset) -> Packet{REDIRECTED} -> channel
 *   own wire (tap) -> dropped: while paired, this guest hears the clients
 *                     only through the primary's mirror
 *
 * When the pair breaks (sc_net_failover) the redirector sends the guest's
 * frames to its own wire, the rewriter keeps the offsets of the connections
 * it knows (their clients talk the primary's sequence numbers) and the
 * wire's frames reach the guest again, rewritten as the mirrored ones were
 * (ack -= offset: else the guest sees acks for data it never sent, and
 * its TCP gives the connection up after its retries).
 *
 * Re-protect. A primary that was itself a secondary once rewrites at its
 * wire the connections open when it took over, and sends those offsets with
 * every checkpoint (sc_net_inherit keeps the last applied ones): at failover
 * they are added to this rewriter's, so the clients of those connections go
 * on with this copy too. When this side re-protects its guest (it becomes
 * the primary), sc_net_handover gives the rewriters to the primary's wire
 * edge (primary/net.c), which replaces these hooks.
 *
 * Threads: hooks on the device's I/O thread, mirrored frames and the
 * checkpoint's reset on the COLO thread; the rewriter and the channel
 * pointer under one lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "hw/hw.h"
#include "net-compare/compare.h"
#include "secondary/internal.h"
#include "transport/transport.h"

#define SC_NET_FRAME_MAX 65550 /* the largest frame virtio-net hands over */
#define SC_NET_LINGER_NS (2 * 1000000000ull)

struct sc_port {
	struct sc_net *n;
	unsigned int idx;
	struct compare_rewrite *rw;
	struct compare_redirect *rd;
	uint8_t buf[SC_NET_FRAME_MAX]; /* guest TX, rewritten in place */
	uint8_t rx[SC_NET_FRAME_MAX];  /* the wire's frames after failover, likewise */
	uint8_t *inherit;	       /* the primary's wire offsets (compare_rewrite_save) */
	size_t ninherit;
};

struct sc_net {
	struct vm *vm;
	unsigned int nports;
	struct sc_port *ports;
	pthread_mutex_t lock;
	struct transport_channel *ch; /* NULL: not paired */
	_Atomic bool failed_over;     /* set under lock */
	bool handed;		      /* the rewriters belong to the primary now (under lock) */
	uint64_t inherited;	      /* offsets added at failover */
	_Atomic uint64_t mirrored, redirected, wire_dropped, errors;
};

static int to_channel(void *opaque, const uint8_t *frame, size_t len)
{
	struct sc_port *p = opaque;
	Colovm__Transport__Packet pk = COLOVM__TRANSPORT__PACKET__INIT;
	transport_msg msg = COLOVM__TRANSPORT__MSG__INIT;
	int ret;

	if (!p->n->ch)
		return -ENOTCONN;
	pk.dir = COLOVM__TRANSPORT__PACKET__DIR__REDIRECTED;
	pk.port = p->idx;
	pk.time_ns = clock_ns();
	pk.data.data = (uint8_t *)frame;
	pk.data.len = len;
	msg.body_case = COLOVM__TRANSPORT__MSG__BODY_PACKET;
	msg.packet = &pk;
	ret = transport_send_more(p->n->ch, &msg); /* (hook_guest_tx_done sends) */
	if (!ret)
		atomic_fetch_add(&p->n->redirected, 1);
	return ret;
}

static int to_wire(void *opaque, const uint8_t *frame, size_t len)
{
	struct sc_port *p = opaque;

	return hw_vm_net_send(p->n->vm, p->idx, frame, len);
}

static int to_guest(void *opaque, const uint8_t *frame, size_t len)
{
	struct sc_port *p = opaque;

	return hw_vm_net_inject(p->n->vm, p->idx, frame, len);
}

static bool hook_guest_tx(void *opaque, const uint8_t *frame, size_t len)
{
	struct sc_port *p = opaque;
	struct sc_net *n = p->n;

	if (len > sizeof(p->buf)) {
		atomic_fetch_add(&n->errors, 1);
		return true;
	}
	pthread_mutex_lock(&n->lock);
	memcpy(p->buf, frame, len);
	if (compare_redirect_output(p->rd, p->buf, len, 0, clock_ns()) < 0)
		atomic_fetch_add(&n->errors, 1);
	pthread_mutex_unlock(&n->lock);
	return true;
}

static bool hook_wire_rx(void *opaque, const uint8_t *frame, size_t len)
{
	struct sc_port *p = opaque;
	struct sc_net *n = p->n;

	if (!atomic_load(&n->failed_over)) {
		atomic_fetch_add(&n->wire_dropped, 1);
		return true;
	}
	if (len > sizeof(p->rx))
		return false;
	/* The clients talk the old primary's sequence numbers: ack -= offset
	 * (as for the mirrored frames before), then into the guest. */
	pthread_mutex_lock(&n->lock);
	memcpy(p->rx, frame, len);
	if (compare_redirect_input(p->rd, p->rx, len, 0, clock_ns()) < 0)
		atomic_fetch_add(&n->errors, 1);
	pthread_mutex_unlock(&n->lock);
	return true;
}

/* The frames of one pass over the guest's TX queue, redirected to the
 * primary: sent in one go. */
static void hook_guest_tx_done(void *opaque)
{
	struct sc_net *n = ((struct sc_port *)opaque)->n;

	pthread_mutex_lock(&n->lock);
	if (n->ch)
		transport_flush(n->ch); /* (an error: the COLO thread's to see) */
	pthread_mutex_unlock(&n->lock);
}

static const struct net_hook_ops hook_ops = {
    .guest_tx = hook_guest_tx, .guest_tx_done = hook_guest_tx_done, .wire_rx = hook_wire_rx};

int sc_net_new(struct vm *vm, struct sc_net **out)
{
	struct sc_net *n = calloc(1, sizeof(*n));
	int ret = -ENOMEM;

	if (!n)
		return -ENOMEM;
	n->vm = vm;
	pthread_mutex_init(&n->lock, NULL);
	n->nports = hw_vm_net_count(vm);
	n->ports = calloc(n->nports ? n->nports : 1, sizeof(*n->ports));
	if (!n->ports)
		goto err;
	for (unsigned int i = 0; i < n->nports; i++) {
		struct sc_port *p = &n->ports[i];

		p->n = n;
		p->idx = i;
		ret = compare_rewrite_new(&p->rw, 0);
		if (!ret)
			ret = compare_redirect_new(&p->rd, p->rw, to_channel, to_wire, to_guest, p);
		if (ret)
			goto err;
	}
	for (unsigned int i = 0; i < n->nports; i++) {
		ret = hw_vm_net_set_hook(vm, i, &hook_ops, &n->ports[i]);
		if (ret)
			goto err;
	}
	*out = n;
	return 0;
err:
	sc_net_free(n);
	return ret;
}

void sc_net_free(struct sc_net *n)
{
	if (!n)
		return;
	/* Handed over: the hooks are the primary's, and so are the rewriters. */
	for (unsigned int i = 0; n->ports && !n->handed && i < n->nports; i++)
		hw_vm_net_set_hook(n->vm, i, NULL, NULL);
	for (unsigned int i = 0; n->ports && i < n->nports; i++) {
		compare_redirect_free(n->ports[i].rd);
		if (!n->handed)
			compare_rewrite_free(n->ports[i].rw);
		free(n->ports[i].inherit);
	}
	free(n->ports);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void sc_net_attach(struct sc_net *n, struct transport_channel *ch)
{
	pthread_mutex_lock(&n->lock);
	n->ch = ch;
	pthread_mutex_unlock(&n->lock);
}

void sc_net_failover(struct sc_net *n)
{
	pthread_mutex_lock(&n->lock);
	n->ch = NULL;
	if (!n->failed_over) {
		for (unsigned int i = 0; i < n->nports; i++) {
			struct sc_port *p = &n->ports[i];
			int ret;

			compare_redirect_failover(p->rd);
			compare_rewrite_failover(p->rw);
			if (!p->ninherit)
				continue;
			/* The clients of the survivor's old connections talk
			 * its wire's sequence numbers: so does this wire now. */
			ret = compare_rewrite_load(p->rw, p->inherit, p->ninherit, clock_ns());
			if (ret)
				log_err("COLO net: port %u: the primary's wire offsets: %s", i,
					strerror(-ret));
			else
				n->inherited +=
				    (p->ninherit - COMPARE_RW_SAVE_HDR) / COMPARE_RW_SAVE_REC;
		}
		n->failed_over = true;
	}
	pthread_mutex_unlock(&n->lock);
}

int sc_net_inherit(struct sc_net *n, const ProtobufCBinaryData *offs, size_t noffs)
{
	int ret = 0;

	if (noffs > n->nports)
		return -EPROTO;
	uint8_t *copy[noffs ? noffs : 1]; /* (bounded by the ports, above) */

	for (size_t i = 0; i < noffs; i++) {
		copy[i] = NULL;
		if (!offs[i].len)
			continue;
		if (offs[i].len < COMPARE_RW_SAVE_HDR ||
		    (offs[i].len - COMPARE_RW_SAVE_HDR) % COMPARE_RW_SAVE_REC) {
			ret = -EPROTO;
			continue;
		}
		copy[i] = malloc(offs[i].len);
		if (!copy[i])
			ret = -ENOMEM;
		else
			memcpy(copy[i], offs[i].data, offs[i].len);
	}
	if (ret) {
		for (size_t i = 0; i < noffs; i++)
			free(copy[i]);
		return ret;
	}
	pthread_mutex_lock(&n->lock);
	for (unsigned int i = 0; i < n->nports; i++) {
		struct sc_port *p = &n->ports[i];

		free(p->inherit);
		p->inherit = i < noffs ? copy[i] : NULL;
		p->ninherit = p->inherit ? offs[i].len : 0;
	}
	pthread_mutex_unlock(&n->lock);
	return 0;
}

int sc_net_handover(struct sc_net *n, struct compare_rewrite **rw, unsigned int max)
{
	int ret;

	pthread_mutex_lock(&n->lock);
	if (!n->failed_over || n->handed) {
		ret = -EBUSY;
	} else if (max < n->nports) {
		ret = -ENOSPC;
	} else {
		for (unsigned int i = 0; i < n->nports; i++)
			rw[i] = n->ports[i].rw;
		n->handed = true;
		ret = (int)n->nports;
	}
	pthread_mutex_unlock(&n->lock);
	return ret;
}

int sc_net_input(struct sc_net *n, Colovm__Transport__Packet *pk)
{
	int ret;

	if (pk->dir != COLOVM__TRANSPORT__PACKET__DIR__MIRRORED || pk->port >= n->nports)
		return -EPROTO;
	pthread_mutex_lock(&n->lock);
	ret = compare_redirect_input(n->ports[pk->port].rd, pk->data.data, pk->data.len, 0,
				     clock_ns());
	pthread_mutex_unlock(&n->lock);
	if (ret < 0)
		atomic_fetch_add(&n->errors, 1);
	else
		atomic_fetch_add(&n->mirrored, 1);
	return 0;
}

void sc_net_checkpoint(struct sc_net *n)
{
	uint64_t now = clock_ns();

	pthread_mutex_lock(&n->lock);
	for (unsigned int i = 0; i < n->nports; i++) {
		compare_rewrite_checkpoint(n->ports[i].rw);
		compare_rewrite_gc(n->ports[i].rw, now, SC_NET_LINGER_NS);
	}
	pthread_mutex_unlock(&n->lock);
}

json_t *sc_net_stats(struct sc_net *n)
{
	uint64_t held = 0, active = 0, inherited;

	pthread_mutex_lock(&n->lock);
	for (unsigned int i = 0; i < n->nports; i++) {
		struct sc_port *p = &n->ports[i];

		held += p->ninherit ? (p->ninherit - COMPARE_RW_SAVE_HDR) / COMPARE_RW_SAVE_REC : 0;
		if (n->failed_over && !n->handed)
			active += compare_rewrite_active(p->rw);
	}
	inherited = n->inherited;
	pthread_mutex_unlock(&n->lock);
	/* wire-offsets: connections rewritten at this side's own wire (after a
	 * takeover); inherited-offsets: those the primary rewrites at its
	 * wire, kept for a takeover (and how many a takeover added). */
	return json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "mirrored", (json_int_t)atomic_load(&n->mirrored),
	    "redirected", (json_int_t)atomic_load(&n->redirected), "own-wire-dropped",
	    (json_int_t)atomic_load(&n->wire_dropped), "errors",
	    (json_int_t)atomic_load(&n->errors), "wire-offsets", (json_int_t)active,
	    "primary-wire-offsets", (json_int_t)held, "inherited-offsets", (json_int_t)inherited);
}
