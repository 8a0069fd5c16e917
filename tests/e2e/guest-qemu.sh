#!/bin/bash
# The test guest on QEMU microvm, the reference VMM: boot and the exit
# convention (clean exit = reset = status 0, failures via isa-debug-exit =
# (code << 1) | 1), the CPL 0 panic report, app=dirty's deterministic
# checksums, app=exits, and command-line errors.
source "$(dirname "$0")/lib.sh"

need_kvm
QEMU=$(command -v qemu-system-x86_64) || skip "needs qemu-system-x86_64"
[ -f "$TESTGUEST" ] || fail "no test guest at $TESTGUEST (build target testguest)"

# boot NAME CMDLINE...: run the guest, serial output (without CRs) in
# $TMP/NAME.out, QEMU's exit status in $status.
boot() {
	local name=$1
	shift
	status=0
	timeout 120 "$QEMU" -M microvm -accel kvm -cpu host -m 256 -nodefaults -no-user-config \
		-nographic -no-reboot -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$TESTGUEST" -append "$*" </dev/null 2>"$TMP/$name.err" |
		tr -d '\r' >"$TMP/$name.out" || status=${PIPESTATUS[0]}
}
# expect NAME STATUS: check the status of the last boot, show its output if wrong.
expect() {
	if [ "$status" != "$2" ]; then
		cat "$TMP/$1.out" "$TMP/$1.err" >&2
		fail "$1: QEMU exited $status, expected $2"
	fi
}
has() { grep -qE "$2" "$TMP/$1.out" || { cat "$TMP/$1.out" >&2; fail "$1: no line matching '$2'"; }; }

note "hello"
t0=$(date +%s%N)
boot hello app=hello
t1=$(date +%s%N)
expect hello 0
has hello '^testguest: booted, cmdline="app=hello" mem=[0-9]+ tsc=[0-9]+$'
has hello '^testguest: hello, world$'
has hello '^testguest: exit 0$'
note "QEMU microvm: start to hello and clean exit in $(((t1 - t0) / 1000000)) ms"

note "unknown keys are ignored, virtio_mmio.device entries are listed"
boot mmio foo=bar app=hello virtio_mmio.device=4K@0xfeb00000:12 \
	virtio_mmio.device=0x200@0xfeb00200:13:1
expect mmio 0
has mmio '^testguest: virtio-mmio device at 0xfeb00000 size 0x1000 irq 12$'
has mmio '^testguest: virtio-mmio device at 0xfeb00200 size 0x200 irq 13$'
has mmio '^testguest: hello, world$'

note "panic: the CPL 0 handler reports and exits 3 (status 7)"
boot panic app=panic
expect panic 7
has panic '^testguest: panic: #PF page fault at rip=0x[0-9a-f]+ \(error=0x[0-9a-f]+\) cr2=0x100000000 cpl=3 '
has panic '^testguest: exit 3$'
boot panic-ud app=panic kind=ud
expect panic-ud 7
has panic-ud '^testguest: panic: #UD invalid opcode at rip=0x[0-9a-f]+ \(error=0x0\)'

note "dirty: rate-limited lines are the same in two runs"
for run in 1 2; do
	boot dirty$run app=dirty mb=16 rate=20 seconds=3
	expect dirty$run 0
	grep '^dirty: t=' "$TMP/dirty$run.out" >"$TMP/dirty$run.lines" || true
	[ "$(wc -l <"$TMP/dirty$run.lines")" = 3 ] || { cat "$TMP/dirty$run.out" >&2; fail "dirty run $run: expected 3 lines"; }
done
for t in 1 2 3; do
	grep -qE "^dirty: t=$t written=$((t * 20)) checksum=[0-9a-f]{16}$" "$TMP/dirty1.lines" ||
		{ cat "$TMP/dirty1.lines" >&2; fail "dirty: t=$t line wrong"; }
done
diff -u "$TMP/dirty1.lines" "$TMP/dirty2.lines" >&2 || fail "dirty: the two runs differ"
has dirty1 '^testguest: exit 0$'

note "dirty: a byte changed behind the guest's back is caught (code 4, status 9)"
if command -v python3 >/dev/null; then
	out=$TMP/verify.raw
	"$QEMU" -M microvm -accel kvm -cpu host -m 256 -nodefaults -no-user-config -nographic \
		-no-reboot -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-chardev socket,id=gdb,path="$TMP/gdb.sock",server=on,wait=off -gdb chardev:gdb \
		-kernel "$TESTGUEST" -append "app=dirty mb=16 rate=20 seconds=120" \
		</dev/null >"$out" 2>&1 &
	qpid=$!
	on_exit "kill $qpid 2>/dev/null"
	# After t=1 every page holds pass 0's words; corrupt one in the last page.
	wait_for_line "$out" '^dirty: t=1 ' 30 || { cat "$out" >&2; fail "verify: no t=1 line"; }
	buf=$(sed -n 's/^dirty: buffer \(0x[0-9a-f]*\)-.*/\1/p' "$out")
	python3 - "$TMP/gdb.sock" $((buf + 16 * 1024 * 1024 - 4096 + 8)) <<-'EOF' || fail "verify: gdbstub write failed"
		# Minimal GDB remote protocol client: stop, write one byte, detach.
		# Stop notifications (T../S..) may arrive at any time: skip them.
		import socket, sys
		s = socket.socket(socket.AF_UNIX)
		s.connect(sys.argv[1])
		buf = b""
		def packet():
		    global buf
		    while True:
		        i = buf.find(b"$")
		        j = buf.find(b"#", i)
		        if i >= 0 and j >= 0 and len(buf) >= j + 3:
		            p, buf = buf[i + 1:j].decode(), buf[j + 3:]
		            s.sendall(b"+")
		            return p
		        d = s.recv(4096)
		        if not d:
		            sys.exit("gdbstub closed the connection")
		        buf += d
		def call(cmd):
		    s.sendall(b"$%s#%02x" % (cmd.encode(), sum(cmd.encode()) & 0xff))
		    while True:
		        p = packet()
		        if p[:1] not in ("T", "S"):
		            return p
		s.sendall(b"$?#3f")
		packet()
		r = call("M%x,1:55" % int(sys.argv[2]))
		if r != "OK":
		    sys.exit("memory write refused: %s" % r)
		call("D")
	EOF
	status=0
	wait $qpid || status=$?
	tr -d '\r' <"$out" >"$TMP/verify.out"
	expect verify 9
	has verify '^dirty: verify failed: pass [0-9]+ page 4095 \(0x[0-9a-f]+\) word 1 holds 0x[0-9a-f]{16}, pass [0-9]+ wrote 0x[0-9a-f]{16}$'
else
	note "no python3: skipping the verify check"
fi

note "exits"
boot exits app=exits n=1000
expect exits 0
has exits '^exits: n=1000 ns=[0-9]+ per_exit_ns=[0-9]+ rate=[0-9]+$'
note "$(grep '^exits:' "$TMP/exits.out")"

note "bad values are errors (code 2, status 5)"
boot bad-mb app=dirty mb=abc rate=1
expect bad-mb 5
has bad-mb '^testguest: bad value mb=abc'
boot big-mb app=dirty mb=100000 rate=1
expect big-mb 5
has big-mb '^testguest: bad value mb=100000: only [0-9]+ MiB of free RAM'
boot bad-mmio app=hello virtio_mmio.device=4K@zz:1
expect bad-mmio 5
has bad-mmio '^testguest: bad value virtio_mmio.device=4K@zz:1'
boot bad-app app=nosuchapp
expect bad-app 5
has bad-app '^testguest: bad value app=nosuchapp'

echo "guest-qemu: ok"
