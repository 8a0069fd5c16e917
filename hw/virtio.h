/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio (1.x, "modern") inside hw: split virtqueues, the virtio-mmio
 * transport (register layout version 2) and the devices on top of it.
 *
 * Layering (like kvmtool): a device fills a const struct virtio_dev_ops and
 * never knows its transport; the transport (virtio-mmio.c) owns the
 * registers, the queues' state, the interrupt line (irqfd) and the device
 * I/O thread that receives queue notifications (ioeventfd) and backend fd
 * events. The queue walker (virtio-queue.c) knows neither: it is driven with
 * a struct guest_mem and is what the unit tests and the fuzzer exercise.
 *
 * Locking: one mutex per transport instance. Register accesses (vCPU
 * threads) and everything the I/O thread does (queue notify, fd callbacks)
 * run with it held, so device callbacks never need their own lock for
 * queue or register state. Only cross-thread entry points (net hook inject)
 * take a separate lock.
 *
 * State that a checkpoint must carry is kept in plain structs:
 * struct virtq_state (per queue), struct virtio_mmio_state (transport) and
 * each device's own state struct (virtio-net.c, virtio-blk.c).
 */
#ifndef COLOVM_HW_VIRTIO_H
#define COLOVM_HW_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "hw/internal.h"

/* ---- spec constants --------------------------------------------------------- */

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLK 2

#define VIRTIO_STATUS_ACKNOWLEDGE	 0x01
#define VIRTIO_STATUS_DRIVER		 0x02
#define VIRTIO_STATUS_DRIVER_OK		 0x04
#define VIRTIO_STATUS_FEATURES_OK	 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED		 0x80

#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX	    29
#define VIRTIO_F_VERSION_1	    32

#define VIRTQ_DESC_F_NEXT	   1
#define VIRTQ_DESC_F_WRITE	   2
#define VIRTQ_DESC_F_INDIRECT	   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY	   1

#define VIRTIO_INT_USED	  0x1
#define VIRTIO_INT_CONFIG 0x2

/* virtio-mmio registers (version 2). */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_SHM_LEN_LOW		0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH	0x0b4
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC  0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x4d564f43 /* "COVM" */
#define VIRTIO_MMIO_SIZE   0x200
#define VIRTIO_MMIO_STRIDE 0x1000

#define VIRTQ_NUM_MAX	   256
#define VIRTIO_MAX_QUEUES  2
#define VIRTIO_MAX_DEVICES 10 /* IRQ pins 5,6,7,9..15 */

/* ---- split virtqueue ------------------------------------------------------- */

/* What a checkpoint carries for one queue. */
struct virtq_state {
	uint16_t num; /* size the driver chose */
	bool ready;
	uint64_t desc, avail, used; /* guest-physical ring addresses */
	uint16_t last_avail;	    /* next avail ring slot the device reads */
	uint16_t used_idx;	    /* used idx as published to the driver */
};

struct virtq {
	struct virtq_state s;
	/* set from the negotiated features when the queue starts */
	bool event_idx;
	bool indirect;
	bool broken;	  /* hit a bad ring or descriptor: device must be reset */
	char why[96];	  /* the reason, for the log line */
	uint16_t pending; /* used entries written but not yet published */
	struct guest_mem *mem;
	/* host views of the rings, checked against guest RAM at start */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
};

#define VIRTQ_MAX_SEGS VIRTQ_NUM_MAX

/* One descriptor chain, as the device sees it: device-readable segments
 * first (out), then device-writable ones (in). */
struct virtq_elem {
	uint16_t head;
	unsigned int nout, nin;
	uint64_t out_len, in_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t gpa[VIRTQ_MAX_SEGS];
};

/* Bind to guest memory and check the ring addresses; -EINVAL (and broken)
 * if the rings are misaligned, not in RAM, or num is not a power of two
 * in 1..VIRTQ_NUM_MAX. */
int virtq_start(struct virtq *q, struct guest_mem *mem, bool event_idx, bool indirect);
/* A queue the driver just made ready: clear a NO_NOTIFY left in its used
 * ring. Not on restore: guest RAM is then exactly what was saved (the
 * queue is kicked when the VM resumes, which re-arms notifications). */
void virtq_enable_notify_fresh(struct virtq *q);
void virtq_stop(struct virtq *q);
/* 1: *elem holds the next chain; 0: queue empty; -EIO: the queue broke. */
int virtq_pop(struct virtq *q, struct virtq_elem *elem);
/* How many chains the driver has made available (0 if broken). */
uint16_t virtq_avail_pending(struct virtq *q);
/* Put the avail entry back (the device could not use it yet). */
void virtq_unpop(struct virtq *q);
/* Add a used entry (not visible to the driver before virtq_flush). */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Publish the used index; true if the driver wants an interrupt. */
bool virtq_flush(struct virtq *q);
/* The device will look at the queue without being notified: ask the driver
 * not to (VIRTQ_USED_F_NO_NOTIFY; with event idx, avail_event stays behind).
 * Every disable must be followed by virtq_enable_notify before the device
 * stops looking. */
void virtq_disable_notify(struct virtq *q);
/* Tell the driver to notify again from the current avail index (clear
 * NO_NOTIFY, or set avail_event). Returns true if more buffers arrived
 * meanwhile (process them). */
bool virtq_enable_notify(struct virtq *q);
/* Copy into the chain's device-writable part from offset off; marks dirty. */
uint64_t virtq_elem_write(struct virtq *q, const struct virtq_elem *e, uint64_t off,
			  const void *src, uint64_t len);
/* Record that the first len bytes of the writable part were written. */
void virtq_elem_mark_dirty(struct virtq *q, const struct virtq_elem *e, uint64_t len);
/* Copy out of the chain's device-readable part from offset off. */
uint64_t virtq_elem_read(const struct virtq_elem *e, uint64_t off, void *dst, uint64_t len);

/* ---- transport ------------------------------------------------------------ */

struct virtio_mmio;

struct virtio_dev_ops {
	const char *name; /* "virtio-net": prefixes log lines */
	uint32_t device_id;
	unsigned int nqueues;
	/* Device feature bits (the transport adds VERSION_1, EVENT_IDX, INDIRECT). */
	uint64_t (*features)(void *dev);
	/* Device config space, offset from 0x100; len 1, 2, 4 or 8. */
	void (*config_read)(void *dev, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint32_t off, const uint8_t *data, uint32_t len);
	/* The driver set DRIVER_OK: start using queues and backends. */
	void (*activate)(void *dev, uint64_t features);
	/* Buffers were made available on queue q (I/O thread). */
	void (*queue_notify)(void *dev, unsigned int q);
	/* The driver reset the device: drop in-flight state. */
	void (*reset)(void *dev);
};

/* Transport register state (checkpointed). */
struct virtio_mmio_state {
	uint32_t status;
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	uint32_t interrupt_status;
	uint32_t config_generation;
};

struct virtio_mmio {
	struct virtio_mmio_state s;
	struct virtq q[VIRTIO_MAX_QUEUES];
	const struct virtio_dev_ops *ops;
	void *dev;
	struct guest_mem *mem;
	pthread_mutex_t lock;
	uint64_t base;
	unsigned int gsi;
	int vm_fd;			/* -1: no KVM (unit tests) */
	int irq_fd;			/* eventfd bound to the GSI with KVM_IRQFD */
	int kick_fd[VIRTIO_MAX_QUEUES]; /* ioeventfds on QueueNotify */
	bool kick_in_kernel;
	int epoll_fd;
	int wake_fd; /* stop/resume the I/O thread */
	pthread_t thread;
	bool thread_started;
	bool paused;
	/* Restored with InterruptStatus set: the line is up, pulse it again
	 * at the resume (the irqchip's own state may predate the pulse). */
	bool irq_on_resume;
	_Atomic bool stop;
};

/* Callback for an fd a device watches on the I/O thread (lock held). */
typedef void (*virtio_fd_cb)(void *opaque, uint32_t events);

/* vm_fd < 0: no KVM (interrupts are counted on irq_fd only, notifications
 * go through virtio_mmio_access). The I/O thread starts here. */
int virtio_mmio_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		       const struct virtio_dev_ops *ops, void *dev, struct virtio_mmio **out);
void virtio_mmio_free(struct virtio_mmio *t);
/* A register access (the MMIO handler; tests call it directly). */
void virtio_mmio_access(struct virtio_mmio *t, uint64_t off, uint8_t *data, uint32_t len,
			bool is_write);
/* Stop processing (checkpoint): on return the I/O thread touches no guest
 * RAM until virtio_mmio_resume. */
void virtio_mmio_pause(struct virtio_mmio *t);
void virtio_mmio_resume(struct virtio_mmio *t);

/* For devices (called with the lock held, i.e. from their callbacks). */
struct virtq *virtio_mmio_queue(struct virtio_mmio *t, unsigned int idx);
/* Whether queues may be processed: DRIVER_OK, not failed, not paused. */
bool virtio_mmio_active(const struct virtio_mmio *t);
/* After virtq_flush() said so: raise the used-buffer interrupt. */
void virtio_mmio_notify(struct virtio_mmio *t);
/* Flush q and interrupt if the driver wants it; also handles a broken queue. */
void virtio_mmio_complete(struct virtio_mmio *t, struct virtq *q);
/* Set DEVICE_NEEDS_RESET, log why once, raise a config interrupt. */
void virtio_mmio_fail(struct virtio_mmio *t, const char *why);
void virtio_mmio_config_changed(struct virtio_mmio *t);
/* Watch fd on the I/O thread; events 0 pauses watching. */
int virtio_mmio_watch_fd(struct virtio_mmio *t, int fd, uint32_t events, virtio_fd_cb cb,
			 void *opaque);
int virtio_mmio_modify_fd(struct virtio_mmio *t, int fd, uint32_t events);
void virtio_mmio_unwatch_fd(struct virtio_mmio *t, int fd);

/* ---- devices ---------------------------------------------------------------- */

/* virtio-net header (virtio 1.x: always with num_buffers). */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

/* A network backend: where guest frames go and where received ones come from.
 * Frames are plain Ethernet frames (no virtio-net header). */
struct net_backend;
struct net_backend_ops {
	const char *name;
	/* Send one frame; -EAGAIN if the backend is full (frame dropped, counted). */
	int (*send)(struct net_backend *be, const struct iovec *iov, unsigned int iovcnt);
	/* Receive one frame into buf; its length, or -EAGAIN if none waits. */
	ssize_t (*recv)(struct net_backend *be, uint8_t *buf, size_t len);
	/* fd to poll for readability (-1: frames are never received). */
	int (*fd)(struct net_backend *be);
	void (*free)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
};

int net_tap_open(const char *ifname, struct net_backend **out);
int net_null_open(struct net_backend **out);

struct net_spec {
	char kind[8];  /* "tap", "socket", "hook" */
	char arg[108]; /* ifname or path */
	uint8_t mac[6];
	bool has_mac;
};

struct blk_spec {
	char path[4096];
	bool readonly;
	bool direct;
	bool replicate;
	unsigned int index; /* the disk's number (set by the VM, not parsed) */
};

/* Parse --net / --disk option values; -EINVAL with a message in err. */
int net_spec_parse(const char *s, struct net_spec *out, char *err, size_t errlen);
int blk_spec_parse(const char *s, struct blk_spec *out, char *err, size_t errlen);

struct virtio_net;
struct virtio_blk;

/* What a checkpoint carries of each device (besides the transport's state;
 * descriptions in virtio-persist.c). */
struct virtio_net_state {
	uint8_t mac[6];
	uint16_t link_status;
	uint64_t features;
};

struct virtio_blk_state {
	uint64_t capacity; /* sectors */
	uint64_t features;
};

/* Backend ownership passes to the device (freed with it). */
int virtio_net_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		      const uint8_t mac[6], struct net_backend *be, struct virtio_net **out);
void virtio_net_free(struct virtio_net *n);
/* Machine reset: as if the driver had written 0 to Status. */
void virtio_mmio_reset(struct virtio_mmio *t);
struct virtio_mmio *virtio_net_transport(struct virtio_net *n);
void virtio_net_set_hook(struct virtio_net *n, const struct net_hook_ops *ops, void *opaque);
int virtio_net_inject(struct virtio_net *n, const void *frame, size_t len);
int virtio_net_send(struct virtio_net *n, const void *frame, size_t len);
void virtio_net_stats(struct virtio_net *n, struct hw_net_stats *out);

int virtio_blk_create(struct guest_mem *mem, int vm_fd, uint64_t base, unsigned int gsi,
		      const struct blk_spec *spec, struct virtio_blk **out);
void virtio_blk_free(struct virtio_blk *b);
struct virtio_mmio *virtio_blk_transport(struct virtio_blk *b);
/* Replicated disks (hw.h; the mode switches take the transport lock). */
bool virtio_blk_replicated(const struct virtio_blk *b);
bool virtio_blk_readonly(const struct virtio_blk *b);
uint64_t virtio_blk_bytes(const struct virtio_blk *b);
void virtio_blk_set_tap(struct virtio_blk *b, hw_disk_tap tap, void *opaque);
int virtio_blk_pread(struct virtio_blk *b, void *buf, size_t len, uint64_t off);
int virtio_blk_pwrite(struct virtio_blk *b, const void *buf, size_t len, uint64_t off);
int virtio_blk_overlay_start(struct virtio_blk *b);
uint64_t virtio_blk_overlay_sectors(struct virtio_blk *b);
int virtio_blk_overlay_drop(struct virtio_blk *b);
int virtio_blk_overlay_merge(struct virtio_blk *b, uint64_t *merged);
uint64_t virtio_blk_digest(struct virtio_blk *b, int *err);

/* ---- checkpoint accessors (virtio-persist.c) --------------------------------- */

/* Transport and device features offered to the driver. */
uint64_t virtio_mmio_offered_features(struct virtio_mmio *t);
struct virtio_net_state *virtio_net_get_state(struct virtio_net *n);
/* Copy the frames waiting for injection, oldest first, into buf (cap bytes,
 * lens[i] each, at most maxn frames) without taking them off the queue;
 * -ENOSPC if not all of them fit (*nframes, *nbytes: what was copied). */
int virtio_net_inject_copy(struct virtio_net *n, uint8_t *buf, size_t cap, uint32_t *lens,
			   unsigned int maxn, unsigned int *nframes, size_t *nbytes);
/* Drop every frame waiting for injection (a restore replaces them). */
void virtio_net_inject_clear(struct virtio_net *n);
struct virtio_blk_state *virtio_blk_get_state(struct virtio_blk *b);
/* fdatasync the image (0 for a read-only disk). */
int virtio_blk_flush(struct virtio_blk *b);

#endif
