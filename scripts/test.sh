#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 2 of 2 (README), and what CI runs: install what is missing, build with
# warnings as errors into build/ ($RFJIT_BUILD_DIR if set; extra arguments go to the cmake
# configure step, e.g. -DRFJIT_SANITIZE=address,undefined), run ctest (one entry per suite
# plus the include rules), then the Criterion binary itself as the very last step, so its
# "[====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N" line ends the output.
# The binary runs even when ctest failed (its synthesis is the summary); exit 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON "$@" >/dev/null
cmake --build "$build" -j2
status=0
(cd "$build" && ctest --output-on-failure -j2) || status=1
"$build/rfjit_tests" --jobs 2 || status=1
exit $status
