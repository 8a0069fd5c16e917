# Bad QMP clients never hurt the VM: bad JSON, unknown commands, wrong
# argument types, a 10 MB line, clients leaving mid-command, a client that
# never reads. Each gets a QMP error or a closed connection; the guest keeps
# running (query-status says running, new dirty lines keep coming).
source "$(dirname "$0")/lib.sh"
need_kvm
[ -x "${COLOVMCTL:-}" ] || skip "colovmctl not built"
[ -f "$TESTGUEST" ] || skip "test guest not built"
command -v python3 >/dev/null || skip "needs python3 for raw socket clients"

S=$TMP/qmp.sock
OUT=$TMP/guest.out
"$COLOVM" run --kernel "$TESTGUEST" --cmdline "app=dirty mb=16 rate=10" \
	--qmp "unix:$S,server" >"$OUT" 2>&1 </dev/null &
VM=$!
on_exit "kill $VM 2>/dev/null"
ctl() { "$COLOVMCTL" --qmp "$S" "$@"; }
dirty_count() { grep -c '^dirty: t=' "$OUT" || true; }
wait_for_line "$OUT" '^dirty: t=1 ' 30 || { cat "$OUT"; fail "guest did not start dirtying"; }

# expect_qmp_error NAME CLASS REGEX CTL-ARGS...: colovmctl exits 1 with the error.
expect_qmp_error() {
	local name=$1 cls=$2 re=$3 got=0
	shift 3
	ctl "$@" >"$TMP/o" 2>"$TMP/e" || got=$?
	[ "$got" = 1 ] || { cat "$TMP/o" "$TMP/e"; fail "$name: colovmctl exited $got, expected 1"; }
	grep -q "$cls" "$TMP/e" || { cat "$TMP/e"; fail "$name: no $cls"; }
	grep -qE "$re" "$TMP/e" || { cat "$TMP/e"; fail "$name: desc does not match /$re/"; }
	echo "ok: $name: $(cat "$TMP/e")"
}

expect_qmp_error "bad JSON" GenericError "JSON parse error" '{"execute": }'
expect_qmp_error "unknown command" CommandNotFound "has not been found" no-such-command
expect_qmp_error "unexpected argument" GenericError "Parameter 'force' is unexpected" stop force=true
expect_qmp_error "arguments not an object" GenericError "'arguments' must be an object" \
	'{"execute": "query-status", "arguments": [1]}'
expect_qmp_error "wrong argument type" GenericError "Invalid parameter type for 'enable'" \
	'{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}'
expect_qmp_error "execute not a string" GenericError "'execute' must be a string" '{"execute": 42}'

# Raw socket clients.
cat >"$TMP/client.py" <<'PY'
import json, socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
f = s.makefile("rb")
greeting = json.loads(f.readline())
assert "QMP" in greeting, greeting
def send(b):
    s.sendall(b)
if mode == "hugeline":
    # 10 MB that never completes a JSON value: an error, then EOF.
    send(b'{"execute": "qmp_capabilities"}\n')
    json.loads(f.readline())
    try:
        send(b'{"execute": "' + b"a" * (10 * 1024 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    msgs = [json.loads(l) for l in f.readlines()]
    errs = [m for m in msgs if "error" in m]
    assert errs and "exceeds" in errs[0]["error"]["desc"], msgs
    print("closed after:", errs[0]["error"]["desc"])
elif mode == "partial":
    send(b'{"execute": "qmp_capabilities"}\n{"execute": "query-sta')
    s.close()
elif mode == "noread":
    send(b'{"execute": "qmp_capabilities"}\n{"execute": "query-status"}\n')
    s.shutdown(socket.SHUT_WR)
    s.close()
elif mode == "slow":
    # never read: many requests whose answers pile up; we must be dropped
    send(b'{"execute": "qmp_capabilities"}\n')
    req = b'{"execute": "query-commands"}\n' * 200
    try:
        for _ in range(400):
            send(req)
    except (BrokenPipeError, ConnectionResetError):
        print("dropped")
        sys.exit(0)
    s.settimeout(10)
    # still connected: the server must close us once we start reading
    data = b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
    print("closed after", len(data), "bytes")
PY
timeout 60 python3 "$TMP/client.py" "$S" hugeline || fail "10 MB line: no error + close"
timeout 20 python3 "$TMP/client.py" "$S" partial || fail "partial client"
timeout 20 python3 "$TMP/client.py" "$S" noread || fail "noread client"
timeout 120 python3 "$TMP/client.py" "$S" slow || fail "slow client not dropped"

# The VM kept running through all of it.
kill -0 $VM || fail "colovm died"
st=$(ctl query-status) || fail "query-status failed"
echo "$st" | grep -q '"status": "running"' || fail "query-status after abuse: $st"
n=$(dirty_count)
t=0
while [ "$(dirty_count)" -le "$n" ]; do
	sleep 0.1
	t=$((t + 1))
	[ $t -lt 50 ] || fail "no new dirty lines after the bad clients"
done
echo "ok: guest still running ($(dirty_count) dirty lines)"

ctl quit >/dev/null || { st=$?; tail -5 "$OUT"; fail "quit failed ($st)"; }
st=0
wait $VM || st=$?
[ "$st" = 0 ] || fail "colovm exited $st after quit"
! grep -qE 'AddressSanitizer|runtime error' "$OUT" || { cat "$OUT"; fail "sanitizer report"; }
echo "ok: qmp robustness"
