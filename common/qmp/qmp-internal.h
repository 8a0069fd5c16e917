/* SPDX-License-Identifier: GPL-2.0-only */
/* qmp: private to the module (qmp.c and qmp-runstate.c). */
#ifndef COLOVM_QMP_INTERNAL_H
#define COLOVM_QMP_INTERNAL_H

#include "common/qmp/qmp.h"

struct qmp_cmd;
struct qmp_client;
struct runstate_hook;

struct qmp {
	struct loop *loop;
	int lfd; /* listening socket, -1 when none */
	char *path;
	struct qmp_client *clients;
	size_t nclients;
	struct qmp_cmd *cmds;
	struct runstate *rs; /* attached run-state, or NULL */
	struct runstate_hook *hook;
};

void qmp_detach_runstate(struct qmp *qmp);

#endif
