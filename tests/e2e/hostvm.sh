# The host-VM runner (tests/hostvm) that every KVM test relies on where this
# machine has no /dev/kvm, tested as a user of it would:
#  1. `hostvm run` returns the command's output and exit status, with
#     /dev/kvm, /dev/net/tun and network namespaces inside, and the
#     repository writable at its own path.
#  2. Two host VMs joined by a link: they ping each other; `hostvm monitor
#     DIR "set_link n0 off"` cuts the link (pings stop); `hostvm kill DIR`
#     is a host losing power (its qemu is gone at once, the peer lives on).
#  3. The watchdog: a command that stays silent past --quiet-timeout is
#     stopped with exit 124 and a dump of the VM's kernel task stacks; a
#     host VM whose kernel stops (no heartbeat from the agent inside for
#     --stuck-timeout) ends with exit 123 and its vCPUs' registers; one
#     that stops while booting, before the command started, is booted again.
#  4. Nothing is left behind: no qemu of this test survives, even when the
#     `hostvm run` process itself is SIGKILLed (whose state directory the
#     next `hostvm run` removes).
: "${COLOVM:=unused}" "${TESTGUEST:=unused}"
. "$(dirname "$0")/lib.sh"
need_root
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing (deploy/install-deps installs it)"
HOSTVM=$SRC/tests/hostvm
qemus() { pgrep -f "qemu-system-x86_64.*$1" || true; }
# running PID: the process exists and is not a zombie (a killed qemu whose
# starter has exited waits for init to reap it)
running() { [ -e /proc/$1/stat ] && [ "$(sed 's/.*) //' /proc/$1/stat | cut -d' ' -f1)" != Z ]; }

note "1. run: status, output, what the host VM offers"
got=0
"$HOSTVM" run --mem 1024 --rw "$TMP" -- bash -c "test -c /dev/kvm && test -c /dev/net/tun && ip netns add hv-probe &&
	ip netns exec hv-probe true && echo inside > $TMP/probe && echo hostvm-ok && exit 7" \
	>"$TMP/run.out" 2>"$TMP/run.err" || got=$?
[ "$got" = 7 ] || { cat "$TMP/run.err" "$TMP/run.out"; fail "hostvm run: status $got, expected the command's 7"; }
grep -qx hostvm-ok "$TMP/run.out" || fail "hostvm run: the command's output did not come back"
grep -qx inside "$TMP/probe" 2>/dev/null || fail "hostvm run: a file written inside is missing outside ($TMP/probe)"
echo "ok: run: exit status 7 and output returned; /dev/kvm, tun, netns inside; $TMP writable"

# 3 spends a minute waiting for silence: its host VM runs in the background
# while 2, 3b and 4 run (its verdict is checked after 4).
note "3. watchdog: a silent command (in the background until after 4)"
t3=$(date +%s)
"$HOSTVM" run --mem 512 --quiet-timeout 60 -- sleep 1000 >"$TMP/wd.out" 2>"$TMP/wd.err" &
wd=$!

note "2. two host VMs over a link: ping, set_link off, kill"
P=$((20000 + RANDOM % 20000))
for vm in A B; do on_exit "$HOSTVM kill $TMP/$vm"; done
"$HOSTVM" start "$TMP/A" --mem 512 --link $P:$((P + 1)) --ip 10.9.0.1/24 -- \
	bash -c "while :; do if ping -c1 -W1 10.9.0.2 >/dev/null; then echo up; else echo down; fi; sleep 0.5; done"
"$HOSTVM" start "$TMP/B" --mem 512 --link $((P + 1)):$P --ip 10.9.0.2/24 -- sleep 600
wait_for_line "$TMP/A/ctl/out" '^up$' 120 || { tail -5 "$TMP/A/console.log"; fail "A never reached B over the link"; }
echo "ok: A pings B over the link"
"$HOSTVM" monitor "$TMP/A" "set_link n0 off" >/dev/null
sleep 2
: >"$TMP/A/ctl/out"
wait_for_line "$TMP/A/ctl/out" '^down$' 30 || fail "pings still answered after set_link off"
! grep -q '^up$' "$TMP/A/ctl/out" || fail "a ping crossed the cut link"
echo "ok: set_link off cut the link"
"$HOSTVM" monitor "$TMP/A" "set_link n0 on" >/dev/null
: >"$TMP/A/ctl/out"
wait_for_line "$TMP/A/ctl/out" '^up$' 30 || fail "the link did not come back after set_link on"
echo "ok: set_link on restored it"
pb=$(cat "$TMP/B/pid")
"$HOSTVM" kill "$TMP/B"
! running "$pb" || fail "B's qemu ($pb) still runs after hostvm kill"
: >"$TMP/A/ctl/out"
wait_for_line "$TMP/A/ctl/out" '^down$' 30 || fail "B still answers after its host was killed"
running "$(cat "$TMP/A/pid")" || fail "A died with B"
"$HOSTVM" kill "$TMP/A"
echo "ok: kill: B's qemu gone at once, A saw it go and lived on"

note "3b. watchdog: a host VM whose kernel stops"
# A stopped machine (the monitor's "stop") is what a livelocked kernel looks
# like from outside: no heartbeat from the agent inside.
on_exit "$HOSTVM kill $TMP/S"
"$HOSTVM" start "$TMP/S" --mem 512 -- sleep 1000
wait_for_line "$TMP/S/ctl/booted" booted 120 || { tail -5 "$TMP/S/console.log"; fail "stuck case: the host VM did not boot"; }
"$HOSTVM" monitor "$TMP/S" stop >/dev/null
got=0
t0=$(date +%s)
"$HOSTVM" wait "$TMP/S" --stuck-timeout 15 >"$TMP/st.out" 2>"$TMP/st.err" || got=$?
[ "$got" = 123 ] || { tail -20 "$TMP/st.err"; fail "stuck kernel: status $got, expected 123"; }
grep -q "the host VM's kernel stopped: no heartbeat for" "$TMP/st.err" || { tail -20 "$TMP/st.err"; fail "stuck kernel: no reason given"; }
grep -qE "^RIP=[0-9a-f]{16} .* <- [a-z_]" "$TMP/st.err" || { tail -30 "$TMP/st.err"; fail "stuck kernel: no named vCPU RIP in the dump"; }
! running "$(cat "$TMP/S/pid")" || fail "stuck kernel: its qemu still runs"
echo "ok: a stopped host VM detected after $(($(date +%s) - t0)) s (exit 123), vCPUs dumped with symbols"

note "3c. a host VM whose kernel stops while booting is booted again"
# (QEMU's TCG can livelock on the kernel patching its own code; the command
# has not started, so hostvm boots again.) The monitor's "stop" before the
# boot ends stands in for the livelock, for hostvm start (its supervisor)
# and hostvm run (its wait) at once.
on_exit "$HOSTVM kill $TMP/B2"
"$HOSTVM" start "$TMP/B2" --mem 512 --stuck-timeout 25 -- echo start-ok
"$HOSTVM" run --mem 512 --stuck-timeout 25 -- echo run-ok >"$TMP/b2r.out" 2>"$TMP/b2r.err" &
b2r=$!
st=
for ((i = 0; i < 100; i++)); do
	q=$(pgrep -P $b2r qemu-system || true)
	[ -n "$q" ] && st=$(tr '\0' '\n' <"/proc/$q/cmdline" | sed -n 's|^file:\(.*\)/console.log$|\1|p')
	[ -S "$TMP/B2/monitor.sock" ] && [ -n "$st" ] && [ -S "$st/monitor.sock" ] && break
	sleep 0.1
done
[ -n "$st" ] || fail "no qemu under hostvm run"
for d in "$TMP/B2" "$st"; do
	"$HOSTVM" monitor "$d" stop >/dev/null
	[ ! -e "$d/ctl/booted" ] || fail "boot stall: $d booted before the monitor's stop: nothing tested"
done
got=0
"$HOSTVM" wait "$TMP/B2" >"$TMP/b2.out" 2>&1 || got=$?
[ "$got" = 0 ] || { cat "$TMP/b2.out" "$TMP/B2/boot.log"; fail "boot stall, start: status $got, expected 0"; }
grep -q "booting the host VM again (try 2 of 3" "$TMP/B2/boot.log" ||
	{ cat "$TMP/B2/boot.log"; fail "boot stall, start: the second boot is not reported"; }
[ "$(grep -cx start-ok "$TMP/B2/ctl/out")" = 1 ] || fail "boot stall, start: the command's output is not there once"
[ -s "$TMP/B2/console.stalled-boot.1" ] || fail "boot stall, start: the stalled boot's console is not kept"
got=0
wait $b2r || got=$?
[ "$got" = 0 ] || { cat "$TMP/b2r.err"; fail "boot stall, run: status $got, expected 0"; }
grep -q "booting the host VM again (try 2 of 3" "$TMP/b2r.err" ||
	{ cat "$TMP/b2r.err"; fail "boot stall, run: the second boot is not reported"; }
[ "$(grep -cx run-ok "$TMP/b2r.out")" = 1 ] || fail "boot stall, run: the command's output is not there once"
echo "ok: a stall while booting: booted again, the command ran once (start and run)"

note "4. nothing left behind when hostvm run is SIGKILLed"
"$HOSTVM" run --mem 512 -- sleep 1000 >/dev/null 2>&1 &
hv=$!
q=
for ((i = 0; i < 200; i++)); do
	q=$(pgrep -P $hv qemu-system || true)
	[ -n "$q" ] && break
	sleep 0.1
done
[ -n "$q" ] || fail "no qemu under hostvm run"
state=$(tr '\0' '\n' <"/proc/$q/cmdline" | sed -n 's|^file:\(.*\)/console.log$|\1|p')
[ -d "$state" ] || fail "no state directory in qemu's command line"
kill -KILL $hv
for ((i = 0; i < 50; i++)); do running "$q" || break; sleep 0.1; done
! running "$q" || fail "qemu $q outlived its SIGKILLed hostvm run"
[ -z "$(qemus "$TMP")" ] || fail "qemu processes of this test still run: $(qemus "$TMP")"
echo "ok: the host VM died with its runner; no qemu of this test is left"
"$HOSTVM" run --mem 512 -- true || fail "hostvm run after a SIGKILLed one failed"
[ ! -e "$state" ] || fail "the SIGKILLed run's state directory $state is still there after the next run"
echo "ok: the next hostvm run removed the SIGKILLed run's state directory"

note "3. watchdog: the verdict"
got=0
wait "$wd" || got=$?
[ "$got" = 124 ] || { tail -20 "$TMP/wd.err"; fail "watchdog: status $got, expected 124"; }
grep -q "no output from the command or the host VM for 60 s" "$TMP/wd.err" || fail "watchdog: no reason given"
grep -qE "task:.*state:|Show State|show_state|sysrq: " "$TMP/wd.err" || { tail -30 "$TMP/wd.err"; fail "watchdog: no task dump"; }
grep -qE "task:sleep +state:S" "$TMP/wd.err" || { tail -60 "$TMP/wd.err"; fail "watchdog: the dump does not show the command's task"; }
echo "ok: watchdog fired $(($(date +%s) - t3)) s after its run started, with a task dump ($(grep -c 'task:' "$TMP/wd.err") tasks)"
