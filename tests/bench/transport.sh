#!/bin/bash
# transport benchmarks: bulk GB/s and control round trip (median, p99) over
# TCP on loopback and across a veth pair between two namespaces, next to
# iperf3 on the same path and memcpy of the same size (the ceilings).
# Env: BUILD = release build dir.
set -euo pipefail
B=$BUILD/tests/bench/transport/transport_bench
[ -x "$B" ] || { echo "transport_bench not built in $BUILD"; exit 1; }
MB=${TP_BENCH_MB:-2048}
TMP=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del tpbA$$ 2>/dev/null || true
	ip netns del tpbB$$ 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
head -c32 /dev/urandom >$TMP/key

RUNS=${TP_BENCH_RUNS:-3}
median() { python3 -c 'import sys,statistics; print("%.2f" % statistics.median(map(float, sys.argv[1:])))' "$@"; }
gbs_iperf() { # NS_PREFIX HOST PORT PARALLEL (median of RUNS)
	local pre=$1 host=$2 port=$3 par=$4 v=()
	for _ in $(seq $RUNS); do
		v+=($($pre iperf3 -c "$host" -p "$port" -t 3 -P "$par" -J 2>/dev/null |
			python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e9))'))
	done
	median "${v[@]}"
}

path() { # NAME SRV_PREFIX CLI_PREFIX HOST
	local name=$1 spre=$2 cpre=$3 host=$4
	$spre $B serve tcp:$host:7501 $TMP/key >/dev/null 2>&1 &
	pids+=($!)
	$spre $B serve tcp:$host:7502 $TMP/key nomac >/dev/null 2>&1 &
	pids+=($!)
	$spre iperf3 -s -p 7601 >/dev/null 2>&1 &
	pids+=($!)
	sleep 1
	local ip1 ip4
	ip1=$(gbs_iperf "$cpre" $host 7601 1)
	ip4=$(gbs_iperf "$cpre" $host 7601 4)
	for s in 1 2 4; do
		local g=() m=() q=() n=()
		for _ in $(seq $RUNS); do
			read -r a b c < <($cpre $B run tcp:$host:7501 $TMP/key $s $MB 2>/dev/null)
			g+=($a) m+=($b) q+=($c)
			read -r a b c < <($cpre $B run tcp:$host:7502 $TMP/key $s $MB nomac 2>/dev/null)
			n+=($a)
		done
		gbs=$(median "${g[@]}") med=$(median "${m[@]}") p99=$(median "${q[@]}")
		nomac=$(median "${n[@]}")
		local ref=$ip1
		[ $s -gt 1 ] && ref=$ip4
		pct=$(python3 -c "print('%.0f' % (100*$gbs/$ref))")
		npct=$(python3 -c "print('%.0f' % (100*$nomac/$ref))")
		echo "| $name | tcp, $s stream(s) | $gbs | $ref (-P $([ $s -gt 1 ] && echo 4 || echo 1)) | $pct% | $nomac ($npct%) | $med | $p99 |"
	done
}

echo "Bulk: ${MB} MiB in 64 MiB commits of 64 KiB iovecs (MAC'd: Poly1305 per stream, libcrypto's when built with it); RTT: 5000 heartbeat->ack round trips."
echo "Every figure is the median of $RUNS runs; iperf3 is measured in the same run, on the same path."
echo "memcpy of the same size: $($B memcpy $MB) GB/s (the bulk MAC alone: the table after this one)."
echo "'Without the MAC' is the same transfer with no bulk byte fed to the MAC on either end (a benchmark-only knob): what the authentication costs."
echo
echo "| path | transport | bulk GB/s | iperf3 GB/s | of iperf3 | without the MAC GB/s (of iperf3) | RTT median µs | RTT p99 µs |"
echo "|---|---|---|---|---|---|---|---|"
path loopback "" "" 127.0.0.1
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
pids=()
if [ "$(id -u)" = 0 ] && ip netns add tpbA$$ 2>/dev/null; then
	ip netns add tpbB$$
	ip link add tbA$$ netns tpbA$$ type veth peer name tbB$$ netns tpbB$$
	ip -n tpbA$$ addr add 10.78.0.1/24 dev tbA$$
	ip -n tpbB$$ addr add 10.78.0.2/24 dev tbB$$
	ip -n tpbA$$ link set tbA$$ up
	ip -n tpbB$$ link set tbB$$ up
	ip -n tpbA$$ link set lo up
	path veth "ip netns exec tpbA$$" "ip netns exec tpbB$$" 10.78.0.1
else
	echo "(veth path skipped: needs root and network namespaces)"
fi
echo
echo "The bulk-MAC candidates from Debian's crypto libraries, one core, 1 GiB each (median of 3):"
echo
$BUILD/tests/bench/transport/mac_bench 1024
echo
echo "MSG_ZEROCOPY: not implemented (on loopback and veth the kernel copies zerocopy skbs anyway, so it cannot pay on these paths)."
echo "RDMA, across a link between two TCG VMs with Soft-RoCE (tests/e2e/transport-rdma.sh; functional figures only, TCG is not a speed reference):"
if rdma=$(bash "$SRC/tests/e2e/transport-rdma.sh" 2>/dev/null); then
	grep -E "^transport-rdma: (bulk|conformance)" <<<"$rdma"
else
	echo "(the RDMA test did not pass or was skipped: run tests/e2e/transport-rdma.sh to see why)"
fi
