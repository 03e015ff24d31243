#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Performer language model of examples/performer_lm served in C through rfjit, against the
# same model in performer-pytorch, on a held-out text (the first 512 bytes of
# /usr/share/doc/libcriterion-dev/copyright, which deps.sh installs; training never saw it):
# installs what is missing (deps.sh), builds build/performer_lm ($RFJIT_BUILD_DIR if set), runs
# the C server (the logits of every position in one prefill; 256 greedy tokens after the first
# 256 bytes, one decode step each), then examples/performer_lm/run_torch.py (the same, with
# generation recomputing the whole sequence per token, as performer-pytorch users do), both on
# $RFJIT_LM_THREADS threads (default 1), and ends with the comparison:
#   performer_lm: logits max rel diff X, generated tokens equal N/256, rfjit A tok/s, torch B tok/s
# The full form runs torch 2.x from PyPI in .venv-bench, the benchmarks' venv (created here from
# bench/requirements.txt as scripts/bench.sh does, when missing; a few GB), or the python of
# $RFJIT_LM_PYTHON (one with torch 2.x and performer-pytorch) if set. --reduced (CI): 32
# generated tokens, on the test venv .venv (Debian's torch 1.13 + performer-pytorch, deps.sh),
# under a minute on idle cores, and exits 1 unless X <= 1e-4 and every generated token agrees.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "performer_lm.sh: $*" >&2; }
reduced=0
case "${1:-}" in
--reduced) reduced=1 ;;
"") ;;
*) say "usage: scripts/performer_lm.sh [--reduced]"; exit 2 ;;
esac
bash scripts/deps.sh
if [ $reduced -eq 1 ]; then
    py=$PWD/.venv/bin/python3
    count=32
    strict=(--strict)
elif [ -n "${RFJIT_LM_PYTHON:-}" ]; then
    py=$RFJIT_LM_PYTHON
    count=256
    strict=()
else
    venv=$PWD/.venv-bench
    py=$venv/bin/python3
    req=bench/requirements.txt
    # the readiness test and creation of scripts/bench.sh, so either script makes it for both
    imports=$(sed -n 's/^# import: //p' "$req")
    if ! { [ -x "$py" ] && "$py" -c "import $imports" 2>/dev/null; }; then
        say "creating $venv with $req (PyPI, a few GB: minutes)"
        /usr/bin/python3 -m venv "$venv"
        "$py" -m pip install -q --disable-pip-version-check -r "$req" >/dev/null
        say "venv ready: $py"
    fi
    count=256
    strict=()
fi
build=${RFJIT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRFJIT_WERROR=ON >/dev/null
cmake --build "$build" -j2 --target performer_lm >/dev/null
work=$(mktemp -d /tmp/rfjit_lm_XXXXXX)
trap 'rm -rf "$work"' EXIT
head -c 512 /usr/share/doc/libcriterion-dev/copyright >"$work/text"
head -c 256 "$work/text" >"$work/prompt"
model=examples/performer_lm/model.npz
export RFJIT_LM_THREADS=${RFJIT_LM_THREADS:-1}
"$build/performer_lm" "$model" logits "$work/text" "$work/logits.npy" | tee "$work/prefill.txt"
"$build/performer_lm" "$model" generate "$work/prompt" "$count" "$work/gen" |
    tee "$work/generate.txt"
"$py" examples/performer_lm/run_torch.py "$work/text" --model "$model" --generate "$count" \
    --threads "$RFJIT_LM_THREADS" --rfjit "$work" "${strict[@]}"
