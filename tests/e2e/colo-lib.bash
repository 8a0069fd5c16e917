# Helpers for the COLO e2e tests (sourced after lib.sh; not a test itself).
CTL=${COLOVMCTL:?}

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
		[ -e "$f" ] && echo "== $f" >&2 && tail -20 "$f" >&2
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
	"$COLOVM" run "$@" --colo secondary --listen tcp:127.0.0.1:$port \
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
	"$COLOVM" run "$@" --colo primary --peer tcp:127.0.0.1:$port \
		--serial file:"$d/$n.out" --qmp unix:"$d/$n.sock",server 2>"$d/$n.err" &
	PRI_PID=$!
	on_exit "kill -9 $PRI_PID 2>/dev/null"
	local t=0
	while [ ! -S "$d/$n.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -S "$d/$n.sock" ] || fail "$n: no QMP socket: $(cat "$d/$n.err")"
}
no_crash() { # FILE...
	! grep -qE 'AddressSanitizer|runtime error|Segmentation|core dumped' "$@" ||
		fail "a sanitizer report or crash in $*"
}
