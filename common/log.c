/* SPDX-License-Identifier: GPL-2.0-only */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"
#include "common/journal.h"

static enum log_level cur_level = LOG_INFO;
static char role_prefix[32];

/* The journal's fields, under fields_lock (set from the main loop, read by
 * any thread that logs). */
static pthread_mutex_t fields_lock = PTHREAD_MUTEX_INITIALIZER;
static char vm_name[65], journal_role[32] = "standalone"; /* (config.c: names up to 64) */
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool journal;

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_role(const char *role)
{
	if (role)
		snprintf(role_prefix, sizeof(role_prefix), "[%s]", role);
	else
		role_prefix[0] = '\0';
}

void log_set_vm_name(const char *name)
{
	pthread_mutex_lock(&fields_lock);
	snprintf(vm_name, sizeof(vm_name), "%s", name ? name : "");
	pthread_mutex_unlock(&fields_lock);
}

void log_set_journal_role(const char *role)
{
	pthread_mutex_lock(&fields_lock);
	snprintf(journal_role, sizeof(journal_role), "%s", role ? role : "standalone");
	pthread_mutex_unlock(&fields_lock);
}

static void journal_check(void)
{
	journal = journal_stream_is_stderr();
}

bool log_to_journal(void)
{
	pthread_once(&journal_once, journal_check);
	return journal;
}

static void log_line(enum log_level level, const char *event, const char *fmt, va_list ap)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char line[1024];
	int n;

	if (log_to_journal()) {
		char vm[sizeof(vm_name)], role[sizeof(journal_role)];

		vsnprintf(line, sizeof(line), fmt, ap);
		pthread_mutex_lock(&fields_lock);
		memcpy(vm, vm_name, sizeof(vm));
		memcpy(role, journal_role, sizeof(role));
		pthread_mutex_unlock(&fields_lock);
		if (!journal_send((int)level, line, vm[0] ? vm : NULL, role, event))
			return;
		/* the journal went away: the line still goes somewhere */
		fprintf(stderr, "colovm%s: %s\n", role_prefix, line);
		return;
	}
	n = snprintf(line, sizeof(line), "colovm%s: %s%s", role_prefix,
		     level <= LOG_WARN ? names[level] : "", level <= LOG_WARN ? ": " : "");
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One fputs per line so lines from different threads never interleave. */
	n = (int)strlen(line);
	if (n && line[n - 1] != '\n' && (size_t)n + 1 < sizeof(line))
		line[n++] = '\n', line[n] = '\0';
	fputs(line, stderr);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	log_line(level, NULL, fmt, ap);
	va_end(ap);
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;

	if (level > cur_level)
		return;
	va_start(ap, fmt);
	log_line(level, event, fmt, ap);
	va_end(ap);
}
