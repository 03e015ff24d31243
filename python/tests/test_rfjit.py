# SPDX-License-Identifier: MIT
"""Tests of the Python binding (python/rfjit): against a NumPy exact attention, against the C
library's own results through the CLI, against NumPy and torch FAVOR+ implementations fed
the same projection matrix, plus errors, zero-copy and wisdom. Run by ctest (entry `python`)
with RFJIT_LIBRARY and RFJIT_CLI pointing into the build tree."""
import ctypes
import os
import re
import subprocess
import tempfile
import unittest

import numpy as np

import rfjit
from rfjit import _abi

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "include", "rfjit.h")


def numpy_attention(q, k, v, causal):
    """Exact softmax attention in float64, the reference."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        s = np.where(np.tril(np.ones(s.shape[-2:], dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def favor_features(x, w):
    """FAVOR+ positive features exp(w x - |x|^2 / 2) / sqrt(m), float64."""
    x = x.astype(np.float64)
    return np.exp(x @ w.T.astype(np.float64) - 0.5 * (x * x).sum(-1, keepdims=True)) / \
        np.sqrt(w.shape[0])


def rng_arrays(seed, *shapes, scale=1.0):
    r = np.random.default_rng(seed)
    return [(scale * r.standard_normal(s)).astype(np.float32) for s in shapes]


class Attention(unittest.TestCase):
    def test_exact_matches_numpy(self):
        for shape in [(64, 16), (3, 50, 8), (2, 2, 33, 32)]:
            for causal in (False, True):
                q, k, v = rng_arrays(1, shape, shape, shape)
                got = rfjit.attention(q, k, v, estimator="exact", causal=causal)
                want = numpy_attention(q, k, v, causal)
                self.assertEqual(got.shape, shape)
                self.assertEqual(got.dtype, np.float32)
                # float32 inputs and accumulation: 1e-5 of the output scale is ~100 ulps
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max(),
                                           err_msg="shape %s causal %s" % (shape, causal))

    def test_estimates_equal_the_cli(self):
        cli = os.environ.get("RFJIT_CLI")
        if not cli:
            self.skipTest("RFJIT_CLI is not set (ctest sets it)")
        q, k, v = rng_arrays(2, (1, 2, 96, 16), (1, 2, 96, 16), (1, 2, 96, 8))
        with tempfile.TemporaryDirectory() as d:
            for name, a in zip("qkv", (q, k, v)):
                np.save(os.path.join(d, name + ".npy"), a)
            for est, causal in [("positive", False), ("trig", False), ("hyperbolic", True)]:
                out = os.path.join(d, "out.npy")
                cmd = [cli, "attention", "--queries", os.path.join(d, "q.npy"), "--keys",
                       os.path.join(d, "k.npy"), "--values", os.path.join(d, "v.npy"),
                       "--estimator", est, "--m", "64", "--seed", "9", "-o", out]
                subprocess.run(cmd + (["--causal"] if causal else []), check=True,
                               env=dict(os.environ, RFJIT_CACHE_DIR=""))
                got = rfjit.attention(q, k, v, estimator=est, features=64, causal=causal,
                                      seed=9)
                np.testing.assert_array_equal(got, np.load(out), err_msg=est)

    def test_positive_matches_numpy_favor_with_the_same_projection(self):
        d, m, L = 16, 128, 80
        q, k, v = rng_arrays(3, (L, d), (L, d), (L, d))
        w = rng_arrays(4, (m, d))[0]
        s = d ** -0.25
        for causal in (False, True):
            got = rfjit.attention(q, k, v, estimator="positive", causal=causal, projection=w)
            fq, fk = favor_features(q * s, w), favor_features(k * s, w)
            a = fq @ fk.T
            if causal:
                a = np.tril(a)
            want = (a @ v) / a.sum(-1, keepdims=True)
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())

    def test_features_and_kernel_match_numpy(self):
        ctx = rfjit.Context(cache_dir="", wisdom_path="")
        d, m = 8, 32
        x, y = rng_arrays(5, (20, d), (12, d), scale=0.5)
        w = rng_arrays(6, (m, d))[0]
        plan = ctx.plan(d, projection=w)
        self.assertEqual(plan.feature_dim, m)
        fx, fy = plan.features(x, y)
        np.testing.assert_allclose(fx, favor_features(x, w), rtol=2e-6, atol=1e-7)
        np.testing.assert_allclose(fy, favor_features(y, w), rtol=2e-6, atol=1e-7)
        kern = plan.kernel(x, y, "softmax")
        np.testing.assert_allclose(kern, favor_features(x, w) @ favor_features(y, w).T,
                                   rtol=1e-5)
        exact = ctx.plan(d, estimator="exact").kernel(x, y, "gaussian")
        want = np.exp(-0.5 * ((x[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1))
        np.testing.assert_allclose(exact, want, rtol=1e-5)

    @unittest.skipUnless(__import__("importlib").util.find_spec("torch"),
                         "torch is not importable (Debian: python3-torch)")
    def test_positive_matches_torch_favor(self):
        import torch
        d, m, L, H = 32, 256, 300, 3
        q, k, v = rng_arrays(7, (H, L, d), (H, L, d), (H, L, d))
        w = rng_arrays(8, (m, d))[0]

        def phi(x, wt):  # Performer's positive features, straightforwardly
            return torch.exp(x @ wt.T - 0.5 * (x * x).sum(-1, keepdim=True)) / m ** 0.5

        tq, tk, tv, tw = (torch.from_numpy(a).double() for a in (q, k, v, w))
        fq, fk = phi(tq * d ** -0.25, tw), phi(tk * d ** -0.25, tw)
        want = ((fq @ (fk.transpose(-1, -2) @ tv)) /
                (fq @ fk.sum(-2, keepdim=True).transpose(-1, -2))).numpy()
        got = rfjit.attention(q, k, v, estimator="positive", projection=w)
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * np.abs(want).max())


class Arrays(unittest.TestCase):
    def test_float32_inputs_are_not_copied_and_out_is_written_in_place(self):
        q = rng_arrays(9, (40, 8))[0]
        view = rfjit._View(q, "q", 8)
        self.assertIs(view.array, q)  # C-contiguous float32: the array itself
        strided = np.asarray(rng_arrays(10, (40, 16))[0])[:, ::2]
        self.assertIs(rfjit._View(strided, "q", 8).array, strided)  # a strided view too
        self.assertIsNot(rfjit._View(q.astype(np.float64), "q", 8).array, q)  # converted
        out = np.zeros((40, 8), dtype=np.float32)
        got = rfjit.attention(q, q, q, estimator="exact", out=out)
        self.assertIs(got, out)
        self.assertTrue(np.any(out != 0))
        np.testing.assert_allclose(rfjit.attention(strided, strided, strided,
                                                   estimator="exact"),
                                   numpy_attention(strided, strided, strided, False),
                                   atol=1e-5)

    def test_bad_input_raises_with_the_library_message(self):
        q = rng_arrays(11, (10, 8))[0]
        with self.assertRaises(rfjit.Error) as e:
            rfjit.attention(q, q, q, estimator="nope")
        self.assertEqual(e.exception.status, "RFJIT_E_NO_ESTIMATOR")
        self.assertIn("unknown estimator 'nope'", str(e.exception))
        bad = q.copy()
        bad[3, 4] = np.nan
        with self.assertRaises(rfjit.Error) as e:
            rfjit.attention(bad, q, q, estimator="exact")
        self.assertEqual(e.exception.status, "RFJIT_E_NONFINITE")
        with self.assertRaises(rfjit.Error) as e:
            rfjit.attention(q, q[:7], q, estimator="exact")
        self.assertEqual(e.exception.status, "RFJIT_E_SHAPE")
        with self.assertRaises(ValueError):
            rfjit.attention(q[0], q[0], q[0])
        with self.assertRaises(TypeError):
            rfjit.attention(q.astype(np.complex64), q, q)
        with self.assertRaises(ValueError):
            rfjit.attention(q, q, q, out=np.zeros((10, 8), dtype=np.float64))

    def test_struct_layouts_match_the_header(self):
        """The C compiler's sizeof and offsetof of every field _abi declares, from rfjit.h."""
        structs = {"rfjit_tensor": _abi.Tensor, "rfjit_tiling": _abi.Tiling,
                   "rfjit_ctx_desc": _abi.CtxDesc, "rfjit_attn_desc": _abi.AttnDesc,
                   "rfjit_tune_desc": _abi.TuneDesc, "rfjit_tune_row": _abi.TuneRow}
        lines, want = [], {}
        for cname, py in structs.items():
            lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
            want[cname] = ctypes.sizeof(py)
            for f in py._fields_:
                lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' %
                             (cname, f[0], cname, f[0]))
                want[cname + "." + f[0]] = getattr(py, f[0]).offset
        src = ("#include <stddef.h>\n#include <stdio.h>\n#include \"rfjit.h\"\n"
               "int main(void) {\n%s\nreturn 0;\n}\n" % "\n".join(lines))
        with tempfile.TemporaryDirectory() as tmp:
            c, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
            with open(c, "w") as f:
                f.write(src)
            subprocess.run(["cc", "-std=c99", "-I", os.path.dirname(HEADER), c, "-o", exe],
                           check=True)
            got = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        self.assertEqual({k: int(v) for k, v in (ln.split() for ln in got.splitlines())}, want)

    def test_status_names_match_the_header(self):
        with open(HEADER) as f:
            listed = dict((int(n), name) for name, n in
                          re.findall(r"X\((RFJIT_(?:OK|E_\w+)), (\d+),", f.read()))
        self.assertEqual(listed, _abi.STATUS)


class TuneAndWisdom(unittest.TestCase):
    def test_tune_remember_and_answer_from_wisdom(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "wisdom")
            with rfjit.Context(cache_dir="", wisdom_path=path) as ctx:
                r = ctx.tune(16, 512, budget=0.05, patience="estimate",
                             estimators=["positive", "trig"])
                self.assertIn(r.estimator, ("positive", "trig", "exact"))
                self.assertEqual(sum(row["chosen"] for row in r.rows), 1)
                self.assertFalse(r.json()["from_wisdom"])
                ctx.wisdom_export()
                plan = r.plan()
                q = rng_arrays(12, (64, 16))[0]
                self.assertEqual(plan(q, q, q).shape, (64, 16))
                plan.close()
                r.close()
            with rfjit.Context(cache_dir="", wisdom_path=path) as ctx:
                self.assertIn("tune.output.bidir.d16", ctx.wisdom_to_string())
                r = ctx.tune(16, 512, budget=0.05, patience="estimate",
                             estimators=["positive", "trig"])
                self.assertTrue(r.json()["from_wisdom"])
                r.close()
                ctx.wisdom_forget()
                self.assertNotIn("tune.", ctx.wisdom_to_string())


if __name__ == "__main__":
    unittest.main()
