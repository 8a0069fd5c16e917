#!/bin/bash
# net-compare: frames compared per second on one core and the latency the compare adds
# per released frame (matching streams; 64/512/1500 B frames; 1 and 10,000 connections).
# Goal: >= 2 M frames/s per core at 64 B, p99 added latency <= 20 us.
set -euo pipefail
bin=${BUILD:?BUILD=<release build dir>}/tests/bench/netcompare/nc_bench
[ -x "$bin" ] || { echo "nc_bench not built in $BUILD"; exit 1; }
taskset -c 0 "$bin" "${NC_BENCH_RUNS:-5}" 2>/dev/null || "$bin" "${NC_BENCH_RUNS:-5}"
