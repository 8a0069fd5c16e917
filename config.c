/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * config: one table of options drives getopt_long and the INI keys
 * (libinih), so that a flag and its key cannot drift apart (config.h).
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "config.h"
#include "primary/primary.h"
#include "secondary/secondary.h"
#include "transport/transport.h"

enum opt_type { T_STR, T_NUM, T_BOOL, T_LIST, T_ROLE };

struct opt_desc {
	enum config_kind kind;
	const char *section;
	const char *key;
	const char *flag; /* the long option, without "--" */
	char short_flag;  /* 0: none */
	enum opt_type type;
	uint64_t min, max, def; /* T_NUM; T_BOOL: def */
	const char *def_str;	/* T_STR */
	const char *arg;	/* the argument's name in messages ("FILE") */
};

#define RUN(sec, k, f, s, t)                                                                       \
	.kind = CONFIG_RUN, .section = sec, .key = k, .flag = f, .short_flag = s, .type = t
#define WIT(k, f, t)   .kind = CONFIG_WITNESS, .section = "witness", .key = k, .flag = f, .type = t
#define NUM(lo, hi, d) .min = lo, .max = hi, .def = d

static const struct opt_desc opts[CFG__COUNT] = {
    [CFG_NAME] = {RUN("vm", "name", "name", 0, T_STR), .arg = "NAME"},
    [CFG_KERNEL] = {RUN("vm", "kernel", "kernel", 'k', T_STR), .arg = "FILE"},
    [CFG_INITRD] = {RUN("vm", "initrd", "initrd", 'i', T_STR), .arg = "FILE"},
    [CFG_CMDLINE] = {RUN("vm", "cmdline", "cmdline", 'c', T_STR), .arg = "STR"},
    [CFG_MEM] = {RUN("vm", "mem", "mem", 'm', T_NUM), NUM(16, 1024 * 1024, 256), .arg = "MIB"},
    [CFG_CPUS] = {RUN("vm", "cpus", "cpus", 'n', T_NUM), NUM(1, 64, 1), .arg = "N"},
    [CFG_MEM_PREALLOC] = {RUN("vm", "mem-prealloc", "mem-prealloc", 0, T_BOOL)},
    [CFG_REBOOT] = {RUN("vm", "reboot", "reboot", 0, T_BOOL)},
    [CFG_SHUTDOWN_TIMEOUT] = {RUN("vm", "shutdown-timeout", "shutdown-timeout", 0, T_NUM),
			      NUM(0, 86400, 30), .arg = "SECONDS"},
    [CFG_SERIAL] = {RUN("vm", "serial", "serial", 's', T_STR), .def_str = "stdio", .arg = "SPEC"},
    [CFG_NET] = {RUN("vm", "net", "net", 0, T_LIST), .arg = "SPEC"},
    [CFG_DISK] = {RUN("vm", "disk", "disk", 0, T_LIST), .arg = "SPEC"},
    [CFG_RESTORE] = {RUN("vm", "restore", "restore", 0, T_STR), .arg = "FILE"},
    [CFG_INCOMING] = {RUN("vm", "incoming", "incoming", 0, T_STR), .arg = "URI"},
    [CFG_QMP] = {RUN("vm", "qmp", "qmp", 0, T_STR), .arg = "unix:PATH[,server]"},
    [CFG_METRICS] = {RUN("vm", "metrics", "metrics", 0, T_STR), .arg = "tcp:ADDR:PORT"},
    [CFG_VERBOSE] = {RUN("vm", "verbose", "verbose", 'v', T_BOOL)},
    [CFG_QUIET] = {RUN("vm", "quiet", "quiet", 'q', T_BOOL)},
    [CFG_ROLE] = {RUN("colo", "role", "colo", 0, T_ROLE), .arg = "primary|secondary"},
    [CFG_PEER] = {RUN("colo", "peer", "peer", 0, T_STR), .arg = "tcp:HOST:PORT|rdma:HOST:PORT"},
    [CFG_LISTEN] = {RUN("colo", "listen", "listen", 0, T_STR),
		    .arg = "tcp:HOST:PORT|rdma:HOST:PORT"},
    [CFG_PEER_KEY] = {RUN("colo", "peer-key", "peer-key", 0, T_STR), .arg = "FILE"},
    [CFG_WITNESS] = {RUN("colo", "witness", "witness", 0, T_STR), .arg = "tcp:HOST:PORT"},
    [CFG_WITNESS_KEY] = {RUN("colo", "witness-key", "witness-key", 0, T_STR), .arg = "FILE"},
    [CFG_DISK_BUFFER_MEM] = {RUN("colo", "disk-buffer-mem", "disk-buffer-mem", 0, T_NUM),
			     NUM(0, 65536, SECONDARY_DISK_BUFFER_MEM_DEFAULT), .arg = "MIB"},
    [CFG_CHECKPOINT_INTERVAL] = {RUN("colo", "checkpoint-interval", "checkpoint-interval", 0,
				     T_NUM),
				 NUM(PRIMARY_CKPT_INTERVAL_MIN, PRIMARY_CKPT_INTERVAL_MAX,
				     PRIMARY_CKPT_INTERVAL_DEFAULT),
				 .arg = "MS"},
    [CFG_COMPARE_TIMEOUT] = {RUN("colo", "compare-timeout", "compare-timeout", 0, T_NUM),
			     NUM(PRIMARY_COMPARE_TIMEOUT_MIN, PRIMARY_COMPARE_TIMEOUT_MAX,
				 PRIMARY_COMPARE_TIMEOUT_DEFAULT),
			     .arg = "MS"},
    [CFG_HEARTBEAT_INTERVAL] = {RUN("colo", "heartbeat-interval", "heartbeat-interval", 0, T_NUM),
				NUM(PRIMARY_HEARTBEAT_INTERVAL_MIN, PRIMARY_HEARTBEAT_INTERVAL_MAX,
				    PRIMARY_HEARTBEAT_INTERVAL_DEFAULT),
				.arg = "MS"},
    [CFG_HEARTBEAT_MISSES] = {RUN("colo", "heartbeat-misses", "heartbeat-misses", 0, T_NUM),
			      NUM(PRIMARY_HEARTBEAT_MISSES_MIN, PRIMARY_HEARTBEAT_MISSES_MAX,
				  PRIMARY_HEARTBEAT_MISSES_DEFAULT),
			      .arg = "N"},
    [CFG_DOWNTIME_LIMIT] = {RUN("migration", "downtime-limit", "downtime-limit", 0, T_NUM),
			    NUM(PRIMARY_DOWNTIME_LIMIT_MIN, PRIMARY_DOWNTIME_LIMIT_MAX,
				PRIMARY_DOWNTIME_LIMIT_DEFAULT),
			    .arg = "MS"},
    [CFG_MAX_BANDWIDTH] = {RUN("migration", "max-bandwidth", "max-bandwidth", 0, T_NUM),
			   NUM(0, INT64_MAX, PRIMARY_MAX_BANDWIDTH_DEFAULT), .arg = "BYTES"},
    [CFG_W_LISTEN] = {WIT("listen", "listen", T_STR), .arg = "tcp:HOST:PORT"},
    [CFG_W_PEER_KEY] = {WIT("peer-key", "peer-key", T_STR), .arg = "FILE"},
    [CFG_W_STATE] = {WIT("state", "state", T_STR), .arg = "FILE"},
    [CFG_W_METRICS] = {WIT("metrics", "metrics", T_STR), .arg = "tcp:ADDR:PORT"},
    [CFG_W_VERBOSE] = {WIT("verbose", "verbose", T_BOOL), .short_flag = 'v'},
    [CFG_W_QUIET] = {WIT("quiet", "quiet", T_BOOL), .short_flag = 'q'},
};

static const char *const run_sections[] = {"vm", "colo", "migration"};

/* ---- errors ---------------------------------------------------------------- */

static void PRINTF_LIKE(3, 4) error_at(struct config *c, unsigned int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	c->errors++;
	if (!c->report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->report(c->opaque, line ? c->file : NULL, line, msg);
}

/* An error about a whole file (a missing key): "FILE: msg", or with no file
 * the command line's. */
static void PRINTF_LIKE(2, 3) error_file(struct config *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	c->errors++;
	if (!c->report)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->report(c->opaque, c->file, 0, msg);
}

/* ---- values ---------------------------------------------------------------- */

void config_init(struct config *c, enum config_kind kind, config_report_fn report, void *opaque)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->report = report;
	c->opaque = opaque;
}

void config_free(struct config *c)
{
	for (unsigned int i = 0; i < c->nstrings; i++)
		free(c->strings[i]);
	free(c->strings);
	c->strings = NULL;
	c->nstrings = 0;
}

static const char *keep(struct config *c, const char *s)
{
	char **n = realloc(c->strings, (c->nstrings + 1) * sizeof(*n));
	char *d;

	if (!n)
		return NULL;
	c->strings = n;
	d = strdup(s);
	if (!d)
		return NULL;
	c->strings[c->nstrings++] = d;
	return d;
}

static bool from_cmdline(const struct config *c, enum config_opt o)
{
	return !c->file || (c->v[o].set && !c->v[o].line);
}

const char *config_name(const struct config *c, enum config_opt o)
{
	static _Thread_local char buf[4][64];
	static _Thread_local unsigned int next;
	char *b = buf[next++ % ARRAY_SIZE(buf)];

	if (from_cmdline(c, o))
		snprintf(b, sizeof(buf[0]), "--%s", opts[o].flag);
	else
		snprintf(b, sizeof(buf[0]), "%s", opts[o].key);
	return b;
}

/* "--colo primary" or "role = primary": an option with its value. */
static const char *name_value(const struct config *c, enum config_opt o, const char *v)
{
	static _Thread_local char buf[4][160];
	static _Thread_local unsigned int next;
	char *b = buf[next++ % ARRAY_SIZE(buf)];

	if (from_cmdline(c, o))
		snprintf(b, sizeof(buf[0]), "--%s %s", opts[o].flag, v);
	else
		snprintf(b, sizeof(buf[0]), "%s = %s", opts[o].key, v);
	return b;
}

const char *config_str(const struct config *c, enum config_opt o)
{
	return c->v[o].set ? c->v[o].str : opts[o].def_str;
}

uint64_t config_num(const struct config *c, enum config_opt o)
{
	return c->v[o].set ? c->v[o].num : opts[o].def;
}

bool config_bool(const struct config *c, enum config_opt o)
{
	return config_num(c, o) != 0;
}

const char *config_vm_name(const struct config *c, char *buf, size_t len)
{
	const char *base, *dot;

	if (c->v[CFG_NAME].set)
		return c->v[CFG_NAME].str;
	if (!c->file || !len)
		return NULL;
	base = strrchr(c->file, '/');
	base = base ? base + 1 : c->file;
	dot = strrchr(base, '.');
	if (!dot || strcmp(dot, ".conf") || dot == base)
		dot = base + strlen(base);
	snprintf(buf, len, "%.*s", (int)(dot - base), base);
	return buf;
}

static bool parse_bool(const char *s, uint64_t *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (unsigned int i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i]))
			return *out = 1, true;
		if (!strcasecmp(s, no[i]))
			return *out = 0, true;
	}
	return false;
}

/* Set option o to the text value (a flag's argument at line 0, a key's at
 * line): parse and range-check it. Booleans from a flag come as NULL. */
static void set_value(struct config *c, enum config_opt o, const char *val, unsigned int line)
{
	const struct opt_desc *d = &opts[o];
	struct config_value *v = &c->v[o];
	const char *what = line ? d->key : d->flag, *dash = line ? "" : "--";
	uint64_t n = 0;
	int r;

	if (line && v->set && v->line && d->type != T_LIST) {
		error_at(c, line, "%s: given again (first at line %u)", d->key, v->line);
		return;
	}
	if (line && !*val) {
		error_at(c, line, "%s: no value (expected %s)", d->key,
			 d->type == T_BOOL ? "true or false" : d->arg);
		return;
	}
	switch (d->type) {
	case T_BOOL:
		if (!val) {
			n = 1;
		} else if (!parse_bool(val, &n)) {
			error_at(c, line, "%s%s '%s': expected true or false", dash, what, val);
			return;
		}
		v->num = n;
		break;
	case T_NUM:
		r = parse_u64(val, d->min, d->max, &n);
		if (r) {
			error_at(c, line, "%s%s '%s': %s (expected %llu..%llu)", dash, what, val,
				 r == -ERANGE ? "out of range" : "not a number",
				 (unsigned long long)d->min, (unsigned long long)d->max);
			return;
		}
		v->num = n;
		break;
	case T_ROLE:
		if (strcmp(val, "primary") && strcmp(val, "secondary")) {
			error_at(c, line, "%s%s '%s': expected primary or secondary", dash, what,
				 val);
			return;
		}
		/* fall through */
	case T_STR:
		v->str = keep(c, val);
		if (!v->str) {
			error_at(c, line, "out of memory");
			return;
		}
		break;
	case T_LIST:
		if (v->n == CONFIG_LIST_MAX) {
			error_at(c, line, "too many %s%s (at most %d)", dash, what,
				 CONFIG_LIST_MAX);
			return;
		}
		v->item[v->n] = keep(c, val);
		if (!v->item[v->n]) {
			error_at(c, line, "out of memory");
			return;
		}
		v->item_line[v->n++] = line;
		break;
	}
	v->set = true;
	v->line = line;
}

/* ---- the file -------------------------------------------------------------- */

struct reader {
	struct config *c;
	const char *buf;
	size_t len, off;
	char section[64]; /* the section being read */
	bool in_section;  /* a section line was read */
	bool section_ok;  /* it is one of this kind's (and well formed) */
};

static bool run_section(const char *s)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(run_sections); i++)
		if (!strcmp(s, run_sections[i]))
			return true;
	return false;
}

static bool section_known(const struct config *c, const char *s)
{
	return c->kind == CONFIG_WITNESS ? !strcmp(s, "witness") : run_section(s);
}

enum config_kind config_guess_kind(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *line = buf + i, *nl = memchr(line, '\n', len - i);
		size_t n = nl ? (size_t)(nl - line) : len - i;

		while (n && (*line == ' ' || *line == '\t'))
			line++, n--;
		if (n >= 9 && !memcmp(line, "[witness]", 9))
			return CONFIG_WITNESS;
		if (n && *line == '[')
			return CONFIG_RUN;
		i += (nl ? (size_t)(nl - (buf + i)) + 1 : len - i);
	}
	return CONFIG_RUN;
}

const char *config_key(enum config_opt o)
{
	return opts[o].key;
}

/* A section line "[name]" (after blanks): check its name. */
static void section_line(struct reader *r, const char *line)
{
	struct config *c = r->c;
	const char *end = strchr(line, ']');
	size_t n = end ? (size_t)(end - line - 1) : 0;

	r->in_section = true;
	if (!end || n >= sizeof(r->section)) {
		/* inih reports a missing ']' (an error line of its own) */
		snprintf(r->section, sizeof(r->section), "?");
		r->section_ok = false;
		return;
	}
	memcpy(r->section, line + 1, n);
	r->section[n] = '\0';
	r->section_ok = section_known(c, r->section);
	if (r->section_ok)
		return;
	if (c->kind == CONFIG_RUN && !strcmp(r->section, "witness"))
		error_at(c, c->cur_line,
			 "[witness] belongs in a witness's config (colovm witness --config), "
			 "not a VM's");
	else if (c->kind == CONFIG_WITNESS && run_section(r->section))
		error_at(c, c->cur_line,
			 "[%s] belongs in a VM's config (colovm run --config), not a witness's",
			 r->section);
	else
		error_at(c, c->cur_line, "unknown section [%s] (expected %s)", r->section,
			 c->kind == CONFIG_WITNESS ? "[witness]" : "[vm], [colo] or [migration]");
}

/* A ';' after whitespace, outside double quotes, starts a comment: the
 * line ends there (Debian's libinih is built without inline comments). */
static void strip_comment(char *line)
{
	bool quoted = false;

	for (char *q = line; *q; q++) {
		if (*q == '"')
			quoted = !quoted;
		else if (*q == ';' && !quoted && q > line && (q[-1] == ' ' || q[-1] == '\t')) {
			*q = '\0';
			return;
		}
	}
}

/* inih's reader (fgets's contract): one line at a time, counted, checked
 * for what inih would take silently (NUL bytes, a line too long). */
static char *read_line(char *str, int num, void *stream)
{
	struct reader *r = stream;
	struct config *c = r->c;
	size_t i = 0, start;
	const char *p;

	if (r->off >= r->len || num < 2)
		return NULL;
	c->cur_line++;
	start = r->off;
	while (i < (size_t)num - 1 && r->off < r->len) {
		char ch = r->buf[r->off++];

		str[i++] = ch;
		if (ch == '\n')
			break;
	}
	str[i] = '\0';
	if (str[i - 1] != '\n' && r->off < r->len) {
		error_at(c, c->cur_line, "line too long (at most %d characters)",
			 CONFIG_MAX_LINE - 3);
		/* skip the rest of it: inih sees the part read as the line */
		while (r->off < r->len && r->buf[r->off++] != '\n')
			;
	}
	if (memchr(r->buf + start, '\0', r->off - start)) {
		error_at(c, c->cur_line, "a NUL byte in the line");
		str[0] = '\0';
		return str;
	}
	strip_comment(str);
	for (p = str; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '[')
		section_line(r, p);
	return str;
}

/* Strip one pair of double quotes around a whole value. */
static const char *unquote(const char *v, char *buf, size_t len)
{
	size_t n = strlen(v);

	if (n < 2 || v[0] != '"' || v[n - 1] != '"' || n - 2 >= len)
		return v;
	memcpy(buf, v + 1, n - 2);
	buf[n - 2] = '\0';
	return buf;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct reader *r = user;
	struct config *c = r->c;
	char buf[CONFIG_MAX_LINE];

	if (!r->in_section) {
		error_at(c, c->cur_line, "'%s' outside a section (expected %s first)", name,
			 c->kind == CONFIG_WITNESS ? "[witness]" : "[vm], [colo] or [migration]");
		return 1;
	}
	if (!r->section_ok)
		return 1; /* the section's line said what is wrong */
	for (unsigned int o = 0; o < CFG__COUNT; o++) {
		if (opts[o].kind != c->kind || strcmp(opts[o].section, section) ||
		    strcmp(opts[o].key, name))
			continue;
		set_value(c, o, unquote(value, buf, sizeof(buf)), c->cur_line);
		return 1;
	}
	for (unsigned int o = 0; o < CFG__COUNT; o++) {
		if (opts[o].kind == c->kind && !strcmp(opts[o].key, name)) {
			error_at(c, c->cur_line, "'%s' belongs in [%s], not [%s]", name,
				 opts[o].section, section);
			return 1;
		}
	}
	error_at(c, c->cur_line, "unknown key '%s' in [%s]", name, section);
	return 1;
}

int config_load_buffer(struct config *c, const char *name, const char *buf, size_t len)
{
	struct reader r = {.c = c, .buf = buf, .len = len};
	unsigned int before = c->errors;
	int ret;

	c->file = keep(c, name);
	if (!c->file)
		return -ENOMEM;
	c->cur_line = 0;
	/* Debian's libinih takes these at run time. One key per line (no
	 * continuation lines: a line number per value), long lines on the heap. */
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = CONFIG_MAX_LINE;
	ini_allow_no_value = false;
	ini_allow_inline_comments = false;
	ini_stop_on_first_error = false;
	ret = ini_parse_stream(read_line, &r, on_key, &r);
	if (ret == -2)
		return -ENOMEM;
	if (ret > 0) /* the first line inih could not parse; ours are reported */
		error_at(c, (unsigned int)ret,
			 "syntax error (expected [section], key = value, or a comment)");
	return (int)(c->errors - before);
}

int config_load_file(struct config *c, const char *path)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret = file_read_all(path, &buf, &len);

	if (ret) {
		c->errors++;
		if (c->report) {
			char msg[512];

			snprintf(msg, sizeof(msg), "cannot read %s: %s", path, strerror(-ret));
			c->report(c->opaque, NULL, 0, msg);
		}
		return ret;
	}
	ret = config_load_buffer(c, path, (const char *)buf, len);
	free(buf);
	return ret;
}

/* ---- the command line ------------------------------------------------------- */

#define OPT_CONFIG 1000
#define OPT_HELP   'h'
#define OPT_BASE   2000

int config_parse_args(struct config *c, int argc, char **argv, const char **config_file, bool *help)
{
	struct option lo[CFG__COUNT + 3];
	char so[64] = ":h";
	unsigned int n = 0, before = c->errors;
	size_t sl = strlen(so);
	int opt;

	for (unsigned int o = 0; o < CFG__COUNT; o++) {
		if (opts[o].kind != c->kind)
			continue;
		lo[n++] = (struct option){opts[o].flag,
					  opts[o].type == T_BOOL ? no_argument : required_argument,
					  NULL, OPT_BASE + (int)o};
		if (opts[o].short_flag && sl + 3 < sizeof(so)) {
			so[sl++] = opts[o].short_flag;
			if (opts[o].type != T_BOOL)
				so[sl++] = ':';
			so[sl] = '\0';
		}
	}
	lo[n++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	lo[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
	lo[n] = (struct option){NULL, 0, NULL, 0};
	*help = false;
	optind = 0; /* glibc: start afresh (a cluster like -vq left half read) */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, so, lo, NULL)) != -1) {
		if (opt >= OPT_BASE && opt < OPT_BASE + CFG__COUNT) {
			set_value(c, opt - OPT_BASE, optarg, 0);
			continue;
		}
		switch (opt) {
		case OPT_CONFIG:
			if (config_file)
				*config_file = optarg;
			continue;
		case OPT_HELP:
			*help = true;
			return 0;
		case ':':
			error_at(c, 0, "option '%s' needs an argument", argv[optind - 1]);
			continue;
		case '?':
			error_at(c, 0, "unknown option '%s'", argv[optind - 1]);
			continue;
		}
		for (unsigned int o = 0; o < CFG__COUNT; o++) {
			if (opts[o].kind == c->kind && opts[o].short_flag == opt) {
				set_value(c, o, opts[o].type == T_BOOL ? NULL : optarg, 0);
				break;
			}
		}
	}
	if (optind < argc)
		error_at(c, 0, "unexpected argument '%s'", argv[optind]);
	return (int)(c->errors - before);
}

void config_merge(struct config *dst, const struct config *src)
{
	for (unsigned int o = 0; o < CFG__COUNT; o++)
		if (src->v[o].set)
			dst->v[o] = src->v[o];
}

/* ---- checks ---------------------------------------------------------------- */

static unsigned int line_of(const struct config *c, enum config_opt o)
{
	return c->v[o].set ? c->v[o].line : 0;
}

static bool has_prefix(const char *s, const char *p)
{
	return !strncmp(s, p, strlen(p));
}

static bool is_set(const struct config *c, enum config_opt o)
{
	return c->v[o].set;
}

/* An error about option o: at its line, or the command line's. */
#define opt_error(c, o, ...) error_at(c, line_of(c, o), __VA_ARGS__)

static void check_uri(struct config *c, enum config_opt o, bool rdma)
{
	const char *v = config_str(c, o);

	if (!is_set(c, o) || (has_prefix(v, "tcp:") && v[4]) ||
	    (rdma && has_prefix(v, "rdma:") && v[5]))
		return;
	opt_error(c, o, "%s %s: expected tcp:HOST:PORT%s", config_name(c, o), v,
		  rdma ? " or rdma:HOST:PORT" : "");
}

static void check_file(struct config *c, enum config_opt o, const char *path, unsigned int line,
		       const char *what)
{
	struct stat st;

	if (stat(path, &st) || access(path, R_OK))
		error_at(c, line, "cannot read %s %s: %s", what, path, strerror(errno));
	else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		error_at(c, line, "%s %s: not a regular file", what, path);
}

static void check_key(struct config *c, enum config_opt o)
{
	struct transport_key key;
	int r;

	if (!is_set(c, o))
		return;
	r = transport_key_load(config_str(c, o), &key);
	memset(&key, 0, sizeof(key));
	if (r)
		opt_error(c, o, "%s %s: %s", config_name(c, o), config_str(c, o),
			  r == -EINVAL ? "not a key (32 bytes, or 64 hex digits)" : strerror(-r));
}

static void check_name(struct config *c)
{
	const char *s = config_str(c, CFG_NAME);

	if (!is_set(c, CFG_NAME))
		return;
	if (!s[0] || strlen(s) > 64 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_.-") != strlen(s) ||
	    s[0] == '.' || s[0] == '-')
		opt_error(c, CFG_NAME,
			  "%s '%s': expected 1 to 64 letters, digits, '_', '.' or '-' "
			  "(not first: '.', '-')",
			  config_name(c, CFG_NAME), s);
}

static void check_serial(struct config *c)
{
	const char *s = config_str(c, CFG_SERIAL);

	if (strcmp(s, "stdio") && strcmp(s, "none") && !(has_prefix(s, "file:") && s[5]))
		opt_error(c, CFG_SERIAL, "%s %s: expected stdio, file:PATH or none",
			  config_name(c, CFG_SERIAL), s);
}

/* The metrics endpoint is the other half of issue #16: the key is kept
 * for it, and refused until it is built. */
static void check_metrics(struct config *c, enum config_opt o)
{
	const char *v = config_str(c, o);

	if (is_set(c, o) && strncmp(v, "tcp:", 4))
		opt_error(c, o, "%s %s: expected tcp:HOST:PORT", config_name(c, o), v);
}

static int check_witness_cfg(struct config *c, bool check_files)
{
	const char *l = config_str(c, CFG_W_LISTEN);

	if (!is_set(c, CFG_W_LISTEN))
		error_file(c, "witness: %s tcp:HOST:PORT is required",
			   c->file ? "listen =" : "--listen");
	else if (!has_prefix(l, "tcp:") || !l[4])
		opt_error(c, CFG_W_LISTEN, "witness: %s %s: expected tcp:HOST:PORT",
			  config_name(c, CFG_W_LISTEN), l);
	if (config_bool(c, CFG_W_VERBOSE) && config_bool(c, CFG_W_QUIET))
		opt_error(c, CFG_W_QUIET, "%s excludes %s", config_name(c, CFG_W_QUIET),
			  config_name(c, CFG_W_VERBOSE));
	check_metrics(c, CFG_W_METRICS);
	if (check_files)
		check_key(c, CFG_W_PEER_KEY);
	return 0;
}

int config_check(struct config *c, bool check_files)
{
	unsigned int before = c->errors;
	const char *role = config_str(c, CFG_ROLE);
	bool primary = role && !strcmp(role, "primary");
	bool secondary = role && !strcmp(role, "secondary");

	if (c->kind == CONFIG_WITNESS) {
		check_witness_cfg(c, check_files);
		return (int)(c->errors - before);
	}
	if (!is_set(c, CFG_KERNEL))
		error_file(c, "run: %s is required",
			   c->file ? "kernel = FILE (in [vm]) or --kernel FILE" : "--kernel FILE");
	if (primary && !is_set(c, CFG_PEER))
		opt_error(c, CFG_ROLE, "run: %s needs %s tcp:HOST:PORT|rdma:HOST:PORT",
			  name_value(c, CFG_ROLE, role), config_name(c, CFG_PEER));
	if (secondary && !is_set(c, CFG_LISTEN))
		opt_error(c, CFG_ROLE, "run: %s needs %s tcp:HOST:PORT|rdma:HOST:PORT",
			  name_value(c, CFG_ROLE, role), config_name(c, CFG_LISTEN));
	if (is_set(c, CFG_PEER) && !primary)
		opt_error(c, CFG_PEER, "run: %s goes with %s", config_name(c, CFG_PEER),
			  name_value(c, CFG_ROLE, "primary"));
	if (is_set(c, CFG_LISTEN) && !secondary)
		opt_error(c, CFG_LISTEN, "run: %s goes with %s", config_name(c, CFG_LISTEN),
			  name_value(c, CFG_ROLE, "secondary"));
	if (role && is_set(c, CFG_RESTORE))
		opt_error(c, CFG_RESTORE, "run: %s excludes %s", config_name(c, CFG_ROLE),
			  config_name(c, CFG_RESTORE));
	if (role && is_set(c, CFG_INCOMING))
		opt_error(c, CFG_INCOMING, "run: %s excludes %s", config_name(c, CFG_ROLE),
			  config_name(c, CFG_INCOMING));
	if (is_set(c, CFG_RESTORE) && is_set(c, CFG_INCOMING))
		opt_error(c, CFG_INCOMING, "run: %s and %s exclude each other",
			  config_name(c, CFG_RESTORE), config_name(c, CFG_INCOMING));
	if (is_set(c, CFG_WITNESS_KEY) && !is_set(c, CFG_WITNESS))
		opt_error(c, CFG_WITNESS_KEY, "run: %s goes with %s",
			  config_name(c, CFG_WITNESS_KEY), config_name(c, CFG_WITNESS));
	if (config_bool(c, CFG_VERBOSE) && config_bool(c, CFG_QUIET))
		opt_error(c, CFG_QUIET, "%s excludes %s", config_name(c, CFG_QUIET),
			  config_name(c, CFG_VERBOSE));
	check_uri(c, CFG_WITNESS, false);
	check_uri(c, CFG_PEER, true);
	check_uri(c, CFG_LISTEN, true);
	check_uri(c, CFG_INCOMING, true);
	if (is_set(c, CFG_QMP) &&
	    (!has_prefix(config_str(c, CFG_QMP), "unix:") || !config_str(c, CFG_QMP)[5]))
		opt_error(c, CFG_QMP, "%s %s: expected unix:PATH[,server]", config_name(c, CFG_QMP),
			  config_str(c, CFG_QMP));
	check_serial(c);
	check_name(c);
	check_metrics(c, CFG_METRICS);
	if (!check_files)
		return (int)(c->errors - before);
	if (is_set(c, CFG_KERNEL))
		check_file(c, CFG_KERNEL, config_str(c, CFG_KERNEL), line_of(c, CFG_KERNEL),
			   "kernel");
	if (is_set(c, CFG_INITRD))
		check_file(c, CFG_INITRD, config_str(c, CFG_INITRD), line_of(c, CFG_INITRD),
			   "initrd");
	if (is_set(c, CFG_RESTORE))
		check_file(c, CFG_RESTORE, config_str(c, CFG_RESTORE), line_of(c, CFG_RESTORE),
			   "snapshot");
	for (unsigned int i = 0; i < c->v[CFG_DISK].n; i++) {
		const char *spec = c->v[CFG_DISK].item[i];
		char path[CONFIG_MAX_LINE];

		snprintf(path, sizeof(path), "%.*s", (int)strcspn(spec, ","), spec);
		check_file(c, CFG_DISK, path, c->v[CFG_DISK].item_line[i], "disk image");
	}
	check_key(c, CFG_PEER_KEY);
	check_key(c, CFG_WITNESS_KEY);
	return (int)(c->errors - before);
}
