# SPDX-License-Identifier: MIT
"""The torch peer of `rfjit bench` (bench/peer_torch.c runs it with /usr/bin/python3).

usage: peer_torch.py L d dv m causal threads runs IN OUT with_exact

IN holds float32 q (L x d), k (L x d), v (L x dv) and W (m x d), the harness's own data, so
torch computes on the same numbers as rfjit and the OpenBLAS peers. Times exact attention
(scaled_dot_product_attention where torch has it, else softmax(q k^T / sqrt d) v) unless
with_exact is 0, and FAVOR+ with the same W and the positive features of est/positive.c
(causal: chunked prefix sums, torch ops only); 2 warm-ups, then `runs` timed calls each.
Writes the exact output (if run) and the FAVOR+ output to OUT as float32, and prints one JSON
line: torch version, median ms of each, and FAVOR+'s relative error against torch's exact.
"""
import json
import math
import sys
import time

import torch

CHUNK = 128  # the OpenBLAS peer's chunk (bench.h PEER_FAVOR_CHUNK)


def exact(q, k, v, causal, mask):
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if sdpa is not None:
        return sdpa(q, k, v, is_causal=bool(causal))
    s = (q @ k.T) * (1.0 / math.sqrt(q.shape[1]))
    if causal:
        s.masked_fill_(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def favor(q, k, v, ws, causal):
    # phi(x)_r = exp(w_r . x - |x|^2 / 2), x = q d^{-1/4} (folded into ws); queries shifted
    # by their own maximum, keys by the global one, m^{-1/2} left out: all cancel.
    d = q.shape[1]
    half = 0.5 / math.sqrt(d)
    lq = q @ ws.T - half * (q * q).sum(-1, keepdim=True)
    fq = torch.exp(lq - lq.amax(-1, keepdim=True))
    lk = k @ ws.T - half * (k * k).sum(-1, keepdim=True)
    fk = torch.exp(lk - lk.max())
    if not causal:
        s = fk.T @ v
        z = fk.sum(0)
        return (fq @ s) / (fq @ z).unsqueeze(-1)
    L, dv, m = q.shape[0], v.shape[1], ws.shape[0]
    s = torch.zeros(m, dv)
    z = torch.zeros(m)
    out = torch.empty(L, dv)
    for c0 in range(0, L, CHUNK):
        qc, kc, vc = fq[c0:c0 + CHUNK], fk[c0:c0 + CHUNK], v[c0:c0 + CHUNK]
        a = (qc @ kc.T).tril_()
        num = a @ vc + qc @ s
        den = a.sum(-1) + qc @ z
        out[c0:c0 + CHUNK] = num / den.unsqueeze(-1)
        s += kc.T @ vc
        z += kc.sum(0)
    return out


def timed(fn, runs):
    for _ in range(2):
        out = fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        ts.append(1e3 * (time.perf_counter() - t0))
    ts.sort()
    n = len(ts)
    med = ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])
    return med, out


def main():
    L, d, dv, m, causal, threads, runs = (int(x) for x in sys.argv[1:8])
    path_in, path_out, with_exact = sys.argv[8], sys.argv[9], int(sys.argv[10])
    torch.set_num_threads(threads)
    raw = torch.from_file(path_in, size=2 * L * d + L * dv + m * d, dtype=torch.float32)
    q = raw[:L * d].view(L, d)
    k = raw[L * d:2 * L * d].view(L, d)
    v = raw[2 * L * d:2 * L * d + L * dv].view(L, dv)
    w = raw[2 * L * d + L * dv:].view(m, d)
    ws = w * d ** -0.25
    mask = torch.ones(L, L, dtype=torch.bool).triu_(1) if causal and with_exact else None
    res = {"torch": torch.__version__, "exact_ms": None, "favor_ms": None,
           "favor_vs_exact": None}
    with torch.inference_mode():
        outs = []
        if with_exact:
            res["exact_ms"], oe = timed(lambda: exact(q, k, v, causal, mask), runs)
            outs.append(oe)
        res["favor_ms"], of = timed(lambda: favor(q, k, v, ws, causal), runs)
        outs.append(of)
        if with_exact:
            res["favor_vs_exact"] = float((of - oe).norm() / oe.norm())
        torch.cat([o.reshape(-1) for o in outs]).numpy().tofile(path_out)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
