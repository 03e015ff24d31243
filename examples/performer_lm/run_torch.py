#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The example's model in performer-pytorch, as its users run it, beside the C server's outputs.

Loads model.npz into performer-pytorch's PerformerLM (model.json gives the configuration),
computes the logits of every position of TEXT in one forward, and generates N greedy tokens
after the first PROMPT_LEN bytes of TEXT the way performer-pytorch's AutoregressiveWrapper does:
the whole sequence recomputed for each token, argmax of the last position. Both are timed at
--threads torch threads (the C side gets the same count). With --rfjit DIR (the outputs of
performer_lm: DIR/logits.npy, DIR/gen.bin, DIR/gen.npy, its stdout in DIR/prefill.txt and
DIR/generate.txt) it compares, prints the prefill and
generation speeds of both sides, and ends with the summary line of scripts/performer_lm.sh:

  performer_lm: logits max rel diff X, generated tokens equal N/G, rfjit A tok/s, torch B tok/s

X is the largest, over positions, of max |logit difference| / max |torch logit| at that
position; N is how many generated tokens agree before the first that differs. --strict exits 1
when X > 1e-4 or N < G.
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import time

import numpy as np
import torch
from performer_pytorch import PerformerLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-4


def load_model(path):
    with open(os.path.splitext(path)[0] + ".json") as f:
        config = {k: v for k, v in json.load(f).items() if k != "training"}
    with contextlib.redirect_stdout(io.StringIO()):  # its note about the missing CUDA kernel
        model = PerformerLM(**config)
    arrays = np.load(path)
    state = {k: torch.from_numpy(arrays[k]) for k in arrays.files}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # the updater's copies are the same modules under a second name
    assert not unexpected and all(k.startswith("performer.proj_updater") for k in missing), \
        (missing, unexpected)
    model.fix_projection_matrices_()
    return model.eval()


def timed(fn):
    """fn's result, its wall time, and its CPU time (every thread of the process)"""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


@torch.no_grad()
def prefill_logits(model, text):
    x = torch.tensor(list(text))[None]
    model(x[:, :8])  # first-call allocations out of the timing, as the C side creates its plans
    return timed(lambda: model(x)[0].numpy())


@torch.no_grad()
def generate(model, prompt, count):
    def run():
        seq, logits = list(prompt), []
        for _ in range(count):
            last = model(torch.tensor(seq)[None])[0, -1]
            logits.append(last.numpy())
            seq.append(int(last.argmax()))
        return bytes(seq[len(prompt):]), np.stack(logits)
    return timed(run)


def rel_diff(a, b):
    """max over rows of max |a - b| / max |b|"""
    return float((np.abs(a - b).max(axis=1) / np.abs(b).max(axis=1)).max())


def bits_per_byte(logits, text):
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = lse[:-1] - logits[np.arange(len(text) - 1), list(text[1:])]
    return float(nll.mean() / np.log(2))


def c_rate(path):
    """the tokens/s performer_lm printed (its stdout, kept in path)"""
    return float(re.findall(r"([0-9.]+) tok/s", open(path).read())[-1])


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def compare(args, text, prompt, logits, t_pre, gen, gen_logits, t_gen):
    c_logits = np.load(os.path.join(args.rfjit, "logits.npy"))
    c_gen = open(os.path.join(args.rfjit, "gen.bin"), "rb").read()
    c_gen_logits = np.load(os.path.join(args.rfjit, "gen.npy"))
    c_speed = {k: c_rate(os.path.join(args.rfjit, k + ".txt")) for k in ("prefill", "generate")}
    x = rel_diff(c_logits, logits)
    equal = common_prefix(c_gen, gen)
    # each generated token's logits, while both sides still share the sequence: where rfjit's
    # constant-state decode and the recompute-everything loop differ (the key-maximum leak)
    steps = min(equal + 1, len(gen))
    g = np.abs(c_gen_logits[:steps] - gen_logits[:steps]).max(1) / np.abs(gen_logits[:steps]).max(1)
    print(f"performer_lm: held-out text {len(text)} bytes: {bits_per_byte(logits, text):.3f} "
          f"bits/byte (torch), {bits_per_byte(c_logits, text):.3f} (rfjit)")
    print(f"performer_lm: generation logits rel diff per step: max {g.max():.2e} "
          f"(step {int(g.argmax())}), median {float(np.median(g)):.2e}, first step {g[0]:.2e}")
    print(f"performer_lm: torch generated {gen[:60]!r}...")
    print(f"performer_lm: prefill {len(text)} tokens: rfjit {c_speed['prefill']:.0f} tok/s, "
          f"torch {len(text) / t_pre:.0f} tok/s")
    print(f"performer_lm: logits max rel diff {x:.2e}, generated tokens equal {equal}/{len(gen)}, "
          f"rfjit {c_speed['generate']:.1f} tok/s, torch {len(gen) / t_gen:.1f} tok/s")
    return 1 if args.strict and (x > TOLERANCE or equal < len(gen)) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("text", help="held-out text file (bytes, at most max_seq_len)")
    ap.add_argument("--model", default=os.path.join(HERE, "model.npz"))
    ap.add_argument("--prompt-len", type=int, default=256)
    ap.add_argument("--generate", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rfjit", help="directory of the C side's outputs to compare with")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    text = open(args.text, "rb").read()[:model.max_seq_len]
    prompt = text[:args.prompt_len]
    logits, t_pre, c_pre = prefill_logits(model, text)
    print(f"performer_lm: torch {torch.__version__}, {args.threads} thread(s): prefill "
          f"{len(text)} tokens in {t_pre:.3f} s ({c_pre:.3f} s CPU)", flush=True)
    (gen, gen_logits), t_gen, c_gen = generate(model, prompt, args.generate)
    print(f"performer_lm: torch generated {len(gen)} tokens in {t_gen:.3f} s ({c_gen:.3f} s CPU)",
          flush=True)
    if args.rfjit:
        sys.exit(compare(args, text, prompt, logits, t_pre, gen, gen_logits, t_gen))


if __name__ == "__main__":
    main()
