# SPDX-License-Identifier: MIT
"""Tests of the Python binding (python/rfjit): against a NumPy exact attention, against the C
library's own results through the CLI, against NumPy and torch FAVOR+ implementations fed
the same projection matrix, plus errors, zero-copy and wisdom. Run by ctest (entry `python`)
with RFJIT_LIBRARY and RFJIT_CLI pointing into the build tree."""
import ctypes
import gc
import inspect
import os
import re
import subprocess
import sys
import tempfile
import threading
import unittest
import warnings
import weakref

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

    def test_compute_bf16(self):
        """compute='bf16' within the bound rounding to bfloat16 (u = 2^-8) explains: scores
        off by up to 2u scale |q_i| |k_j| move each weight by that factor to first order,
        which moves o_ic by twice it times sum_j p_ij |v_jc| (numerator and normaliser); the
        rounded weights and values add 2u sum_j p_ij |v_jc|. Where the CPU has no AVX512-BF16
        the plan is refused with RFJIT_E_ISA, as it is everywhere on an avx2 context."""
        E = "RFJIT_E_INVALID_ARG"
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            expect_error(self, E, "compute must be one of 'f32', 'bf16', not 'f16'", ctx.plan,
                         8, estimator="exact", compute="f16")
            expect_error(self, "RFJIT_E_NOT_APPLICABLE", "reference backend", ctx.plan, 8,
                         estimator="exact", backend="reference", compute="bf16")
            try:
                plan = ctx.plan(16, estimator="exact", compute="bf16")
            except rfjit.Error as e:
                self.assertEqual(e.status, "RFJIT_E_ISA", str(e))
                self.assertIn("needs AVX512-BF16", str(e))
                plan = None
            if plan is not None:
                # the estimator is judged after the instruction set, so only where that passes
                expect_error(self, "RFJIT_E_NOT_APPLICABLE", "'trig' has no bfloat16 kernel",
                             ctx.plan, 8, estimator="trig", compute="bf16")
                self.assertIn("compute=bf16", plan.describe())
                q, k, v = rng_arrays(3, (2, 70, 16), (2, 70, 16), (2, 70, 8))
                u, scale = 2.0 ** -8, 16 ** -0.5
                for causal in (False, True):
                    p = rfjit.attention(q, k, v, estimator="exact", causal=causal, compute="bf16")
                    want = numpy_attention(q, k, v, causal)
                    w = numpy_attention(q, k, np.abs(v), causal)  # sum_j p_ij |v_jc|
                    qn = np.linalg.norm(q.astype(np.float64), axis=-1)[..., None]
                    kn = np.linalg.norm(k.astype(np.float64), axis=-1).max(-1)[:, None, None]
                    tol = (2 * u + 4 * u * scale * qn * kn) * w + 1e-5
                    self.assertTrue(np.all(np.abs(p - want) <= tol), "causal %s: %s" % (
                        causal, np.max(np.abs(p - want) / tol)))
                    # beyond float32 rounding: the products did run on bfloat16 operands
                    self.assertGreater(np.abs(p - want).max(), 1e-4)
                f32 = ctx.plan(16, dv=8, estimator="exact", compute="f32")
                self.assertNotIn("compute=", f32.describe())
                np.testing.assert_allclose(f32(q, k, v), numpy_attention(q, k, v, False),
                                           rtol=0, atol=1e-5)
        with rfjit.Context(cache_dir="", wisdom_path="", isa="avx2") as ctx:
            expect_error(self, "RFJIT_E_ISA", "needs AVX512-BF16", ctx.plan, 8,
                         estimator="exact", compute="bf16")

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

    def test_struct_layouts_match_the_header(self):
        """The C compiler's sizeof and offsetof of every field _abi declares, from rfjit.h."""
        structs = {"rfjit_tensor": _abi.Tensor, "rfjit_tensor_ex": _abi.TensorEx,
                   "rfjit_attn_args": _abi.AttnArgs, "rfjit_tiling": _abi.Tiling,
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


def expect_error(test, status, needle, fn, *args, **kwargs):
    """fn(*args, **kwargs) raises rfjit.Error with this status and a message containing needle."""
    with test.assertRaises(rfjit.Error, msg="%s%s" % (getattr(fn, "__name__", fn), args)) as e:
        fn(*args, **kwargs)
    test.assertEqual(e.exception.status, status, str(e.exception))
    test.assertIn(needle, str(e.exception))
    return e.exception


class Errors(unittest.TestCase):
    """Every bad argument of every public entry point raises rfjit.Error naming it."""

    def setUp(self):
        self.ctx = rfjit.Context(cache_dir="", wisdom_path="")
        self.plan = self.ctx.plan(8, m=16)
        self.q = rng_arrays(13, (10, 8))[0]

    def tearDown(self):
        self.plan.close()
        self.ctx.close()

    def test_arrays(self):
        q, E = self.q, "RFJIT_E_INVALID_ARG"
        expect_error(self, E, "out must be a numpy.ndarray of float32, float16 or bfloat16 "
                     "with shape (10, 8), not list", rfjit.attention, q, q, q, out=[[0.0] * 8] * 10)
        expect_error(self, E, "out must be native float32", rfjit.attention, q, q, q,
                     out=np.zeros((10, 8), dtype=np.float64))
        expect_error(self, "RFJIT_E_SHAPE", "out must have shape (10, 8), not (10, 7)",
                     rfjit.attention, q, q, q, out=np.zeros((10, 7), dtype=np.float32))
        ro = np.zeros((10, 8), dtype=np.float32)
        ro.flags.writeable = False
        expect_error(self, E, "out is read-only", self.plan, q, q, q, out=ro)
        expect_error(self, E, "q has dtype complex64", rfjit.attention,
                     q.astype(np.complex64), q, q)
        expect_error(self, E, "k has dtype <U3", self.plan, q, np.full((10, 8), "abc"), q)
        expect_error(self, E, "v must be an array of real numbers", self.plan, q, q,
                     [[1.0, 2.0], [3.0]])
        expect_error(self, "RFJIT_E_SHAPE", "q must be (L, 8), (H, L, 8) or (B, H, L, 8), "
                     "not (8,)", rfjit.attention, q[0], q[0], q[0])
        expect_error(self, "RFJIT_E_SHAPE", "k has last dimension 4, expected 8", self.plan,
                     q, q[:, :4], q)
        expect_error(self, "RFJIT_E_SHAPE", "x has last dimension 3", self.plan.kernel,
                     q[:, :3], q)
        # lists of numbers are arrays too
        self.assertEqual(self.plan(q.tolist(), q, q).shape, (10, 8))

    def test_keywords(self):
        q, E, plan = self.q, "RFJIT_E_INVALID_ARG", self.plan
        expect_error(self, E, "kind must be one of 'softmax', 'gaussian', not 'bogus'",
                     plan.kernel, q, q, "bogus")
        expect_error(self, E, "kind must be one of", plan.kernel, q, q, kind=None)
        expect_error(self, E, "features needs x, y or both", plan.features)
        exact = self.ctx.plan(8, estimator="exact")
        expect_error(self, "RFJIT_E_NOT_APPLICABLE", "no feature map", exact.features, q)
        exact.close()
        expect_error(self, "RFJIT_E_NO_ESTIMATOR", "estimator must be an estimator name",
                     rfjit.attention, q, q, q, estimator=["positive"])
        expect_error(self, E, "features = 0 is outside [1, 2147483647]", rfjit.attention,
                     q, q, q, features=0)
        expect_error(self, E, "features = 4294967312 is outside", rfjit.attention, q, q, q,
                     features=2 ** 32 + 16)
        expect_error(self, E, "features must be an integer", rfjit.attention, q, q, q,
                     features=2.5)
        expect_error(self, E, "seed = -1 is outside [0, 18446744073709551615]",
                     rfjit.attention, q, q, q, seed=-1)
        expect_error(self, E, "attention: ", rfjit.attention, q, q, q, frobnicate=1)
        c = self.ctx
        expect_error(self, E, "d = 0 is outside", c.plan, 0)
        expect_error(self, E, "d = 4294967304 is outside", c.plan, 2 ** 32 + 8)
        expect_error(self, E, "dv must be an integer", c.plan, 8, dv="8")
        expect_error(self, E, "m = -5 is outside", c.plan, 8, m=-5)
        expect_error(self, E, "projection must be one of 'orthogonal', 'iid', not 'haar'",
                     c.plan, 8, projection="haar")
        expect_error(self, "RFJIT_E_SHAPE", "projection must be an (m, d) = (m, 8) array",
                     c.plan, 8, projection=np.ones((4, 5), np.float32))
        expect_error(self, E, "backend must be one of 'auto', 'reference', 'jit', not 'gpu'",
                     c.plan, 8, backend="gpu")
        expect_error(self, E, "hybrid_base must be one of", c.plan, 8, hybrid_base="trig")
        expect_error(self, E, "eva_chunks = 0 is outside", c.plan, 8, eva_chunks=0)
        expect_error(self, E, "sparse_block = 0 is outside", c.plan, 8, sparse_block=0)
        expect_error(self, E, "sparse_exact = -1 is outside", c.plan, 8, sparse_exact=-1)
        expect_error(self, E, "calib must be a tuple of 2 arrays (q, k)", c.plan, 8,
                     estimator="oprf", calib=(q,))
        expect_error(self, E, "budget must be a finite positive number, not 0", c.tune, 8,
                     64, budget=0)
        expect_error(self, E, "budget must be a finite positive number, not nan", c.tune, 8,
                     64, budget=float("nan"))
        expect_error(self, E, "budget_kind must be one of 'output', 'kernel'", c.tune, 8, 64,
                     budget_kind="variance")
        expect_error(self, E, "patience must be one of", c.tune, 8, 64, patience="quick")
        expect_error(self, E, "L = 0 is outside", c.tune, 8, 0)
        expect_error(self, E, "profile must be one of 'real-like', 'gaussian'", c.tune, 8, 64,
                     profile="real")
        expect_error(self, E, "calib must be a tuple of 3 arrays (q, k, v)", c.tune, 8, 64,
                     calib=(q, q))
        expect_error(self, "RFJIT_E_NO_ESTIMATOR", "estimators must be an estimator name",
                     c.tune, 8, 64, estimators=["positive", 3])
        expect_error(self, E, "path must be a wisdom file's path, not None",
                     c.wisdom_import, None)
        expect_error(self, E, "path must not contain a NUL character", c.wisdom_export,
                     "a\0b")

    def test_context_arguments(self):
        E = "RFJIT_E_INVALID_ARG"
        expect_error(self, E, "threads = -1 is outside [0, 1024]", rfjit.Context, threads=-1)
        expect_error(self, E, "threads must be an integer in [0, 1024], not '2'",
                     rfjit.Context, threads="2")
        expect_error(self, E, "verbose = 7 is outside [0, 2]", rfjit.Context, verbose=7)
        expect_error(self, E, "cache_max_bytes = -1 is outside", rfjit.Context,
                     cache_max_bytes=-1)
        expect_error(self, E, "cache_dir must be a string, not 3", rfjit.Context, cache_dir=3)
        # The library judges ISA names (they depend on the host); its message, which had no
        # context to live in, comes through the log callback instead of a bare status.
        expect_error(self, E, "unknown ISA 'avx9'", rfjit.Context, isa="avx9")
        # Control characters in a value are escaped in the message, never passed raw.
        for bad in ("x\nforged", "x\rforged", "x\x1b[2Jforged", "x\x85forged", "x\x7fforged"):
            e = expect_error(self, E, "forged", rfjit.Context, isa=bad)
            self.assertFalse(any(ord(c) < 32 or 127 <= ord(c) < 160 for c in str(e)), repr(e))

    def test_library_warnings_are_python_warnings(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rfjit.Context(cache_dir="/proc/nonexistent/rfjit", wisdom_path="").close()
        self.assertTrue(any(issubclass(w.category, RuntimeWarning) and
                            "/proc/nonexistent/rfjit" in str(w.message) for w in caught),
                        [str(w.message) for w in caught])

    def test_library_refusals_carry_the_library_message(self):
        """An error only the library can see (an ISA above the host's would be one on some
        machines; an unknown estimator name is one everywhere) keeps the library's words."""
        expect_error(self, "RFJIT_E_NO_ESTIMATOR", "unknown estimator 'nope'", self.ctx.plan,
                     8, estimator="nope")
        expect_error(self, "RFJIT_E_NONFINITE", "tensor q: non-finite value at (0, 0, 0, 0)",
                     self.plan, np.full((10, 8), np.inf, np.float32), self.q, self.q)


SHUTDOWN_SCRIPTS = {
    "plan made in a with block, alive at exit": """
with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
    plan = ctx.plan(8, m=16)
out = plan(q, q, q)
""",
    "context and plans in globals and in a reference cycle": """
ctx = rfjit.Context(cache_dir="", wisdom_path="")
plans = [ctx.plan(8, m=16, estimator=e) for e in ("positive", "exact", "trig")]
ctx.cycle = plans
plans.append(plans)
out = plans[0](q, q, q)
""",
    "default context's cached plans": """
out = rfjit.attention(q, q, q, estimator="positive", features=16)
""",
    "tune result and its plan after the with block": """
with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
    r = ctx.tune(8, 64, budget=0.5, patience="estimate", estimators=["positive"])
p = r.plan()
out = p(q, q, q)
""",
    "daemon threads still executing a plan at exit": """
import threading, time
with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
    plan = ctx.plan(8, m=16)
big = np.tile(q, (64, 1))
def loop():
    while True:
        plan(big, big, big)
for _ in range(3):
    threading.Thread(target=loop, daemon=True).start()
time.sleep(0.2)
out = plan(q, q, q)
""",
    "context deleted first, its plan used after a collection": """
ctx = rfjit.Context(cache_dir="", wisdom_path="")
p = ctx.plan(8, m=16)
del ctx
import gc; gc.collect()
out = p(q, q, q)
""",
}


class Lifetimes(unittest.TestCase):
    """Plans and tune results keep their context alive; closed objects raise rfjit.Error."""

    def test_plan_outlives_the_with_block(self):
        q = rng_arrays(14, (32, 8))[0]
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            plan = ctx.plan(8, m=32, seed=3)
            want = plan(q, q, q)
        self.assertTrue(ctx.closed)
        np.testing.assert_array_equal(plan(q, q, q), want)
        self.assertEqual(plan.kernel(q, q).shape, (32, 32))
        expect_error(self, "RFJIT_E_STATE", "this Context is closed", ctx.plan, 8)
        expect_error(self, "RFJIT_E_STATE", "this Context is closed", ctx.info)
        plan.close()
        expect_error(self, "RFJIT_E_STATE", "this Plan is closed", plan, q, q, q)
        expect_error(self, "RFJIT_E_STATE", "this Plan is closed", lambda: plan.feature_dim)
        plan.close()  # twice is harmless

    def test_tune_result_plans_after_the_with_block(self):
        q = rng_arrays(15, (32, 8))[0]
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            r = ctx.tune(8, 64, budget=0.5, patience="estimate", estimators=["positive"])
        plan = r.plan()
        r.close()
        self.assertEqual(plan(q, q, q).shape, (32, 8))
        expect_error(self, "RFJIT_E_STATE", "this TuneResult is closed", r.plan)

    def test_copies_are_refused(self):
        import copy
        import pickle
        ctx = rfjit.Context(cache_dir="", wisdom_path="")
        plan = ctx.plan(8, m=16)
        for obj in (ctx, plan):
            for f in (copy.copy, copy.deepcopy, pickle.dumps):
                expect_error(self, "RFJIT_E_STATE", "cannot be copied or pickled", f, obj)
        q = rng_arrays(19, (16, 8))[0]
        self.assertEqual(plan(q, q, q).shape, (16, 8))

    def test_del_context_then_use_the_plan(self):
        q = rng_arrays(16, (32, 8))[0]
        ctx = rfjit.Context(cache_dir="", wisdom_path="")
        plan = ctx.plan(8, estimator="exact")
        ref = weakref.ref(ctx)
        del ctx
        gc.collect()
        self.assertIsNotNone(ref())  # the plan holds it
        np.testing.assert_allclose(plan(q, q, q), numpy_attention(q, q, q, False), atol=1e-5)
        del plan
        gc.collect()
        self.assertIsNone(ref())

    def test_garbage_collection_in_any_order(self):
        q = rng_arrays(17, (16, 8))[0]
        for order in range(4):
            ctx = rfjit.Context(cache_dir="", wisdom_path="")
            plans = [ctx.plan(8, m=16, seed=i) for i in range(3)]
            for p in plans:
                p(q, q, q)
            refs = [weakref.ref(ctx)] + [weakref.ref(p) for p in plans]
            if order == 0:  # a cycle through the context: collected together
                ctx.cycle = plans
                plans[0].me = plans
            elif order == 1:  # the context closed first, then the plans dropped
                ctx.close()
            elif order == 2:  # plans closed first, out of creation order
                plans[1].close()
                plans[0].close()
            else:  # each plan in a cycle of its own
                for p in plans:
                    p.me = p
            del ctx, plans, p
            gc.collect()
            self.assertEqual([r() for r in refs], [None] * 4, "order %d" % order)

    def test_close_while_other_threads_execute(self):
        q = rng_arrays(18, (256, 16))[0]
        ctx = rfjit.Context(cache_dir="", wisdom_path="", threads=1)
        plan = ctx.plan(16, m=64)
        want = plan(q, q, q)
        outcomes, start = [], threading.Barrier(5)

        def work():
            start.wait()
            for _ in range(200):
                try:
                    got = plan(q, q, q)
                except rfjit.Error as e:
                    outcomes.append(e.status)
                    return
                outcomes.append(bool(np.array_equal(got, want)))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        start.wait()
        plan.close()
        ctx.close()
        for t in threads:
            t.join()
        self.assertTrue(set(outcomes) <= {True, "RFJIT_E_STATE"}, set(outcomes))

    def test_interpreter_shutdown_with_live_objects(self):
        package_dir = os.path.dirname(os.path.dirname(os.path.abspath(rfjit.__file__)))
        env = dict(os.environ, PYTHONPATH=package_dir)
        for name, body in SHUTDOWN_SCRIPTS.items():
            src = ("import numpy as np, rfjit\n"
                   "q = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)\n"
                   + body + "print('done', out.shape)\n")
            r = subprocess.run([sys.executable, "-X", "dev", "-c", src], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, "%s: exit %d\n%s" % (name, r.returncode,
                                                                   r.stderr))
            self.assertIn("done (16, 8)", r.stdout, name)
            self.assertEqual(r.stderr, "", name)


class Documentation(unittest.TestCase):
    def test_every_parameter_is_documented(self):
        """help() of each public function and method names every one of its parameters."""
        targets = [rfjit.attention, rfjit.default_context, rfjit.version, rfjit.estimators,
                   (rfjit.Context, rfjit.Context.__init__)]
        for cls in (rfjit.Context, rfjit.Plan, rfjit.TuneResult):
            for name, f in vars(cls).items():
                if callable(f) and (not name.startswith("_") or name == "__call__"):
                    targets.append(f)
        for t in targets:
            doc_of, f = t if isinstance(t, tuple) else (t, t)
            doc = inspect.getdoc(doc_of)
            self.assertTrue(doc and len(doc) > 20, f.__qualname__)
            for p in list(inspect.signature(f).parameters)[1:] if "." in f.__qualname__ \
                    else inspect.signature(f).parameters:
                if p not in ("plan_options",) and f is not rfjit.Plan.__init__:
                    self.assertRegex(doc, r"\b%s\b" % p, "%s: %s" % (f.__qualname__, p))
        text = inspect.getdoc(rfjit.attention)
        for needle in ("(Lq, d)", "(B, H, Lq, d)", "(.., Hkv, Lk, dv)", "float32", "dtype",
                       "rfjit.Error"):
            self.assertIn(needle, text)


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

    def test_transforms_in_rows_plan_and_wisdom(self):
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            seen = {}
            for transforms in (True, False):
                r = ctx.tune(16, 256, budget=0.3, estimators=["eva"], transforms=transforms)
                chosen = [row for row in r.rows if row["chosen"]][0]
                self.assertEqual(r.transform, chosen["transform"])
                self.assertEqual(r.json()["transform"], r._desc.transform)
                seen[transforms] = [row["transform"] for row in r.rows]
                for row in r.rows:
                    self.assertTrue(row["transform"] is None or
                                    row["transform"].startswith("k"), row)
                if r.transform:
                    self.assertGreater(r._desc.transform, 0)
                r.close()
            self.assertEqual(set(seen[False]), {None})
            keys = ctx.wisdom_to_string()
            self.assertIn(".x1.v5", keys)
            self.assertIn(".x0.v5", keys)
            with self.assertRaises(rfjit.Error) as e:
                ctx.tune(16, 256, budget=0.3, estimators=["eva"], transforms="no")
            self.assertIn("transforms must be True or False", str(e.exception))

    def test_blocksparse_rows_carry_their_blocks(self):
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            r = ctx.tune(16, 256, budget=0.5, estimators="blocksparse")
            rows = [row for row in r.rows if row["estimator"] == "blocksparse"]
            # 4 key blocks of 64 at L = 256: k = 4 and 8 would be exact attention
            self.assertEqual(sorted(row["sparse_exact"] for row in rows), [1, 2])
            for row in r.rows:
                self.assertEqual(row["sparse_block"], 64 if row in rows else 0, row)
                self.assertTrue(row["meets_budget"] or row["note"], row)
            if r.estimator == "blocksparse":
                chosen = [row for row in r.rows if row["chosen"]][0]
                self.assertEqual((r.sparse_block, r.sparse_exact),
                                 (64, chosen["sparse_exact"]))
            else:
                self.assertEqual((r.sparse_block, r.sparse_exact), (0, 0))
            r.close()

    def test_profiles_and_closest(self):
        with rfjit.Context(cache_dir="", wisdom_path="") as ctx:
            for profile in ("real-like", "gaussian"):
                r = ctx.tune(16, 512, budget=1e-9, patience="estimate", estimators=["positive"],
                             profile=profile)
                j = r.json()
                self.assertEqual(j["profile"], profile)
                self.assertEqual(r.estimator, "exact")
                self.assertEqual(j["closest"]["estimator"], "positive")
                self.assertIn("closest positive at m = ", r.info)
                r.close()


if __name__ == "__main__":
    unittest.main()
