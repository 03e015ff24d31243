#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The benchmarks' one command (README, Benchmarks): installs the Debian packages the peers and
# --plot need (OpenBLAS, gnuplot, through deps.sh), creates .venv-bench in the checkout with the
# Python peers of bench/requirements.txt (PyPI: torch 2.x, jax, onnxruntime, performer-pytorch)
# when it is missing or one of its packages does not import, builds into build/
# ($RFJIT_BUILD_DIR if set) with the quick start's configuration (the kernels are compiled by
# the JIT either way, and build/ keeps one configuration), then runs `rfjit bench --suite
# headline` with the venv's python as the peers' interpreter (RFJIT_BENCH_PYTHON). Extra
# arguments go to rfjit bench, e.g. --json, --plot bench.svg, --suite decode. Run on an idle
# machine.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "bench.sh: $*" >&2; }
bash scripts/deps.sh libopenblas-dev gnuplot-nox
venv=$PWD/.venv-bench
py=$venv/bin/python3
req=bench/requirements.txt
# ready when every requirement imports; the file lists one import name per package
if ! { [ -x "$py" ] && "$py" -c "import $(sed -n 's/^# import: //p' "$req")" 2>/dev/null; }; then
    say "creating $venv with $req (PyPI, a few GB: minutes)"
    # no --system-site-packages: Debian's python3-torch 1.13 must not shadow torch 2.x
    /usr/bin/python3 -m venv "$venv"
    "$py" -m pip install -q --disable-pip-version-check -r "$req" >/dev/null
    say "venv ready: $py"
fi
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON >/dev/null
cmake --build "$build" -j2 --target rfjit_cli
RFJIT_BENCH_PYTHON=$py exec "$build/rfjit" bench --suite headline "$@"
