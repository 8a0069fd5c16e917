# Config files through the real binary, no guest needed: colovm
# check-config (exit 0 and a summary for a valid file; exit 2 and every
# error as FILE:LINE: message for a bad one), colovm run --config refusing
# a bad file before it touches KVM (flags override keys, and are checked
# the same way), and colovm witness --config serving from its file alone.
source "$(dirname "$0")/lib.sh"
head -c32 /dev/urandom >"$TMP/key"

# check FILE STATUS: colovm check-config FILE exits STATUS; its output in
# $TMP/out (stdout) and $TMP/err (stderr), no crash.
check() {
	local got=0
	"$COLOVM" check-config "$1" >"$TMP/out" 2>"$TMP/err" || got=$?
	[ "$got" = "$2" ] || fail "check-config $1: status $got, expected $2: $(cat "$TMP/out" "$TMP/err")"
	! grep -qE 'AddressSanitizer|runtime error|Segmentation' "$TMP/err" || fail "check-config crashed"
}
# has LINE: $TMP/err has it, whole.
has() { grep -qxF -- "$1" "$TMP/err" || fail "no '$1' in: $(cat "$TMP/err")"; }

cat >"$TMP/web.conf" <<CONF
# a primary
[vm]
kernel = $TESTGUEST
mem = 64
net = tap=tap0
net = hook
[colo]
role = primary
peer = tcp:192.168.77.2:4500
peer-key = $TMP/key
checkpoint-interval = 500
CONF
check "$TMP/web.conf" 0
grep -qxF "$TMP/web.conf: valid: VM web, primary" "$TMP/out" || fail "summary: $(cat "$TMP/out")"
[ ! -s "$TMP/err" ] || fail "stderr for a valid file: $(cat "$TMP/err")"

# Every kind of mistake at once: each on its line, in line order, counted.
cat >"$TMP/bad.conf" <<CONF
mem = 64
[vm]
kernel = $TMP/no-such-kernel
mem = 8
mem = 64
cpus = many
memory = 64
reboot = maybe
peer = tcp:a:1
not a key
[vms]
[colo]
role = primary
witness = rdma:a:1
peer-key = $TESTGUEST
heartbeat-misses = 1
CONF
check "$TMP/bad.conf" 2
b=$TMP/bad.conf
has "$b:1: 'mem' outside a section (expected [vm], [colo] or [migration] first)"
has "$b:3: cannot read kernel $TMP/no-such-kernel: No such file or directory"
has "$b:4: mem '8': out of range (expected 16..1048576)"
has "$b:6: cpus 'many': not a number (expected 1..64)"
has "$b:7: unknown key 'memory' in [vm]"
has "$b:8: reboot 'maybe': expected true or false"
has "$b:9: 'peer' belongs in [colo], not [vm]"
has "$b:10: syntax error (expected [section], key = value, or a comment)"
has "$b:11: unknown section [vms] (expected [vm], [colo] or [migration])"
has "$b:13: run: role = primary needs peer tcp:HOST:PORT|rdma:HOST:PORT"
has "$b:14: witness rdma:a:1: expected tcp:HOST:PORT"
has "$b:15: peer-key $TESTGUEST: not a key (32 bytes, or 64 hex digits)"
has "$b:16: heartbeat-misses '1': out of range (expected 2..1000)"
has "$b: 13 errors"
# (line order: the sorted line numbers are the printed ones)
grep -oE "^$b:[0-9]+" "$TMP/err" | cut -d: -f2 >"$TMP/lines"
sort -n -c "$TMP/lines" || fail "errors not in line order: $(cat "$TMP/err")"
grep -q 'line 4\|given again' "$TMP/err" && fail "mem = 8 failed: line 5 is not a second mem"

check "$TMP/nonexistent.conf" 2
grep -q "cannot read $TMP/nonexistent.conf: No such file" "$TMP/err" || fail "$(cat "$TMP/err")"
printf '[vm]\nkernel = %s\n[colo]\nrole = secondary\n' "$TESTGUEST" >"$TMP/nolisten.conf"
check "$TMP/nolisten.conf" 2
has "$TMP/nolisten.conf:4: run: role = secondary needs listen tcp:HOST:PORT|rdma:HOST:PORT"
printf '[vm]\nmem = 64\n' >"$TMP/nokernel.conf"
check "$TMP/nokernel.conf" 2
has "$TMP/nokernel.conf: run: kernel = FILE (in [vm]) or --kernel FILE is required"

# colovm run --config: a bad file never gets as far as KVM (status 2, the
# file's errors); a flag overrides a key and is checked as a flag.
run() {
	local want=$1 got=0
	shift
	"$COLOVM" run "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || got=$?
	[ "$got" = "$want" ] || fail "run $*: status $got, expected $want: $(cat "$TMP/err")"
	! grep -qE 'AddressSanitizer|runtime error|Segmentation|/dev/kvm' "$TMP/err" ||
		fail "run $*: got past the checks or crashed: $(cat "$TMP/err")"
}
run 2 --config "$TMP/bad.conf"
has "$b:4: mem '8': out of range (expected 16..1048576)"
! grep -q "cannot read kernel" "$TMP/err" || fail "run checked the files as check-config does"
run 2 --config "$TMP/web.conf" --mem 1
has "colovm: --mem '1': out of range (expected 16..1048576)"
run 2 --config "$TMP/web.conf" --colo secondary
has "colovm: run: --colo secondary needs listen tcp:HOST:PORT|rdma:HOST:PORT"
run 2 --config "$TMP/nolisten.conf" --peer tcp:a:1
has "colovm: run: --peer goes with role = primary"
run 2 --config "$TMP/nonexistent.conf"
has "colovm: cannot read $TMP/nonexistent.conf: No such file or directory"
run 2 --config
has "colovm: option '--config' needs an argument"
# the tuning flags are the keys' twins: same ranges (QMP migrate-set-parameters')
run 2 --kernel "$TESTGUEST" --checkpoint-interval 0 --heartbeat-interval 9
has "colovm: --checkpoint-interval '0': out of range (expected 1..3600000)"
has "colovm: --heartbeat-interval '9': out of range (expected 10..60000)"

# A witness from its file alone: it serves on the file's address, keeps
# grants in the file's state; SIGTERM ends it with status 0.
port=$((46100 + RANDOM % 400))
cat >"$TMP/witness.conf" <<CONF
[witness]
listen = tcp:127.0.0.1:$port
peer-key = $TMP/key
state = $TMP/witness.state
CONF
check "$TMP/witness.conf" 0
grep -qxF "$TMP/witness.conf: valid: a witness on tcp:127.0.0.1:$port" "$TMP/out" || fail "$(cat "$TMP/out")"
run 2 --config "$TMP/witness.conf"
has "colovm: --config $TMP/witness.conf: a witness's config, not a VM's"
"$COLOVM" witness --config "$TMP/witness.conf" 2>"$TMP/w.err" &
wpid=$!
wait_for_line "$TMP/w.err" 'serving claims' 10 || fail "the witness does not serve: $(cat "$TMP/w.err")"
grep -qF "serving claims on tcp:127.0.0.1:$port, grants kept in $TMP/witness.state" "$TMP/w.err" ||
	fail "the witness did not take its file's keys: $(cat "$TMP/w.err")"
grep -q 'no --peer-key' "$TMP/w.err" && fail "the witness has no key: $(cat "$TMP/w.err")"
kill -TERM $wpid
st=0
wait_exit $wpid 10 || st=$?
[ $st = 0 ] || fail "the witness exited $st after SIGTERM"
# ... and a flag over its file
"$COLOVM" witness --config "$TMP/witness.conf" --listen tcp:127.0.0.1:$((port + 1)) 2>"$TMP/w2.err" &
wpid=$!
wait_for_line "$TMP/w2.err" 'serving claims' 10 || fail "the witness does not serve: $(cat "$TMP/w2.err")"
grep -qF "serving claims on tcp:127.0.0.1:$((port + 1))," "$TMP/w2.err" || fail "$(cat "$TMP/w2.err")"
kill -TERM $wpid
wait_exit $wpid 10 || fail "the witness did not end on SIGTERM"
printf '[witness]\nlisten = tcp:127.0.0.1:1\n[vm]\nmem = 64\n' >"$TMP/w-bad.conf"
"$COLOVM" witness --config "$TMP/w-bad.conf" 2>"$TMP/err" && fail "a witness ran from a bad file"
has "$TMP/w-bad.conf:3: [vm] belongs in a VM's config (colovm run --config), not a witness's"
echo PASS
