#!/bin/bash
# The Pacemaker OCF agent for the witness (deploy/ocf/colovm-witness), as
# installed by `cmake --install` (its default binary the installed colovm),
# run natively as Pacemaker runs it: the action as its argument,
# OCF_ROOT and OCF_RESKEY_* in the environment, the exit status read as an
# OCF code and a failure's reason from its "ocf-exit-reason:" line. Without
# ocf-shellfuncs (resource-agents is not installed here).
#
#   meta-data        well-formed XML (xmllint), every action and parameter
#   validate-all     a bad config -> 6, a missing one -> 5, a key file that
#                    is not a key -> 2, no address at all -> 6, no colovm -> 5
#   monitor          7 before start; 0 when the witness answers its probe;
#                    1 when it runs but does not answer (stopped with
#                    SIGSTOP; probed with another key); 7 once it is killed
#   start            0 once it answers a real claim; again: 0, same process;
#                    a busy port: 1 with the witness's own error
#   stop             0, the process gone; again: 0
#   restart          the grants survive (the state file): the other side of
#                    a granted pairing is still refused
source "$(dirname "$0")/lib.sh"
: "${BUILD:?}"
CLAIM="$BUILD/tests/e2e/witness-claim"
[ -x "$CLAIM" ] || fail "no $CLAIM (built with the tests)"
command -v xmllint >/dev/null || fail "no xmllint (libxml2-utils)"

p=$TMP/prefix
cmake --install "$BUILD" --prefix "$p" >"$TMP/install.log" || fail "cmake --install: $(cat "$TMP/install.log")"
RA=$p/lib/ocf/resource.d/colovm/colovm-witness
[ -x "$RA" ] || fail "the agent is not installed at $RA"

PORT=$((46000 + RANDOM % 2000))
head -c32 /dev/urandom >"$TMP/key"
head -c32 /dev/urandom >"$TMP/other.key"
mkdir "$TMP/shared"
cat >"$TMP/witness.conf" <<EOF
[witness]
listen = tcp:0.0.0.0:$PORT
peer-key = $TMP/key
state = $TMP/shared/witness.state
EOF

export OCF_ROOT=$TMP/no-ocf-root # (no ocf-shellfuncs there, as here)
export OCF_RESOURCE_INSTANCE=witness-test
export OCF_RESKEY_config=$TMP/witness.conf
export OCF_RESKEY_pidfile=$TMP/run/witness.pid
export OCF_RESKEY_log=$TMP/log/witness.log
export OCF_RESKEY_CRM_meta_timeout=20000
# The agent's witness runs in a session of its own, not under this script:
# a test that fails half-way stops it here.
on_exit 'for f in "$TMP"/run/*.pid; do [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null; done'

# ra WANT ACTION [VAR=VALUE...]: run the agent, expect WANT; its stderr in $TMP/ra.err
ra() {
	local want=$1 action=$2 got=0
	shift 2
	env "$@" "$RA" "$action" >"$TMP/ra.out" 2>"$TMP/ra.err" || got=$?
	[ "$got" = "$want" ] || fail "$action ($*): exit $got, expected $want: $(cat "$TMP/ra.err")"
	! grep -qE 'AddressSanitizer|runtime error' "$TMP/ra.err" "$TMP/ra.out" || fail "$action: sanitizer report"
}
# reason REGEX: the last action's ocf-exit-reason matches
reason() {
	grep -E "^ocf-exit-reason:.*$1" "$TMP/ra.err" >/dev/null ||
		fail "no ocf-exit-reason matching /$1/: $(cat "$TMP/ra.err")"
	echo "   reason: $(grep '^ocf-exit-reason:' "$TMP/ra.err" | tail -1 | cut -c17-)"
}

# --- meta-data
ra 0 meta-data
xmllint --noout "$TMP/ra.out" || fail "meta-data is not well-formed XML"
for a in start stop monitor validate-all meta-data reload-agent; do
	xmllint --xpath "//actions/action[@name='$a']" "$TMP/ra.out" >/dev/null 2>&1 || fail "meta-data: no action $a"
done
for k in config binary listen peer_key state metrics pidfile log probe_listen; do
	xmllint --xpath "//parameters/parameter[@name='$k']" "$TMP/ra.out" >/dev/null 2>&1 ||
		fail "meta-data: no parameter $k"
done
[ "$(xmllint --xpath 'string(//parameter[@name="binary"]/content/@default)' "$TMP/ra.out")" = "$p/bin/colovm" ] ||
	fail "meta-data: the default binary is not the installed colovm"
echo "ok: meta-data: well-formed, 6 actions, 9 parameters, binary $p/bin/colovm"
ra 3 no-such-action
echo "ok: an unknown action: 3 (unimplemented)"

# --- validate-all
ra 0 validate-all
printf '[witness]\nlisten = udp:x\npeer-key = %s\n' "$TMP/key" >"$TMP/bad.conf"
ra 6 validate-all OCF_RESKEY_config="$TMP/bad.conf"
reason "bad.conf:2: witness: listen udp:x: expected tcp:HOST:PORT"
printf '[vm]\nkernel = /x\n' >"$TMP/vm.conf"
ra 6 validate-all OCF_RESKEY_config="$TMP/vm.conf"
reason "not a witness config \(its first section is not \[witness\]\)"
ra 5 validate-all OCF_RESKEY_config="$TMP/missing.conf"
reason "cannot read the config file $TMP/missing.conf"
echo "not a key" >"$TMP/bad.key"
ra 2 validate-all OCF_RESKEY_peer_key="$TMP/bad.key" OCF_RESKEY_config= OCF_RESKEY_listen=tcp:127.0.0.1:1
reason "the parameters:3: peer-key .*bad.key: not a key"
printf '[witness]\nlisten = tcp:127.0.0.1:1\npeer-key = %s\n' "$TMP/bad.key" >"$TMP/badkey.conf"
ra 2 validate-all OCF_RESKEY_config="$TMP/badkey.conf"
reason "not a key"
ra 6 validate-all OCF_RESKEY_config=
reason "neither config nor listen"
ra 6 validate-all OCF_RESKEY_listen=4600
reason "the parameters:2: witness: listen 4600: expected tcp:HOST:PORT"
ra 5 validate-all OCF_RESKEY_binary="$TMP/no-colovm"
reason "colovm is not installed"
ra 5 validate-all OCF_RESKEY_state="$TMP/not-mounted/witness.state"
reason "not-mounted is not on this node"
echo "ok: validate-all: 6 bad config, 5 missing config/binary/state dir, 2 not a key, 6 no address"

# --- monitor before start; a probe on a node without colovm
ra 7 monitor
ra 7 monitor OCF_RESKEY_binary="$TMP/no-colovm" OCF_RESKEY_CRM_meta_interval=0
ra 5 monitor OCF_RESKEY_binary="$TMP/no-colovm" OCF_RESKEY_CRM_meta_interval=10000
echo "ok: monitor before start: 7 (a probe without colovm: 7; a recurring monitor: 5)"

# --- start: answers a real claim
t0=$(date +%s%N)
ra 0 start
ms=$((($(date +%s%N) - t0) / 1000000))
PID=$(cat "$OCF_RESKEY_pidfile")
[ "$(tr '\0' ' ' <"/proc/$PID/cmdline")" = "$p/bin/colovm witness --config $TMP/witness.conf " ] ||
	fail "pid $PID is not the installed colovm witness: $(tr '\0' ' ' <"/proc/$PID/cmdline")"
echo "ok: start: 0 in $ms ms, pid $PID: $(tr '\0' ' ' <"/proc/$PID/cmdline")"
ra 0 monitor
expect_status 0 "$CLAIM" "tcp:127.0.0.1:$PORT" primary pair-ocf "$TMP/key"
expect_status 1 "$CLAIM" "tcp:127.0.0.1:$PORT" secondary pair-ocf "$TMP/key"
ra 0 monitor HA_debug=1
grep -q "answers: 1 pairings, 1 granted, 1 refused" "$TMP/ra.err" || fail "monitor's probe: $(cat "$TMP/ra.err")"
echo "ok: monitor 0; the witness granted pair-ocf to the primary, refused the secondary; the probe took no claim"
ra 0 start
[ "$(cat "$OCF_RESKEY_pidfile")" = "$PID" ] && kill -0 "$PID" || fail "a second start replaced the witness"
[ "$(pgrep -fc "colovm witness --config $TMP/witness.conf")" = 1 ] || fail "more than one witness"
echo "ok: start again: 0, the same process"

# --- monitor asks the witness, not the pid: another key, a stopped process
ra 1 monitor OCF_RESKEY_peer_key="$TMP/other.key"
reason "runs but does not answer: .*another key"
kill -STOP "$PID"
t0=$(date +%s)
ra 1 monitor
reason "runs but does not answer"
echo "   (monitor of a stopped witness took $(($(date +%s) - t0)) s)"
kill -CONT "$PID"
ra 0 monitor
ra 0 reload-agent OCF_RESKEY_probe_listen="tcp:127.0.0.1:$PORT"
ra 0 monitor OCF_RESKEY_probe_listen="tcp:127.0.0.1:$PORT"
ra 1 monitor OCF_RESKEY_probe_listen="tcp:127.0.0.1:$((PORT + 1))"
echo "ok: monitor 1 for a witness that runs but does not answer (another key, SIGSTOP, another address), 0 once it answers"

# --- killed: 7 (nothing is left to stop), then stop 0
kill -KILL "$PID"
while kill -0 "$PID" 2>/dev/null; do sleep 0.1; done
ra 7 monitor
ra 0 stop
echo "ok: kill -9: monitor 7, stop 0"

# --- restart: its grants kept
ra 0 start
PID=$(cat "$OCF_RESKEY_pidfile")
expect_status 1 "$CLAIM" "tcp:127.0.0.1:$PORT" secondary pair-ocf "$TMP/key"
expect_status 0 "$CLAIM" "tcp:127.0.0.1:$PORT" primary pair-ocf "$TMP/key"
echo "ok: started again (pid $PID): pair-ocf still the primary's"

# --- a second resource on the same port: start fails with the witness's reason
ra 1 start OCF_RESOURCE_INSTANCE=witness-two OCF_RESKEY_pidfile="$TMP/run/two.pid" \
	OCF_RESKEY_log="$TMP/log/two.log" OCF_RESKEY_state="$TMP/shared/two.state"
reason "exited at start \(status 2\).*Address already in use"
[ ! -e "$TMP/run/two.pid" ] || fail "a failed start left its pid file"

# --- stop, twice
ra 0 stop
kill -0 "$PID" 2>/dev/null && fail "the witness still runs after stop"
[ ! -e "$OCF_RESKEY_pidfile" ] || fail "stop left the pid file"
ra 0 stop
ra 7 monitor
! grep -qE 'AddressSanitizer|runtime error' "$OCF_RESKEY_log" || fail "sanitizer report in the witness's log"
grep -q "witness: stopping" "$OCF_RESKEY_log" || fail "the witness did not stop on SIGTERM: $(tail -3 "$OCF_RESKEY_log")"
echo "ok: stop 0 (SIGTERM, pid file gone), stop again 0, monitor 7"
echo PASS
