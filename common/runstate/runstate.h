/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * runstate: the life cycle of the VM, after QEMU's runstate machine
 * (shared/reference/runstate-qemu-6.x.txt): the run states and the table of
 * valid transitions between them (COLO included), requests that any thread
 * may raise, the main-loop step that applies them, change-state handlers,
 * notifiers and an event hook for the management socket.
 *
 * Threads:
 *
 *   any thread          main loop thread
 *   ----------          ----------------
 *   runstate_request_*  ──kick──►  runstate_main_loop_should_exit()
 *   runstate_get()                   applies: debug, suspend, shutdown, reset,
 *                                    wakeup, powerdown, vmstop (that order)
 *                                  runstate_set(), runstate_vm_stop(),
 *                                  runstate_vm_start(), add/del handlers
 *
 * The request functions take no lock (atomics and an eventfd write), so they
 * are safe from vCPU threads and from signal handlers. Everything else that
 * changes state runs on the main loop thread only. Handlers and notifiers must
 * not add or remove handlers or notifiers while they run.
 *
 * An invalid transition returns -EINVAL and logs "invalid runstate
 * transition: 'FROM' -> 'TO'"; nothing here aborts.
 */
#ifndef COLOVM_RUNSTATE_H
#define COLOVM_RUNSTATE_H

#include <stdbool.h>

#include "common/common.h"

/* QEMU's RunState, in QAPI order. */
enum run_state {
	RUN_STATE_DEBUG,
	RUN_STATE_INMIGRATE,
	RUN_STATE_INTERNAL_ERROR,
	RUN_STATE_IO_ERROR,
	RUN_STATE_PAUSED,
	RUN_STATE_POSTMIGRATE,
	RUN_STATE_PRELAUNCH,
	RUN_STATE_FINISH_MIGRATE,
	RUN_STATE_RESTORE_VM,
	RUN_STATE_RUNNING,
	RUN_STATE_SAVE_VM,
	RUN_STATE_SHUTDOWN,
	RUN_STATE_SUSPENDED,
	RUN_STATE_WATCHDOG,
	RUN_STATE_GUEST_PANICKED,
	RUN_STATE_COLO,
	RUN_STATE_PRECONFIG,
	RUN_STATE__MAX,
};

/* QEMU's ShutdownCause: why a shutdown or reset was requested. */
enum shutdown_cause {
	SHUTDOWN_CAUSE_NONE,		      /* no shutdown/reset pending */
	SHUTDOWN_CAUSE_HOST_ERROR,	      /* an error in the VMM */
	SHUTDOWN_CAUSE_HOST_QMP_QUIT,	      /* QMP "quit" */
	SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET, /* QMP "system_reset" */
	SHUTDOWN_CAUSE_HOST_SIGNAL,	      /* SIGTERM, SIGINT, SIGHUP */
	SHUTDOWN_CAUSE_HOST_UI,		      /* a user interface */
	SHUTDOWN_CAUSE_GUEST_SHUTDOWN,	      /* the guest powered off */
	SHUTDOWN_CAUSE_GUEST_RESET,	      /* the guest reset itself */
	SHUTDOWN_CAUSE_GUEST_PANIC,	      /* the guest panicked */
	SHUTDOWN_CAUSE_SUBSYSTEM_RESET,	      /* a part of the VM reset, not the whole */
	SHUTDOWN_CAUSE__MAX,
};

/* What the event hook reports (QMP event names in comments). */
enum runstate_event {
	RUNSTATE_EVENT_STOP,	  /* STOP: the VM stopped running */
	RUNSTATE_EVENT_RESUME,	  /* RESUME: the VM runs again */
	RUNSTATE_EVENT_SHUTDOWN,  /* SHUTDOWN {guest, reason} */
	RUNSTATE_EVENT_RESET,	  /* RESET {guest, reason} */
	RUNSTATE_EVENT_POWERDOWN, /* POWERDOWN: power button pressed */
	RUNSTATE_EVENT_SUSPEND,	  /* SUSPEND */
	RUNSTATE_EVENT_WAKEUP,	  /* WAKEUP */
};

/* Notifier lists, one per kind. */
enum runstate_notify {
	RUNSTATE_NOTIFY_EXIT,	   /* once, from runstate_exit() or runstate_free() */
	RUNSTATE_NOTIFY_SHUTDOWN,  /* a shutdown request is being applied */
	RUNSTATE_NOTIFY_RESET,	   /* reset the machine (the VMM's reset goes here) */
	RUNSTATE_NOTIFY_POWERDOWN, /* press the power button (e.g. ACPI) */
	RUNSTATE_NOTIFY_SUSPEND,   /* the VM was suspended */
	RUNSTATE_NOTIFY_WAKEUP,	   /* the VM wakes up */
	RUNSTATE_NOTIFY__MAX,
};

/* runstate_set_flags(): QEMU's -no-reboot and -no-shutdown. */
#define RUNSTATE_NO_REBOOT   (1u << 0) /* a reset request (other than subsystem) shuts down */
#define RUNSTATE_NO_SHUTDOWN (1u << 1) /* a shutdown request stops in SHUTDOWN, no exit */

struct runstate;
struct runstate_handler;
struct runstate_notifier;
struct runstate_hook;

/*
 * Change-state handler: called with running=false (in reverse priority
 * order) before the VM stops, and with running=true (in priority order)
 * before it is reported running. state is the state being entered. Return 0
 * or -errno: a failure undoes the handlers that already ran and the
 * transition does not happen.
 */
typedef int (*runstate_change_cb)(void *opaque, bool running, enum run_state state);
/* Notifier: cause is the shutdown/reset cause, SHUTDOWN_CAUSE_NONE otherwise. */
typedef void (*runstate_notify_cb)(void *opaque, enum shutdown_cause cause);
/* Event hook: cause is set for SHUTDOWN and RESET, state is the state after the event. */
typedef void (*runstate_event_cb)(void *opaque, enum runstate_event ev, enum shutdown_cause cause,
				  enum run_state state);

/* ---- names and the transition table (pure functions) --------------------- */

/* QMP name ("running", "finish-migrate", ...); "unknown" when out of range. */
const char *runstate_name(enum run_state state);
int runstate_from_name(const char *name, enum run_state *out);
/* QMP ShutdownCause name ("host-qmp-quit", ...). */
const char *runstate_cause_name(enum shutdown_cause cause);
/* Was it the guest's doing? (QEMU's shutdown_caused_by_guest) */
bool runstate_cause_is_guest(enum shutdown_cause cause);
/* Is from -> to in the transition table? (from == to is not in the table) */
bool runstate_transition_valid(enum run_state from, enum run_state to);
/* QMP event name of ev ("STOP", ...). */
const char *runstate_event_name(enum runstate_event ev);

/* ---- the state machine -------------------------------------------------- */

/* loop: woken by requests (may be NULL when nobody waits). initial is
 * RUN_STATE_PRELAUNCH normally (QEMU: PRECONFIG with --preconfig). */
int runstate_new(struct loop *loop, enum run_state initial, struct runstate **out);
/* Runs the exit notifiers if runstate_exit() did not, then frees. */
void runstate_free(struct runstate *rs);
void runstate_set_flags(struct runstate *rs, unsigned int flags);

/* Any thread. */
enum run_state runstate_get(struct runstate *rs);
bool runstate_check(struct runstate *rs, enum run_state state);
bool runstate_is_running(struct runstate *rs);
/* INTERNAL_ERROR or SHUTDOWN: "cont" must be refused until a reset. */
bool runstate_needs_reset(struct runstate *rs);

/* Main loop thread. Move to state (no handlers run). Same state: 0. */
int runstate_set(struct runstate *rs, enum run_state state);
/*
 * Stop the VM into state: when running, the change-state handlers run in
 * reverse priority order (the VMM's handler parks every vCPU), the state
 * changes and STOP is emitted. When not running, nothing happens (QEMU's
 * vm_stop). -EINVAL if running -> state is not in the table.
 */
int runstate_vm_stop(struct runstate *rs, enum run_state state);
/* As runstate_vm_stop(), but when already stopped still moves to state
 * (QEMU's vm_stop_force_state; e.g. PAUSED -> COLO for a checkpoint). */
int runstate_vm_stop_force(struct runstate *rs, enum run_state state);
/* Start (resume) the VM: handlers run in priority order, state becomes
 * RUNNING, RESUME is emitted. Already running: 0. */
int runstate_vm_start(struct runstate *rs);

/* ---- requests: any thread, async-signal-safe --------------------------- */

void runstate_request_shutdown(struct runstate *rs, enum shutdown_cause cause);
/* A shutdown from a signal handler: cause host-signal, reported at exit. */
void runstate_request_shutdown_signal(struct runstate *rs, int signo);
void runstate_request_reset(struct runstate *rs, enum shutdown_cause cause);
void runstate_request_powerdown(struct runstate *rs);
void runstate_request_debug(struct runstate *rs);
/* Ignored when already suspended. */
void runstate_request_suspend(struct runstate *rs);
/* -EBUSY unless the VM is suspended. */
int runstate_request_wakeup(struct runstate *rs);
/* Stop into state (e.g. RUN_STATE_INTERNAL_ERROR from a vCPU thread). */
void runstate_request_vmstop(struct runstate *rs, enum run_state state);

/*
 * The main loop step (QEMU's main_loop_should_exit): apply pending requests.
 * Returns true when a shutdown was applied and the process should exit; the
 * cause is then runstate_exit_cause(). Use as:
 *
 *	while (!runstate_main_loop_should_exit(rs))
 *		loop_run_once(loop, -1);
 */
bool runstate_main_loop_should_exit(struct runstate *rs);
enum shutdown_cause runstate_exit_cause(struct runstate *rs);
/* Signal number of a runstate_request_shutdown_signal() shutdown, else 0. */
int runstate_exit_signal(struct runstate *rs);

/* ---- handlers, notifiers, event hooks (main loop thread) --------------- */

/* Lower priority runs first when the VM starts and last when it stops. */
int runstate_add_handler(struct runstate *rs, int priority, runstate_change_cb cb, void *opaque,
			 struct runstate_handler **out);
void runstate_del_handler(struct runstate *rs, struct runstate_handler *h);

int runstate_add_notifier(struct runstate *rs, enum runstate_notify kind, runstate_notify_cb cb,
			  void *opaque, struct runstate_notifier **out);
void runstate_del_notifier(struct runstate *rs, struct runstate_notifier *n);

int runstate_add_hook(struct runstate *rs, runstate_event_cb cb, void *opaque,
		      struct runstate_hook **out);
void runstate_del_hook(struct runstate *rs, struct runstate_hook *h);

/* Run the exit notifiers (once; later calls do nothing). */
void runstate_exit(struct runstate *rs);

#endif
