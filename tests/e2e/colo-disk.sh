#!/bin/bash
# A protected guest with a replicated disk (--disk PATH,replicate) that
# rewrites and verifies it (app=blk loop=1: 4 MiB per pass, a new pattern
# every pass, read back after a flush), through the loss of its secondary,
# a re-protect and the loss of its primary.
#  1. A runs plain (an 8 MiB image of random bytes); colo-protect with a bad
#     URI is refused; colo-protect with B (an empty image of the same size):
#     the first sync copies A's image while A's guest writes. At 3
#     checkpoints B's image equals A's byte for byte (XXH3 of both at the
#     commit point: x-colo-ram-digest's disk-digest), as their RAM does.
#  2. B is SIGKILLed (`colovmctl drill secondary-loss`, its report checked:
#     PASS, A alone serves; first the drill refuses swapped or repeated
#     sockets): A notices, says why (query-colo-status, its log),
#     leaves COLO, runs on unprotected writing its image alone, its guest
#     still verifying; x-colo-checkpoint is refused (not protected).
#  3. A cannot protect itself with a secondary whose image is smaller
#     (refused, both say why); a secondary F whose temporary space is
#     full (--disk-buffer-mem 0, TMPDIR on a 256 KiB tmpfs: A's writes
#     buffered there overflow it) pairs, then stands down saying so, never takes over, and A
#     leaves COLO and serves on; A can protect itself with a fresh C (empty image): its
#     image is copied again while its guest writes; 2 checkpoints' digests
#     equal.
#  4. A is SIGKILLed in the middle of a pass: C takes over, the primary's
#     writes after the last checkpoint dropped, C's own since merged into
#     its image; its guest goes on writing and verifying, no failure.
#  5. Offline: C's image holds, past the guest's 4 MiB, the random bytes A
#     started with (copied by the first sync, never written by a guest).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
need_root # (a tmpfs for the full temporary space)
d=$TMP
base=$((44000 + RANDOM % 900))
head -c32 /dev/urandom >"$d/key"
head -c 8M /dev/urandom >"$d/a.img"
truncate -s 8M "$d/b.img" "$d/c.img"
truncate -s 4M "$d/small.img"
args=(--kernel "$TESTGUEST" --mem 16 --cmdline "app=blk mb=4 loop=1" --peer-key "$d/key")
# secondary DIR PORT IMAGE [FLAG...]: a secondary in its own dir (sec.* there)
secondary() {
	mkdir -p "$1"
	start_secondary "$1" "$2" "${args[@]}" --disk "$3",replicate "${@:4}"
}
# protect PORT: colo-protect on A with a heartbeat that the TCG host VM's
# stalls do not trip, and a digest at every checkpoint
protect() {
	q "$d/a.sock" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 \
		checkpoint-interval=300 x-colo-ram-digest=true >/dev/null
	q "$d/a.sock" colo-protect uri=$CHAN:"$1" >/dev/null || fail "colo-protect refused"
}
# paired: A protected within 240 s, failing at once if the pair broke
paired() {
	local st end=$((SECONDS + 240))
	until st=$(colo_state "$d/a.sock") && [ "$st" = protected ]; do
		kill -0 "$A_PID" 2>/dev/null || { st=0; wait "$A_PID" || st=$?; fail "A is gone (status $st)"; }
		[ "$st" != unprotected ] && [ $SECONDS -lt $end ] ||
			fail "no pair: $(q "$d/a.sock" query-colo-status)"
		sleep 0.5
	done
}

# 1. A, plain, then protected by B
secondary "$d/b" $((base + 1)) "$d/b.img"
B_PID=$SEC_PID
"$COLOVM" run "${args[@]}" --disk "$d/a.img",replicate \
	--serial file:"$d/a.out" --qmp unix:"$d/a.sock",server 2>"$d/a.err" &
A_PID=$! PRI_PID=$!
on_exit "kill -9 $A_PID 2>/dev/null"
wait_for_line "$d/a.out" '^blk: pass 1 ok' 60 || fail "A's guest does not run: $(cat "$d/a.err")"
q "$d/a.sock" query-colo-status | grep -q '"state": "none"' || fail "a plain VM is not 'none'"
! q "$d/a.sock" colo-protect uri=tcp:nohost 2>"$d/bad.err" || fail "a bad URI was taken"
grep -q 'Invalid peer URI' "$d/bad.err" || fail "colo-protect bad URI: $(cat "$d/bad.err")"
protect $((base + 1))
paired
PSOCK=$d/a.sock SSOCK=$d/b/sec.sock compare_digests "$d" 3 300 2
note "A/B: 3 checkpoints, RAM and disk digests equal (last $LAST)"
pst=$(q "$d/a.sock" query-colo-stats | jq_ 'd["disk"]')
sst=$(q "$d/b/sec.sock" query-colo-stats | jq_ 'd["disk"]')
note "A disk: $pst; B disk: $sst"
echo "$pst" | grep -qE "'sync-bytes': ([89][0-9]{6}|[0-9]{8,})," || fail "A's image was not copied: $pst"
echo "$pst" | grep -qE "'write-bytes': [1-9]" || fail "A sent no write: $pst"
echo "$sst" | grep -qE "'applied-bytes': [1-9]" || fail "B applied no write: $sst"
# (a 4 MiB hot set: B's buffer stays in memory, nothing in its file)
echo "$sst" | grep -qE "'spilled-bytes': 0," || fail "B buffered in its file: $sst"

# 2. B dies (colovmctl drill secondary-loss: SIGKILL to B): A serves on
# alone. First the drill refuses sockets that are not this pair's sides
# in their roles, and kills nothing.
expect_status 2 "$CTL" drill failover --primary "$d/b/sec.sock" --secondary "$d/a.sock"
expect_status 2 "$CTL" drill secondary-loss --primary "$d/a.sock" --secondary "$d/a.sock"
kill -0 "$B_PID" || fail "a refused drill killed B"
r=$d/drill.json
drill secondary-loss "$r" --primary "$d/a.sock" --secondary "$d/b/sec.sock" --timeout 60
wait "$B_PID" 2>/dev/null || true
drill_pass "$r" primary 0 60000
got=$(report "$r" '(d["secondary"]["killed"], d["secondary"]["alive"], d["primary"]["colo-exit"]["mode"], d["before"]["checkpoints"] >= 3, sum(d["primary"]["failovers"].values()))')
[ "$got" = "(True, False, 'primary', True, 1)" ] || fail "the drill's report: $got: $(cat "$r")"
st=$(q "$d/a.sock" query-colo-status)
note "A: $st"
echo "$st" | grep -qE '"reason": "[^"]*secondary' || fail "no reason naming the secondary: $st"
echo "$st" | grep -q '"last-mode": "primary"' || fail "last-mode: $st"
grep -q 'protection lost' "$d/a.err" || fail "A's log does not say why: $(cat "$d/a.err")"
! q "$d/a.sock" x-colo-checkpoint 2>"$d/ck.err" || fail "x-colo-checkpoint accepted unprotected"
grep -q 'not protected' "$d/ck.err" || fail "x-colo-checkpoint: $(cat "$d/ck.err")"
go_on "$d/a.out" 1

# 3. A protects itself again: not with a smaller image; with C.
secondary "$d/r" $((base + 9)) "$d/small.img"
protect $((base + 9))
wait_for_line "$d/r/sec.err" 'refused to pair: the primary.s VM has disk0=8388608,replicate, this one disk0=4194304,replicate' 60 ||
	fail "the smaller image was not refused: $(cat "$d/r/sec.err")"
t=0
until q "$d/a.sock" query-colo-status | grep -q 'disk0=4194304'; do
	[ $t -lt 50 ] || fail "A does not say why: $(q "$d/a.sock" query-colo-status)"
	sleep 0.2
	t=$((t + 1))
done
note "refused: $(q "$d/a.sock" query-colo-status | jq_ 'd["reason"]')"
kill -9 $SEC_PID
# 3b. A secondary whose temporary space is full: its buffer of A's writes
# (none in memory: --disk-buffer-mem 0; an unlinked file in TMPDIR) cannot
# grow, so it stands down with the reason (never a takeover), and A serves
# on unprotected.
mkdir -p "$d/tiny"
mount -t tmpfs -o size=256k tiny "$d/tiny" || fail "cannot mount a tmpfs (needs root)"
on_exit "umount -l $d/tiny 2>/dev/null"
truncate -s 8M "$d/f.img"
TMPDIR=$d/tiny secondary "$d/f" $((base + 11)) "$d/f.img" --disk-buffer-mem 0
F_PID=$SEC_PID
protect $((base + 11))
wait_for_line "$d/f/sec.err" 'paired with' 240 || fail "F did not pair: $(tail -5 "$d/f/sec.err")"
st=0
wait_exit $F_PID 120 || st=$?
[ "$st" != 124 ] || fail "F did not stand down: $(tail -5 "$d/f/sec.err")"
grep -q "temporary space is full.*this side stands down" "$d/f/sec.err" ||
	fail "F does not say why it stood down: $(tail -5 "$d/f/sec.err")"
! grep -q 'taking over\|took over' "$d/f/sec.err" || fail "F took over: $(tail -5 "$d/f/sec.err")"
wait_state "$d/a.sock" unprotected 60 || fail "A did not notice: $(q "$d/a.sock" query-colo-status)"
st=$(q "$d/a.sock" query-colo-status)
# (A names the full space when F's Error is read before F's close resets
# the channel; otherwise the lost secondary)
echo "$st" | grep -qE 'temporary space is full|secondary' || fail "A's reason does not say why: $st"
note "F stood down: $(echo "$st" | jq_ 'd["reason"]')"
go_on "$d/a.out" 1
secondary "$d/c" $((base + 2)) "$d/c.img"
C_PID=$SEC_PID
protect $((base + 2))
paired
PSOCK=$d/a.sock SSOCK=$d/c/sec.sock compare_digests "$d" 2 300 2
note "A/C: 2 checkpoints, RAM and disk digests equal (last $LAST)"

# 4. A dies in the middle of a pass: C serves, its guest's disk holds.
sleep "0.$((RANDOM % 9 + 1))"
kill -9 $A_PID
wait_state "$d/c/sec.sock" unprotected 30 ||
	fail "C did not take over: $(q "$d/c/sec.sock" query-colo-status)"
note "C took over: $(q "$d/c/sec.sock" query-colo-status | jq_ 'd["reason"]')"
grep -q 'merged into the images' "$d/c/sec.err" || fail "C merged no overlay: $(tail -5 "$d/c/sec.err")"
go_on "$d/c/sec.out" 2
note "C's guest: passes go on, none failed"

# 5. Offline: what no guest wrote came through the first sync intact.
q "$d/c/sec.sock" quit >/dev/null || true
wait $C_PID 2>/dev/null || true
cmp <(tail -c 4M "$d/a.img") <(tail -c 4M "$d/c.img") ||
	fail "C's image differs from A's past the guest's 4 MiB"
no_crash "$d"/*.err "$d"/*/sec.err
echo PASS
