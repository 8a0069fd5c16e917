/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common: small shared utilities used by every module.
 *
 *  - log:   leveled logging to stderr, or to the journal with fields
 *           (VM name, role, COLO event) when stderr is the journal
 *  - notify: sd_notify (READY, STATUS, STOPPING) and the watchdog
 *  - loop:  the main event loop (epoll) that every fd-driven part hooks into
 *  - util:  file reading, number parsing, checked arithmetic, histograms
 *
 * Library code never exits the process: errors are returned as -errno.
 */
#ifndef COLOVM_COMMON_H
#define COLOVM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a)	    (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)	    (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define ALIGN_DOWN(x, a)    ((x) & ~((__typeof__(x))(a)-1))
#define MIN(a, b)	    ((a) < (b) ? (a) : (b))
#define MAX(a, b)	    ((a) > (b) ? (a) : (b))
#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define PRINTF_LIKE(f, a)   __attribute__((format(printf, f, a)))

/* ---- log ---------------------------------------------------------------- */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Prefix every line with "colovm[ROLE]: " (role may be NULL). */
void log_set_role(const char *role);
void log_msg(enum log_level level, const char *fmt, ...) PRINTF_LIKE(2, 3);
/*
 * The journal (systemd): when stderr is the journal's stream (JOURNAL_STREAM
 * names stderr's device and inode, as systemd sets it for a unit), every
 * line goes through sd_journal_send with PRIORITY and these fields:
 * COLOVM_VM (log_set_vm_name, --name; left out when none), COLOVM_ROLE
 * (log_set_journal_role: standalone, primary, secondary, witness) and, for
 * log_event, COLOVM_EVENT. Otherwise lines go to stderr as before. Both
 * strings are copied; any thread.
 */
void log_set_vm_name(const char *name);
void log_set_journal_role(const char *role);
/* A COLO event (pair-formed, checkpoint-failure, failover, fence): a line
 * as log_msg writes it, with COLOVM_EVENT=event in the journal. */
void log_event(enum log_level level, const char *event, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* True when lines go to the journal (decided at the first line). */
bool log_to_journal(void);

#define log_err(...)   log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* ---- loop --------------------------------------------------------------- */

struct loop;
typedef void (*loop_fd_cb)(void *opaque, uint32_t events);

int loop_new(struct loop **out);
void loop_free(struct loop *loop);
/* Watch fd for EPOLLIN/EPOLLOUT/...; cb runs on the loop thread. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *opaque);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
int loop_del_fd(struct loop *loop, int fd);
/* Run callbacks for ready fds, waiting at most timeout_ms (-1: forever). */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Wake a loop blocked in loop_run_once from any thread. */
void loop_kick(struct loop *loop);

/* ---- notify: systemd's service protocol ----------------------------------
 *
 * sd_notify(3) to $NOTIFY_SOCKET; without one, nothing is sent. The
 * watchdog: when $WATCHDOG_USEC is set for this process, a timer on the
 * main loop sends WATCHDOG=1 every half period, so a main loop that stalls
 * stops feeding it and systemd acts. */
void notify_ready(const char *status);
void notify_status(const char *fmt, ...) PRINTF_LIKE(1, 2);
void notify_stopping(void);
struct notify_timer;
/* A timer on loop: WATCHDOG=1 at half the watchdog period (if there is one)
 * and tick(opaque) every tick_ms (0: never; tick may be NULL). No timer when
 * neither: *out = NULL, 0. Logs the watchdog period. */
int notify_timer_new(struct loop *loop, unsigned int tick_ms, void (*tick)(void *opaque),
		     void *opaque, struct notify_timer **out);
void notify_timer_free(struct notify_timer *t);

/* ---- util --------------------------------------------------------------- */

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int file_read_all(const char *path, uint8_t **buf, size_t *len);
/* Strict unsigned parse: whole string, base 0, range [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* write()/read() the whole buffer, retrying on EINTR and short transfers. */
int write_full(int fd, const void *buf, size_t len);
int read_full(int fd, void *buf, size_t len);
/* Monotonic clock in nanoseconds. */
uint64_t clock_ns(void);

/* ---- hist: a fixed-bucket histogram (metrics) ----------------------------- */

#define HIST_MAX_BUCKETS 16
struct hist {
	const uint64_t *le;		      /* upper bounds (inclusive), ascending */
	unsigned int n;			      /* <= HIST_MAX_BUCKETS */
	uint64_t count[HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative; [n]: above all */
	uint64_t sum, total;
};
/* A checkpoint's pause, in microseconds: 1 ms .. 5 s. */
#define HIST_PAUSE_BUCKETS 12
extern const uint64_t hist_pause_us[HIST_PAUSE_BUCKETS];
void hist_init(struct hist *h, const uint64_t *le, unsigned int n);
void hist_add(struct hist *h, uint64_t v);

#endif
