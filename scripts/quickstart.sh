#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 1 of 2 (README): install what is missing, build rfjit into build/
# ($RFJIT_BUILD_DIR if set) with the same configuration as scripts/test.sh (so the README's
# second command reuses this build), and run the main job on its embedded default workload:
# `rfjit tune` finds the fastest plan within an output-error budget of 1e-2 for d = dv = 64,
# L = 4096 (synthetic calibration set of the real-like profile, shaped like a trained model's
# heads), prints the Pareto table it chose from and the plan, then runs that plan on a fresh
# problem of the same profile and prints its time and error. Prints one
# line per step before it. Extra arguments go to `rfjit tune` (e.g. --budget 1e-3 --causal).
# Exits with tune's status.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "quickstart: $*" >&2; }
say "checking the Debian packages (scripts/deps.sh)"
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
say "configuring $build (RelWithDebInfo, warnings as errors, as scripts/test.sh does)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON >/dev/null
say "building $build with 2 jobs (the library, the CLI and the tests: a minute or so the first time)"
start=$(date +%s)
cmake --build "$build" -j2 >/dev/null
say "built in $(($(date +%s) - start)) s; tuning (under a minute)"
"$build/rfjit" tune --d 64 --L 4096 --budget 1e-2 --no-save --run "$@"
