# Helpers for the network end-to-end tests and benchmarks (source after
# tests/e2e/lib.sh, or standalone with TMP and on_exit defined).
#
# net_setup: a network namespace (removed on exit) holding tap0 with
# 10.0.0.1/24; the guest is 10.0.0.2. nsx CMD...: run CMD in it.
# vm_start NAME VMM CMDLINE [VMM ARGS...]: boot the test guest on colovm
# or qemu with a virtio-net device on tap0 (and whatever extra arguments
# say), serial output in $TMP/NAME.out; waits for the app's "net: up" line
# (or, with no app= network app, returns at once). vm_stop NAME.

NET_NS=colovm-gnet-$$
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QEMU=${QEMU:-$(command -v qemu-system-x86_64 || true)}
declare -A vm_pid

nsx() { ip netns exec "$NET_NS" "$@"; }

net_setup() {
	ip netns add "$NET_NS"
	on_exit "ip netns del $NET_NS"
	nsx ip link set lo up
	nsx ip tuntap add dev tap0 mode tap
	nsx ip addr add 10.0.0.1/24 dev tap0
	nsx ip link set tap0 up
}

# vm_cmd VMM CMDLINE ARGS...: the command that boots the guest.
vm_cmd() {
	local vmm=$1 cmdline=$2
	shift 2
	case $vmm in
	colovm) echo "$COLOVM" run --kernel "$TESTGUEST" --cmdline "'$cmdline'" "$@" ;;
	qemu) echo "$QEMU" -M microvm -accel kvm -cpu host -m 256 -nodefaults -no-user-config \
		-nographic -no-reboot -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$TESTGUEST" -append "'$cmdline'" "$@" ;;
	esac
}

# net_args VMM: arguments for a virtio-net device on tap0.
net_args() {
	case $1 in
	colovm) echo --net tap=tap0 ;;
	qemu) echo -device virtio-net-device,netdev=n0 \
		-netdev tap,id=n0,ifname=tap0,script=no,downscript=no ;;
	esac
}

# disk_args VMM IMAGE [readonly]
disk_args() {
	case $1 in
	colovm) echo --disk "$2${3:+,readonly}" ;;
	qemu) echo -device virtio-blk-device,drive=d0 \
		-drive "id=d0,file=$2,format=raw,if=none${3:+,readonly=on}" ;;
	esac
}

vm_start() {
	local name=$1 vmm=$2 cmdline=$3
	shift 3
	eval "exec ip netns exec $NET_NS $(vm_cmd "$vmm" "$cmdline" $(net_args "$vmm") "$@")" \
		</dev/null >"$TMP/$name.out" 2>&1 &
	vm_pid[$name]=$!
	on_exit "vm_stop $name"
	if ! wait_for_line "$TMP/$name.out" '^net: up ' 30; then
		cat "$TMP/$name.out" >&2
		fail "$name: no 'net: up' line from the guest on $vmm"
	fi
}

vm_alive() { kill -0 "${vm_pid[$1]}" 2>/dev/null; }

vm_stop() {
	local pid=${vm_pid[$1]:-}
	[ -n "$pid" ] || return 0
	# the job execs ip netns exec, which execs the VMM: $pid is the VMM
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	vm_pid[$1]=
}

# tcp_echo_check SIZE: SIZE random bytes through app=tcp-echo, checksum compared.
tcp_echo_check() {
	head -c "$1" /dev/urandom >"$TMP/echo.in"
	nsx timeout 60 nc -N 10.0.0.2 7 <"$TMP/echo.in" >"$TMP/echo.out" || true
	local want got
	want=$(sha256sum <"$TMP/echo.in")
	got=$(sha256sum <"$TMP/echo.out")
	[ "$want" = "$got" ] || fail "tcp echo of $1 bytes: got $(stat -c %s "$TMP/echo.out") bytes back, checksum differs"
}
