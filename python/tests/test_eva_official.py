# SPDX-License-Identifier: MIT
"""Tests of the official EVA variant (Plan(eva_variant='official'), est/eva_official.c):
rfjit on both backends against a NumPy transcription of the HKUNLP efficient-attention code
(efficient_attention/eva.py, bidirectional; causal_eva.py, causal) in eval mode with identity
learned maps, written from that code's steps as math: padding to a multiple of the window,
window blocks, chunk means counting the padding as zeros, the proposal mean as the sample,
beta from prm_projection's d^-1/2 (mu.k - |k|^2/2) with padded keys at -5e4, chunk logits
q.kbar d^-1/2 over every chunk (bidirectional) or the chunks before the query's own (causal),
one softmax over [window logits, chunk logits]. Lengths that leave a partly padded window, a
partly padded chunk and a chunk of padding only; chunk sizes below and above the window.
Also the wiring: bad names, other estimators, shapes the official code does not define.

Tolerances. The reference backend computes in double from the same float32 inputs and rounds
each output once to float32: 2^-21 of the largest output leaves a factor 8 over 2^-24. The
JIT kernel computes the softmax in float32 on rows built in double: at L <= 64 keys and
logits of a few units, each weight carries a few d u |logit| ~ 1e-6 relative (u = 2^-24,
d = 16) and the sum over <= 64 terms adds sqrt(64) u ~ 5e-7: 1e-5 covers it with margin."""
import unittest

import numpy as np

import rfjit
from test_compat import IsolatedContextCase, rel_err

SEED = 20261207
F64_TOL = 2.0 ** -21
F32_TOL = 1e-5
MASK_VAL = -5e4  # the official code's masked logit


def softmax(z, axis=-1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def official_eva(q, k, v, window, num_chunks, causal):
    """The official EVA attention, eval mode, identity maps, for one head: q, k (N, d), v (N, dv)
    raw; returns (N, dv) in float64."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    n, d = q.shape
    scale = d ** -0.5
    # pad the sequence to a multiple of the window; the padding is a key mask
    npad = -(-n // window) * window
    pad = lambda a: np.concatenate([a, np.zeros((npad - n, a.shape[1]))])
    qp, kp, vp = pad(q), pad(k), pad(v)
    padded = np.arange(npad) >= n
    # window blocks of queries and keys (no overlap extension)
    nw = npad // window
    wq, wk, wv = (a.reshape(nw, window, -1) for a in (qp, kp, vp))
    # chunks of floor(Np / num_chunks) positions; the code's reshape needs them to tile Np
    cs = npad // num_chunks
    nc = npad // cs
    assert nc * cs == npad, "the official code cannot chunk this length"
    cq, ck, cv = (a.reshape(nc, cs, -1) for a in (qp, kp, vp))
    cmask = padded.reshape(nc, cs)
    qbar, kbar = cq.mean(axis=1), ck.mean(axis=1)
    mu = qbar + kbar if causal else 0.5 * (qbar + kbar)  # eval: the sample is the mean
    # prm_projection(normalize=False): mu . (d^-1/2 k) - d^-1/2 |k|^2 / 2
    logw = np.einsum("cd,cjd->cj", mu, scale * ck) - scale * (ck ** 2).sum(-1) / 2
    logw[cmask] = MASK_VAL
    beta = np.einsum("cj,cjd->cd", softmax(logw), cv)
    chunk_logits = np.einsum("wid,cd->wic", wq, scale * kbar)
    if causal:  # query at position p sees chunks c < p // cs
        pos = np.arange(npad).reshape(nw, window)
        hidden = np.arange(nc)[None, None, :] >= (pos // cs)[:, :, None]
        chunk_logits[hidden] = MASK_VAL
    local = np.einsum("wie,wje->wij", wq, wk) * scale
    local_mask = np.broadcast_to(padded.reshape(nw, 1, window), local.shape).copy()
    if causal:
        local_mask |= padded.reshape(nw, window, 1)
        local_mask |= np.triu(np.ones((window, window), dtype=bool), 1)[None]
    local[local_mask] = MASK_VAL
    attn = softmax(np.concatenate([local, chunk_logits], axis=-1))
    out = np.einsum("wij,wjd->wid", attn[..., :window], wv)
    out += np.einsum("wic,cd->wid", attn[..., window:], beta)
    return out.reshape(npad, -1)[:n]


class EvaOfficialBase(IsolatedContextCase):
    def run_plan(self, q, k, v, window, chunks, causal, backend, variant="official"):
        d, dv = q.shape[-1], v.shape[-1]
        with self.ctx.plan(d, dv=dv, estimator="eva", causal=causal, eva_window=window,
                           eva_chunks=chunks, eva_variant=variant, backend=backend) as p:
            return p(q, k, v)


class TestTranscription(EvaOfficialBase):
    """rfjit against the transcription: both directions, both backends."""
    # (N, window, chunks): 64 = 4 windows and 8 chunks of 8 (chunk = window); 45 pads to 48,
    # whose last window is part padding, with chunks of 8 (the last part padding), of 3 (the
    # last all padding, smaller than the window), and of 24 (larger than the window); 20 with
    # one chunk.
    CASES = ((64, 16, 8), (64, 8, 4), (45, 8, 6), (45, 8, 16), (48, 8, 2), (20, 4, 1))

    def test_matches_transcription(self):
        rng = np.random.default_rng(SEED)
        d, dv = 16, 8
        for n, window, chunks in self.CASES:
            q = (rng.standard_normal((n, d)) * 0.5).astype(np.float32)
            k = (rng.standard_normal((n, d)) * 0.5).astype(np.float32)
            v = rng.standard_normal((n, dv)).astype(np.float32)
            for causal in (False, True):
                if causal and chunks == 1:
                    continue  # causal_eva.py itself fails there (file comment of the C code)
                want = official_eva(q, k, v, window, chunks, causal)
                for backend, tol in (("reference", F64_TOL), ("jit", F32_TOL)):
                    got = self.run_plan(q, k, v, window, chunks, causal, backend)
                    err = rel_err(got, want)
                    self.assertLessEqual(err, tol, "N=%d w=%d C=%d causal=%d %s (seed %d): %.3g"
                                         % (n, window, chunks, causal, backend, SEED, err))

    def test_differs_from_principled(self):
        """The two variants are different estimators: the same plan but for the variant
        gives another output (double counting, ln n_c, the proposal)."""
        rng = np.random.default_rng(SEED + 1)
        q, k = (rng.standard_normal((2, 64, 16)) * 0.5).astype(np.float32)
        v = rng.standard_normal((64, 16)).astype(np.float32)
        a = self.run_plan(q, k, v, 16, 8, False, "reference", "official")
        b = self.run_plan(q, k, v, 16, 8, False, "reference", "principled")
        self.assertGreater(rel_err(a, b.astype(np.float64)), 1e-3)


class TestWiring(EvaOfficialBase):
    def plan_error(self, **kw):
        args = dict(estimator="eva", eva_window=4, eva_chunks=4)
        args.update(kw)
        with self.assertRaises(rfjit.Error) as cm:
            self.ctx.plan(16, **args).close()
        return cm.exception

    def test_bad_names_and_estimators(self):
        e = self.plan_error(eva_variant="offical")
        self.assertEqual(e.status, "RFJIT_E_INVALID_ARG")
        self.assertIn("principled, official", str(e))
        e = self.plan_error(estimator="positive", eva_variant="official")
        self.assertEqual(e.status, "RFJIT_E_NOT_APPLICABLE")
        self.assertIn("eva only", str(e))
        e = self.plan_error(eva_window=0, eva_variant="official")
        self.assertEqual(e.status, "RFJIT_E_INVALID_ARG")
        self.assertIn("window", str(e))

    def test_undefined_shapes_change_nothing(self):
        """Shapes the official code does not define fail with their status and leave the
        output as it was, on both backends: 16 positions in chunks of floor(16 / 5) = 3,
        fewer queries than keys, a key mask."""
        rng = np.random.default_rng(SEED + 2)
        q, k, v = rng.standard_normal((3, 16, 16)).astype(np.float32)
        cases = (("chunk size", (q, k, v), {}, "RFJIT_E_SHAPE"),
                 ("cross", (q[:8], k, v), {}, "RFJIT_E_NOT_APPLICABLE"),
                 ("mask", (q, k, v), {"key_mask": np.arange(16) % 3 != 0},
                  "RFJIT_E_NOT_APPLICABLE"))
        for backend in ("reference", "jit"):
            with self.ctx.plan(16, estimator="eva", eva_window=4, eva_chunks=5,
                               eva_variant="official", backend=backend) as p:
                for name, args, kw, status in cases:
                    out = np.full((args[0].shape[0], 16), 7.0, dtype=np.float32)
                    with self.assertRaises(rfjit.Error, msg=name) as cm:
                        p(*args, out=out, **kw)
                    self.assertEqual(cm.exception.status, status, (backend, name))
                    self.assertIn("official", str(cm.exception), (backend, name))
                    self.assertTrue(np.all(out == 7.0), "%s %s: a failed call wrote" %
                                    (backend, name))


if __name__ == "__main__":
    unittest.main()
