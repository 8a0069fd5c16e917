# Shared by the COLO benchmarks: two "hosts" (network namespaces joined by a
# veth, 192.168.77.1 and .2, the pair's channel on it), each with a tap0
# (10.0.0.1) for its guest, the client on the primary host's side of its
# tap; and QEMU 7.2's own COLO on them (the baseline). Sourced, not run.

# bench_two_hosts PREFIX: the namespaces ($NSP, $NSS), $tmp (with a key),
# $port, pids=() killed at exit.
bench_two_hosts() {
	tmp=$(mktemp -d)
	NSP=$1p-$$ NSS=$1s-$$
	port=$((47000 + RANDOM % 500))
	pids=()
	cleanup() {
		for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
		ip netns del $NSP 2>/dev/null || true
		ip netns del $NSS 2>/dev/null || true
		rm -rf "$tmp"
	}
	trap cleanup EXIT
	for ns in $NSP $NSS; do
		ip netns add $ns
		ip -n $ns link set lo up
		ip -n $ns tuntap add dev tap0 mode tap
		ip -n $ns addr add 10.0.0.1/24 dev tap0
		ip -n $ns link set tap0 up
	done
	ip link add vp-$$ netns $NSP type veth peer name vs-$$ netns $NSS
	ip -n $NSP addr add 192.168.77.1/24 dev vp-$$
	ip -n $NSS addr add 192.168.77.2/24 dev vs-$$
	ip -n $NSP link set vp-$$ up
	ip -n $NSS link set vs-$$ up
	head -c32 /dev/urandom >"$tmp/key"
}

wait_line() { # FILE REGEX SECS
	local end=$((SECONDS + $3))
	until grep -qE "$2" "$1" 2>/dev/null; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.1
	done
}

# QEMU 7.2's COLO, as its docs/COLO-FT.txt sets it up (no disk: no block
# replication), on QEMU microvm with the same guest.
# PIN_P and PIN_S (arrays) prefix the primary's and the secondary's command.
QEMU=(qemu-system-x86_64 -M microvm -accel kvm -cpu host -m 64 -nodefaults -no-user-config
	-nographic -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$TESTGUEST")
qmp() { # SOCK JSON...: each command in turn; fails on an error reply
	python3 - "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
json.loads(f.readline())
for c in [{"execute": "qmp_capabilities"}] + [json.loads(a) for a in sys.argv[2:]]:
    f.write(json.dumps(c) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            break
    if "error" in r:
        sys.exit("%s: %s" % (c["execute"], r["error"]))
    if c["execute"] != "qmp_capabilities":
        print(json.dumps(r.get("return")))
PY
}
# qemu_qcow2 SIZE FILE...: empty qcow2 images, made by a QEMU of no machine
# with blockdev-create (qemu-img, in qemu-utils, is not among our packages)
qemu_qcow2() {
	local size=$1 f n=0 c=() pid end
	shift
	for f; do
		: >"$f"
		c+=('{"execute": "blockdev-add", "arguments": {"driver": "file", "filename": "'"$f"'", "node-name": "f'$n'"}}'
			'{"execute": "blockdev-create", "arguments": {"job-id": "c'$n'", "options": {"driver": "qcow2", "file": "f'$n'", "size": '"$size"'}}}')
		n=$((n + 1))
	done
	rm -f "$tmp/img.sock"
	"${QEMU[0]}" -M none -nodefaults -display none -qmp unix:"$tmp/img.sock",server=on,wait=off &
	pid=$!
	end=$((SECONDS + 20))
	until [ -S "$tmp/img.sock" ]; do [ $SECONDS -lt $end ] || break; sleep 0.1; done
	# (the jobs run on after their command's reply: wait for all to conclude)
	qmp "$tmp/img.sock" "${c[@]}" >/dev/null &&
		until qmp "$tmp/img.sock" '{"execute": "query-jobs"}' >"$tmp/jobs" &&
			! grep -o '"status": "[a-z]*"' "$tmp/jobs" | grep -qv concluded; do
			[ $SECONDS -lt $end ] || break
			sleep 0.1
		done
	qmp "$tmp/img.sock" '{"execute": "quit"}' >/dev/null 2>&1 || kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	grep -q '"status": "concluded"' "$tmp/jobs" && ! grep -q '"error"' "$tmp/jobs" ||
		{ echo "qcow2 images not made: $(cat "$tmp/jobs")" >&2; return 1; }
}
# qemu_colo_start CMDLINE [IMAGE]: a QEMU COLO pair of the test guest,
# running CMDLINE, in state "colo"; QMP at $tmp/p.sock (and pw.sock, for
# events) and $tmp/s.sock; their pids in pids[0] (primary) and pids[1].
# With IMAGE (raw) the guest gets a virtio-blk disk that QEMU's block
# replication protects (docs/COLO-FT.txt, docs/block-replication.txt): on
# the primary a quorum of IMAGE and, from before the migrate, the
# secondary's copy over NBD (node replication0); on the secondary the copy
# ($tmp/s-disk.img, exported as parent0) under a hidden and an active qcow2
# that take its own guest's writes between checkpoints.
qemu_colo_start() {
	local cmdline=$1 img=${2:-} p=$((port + 10)) net=(-netdev tap,id=hn0,ifname=tap0,script=no,downscript=no,vhost=off
		-device virtio-net-device,netdev=hn0,mac=52:54:00:12:34:56) pdisk=() sdisk=()
	port=$((port + 20))
	rm -f "$tmp"/*.sock "$tmp"/*.out
	if [ -n "$img" ]; then
		# replication copies nothing at its start: the two images must be
		# equal then, so the primary waits paused (-S) until its quorum has
		# the NBD child (its migrate starts it)
		cp "$img" "$tmp/s-disk.img"
		qemu_qcow2 "$(stat -c %s "$img")" "$tmp/hidden.qcow2" "$tmp/active.qcow2" || return 1
		pdisk=(-S -drive if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.driver=raw,children.0.file.filename="$img"
			-device virtio-blk-device,drive=colo-disk0)
		sdisk=(-drive if=none,id=parent0,driver=raw,file.filename="$tmp/s-disk.img"
			-drive if=none,id=childs0,driver=replication,mode=secondary,top-id=colo-disk0,file.driver=qcow2,file.file.filename="$tmp/active.qcow2",file.backing.driver=qcow2,file.backing.file.filename="$tmp/hidden.qcow2",file.backing.backing=parent0
			-drive if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0=childs0
			-device virtio-blk-device,drive=colo-disk0)
	fi
	ip netns exec $NSP "${PIN_P[@]}" "${QEMU[@]}" -append "$cmdline" "${net[@]}" "${pdisk[@]}" -serial file:"$tmp/p.out" \
		-qmp unix:"$tmp/p.sock",server=on,wait=off -qmp unix:"$tmp/pw.sock",server=on,wait=off \
		-chardev socket,id=mirror0,host=192.168.77.1,port=$((p + 3)),server=on,wait=off \
		-chardev socket,id=compare1,host=192.168.77.1,port=$((p + 4)),server=on,wait=on \
		-chardev socket,id=compare0,host=127.0.0.1,port=$((p + 1)),server=on,wait=off \
		-chardev socket,id=compare0-0,host=127.0.0.1,port=$((p + 1)) \
		-chardev socket,id=compare_out,host=127.0.0.1,port=$((p + 5)),server=on,wait=off \
		-chardev socket,id=compare_out0,host=127.0.0.1,port=$((p + 5)) \
		-object filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0 \
		-object filter-redirector,netdev=hn0,id=redire0,queue=rx,indev=compare_out \
		-object filter-redirector,netdev=hn0,id=redire1,queue=rx,outdev=compare0 \
		-object iothread,id=iothread1 \
		-object colo-compare,id=comp0,primary_in=compare0-0,secondary_in=compare1,outdev=compare_out0,iothread=iothread1 \
		2>"$tmp/p.err" &
	pids+=($!)
	sleep 1
	ip netns exec $NSS "${PIN_S[@]}" "${QEMU[@]}" -append "$cmdline" "${net[@]}" -serial file:"$tmp/s.out" \
		-qmp unix:"$tmp/s.sock",server=on,wait=off \
		-chardev socket,id=red0,host=192.168.77.1,port=$((p + 3)),reconnect=1 \
		-chardev socket,id=red1,host=192.168.77.1,port=$((p + 4)),reconnect=1 \
		-object filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0 \
		-object filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1 \
		-object filter-rewriter,id=rew0,netdev=hn0,queue=all "${sdisk[@]}" \
		-incoming tcp:192.168.77.2:$((p + 8)) 2>"$tmp/s.err" &
	pids+=($!)
	# (with IMAGE the primary is paused: its guest boots at the migrate)
	[ -n "$img" ] || wait_line "$tmp/p.out" '^net: up ' 60 || { cat "$tmp/p.err" >&2; return 1; }
	local end=$((SECONDS + 20))
	until [ -S "$tmp/s.sock" ] && [ -S "$tmp/p.sock" ]; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
	if [ -n "$img" ]; then
		# block replication: the secondary's NBD server first, then the
		# primary's quorum gets its second child, before the migrate
		qmp "$tmp/s.sock" '{"execute": "nbd-server-start", "arguments": {"addr": {"type": "inet", "data": {"host": "192.168.77.2", "port": "'$((p + 9))'"}}}}' \
			'{"execute": "nbd-server-add", "arguments": {"device": "parent0", "writable": true}}' >/dev/null || return 1
		qmp "$tmp/p.sock" '{"execute": "blockdev-add", "arguments": {"driver": "replication", "node-name": "replication0", "mode": "primary", "file": {"driver": "nbd", "export": "parent0", "server": {"type": "inet", "host": "192.168.77.2", "port": "'$((p + 9))'"}}}}' \
			'{"execute": "x-blockdev-change", "arguments": {"parent": "colo-disk0", "node": "replication0"}}' >/dev/null || return 1
	fi
	qmp "$tmp/s.sock" '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "x-colo", "state": true}]}}' >/dev/null
	qmp "$tmp/p.sock" '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "x-colo", "state": true}]}}' \
		'{"execute": "migrate-set-parameters", "arguments": {"x-checkpoint-delay": 200}}' \
		'{"execute": "migrate", "arguments": {"uri": "tcp:192.168.77.2:'$((p + 8))'"}}' >/dev/null
	end=$((SECONDS + 120))
	until qmp "$tmp/p.sock" '{"execute": "query-migrate"}' | grep -q '"status": "colo"'; do
		[ $SECONDS -lt $end ] || { qmp "$tmp/p.sock" '{"execute": "query-migrate"}' >&2; return 1; }
		sleep 0.5
	done
}
qemu_stop() {
	qmp "$tmp/p.sock" '{"execute": "quit"}' >/dev/null 2>&1 || true
	qmp "$tmp/s.sock" '{"execute": "quit"}' >/dev/null 2>&1 || true
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	pids=()
}

# qemu_takeover: SIGKILL the QEMU COLO primary and at once tell the
# secondary `x-colo-lost-heartbeat` (QEMU has no heartbeat of its own: a
# person or a cluster manager must); prints the ms from the kill to the
# command's reply and to the secondary's COLO_EXIT event (its status is
# "running" throughout: COLO_EXIT, as colovm's, marks the takeover), and
# the event's reason.
qemu_takeover() {
	python3 - "$tmp/s.sock" "${pids[0]}" <<'PY'
import json, os, signal, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
f = s.makefile("rw")
json.loads(f.readline())
events = []
def cmd(c):
    f.write(json.dumps({"execute": c}) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            return r
        events.append((time.monotonic(), r))
cmd("qmp_capabilities")
mode = cmd("query-colo-status")["return"]["mode"]
if mode != "secondary":
    sys.exit("the QEMU secondary is not in COLO (mode %s)" % mode)
t0 = time.monotonic()
os.kill(int(sys.argv[2]), signal.SIGKILL)
r = cmd("x-colo-lost-heartbeat")
t1 = time.monotonic()
if "error" in r:
    sys.exit("x-colo-lost-heartbeat: %s" % r["error"])
while not any(e["event"] == "COLO_EXIT" for _, e in events):
    e = json.loads(f.readline())
    if "event" in e:
        events.append((time.monotonic(), e))
t2, e = next((t, e) for t, e in events if e["event"] == "COLO_EXIT")
print("%.1f %.1f %s" % ((t1 - t0) * 1000, (t2 - t0) * 1000, e["data"].get("reason")))
PY
}
