/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qmp_fuzz: arbitrary bytes from a client into the QMP input parser and
 * dispatcher, through a real socket and the main loop. The first byte picks
 * whether the client negotiates capabilities first (reaching every command)
 * and how the rest is cut into writes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct loop *loop;
static struct runstate *rs;
static struct qmp *qmp;

static int noop_handler(void *opaque, bool running, enum run_state state)
{
	return 0;
}

static void drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

static void pump(int fd)
{
	for (int i = 0; i < 4; i++) {
		loop_run_once(loop, 0);
		drain(fd);
	}
}

static void setup(void)
{
	log_set_level(LOG_ERROR);
	if (loop_new(&loop) || runstate_new(loop, RUN_STATE_PRELAUNCH, &rs) ||
	    runstate_add_handler(rs, 0, noop_handler, NULL, NULL) || runstate_vm_start(rs) ||
	    qmp_new(loop, &qmp) || qmp_attach_runstate(qmp, rs))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\n";
	size_t chunk, off = 0;
	int sv[2];

	if (!loop)
		setup();
	if (size < 1)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	if (qmp_add_client(qmp, sv[0]) < 0) {
		close(sv[1]);
		return 0;
	}
	if (data[0] & 1)
		send(sv[1], caps, sizeof(caps) - 1, MSG_NOSIGNAL);
	chunk = (size_t)(data[0] >> 1) + 1;
	data++;
	size--;
	while (off < size) {
		ssize_t n =
		    send(sv[1], data + off, MIN(chunk, size - off), MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN)
			break; /* the server closed us (limit reached) */
		if (n > 0)
			off += (size_t)n;
		pump(sv[1]);
	}
	pump(sv[1]);
	/* Apply what the commands requested, then put the VM back running. */
	runstate_main_loop_should_exit(rs);
	close(sv[1]);
	while (qmp_client_count(qmp))
		loop_run_once(loop, 0);
	if (!runstate_is_running(rs)) {
		runstate_vm_stop_force(rs, RUN_STATE_PAUSED);
		if (runstate_needs_reset(rs) || runstate_vm_start(rs))
			runstate_set(rs, RUN_STATE_PRELAUNCH), runstate_vm_start(rs);
	}
	return 0;
}
