/* SPDX-License-Identifier: GPL-2.0-only */
/* common/ private: log.c's journal side (journal.c). */
#ifndef COLOVM_COMMON_JOURNAL_H
#define COLOVM_COMMON_JOURNAL_H

#include <stdbool.h>

/* $JOURNAL_STREAM names stderr (systemd connected it to the journal). */
bool journal_stream_is_stderr(void);
/* One entry; level: common.h enum log_level; vm, event may be NULL. 0 or -errno. */
int journal_send(int level, const char *msg, const char *vm, const char *role, const char *event);

#endif
