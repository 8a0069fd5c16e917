#!/bin/bash
# Replicated disks (--disk PATH,replicate): a protected guest that rewrites
# and verifies its disk (app=blk loop=1: 4 MiB per pass, every pass a new
# pattern, read back after a flush) through checkpoints, two failovers and a
# re-protect.
#  1. A (primary, an 8 MiB image of random bytes) and B (secondary, an empty
#     image of the same size) pair: the first sync copies A's image into B's
#     while A's guest writes. At 5 checkpoints B's image equals A's byte for
#     byte (XXH3 of both at the commit point: x-colo-ram-digest's
#     disk-digest), as their RAM does.
#  2. A is SIGKILLed in the middle of a pass: B takes over; its guest goes on
#     writing and verifying (the primary's writes after the last checkpoint
#     dropped, B's own since merged in), no verify failure.
#  3. B cannot protect itself with a secondary whose image is smaller
#     (refused, both say why); colo-protect on B with a fresh C (empty image)
#     copies B's image while its guest writes; 2 checkpoints' digests equal.
#  4. B is SIGKILLed: C takes over, its guest verifies pass after pass.
#  5. Offline: C's image holds, past the guest's 4 MiB, the random bytes A
#     started with (copied twice, never written by a guest).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
d=$TMP
base=$((44000 + RANDOM % 900))
head -c32 /dev/urandom >"$d/key"
head -c 8M /dev/urandom >"$d/a.img"
truncate -s 8M "$d/b.img" "$d/c.img"
truncate -s 4M "$d/small.img"
args=(--kernel "$TESTGUEST" --mem 16 --cmdline "app=blk mb=4 loop=1" --peer-key "$d/key")
# the passes a guest completed, by its console
passes() { grep -c '^blk: pass [0-9]* ok' "$1" 2>/dev/null || true; }
# go_on OUT N: N more passes on the console OUT, none failed
go_on() {
	local n0 end=$((SECONDS + 120))
	n0=$(passes "$1")
	until [ "$(passes "$1")" -ge $((n0 + $2)) ]; do
		grep -q 'verify failed\|error' "$1" && fail "$1: $(grep 'verify failed\|error' "$1")"
		[ $SECONDS -lt $end ] || fail "$1: fewer than $2 passes in 120 s"
		sleep 0.5
	done
	! grep -q 'verify failed\|error' "$1" || fail "$1: $(grep 'verify failed\|error' "$1")"
}
# a secondary, in its own dir: sec.* there
secondary() { # DIR PORT IMAGE
	mkdir -p "$1"
	start_secondary "$1" "$2" "${args[@]}" --disk "$3",replicate
}

# protect SOCK PORT: colo-protect with a heartbeat that the TCG host VM's
# stalls do not trip, and a digest at every checkpoint
protect() {
	q "$1" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 \
		checkpoint-interval=300 x-colo-ram-digest=true >/dev/null
	q "$1" colo-protect uri=$CHAN:"$2" >/dev/null || fail "colo-protect on $1 refused"
}
# paired SOCK: protected within 240 s, failing at once if the pair broke
paired() {
	local st end=$((SECONDS + 240))
	until st=$(colo_state "$1") && [ "$st" = protected ]; do
		[ "$st" != unprotected ] && [ $SECONDS -lt $end ] ||
			fail "$1: no pair: $(q "$1" query-colo-status)"
		sleep 0.5
	done
}

# 1. A + B
secondary "$d/b" $((base + 1)) "$d/b.img"
B_PID=$SEC_PID
"$COLOVM" run "${args[@]}" --disk "$d/a.img",replicate \
	--serial file:"$d/a.out" --qmp unix:"$d/a.sock",server 2>"$d/a.err" &
A_PID=$! PRI_PID=$!
on_exit "kill -9 $A_PID 2>/dev/null"
t=0
while [ ! -S "$d/a.sock" ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
protect "$d/a.sock" $((base + 1))
paired "$d/a.sock"
PSOCK=$d/a.sock SSOCK=$d/b/sec.sock compare_digests "$d" 5 300 2
note "A/B: 5 checkpoints, RAM and disk digests equal (last $LAST)"
pst=$(q "$d/a.sock" query-colo-stats | jq_ 'd["disk"]')
sst=$(q "$d/b/sec.sock" query-colo-stats | jq_ 'd["disk"]')
note "A disk: $pst; B disk: $sst"
echo "$pst" | grep -qE "'sync-bytes': ([89][0-9]{6}|[0-9]{8,})," || fail "A's image was not copied: $pst"
echo "$pst" | grep -qE "'write-bytes': [1-9]" || fail "A sent no write: $pst"
echo "$sst" | grep -qE "'applied-bytes': [1-9]" || fail "B applied no write: $sst"

# 2. A dies in the middle of a pass: B serves, its guest's disk holds.
sleep "0.$((RANDOM % 9 + 1))"
kill -9 $A_PID
wait_state "$d/b/sec.sock" unprotected 30 ||
	fail "B did not take over: $(q "$d/b/sec.sock" query-colo-status)"
note "B took over: $(q "$d/b/sec.sock" query-colo-status | jq_ 'd["reason"]')"
grep -q 'merged into the images' "$d/b/sec.err" || fail "B merged no overlay: $(tail -5 "$d/b/sec.err")"
go_on "$d/b/sec.out" 2
note "B's guest: $(passes "$d/b/sec.out") passes, none failed"

# 3. B protects itself: not with a smaller image; with C, while its guest writes.
secondary "$d/r" $((base + 9)) "$d/small.img"
protect "$d/b/sec.sock" $((base + 9))
wait_for_line "$d/r/sec.err" 'refused to pair: the primary.s VM has disk0=8388608,replicate, this one disk0=4194304,replicate' 60 ||
	fail "the smaller image was not refused: $(cat "$d/r/sec.err")"
t=0
until q "$d/b/sec.sock" query-colo-status | grep -q 'disk0=4194304'; do
	[ $t -lt 50 ] || fail "B does not say why: $(q "$d/b/sec.sock" query-colo-status)"
	sleep 0.2
	t=$((t + 1))
done
note "refused: $(q "$d/b/sec.sock" query-colo-status | jq_ 'd["reason"]')"
kill -9 $SEC_PID
secondary "$d/c" $((base + 2)) "$d/c.img"
C_PID=$SEC_PID
protect "$d/b/sec.sock" $((base + 2))
paired "$d/b/sec.sock"
PSOCK=$d/b/sec.sock SSOCK=$d/c/sec.sock compare_digests "$d" 2 300 2
note "B/C: 2 checkpoints, RAM and disk digests equal (last $LAST)"

# 4. B dies: C serves.
sleep "0.$((RANDOM % 9 + 1))"
kill -9 $B_PID
wait_state "$d/c/sec.sock" unprotected 30 ||
	fail "C did not take over: $(q "$d/c/sec.sock" query-colo-status)"
go_on "$d/c/sec.out" 2
note "C's guest: $(passes "$d/c/sec.out") passes, none failed"

# 5. Offline: what no guest wrote came through both first syncs intact.
q "$d/c/sec.sock" quit >/dev/null || true
wait $C_PID 2>/dev/null || true
cmp <(tail -c 4M "$d/a.img") <(tail -c 4M "$d/c.img") ||
	fail "C's image differs from A's past the guest's 4 MiB"
no_crash "$d"/*.err "$d"/*/sec.err
