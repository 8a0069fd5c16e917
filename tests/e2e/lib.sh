# Shared helpers for end-to-end test scripts (source it).
set -euo pipefail

: "${COLOVM:?COLOVM not set (run through ctest)}"
: "${TESTGUEST:?TESTGUEST not set}"

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "--- $*" >&2; }

need_kvm() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "needs read/write access to /dev/kvm"
}
# need_linux_guest: Debian's kernel as a guest needs guest CPL 0 at speed,
# which kvm-pvm's /dev/kvm emulates (tests/kvm-kind.bash); tests/run runs
# such tests in a host VM there.
source "$(dirname "${BASH_SOURCE[0]}")/../kvm-kind.bash"
need_linux_guest() {
	need_kvm
	[ "$(kvm_kind)" != pvm ] ||
		skip "boots Debian's kernel, and /dev/kvm here is kvm-pvm (guest CPL 0 emulated): tests/run runs it in a host VM (tests/hostvm)"
}
need_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}
need_netns() {
	need_root
	ip netns add colovm-probe-$$ 2>/dev/null || skip "needs network namespaces"
	ip netns del colovm-probe-$$
}

TMP=$(mktemp -d /tmp/colovm-e2e.XXXXXX)
cleanup_hooks=()
on_exit() { cleanup_hooks+=("$*"); }
# Every process the test started, children before their parents. A VM started
# as `nsx "$COLOVM" ... &` runs under a subshell: killing $! alone would
# orphan colovm, so the whole tree is collected before anything is killed.
_descendants() {
	local p
	for p in $(pgrep -P "$1"); do
		_descendants "$p"
		echo "$p"
	done
}
# kill_tree PID: stop PID and everything under it (use it for a job started
# through a shell function, where $! is a subshell and not the VM itself).
kill_tree() {
	local pids
	pids="$(_descendants "$1") $1"
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
_cleanup() {
	local st=$? i pids
	set +e # clean-up goes on past a process that is already gone
	pids=$(_descendants $$)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill -TERM $pids 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			# shellcheck disable=SC2086
			kill -0 $pids 2>/dev/null || break
			sleep 0.1
		done
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
	fi
	for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}"; done
	# COLOVM_E2E_KEEP=DIR: a failed test's temporary folder (logs, consoles,
	# sockets' leftovers) is kept there, for a post-mortem
	if [ "$st" != 0 ] && [ -n "${COLOVM_E2E_KEEP:-}" ]; then
		mkdir -p "$COLOVM_E2E_KEEP" && cp -a "$TMP" "$COLOVM_E2E_KEEP/" &&
			echo "the failed test's files: $COLOVM_E2E_KEEP/$(basename "$TMP")" >&2
	fi
	rm -rf "$TMP"
	exit "$st"
}
trap _cleanup EXIT
# A test stopped from outside (ctest's timeout, ^C) still runs its clean-up
# hooks, so it never leaves VMs, namespaces or taps behind.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# wait_for_file_line FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_for_line() {
	local file=$1 re=$2 secs=$3 t=0
	while ! grep -qE "$re" "$file" 2>/dev/null; do
		sleep 0.1
		t=$((t + 1))
		[ $t -ge $((secs * 10)) ] && return 1
	done
	return 0
}

# wait_exit PID SECONDS: wait for a child to end by itself; its status, or
# 124 (and a SIGKILL) when it is still running after SECONDS.
wait_exit() {
	local pid=$1 secs=$2 t=0 st=0
	while kill -0 "$pid" 2>/dev/null && [ $t -lt $((secs * 10)) ]; do
		sleep 0.1
		t=$((t + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid" || st=$?
	return $st
}

# hung_guest CTL SOCK: why a test guest that should have ended has not:
# where its vCPUs are (x-query-registers), and whether one runs outside
# the test guest's image (its link map: _image_start.._end), which no test
# guest does: state its host handed it from elsewhere. In a host VM, QEMU's
# nested SVM under TCG has done that (a vCPU found at the host VM's own
# kernel addresses; issue #12), and tests/run runs a test that failed so
# once more in a fresh host VM.
hung_guest() {
	local regs
	regs=$("$1" --qmp "$2" x-query-registers 2>&1) || {
		echo "its registers cannot be read: $regs"
		return
	}
	python3 - "$regs" "${TESTGUEST%.elf}.map" <<'PY'
import json, re, sys
regs = json.loads(sys.argv[1])
m = open(sys.argv[2]).read()
lo, hi = (int(re.search(r"(0x[0-9a-f]+)\s+%s = \." % s, m).group(1), 16)
          for s in ("_image_start", "_end"))
where = ", ".join("vCPU %d at rip=%s rsp=%s cr3=%s" % (r["cpu"], r["rip"], r["rsp"], r["cr3"])
                  for r in regs)
out = [r for r in regs if not lo <= int(r["rip"], 16) < hi]
if out:
    print("%s: a vCPU runs outside the test guest's image (%#x-%#x): state its host "
          "handed it" % (where, lo, hi))
else:
    print(where)
PY
}

# expect_status WANT CMD...: run CMD, check its exit status.
expect_status() {
	local want=$1 got=0
	shift
	"$@" || got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}

# run_bad NAME REGEX ARGS...: expect exit 2, stderr matching REGEX, at most
# two lines (the error, and for usage errors the --help hint), no sanitizer
# report and no core dump.
run_bad() {
	local name=$1 re=$2 got=0
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err" </dev/null || got=$?
	[ "$got" = 2 ] || { cat "$TMP/err"; fail "$name: exit status $got, expected 2"; }
	grep -qE -e "$re" "$TMP/err" || { cat "$TMP/err"; fail "$name: stderr does not match /$re/"; }
	[ "$(wc -l <"$TMP/err")" -le 2 ] || { cat "$TMP/err"; fail "$name: more than two lines on stderr"; }
	! grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' "$TMP/err" ||
		fail "$name: crashed"
	echo "ok: $name: $(head -1 "$TMP/err")"
}

# bridge_ns NS TAP...: network namespace NS (removed at exit) holding bridge
# br0 (10.0.0.1/24, the client's address) with the taps TAP... as its
# ports: one guest's link, moved between VMs by a migration's announce.
bridge_ns() {
	local ns=$1 t
	shift
	ip netns add "$ns"
	on_exit "ip netns del $ns"
	ip -n "$ns" link set lo up
	# (connections from here take local ports above the 44000-50000 the
	# tests listen on: a drill's 100th listener found its port in use)
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="50000 60999"
	ip -n "$ns" link add br0 type bridge
	ip -n "$ns" addr add 10.0.0.1/24 dev br0
	for t in "$@"; do
		ip -n "$ns" tuntap add dev "$t" mode tap
		ip -n "$ns" link set "$t" master br0
		ip -n "$ns" link set "$t" up
	done
	ip -n "$ns" link set br0 up
}

# migration_pair NS MAC PORT ARGS...: in NS (bridge_ns NS tap0 tap1), a
# target on tap1 listening on tcp:127.0.0.1:PORT (QMP $TMP/t.sock, output
# $TMP/t.out) and a source on tap0 (QMP $TMP/s.sock, output $TMP/s.out),
# both colovm run ARGS; returns once the source's guest has its network and
# the target listens. Their PIDs: TPID, SPID.
migration_pair() {
	local ns=$1 mac=$2 port=$3
	shift 3
	ip netns exec "$ns" "$COLOVM" run "$@" --net tap=tap1,mac="$mac" \
		--incoming tcp:127.0.0.1:"$port" --qmp unix:"$TMP/t.sock",server \
		</dev/null >"$TMP/t.out" 2>&1 &
	TPID=$!
	on_exit "kill $TPID 2>/dev/null"
	ip netns exec "$ns" "$COLOVM" run "$@" --net tap=tap0,mac="$mac" \
		--qmp unix:"$TMP/s.sock",server </dev/null >"$TMP/s.out" 2>&1 &
	SPID=$!
	on_exit "kill $SPID 2>/dev/null"
	wait_for_line "$TMP/s.out" '^net: up ' 30 || fail "source guest not up: $(cat "$TMP/s.out")"
	wait_for_line "$TMP/t.out" 'waiting for an incoming' 10 || fail "target not listening"
}

# notify_listen SOCKET LOG: a NOTIFY_SOCKET (sd_notify's AF_UNIX datagram
# socket) in the background, NOTIFY_PID; every datagram as one line "MONOTONIC_S MSG" (newlines as |).
notify_listen() {
	"${PY:-python3}" - "$1" "$2" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        m = s.recv(4096).decode(errors="replace").replace("\n", "|")
        log.write("%.3f %s\n" % (time.monotonic(), m))
PY
	NOTIFY_PID=$!
	for _ in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.1; done
	fail "the notify listener did not start"
}
