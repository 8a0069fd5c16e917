/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Snapshots and live (precopy) migration over TCP.
 *
 * This lives in hw/, not common/vmstate/: it needs the VM itself (guest RAM,
 * the dirty log, the vCPU pause) besides the stream format, and common/
 * never reaches up into hw/. It uses common/runstate and common/qmp, which
 * sit below hw/.
 *
 * Stream (common/vmstate/vmstate.h has the byte layout), one unit:
 *
 *   source (migration thread)                    target (incoming thread)
 *   connect tcp:HOST:PORT ------------------->   accept (one connection)
 *   header --------------------------------->   vmstate_read_header
 *   START "ram" (RAM bytes) ----------------->   load_begin: RAM bytes == --mem?
 *   PART  round 0: every page (zero pages     >   pages written straight into
 *         as ZERO runs)                           guest RAM (see "staging")
 *   PART  round 1..n: pages of the dirty log  >
 *         (KVM's + the VMM's own writes),
 *         until they fit in downtime-limit
 *   -- main loop: vm stop -> FINISH_MIGRATE --
 *   END   last dirty pages ----------------->
 *   (fdatasync every --disk image)
 *   FULL  machine, kvmclock, irqchip, pit,    >   staged + validated
 *         cpu 0..n-1, uart, i8042,
 *         virtio-net 0.., virtio-blk 0..
 *   EOF  ------------------------------------>   load_begin returns 0
 *                                                load_commit (post_load hooks)
 *        <------------------------------- "CVOK"  ack (4 bytes)
 *   POSTMIGRATE (stays paused)                   INMIGRATE -> RUNNING
 *                                                RARP from each virtio-net MAC
 *
 * Devices. Backends are not state: the target opens its own --net tap and
 * --disk images and must have as many nets and disks as the source (a
 * mismatch is refused naming the device). Disks assume shared storage: both
 * hosts reach the same image file, and the source flushes (fdatasync) it
 * after the VM stopped, before the final device state; the target must not
 * have written to it. Virtio pause completes every request a device popped
 * (virtio-persist.c), so no request is in flight in the stream. Once the
 * target runs it broadcasts a RARP from each virtio-net MAC through its
 * backend (like QEMU's announce_self), so a bridge or switch sends the
 * guest's traffic to the new port at once.
 *
 * Any error on the source (connect, send, no ack, cancel) gives every page
 * it took from the dirty log and did not send back to the log
 * (dirty_putback), turns logging off and, if it had stopped the VM, runs it
 * again: the source goes on as if nothing happened.
 *
 * Staging on the target. RAM runs are written straight into the guest RAM
 * of a VM that has never run (created with vm_config.restore), instead of a
 * separate RAM cache: that RAM is the staging area. Device sections are
 * staged and validated by the two-phase reader and only applied after the
 * EOF. Nothing starts the vCPUs unless load_begin and load_commit both
 * succeed; on any failure the process exits (status 2) with the reader's
 * message naming the section, so a half-loaded guest never runs. The same
 * holds for `colovm run --restore FILE`.
 *
 * Threads: the source streams on its own thread while the vCPUs run; it
 * asks the main loop (an eventfd) to stop the VM and to finish, and the main
 * loop answers through a condition variable. QMP runs on the main loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "hw/internal.h"

#define MIG_ACK		     "CVOK"
#define MIG_BATCH_PAGES	     256
#define MIG_MAX_ROUNDS	     64
#define MIG_ACK_TIMEOUT_MS   60000
#define MIG_DEFAULT_DOWNTIME 300

enum mig_status {
	MIG_NONE,
	MIG_SETUP,
	MIG_ACTIVE,
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLING,
	MIG_CANCELLED,
};

static const char *const mig_status_name[] = {
	[MIG_NONE] = "none",	       [MIG_SETUP] = "setup",
	[MIG_ACTIVE] = "active",       [MIG_COMPLETED] = "completed",
	[MIG_FAILED] = "failed",       [MIG_CANCELLING] = "cancelling",
	[MIG_CANCELLED] = "cancelled",
};

enum mig_req { REQ_NONE, REQ_STOP, REQ_DONE, REQ_INCOMING_DONE };

struct migration {
	struct vm *vm;
	struct runstate *rs;
	struct qmp *qmp;
	int evfd;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum mig_req req;	/* thread -> main loop */
	bool stop_done;		/* main loop -> thread */
	int stop_ret;
	_Atomic bool cancel;

	/* parameters (main loop) */
	uint64_t downtime_limit_ms;
	uint64_t max_bw; /* bytes/s, 0: unlimited */

	/* outgoing */
	pthread_t thread;
	bool thread_live;
	int fd;
	char *uri;
	bool stopped_vm, was_running;
	int result;
	enum mig_status status; /* under lock */
	char errmsg[256];
	uint64_t start_ns, stop_ns, end_ns;
	uint64_t stopped_ns; /* the VM is stopped (FINISH_MIGRATE, STOP sent) */
	uint64_t transferred, remaining, total, dirty_rate, normal, duplicate, rounds;
	uint64_t expected_downtime_ms, downtime_ms, setup_ms;
	uint64_t round0_bytes, round0_ns; /* page data of round 0, its duration */
	uint64_t ack_ns;		  /* the target's ack read */
	double mbps;

	/* incoming */
	pthread_t in_thread;
	bool in_live;
	int listen_fd;
	int in_ret;
	uint64_t in_loaded_ns; /* stream loaded and acknowledged */
	void (*in_done)(void *opaque, int ret, const char *msg);
	void *in_opaque;
};

static void mig_set_status(struct migration *m, enum mig_status st)
{
	pthread_mutex_lock(&m->lock);
	m->status = st;
	pthread_mutex_unlock(&m->lock);
}

/* Main loop thread only. */
static void mig_event(struct migration *m, enum mig_status st)
{
	if (m->qmp)
		qmp_event(m->qmp, "MIGRATION", json_pack("{s:s}", "status", mig_status_name[st]));
}

static void mig_notify(struct migration *m, enum mig_req req)
{
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	m->req = req;
	pthread_mutex_unlock(&m->lock);
	if (write(m->evfd, &one, sizeof(one)) < 0)
		log_err("migration: eventfd: %s", strerror(errno));
}

/* A peer that goes away is an error to report (EPIPE), not a signal that
 * kills the VMM: SIGPIPE stays blocked (and pending) in the stream threads. */
static void mig_block_sigpipe(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* ---- sockets -------------------------------------------------------------- */

static int parse_tcp_uri(const char *uri, char *host, size_t hlen, char *port, size_t plen)
{
	const char *p, *colon;

	if (strncmp(uri, "tcp:", 4))
		return -EINVAL;
	p = uri + 4;
	colon = strrchr(p, ':');
	if (!colon || colon == p || !colon[1] || (size_t)(colon - p) >= hlen ||
	    strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int tcp_open(const char *uri, bool listening, int *out)
{
	char host[256], port[32];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	int fd = -1, ret, one = 1;

	ret = parse_tcp_uri(uri, host, sizeof(host), port, sizeof(port));
	if (ret)
		return ret;
	if (listening)
		hints.ai_flags = AI_PASSIVE;
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret)
		return -EHOSTUNREACH;
	ret = -ECONNREFUSED;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		if (listening) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (!bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 1))
				break;
		} else if (!connect(fd, ai->ai_addr, ai->ai_addrlen)) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			break;
		}
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ret;
	*out = fd;
	return 0;
}

/* ---- RAM passes ------------------------------------------------------------ */

struct ram_pass {
	struct migration *m; /* NULL: snapshot (no rate limit, no cancel) */
	struct vm *vm;
	struct vmstate_writer *w;
	struct vmstate_sink *sink;
	uint8_t *bounce; /* NULL: pages are sent from guest RAM (VM paused) */
	uint8_t *zero;	 /* MIG_BATCH_PAGES zero pages, for holes */
	uint64_t runs[MIG_BATCH_PAGES][2];
	unsigned int nruns, nbounce;
	uint64_t bw_start_ns, bw_bytes; /* rate limit window */
	uint64_t limit;			/* bytes/s, 0: none */
};

static void pass_putback_batch(struct ram_pass *p)
{
	for (unsigned int i = 0; i < p->nruns; i++)
		dirty_putback(p->vm, p->runs[i][0], p->runs[i][1]);
	p->nruns = 0;
	p->nbounce = 0;
}

static int pass_flush(struct ram_pass *p, struct vmstate_error *err)
{
	uint64_t before = vmstate_sink_bytes(p->sink);
	int ret;

	if (!p->nruns)
		return 0;
	ret = vmstate_write_ram_flush(p->w, err);
	if (ret) {
		pass_putback_batch(p);
		return ret;
	}
	if (p->m) {
		uint64_t sent = vmstate_sink_bytes(p->sink) - before;

		pthread_mutex_lock(&p->m->lock);
		p->m->transferred += sent;
		for (unsigned int i = 0; i < p->nruns; i++)
			p->m->remaining -= MIN(p->m->remaining, p->runs[i][1] * PAGE_SIZE);
		pthread_mutex_unlock(&p->m->lock);
		p->bw_bytes += sent;
		if (p->limit) {
			uint64_t due = p->bw_start_ns + p->bw_bytes * 1000000000ull / p->limit;
			uint64_t now = clock_ns();

			if (due > now) {
				struct timespec ts = {.tv_sec = (time_t)((due - now) / 1000000000ull),
						      .tv_nsec = (long)((due - now) % 1000000000ull)};

				nanosleep(&ts, NULL);
			}
		}
	}
	p->nruns = 0;
	p->nbounce = 0;
	return 0;
}

/* Queue pages [first, first + n) (at most MIG_BATCH_PAGES - nbounce). */
static int pass_add(struct ram_pass *p, uint64_t first, uint64_t n, struct vmstate_error *err)
{
	const void *base = p->vm->mem.host;
	int ret;

	if (p->bounce) {
		uint8_t *dst = p->bounce + (size_t)p->nbounce * PAGE_SIZE;
		off_t data = lseek(p->vm->mem.memfd, (off_t)(first * PAGE_SIZE), SEEK_DATA);

		/* Never-touched RAM is a hole in the memfd: reading it would
		 * allocate and clear every page, so send zeroes from a zero
		 * buffer instead (a guest write racing with this is in the
		 * dirty log and goes in the next round). */
		if ((data < 0 && errno == ENXIO) || (data >= 0 && (uint64_t)data >= (first + n) * PAGE_SIZE))
			dst = p->zero + (size_t)p->nbounce * PAGE_SIZE;
		else
			memcpy(dst, p->vm->mem.host + first * PAGE_SIZE, n * PAGE_SIZE);
		/* The writer addresses page g at base + g * PAGE_SIZE. */
		base = (const void *)((uintptr_t)dst - (uintptr_t)(first * PAGE_SIZE));
	}
	p->runs[p->nruns][0] = first;
	p->runs[p->nruns][1] = n;
	p->nruns++;
	p->nbounce += (unsigned int)n;
	ret = vmstate_write_ram_pages(p->w, base, first, n, err);
	if (ret) {
		pass_putback_batch(p);
		return ret;
	}
	return 0;
}

/*
 * Send every page whose bit is set in bitmap, clearing the bits. On failure
 * every page taken and not sent goes back to the dirty log.
 */
static int pass_send(struct ram_pass *p, uint64_t *bitmap, uint64_t npages,
		     struct vmstate_error *err)
{
	uint64_t pg = 0;
	int ret = 0;

	while (pg < npages) {
		uint64_t w = bitmap[pg / 64] >> (pg % 64), n = 0;

		if (!w) {
			pg = ALIGN_DOWN(pg, 64) + 64;
			continue;
		}
		pg += (uint64_t)__builtin_ctzll(w);
		if (pg >= npages)
			break;
		while (pg + n < npages && p->nbounce + n < MIG_BATCH_PAGES &&
		       (bitmap[(pg + n) / 64] >> ((pg + n) % 64) & 1)) {
			bitmap[(pg + n) / 64] &= ~(1ull << ((pg + n) % 64));
			n++;
		}
		if (p->m && atomic_load(&p->m->cancel)) {
			dirty_putback(p->vm, pg, n);
			ret = vmstate_seterr(err, -ECANCELED, "migration cancelled");
		} else {
			ret = pass_add(p, pg, n, err);
		}
		if (!ret && (p->nbounce >= MIG_BATCH_PAGES || p->nruns >= MIG_BATCH_PAGES))
			ret = pass_flush(p, err);
		if (ret)
			break;
		pg += n;
	}
	if (!ret)
		ret = pass_flush(p, err);
	if (ret) {
		pass_putback_batch(p);
		for (uint64_t q = 0; q < npages; q++) {
			if (bitmap[q / 64] >> (q % 64) & 1)
				dirty_putback(p->vm, q, 1);
		}
		memset(bitmap, 0, (npages + 63) / 64 * sizeof(uint64_t));
	}
	return ret;
}

static uint64_t bitmap_count(const uint64_t *bitmap, uint64_t npages)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < (npages + 63) / 64; w++)
		n += (uint64_t)__builtin_popcountll(bitmap[w]);
	return n;
}

/* ---- whole-stream save and load (snapshots, the incoming side) ----------- */

int hw_vm_save(struct vm *vm, int fd, struct vmstate_error *err)
{
	struct vmstate_sink *sink = NULL;
	struct vmstate_writer *w = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "the VM must be stopped for a snapshot");
	ret = vmstate_sink_new_fd(&sink, fd);
	if (!ret)
		ret = vmstate_writer_new(&w, sink, NULL);
	if (ret) {
		vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto out;
	}
	ret = vmstate_write_header(w, err);
	if (!ret)
		ret = vmstate_write_ram_start(w, vm->mem.size, err);
	if (!ret)
		ret = vmstate_write_ram_pages(w, vm->mem.host, 0, vm->mem.size / PAGE_SIZE, err);
	if (!ret)
		ret = vmstate_write_ram_end(w, err);
	if (!ret)
		ret = vmstate_write_devices(w, vm->vmstate, err);
	if (!ret)
		ret = vmstate_write_eof(w, err);
out:
	vmstate_writer_free(w);
	vmstate_sink_free(sink);
	return ret;
}

struct load_ctx {
	struct vm *vm;
	struct vmstate_reader *r;
	uint64_t bad_ram;
	uint64_t ram_end_ns; /* the RAM section's END record was read */
};

/* The target VM has never run: its RAM is the staging area (see the top). */
static void *load_ram_map(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	uint64_t bytes = vmstate_reader_ram_bytes(c->r);

	if (bytes != c->vm->mem.size) {
		c->bad_ram = bytes;
		return NULL;
	}
	if (gfn >= c->vm->mem.size / PAGE_SIZE || npages > c->vm->mem.size / PAGE_SIZE - gfn)
		return NULL;
	return c->vm->mem.host + gfn * PAGE_SIZE;
}

/* Pages about to be filled from the stream: allocate the whole run in one
 * call instead of one page fault per page inside recv (on a PVM host every
 * fault is a trip through the hypervisor). Best effort: without
 * MADV_POPULATE_WRITE (Linux < 5.14) the copy faults them in as before. */
static void *load_ram_map_data(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	void *p = load_ram_map(opaque, gfn, npages);

	if (p && !c->vm->mem.prealloc)
		madvise(p, (size_t)npages * PAGE_SIZE, MADV_POPULATE_WRITE);
	return p;
}

/* Zero runs: pages of the target's memfd that are still holes are zero
 * already; others are punched out (no page is allocated for zeroes). With
 * --mem-prealloc every page stays allocated: only pages that hold something
 * are cleared. */
static int load_ram_zero(void *opaque, uint64_t gfn, uint32_t npages)
{
	struct load_ctx *c = opaque;
	off_t off = (off_t)(gfn * PAGE_SIZE), len = (off_t)npages * (off_t)PAGE_SIZE;
	off_t data;

	if (!load_ram_map(opaque, gfn, npages))
		return -EINVAL;
	if (c->vm->mem.prealloc) {
		for (uint32_t i = 0; i < npages; i++) {
			uint8_t *pg = c->vm->mem.host + off + (size_t)i * PAGE_SIZE;

			if (!vmstate_page_is_zero(pg))
				memset(pg, 0, PAGE_SIZE);
		}
		return 0;
	}
	data = lseek(c->vm->mem.memfd, off, SEEK_DATA);
	if ((data < 0 && errno == ENXIO) || (data >= 0 && data >= off + len))
		return 0;
	if (fallocate(c->vm->mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) < 0) {
		memset(c->vm->mem.host + off, 0, (size_t)len);
		return 0;
	}
	return 0;
}

static void load_ram_end(void *opaque)
{
	struct load_ctx *c = opaque;

	c->ram_end_ns = clock_ns();
}

static int vm_load(struct load_ctx *c, int fd, struct vmstate_error *err)
{
	struct vm *vm = c->vm;
	struct vmstate_load_ops ops = {.ram_map = load_ram_map_data,
				       .ram_zero = load_ram_zero,
				       .ram_end = load_ram_end,
				       .opaque = c};
	uint64_t t_read = 0, t_commit = 0;
	struct vmstate_source *src = NULL;
	int ret;

	if (vm->running)
		return vmstate_seterr(err, -EBUSY, "cannot load into a running VM");
	ret = vmstate_source_new_fd(&src, fd);
	if (!ret)
		ret = vmstate_reader_new(&c->r, src, vm->vmstate, &ops, NULL);
	if (ret) {
		vmstate_seterr(err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto out;
	}
	ret = vmstate_read_header(c->r, err);
	if (!ret)
		ret = vmstate_load_begin(c->r, err);
	if (ret && c->bad_ram)
		vmstate_seterr(err, -EINVAL,
			   "section 'ram': the saved VM has %llu MiB of RAM, this one %llu "
			   "(--mem must match)",
			   (unsigned long long)(c->bad_ram / MiB),
			   (unsigned long long)(vm->mem.size / MiB));
	if (!ret && !vmstate_reader_ram_bytes(c->r))
		ret = vmstate_seterr(err, -EINVAL, "the stream has no RAM section");
	if (!ret) {
		t_read = clock_ns();
		ret = vmstate_load_commit(c->r, err);
		if (ret && !err->msg[0])
			vmstate_seterr(err, ret, "device state refused: %s", strerror(-ret));
		t_commit = clock_ns();
	} else {
		vmstate_load_abort(c->r);
	}
	if (ret)
		virtio_persist_explain(vm, err);
	else if (c->ram_end_ns)
		log_debug("load: RAM end to end of stream %llu us, device state applied in %llu us",
			  (unsigned long long)((t_read - c->ram_end_ns) / 1000),
			  (unsigned long long)((t_commit - t_read) / 1000));
out:
	vmstate_reader_free(c->r);
	vmstate_source_free(src);
	return ret;
}

int hw_vm_load(struct vm *vm, int fd, struct vmstate_error *err)
{
	struct load_ctx c = {.vm = vm};

	return vm_load(&c, fd, err);
}

/* ---- outgoing -------------------------------------------------------------- */

static void mig_stats_round(struct migration *m, uint64_t dirty, uint64_t bytes, uint64_t dt_ns,
			    uint64_t *bw)
{
	pthread_mutex_lock(&m->lock);
	m->rounds++;
	m->remaining = dirty * PAGE_SIZE;
	if (dt_ns) {
		m->dirty_rate = dirty * 1000000000ull / dt_ns;
		if (bytes >= 64 * PAGE_SIZE) {
			*bw = bytes * 1000000000ull / dt_ns; /* bytes/s */
			m->mbps = (double)bytes * 8 * 1000 / (double)dt_ns;
		}
	}
	m->expected_downtime_ms = *bw ? dirty * PAGE_SIZE * 1000 / *bw : 0;
	pthread_mutex_unlock(&m->lock);
}

static void *mig_thread(void *arg)
{
	struct migration *m = arg;
	struct vm *vm = m->vm;
	uint64_t npages = vm->mem.size / PAGE_SIZE, words = (npages + 63) / 64;
	uint64_t *bitmap = NULL, bw = 0, downtime, b0, t0, tm[4], last;
	struct ram_pass p = {.m = m, .vm = vm};
	struct vmstate_ram_stats st0;
	struct vmstate_error err = {0};
	char ack[4];
	int fd = -1, ret;

	mig_block_sigpipe();
	ret = tcp_open(m->uri, false, &fd);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot connect to %s: %s", m->uri, strerror(-ret));
		goto out;
	}
	pthread_mutex_lock(&m->lock);
	m->fd = fd;
	pthread_mutex_unlock(&m->lock);
	if (atomic_load(&m->cancel)) {
		ret = vmstate_seterr(&err, -ECANCELED, "migration cancelled");
		goto out;
	}
	bitmap = malloc(words * sizeof(uint64_t));
	p.bounce = aligned_alloc(PAGE_SIZE, MIG_BATCH_PAGES * PAGE_SIZE);
	p.zero = calloc(MIG_BATCH_PAGES, PAGE_SIZE);
	if (!bitmap || !p.bounce || !p.zero) {
		ret = vmstate_seterr(&err, -ENOMEM, "out of memory");
		goto out;
	}
	memset(bitmap, 0xff, words * sizeof(uint64_t));
	if (npages % 64)
		bitmap[words - 1] = (1ull << (npages % 64)) - 1;
	ret = vmstate_sink_new_fd(&p.sink, fd);
	if (!ret)
		ret = vmstate_writer_new(&p.w, p.sink, NULL);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot set up the stream: %s", strerror(-ret));
		goto out;
	}
	ret = dirty_log_start(vm);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot start dirty logging: %s", strerror(-ret));
		goto out;
	}
	ret = vmstate_write_header(p.w, &err);
	if (!ret)
		ret = vmstate_write_ram_start(p.w, vm->mem.size, &err);
	if (ret)
		goto out;
	pthread_mutex_lock(&m->lock);
	m->total = m->remaining = vm->mem.size;
	m->setup_ms = (clock_ns() - m->start_ns) / 1000000;
	if (m->status == MIG_SETUP)
		m->status = MIG_ACTIVE;
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_NONE); /* MIGRATION active */

	/* Rounds while the guest runs: round 0 is all of RAM. */
	for (;;) {
		uint64_t dirty;

		pthread_mutex_lock(&m->lock);
		p.limit = m->max_bw;
		downtime = m->downtime_limit_ms;
		pthread_mutex_unlock(&m->lock);
		t0 = clock_ns();
		b0 = vmstate_sink_bytes(p.sink);
		vmstate_writer_ram_stats(p.w, &st0);
		p.bw_start_ns = t0;
		p.bw_bytes = 0;
		ret = pass_send(&p, bitmap, npages, &err);
		if (ret)
			goto out;
		if (!m->rounds) {
			struct vmstate_ram_stats st1;

			vmstate_writer_ram_stats(p.w, &st1);
			pthread_mutex_lock(&m->lock);
			m->round0_ns = clock_ns() - t0;
			m->round0_bytes = (st1.pages_raw - st0.pages_raw) * PAGE_SIZE +
					  (st1.bytes_zstd_out - st0.bytes_zstd_out);
			pthread_mutex_unlock(&m->lock);
		}
		ret = dirty_sync(vm, bitmap);
		if (ret) {
			vmstate_seterr(&err, ret, "dirty log: %s", strerror(-ret));
			goto out;
		}
		dirty = bitmap_count(bitmap, npages);
		mig_stats_round(m, dirty, vmstate_sink_bytes(p.sink) - b0, clock_ns() - t0, &bw);
		if (bw && dirty * PAGE_SIZE * 1000 / bw <= downtime)
			break;
		if (m->rounds >= MIG_MAX_ROUNDS) {
			log_info("migration: %d rounds without converging, stopping the VM",
				 MIG_MAX_ROUNDS);
			break;
		}
	}

	/* The main loop stops the VM (FINISH_MIGRATE); then the last round. */
	pthread_mutex_lock(&m->lock);
	m->stop_done = false;
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_STOP);
	pthread_mutex_lock(&m->lock);
	while (!m->stop_done)
		pthread_cond_wait(&m->cond, &m->lock);
	ret = m->stop_ret;
	pthread_mutex_unlock(&m->lock);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot stop the VM: %s", strerror(-ret));
		goto out;
	}
	p.limit = 0;
	tm[0] = clock_ns();
	/* Shared storage: the target opens the same images; what the source
	 * wrote must be on disk before the target can read it. */
	ret = virtio_persist_flush(vm);
	if (ret) {
		vmstate_seterr(&err, ret, "cannot flush the disks: %s", strerror(-ret));
		goto out;
	}
	ret = dirty_sync(vm, bitmap);
	if (ret) {
		vmstate_seterr(&err, ret, "dirty log: %s", strerror(-ret));
		goto out;
	}
	tm[1] = clock_ns();
	last = bitmap_count(bitmap, npages);
	ret = pass_send(&p, bitmap, npages, &err);
	if (!ret)
		ret = vmstate_write_ram_end(p.w, &err);
	tm[2] = clock_ns();
	if (!ret)
		ret = vmstate_write_devices(p.w, vm->vmstate, &err);
	if (!ret)
		ret = vmstate_write_eof(p.w, &err);
	if (ret)
		goto out;
	tm[3] = clock_ns();
	log_debug("migration: stop-and-copy: stopping the VM %llu us, thread resumed %llu us "
		  "later, disk flush + dirty sync %llu us, last %llu pages %llu us, device state "
		  "%llu us",
		  (unsigned long long)((m->stopped_ns - m->stop_ns) / 1000),
		  (unsigned long long)((tm[0] - m->stopped_ns) / 1000),
		  (unsigned long long)((tm[1] - tm[0]) / 1000), (unsigned long long)last,
		  (unsigned long long)((tm[2] - tm[1]) / 1000),
		  (unsigned long long)((tm[3] - tm[2]) / 1000));
	pthread_mutex_lock(&m->lock);
	m->transferred = vmstate_sink_bytes(p.sink);
	m->remaining = 0;
	pthread_mutex_unlock(&m->lock);
	{
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int n = poll(&pfd, 1, MIG_ACK_TIMEOUT_MS);

		if (n <= 0 || read_full(fd, ack, sizeof(ack)) || memcmp(ack, MIG_ACK, 4)) {
			ret = vmstate_seterr(&err, n == 0 ? -ETIMEDOUT : -ECONNRESET,
					 "the target did not acknowledge the migration (it "
					 "refused the stream or went away)");
			goto out;
		}
		pthread_mutex_lock(&m->lock);
		m->ack_ns = clock_ns();
		pthread_mutex_unlock(&m->lock);
	}
	ret = 0;
out:
	if (ret && atomic_load(&m->cancel))
		vmstate_seterr(&err, -ECANCELED, "migration cancelled");
	if (ret && p.w)
		vmstate_writer_free(p.w), p.w = NULL;
	dirty_log_stop(vm);
	vmstate_writer_free(p.w);
	vmstate_sink_free(p.sink);
	free(p.bounce);
	free(p.zero);
	free(bitmap);
	pthread_mutex_lock(&m->lock);
	m->result = ret;
	m->end_ns = clock_ns();
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", ret ? err.msg : "");
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_DONE);
	return NULL;
}

/* ---- incoming -------------------------------------------------------------- */

static void *mig_in_thread(void *arg)
{
	struct migration *m = arg;
	struct vmstate_error err = {0};
	int fd, ret;

	mig_block_sigpipe();
	fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		ret = vmstate_seterr(&err, -errno, "accept: %s", strerror(errno));
	} else {
		log_info("incoming migration: connection accepted, loading");
		ret = hw_vm_load(m->vm, fd, &err);
		if (!ret && write_full(fd, MIG_ACK, 4))
			ret = vmstate_seterr(&err, -ECONNRESET, "cannot acknowledge to the source");
		m->in_loaded_ns = clock_ns();
	}
	pthread_mutex_lock(&m->lock);
	m->in_ret = ret;
	snprintf(m->errmsg, sizeof(m->errmsg), "%s", ret ? err.msg : "");
	pthread_mutex_unlock(&m->lock);
	mig_notify(m, REQ_INCOMING_DONE);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int hw_migration_incoming(struct migration *m, const char *uri,
			  void (*done)(void *opaque, int ret, const char *msg), void *opaque)
{
	int ret;

	ret = tcp_open(uri, true, &m->listen_fd);
	if (ret) {
		log_err("--incoming %s: %s", uri,
			ret == -EINVAL ? "expected tcp:HOST:PORT" : strerror(-ret));
		return ret;
	}
	m->in_done = done;
	m->in_opaque = opaque;
	ret = -pthread_create(&m->in_thread, NULL, mig_in_thread, m);
	if (ret) {
		close(m->listen_fd);
		m->listen_fd = -1;
		return ret;
	}
	m->in_live = true;
	log_info("waiting for an incoming migration on %s", uri);
	return 0;
}

/* ---- main loop side ----------------------------------------------------------- */

static void mig_finish(struct migration *m)
{
	int ret;

	pthread_join(m->thread, NULL);
	m->thread_live = false;
	pthread_mutex_lock(&m->lock);
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	ret = m->result;
	pthread_mutex_unlock(&m->lock);
	if (!ret) {
		runstate_set(m->rs, RUN_STATE_POSTMIGRATE);
		mig_set_status(m, MIG_COMPLETED);
		log_info("migration completed: downtime %llu us, total %llu ms",
			 (unsigned long long)((m->ack_ns - m->stop_ns) / 1000),
			 (unsigned long long)((m->end_ns - m->start_ns) / 1000000));
	} else {
		if (m->stopped_vm) {
			if (m->was_running)
				runstate_vm_start(m->rs);
			else
				runstate_set(m->rs, RUN_STATE_PAUSED);
		}
		mig_set_status(m, atomic_load(&m->cancel) ? MIG_CANCELLED : MIG_FAILED);
		log_err("migration %s: %s", atomic_load(&m->cancel) ? "cancelled" : "failed",
			m->errmsg);
	}
	pthread_mutex_lock(&m->lock);
	m->downtime_ms = m->stop_ns && m->ack_ns ? (m->ack_ns - m->stop_ns) / 1000000 : 0;
	if (!ret && m->end_ns > m->start_ns + m->setup_ms * 1000000)
		m->mbps = (double)m->transferred * 8 * 1000 /
			  (double)(m->end_ns - m->start_ns - m->setup_ms * 1000000);
	pthread_mutex_unlock(&m->lock);
	mig_event(m, m->status);
}

static void mig_ev_cb(void *opaque, uint32_t events)
{
	struct migration *m = opaque;
	enum mig_req req;
	uint64_t v, stop_ns;
	int ret;

	if (read(m->evfd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&m->lock);
	req = m->req;
	m->req = REQ_NONE;
	pthread_mutex_unlock(&m->lock);
	switch (req) {
	case REQ_NONE:
		if (m->status == MIG_ACTIVE)
			mig_event(m, MIG_ACTIVE);
		break;
	case REQ_STOP:
		m->was_running = runstate_is_running(m->rs);
		stop_ns = clock_ns();
		ret = runstate_vm_stop_force(m->rs, RUN_STATE_FINISH_MIGRATE);
		m->stopped_vm = !ret;
		pthread_mutex_lock(&m->lock);
		m->stop_ns = stop_ns;
		m->stopped_ns = clock_ns();
		m->stop_done = true;
		m->stop_ret = ret;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		break;
	case REQ_DONE:
		mig_finish(m);
		break;
	case REQ_INCOMING_DONE:
		/* Start the guest first: the thread may still be closing the
		 * connection, and joining it is not part of the downtime. */
		v = clock_ns();
		if (m->in_done)
			m->in_done(m->in_opaque, m->in_ret, m->errmsg);
		log_debug("incoming migration: loaded and acknowledged; main loop %llu us later, "
			  "guest started in %llu us",
			  (unsigned long long)((v - m->in_loaded_ns) / 1000),
			  (unsigned long long)((clock_ns() - v) / 1000));
		pthread_join(m->in_thread, NULL);
		m->in_live = false;
		close(m->listen_fd);
		m->listen_fd = -1;
		/* Running on the new host: tell the switches where the MACs are. */
		if (!m->in_ret && m->vm->running)
			virtio_persist_announce(m->vm);
		break;
	}
}

/* ---- QMP ------------------------------------------------------------------------ */

static int qmp_migrate(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;
	const char *uri = json_string_value(json_object_get(args, "uri"));
	char host[256], port[32];
	int r;

	if (m->thread_live)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "There's a migration process in progress");
	if (m->in_live || runstate_check(m->rs, RUN_STATE_INMIGRATE))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Guest is waiting for an incoming migration");
	if (parse_tcp_uri(uri, host, sizeof(host), port, sizeof(port)))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Invalid migration URI '%s' (expected tcp:HOST:PORT)", uri);
	if (runstate_needs_reset(m->rs) || runstate_check(m->rs, RUN_STATE_POSTMIGRATE))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "The VM cannot be migrated in state '%s'",
				     runstate_name(runstate_get(m->rs)));
	free(m->uri);
	m->uri = strdup(uri);
	if (!m->uri)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	m->status = MIG_SETUP;
	m->transferred = m->remaining = m->total = m->dirty_rate = m->rounds = 0;
	m->expected_downtime_ms = m->downtime_ms = m->setup_ms = 0;
	m->round0_bytes = m->round0_ns = m->ack_ns = 0;
	m->mbps = 0;
	m->start_ns = clock_ns();
	m->stop_ns = m->end_ns = 0;
	m->errmsg[0] = 0;
	m->fd = -1;
	m->req = REQ_NONE;
	pthread_mutex_unlock(&m->lock);
	atomic_store(&m->cancel, false);
	m->stopped_vm = false;
	r = -pthread_create(&m->thread, NULL, mig_thread, m);
	if (r) {
		mig_set_status(m, MIG_FAILED);
		return qmp_error_set(err, QMP_ERROR_GENERIC, "cannot start the migration thread");
	}
	m->thread_live = true;
	mig_event(m, MIG_SETUP);
	return 0;
}

static int qmp_migrate_cancel(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;

	if (!m->thread_live)
		return 0;
	atomic_store(&m->cancel, true);
	pthread_mutex_lock(&m->lock);
	if (m->status == MIG_SETUP || m->status == MIG_ACTIVE)
		m->status = MIG_CANCELLING;
	if (m->fd >= 0)
		shutdown(m->fd, SHUT_RDWR);
	pthread_mutex_unlock(&m->lock);
	mig_event(m, MIG_CANCELLING);
	return 0;
}

static int qmp_query_migrate(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;
	uint64_t now = clock_ns();
	json_t *o;

	pthread_mutex_lock(&m->lock);
	if (m->status == MIG_NONE) {
		pthread_mutex_unlock(&m->lock);
		*ret = json_object();
		return 0;
	}
	o = json_pack("{s:s,s:{s:I,s:I,s:I,s:I,s:f,s:I},s:I}", "status",
		      mig_status_name[m->status], "ram", "transferred", (json_int_t)m->transferred,
		      "remaining", (json_int_t)m->remaining, "total", (json_int_t)m->total,
		      "dirty-pages-rate", (json_int_t)m->dirty_rate, "mbps", m->mbps,
		      "dirty-sync-count", (json_int_t)m->rounds, "total-time",
		      (json_int_t)(((m->end_ns ? m->end_ns : now) - m->start_ns) / 1000000));
	if (o && (m->status == MIG_ACTIVE || m->status == MIG_SETUP))
		json_object_set_new(o, "expected-downtime",
				    json_integer((json_int_t)m->expected_downtime_ms));
	if (o && m->status == MIG_COMPLETED) {
		json_object_set_new(o, "downtime", json_integer((json_int_t)m->downtime_ms));
		json_object_set_new(o, "x-downtime-us",
				    json_integer((json_int_t)((m->ack_ns - m->stop_ns) / 1000)));
		json_object_set_new(o, "setup-time", json_integer((json_int_t)m->setup_ms));
	}
	if (o && m->round0_ns) {
		json_t *ram = json_object_get(o, "ram");

		json_object_set_new(ram, "x-round0-bytes", json_integer((json_int_t)m->round0_bytes));
		json_object_set_new(ram, "x-round0-ns", json_integer((json_int_t)m->round0_ns));
		json_object_set_new(ram, "x-round0-bytes-per-second",
				    json_integer((json_int_t)(m->round0_bytes * 1000000000.0 /
							      (double)m->round0_ns)));
	}
	if (o && (m->status == MIG_FAILED || m->status == MIG_CANCELLED) && m->errmsg[0])
		json_object_set_new(o, "error-desc", json_string(m->errmsg));
	pthread_mutex_unlock(&m->lock);
	if (!o)
		return -ENOMEM;
	*ret = o;
	return 0;
}

static int qmp_set_params(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;
	json_t *dl = json_object_get(args, "downtime-limit");
	json_t *bw = json_object_get(args, "max-bandwidth");

	if (dl && (json_integer_value(dl) < 0 || json_integer_value(dl) > 2000000))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
	if (bw && json_integer_value(bw) < 0)
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Parameter 'max_bandwidth' expects a size in bytes per second");
	pthread_mutex_lock(&m->lock);
	if (dl)
		m->downtime_limit_ms = (uint64_t)json_integer_value(dl);
	if (bw)
		m->max_bw = (uint64_t)json_integer_value(bw);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int qmp_query_params(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;

	pthread_mutex_lock(&m->lock);
	*ret = json_pack("{s:I,s:I}", "downtime-limit", (json_int_t)m->downtime_limit_ms,
			 "max-bandwidth", (json_int_t)m->max_bw);
	pthread_mutex_unlock(&m->lock);
	return *ret ? 0 : -ENOMEM;
}

static int qmp_snapshot_save(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct migration *m = opaque;
	const char *path = json_string_value(json_object_get(args, "file"));
	struct vmstate_error verr = {0};
	bool was_running = runstate_is_running(m->rs);
	char *tmp = NULL;
	int fd, r;

	if (m->thread_live || m->in_live)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "a migration is in progress");
	if (runstate_needs_reset(m->rs))
		return qmp_error_set(err, QMP_ERROR_GENERIC, "the VM cannot be saved in state '%s'",
				     runstate_name(runstate_get(m->rs)));
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = qmp_error_set(err, QMP_ERROR_GENERIC, "cannot create '%s': %s", tmp,
				  strerror(errno));
		free(tmp);
		return r;
	}
	if (was_running) {
		r = runstate_vm_stop(m->rs, RUN_STATE_SAVE_VM);
		if (r) {
			close(fd);
			unlink(tmp);
			free(tmp);
			return qmp_error_set(err, QMP_ERROR_GENERIC, "cannot stop the VM");
		}
	}
	r = hw_vm_save(m->vm, fd, &verr);
	if (!r && fsync(fd) < 0)
		r = vmstate_seterr(&verr, -errno, "fsync: %s", strerror(errno));
	if (close(fd) < 0 && !r)
		r = vmstate_seterr(&verr, -errno, "close: %s", strerror(errno));
	if (!r && rename(tmp, path) < 0)
		r = vmstate_seterr(&verr, -errno, "rename to '%s': %s", path, strerror(errno));
	if (r)
		unlink(tmp);
	free(tmp);
	if (was_running)
		runstate_vm_start(m->rs);
	if (r)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "snapshot-save: %s", verr.msg);
	log_info("snapshot saved to %s", path);
	return 0;
}

static const struct qmp_arg migrate_args[] = {
	{"uri", QMP_ARG_STRING, false},
	{"detach", QMP_ARG_BOOL, true},
	{"blk", QMP_ARG_BOOL, true},
	{"inc", QMP_ARG_BOOL, true},
	{NULL, 0, false},
};
static const struct qmp_arg params_args[] = {
	{"downtime-limit", QMP_ARG_INT, true},
	{"max-bandwidth", QMP_ARG_INT, true},
	{NULL, 0, false},
};
static const struct qmp_arg snapshot_args[] = {
	{"file", QMP_ARG_STRING, false},
	{NULL, 0, false},
};

int hw_migration_new(struct vm *vm, struct runstate *rs, struct qmp *qmp, struct migration **out)
{
	static const struct {
		const char *name;
		const struct qmp_arg *args;
		qmp_cmd_fn fn;
	} cmds[] = {
		{"migrate", migrate_args, qmp_migrate},
		{"migrate_cancel", NULL, qmp_migrate_cancel},
		{"query-migrate", NULL, qmp_query_migrate},
		{"migrate-set-parameters", params_args, qmp_set_params},
		{"query-migrate-parameters", NULL, qmp_query_params},
		{"snapshot-save", snapshot_args, qmp_snapshot_save},
	};
	struct migration *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	m->vm = vm;
	m->rs = rs;
	m->qmp = qmp;
	m->fd = m->listen_fd = -1;
	m->downtime_limit_ms = MIG_DEFAULT_DOWNTIME;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->evfd < 0) {
		ret = -errno;
		goto err;
	}
	ret = loop_add_fd(vm->loop, m->evfd, 0x001 /* EPOLLIN */, mig_ev_cb, m);
	if (ret) {
		close(m->evfd);
		m->evfd = -1;
		goto err;
	}
	for (unsigned int i = 0; qmp && i < ARRAY_SIZE(cmds) && !ret; i++)
		ret = qmp_register(qmp, cmds[i].name, cmds[i].args, cmds[i].fn, m);
	if (ret)
		goto err;
	*out = m;
	return 0;
err:
	hw_migration_free(m);
	return ret;
}

void hw_migration_free(struct migration *m)
{
	if (!m)
		return;
	if (m->thread_live) {
		atomic_store(&m->cancel, true);
		pthread_mutex_lock(&m->lock);
		if (m->fd >= 0)
			shutdown(m->fd, SHUT_RDWR);
		m->stop_done = true;
		m->stop_ret = -ECANCELED;
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		if (m->fd >= 0)
			close(m->fd);
	}
	if (m->in_live) {
		shutdown(m->listen_fd, SHUT_RDWR);
		pthread_join(m->in_thread, NULL);
	}
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->evfd >= 0) {
		loop_del_fd(m->vm->loop, m->evfd);
		close(m->evfd);
	}
	if (m->qmp) {
		static const char *const names[] = {
			"migrate",		  "migrate_cancel", "query-migrate",
			"migrate-set-parameters", "query-migrate-parameters", "snapshot-save",
		};

		for (unsigned int i = 0; i < ARRAY_SIZE(names); i++)
			qmp_unregister(m->qmp, names[i]);
	}
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
	free(m->uri);
	free(m);
}
