# SPDX-License-Identifier: MIT
"""Tests of the compatibility modes (rfjit_attn_desc.compat, Plan(compat=)): rfjit against
NumPy transcriptions of performer-pytorch 1.1.4, Google's Performer (fast_attention.py) and
fast-transformers' Favor at their defaults, always, and against performer-pytorch itself when
it is importable (scripts/deps.sh installs it in .venv, on Debian's torch). Bidirectional
and causal, at scaled row norms from 0.5 to 3, where the eps shifts decide the output.

Tolerances. Against the float64 transcriptions: the reference backend computes in double
from the same float32 inputs and rounds each output once to float32, so |diff| <= 2^-24
max|out| plus double noise; 2^-21 leaves a factor 8. The default backend runs positive in the
two Performer modes on a float32 path, promised within 1e-5 of max|out| (its features carry
the float rounding performer-pytorch's do, below). Against performer-pytorch, which computes
in float32: each feature exponent (|dash| + |x|^2/2 + max, at most ~20 here) carries an
absolute rounding of a few d u |exponent| ~ 1e-6 (d = 16, u = 2^-24), that is a relative
error of 1e-6 in the feature, and the sums over L = 48 keys add sqrt(L) u ~ 4e-7 each; the normalised output
moves by at most a few of these relative to its largest entry: 1e-5 covers it with margin."""
import importlib.util
import sys
import unittest

import numpy as np

import rfjit

SEED = 20261207
F64_TOL = 2.0 ** -21
F32_TOL = 1e-5
NORMS = (0.5, 1.0, 2.0, 3.0)  # scaled row norms |q d^-1/4|


def rows_of_norm(rng, shape, norm):
    """Gaussian directions with every row's d^-1/4-scaled norm equal to norm, float32."""
    x = rng.standard_normal(shape)
    d = shape[-1]
    x *= norm * d ** 0.25 / np.linalg.norm(x, axis=-1, keepdims=True)
    return x.astype(np.float32)


def visibility(lq, lk, causal, key_mask=None):
    """(lq, lk) bool: which keys each query sees (bottom-right causal, key mask)."""
    vis = np.ones((lq, lk), dtype=bool)
    if causal:
        vis = np.arange(lk)[None, :] <= np.arange(lq)[:, None] + (lk - lq)
    if key_mask is not None:
        vis &= np.asarray(key_mask, dtype=bool)[None, :]
    return vis


def performer_features(x, w, is_query, eps, visible=None):
    """performer-pytorch softmax_kernel and Google's nonnegative_softmax_kernel_feature_
    creator: m^-1/2 (exp(dash - |x'|^2/2 - max) + eps), x' = d^-1/4 x, dash = W x'; the max
    is the row's for a query, over every (visible) key and feature for keys. x: (L, d)."""
    x = x.astype(np.float64) * x.shape[-1] ** -0.25
    dash = x @ w.astype(np.float64).T
    diag = 0.5 * (x * x).sum(-1, keepdims=True)
    if is_query:
        c = dash.max(-1, keepdims=True)
    else:
        c = dash[visible if visible is not None else slice(None)].max()
    return (np.exp(dash - diag - c) + eps) / np.sqrt(w.shape[0])


def favor_features(x, w):
    """fast-transformers Favor (stabilize=False) with omega = W^T: [e^{u - o}, e^{-u - o}],
    u = x' omega, o = |x'|^2/2 + ln(2m)/2, x' = d^-1/4 x. x: (L, d)."""
    x = x.astype(np.float64) * x.shape[-1] ** -0.25
    u = x @ w.astype(np.float64).T
    o = 0.5 * (x * x).sum(-1, keepdims=True) + 0.5 * np.log(2 * w.shape[0])
    return np.concatenate([np.exp(u - o), np.exp(-u - o)], -1)


def sincos_features(x, w, visible=None):
    """Google's sincos_softmax_kernel_feature_creator: m^-1/2 [cos dash, sin dash]
    e^{diag - max diag}, the max over the sequence's (visible) rows. x: (L, d)."""
    x = x.astype(np.float64) * x.shape[-1] ** -0.25
    dash = x @ w.astype(np.float64).T
    diag = 0.5 * (x * x).sum(-1, keepdims=True)
    renorm = diag[visible if visible is not None else slice(None)].max()
    return np.concatenate([np.cos(dash), np.sin(dash)], -1) * np.exp(diag - renorm) / \
        np.sqrt(w.shape[0])


def compat_attention(mode, q, k, v, w, causal, key_mask=None, estimator=None):
    """One (batch, head) of q (Lq, d), k (Lk, d), v (Lk, dv) as the mode's code computes it
    at its defaults (float64). Masked keys take no part, as rfjit defines them."""
    lq, lk = q.shape[0], k.shape[0]
    vis = visibility(lq, lk, causal, key_mask)
    keys = vis.any(0)
    if estimator == "trig":
        qf, kf = sincos_features(q, w), sincos_features(k, w, keys)
    elif mode == "fast-transformers":
        qf, kf = favor_features(q, w), favor_features(k, w)
    else:
        eps = 1e-4 if mode == "performer-pytorch" else 1e-6
        qf = performer_features(q, w, True, eps)
        kf = performer_features(k, w, False, eps, keys)
    v = v.astype(np.float64)
    out = np.zeros((lq, v.shape[1]))
    for i in range(lq):
        sel = vis[i]
        if not sel.any():
            continue  # a query that sees no key: zeros
        z = kf[sel].sum(0)
        num = qf[i] @ (kf[sel].T @ v[sel])
        if mode == "performer-pytorch":
            den = qf[i] @ (z + 1e-6) if causal else qf[i] @ z
        elif mode == "google-performer":
            den = qf[i] @ z
            den += 2e-6 * (abs(den) <= 1e-6)
        else:
            den = qf[i] @ z + 1e-6
        out[i] = num / den
    return out


def rel_err(got, want):
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


class IsolatedContextCase(unittest.TestCase):
    """A context of its own, with no disk cache and no wisdom, for the class's tests (the
    other test modules share it)."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = rfjit.Context(cache_dir="", wisdom_path="")

    @classmethod
    def tearDownClass(cls):
        cls.ctx.close()


class TestTranscriptions(IsolatedContextCase):
    """rfjit against the NumPy transcriptions, every mode, direction and norm."""
    MODES = (("performer-pytorch", "positive"), ("google-performer", "positive"),
             ("google-performer", "trig"), ("fast-transformers", "hyperbolic"))

    def run_mode(self, mode, est, causal, norm, lq=40, lk=40, d=16, m=24, dv=8,
                 key_mask=None):
        rng = np.random.default_rng([SEED, int(norm * 10), causal, len(mode)])
        q, k = rows_of_norm(rng, (lq, d), norm), rows_of_norm(rng, (lk, d), norm)
        v = rng.standard_normal((lk, dv)).astype(np.float32)
        w = rng.standard_normal((m, d)).astype(np.float32)
        mask = None if key_mask is None else key_mask[None, :]
        want = compat_attention(mode, q, k, v, w, causal, key_mask, est)
        float_path = est == "positive" and mode != "fast-transformers"
        for backend, tol in (("reference", F64_TOL), ("auto", F32_TOL if float_path else F64_TOL)):
            p = self.ctx.plan(d, dv=dv, estimator=est, causal=causal, projection=w, compat=mode,
                              backend=backend)
            got = p(q[None, None], k[None, None], v[None, None], key_mask=mask)[0, 0]
            err = rel_err(got, want)
            self.assertLessEqual(err, tol, "mode %s %s %s causal %d norm %g seed %d" %
                                 (mode, est, backend, causal, norm, SEED))

    def test_every_mode_direction_and_norm(self):
        for mode, est in self.MODES:
            for causal in (False, True):
                for norm in NORMS:
                    with self.subTest(mode=mode, estimator=est, causal=causal, norm=norm):
                        self.run_mode(mode, est, causal, norm)

    def test_causal_offset_and_masked_keys_take_no_part(self):
        mask = np.ones(48, dtype=bool)
        mask[[0, 5, 17, 40]] = False  # key 0 is the first every causal query would see
        for mode, est in self.MODES:
            for causal in (False, True):
                with self.subTest(mode=mode, estimator=est, causal=causal):
                    self.run_mode(mode, est, causal, 2.0, lq=32, lk=48, key_mask=mask)

    def test_the_eps_matters_at_large_norms(self):
        """At norm 3 performer-pytorch's numerics and rfjit's own differ by far more than the
        tolerance (else the tests above would prove nothing)."""
        rng = np.random.default_rng(SEED)
        q, k = rows_of_norm(rng, (64, 16), 3.0), rows_of_norm(rng, (64, 16), 3.0)
        v = rng.standard_normal((64, 16)).astype(np.float32)
        w = rng.standard_normal((32, 16)).astype(np.float32)
        outs = [self.ctx.plan(16, causal=True, projection=w, compat=c)(q, k, v)
                for c in ("none", "performer-pytorch")]
        self.assertGreater(rel_err(outs[0], outs[1].astype(np.float64)), 100 * F32_TOL)

    def test_performer_causal_keys_see_the_future(self):
        """The whole-sequence key maximum: changing the last key moves the first output in
        performer-pytorch's causal mode, never in rfjit's own."""
        rng = np.random.default_rng(SEED + 1)
        q, k = rows_of_norm(rng, (16, 16), 2.0), rows_of_norm(rng, (16, 16), 2.0)
        v = rng.standard_normal((16, 16)).astype(np.float32)
        w = rng.standard_normal((32, 16)).astype(np.float32)
        k2 = k.copy()  # a last key along W's first row raises the keys' maximum
        k2[-1] = 3.0 * 16 ** 0.25 * w[0] / np.linalg.norm(w[0])
        for compat, moves in (("none", False), ("performer-pytorch", True)):
            p = self.ctx.plan(16, causal=True, projection=w, compat=compat)
            first = [p(q, kk, v)[0] for kk in (k, k2)]
            self.assertEqual(bool(np.any(first[0] != first[1])), moves, compat)

    def test_decoding_gives_the_causal_row_of_the_tokens_so_far(self):
        """A decoder of a compat plan gives, step by step, the last row of the plan over the
        tokens so far (the row performer-pytorch's generation computes when it reruns the
        prefix), to the float path's tolerance: the decoder keeps a state, not the tokens."""
        rng = np.random.default_rng(SEED + 3)
        q, k, v = (rows_of_norm(rng, (1, 2, 12, 16), 2.0) for _ in range(3))
        p = self.ctx.plan(16, m=32, causal=True, compat="performer-pytorch")
        dec = p.decoder(1, 2)
        dec.prefill(q[:, :, :4], k[:, :, :4], v[:, :, :4], out=False)
        for t in range(4, 12):
            got = dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])
            want = p(q[:, :, :t + 1], k[:, :, :t + 1], v[:, :, :t + 1])[:, :, t:]
            self.assertLessEqual(rel_err(got, want.astype(np.float64)), F32_TOL, "step %d" % t)

    def test_none_is_the_default(self):
        rng = np.random.default_rng(SEED + 2)
        q = rng.standard_normal((2, 24, 16)).astype(np.float32)
        for causal in (False, True):
            a = self.ctx.plan(16, causal=causal)(q, q, q)
            b = self.ctx.plan(16, causal=causal, compat="none")(q, q, q)
            self.assertTrue(np.array_equal(a, b))
            self.assertNotIn("compat", self.ctx.plan(16, compat="none").describe())


class TestErrors(IsolatedContextCase):
    def test_unknown_mode(self):
        with self.assertRaises(rfjit.Error) as e:
            self.ctx.plan(16, compat="performer")
        self.assertEqual(e.exception.status, "RFJIT_E_INVALID_ARG")
        self.assertIn("'performer' is unknown (known: none, performer-pytorch",
                      str(e.exception))

    def test_mode_without_the_estimator(self):
        for est, mode in (("exact", "performer-pytorch"), ("hyperbolic", "google-performer"),
                          ("positive", "fast-transformers"), ("eva", "fast-transformers")):
            with self.subTest(estimator=est, mode=mode):
                with self.assertRaises(rfjit.Error) as e:
                    self.ctx.plan(16, estimator=est, compat=mode)
                self.assertEqual(e.exception.status, "RFJIT_E_NOT_APPLICABLE")
                self.assertIn("not '%s'" % est, str(e.exception))

    def test_jit_backend_and_bad_types(self):
        with self.assertRaises(rfjit.Error) as e:
            self.ctx.plan(16, compat="performer-pytorch", backend="jit")
        self.assertEqual(e.exception.status, "RFJIT_E_NOT_APPLICABLE")
        with self.assertRaises(rfjit.Error) as e:
            self.ctx.plan(16, compat=1)
        self.assertEqual(e.exception.status, "RFJIT_E_INVALID_ARG")

    def test_describe_names_the_mode(self):
        text = self.ctx.plan(16, compat="google-performer").describe()
        self.assertIn("estimator=positive compat=google-performer ", text)
        self.assertIn("backend=reference", text)


def performer_pytorch_missing():
    """Why performer-pytorch cannot be tested here, or None."""
    for mod in ("torch", "performer_pytorch"):
        if importlib.util.find_spec(mod) is None:
            return "%s is not importable (bash scripts/deps.sh installs it in .venv)" % mod
    return None


if performer_pytorch_missing():  # unittest names skips only when verbose: say it always
    sys.stderr.write("test_compat: skipping the performer-pytorch parity test: %s\n" %
                     performer_pytorch_missing())


@unittest.skipIf(performer_pytorch_missing(), performer_pytorch_missing())
class TestPerformerPytorch(IsolatedContextCase):
    """rfjit against performer-pytorch's FastAttention itself, its projection imported."""

    def run_fast_attention(self, causal, norm, B=2, H=2, L=48, d=16, m=32):
        import contextlib
        import io
        import torch
        from performer_pytorch import FastAttention
        torch.manual_seed(SEED)
        with contextlib.redirect_stdout(io.StringIO()):  # its note about the CPU causal path
            fa = FastAttention(dim_heads=d, nb_features=m, causal=causal)
        rng = np.random.default_rng([SEED, int(norm * 10), causal])
        q, k = rows_of_norm(rng, (B, H, L, d), norm), rows_of_norm(rng, (B, H, L, d), norm)
        v = rng.standard_normal((B, H, L, d)).astype(np.float32)
        with torch.no_grad():
            want = fa(*(torch.from_numpy(a) for a in (q, k, v))).numpy()
        w = fa.projection_matrix.numpy()
        p = self.ctx.plan(d, causal=causal, projection=w, compat="performer-pytorch")
        got = p(q, k, v)
        return rel_err(got, want.astype(np.float64))

    def test_matches_fast_attention(self):
        for causal in (False, True):
            for norm in NORMS:
                with self.subTest(causal=causal, norm=norm):
                    err = self.run_fast_attention(causal, norm)
                    self.assertLessEqual(err, F32_TOL, "causal %d norm %g seed %d" %
                                         (causal, norm, SEED))


if __name__ == "__main__":
    unittest.main()
