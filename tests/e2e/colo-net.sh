#!/bin/bash
# Packets through a COLO pair. Two "hosts" (network namespaces joined by a
# veth, the pair's channel on it), each with a tap for its guest; the client
# is the primary host's side of its tap.
#
# 1. app=kv: 500 mixed SET/GET/INCR over 4 connections, every answer
#    checked against a model. The secondary's guest gets every inbound frame
#    (mirrored), its answers come back rewritten (its TCP picks other initial
#    sequence numbers) and match the primary's: frames reach the client once
#    compared (or covered by a checkpoint), hardly a mismatch.
# 2. app=http stamp=1 (an X-Stamp header from the CPU's TSC: the two copies
#    answer differently): 20 requests on one connection, each complete and
#    served in order (the page counter goes 1, 2, ... 20: one history), and
#    the mismatches force checkpoints (by-reason "mismatch").
# In both, the secondary's own tap hears nothing from its guest.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_netns
NSP=colovm-cp-$$ NSS=colovm-cs-$$
port=$((48100 + RANDOM % 800))
d=$TMP
head -c32 /dev/urandom >"$d/key"

two_hosts $NSP $NSS

# end NAME: the secondary's own tap got nothing from its guest; quit the
# primary (the secondary follows); no crash.
end() {
	local leaked
	leaked=$(ip netns exec $NSS cat /sys/class/net/tap0/statistics/rx_packets)
	[ "$leaked" = 0 ] || fail "$1: the secondary's guest sent $leaked frames to its own wire"
	q "$d/$1-pri.sock" quit >/dev/null || true
	wait_exit $PRI_PID 30 || true
	wait_exit $SEC_PID 30 || fail "$1: the secondary did not end with the primary"
	no_crash "$d/$1-pri.err" "$d/$1-sec.err"
}

# stat SOCK EXPR: EXPR on query-colo-stats (d).
stat() { q "$1" query-colo-stats | jq_ "$2"; }

# ---- 1. app=kv: outputs agree ------------------------------------------------
net_pair kv "app=kv"
# Under TCG a checkpoint's pause is long: fewer periodic ones, so that
# released frames are mostly verified ones.
q "$d/kv-pri.sock" migrate-set-parameters checkpoint-interval=1000 >/dev/null
ip netns exec $NSP python3 "$SRC/tests/guest/tools/kvclient.py" --ops 500 --conns 4 ||
	fail "kv: wrong answers through the pair: $(tail -5 "$d/kv-pri.err")"
note "kv: primary $(stat "$d/kv-pri.sock" 'd["network"]'), checkpoints $(stat "$d/kv-pri.sock" 'd["by-reason"]')"
note "kv: secondary $(stat "$d/kv-sec.sock" 'd["network"]')"
# Every frame that reached the client was verified against the secondary's,
# or covered by an acknowledged checkpoint, or carried no data (a bare ACK);
# most were verified.
n=$(stat "$d/kv-pri.sock" 'd["network"]')
ok=$(echo "$n" | python3 -c 'import ast,sys; n=ast.literal_eval(sys.stdin.read())
print(n["released"] == n["compared"] + n["released-checkpoint"] + n["released-unverified"]
      and n["released-passthrough"] == 0 and n["compared"] >= 0.9 * n["released"]
      and n["mirrored"] >= 500 and n["released"] >= 500)')
[ "$ok" = True ] || fail "kv: frames released unverified, or too few compared: $n"
[ "$(stat "$d/kv-sec.sock" 'd["network"]["redirected"] >= 500')" = True ] ||
	fail "kv: the secondary's guest answered fewer than 500 frames"
[ "$(stat "$d/kv-sec.sock" 'd["network"]["mirrored"] >= 500')" = True ] ||
	fail "kv: the secondary's guest got fewer than 500 frames"
# Identical answers match: a mismatch is rare (a window size that differs).
[ "$(stat "$d/kv-pri.sock" 'd["by-reason"]["mismatch"] <= 10')" = True ] ||
	fail "kv: identical answers were found different"
[ "$(stat "$d/kv-pri.sock" 'd["failed"]')" = 0 ] || fail "kv: failed checkpoints"
q "$d/kv-pri.sock" query-colo-status | grep -q '"protected"' || fail "kv: no longer protected"
end kv

# ---- 2. app=http stamp=1: outputs differ, checkpoints follow -----------------
net_pair http "app=http stamp=1"
ip netns exec $NSP python3 - <<'PY' || fail "http: the client saw an inconsistent history"
import re, socket
s = socket.create_connection(("10.0.0.2", 80), timeout=20)
f = s.makefile("rb")
for i in range(1, 21):
    s.sendall(b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n")
    status = f.readline()
    assert status == b"HTTP/1.1 200 OK\r\n", status
    hdrs = {}
    while True:
        line = f.readline()
        if line == b"\r\n":
            break
        k, _, v = line.decode().partition(":")
        hdrs[k.lower()] = v.strip()
    assert "x-stamp" in hdrs, hdrs
    body = f.read(int(hdrs["content-length"])).decode()
    n = int(re.search(r"requests: (\d+)", body).group(1))
    assert n == i, "request %d answered as number %d" % (i, n)
print("http: 20 answers, served in order")
PY
note "http: primary $(stat "$d/http-pri.sock" 'd["network"]'), checkpoints $(stat "$d/http-pri.sock" 'd["by-reason"]')"
[ "$(stat "$d/http-pri.sock" 'd["by-reason"]["mismatch"] > 0')" = True ] ||
	fail "http: different answers forced no checkpoint"
[ "$(stat "$d/http-pri.sock" 'd["network"]["miscompares"] > 0')" = True ] ||
	fail "http: no miscompare counted"
[ "$(stat "$d/http-pri.sock" 'd["failed"]')" = 0 ] || fail "http: failed checkpoints"
end http
echo PASS
