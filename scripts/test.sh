#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Quick start, command 2 of 2 (README), and what CI runs: install what is missing, build with
# warnings as errors into build/ ($RFJIT_BUILD_DIR if set; extra arguments go to the cmake
# configure step, e.g. -DRFJIT_SANITIZE=address,undefined), run the ctest entries outside
# Criterion (include and export rules, valgrind, the Python tests, the concurrency driver),
# then the Criterion binary itself, every suite once, as the very last step, so its
# "[====] Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N" line ends the output
# (the per-suite ctest entries, label criterion_suite, are for `ctest -R suite` by hand).
# The configuration is scripts/quickstart.sh's, so after the quick start only what changed is
# rebuilt. RFJIT_TEST_SLICE=1 in the environment runs the heavy matrices (JIT equivalence,
# estimates, tuning, tiling) on a slice that keeps every estimator, mode and ISA but fewer
# sizes: .ci/run's sanitizer stage does, its last stage runs them whole.
# The binary runs even when ctest failed (its synthesis is the summary); exit 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test.sh: $*" >&2; }
bash scripts/deps.sh
build=${RFJIT_BUILD_DIR:-build}
say "configuring $build (RelWithDebInfo, warnings as errors${*:+, $*})"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON "$@" >/dev/null
say "building $build"
cmake --build "$build" -j2
status=0
say "ctest in $build: the entries outside the Criterion suites"
(cd "$build" && ctest --output-on-failure -j2 -LE criterion_suite) || status=1
say "the Criterion binary, every suite${RFJIT_TEST_SLICE:+ (RFJIT_TEST_SLICE=$RFJIT_TEST_SLICE)}"
"$build/rfjit_tests" --jobs 2 || status=1
exit $status
