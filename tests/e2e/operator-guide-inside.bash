#!/bin/bash
# The operator's guide (docs/operator-guide.md), done as it says, under a
# real systemd (PID 1 of a host VM: tests/e2e/operator-guide.sh starts it
# with `tests/hostvm run --systemd`). Two hosts are two network namespaces
# on this one: A (the primary's, its unit in namespace A through a drop-in
# NetworkNamespacePath=) and B; the witness is this host's own namespace.
# Install with cmake, keys and configs from the installed examples, units
# started with systemctl (Type=notify: ready once protected), the drill,
# the journal's events, re-protect; then the witness owned by Pacemaker (a
# one-node corosync/pacemaker cluster): restarted when killed, granting in
# a link-cut drill. Needs: root, systemd as PID 1, /dev/kvm,
# and BUILD, SRC, TESTGUEST in the environment.
set -euo pipefail
: "${BUILD:?}" "${SRC:?}" "${TESTGUEST:?}"
t0=$SECONDS
say() { echo "--- [$((SECONDS - t0)) s] $*"; }
fail() {
	echo "FAIL: $*"
	for u in colovm-witness colovm@kva colovm@kvb colovm@kva2; do
		echo "== systemctl status $u"
		systemctl status --no-pager -n 25 "$u" 2>&1 || true
	done
	if systemctl -q is-active pacemaker; then
		echo "== crm_mon -1 --failcounts"
		crm_mon -1 --failcounts 2>&1 || true
		echo "== journalctl -u pacemaker (its last lines)"
		journalctl -u pacemaker --no-pager -n 30 2>&1 || true
		echo "== the witness's log"
		tail -n 20 /var/log/colovm/witness.log 2>&1 || true
		ps -eo pid,args | grep '[c]olovm witness' || true
	fi
	exit 1
}
[ "$(ps -p 1 -o comm=)" = systemd ] || fail "PID 1 is not systemd (run through tests/hostvm --systemd)"
[ -c /dev/kvm ] || fail "no /dev/kvm"
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
wait_for() {
	local secs=$1 end=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $end ] || fail "$what: not after $secs s"
		sleep 0.3
	done
}
state_of() { # QMP-SOCKET: "mode state" from query-colo-status
	colovmctl --qmp "$1" query-colo-status 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["mode"], d["state"])'
}
is_state() { [ "$(state_of "$1")" = "$2" ]; }
unit_is() { [ "$(systemctl show -p ActiveState --value "$1")" = "$2" ]; } # UNIT STATE
kv() { # NAMESPACE COMMAND...: each a line to the guest's KV service; prints the answers
	ip netns exec "$1" python3 - "${@:2}" <<'PY'
import socket, sys
c = socket.create_connection(("10.0.0.2", 7000), timeout=30)
f = c.makefile("rwb")
for cmd in sys.argv[1:]:
    f.write((cmd + "\n").encode()); f.flush()
    print(f.readline().decode().strip())
PY
}

say "2. Install: cmake --install (prefix /usr)"
cmake --install "$BUILD" --prefix /usr >/tmp/install.log || fail "cmake --install: $(tail -5 /tmp/install.log)"
systemctl daemon-reload
for f in /usr/bin/colovm /usr/bin/colovmctl /usr/sbin/colovm-net /usr/lib/systemd/system/colovm@.service \
	/usr/lib/systemd/system/colovm-witness.service /usr/share/doc/colovm/examples/primary.conf; do
	[ -e "$f" ] || fail "not installed: $f"
done
grep -qx 'ExecStart=/usr/bin/colovm run --config /etc/colovm/%i.conf' /usr/lib/systemd/system/colovm@.service ||
	fail "colovm@.service does not run the installed colovm"

# (Section 3's bridge to an uplink is colovm-net's, tested in e2e.colovm-net:
# here each host's tap carries the client's address itself, as in deploy/demo.)
say "3. Networks: host A and host B (namespaces), the pair's link, the witness's links"
for ns in A B; do
	ip netns add $ns
	ip -n $ns link set lo up
	ip -n $ns tuntap add dev tap0 mode tap
	ip -n $ns addr add 10.0.0.1/24 dev tap0 # the clients' side of the guest's LAN
	ip -n $ns link set tap0 up
done
ip link add pair-a netns A type veth peer name pair-b netns B
ip -n A addr add 192.168.77.1/24 dev pair-a
ip -n B addr add 192.168.77.2/24 dev pair-b
ip -n A link set pair-a up
ip -n B link set pair-b up
ip link add wit-a type veth peer name wit netns A
ip link add wit-b type veth peer name wit netns B
ip addr add 192.168.78.1/24 dev wit-a
ip addr add 192.168.79.1/24 dev wit-b
ip link set wit-a up
ip link set wit-b up
ip -n A addr add 192.168.78.2/24 dev wit
ip -n B addr add 192.168.79.2/24 dev wit
for ns in A B; do ip -n $ns link set wit up; done

say "4. Keys and configs, from the installed examples"
mkdir -p /etc/colovm /var/lib/colovm/kv
install -m 644 "$TESTGUEST" /var/lib/colovm/kv/testguest.elf
head -c32 /dev/urandom >/etc/colovm/peer.key
chmod 600 /etc/colovm/peer.key
ex=/usr/share/doc/colovm/examples
cp $ex/witness.conf /etc/colovm/witness.conf
# Two hosts' VMs on one machine: the VM names (kva on A, kvb on B) keep
# their QMP sockets and consoles apart. The rest is the examples' own.
sed 's/kv\.\(qmp\|console\)/kva.\1/' $ex/primary.conf >/etc/colovm/kva.conf
sed 's/kv\.\(qmp\|console\)/kvb.\1/' $ex/secondary.conf >/etc/colovm/kvb.conf
# Section 6: A's metrics, the example's commented line turned on.
sed -i 's|^# metrics = tcp:127.0.0.1:9100$|metrics = tcp:127.0.0.1:9100|' /etc/colovm/kva.conf
grep -qx 'metrics = tcp:127.0.0.1:9100' /etc/colovm/kva.conf || fail "primary.conf has no metrics line to turn on"
for c in witness kva kvb; do
	colovm check-config /etc/colovm/$c.conf >/tmp/check.out 2>&1 ||
		fail "colovm check-config /etc/colovm/$c.conf: $(cat /tmp/check.out)"
done
# check-config can fail: a bad value is named with its line.
sed 's/^mem = 64$/mem = lots/' /etc/colovm/kva.conf >/tmp/bad.conf
! colovm check-config /tmp/bad.conf >/tmp/check.out 2>&1 || fail "check-config passed mem = lots"
grep -q "bad.conf:[0-9]*:" /tmp/check.out || fail "check-config's error has no line number: $(cat /tmp/check.out)"
# Each VM on its host (a namespace here) and, as the guide says of COLO
# VMs, no automatic restart.
for vm in kva:A kvb:B; do
	mkdir -p "/etc/systemd/system/colovm@${vm%:*}.service.d"
	printf '[Service]\nNetworkNamespacePath=/run/netns/%s\nRestart=no\n' "${vm#*:}" \
		>"/etc/systemd/system/colovm@${vm%:*}.service.d/host.conf"
done
systemctl daemon-reload

say "5. Start: the witness, B (--no-block: it waits for A), then A (ready once protected)"
timeout 60 systemctl start colovm-witness || fail "colovm-witness did not start"
systemctl start --no-block colovm@kvb
wait_for 60 "B's QMP socket" test -S /run/colovm/kvb.qmp
unit_is colovm@kvb activating ||
	fail "B is $(systemctl show -p ActiveState --value colovm@kvb) before its primary came, not activating"
t=$SECONDS
timeout 180 systemctl start colovm@kva || fail "systemctl start colovm@kva"
echo "ok: systemctl start colovm@kva returned after $((SECONDS - t)) s"
is_state /run/colovm/kva.qmp "primary protected" || fail "A is ready but $(state_of /run/colovm/kva.qmp)"
wait_for 30 "B active (paired)" unit_is colovm@kvb active
is_state /run/colovm/kvb.qmp "secondary protected" || fail "B: $(state_of /run/colovm/kvb.qmp)"
echo "ok: both units active; A primary protected, B secondary protected"

say "6. Watch: colo-status, the journal's fields, the metrics"
colovmctl --qmp /run/colovm/kva.qmp colo-status | head -6
journalctl -u colovm@kva -o verbose COLOVM_EVENT=pair-formed | grep -q 'COLOVM_VM=kva' ||
	fail "no pair-formed event with COLOVM_VM=kva in A's journal"
echo "ok: the journal has A's pair-formed event"
# Prometheus' view (its own parser, python3-prometheus-client), from A's namespace
ip netns exec A /usr/bin/python3 - <<'PY' || fail "A's metrics (above)"
import urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:9100/metrics", timeout=20).read().decode()
v = {}
for f in text_string_to_metric_families(text):
    for s in f.samples:
        v[(s.name, tuple(sorted(s.labels.items())))] = s.value
assert v.get(("colovm_colo_state", (("state", "protected"),))) == 1, "colovm_colo_state not protected"
assert v.get(("colovm_colo_role", (("role", "primary"),))) == 1, "colovm_colo_role not primary"
n = sum(x for (name, _), x in v.items() if name == "colovm_checkpoints_total")
assert n >= 1, "no checkpoints counted"
print("ok: A's metrics: protected, primary, %d checkpoints" % n)
PY

say "a client on host A writes through the pair"
out=$(kv A "SET city Lisbon" "INCR visits" "INCR visits" "INCR visits") || fail "the client on A: $out"
[ "$(echo "$out" | tail -1)" = 3 ] || fail "the KV guest answered: $out"
# The watchdog is fed: the units have lived past WatchdogSec (10 s).
[ "$(systemctl show -p WatchdogUSec --value colovm@kva)" = 10s ] || fail "colovm@kva: WatchdogUSec not 10s"
sleep "$((12 - (SECONDS - t) > 0 ? 12 - (SECONDS - t) : 0))"
for u in colovm@kva colovm@kvb colovm-witness; do
	unit_is $u active || fail "$u not active past its WatchdogSec"
done
echo "ok: units active past WatchdogSec"

say "7. Drill: colovmctl drill failover"
got=0
colovmctl drill failover --primary /run/colovm/kva.qmp --secondary /run/colovm/kvb.qmp >/tmp/drill.out 2>&1 ||
	got=$?
cat /tmp/drill.out
[ $got = 0 ] || fail "the drill exited $got"
grep -qx 'VERDICT: PASS' /tmp/drill.out || fail "the drill's verdict is not PASS"
wait_for 20 "colovm@kva failed" systemctl is-failed --quiet colovm@kva
[ "$(systemctl show -p NRestarts --value colovm@kva)" = 0 ] || fail "the killed primary was restarted"
unit_is colovm@kvb active || fail "B's unit is not active after the failover"
is_state /run/colovm/kvb.qmp "none unprotected" || is_state /run/colovm/kvb.qmp "primary unprotected" ||
	fail "B after the failover: $(state_of /run/colovm/kvb.qmp)"
journalctl -u colovm@kvb -o verbose COLOVM_EVENT=failover | grep -q 'COLOVM_ROLE=' ||
	fail "journalctl -u colovm@kvb COLOVM_EVENT=failover: nothing"
echo "ok: PASS; A's unit failed and stayed down (Restart=no), B's active, its failover in the journal"
out=$(kv B "GET city" "GET visits") || fail "the client on B: $out"
[ "$out" = "$(printf 'Lisbon\n3')" ] || fail "B's guest after the takeover answered: $out"
echo "ok: the writes acknowledged through the pair are there on B"

say "8. Re-protect: a secondary on host A, attached from the survivor B"
sed -e 's/kv\.\(qmp\|console\)/kva2.\1/' -e 's/^listen = tcp:192.168.77.2:4500$/listen = tcp:192.168.77.1:4500/' \
	-e 's/^witness = tcp:192.168.79.1:4600$/witness = tcp:192.168.78.1:4600/' $ex/secondary.conf >/etc/colovm/kva2.conf
colovm check-config /etc/colovm/kva2.conf >/tmp/check.out 2>&1 || fail "kva2.conf: $(cat /tmp/check.out)"
mkdir -p /etc/systemd/system/colovm@kva2.service.d
cp /etc/systemd/system/colovm@kva.service.d/host.conf /etc/systemd/system/colovm@kva2.service.d/
systemctl daemon-reload
systemctl start --no-block colovm@kva2
wait_for 60 "A's new secondary listening" test -S /run/colovm/kva2.qmp
colovmctl --qmp /run/colovm/kvb.qmp colo-protect uri=tcp:192.168.77.1:4500 >/tmp/protect.out 2>&1 ||
	fail "colo-protect: $(cat /tmp/protect.out)"
wait_for 120 "B protected again" is_state /run/colovm/kvb.qmp "primary protected"
wait_for 30 "colovm@kva2 active" unit_is colovm@kva2 active
out=$(kv B "INCR visits") || fail "the client on B: $out"
[ "$out" = 4 ] || fail "after re-protect the guest answered: $out"
echo "ok: B primary protected with A's colovm@kva2; the guest answers through the pair"

say "5 (Pacemaker). The witness owned by Pacemaker instead of colovm-witness.service"
# A one-node cluster for the test: no fencing device, no quorum to wait for,
# a DC elected at once (a seeded CIB: pcs is not installed here). Then the
# resource as the guide's cibadmin line makes it, with the state file the
# unit used (the grants go on).
systemctl stop colovm-witness
mkdir -p /var/lib/pacemaker/cib
cat >/var/lib/pacemaker/cib/cib.xml <<'EOF'
<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="o-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="o-quorum" name="no-quorum-policy" value="ignore"/>
        <nvpair id="o-deadtime" name="dc-deadtime" value="1s"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
    <constraints/>
  </configuration>
  <status/>
</cib>
EOF
chown -R hacluster:haclient /var/lib/pacemaker/cib
chmod 600 /var/lib/pacemaker/cib/cib.xml
timeout 60 systemctl start corosync pacemaker || fail "corosync/pacemaker did not start"
wait_for 60 "a Pacemaker DC" sh -c 'crm_mon -1 | grep -q "Current DC: node1"'
cibadmin --create -o resources --xml-text '<primitive id="witness" class="ocf" provider="colovm" type="colovm-witness">
  <instance_attributes id="witness-params">
    <nvpair id="witness-config" name="config" value="/etc/colovm/witness.conf"/>
    <nvpair id="witness-state" name="state" value="/var/lib/colovm/witness.state"/>
  </instance_attributes>
  <operations><op id="witness-monitor" name="monitor" interval="2s" timeout="20s"/></operations>
</primitive>' || fail "cibadmin --create the witness resource"
running_witness() { crm_mon -1 2>/dev/null | grep -qE "witness.*\(ocf:colovm:colovm-witness\):[[:space:]]+Started node1"; }
wait_for 60 "the witness resource running" running_witness
wpid=$(pgrep -f "colovm witness --config /etc/colovm/witness.conf") || fail "no witness process under Pacemaker"
echo "ok: Pacemaker runs the witness (pid $wpid)"
kill -KILL "$wpid"
failcount_is_1() { crm_failcount --query -r witness -N node1 2>&1 | grep -qE 'value=1([^0-9]|$)'; }
wait_for 60 "the witness's fail-count 1 (its monitor saw it gone)" failcount_is_1
wait_for 60 "the witness resource started again" running_witness
wpid2=$(pgrep -f "colovm witness --config /etc/colovm/witness.conf") || fail "no witness process after the restart"
[ "$wpid2" != "$wpid" ] || fail "the witness's pid is still $wpid"
echo "ok: the killed witness was seen by its monitor and started again (fail-count 1, pid $wpid2)"
say "7. Drill: link-cut, with the Pacemaker-owned witness (run in host B's namespace)"
got=0
ip netns exec B colovmctl drill link-cut --primary /run/colovm/kvb.qmp --secondary /run/colovm/kva2.qmp \
	--link pair-b >/tmp/drill.out 2>&1 || got=$?
cat /tmp/drill.out
[ $got = 0 ] || fail "the link-cut drill exited $got"
grep -qx 'VERDICT: PASS' /tmp/drill.out || fail "the link-cut drill's verdict is not PASS"
[ "$(state_of /run/colovm/kva2.qmp | cut -d' ' -f2)" = fenced ] || fail "A's secondary after the cut: $(state_of /run/colovm/kva2.qmp)"
out=$(kv B "GET visits") || fail "the client on B: $out"
[ "$out" = 4 ] || fail "B's guest after the cut answered: $out"
echo "ok: PASS: B granted by the witness and serving, A's secondary fenced"
say "PASS"
