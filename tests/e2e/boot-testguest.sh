# colovm boots the test guest: each app's output and exit status, console
# options, vCPU and memory variants, and host signals.
source "$(dirname "$0")/lib.sh"
need_kvm

# run WANT_STATUS NAME ARGS...: run colovm, keep stdout in $TMP/NAME.out.
run() {
	local want=$1 name=$2 got=0
	shift 2
	timeout 60 "$COLOVM" run --kernel "$TESTGUEST" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" \
		</dev/null || got=$?
	sed -i 's/\r$//' "$TMP/$name.out" # the guest's console ends lines with CR LF
	if [ "$got" != "$want" ]; then
		cat "$TMP/$name.out" "$TMP/$name.err"
		fail "$name: exit status $got, expected $want"
	fi
}
has() { grep -qE "$2" "$TMP/$1.out" || { cat "$TMP/$1.out"; fail "$1: no line /$2/"; }; }

run 0 hello --cmdline app=hello
has hello '^testguest: booted, cmdline="app=hello" mem=25[0-9] '
has hello '^testguest: hello, world$'
has hello '^testguest: exit 0$'
grep -q "guest reset through the i8042" "$TMP/hello.err" || fail "hello: not a clean reset"
echo "ok: app=hello prints its line and exits 0"

run 7 panic --cmdline app=panic
has panic '^testguest: panic: #PF page fault at rip=0x[0-9a-f]+ \(error=0x[0-9a-f]+\) cr2=0x100000000 cpl=3'
grep -q "guest wrote 3 to debug-exit: exit status 7" "$TMP/panic.err" || fail "panic: stderr"
run 7 panic-ud --cmdline "app=panic kind=ud"
has panic-ud 'panic: #UD'
echo "ok: app=panic reports the fault and exits 7 (debug-exit 3)"

run 5 badarg --cmdline "app=dirty mb=abc"
echo "ok: a bad guest argument exits 5 (debug-exit 2)"

# The dirty workload is deterministic: two runs print the same lines.
run 0 dirty1 --cmdline "app=dirty mb=16 rate=20 seconds=3"
run 0 dirty2 --cmdline "app=dirty mb=16 rate=20 seconds=3"
grep '^dirty: t=' "$TMP/dirty1.out" >"$TMP/d1"
grep '^dirty: t=' "$TMP/dirty2.out" >"$TMP/d2"
[ "$(wc -l <"$TMP/d1")" = 3 ] || { cat "$TMP/dirty1.out"; fail "dirty: expected 3 progress lines"; }
grep -q '^dirty: t=3 written=60 checksum=[0-9a-f]\{16\}$' "$TMP/d1" || fail "dirty: t=3 line"
cmp -s "$TMP/d1" "$TMP/d2" || { diff "$TMP/d1" "$TMP/d2"; fail "dirty: runs differ"; }
echo "ok: app=dirty prints identical checksums in two runs"

run 0 exits --cmdline "app=exits n=2000"
has exits '^exits: n=2000 ns=[0-9]+ per_exit_ns=[0-9]+ rate=[0-9]+$'
echo "ok: app=exits"

# Console to a file: nothing on stdout, everything in the file.
run 0 serialfile --cmdline app=hello --serial "file:$TMP/console.log"
[ ! -s "$TMP/serialfile.out" ] || fail "serial file: output leaked to stdout"
grep -q '^testguest: hello, world' "$TMP/console.log" || fail "serial file: no hello line"
run 0 serialnone --cmdline app=hello --serial none
[ ! -s "$TMP/serialnone.out" ] || fail "serial none: output on stdout"
echo "ok: --serial file:PATH and none"

# Two vCPUs (the AP stays in wait-for-SIPI), and RAM above the 3 GiB hole.
run 0 cpus2 --cmdline app=hello --cpus 2
has cpus2 '^testguest: hello, world$'
run 0 mem4g --mem 4096 --cmdline "app=dirty mb=256 rate=0 seconds=1"
has mem4g '^testguest: booted, .* mem=40[0-9][0-9] '
has mem4g '^testguest: exit 0$'
echo "ok: --cpus 2 and --mem 4096 (two memory slots)"

# Host signals end the VM with 128+N. SIGTERM would first press the ACPI
# power button of a guest that listens to it (--shutdown-timeout, default
# 30 s); the test guest never unmasks the button's interrupt, so colovm
# stops at once, and says why.
for sig in TERM INT; do
	"$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=dirty mb=16 rate=10" \
		>"$TMP/sig.out" 2>"$TMP/sig.err" </dev/null &
	pid=$!
	wait_for_line "$TMP/sig.out" '^dirty: t=1 ' 20 || fail "SIG$sig: guest did not start"
	t0=$(date +%s)
	kill -"$sig" "$pid"
	st=0
	wait "$pid" || st=$?
	secs=$(($(date +%s) - t0))
	want=$((128 + $(kill -l "$sig")))
	[ "$st" = "$want" ] || { cat "$TMP/sig.err"; fail "SIG$sig: status $st, expected $want"; }
	[ "$secs" -lt 20 ] || fail "SIG$sig: colovm took ${secs}s to stop (waited for a power-off?)"
	[ "$sig" != TERM ] || grep -q 'shutting down (the guest does not listen to the power button)' \
		"$TMP/sig.err" || { cat "$TMP/sig.err"; fail "SIGTERM: no 'does not listen' line"; }
done
echo "ok: SIGTERM -> 143, SIGINT -> 130, both at once"

# Console input: what is written to colovm's stdin reaches the guest's UART.
# (Input is sent once the guest is ready: its UART set-up clears the receive
# FIFO, as a 16550's does.)
mkfifo "$TMP/in"
"$COLOVM" run --kernel "$TESTGUEST" --cmdline app=console <"$TMP/in" >"$TMP/console.out" 2>&1 &
vm=$!
exec 3>"$TMP/in"
wait_for_line "$TMP/console.out" 'console: ready' 20 || fail "console: guest not ready"
printf 'hello over stdin\nquit\n' >&3
exec 3>&-
st=0
wait $vm || st=$?
[ "$st" = 0 ] || { cat "$TMP/console.out"; fail "console: status $st"; }
grep -q "console: got 'hello over stdin'" "$TMP/console.out" || fail "console: line not received"
echo "ok: console input from stdin reaches the guest"

# Halt: every vCPU halted with interrupts off ends the VM with status 0.
run 0 halt --cmdline app=halt
has halt '^testguest: halting$'
grep -q "guest halted: shutting down" "$TMP/halt.err" || fail "halt: not detected as a halt"
echo "ok: a guest halt ends colovm with status 0"
