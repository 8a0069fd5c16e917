# Shared helpers for end-to-end test scripts (source it).
set -euo pipefail

: "${COLOVM:?COLOVM not set (run through ctest)}"
: "${TESTGUEST:?TESTGUEST not set}"

skip() { echo "SKIP: $*" >&2; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "--- $*" >&2; }

need_kvm() {
	[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "needs read/write access to /dev/kvm"
}
need_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}
need_netns() {
	need_root
	ip netns add colovm-probe-$$ 2>/dev/null || skip "needs network namespaces"
	ip netns del colovm-probe-$$
}

TMP=$(mktemp -d /tmp/colovm-e2e.XXXXXX)
cleanup_hooks=()
on_exit() { cleanup_hooks+=("$*"); }
_cleanup() {
	local i
	for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}" || true; done
	rm -rf "$TMP"
}
trap _cleanup EXIT
# A test stopped from outside (ctest's timeout, ^C) still runs its clean-up
# hooks, so it never leaves VMs, namespaces or taps behind.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

# wait_for_file_line FILE REGEX SECONDS: wait until FILE has a line matching REGEX.
wait_for_line() {
	local file=$1 re=$2 secs=$3 t=0
	while ! grep -qE "$re" "$file" 2>/dev/null; do
		sleep 0.1
		t=$((t + 1))
		[ $t -ge $((secs * 10)) ] && return 1
	done
	return 0
}

# expect_status WANT CMD...: run CMD, check its exit status.
expect_status() {
	local want=$1 got=0
	shift
	"$@" || got=$?
	[ "$got" = "$want" ] || fail "'$*' exited $got, expected $want"
}
