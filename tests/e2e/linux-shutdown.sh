#!/bin/bash
# A clean shutdown of the Linux guest (tests/guest/linux) from the host,
# through the ACPI power button: the GED interrupt -> _EVT -> Notify
# (PWRB, 0x80) -> the `button` driver -> KEY_POWER -> busybox acpid, which
# runs `poweroff`; the guest unmounts its disk and writes S5 to the sleep
# register; the VMM ends by itself with status 0.
#
#   QMP system_powerdown   colovm and QEMU (linux-shutdown-qemu.sh)
#   SIGTERM to the VMM     colovm only: the guest listens to the button, so
#                          colovm presses it and waits for the power-off
#                          (--shutdown-timeout); QEMU ends at once on SIGTERM
#
# Each case boots the guest on the same disk, writes a file it never syncs,
# asks for the shutdown and checks from the host afterwards: the guest saw
# the button, unmounted /data, powered off through ACPI S5 (colovm's log),
# the VMM exited 0, and the ext4 image is clean (no journal to replay) and
# holds the file. (SIGTERM on a guest that does not listen to the button,
# the freestanding test guest, still stops colovm at once: boot-testguest.sh.)
source "$(dirname "$0")/lib.sh"
source "$SRC/tests/guest/linux/vm.sh"
VMM=${VMM:-colovm}
lg_need_vmm "$VMM"
command -v dumpe2fs >/dev/null && command -v debugfs >/dev/null || skip "needs e2fsprogs"
lg_build

img=$TMP/disk.img
truncate -s 64M "$img"

# shutdown NAME HOW: boot, write a file, shut down by HOW (powerdown: QMP
# system_powerdown; sigterm: SIGTERM to the VMM), check the guest and disk.
shutdown() {
	local name=$1 how=$2 token t0 st ms
	lg_start "$name" "$VMM" disk="$img" shutdown_timeout=30
	lg_wait_up "$name" 300
	note "$VMM: up after $(lg_elapsed_ms "$name") ms"
	token=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	lg_sh "$name" "echo $token >/data/token" >/dev/null

	t0=$(date +%s%N)
	case $how in
	powerdown)
		note "$VMM: QMP system_powerdown"
		lg_qmp "$name" system_powerdown >/dev/null || fail "$how: system_powerdown failed"
		;;
	sigterm)
		note "$VMM: SIGTERM"
		kill -TERM "${lg_pid[$name]}"
		;;
	esac
	lg_status "$name" 60
	st=$lg_st
	ms=$((($(date +%s%N) - t0) / 1000000))
	lg_out "$name"
	local out=$TMP/$name.out
	[ "$st" != timeout ] || { tail -20 "$out" >&2; fail "$how: $VMM still runs 60 s after the request"; }
	note "$how: $VMM ended with status $st after $ms ms"
	grep -q 'linuxguest: power button pressed' "$out" || {
		tail -20 "$out" >&2
		fail "$how: the guest never saw a power-button press: $VMM ended (status $st) without a clean shutdown"
	}
	grep -q 'linuxguest: /data unmounted' "$out" || fail "$how: the guest did not unmount /data"
	if [ "$VMM" = colovm ]; then
		[ "$how" != sigterm ] || grep -q 'received .*: pressing the power button, waiting up to 30 s' "$out" ||
			{ tail -20 "$out" >&2; fail "$how: colovm did not say it pressed the power button"; }
		grep -q 'guest powered off (ACPI S5)' "$out" ||
			{ tail -20 "$out" >&2; fail "$how: the guest did not power off through ACPI S5"; }
	fi
	[ "$st" = 0 ] || { tail -20 "$out" >&2; fail "$how: $VMM exited $st after the guest powered off, expected 0"; }

	dumpe2fs -h "$img" >"$TMP/sb" 2>&1 || fail "dumpe2fs: $(cat "$TMP/sb")"
	grep -q '^Filesystem state: *clean$' "$TMP/sb" ||
		fail "$how: filesystem not clean: $(grep state "$TMP/sb")"
	! grep -q '^Filesystem features:.*needs_recovery' "$TMP/sb" || fail "$how: the journal needs recovery"
	got=$(debugfs -R 'cat /token' "$img" 2>/dev/null)
	[ "$got" = "$token" ] || fail "$how: the file written before the shutdown holds '$got', expected '$token'"
	echo "ok: $VMM, $how: clean shutdown in $ms ms, the disk clean and holding the last write"
}

shutdown g powerdown
[ "$VMM" != colovm ] || shutdown t sigterm
echo "PASS ($VMM)"
