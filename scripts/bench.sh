#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmarks' one command (README, Benchmarks): installs the peers' packages when missing
# (OpenBLAS, gnuplot for --plot, Debian's torch under /usr/bin/python3), builds into build/
# ($RFJIT_BUILD_DIR if set) with the quick start's configuration (the kernels are compiled by
# the JIT either way, and build/ keeps one configuration), then runs `rfjit bench --suite
# headline`. Extra arguments go to rfjit bench, e.g. --json, --plot bench.svg, --suite
# scaling. Run on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh libopenblas-dev gnuplot-nox python3-torch
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON >/dev/null
cmake --build "$build" -j2 --target rfjit_cli
exec "$build/rfjit" bench --suite headline "$@"
