# SPDX-License-Identifier: MIT
"""The Python peers of `rfjit bench` (bench/peer_torch.c runs this with RFJIT_BENCH_PYTHON,
else /usr/bin/python3).

usage: peer_torch.py --serve THREADS    (then request lines: H L d dv m causal runs IN OUTDIR PEERS)
       peer_torch.py --probe

IN holds float32 q (H x L x d), k (H x L x d), v (H x L x dv) and W (m x d), the harness's
own data for H heads sharing one projection, so every peer computes on the same numbers and
projection as rfjit and the OpenBLAS peers. Every peer computes all H heads in one call,
batched as its framework does: (H, L, d) tensors, (1, H, L, d) for SDPA and performer. PEERS
is a comma-separated list of: torch_favor (FAVOR+ with the positive features of
est/positive.c in eager torch ops; causal: chunked prefix sums), torch_sdpa (exact attention,
scaled_dot_product_attention; softmax(q k^T / sqrt d) v in a torch without it),
torch_sdpa_bf16 (the same SDPA call on bfloat16 copies of q, k, v made before the timed calls:
torch's own CPU bf16 path, its bf16 output read back as float32 after them) and the
bidirectional FAVOR+ peers of peer_compiled.py
(torch_compile_favor, jax_favor, ort_favor, performer_favor). Each runs on THREADS threads,
2 warm-ups (after a compile where there is one), then `runs` timed calls; its output (H x L x
dv) goes to OUTDIR/NAME.f32. The reply is one JSON line: NAME_ms (median), NAME_compile_ms where it
compiles, NAME_error when it failed (a failing peer never stops the others).
--probe prints one JSON line with each framework's version and the BLAS and kernels it uses;
--serve prints it first.
"""
import json
import math
import os
import sys
import time

CHUNK = 128  # the OpenBLAS peer's chunk (bench.h PEER_FAVOR_CHUNK)


def pin_threads(threads):
    # before any framework is imported: their pools are sized when they load
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if threads == 1:
        # XLA's CPU client has no thread-count flag; this is its one-thread setting
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()


def exact(torch, q, k, v, causal):
    # q, k, v: (H, L, d). As (batch, heads, L, d): on 2-D inputs torch picks its unfused math
    # kernel, on 4-D its fused CPU flash-attention kernel, which is what a model calls
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if sdpa is None:  # torch < 2.0 (Debian's 1.13): what SDPA's math kernel computes
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        if causal:
            s.masked_fill_(torch.ones_like(s, dtype=torch.bool).triu_(1), float("-inf"))
        return torch.softmax(s, dim=-1) @ v
    q4, k4, v4 = (t[None] for t in (q, k, v))
    return sdpa(q4, k4, v4, is_causal=bool(causal))[0]


def exact_bf16(torch, q, k, v, causal):
    """A call of SDPA on bfloat16 copies of q, k, v (H, L, d), made now, outside the timing."""
    sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if sdpa is None:
        raise RuntimeError("no scaled_dot_product_attention in this torch")
    q4, k4, v4 = (t[None].to(torch.bfloat16).contiguous() for t in (q, k, v))
    return lambda: sdpa(q4, k4, v4, is_causal=bool(causal))[0]


def sdpa_kernel(torch, dtype=None):
    """The kernel SDPA picks for a (1, 1, L, d) call of dtype (float32), as torch names it."""
    if not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        return "none: no SDPA in this torch, softmax(q k^T / sqrt d) v instead"
    try:
        from torch.nn.attention import SDPBackend
        x = torch.zeros(1, 1, 256, 64, dtype=dtype or torch.float32)
        return SDPBackend(torch._fused_sdp_choice(x, x, x)).name
    except Exception:
        return "unknown"


def favor(torch, q, k, v, ws, causal):
    # q, k, v: (H, L, d), ws shared by the heads. phi(x)_r = exp(w_r . x - |x|^2 / 2),
    # x = q d^{-1/4} (folded into ws); queries shifted by their own maximum, each head's keys
    # by that head's maximum, m^{-1/2} left out: all cancel.
    d = q.shape[-1]
    half = 0.5 / math.sqrt(d)
    lq = q @ ws.T - half * (q * q).sum(-1, keepdim=True)
    fq = torch.exp(lq - lq.amax(-1, keepdim=True))
    lk = k @ ws.T - half * (k * k).sum(-1, keepdim=True)
    fk = torch.exp(lk - lk.amax((-2, -1), keepdim=True))
    if not causal:
        s = fk.transpose(-2, -1) @ v
        z = fk.sum(-2).unsqueeze(-1)
        return (fq @ s) / (fq @ z)
    H, L, dv, m = q.shape[0], q.shape[1], v.shape[-1], ws.shape[0]
    s = torch.zeros(H, m, dv)
    z = torch.zeros(H, m, 1)
    out = torch.empty(H, L, dv)
    for c0 in range(0, L, CHUNK):
        qc, kc, vc = fq[:, c0:c0 + CHUNK], fk[:, c0:c0 + CHUNK], v[:, c0:c0 + CHUNK]
        a = (qc @ kc.transpose(-2, -1)).tril_()
        num = a @ vc + qc @ s
        den = a.sum(-1, keepdim=True) + qc @ z
        out[:, c0:c0 + CHUNK] = num / den
        s += kc.transpose(-2, -1) @ vc
        z += kc.sum(-2).unsqueeze(-1)
    return out


def timed(fn, runs):
    """Median ms of `runs` calls after 2 warm-ups, and the last output."""
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


def eager_peers(torch, data, causal):
    q, k, v, w = data
    ws = w * q.shape[-1] ** -0.25

    return {"torch_favor": lambda: (lambda: favor(torch, q, k, v, ws, causal)),
            "torch_sdpa": lambda: (lambda: exact(torch, q, k, v, causal)),
            "torch_sdpa_bf16": lambda: exact_bf16(torch, q, k, v, causal)}


def serve(threads):
    """One process per thread count for the whole bench run, so that importing the frameworks
    and warming torch.compile up are paid once, not per shape: the probe line first, then one
    reply line per request line (H L d dv m causal runs IN OUTDIR PEERS) until stdin closes."""
    pin_threads(threads)
    if not probe():
        return
    import torch
    torch.set_num_threads(threads)
    for line in sys.stdin:
        print(json.dumps(run(torch, threads, line.split())), flush=True)


def run(torch, threads, argv):
    import numpy as np

    H, L, d, dv, m, causal, runs = (int(x) for x in argv[:7])
    path_in, outdir, wanted = argv[7], argv[8], argv[9].split(",")
    nq, nv = H * L * d, H * L * dv
    raw = torch.from_file(path_in, size=2 * nq + nv + m * d, dtype=torch.float32)
    data = (raw[:nq].view(H, L, d), raw[nq:2 * nq].view(H, L, d),
            raw[2 * nq:2 * nq + nv].view(H, L, dv), raw[2 * nq + nv:].view(m, d))
    makers = eager_peers(torch, data, causal)
    res = {}
    if any(name not in makers for name in wanted):
        try:
            import peer_compiled
            makers.update(peer_compiled.makers(torch, data, threads))
        except Exception as e:
            res["compiled_error"] = why(e)
    for name in wanted:
        try:
            with torch.inference_mode():
                t0 = time.perf_counter()
                fn = makers[name]()  # builds and compiles; a compiling peer also runs once
                build_ms = 1e3 * (time.perf_counter() - t0)
                res[name + "_ms"], out = timed(fn, runs)
                if getattr(fn, "compiles", False):
                    res[name + "_compile_ms"] = build_ms
                if isinstance(out, torch.Tensor):
                    out = out.float().numpy()  # bf16 has no NumPy type; float32 as it is
                np.asarray(out, dtype=np.float32).tofile(os.path.join(outdir, name + ".f32"))
        except Exception as e:  # a peer's failure is reported, not fatal
            res.pop(name + "_ms", None)
            res[name + "_error"] = why(e)
    return res


def why(e):
    return f"{type(e).__name__}: {e}".splitlines()[0][:150]


def probe():
    about = {}
    try:
        import torch
        about["torch"] = torch.__version__
        about["sdpa"] = int(hasattr(torch.nn.functional, "scaled_dot_product_attention"))
        about["torch_about"] = torch_kernels(torch)
    except Exception as e:
        about["torch_error"] = why(e)
        print(json.dumps(about), flush=True)
        return False
    try:
        import peer_compiled
        about.update(peer_compiled.probe(torch))
    except Exception as e:
        about["compiled_error"] = why(e)
    print(json.dumps(about), flush=True)
    return True


def torch_kernels(torch):
    cfg = torch.__config__.show()
    blas = next((ln.split("BLAS_INFO=")[1].split(",")[0] for ln in cfg.split("\n")
                 if "BLAS_INFO=" in ln), "unknown")
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
    parts = [f"BLAS {blas}", f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'}",
             f"oneDNN {'yes' if torch.backends.mkldnn.is_available() else 'no'}",
             f"CPU kernels {cap}", f"SDPA kernel {sdpa_kernel(torch)}",
             f"bf16 SDPA kernel {sdpa_kernel(torch, torch.bfloat16)}"]
    return ", ".join(parts)


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        probe()
    elif len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(__doc__)
