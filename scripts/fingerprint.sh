#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Prints a fingerprint of what rfjit computes, for proving that a change of code that must
# not change results (a refactor, a move) left every output bit-identical: run it on the
# build before and after and diff the two. Usage: scripts/fingerprint.sh [BUILD_DIR] > FILE
# (default build/). It covers every estimator on each of the avx2 and generic ISAs, both
# directions and both backends, twice over:
#   - `rfjit check --estimator all --json` (run times masked; errors printed to 7 digits);
#   - the first 16 hex digits of the SHA-256 of `rfjit attention`'s output .npy on two fixed
#     (2, 3, L, d) problems, or the exit code and message where the CLI refuses.
# Needs /usr/bin/python3 with numpy (scripts/deps.sh installs it) for the fixed inputs.
set -u
cd "$(dirname "$0")/.."
R=${1:-build}/rfjit
[ -x "$R" ] || { echo "fingerprint: no $R (build first)" >&2; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
/usr/bin/python3 - "$T" <<'PY'
import sys
import numpy as np
d = sys.argv[1]
g = np.random.default_rng(7)
for n, (L, dd) in {'a': (200, 64), 'b': (77, 32)}.items():
    for x, s in (('q', 0.3), ('k', 0.3), ('v', 1.0)):
        np.save(f'{d}/{x}{n}.npy', (s * g.standard_normal((2, 3, L, dd))).astype(np.float32))
PY
for isa in avx2 generic; do
    for c in "" --causal; do
        for be in jit reference; do
            echo "== check isa=$isa $c backend=$be"
            "$R" check --estimator all --json --isa $isa $c --backend $be --L 300 --seeds 3 2>&1 |
                sed -E 's/"time_ms": *[0-9.e+-]+/"time_ms":X/g'
        done
    done
done
for e in exact positive hyperbolic trig oprf saderf sderf aderf hybrid eva; do
    for n in a b; do
        for c in "" --causal; do
            for be in auto reference; do
                rm -f "$T/o.npy"
                "$R" attention --queries "$T/q$n.npy" --keys "$T/k$n.npy" --values "$T/v$n.npy" \
                    -o "$T/o.npy" --estimator $e $c --backend $be --no-warn --m 64 --seed 3 \
                    >/dev/null 2>"$T/err"
                rc=$?
                h=$([ -f "$T/o.npy" ] && sha256sum <"$T/o.npy" | cut -c1-16)
                echo "attn $e $n $c $be rc=$rc $h $(head -c 120 "$T/err")"
            done
        done
    done
done
