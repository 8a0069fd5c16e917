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
# Each figure is the median of DEV_BENCH_RUNS (default 3) measurements; one VM
# per app and VMM, measured repeatedly. The Python clients cap kv and udp: the
# ratio still compares the two VMMs under the same load.
# Env: COLOVM, TESTGUEST (tests/bench/run sets them), DEV_BENCH_RUNS, DEV_BENCH_SECS.
source "$(dirname "$0")/../e2e/lib.sh"
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
source "$SRC/tests/guest/tools/netenv.sh"
need_kvm
need_netns
[ -n "$QEMU" ] || skip "needs qemu-system-x86_64"
runs=${DEV_BENCH_RUNS:-3}
secs=${DEV_BENCH_SECS:-3}
net_setup

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A res

for vmm in colovm qemu; do
	vm_start http-$vmm $vmm "app=http"
	v=""
	for _ in $(seq "$runs"); do
		v+=" $(nsx wrk -t1 -c8 -d${secs}s http://10.0.0.2/ | awk '/^Requests\/sec/ {print $2}')"
	done
	res[http,$vmm]=$(median <<<"$v")
	vm_stop http-$vmm

	vm_start kv-$vmm $vmm "app=kv"
	v=""
	for _ in $(seq "$runs"); do
		v+=" $(nsx python3 "$TOOLS/kvclient.py" --bench "$secs" --conns 4 --depth 64 |
			sed -n 's/.*ops_per_s=//p')"
	done
	res[kv,$vmm]=$(median <<<"$v")
	vm_stop kv-$vmm

	vm_start udp-$vmm $vmm "app=udp-echo"
	v=""
	for _ in $(seq "$runs"); do
		v+=" $(nsx python3 "$TOOLS/udpbench.py" "$secs" 32 64 | sed -n 's/.*pps=//p')"
	done
	res[udp,$vmm]=$(median <<<"$v")
	vm_stop udp-$vmm

	img=$TMP/bench.img
	w="" r=""
	for _ in $(seq "$runs"); do
		rm -f "$img"
		truncate -s 128M "$img"
		line=$(eval "timeout 120 $(vm_cmd $vmm "app=blk mb=64" $(disk_args $vmm "$img"))" \
			</dev/null 2>&1 | tr -d '\r' | grep '^blk: ok' || true)
		[ -n "$line" ] || fail "$vmm: app=blk printed no 'blk: ok' line"
		w+=" $(sed -n 's/.*write=\([0-9.]*\).*/\1/p' <<<"$line")"
		r+=" $(sed -n 's/.*read=\([0-9.]*\).*/\1/p' <<<"$line")"
	done
	res[blkw,$vmm]=$(median <<<"$w")
	res[blkr,$vmm]=$(median <<<"$r")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "Test guest apps over virtio-mmio, median of $runs runs (${secs} s each for network):"
echo
echo "| benchmark | colovm | QEMU microvm | colovm/QEMU |"
echo "|---|---:|---:|---:|"
row() { echo "| $1 | ${res[$2,colovm]} | ${res[$2,qemu]} | $(ratio "${res[$2,colovm]}" "${res[$2,qemu]}") |"; }
row "HTTP requests/s (wrk -t1 -c8, app=http)" http
row "KV ops/s (4 conns x 64 pipelined, app=kv)" kv
row "UDP echo packets/s (32 in flight, 64 B)" udp
row "blk write MB/s (64 MiB, 64 KiB x 16, + flush)" blkw
row "blk read MB/s (64 MiB, 64 KiB x 16)" blkr
