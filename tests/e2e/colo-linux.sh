#!/bin/bash
# Debian's Linux (tests/guest/linux: 2 vCPUs, 256 MiB, virtio-net) as a
# protected guest. Two "hosts" (network namespaces joined by a veth, the
# pair's channel on it), each with a tap for its guest; the client is the
# primary host's side of its tap. The guest boots as a plain VM on the
# primary host and is protected from QMP (colo-protect) while it serves;
# then, through the pair: curl gets the index page and /cgi-bin/whoami (busybox
# httpd: its answers carry a Date: header, output that may differ between
# the copies), 64 KiB come back through the TCP echo service, and the KV
# service passes a model check. The primary's comparator saw the secondary's
# answers, checkpoints went by, none failed, the pair is still protected, the
# secondary's own tap heard nothing from its guest.
# Its disk is replicated (--disk PATH,replicate; ext4 made by the guest on
# the primary's first boot, copied by the first sync): a file is written and
# synced through the pair, the primary is SIGKILLed, the secondary takes
# over; its image, stopped as a crash would stop it, replays its journal to
# a clean ext4 (e2fsck) holding the file byte for byte. (Asking the taken-
# over guest itself, through its serial shell, passed once and once got no
# answer in 60 s: an open question, see the session notes.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
source "$SRC/tests/guest/linux/vm.sh"
lg_need_vmm colovm
need_netns
lg_build
NSP=colovm-lp-$$ NSS=colovm-ls-$$
port=$((49100 + RANDOM % 800))
d=$TMP
head -c32 /dev/urandom >"$d/key"

two_hosts $NSP $NSS
LG_NSX="ip netns exec $NSP"
truncate -s 32M "$d/pri.img" "$d/sec.img"

lg_start sec colovm ns=$NSS tap=tap0 disk="$d/sec.img,replicate" shutdown_timeout=30 -- \
	--peer-key "$d/key" --colo secondary --listen tcp:192.168.77.2:$port
wait_for_line "$d/sec.raw" 'waiting for a primary' 30 ||
	fail "the secondary does not listen: $(cat "$d/sec.raw")"
lg_start pri colovm ns=$NSP tap=tap0 disk="$d/pri.img,replicate" -- --peer-key "$d/key"
lg_wait_up pri 300
note "the guest is up after $(lg_elapsed_ms pri) ms; colo-protect"
t0=$SECONDS
# (a heartbeat that the TCG host VM's stalls of a second or so do not trip:
# two Linux guests on its two vCPUs)
lg_qmp pri migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 >/dev/null
lg_qmp pri colo-protect uri=tcp:192.168.77.2:$port >/dev/null || fail "colo-protect refused"
end=$((SECONDS + 300))
until [ "$(colo_state "$d/pri.qmp")" = protected ]; do
	[ $SECONDS -lt $end ] && [ "$(colo_state "$d/pri.qmp")" != unprotected ] ||
		fail "no pair: $(q "$d/pri.qmp" query-colo-status)"
	sleep 0.5
done
note "protected after $((SECONDS - t0)) s: $(q "$d/pri.qmp" query-colo-status)"
# Under TCG a Linux guest's checkpoint pause is long: one a second.
q "$d/pri.qmp" migrate-set-parameters checkpoint-interval=1000 >/dev/null

$LG_NSX curl -sf -m 30 http://10.0.0.2/ >"$d/index.html" ||
	fail "curl http://10.0.0.2/ through the pair failed"
grep -q '<h1>linuxguest</h1>' "$d/index.html" || fail "index page: $(cat "$d/index.html")"
[ "$(lg_whoami pri cpus)" = 2 ] || fail "whoami through the pair: cpus is not 2"
[ "$(lg_whoami pri name)" = pri ] || fail "whoami through the pair: wrong name"
head -c 65536 /dev/urandom >"$d/echo.in"
$LG_NSX timeout 60 nc -N 10.0.0.2 7 <"$d/echo.in" >"$d/echo.out" || true
cmp -s "$d/echo.in" "$d/echo.out" ||
	fail "echo through the pair: $(stat -c %s "$d/echo.out") of 65536 bytes came back equal"
$LG_NSX python3 "$SRC/tests/guest/tools/kvclient.py" --host 10.0.0.2 --ops 300 --conns 2 ||
	fail "KV service through the pair: model check failed"
note "curl, echo 64 KiB and a KV model check (300 ops) through the pair passed"

stats=$(q "$d/pri.qmp" query-colo-stats)
note "primary: $stats"
note "secondary: $(q "$d/sec.qmp" query-colo-stats | jq_ 'd["network"]')"
ok=$(echo "$stats" | jq_ '(d["checkpoints"] >= 2 and d["failed"] == 0
	and d["network"]["compared"] > 0 and d["network"]["mirrored"] > 0
	and d["network"]["released"] == d["network"]["compared"]
	    + d["network"]["released-checkpoint"] + d["network"]["released-unverified"])')
[ "$ok" = True ] || fail "the pair did not compare, checkpoint or release as it should"
q "$d/pri.qmp" query-colo-status | grep -q '"protected"' || fail "no longer protected"
leaked=$(ip netns exec $NSS cat /sys/class/net/tap0/statistics/rx_packets)
[ "$leaked" = 0 ] || fail "the secondary's guest sent $leaked frames to its own wire"

# The disk: a file written and synced through the pair...
lg_sh pri "dd if=/dev/urandom of=/data/blob bs=4096 count=256 2>/dev/null; md5sum /data/blob >/data/blob.md5; sync" 120 >/dev/null
n0=$(q "$d/pri.qmp" query-colo-stats | jq_ 'd["checkpoints"]')
end=$((SECONDS + 120))
until [ "$(q "$d/pri.qmp" query-colo-stats | jq_ 'd["checkpoints"]')" -ge $((n0 + 2)) ]; do
	[ $SECONDS -lt $end ] || fail "no checkpoint after the write"
	sleep 0.5
done
note "disk: primary $(q "$d/pri.qmp" query-colo-stats | jq_ 'd["disk"]')"
# ... the primary dies: the secondary takes over with it.
kill -9 "${lg_pid[pri]}"
wait_state "$d/sec.qmp" unprotected 60 || fail "the secondary did not take over: $(q "$d/sec.qmp" query-colo-status)"
note "the secondary took over: $(q "$d/sec.qmp" query-colo-status | jq_ 'd["reason"]')"
# The image the secondary serves from (its overlay merged at the takeover):
# stopped as a crash would stop it, it is a consistent ext4 (the journal
# replays, then e2fsck finds nothing) holding the file written through the
# pair, byte for byte.
kill -9 "${lg_pid[sec]}"
lg_status sec 10
cp --sparse=always "$d/sec.img" "$d/check.img"
st=0
e2fsck -fy "$d/check.img" >"$d/fsck1.out" 2>&1 || st=$?
[ $st -le 1 ] || fail "e2fsck -fy (journal replay): status $st: $(cat "$d/fsck1.out")"
e2fsck -fn "$d/check.img" >"$d/fsck.out" 2>&1 || fail "e2fsck -fn after the replay: $(cat "$d/fsck.out")"
sum=$(debugfs -R 'cat /blob' "$d/check.img" 2>/dev/null | md5sum | cut -d' ' -f1)
grep -q "^$sum " <(debugfs -R 'cat /blob.md5' "$d/check.img" 2>/dev/null) ||
	fail "the image's /blob ($sum) does not match its md5: $(debugfs -R 'cat /blob.md5' "$d/check.img" 2>&1)"
note "the secondary's image: e2fsck clean after the journal replay, /blob intact ($sum)"
lg_status pri 5
no_crash "$d/pri.raw" "$d/sec.raw"
echo "PASS"
