#!/bin/bash
# Bad input through a COLO pair. The channel runs through a proxy
# (colo-proxy.py) that, once the pair has made a few checkpoints, breaks it
# in the middle of one:
#   corrupt  one bit flipped in a checkpoint's pages (bulk stream)
#   replay   an earlier CheckpointRequest frame sent again, MAC intact
#   cut      the stream truncated half-way through a checkpoint's pages and
#            every connection closed
# Each time the secondary refuses with a message naming the cause and drops
# the half-received checkpoint; its guest (app=dirty, which checks each
# page's previous contents before it rewrites it) runs on from the last
# complete checkpoint with no verification failure, printing the very lines
# the primary's printed (they depend on the data written only): nothing was
# half-applied. The primary leaves COLO, says why, and its guest keeps
# running. Neither crashes. (An unauthenticated or wrongly keyed primary is
# e2e.colo-refuse's.)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
head -c32 /dev/urandom >"$TMP/key"
args=(--kernel "$TESTGUEST" --mem 32 --cmdline "app=dirty mb=8 rate=2" --peer-key "$TMP/key")
port=$((45000 + RANDOM % 400 * 4))

# lines FILE: the distinct whole dirty lines (not the one the guest may be
# printing at this very moment); last_t FILE: the t of the last one
full="^dirty: t=[0-9]+ written=[0-9]+ checksum=[0-9a-f]{16}"$'\r'"?\$"
lines() { grep -E "$full" "$1" | sort -u; }
# upto T: the lines (on stdin) of t <= T
upto() { awk -v t="$1" '{ split($2, a, "="); if (a[2] + 0 <= t) print }'; }
last_t() { { grep -E "$full" "$1" || echo "dirty: t=0 "; } | tail -n1 | sed 's/^dirty: t=\([0-9]*\) .*/\1/'; }

scenario() { # NAME SECONDARY-LOG-REGEX
	local n=$1 re=$2 d=$TMP/$1 sp=$port pp=$((port + 1)) n0 end pid upto
	port=$((port + 2))
	mkdir -p "$d"
	note "$n"
	python3 "$SRC/tests/e2e/colo-proxy.py" $pp $sp "$d/arm" >"$d/proxy.out" 2>&1 &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
	wait_for_line "$d/proxy.out" '^listening' 30 || fail "$n: the proxy does not listen: $(cat "$d/proxy.out")"
	start_secondary "$d" $sp "${args[@]}"
	start_primary "$d" pri $pp "${args[@]}"
	wait_state "$d/pri.sock" protected 180 ||
		fail "$n: no pair: $(q "$d/pri.sock" query-colo-status) $(cat "$d/pri.err" "$d/sec.err")"
	q "$d/pri.sock" migrate-set-parameters checkpoint-interval=300 >/dev/null
	end=$((SECONDS + 120))
	until [ "$(q "$d/pri.sock" query-colo-stats | jq_ 'd["checkpoints"]')" -ge 4 ]; do
		[ $SECONDS -lt $end ] || fail "$n: fewer than 4 checkpoints in 120 s"
		sleep 0.3
	done
	echo "$n" >"$d/arm.tmp" && mv "$d/arm.tmp" "$d/arm"
	wait_state "$d/pri.sock" unprotected 60 ||
		fail "$n: the primary is still $(colo_state "$d/pri.sock") ($(cat "$d/proxy.out"))"
	note "$n: proxy: $(cat "$d/proxy.out")"
	note "$n: primary: $(q "$d/pri.sock" query-colo-status | jq_ 'd["reason"]')"
	wait_for_line "$d/sec.err" 'the pair broke' 30 ||
		fail "$n: the secondary did not notice: $(tail -5 "$d/sec.err")"
	grep -qE "$re" "$d/sec.err" || fail "$n: the secondary does not say '$re': $(tail -5 "$d/sec.err")"
	grep -q 'dropped half-way' "$d/sec.err" ||
		fail "$n: the secondary did not drop a half checkpoint: $(tail -5 "$d/sec.err")"
	note "$n: secondary: $(grep -E 'dropped half-way|the pair broke' "$d/sec.err" | tr '\n' ' ')"
	# Both guests run on for more than a pass over their 8 MiB (4 s): every
	# page rewritten, each checked against the pass before.
	n0=$(last_t "$d/sec.out")
	end=$((SECONDS + 90))
	until [ "$(last_t "$d/sec.out")" -ge $((n0 + 6)) ] && [ "$(last_t "$d/pri.out")" -ge $((n0 + 6)) ]; do
		[ $SECONDS -lt $end ] || fail "$n: a guest stopped after the break (t=$n0)"
		sleep 0.5
	done
	! grep -q 'verify failed' "$d/sec.out" "$d/pri.out" ||
		fail "$n: a guest found a page it did not write: $(grep -h 'verify failed' "$d"/*.out)"
	# the secondary's lines, past the break too, are the primary's, as far
	# as both have printed (each runs on at its own pace)
	upto=$(last_t "$d/pri.out")
	[ "$(last_t "$d/sec.out")" -ge "$upto" ] || upto=$(last_t "$d/sec.out")
	comm -23 <(lines "$d/sec.out" | upto "$upto") <(lines "$d/pri.out") >"$d/extra"
	[ ! -s "$d/extra" ] || fail "$n: the secondary's guest printed lines the primary's did not: $(head -3 "$d/extra")"
	q "$d/pri.sock" query-colo-status | grep -q '"unprotected"' || fail "$n: primary state"
	q "$d/sec.sock" query-colo-status | grep -q '"unprotected"' || fail "$n: secondary state"
	quit_split "$d/pri" "$d/sec"
}

scenario corrupt 'bad MAC|bad frame'
scenario replay 'bad frame from .*(MAC, sequence or format)'
scenario cut 'the primary went away'
echo "PASS"
