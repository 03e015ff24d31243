# SPDX-License-Identifier: MIT
"""The torch peer of `rfjit bench --suite decode` (bench/peer_torch.c runs it with
RFJIT_BENCH_PYTHON, else /usr/bin/python3; torch 1.13 and 2.x alike).

usage: peer_torch_decode.py BH m d dv threads steps runs

The recurrent decode loop a PyTorch user writes for FAVOR+ with positive features: BH
independent (sequence, head) states S (m x dv) and z (m), and per step, for every state,
phi = exp(W x - |x|^2 / 2 - max), S += phi_k v^T, z += phi_k, out = phi_q S / phi_q z, in
batched torch ops. After a warm-up batch, `runs` batches of `steps` steps are timed; prints
one JSON line with the torch version and the median microseconds per step (all BH states).
"""
import json
import sys
import time

import torch


def main():
    bh, m, d, dv, threads, steps, runs = (int(a) for a in sys.argv[1:8])
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    scale = d ** -0.25
    w = torch.randn(m, d, generator=g)
    q = torch.randn(16, bh, d, generator=g) * scale
    k = torch.randn(16, bh, d, generator=g) * scale
    v = torch.randn(16, bh, dv, generator=g)
    s = torch.zeros(bh, m, dv)
    z = torch.zeros(bh, m)

    def phi(x):
        u = x @ w.T - 0.5 * (x * x).sum(-1, keepdim=True)
        return torch.exp(u - u.amax(-1, keepdim=True))

    def step(t):
        fk, fq = phi(k[t % 16]), phi(q[t % 16])
        s.add_(fk.unsqueeze(-1) * v[t % 16].unsqueeze(1))
        z.add_(fk)
        num = torch.bmm(fq.unsqueeze(1), s).squeeze(1)
        return num / (fq * z).sum(-1, keepdim=True)

    times = []
    with torch.inference_mode():
        for r in range(runs + 1):
            t0 = time.perf_counter()
            for t in range(steps):
                step(t)
            if r > 0:
                times.append(1e6 * (time.perf_counter() - t0) / steps)
    times.sort()
    print(json.dumps({"torch": torch.__version__, "us_per_step": times[len(times) // 2]}))


if __name__ == "__main__":
    main()
