#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 1 of 2 (README): install what is missing, build rfjit (Release) into
# build/ ($RFJIT_BUILD_DIR if set), and run the main job on its embedded default workload:
# `rfjit tune` finds the fastest plan within an output-error budget of 1e-2 for d = dv = 64,
# L = 4096 (synthetic Gaussian calibration set), prints the Pareto table it chose from and
# the plan, then runs that plan on a fresh problem and prints its time and error. Extra
# arguments go to `rfjit tune` (e.g. --budget 1e-3 --causal). Exits with tune's status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 >/dev/null
"$build/rfjit" tune --d 64 --L 4096 --budget 1e-2 --no-save --run "$@"
