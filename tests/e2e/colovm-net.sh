#!/bin/bash
# deploy/colovm-net (installed by cmake --install) on two "hosts", network
# namespaces A and B, natively (no guest):
#
#   clients ns ── veth ── eA0 (A's uplink)        A: rA ══ veth ══ rB :B
#                                                    (replication link)
#
#   up (A, primary config)   br0 with eA0, tap0 owned by nobody, in br0
#                            and up; 192.168.77.1/24 and MTU 9000 on rA;
#                            a warning while B does not answer yet; a
#                            client's frame reaches the tap, opened by nobody
#   up again                 changes nothing (links, addresses, state)
#   up (B, secondary, its bridge there before with another port)
#   status                   0, tap in the bridge, the peer answering
#                            8972-byte pings unfragmented; 1 with a
#                            "problem:" line once B's MTU is 1500, or the
#                            tap is out of the bridge
#   down                     A's links and addresses exactly as before up
#                            (an address and a bridge of its own kept);
#                            B's bridge kept with its other port; again: 0
#   errors                   not root, missing uplink, an uplink with an
#                            address, missing replication interface, an
#                            unknown user, a config with two taps: exit 1
#                            or 2 with one clear line, nothing changed
source "$(dirname "$0")/lib.sh"
need_netns
: "${BUILD:?}"
p=$TMP/prefix
cmake --install "$BUILD" --prefix "$p" >"$TMP/install.log" || fail "cmake --install: $(cat "$TMP/install.log")"
NET=$p/sbin/colovm-net
[ -x "$NET" ] || fail "colovm-net is not installed at $NET"
"$NET" --help | grep -q '^Usage: colovm-net up|down|status' || fail "colovm-net --help"

A=colovm-net-a-$$ B=colovm-net-b-$$ C=colovm-net-c-$$
for ns in $A $B $C; do
	ip netns add "$ns"
	on_exit "ip netns del $ns"
	ip -n "$ns" link set lo up
done
ip -n $A link add eA0 type veth peer name eC0 netns $C
ip -n $A link add rA type veth peer name rB netns $B
ip -n $C link set eC0 up
# things of A's own that colovm-net must leave alone
ip -n $A link add brown type bridge
ip -n $A link add dmy0 type veth peer name dmy0p
ip -n $A link set dmy0 master brown
ip -n $A addr add 10.9.9.1/24 dev rA
# B: its bridge is there before, with a port of its own
ip -n $B link add br0 type bridge
ip -n $B link add dmy1 type veth peer name dmy1p
ip -n $B link set dmy1 master br0
ip -n $B link set br0 up

cat >"$TMP/a.conf" <<'EOF'
[vm]
kernel = /x
net = tap=tap0,mac=52:54:00:12:34:56
[colo]
role = primary
peer = tcp:192.168.77.2:4500
EOF
cat >"$TMP/b.conf" <<'EOF'
[vm]
kernel = /x
net = tap=tap0,mac=52:54:00:12:34:56
[colo]
role = secondary
listen = tcp:192.168.77.2:4500
EOF

# snapshot NS: its links (name, up, master, MTU, tap owner) and global addresses
snapshot() {
	ip netns exec "$1" sh -c '
		for d in /sys/class/net/*; do
			n=${d##*/}
			m=$(readlink "$d/master" 2>/dev/null); m=${m##*/}
			o=$(cat "$d/owner" 2>/dev/null || echo -)
			f=$(cat "$d/flags")
			echo "link $n up=$((f & 1)) master=${m:--} mtu=$(cat "$d/mtu") owner=$o flags=$f"
		done
		ip -o addr show scope global | awk "{print \"addr\", \$2, \$4}"' | sort
}
# net NS ARGS...: colovm-net in NS, its state in $TMP/state-NS; out/err in $TMP/net.{out,err}
net() {
	local ns=$1 st=0
	shift
	ip netns exec "$ns" "$NET" --state-dir "$TMP/state-$ns" "$@" >"$TMP/net.out" 2>"$TMP/net.err" || st=$?
	return $st
}
nets() { # net, expecting status $1
	local want=$1 got=0
	shift
	net "$@" || got=$?
	[ "$got" = "$want" ] || fail "colovm-net $*: exit $got, expected $want: $(cat "$TMP/net.out" "$TMP/net.err")"
}

UA=(--config "$TMP/a.conf" --uplink eA0 --user nobody --repl-if rA --repl-addr 192.168.77.1/24 --repl-mtu 9000)
UB=(--config "$TMP/b.conf" --repl-if rB --repl-addr 192.168.77.2/24 --repl-mtu 9000)

# --- errors first: nothing changes
before=$(snapshot $A)
bad() { # bad STATUS REGEX ARGS...: one clear line, A unchanged
	local want=$1 re=$2
	shift 2
	nets "$want" $A "$@"
	grep -qE -e "$re" "$TMP/net.err" || fail "colovm-net $*: stderr does not match /$re/: $(cat "$TMP/net.err")"
	[ "$(wc -l <"$TMP/net.err")" -le 2 ] || fail "colovm-net $*: more than two lines: $(cat "$TMP/net.err")"
	[ "$(snapshot $A)" = "$before" ] || fail "colovm-net $* changed something"
	[ ! -e "$TMP/state-$A/tap0.state" ] || fail "colovm-net $* left a state file"
	echo "ok: $(head -1 "$TMP/net.err")"
}
bad 2 "missing command" --tap tap0
bad 2 "--tap 'tap0 x': not an interface name" up --tap 'tap0 x'
bad 2 "--repl-addr '192.168.77.1': expected ADDRESS/PREFIX-LENGTH" up --repl-if rA --repl-addr 192.168.77.1
bad 1 "uplink eth9: no such interface" up "${UA[@]}" --uplink eth9
bad 1 "replication interface rX: no such interface" up "${UA[@]}" --repl-if rX
bad 1 "--user no-such-user: no such user" up "${UA[@]}" --user no-such-user
bad 1 "uplink rA has an address \(10.9.9.1/24\): in br0 it would stop working" up "${UA[@]}" --uplink rA --repl-if eA0
bad 1 "uplink dmy0 is already in brown, not br0" up "${UA[@]}" --uplink dmy0
printf '[vm]\nkernel = /x\nnet = tap=tap0\nnet = tap=tap1\n' >"$TMP/two.conf"
bad 1 "has 2 taps \(tap0 tap1\): choose one with --tap" up --config "$TMP/two.conf"
bad 1 "is a witness's config" up --config "$p/share/doc/colovm/examples/witness.conf"
st=0
chmod 755 "$TMP" # (for nobody)
ip netns exec $A setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$NET" up "${UA[@]}" --state-dir "$TMP/state-nobody" >"$TMP/net.out" 2>"$TMP/net.err" || st=$?
[ "$st" = 1 ] && grep -q "run it as root" "$TMP/net.err" || fail "up as nobody: exit $st: $(cat "$TMP/net.err")"
[ "$(snapshot $A)" = "$before" ] || fail "up as nobody changed something"
echo "ok: not root: $(cat "$TMP/net.err")"

# --- up on A
nets 0 $A up "${UA[@]}"
cat "$TMP/net.out" "$TMP/net.err"
grep -q "warning: peer 192.168.77.2 does not answer" "$TMP/net.err" || fail "no warning while B is not up"
after_up=$(snapshot $A)
echo "$after_up" | grep -qE "^link tap0 up=1 master=br0 mtu=1500 owner=65534 " ||
	fail "tap0 is not up, in br0, owned by nobody: $(echo "$after_up" | grep tap0)"
echo "$after_up" | grep -qE "^link br0 up=1 " || fail "br0 is not up"
echo "$after_up" | grep -qE "^link eA0 up=1 master=br0 " || fail "eA0 not up in br0"
echo "$after_up" | grep -qE "^link rA up=1 master=- mtu=9000 " || fail "rA not up with MTU 9000"
echo "$after_up" | grep -qx "addr rA 192.168.77.1/24" || fail "rA has no 192.168.77.1/24"
echo "ok: up: tap0 (owner nobody) and eA0 in br0, all up; rA 192.168.77.1/24, MTU 9000"

# --- a client's frame reaches the tap through the bridge, read by the
# tap's owner (nobody: no CAP_NET_ADMIN) as colovm would read it
ip -n $C addr add 10.0.0.9/24 dev eC0
ip netns exec $A setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 - \
	"$(ip netns exec $C cat /sys/class/net/eC0/address)" >"$TMP/tap.out" 2>&1 <<'PY' &
import fcntl, os, select, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"tap0", 0x0002 | 0x1000))  # TUNSETIFF, IFF_TAP|IFF_NO_PI
print("open", flush=True)
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
end = time.monotonic() + 10
while time.monotonic() < end:
    if select.select([fd], [], [], 0.5)[0]:
        f = os.read(fd, 65536)
        if f[6:12] == mac:
            print("frame from the client, ethertype %04x" % struct.unpack("!H", f[12:14]), flush=True)
            sys.exit(0)
sys.exit(1)
PY
READER=$!
wait_for_line "$TMP/tap.out" '^open' 5 || fail "nobody cannot open tap0: $(cat "$TMP/tap.out")"
ip netns exec $C ping -c 3 -i 0.3 -W 1 10.0.0.2 >/dev/null 2>&1 || true # (nobody answers: ARP is enough)
wait $READER || fail "no frame of the client's reached tap0: $(cat "$TMP/tap.out")"
echo "ok: tap0 opened by its owner (nobody); $(tail -1 "$TMP/tap.out") through eA0 and br0"

# --- again: nothing changes
cp "$TMP/state-$A/tap0.state" "$TMP/state1"
nets 0 $A up "${UA[@]}"
! grep -qE "^colovm-net: (added|put|set)" "$TMP/net.out" || fail "a second up changed things: $(cat "$TMP/net.out")"
[ "$(snapshot $A)" = "$after_up" ] || fail "a second up changed the links: $(diff <(echo "$after_up") <(snapshot $A))"
cmp -s "$TMP/state1" "$TMP/state-$A/tap0.state" || fail "a second up changed the state file"
echo "ok: up again: nothing changed"

# --- B: its own bridge, then status both ways
nets 0 $B up "${UB[@]}"
grep -q "added bridge" "$TMP/net.out" && fail "B's bridge existed, up added one"
grep -q "put tap tap0 in br0" "$TMP/net.out" || fail "B: $(cat "$TMP/net.out")"
nets 0 $A status "${UA[@]}"
cat "$TMP/net.out"
grep -q "^tap tap0: up, in br0, owner uid 65534" "$TMP/net.out" || fail "status does not show tap0 in br0"
grep -q "^peer 192.168.77.2: answers 8972-byte pings unfragmented (MTU 9000)" "$TMP/net.out" ||
	fail "status: the peer at MTU 9000"
nets 0 $B status "${UB[@]}"
grep -q "^listen address 192.168.77.2: on this host" "$TMP/net.out" || fail "B status: $(cat "$TMP/net.out")"
echo "ok: status A and B: 0; the peer answers 8972-byte pings unfragmented"

ip -n $B link set rB mtu 1500
nets 1 $A status "${UA[@]}"
grep -q "^problem: peer 192.168.77.2 does not answer 8972-byte pings unfragmented" "$TMP/net.out" ||
	fail "status with B at MTU 1500: $(cat "$TMP/net.out")"
echo "ok: B's MTU 1500: status 1, $(grep ^problem: "$TMP/net.out")"
ip -n $B link set rB mtu 9000
ip -n $A link set tap0 nomaster
nets 1 $A status "${UA[@]}"
grep -q "^problem: tap tap0 is not in br0" "$TMP/net.out" || fail "status, tap out of br0: $(cat "$TMP/net.out")"
ip -n $A link set tap0 master br0
nets 0 $A status "${UA[@]}"
echo "ok: the tap out of the bridge: status 1, back in: 0"

# --- down: A exactly as before up; B's bridge kept
nets 0 $A down --tap tap0
cat "$TMP/net.out"
[ "$(snapshot $A)" = "$before" ] || fail "down did not undo up exactly: $(diff <(echo "$before") <(snapshot $A))"
nets 0 $A down --tap tap0
grep -q "nothing to undo" "$TMP/net.out" || fail "down again: $(cat "$TMP/net.out")"
nets 1 $A status "${UA[@]}"
grep -q "^problem: tap tap0: missing" "$TMP/net.out" || fail "status after down: $(cat "$TMP/net.out")"
echo "ok: down: A's links and addresses as before up (brown, dmy0, 10.9.9.1/24 kept); again: nothing to undo"
nets 0 $B down --config "$TMP/b.conf"
snapshot $B | grep -qE "^link br0 up=1 " || fail "down removed B's own bridge"
snapshot $B | grep -qE "^link dmy1 .* master=br0 " || fail "down took dmy1 out of B's bridge"
! snapshot $B | grep -q "tap0" || fail "B's tap0 still there"
! snapshot $B | grep -q "192.168.77.2" || fail "B's address still there"
echo "ok: down on B: tap0 and the address gone, its own br0 (with dmy1) kept"
echo PASS
