/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * log.c's journal side, apart because <systemd/sd-journal.h> brings
 * <syslog.h>, whose LOG_INFO/LOG_DEBUG macros are common.h's enum names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "common/journal.h"

bool journal_stream_is_stderr(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd: "DEVICE:INODE" of the stream it connected stdout/stderr to */
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int journal_send(int level, const char *msg, const char *vm, const char *role, const char *event)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	int p = level >= 0 && level < 4 ? prio[level] : LOG_INFO;

	/* sd_journal_send takes a NULL-terminated list: leave out empty fields
	 * by ending the list early (the order puts the optional ones last). */
	if (event && vm)
		return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p,
				       "SYSLOG_IDENTIFIER=colovm", "COLOVM_ROLE=%s", role,
				       "COLOVM_EVENT=%s", event, "COLOVM_VM=%s", vm, NULL);
	if (event)
		return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p,
				       "SYSLOG_IDENTIFIER=colovm", "COLOVM_ROLE=%s", role,
				       "COLOVM_EVENT=%s", event, NULL);
	if (vm)
		return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p,
				       "SYSLOG_IDENTIFIER=colovm", "COLOVM_ROLE=%s", role,
				       "COLOVM_VM=%s", vm, NULL);
	return sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", p, "SYSLOG_IDENTIFIER=colovm",
			       "COLOVM_ROLE=%s", role, NULL);
}
