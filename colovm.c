/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * colovm: the virtual machine monitor. `colovm run ...` builds the VM, starts
 * its vCPUs and runs the main loop until the guest or the host ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/common.h"
#include "common/metrics/metrics.h"
#include "common/qmp/qmp.h"
#include "common/runstate/runstate.h"
#include "common/vmstate/vmstate.h"
#include "config.h"
#include "hw/hw.h"
#include "primary/primary.h"
#include "secondary/secondary.h"
#include "transport/transport.h"

#define COLOVM_VERSION "0.1.0"

/* Exit statuses (also in --help and the README). */
#define EXIT_GUEST_SHUTDOWN 0	/* guest reset, halted or powered off: a clean end */
#define EXIT_SETUP_FAILED   2	/* bad arguments, bad kernel, no /dev/kvm */
#define EXIT_GUEST_ERROR    4	/* KVM could not run the guest */
#define EXIT_SIGNAL_BASE    128 /* + signal number */

/* How long a new primary tries its old primary's standby URI after a
 * switchover (it starts listening once its own side is done). */
#define SWITCHOVER_WAIT_MS 10000

static const char usage_text[] =
	"Usage: colovm run --kernel FILE [OPTIONS]\n"
	"       colovm run --config FILE [OPTIONS]\n"
	"       colovm witness --listen tcp:HOST:PORT [--peer-key FILE] [--state FILE]\n"
	"                      [--metrics tcp:HOST:PORT]\n"
	"       colovm witness --config FILE [OPTIONS]\n"
	"       colovm witness-probe [--config FILE] [--listen tcp:HOST:PORT]\n"
	"                            [--peer-key FILE]\n"
	"       colovm check-config FILE\n"
	"       colovm --help | --version\n"
	"\n"
	"colovm is a KVM virtual machine monitor that keeps a guest serving through\n"
	"the loss of a host. `colovm run` boots one x86-64 guest.\n"
	"\n"
	"Guest:\n"
	"  -k, --kernel FILE     kernel to boot: an ELF with a Xen PVH entry note\n"
	"                        (e.g. vmlinux, the colovm test guest) or a Linux\n"
	"                        bzImage (64-bit boot protocol, 2.12 or later)\n"
	"  -i, --initrd FILE     initial ramdisk (PVH: module 0; bzImage: ramdisk)\n"
	"  -c, --cmdline STR     kernel command line\n"
	"  -m, --mem MIB         guest RAM in MiB, 16..1048576 (default 256)\n"
	"  -n, --cpus N          number of vCPUs, 1..64 (default 1)\n"
	"      --mem-prealloc    allocate and map all guest RAM at start (one\n"
	"                        thread per CPU) instead of on first touch: fails\n"
	"                        at once if the host lacks the memory, and spares\n"
	"                        an incoming migration or a restore the page\n"
	"                        faults (a migration target receives RAM about\n"
	"                        twice as fast with it)\n"
	"      --reboot          a guest reset reboots the guest (default: a guest\n"
	"                        reset ends colovm with status 0, like QEMU's\n"
	"                        -no-reboot; QMP system_reset always reboots)\n"
	"      --shutdown-timeout SECONDS\n"
	"                        on SIGTERM, a guest that listens to the ACPI power\n"
	"                        button (a Linux guest does) has it pressed and\n"
	"                        gets this long to power off (status 0) before\n"
	"                        colovm stops it (status 143); 0: stop at once.\n"
	"                        A guest that does not listen, a paused VM, a\n"
	"                        second SIGTERM, SIGINT and SIGHUP stop at once\n"
	"                        (default 30)\n"
	"  -s, --serial SPEC     console on the 8250 UART at 0x3f8: stdio (default;\n"
	"                        input from stdin), file:PATH (output only) or none\n"
	"      --net SPEC        add a virtio-net device (repeatable): tap=IFNAME (an\n"
	"                        existing tap, or one created by name with\n"
	"                        CAP_NET_ADMIN) or hook (no wire: frames only through\n"
	"                        the in-process hook); append ,mac=52:54:00:xx:xx:xx\n"
	"                        (default 52:54:00:12:34:56, +1 per device)\n"
	"      --disk SPEC       add a virtio-blk device (repeatable) on a raw image:\n"
	"                        PATH[,readonly][,direct][,replicate] (direct:\n"
	"                        O_DIRECT). replicate (COLO, both sides; excludes\n"
	"                        readonly and direct): the first sync copies the\n"
	"                        primary's image into the secondary's (same size),\n"
	"                        then every write of the primary's guest follows\n"
	"                        and is applied to the secondary's image at the\n"
	"                        next checkpoint, flushed before it is\n"
	"                        acknowledged; the secondary's own guest writes\n"
	"                        to an overlay (a sparse file beside the image)\n"
	"                        that each checkpoint drops and a takeover merges\n"
	"                        into the image. The images stay raw files any\n"
	"                        tool can read\n"
	"\n"
	"Config file:\n"
	"      --config FILE     read the options from an INI file (see colovm(1);\n"
	"                        examples in deploy/examples/): every flag here is\n"
	"                        a key of the same name in its section ([vm],\n"
	"                        [colo], [migration]; --colo is [colo] role), with\n"
	"                        the same default; a flag given as well overrides\n"
	"                        the key (--net/--disk replace the file's list).\n"
	"                        `colovm check-config FILE` checks a file as run\n"
	"                        (or witness) would, and that the files it names\n"
	"                        are there: errors as FILE:LINE: message, status 0\n"
	"                        when valid, 2 when not\n"
	"      --name NAME       the VM's name (default: the config file's name\n"
	"                        without .conf; colovm@NAME.service reads\n"
	"                        /etc/colovm/NAME.conf): the journal's COLOVM_VM\n"
	"                        and the metrics' colovm_build_info\n"
	"\n"
	"Management:\n"
	"      --restore FILE    start from a snapshot (QMP snapshot-save) instead\n"
	"                        of booting: RAM and devices come from FILE; --mem\n"
	"                        and --cpus must match the saved VM\n"
	"      --incoming tcp:HOST:PORT | rdma:HOST:PORT\n"
	"                        wait for a live migration from another colovm\n"
	"                        (QMP migrate) and run the guest it sends\n"
	"      --colo primary --peer tcp:HOST:PORT | rdma:HOST:PORT\n"
	"                        protect the guest (COLO): boot it, live-migrate it\n"
	"                        to the secondary as the first sync, then ship a\n"
	"                        checkpoint (dirty RAM + device state) every\n"
	"                        checkpoint-interval ms (default 200; QMP\n"
	"                        migrate-set-parameters), on demand\n"
	"                        (x-colo-checkpoint) and when the two guests'\n"
	"                        packets differ. Inbound frames reach both guests;\n"
	"                        an outbound frame reaches the wire once the\n"
	"                        secondary sent the same or a checkpoint covers it\n"
	"                        (compare-timeout ms, default 3000). If the\n"
	"                        secondary refuses or goes away the guest runs on\n"
	"                        unprotected (QMP query-colo-status says why).\n"
	"                        Both sides send a heartbeat every\n"
	"                        heartbeat-interval ms (default 100) and give the\n"
	"                        other up after heartbeat-misses intervals without\n"
	"                        a byte from it (default 8: 800 ms); the primary's\n"
	"                        values, set before the pair forms, rule both. QMP\n"
	"                        x-colo-lost-heartbeat gives the secondary up now\n"
	"                        (it is told to stand down). QMP\n"
	"                        colo-protect {uri} protects a plain running VM the\n"
	"                        same way. Every writable --disk must be\n"
	"                        PATH,replicate. QMP migrate {uri, continue: true,\n"
	"                        standby: URI} (colovmctl migrate --continue) hands\n"
	"                        the guest over to its secondary in one checkpoint\n"
	"                        and stays as its standby, listening on standby\n"
	"      --colo secondary --listen tcp:HOST:PORT | rdma:HOST:PORT\n"
	"                        the hot standby: wait for a COLO primary with the\n"
	"                        same VM flags (--mem, --cpus, --net/--disk count,\n"
	"                        kernel and initrd contents; a primary that differs\n"
	"                        or has another key is refused, and the next one\n"
	"                        awaited), then keep running a copy of its guest,\n"
	"                        checkpoint by checkpoint; its --net devices stay\n"
	"                        silent while paired (the guest talks through the\n"
	"                        primary). Ends when the primary shuts down;\n"
	"                        takes over (runs on from the last checkpoint, its\n"
	"                        packets to its own wire) when the primary goes\n"
	"                        away or falls silent (heartbeat), or at once on\n"
	"                        QMP x-colo-lost-heartbeat\n"
	"      --witness tcp:HOST:PORT\n"
	"                        (both sides of a pair) the `colovm witness` that\n"
	"                        decides who serves when the pair breaks: a side\n"
	"                        that would serve alone (the secondary taking over,\n"
	"                        the primary running on unprotected) asks it first;\n"
	"                        per pairing it grants the first side that asks\n"
	"                        and refuses the other, so a cut link never leaves\n"
	"                        two copies serving. A side refused, or that cannot\n"
	"                        reach it, stops its guest (query-colo-status\n"
	"                        \"fenced\", run state paused). The secondary asks two\n"
	"                        heartbeats later than the primary would: on a cut\n"
	"                        link the primary serves on. Both sides have one or\n"
	"                        neither (a pair with one is refused)\n"
	"      --witness-key FILE\n"
	"                        the witness's key (default: --peer-key)\n"
	"      --disk-buffer-mem MIB\n"
	"                        (secondary) the primary's disk writes since the\n"
	"                        last checkpoint are kept in memory up to this\n"
	"                        much (0..65536, default 64), the rest in an\n"
	"                        unlinked file under $TMPDIR or /var/tmp\n"
	"      --checkpoint-interval MS   (1..3600000, default 200)\n"
	"      --compare-timeout MS       (1..3600000, default 3000)\n"
	"      --heartbeat-interval MS    (10..60000, default 100)\n"
	"      --heartbeat-misses N       (2..1000, default 8)\n"
	"      --downtime-limit MS        (0..2000000, default 300)\n"
	"      --max-bandwidth BYTES      (per second; default 0: no limit)\n"
	"                        QMP migrate-set-parameters' values, set at start\n"
	"                        as that command would (a secondary's apply once\n"
	"                        it took over and protects its guest again)\n"
	"      --peer-key FILE   pre-shared key (32 bytes, raw or 64 hex digits)\n"
	"                        authenticating the migration or COLO channel; give\n"
	"                        the same key to both ends (source: for QMP migrate).\n"
	"                        Without it the channel still checks every byte\n"
	"                        but anyone who reaches the port can send or take\n"
	"                        the guest: use that only on a trusted link\n"
	"      --qmp unix:PATH[,server]\n"
	"                        serve QMP (QEMU's JSON protocol) on a UNIX socket\n"
	"                        created mode 0600 at PATH; drive it with colovmctl\n"
	"      --metrics tcp:HOST:PORT\n"
	"                        serve Prometheus metrics over HTTP at\n"
	"                        http://HOST:PORT/metrics (checkpoints, pauses,\n"
	"                        compare verdicts, heartbeat round trip, failovers,\n"
	"                        run state; PORT 0: any, logged)\n"
	"\n"
	"General:\n"
	"  -v, --verbose         log debug messages (unhandled I/O, exits)\n"
	"  -q, --quiet           log errors only\n"
	"  -h, --help            show this help and exit\n"
	"  -V, --version         show the version and exit\n"
	"\n"
	"Devices: 8250 UART (0x3f8, IRQ 4), i8042 (reset line), isa-debug-exit\n"
	"(0xf4), in-kernel PIC/IOAPIC/LAPIC and PIT. virtio-mmio devices (--net\n"
	"first, then --disk; at most 10) sit at 0xd0000000 + n*0x1000 on IRQs\n"
	"5, 6, 7, 9..15 and are announced by appending virtio_mmio.device=512@ADDR:IRQ\n"
	"to the kernel command line. ACPI: a sleep register (port 0x3c0, so the\n"
	"guest's poweroff ends colovm) and a power button (Generic Event Device on\n"
	"GSI 16 + PNP0C0C), pressed by QMP system_powerdown and by SIGTERM (see\n"
	"--shutdown-timeout).\n"
	"\n"
	"Exit status:\n"
	"  0          the guest shut down: it reset (i8042 0xfe, triple fault),\n"
	"             powered off (ACPI S5; also after SIGTERM pressed the power\n"
	"             button) or halted every vCPU with interrupts disabled\n"
	"  (v<<1)|1   the guest wrote v to the isa-debug-exit port 0xf4 (QEMU's\n"
	"             convention, so one guest reports the same status on both)\n"
	"  2          colovm could not start the guest (bad arguments, unreadable or\n"
	"             unbootable kernel, kernel too big for --mem, no /dev/kvm)\n"
	"  4          KVM could not run the guest (internal error)\n"
	"  128+N      colovm was stopped by signal N (SIGTERM: 143, SIGINT: 130):\n"
	"             at once, or --shutdown-timeout after SIGTERM pressed the\n"
	"             power button of a guest that then did not power off\n"
	"\n"
	"systemd: with $NOTIFY_SOCKET, READY=1 once the guest runs (a COLO pair:\n"
	"once protected; a primary refused by its secondary: once it runs\n"
	"unprotected), STATUS= on every role or protection change, STOPPING=1 at\n"
	"the end; with $WATCHDOG_USEC, WATCHDOG=1 from the main loop every half\n"
	"period. When stderr is the journal, lines carry COLOVM_VM, COLOVM_ROLE\n"
	"and, for COLO events, COLOVM_EVENT.\n"
	"\n"
	"Witness: `colovm witness` serves claims on --listen (same key scheme as\n"
	"the pair's channel: --peer-key; many pairs may share one witness when\n"
	"they share its key). --state FILE keeps its grants across restarts (each\n"
	"is fsync'd there before it is answered; without it a restarted witness\n"
	"could grant a pairing twice). Each side of a pair holds a session open to\n"
	"it, so that its claim is one round trip. SIGTERM or SIGINT end it (status 0).\n"
	"--config FILE: a file with a [witness] section (keys listen, peer-key,\n"
	"state, verbose, quiet).\n"
	"`colovm witness-probe` asks the witness of the same options (a wildcard\n"
	"listen address: this host's loopback) whether it serves claims under\n"
	"that key: one authenticated probe that records nothing (0: it answers,\n"
	"its counts on stdout; 1: no answer, why on stderr; 2: bad options).\n"
	"\n"
	"Examples:\n"
	"  colovm run --kernel build/tests/guest/testguest.elf --cmdline app=hello\n"
	"  colovm run --kernel /boot/vmlinuz --initrd initrd.img --mem 1024 \\\n"
	"             --cmdline 'console=ttyS0 earlyprintk=serial'\n"
	"  colovm run --kernel testguest.elf --cmdline 'app=dirty mb=8 rate=2' \\\n"
	"             --colo secondary \\\n"
	"             --listen tcp:0.0.0.0:4500 --peer-key peer.key        # host B\n"
	"  colovm run --kernel testguest.elf --cmdline 'app=dirty mb=8 rate=2' \\\n"
	"             --colo primary \\\n"
	"             --peer tcp:hostb:4500 --peer-key peer.key            # host A\n"
	"  colovm check-config /etc/colovm/web.conf && colovm run --config /etc/colovm/web.conf\n";

struct colovm {
	struct loop *loop;
	struct vm *vm;
	struct runstate *rs;
	struct qmp *qmp;
	int sigfd;
	int status;
	bool reboot;		       /* --reboot: a guest reset reboots instead of exiting */
	unsigned int shutdown_timeout; /* --shutdown-timeout, seconds */
	uint64_t powerdown_deadline;   /* SIGTERM pressed the button: stop then (ns), else 0 */
	struct hw_runstate *hwrs;
	struct primary *primary;
	struct secondary *secondary;
	struct secondary_colo *colo_secondary;
	bool reprotected; /* the secondary took over and is a primary now */
	/* what a COLO secondary needs, for a primary that switches over and
	 * becomes its guest's standby (migrate with continue) */
	const struct transport_key *key, *witness_key;
	const char *witness, *vm_config;
	unsigned int disk_buffer_mib; /* --disk-buffer-mem */
	/* systemd and metrics (service_*) */
	struct metrics *metrics;
	struct notify_timer *notify;
	const char *name;   /* --name, or NULL */
	bool colo_primary;  /* --colo primary: ready once protected (or refused) */
	bool ready;	    /* READY=1 sent */
	char notified[256]; /* the last STATUS= sent */
};

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "colovm: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'colovm --help' for more information.\n");
	exit(EXIT_SETUP_FAILED);
}

static void handle_vm_event(struct colovm *c)
{
	int code, ev = c->hwrs ? hw_runstate_take_event(c->hwrs, &code) : -1;

	switch (ev) {
	case -1:
		return;
	case VM_EVENT_DEBUG_EXIT:
		c->status = (int)(((unsigned int)code << 1) | 1) & 0xff;
		log_info("guest wrote %d to debug-exit: exit status %d", code, c->status);
		break;
	case VM_EVENT_RESET:
		log_info("guest reset: shutting down");
		c->status = EXIT_GUEST_SHUTDOWN;
		break;
	case VM_EVENT_HALT:
		log_info("guest halted: shutting down");
		c->status = EXIT_GUEST_SHUTDOWN;
		break;
	case VM_EVENT_INTERNAL_ERROR:
		log_err("guest stopped on an internal error (%d)", code);
		c->status = EXIT_GUEST_ERROR;
		break;
	}
}

static void stop_on_signal(struct colovm *c, int signo)
{
	c->powerdown_deadline = 0;
	c->status = EXIT_SIGNAL_BASE + signo;
	runstate_request_shutdown_signal(c->rs, signo);
}

/*
 * SIGTERM asks the guest first, as a host shutting down would: when the
 * guest listens to the power button, press it and give it
 * --shutdown-timeout seconds to power off (it then ends the run itself,
 * status 0). Anything else stops at once: SIGINT, SIGHUP, a second
 * SIGTERM, a guest that would not notice the button, a VM that is not
 * running (paused, or waiting for a migration).
 */
static void on_signal(void *opaque, uint32_t events)
{
	struct colovm *c = opaque;
	struct signalfd_siginfo si;
	const char *name;
	int signo;

	if (read(c->sigfd, &si, sizeof(si)) != sizeof(si))
		return;
	signo = (int)si.ssi_signo;
	name = strsignal(signo);
	if (signo != SIGTERM) {
		log_info("received %s: shutting down", name);
	} else if (c->powerdown_deadline) {
		log_info("received %s again while the guest powers off: shutting down now", name);
	} else if (!c->shutdown_timeout) {
		log_info("received %s: shutting down (--shutdown-timeout 0)", name);
	} else if (!c->vm || !runstate_is_running(c->rs)) {
		log_info("received %s: shutting down (the guest is not running)", name);
	} else if (!hw_vm_power_button_listened(c->vm)) {
		log_info("received %s: shutting down (the guest does not listen to the "
			 "power button)",
			 name);
	} else {
		log_info("received %s: pressing the power button, waiting up to %u s for the "
			 "guest to power off",
			 name, c->shutdown_timeout);
		c->powerdown_deadline = clock_ns() + (uint64_t)c->shutdown_timeout * 1000000000ull;
		runstate_request_powerdown(c->rs);
		return;
	}
	stop_on_signal(c, signo);
}

/* The main loop's wait: until the power-off deadline, if there is one. When
 * it has passed, the guest had its time: stop as SIGTERM does at once. */
static int powerdown_wait_ms(struct colovm *c)
{
	uint64_t now = clock_ns();

	if (!c->powerdown_deadline)
		return -1;
	if (now < c->powerdown_deadline)
		return (int)((c->powerdown_deadline - now + 999999) / 1000000);
	log_info("the guest did not power off within %u s: shutting down", c->shutdown_timeout);
	stop_on_signal(c, SIGTERM);
	return 0;
}

static int setup_signals(struct colovm *c)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Blocked in every thread (vCPU threads inherit the mask). */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -EINVAL;
	c->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (c->sigfd < 0)
		return -errno;
	return loop_add_fd(c->loop, c->sigfd, 1 /* EPOLLIN */, on_signal, c);
}

static int restore_snapshot(struct colovm *c, const char *path)
{
	struct vmstate_error err = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0) {
		log_err("--restore %s: %s", path, strerror(errno));
		return -errno;
	}
	ret = hw_vm_load(c->vm, fd, &err);
	close(fd);
	if (ret)
		log_err("--restore %s: %s", path, err.msg[0] ? err.msg : strerror(-ret));
	else
		log_info("restored the VM from %s", path);
	return ret;
}

/* Main loop: the incoming migration runs (secondary/ started it) or failed (exit 2). */
static void on_incoming_done(void *opaque, int ret, const char *msg)
{
	struct colovm *c = opaque;

	if (!ret) {
		log_info("incoming migration complete: running");
		return;
	}
	log_err("incoming migration failed: %s", msg && msg[0] ? msg : strerror(-ret));
	c->status = EXIT_SETUP_FAILED;
	hw_runstate_take_event(c->hwrs, &ret); /* the guest never ran: keep status 2 */
	runstate_request_shutdown(c->rs, SHUTDOWN_CAUSE_HOST_ERROR);
}

/* Main loop: the COLO secondary's first sync runs, or failed (exit 2). */
static void on_colo_first_sync(void *opaque, int ret, const char *msg)
{
	struct colovm *c = opaque;

	if (!ret) {
		log_info("COLO secondary: first sync loaded: running as the hot standby");
		return;
	}
	log_err("COLO secondary: the first sync failed: %s", msg && msg[0] ? msg : strerror(-ret));
	c->status = EXIT_SETUP_FAILED;
	hw_runstate_take_event(c->hwrs, &ret);
	runstate_request_shutdown(c->rs, SHUTDOWN_CAUSE_HOST_ERROR);
}

/* migrate with continue, the old secondary's side (secondary_opts.switched):
 * it serves the guest now and protects it with its old primary. */
static void on_switched_secondary(void *opaque, const char *standby)
{
	struct colovm *c = opaque;
	char msg[256];
	int ret;

	/* (the old primary listens once its own side of the switch is done:
	 * a refused connection is tried again for a while) */
	ret = primary_colo_protect(c->primary, standby, SWITCHOVER_WAIT_MS, msg, sizeof(msg));
	if (ret)
		log_err("COLO: switchover: cannot protect the guest with its old primary on %s: "
			"%s; it runs unprotected",
			standby, msg);
	else
		log_info("COLO: switchover: protecting the guest with its old primary on %s",
			 standby);
}

/* A COLO secondary's options for this colovm (ran: its guest has run, as
 * a primary's that switched over): --colo secondary, and a switchover's. */
static struct secondary_opts colo_secondary_opts(struct colovm *c, bool ran)
{
	return (struct secondary_opts){.key = c->key,
				       .done = on_colo_first_sync,
				       .opaque = c,
				       .vm_config = c->vm_config,
				       .qmp = c->qmp,
				       .witness = c->witness,
				       .witness_key = c->witness_key,
				       .ran = ran,
				       .switched = on_switched_secondary,
				       .disk_buffer_mib = c->disk_buffer_mib};
}

/*
 * migrate with continue, the old primary's side (primary_opts.switched):
 * the guest runs on the secondary now, which protects it with this host
 * next. This colovm becomes that copy's standby: its VM waits for the
 * incoming guest (POSTMIGRATE -> PRELAUNCH -> INMIGRATE, the table's way
 * back in; its RAM is forgotten when the first sync lands) behind a COLO
 * secondary listening on standby.
 */
static void on_switched_primary(void *opaque, const char *standby)
{
	struct colovm *c = opaque;
	struct secondary_opts so = colo_secondary_opts(c, true);
	int ret;

	ret = runstate_set(c->rs, RUN_STATE_PRELAUNCH);
	if (!ret)
		ret = runstate_set(c->rs, RUN_STATE_INMIGRATE);
	if (!ret) {
		/* (a copy that took over once: that secondary is done) */
		secondary_colo_free(c->colo_secondary);
		c->colo_secondary = NULL;
		c->reprotected = false;
		ret = secondary_colo_new(c->vm, c->rs, c->loop, standby, &so, &c->colo_secondary);
	}
	if (ret) {
		log_err("COLO: switchover: cannot wait as the guest's standby on %s: %s; the guest "
			"runs on its new primary, unprotected",
			standby, strerror(-ret));
		c->status = EXIT_SETUP_FAILED;
		runstate_request_shutdown(c->rs, SHUTDOWN_CAUSE_HOST_ERROR);
		return;
	}
	log_info("COLO: switchover: this host is the guest's standby now, on %s", standby);
}

/* ---- QMP: COLO status, answered by the role this colovm plays ---------------- */

/* The COLO role this colovm plays now: a secondary until it re-protects
 * its guest after a takeover, a primary then (and in any other case). */
static struct secondary_colo *colo_as_secondary(struct colovm *c)
{
	return c->reprotected ? NULL : c->colo_secondary;
}

/* primary_opts.take_rewriters: colo-protect on a secondary that took over
 * hands its packet path over to the primary role. */
static int colo_take_rewriters(void *opaque, struct compare_rewrite **rw, unsigned int max,
			       char *msg, size_t len)
{
	struct colovm *c = opaque;
	int n;

	if (!colo_as_secondary(c))
		return 0;
	n = secondary_colo_handover(c->colo_secondary, rw, max);
	if (n < 0) {
		snprintf(msg, len,
			 "The VM is a COLO secondary: it can protect its guest only "
			 "after it took over");
		return n;
	}
	c->reprotected = true;
	log_info("COLO: this copy took over and re-protects its guest: the primary now");
	return n;
}

static int qmp_colo_status(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct colovm *c = opaque;

	*ret = colo_as_secondary(c) ? secondary_colo_status(c->colo_secondary)
				    : primary_colo_status(c->primary);
	return *ret ? 0 : -ENOMEM;
}

static int qmp_colo_stats(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct colovm *c = opaque;

	*ret = colo_as_secondary(c) ? secondary_colo_stats(c->colo_secondary)
				    : primary_colo_stats(c->primary);
	return *ret ? 0 : -ENOMEM;
}

static int qmp_colo_digest(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct colovm *c = opaque;
	json_t *a = json_object_get(args, "id");
	const char *pages = json_string_value(json_object_get(args, "pages-file"));
	uint64_t id = a ? (uint64_t)json_integer_value(a) : 0, got = 0, digest = 0, disk = 0;
	char hex[17], dhex[17];
	int r = colo_as_secondary(c)
		    ? secondary_colo_digest(c->colo_secondary, id, &got, &digest, &disk)
		    : primary_colo_digest(c->primary, id, &got, &digest, &disk);

	if (r && id)
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "No RAM digest kept for checkpoint %llu",
				     (unsigned long long)id);
	if (r)
		return qmp_error_set(err, QMP_ERROR_GENERIC,
				     "No RAM digest yet (migrate-set-parameters "
				     "x-colo-ram-digest=true on the primary)");
	if (pages) {
		uint64_t pid = 0;

		r = colo_as_secondary(c)
			? secondary_colo_page_hashes(c->colo_secondary, id, pages, &pid)
			: primary_colo_page_hashes(c->primary, id, pages, &pid);
		if (r == -ENODATA)
			return qmp_error_set(err, QMP_ERROR_GENERIC,
					     "No page hashes kept yet (x-colo-ram-digest)");
		if (r == -ENOENT)
			return qmp_error_set(err, QMP_ERROR_GENERIC,
					     "No page hashes kept for checkpoint %llu (the last %d are)",
					     (unsigned long long)id, HW_RAM_HASH_KEEP);
		if (r)
			return qmp_error_set(err, QMP_ERROR_GENERIC, "Cannot write %s: %s", pages,
					     strerror(-r));
		*ret = json_pack("{s:I,s:s}", "pages-id", (json_int_t)pid, "pages-file", pages);
		return *ret ? 0 : -ENOMEM;
	}
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)digest);
	snprintf(dhex, sizeof(dhex), "%016llx", (unsigned long long)disk);
	/* disk-digest: the replicated disks' images at that checkpoint */
	*ret = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)got, "digest", hex, "disk-digest",
			 dhex);
	return *ret ? 0 : -ENOMEM;
}

/* The secondary takes over, the primary gives its secondary up (which is
 * told to stand down): failover drills, or a person's decision. */
static int qmp_colo_lost_heartbeat(void *opaque, json_t *args, json_t **ret,
				   struct qmp_error *err)
{
	struct colovm *c = opaque;
	int r = colo_as_secondary(c) ? secondary_colo_lost_heartbeat(c->colo_secondary)
		: c->primary	     ? primary_colo_lost_heartbeat(c->primary)
				     : -ENOTCONN;

	if (r)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "The VM is not in a COLO pair");
	return 0;
}

/* x-query-registers: where each vCPU is (a guest that hangs), read with the
 * VM paused for the moment. */
static int qmp_query_registers(void *opaque, json_t *args, json_t **ret, struct qmp_error *err)
{
	struct colovm *c = opaque;
	unsigned int n = hw_vm_ncpus(c->vm);
	struct hw_vcpu_regs *r = calloc(n ? n : 1, sizeof(*r));
	json_t *a;
	int e;

	(void)args;
	if (!r)
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Out of memory");
	e = hw_vm_vcpu_regs(c->vm, r, n);
	if (e) {
		free(r);
		return qmp_error_set(err, QMP_ERROR_GENERIC, "Cannot read the registers: %s",
				     strerror(-e));
	}
	a = json_array();
	for (unsigned int i = 0; a && i < n; i++) {
		char hex[7][19];
		const uint64_t v[7] = {r[i].rip, r[i].rsp, r[i].rflags, r[i].cr0,
				       r[i].cr3, r[i].cr4, r[i].efer};

		for (int k = 0; k < 7; k++)
			snprintf(hex[k], sizeof(hex[k]), "%#llx", (unsigned long long)v[k]);
		json_array_append_new(a, json_pack("{s:i,s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s}", "cpu",
						   (int)i, "rip", hex[0], "rsp", hex[1], "rflags",
						   hex[2], "cs", (int)r[i].cs, "cr0", hex[3], "cr3",
						   hex[4], "cr4", hex[5], "efer", hex[6]));
	}
	free(r);
	*ret = a;
	return a ? 0 : qmp_error_set(err, QMP_ERROR_GENERIC, "Out of memory");
}

static int register_colo_qmp(struct colovm *c)
{
	static const struct qmp_arg digest_args[] = {
	    {"id", QMP_ARG_INT, true},
	    /* each page's hash at the last digest, into a file (tests) */
	    {"pages-file", QMP_ARG_STRING, true},
	    {NULL, 0, false},
	};
	int ret;

	if (!c->qmp)
		return 0;
	ret = qmp_register(c->qmp, "query-colo-status", NULL, qmp_colo_status, c);
	if (!ret)
		ret = qmp_register(c->qmp, "query-colo-stats", NULL, qmp_colo_stats, c);
	if (!ret)
		ret = qmp_register(c->qmp, "x-colo-ram-digest", digest_args, qmp_colo_digest, c);
	if (!ret)
		ret = qmp_register(c->qmp, "x-colo-lost-heartbeat", NULL, qmp_colo_lost_heartbeat,
				   c);
	if (!ret)
		ret = qmp_register(c->qmp, "x-query-registers", NULL, qmp_query_registers, c);
	return ret;
}

/* ---- systemd (sd_notify, watchdog, journal role) and metrics ----------------- */

/* The role this colovm plays; *status: its query-colo-status body (a new
 * reference) or NULL. Main loop. */
static const char *service_role(struct colovm *c, json_t **status)
{
	const char *st;

	*status = NULL;
	if (colo_as_secondary(c)) {
		*status = secondary_colo_status(c->colo_secondary);
		return "secondary";
	}
	if (!c->primary)
		return "standalone";
	*status = primary_colo_status(c->primary);
	st = json_string_value(json_object_get(*status, "state"));
	return st && strcmp(st, "none") ? "primary" : "standalone";
}

/*
 * Main loop, every SERVICE_TICK_MS: READY=1 once the guest runs (a COLO
 * secondary: once protected; --colo primary: once protected, or running
 * unprotected after its secondary refused or went), STATUS= when the role,
 * protection or run state changes, and the journal's COLOVM_ROLE.
 */
#define SERVICE_TICK_MS 200
static void service_tick(void *opaque)
{
	struct colovm *c = opaque;
	json_t *status;
	const char *role = service_role(c, &status);
	const char *st = json_string_value(json_object_get(status, "state"));
	const char *why = json_string_value(json_object_get(status, "reason"));
	/* (a checkpoint's pause, COLO, is the guest running as far as the
	 * service goes: no STATUS flapping with every checkpoint) */
	bool running = runstate_is_running(c->rs) || runstate_check(c->rs, RUN_STATE_COLO);
	bool ready = running;
	char line[sizeof(c->notified)];

	if (!st)
		st = "none";
	if (!strcmp(role, "secondary"))
		ready = running && !strcmp(st, "protected");
	else if (c->colo_primary)
		ready = running && (!strcmp(st, "protected") || !strcmp(st, "unprotected"));
	if (!strcmp(role, "standalone"))
		snprintf(line, sizeof(line), "standalone: guest %s",
			 running ? "running" : runstate_name(runstate_get(c->rs)));
	else
		snprintf(line, sizeof(line), "%s: %s%s%s; guest %s", role, st,
			 why && why[0] ? ", " : "", why ? why : "",
			 running ? "running" : runstate_name(runstate_get(c->rs)));
	log_set_journal_role(role);
	if (ready && !c->ready) {
		c->ready = true;
		notify_ready(line);
		snprintf(c->notified, sizeof(c->notified), "%s", line);
		log_info("systemd: ready (%s)", line);
	} else if (strcmp(line, c->notified)) {
		notify_status("%s", line);
		snprintf(c->notified, sizeof(c->notified), "%s", line);
	}
	json_decref(status);
}

/* The metrics server's scrape, on the main loop (metrics.h). */
static void service_render(void *opaque, struct metrics_text *t)
{
	struct colovm *c = opaque;
	const char *names[RUN_STATE__MAX];
	json_t *status, *stats = NULL;
	const char *role = service_role(c, &status);

	for (unsigned int i = 0; i < RUN_STATE__MAX; i++)
		names[i] = runstate_name((enum run_state)i);
	if (colo_as_secondary(c))
		stats = secondary_colo_stats(c->colo_secondary);
	else if (c->primary)
		stats = primary_colo_stats(c->primary);
	metrics_colo(t, role, runstate_name(runstate_get(c->rs)), names, RUN_STATE__MAX, status,
		     stats, c->name, COLOVM_VERSION);
	json_decref(status);
	json_decref(stats);
}

/* --metrics: the server, or an error for the person who gave it. */
static int start_metrics(struct loop *loop, const char *spec, metrics_render_fn render,
			 void *opaque, struct metrics **out)
{
	char msg[256];
	int ret = metrics_new(loop, spec, render, opaque, out, msg, sizeof(msg));

	if (ret)
		log_err("--metrics %s: %s", spec, msg);
	else
		log_info("metrics: serving %s", metrics_uri(*out));
	return ret;
}

/* A key file for option opt; the error logged. */
static int load_key(const char *opt, const char *path, struct transport_key *key)
{
	int ret = transport_key_load(path, key);

	if (ret)
		log_err("%s %s: %s", opt, path,
			ret == -EINVAL ? "not a key (32 bytes, or 64 hex digits)" : strerror(-ret));
	return ret;
}

/* colovm witness: its main loop's state. */
struct witness_run {
	struct loop *loop;
	struct transport_witness *w;
	struct metrics *metrics;
	struct notify_timer *notify;
	bool quit;
};

static void witness_claim(void *opaque, uint32_t events)
{
	struct witness_run *wr = opaque;

	transport_witness_serve_one(wr->w);
}

static void witness_signal(void *opaque, uint32_t events)
{
	struct witness_run *wr = opaque;

	wr->quit = true;
}

static void witness_render(void *opaque, struct metrics_text *t)
{
	struct witness_run *wr = opaque;
	struct transport_witness_stats st;

	transport_witness_stats(wr->w, &st);
	metrics_witness(t, st.granted, st.refused, st.bad, st.pairs, st.sessions, COLOVM_VERSION);
}

/* Errors from the options and config files, printed in line order at the end:
 * FILE:LINE: msg, FILE: msg (a key missing), colovm: msg (a flag). */
struct checked_error {
	unsigned int line, seq;
	char *text;
};
struct checked {
	struct checked_error *e;
	unsigned int n;
};

static void collect_error(void *opaque, const char *file, unsigned int line, const char *msg)
{
	struct checked *k = opaque;
	void *e = realloc(k->e, (k->n + 1) * sizeof(*k->e));
	char *text = NULL;

	if (!e)
		return;
	k->e = e;
	if (file && line ? asprintf(&text, "%s:%u: %s", file, line, msg) < 0
	    : file	 ? asprintf(&text, "%s: %s", file, msg) < 0
			 : asprintf(&text, "colovm: %s", msg) < 0)
		return;
	k->e[k->n].line = line;
	k->e[k->n].seq = k->n;
	k->e[k->n++].text = text;
}

static int by_line(const void *a, const void *b)
{
	const struct checked_error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static unsigned int print_errors(struct checked *k)
{
	unsigned int n = k->n;

	if (k->n)
		qsort(k->e, k->n, sizeof(*k->e), by_line);
	for (unsigned int i = 0; i < k->n; i++) {
		fprintf(stderr, "%s\n", k->e[i].text);
		free(k->e[i].text);
	}
	free(k->e);
	k->e = NULL;
	k->n = 0;
	return n;
}

/*
 * A command's options: its flags, over the file of --config FILE if given,
 * checked as the command is about to use them (config.h). 0: go on; 1: the
 * help was printed (exit 0); else the exit status (errors printed).
 */
static int load_options(struct config *c, struct config *args, enum config_kind kind, int argc,
			char **argv)
{
	struct checked k = {0};
	const char *file = NULL;
	bool help;
	int n;

	config_init(args, kind, collect_error, &k);
	config_init(c, kind, collect_error, &k);
	n = config_parse_args(args, argc, argv, &file, &help);
	if (help) {
		print_errors(&k);
		fputs(usage_text, stdout);
		return 1;
	}
	if (n) {
		print_errors(&k);
		fprintf(stderr, "Try 'colovm --help' for more information.\n");
		return EXIT_SETUP_FAILED;
	}
	if (file) {
		FILE *f = fopen(file, "r");
		char head[4096];
		size_t len = f ? fread(head, 1, sizeof(head), f) : 0;

		if (f)
			fclose(f);
		if (f && config_guess_kind(head, len) != kind) {
			fprintf(stderr, "colovm: --config %s: a %s's config, not a %s's\n", file,
				kind == CONFIG_RUN ? "witness" : "VM",
				kind == CONFIG_RUN ? "VM" : "witness");
			return EXIT_SETUP_FAILED;
		}
		if (config_load_file(c, file)) {
			print_errors(&k);
			return EXIT_SETUP_FAILED;
		}
	}
	config_merge(c, args);
	if (config_check(c, false)) {
		print_errors(&k);
		if (!file)
			fprintf(stderr, "Try 'colovm --help' for more information.\n");
		return EXIT_SETUP_FAILED;
	}
	if (config_bool(c, kind == CONFIG_RUN ? CFG_VERBOSE : CFG_W_VERBOSE))
		log_set_level(LOG_DEBUG);
	if (config_bool(c, kind == CONFIG_RUN ? CFG_QUIET : CFG_W_QUIET))
		log_set_level(LOG_ERROR);
	c->report = args->report = NULL; /* (k goes out of scope) */
	return 0;
}

/* The witness's loop, its options checked. */
static int witness_serve(const char *listen_uri, const char *key_file, const char *state,
			 const char *metrics_spec)
{
	struct witness_run wr = {0};
	struct transport_key key;
	sigset_t set;
	int ret, sigfd;

	if (key_file && load_key("--peer-key", key_file, &key))
		return EXIT_SETUP_FAILED;
	if (!key_file)
		transport_key_public(&key);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return EXIT_SETUP_FAILED;
	sigdelset(&set, SIGPIPE);
	log_set_journal_role("witness");
	sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	ret = sigfd < 0 ? -errno : loop_new(&wr.loop);
	if (!ret)
		ret = transport_witness_new(listen_uri, &key, state, &wr.w);
	if (ret) {
		/* (the state file's errors are logged where they are found) */
		if (ret != -EBADMSG && (!state || ret == -EINVAL || ret == -EADDRINUSE))
			log_err("witness: --listen %s: %s", listen_uri,
				ret == -EINVAL ? "expected tcp:HOST:PORT" : strerror(-ret));
		goto out;
	}
	if (metrics_spec &&
	    start_metrics(wr.loop, metrics_spec, witness_render, &wr, &wr.metrics)) {
		ret = -EINVAL;
		goto out;
	}
	ret = loop_add_fd(wr.loop, transport_witness_fd(wr.w), 0x001 /* EPOLLIN */, witness_claim,
			  &wr);
	if (!ret)
		ret = loop_add_fd(wr.loop, sigfd, 0x001 /* EPOLLIN */, witness_signal, &wr);
	if (!ret)
		ret = notify_timer_new(wr.loop, 0, NULL, NULL, &wr.notify);
	if (ret) {
		log_err("witness: %s", strerror(-ret));
		goto out;
	}
	log_info("witness: serving claims on %s%s%s%s", transport_witness_uri(wr.w),
		 state ? ", grants kept in " : "", state ? state : "",
		 key_file ? "" : " (no --peer-key: anyone who reaches it may claim)");
	notify_ready("serving claims");
	while (!wr.quit) {
		ret = loop_run_once(wr.loop, -1);
		if (ret < 0) {
			log_err("witness: main loop: %s", strerror(-ret));
			break;
		}
	}
	log_info("witness: stopping");
	notify_stopping();
	ret = 0;
out:
	notify_timer_free(wr.notify);
	metrics_free(wr.metrics);
	transport_witness_free(wr.w);
	loop_free(wr.loop);
	if (sigfd >= 0)
		close(sigfd);
	memset(&key, 0, sizeof(key));
	return ret ? EXIT_SETUP_FAILED : 0;
}

/* colovm witness: answer claims until SIGTERM/SIGINT (transport.h). */
static int cmd_witness(int argc, char **argv)
{
	struct config cfg, args;
	const char *listen_uri, *key_file, *state;
	int ret;

	ret = load_options(&cfg, &args, CONFIG_WITNESS, argc, argv);
	if (ret) {
		config_free(&cfg);
		config_free(&args);
		return ret == 1 ? 0 : ret;
	}
	listen_uri = config_str(&cfg, CFG_W_LISTEN);
	key_file = config_str(&cfg, CFG_W_PEER_KEY);
	state = config_str(&cfg, CFG_W_STATE);
	ret = witness_serve(listen_uri, key_file, state, config_str(&cfg, CFG_W_METRICS));
	config_free(&cfg);
	config_free(&args);
	return ret;
}

/* colovm witness-probe: does the witness of these options answer? 0 yes, 1
 * no, 2 bad options (the Pacemaker agent's monitor, deploy/ocf). */
static int cmd_witness_probe(int argc, char **argv)
{
	struct transport_witness_stats st;
	struct config cfg, args;
	struct transport_key key;
	const char *listen_uri, *key_file, *host;
	char uri[300], msg[512];
	int ret;

	ret = load_options(&cfg, &args, CONFIG_WITNESS, argc, argv);
	if (ret) {
		ret = ret == 1 ? 0 : ret; /* 1: the help was printed */
		goto out;
	}
	listen_uri = config_str(&cfg, CFG_W_LISTEN);
	key_file = config_str(&cfg, CFG_W_PEER_KEY);
	ret = EXIT_SETUP_FAILED;
	if (key_file && load_key("--peer-key", key_file, &key))
		goto out;
	if (!key_file)
		transport_key_public(&key);
	/* where it listens on every address, ask it on this host's loopback */
	host = listen_uri + strlen("tcp:");
	if (!strncmp(host, "0.0.0.0:", 8))
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:%s", host + 8);
	else if (!strncmp(host, "[::]:", 5))
		snprintf(uri, sizeof(uri), "tcp:[::1]:%s", host + 5);
	else
		snprintf(uri, sizeof(uri), "%s", listen_uri);
	if (transport_witness_probe(uri, &key, "colovm witness-probe", &st, msg, sizeof(msg))) {
		fprintf(stderr, "colovm: witness-probe: %s\n", msg);
		ret = 1;
	} else {
		printf("%s\n", msg);
		ret = 0;
	}
	memset(&key, 0, sizeof(key));
out:
	config_free(&cfg);
	config_free(&args);
	return ret;
}

/* The tuning flags (config keys) that are QMP migrate-set-parameters' too:
 * applied at start as that command would, the same names. */
static int apply_parameters(struct colovm *c, const struct config *cfg)
{
	static const enum config_opt params[] = {
	    CFG_CHECKPOINT_INTERVAL, CFG_COMPARE_TIMEOUT, CFG_HEARTBEAT_INTERVAL,
	    CFG_HEARTBEAT_MISSES,    CFG_DOWNTIME_LIMIT,  CFG_MAX_BANDWIDTH,
	};
	json_t *args = json_object();
	char msg[256];
	int ret = 0;

	if (!args)
		return -ENOMEM;
	for (unsigned int i = 0; i < ARRAY_SIZE(params); i++)
		if (cfg->v[params[i]].set)
			json_object_set_new(args, config_key(params[i]),
					    json_integer((json_int_t)config_num(cfg, params[i])));
	if (json_object_size(args))
		ret = primary_set_parameters(c->primary, args, msg, sizeof(msg));
	if (ret)
		log_err("%s", msg);
	json_decref(args);
	return ret;
}

static int cmd_run(int argc, char **argv)
{
	struct config conf, args;
	const char *witness, *witness_key_file;
	struct transport_key witness_key;
	const char *qmp_spec, *restore, *incoming, *key_file;
	const char *peer, *listen_uri, *metrics_spec;
	char vm_config[1024], name[CONFIG_MAX_LINE];
	struct transport_key key;
	struct vm_config cfg;
	struct colovm c = {.sigfd = -1};
	int ret;

	ret = load_options(&conf, &args, CONFIG_RUN, argc, argv);
	if (ret) {
		config_free(&conf);
		config_free(&args);
		return ret == 1 ? 0 : ret;
	}
	cfg = (struct vm_config){
	    .kernel = config_str(&conf, CFG_KERNEL),
	    .initrd = config_str(&conf, CFG_INITRD),
	    .cmdline = config_str(&conf, CFG_CMDLINE),
	    .mem_mib = config_num(&conf, CFG_MEM),
	    .cpus = (unsigned int)config_num(&conf, CFG_CPUS),
	    .serial = config_str(&conf, CFG_SERIAL),
	    .net = conf.v[CFG_NET].item,
	    .nnet = conf.v[CFG_NET].n,
	    .disk = conf.v[CFG_DISK].item,
	    .ndisk = conf.v[CFG_DISK].n,
	    .mem_prealloc = config_bool(&conf, CFG_MEM_PREALLOC),
	};
	c.reboot = config_bool(&conf, CFG_REBOOT);
	c.shutdown_timeout = (unsigned int)config_num(&conf, CFG_SHUTDOWN_TIMEOUT);
	qmp_spec = config_str(&conf, CFG_QMP);
	restore = config_str(&conf, CFG_RESTORE);
	incoming = config_str(&conf, CFG_INCOMING);
	key_file = config_str(&conf, CFG_PEER_KEY);
	peer = config_str(&conf, CFG_PEER);
	listen_uri = config_str(&conf, CFG_LISTEN);
	witness = config_str(&conf, CFG_WITNESS);
	witness_key_file = config_str(&conf, CFG_WITNESS_KEY);
	metrics_spec = config_str(&conf, CFG_METRICS);
	/* --name, or the config file's name: the journal's COLOVM_VM, metrics */
	c.name = config_vm_name(&conf, name, sizeof(name));
	if (c.name)
		log_set_vm_name(c.name);

	ret = loop_new(&c.loop);
	if (ret) {
		log_err("cannot create the main loop: %s", strerror(-ret));
		return EXIT_SETUP_FAILED;
	}
	if ((key_file && load_key("--peer-key", key_file, &key)) ||
	    (witness_key_file && load_key("--witness-key", witness_key_file, &witness_key))) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	cfg.restore = restore || incoming || listen_uri;
	ret = runstate_new(c.loop,
			   restore		    ? RUN_STATE_RESTORE_VM
			   : incoming || listen_uri ? RUN_STATE_INMIGRATE
						    : RUN_STATE_PRELAUNCH,
			   &c.rs);
	if (ret) {
		log_err("cannot set up the run state: %s", strerror(-ret));
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	ret = setup_signals(&c);
	if (ret) {
		log_err("cannot set up signal handling: %s", strerror(-ret));
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	if (metrics_spec && start_metrics(c.loop, metrics_spec, service_render, &c, &c.metrics)) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	c.colo_primary = peer != NULL;
	if (qmp_spec) {
		ret = qmp_new(c.loop, &c.qmp);
		if (!ret)
			ret = qmp_attach_runstate(c.qmp, c.rs);
		if (!ret)
			ret = qmp_listen(c.qmp, qmp_spec);
		if (ret) {
			log_err("--qmp %s: %s", qmp_spec, strerror(-ret));
			c.status = EXIT_SETUP_FAILED;
			goto out;
		}
	}
	ret = hw_vm_create(&cfg, c.loop, NULL, NULL, &c.vm);
	if (ret) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	ret = hw_vm_describe(c.vm, vm_config, sizeof(vm_config));
	c.key = key_file ? &key : NULL;
	c.witness = witness;
	c.witness_key = witness_key_file ? &witness_key : NULL;
	c.vm_config = vm_config;
	c.disk_buffer_mib = (unsigned int)config_num(&conf, CFG_DISK_BUFFER_MEM);
	if (!ret)
		ret = hw_runstate_attach(c.vm, c.rs, c.reboot, &c.hwrs);
	if (!ret)
		ret = primary_new(
		    c.vm, c.rs, c.loop, c.qmp,
		    &(struct primary_opts){.key = key_file ? &key : NULL,
					   .vm_config = vm_config,
					   .witness = witness,
					   .witness_key = witness_key_file ? &witness_key : NULL,
					   .take_rewriters = colo_take_rewriters,
					   .switched = on_switched_primary,
					   .opaque = &c},
		    &c.primary);
	if (!ret)
		ret = register_colo_qmp(&c);
	if (ret) {
		log_err("cannot set up migration: %s", strerror(-ret));
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	if (apply_parameters(&c, &conf)) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	if (restore && restore_snapshot(&c, restore)) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	if (incoming) {
		struct secondary_opts so = {.key = key_file ? &key : NULL,
					    .done = on_incoming_done,
					    .opaque = &c};

		if (secondary_incoming(c.vm, c.rs, c.loop, incoming, &so, &c.secondary)) {
			c.status = EXIT_SETUP_FAILED;
			goto out;
		}
		ret = 0;
	} else if (listen_uri) {
		struct secondary_opts so = colo_secondary_opts(&c, false);

		if (secondary_colo_new(c.vm, c.rs, c.loop, listen_uri, &so, &c.colo_secondary)) {
			c.status = EXIT_SETUP_FAILED;
			goto out;
		}
		ret = 0;
	} else {
		ret = runstate_vm_start(c.rs);
	}
	if (ret) {
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	if (peer) {
		char msg[256];

		/* A primary that cannot pair runs on unprotected (the error is
		 * in the log and in query-colo-status); bad arguments end it. */
		ret = primary_colo_protect(c.primary, peer, 0, msg, sizeof(msg));
		if (ret == -EINVAL && !strncmp(msg, "Invalid", 7)) {
			log_err("--peer %s: expected tcp:HOST:PORT or rdma:HOST:PORT", peer);
			c.status = EXIT_SETUP_FAILED;
			goto out;
		}
		if (ret)
			log_err("COLO: cannot protect the VM: %s; it runs unprotected", msg);
	}
	/* systemd: READY, STATUS and the watchdog, from this loop */
	ret = notify_timer_new(c.loop, SERVICE_TICK_MS, service_tick, &c, &c.notify);
	if (ret) {
		log_err("cannot set up the service timer: %s", strerror(-ret));
		c.status = EXIT_SETUP_FAILED;
		goto out;
	}
	service_tick(&c);
	while (!runstate_main_loop_should_exit(c.rs)) {
		ret = loop_run_once(c.loop, powerdown_wait_ms(&c));
		if (ret < 0) {
			log_err("main loop: %s", strerror(-ret));
			c.status = EXIT_GUEST_ERROR;
			break;
		}
	}
	notify_stopping();
	if (!runstate_exit_signal(c.rs))
		handle_vm_event(&c);
out:
	notify_timer_free(c.notify);
	metrics_free(c.metrics); /* first: a scrape reads what follows */
	secondary_colo_free(c.colo_secondary);
	secondary_free(c.secondary);
	primary_free(c.primary);
	qmp_free(c.qmp);
	hw_vm_destroy(c.vm);
	hw_runstate_detach(c.hwrs); /* after the vCPU threads are gone */
	runstate_free(c.rs);
	if (c.sigfd >= 0)
		close(c.sigfd);
	loop_free(c.loop);
	config_free(&conf);
	config_free(&args);
	return c.status;
}

/*
 * colovm check-config FILE: the checks colovm run (a VM's file) or colovm
 * witness (a [witness] file) makes before it starts, and that the files it
 * names are there (kernel, initrd, disks, keys). Errors as FILE:LINE: msg;
 * 0 valid, 2 not.
 */
static int cmd_check_config(int argc, char **argv)
{
	struct checked k = {0};
	struct config cfg;
	uint8_t *buf = NULL;
	size_t len = 0;
	char name[128];
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-')
		usage_error("%s", "usage: colovm check-config FILE");
	ret = file_read_all(argv[1], &buf, &len);
	if (ret) {
		fprintf(stderr, "colovm: cannot read %s: %s\n", argv[1], strerror(-ret));
		return EXIT_SETUP_FAILED;
	}
	config_init(&cfg, config_guess_kind((const char *)buf, len), collect_error, &k);
	ret = config_load_buffer(&cfg, argv[1], (const char *)buf, len);
	free(buf);
	if (ret >= 0)
		config_check(&cfg, true);
	print_errors(&k);
	if (ret < 0 || cfg.errors) {
		fprintf(stderr, "%s: %u error%s\n", argv[1], cfg.errors,
			cfg.errors == 1 ? "" : "s");
		config_free(&cfg);
		return EXIT_SETUP_FAILED;
	}
	if (cfg.kind == CONFIG_WITNESS)
		printf("%s: valid: a witness on %s\n", argv[1], config_str(&cfg, CFG_W_LISTEN));
	else
		printf("%s: valid: VM %s, %s\n", argv[1], config_vm_name(&cfg, name, sizeof(name)),
		       config_str(&cfg, CFG_ROLE) ? config_str(&cfg, CFG_ROLE) : "not a COLO pair");
	config_free(&cfg);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 2)
		usage_error("%s", "missing command (run)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("colovm %s\n", COLOVM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "witness"))
		return cmd_witness(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check-config"))
		return cmd_check_config(argc - 1, argv + 1);
	if (!strcmp(argv[1], "witness-probe"))
		return cmd_witness_probe(argc - 1, argv + 1);
	usage_error("unknown command '%s' (expected: run, witness, witness-probe, check-config)",
		    argv[1]);
	return EXIT_SETUP_FAILED;
}
