# The operator's guide (docs/operator-guide.md) from install to a passing
# failover drill and a re-protect, under a real systemd: a host VM
# (tests/hostvm --systemd) whose PID 1 is systemd runs
# operator-guide-inside.bash, which installs the build with cmake, writes
# the keys and configs from the installed examples, starts the units with
# systemctl and drills with colovmctl, as the guide says, then hands the
# witness to a one-node Pacemaker cluster. Needs root, qemu (the host VM),
# pacemaker, corosync and resource-agents; KVM is the host VM's own
# (nested), so it runs the same with or without /dev/kvm here.
. "$(dirname "$0")/lib.sh"
need_root
command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing (deploy/install-deps installs it)"
[ -x /lib/systemd/systemd ] || fail "no /lib/systemd/systemd (deploy/install-deps installs systemd)"
for c in crm_mon cibadmin crm_failcount corosync; do
	command -v $c >/dev/null || fail "no $c (deploy/install-deps installs pacemaker, corosync)"
done
[ -x /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || [ -r /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] ||
	fail "no ocf-shellfuncs (deploy/install-deps installs resource-agents)"
got=0
"$SRC/tests/hostvm" run --systemd --mem 2048 --quiet-timeout 300 -- \
	bash "$SRC/tests/e2e/operator-guide-inside.bash" || got=$?
[ $got = 0 ] || fail "the guide's walk-through under systemd: status $got (its output above)"
echo PASS
