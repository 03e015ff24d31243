#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CI's install stage: builds rfjit (Release) into build-rel ($RFJIT_INSTALL_BUILD; the
# directory and configuration of the README's install command, which then rebuilds nothing),
# installs it to a temporary prefix, checks the installed files, then builds every example of
# examples/ against that prefix only, once with CMake (find_package(rfjit CONFIG)) and once
# with the README's pkg-config line, in scratch directories outside the source tree, and runs
# both builds without LD_LIBRARY_PATH; decode_stream also with `pkg-config --static` and
# against the static library.
# The installed CLI runs too. Exit 1 on the first thing that is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
bash scripts/deps.sh
build=${RFJIT_INSTALL_BUILD:-build-rel}
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

# The binaries run without LD_LIBRARY_PATH: CMake's build tree and the README's pkg-config
# line (-Wl,-rpath) both record where librfjit.so is.
unset LD_LIBRARY_PATH
export PKG_CONFIG_PATH=$libdir/pkgconfig
for ex in host_app decode_stream kernel_regression; do
    # CMake, with only the prefix to find rfjit by
    cmake -S "$src/examples/$ex" -B "$work/$ex-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$work/$ex-cmake" >/dev/null
    # pkg-config, the README's compile line
    mkdir -p "$work/$ex-pc"
    cc -O2 -Wall -Werror "$src/examples/$ex/main.c" $(pkg-config --cflags --libs rfjit) \
        -Wl,-rpath,"$(pkg-config --variable=libdir rfjit)" -lm -o "$work/$ex-pc/$ex"
    for b in cmake pc; do
        start=$(date +%s%N)
        out=$("$work/$ex-$b/$ex")
        echo "examples: $ex ($b build, $((($(date +%s%N) - start) / 1000000)) ms):"
        sed 's/^/    /' <<<"$out"
    done
done
# pkg-config --static: hwloc's -ludev resolves (libudev-dev) and the binary runs
mkdir -p "$work/pc-static"
cc -O2 -Wall -Werror "$src/examples/decode_stream/main.c" \
    $(pkg-config --static --cflags --libs rfjit) -Wl,-rpath,"$(pkg-config --variable=libdir rfjit)" \
    -lm -o "$work/pc-static/decode_stream"
"$work/pc-static/decode_stream" 200 | sed 's/^/examples: pkg-config --static: /'
# the static library: rfjit::rfjit_static brings LLVM, hwloc and threads along
cmake -S "$src/examples/decode_stream" -B "$work/static" -DCMAKE_PREFIX_PATH="$prefix" \
    -DRFJIT_EXAMPLE_STATIC=ON >/dev/null
cmake --build "$work/static" >/dev/null
if ldd "$work/static/decode_stream" | grep -q librfjit; then
    echo "examples: the static build still loads librfjit.so" >&2
    exit 1
fi
"$work/static/decode_stream" 200 | sed 's/^/examples: static: /'
echo "examples: all built against $prefix and ran"
