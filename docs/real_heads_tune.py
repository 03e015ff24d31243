#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What `rfjit tune` chooses on the real attention heads (data/real), and whether the choice
keeps its budget on text it never saw: docs/real_heads.md's table.

Per head, direction and budget it runs `rfjit tune --json` with the head's calibration split
as calibration data (every estimator a candidate; no wisdom read or written, no disk cache),
then runs the chosen plan on the held-out split with 8 projection seeds the tuner never used
(30001..30008) and compares it with softmax attention in float64. A cell is the chosen plan,
its mean held-out error |O - O_exact|^2 / |O_exact|^2 and its time over exact attention's,
both from the tune's own table (timed at L = 512 in the same run); "exact" alone when exact
won and no eva row met the budget, and with the fastest eva row that met it otherwise. Where
the chosen plan has an exact transform (rfjit_tune_desc.transforms), the cell names it and
gives the same plan's held-out error without it in brackets.

    RFJIT_LIBRARY=build/librfjit.so PYTHONPATH=python .venv/bin/python3 \\
        docs/real_heads_tune.py --rfjit build/rfjit [--heads 0,5,11] [--budgets 1e-1,1e-2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import rfjit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = range(30001, 30009)


def load(split):
    return [np.load(os.path.join(ROOT, "data", "real", "%s_%s.npy" % (split, x)))
            for x in "qkv"]


def reference(q, k, v, causal):
    s = (q.astype(np.float64) @ k.astype(np.float64).T) / np.sqrt(q.shape[1])
    if causal:
        s[np.triu_indices(s.shape[0], 1)] = -np.inf
    w = np.exp(s - s.max(axis=1, keepdims=True))
    return (w / w.sum(axis=1, keepdims=True)) @ v.astype(np.float64)


def tune(cli, tmp, h, causal, budget):
    files = [os.path.join(tmp, "%s_%d.npy" % (x, h)) for x in "qkv"]
    cmd = [cli, "tune", "--d", "32", "--L", "512", "--budget", repr(budget), "--seed", "7",
           "--calib-queries", files[0], "--calib-keys", files[1], "--calib-values", files[2],
           "--json", "--no-save"] + (["--causal"] if causal else [])
    env = dict(os.environ, RFJIT_WISDOM="", RFJIT_CACHE_DIR="")
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                     text=True).stdout)


XFORM = ((1, "k"), (2, "q"), (4, "balance"), (8, "whiten"))


def xform_names(flags):
    return ",".join(n for f, n in XFORM if flags & f) or None


def heldout_error(ctx, res, held, h, causal, transform):
    q, k, v = (x[h] for x in held)
    ref = reference(q, k, v, causal)
    errs = []
    for seed in SEEDS:
        p = ctx.plan(32, estimator=res["estimator"], m=max(res["m"], 1), causal=causal,
                     seed=seed, eva_window=res["eva_window"] or 16,
                     eva_chunks=res["eva_chunks"] or 8, transform=xform_names(transform),
                     sparse_block=res.get("sparse_block") or 64,
                     sparse_exact=res.get("sparse_exact") or 4)
        o = p(q, k, v).astype(np.float64)
        p.close()
        errs.append(((o - ref) ** 2).sum() / (ref ** 2).sum())
    return float(np.mean(errs))


def xform_text(res):
    return " " + res["transform_name"] if res["transform"] else ""


def params(r):
    """A non-exact row's estimator and parameters, as the cells name them."""
    if r["estimator"] == "eva":
        return "eva w=%d C=%d" % (r["eva_window"], r["eva_chunks"])
    if r["estimator"] == "blocksparse":
        return "blocksparse k=%d m=%d" % (r["sparse_exact"], r["m"])
    return "%s m=%d" % (r["estimator"], r["m"])


def cell(res, err, err0):
    """One tune: the chosen plan, its held-out error (err0: without its transform) and time vs
    exact; when exact is chosen over an eva row that met the budget, that row and its time vs
    exact."""
    exact = next(r for r in res["table"] if r["estimator"] == "exact")
    held = "%.3g (%.3g without)" % (err, err0) if res["transform"] else "%.3g" % err
    if res["estimator"] == "eva":
        return "eva w=%d C=%d%s: %s, %.2fx" % (res["eva_window"], res["eva_chunks"],
                                               xform_text(res), held,
                                               res["time_ms"] / exact["time_ms"])
    if res["estimator"] == "blocksparse":
        return "blocksparse k=%d m=%d%s: %s, %.2fx" % (res["sparse_exact"], res["m"],
                                                        xform_text(res), held,
                                                        res["time_ms"] / exact["time_ms"])
    if res["estimator"] != "exact":
        return "%s m=%d%s: %s, %.2fx" % (res["estimator"], res["m"], xform_text(res), held,
                                         res["time_ms"] / exact["time_ms"])
    met = [r for r in res["table"] if r["estimator"] in ("eva", "blocksparse")
           and r["meets_budget"]]
    if met:
        b = min(met, key=lambda r: r["time_ms"])
        return "exact (%s met, %.2fx)" % (params(b) + xform_text(b),
                                          b["time_ms"] / exact["time_ms"])
    return "exact"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rfjit", default=os.path.join(ROOT, "build", "rfjit"))
    ap.add_argument("--heads", default=",".join(str(h) for h in range(12)))
    ap.add_argument("--budgets", default="1e-1,1e-2")
    a = ap.parse_args()
    heads = [int(x) for x in a.heads.split(",")]
    budgets = [float(x) for x in a.budgets.split(",")]
    runs = [(c, b) for c in (0, 1) for b in budgets]
    calib, held = load("calib"), load("heldout")
    names = np.load(os.path.join(ROOT, "data", "real", "heads.npy"))
    print("| head (layer, head) | " + " | ".join(
        "%s %g" % ("causal" if c else "bidir", b) for c, b in runs) + " |")
    print("|---" * (len(runs) + 1) + "|")
    with tempfile.TemporaryDirectory() as tmp, \
            rfjit.Context(cache_dir="", wisdom_path="") as ctx:
        for h in heads:
            for x, arr in zip("qkv", calib):
                np.save(os.path.join(tmp, "%s_%d.npy" % (x, h)), arr[h])
            cells = []
            for causal, budget in runs:
                res = tune(a.rfjit, tmp, h, causal, budget)
                err = heldout_error(ctx, res, held, h, causal, res["transform"])
                err0 = heldout_error(ctx, res, held, h, causal, 0) if res["transform"] else err
                cells.append(cell(res, err, err0))
            print("| %d (%d, %d) | %s |" % (h, names[h][0], names[h][1], " | ".join(cells)))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
