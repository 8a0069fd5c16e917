/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * config_fuzz: arbitrary bytes as a config file (VM's or witness's, by its
 * first section, as colovm check-config reads it) through libinih and the
 * option table, then the run's checks; or, when the input starts with '-',
 * its lines as a command line. Every error is formatted and looked at.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t seen;

static void report(void *opaque, const char *file, unsigned int line, const char *msg)
{
	seen += strlen(msg) + (file ? strlen(file) : 0) + line;
}

static void use(struct config *c)
{
	char name[128];

	for (unsigned int o = 0; o < CFG__COUNT; o++) {
		const char *s = config_str(c, o);

		seen += (s ? strlen(s) : 0) + config_num(c, o) + strlen(config_name(c, o));
		for (unsigned int i = 0; i < c->v[o].n; i++)
			seen += strlen(c->v[o].item[i]);
	}
	if (config_vm_name(c, name, sizeof(name)))
		seen += strlen(name);
}

/* The input's lines as argv (at most 64). */
static void fuzz_args(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1), *argv[66], *p, *save = NULL;
	const char *file = NULL;
	struct config c;
	int argc = 0;
	bool help;

	if (!buf)
		return;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "run";
	for (p = strtok_r(buf, "\n", &save); p && argc < 65; p = strtok_r(NULL, "\n", &save))
		argv[argc++] = p;
	argv[argc] = NULL;
	config_init(&c, data[1] & 1 ? CONFIG_WITNESS : CONFIG_RUN, report, NULL);
	if (!config_parse_args(&c, argc, argv, &file, &help) && !help)
		config_check(&c, false);
	use(&c);
	config_free(&c);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c, args;

	log_set_level(LOG_ERROR);
	if (size > 1 && data[0] == '-') {
		fuzz_args(data, size);
		return 0;
	}
	config_init(&c, config_guess_kind((const char *)data, size), report, NULL);
	if (config_load_buffer(&c, "fuzz.conf", (const char *)data, size) >= 0) {
		/* a flag over the file, as colovm run --config F --mem 64 does */
		char *argv[] = {"run", c.kind == CONFIG_RUN ? "--mem=64" : "--quiet", NULL};
		bool help;

		config_init(&args, c.kind, report, NULL);
		config_parse_args(&args, 2, argv, NULL, &help);
		config_merge(&c, &args);
		config_check(&c, false);
		use(&c);
		config_free(&c);
		config_free(&args);
		return 0;
	}
	config_free(&c);
	return 0;
}
