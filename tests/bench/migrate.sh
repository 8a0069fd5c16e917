# Live migration on loopback: downtime (source stop -> target running) and
# total time for a 512 MiB guest running app=dirty (64 MiB buffer) at
# ~0 (1 MiB buffer at 1 MiB/s), 10 and 100 MiB/s, colovm -> colovm against
# QEMU microvm -> QEMU microvm (-incoming tcp:), same test guest, same run,
# downtime-limit 300 ms on both. QEMU gets -cpu host without invtsc (invtsc
# blocks its migration), so the guest calibrates its TSC with the PIT there. Downtime and total time are what each
# source reports in query-migrate; throughput is its "mbps".
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

qmp() { # SOCK JSON-COMMAND... : run QMP commands, print the last reply
	python3 - "$@" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
def cmd(c):
    f.write(json.dumps(c) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
json.loads(f.readline()); cmd({"execute": "qmp_capabilities"})
for a in sys.argv[2:]:
    r = cmd(json.loads(a))
print(json.dumps(r.get("return", r)))
PY
}
# Wait for completion; print "downtime_ms total_ms mbps".
wait_done() { # SOCK
	local r
	for ((i = 0; i < 600; i++)); do
		r=$(qmp "$1" '{"execute":"query-migrate"}')
		case $r in
		*'"completed"'*)
			python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["downtime"], r["total-time"], round(r["ram"]["mbps"]))' "$r"
			return 0 ;;
		*'"failed"'* | *'"cancelled"'* | *blocked*) echo "migration failed: $r" >&2; return 1 ;;
		esac
		sleep 0.1
	done
	return 1
}
one() { # VMM RATE MB
	local vmm=$1 rate=$2 mb=$3 app="app=dirty mb=$3 rate=$2 seconds=60" t s
	port=$((port + 1))
	rm -f "$tmp"/*.sock "$tmp"/*.out
	if [ "$vmm" = qemu ]; then
		"${qemu[@]}" -serial file:"$tmp/t.out" -append "$app" -incoming tcp:127.0.0.1:$port \
			-qmp unix:"$tmp/t.sock",server=on,wait=off 2>/dev/null &
		t=$!
		"${qemu[@]}" -serial file:"$tmp/s.out" -append "$app" \
			-qmp unix:"$tmp/s.sock",server=on,wait=off 2>/dev/null &
		s=$!
	else
		"$COLOVM" run --mem $MEM --kernel "$TESTGUEST" --cmdline "$app" -q --serial file:"$tmp/t.out" \
			--incoming tcp:127.0.0.1:$port 2>/dev/null &
		t=$!
		"$COLOVM" run --mem $MEM --kernel "$TESTGUEST" --cmdline "$app" -q --serial file:"$tmp/s.out" \
			--qmp unix:"$tmp/s.sock",server 2>/dev/null &
		s=$!
	fi
	pids+=($t $s)
	for ((i = 0; i < 200; i++)); do grep -q '^dirty: t=2 ' "$tmp/s.out" 2>/dev/null && break; sleep 0.05; done
	sleep 0.3
	qmp "$tmp/s.sock" '{"execute":"migrate-set-parameters","arguments":{"downtime-limit":300}}' \
		"{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$port\"}}" >/dev/null
	wait_done "$tmp/s.sock"
	for ((i = 0; i < 100; i++)); do grep -qE '^dirty: t=[3-9] ' "$tmp/t.out" 2>/dev/null && break; sleep 0.05; done
	grep -qE '^dirty: t=[3-9] ' "$tmp/t.out" || echo "$vmm: target did not continue" >&2
	grep -q 'verify failed' "$tmp/t.out" && echo "$vmm: verify failed on the target" >&2
	kill -9 $t $s 2>/dev/null || true
	wait $t $s 2>/dev/null || true
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "| dirty rate | colovm downtime ms | QEMU downtime ms | ratio | colovm total ms | QEMU total ms | ratio | colovm Mbps | QEMU Mbps |"
echo "|---|---|---|---|---|---|---|---|---|"
for spec in "1 1 ~0" "10 64 10 MiB/s" "100 64 100 MiB/s"; do
	read -r rate mb label <<<"$spec"
	for vmm in ${VMMS:-colovm qemu}; do
		for ((r = 0; r < RUNS; r++)); do one $vmm "$rate" "$mb"; done >"$tmp/$vmm.res"
	done
	cd_=$(cut -d' ' -f1 "$tmp/colovm.res" | median); qd=$(cut -d' ' -f1 "$tmp/qemu.res" | median)
	ct=$(cut -d' ' -f2 "$tmp/colovm.res" | median); qt=$(cut -d' ' -f2 "$tmp/qemu.res" | median)
	cm=$(cut -d' ' -f3 "$tmp/colovm.res" | median); qm=$(cut -d' ' -f3 "$tmp/qemu.res" | median)
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
	echo "| $label | $cd_ | $qd | $(ratio "$cd_" "$qd") | $ct | $qt | $(ratio "$ct" "$qt") | $cm | $qm |"
done
echo
echo "Medians of $RUNS runs; ratio = colovm / QEMU (lower is better). $MEM MiB guests,"
echo "127.0.0.1, both VMMs at downtime-limit 300 ms, no compression."
