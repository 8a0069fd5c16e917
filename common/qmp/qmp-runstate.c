/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * qmp-runstate: the run-state commands and events (QEMU's run-state.json):
 * query-status, stop, cont, system_reset, system_powerdown, system_wakeup,
 * quit; events STOP, RESUME, SHUTDOWN, RESET, POWERDOWN, SUSPEND, WAKEUP.
 */
#include <errno.h>
#include <string.h>

#include "common/qmp/qmp-internal.h"
#include "common/runstate/runstate.h"

static int cmd_query_status(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct runstate *rs = opaque;
	enum run_state s = runstate_get(rs);

	*ret = json_pack("{s:s,s:b,s:b}", "status", runstate_name(s), "running",
			 s == RUN_STATE_RUNNING, "singlestep", 0);
	return *ret ? 0 : -ENOMEM;
}

static int cmd_stop(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct runstate *rs = opaque;
	int r = runstate_vm_stop(rs, RUN_STATE_PAUSED);

	if (r < 0)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Failed to stop the VM: %s",
				     strerror(-r));
	return 0;
}

static int cmd_cont(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct runstate *rs = opaque;
	enum run_state s = runstate_get(rs);
	int r;

	if (runstate_needs_reset(rs))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Resetting the Virtual Machine is required");
	/* QEMU: on an incoming VM, "cont" only asks to start once it arrives. */
	if (s == RUN_STATE_INMIGRATE)
		return 0;
	/* COLO is a checkpoint's pause: resuming now would change guest RAM
	 * while it is being copied. The checkpoint resumes the VM itself. */
	if (s == RUN_STATE_COLO)
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "A COLO checkpoint holds the VM; it resumes when the "
				     "checkpoint ends");
	if (s != RUN_STATE_RUNNING && !runstate_transition_valid(s, RUN_STATE_RUNNING))
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "invalid runstate transition: '%s' -> 'running'",
				     runstate_name(s));
	r = runstate_vm_start(rs);
	if (r < 0)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Failed to start the VM: %s",
				     strerror(-r));
	return 0;
}

static int cmd_system_reset(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	runstate_request_reset(opaque, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
	return 0;
}

static int cmd_system_powerdown(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	runstate_request_powerdown(opaque);
	return 0;
}

static int cmd_system_wakeup(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	if (runstate_request_wakeup(opaque) < 0)
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "Unable to wake up: guest is not in suspended state");
	return 0;
}

static int cmd_quit(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	runstate_request_shutdown(opaque, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
	return 0;
}

static void on_event(void *opaque, enum runstate_event ev, enum shutdown_cause cause,
		     enum run_state state)
{
	struct qmp *qmp = opaque;
	json_t *data = NULL;

	if (ev == RUNSTATE_EVENT_SHUTDOWN || ev == RUNSTATE_EVENT_RESET)
		data = json_pack("{s:b,s:s}", "guest", runstate_cause_is_guest(cause), "reason",
				 runstate_cause_name(cause));
	qmp_event(qmp, runstate_event_name(ev), data);
}

static const struct {
	const char *name;
	qmp_cmd_fn fn;
} commands[] = {
    {"query-status", cmd_query_status},
    {"stop", cmd_stop},
    {"cont", cmd_cont},
    {"system_reset", cmd_system_reset},
    {"system_powerdown", cmd_system_powerdown},
    {"system_wakeup", cmd_system_wakeup},
    {"quit", cmd_quit},
};

int qmp_attach_runstate(struct qmp *qmp, struct runstate *rs)
{
	size_t i;
	int ret;

	if (qmp->rs)
		return -EBUSY;
	for (i = 0; i < ARRAY_SIZE(commands); i++) {
		ret = qmp_register(qmp, commands[i].name, NULL, commands[i].fn, rs);
		if (ret)
			goto err;
	}
	ret = runstate_add_hook(rs, on_event, qmp, &qmp->hook);
	if (ret)
		goto err;
	qmp->rs = rs;
	return 0;
err:
	while (i--)
		qmp_unregister(qmp, commands[i].name);
	return ret;
}

void qmp_detach_runstate(struct qmp *qmp)
{
	if (!qmp->rs)
		return;
	runstate_del_hook(qmp->rs, qmp->hook);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		qmp_unregister(qmp, commands[i].name);
	qmp->rs = NULL;
	qmp->hook = NULL;
}
