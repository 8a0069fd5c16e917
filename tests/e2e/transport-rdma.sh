#!/bin/bash
# RDMA transport for real: boot Debian's kernel under qemu TCG with Soft-RoCE
# (rdma_rxe) on a veth pair and run the transport conformance suite over
# rdma: inside it. Skips only if the kernel package or qemu is missing.
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
PROV=/usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav34.so
[ -e $PROV ] || skip "rdma-core rxe provider missing (ibverbs-providers)"

ROOT=$TMP/root
mkdir -p $ROOT/{bin,sbin,proc,sys,dev,run,tmp,etc/libibverbs.d,lib/modules}
cp /bin/busybox $ROOT/bin/busybox
cp "$CONF" $ROOT/bin/
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
for b in "$CONF" /usr/bin/ip /usr/bin/rdma $PROV; do copy_libs "$b"; done
gcc_s=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f {print $NF; f = 1}')
mkdir -p $ROOT$(dirname "$gcc_s") && cp -L "$gcc_s" $ROOT$gcc_s

MODS="configfs udp_tunnel ip6_udp_tunnel ib_core ib_uverbs iw_cm ib_cm rdma_cm rdma_ucm crc32_generic rdma_rxe veth"
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
export PATH=/usr/sbin:/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODS; do insmod /lib/modules/\$m.ko || echo "insmod \$m failed"; done
mount -t configfs none /sys/kernel/config 2>/dev/null
/usr/sbin/ip link set lo up
/usr/sbin/ip link add va type veth peer name vb
/usr/sbin/ip addr add 10.0.0.1/24 dev va
/usr/sbin/ip addr add 10.0.0.2/24 dev vb
/usr/sbin/ip link set va up
/usr/sbin/ip link set vb up
/usr/sbin/rdma link add rxe0 type rxe netdev va
/usr/sbin/rdma link add rxe1 type rxe netdev vb
echo "--- rdma links:"
/usr/sbin/rdma link
echo "--- conformance over rdma:10.0.0.2"
ASAN_OPTIONS=detect_leaks=0 TRANSPORT_DEBUG=\$TRANSPORT_DEBUG transport_conformance rdma:10.0.0.2
echo "RESULT=\$?"
echo "--- rxe counters:"
/usr/sbin/rdma statistic show 2>/dev/null | head -4
poweroff -f
INIT
chmod +x $ROOT/init
(cd $ROOT && find . | cpio -o -H newc --quiet | gzip -1) >$TMP/initrd.gz
note "initramfs: $(du -h $TMP/initrd.gz | cut -f1), kernel $KERNEL, modules: $MODS"

note "booting under qemu TCG (1 GiB)"
t0=$(date +%s)
timeout 400 qemu-system-x86_64 -accel tcg -m 1024 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd $TMP/initrd.gz \
	-append "console=ttyS0 quiet panic=-1 loglevel=3 TRANSPORT_DEBUG=${TRANSPORT_DEBUG:-}" </dev/null >$TMP/console.log 2>&1 || true
note "VM ran $(($(date +%s) - t0)) s; console:"
sed -n '/--- rdma links/,$p' $TMP/console.log | tr -d '\r'
grep -q "RESULT=0" $TMP/console.log || { tail -40 $TMP/console.log; fail "conformance over rdma failed"; }
grep -qE "^[0-9]+ passed, 0 failed" <(tr -d '\r' <$TMP/console.log) || fail "no pass line"
echo "transport-rdma: conformance suite passed over rdma_rxe"
