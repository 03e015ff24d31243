#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where one kernel's execute time goes, loop by loop: runs build/rfjit_bench_profile under
# `perf record -e cpu-clock` (software clock: works where hardware counters are not exposed)
# with RFJIT_DUMP set, then attributes the samples to the dumped object's loops.
# usage: bash scripts/jit_profile.sh ESTIMATOR CAUSAL L [REPS [f32|bf16]]   e.g. positive 0 4096
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RFJIT_BUILD_DIR:-build}
[ $# -ge 3 ] || { echo "usage: $0 ESTIMATOR CAUSAL L [REPS [f32|bf16]]" >&2; exit 2; }
command -v perf >/dev/null || { echo "jit_profile: perf is not installed (linux-perf)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
RFJIT_DUMP="$tmp" perf record -q -e cpu-clock -F ${RFJIT_PROFILE_HZ:-20000} -o "$tmp/perf.data" -- \
    "$build/rfjit_bench_profile" "$@" 2> "$tmp/run.txt"
grep -v '^jit-map' "$tmp/run.txt" >&2 || true
base=$(grep -m1 '^jit-map' "$tmp/run.txt" | awk '{print $2}' | cut -d- -f1)
obj=$(ls "$tmp"/*.o | grep -v '_peak_' | head -1)
perf script -i "$tmp/perf.data" -F ip,sym,dso 2>/dev/null > "$tmp/samples.txt"
python3 scripts/jit_profile.py "$tmp/samples.txt" "$base" "$obj"
