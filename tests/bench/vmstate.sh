#!/bin/bash
# RAM run encode/decode throughput of the checkpoint stream (common/vmstate).
# Env: BUILD = release build dir (tests/bench/run sets it), VMSTATE_BENCH_MIB (default 512).
set -euo pipefail
bin=${BUILD:?BUILD not set}/tests/bench/vmstate/bench_vmstate
[ -x "$bin" ] || bin=$BUILD/bench/bench_vmstate
"$bin" "${VMSTATE_BENCH_MIB:-512}"
