#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Enforces the dependency rules of the architecture (section 1.3): who may include LLVM,
# hwloc and threads, and that tools see only the public header. Exit 1 on a violation.
set -u
cd "$(dirname "$0")/.."
fail=0
bad() { echo "check_includes: $*" >&2; fail=1; }

# Public header: C99/C++ clean, only <stddef.h> and <stdint.h>.
while read -r l; do
    bad "include/rfjit.h includes more than stddef/stdint: $l"
done < <(grep -n '#include' include/rfjit.h | grep -v -E '<std(def|int)\.h>')

# The C sources: git's list in a clone; in a tree without .git or without git (unpacked from
# an archive) every .c/.h outside hidden and build directories, named as git names them
# (gen/ir.h, not ./gen/ir.h) so the patterns below give the same verdict.
sources() {
    git ls-files '*.c' '*.h' 2>/dev/null ||
        find . \( -name '.?*' -o -name 'build*' \) -prune -o -name '*.[ch]' -print | sed 's|^\./||'
}

# LLVM only in the IR helper layer, the templates and runtime/jit.c (plus blake3 in hash.c).
for f in $(sources); do
    case "$f" in
        gen/ir*|gen/tmpl/*|runtime/jit.c|tests/*|fuzz/*) continue ;;
    esac
    if grep -q '#include *<llvm-c/' "$f"; then
        if [ "$f" = runtime/hash.c ] && ! grep '#include *<llvm-c/' "$f" | grep -qv 'blake3.h'; then
            continue
        fi
        bad "$f includes LLVM"
    fi
done

# Estimator files never mention LLVM; gen/ has no threads, hwloc or file I/O.
for f in gen/est/*.c; do
    grep -q 'LLVM' "$f" && bad "$f mentions LLVM (use the rj_ir helpers)"
done
for f in $(find gen -name '*.[ch]'); do
    grep -Eq '#include *<(pthread|hwloc)\.h>' "$f" && bad "$f uses threads or hwloc"
    grep -Eq '\b(fopen|open|fwrite|printf|fprintf|puts)\s*\(' "$f" && bad "$f does I/O or prints"
done

# Tools and benchmarks: the public header and their own headers only, plus runtime/fsutil.h
# (self-contained POSIX file helpers), so that every file rfjit writes for the user is written
# one way.
for f in $(find tools bench -name '*.[ch]' 2>/dev/null); do
    while read -r l; do
        bad "$f: $l (tools see include/rfjit.h and runtime/fsutil.h only)"
    done < <(grep -E '#include *"' "$f" | grep -vE '"(rfjit\.h|fsutil\.h|npy\.h|cli\.h|bench[a-z_]*\.h)"')
done

# Runtime files other than jit.c may not include gen/gen.h or the IR layer.
for f in runtime/*.c; do
    [ "$f" = runtime/jit.c ] && continue
    grep -Eq '#include *"(gen/)?(gen|ir[a-z_]*)\.h"' "$f" && bad "$f includes the generator"
done
exit $fail
