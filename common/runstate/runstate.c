/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * runstate: states, the transition table, requests and the main-loop step.
 * See runstate.h for the threading rules.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/runstate/runstate.h"

static const char *const state_names[RUN_STATE__MAX] = {
    [RUN_STATE_DEBUG] = "debug",
    [RUN_STATE_INMIGRATE] = "inmigrate",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
    [RUN_STATE_IO_ERROR] = "io-error",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_POSTMIGRATE] = "postmigrate",
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_FINISH_MIGRATE] = "finish-migrate",
    [RUN_STATE_RESTORE_VM] = "restore-vm",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_SUSPENDED] = "suspended",
    [RUN_STATE_WATCHDOG] = "watchdog",
    [RUN_STATE_GUEST_PANICKED] = "guest-panicked",
    [RUN_STATE_COLO] = "colo",
    [RUN_STATE_PRECONFIG] = "preconfig",
};

static const char *const cause_names[SHUTDOWN_CAUSE__MAX] = {
    [SHUTDOWN_CAUSE_NONE] = "none",
    [SHUTDOWN_CAUSE_HOST_ERROR] = "host-error",
    [SHUTDOWN_CAUSE_HOST_QMP_QUIT] = "host-qmp-quit",
    [SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET] = "host-qmp-system-reset",
    [SHUTDOWN_CAUSE_HOST_SIGNAL] = "host-signal",
    [SHUTDOWN_CAUSE_HOST_UI] = "host-ui",
    [SHUTDOWN_CAUSE_GUEST_SHUTDOWN] = "guest-shutdown",
    [SHUTDOWN_CAUSE_GUEST_RESET] = "guest-reset",
    [SHUTDOWN_CAUSE_GUEST_PANIC] = "guest-panic",
    [SHUTDOWN_CAUSE_SUBSYSTEM_RESET] = "subsystem-reset",
};

static const char *const event_names[] = {
    [RUNSTATE_EVENT_STOP] = "STOP",	      [RUNSTATE_EVENT_RESUME] = "RESUME",
    [RUNSTATE_EVENT_SHUTDOWN] = "SHUTDOWN",   [RUNSTATE_EVENT_RESET] = "RESET",
    [RUNSTATE_EVENT_POWERDOWN] = "POWERDOWN", [RUNSTATE_EVENT_SUSPEND] = "SUSPEND",
    [RUNSTATE_EVENT_WAKEUP] = "WAKEUP",
};

/*
 * The valid transitions: QEMU 6.x's runstate_transitions_def, pair for pair
 * and in its order (its one duplicate, PRELAUNCH -> INMIGRATE, is listed
 * once). PRECONFIG has no way out in that table and none here. Same-state
 * "transitions" are not in the table; runstate_set() treats them as no-ops.
 *
 * Already in QEMU's table for COLO, so not extensions: INMIGRATE -> COLO
 * (the secondary's first checkpoint), RUNNING -> COLO and PAUSED -> COLO
 * (stop for a checkpoint), FINISH_MIGRATE -> COLO (the primary after the
 * initial migration), SHUTDOWN/SUSPENDED/WATCHDOG -> COLO, COLO -> RUNNING
 * (resume after a checkpoint; failover) and COLO -> SHUTDOWN (the guest
 * powered off while protected).
 *
 * colovm extensions (below the QEMU block):
 *  - COLO -> PAUSED: a "stop" (QMP, or a fence that forbids this side to
 *    run) arriving while a checkpoint holds the VM in COLO. Without it the
 *    only ways out of COLO are RUNNING, which resumes a VM that was told to
 *    stay stopped (two primaries after a split link), and SHUTDOWN, which
 *    throws the protected guest away. runstate_vm_stop_force(PAUSED) uses it
 *    so that the checkpoint's end finds PAUSED and does not resume.
 */
struct transition {
	enum run_state from, to;
};

static const struct transition transitions[] = {
    /* QEMU 6.x */
    {RUN_STATE_PRELAUNCH, RUN_STATE_INMIGRATE},
    {RUN_STATE_DEBUG, RUN_STATE_RUNNING},
    {RUN_STATE_DEBUG, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_DEBUG, RUN_STATE_PRELAUNCH},
    {RUN_STATE_INMIGRATE, RUN_STATE_INTERNAL_ERROR},
    {RUN_STATE_INMIGRATE, RUN_STATE_IO_ERROR},
    {RUN_STATE_INMIGRATE, RUN_STATE_PAUSED},
    {RUN_STATE_INMIGRATE, RUN_STATE_RUNNING},
    {RUN_STATE_INMIGRATE, RUN_STATE_SHUTDOWN},
    {RUN_STATE_INMIGRATE, RUN_STATE_SUSPENDED},
    {RUN_STATE_INMIGRATE, RUN_STATE_WATCHDOG},
    {RUN_STATE_INMIGRATE, RUN_STATE_GUEST_PANICKED},
    {RUN_STATE_INMIGRATE, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_INMIGRATE, RUN_STATE_PRELAUNCH},
    {RUN_STATE_INMIGRATE, RUN_STATE_POSTMIGRATE},
    {RUN_STATE_INMIGRATE, RUN_STATE_COLO},
    {RUN_STATE_INTERNAL_ERROR, RUN_STATE_PAUSED},
    {RUN_STATE_INTERNAL_ERROR, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_INTERNAL_ERROR, RUN_STATE_PRELAUNCH},
    {RUN_STATE_IO_ERROR, RUN_STATE_RUNNING},
    {RUN_STATE_IO_ERROR, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_IO_ERROR, RUN_STATE_PRELAUNCH},
    {RUN_STATE_PAUSED, RUN_STATE_RUNNING},
    {RUN_STATE_PAUSED, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_PAUSED, RUN_STATE_POSTMIGRATE},
    {RUN_STATE_PAUSED, RUN_STATE_PRELAUNCH},
    {RUN_STATE_PAUSED, RUN_STATE_COLO},
    {RUN_STATE_POSTMIGRATE, RUN_STATE_RUNNING},
    {RUN_STATE_POSTMIGRATE, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_POSTMIGRATE, RUN_STATE_PRELAUNCH},
    {RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING},
    {RUN_STATE_PRELAUNCH, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_FINISH_MIGRATE, RUN_STATE_RUNNING},
    {RUN_STATE_FINISH_MIGRATE, RUN_STATE_PAUSED},
    {RUN_STATE_FINISH_MIGRATE, RUN_STATE_POSTMIGRATE},
    {RUN_STATE_FINISH_MIGRATE, RUN_STATE_PRELAUNCH},
    {RUN_STATE_FINISH_MIGRATE, RUN_STATE_COLO},
    {RUN_STATE_RESTORE_VM, RUN_STATE_RUNNING},
    {RUN_STATE_RESTORE_VM, RUN_STATE_PRELAUNCH},
    {RUN_STATE_COLO, RUN_STATE_RUNNING},
    {RUN_STATE_COLO, RUN_STATE_SHUTDOWN},
    {RUN_STATE_RUNNING, RUN_STATE_DEBUG},
    {RUN_STATE_RUNNING, RUN_STATE_INTERNAL_ERROR},
    {RUN_STATE_RUNNING, RUN_STATE_IO_ERROR},
    {RUN_STATE_RUNNING, RUN_STATE_PAUSED},
    {RUN_STATE_RUNNING, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_RUNNING, RUN_STATE_RESTORE_VM},
    {RUN_STATE_RUNNING, RUN_STATE_SAVE_VM},
    {RUN_STATE_RUNNING, RUN_STATE_SHUTDOWN},
    {RUN_STATE_RUNNING, RUN_STATE_WATCHDOG},
    {RUN_STATE_RUNNING, RUN_STATE_GUEST_PANICKED},
    {RUN_STATE_RUNNING, RUN_STATE_COLO},
    {RUN_STATE_SAVE_VM, RUN_STATE_RUNNING},
    {RUN_STATE_SHUTDOWN, RUN_STATE_PAUSED},
    {RUN_STATE_SHUTDOWN, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_SHUTDOWN, RUN_STATE_PRELAUNCH},
    {RUN_STATE_SHUTDOWN, RUN_STATE_COLO},
    {RUN_STATE_DEBUG, RUN_STATE_SUSPENDED},
    {RUN_STATE_RUNNING, RUN_STATE_SUSPENDED},
    {RUN_STATE_SUSPENDED, RUN_STATE_RUNNING},
    {RUN_STATE_SUSPENDED, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_SUSPENDED, RUN_STATE_PRELAUNCH},
    {RUN_STATE_SUSPENDED, RUN_STATE_COLO},
    {RUN_STATE_WATCHDOG, RUN_STATE_RUNNING},
    {RUN_STATE_WATCHDOG, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_WATCHDOG, RUN_STATE_PRELAUNCH},
    {RUN_STATE_WATCHDOG, RUN_STATE_COLO},
    {RUN_STATE_GUEST_PANICKED, RUN_STATE_RUNNING},
    {RUN_STATE_GUEST_PANICKED, RUN_STATE_FINISH_MIGRATE},
    {RUN_STATE_GUEST_PANICKED, RUN_STATE_PRELAUNCH},
    {RUN_STATE__MAX, RUN_STATE__MAX},
    /* colovm extensions (see above) */
    {RUN_STATE_COLO, RUN_STATE_PAUSED},
};

struct runstate_handler {
	struct runstate_handler *prev, *next;
	runstate_change_cb cb;
	void *opaque;
	int priority;
};

struct runstate_notifier {
	struct runstate_notifier *next;
	runstate_notify_cb cb;
	void *opaque;
};

struct runstate_hook {
	struct runstate_hook *next;
	runstate_event_cb cb;
	void *opaque;
};

struct runstate {
	pthread_mutex_t lock; /* protects state */
	enum run_state state;
	struct loop *loop;
	unsigned int flags;

	/* Requests: written by any thread, consumed by the main loop. */
	atomic_int shutdown_req; /* enum shutdown_cause */
	atomic_int reset_req;	 /* enum shutdown_cause */
	atomic_int shutdown_signal;
	atomic_bool powerdown_req, debug_req, suspend_req, wakeup_req;
	atomic_int vmstop_req; /* enum run_state; RUN_STATE__MAX: none */

	/* Main loop thread only. */
	struct runstate_handler *head, *tail; /* ascending priority */
	struct runstate_notifier *notifiers[RUNSTATE_NOTIFY__MAX];
	struct runstate_hook *hooks;
	enum shutdown_cause exit_cause;
	int exit_signal;
	bool exited;
};

const char *runstate_name(enum run_state state)
{
	if ((unsigned int)state >= RUN_STATE__MAX)
		return "unknown";
	return state_names[state];
}

int runstate_from_name(const char *name, enum run_state *out)
{
	for (int i = 0; i < RUN_STATE__MAX; i++) {
		if (name && !strcmp(name, state_names[i])) {
			*out = (enum run_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *runstate_cause_name(enum shutdown_cause cause)
{
	if ((unsigned int)cause >= SHUTDOWN_CAUSE__MAX)
		return "unknown";
	return cause_names[cause];
}

bool runstate_cause_is_guest(enum shutdown_cause cause)
{
	return cause >= SHUTDOWN_CAUSE_GUEST_SHUTDOWN && cause != SHUTDOWN_CAUSE_SUBSYSTEM_RESET &&
	       cause < SHUTDOWN_CAUSE__MAX;
}

const char *runstate_event_name(enum runstate_event ev)
{
	if ((unsigned int)ev >= ARRAY_SIZE(event_names))
		return "UNKNOWN";
	return event_names[ev];
}

bool runstate_transition_valid(enum run_state from, enum run_state to)
{
	for (size_t i = 0; i < ARRAY_SIZE(transitions); i++)
		if (transitions[i].from == from && transitions[i].to == to)
			return true;
	return false;
}

/* ---- the state machine -------------------------------------------------- */

int runstate_new(struct loop *loop, enum run_state initial, struct runstate **out)
{
	struct runstate *rs;
	int ret;

	if ((unsigned int)initial >= RUN_STATE__MAX)
		return -EINVAL;
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	ret = -pthread_mutex_init(&rs->lock, NULL);
	if (ret) {
		free(rs);
		return ret;
	}
	rs->state = initial;
	rs->loop = loop;
	atomic_init(&rs->shutdown_req, SHUTDOWN_CAUSE_NONE);
	atomic_init(&rs->reset_req, SHUTDOWN_CAUSE_NONE);
	atomic_init(&rs->shutdown_signal, 0);
	atomic_init(&rs->powerdown_req, false);
	atomic_init(&rs->debug_req, false);
	atomic_init(&rs->suspend_req, false);
	atomic_init(&rs->wakeup_req, false);
	atomic_init(&rs->vmstop_req, RUN_STATE__MAX);
	*out = rs;
	return 0;
}

void runstate_free(struct runstate *rs)
{
	if (!rs)
		return;
	runstate_exit(rs);
	while (rs->head)
		runstate_del_handler(rs, rs->head);
	for (int k = 0; k < RUNSTATE_NOTIFY__MAX; k++) {
		while (rs->notifiers[k]) {
			struct runstate_notifier *n = rs->notifiers[k];

			rs->notifiers[k] = n->next;
			free(n);
		}
	}
	while (rs->hooks) {
		struct runstate_hook *h = rs->hooks;

		rs->hooks = h->next;
		free(h);
	}
	pthread_mutex_destroy(&rs->lock);
	free(rs);
}

void runstate_set_flags(struct runstate *rs, unsigned int flags)
{
	rs->flags = flags;
}

enum run_state runstate_get(struct runstate *rs)
{
	enum run_state s;

	pthread_mutex_lock(&rs->lock);
	s = rs->state;
	pthread_mutex_unlock(&rs->lock);
	return s;
}

bool runstate_check(struct runstate *rs, enum run_state state)
{
	return runstate_get(rs) == state;
}

bool runstate_is_running(struct runstate *rs)
{
	return runstate_check(rs, RUN_STATE_RUNNING);
}

bool runstate_needs_reset(struct runstate *rs)
{
	enum run_state s = runstate_get(rs);

	return s == RUN_STATE_INTERNAL_ERROR || s == RUN_STATE_SHUTDOWN;
}

/* Check from -> to; same state is fine (nothing to do). */
static int check_transition(enum run_state from, enum run_state to)
{
	if ((unsigned int)to >= RUN_STATE__MAX) {
		log_err("runstate: invalid state %d", (int)to);
		return -EINVAL;
	}
	if (from == to || runstate_transition_valid(from, to))
		return 0;
	log_warn("invalid runstate transition: '%s' -> '%s'", runstate_name(from),
		 runstate_name(to));
	return -EINVAL;
}

static void store_state(struct runstate *rs, enum run_state state)
{
	pthread_mutex_lock(&rs->lock);
	rs->state = state;
	pthread_mutex_unlock(&rs->lock);
}

int runstate_set(struct runstate *rs, enum run_state state)
{
	int ret = check_transition(runstate_get(rs), state);

	if (ret)
		return ret;
	store_state(rs, state);
	return 0;
}

static void emit(struct runstate *rs, enum runstate_event ev, enum shutdown_cause cause)
{
	enum run_state s = runstate_get(rs);

	for (struct runstate_hook *h = rs->hooks; h; h = h->next)
		h->cb(h->opaque, ev, cause, s);
}

static void notify(struct runstate *rs, enum runstate_notify kind, enum shutdown_cause cause)
{
	for (struct runstate_notifier *n = rs->notifiers[kind]; n; n = n->next)
		n->cb(n->opaque, cause);
}

/* Stop handlers, last priority first; on failure restart those that stopped. */
static int handlers_stop(struct runstate *rs, enum run_state state, enum run_state old)
{
	struct runstate_handler *h, *u;
	int ret;

	for (h = rs->tail; h; h = h->prev) {
		ret = h->cb(h->opaque, false, state);
		if (ret < 0)
			goto undo;
	}
	return 0;
undo:
	log_err("runstate: stop handler failed (%s); staying '%s'", strerror(-ret),
		runstate_name(old));
	for (u = h->next; u; u = u->next)
		u->cb(u->opaque, true, old);
	return ret;
}

/* Start handlers, first priority first; on failure stop those that started. */
static int handlers_start(struct runstate *rs, enum run_state old)
{
	struct runstate_handler *h, *u;
	int ret;

	for (h = rs->head; h; h = h->next) {
		ret = h->cb(h->opaque, true, RUN_STATE_RUNNING);
		if (ret < 0)
			goto undo;
	}
	return 0;
undo:
	log_err("runstate: start handler failed (%s); staying '%s'", strerror(-ret),
		runstate_name(old));
	for (u = h->prev; u; u = u->prev)
		u->cb(u->opaque, false, old);
	return ret;
}

/* Running -> state through the handlers; ev is emitted unless negative. */
static int do_stop(struct runstate *rs, enum run_state state, int ev)
{
	enum run_state old = runstate_get(rs);
	int ret;

	if (old != RUN_STATE_RUNNING)
		return 0;
	ret = check_transition(old, state);
	if (ret)
		return ret;
	ret = handlers_stop(rs, state, old);
	if (ret)
		return ret;
	store_state(rs, state);
	if (ev >= 0)
		emit(rs, (enum runstate_event)ev, SHUTDOWN_CAUSE_NONE);
	return 0;
}

int runstate_vm_stop(struct runstate *rs, enum run_state state)
{
	return do_stop(rs, state, RUNSTATE_EVENT_STOP);
}

int runstate_vm_stop_force(struct runstate *rs, enum run_state state)
{
	if (runstate_is_running(rs))
		return runstate_vm_stop(rs, state);
	return runstate_set(rs, state);
}

/* state -> RUNNING through the handlers; ev is emitted. */
static int do_start(struct runstate *rs, enum runstate_event ev)
{
	enum run_state old = runstate_get(rs);
	int ret;

	if (old == RUN_STATE_RUNNING)
		return 0;
	ret = check_transition(old, RUN_STATE_RUNNING);
	if (ret)
		return ret;
	ret = handlers_start(rs, old);
	if (ret)
		return ret;
	store_state(rs, RUN_STATE_RUNNING);
	emit(rs, ev, SHUTDOWN_CAUSE_NONE);
	return 0;
}

int runstate_vm_start(struct runstate *rs)
{
	return do_start(rs, RUNSTATE_EVENT_RESUME);
}

/* ---- requests ------------------------------------------------------------ */

static void kick(struct runstate *rs)
{
	if (rs->loop)
		loop_kick(rs->loop);
}

void runstate_request_shutdown(struct runstate *rs, enum shutdown_cause cause)
{
	if (cause == SHUTDOWN_CAUSE_NONE || (unsigned int)cause >= SHUTDOWN_CAUSE__MAX)
		cause = SHUTDOWN_CAUSE_HOST_ERROR;
	atomic_store(&rs->shutdown_req, cause);
	kick(rs);
}

void runstate_request_shutdown_signal(struct runstate *rs, int signo)
{
	atomic_store(&rs->shutdown_signal, signo);
	/* A signal always ends the process, -no-shutdown or not (QEMU). */
	atomic_store(&rs->shutdown_req, SHUTDOWN_CAUSE_HOST_SIGNAL);
	kick(rs);
}

void runstate_request_reset(struct runstate *rs, enum shutdown_cause cause)
{
	if (cause == SHUTDOWN_CAUSE_NONE || (unsigned int)cause >= SHUTDOWN_CAUSE__MAX)
		cause = SHUTDOWN_CAUSE_HOST_ERROR;
	if ((rs->flags & RUNSTATE_NO_REBOOT) && cause != SHUTDOWN_CAUSE_SUBSYSTEM_RESET)
		atomic_store(&rs->shutdown_req, cause);
	else
		atomic_store(&rs->reset_req, cause);
	kick(rs);
}

void runstate_request_powerdown(struct runstate *rs)
{
	atomic_store(&rs->powerdown_req, true);
	kick(rs);
}

void runstate_request_debug(struct runstate *rs)
{
	atomic_store(&rs->debug_req, true);
	kick(rs);
}

void runstate_request_suspend(struct runstate *rs)
{
	if (runstate_check(rs, RUN_STATE_SUSPENDED))
		return;
	atomic_store(&rs->suspend_req, true);
	kick(rs);
}

int runstate_request_wakeup(struct runstate *rs)
{
	if (!runstate_check(rs, RUN_STATE_SUSPENDED))
		return -EBUSY;
	atomic_store(&rs->wakeup_req, true);
	kick(rs);
	return 0;
}

void runstate_request_vmstop(struct runstate *rs, enum run_state state)
{
	if ((unsigned int)state >= RUN_STATE__MAX)
		return;
	atomic_store(&rs->vmstop_req, state);
	kick(rs);
}

/* ---- the main loop step ------------------------------------------------- */

static void apply_suspend(struct runstate *rs)
{
	if (runstate_check(rs, RUN_STATE_SUSPENDED))
		return;
	if (runstate_is_running(rs)) {
		if (do_stop(rs, RUN_STATE_SUSPENDED, -1))
			return;
	} else if (runstate_set(rs, RUN_STATE_SUSPENDED)) {
		return;
	}
	notify(rs, RUNSTATE_NOTIFY_SUSPEND, SHUTDOWN_CAUSE_NONE);
	emit(rs, RUNSTATE_EVENT_SUSPEND, SHUTDOWN_CAUSE_NONE);
}

static void apply_reset(struct runstate *rs, enum shutdown_cause cause)
{
	enum run_state s;

	/* The VMM's reset notifier parks, resets and (if running) resumes. */
	notify(rs, RUNSTATE_NOTIFY_RESET, cause);
	if (cause != SHUTDOWN_CAUSE_SUBSYSTEM_RESET)
		emit(rs, RUNSTATE_EVENT_RESET, cause);
	/*
	 * QEMU leaves RUNNING, INMIGRATE and FINISH_MIGRATE as they are and
	 * sends everything else to PRELAUNCH. COLO stays too: the checkpoint
	 * in progress decides where it goes (the table has no COLO ->
	 * PRELAUNCH, where QEMU would abort).
	 */
	s = runstate_get(rs);
	if (s != RUN_STATE_RUNNING && s != RUN_STATE_INMIGRATE && s != RUN_STATE_FINISH_MIGRATE &&
	    s != RUN_STATE_COLO)
		runstate_set(rs, RUN_STATE_PRELAUNCH);
}

static void apply_wakeup(struct runstate *rs)
{
	if (!runstate_check(rs, RUN_STATE_SUSPENDED))
		return;
	notify(rs, RUNSTATE_NOTIFY_WAKEUP, SHUTDOWN_CAUSE_NONE);
	if (do_start(rs, RUNSTATE_EVENT_WAKEUP))
		log_err("runstate: wakeup failed");
}

bool runstate_main_loop_should_exit(struct runstate *rs)
{
	enum shutdown_cause cause;
	int r;

	if (atomic_exchange(&rs->debug_req, false))
		runstate_vm_stop(rs, RUN_STATE_DEBUG);
	if (atomic_exchange(&rs->suspend_req, false))
		apply_suspend(rs);
	cause = (enum shutdown_cause)atomic_exchange(&rs->shutdown_req, SHUTDOWN_CAUSE_NONE);
	if (cause != SHUTDOWN_CAUSE_NONE) {
		int signo = atomic_exchange(&rs->shutdown_signal, 0);

		if (signo)
			log_info("terminating on signal %d", signo);
		emit(rs, RUNSTATE_EVENT_SHUTDOWN, cause);
		notify(rs, RUNSTATE_NOTIFY_SHUTDOWN, cause);
		if ((rs->flags & RUNSTATE_NO_SHUTDOWN) && !signo &&
		    cause != SHUTDOWN_CAUSE_HOST_QMP_QUIT) {
			runstate_vm_stop(rs, RUN_STATE_SHUTDOWN);
		} else {
			rs->exit_cause = cause;
			rs->exit_signal = signo;
			return true;
		}
	}
	cause = (enum shutdown_cause)atomic_exchange(&rs->reset_req, SHUTDOWN_CAUSE_NONE);
	if (cause != SHUTDOWN_CAUSE_NONE)
		apply_reset(rs, cause);
	if (atomic_exchange(&rs->wakeup_req, false))
		apply_wakeup(rs);
	if (atomic_exchange(&rs->powerdown_req, false)) {
		emit(rs, RUNSTATE_EVENT_POWERDOWN, SHUTDOWN_CAUSE_NONE);
		notify(rs, RUNSTATE_NOTIFY_POWERDOWN, SHUTDOWN_CAUSE_NONE);
	}
	r = atomic_exchange(&rs->vmstop_req, RUN_STATE__MAX);
	if (r != RUN_STATE__MAX)
		runstate_vm_stop(rs, (enum run_state)r);
	return false;
}

enum shutdown_cause runstate_exit_cause(struct runstate *rs)
{
	return rs->exit_cause;
}

int runstate_exit_signal(struct runstate *rs)
{
	return rs->exit_signal;
}

/* ---- handlers, notifiers, hooks ------------------------------------------ */

int runstate_add_handler(struct runstate *rs, int priority, runstate_change_cb cb, void *opaque,
			 struct runstate_handler **out)
{
	struct runstate_handler *h = calloc(1, sizeof(*h)), *o;

	if (!h)
		return -ENOMEM;
	h->cb = cb;
	h->opaque = opaque;
	h->priority = priority;
	/* Keep ascending priority; equal priorities run in registration order. */
	for (o = rs->head; o && o->priority <= priority; o = o->next)
		;
	h->next = o;
	h->prev = o ? o->prev : rs->tail;
	if (h->prev)
		h->prev->next = h;
	else
		rs->head = h;
	if (o)
		o->prev = h;
	else
		rs->tail = h;
	if (out)
		*out = h;
	return 0;
}

void runstate_del_handler(struct runstate *rs, struct runstate_handler *h)
{
	if (!h)
		return;
	if (h->prev)
		h->prev->next = h->next;
	else
		rs->head = h->next;
	if (h->next)
		h->next->prev = h->prev;
	else
		rs->tail = h->prev;
	free(h);
}

int runstate_add_notifier(struct runstate *rs, enum runstate_notify kind, runstate_notify_cb cb,
			  void *opaque, struct runstate_notifier **out)
{
	struct runstate_notifier *n, **pp;

	if ((unsigned int)kind >= RUNSTATE_NOTIFY__MAX)
		return -EINVAL;
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->cb = cb;
	n->opaque = opaque;
	/* Append: notifiers run in registration order. */
	for (pp = &rs->notifiers[kind]; *pp; pp = &(*pp)->next)
		;
	*pp = n;
	if (out)
		*out = n;
	return 0;
}

void runstate_del_notifier(struct runstate *rs, struct runstate_notifier *n)
{
	for (int k = 0; n && k < RUNSTATE_NOTIFY__MAX; k++) {
		for (struct runstate_notifier **pp = &rs->notifiers[k]; *pp; pp = &(*pp)->next) {
			if (*pp == n) {
				*pp = n->next;
				free(n);
				return;
			}
		}
	}
}

int runstate_add_hook(struct runstate *rs, runstate_event_cb cb, void *opaque,
		      struct runstate_hook **out)
{
	struct runstate_hook *h = calloc(1, sizeof(*h)), **pp;

	if (!h)
		return -ENOMEM;
	h->cb = cb;
	h->opaque = opaque;
	for (pp = &rs->hooks; *pp; pp = &(*pp)->next)
		;
	*pp = h;
	if (out)
		*out = h;
	return 0;
}

void runstate_del_hook(struct runstate *rs, struct runstate_hook *h)
{
	for (struct runstate_hook **pp = &rs->hooks; h && *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			free(h);
			return;
		}
	}
}

void runstate_exit(struct runstate *rs)
{
	if (rs->exited)
		return;
	rs->exited = true;
	notify(rs, RUNSTATE_NOTIFY_EXIT, rs->exit_cause);
}
