# COLO: what protection costs, beside QEMU's own COLO. Two "hosts" (network
# namespaces joined by a veth; the pair's channel on it), each with a tap
# for its guest; the client is the primary host's side of its tap. Same
# test guest (app=http), same load, same run:
#
#   1. wrk (1 thread, SECS s) three ways: 4 connections on / (the page
#      counts the requests served, and the two copies now and then take
#      the connections' requests in another order: outputs differ); 4
#      connections on /static (the page without the count: outputs match);
#      1 connection on / (one order: outputs match):
#      requests/s and p99 latency for
#      one colovm (unprotected), a colovm pair (protected), and QEMU 7.2's
#      COLO (primary: filter-mirror, filter-redirector, colo-compare;
#      secondary -incoming with filter-redirector and filter-rewriter;
#      migrate with x-colo; QEMU microvm, the same guest ELF); checkpoints
#      per second, and the pause per checkpoint measured alike for both
#      VMMs from the primary's QMP events: STOP to RESUME.
#      checkpoint-interval / x-checkpoint-delay 200 ms on both.
#   2. app=dirty at 1, 4 and 16 MiB/s (no network) on a colovm pair: pause
#      per checkpoint (median, p99) against dirty pages per checkpoint.
#
# Median of RUNS runs (default 3) for each figure (HTTP_LOADS: other loads,
# see LOADS below). IDLE=poll runs the guest
# with idle=poll (it spins when idle instead of halting; see
# tests/guest/irq.c): on a machine whose cores both copies of the pair
# share, a spinning guest takes a core from the other copy. Under QEMU
# microvm the guest always polls (its NIC is on an IOAPIC-only line), so
# compare with QEMU's COLO at IDLE=poll; QEMU_COLO=0 leaves QEMU out.
# PIN=1 models two hosts of one core each: the primary's side (primary or
# unprotected VMM, and the client) on CPU 0, the secondary's on CPU 1
# (taskset); without it both copies share every core.
set -euo pipefail
: "${COLOVM:?}" "${TESTGUEST:?}"
COLOVMCTL=${COLOVMCTL:-$(dirname "$COLOVM")/colovmctl}
RUNS=${RUNS:-3}
HTTP="app=http${IDLE:+ idle=$IDLE}"
PIN_P=(env) PIN_S=(env)
if [ "${PIN:-0}" = 1 ]; then
	PIN_P=(taskset -c 0) PIN_S=(taskset -c 1)
fi
SECS=${SECS:-8}
source "$(dirname "$0")/two-hosts.bash"
bench_two_hosts colovm-b

q() { "$COLOVMCTL" --qmp "$1" "${@:2}"; }
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
wait_protected() { # SOCK
	local end=$((SECONDS + 120))
	until q "$1" query-colo-status 2>/dev/null | grep -q '"protected"'; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

# start MODE CMDLINE [NET]: MODE plain (one colovm) or pair; leaves the
# primary's (or plain VM's) QMP socket at $tmp/p.sock
start() {
	local mode=$1 cmdline=$2 net=(${3:+--net tap=tap0})
	local args=(--kernel "$TESTGUEST" --mem 64 --cmdline "$cmdline" "${net[@]}"
		--peer-key "$tmp/key")
	rm -f "$tmp"/*.sock "$tmp"/*.out
	port=$((port + 1))
	if [ "$mode" = pair ]; then
		ip netns exec $NSS "${PIN_S[@]}" "$COLOVM" run "${args[@]}" --colo secondary \
			--listen tcp:192.168.77.2:$port --serial file:"$tmp/s.out" \
			--qmp unix:"$tmp/s.sock",server 2>"$tmp/s.err" &
		pids+=($!)
		wait_line "$tmp/s.err" 'waiting for a primary' 20 || { cat "$tmp/s.err" >&2; return 1; }
		ip netns exec $NSP "${PIN_P[@]}" "$COLOVM" run "${args[@]}" --colo primary \
			--peer tcp:192.168.77.2:$port --serial file:"$tmp/p.out" \
			--qmp unix:"$tmp/p.sock",server 2>"$tmp/p.err" &
		pids+=($!)
		wait_protected "$tmp/p.sock" || { cat "$tmp/p.err" >&2; return 1; }
		q "$tmp/p.sock" migrate-set-parameters checkpoint-interval=200 >/dev/null
	else
		ip netns exec $NSP "${PIN_P[@]}" "$COLOVM" run "${args[@]}" --serial file:"$tmp/p.out" \
			--qmp unix:"$tmp/p.sock",server 2>"$tmp/p.err" &
		pids+=($!)
	fi
	[ -z "${3:-}" ] || wait_line "$tmp/p.out" '^net: up ' 30 || return 1
}
stop() {
	q "$tmp/p.sock" quit >/dev/null 2>&1 || true
	q "$tmp/s.sock" quit >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
# stats: "checkpoints/s periodic/s mismatch/s pause-median pause-p99 pages-mean bytes-mean"
# over the last N checkpoints; RESET before the load with a first sample
colo_sample() { q "$tmp/p.sock" query-colo-stats; }
colo_row() { # BEFORE-JSON AFTER-JSON SECONDS
	python3 - "$@" <<'PY'
import json, sys
a, b, secs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
n = b["checkpoints"] - a["checkpoints"]
r = {k: (b["by-reason"][k] - a["by-reason"][k]) / secs for k in b["by-reason"]}
print("%.2f %.2f %.2f %.1f %.1f %d %d" % (n / secs, r["periodic"] + r["request"],
      r["mismatch"] + r["compare-timeout"] + r["compare-limit"],
      b["pause"]["median-ms"], b["pause"]["p99-ms"], b["pages"]["mean"], b["bytes"]["mean"]))
PY
}

# wrk's requests/s and p99 (ms)
wrk_run() { # [CONNECTIONS] [PATH]
	ip netns exec $NSP "${PIN_P[@]}" wrk -t1 -c"${1:-4}" -d"${SECS}s" --latency "http://10.0.0.2${2:-/}" >"$tmp/wrk.out" 2>&1
	python3 - "$tmp/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
print("%.0f %.2f" % (rps, p99))
PY
}

# Pauses from a primary's QMP events (either VMM), STOP to RESUME, within
# [T0, T1] (µs): "count median-ms p99-ms"
pauses() { # EVENTS-FILE T0 T1
	python3 - "$@" <<'PY'
import json, sys
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
stop, p = None, []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    ts = e.get("timestamp", {})
    t = ts.get("seconds", 0) * 1000000 + ts.get("microseconds", 0)
    if not t0 <= t <= t1:
        continue
    if e.get("event") == "STOP":
        stop = t
    elif e.get("event") == "RESUME" and stop is not None:
        p.append((t - stop) / 1000.0)
        stop = None
p.sort()
if not p:
    print("0 0 0")
else:
    print("%d %.1f %.1f" % (len(p), p[len(p) // 2], p[min(len(p) - 1, int(len(p) * 0.99))]))
PY
}
now_us() { echo $(($(date +%s%N) / 1000)); }
watch_events() { # SOCK FILE
	"$COLOVMCTL" --qmp "$1" --watch >"$2" 2>/dev/null &
	pids+=($!)
	sleep 0.5
}


# The loads, SUFFIX:CONNECTIONS:PATH (SUFFIX names the .res files): 4
# connections on / (the page counts the requests served, and the two copies
# take the connections' requests in their own order now and then: outputs
# that differ), on /static and one connection on / (outputs that match).
# HTTP_LOADS (space-separated, same form) replaces them, e.g.
# HTTP_LOADS="s16:16:/static s64:64:/static".
read -ra LOADS <<<"${HTTP_LOADS:-:4:/ s:4:/static 1:1:/}"
for ((r = 0; r < ${HTTP_RUNS:-$RUNS}; r++)); do
	start plain "$HTTP" net || { echo "plain VM did not start" >&2; exit 1; }
	for l in "${LOADS[@]}"; do
		IFS=: read -r x c path <<<"$l"
		wrk_run "$c" "$path" >>"$tmp/plain$x.res"
	done
	stop
	start pair "$HTTP" net || { echo "no pair" >&2; exit 1; }
	watch_events "$tmp/p.sock" "$tmp/ev.log"
	for l in "${LOADS[@]}"; do
		IFS=: read -r x c path <<<"$l"
		a=$(colo_sample) t0=$(now_us)
		w=$(wrk_run "$c" "$path")
		b=$(colo_sample) t1=$(now_us)
		echo "$w $(colo_row "$a" "$b" "$SECS") $(pauses "$tmp/ev.log" "$t0" "$t1")" >>"$tmp/pair$x.res"
	done
	stop
	[ "${QEMU_COLO:-1}" != 0 ] || continue
	if qemu_colo_start "$HTTP"; then
		watch_events "$tmp/pw.sock" "$tmp/qev.log"
		for l in "${LOADS[@]}"; do
			IFS=: read -r x c path <<<"$l"
			t0=$(now_us)
			w=$(wrk_run "$c" "$path")
			t1=$(now_us)
			echo "$w $(pauses "$tmp/qev.log" "$t0" "$t1")" >>"$tmp/qemu$x.res"
		done
	else
		echo "QEMU COLO did not form (run $r): $(tail -n 3 "$tmp/p.err" "$tmp/s.err")" >&2
	fi
	qemu_stop
done
col() { cut -d' ' -f"$2" "$tmp/$1.res" | median; }
per_s() { awk -v n="$1" -v s="$SECS" 'BEGIN { printf "%.1f", n / s }'; }
# http_table SUFFIX CONNECTIONS PATH: the table for wrk -cCONNECTIONS on PATH
http_table() {
	local x=$1
	echo "app=http under wrk (1 thread, $2 connection(s) on $3, ${SECS} s), checkpoint every 200 ms, median of $RUNS:"
	echo
	echo "| | requests/s | p99 ms | checkpoints/s | pause median ms | pause p99 ms |"
	echo "|---|---|---|---|---|---|"
	echo "| colovm, unprotected | $(col plain$x 1) | $(col plain$x 2) | - | - | - |"
	echo "| colovm COLO pair | $(col pair$x 1) | $(col pair$x 2) | $(per_s "$(col pair$x 10)") | $(col pair$x 11) | $(col pair$x 12) |"
	if [ -s "$tmp/qemu$x.res" ]; then
		echo "| QEMU 7.2 COLO | $(col qemu$x 1) | $(col qemu$x 2) | $(per_s "$(col qemu$x 3)") | $(col qemu$x 4) | $(col qemu$x 5) |"
		echo "| colovm pair / QEMU COLO | $(ratio "$(col pair$x 1)" "$(col qemu$x 1)") | $(ratio "$(col pair$x 2)" "$(col qemu$x 2)") | | $(ratio "$(col pair$x 11)" "$(col qemu$x 4)") | $(ratio "$(col pair$x 12)" "$(col qemu$x 5)") |"
	fi
	echo "| colovm pair / unprotected | $(ratio "$(col pair$x 1)" "$(col plain$x 1)") | $(ratio "$(col pair$x 2)" "$(col plain$x 2)") | | | |"
	echo
	echo "colovm's own figures for the pair (query-colo-stats): checkpoints/s $(col pair$x 3)" \
		"(periodic $(col pair$x 4), by the comparator $(col pair$x 5)), pause median $(col pair$x 6) ms," \
		"p99 $(col pair$x 7) ms, $(col pair$x 8) pages and $(col pair$x 9) bytes per checkpoint."
	echo
}
if compgen -G "$tmp/pair*.res" >/dev/null; then # (HTTP_RUNS=0: the dirty table only)
	for l in "${LOADS[@]}"; do
		IFS=: read -r x c path <<<"$l"
		http_table "$x" "$c" "$path"
	done
fi

echo "app=dirty on a colovm pair (no network), checkpoint-interval 200 ms, ${SECS} s, median of $RUNS:"
echo
echo "| dirty rate | pages/checkpoint | bytes/checkpoint | pause median ms | pause p99 ms |"
echo "|---|---|---|---|---|"
for rate in ${RATES:-1 4 16}; do
	: >"$tmp/d.res"
	for ((r = 0, tries = 0; r < RUNS && tries < RUNS + 2; tries++)); do
		# a run whose pair breaks (a guest's triple fault in a host VM,
		# see the README) is said and run again
		if start pair "app=dirty mb=32 rate=$rate" && a=$(colo_sample) && sleep "$SECS" &&
			b=$(colo_sample); then
			colo_row "$a" "$b" "$SECS" >>"$tmp/d.res"
			r=$((r + 1))
		else
			echo "rate $rate: a run failed, run again: $(tail -2 "$tmp/p.err" "$tmp/s.err" 2>/dev/null)" >&2
		fi
		stop
	done
	c() { cut -d' ' -f"$1" "$tmp/d.res" | median; }
	echo "| $rate MiB/s | $(c 6) | $(c 7) | $(c 4) | $(c 5) |"
done
