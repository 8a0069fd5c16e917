#!/bin/bash
# Device benchmarks: the test guest's virtio-net and virtio-blk apps on colovm
# and on QEMU microvm, same guest, same tap set-up (a network namespace with
# tap0, host 10.0.0.1, guest 10.0.0.2), in one run:
#   http   wrk -t1 -c8 -d${DEV_BENCH_SECS}s against app=http (requests/s)
#   kv     tests/guest/tools/kvclient.py --bench: 4 connections, 64 pipelined
#          requests each (ops/s)
#   udp    tests/guest/tools/udpbench.py: 32 x 64-byte datagrams in flight
#          against app=udp-echo (echoes/s)
#   blk    app=blk mb=64 on a raw image in /tmp (its write and read MB/s;
#          write includes the flush)
# Each figure is the median of DEV_BENCH_RUNS (default 5) measurements, a
# fresh VM each, colovm and QEMU alternating. The Python clients cap kv and
# udp: the ratio still compares the two VMMs under the same load.
# Env: COLOVM, TESTGUEST (tests/bench/run sets them), DEV_BENCH_RUNS,
# DEV_BENCH_SECS, DEV_BENCH_APPS (a subset of "http kv udp blk"),
# DEV_BENCH_VERBOSE (every sample on stderr).
source "$(dirname "$0")/../e2e/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$SRC/tests/guest/tools/netenv.sh"
need_kvm
need_netns
[ -n "$QEMU" ] || skip "needs qemu-system-x86_64"
runs=${DEV_BENCH_RUNS:-5}
apps=${DEV_BENCH_APPS:-http kv udp blk}
want() { [[ " $apps " == *" $1 "* ]]; }
secs=${DEV_BENCH_SECS:-3}
net_setup

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A res

# One sample per (run, VMM): the two VMMs alternate, so a slow spell on
# this shared machine lands on both rather than on one VMM's whole series.
for _ in $(seq "$runs"); do
	for vmm in colovm qemu; do
		if want http; then
			vm_start http-$vmm $vmm "app=http"
			res[http,$vmm]+=" $(nsx wrk -t1 -c8 -d${secs}s http://10.0.0.2/ |
				awk '/^Requests\/sec/ {print $2}')"
			vm_stop http-$vmm
		fi
		if want kv; then
			vm_start kv-$vmm $vmm "app=kv"
			res[kv,$vmm]+=" $(nsx python3 "$TOOLS/kvclient.py" --bench "$secs" --conns 4 \
				--depth 64 | sed -n 's/.*ops_per_s=//p')"
			vm_stop kv-$vmm
		fi
		if want udp; then
			vm_start udp-$vmm $vmm "app=udp-echo"
			res[udp,$vmm]+=" $(nsx python3 "$TOOLS/udpbench.py" "$secs" 32 64 |
				sed -n 's/.*pps=//p')"
			vm_stop udp-$vmm
		fi
		if want blk; then
			img=$TMP/bench.img
			rm -f "$img"
			truncate -s 128M "$img"
			line=$(eval "timeout 120 $(vm_cmd $vmm "app=blk mb=64" $(disk_args $vmm "$img"))" \
				</dev/null 2>&1 | tr -d '\r' | grep '^blk: ok' || true)
			[ -n "$line" ] || fail "$vmm: app=blk printed no 'blk: ok' line"
			res[blkw,$vmm]+=" $(sed -n 's/.*write=\([0-9.]*\).*/\1/p' <<<"$line")"
			res[blkr,$vmm]+=" $(sed -n 's/.*read=\([0-9.]*\).*/\1/p' <<<"$line")"
		fi
	done
done
[ -z "${DEV_BENCH_VERBOSE:-}" ] || for k in "${!res[@]}"; do echo "$k:${res[$k]}"; done | sort >&2
for k in "${!res[@]}"; do res[$k]=$(median <<<"${res[$k]}"); done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "Test guest apps over virtio-mmio, median of $runs runs (${secs} s each for network):"
echo
echo "| benchmark | colovm | QEMU microvm | colovm/QEMU |"
echo "|---|---:|---:|---:|"
row() {
	want "${2%[wr]}" || want "$2" || return 0
	echo "| $1 | ${res[$2,colovm]} | ${res[$2,qemu]} | $(ratio "${res[$2,colovm]}" "${res[$2,qemu]}") |"
}
row "HTTP requests/s (wrk -t1 -c8, app=http)" http
row "KV ops/s (4 conns x 64 pipelined, app=kv)" kv
row "UDP echo packets/s (32 in flight, 64 B)" udp
row "blk write MB/s (64 MiB, 64 KiB x 16, + flush)" blkw
row "blk read MB/s (64 MiB, 64 KiB x 16)" blkr
