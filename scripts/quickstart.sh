#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 1 of 2 (README): install what is missing, build rfjit (Release) into
# build/ ($RFJIT_BUILD_DIR if set), and run `rfjit check` on its embedded default workload:
# every estimator against exact attention at d = dv = 64, L = 1024, m = 256. Extra arguments
# go to `rfjit check` (e.g. --scale 0.5). Exits with check's status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 >/dev/null
"$build/rfjit" check "$@"
