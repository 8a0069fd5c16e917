#!/bin/bash
# Live migration of app=dirty on 127.0.0.1 at 0 (as fast as possible), 10 and
# 50 MiB/s: the target continues the checksum sequence of an uninterrupted
# run with no verification failure; the source ends in postmigrate. Once more
# at 10 MiB/s into a target started with --mem-prealloc, which must hold all
# of its guest RAM before the migration starts.
source "$(dirname "$0")/lib.sh"
need_kvm
CTL=${COLOVMCTL:?}
port=$((47100 + RANDOM % 800))

migrate_one() { # RATE SECONDS [--mem-prealloc]
	local rate=$1 secs=$2 d=$TMP/r$1${3:-}
	local args=(--kernel "$TESTGUEST" --mem 128 --cmdline "app=dirty mb=32 rate=$rate seconds=$secs")
	mkdir -p "$d"
	port=$((port + 1))
	note "rate=$rate: target on port $port ${3:-}"
	"$COLOVM" run "${args[@]}" ${3:-} --incoming tcp:127.0.0.1:$port --serial file:"$d/t.out" \
		--qmp unix:"$d/t.sock",server 2>"$d/t.err" &
	local tpid=$!
	on_exit "kill $tpid 2>/dev/null"
	"$COLOVM" run "${args[@]}" --serial file:"$d/s.out" --qmp unix:"$d/s.sock",server \
		2>"$d/s.err" &
	local spid=$!
	on_exit "kill $spid 2>/dev/null"
	# Lines depend only on (mb, rate, t): a plain run beside, to compare with.
	local refpid=
	if [ "$rate" != 0 ]; then
		"$COLOVM" run "${args[@]}" --serial file:"$d/ref.out" 2>"$d/ref.err" &
		refpid=$!
		on_exit "kill $refpid 2>/dev/null"
	fi
	wait_for_line "$d/s.out" '^dirty: t=2 ' 20 || fail "rate=$rate: source never reached t=2"
	wait_for_line "$d/t.err" 'waiting for an incoming' 10 || fail "target not listening"
	[ -S "$d/s.sock" ] || fail "rate=$rate: no source QMP socket: $(cat "$d/s.err")"
	"$CTL" --qmp "$d/t.sock" query-status | grep -q '"inmigrate"' || fail "target not inmigrate"
	# Guest RAM is a memfd: its resident pages count as RssShmem.
	local shmem
	shmem=$(awk '/^RssShmem:/ {print $2}' /proc/$tpid/status)
	if [ -n "${3:-}" ]; then
		[ "$shmem" -ge $((128 * 1024)) ] ||
			fail "rate=$rate: --mem-prealloc target holds only $shmem KiB of 128 MiB"
	else
		[ "$shmem" -lt $((64 * 1024)) ] ||
			fail "rate=$rate: target without --mem-prealloc already holds $shmem KiB"
	fi
	note "rate=$rate: target RssShmem before the migration: $shmem KiB"
	"$CTL" --qmp "$d/s.sock" migrate tcp:127.0.0.1:$port >"$d/ctl.out" 2>"$d/ctl.err" ||
		fail "rate=$rate: colovmctl migrate failed: $(cat "$d/ctl.err" "$d/s.err")"
	grep -q '"completed"' "$d/ctl.out" || fail "rate=$rate: no completed status"
	"$CTL" --qmp "$d/s.sock" query-status | grep -q '"postmigrate"' ||
		fail "rate=$rate: source not postmigrate"
	# (the guest ends at t=$secs: 120 s is room for a slow host VM)
	local got=0 n=0
	while kill -0 $tpid 2>/dev/null && [ $n -lt 1200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill -0 $tpid 2>/dev/null &&
		fail "rate=$rate: the target's guest has not ended 120 s after the migration: $(hung_guest "$CTL" "$d/t.sock"); its last line: $(tail -1 "$d/t.out")"
	wait $tpid || got=$?
	[ $got = 0 ] || fail "rate=$rate: target exited $got: $(cat "$d/t.err")"
	"$CTL" --qmp "$d/s.sock" quit >/dev/null || true
	wait $spid || true
	grep -q 'verify failed' "$d/t.out" && fail "rate=$rate: verification failed on the target"
	grep -q '^testguest: exit 0' "$d/t.out" || fail "rate=$rate: target guest did not finish"
	grep -q '^dirty: t=' "$d/t.out" || fail "rate=$rate: no dirty lines on the target"
	if [ -n "$refpid" ]; then
		wait $refpid || fail "rate=$rate: the reference run failed: $(cat "$d/ref.err")"
		while read -r line; do
			grep -qxF "$line" "$d/ref.out" || fail "rate=$rate: target line '$line' not in the reference"
		done < <(grep '^dirty: t=' "$d/t.out")
	fi
	note "rate=$rate: $(grep -o '"downtime": [0-9]*' "$d/ctl.out"), $(grep -c '^dirty: t=' "$d/t.out") lines on the target"
}

[ -n "${ONLY:-}" ] && { migrate_one $ONLY 4; echo PASS; exit 0; }
# 12 s each: the migration starts at t=2 and takes a second or two, so the
# target runs most of it (in a host VM, rate 50 runs 30 s: below).
migrate_one 0 12
migrate_one 10 12
# At 50 MiB/s precopy converges only when the link is faster than that, or
# else once the rounds stop shrinking (5 rounds): in a host VM of one vCPU
# (three colovm on one TCG vCPU, ~24 MB/s) that took longer than the
# guest's 12 s, which ended on the source mid-migration (2026-12-08).
migrate_one 50 "$([ -n "${HOSTVM:-}" ] && echo 30 || echo 12)"
migrate_one 10 12 --mem-prealloc
echo "PASS"
