/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * common: small shared utilities used by every module.
 *
 *  - log:   leveled logging to stderr (later: journald fields VM=, ROLE=)
 *  - loop:  the main event loop (epoll) that every fd-driven part hooks into
 *  - util:  file reading, number parsing, checked arithmetic
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

#endif
