#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what building and testing rfjit needs on Debian 12, and does nothing when it is all
# there already (so CI and the quick start may call it every time). Runs apt-get update only
# when something is missing. As root it uses apt-get directly, otherwise sudo. Extra Debian
# package names may be given as arguments (e.g. valgrind).
set -euo pipefail
# qemu-user and the AArch64 cross compiler run the NEON test (tests/jit/test_neon.c);
# libopenblas-dev: the `rfjit bench` peers and their test (tests/api/test_bench.c), which
# load libopenblas.so.0 at run time and skip without it; python3-numpy: the Python binding's
# tests (python/tests, ctest entry python).
need=(cmake pkg-config gcc libc6-dev make llvm-19-dev libhwloc-dev libcriterion-dev
      qemu-user gcc-aarch64-linux-gnu valgrind libopenblas-dev python3-numpy "$@")
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps.sh: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps.sh: not root and no sudo" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
