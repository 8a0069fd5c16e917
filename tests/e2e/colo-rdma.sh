#!/bin/bash
# A COLO pair over rdma: Soft-RoCE (rdma_rxe) on a dummy Ethernet device,
# both colovm processes on this host: rxe loops the traffic back inside the
# device (its own MAC), so it is RDMA for real -- the checkpoints' pages are
# RDMA WRITEs into the secondary's RAM cache, the control messages SENDs, all
# through the rxe queue pairs -- without a second host. (Two hosts would
# need two host VMs: rdma_rxe in Linux 6.1 opens its UDP socket only in the
# initial network namespace.) app=dirty on the pair: for 10 checkpoints the
# secondary's guest RAM right after it applied checkpoint N hashes like the
# primary's in the pause of N; no verification failure; the rxe device's
# counters show the packets went through it.
source "$(dirname "$0")/lib.sh"
need_kvm
need_root
modprobe rdma_rxe 2>/dev/null || skip "no rdma_rxe kernel module"
modprobe dummy 2>/dev/null || skip "no dummy kernel module"
[ -e /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so ] ||
	skip "rdma-core rxe provider missing (ibverbs-providers)"
command -v rdma >/dev/null || skip "no rdma tool (iproute2)"
dev=crd$$ rxe=crxe$$
ip link add $dev type dummy
on_exit "ip link del $dev 2>/dev/null"
ip addr add 192.168.99.1/24 dev $dev
ip link set $dev up
rdma link add $rxe type rxe netdev $dev || fail "cannot add an rxe device on $dev"
on_exit "rdma link delete $rxe 2>/dev/null"
CHAN=rdma:192.168.99.1
source "$(dirname "$0")/colo-lib.bash"

port=$((47700 + RANDOM % 90))
d=$TMP
head -c32 /dev/urandom >"$d/key"
args=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=dirty mb=8 rate=2" --peer-key "$d/key")
counter() { rdma statistic show link $rxe/1 2>/dev/null | grep -oE " $1 [0-9]+" | grep -oE '[0-9]+$'; }
sent0=$(counter sent_pkts || echo 0)

start_secondary "$d" $port "${args[@]}"
start_primary "$d" pri $port "${args[@]}"
wait_state "$d/pri.sock" protected 180 ||
	fail "no pair over rdma: $(q "$d/pri.sock" query-colo-status)"
note "paired over rdma: $(grep -h 'connected' "$d/sec.err" | head -1)"
q "$d/pri.sock" migrate-set-parameters checkpoint-interval=300 x-colo-ram-digest=true >/dev/null

compare_digests "$d" 10 300
stats=$(q "$d/pri.sock" query-colo-stats)
note "10 checkpoints compared over rdma, the last $LAST; pause $(echo "$stats" | jq_ 'd["pause"]')"
[ "$(echo "$stats" | jq_ 'd["failed"]')" = 0 ] || fail "failed checkpoints"
! grep -q 'verify failed' "$d/pri.out" "$d/sec.out" || fail "the guest lost a write"
q "$d/pri.sock" query-colo-status | grep -q '"protected"' || fail "no longer protected"
sent=$(counter sent_pkts || echo 0)
note "rxe $rxe: $((sent - sent0)) packets sent"
[ $((sent - sent0)) -gt 1000 ] || fail "the rxe device counted $((sent - sent0)) packets: not RDMA"
q "$d/pri.sock" quit >/dev/null || true
wait_exit $PRI_PID 30 || true
wait_exit $SEC_PID 30 || fail "the secondary did not end with the primary"
no_crash "$d/pri.err" "$d/sec.err"
echo PASS
