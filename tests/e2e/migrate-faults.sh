#!/bin/bash
# Migration failures: migrate_cancel mid-way, a target killed mid-way and a
# target with another --peer-key leave the source running (and able to
# migrate again); a stream that is not colovm's channel (garbage, a raw
# vmstate stream, a truncated one) into --incoming is refused at the
# transport handshake: the target exits non-zero with a message, without
# running the guest.
source "$(dirname "$0")/lib.sh"
need_kvm
CTL=${COLOVMCTL:?}
port=$((48100 + RANDOM % 800))
ARGS=(--kernel "$TESTGUEST" --mem 256 --cmdline "app=dirty mb=64 rate=10 seconds=60")
q() { "$CTL" --qmp "$TMP/s.sock" "$@"; }

"$COLOVM" run "${ARGS[@]}" --serial file:"$TMP/s.out" --qmp unix:"$TMP/s.sock",server \
	2>"$TMP/s.err" &
spid=$!
on_exit "kill $spid 2>/dev/null"
wait_for_line "$TMP/s.out" '^dirty: t=1 ' 20 || fail "source never reached t=1"
q migrate-set-parameters max-bandwidth=8388608 downtime-limit=100 >/dev/null ||
	fail "migrate-set-parameters"
q query-migrate-parameters | grep -q '"max-bandwidth": 8388608' || fail "parameters not set"

start_target() { # NAME [ARGS...]
	port=$((port + 1))
	"$COLOVM" run "${ARGS[@]}" "${@:2}" --incoming tcp:127.0.0.1:$port --serial file:"$TMP/$1.out" \
		2>"$TMP/$1.err" &
	tpid=$!
	on_exit "kill -9 $tpid 2>/dev/null"
	wait_for_line "$TMP/$1.err" 'waiting for an incoming' 10 || fail "$1: target not listening"
}
wait_status() { # REGEX SECONDS
	local t=0
	until q query-migrate | grep -qE "$1"; do
		sleep 0.1
		t=$((t + 1))
		if [ $t -ge $(($2 * 10)) ]; then
			fail "query-migrate never matched $1: $(q query-migrate)"
		fi
	done
	return 0
}
source_runs() {
	q query-status | grep -q '"running": true' || fail "source not running: $(q query-status)"
	local before after
	before=$(grep -c '^dirty: t=' "$TMP/s.out")
	sleep 1.5
	after=$(grep -c '^dirty: t=' "$TMP/s.out")
	[ "$after" -gt "$before" ] || fail "source guest makes no progress"
}

note "cancel mid-way"
start_target cancel
q migrate uri=tcp:127.0.0.1:$port >/dev/null || fail "migrate"
wait_status '"active"' 10
sleep 0.5
q migrate_cancel >/dev/null || fail "migrate_cancel"
wait_status '"cancelled"' 10
source_runs
got=0
wait $tpid || got=$?
[ $got != 0 ] || fail "cancel: target exited 0"
[ ! -s "$TMP/cancel.out" ] || fail "cancel: target guest ran"

note "target killed mid-way"
start_target killed
q migrate uri=tcp:127.0.0.1:$port >/dev/null || fail "migrate"
wait_status '"active"' 10
sleep 0.5
kill -9 $tpid
wait $tpid 2>/dev/null || true
wait_status '"failed"' 20
source_runs
[ ! -s "$TMP/killed.out" ] || fail "killed: target guest ran"

note "no target listening"
q migrate uri=tcp:127.0.0.1:1 >/dev/null || true
wait_status '"failed"' 10
source_runs

note "target with a --peer-key, source without"
head -c32 /dev/urandom >"$TMP/peer.key"
start_target wrongkey --peer-key "$TMP/peer.key"
q migrate uri=tcp:127.0.0.1:$port >/dev/null || true
wait_status '"failed"' 20
q query-migrate | grep -q 'different --peer-key' || fail "no key message: $(q query-migrate)"
source_runs
got=0
wait $tpid || got=$?
[ $got != 0 ] || fail "wrongkey: target exited 0"
grep -q "key differs" "$TMP/wrongkey.err" || fail "wrongkey: $(cat "$TMP/wrongkey.err")"
[ ! -s "$TMP/wrongkey.out" ] || fail "wrongkey: target guest ran"

note "migrate again, to completion, after the failures"
q migrate-set-parameters max-bandwidth=0 downtime-limit=300 >/dev/null
start_target final
"$CTL" --qmp "$TMP/s.sock" migrate tcp:127.0.0.1:$port >"$TMP/ctl.out" 2>/dev/null ||
	fail "final migration failed: $(cat "$TMP/s.err")"
wait_for_line "$TMP/final.out" '^dirty: t=' 10 || fail "final target prints nothing"
kill $tpid
grep -q 'verify failed' "$TMP/final.out" && fail "verification failed after the failed attempts"
q quit >/dev/null || true
wait $spid || true

note "corrupt streams into --incoming"
corrupt() { # NAME PYTHON-EXPR-FOR-BYTES
	start_target "$1"
	python3 - "$port" "$2" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
try:
    s.sendall(eval(sys.argv[2]))
    time.sleep(0.3)
except OSError:
    pass
s.close()
PY
	local got=0
	wait $tpid || got=$?
	[ $got != 0 ] || fail "$1: target exited 0"
	grep -q 'incoming migration failed' "$TMP/$1.err" || fail "$1: no message: $(cat "$TMP/$1.err")"
	[ ! -s "$TMP/$1.out" ] || fail "$1: target guest ran"
	note "$1: $(grep 'incoming migration failed' "$TMP/$1.err")"
}
corrupt garbage "b'hello, this is not a migration stream' * 10"
# A vmstate header, then a START 'ram' record with a bad CRC: not a channel.
corrupt badcrc "__import__('struct').pack('<IHHI', 0x534d5643, 1, 0, 4096) + __import__('struct').pack('<I', __import__('zlib').crc32(__import__('struct').pack('<IHHI', 0x534d5643, 1, 0, 4096))) + bytes([1, 0,0,0,0, 3]) + b'ram' + bytes(8) + bytes([8,0,0,0]) + bytes(8) + bytes(4)"
corrupt truncated "__import__('struct').pack('<IHH', 0x534d5643, 1, 0)"
echo "PASS"
