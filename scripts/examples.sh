#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI's install stage: builds rfjit (Release) into build-install ($RFJIT_INSTALL_BUILD),
# installs it to a temporary prefix, checks the installed files, then builds every example of
# examples/ against that prefix only, once with CMake (find_package(rfjit CONFIG)) and once
# with pkg-config, in scratch directories outside the source tree, and runs both builds.
# The installed CLI runs too. Exit 1 on the first thing that is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
bash scripts/deps.sh
build=${RFJIT_INSTALL_BUILD:-build-install}
prefix=$(mktemp -d /tmp/rfjit_prefix_XXXXXX)
work=$(mktemp -d /tmp/rfjit_examples_XXXXXX)
trap 'rm -rf "$prefix" "$work"' EXIT
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRFJIT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target rfjit rfjit_static rfjit_cli
cmake --install "$build" --prefix "$prefix" >/dev/null

libdir=$prefix/lib
for f in include/rfjit.h lib/librfjit.a lib/librfjit.so lib/cmake/rfjit/rfjitConfig.cmake \
    lib/cmake/rfjit/rfjitConfigVersion.cmake lib/cmake/rfjit/rfjitTargets.cmake \
    lib/pkgconfig/rfjit.pc bin/rfjit share/rfjit/peer_torch.py; do
    [ -e "$prefix/$f" ] || { echo "examples: $f is not installed" >&2; exit 1; }
done
soname=$(readelf -d "$libdir/librfjit.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ -e "$libdir/$soname" ] || { echo "examples: $soname (the SONAME) is not installed" >&2; exit 1; }
bash scripts/check_exports.sh "$libdir/librfjit.so"
LD_LIBRARY_PATH=$libdir "$prefix/bin/rfjit" info >/dev/null
echo "examples: installed to $prefix ($soname)"

export LD_LIBRARY_PATH=$libdir
for ex in host_app decode_stream kernel_regression; do
    # CMake, with only the prefix to find rfjit by
    cmake -S "$src/examples/$ex" -B "$work/$ex-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$work/$ex-cmake" >/dev/null
    # pkg-config, one compile line as a user would write it
    mkdir -p "$work/$ex-pc"
    PKG_CONFIG_PATH=$libdir/pkgconfig sh -c "cc -O2 -Wall -Werror -o '$work/$ex-pc/$ex' \
        '$src/examples/$ex/main.c' \$(pkg-config --cflags --libs rfjit) -lm"
    for b in cmake pc; do
        start=$(date +%s%N)
        out=$("$work/$ex-$b/$ex")
        echo "examples: $ex ($b build, $((($(date +%s%N) - start) / 1000000)) ms):"
        sed 's/^/    /' <<<"$out"
    done
done
# the static library: rfjit::rfjit_static brings LLVM, hwloc and threads along
cmake -S "$src/examples/decode_stream" -B "$work/static" -DCMAKE_PREFIX_PATH="$prefix" \
    -DRFJIT_EXAMPLE_STATIC=ON >/dev/null
cmake --build "$work/static" >/dev/null
if ldd "$work/static/decode_stream" | grep -q librfjit; then
    echo "examples: the static build still loads librfjit.so" >&2
    exit 1
fi
LD_LIBRARY_PATH= "$work/static/decode_stream" 200 | sed 's/^/examples: static: /'
echo "examples: all built against $prefix and ran"
