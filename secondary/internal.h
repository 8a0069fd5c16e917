/* SPDX-License-Identifier: GPL-2.0-only */
/* secondary/ internals: the COLO packet path (net.c), for colo.c, and what
 * colo.c shares with incoming.c. */
#ifndef COLOVM_SECONDARY_INTERNAL_H
#define COLOVM_SECONDARY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

struct vm;
struct sc_net;
struct transport_channel;
typedef struct json_t json_t;
typedef struct Colovm__Transport__Packet Colovm__Transport__Packet;

/* Hooks on every virtio-net device of vm: until attached, the guest's
 * frames go nowhere and its own wire's frames are dropped. */
int sc_net_new(struct vm *vm, struct sc_net **out);
/* Hooks removed. */
void sc_net_free(struct sc_net *n);
/* Paired: the guest's frames go (rewritten) to the primary over ch. */
void sc_net_attach(struct sc_net *n, struct transport_channel *ch);
/* The pair broke (before ch is closed): the guest's frames go to its own
 * wire, and the wire's frames to the guest. */
void sc_net_failover(struct sc_net *n);
/* A Packet from the primary (a frame its guest received): rewritten, into
 * this guest's RX. -EPROTO: not a mirrored frame of a port this VM has. */
int sc_net_input(struct sc_net *n, Colovm__Transport__Packet *pk);
/* A checkpoint was loaded: both guests share sequence numbers again. */
void sc_net_checkpoint(struct sc_net *n);
/* query-colo-stats "network" (any thread). */
json_t *sc_net_stats(struct sc_net *n);
/* A unit was applied: offs[port] (noffs of them, from its last DeviceState)
 * are the offsets the primary applies at its wire (compare_rewrite_save),
 * added to this side's at failover. noffs 0: none. -EPROTO: malformed. */
typedef struct ProtobufCBinaryData ProtobufCBinaryData;
int sc_net_inherit(struct sc_net *n, const ProtobufCBinaryData *offs, size_t noffs);
/* After failover: the rewriters (one per port, into rw[0..max)) belong to
 * the caller from now on; these hooks stay until the caller replaces them
 * (at once), sc_net_free leaves hooks and rewriters alone. The number of
 * ports, -EBUSY before failover or when handed already. */
struct compare_rewrite;
int sc_net_handover(struct sc_net *n, struct compare_rewrite **rw, unsigned int max);

/*
 * disk.c: replicated disks (see there). The COLO thread calls all but
 * stats. new: *out NULL when the VM replicates no disk (every call takes
 * NULL; a DiskWrite then is -EPROTO). write: a DiskWrite, into the image
 * (first sync) or the buffer. first_done: the first sync is complete.
 * commit: a checkpoint is complete: the buffer into the images, flushed,
 * the overlays emptied. end: the pair is over; merge: the overlays go into
 * the images (the guest runs on), else they are dropped. Errors are this
 * side's own (err says which).
 */
struct sc_disk;
struct vmstate_error;
typedef struct Colovm__Transport__DiskWrite Colovm__Transport__DiskWrite;
typedef struct Colovm__Transport__Msg Colovm__Transport__Msg;
/* mem_max: bytes of buffered writes kept in memory (the rest: a file). */
int sd_disk_new(struct vm *vm, uint64_t mem_max, struct sc_disk **out);
void sd_disk_free(struct sc_disk *d);
/* First sync: straight into the image. */
int sd_disk_sync_write(struct sc_disk *d, const Colovm__Transport__DiskWrite *w,
		       struct vmstate_error *err);
/* Protected: buffered for the next commit; takes *m (a DiskWrite) when it
 * keeps it in memory (*m NULL then), else copies it to the log. */
int sd_disk_buffer(struct sc_disk *d, Colovm__Transport__Msg **m, struct vmstate_error *err);
int sd_disk_first_done(struct sc_disk *d, struct vmstate_error *err);
int sd_disk_commit(struct sc_disk *d, struct vmstate_error *err);
void sd_disk_end(struct sc_disk *d, bool merge);
/* query-colo-stats "disk" (any thread; new reference; NULL: none). */
json_t *sd_disk_stats(struct sc_disk *d);

/* incoming.c: why transport_accept() refused a peer, for a person, in buf
 * (returned): its key (who: "the source", "the primary"), its handshake
 * (what it is not: "a colovm migration"), or errno. */
const char *sc_accept_error(int ret, const char *who, const char *what, char *buf, size_t len);

#endif
