# The guest RAM anchor (hw/anchor.c): a running VM has one child process,
# colovm-anchor, that shares colovm's address space (the guest RAM memfd is
# mapped in it at the same address) and holds only the KVM VM's fd and the
# read end of a pipe whose write end is colovm's; it is gone when colovm
# quits, and when colovm is SIGKILLed (EOF on its pipe once colovm's files
# are closed): no guest RAM is left behind. COLOVM_RAM_ANCHOR=0
# runs without one. (What it is for, a killed VMM's sockets closed before
# its guest RAM is freed, is measured in tests/bench/failover.sh.)
source "$(dirname "$0")/lib.sh"
need_kvm
[ -x "${COLOVMCTL:-}" ] || skip "colovmctl not built"
sock=$TMP/qmp.sock
start() {
	rm -f "$TMP/console" "$sock"
	"$COLOVM" run --kernel "$TESTGUEST" --mem 64 --cmdline "app=dirty mb=8 rate=4" \
		--qmp "unix:$sock,server" --serial "file:$TMP/console" 2>"$TMP/err" </dev/null &
	vm=$!
	on_exit "kill -9 $vm 2>/dev/null"
	wait_for_line "$TMP/console" '^dirty: t=1 ' 30 || fail "the guest did not start: $(cat "$TMP/err")"
}
# anchor_of PID: colovm's anchor child, checked
anchor_of() {
	local a
	a=$(pgrep -P "$1" -x colovm-anchor) || fail "colovm has no colovm-anchor child: $(ps -o pid,comm --ppid "$1")"
	[ "$(wc -w <<<"$a")" = 1 ] || fail "more than one anchor: $a"
	echo "$a"
}
# gone PID: the process has exited (reaped, or a zombie whose memory is freed) within 10 s
gone() {
	local st
	for _ in $(seq 100); do
		st=$(sed -n 's/^State:\s*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
		[ -z "$st" ] || [ "$st" = Z ] && return 0
		sleep 0.1
	done
	return 1
}

start
a=$(anchor_of "$vm")
# the same address space: guest RAM mapped at the same address in both
ram=$(grep 'memfd:colovm-ram' "/proc/$vm/maps" | awk '{print $1}')
[ -n "$ram" ] || fail "no guest RAM mapping in colovm: $(cat "/proc/$vm/maps")"
[ "$(grep 'memfd:colovm-ram' "/proc/$a/maps" | awk '{print $1}')" = "$ram" ] ||
	fail "the anchor does not map guest RAM at $ram: $(grep colovm-ram "/proc/$a/maps")"
# only the VM's fd and its pipe's read end: no socket, tap or disk of
# colovm's outlives colovm; the pipe's other end is colovm's
fds=$(for f in /proc/"$a"/fd/*; do readlink "$f"; done | sort | tr '\n' ' ')
[[ "$fds" =~ ^anon_inode:kvm-vm\ (pipe:\[[0-9]+\])\ $ ]] || fail "the anchor holds: $fds"
pipe=${BASH_REMATCH[1]}
[ "$(for f in /proc/"$vm"/fd/*; do readlink "$f"; done | grep -cxF "$pipe")" = 1 ] ||
	fail "colovm does not hold the anchor's pipe $pipe"
# no signal but SIGKILL (and SIGSTOP) reaches it: all others blocked
[ "$(sed -n 's/^SigBlk:\s*//p' "/proc/$a/status")" = fffffffffffbfeff ] ||
	fail "the anchor's blocked signals: $(grep SigBlk "/proc/$a/status")"
note "anchor $a of colovm $vm: guest RAM at $ram, fds: $fds"
"$COLOVMCTL" --qmp "$sock" quit >/dev/null || fail "quit refused"
wait_exit "$vm" 20 || fail "colovm did not quit: $(cat "$TMP/err")"
gone "$a" || fail "the anchor outlived a colovm that quit"
note "quit: colovm and its anchor gone"

start
a=$(anchor_of "$vm")
kill -KILL "$vm"
wait "$vm" 2>/dev/null || true
gone "$a" || fail "the anchor outlived a SIGKILLed colovm: $(cat "/proc/$a/status")"
note "SIGKILL: the anchor gone too"

COLOVM_RAM_ANCHOR=0 start
! pgrep -P "$vm" -x colovm-anchor >/dev/null || fail "COLOVM_RAM_ANCHOR=0: an anchor all the same"
"$COLOVMCTL" --qmp "$sock" quit >/dev/null || fail "quit refused"
wait_exit "$vm" 20 || fail "colovm did not quit"
note "COLOVM_RAM_ANCHOR=0: no anchor"
