/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * config: colovm's options, from the command line and from an INI file
 * (libinih), through one table. Every `colovm run` flag is a key of a VM
 * config and every `colovm witness` flag a key of a witness config, with
 * the same name (but --colo: key "role"), the same default and the same
 * checks; a flag given on the command line overrides the file's key.
 *
 *   [vm]        name kernel initrd cmdline mem cpus mem-prealloc reboot
 *               shutdown-timeout serial net* disk* restore incoming qmp
 *               metrics verbose quiet
 *   [colo]      role peer listen peer-key witness witness-key
 *               disk-buffer-mem checkpoint-interval compare-timeout heartbeat-interval
 *               heartbeat-misses
 *   [migration] downtime-limit max-bandwidth
 *   [witness]   listen peer-key state metrics verbose quiet
 *
 * (* repeatable: each line adds a device, in order; --net/--disk on the
 * command line replace the file's list.) A file holds a VM ([vm], [colo],
 * [migration]) or a witness ([witness]), never both. Booleans: true/false,
 * yes/no, on/off, 1/0. A ';' after whitespace starts a comment, as does a
 * line starting with ';' or '#'.
 *
 * Errors are reported with the line they come from (0: the command line)
 * through a callback; nothing here exits or prints.
 */
#ifndef COLOVM_CONFIG_H
#define COLOVM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The options; their table (config.c) says section, key, flag, type, range. */
enum config_opt {
	/* colovm run */
	CFG_NAME,
	CFG_KERNEL,
	CFG_INITRD,
	CFG_CMDLINE,
	CFG_MEM,
	CFG_CPUS,
	CFG_MEM_PREALLOC,
	CFG_REBOOT,
	CFG_SHUTDOWN_TIMEOUT,
	CFG_SERIAL,
	CFG_NET,
	CFG_DISK,
	CFG_RESTORE,
	CFG_INCOMING,
	CFG_QMP,
	CFG_METRICS,
	CFG_VERBOSE,
	CFG_QUIET,
	CFG_ROLE,
	CFG_PEER,
	CFG_LISTEN,
	CFG_PEER_KEY,
	CFG_WITNESS,
	CFG_WITNESS_KEY,
	CFG_DISK_BUFFER_MEM,
	CFG_CHECKPOINT_INTERVAL,
	CFG_COMPARE_TIMEOUT,
	CFG_HEARTBEAT_INTERVAL,
	CFG_HEARTBEAT_MISSES,
	CFG_DOWNTIME_LIMIT,
	CFG_MAX_BANDWIDTH,
	/* colovm witness */
	CFG_W_LISTEN,
	CFG_W_PEER_KEY,
	CFG_W_STATE,
	CFG_W_METRICS,
	CFG_W_VERBOSE,
	CFG_W_QUIET,
	CFG__COUNT,
};

enum config_kind {
	CONFIG_RUN,	/* colovm run: [vm], [colo], [migration] */
	CONFIG_WITNESS, /* colovm witness: [witness] */
};

#define CONFIG_LIST_MAX 16 /* --net, --disk: devices of each kind */
#define CONFIG_MAX_LINE 4096

struct config_value {
	bool set;	   /* given (file or command line); else the default */
	unsigned int line; /* where: 0 the command line (or the default) */
	const char *str;   /* strings (owned by the config) */
	uint64_t num;	   /* numbers, booleans (0/1) */
	/* lists (net, disk): str unused */
	unsigned int n;
	const char *item[CONFIG_LIST_MAX];
	unsigned int item_line[CONFIG_LIST_MAX];
};

/* One error: line 0 is the command line (or no line: a missing key). */
typedef void (*config_report_fn)(void *opaque, const char *file, unsigned int line,
				 const char *msg);

struct config {
	enum config_kind kind;
	const char *file; /* the config file's path, or NULL */
	struct config_value v[CFG__COUNT];
	config_report_fn report;
	void *opaque;
	unsigned int errors;
	/* private */
	char **strings;
	unsigned int nstrings;
	unsigned int cur_line;
};

/* Defaults in, nothing set. report may be NULL (errors only counted). */
void config_init(struct config *c, enum config_kind kind, config_report_fn report, void *opaque);
void config_free(struct config *c);

/* The INI file at path into c (each key an option, as if given at its line).
 * The kind is what c was made for; a file of the other kind is an error.
 * Returns the number of errors found (each reported), or -errno when the
 * file cannot be read (reported too). */
int config_load_file(struct config *c, const char *path);
/* The same from memory (fuzzing, tests): name is the file name in errors. */
int config_load_buffer(struct config *c, const char *name, const char *buf, size_t len);

/*
 * The command line: getopt_long over argv (argv[0] the command's name) with
 * the options of c's kind plus --config FILE (in *config_file), --help
 * (*help = true) and --version. Values and errors as for a file, at line 0.
 * Returns the number of errors.
 */
int config_parse_args(struct config *c, int argc, char **argv, const char **config_file,
		      bool *help);

/* Every option set in src replaces dst's (a list replaces the whole list).
 * Strings stay owned by src: free dst before src. */
void config_merge(struct config *dst, const struct config *src);

/*
 * The checks a run (or a witness) makes before it starts: required
 * options, options that need or exclude others (role keys), URI shapes,
 * serial; files (kernel, initrd, disks, key files, restore) must be
 * readable when check_files. Returns the number of errors.
 */
int config_check(struct config *c, bool check_files);

/* Accessors (the default when not set). */
const char *config_str(const struct config *c, enum config_opt o);
uint64_t config_num(const struct config *c, enum config_opt o);
bool config_bool(const struct config *c, enum config_opt o);
/* "--flag" when o came from the command line, else "key" (for messages). */
const char *config_name(const struct config *c, enum config_opt o);
/* The VM's name: name, else the config file's basename without ".conf",
 * else NULL. buf holds the result when it is derived. */
const char *config_vm_name(const struct config *c, char *buf, size_t len);

/* The key of option o in its section (for the tuning options, also the
 * name of its QMP migrate-set-parameters argument). */
const char *config_key(enum config_opt o);
/* A file's kind by its first section: [witness] a witness's, else a VM's. */
enum config_kind config_guess_kind(const char *buf, size_t len);

#endif
