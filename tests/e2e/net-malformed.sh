#!/bin/bash
# Misbehaving traffic from the host side of the tap: truncated and oversized
# frames, IPv4 headers with bad versions, lengths and checksums, fragments,
# UDP/TCP/ICMP/ARP with lying length fields and random bytes, sent with a
# raw AF_PACKET socket (tests/guest/tools/malformed.py). Neither the guest
# nor colovm may crash: afterwards the guest still answers ping and TCP, and
# its counters show the drops.
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/tools/netenv.sh"

need_kvm
need_netns
net_setup

vm_start junk colovm "app=tcp-echo stats=1"
mac=$(grep -o 'mac=[0-9a-f:]*' "$TMP/junk.out" | head -1 | cut -d= -f2)
nsx ping -c 1 -W 2 10.0.0.2 >/dev/null || fail "no ping before the junk"
for round in 1 2; do
	nsx python3 "$TOOLS/malformed.py" tap0 "$mac" 3000 || fail "malformed.py"
	nsx python3 "$TOOLS/malformed.py" tap0 ff:ff:ff:ff:ff:ff 500 || fail "malformed.py"
done
sleep 1.2
vm_alive junk || { cat "$TMP/junk.out" >&2; fail "colovm died"; }
grep -q 'testguest: panic' "$TMP/junk.out" && { cat "$TMP/junk.out" >&2; fail "guest panicked"; }
# The guest works through the ~7000 frames before it answers again: a while
# where everything is translated (a host VM). It must answer within 60 s.
t0=$(date +%s)
until nsx ping -c 1 -W 1 10.0.0.2 >/dev/null; do
	[ $(($(date +%s) - t0)) -lt 60 ] || fail "no ping answer within 60 s after the junk"
	vm_alive junk || { cat "$TMP/junk.out" >&2; fail "colovm died"; }
done
note "first ping answer $(($(date +%s) - t0)) s after the junk"
nsx ping -c 3 -i 0.2 -W 2 10.0.0.2 >"$TMP/ping.out" || { cat "$TMP/ping.out" >&2; fail "ping after junk"; }
tcp_echo_check 100000
grep 'net: stats' "$TMP/junk.out" | tail -1 >&2
grep 'net: stats' "$TMP/junk.out" | tail -1 | grep -q 'ip_bad=[1-9]' || fail "no ip_bad drops counted"
grep 'net: stats' "$TMP/junk.out" | tail -1 | grep -q 'ip_frag=[1-9]' || fail "no fragments counted"
echo "PASS"
