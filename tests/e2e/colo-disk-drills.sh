#!/bin/bash
# Failover drills on a protected guest with a replicated disk, each followed
# by a re-protect: a chain of hosts H0, H1, ..., H<DRILLS>, each a colovm
# with its own image. H0 runs plain, its 8 MiB image random bytes, its guest
# app=blk loop=1 (4 MiB per pass: a new pattern every pass, 64 KiB writes,
# 16 in flight, a flush, then all read back and verified by the guest).
# Drill k: a fresh Hk with an empty image protects H(k-1) (`colo-protect`:
# the first sync copies the image while the guest writes: from drill 2 on a
# re-protect of the last drill's survivor); at 3 checkpoints the RAM and
# the images hash alike on both sides (odd k: Hk buffers the writes it
# applies at a checkpoint in memory and then in its file, mixed; even k:
# all in memory); then H(k-1) is SIGKILLed:
#   k % 3 = 1: by `colovmctl drill failover` at a random moment (mostly in
#           the middle of a write; its report checked: PASS, Hk alone serves);
#   k % 3 = 2: 0-40 ms after an x-colo-checkpoint request;
#   k % 3 = 0: in the middle of a checkpoint, for certain: the pair's channel
#           runs through a proxy (colo-proxy.py);
#           k % 6 = 3: it forwards the next CheckpointRequest, kills H(k-1)
#           at once and forwards nothing it sent after (lost with its
#           host): Hk must say it dropped that checkpoint half-way and
#           serve from the one before;
#           k % 6 = 0: it forwards Hk's next ack of a checkpoint to H(k-1)
#           (which resumes), kills H(k-1) 20 ms later and forwards nothing
#           more either way: Hk, applying that checkpoint's disk writes
#           then, must apply it whole and serve from it.
# Hk takes over: the primary's writes after the last checkpoint dropped,
# its own since merged into its image; its guest goes on writing and
# verifying for 2 more passes, none failed (a lost or stale write of the
# pass it was in would fail its read-back).
# At the end the last survivor is stopped (its requests finished) and its
# image checked offline (tests/guest/tools/blkcheck.py --loop): every 64 KiB
# write of the guest's 4 MiB holds one pass's pattern whole (no torn
# write), the passes are the one in progress (a prefix) and the one before,
# and the 4 MiB no guest wrote still hold H0's random bytes, copied from
# image to image by DRILLS first syncs.
# DRILLS: 20 by default; 3 in a host VM (HOSTVM=1: TCG, a drill takes
# tens of seconds there). IMG_MB: the image's size (8 MiB by default);
# `IMG_MB=1024 DRILLS=2` is a 1 GiB disk protected and then re-protected
# while its guest writes, a drill after each (README: the long runs).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/colo-lib.bash"
need_kvm
d=$TMP
# (listeners below the ephemeral range: 40 of them, next to the pairs' own
# outgoing connections, found a port taken once in a while)
base=$((20000 + RANDOM % 10000))
DRILLS=${DRILLS:-$([ "${HOSTVM:-0}" = 1 ] && echo 3 || echo 20)}
IMG_MB=${IMG_MB:-8}
[ "$IMG_MB" -ge 5 ] || fail "IMG_MB=$IMG_MB: the guest writes 4 MiB; the image needs more"
head -c32 /dev/urandom >"$d/key"
head -c "${IMG_MB}M" /dev/urandom >"$d/h0.img"
cp "$d/h0.img" "$d/orig.img"
args=(--kernel "$TESTGUEST" --mem 16 --cmdline "app=blk mb=4 loop=1" --peer-key "$d/key")

# H0, plain; host k's files are $d/hk/sec.{out,err,sock}
mkdir -p "$d/h0"
"$COLOVM" run "${args[@]}" --disk "$d/h0.img",replicate \
	--serial file:"$d/h0/sec.out" --qmp unix:"$d/h0/sec.sock",server 2>"$d/h0/sec.err" &
PRI_PID=$!
on_exit "kill -9 $PRI_PID 2>/dev/null"
wait_for_line "$d/h0/sec.out" '^blk: pass 1 ok' 60 || fail "H0's guest does not run: $(cat "$d/h0/sec.err")"

times=() midckpt=0 afterack=0
for k in $(seq 1 "$DRILLS"); do
	p=$d/h$((k - 1)) s=$d/h$k port=$((base + 2 * k))
	mkdir -p "$s"
	truncate -s "${IMG_MB}M" "$d/h$k.img"
	# (odd k: 1 MiB of the primary's writes buffered in memory, the rest
	# in the file after them; even k: the default 64 MiB, all in memory)
	start_secondary "$s" $port "${args[@]}" --disk "$d/h$k.img",replicate \
		$([ $((k % 2)) = 1 ] && echo --disk-buffer-mem 1)
	if [ $((k % 3)) = 0 ]; then
		python3 "$SRC/tests/e2e/colo-proxy.py" $((port + 1)) $port "$s/arm" >"$s/proxy.out" 2>&1 &
		on_exit "kill $! 2>/dev/null"
		wait_for_line "$s/proxy.out" '^listening' 30 || fail "drill $k: no proxy: $(cat "$s/proxy.out")"
		port=$((port + 1))
	fi
	q "$p/sec.sock" migrate-set-parameters heartbeat-interval=200 heartbeat-misses=25 \
		checkpoint-interval=200 x-colo-ram-digest=true >/dev/null
	t0=$(date +%s%N) n0=$(passes "$p/sec.out")
	q "$p/sec.sock" colo-protect uri=$CHAN:$port >/dev/null || fail "drill $k: colo-protect refused"
	wait_state "$p/sec.sock" protected $((120 + IMG_MB / 4)) ||
		fail "drill $k: no pair: $(q "$p/sec.sock" query-colo-status)"
	sync="first sync $(((($(date +%s%N) - t0) / 1000000))) ms, the guest $(($(passes "$p/sec.out") - n0)) passes meanwhile"
	PSOCK=$p/sec.sock SSOCK=$s/sec.sock compare_digests "$s" 3 60 1
	sync_bytes=$(q "$p/sec.sock" query-colo-stats | jq_ 'd["disk"]["sync-bytes"]')
	[ "$sync_bytes" -ge $((IMG_MB << 20)) ] ||
		fail "drill $k: the first sync sent $sync_bytes bytes of a $IMG_MB MiB image"
	t=""
	case $((k % 3)) in
	1)
		sleep "$(python3 -c 'import random; print(round(random.uniform(0, 0.8), 3))')"
		r=$d/drill$k.json
		drill failover "$r" --primary "$p/sec.sock" --secondary "$s/sec.sock" --timeout 30
		drill_pass "$r" secondary 0 30000
		t=$(report "$r" 'd["takeover-ms"]')
		times+=("$t")
		t="takeover $t ms, "
		;;
	2)
		q "$p/sec.sock" x-colo-checkpoint >/dev/null
		sleep "0.0$((RANDOM % 40))"
		kill -9 $PRI_PID
		;;
	0)
		if [ $((k % 6)) = 3 ]; then
			echo "kill $PRI_PID" >"$s/arm"
			wait_for_line "$s/proxy.out" '^kill:' 30 || fail "drill $k: the proxy did not kill: $(cat "$s/proxy.out")"
			wait_for_line "$s/sec.err" 'dropped half-way' 30 ||
				fail "drill $k: H$k does not say it dropped the checkpoint: $(tail -5 "$s/sec.err")"
		else
			echo "killack $PRI_PID" >"$s/arm"
			wait_for_line "$s/proxy.out" '^killack:' 30 || fail "drill $k: the proxy did not kill: $(cat "$s/proxy.out")"
			acked=$(sed -n 's/^killack: CheckpointAck id \([0-9]*\) .*/\1/p' "$s/proxy.out")
			wait_for_line "$s/sec.err" 'runs on from checkpoint' 30 ||
				fail "drill $k: H$k did not take over: $(tail -5 "$s/sec.err")"
			grep -q "runs on from checkpoint $acked," "$s/sec.err" ||
				fail "drill $k: checkpoint $acked was acked, H$k took over from another: $(grep 'runs on from' "$s/sec.err")"
			! grep -q 'dropped half-way' "$s/sec.err" || fail "drill $k: H$k dropped the acked checkpoint"
			t="killed after ack $acked, "
			afterack=$((afterack + 1))
		fi
		;;
	esac
	wait_state "$s/sec.sock" unprotected 30 ||
		fail "drill $k: H$k did not take over: $(q "$s/sec.sock" query-colo-status)"
	wait $PRI_PID 2>/dev/null || true
	grep -q 'taking over' "$s/sec.err" || fail "drill $k: H$k's log: $(tail -3 "$s/sec.err")"
	grep -q 'dropped half-way' "$s/sec.err" && midckpt=$((midckpt + 1)) && t="${t}mid-checkpoint, "
	go_on "$s/sec.out" 2
	note "drill $k: $sync; H$((k - 1)) killed, H$k took over (${t}$(grep -o '[0-9]* KiB of the primary.s writes.*' "$s/sec.err" | head -n 1)); its guest at pass $(last_pass "$s/sec.out")"
	no_crash "$p/sec.err"
	PRI_PID=$SEC_PID
done
note "$DRILLS drills, $midckpt of them killing the primary in a checkpoint, $afterack between a checkpoint's ack and its apply; drill failover's takeover times (ms): ${times[*]}"

# the last survivor, stopped (QMP stop waits for its disk's requests): its image
s=$d/h$DRILLS
q "$s/sec.sock" stop >/dev/null
g=$(last_pass "$s/sec.out")
python3 "$SRC/tests/guest/tools/blkcheck.py" --loop "$d/h$DRILLS.img" 4 >"$d/check.out" ||
	fail "the survivor's image: $(cat "$d/check.out")"
note "$(cat "$d/check.out")"
got=$(sed -n 's/.*in progress: pass \([0-9]*\).*/\1/p' "$d/check.out")
[ "$got" = "$g" ] || [ "$got" = $((g + 1)) ] ||
	fail "the image's pass in progress is $got; the guest's last completed pass $g"
cmp <(tail -c +$((4 * 1048576 + 1)) "$d/orig.img") <(tail -c +$((4 * 1048576 + 1)) "$d/h$DRILLS.img") ||
	fail "past the guest's 4 MiB, H$DRILLS's image differs from H0's first bytes"
q "$s/sec.sock" quit >/dev/null || true
wait_exit $PRI_PID 30 || true
no_crash "$d"/h*/sec.err
echo PASS
