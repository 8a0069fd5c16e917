# Helpers for the Linux guest's end-to-end tests (source after
# tests/e2e/lib.sh). The same calls run the guest on colovm or on QEMU
# microvm (same kernel, same initramfs, virtio-mmio devices from ACPI).
#
#   lg_build                  build the guest (tests/guest/linux/build) into
#                             $BUILD/linux-guest: LINUX_KERNEL, LINUX_INITRD
#   lg_start NAME VMM [KEY=VALUE...] [-- VMM ARGS...]
#                             boot it in the background; keys: tap=IF (none),
#                             mac=MAC, disk=IMAGE, cpus=N (2), mem=MiB (256),
#                             reboot=1 (a guest reboot boots again rather than
#                             ending the VMM), incoming=tcp:H:P, restore=FILE,
#                             ns=NETNS (run the VMM in it), append=ARGS (more
#                             kernel command line), shutdown_timeout=S (colovm's
#                             --shutdown-timeout; default 0: SIGTERM and the
#                             clean-up stop it at once). Serial output (no CRs) in
#                             $TMP/NAME.raw ($TMP/NAME.out without CRs: lg_out); QMP socket
#                             $TMP/NAME.qmp; serial input through a fifo.
#   lg_wait_up NAME [SECS] [NTH]  wait for the NTH "linuxguest: up" line
#   lg_sh NAME CMD [SECS]     run CMD in the serial shell, print its output
#   lg_qmp NAME ARGS...       colovmctl against NAME's QMP socket (works with
#                             QEMU's too)
#   lg_alive NAME, lg_kill NAME, lg_status NAME (exit status in $lg_st)
#   lg_shutdown NAME HOW IMAGE  a clean shutdown (powerdown or sigterm),
#                             checked from the host down to the disk image
#
# Kernel command line: console=ttyS0 quiet loglevel=4 (errors and worse
# only: every console byte is a VM exit; `dmesg` has the rest) panic=-1 (a
# panic ends the VMM at once rather than hanging the test) and the guest's colovm.* keys (README.md).

LG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
QEMU=${QEMU:-$(command -v qemu-system-x86_64 || true)}
declare -A lg_pid lg_t0 lg_fd lg_vmm

lg_build() {
	local t0 out
	t0=$(date +%s%N)
	out=$("$LG_DIR/build" "$BUILD/linux-guest") || fail "tests/guest/linux/build failed"
	eval "$out"
	note "guest built (or up to date) in $((($(date +%s%N) - t0) / 1000000)) ms: $LINUX_KERNEL, $LINUX_INITRD"
}

# QEMU's accelerator: KVM when there is /dev/kvm; LINUXGUEST_TCG=1 allows TCG
# (slow; for developing the guest on a machine without KVM).
lg_need_vmm() {
	case $1 in
	colovm) need_linux_guest ;;
	qemu)
		[ -n "$QEMU" ] || skip "needs qemu-system-x86_64"
		[ "${LINUXGUEST_TCG:-0}" = 1 ] || need_linux_guest
		;;
	*) fail "unknown VMM $1" ;;
	esac
}

lg_start() {
	local name=$1 vmm=$2 tap= mac= disk= cpus=2 mem=256 reboot=0 incoming= restore= ns= append=
	local shutdown_timeout=0
	local kv cmd=() accel=kvm cpu=host
	shift 2
	while [ $# -gt 0 ]; do
		kv=$1
		shift
		case $kv in
		--) break ;;
		tap=* | mac=* | disk=* | cpus=* | mem=* | reboot=* | incoming=* | restore=* | ns=* | append=* | \
			shutdown_timeout=*)
			printf -v "${kv%%=*}" '%s' "${kv#*=}" ;;
		*) fail "lg_start: unknown key $kv" ;;
		esac
	done
	local cmdline="console=ttyS0 quiet loglevel=4 panic=-1 colovm.name=$name $append"
	case $vmm in
	colovm)
		cmd=("$COLOVM" run --kernel "$LINUX_KERNEL" --initrd "$LINUX_INITRD" --mem "$mem"
			--cpus "$cpus" --cmdline "$cmdline" --serial stdio --qmp "unix:$TMP/$name.qmp,server"
			--shutdown-timeout "$shutdown_timeout")
		[ -z "$tap" ] || cmd+=(--net "tap=$tap${mac:+,mac=$mac}")
		[ -z "$disk" ] || cmd+=(--disk "$disk")
		[ "$reboot" = 0 ] || cmd+=(--reboot)
		[ -z "$incoming" ] || cmd+=(--incoming "$incoming")
		[ -z "$restore" ] || cmd+=(--restore "$restore")
		;;
	qemu)
		[ -r /dev/kvm ] || { accel=tcg; cpu=max; }
		cmd=("$QEMU" -M microvm,acpi=on -accel "$accel" -cpu "$cpu" -smp "$cpus" -m "$mem"
			-nodefaults -no-user-config -nographic -serial stdio
			-kernel "$LINUX_KERNEL" -initrd "$LINUX_INITRD" -append "$cmdline"
			-qmp "unix:$TMP/$name.qmp,server=on,wait=off")
		[ -z "$tap" ] || cmd+=(-device "virtio-net-device,netdev=n0${mac:+,mac=$mac}"
			-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no")
		[ -z "$disk" ] || cmd+=(-device virtio-blk-device,drive=d0
			-drive "id=d0,file=$disk,format=raw,if=none")
		[ "$reboot" = 1 ] || cmd+=(-no-reboot)
		[ -z "$incoming" ] || cmd+=(-incoming "$incoming")
		[ -z "$restore" ] || cmd+=(-incoming "exec:cat $restore")
		;;
	esac
	cmd+=("$@")
	[ -z "$ns" ] || cmd=(ip netns exec "$ns" "${cmd[@]}")
	rm -f "$TMP/$name.in" "$TMP/$name.qmp"
	mkfifo "$TMP/$name.in"
	# the test holds the fifo's write end, so the VMM's stdin never sees EOF
	exec {fd}<>"$TMP/$name.in"
	lg_fd[$name]=$fd
	lg_vmm[$name]=$vmm
	lg_t0[$name]=$(date +%s%N)
	"${cmd[@]}" <"$TMP/$name.in" >"$TMP/$name.raw" 2>&1 &
	lg_pid[$name]=$!
	on_exit "lg_kill $name"
	for _ in $(seq 100); do [ -S "$TMP/$name.qmp" ] && break; lg_alive "$name" || break; sleep 0.05; done
}

# lg_out NAME: refresh $TMP/NAME.out, the serial output so far without CRs
# (the waits below do it; call it before grepping at any other time).
lg_out() { tr -d '\r' <"$TMP/$1.raw" >"$TMP/$1.out"; }

lg_alive() { kill -0 "${lg_pid[$1]}" 2>/dev/null; }

lg_kill() {
	local pid=${lg_pid[$1]:-}
	[ -n "$pid" ] || return 0
	kill_tree "$pid"
	lg_pid[$1]=
}

# lg_status NAME [SECS]: wait for the VMM to end (default 60 s); its exit
# status in $lg_st ("timeout" if it still runs). Not for $(...): only this
# shell can wait for its children.
lg_status() {
	local pid=${lg_pid[$1]}
	lg_st=0
	for _ in $(seq $((${2:-60} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		lg_st=timeout
		return
	fi
	wait "$pid" || lg_st=$?
	lg_pid[$1]=
}

lg_elapsed_ms() { echo $((($(date +%s%N) - lg_t0[$1]) / 1000000)); }

# lg_wait_up NAME [SECS] [NTH]: the NTH (default 1) "linuxguest: up" line
# and the shell's prompt after it.
lg_up_and_prompt() {
	lg_out "$1"
	awk -v nth="$2" '/^linuxguest: up / { n++ } n >= nth && /linuxguest# / { ok = 1 }
		END { exit !ok }' "$TMP/$1.out" 2>/dev/null
}
lg_wait_up() {
	# (a deadline in seconds, not a count of polls: under TCG each poll's
	# processes take longer than its sleep)
	local name=$1 secs=${2:-120} nth=${3:-1} end=$((SECONDS + ${2:-120}))
	while ! lg_up_and_prompt "$name" "$nth"; do
		if ! lg_alive "$name"; then
			tail -40 "$TMP/$name.out" >&2
			fail "$name: the VMM ended before the guest was up"
		fi
		sleep 0.2
		if [ $SECONDS -ge $end ]; then
			tail -40 "$TMP/$name.out" >&2
			fail "$name: no 'linuxguest: up' (#$nth) and prompt within ${secs}s"
		fi
	done
}

# lg_sh NAME CMD [SECS]: CMD's output from the serial shell. The markers are
# typed as $((N)) so the terminal's echo of the command line never matches.
lg_seq=0
lg_sh() {
	local name=$1 cmd=$2 secs=${3:-30} n end=$((SECONDS + ${3:-30}))
	lg_seq=$((lg_seq + 1))
	n=$((lg_seq * 1000 + RANDOM % 1000))
	printf 'echo @@$((%d))B; %s; echo @@$((%d))E\n' "$n" "$cmd" "$n" >&"${lg_fd[$name]}"
	while lg_out "$name" && ! grep -q "^@@${n}E\$" "$TMP/$name.out"; do
		sleep 0.1
		if [ $SECONDS -ge $end ] || ! lg_alive "$name"; then
			tail -20 "$TMP/$name.out" >&2
			fail "$name: no answer from the serial shell to '$cmd' within ${secs}s"
		fi
	done
	sed -n "/^@@${n}B\$/,/^@@${n}E\$/p" "$TMP/$name.out" | sed '1d;$d'
}

lg_qmp() {
	local name=$1
	shift
	"$COLOVMCTL" --qmp "$TMP/$name.qmp" "$@"
}

# lg_whoami NAME KEY: KEY's value on the guest's /cgi-bin/whoami page,
# fetched with curl from the host side ($LG_NSX: the prefix that runs a
# command in the guest's network).
lg_whoami() {
	$LG_NSX curl -sf -m 20 "http://${LG_IP:-10.0.0.2}/cgi-bin/whoami" | sed -n "s/^$2=//p"
}

# lg_shutdown NAME HOW IMAGE: a clean shutdown from the host of guest NAME,
# whose /data is the ext4 image IMAGE (start it with shutdown_timeout=30):
# write a file the guest never syncs, ask by HOW (powerdown: QMP
# system_powerdown, colovm and QEMU; sigterm: SIGTERM to colovm, which
# presses the power button of a guest that listens and waits for its
# power-off), then check from the host: the guest saw the button (the GED
# interrupt -> the `button` driver -> busybox acpid -> `poweroff`),
# unmounted /data, powered off through ACPI S5 (colovm's log), the VMM
# exited 0 by itself, and the image is clean (no journal to replay) and
# holds the file.
lg_shutdown() {
	local name=$1 how=$2 img=$3 vmm=${lg_vmm[$1]} token t0 st ms got n0 out=$TMP/$1.after
	command -v dumpe2fs >/dev/null && command -v debugfs >/dev/null || fail "needs e2fsprogs (dumpe2fs, debugfs)"
	token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	lg_sh "$name" "echo $token >/data/last" >/dev/null
	# what the guest and the VMM say from here on (an earlier reboot also
	# unmounted /data)
	lg_out "$name"
	n0=$(wc -l <"$TMP/$name.out")
	t0=$(date +%s%N)
	case $how in
	powerdown)
		note "$vmm: QMP system_powerdown"
		lg_qmp "$name" system_powerdown >/dev/null || fail "$how: system_powerdown failed"
		;;
	sigterm)
		note "$vmm: SIGTERM"
		kill -TERM "${lg_pid[$name]}"
		;;
	*) fail "lg_shutdown: unknown way $how" ;;
	esac
	lg_status "$name" 60
	st=$lg_st
	ms=$((($(date +%s%N) - t0) / 1000000))
	lg_out "$name"
	tail -n +$((n0 + 1)) "$TMP/$name.out" >"$out"
	[ "$st" != timeout ] || { tail -20 "$out" >&2; fail "$how: $vmm still runs 60 s after the request"; }
	note "$how: $vmm ended with status $st after $ms ms"
	grep -q 'linuxguest: power button pressed' "$out" || {
		tail -20 "$out" >&2
		fail "$how: the guest never saw a power-button press: $vmm ended (status $st) without a clean shutdown"
	}
	grep -q 'linuxguest: /data unmounted' "$out" || fail "$how: the guest did not unmount /data"
	if [ "$vmm" = colovm ]; then
		[ "$how" != sigterm ] || grep -q 'received .*: pressing the power button, waiting up to 30 s' "$out" ||
			{ tail -20 "$out" >&2; fail "$how: colovm did not say it pressed the power button"; }
		grep -q 'guest powered off (ACPI S5)' "$out" ||
			{ tail -20 "$out" >&2; fail "$how: the guest did not power off through ACPI S5"; }
	fi
	[ "$st" = 0 ] || { tail -20 "$out" >&2; fail "$how: $vmm exited $st after the guest powered off, expected 0"; }
	dumpe2fs -h "$img" >"$TMP/sb" 2>&1 || fail "dumpe2fs: $(cat "$TMP/sb")"
	grep -q '^Filesystem state: *clean$' "$TMP/sb" ||
		fail "$how: filesystem not clean: $(grep state "$TMP/sb")"
	! grep -q '^Filesystem features:.*needs_recovery' "$TMP/sb" || fail "$how: the journal needs recovery"
	got=$(debugfs -R 'cat /last' "$img" 2>/dev/null)
	[ "$got" = "$token" ] || fail "$how: the file written before the shutdown holds '$got', expected '$token'"
	echo "ok: $vmm, $how: clean shutdown in $ms ms, the disk clean and holding the last write"
}
