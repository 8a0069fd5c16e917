#!/bin/bash
# `colovm witness` as a service, natively (no KVM): what systemd and
# Prometheus see of it.
#
# 1. sd_notify to a real NOTIFY_SOCKET (an AF_UNIX datagram socket here):
#    READY=1 once it listens, WATCHDOG=1 every half WATCHDOG_USEC, fed by the
#    main loop (a claimant that stalls the main loop stalls the feeding: the
#    HTTP thread alone does not feed it), STOPPING=1 at SIGTERM.
# 2. --metrics: scraped over HTTP and parsed with prometheus_client's
#    parser (python3-prometheus-client) after real claims (granted, refused,
#    a wrong key): the counters say what the claimants were told. Another
#    path is 404, POST 405; a flood of connections to the metrics port does
#    not stall claims or the watchdog.
# 3. Bad --metrics addresses: a clear error, exit 2 (run and witness).
# 4. journald (root: a private mount namespace with a journal socket of our
#    own): with JOURNAL_STREAM naming stderr, lines reach the journal socket
#    with PRIORITY and COLOVM_ROLE=witness (a grant with
#    COLOVM_EVENT=witness-grant), and not stderr.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3 # Debian's, with python3-prometheus-client
CLAIM="$BUILD/tests/e2e/witness-claim"
[ -x "$CLAIM" ] || fail "no $CLAIM (built with the tests)"
$PY -c 'import prometheus_client.parser' 2>/dev/null || fail "python3-prometheus-client is missing"
head -c32 /dev/urandom >"$TMP/key"
head -c32 /dev/urandom >"$TMP/other.key"


# scrape URL: the exposition parsed; prints "name{labels} value" per sample, sorted.
scrape() {
	$PY - "$1" <<'PY'
import sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
r = urllib.request.urlopen(sys.argv[1], timeout=10)
assert r.status == 200, r.status
ct = r.headers["Content-Type"]
assert ct.startswith("text/plain; version=0.0.4"), ct
for fam in text_string_to_metric_families(r.read().decode()):
    assert fam.documentation, "no HELP for " + fam.name
    for s in fam.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        print("%s{%s} %s %s" % (s.name, labels, repr(s.value), fam.type))
PY
}
# metric FILE NAME{LABELS}: the value (with its TYPE), from scrape's output
metric() { grep -F "$2 " "$1" | head -1 | cut -d' ' -f2-; }

notify_listen "$TMP/notify.sock" "$TMP/notify.log"
NOTIFY_SOCKET="$TMP/notify.sock" WATCHDOG_USEC=1000000 \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --peer-key "$TMP/key" \
	--state "$TMP/witness.state" --metrics tcp:127.0.0.1:0 2>"$TMP/witness.err" &
WIT=$!
wait_for_line "$TMP/witness.err" 'witness: serving claims on' 10 ||
	fail "the witness does not start: $(cat "$TMP/witness.err")"
WURI=$(grep -oE 'serving claims on tcp:[0-9.]+:[0-9]+' "$TMP/witness.err" | grep -oE 'tcp:.*')
MURL=$(grep -oE 'metrics: serving http://[^ ]+' "$TMP/witness.err" | grep -oE 'http://.*')
WPORT=${WURI##*:}
note "witness at $WURI, metrics at $MURL"
grep -q 'systemd watchdog: 1000 ms, fed every 500 ms' "$TMP/witness.err" ||
	fail "the watchdog period is not taken from WATCHDOG_USEC: $(cat "$TMP/witness.err")"

# --- sd_notify: READY, then WATCHDOG from the main loop
wait_for_line "$TMP/notify.log" 'READY=1' 5 || fail "no READY=1: $(cat "$TMP/notify.log")"
grep -q 'READY=1|STATUS=serving claims' "$TMP/notify.log" || fail "READY without STATUS"
sleep 3
n=$(grep -c ' WATCHDOG=1$' "$TMP/notify.log")
[ "$n" -ge 4 ] || fail "only $n WATCHDOG=1 in 3 s (period 1 s: one every 0.5 s)"
echo "ok: READY=1, then $n WATCHDOG=1 in ~3 s"

# A claimant that connects and says nothing holds the main loop in the
# handshake (2 s): the watchdog is not fed meanwhile, though the HTTP
# thread runs. The largest gap between two WATCHDOG=1 (from the last one
# before the stall on) covers the stall.
before=$(grep -c ' WATCHDOG=1$' "$TMP/notify.log")
$PY - "$WPORT" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(3)
PY
STALL=$!
sleep 0.5
scrape "$MURL" >"$TMP/stalled.txt" || fail "no scrape while the main loop is held"
wait $STALL
sleep 1.5
gap=$($PY - "$TMP/notify.log" "$before" <<'PY'
import sys
t = [float(l.split()[0]) for l in open(sys.argv[1]) if l.rstrip().endswith("WATCHDOG=1")]
t = t[int(sys.argv[2]) - 1:]
print("%.2f" % max(b - a for a, b in zip(t, t[1:])) if len(t) > 1 else "none")
PY
)
[ "$gap" != none ] && $PY -c "import sys; sys.exit(not $gap >= 1.5)" ||
	fail "the watchdog was fed while the main loop was held (largest gap $gap s): $(cat "$TMP/notify.log" "$TMP/witness.err")"
echo "ok: a held main loop stops feeding the watchdog (gap $gap s)"

# --- claims, then the metrics say what the claimants were told
expect_status 0 "$CLAIM" "$WURI" primary pair-a "$TMP/key"
expect_status 1 "$CLAIM" "$WURI" secondary pair-a "$TMP/key"
expect_status 0 "$CLAIM" "$WURI" primary pair-a "$TMP/key"
expect_status 0 "$CLAIM" "$WURI" secondary pair-b "$TMP/key"
expect_status 2 "$CLAIM" "$WURI" primary pair-c "$TMP/other.key"
scrape "$MURL" >"$TMP/m.txt" || fail "scrape failed"
cat "$TMP/m.txt"
[ "$(metric "$TMP/m.txt" 'colovm_witness_claims_total{verdict="granted"}')" = "3.0 counter" ] ||
	fail "granted claims: expected 3"
[ "$(metric "$TMP/m.txt" 'colovm_witness_claims_total{verdict="refused"}')" = "1.0 counter" ] ||
	fail "refused claims: expected 1"
[ "$(metric "$TMP/m.txt" 'colovm_witness_pairs{}')" = "2.0 gauge" ] || fail "pairs: expected 2"
# (claims on channels of their own: no side holds a session)
[ "$(metric "$TMP/m.txt" 'colovm_witness_sessions{}')" = "0.0 gauge" ] || fail "sessions: expected 0"
# bad peers: the silent claimant that held the main loop, and the wrong key
[ "$(metric "$TMP/m.txt" 'colovm_witness_bad_peers_total{}')" = "2.0 counter" ] ||
	fail "bad peers: expected 2 (a silent one, a wrong key)"
grep -q '^colovm_build_info{command="witness",version="' "$TMP/m.txt" || fail "no build info"
echo "ok: metrics after 5 claims: 3 granted, 1 refused, 2 bad peers, 2 pairs"

# --- HTTP: other paths and methods
code() { $PY - "$@" <<'PY'
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], method=sys.argv[2], data=b"x" if sys.argv[2] == "POST" else None)
try:
    print(urllib.request.urlopen(req, timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
}
[ "$(code "${MURL%/metrics}/" GET)" = 404 ] || fail "/ is not 404"
[ "$(code "${MURL%/metrics}/metricsx" GET)" = 404 ] || fail "/metricsx is not 404"
[ "$(code "$MURL" POST)" = 405 ] || fail "POST is not 405"
[ "$(code "$MURL" HEAD)" = 200 ] || fail "HEAD is not 200"
echo "ok: 404 off /metrics, 405 for POST, HEAD 200"

# --- a flood of connections (held open, then slowloris bytes) to the metrics
# port: claims still answered at once, the watchdog still fed, a scrape
# works again once it is over.
: >"$TMP/notify.log"
MPORT=$(echo "$MURL" | grep -oE ':[0-9]+/' | tr -d :/)
$PY - "$MPORT" <<'PY' &
import socket, sys, time
conns, end = [], time.monotonic() + 4
for i in range(300):  # (beyond the limit and the backlog, connects time out)
    if time.monotonic() > end:
        break
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2)
        s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        conns.append(s)
    except OSError:
        pass
time.sleep(max(0, end - time.monotonic()))
PY
FLOOD=$!
sleep 1
t0=$(date +%s%N)
expect_status 0 "$CLAIM" "$WURI" primary pair-d "$TMP/key"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 2000 ] || fail "a claim took $ms ms during the flood"
wait $FLOOD
n=$(grep -c ' WATCHDOG=1$' "$TMP/notify.log")
[ "$n" -ge 6 ] && [ "$n" -le 14 ] || fail "the watchdog was fed $n times during a 4-5 s flood"
scrape "$MURL" >"$TMP/m2.txt" || fail "no scrape after the flood"
[ "$(metric "$TMP/m2.txt" 'colovm_witness_claims_total{verdict="granted"}')" = "4.0 counter" ] ||
	fail "granted claims after the flood: expected 4"
echo "ok: flood of 300 connections: claim in $ms ms, $n WATCHDOG=1, scrape fine after"

kill -TERM $WIT
wait_exit $WIT 10 || fail "the witness did not end on SIGTERM (status $?)"
wait_for_line "$TMP/notify.log" 'STOPPING=1' 3 || fail "no STOPPING=1"
! grep -qE 'AddressSanitizer|runtime error' "$TMP/witness.err" || fail "sanitizer report"
echo "ok: STOPPING=1 at SIGTERM, exit 0"

# --- bad --metrics addresses: clear errors, exit 2, before anything starts
run_bad "metrics not tcp" "--metrics unix:/x: expected tcp:HOST:PORT" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics unix:/x
run_bad "metrics no port" "--metrics tcp:127.0.0.1:: expected tcp:HOST:PORT" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics tcp:127.0.0.1:
run_bad "metrics port out of range" "expected tcp:HOST:PORT" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics tcp:127.0.0.1:70000
run_bad "metrics unknown host" "--metrics tcp:no-such-host.invalid:9: cannot resolve" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics tcp:no-such-host.invalid:9
run_bad "metrics address not here" "cannot listen on 192.0.2.1:9100: Cannot assign" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics tcp:192.0.2.1:9100
$PY -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)' >"$TMP/busy" &
BUSY=$!
wait_for_line "$TMP/busy" '^[0-9]+$' 5 || fail "no busy port"
run_bad "metrics port in use" "cannot listen on 127.0.0.1:$(cat "$TMP/busy"): Address already in use" \
	"$COLOVM" witness --listen tcp:127.0.0.1:0 --metrics "tcp:127.0.0.1:$(cat "$TMP/busy")"
run_bad "run: metrics port in use" "Address already in use" \
	"$COLOVM" run --kernel "$TESTGUEST" --metrics "tcp:127.0.0.1:$(cat "$TMP/busy")"
run_bad "run: bad name" "--name '': expected 1 to 64 letters" \
	"$COLOVM" run --kernel "$TESTGUEST" --name ''
kill $BUSY

# --- journald: a journal socket of our own in a private mount namespace
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
	echo "SKIP (part): journald needs root and mount namespaces"
	exit 0
fi
unshare -m --propagation private bash -s -- "$COLOVM" "$TMP" "$PY" "$CLAIM" <<'SH' || fail "journald part"
set -euo pipefail
COLOVM=$1 TMP=$2 PY=$3 CLAIM=$4
mount -t tmpfs colovm-test /run
mkdir -p /run/systemd/journal
$PY - /run/systemd/journal/socket "$TMP/journal.log" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(65536).decode(errors="replace").replace("\n", "|") + "\n")
PY
J=$!
# (whatever ends this script, the listener goes: left behind, it would
# hold CTest's pipe open until the test's timeout)
trap 'kill $J 2>/dev/null || true' EXIT
# (the waits are long: this may run beside a busy host VM)
for _ in $(seq 300); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done
exec 9>"$TMP/jstderr"
JP=$((47000 + RANDOM % 900))
JOURNAL_STREAM=$(stat -c '%d:%i' "$TMP/jstderr") "$COLOVM" witness \
	--listen tcp:127.0.0.1:$JP 2>&9 &
W=$!
for _ in $(seq 300); do grep -q 'serving claims' "$TMP/journal.log" 2>/dev/null && break; sleep 0.1; done
"$CLAIM" tcp:127.0.0.1:$JP primary pair-j >/dev/null || { echo "FAIL: the claim through the journald witness"; exit 1; }
kill -TERM $W
wait $W || { echo "FAIL: the journald witness ended with status $?"; exit 1; }
kill $J
cat "$TMP/journal.log"
grep 'MESSAGE=witness: serving claims on tcp:127.0.0.1:' "$TMP/journal.log" |
	grep 'PRIORITY=6' | grep 'SYSLOG_IDENTIFIER=colovm' | grep -q 'COLOVM_ROLE=witness' ||
	{ echo "FAIL: no structured journal entry"; exit 1; }
! grep -q 'serving claims' "$TMP/jstderr" || { echo "FAIL: the line went to stderr too"; exit 1; }
# a COLO event carries its name
grep 'MESSAGE=witness: pair 70616972 ' "$TMP/journal.log" | grep 'granted to the primary' |
	grep -q 'COLOVM_EVENT=witness-grant' || { echo "FAIL: no COLOVM_EVENT"; exit 1; }
! grep 'serving claims' "$TMP/journal.log" | grep -q COLOVM_EVENT ||
	{ echo "FAIL: COLOVM_EVENT on a plain line"; exit 1; }
# a JOURNAL_STREAM that is not stderr: plain stderr as before
JOURNAL_STREAM=1:1 "$COLOVM" witness --listen tcp:127.0.0.1:0 2>"$TMP/plain" &
W=$!
for _ in $(seq 300); do grep -q 'serving claims' "$TMP/plain" 2>/dev/null && break; sleep 0.1; done
kill -TERM $W
wait $W || { echo "FAIL: the plain witness ended with status $?"; exit 1; }
grep -q '^colovm: witness: serving claims' "$TMP/plain" || { echo "FAIL: no stderr line"; exit 1; }
SH
echo "ok: journald: structured entries (PRIORITY, COLOVM_ROLE, COLOVM_EVENT) when JOURNAL_STREAM is stderr"
