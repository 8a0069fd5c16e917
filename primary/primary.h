/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * primary: the sending side of the pair. Today: live migration (the
 * source) and snapshot-save; next: the COLO checkpoint loop, which starts
 * with the same live migration as its first sync.
 *
 * It drives the layers below it and owns what they must not: the precopy
 * loop (hw.h's migratable surface: dirty log, device state, disks), the
 * channel (transport/, the checkpoint protocol in transport/transport.h),
 * the run-state moves (running -> finish-migrate -> postmigrate, save-vm)
 * and the QMP commands:
 *
 *   migrate {uri: tcp:HOST:PORT | rdma:HOST:PORT}   (QEMU's shape)
 *   migrate_cancel, query-migrate, migrate-set-parameters {downtime-limit,
 *   max-bandwidth}, query-migrate-parameters, snapshot-save {file}
 *   event MIGRATION {status}
 *
 * Threads: QMP and the run-state moves on the main loop; the migration
 * streams on its own thread while the vCPUs run, asks the main loop (an
 * eventfd) to stop the VM and to finish, and waits on a condition variable.
 */
#ifndef COLOVM_PRIMARY_H
#define COLOVM_PRIMARY_H

struct vm;
struct loop;
struct runstate;
struct qmp;
struct transport_key;
struct primary;

struct primary_opts {
	/*
	 * Pre-shared key for the channel (--peer-key). NULL: the public
	 * key (transport_key_public()): every frame is
	 * still checked, but anyone who can reach the port could send or
	 * receive the guest; for trusted links only.
	 */
	const struct transport_key *key;
};

/* Register the QMP commands (qmp may be NULL: none) on loop's thread. */
int primary_new(struct vm *vm, struct runstate *rs, struct loop *loop, struct qmp *qmp,
		const struct primary_opts *opts, struct primary **out);
/* Cancels a migration in progress (the guest goes on here) and unregisters. */
void primary_free(struct primary *p);

#endif
