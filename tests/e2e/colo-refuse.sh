#!/bin/bash
# A COLO secondary refuses primaries it must not pair with: more RAM, more
# vCPUs, another key, a witness it does not have. Each time both sides say why, the primary's guest runs
# on unprotected (query-colo-status "unprotected" with the reason) and the
# secondary goes on waiting; a matching primary then pairs with it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
port=$((48000 + RANDOM % 90))
d=$TMP
head -c32 /dev/urandom >"$d/key"
head -c32 /dev/urandom >"$d/other.key"
base=(--kernel "$TESTGUEST" --cmdline "app=dirty mb=4 rate=1")

start_secondary "$d" $port "${base[@]}" --mem 32 --cpus 1 --peer-key "$d/key"

refused() { # NAME PRIMARY-ERR-REGEX SECONDARY-ERR-REGEX ARGS...
	local n=$1 pre=$2 sre=$3
	shift 3
	start_primary "$d" "$n" $port "${base[@]}" "$@"
	wait_state "$d/$n.sock" unprotected 60 ||
		fail "$n: not refused: $(q "$d/$n.sock" query-colo-status) $(cat "$d/$n.err")"
	local st
	st=$(q "$d/$n.sock" query-colo-status)
	echo "$st" | grep -qE "$pre" || fail "$n: query-colo-status: $st"
	grep -qE "$pre" "$d/$n.err" || fail "$n: the primary's log does not say why: $(cat "$d/$n.err")"
	wait_for_line "$d/sec.err" "$sre" 20 ||
		fail "$n: the secondary's log does not say why: $(cat "$d/sec.err")"
	# The primary's guest runs on.
	wait_for_line "$d/$n.out" '^dirty: t=2 ' 60 || fail "$n: the primary's guest stopped"
	q "$d/$n.sock" query-status | grep -q '"running"' || fail "$n: the primary is not running"
	echo "$st" | grep -q '"mode": "none"' || fail "$n: mode is not none: $st"
	kill -0 "$SEC_PID" 2>/dev/null || fail "$n: the secondary died: $(cat "$d/sec.err")"
	q "$d/sec.sock" query-colo-status | grep -q '"waiting"' || fail "$n: the secondary does not wait"
	note "$n: primary: $(grep -m1 'COLO' "$d/$n.err")"
	q "$d/$n.sock" quit >/dev/null || true
	wait_exit $PRI_PID 20 || true
	no_crash "$d/$n.err"
}

refused mem 'secondary refused to pair: the primary.s VM has 64 MiB of RAM, this one 32' \
	'refused to pair: the primary.s VM has 64 MiB of RAM, this one 32' --mem 64 --cpus 1 --peer-key "$d/key"
refused cpus 'refused to pair: the primary.s VM has cpus=2, this one cpus=1' \
	'refused to pair: the primary.s VM has cpus=2, this one cpus=1' --mem 32 --cpus 2 --peer-key "$d/key"
refused key 'different --peer-key' "refused a primary: the primary's key differs" \
	--mem 32 --cpus 1 --peer-key "$d/other.key"
refused nokey 'different --peer-key' "refused a primary: the primary's key differs" --mem 32 --cpus 1
# a witness on one side only: a cut link could leave two copies serving
refused witness 'the primary has a witness, this secondary has none' \
	'refused to pair: the primary has a witness, this secondary has none' \
	--mem 32 --cpus 1 --peer-key "$d/key" --witness tcp:127.0.0.1:9

# The secondary survived them all: the right primary pairs.
start_primary "$d" good $port "${base[@]}" --mem 32 --cpus 1 --peer-key "$d/key"
wait_state "$d/good.sock" protected 120 ||
	fail "good: no pair: $(q "$d/good.sock" query-colo-status) $(cat "$d/good.err" "$d/sec.err")"
q "$d/sec.sock" query-colo-status | grep -q '"protected"' || fail "the secondary is not protected"
no_crash "$d/sec.err"
echo PASS
