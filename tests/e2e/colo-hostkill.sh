#!/bin/bash
# Failover when the primary's whole host dies: the host VM that runs the
# primary colovm is killed outright (its qemu SIGKILLed: the host loses
# power, nothing of it says goodbye), and the secondary's heartbeat must
# notice the silence and take over.
#
# Two host VMs (tests/hostvm: qemu TCG with nested SVM, Debian's kernel, 1
# vCPU and 1 GiB each) joined by a link (a qemu UDP socket netdev). In each,
# tests/e2e/hostkill-agent.bash (driven through files in the host VM's
# control share, which is uncached: what one side writes the other reads at
# once) bridges the link and the guest's tap (br0), so
# the two guests (app=kv, the same MAC) and the client share one Ethernet;
# the replication channel is on the same link (10.9.0.1 and .2). Host B runs
# the client (tests/guest/tools/kvclient.py: 4 connections kept from start to
# end, every answer checked against its own history) and the copy that
# survives; the "A" side is the one killed, DRILLS times (default 2):
#   drill 1: A primary, B secondary; A's host killed: B takes over;
#   drill k: a fresh host VM A_k waits as a secondary; B protects its guest
#            with it (colo-protect), then hands it over (migrate --continue:
#            A_k primary, B its standby); A_k's host killed: B takes over.
# Per drill: the heartbeat's silence at the takeover (B's log), the time from
# the kill to B's COLO_EXIT event seen from outside (polled every 50 ms over
# the shared folder: +-0.1 s), and the client must go on. At the end the
# client ends cleanly: no wrong answer, no connection lost.
# The channel: tcp:, or CHAN=rdma (Soft-RoCE on each host's br0: the pages go
# as RDMA WRITEs in UDP across the link; the rxe counters of the survivor are
# checked at the end).
# Heartbeat 200 ms x 10: a TCG host VM stalls for hundreds of ms at times, and
# a shorter one split the pair with no host dead.
#
# Runs natively (it starts its own host VMs); root and qemu needed.
: "${COLOVM:?}" "${TESTGUEST:?}"
. "$(dirname "$0")/lib.sh"
need_root
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing (deploy/install-deps installs it)"
HOSTVM=$SRC/tests/hostvm
AGENT=$SRC/tests/e2e/hostkill-agent.bash
CTL=${COLOVMCTL:?}
DRILLS=${DRILLS:-2}
CHAN=${CHAN:-tcp}
export CHAN # (for the agents: hostvm passes the environment)
P=$((20000 + RANDOM % 20000)) # the link: UDP ports P (the A side), P+1 (B)
MAC=52:54:00:12:34:58
HB=(--heartbeat-interval 200 --heartbeat-misses 10)
VM=(--kernel "$TESTGUEST" --mem 32 --cmdline app=kv --net tap=tap0,mac=$MAC)
T0=$SECONDS
note() { echo "--- [$((SECONDS - T0)) s] $*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The agent's files: HD (inside the host VM) is $(hd NAME) outside.
HD=/run/hostvm/hk
hd() { echo "$TMP/vm-$1/ctl/hk"; }
fail_show() { # WHY NAME...: the end of those hosts' logs, then fail
	local n f
	for n in "${@:2}"; do
		for f in "$(hd "$n")"/colovm.err "$(hd "$n")"/kv.out "$(hd "$n")"/ready.err \
			"$TMP/vm-$n/console.log" "$TMP/vm-$n.start"; do
			[ -e "$f" ] && { echo "== $n: $f" >&2; tail -15 "$f" >&2; }
		done
	done
	fail "$1"
}

# host_up NAME L P IP [CLIENT_IP]: host VM NAME (state $TMP/vm-NAME, agent
# dir $TMP/NAME) on link ports L (its own) and P (its peer's)
host_up() {
	local n=$1
	on_exit "$HOSTVM kill $TMP/vm-$n 2>/dev/null"
	"$HOSTVM" start "$TMP/vm-$n" --mem 1024 --cpus 1 --link "$2:$3" --ip "${4%/*}/24" \
		--quiet-timeout 1200 -- bash "$AGENT" "$HD" "$4" "${5:-}" >"$TMP/vm-$n.start" 2>&1 ||
		fail "hostvm start $n: $(cat "$TMP/vm-$n.start")"
}
host_ready() { # NAME
	local end=$((SECONDS + 240))
	until [ -e "$(hd "$1")/ready" ]; do
		[ -e "$(hd "$1")/ready.err" ] && fail_show "host $1: $(cat "$(hd "$1")/ready.err")" "$1"
		[ $SECONDS -lt $end ] || fail_show "host $1 did not come up in 240 s" "$1"
		sleep 0.5
	done
	note "host $1 is up"
}
# on NAME CMD: run the shell command CMD in host NAME (its agent), print its
# output, return its status (120 s at most)
on() {
	local d n end=$((SECONDS + 120))
	d=$(hd "$1")
	n=$(($(cat "$d/n" 2>/dev/null || echo 0) + 1))
	echo $n >"$d/n"
	printf '%s\n' "$2" >"$d/cmd.$n.tmp"
	mv "$d/cmd.$n.tmp" "$d/cmd.$n"
	until [ -s "$d/rc.$n" ]; do
		[ $SECONDS -lt $end ] || { echo "no answer from host $1 in 120 s" >&2; return 124; }
		sleep 0.05
	done
	cat "$d/out.$n"
	return "$(cat "$d/rc.$n")"
}
qin() { on "$1" "$CTL --qmp /run/hk/q.sock ${*:2}"; }
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
state_in() { qin "$1" query-colo-status 2>/dev/null | jq_ 'd["mode"] + " " + d["state"]' 2>/dev/null; }
wait_state_in() { # NAME "MODE STATE" SECONDS
	local end=$((SECONDS + $3))
	until [ "$(state_in "$1")" = "$2" ]; do
		[ $SECONDS -lt $end ] || fail_show "$1 is not '$2' after $3 s: $(qin "$1" query-colo-status 2>&1)" "$1" b
		sleep 0.5
	done
}
# colovm_in NAME ARGS...: colovm in host NAME (its log colovm.err), and a
# watcher of its QMP events (events), in the agent's folder
colovm_in() {
	local n=$1
	shift
	on "$n" "$COLOVM run ${VM[*]} $* --serial file:/run/hk/g.out --qmp unix:/run/hk/q.sock,server \
		2>>$HD/colovm.err </dev/null & echo \$! >/run/hk/pid
		for i in \$(seq 100); do [ -S /run/hk/q.sock ] && break; sleep 0.1; done
		[ -S /run/hk/q.sock ] || exit 1
		$CTL --qmp /run/hk/q.sock --watch >$HD/events 2>/dev/null </dev/null &" >/dev/null ||
		fail_show "colovm does not start in $n" "$n"
}
B=$(hd b) # the client's host, the survivor
progress() { cat "$B/kv.progress" 2>/dev/null || echo 0; }
client_go() { # WHAT: 40 more ops within 120 s
	local n0 end=$((SECONDS + 120))
	n0=$(progress)
	until [ "$(progress)" -ge $((n0 + 40)) ]; do
		[ ! -e "$B/kv.rc" ] || fail_show "the client ended $1: $(cat "$B/kv.out")" b
		[ $SECONDS -lt $end ] || fail_show "the client is stuck $1 (op $n0)" b a1
		sleep 0.3
	done
	note "the client goes on $1 ($(progress) ops)"
}

# ---- the hosts, the first pair, the client -----------------------------------
host_up b $((P + 1)) $P 10.9.0.2/24 10.0.0.1/24
host_up a1 $P $((P + 1)) 10.9.0.1/24
host_ready b
host_ready a1
colovm_in b --colo secondary --listen $CHAN:10.9.0.2:4500 "${HB[*]}"
wait_for_line "$B/colovm.err" 'waiting for a primary' 60 || fail_show "B does not listen" b
colovm_in a1 --colo primary --peer $CHAN:10.9.0.2:4500 "${HB[*]}"
wait_state_in a1 "primary protected" 300
note "a1 primary, b secondary: protected"
# (the guest answers on the LAN before the client starts)
on b "for i in \$(seq 60); do ping -c1 -W1 10.0.0.2 >/dev/null && exit 0; done; exit 1" >/dev/null ||
	fail_show "the guest does not answer pings from host b" b a1
on b "(python3 $SRC/tests/guest/tools/kvclient.py --conns 4 --ops 100 --keys 50 --prefix hk- \
	--seed $RANDOM --timeout 60 --rate 20 --until $HD/stop --progress $HD/kv.progress \
	>$HD/kv.out 2>&1; echo \$? >$HD/kv.rc) </dev/null >/dev/null 2>&1 &" >/dev/null
client_go "with a1 primary"

results=()
for ((k = 1; k <= DRILLS; k++)); do
	a=a$k
	if [ $k -gt 1 ]; then
		# a fresh host, protected by B, then handed the guest
		host_up $a $P $((P + 1)) 10.9.0.1/24
		host_ready $a
		colovm_in $a --colo secondary --listen $CHAN:10.9.0.1:4500 "${HB[*]}"
		wait_for_line "$(hd $a)/colovm.err" 'waiting for a primary' 60 || fail_show "$a does not listen" $a
		qin b colo-protect uri=$CHAN:10.9.0.1:4500 >/dev/null || fail_show "colo-protect on B refused" b
		wait_state_in b "primary protected" 300
		client_go "with b protected by $a"
		qin b migrate --continue $CHAN:10.9.0.2:4500 $CHAN:10.9.0.1:4500 >"$TMP/cont.$k" 2>&1 ||
			fail_show "migrate --continue B -> $a: $(tr '\r' '\n' <"$TMP/cont.$k" | tail -3)" b $a
		wait_state_in $a "primary protected" 120
		wait_state_in b "secondary protected" 120
		note "$a primary, b its standby (migrate --continue)"
		client_go "with $a primary"
	fi
	exits=$(grep -c '"COLO_EXIT"' "$B/events" 2>/dev/null || true)
	sleep 0.$((RANDOM % 10))
	t_kill=$(now_ms)
	"$HOSTVM" kill "$TMP/vm-$a"
	note "drill $k: $a's host VM killed"
	until [ "$(grep -c '"COLO_EXIT"' "$B/events" 2>/dev/null || true)" -gt "$exits" ]; do
		[ $(($(now_ms) - t_kill)) -lt 30000 ] || fail_show "drill $k: B did not take over in 30 s" b $a
		sleep 0.05
	done
	t_seen=$(now_ms)
	[ "$(qin b query-status | jq_ 'd["status"]')" = running ] ||
		fail_show "drill $k: B's guest does not run after the takeover" b
	silent=$(grep -oE 'nothing from the primary for [0-9]+ ms' "$B/colovm.err" | tail -1 | grep -oE '[0-9]+ ms')
	[ -n "$silent" ] || fail_show "drill $k: B did not take over by its heartbeat" b
	note "drill $k: takeover seen $((t_seen - t_kill)) ms after the kill (heartbeat silence $silent)"
	results+=("$((t_seen - t_kill)) ${silent% ms}")
	client_go "after drill $k"
done

if [ "$CHAN" = rdma ]; then
	sent=$(on b "rdma statistic show link rxe0/1" | grep -oE " sent_pkts [0-9]+" | grep -oE '[0-9]+$')
	note "rxe0 on b: ${sent:-no} packets sent"
	[ "${sent:-0}" -gt 1000 ] || fail_show "b's rxe device counted ${sent:-no} packets: not RDMA" b
fi
touch "$B/stop"
end=$((SECONDS + 120))
until [ -s "$B/kv.rc" ]; do
	[ $SECONDS -lt $end ] || fail_show "the client does not end" b
	sleep 0.5
done
[ "$(cat "$B/kv.rc")" = 0 ] || fail_show "the client failed: $(cat "$B/kv.out")" b
note "client: $(tail -1 "$B/kv.out")"
! grep -qE 'AddressSanitizer|runtime error' "$TMP"/vm-*/ctl/hk/colovm.err || fail_show "a sanitizer report" b
for r in "${results[@]}"; do echo "drill: kill to takeover ${r% *} ms, heartbeat silence ${r#* } ms"; done
echo "PASS: colo-hostkill: $DRILLS host VMs killed, B took over each time ($((SECONDS - T0)) s)"
