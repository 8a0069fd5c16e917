#!/bin/bash
# RDMA transport for real, across a link: two qemu TCG VMs (Debian's kernel,
# Soft-RoCE rdma_rxe on each VM's one virtio-net NIC), joined by a qemu UDP
# socket netdev (an Ethernet link between the two qemu processes; UDP, since
# over qemu's TCP socket link Nagle and delayed ACKs held small frames for
# 40 ms). VM A runs the conformance suite's listening side over rdma:, its
# peers run in VM B (started there by the suite's agent). Then a 128 MiB
# bulk transfer and 200 round trips (figures printed, functional only), and
# a link cut: a one-shot pair
# streams, the host takes VM B's NIC link down (qemu monitor set_link), and
# both sides must report the error within the timeout. The rxe and NIC
# counters of both VMs are printed and checked: the traffic crossed the link.
# (rdma_rxe in 6.1 opens its UDP socket only in the initial netns, so two
# netns/veth ends inside one VM would share one rxe path: that is why two
# VMs.) Skips only if the kernel package or qemu is missing.
: "${COLOVM:=unused}" "${TESTGUEST:=unused}"
. "$(dirname "$0")/lib.sh"

KERNEL=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1) || true
[ -n "$KERNEL" ] || skip "no /boot/vmlinuz-* (install linux-image-amd64)"
KVER=${KERNEL#/boot/vmlinuz-}
[ -d /lib/modules/$KVER ] || skip "no /lib/modules/$KVER (install linux-image-amd64)"
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 missing"
[ -x /bin/busybox ] || skip "busybox-static missing"
CONF=$BUILD/tests/unit/transport/transport_conformance
[ -x "$CONF" ] || fail "$CONF not built"
TBENCH=$BUILD/tests/bench/transport/transport_bench
[ -x "$TBENCH" ] || fail "$TBENCH not built"
PROV=/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
[ -e $PROV ] || skip "rdma-core rxe provider missing (ibverbs-providers)"

ROOT=$TMP/root
mkdir -p $ROOT/{bin,sbin,proc,sys,dev,run,tmp,etc/libibverbs.d,lib/modules}
cp /bin/busybox $ROOT/bin/busybox
head -c32 /dev/urandom >$ROOT/key
cp "$CONF" "$TBENCH" $ROOT/bin/
mkdir -p $ROOT/usr/sbin
cp /usr/bin/ip /usr/bin/rdma $ROOT/usr/sbin/ # iproute2 (busybox runs its own applets first: call by path)
cp /etc/libibverbs.d/rxe.driver $ROOT/etc/libibverbs.d/
mkdir -p $ROOT$(dirname $PROV)
cp $PROV $ROOT$PROV
copy_libs() {
	ldd "$1" | grep -oE '/[^ ]+' | while read -r lib; do
		mkdir -p "$ROOT$(dirname "$lib")"
		cp -L "$lib" "$ROOT$lib"
	done
}
for b in "$CONF" "$TBENCH" /usr/bin/ip /usr/bin/rdma $PROV; do copy_libs "$b"; done
gcc_s=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f {print $NF; f = 1}')
mkdir -p $ROOT$(dirname "$gcc_s") && cp -L "$gcc_s" $ROOT$gcc_s

MODS="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net configfs udp_tunnel ip6_udp_tunnel ib_core ib_uverbs iw_cm ib_cm rdma_cm rdma_ucm crc32_generic rdma_rxe"
for m in $MODS; do
	f=$(find /lib/modules/$KVER -name "$m.ko*" -print -quit)
	[ -n "$f" ] || fail "module $m not found under /lib/modules/$KVER"
	case $f in
	*.xz) xz -dc "$f" >$ROOT/lib/modules/$m.ko ;;
	*.zst) zstd -qdc "$f" >$ROOT/lib/modules/$m.ko ;;
	*.gz) gzip -dc "$f" >$ROOT/lib/modules/$m.ko ;;
	*) cp "$f" $ROOT/lib/modules/$m.ko ;;
	esac
done

cat >$ROOT/init <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /sys /proc /dev
export PATH=/usr/sbin:/bin:/sbin ASAN_OPTIONS=detect_leaks=0
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODS; do insmod /lib/modules/\$m.ko || echo "insmod \$m failed"; done
mount -t configfs none /sys/kernel/config 2>/dev/null
/usr/sbin/ip link set lo up
/usr/sbin/ip link set eth0 up
/usr/sbin/ip addr add \$IP/24 dev eth0
/usr/sbin/rdma link add rxe0 type rxe netdev eth0
/usr/sbin/ip -br link
echo "--- \$ROLE: rdma links:"
/usr/sbin/rdma link
if [ "\$ROLE" = B ]; then
	counters B
	transport_conformance agent 7400
	poweroff -f
fi
counters A
echo "--- conformance over rdma:10.0.0.1, peers in VM B (10.0.0.2)"
TRANSPORT_DEBUG=\$TRANSPORT_DEBUG transport_conformance rdma:10.0.0.1 agent:10.0.0.2:7400
echo "RESULT=\$?"
counters A
transport_conformance remote 10.0.0.2:7400 counters B
echo "--- bulk and round trips over rdma (TCG: functional figures only)"
transport_bench serve rdma:10.0.0.1:7420 /key >/dev/null 2>&1 &
TB=\$!
sleep 1
transport_conformance remote 10.0.0.2:7400 /bin/sh -c \
	'echo "RDMA_BENCH \$(TRANSPORT_BENCH_PINGS=200 transport_bench run rdma:10.0.0.1:7420 /key 1 128)"'
kill \$TB
echo "--- link cut"
transport_conformance serve rdma:10.0.0.1:7410 /key &
SP=\$!
sleep 1
transport_conformance remote 10.0.0.2:7400 /proc/self/exe connect rdma:10.0.0.1:7410 /key &
wait \$SP
echo "CUT_DONE"
counters A
poweroff -f
INIT
chmod +x $ROOT/init
cat >$ROOT/bin/counters <<'EOF'
#!/bin/busybox sh
c=/sys/class/infiniband/rxe0/ports/1/hw_counters n=/sys/class/net/eth0/statistics
echo "COUNTERS $1 rxe0 sent_pkts=$(cat $c/sent_pkts) rcvd_pkts=$(cat $c/rcvd_pkts) eth0 tx_bytes=$(cat $n/tx_bytes) rx_bytes=$(cat $n/rx_bytes)"
EOF
chmod +x $ROOT/bin/counters
(cd $ROOT && find . | cpio -o -H newc --quiet | gzip -1) >$TMP/initrd.gz
note "initramfs: $(du -h $TMP/initrd.gz | cut -f1), kernel $KERNEL, modules: $MODS"

PORT=$((20000 + RANDOM % 20000))
vm() { # ROLE IP NETDEV
	exec timeout 300 qemu-system-x86_64 -accel tcg -m 768 -nographic -no-reboot \
		-kernel "$KERNEL" -initrd $TMP/initrd.gz \
		-netdev "$3" -device virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0$([ $1 = A ] && echo 1 || echo 2) \
		-monitor unix:$TMP/mon$1.sock,server=on,wait=off \
		-append "console=ttyS0 quiet panic=-1 loglevel=3 ROLE=$1 IP=$2 TRANSPORT_DEBUG=${TRANSPORT_DEBUG:-}" \
		</dev/null >$TMP/console$1.log 2>&1
}
monitor() { # ROLE COMMAND
	python3 -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(0.2); s.recv(4096)
s.sendall((sys.argv[2]+"\n").encode()); time.sleep(0.3); print(s.recv(4096).decode(errors="replace").strip().splitlines()[-1])' \
		$TMP/mon$1.sock "$2"
}
note "booting VM A (listens on the link) and VM B (connects), qemu TCG, link = qemu UDP socket netdev, 127.0.0.1:$PORT <-> $((PORT + 1))"
t0=$(date +%s)
(vm A 10.0.0.1 socket,id=n0,udp=127.0.0.1:$((PORT + 1)),localaddr=127.0.0.1:$PORT) &
pa=$!
on_exit "kill $pa 2>/dev/null"
sleep 1
(vm B 10.0.0.2 socket,id=n0,udp=127.0.0.1:$PORT,localaddr=127.0.0.1:$((PORT + 1))) &
pb=$!
on_exit "kill $pb 2>/dev/null"

# link cut: once the one-shot pair streams, take VM B's link down from outside
if wait_for_line $TMP/consoleA.log "serve: connected" 240; then
	sleep 2
	note "cutting the link: VM B set_link n0 off ($(($(date +%s) - t0)) s)"
	monitor B "set_link n0 off" >&2 || true
fi
wait $pa || true
note "VMs ran $(($(date +%s) - t0)) s"
kill $pb 2>/dev/null || true
wait $pb 2>/dev/null || true
echo "=== VM A console:"
sed -n '/--- A: rdma links/,$p' $TMP/consoleA.log | tr -d '\r'
echo "=== VM B console:"
sed -n '/--- B: rdma links/,$p' $TMP/consoleB.log | tr -d '\r'
A=$(tr -d '\r' <$TMP/consoleA.log)
B=$(tr -d '\r' <$TMP/consoleB.log)
grep -q "RESULT=0" <<<"$A" || fail "conformance over rdma failed"
grep -qE "^[0-9]+ passed, 0 failed" <<<"$A" || fail "no pass line"
# the traffic crossed the link: VM B's rxe (the peers' side) sent and
# received, and VM A's NIC carried at least the suite's bulk bytes
pk() { grep "COUNTERS $1" <<<"$2" | tail -n1 | grep -oE "$3=[0-9]+" | cut -d= -f2; }
sb=$(pk B "$B" sent_pkts) rb=$(pk B "$B" rcvd_pkts) txa=$(pk A "$A" tx_bytes) rxa=$(pk A "$A" rx_bytes)
[ -n "$sb" ] && [ "$sb" -gt 10000 ] && [ "$rb" -gt 10000 ] || fail "VM B rxe0 counters too low (sent=$sb rcvd=$rb)"
[ "$txa" -gt 100000000 ] || [ "$rxa" -gt 100000000 ] || fail "VM A eth0 carried under 100 MB (tx=$txa rx=$rxa)"
echo "transport-rdma: conformance passed across the link (VM B rxe0 sent $sb / rcvd $rb packets; VM A eth0 tx $txa rx $rxa bytes)"
# a 128 MiB authenticated bulk transfer and 200 round trips across the link
# (TCG and Soft-RoCE: the figures say it works, not how fast RDMA is)
read -r rg rm rp < <(grep -oE "RDMA_BENCH [0-9.]+ [0-9.]+ [0-9.]+" <<<"$B" | cut -d' ' -f2-) ||
	fail "no RDMA bulk/round-trip figures from VM B"
echo "transport-rdma: bulk $rg GB/s, round trip median $rm us, p99 $rp us (TCG VMs: functional figures only)"
# link cut: both ends saw an error within the timeout (5 s) + slack
sa=$(grep -oE "serve: error .*, [0-9]+ ms after the last message" <<<"$A" | grep -oE "[0-9]+ ms" | cut -d' ' -f1)
[ -n "$sa" ] || fail "link cut: VM A's side reported no error"
[ "$sa" -le 12000 ] || fail "link cut: VM A's side took $sa ms"
grep -qE "connect: error .* ms after the last message" <<<"$B" || fail "link cut: VM B's side reported no error"
echo "transport-rdma: link cut reported by both sides (VM A: $sa ms after the last message)"
