# Live migration on loopback: downtime and total time for a 512 MiB guest
# running app=dirty (64 MiB buffer) at ~0 (1 MiB buffer at 1 MiB/s), 10 and
# 100 MiB/s, colovm -> colovm against QEMU microvm -> QEMU microvm
# (-incoming tcp:), same test guest, same run, downtime-limit 300 ms on both.
# QEMU gets -cpu host without invtsc (invtsc blocks its migration), so the
# guest calibrates its TSC with the PIT there.
#
# Downtime, one definition for both VMMs: from the source's STOP event (sent
# once its vCPUs are paused) to the target's RESUME event, both QMP event
# timestamps (host CLOCK_REALTIME, microseconds). QEMU's own "downtime" in
# query-migrate (ms) ends when its source has written the last byte, without
# waiting for the target; colovm's own "x-downtime-us" runs from the stop
# request to the target's ack. Both are printed as extra columns.
#
# RAM stream row: a guest whose RAM is (nearly) all non-zero: app=dirty over
# 480 MiB at 240 MiB/s has finished one full pass at t=2, when the migration
# starts; max-bandwidth is lifted on both. colovm: page data sent in round 0
# / round 0's duration (query-migrate ram.x-round0-bytes-per-second); QEMU:
# its completed ram.mbps (bytes transferred / (total-time - setup-time)),
# which for this guest is dominated by the first pass. GB/s = 10^9 bytes/s.
# Measured twice: targets as started by default (each page of guest RAM is
# allocated, and cleared by the kernel, when the stream first writes it),
# and targets started with --mem-prealloc / QEMU's -mem-prealloc (all guest
# RAM allocated before the migration starts).
set -euo pipefail
: "${COLOVM:?}" "${TESTGUEST:?}"
COLOVMCTL=${COLOVMCTL:-$(dirname "$COLOVM")/colovmctl}
RUNS=${RUNS:-3}
MEM=512
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 $p 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
port=$((49000 + RANDOM % 500))
qemu=(qemu-system-x86_64 -M microvm -accel kvm -cpu host -m $MEM
	-nodefaults -no-user-config -nographic -no-reboot
	-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$TESTGUEST")

# Migrate SRC-SOCK to PORT with TGT-SOCK watched for its RESUME event; print
# "downtime_us total_ms mbps own_downtime own_round0_Bps" (own: colovm's
# x-downtime-us and x-round0-bytes-per-second, QEMU's downtime in ms, -1).
migrate() { # SRC-SOCK TGT-SOCK PORT MAXBW
	python3 - "$@" <<'PY'
import json, socket, sys, time
def cmd(c, m):
    c["f"].write(json.dumps(m) + "\n"); c["f"].flush()
    while True:
        r = json.loads(c["f"].readline())
        if "event" in r:
            c["ev"].append(r)
        else:
            return r
def conn(path):
    for _ in range(100):
        try:
            s = socket.socket(socket.AF_UNIX); s.connect(path); break
        except OSError:
            time.sleep(0.05)
    c = {"f": s.makefile("rw"), "ev": []}
    json.loads(c["f"].readline())
    cmd(c, {"execute": "qmp_capabilities"})
    return c
def ts(c, name):
    for e in c["ev"]:
        if e["event"] == name:
            return e["timestamp"]["seconds"] * 1000000 + e["timestamp"]["microseconds"]
port, bw = sys.argv[3], int(sys.argv[4])
s = conn(sys.argv[1]); t = conn(sys.argv[2])
p = {"downtime-limit": 300}
if bw:
    p["max-bandwidth"] = bw
cmd(s, {"execute": "migrate-set-parameters", "arguments": p})
cmd(s, {"execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:" + port}})
for _ in range(1200):
    r = cmd(s, {"execute": "query-migrate"})["return"]
    if r.get("status") == "completed":
        break
    if r.get("status") in ("failed", "cancelled"):
        sys.exit("migration failed: %s" % r)
    time.sleep(0.05)
else:
    sys.exit("migration did not complete")
for _ in range(100):
    if ts(t, "RESUME"):
        break
    cmd(t, {"execute": "query-status"})
    time.sleep(0.02)
stop, resume = ts(s, "STOP"), ts(t, "RESUME")
if not stop or not resume:
    print(stop, resume, s["ev"], t["ev"], file=sys.stderr)
    sys.exit("no STOP/RESUME event")
ram = r["ram"]
print(resume - stop, r["total-time"], round(ram["mbps"]), r.get("x-downtime-us", r.get("downtime", -1)),
      ram.get("x-round0-bytes-per-second", -1))
PY
}
one() { # VMM RATE MB [MAXBW [PREALLOC]]
	local vmm=$1 rate=$2 mb=$3 bw=${4:-0} app="app=dirty mb=$3 rate=$2 seconds=60" t s
	local qpre=() cpre=()
	if [ -n "${5:-}" ]; then qpre=(-mem-prealloc) cpre=(--mem-prealloc); fi
	port=$((port + 1))
	rm -f "$tmp"/*.sock "$tmp"/*.out
	if [ "$vmm" = qemu ]; then
		"${qemu[@]}" "${qpre[@]}" -serial file:"$tmp/t.out" -append "$app" -incoming tcp:127.0.0.1:$port \
			-qmp unix:"$tmp/t.sock",server=on,wait=off 2>/dev/null &
		t=$!
		"${qemu[@]}" -serial file:"$tmp/s.out" -append "$app" \
			-qmp unix:"$tmp/s.sock",server=on,wait=off 2>/dev/null &
		s=$!
	else
		"$COLOVM" run --mem $MEM "${cpre[@]}" --kernel "$TESTGUEST" --cmdline "$app" -q \
			--serial file:"$tmp/t.out" --incoming tcp:127.0.0.1:$port --qmp unix:"$tmp/t.sock",server 2>/dev/null &
		t=$!
		"$COLOVM" run --mem $MEM --kernel "$TESTGUEST" --cmdline "$app" -q --serial file:"$tmp/s.out" \
			--qmp unix:"$tmp/s.sock",server 2>/dev/null &
		s=$!
	fi
	pids+=($t $s)
	for ((i = 0; i < 200; i++)); do grep -q '^dirty: t=2 ' "$tmp/s.out" 2>/dev/null && break; sleep 0.05; done
	sleep 0.3
	migrate "$tmp/s.sock" "$tmp/t.sock" $port "$bw" || echo "$vmm: run failed (see above), retried" >&2
	for ((i = 0; i < 100; i++)); do grep -qE '^dirty: t=[3-9] ' "$tmp/t.out" 2>/dev/null && break; sleep 0.05; done
	grep -qE '^dirty: t=[3-9] ' "$tmp/t.out" || echo "$vmm: target did not continue" >&2
	grep -q 'verify failed' "$tmp/t.out" && echo "$vmm: verify failed on the target" >&2
	kill -9 $t $s 2>/dev/null || true
	wait $t $s 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
col() { cut -d' ' -f"$2" "$tmp/$1.res" | median; }
ms() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; }

echo "| dirty rate | colovm downtime ms | QEMU downtime ms | ratio | colovm total ms | QEMU total ms | ratio | colovm own downtime ms | QEMU own downtime ms | colovm Mbps | QEMU Mbps |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
rows=("1 1 ~0" "10 64 10 MiB/s" "100 64 100 MiB/s")
[ -n "${ROWS:-}" ] && IFS=, read -ra rows <<<"$ROWS" # e.g. ROWS="10 64 10 MiB/s"
for spec in "${rows[@]}"; do
	read -r rate mb label <<<"$spec"
	for vmm in ${VMMS:-colovm qemu}; do
		for ((r = 0; r < RUNS; r++)); do one $vmm "$rate" "$mb"; done >"$tmp/$vmm.res"
		[ -s "$tmp/$vmm.res" ] || { echo "$vmm: every run failed" >&2; exit 1; }
	done
	cd_=$(col colovm 1); qd=$(col qemu 1); ct=$(col colovm 2); qt=$(col qemu 2)
	echo "| $label | $(ms "$cd_") | $(ms "$qd") | $(ratio "$cd_" "$qd") | $ct | $qt | $(ratio "$ct" "$qt")" \
		"| $(ms "$(col colovm 4)") | $(col qemu 4) | $(col colovm 3) | $(col qemu 3) |"
done
echo
echo "Medians of $RUNS runs; ratio = colovm / QEMU (lower is better). $MEM MiB guests,"
echo "127.0.0.1, both VMMs at downtime-limit 300 ms, no compression. Downtime ="
echo "source STOP event -> target RESUME event (QMP timestamps, us). Own downtime:"
echo "colovm x-downtime-us (stop -> the target's ack), QEMU query-migrate downtime"
echo "(ms, stop -> last byte written, no ack). Mbps: query-migrate ram.mbps."
echo
echo "| RAM stream (480 MiB non-zero), target | colovm GB/s (round 0) | QEMU GB/s (mbps) | colovm GB/s (mbps, QEMU's definition) |"
echo "|---|---|---|---|"
if [ -z "${NO_STREAM:-}" ]; then
	gbs() { awk -v a="$1" -v k="$2" 'BEGIN { if (a < 0) print "-"; else printf "%.2f", a / k }'; }
	for pre in "" 1; do
		for vmm in ${VMMS:-colovm qemu}; do
			for ((r = 0; r < RUNS; r++)); do one $vmm 240 480 100000000000 "$pre"; done >"$tmp/$vmm.res"
		done
		label="default"
		[ -n "$pre" ] && label="--mem-prealloc (QEMU -mem-prealloc)"
		echo "| $label | $(gbs "$(col colovm 5)" 1e9) | $(gbs "$(col qemu 3)" 8000) | $(gbs "$(col colovm 3)" 8000) |"
	done
fi
