/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * runstate unit tests: the transition table (every ordered pair), requests
 * from other threads, handler order, notifiers and events.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/runstate/runstate.h"

/*
 * The expected table, typed in from shared/reference/runstate-qemu-6.x.txt
 * (runstate_transitions_def) by QMP name, independently of runstate.c, plus
 * colovm's one documented extension (colo -> paused).
 */
static const char *const expected[] = {
    "debug>running",
    "debug>finish-migrate",
    "debug>prelaunch",
    "debug>suspended",
    "inmigrate>internal-error",
    "inmigrate>io-error",
    "inmigrate>paused",
    "inmigrate>running",
    "inmigrate>shutdown",
    "inmigrate>suspended",
    "inmigrate>watchdog",
    "inmigrate>guest-panicked",
    "inmigrate>finish-migrate",
    "inmigrate>prelaunch",
    "inmigrate>postmigrate",
    "inmigrate>colo",
    "internal-error>paused",
    "internal-error>finish-migrate",
    "internal-error>prelaunch",
    "io-error>running",
    "io-error>finish-migrate",
    "io-error>prelaunch",
    "paused>running",
    "paused>finish-migrate",
    "paused>postmigrate",
    "paused>prelaunch",
    "paused>colo",
    "postmigrate>running",
    "postmigrate>finish-migrate",
    "postmigrate>prelaunch",
    "prelaunch>inmigrate",
    "prelaunch>running",
    "prelaunch>finish-migrate",
    "finish-migrate>running",
    "finish-migrate>paused",
    "finish-migrate>postmigrate",
    "finish-migrate>prelaunch",
    "finish-migrate>colo",
    "restore-vm>running",
    "restore-vm>prelaunch",
    "colo>running",
    "colo>shutdown",
    "running>debug",
    "running>internal-error",
    "running>io-error",
    "running>paused",
    "running>finish-migrate",
    "running>restore-vm",
    "running>save-vm",
    "running>shutdown",
    "running>watchdog",
    "running>guest-panicked",
    "running>colo",
    "running>suspended",
    "save-vm>running",
    "shutdown>paused",
    "shutdown>finish-migrate",
    "shutdown>prelaunch",
    "shutdown>colo",
    "suspended>running",
    "suspended>finish-migrate",
    "suspended>prelaunch",
    "suspended>colo",
    "watchdog>running",
    "watchdog>finish-migrate",
    "watchdog>prelaunch",
    "watchdog>colo",
    "guest-panicked>running",
    "guest-panicked>finish-migrate",
    "guest-panicked>prelaunch",
    /* colovm extension */
    "colo>paused",
};

static const char *const all_names[] = {
    "debug",	 "inmigrate",	   "internal-error", "io-error", "paused",    "postmigrate",
    "prelaunch", "finish-migrate", "restore-vm",     "running",	 "save-vm",   "shutdown",
    "suspended", "watchdog",	   "guest-panicked", "colo",	 "preconfig",
};

static bool expect_valid(const char *from, const char *to)
{
	char key[64];

	snprintf(key, sizeof(key), "%s>%s", from, to);
	for (size_t i = 0; i < ARRAY_SIZE(expected); i++)
		if (!strcmp(expected[i], key))
			return true;
	return false;
}

static void test_names(void **st)
{
	enum run_state s;

	assert_int_equal(ARRAY_SIZE(all_names), RUN_STATE__MAX);
	for (size_t i = 0; i < ARRAY_SIZE(all_names); i++) {
		assert_int_equal(runstate_from_name(all_names[i], &s), 0);
		assert_string_equal(runstate_name(s), all_names[i]);
	}
	assert_int_equal(runstate_from_name("bogus", &s), -EINVAL);
	assert_string_equal(runstate_name(RUN_STATE_COLO), "colo");
	assert_string_equal(runstate_name(RUN_STATE_FINISH_MIGRATE), "finish-migrate");
	assert_string_equal(runstate_name(RUN_STATE__MAX), "unknown");
	assert_string_equal(runstate_cause_name(SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET),
			    "host-qmp-system-reset");
	assert_string_equal(runstate_cause_name(SHUTDOWN_CAUSE_GUEST_PANIC), "guest-panic");
	assert_string_equal(runstate_cause_name(SHUTDOWN_CAUSE_SUBSYSTEM_RESET), "subsystem-reset");
	assert_false(runstate_cause_is_guest(SHUTDOWN_CAUSE_HOST_SIGNAL));
	assert_true(runstate_cause_is_guest(SHUTDOWN_CAUSE_GUEST_SHUTDOWN));
	assert_true(runstate_cause_is_guest(SHUTDOWN_CAUSE_GUEST_RESET));
	assert_true(runstate_cause_is_guest(SHUTDOWN_CAUSE_GUEST_PANIC));
	assert_false(runstate_cause_is_guest(SHUTDOWN_CAUSE_SUBSYSTEM_RESET));
}

/* Every ordered pair: exactly the table's pairs (and staying put) succeed. */
static void test_all_pairs(void **st)
{
	int valid = 0;

	for (int f = 0; f < RUN_STATE__MAX; f++) {
		for (int t = 0; t < RUN_STATE__MAX; t++) {
			const char *from = all_names[f], *to = all_names[t];
			bool want = expect_valid(from, to);
			enum run_state fs, ts;
			struct runstate *rs;
			int ret;

			assert_int_equal(runstate_from_name(from, &fs), 0);
			assert_int_equal(runstate_from_name(to, &ts), 0);
			assert_int_equal(runstate_new(NULL, fs, &rs), 0);
			assert_int_equal(runstate_transition_valid(fs, ts), want);
			ret = runstate_set(rs, ts);
			if (want || fs == ts) {
				if (ret)
					fail_msg("%s -> %s refused", from, to);
				assert_int_equal(runstate_get(rs), ts);
				valid += want;
			} else {
				if (ret != -EINVAL)
					fail_msg("%s -> %s accepted (%d)", from, to, ret);
				assert_int_equal(runstate_get(rs), fs);
			}
			runstate_free(rs);
		}
	}
	assert_int_equal(valid, ARRAY_SIZE(expected));
}

/* ---- handlers and events ------------------------------------------------ */

struct rec {
	char log[512];
	int fail_prio; /* priority whose handler fails, or INT32_MIN */
};

struct hctx {
	struct rec *rec;
	int prio;
};

static void rec_add(struct rec *r, const char *fmt, ...)
{
	size_t n = strlen(r->log);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->log + n, sizeof(r->log) - n, fmt, ap);
	va_end(ap);
}

static int handler(void *opaque, bool running, enum run_state state)
{
	struct hctx *h = opaque;

	rec_add(h->rec, "%c%d:%s ", running ? '+' : '-', h->prio, runstate_name(state));
	return h->prio == h->rec->fail_prio ? -EIO : 0;
}

static void hook(void *opaque, enum runstate_event ev, enum shutdown_cause cause,
		 enum run_state state)
{
	struct rec *r = opaque;

	rec_add(r, "%s(%s,%s) ", runstate_event_name(ev), runstate_cause_name(cause),
		runstate_name(state));
}

static void test_handler_order(void **st)
{
	static const int prios[] = {5, -1, 3, 0, 3};
	struct hctx h[ARRAY_SIZE(prios)];
	struct rec rec = {.fail_prio = INT32_MIN};
	struct runstate *rs;

	assert_int_equal(runstate_new(NULL, RUN_STATE_PRELAUNCH, &rs), 0);
	for (size_t i = 0; i < ARRAY_SIZE(prios); i++) {
		h[i] = (struct hctx){.rec = &rec, .prio = prios[i]};
		assert_int_equal(runstate_add_handler(rs, prios[i], handler, &h[i], NULL), 0);
	}
	assert_int_equal(runstate_add_hook(rs, hook, &rec, NULL), 0);

	assert_int_equal(runstate_vm_start(rs), 0);
	assert_string_equal(rec.log, "+-1:running +0:running +3:running +3:running +5:running "
				     "RESUME(none,running) ");
	assert_true(runstate_is_running(rs));

	rec.log[0] = 0;
	assert_int_equal(runstate_vm_stop(rs, RUN_STATE_PAUSED), 0);
	assert_string_equal(rec.log, "-5:paused -3:paused -3:paused -0:paused --1:paused "
				     "STOP(none,paused) ");
	assert_int_equal(runstate_get(rs), RUN_STATE_PAUSED);

	/* Stopping a stopped VM does nothing (QEMU's vm_stop). */
	rec.log[0] = 0;
	assert_int_equal(runstate_vm_stop(rs, RUN_STATE_DEBUG), 0);
	assert_string_equal(rec.log, "");
	assert_int_equal(runstate_get(rs), RUN_STATE_PAUSED);
	/* ... unless forced, which runs no handlers: paused -> colo. */
	assert_int_equal(runstate_vm_stop_force(rs, RUN_STATE_COLO), 0);
	assert_string_equal(rec.log, "");
	assert_int_equal(runstate_get(rs), RUN_STATE_COLO);
	/* colo -> running through the handlers (end of a checkpoint). */
	assert_int_equal(runstate_vm_start(rs), 0);
	assert_int_equal(runstate_get(rs), RUN_STATE_RUNNING);
	runstate_free(rs);
}

static void test_handler_failure_undoes(void **st)
{
	static const int prios[] = {1, 2, 3};
	struct hctx h[ARRAY_SIZE(prios)];
	struct rec rec = {.fail_prio = 2};
	struct runstate *rs;

	assert_int_equal(runstate_new(NULL, RUN_STATE_PAUSED, &rs), 0);
	for (size_t i = 0; i < ARRAY_SIZE(prios); i++) {
		h[i] = (struct hctx){.rec = &rec, .prio = prios[i]};
		assert_int_equal(runstate_add_handler(rs, prios[i], handler, &h[i], NULL), 0);
	}
	assert_int_equal(runstate_add_hook(rs, hook, &rec, NULL), 0);
	assert_int_equal(runstate_vm_start(rs), -EIO);
	assert_string_equal(rec.log, "+1:running +2:running -1:paused ");
	assert_int_equal(runstate_get(rs), RUN_STATE_PAUSED);

	rec.fail_prio = INT32_MIN;
	assert_int_equal(runstate_vm_start(rs), 0);
	rec.fail_prio = 2;
	rec.log[0] = 0;
	assert_int_equal(runstate_vm_stop(rs, RUN_STATE_PAUSED), -EIO);
	assert_string_equal(rec.log, "-3:paused -2:paused +3:running ");
	assert_true(runstate_is_running(rs));

	/* Invalid target: refused before any handler runs. */
	rec.log[0] = 0;
	assert_int_equal(runstate_vm_stop(rs, RUN_STATE_PRECONFIG), -EINVAL);
	assert_string_equal(rec.log, "");
	assert_true(runstate_is_running(rs));
	runstate_free(rs);
}

static int exit_count;

static void on_exit_notifier(void *opaque, enum shutdown_cause cause)
{
	exit_count++;
	*(enum shutdown_cause *)opaque = cause;
}

static void test_exit_notifiers_once(void **st)
{
	enum shutdown_cause seen = SHUTDOWN_CAUSE__MAX;
	struct runstate_notifier *gone;
	struct runstate *rs;

	exit_count = 0;
	assert_int_equal(runstate_new(NULL, RUN_STATE_RUNNING, &rs), 0);
	assert_int_equal(
	    runstate_add_notifier(rs, RUNSTATE_NOTIFY_EXIT, on_exit_notifier, &seen, NULL), 0);
	assert_int_equal(
	    runstate_add_notifier(rs, RUNSTATE_NOTIFY_EXIT, on_exit_notifier, &seen, &gone), 0);
	runstate_del_notifier(rs, gone);
	runstate_request_shutdown(rs, SHUTDOWN_CAUSE_HOST_QMP_QUIT);
	assert_true(runstate_main_loop_should_exit(rs));
	runstate_exit(rs);
	runstate_exit(rs);
	runstate_free(rs);
	assert_int_equal(exit_count, 1);
	assert_int_equal(seen, SHUTDOWN_CAUSE_HOST_QMP_QUIT);

	/* Never called runstate_exit(): runstate_free() runs them. */
	exit_count = 0;
	assert_int_equal(runstate_new(NULL, RUN_STATE_RUNNING, &rs), 0);
	assert_int_equal(
	    runstate_add_notifier(rs, RUNSTATE_NOTIFY_EXIT, on_exit_notifier, &seen, NULL), 0);
	runstate_free(rs);
	assert_int_equal(exit_count, 1);
}

/* ---- requests from another thread ----------------------------------------- */

struct req_thread {
	struct runstate *rs;
	int which;
};

static void *requester(void *opaque)
{
	struct req_thread *t = opaque;

	usleep(20000);
	if (t->which == 0) {
		runstate_request_vmstop(t->rs, RUN_STATE_INTERNAL_ERROR);
		usleep(20000);
		runstate_request_shutdown(t->rs, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
	} else {
		for (int i = 0; i < 1000; i++)
			runstate_request_powerdown(t->rs);
	}
	return NULL;
}

struct counts {
	int n[RUNSTATE_EVENT_WAKEUP + 1];
	enum run_state stop_state;
	enum shutdown_cause shutdown_cause;
};

static void count_hook(void *opaque, enum runstate_event ev, enum shutdown_cause cause,
		       enum run_state state)
{
	struct counts *k = opaque;

	k->n[ev]++;
	if (ev == RUNSTATE_EVENT_STOP)
		k->stop_state = state;
	if (ev == RUNSTATE_EVENT_SHUTDOWN)
		k->shutdown_cause = cause;
}

static void test_requests_from_threads(void **st)
{
	struct counts k;
	struct req_thread t[3];
	pthread_t tid[3];
	struct runstate *rs;
	struct loop *loop;
	uint64_t t0;
	int rounds = 0;

	memset(&k, 0, sizeof(k));
	assert_int_equal(loop_new(&loop), 0);
	assert_int_equal(runstate_new(loop, RUN_STATE_PRELAUNCH, &rs), 0);
	assert_int_equal(runstate_add_hook(rs, count_hook, &k, NULL), 0);
	assert_int_equal(runstate_vm_start(rs), 0);
	for (int i = 0; i < 3; i++) {
		t[i] = (struct req_thread){.rs = rs, .which = i};
		assert_int_equal(pthread_create(&tid[i], NULL, requester, &t[i]), 0);
	}
	t0 = clock_ns();
	/* The main loop blocks forever unless a request kicks it. */
	while (!runstate_main_loop_should_exit(rs)) {
		assert_true(loop_run_once(loop, 5000) >= 0);
		assert_true(clock_ns() - t0 < 5000000000ull);
		rounds++;
	}
	for (int i = 0; i < 3; i++)
		pthread_join(tid[i], NULL);
	assert_int_equal(runstate_exit_cause(rs), SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
	assert_int_equal(runstate_get(rs), RUN_STATE_INTERNAL_ERROR);
	assert_true(runstate_needs_reset(rs));
	assert_int_equal(k.n[RUNSTATE_EVENT_STOP], 1);
	assert_int_equal(k.stop_state, RUN_STATE_INTERNAL_ERROR);
	assert_int_equal(k.n[RUNSTATE_EVENT_SHUTDOWN], 1);
	assert_int_equal(k.shutdown_cause, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
	/* 2000 requests coalesce into at least one POWERDOWN, at most 2000. */
	assert_true(k.n[RUNSTATE_EVENT_POWERDOWN] >= 1 && k.n[RUNSTATE_EVENT_POWERDOWN] <= 2000);
	assert_true(rounds >= 1);
	runstate_free(rs);
	loop_free(loop);
}

/* ---- the main loop step ------------------------------------------------- */

static void on_reset(void *opaque, enum shutdown_cause cause)
{
	rec_add(opaque, "reset(%s) ", runstate_cause_name(cause));
}

static void test_reset_and_flags(void **st)
{
	struct rec rec = {.fail_prio = INT32_MIN};
	struct runstate *rs;

	assert_int_equal(runstate_new(NULL, RUN_STATE_RUNNING, &rs), 0);
	assert_int_equal(runstate_add_notifier(rs, RUNSTATE_NOTIFY_RESET, on_reset, &rec, NULL), 0);
	assert_int_equal(runstate_add_hook(rs, hook, &rec, NULL), 0);
	runstate_request_reset(rs, SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_string_equal(rec.log, "reset(host-qmp-system-reset) "
				     "RESET(host-qmp-system-reset,running) ");
	assert_true(runstate_is_running(rs));

	/* A reset while paused lands in prelaunch; subsystem resets are silent. */
	assert_int_equal(runstate_vm_stop(rs, RUN_STATE_PAUSED), 0);
	rec.log[0] = 0;
	runstate_request_reset(rs, SHUTDOWN_CAUSE_SUBSYSTEM_RESET);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_string_equal(rec.log, "reset(subsystem-reset) ");
	assert_int_equal(runstate_get(rs), RUN_STATE_PRELAUNCH);

	/* -no-reboot: a guest reset shuts down. */
	runstate_set_flags(rs, RUNSTATE_NO_REBOOT);
	rec.log[0] = 0;
	runstate_request_reset(rs, SHUTDOWN_CAUSE_GUEST_RESET);
	assert_true(runstate_main_loop_should_exit(rs));
	assert_int_equal(runstate_exit_cause(rs), SHUTDOWN_CAUSE_GUEST_RESET);
	assert_string_equal(rec.log, "SHUTDOWN(guest-reset,prelaunch) ");
	runstate_free(rs);

	/* -no-shutdown: a guest power-off stops in SHUTDOWN, a signal still exits. */
	assert_int_equal(runstate_new(NULL, RUN_STATE_RUNNING, &rs), 0);
	runstate_set_flags(rs, RUNSTATE_NO_SHUTDOWN);
	runstate_request_shutdown(rs, SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_int_equal(runstate_get(rs), RUN_STATE_SHUTDOWN);
	assert_true(runstate_needs_reset(rs));
	runstate_request_shutdown_signal(rs, 15);
	assert_true(runstate_main_loop_should_exit(rs));
	assert_int_equal(runstate_exit_cause(rs), SHUTDOWN_CAUSE_HOST_SIGNAL);
	assert_int_equal(runstate_exit_signal(rs), 15);
	runstate_free(rs);
}

static void test_debug_suspend_wakeup(void **st)
{
	struct rec rec = {.fail_prio = INT32_MIN};
	struct hctx h = {.rec = &rec, .prio = 0};
	struct runstate *rs;

	assert_int_equal(runstate_new(NULL, RUN_STATE_RUNNING, &rs), 0);
	assert_int_equal(runstate_add_handler(rs, 0, handler, &h, NULL), 0);
	assert_int_equal(runstate_add_hook(rs, hook, &rec, NULL), 0);
	assert_int_equal(runstate_request_wakeup(rs), -EBUSY);

	runstate_request_suspend(rs);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_int_equal(runstate_get(rs), RUN_STATE_SUSPENDED);
	assert_string_equal(rec.log, "-0:suspended SUSPEND(none,suspended) ");

	rec.log[0] = 0;
	assert_int_equal(runstate_request_wakeup(rs), 0);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_true(runstate_is_running(rs));
	assert_string_equal(rec.log, "+0:running WAKEUP(none,running) ");

	rec.log[0] = 0;
	runstate_request_debug(rs);
	assert_false(runstate_main_loop_should_exit(rs));
	assert_int_equal(runstate_get(rs), RUN_STATE_DEBUG);
	assert_string_equal(rec.log, "-0:debug STOP(none,debug) ");

	/* Nothing pending: nothing happens. */
	rec.log[0] = 0;
	assert_false(runstate_main_loop_should_exit(rs));
	assert_string_equal(rec.log, "");
	runstate_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_all_pairs),
	    cmocka_unit_test(test_handler_order),
	    cmocka_unit_test(test_handler_failure_undoes),
	    cmocka_unit_test(test_exit_notifiers_once),
	    cmocka_unit_test(test_requests_from_threads),
	    cmocka_unit_test(test_reset_and_flags),
	    cmocka_unit_test(test_debug_suspend_wakeup),
	};

	log_set_level(LOG_ERROR + (getenv("V") ? 3 : 0));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
