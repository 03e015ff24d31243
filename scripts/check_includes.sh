#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Enforces the layering of docs/architecture.md on the sources' #include lines: the library is
# core < est < gen < runtime < tuner < api, and a file includes only its own layer's headers,
# lower layers' and the public header; no header include cycle; LLVM only in the IR generator
# and runtime/jit.c; tools see only the public header. Exit 1 on a violation, naming it.
# scripts/check_layers.sh checks the same order on the built objects' symbols.
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
SOURCES=$(sources)

# The layer order: a library file may include "rfjit.h" and "<layer>/..." of its own layer or
# a lower one, always by qualified path (only the root is on the include path).
layers=(core est gen runtime tuner api)
allowed=""
for layer in "${layers[@]}"; do
    allowed="${allowed:+$allowed|}$layer"
    for f in $(printf '%s\n' $SOURCES | grep "^$layer/"); do
        while read -r l; do
            bad "$f: $l (a $layer/ file includes rfjit.h and ${allowed//|/, }/ headers only)"
        done < <(grep -E '^\s*#\s*include\s*"' "$f" | grep -vE "\"(rfjit\.h|($allowed)/[a-z_/]+\.h)\"" |
                 grep -v '"gen_hash.h"')
    done
done
# gen_hash.h is generated into the build tree for the kernel cache alone.
for f in $(printf '%s\n' $SOURCES | grep -v '^runtime/kcache.c$'); do
    grep -q '#include *"gen_hash.h"' "$f" && bad "$f includes gen_hash.h (runtime/kcache.c only)"
done

# The IR generator is reached only through runtime/jit.c: other runtime, tuner and api files
# may see gen/kplan.h (the plain-C kernel plan), never gen/gen.h or the IR layer.
for f in $(printf '%s\n' $SOURCES | grep -E '^(runtime|tuner|api)/' | grep -v '^runtime/jit.c$'); do
    grep -Eq '#include *"gen/(gen|ir[a-z_]*|tmpl/[a-z_]+)\.h"' "$f" && bad "$f includes the IR generator"
done

# LLVM only in the IR generator (gen/ but its plain-C kernel plan) and runtime/jit.c, plus
# blake3 in runtime/hash.c.
for f in $SOURCES; do
    case "$f" in
        gen/kplan.*) ;;
        gen/*|runtime/jit.c|tests/*) continue ;;
    esac
    if grep -q '#include *<llvm-c/' "$f"; then
        if [ "$f" = runtime/hash.c ] && ! grep '#include *<llvm-c/' "$f" | grep -qv 'blake3.h'; then
            continue
        fi
        bad "$f includes LLVM"
    fi
done

# Estimators never mention LLVM; core/, est/ and gen/ have no threads, hwloc or file I/O.
for f in $(printf '%s\n' $SOURCES | grep '^est/'); do
    grep -q 'LLVM' "$f" && bad "$f mentions LLVM (estimators describe their map as data)"
done
for f in $(printf '%s\n' $SOURCES | grep -E '^(core|est|gen)/'); do
    grep -Eq '#include *<(pthread|hwloc)\.h>' "$f" && bad "$f uses threads or hwloc"
    grep -Eq '\b(fopen|open|fwrite|printf|fprintf|puts)\s*\(' "$f" && bad "$f does I/O or prints"
done

# Tools and benchmarks: the public header and their own headers only, plus runtime/fsutil.h
# (self-contained POSIX file helpers), so that every file rfjit writes for the user is written
# one way.
for f in $(printf '%s\n' $SOURCES | grep -E '^(tools|bench)/'); do
    while read -r l; do
        bad "$f: $l (tools see include/rfjit.h and runtime/fsutil.h only)"
    done < <(grep -E '#include *"' "$f" |
             grep -vE '"(rfjit\.h|runtime/fsutil\.h|npy\.h|cli\.h|bench[a-z_]*\.h)"')
done

# No cycle among the library's headers (a cycle compiles, thanks to the guards, but hides
# which header needs which).
cycle=$(printf '%s\n' $SOURCES | grep -E '^(core|est|gen|runtime|tuner|api)/.*\.h$' |
    while read -r h; do
        grep -oE '^\s*#\s*include\s*"[a-z_/]+\.h"' "$h" | sed -E 's/.*"(.*)"/\1/' |
            while read -r to; do echo "$h $to"; done
    done | tsort 2>&1 >/dev/null | grep -v 'input contains a loop' | sed 's/^tsort: //')
[ -n "$cycle" ] && bad "header include cycle: $(echo $cycle)"
exit $fail
