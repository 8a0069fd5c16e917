#!/bin/bash
# Replicated disks: what protecting a disk costs the guest. The test guest's
# app=blk loop=1 (4 MiB per pass: 64 KiB writes, 16 in flight, a flush, then
# the same read back and verified) runs SECS seconds on
#   1. one colovm, its disk a plain --disk (unprotected);
#   2. a colovm pair on 127.0.0.1, --disk PATH,replicate on both sides,
#      checkpoint-interval 200 ms.
# Figures: write and read MB/s (the guest's own, per pass; write includes
# the flush) and the pair's checkpoints per second and pause (median). (On
# the link each guest byte written costs itself plus 66 bytes of framing
# per DiskWrite of up to 256 KiB: by construction, not measured here.)
# Median of RUNS runs (default 3) for each figure; the ratio protected /
# unprotected is of the medians.
# Not measured (yet): QEMU 7.2's COLO block replication (quorum + NBD +
# the replication driver) as a baseline.
set -euo pipefail
: "${COLOVM:?}" "${TESTGUEST:?}"
COLOVMCTL=${COLOVMCTL:-$(dirname "$COLOVM")/colovmctl}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
tmp=$(mktemp -d)
port=$((46000 + RANDOM % 500))
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
head -c32 /dev/urandom >"$tmp/key"
q() { "$COLOVMCTL" --qmp "$1" "${@:2}"; }
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
args=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=blk mb=4 loop=1")
# rates OUT FROM: the median write and read MB/s of the passes after line FROM
rates() {
	tail -n +"$(($2 + 1))" "$1" | tr -d '\r' | sed -n 's/^blk: pass [0-9]* ok MB\/s write=\([0-9.]*\) read=\([0-9.]*\)$/\1 \2/p' >"$tmp/r"
	[ -s "$tmp/r" ] || { echo "no pass in $1 after line $2:" >&2; tail -5 "$1" >&2; wc -l "$1" >&2; exit 1; }
	echo "$(cut -d' ' -f1 "$tmp/r" | median) $(cut -d' ' -f2 "$tmp/r" | median)"
}
passes() { cat "$1" 2>/dev/null | grep -c '^blk: pass' || true; }

one() { # unprotected
	# (a fresh console: the last run's must not count as this one's passes)
	rm -f "$tmp/u.img" "$tmp/u.out"
	truncate -s 8M "$tmp/u.img"
	"$COLOVM" run "${args[@]}" --disk "$tmp/u.img" --serial file:"$tmp/u.out" 2>"$tmp/u.err" &
	local pid=$! n0
	pids+=($pid)
	until [ "$(passes "$tmp/u.out")" -ge 1 ]; do sleep 0.2; done
	n0=$(wc -l <"$tmp/u.out")
	sleep "$SECS"
	kill -9 $pid
	wait $pid 2>/dev/null || true
	rates "$tmp/u.out" "$n0"
}

pair() { # protected: prints write read ckpt/s pause-ms
	local p=$((port++)) n0 c0 c1 st t0
	rm -f "$tmp"/*.sock "$tmp/p.out" "$tmp/p.img" "$tmp/s.img"
	truncate -s 8M "$tmp/p.img" "$tmp/s.img"
	"$COLOVM" run "${args[@]}" --disk "$tmp/s.img",replicate --peer-key "$tmp/key" \
		--colo secondary --listen tcp:127.0.0.1:$p --serial none \
		--qmp unix:"$tmp/s.sock",server 2>"$tmp/s.err" &
	pids+=($!)
	"$COLOVM" run "${args[@]}" --disk "$tmp/p.img",replicate --peer-key "$tmp/key" \
		--serial file:"$tmp/p.out" --qmp unix:"$tmp/p.sock",server 2>"$tmp/p.err" &
	pids+=($!)
	until [ -S "$tmp/p.sock" ] && [ -S "$tmp/s.sock" ]; do sleep 0.1; done
	q "$tmp/p.sock" migrate-set-parameters checkpoint-interval=200 heartbeat-interval=200 \
		heartbeat-misses=25 >/dev/null
	q "$tmp/p.sock" colo-protect uri=tcp:127.0.0.1:$p >/dev/null
	until [ "$(q "$tmp/p.sock" query-colo-status | jq_ 'd["state"]')" = protected ]; do sleep 0.3; done
	until [ "$(passes "$tmp/p.out")" -ge 1 ]; do sleep 0.2; done
	n0=$(wc -l <"$tmp/p.out")
	st=$(q "$tmp/p.sock" query-colo-stats)
	c0=$(echo "$st" | jq_ 'd["checkpoints"]')
	t0=$(date +%s%N)
	sleep "$SECS"
	st=$(q "$tmp/p.sock" query-colo-stats)
	c1=$(echo "$st" | jq_ 'd["checkpoints"]')
	local secs_run
	secs_run=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
	echo "$(rates "$tmp/p.out" "$n0") $(awk -v c=$((c1 - c0)) -v s="$secs_run" 'BEGIN { printf "%.1f", c / s }') \
$(echo "$st" | jq_ 'round(d["pause"]["median-ms"], 1)') $(echo "$st" | jq_ 'round(d["disk"]["settle-max-ms"], 1)')"
	echo "$st" | jq_ '"pause parts (mean ms): " + ", ".join("%s %.1f" % (k, v["mean"]) for k, v in d["pause-phases"].items())' >&2
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}

for r in $(seq "$RUNS"); do
	one >>"$tmp/one"
	pair >>"$tmp/pair"
done
uw=$(cut -d' ' -f1 "$tmp/one" | median) ur=$(cut -d' ' -f2 "$tmp/one" | median)
pw=$(cut -d' ' -f1 "$tmp/pair" | median) pr=$(cut -d' ' -f2 "$tmp/pair" | median)
echo "| app=blk loop=1, 4 MiB passes, $SECS s, median of $RUNS | write MB/s | read MB/s | checkpoints/s | pause median ms | settle max ms |"
echo "|---|---|---|---|---|---|"
echo "| one colovm, plain --disk | $uw | $ur | - | - | - |"
echo "| colovm pair, --disk PATH,replicate | $pw | $pr | $(cut -d' ' -f3 "$tmp/pair" | median) | $(cut -d' ' -f4 "$tmp/pair" | median) | $(cut -d' ' -f5 "$tmp/pair" | median) |"
echo "| protected / unprotected | $(ratio "$pw" "$uw") | $(ratio "$pr" "$ur") | | | |"
