/* SPDX-License-Identifier: GPL-2.0-only */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

static enum log_level cur_level = LOG_INFO;
static char role_prefix[32];

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

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char line[1024];
	va_list ap;
	int n;

	if (level > cur_level)
		return;
	n = snprintf(line, sizeof(line), "colovm%s: %s%s", role_prefix,
		     level <= LOG_WARN ? names[level] : "", level <= LOG_WARN ? ": " : "");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fputs per line so lines from different threads never interleave. */
	n = (int)strlen(line);
	if (n && line[n - 1] != '\n' && (size_t)n + 1 < sizeof(line))
		line[n++] = '\n', line[n] = '\0';
	fputs(line, stderr);
}
