# Helpers for the COLO e2e tests (sourced after lib.sh; not a test itself).
CTL=${COLOVMCTL:?}
# The pair's channel: scheme and host (the port is per test).
CHAN=${CHAN:-tcp:127.0.0.1}

# A failure shows the end of each colovm's log and guest console.
fail() {
	local f p st
	echo "FAIL: $*" >&2
	for p in ${PRI_PID:-} ${SEC_PID:-}; do
		kill -0 "$p" 2>/dev/null && continue
		st=0
		wait "$p" 2>/dev/null || st=$?
		echo "== process $p has ended, status $st" >&2
	done
	for f in "$TMP"/*.err "$TMP"/*.out "$TMP"/*.raw "$TMP"/*/*.err "$TMP"/*/*.out; do
		[ -e "$f" ] || continue
		echo "== $f" >&2
		# a sanitizer's report whole (its first frames say where), else the end
		if grep -q 'ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$f"; then
			grep -B5 -A60 -m1 'ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer' "$f" >&2
		else
			tail -20 "$f" >&2
		fi
	done
	exit 1
}

# q SOCK ARGS...: one QMP command, its "return" as JSON on stdout.
q() { "$CTL" --qmp "$1" "${@:2}"; }
# jq_ EXPR: a Python expression on the JSON object d read from stdin.
jq_() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
colo_state() { q "$1" query-colo-status | jq_ 'd["state"]'; }
# wait_state SOCK STATE SECONDS
wait_state() {
	local end=$((SECONDS + $3))
	while [ "$(colo_state "$1" 2>/dev/null)" != "$2" ]; do
		sleep 0.5
		[ $SECONDS -ge $end ] && return 1
	done
	return 0
}
# start_secondary DIR PORT ARGS...: a COLO secondary listening on PORT.
start_secondary() {
	local d=$1 port=$2
	shift 2
	"$COLOVM" run "$@" --colo secondary --listen $CHAN:$port \
		--serial file:"$d/sec.out" --qmp unix:"$d/sec.sock",server 2>"$d/sec.err" &
	SEC_PID=$!
	on_exit "kill -9 $SEC_PID 2>/dev/null"
	wait_for_line "$d/sec.err" 'waiting for a primary' 20 ||
		fail "the secondary does not listen: $(cat "$d/sec.err")"
}
# start_primary DIR NAME PORT ARGS...
start_primary() {
	local d=$1 n=$2 port=$3
	shift 3
	"$COLOVM" run "$@" --colo primary --peer $CHAN:$port \
		--serial file:"$d/$n.out" --qmp unix:"$d/$n.sock",server 2>"$d/$n.err" &
	PRI_PID=$!
	on_exit "kill -9 $PRI_PID 2>/dev/null"
	local t=0
	while [ ! -S "$d/$n.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -S "$d/$n.sock" ] || fail "$n: no QMP socket: $(cat "$d/$n.err")"
}
# start_secondary_config DIR CONF / start_primary_config DIR NAME CONF: the
# same, from a config file alone (`colovm run --config CONF`, no other flag):
# CONF names the role, the channel, serial file:DIR/sec.out (DIR/NAME.out)
# and QMP unix:DIR/sec.sock (DIR/NAME.sock); write_config writes one.
start_secondary_config() {
	"$COLOVM" run --config "$2" 2>"$1/sec.err" &
	SEC_PID=$!
	on_exit "kill -9 $SEC_PID 2>/dev/null"
	wait_for_line "$1/sec.err" 'waiting for a primary' 20 ||
		fail "the secondary does not listen: $(cat "$1/sec.err")"
}
start_primary_config() {
	local d=$1 n=$2 t=0
	"$COLOVM" run --config "$3" 2>"$d/$n.err" &
	PRI_PID=$!
	on_exit "kill -9 $PRI_PID 2>/dev/null"
	while [ ! -S "$d/$n.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -S "$d/$n.sock" ] || fail "$n: no QMP socket: $(cat "$d/$n.err")"
}
# write_config FILE DIR NAME ROLE URI [KEY = VALUE...]: a VM config for a
# side of a pair: the test guest (ARGS_CONFIG: more [vm] lines), serial
# and QMP as start_*_config expect, [colo] role, peer or listen URI, then
# the extra [colo] lines given.
ARGS_CONFIG=""
write_config() {
	local f=$1 d=$2 n=$3 role=$4 uri=$5 l
	shift 5
	{
		echo "# $n: written by colo-lib.bash write_config"
		echo "[vm]"
		echo "kernel = $TESTGUEST"
		printf '%s' "$ARGS_CONFIG"
		echo "serial = file:$d/$n.out"
		echo "qmp = unix:$d/$n.sock,server"
		echo "[colo]"
		echo "role = $role"
		if [ "$role" = primary ]; then echo "peer = $uri"; else echo "listen = $uri"; fi
		for l in "$@"; do echo "$l"; done
	} >"$f"
}
# quit_split PRI SEC: after a pair broke, both sides run alone: quit each
# (PRI.sock, SEC.sock), wait for PRI_PID and SEC_PID, no crash in their logs.
quit_split() {
	q "$1.sock" quit >/dev/null || true
	q "$2.sock" quit >/dev/null || true
	wait_exit $PRI_PID 30 || true
	wait_exit $SEC_PID 30 || true
	no_crash "$1.err" "$2.err"
}
no_crash() { # FILE...
	! grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' "$@" ||
		fail "a sanitizer report or crash in $*"
}

# two_hosts NSP NSS: two "hosts", network namespaces with a tap0
# (10.0.0.1/24, the client's side of its guest's tap) each, joined by a veth
# (192.168.77.1 in NSP, .2 in NSS) that carries the pair's channel.
two_hosts() {
	local ns
	for ns in "$1" "$2"; do
		ip netns add "$ns"
		on_exit "ip netns del $ns"
		ip -n "$ns" link set lo up
		# (connections from here take local ports above the 44000-50000 the
		# tests listen on: a drill's 100th listener found its port in use)
		ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="50000 60999"
		ip -n "$ns" tuntap add dev tap0 mode tap
		ip -n "$ns" addr add 10.0.0.1/24 dev tap0
		ip -n "$ns" link set tap0 up
	done
	ip link add vp-$$ netns "$1" type veth peer name vs-$$ netns "$2"
	ip -n "$1" addr add 192.168.77.1/24 dev vp-$$
	ip -n "$2" addr add 192.168.77.2/24 dev vs-$$
	ip -n "$1" link set vp-$$ up
	ip -n "$2" link set vs-$$ up
}

# compare_digests DIR N SECS [EVERY]: with x-colo-ram-digest on, for N
# checkpoints the secondary's guest RAM right after it applied checkpoint K
# hashes like the primary's in the pause of K (DIR/pri.sock, DIR/sec.sock);
# every EVERY-th one is asked for (x-colo-checkpoint), the others periodic.
# Sets LAST to the last checkpoint compared.
# compare_digests DIR N SECONDS [EVERY]: RAM (and replicated disks') digests
# of N checkpoints equal on both sides; PSOCK/SSOCK override DIR/pri.sock
# and DIR/sec.sock.
# pages_differ PSOCK SSOCK DIR ID: after a digest mismatch at checkpoint ID,
# which pages differ (each side's page hashes at that checkpoint; the last 8
# are kept): "N pages differ at checkpoint ID: PAGE..." (a page is its index
# in guest RAM: GPA / 4096 below the 1 GiB region boundaries)
pages_differ() {
	local ps=$1 ss=$2 d=$3 id=$4
	q "$ps" x-colo-ram-digest id="$id" pages-file="$d/pri.pages" >/dev/null 2>"$d/pages.err" &&
		q "$ss" x-colo-ram-digest id="$id" pages-file="$d/sec.pages" >/dev/null 2>>"$d/pages.err" ||
		{ echo "no page hashes of checkpoint $id on both sides: $(cat "$d/pages.err")"; return; }
	diff <(tail -n +2 "$d/pri.pages") <(tail -n +2 "$d/sec.pages") | sed -n 's/^< \([0-9a-f]*\) .*/0x\1/p' >"$d/pages.diff"
	echo "$(wc -l <"$d/pages.diff") pages differ at checkpoint $id: $(head -20 "$d/pages.diff" | tr '\n' ' ')"
}

compare_digests() {
	local d=$1 n=$2 end=$((SECONDS + $3)) every=${4:-0} compared=0 r id pd sd t
	local ps=${PSOCK:-$1/pri.sock} ss=${SSOCK:-$1/sec.sock} dig='"(disk-)?digest": "[0-9a-f]+"'
	LAST=0
	while [ $compared -lt "$n" ]; do
		[ $SECONDS -lt $end ] || fail "only $compared checkpoints compared in $3 s"
		[ "$every" -gt 0 ] && [ $((compared % every)) = 1 ] &&
			q "$ps" x-colo-checkpoint >/dev/null
		r=$(q "$ps" x-colo-ram-digest 2>/dev/null) || { sleep 0.2; continue; }
		# (grep, not python: this loop runs under TCG and must keep up)
		id=$(echo "$r" | grep -oE '"id": [0-9]+' | grep -oE '[0-9]+$')
		[ "$id" -gt "$LAST" ] || { sleep 0.1; continue; }
		pd=$(echo "$r" | grep -oE "$dig" | tr '\n' ' ')
		sd="" t=0
		while [ -z "$sd" ] && [ $t -lt 100 ]; do
			sd=$(q "$ss" x-colo-ram-digest id="$id" 2>/dev/null |
				grep -oE "$dig" | tr '\n' ' ') || sd=""
			[ -n "$sd" ] || sleep 0.1
			t=$((t + 1))
		done
		[ -n "$sd" ] || fail "the secondary has no digest for checkpoint $id: $(tail -5 "$d/sec.err")"
		[ "$pd" = "$sd" ] || fail "checkpoint $id: primary $pd, secondary $sd; $(pages_differ "$ps" "$ss" "$d" "$id")"
		compared=$((compared + 1))
		LAST=$id
	done
}

# net_pair NAME CMDLINE: on two_hosts $NSP $NSS, a secondary in NSS, then its
# primary in NSP, app CMDLINE with a NIC on each host's tap0, over the veth
# (port: $port + 1, and up); waits for protection and the guest's network.
# Files $TMP/NAME-{pri,sec}.{sock,err,out}; PIDs PRI_PID, SEC_PID.
# Extra flags for each side: the arrays PAIR_PRI_ARGS and PAIR_SEC_ARGS.
PAIR_PRI_ARGS=() PAIR_SEC_ARGS=()
net_pair() {
	local n=$1 args=(--kernel "$TESTGUEST" --mem 32 --cmdline "$2" --net tap=tap0
		--peer-key "$TMP/key")
	port=$((port + 1))
	ip netns exec $NSS "$COLOVM" run "${args[@]}" "${PAIR_SEC_ARGS[@]}" --colo secondary \
		--listen tcp:192.168.77.2:$port --serial file:"$TMP/$n-sec.out" \
		--qmp unix:"$TMP/$n-sec.sock",server 2>"$TMP/$n-sec.err" &
	SEC_PID=$!
	on_exit "kill -9 $SEC_PID 2>/dev/null"
	wait_for_line "$TMP/$n-sec.err" 'waiting for a primary' 20 ||
		fail "$n: the secondary does not listen: $(cat "$TMP/$n-sec.err")"
	ip netns exec $NSP "$COLOVM" run "${args[@]}" "${PAIR_PRI_ARGS[@]}" --colo primary \
		--peer tcp:192.168.77.2:$port --serial file:"$TMP/$n-pri.out" \
		--qmp unix:"$TMP/$n-pri.sock",server 2>"$TMP/$n-pri.err" &
	PRI_PID=$!
	on_exit "kill -9 $PRI_PID 2>/dev/null"
	wait_for_line "$TMP/$n-pri.out" '^net: up ' 30 || fail "$n: no 'net: up' from the primary's guest"
	wait_state "$TMP/$n-pri.sock" protected 180 ||
		fail "$n: no pair: $(q "$TMP/$n-pri.sock" query-colo-status) $(cat "$TMP/$n-pri.err" "$TMP/$n-sec.err")"
	note "$n: paired"
}

# lan_vm NAME TAP [ARGS...]: colovm NAME in the network namespace $NS (the
# one-LAN tests: bridge_ns), ${ARGS[@]} and ARGS, its NIC on TAP with MAC
# $MAC; files $TMP/NAME.{sock,err,out}; its PID (colovm itself: ip netns
# exec execs it, so SIGKILL reaches it) in PID_NAME, read with pid NAME.
# Returns once its QMP socket is there.
lan_vm() {
	local n=$1 tap=$2 t=0
	shift 2
	ip netns exec "$NS" "$COLOVM" run "${ARGS[@]}" --net tap=$tap,mac=$MAC "$@" \
		--serial file:"$TMP/$n.out" --qmp unix:"$TMP/$n.sock",server 2>"$TMP/$n.err" &
	eval "PID_$n=$!"
	on_exit "kill -9 $! 2>/dev/null"
	while [ ! -S "$TMP/$n.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -S "$TMP/$n.sock" ] || fail "$n: no QMP socket: $(cat "$TMP/$n.err")"
}
pid() { eval "echo \$PID_$1"; }

# drill KIND REPORT [ARGS...]: colovmctl drill KIND --json ARGS..., its
# report in REPORT (stderr in REPORT.err); sets DRILL_ST to its exit status.
drill() {
	DRILL_ST=0
	"$CTL" drill "$1" --json "${@:3}" >"$2" 2>"$2.err" || DRILL_ST=$?
	[ "$DRILL_ST" != 2 ] || fail "colovmctl drill $1 refused: $(cat "$2.err")"
	note "drill $1: $(jq_ '" ".join(str(x) for x in (d["verdict"], d["reason"], "takeover", d["takeover-ms"], "ms, serving", d["serving"]))' <"$2")"
}
# report REPORT EXPR: EXPR (Python, on the report d) of a drill's report
report() { jq_ "$2" <"$1"; }
# drill_pass REPORT SURVIVOR MIN MAX: the drill passed (exit 0, VERDICT
# PASS), SURVIVOR (primary/secondary) alone serves, unprotected and
# running, and took over MIN <= ms < MAX after the action.
drill_pass() {
	local got want="PASS ['$2'] unprotected running True"
	[ "$DRILL_ST" = 0 ] || fail "the drill failed ($DRILL_ST): $(cat "$1" "$1.err")"
	got=$(report "$1" '" ".join(str(x) for x in (d["verdict"], d["serving"], d["'"$2"'"]["state"], d["'"$2"'"]["run-state"], '"$3"' <= d["takeover-ms"] < '"$4"'))')
	[ "$got" = "$want" ] || fail "drill report: '$got', expected '$want': $(cat "$1")"
}

# app=blk loop=1 guests (the disk tests): the passes a guest completed, by
# its console OUT; the last one's number; go_on OUT N: N more passes within
# 120 s, none failed.
passes() { cat "$1" 2>/dev/null | grep -c '^blk: pass [0-9]* ok' || true; }
last_pass() { sed -n 's/^blk: pass \([0-9]*\) ok.*/\1/p' "$1" | tail -n 1; }
go_on() {
	local n0 end=$((SECONDS + 120))
	n0=$(passes "$1")
	until [ "$(passes "$1")" -ge $((n0 + $2)) ]; do
		! grep -q 'verify failed\|error' "$1" || fail "$1: $(grep 'verify failed\|error' "$1")"
		[ $SECONDS -lt $end ] || fail "$1: fewer than $2 passes in 120 s"
		sleep 0.2
	done
	! grep -q 'verify failed\|error' "$1" || fail "$1: $(grep 'verify failed\|error' "$1")"
}
