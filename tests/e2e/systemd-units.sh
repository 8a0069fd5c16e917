# The systemd units in deploy/systemd/ (with ExecStart= the colovm just
# built) pass `systemd-analyze verify` without a word; a unit whose binary
# is missing does not (the check can fail). The role comes from the VM's
# config alone: one template for primary, secondary and plain VMs.
source "$(dirname "$0")/lib.sh"
: "${SRC:?}"
command -v systemd-analyze >/dev/null || fail "no systemd-analyze (deploy/install-deps installs systemd)"
bindir=$(dirname "$COLOVM")
mkdir "$TMP/u"
sed "s|@COLOVM_BINDIR@|$bindir|g" "$SRC/deploy/systemd/colovm@.service.in" >"$TMP/u/colovm@kv.service"
sed "s|@COLOVM_BINDIR@|$bindir|g" "$SRC/deploy/systemd/colovm-witness.service.in" \
	>"$TMP/u/colovm-witness.service"
! grep -q '@' "$TMP/u/colovm-witness.service" || fail "a placeholder left in colovm-witness.service"
verify() { systemd-analyze verify --man=no "$@" >"$TMP/verify" 2>&1; }
verify "$TMP/u/colovm@kv.service" "$TMP/u/colovm-witness.service" ||
	fail "systemd-analyze verify: $(cat "$TMP/verify")"
[ ! -s "$TMP/verify" ] || fail "systemd-analyze verify warns: $(cat "$TMP/verify")"
for u in "colovm@kv.service" colovm-witness.service; do
	grep -qx 'Type=notify' "$TMP/u/$u" || fail "$u: not Type=notify"
	grep -qE '^WatchdogSec=[1-9]' "$TMP/u/$u" || fail "$u: no WatchdogSec"
	grep -qx 'Restart=on-failure' "$TMP/u/$u" || fail "$u: no Restart=on-failure"
	grep -qx 'RestartPreventExitStatus=2' "$TMP/u/$u" || fail "$u: a bad config would restart forever"
done
grep -qx 'DeviceAllow=/dev/kvm rw' "$TMP/u/colovm@kv.service" || fail "colovm@: /dev/kvm not allowed"
grep -qx 'DeviceAllow=/dev/net/tun rw' "$TMP/u/colovm@kv.service" || fail "colovm@: tap not allowed"
! grep -qE '^PrivateDevices=yes|^PrivateNetwork=yes' "$TMP/u/colovm@kv.service" ||
	fail "colovm@: hides /dev/kvm or the host's network"
# The check can fail: a unit whose colovm is not there.
sed -i "s|^ExecStart=$bindir/colovm|ExecStart=$TMP/nowhere/colovm|" "$TMP/u/colovm-witness.service"
! verify "$TMP/u/colovm-witness.service" || fail "verify passed a unit with a missing binary"
grep -q 'nowhere/colovm' "$TMP/verify" || fail "verify did not name the missing binary: $(cat "$TMP/verify")"
echo PASS
