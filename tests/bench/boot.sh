# Boot to app=hello and exit, and the VM-exit round trip (app=exits: a loop
# of port writes to an unused port), colovm against QEMU microvm on the same
# test guest, in one run. Both VMMs give the guest the TSC frequency through
# CPUID 0x40000010 (QEMU: vmware-cpuid-freq=on), so neither calibrates.
set -euo pipefail
: "${COLOVM:?}" "${TESTGUEST:?}"
RUNS=${RUNS:-11}
EXITS=${EXITS:-20000}
qemu=(qemu-system-x86_64 -M microvm -accel kvm -cpu host,+invtsc,vmware-cpuid-freq=on -m 256
	-nodefaults -no-user-config -nographic -no-reboot -serial stdio
	-device isa-debug-exit,iobase=0xf4,iosize=4 -kernel "$TESTGUEST")
colovm=("$COLOVM" run --mem 256 --kernel "$TESTGUEST")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Boot: wall time of the whole process, hello line checked every run.
time_runs() { # NAME CMD...
	local name=$1
	shift
	for ((i = 0; i < RUNS; i++)); do
		local t0 t1
		t0=$(date +%s%N)
		"$@" -append app=hello >"$tmp/out" 2>/dev/null </dev/null ||
			{ echo "$name: run failed" >&2; exit 1; }
		t1=$(date +%s%N)
		grep -q "hello, world" "$tmp/out" || { echo "$name: no hello line" >&2; exit 1; }
		echo $(((t1 - t0) / 1000))
	done >"$tmp/$name.boot"
}
# colovm takes --cmdline; give it the same spelling as QEMU's -append.
colovm_append() { local args=("$@"); args[-2]=--cmdline; "${args[@]}"; }
time_runs qemu "${qemu[@]}"
time_runs colovm colovm_append "${colovm[@]}"

exit_runs() { # NAME CMD...
	local name=$1
	shift
	for ((i = 0; i < 5; i++)); do
		"$@" -append "app=exits n=$EXITS" 2>/dev/null </dev/null | tr -d '\r' |
			sed -n 's/^exits: .* per_exit_ns=\([0-9]*\) rate=\([0-9]*\)$/\1 \2/p'
	done >"$tmp/$name.exits"
	[ "$(wc -l <"$tmp/$name.exits")" = 5 ] || { echo "$name: app=exits failed" >&2; exit 1; }
}
exit_runs qemu "${qemu[@]}"
exit_runs colovm colovm_append "${colovm[@]}"

python3 - "$tmp" "$RUNS" "$EXITS" <<'PY'
import statistics as st, sys
d, runs, exits = sys.argv[1], sys.argv[2], sys.argv[3]
def col(name, ext, i=0):
    return [float(l.split()[i]) for l in open(f"{d}/{name}.{ext}") if l.strip()]
bq, bc = st.median(col("qemu", "boot")), st.median(col("colovm", "boot"))
eq, ec = st.median(col("qemu", "exits")), st.median(col("colovm", "exits"))
rq, rc = st.median(col("qemu", "exits", 1)), st.median(col("colovm", "exits", 1))
print(f"| measure | colovm | QEMU microvm | colovm/QEMU | goal |")
print(f"|---|---:|---:|---:|---|")
print(f"| boot to hello and exit (median of {runs}) | {bc/1000:.1f} ms | {bq/1000:.1f} ms | {bc/bq:.2f} | <= 0.5 |")
print(f"| VM-exit round trip, port write (median of 5 x {exits}) | {ec/1000:.1f} us | {eq/1000:.1f} us | {ec/eq:.2f} | lower is better |")
print(f"| VM exits per second | {rc:,.0f} | {rq:,.0f} | {rc/rq:.2f} | higher is better |")
PY
