/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * config unit tests: INI files (from memory and from disk) and command lines
 * into the option table; every error class with the line it names; the
 * checks colovm run and colovm witness make; flags over the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/common.h"
#include "config.h"
#include "primary/primary.h"

#define MAX_ERRS 32

static struct {
	unsigned int n;
	unsigned int line[MAX_ERRS];
	char file[MAX_ERRS][128];
	char msg[MAX_ERRS][512];
} errs;

static void collect(void *opaque, const char *file, unsigned int line, const char *msg)
{
	if (errs.n == MAX_ERRS)
		return;
	errs.line[errs.n] = line;
	snprintf(errs.file[errs.n], sizeof(errs.file[0]), "%s", file ? file : "");
	snprintf(errs.msg[errs.n], sizeof(errs.msg[0]), "%s", msg);
	errs.n++;
}

/* Parse text as a file named "t.conf"; the number of errors. */
static int load(struct config *c, enum config_kind kind, const char *text)
{
	memset(&errs, 0, sizeof(errs));
	config_init(c, kind, collect, NULL);
	return config_load_buffer(c, "t.conf", text, strlen(text));
}

/* There is an error at line whose message contains what. */
static void expect_error(unsigned int line, const char *what)
{
	for (unsigned int i = 0; i < errs.n; i++)
		if (errs.line[i] == line && strstr(errs.msg[i], what))
			return;
	for (unsigned int i = 0; i < errs.n; i++)
		print_message("  error %u: line %u: %s\n", i, errs.line[i], errs.msg[i]);
	fail_msg("no error at line %u with '%s'", line, what);
}

/* One error only, at line, containing what: each class alone. */
static void only_error(struct config *c, enum config_kind kind, const char *text, unsigned int line,
		       const char *what)
{
	int n = load(c, kind, text);

	expect_error(line, what);
	if (n != 1 || errs.n != 1) {
		for (unsigned int i = 0; i < errs.n; i++)
			print_message("  error %u: line %u: %s\n", i, errs.line[i], errs.msg[i]);
		fail_msg("%d errors (wanted 1) for:\n%s", n, text);
	}
	assert_string_equal(errs.file[0], "t.conf");
	config_free(c);
}

static const char good_vm[] = "; a protected VM\n"
			      "# both comment styles\n"
			      "\n"
			      "[vm]\n"
			      "name = web-1\n"
			      "kernel = /boot/vmlinuz\n"
			      "initrd = \"/boot/initrd.img\"\n"
			      "cmdline = \"console=ttyS0 root=/dev/vda quiet ; kept\"  ; not kept\n"
			      "mem = 1024 ; MiB\n"
			      "cpus = 2\t; two vCPUs\n"
			      "mem-prealloc = yes\n"
			      "reboot = false\n"
			      "  shutdown-timeout = 0\n"
			      "serial = file:/var/log/colovm/web-1.console ;\n"
			      "net = tap=tap0,mac=52:54:00:00:00:01\n"
			      "net = hook\n"
			      "disk = /var/lib/colovm/web-1.img,direct\n"
			      "qmp = unix:/run/colovm/web-1.qmp,server\n"
			      "[colo]\n"
			      "role = primary\n"
			      "peer : tcp:192.168.77.2:4500\n"
			      "peer-key = /etc/colovm/peer.key\n"
			      "witness = tcp:192.168.78.1:4600\n"
			      "checkpoint-interval = 300\n"
			      "compare-timeout = 0x400\n"
			      "heartbeat-interval = 50\n"
			      "heartbeat-misses = 10\n"
			      "[migration]\n"
			      "downtime-limit = 100\n"
			      "max-bandwidth = 1000000000\n";

static void test_good_vm(void **state)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_RUN, good_vm), 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(config_str(&c, CFG_NAME), "web-1");
	assert_string_equal(config_str(&c, CFG_KERNEL), "/boot/vmlinuz");
	assert_string_equal(config_str(&c, CFG_INITRD), "/boot/initrd.img"); /* unquoted */
	/* (a ';' inside quotes is the value's) */
	assert_string_equal(config_str(&c, CFG_CMDLINE), "console=ttyS0 root=/dev/vda quiet ; kept");
	assert_int_equal(config_num(&c, CFG_MEM), 1024);
	assert_int_equal(config_num(&c, CFG_CPUS), 2);
	assert_true(config_bool(&c, CFG_MEM_PREALLOC));
	assert_false(config_bool(&c, CFG_REBOOT));
	assert_true(c.v[CFG_REBOOT].set);
	assert_int_equal(config_num(&c, CFG_SHUTDOWN_TIMEOUT), 0);
	assert_string_equal(config_str(&c, CFG_SERIAL), "file:/var/log/colovm/web-1.console");
	assert_int_equal(c.v[CFG_NET].n, 2);
	assert_string_equal(c.v[CFG_NET].item[0], "tap=tap0,mac=52:54:00:00:00:01");
	assert_string_equal(c.v[CFG_NET].item[1], "hook");
	assert_int_equal(c.v[CFG_NET].item_line[1], 16);
	assert_int_equal(c.v[CFG_DISK].n, 1);
	assert_string_equal(config_str(&c, CFG_ROLE), "primary");
	assert_string_equal(config_str(&c, CFG_PEER), "tcp:192.168.77.2:4500");
	assert_int_equal(c.v[CFG_PEER].line, 21);
	assert_int_equal(config_num(&c, CFG_CHECKPOINT_INTERVAL), 300);
	assert_int_equal(config_num(&c, CFG_COMPARE_TIMEOUT), 1024);
	assert_int_equal(config_num(&c, CFG_HEARTBEAT_INTERVAL), 50);
	assert_int_equal(config_num(&c, CFG_HEARTBEAT_MISSES), 10);
	assert_int_equal(config_num(&c, CFG_DOWNTIME_LIMIT), 100);
	assert_int_equal(config_num(&c, CFG_MAX_BANDWIDTH), 1000000000);
	assert_null(config_str(&c, CFG_RESTORE));
	/* no file checks: the paths are not on this machine */
	assert_int_equal(config_check(&c, false), 0);
	assert_int_equal(errs.n, 0);
	assert_string_equal(config_name(&c, CFG_PEER), "peer");
	config_free(&c);
}

/* Unset options have colovm run's defaults (and the QMP parameters'). */
static void test_defaults(void **state)
{
	struct config c;
	char buf[64];

	assert_int_equal(load(&c, CONFIG_RUN, "[vm]\nkernel = k\n"), 0);
	assert_int_equal(config_num(&c, CFG_MEM), 256);
	assert_int_equal(config_num(&c, CFG_CPUS), 1);
	assert_int_equal(config_num(&c, CFG_SHUTDOWN_TIMEOUT), 30);
	assert_string_equal(config_str(&c, CFG_SERIAL), "stdio");
	assert_false(config_bool(&c, CFG_REBOOT));
	assert_false(config_bool(&c, CFG_MEM_PREALLOC));
	assert_int_equal(c.v[CFG_NET].n, 0);
	assert_null(config_str(&c, CFG_ROLE));
	assert_int_equal(config_num(&c, CFG_CHECKPOINT_INTERVAL), PRIMARY_CKPT_INTERVAL_DEFAULT);
	assert_int_equal(config_num(&c, CFG_CHECKPOINT_INTERVAL), 200);
	assert_int_equal(config_num(&c, CFG_COMPARE_TIMEOUT), 3000);
	assert_int_equal(config_num(&c, CFG_HEARTBEAT_INTERVAL), 100);
	assert_int_equal(config_num(&c, CFG_HEARTBEAT_MISSES), 8);
	assert_int_equal(config_num(&c, CFG_DOWNTIME_LIMIT), 300);
	assert_int_equal(config_num(&c, CFG_MAX_BANDWIDTH), 0);
	assert_false(c.v[CFG_CHECKPOINT_INTERVAL].set); /* not applied at start */
	assert_int_equal(config_check(&c, false), 0);
	/* the name: the file's basename without .conf */
	assert_string_equal(config_vm_name(&c, buf, sizeof(buf)), "t");
	config_free(&c);
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_null(config_vm_name(&c, buf, sizeof(buf)));
	config_free(&c);
}

static void test_good_witness(void **state)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_WITNESS,
			      "[witness]\nlisten = tcp:0.0.0.0:4600\npeer-key = /k\n"
			      "state = /var/lib/colovm/witness.state\nverbose = on\n"),
			 0);
	assert_string_equal(config_str(&c, CFG_W_LISTEN), "tcp:0.0.0.0:4600");
	assert_string_equal(config_str(&c, CFG_W_STATE), "/var/lib/colovm/witness.state");
	assert_true(config_bool(&c, CFG_W_VERBOSE));
	assert_int_equal(config_check(&c, false), 0);
	config_free(&c);
	assert_int_equal(config_guess_kind("[witness]\n", 10), CONFIG_WITNESS);
	assert_int_equal(config_guess_kind("# x\n  [witness]\n", 16), CONFIG_WITNESS);
	assert_int_equal(config_guess_kind("[vm]\n[witness]\n", 15), CONFIG_RUN);
	assert_int_equal(config_guess_kind("", 0), CONFIG_RUN);
}

/* Each class of error in the file, alone, at its line. */
static void test_file_errors(void **state)
{
	struct config c;
	char *text;

	only_error(&c, CONFIG_RUN, "mem = 64\n", 1, "'mem' outside a section");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[vms]\nmem = 1\n", 3,
		   "unknown section [vms]");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\nmemory = 64\n", 3, "unknown key 'memory'");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\npeer = tcp:a:1\n", 3,
		   "'peer' belongs in [colo], not [vm]");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\nmem = lots\n", 3, "mem 'lots': not a number");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n\nmem = 8\n", 4,
		   "mem '8': out of range (expected 16..1048576)");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\ncpus = 65\n", 3, "cpus '65': out of range");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[colo]\ncheckpoint-interval = 0\n", 4,
		   "checkpoint-interval '0': out of range (expected 1..3600000)");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[colo]\nheartbeat-interval = 9\n", 4,
		   "out of range (expected 10..60000)");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[colo]\nheartbeat-misses = 1001\n", 4,
		   "out of range (expected 2..1000)");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\nreboot = maybe\n", 3,
		   "reboot 'maybe': expected true or false");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[colo]\nrole = tertiary\n", 4,
		   "role 'tertiary': expected primary or secondary");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\nmem = 64\nmem = 128\n", 4,
		   "mem: given again (first at line 3)");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\ninitrd =\n", 3, "initrd: no value");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\nthis is not a key\n", 3, "syntax error");
	only_error(&c, CONFIG_RUN, "[vm\nkernel = k\n", 1, "syntax error");
	only_error(&c, CONFIG_RUN, "[vm]\nkernel = k\n[witness]\nlisten = tcp:a:1\n", 3,
		   "[witness] belongs in a witness's config");
	only_error(&c, CONFIG_WITNESS, "[witness]\nlisten = tcp:a:1\n[colo]\nrole = primary\n", 3,
		   "[colo] belongs in a VM's config");
	only_error(&c, CONFIG_WITNESS, "[witness]\nlisten = tcp:a:1\nmem = 1\n", 3,
		   "unknown key 'mem' in [witness]");
	/* a NUL byte: that line, not a truncated value */
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	{
		static const char nul[] = "[vm]\nkernel = k\nmem = 6\0004\n";

		assert_int_equal(config_load_buffer(&c, "t.conf", nul, sizeof(nul) - 1), 1);
	}
	expect_error(3, "NUL byte");
	config_free(&c);
	/* a line longer than the parser takes, and the lines after it counted right */
	text = malloc(CONFIG_MAX_LINE + 64);
	assert_non_null(text);
	strcpy(text, "[vm]\nkernel = k\ncmdline = ");
	memset(text + strlen(text), 'x', CONFIG_MAX_LINE);
	strcpy(text + strlen("[vm]\nkernel = k\ncmdline = ") + CONFIG_MAX_LINE, "\nmem = 1\n");
	assert_int_equal(load(&c, CONFIG_RUN, text), 2);
	expect_error(3, "line too long");
	expect_error(4, "mem '1': out of range");
	config_free(&c);
	free(text);
	/* too many of a repeatable key */
	text = malloc(4096);
	assert_non_null(text);
	strcpy(text, "[vm]\nkernel = k\n");
	for (int i = 0; i < CONFIG_LIST_MAX + 1; i++)
		strcat(text, "net = hook\n");
	only_error(&c, CONFIG_RUN, text, 3 + CONFIG_LIST_MAX, "too many net (at most 16)");
	free(text);
}

/* Errors keep coming after the first: every line with one is named. */
static void test_many_errors(void **state)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_RUN,
			      "[vm]\nkernel = k\nmem = x\nbogus = 1\n[nope]\na = b\n[colo]\n"
			      "role = both\n"),
			 4);
	expect_error(3, "not a number");
	expect_error(4, "unknown key 'bogus'");
	expect_error(5, "unknown section [nope]");
	expect_error(8, "role 'both'");
	config_free(&c);
}

/* The checks colovm run makes, reported at the key's line. */
static void check_only(const char *text, unsigned int line, const char *what)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_RUN, text), 0);
	assert_int_equal(config_check(&c, false), 1);
	expect_error(line, what);
	config_free(&c);
}

static void test_run_checks(void **state)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_RUN, "[vm]\nmem = 64\n"), 0);
	assert_int_equal(config_check(&c, false), 1);
	expect_error(0, "kernel = FILE (in [vm]) or --kernel FILE is required");
	assert_string_equal(errs.file[0], "t.conf");
	config_free(&c);
	check_only("[vm]\nkernel = k\n[colo]\nrole = primary\n", 4, "role = primary needs peer");
	check_only("[vm]\nkernel = k\n[colo]\nrole = secondary\n", 4,
		   "role = secondary needs listen");
	check_only("[vm]\nkernel = k\n[colo]\nrole = secondary\nlisten = tcp:a:1\n"
		   "peer = tcp:b:1\n",
		   6, "peer goes with role = primary");
	check_only("[vm]\nkernel = k\n[colo]\nlisten = tcp:a:1\n", 4,
		   "listen goes with role = secondary");
	check_only("[vm]\nkernel = k\nrestore = /s\n[colo]\nrole = secondary\nlisten = tcp:a:1\n",
		   3, "role excludes restore");
	check_only("[vm]\nkernel = k\nincoming = tcp:a:1\nrestore = /s\n", 3,
		   "restore and incoming exclude each other");
	check_only("[vm]\nkernel = k\n[colo]\nwitness-key = /k\n", 4,
		   "witness-key goes with witness");
	check_only("[vm]\nkernel = k\n[colo]\nwitness = rdma:a:1\n", 4,
		   "witness rdma:a:1: expected tcp:HOST:PORT");
	check_only("[vm]\nkernel = k\n[colo]\nrole = primary\npeer = udp:a:1\n", 5,
		   "peer udp:a:1: expected tcp:HOST:PORT or rdma:HOST:PORT");
	check_only("[vm]\nkernel = k\nqmp = /run/x.sock\n", 3, "expected unix:PATH");
	check_only("[vm]\nkernel = k\nserial = tty9\n", 3, "serial tty9: expected stdio");
	check_only("[vm]\nkernel = k\nname = web/1\n", 3, "name 'web/1': expected");
	check_only("[vm]\nkernel = k\nmetrics = http://0.0.0.0:9100\n", 3,
		   "metrics http://0.0.0.0:9100: expected tcp:HOST:PORT");
	check_only("[vm]\nkernel = k\nverbose = yes\nquiet = yes\n", 4, "quiet excludes verbose");
	/* a pair without a witness on one side: each side's file is fine alone */
	assert_int_equal(
	    load(&c, CONFIG_RUN, "[vm]\nkernel = k\n[colo]\nrole = secondary\nlisten = rdma:a:1\n"),
	    0);
	assert_int_equal(config_check(&c, false), 0);
	config_free(&c);
}

static void test_witness_checks(void **state)
{
	struct config c;

	assert_int_equal(load(&c, CONFIG_WITNESS, "[witness]\nstate = /s\n"), 0);
	assert_int_equal(config_check(&c, false), 1);
	expect_error(0, "listen = tcp:HOST:PORT is required");
	config_free(&c);
	assert_int_equal(load(&c, CONFIG_WITNESS, "[witness]\nlisten = rdma:a:1\n"), 0);
	assert_int_equal(config_check(&c, false), 1);
	expect_error(2, "expected tcp:HOST:PORT");
	config_free(&c);
}

/* With check_files: the kernel, initrd, disks and keys must be there. */
static void test_file_checks(void **state)
{
	char dir[] = "/tmp/colovm-config-XXXXXX", kernel[64], key[64], text[512];
	struct config c;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(kernel, sizeof(kernel), "%s/kernel", dir);
	snprintf(key, sizeof(key), "%s/key", dir);
	f = fopen(kernel, "w");
	assert_non_null(f);
	fputs("not really a kernel", f);
	fclose(f);
	f = fopen(key, "w");
	assert_non_null(f);
	fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	snprintf(text, sizeof(text),
		 "[vm]\nkernel = %s\ninitrd = %s/nope\ndisk = %s,readonly\n[colo]\n"
		 "peer-key = %s\nwitness = tcp:a:1\nwitness-key = %s\n",
		 kernel, dir, dir, key, kernel);
	assert_int_equal(load(&c, CONFIG_RUN, text), 0);
	assert_int_equal(config_check(&c, true), 3);
	expect_error(3, "cannot read initrd");
	expect_error(4, "not a regular file");
	expect_error(8, "not a key");
	config_free(&c);
	/* the same from a file on disk */
	snprintf(text, sizeof(text), "%s/vm.conf", dir);
	f = fopen(text, "w");
	assert_non_null(f);
	fprintf(f, "[vm]\nkernel = %s/missing\n[colo]\npeer-key = %s\n", dir, key);
	fclose(f);
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_int_equal(config_load_file(&c, text), 0);
	assert_int_equal(config_check(&c, true), 1);
	expect_error(2, "cannot read kernel");
	assert_string_equal(errs.file[0], text);
	assert_string_equal(config_vm_name(&c, kernel, sizeof(kernel)), "vm");
	config_free(&c);
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_true(config_load_file(&c, "/nonexistent/vm.conf") < 0);
	expect_error(0, "cannot read /nonexistent/vm.conf");
	config_free(&c);
	unlink(text);
	snprintf(text, sizeof(text), "rm -rf %s", dir);
	assert_int_equal(system(text), 0);
}

/* The command line: the same table, errors at line 0, over the file. */
static void test_args(void **state)
{
	char *argv[] = {"run",
			"-k",
			"/vmlinuz",
			"--mem",
			"512",
			"--net",
			"tap=tap9",
			"--reboot",
			"--config",
			"/etc/x.conf",
			"--colo",
			"primary",
			"--checkpoint-interval",
			"1000",
			"-v",
			NULL};
	struct config file, args;
	const char *cf = NULL;
	bool help;

	memset(&errs, 0, sizeof(errs));
	config_init(&args, CONFIG_RUN, collect, NULL);
	assert_int_equal(config_parse_args(&args, ARRAY_SIZE(argv) - 1, argv, &cf, &help), 0);
	assert_false(help);
	assert_string_equal(cf, "/etc/x.conf");
	assert_string_equal(config_str(&args, CFG_KERNEL), "/vmlinuz");
	assert_true(config_bool(&args, CFG_REBOOT));
	assert_true(config_bool(&args, CFG_VERBOSE));
	assert_string_equal(config_name(&args, CFG_PEER), "--peer");

	assert_int_equal(load(&file, CONFIG_RUN, good_vm), 0);
	config_merge(&file, &args);
	assert_string_equal(config_str(&file, CFG_KERNEL), "/vmlinuz");		/* flag wins */
	assert_string_equal(config_str(&file, CFG_INITRD), "/boot/initrd.img"); /* file's */
	assert_int_equal(config_num(&file, CFG_MEM), 512);
	assert_int_equal(config_num(&file, CFG_CPUS), 2);
	assert_int_equal(config_num(&file, CFG_CHECKPOINT_INTERVAL), 1000);
	assert_int_equal(file.v[CFG_NET].n, 1); /* --net replaces the file's list */
	assert_string_equal(file.v[CFG_NET].item[0], "tap=tap9");
	assert_string_equal(config_name(&file, CFG_MEM), "--mem");
	assert_string_equal(config_name(&file, CFG_CPUS), "cpus");
	assert_int_equal(config_check(&file, false), 0);
	config_free(&file);
	config_free(&args);
}

static void test_args_errors(void **state)
{
	char *a1[] = {"run", "--kernel", "k", "--mem", "lots", "--bogus", "extra", NULL};
	char *a2[] = {"run", "--kernel", NULL};
	char *a3[] = {"run", "--mem", "64", NULL};
	char *a4[] = {"witness", "--state", "/s", "--help", NULL};
	struct config c;
	bool help;

	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_int_equal(config_parse_args(&c, ARRAY_SIZE(a1) - 1, a1, NULL, &help), 3);
	expect_error(0, "--mem 'lots': not a number (expected 16..1048576)");
	expect_error(0, "unknown option '--bogus'");
	expect_error(0, "unexpected argument 'extra'");
	assert_string_equal(errs.file[0], "");
	config_free(&c);
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_int_equal(config_parse_args(&c, ARRAY_SIZE(a2) - 1, a2, NULL, &help), 1);
	expect_error(0, "option '--kernel' needs an argument");
	config_free(&c);
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_RUN, collect, NULL);
	assert_int_equal(config_parse_args(&c, ARRAY_SIZE(a3) - 1, a3, NULL, &help), 0);
	assert_int_equal(config_check(&c, false), 1);
	expect_error(0, "run: --kernel FILE is required");
	config_free(&c);
	/* a witness takes its own options only */
	memset(&errs, 0, sizeof(errs));
	config_init(&c, CONFIG_WITNESS, collect, NULL);
	assert_int_equal(config_parse_args(&c, ARRAY_SIZE(a4) - 1, a4, NULL, &help), 0);
	assert_true(help);
	config_free(&c);
	{
		char *a5[] = {"witness", "--kernel", "k", NULL};

		config_init(&c, CONFIG_WITNESS, collect, NULL);
		assert_int_equal(config_parse_args(&c, ARRAY_SIZE(a5) - 1, a5, NULL, &help), 2);
		expect_error(0, "unknown option '--kernel'");
		config_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_vm),	   cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_good_witness),   cmocka_unit_test(test_file_errors),
	    cmocka_unit_test(test_many_errors),	   cmocka_unit_test(test_run_checks),
	    cmocka_unit_test(test_witness_checks), cmocka_unit_test(test_file_checks),
	    cmocka_unit_test(test_args),	   cmocka_unit_test(test_args_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
