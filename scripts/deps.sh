#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs every Debian 12 package that building rfjit, its tests and the CI stages need, and
# does nothing when it is all there already (so CI and the quick start may call it every
# time): a Debian 12 minbase system plus this script is all the README commands and .ci/run
# need (scripts/fresh_chroot.sh proves it in a chroot). Prints one line per step. Runs apt-get
# update only when something is missing. As root it uses apt-get directly, otherwise sudo.
# Extra Debian package names may be given as arguments (e.g. clang-19 for the fuzz stage).
# Then the PyPI packages Debian 12 lacks (python/requirements.txt: ml_dtypes, the NumPy
# bfloat16 dtype), and with --no-deps python/requirements-nodeps.txt (performer-pytorch, the
# compat tests' reference, on Debian's torch) go into a venv of the checkout, .venv
# (gitignored), which also sees Debian's NumPy and torch; the Python tests (ctest entry `python`) and the README's Python run on
# .venv/bin/python3. Debian's own python is left as Debian installed it.
set -euo pipefail
say() { echo "deps.sh: $*" >&2; }
# The build: compiler, CMake, LLVM 19 (ORC), hwloc; binutils for nm/readelf in
# check_exports.sh, examples.sh and the emit test.
build=(cmake make pkg-config gcc libc6-dev binutils llvm-19-dev libhwloc-dev)
# The tests: Criterion; the AArch64 cross compiler with its C library headers and qemu-user
# for the NEON test (tests/jit/test_neon.c; --no-install-recommends would leave the headers
# out); valgrind for valgrind_loop; OpenBLAS for the bench peers (tests/api/test_bench.c);
# NumPy for the Python binding's tests (ctest entry python, README's Python commands);
# libudev-dev for hwloc's -ludev in `pkg-config --static --libs rfjit` (examples.sh);
# gnuplot-nox for `bench --plot`, whose file replacement tests/api/test_outputs.c checks;
# python3-torch for performer-pytorch in the compat tests (python/tests/test_compat.py).
tests=(libcriterion-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user valgrind
       libopenblas-dev python3-numpy python3-venv libudev-dev gnuplot-nox python3-torch)
# The format check of .ci/run (scripts/check_format.sh): clang-format-14 ships both
# clang-format-14 and clang-format-diff-14. Graphviz, which only redraws docs/architecture.svg,
# is not needed here: ask for it as `bash scripts/deps.sh graphviz`.
checks=(clang-format-14)
need=("${build[@]}" "${tests[@]}" "${checks[@]}" "$@")
say "checking ${#need[@]} packages"
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { say "not root and no sudo to install what is missing"; exit 1; }
    sudo=(sudo)
fi
venv=$(cd "$(dirname "$0")/.." && pwd)/.venv
pypi() {
    local py=$venv/bin/python3 req nodeps
    req=$(dirname "$venv")/python/requirements.txt
    nodeps=$(dirname "$venv")/python/requirements-nodeps.txt
    # ready when every requirement imports; each file lists one import name per package
    if [ -x "$py" ] &&
        "$py" -c "import $(sed -n 's/^# import: //p' "$req" "$nodeps" | paste -sd,)" 2>/dev/null; then
        return 0
    fi
    say "creating $venv with python/requirements.txt and requirements-nodeps.txt (PyPI)"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$py" -m pip install -q --disable-pip-version-check -r "$req" >/dev/null
    # without their dependencies: performer-pytorch's would replace Debian's torch
    "$py" -m pip install -q --disable-pip-version-check --no-deps -r "$nodeps" >/dev/null
    say "venv ready: $py"
}
if [ ${#missing[@]} -eq 0 ]; then
    say "all present"
    pypi
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# another apt (unattended upgrades, a parallel job) may hold the lock: wait for it, bounded
apt=("${sudo[@]}" apt-get -qq -o DPkg::Lock::Timeout=600)
say "apt-get update (missing: ${missing[*]})"
"${apt[@]}" update
say "installing ${#missing[@]} packages and their dependencies (a few minutes on a fresh system)"
"${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
say "installed ${missing[*]}"
pypi
