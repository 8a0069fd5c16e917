#!/bin/bash
# Live migration of app=kv under load. A netns holds bridge br0
# (10.0.0.1/24) with tap0 (source) and tap1 (target) as ports. A client
# keeps 4 TCP connections busy with mixed SET/GET/INCR, every answer checked
# against a model, while `migrate` runs: no lost or wrong answer, the same
# connections go on after the switch (the target's RARP makes the bridge
# send to tap1 at once), the source ends postmigrate. A target without the
# --net device is refused naming it.
source "$(dirname "$0")/lib.sh"
need_kvm
need_netns
CTL=${COLOVMCTL:?}
NS=colovm-mkv-$$
MAC=52:54:00:12:34:56
port=$((47900 + RANDOM % 800))
nsx() { ip netns exec "$NS" "$@"; }

bridge_ns "$NS" tap0 tap1

ARGS=(--kernel "$TESTGUEST" --mem 128 --cmdline "app=kv")
migration_pair "$NS" $MAC $port "${ARGS[@]}"
tpid=$TPID spid=$SPID

cat >"$TMP/client.py" <<'PY'
import os, random, socket, sys, time
d = sys.argv[1]
rng = random.Random(7)
conns = [socket.create_connection(("10.0.0.2", 7000), timeout=30) for _ in range(4)]
files = [s.makefile("rwb") for s in conns]
model, ops, last, worst = {}, 0, time.time(), 0.0
keys = ["k%d" % i for i in range(64)]
after = -1
while True:
    if after < 0 and os.path.exists(d + "/migrated"):
        after = ops
    if after >= 0 and ops - after >= 2000:
        break
    f = files[ops % 4]
    k = rng.choice(keys)
    r = rng.random()
    if r < 0.35:
        v = "v%d" % rng.randrange(1 << 30)
        cmd, want = "SET %s %s" % (k, v), "OK"
        model[k] = v
    elif r < 0.7:
        cmd, want = "GET %s" % k, model.get(k, "NIL")
    else:
        want = str(int(model.get(k, "0")) + 1) if model.get(k, "0").isdigit() else "ERR not an integer"
        cmd = "INCR %s" % k
        if want[0] != "E":
            model[k] = want
    f.write((cmd + "\n").encode()); f.flush()
    line = f.readline()
    if not line:
        sys.exit("op %d: connection closed (%s)" % (ops, cmd))
    got = line.decode().rstrip("\n")
    if got != want:
        sys.exit("op %d: %s -> %r, model says %r" % (ops, cmd, got, want))
    now = time.time()
    worst = max(worst, now - last)
    last = now
    ops += 1
    if ops == 500:
        open(d + "/busy", "w").close()
print("ops=%d after=%d longest_wait=%.2fs" % (ops, after, worst))
PY
nsx python3 "$TMP/client.py" "$TMP" >"$TMP/client.out" 2>&1 &
cpid=$!
on_exit "kill $cpid 2>/dev/null"
for _ in $(seq 100); do [ -e "$TMP/busy" ] && break; sleep 0.1; done
[ -e "$TMP/busy" ] || fail "client not busy: $(cat "$TMP/client.out")"

# The announce: a RARP from the guest's MAC must reach the bridge.
nsx python3 - "$MAC" "$TMP/listening" >"$TMP/rarp.out" 2>&1 <<'PY' &
import socket, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
s.bind(("br0", 0))
s.settimeout(30)
open(sys.argv[2], "w").close()
while True:
    f = s.recv(2048)
    if f[6:12] == mac and f[20:22] == b"\x00\x03" and f[22:28] == mac:
        print("RARP from", sys.argv[1])
        break
PY
rpid=$!
on_exit "kill $rpid 2>/dev/null"
for _ in $(seq 100); do [ -e "$TMP/listening" ] && break; sleep 0.05; done
[ -e "$TMP/listening" ] || fail "RARP listener not ready: $(cat "$TMP/rarp.out")"

note "migrate tap0 -> tap1 under load"
"$CTL" --qmp "$TMP/s.sock" migrate tcp:127.0.0.1:$port >"$TMP/ctl.out" 2>&1 ||
	fail "migrate failed: $(cat "$TMP/ctl.out" "$TMP/s.out")"
grep -q '"completed"' "$TMP/ctl.out" || fail "no completed status: $(cat "$TMP/ctl.out")"
"$CTL" --qmp "$TMP/s.sock" query-status | grep -q '"postmigrate"' || fail "source not postmigrate"
wait_for_line "$TMP/t.out" 'incoming migration complete' 10 || fail "target not running"
sleep 0.2
nsx bridge fdb show br br0 | grep -i "$MAC" | grep -q 'dev tap1' ||
	fail "the bridge did not learn $MAC on tap1 (no announce?): $(nsx bridge fdb show br br0)"
wait $rpid || fail "no RARP announce from $MAC: $(cat "$TMP/rarp.out" "$TMP/t.out")"
touch "$TMP/migrated"
wait $cpid || fail "client: $(cat "$TMP/client.out")"
note "client: $(cat "$TMP/client.out"), $(grep -o '"downtime": [0-9]*' "$TMP/ctl.out")"
kill -0 $tpid 2>/dev/null || fail "target died: $(cat "$TMP/t.out")"
"$CTL" --qmp "$TMP/s.sock" quit >/dev/null 2>&1 || true
"$CTL" --qmp "$TMP/t.sock" quit >/dev/null 2>&1 || true
wait $spid 2>/dev/null || true
wait $tpid 2>/dev/null || true

note "a target without --net is refused"
port=$((port + 1))
nsx "$COLOVM" run "${ARGS[@]}" --incoming tcp:127.0.0.1:$port --serial none \
	</dev/null >"$TMP/t2.out" 2>&1 &
t2=$!
on_exit "kill $t2 2>/dev/null"
nsx "$COLOVM" run "${ARGS[@]}" --net tap=tap0,mac=$MAC --qmp unix:"$TMP/s2.sock",server \
	</dev/null >"$TMP/s2.out" 2>&1 &
s2=$!
on_exit "kill $s2 2>/dev/null"
wait_for_line "$TMP/s2.out" '^net: up ' 30 || fail "second source not up"
wait_for_line "$TMP/t2.out" 'waiting for an incoming' 10 || fail "second target not listening"
"$CTL" --qmp "$TMP/s2.sock" migrate tcp:127.0.0.1:$port >"$TMP/ctl2.out" 2>&1 &&
	grep -q '"completed"' "$TMP/ctl2.out" && fail "migration to a VM without --net completed"
got=0
wait $t2 || got=$?
[ $got = 2 ] || fail "target without --net: exit $got, expected 2"
grep -q 'stream has virtio-net 0, this VM has none' "$TMP/t2.out" ||
	fail "no device message: $(cat "$TMP/t2.out")"
"$CTL" --qmp "$TMP/s2.sock" query-status | grep -q '"running"' || fail "source not running again"
echo "PASS"
