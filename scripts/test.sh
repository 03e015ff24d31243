#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 2: install what is missing, build with warnings as errors, and run the
# whole test suite: ctest (one entry per suite, plus the include rules), then the Criterion
# binary itself last, so its closing "Synthesis" line ends the output.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j2
(cd "$build" && ctest --output-on-failure -j2)
"$build/rfjit_tests" --jobs 2
