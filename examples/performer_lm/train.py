#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains the example's byte-level causal Performer LM once and writes model.npz + model.json.

The model is performer-pytorch 1.1.4's PerformerLM (4 layers, 4 heads of 32, nb_features 128,
max_seq_len 512, causal, its defaults otherwise: rotary and fixed sinusoidal positions, PreNorm
LayerNorm, GELU MLP x4, no q/k/v/out biases, untied output). Training text: every regular file
of /usr/share/common-licenses (Debian's base-files). The held-out text the comparison uses
(/usr/share/doc/libcriterion-dev/copyright) is never trained on; its loss is printed.

Environment: PyPI torch 2.x + performer-pytorch, e.g. the benchmarks' venv, .venv-bench, which
scripts/bench.sh creates, or by hand:
`/usr/bin/python3 -m venv V && V/bin/pip install -r bench/requirements.txt` (about 6 GB, under
2 minutes at 60 MB/s), then `V/bin/python3 examples/performer_lm/train.py`; it writes
model.npz and model.json next to itself. Wall time is bounded (--minutes, default 14 in all, the
last --final-share of it with the projections fixed) so it fits a 15-minute budget on 2 shared
cores; the run is seeded, but how many steps fit depends on the machine's load, so a rerun
gives a similar, not an identical, model.

Training follows performer-pytorch: the projection matrices are redrawn every
--redraw-interval forward calls (ProjectionUpdater), then fix_projection_matrices_() freezes
them and a short final phase adapts the weights to the matrices that are saved. One deviation,
for speed only: performer-pytorch without its CUDA extension runs causal attention through
causal_linear_attention_noncuda, which materialises a (n, m, d) context per head and is ~4x
slower on CPU; training swaps in the same arithmetic as a masked quadratic product (identical
up to float rounding, checked at start). Inference in run_torch.py uses the library untouched.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch
from performer_pytorch import FastAttention, PerformerLM
from performer_pytorch.performer_pytorch import causal_linear_attention_noncuda, find_modules

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN_DIR = "/usr/share/common-licenses"
HELD_OUT = "/usr/share/doc/libcriterion-dev/copyright"
CONFIG = dict(num_tokens=256, max_seq_len=512, dim=128, depth=4, heads=4, dim_head=32,
              nb_features=128, causal=True)


def causal_quadratic(q, k, v, eps=1e-6):
    """causal_linear_attention_noncuda's result: eps is added to every feature of the key
    prefix sum there, which is eps * sum(q) in the denominator here."""
    a = torch.einsum("...id,...jd->...ij", q, k).tril()
    den = a.sum(-1) + eps * q.sum(-1)
    return (a @ v) / den.unsqueeze(-1)


def check_equivalence():
    g = torch.Generator().manual_seed(1)
    q, k = (torch.rand(1, 2, 300, 128, generator=g) for _ in range(2))
    v = torch.randn(1, 2, 300, 32, generator=g)
    ref = causal_linear_attention_noncuda(q, k, v)
    diff = (ref - causal_quadratic(q, k, v)).abs().max().item() / ref.abs().max().item()
    assert diff < 1e-5, f"quadratic causal attention differs from performer-pytorch's: {diff}"


def training_bytes():
    names = sorted(n for n in os.listdir(TRAIN_DIR)
                   if not os.path.islink(os.path.join(TRAIN_DIR, n)))
    data = b"\n".join(open(os.path.join(TRAIN_DIR, n), "rb").read() for n in names)
    return torch.tensor(np.frombuffer(data, dtype=np.uint8).astype(np.int64)), names


def batch(data, size, n, gen):
    starts = torch.randint(0, len(data) - n - 1, (size,), generator=gen)
    return torch.stack([data[s:s + n + 1] for s in starts.tolist()])


def loss_of(model, x):
    logits = model(x[:, :-1])
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), x[:, 1:])


def held_out_loss(model):
    text = open(HELD_OUT, "rb").read()[:CONFIG["max_seq_len"] + 1]
    x = torch.tensor(list(text))[None]
    model.eval()
    with torch.no_grad():
        loss = loss_of(model, x).item()
    model.train()
    return loss


def save(model, steps, seconds, losses):
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()
             if not k.startswith("performer.proj_updater") and v.dim() > 0}
    np.savez(os.path.join(HERE, "model.npz"), **{k: np.ascontiguousarray(v, "<f4")
                                                 for k, v in state.items()})
    meta = dict(CONFIG, training=dict(text=TRAIN_DIR, held_out=HELD_OUT, steps=steps,
                                      seconds=round(seconds), **losses,
                                      torch=torch.__version__))
    with open(os.path.join(HERE, "model.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=14.0, help="training wall time")
    ap.add_argument("--final-share", type=float, default=0.15,
                    help="share of the time trained with the projections fixed")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--redraw-interval", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    check_equivalence()
    data, names = training_bytes()
    print(f"train.py: {len(data)} training bytes from {len(names)} files", flush=True)
    model = PerformerLM(**CONFIG, feature_redraw_interval=args.redraw_interval)
    for fa in find_modules(model, FastAttention):
        fa.causal_linear_fn = causal_quadratic
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    n, t0, step, budget = CONFIG["max_seq_len"], time.time(), 0, args.minutes * 60

    def train_step(lr):
        for g in opt.param_groups:
            g["lr"] = lr
        loss = loss_of(model, batch(data, args.batch, n, gen))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    avg = None
    fixed_at = budget * (1 - args.final_share)
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        updater = model.performer.proj_updater
        if time.time() - t0 >= fixed_at and updater.feature_redraw_interval is not None:
            model.fix_projection_matrices_()
            print(f"train.py: step {step}: projections fixed from here on", flush=True)
        warmup = min(1.0, (step + 1) / 20)
        lr = args.lr * warmup * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        loss = train_step(lr)
        avg = loss if avg is None else 0.9 * avg + 0.1 * loss
        step += 1
        if step % 25 == 0:
            print(f"train.py: step {step} {time.time() - t0:.0f} s loss {avg:.3f} "
                  f"held-out {held_out_loss(model):.3f}", flush=True)
    losses = dict(train_loss=round(avg, 4), held_out_loss=round(held_out_loss(model), 4))
    print(f"train.py: {step} steps, {time.time() - t0:.0f} s, {losses}", flush=True)
    save(model, step, time.time() - t0, losses)


if __name__ == "__main__":
    main()
