#!/bin/bash
# Replicated disks: what protecting a disk costs the guest. The test guest's
# app=blk loop=1 (MB MiB per pass: BS KiB writes, 16 in flight, a flush,
# then the same read back and verified), for each MB[:BS] of the list SETS
# (default "4 64 4:4": a hot set the guest rewrites 100s of times a second
# in 64 KiB requests, one 16 times larger, and the hot set in 4 KiB
# requests, for IOPS; the image is twice MB), runs SECS seconds on
#   1. one colovm, its disk a plain --disk (unprotected);
#   2. a colovm pair on 127.0.0.1, --disk PATH,replicate on both sides,
#      checkpoint-interval 200 ms;
#   3. QEMU 7.2's own COLO (baseline): its block replication as its
#      docs/COLO-FT.txt sets it up (primary: a quorum of the image and,
#      over NBD, the secondary's copy; secondary: -incoming, that copy under
#      a hidden and an active qcow2 with the replication driver, exported
#      by nbd-server-add; migrate with x-colo), x-checkpoint-delay 200 ms,
#      QEMU microvm with the same guest and a virtio-blk-device (and the
#      colo-compare network set-up of tests/bench/two-hosts.bash, which
#      needs a NIC: two network namespaces, so root). QEMU=0 leaves it out.
# Figures: write and read MB/s (the guest's own: all the bytes of the passes
# that ended in the SECS seconds over their time, the pauses of
# checkpoints included; write includes the flush), the pairs' checkpoints
# per second and pause (median; QEMU's from its STOP/RESUME events) and,
# for colovm, the disk bytes it sent to the secondary per byte its guest
# wrote (query-colo-stats; blocks rewritten before they went go once,
# plus 66 bytes of framing per DiskWrite of up to 256 KiB, not counted).
# Median of RUNS runs (default 3) for each figure; the ratios protected /
# unprotected and colovm pair / QEMU are of the medians. After each QEMU
# run the secondary's image must equal the primary's (both quit cleanly:
# the quorum finishes its writes on both children first).
# PIN=1 models two hosts of one core each: the primary's side (primary or
# unprotected VMM) on CPU 0, the secondary's on CPU 1 (taskset); without it
# both copies share every core.
set -euo pipefail
: "${COLOVM:?}" "${TESTGUEST:?}"
COLOVMCTL=${COLOVMCTL:-$(dirname "$COLOVM")/colovmctl}
RUNS=${RUNS:-3}
SECS=${SECS:-10}
# (two-hosts.bash names its QEMU command line QEMU: read the knob first)
qemu=${QEMU:-1}
PIN_P=(env) PIN_S=(env)
if [ "${PIN:-0}" = 1 ]; then
	PIN_P=(taskset -c 0) PIN_S=(taskset -c 1)
fi
if [ "$qemu" != 0 ]; then
	# $tmp, $port, pids=(), the key and the cleanup, with the namespaces
	source "$(dirname "$0")/two-hosts.bash"
	bench_two_hosts colovm-d
else
	tmp=$(mktemp -d)
	port=$((46000 + RANDOM % 500))
	pids=()
	cleanup() {
		for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
		rm -rf "$tmp"
	}
	trap cleanup EXIT
	head -c32 /dev/urandom >"$tmp/key"
fi
q() { "$COLOVMCTL" --qmp "$1" "${@:2}"; }
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# iops MB/S: requests of BS KiB per second
iops() { awk -v r="$1" -v bs="$bs" 'BEGIN { printf "%.0f", r * 1e6 / (bs * 1024) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
SETS=${SETS:-4 64 4:4}
# rates OUT FROM: the write and read MB/s of the passes after line FROM
# (each pass is MB MiB: the harmonic mean of their rates is all their
# bytes over all their time)
hmean() { awk '$1 > 0 {n++; s += 1 / $1} END {if (n) printf "%.1f", n / s; else print 0}'; }
rates() {
	tail -n +"$(($2 + 1))" "$1" | tr -d '\r' | sed -n 's/^blk: pass [0-9]* ok MB\/s write=\([0-9.]*\) read=\([0-9.]*\)$/\1 \2/p' >"$tmp/r"
	[ -s "$tmp/r" ] || { echo "no pass in $1 after line $2:" >&2; tail -5 "$1" >&2; wc -l "$1" >&2; exit 1; }
	echo "$(cut -d' ' -f1 "$tmp/r" | hmean) $(cut -d' ' -f2 "$tmp/r" | hmean)"
}
passes() { cat "$1" 2>/dev/null | grep -c '^blk: pass' || true; }

one() { # unprotected
	# (a fresh console: the last run's must not count as this one's passes)
	rm -f "$tmp/u.img" "$tmp/u.out"
	truncate -s "$img" "$tmp/u.img"
	"${PIN_P[@]}" "$COLOVM" run "${args[@]}" --disk "$tmp/u.img" --serial file:"$tmp/u.out" 2>"$tmp/u.err" &
	local pid=$! n0
	pids+=($pid)
	until [ "$(passes "$tmp/u.out")" -ge 1 ]; do sleep 0.2; done
	n0=$(wc -l <"$tmp/u.out")
	sleep "$SECS"
	kill -9 $pid
	wait $pid 2>/dev/null || true
	rates "$tmp/u.out" "$n0"
}

pair() { # protected: prints write read ckpt/s pause-ms settle-ms link/written
	local p=$((port++)) n0 c0 c1 st t0 w0 s0
	rm -f "$tmp"/*.sock "$tmp/p.out" "$tmp/p.img" "$tmp/s.img"
	truncate -s "$img" "$tmp/p.img" "$tmp/s.img"
	"${PIN_S[@]}" "$COLOVM" run "${args[@]}" --disk "$tmp/s.img",replicate --peer-key "$tmp/key" \
		--colo secondary --listen tcp:127.0.0.1:$p --serial none \
		--qmp unix:"$tmp/s.sock",server 2>"$tmp/s.err" &
	pids+=($!)
	"${PIN_P[@]}" "$COLOVM" run "${args[@]}" --disk "$tmp/p.img",replicate --peer-key "$tmp/key" \
		--serial file:"$tmp/p.out" --qmp unix:"$tmp/p.sock",server 2>"$tmp/p.err" &
	pids+=($!)
	until [ -S "$tmp/p.sock" ] && [ -S "$tmp/s.sock" ]; do sleep 0.1; done
	# (the secondary listens after its QMP socket is up: a colo-protect
	# before that is refused, and the pair runs on unprotected)
	until grep -q 'waiting for a primary' "$tmp/s.err"; do sleep 0.1; done
	q "$tmp/p.sock" migrate-set-parameters checkpoint-interval=200 heartbeat-interval=200 \
		heartbeat-misses=25 >/dev/null
	q "$tmp/p.sock" colo-protect uri=tcp:127.0.0.1:$p >/dev/null
	until [ "$(q "$tmp/p.sock" query-colo-status | jq_ 'd["state"]')" = protected ]; do sleep 0.3; done
	until [ "$(passes "$tmp/p.out")" -ge 1 ]; do sleep 0.2; done
	n0=$(wc -l <"$tmp/p.out")
	st=$(q "$tmp/p.sock" query-colo-stats)
	c0=$(echo "$st" | jq_ 'd["checkpoints"]')
	w0=$(echo "$st" | jq_ 'd["disk"]["write-bytes"]') s0=$(echo "$st" | jq_ 'd["disk"]["sent-bytes"]')
	t0=$(date +%s%N)
	sleep "$SECS"
	st=$(q "$tmp/p.sock" query-colo-stats)
	c1=$(echo "$st" | jq_ 'd["checkpoints"]')
	local secs_run
	secs_run=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { print (b - a) / 1e9 }')
	echo "$(rates "$tmp/p.out" "$n0") $(awk -v c=$((c1 - c0)) -v s="$secs_run" 'BEGIN { printf "%.1f", c / s }') \
$(echo "$st" | jq_ 'round(d["pause"]["median-ms"], 1)') $(echo "$st" | jq_ 'round(d["disk"]["settle-max-ms"], 1)') \
$(echo "$st" | jq_ '"%.2f" % ((d["disk"]["sent-bytes"] - '"$s0"') / max(1, d["disk"]["write-bytes"] - '"$w0"'))')"
	echo "$st" | jq_ '"pause parts (mean ms): " + ", ".join("%s %.1f" % (k, v["mean"]) for k, v in d["pause-phases"].items())' >&2
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}

# ckpts SOCK: listen to a QEMU's QMP events for SECS s; "checkpoints/s
# pause-median-ms" (each checkpoint stops the VM: STOP to RESUME)
ckpts() {
	python3 - "$1" "$SECS" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(0.2)
s.sendall(b'{"execute": "qmp_capabilities"}\n')
secs = float(sys.argv[2]); end = time.monotonic() + secs
buf, stop, p = b"", None, []
while time.monotonic() < end:
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    if not d:
        break
    buf += d
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        e = json.loads(line)
        t = e.get("timestamp", {}).get("seconds", 0) + e.get("timestamp", {}).get("microseconds", 0) / 1e6
        if e.get("event") == "STOP":
            stop = t
        elif e.get("event") == "RESUME" and stop is not None:
            p.append((t - stop) * 1000)
            stop = None
p.sort()
print("%.1f %s" % (len(p) / secs, "%.1f" % p[len(p) // 2] if p else "-"))
PY
}

qemu_pair() { # QEMU's COLO: prints write read ckpt/s pause-ms
	local n0 r c
	rm -f "$tmp/q.img"
	truncate -s "$img" "$tmp/q.img"
	qemu_colo_start "$cmdline" "$tmp/q.img" &&
		wait_line "$tmp/p.out" '^blk: pass' 60 || {
		echo "QEMU COLO did not form or run: $(tail -n 3 "$tmp/p.err" "$tmp/s.err" "$tmp/p.out")" >&2
		qemu_stop
		return 0
	}
	n0=$(wc -l <"$tmp/p.out")
	c=$(ckpts "$tmp/pw.sock")
	r=$(rates "$tmp/p.out" "$n0")
	# a clean quit drains the quorum's writes on both children: only then
	# may the images be compared (qemu_stop kills at once)
	qmp "$tmp/p.sock" '{"execute": "quit"}' >/dev/null || true
	for _ in $(seq 50); do kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.1; done
	qemu_stop
	cmp "$tmp/q.img" "$tmp/s-disk.img" >&2 ||
		echo "QEMU COLO: the secondary's image differs from the primary's" >&2
	echo "$r $c"
}

for set in $SETS; do
	mb=${set%%:*} bs=64
	[ "$set" = "$mb" ] || bs=${set#*:}
	cmdline="app=blk mb=$mb bs=$bs loop=1" img=$((2 * mb))M
	args=(--kernel "$TESTGUEST" --mem 32 --cmdline "$cmdline")
	rm -f "$tmp/one" "$tmp/pair" "$tmp/qemu"
	for r in $(seq "$RUNS"); do
		one >>"$tmp/one"
		pair >>"$tmp/pair"
		[ "$qemu" = 0 ] || qemu_pair >>"$tmp/qemu"
	done
	col() { cut -d' ' -f"$2" "$tmp/$1" | median; }
	uw=$(col one 1) ur=$(col one 2) pw=$(col pair 1) pr=$(col pair 2)
	echo
	echo "app=blk loop=1, $mb MiB passes of $bs KiB requests, $SECS s, median of $RUNS runs:"
	echo
	echo "| | write MB/s | write IOPS | read MB/s | checkpoints/s | pause median ms | settle max ms | link bytes per byte written |"
	echo "|---|---|---|---|---|---|---|---|"
	echo "| one colovm, plain --disk | $uw | $(iops "$uw") | $ur | - | - | - | - |"
	echo "| colovm pair, --disk PATH,replicate | $pw | $(iops "$pw") | $pr | $(col pair 3) | $(col pair 4) | $(col pair 5) | $(col pair 6) |"
	echo "| protected / unprotected | $(ratio "$pw" "$uw") | | $(ratio "$pr" "$ur") | | | | |"
	[ "$qemu" != 0 ] || continue
	if ! [ -s "$tmp/qemu" ]; then
		echo "| QEMU 7.2 COLO, quorum + NBD + replication: did not form | - | - | - | - | - | - | - |"
		continue
	fi
	n=$(wc -l <"$tmp/qemu")
	qw=$(col qemu 1) qr=$(col qemu 2)
	echo "| QEMU 7.2 COLO, quorum + NBD + replication$([ "$n" = "$RUNS" ] || echo " ($n of $RUNS runs)") | $qw | $(iops "$qw") | $qr | $(col qemu 3) | $(col qemu 4) | - | - |"
	echo "| colovm pair / QEMU | $(ratio "$pw" "$qw") | | $(ratio "$pr" "$qr") | | | | |"
done
