/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The VM under common/runstate (hw.h "the run state"): the glue every role
 * needs between the run state and the vCPUs, once, here.
 *
 *   run state stops (any reason)   -> hw_vm_pause: every vCPU parked
 *   run state starts               -> hw_vm_resume
 *   reset notifier (system_reset)  -> hw_vm_reset
 *   powerdown notifier             -> the ACPI power button is pressed
 *     (system_powerdown, SIGTERM)     (acpi-ged.c)
 *   guest event on a vCPU thread   -> recorded, and a shutdown or reset
 *                                     *request* (the main loop applies it)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/runstate/runstate.h"
#include "hw/internal.h"

struct hw_runstate {
	struct vm *vm;
	struct runstate *rs;
	bool reboot;
	struct runstate_handler *handler;
	struct runstate_notifier *notifier;
	struct runstate_notifier *powerdown;
	_Atomic int event; /* -1: none, else enum vm_event */
	_Atomic int code;
};

/* vCPU thread context: only record and request (the main loop applies). */
static void on_vm_event(void *opaque, enum vm_event ev, int code)
{
	struct hw_runstate *h = opaque;

	atomic_store(&h->code, code);
	atomic_store(&h->event, (int)ev);
	switch (ev) {
	case VM_EVENT_RESET:
		/* By default a guest reset ends the run (status 0), as with
		 * QEMU's -no-reboot; reboot reboots it (QMP system_reset
		 * always reboots). */
		if (h->reboot)
			runstate_request_reset(h->rs, SHUTDOWN_CAUSE_GUEST_RESET);
		else
			runstate_request_shutdown(h->rs, SHUTDOWN_CAUSE_GUEST_RESET);
		break;
	case VM_EVENT_INTERNAL_ERROR:
		runstate_request_shutdown(h->rs, SHUTDOWN_CAUSE_HOST_ERROR);
		break;
	default:
		runstate_request_shutdown(h->rs, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
		break;
	}
}

/* Reset notifier: the machine reset itself (QMP system_reset, reboot). */
static void on_reset(void *opaque, enum shutdown_cause cause)
{
	struct hw_runstate *h = opaque;

	atomic_store(&h->event, -1); /* a reset that reboots does not end the run */
	if (hw_vm_reset(h->vm))
		runstate_request_shutdown(h->rs, SHUTDOWN_CAUSE_HOST_ERROR);
}

/* Powerdown notifier: press the power button; the guest decides. */
static void on_powerdown(void *opaque, enum shutdown_cause cause)
{
	struct hw_runstate *h = opaque;

	(void)cause;
	log_info("power button pressed");
	acpi_ged_press(h->vm);
}

/* Change-state handler: park every vCPU on stop, let them run on start. */
static int on_change_state(void *opaque, bool running, enum run_state state)
{
	struct hw_runstate *h = opaque;

	return running ? hw_vm_resume(h->vm) : hw_vm_pause(h->vm);
}

int hw_runstate_attach(struct vm *vm, struct runstate *rs, bool reboot, struct hw_runstate **out)
{
	struct hw_runstate *h = calloc(1, sizeof(*h));
	int ret;

	if (!h)
		return -ENOMEM;
	h->vm = vm;
	h->rs = rs;
	h->reboot = reboot;
	atomic_init(&h->event, -1);
	ret = runstate_add_handler(rs, 0, on_change_state, h, &h->handler);
	if (!ret)
		ret = runstate_add_notifier(rs, RUNSTATE_NOTIFY_RESET, on_reset, h, &h->notifier);
	if (!ret)
		ret = runstate_add_notifier(rs, RUNSTATE_NOTIFY_POWERDOWN, on_powerdown, h,
					    &h->powerdown);
	if (ret) {
		hw_runstate_detach(h);
		return ret;
	}
	/* The vCPUs have not run yet: nothing reads these concurrently. */
	vm->event_cb = on_vm_event;
	vm->event_opaque = h;
	*out = h;
	return 0;
}

int hw_runstate_take_event(struct hw_runstate *h, int *code)
{
	int ev = atomic_exchange(&h->event, -1);

	*code = atomic_load(&h->code);
	return ev;
}

void hw_runstate_detach(struct hw_runstate *h)
{
	if (!h)
		return;
	if (h->handler)
		runstate_del_handler(h->rs, h->handler);
	if (h->notifier)
		runstate_del_notifier(h->rs, h->notifier);
	if (h->powerdown)
		runstate_del_notifier(h->rs, h->powerdown);
	free(h);
}
