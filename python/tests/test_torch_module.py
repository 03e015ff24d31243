# SPDX-License-Identifier: MIT
"""Tests of rfjit.torch.FastAttention: against performer-pytorch 1.1.4's FastAttention on the
same projection matrix (its state dict loaded into ours, alone and as a submodule of a whole
PerformerLM), bidirectional and causal, at scaled row norms from 0.5 to 3; half-precision
inputs, strided views read in place, the output written where the module allocated it;
and the errors: autograd, unsupported arguments, tensors it does not take, bad state dicts.
Skipped, with the reason printed, where torch or performer-pytorch does not import
(scripts/deps.sh installs both in .venv).

Tolerances. float32 against performer-pytorch: test_compat.py's F32_TOL (1e-5 of the largest
output), whose derivation holds here unchanged (the same code on the same matrix, d = 16,
L = 48). Half inputs: performer-pytorch runs in float32 on the very inputs rfjit reads
(rounded to the half type first), so the only further difference is the output's single
rounding to the half type, at most its unit roundoff u times the entry: u = 2^-11 for
float16 (11 significant bits), 2^-8 for bfloat16 (8), relative to the largest output."""
import contextlib
import copy
import importlib.util
import io
import os
import subprocess
import sys
import unittest
from unittest import mock

import numpy as np

import rfjit
from test_compat import F32_TOL, NORMS, SEED, IsolatedContextCase, rel_err, rows_of_norm

HALF_U = {"float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}


def missing(*modules):
    """Why the modules cannot be imported here, or None."""
    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            return "%s is not importable (bash scripts/deps.sh installs it in .venv)" % mod
    return None


NO_TORCH = missing("torch")
NO_PERFORMER = missing("torch", "performer_pytorch")
for _why in sorted({w for w in (NO_TORCH, NO_PERFORMER) if w}):  # unittest names skips only
    sys.stderr.write("test_torch_module: skipping tests: %s\n" % _why)  # when verbose


def quiet(fn, *args, **kwargs):
    """fn(...) without performer-pytorch's print about its CPU causal path."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


class TorchBase(IsolatedContextCase):
    def ours(self, *args, **kwargs):
        import rfjit.torch
        kwargs.setdefault("context", self.ctx)
        return rfjit.torch.FastAttention(*args, **kwargs)

    @staticmethod
    def inputs(seed, norm, B=2, H=2, L=48, d=16, dv=16):
        """q, k of scaled row norm `norm`, Gaussian v, as float32 torch tensors."""
        import torch
        rng = np.random.default_rng(seed)
        q, k = rows_of_norm(rng, (B, H, L, d), norm), rows_of_norm(rng, (B, H, L, d), norm)
        v = rng.standard_normal((B, H, L, dv)).astype(np.float32)
        return tuple(torch.from_numpy(a) for a in (q, k, v))


class Recorder:
    """Stands in for rfjit_plan_execute_args and keeps the tensor descriptors it was given:
    the addresses, shapes and strides the library saw."""

    def __init__(self, real):
        self.real, self.seen = real, []

    def __call__(self, plan, args_ref):
        a = args_ref._obj
        self.seen.append({n: (t.contents.data, tuple(t.contents.shape),
                              tuple(t.contents.stride))
                          for n, t in (("q", a.q), ("k", a.k), ("v", a.v), ("out", a.out))})
        return self.real(plan, args_ref)


@unittest.skipIf(NO_PERFORMER, NO_PERFORMER)
class TestAgainstPerformerPytorch(TorchBase):
    def theirs(self, seed, causal, d=16, m=32):
        import torch
        from performer_pytorch import FastAttention
        torch.manual_seed(seed)
        return quiet(FastAttention, dim_heads=d, nb_features=m, causal=causal)

    def loaded(self, theirs, causal, d=16, m=32):
        """Ours with theirs' state dict loaded (drawn from another seed first)."""
        ours = self.ours(d, nb_features=m, causal=causal, seed=SEED + 99)
        ours.load_state_dict(theirs.state_dict())
        return ours

    def test_a_fresh_module_draws_their_matrix(self):
        import torch
        for m in (32, 24, 40):  # whole blocks of d rows, fewer, and a partial last block
            with self.subTest(nb_features=m):
                theirs = self.theirs(SEED, False, m=m)
                torch.manual_seed(SEED)
                ours = self.ours(16, nb_features=m)
                self.assertTrue(torch.equal(ours.projection_matrix, theirs.projection_matrix))
                self.assertEqual(list(ours.state_dict()), list(theirs.state_dict()))
                self.assertTrue(torch.equal(self.ours(16, nb_features=m, seed=SEED)
                                            .projection_matrix, theirs.projection_matrix))
        torch.manual_seed(SEED)
        d = 16
        default = quiet(__import__("performer_pytorch").FastAttention, dim_heads=d)
        self.assertEqual(self.ours(d, seed=SEED).projection_matrix.shape,
                         default.projection_matrix.shape)

    def test_float32_matches(self):
        import torch
        for causal in (False, True):
            theirs = self.theirs(SEED, causal)
            ours = self.loaded(theirs, causal)
            for norm in NORMS:
                with self.subTest(causal=causal, norm=norm):
                    q, k, v = self.inputs([SEED, int(norm * 10), causal], norm)
                    with torch.no_grad():
                        want = theirs(q, k, v)
                    with torch.inference_mode():
                        got = ours(q, k, v)
                    self.assertEqual(got.dtype, torch.float32)
                    err = rel_err(got.numpy(), want.numpy().astype(np.float64))
                    self.assertLessEqual(err, F32_TOL, "causal %d norm %g seed %d" %
                                         (causal, norm, SEED))

    def test_half_inputs(self):
        import torch
        for causal in (False, True):
            theirs = self.theirs(SEED, causal)
            ours = self.loaded(theirs, causal)
            for dtype in (torch.float16, torch.bfloat16):
                for norm in NORMS:
                    with self.subTest(causal=causal, dtype=dtype, norm=norm):
                        q, k, v = (t.to(dtype) for t in self.inputs([SEED, 7, causal], norm))
                        with torch.no_grad():
                            want = theirs(q.float(), k.float(), v.float())
                            got = ours(q, k, v)
                        self.assertEqual(got.dtype, dtype)
                        tol = F32_TOL + HALF_U[str(dtype).split(".")[1]]
                        err = rel_err(got.float().numpy(), want.numpy().astype(np.float64))
                        self.assertLessEqual(err, tol, "causal %d %s norm %g seed %d" %
                                             (causal, dtype, norm, SEED))

    def test_strided_views_are_read_in_place(self):
        """The (batch, n, heads * d) -> (batch, heads, n, d) views performer-pytorch's
        attention makes, and v sliced from a wider tensor: the library gets their own
        addresses and strides, and writes into the tensor returned."""
        import torch
        theirs = self.theirs(SEED, True)
        ours = self.loaded(theirs, True)
        B, H, L, d = 2, 2, 48, 16
        rng = np.random.default_rng(SEED)
        x = torch.from_numpy(np.concatenate([rows_of_norm(rng, (B, L, H, d), 2.0)
                                             for _ in range(3)], -1).reshape(B, L, -1))
        q, k, v = (t.reshape(B, L, H, d).transpose(1, 2) for t in x.split(H * d, dim=-1))
        self.assertFalse(q.is_contiguous())
        rec = Recorder(rfjit._lib.rfjit_plan_execute_args)
        with mock.patch.object(rfjit._lib, "rfjit_plan_execute_args", rec), torch.no_grad():
            got = ours(q, k, v)
            want = theirs(q, k, v)
        self.assertEqual(len(rec.seen), 1)
        for name, t in (("q", q), ("k", k), ("v", v), ("out", got)):
            self.assertEqual(rec.seen[0][name], (t.data_ptr(), tuple(t.shape),
                                                 tuple(t.stride())), name)
        self.assertLessEqual(rel_err(got.numpy(), want.numpy().astype(np.float64)), F32_TOL)

    def test_inside_a_performer_lm(self):
        """Ours swapped into a whole PerformerLM, loaded from that model's state dict under
        its prefix, gets the attention inputs theirs got and gives its outputs."""
        import torch
        from performer_pytorch import PerformerLM
        torch.manual_seed(SEED)
        model = quiet(PerformerLM, num_tokens=50, max_seq_len=64, dim=32, depth=1, heads=2,
                      dim_head=16, causal=True, nb_features=24).eval()
        state = model.state_dict()
        key = "performer.net.layers.0.0.fn.fast_attention.projection_matrix"
        self.assertIn(key, state)
        tokens = torch.from_numpy(np.random.default_rng(SEED).integers(0, 50, (2, 40)))
        attn = model.performer.net.layers[0][0].fn
        seen = []
        hook = lambda mod, args, out: seen.append((args, out))  # noqa: E731
        handle = attn.fast_attention.register_forward_hook(hook)
        with torch.no_grad():
            model(tokens)
        handle.remove()
        attn.fast_attention = self.ours(16, nb_features=24, causal=True, seed=SEED + 1)
        self.assertFalse(torch.equal(attn.fast_attention.projection_matrix, state[key]))
        model.load_state_dict(state)
        self.assertTrue(torch.equal(attn.fast_attention.projection_matrix, state[key]))
        attn.fast_attention.register_forward_hook(hook)
        with torch.no_grad():
            model(tokens)
        (args0, want), (args1, got) = seen
        for a, b in zip(args0, args1):
            self.assertTrue(torch.equal(a, b))
        self.assertLessEqual(rel_err(got.numpy(), want.numpy().astype(np.float64)), F32_TOL)


@unittest.skipIf(NO_TORCH, NO_TORCH)
class TestModule(TorchBase):
    def test_compat_none_is_rfjit_on_the_same_matrix(self):
        import torch
        for causal in (False, True):
            ours = self.ours(16, nb_features=32, causal=causal, compat=None, seed=SEED)
            q, k, v = self.inputs(SEED, 1.0, dv=8)
            with torch.no_grad():
                got = ours(q, k, v).numpy()
            plan = self.ctx.plan(16, dv=8, causal=causal,
                                 projection=ours.projection_matrix.numpy())
            self.assertTrue(np.array_equal(got, plan(q.numpy(), k.numpy(), v.numpy())))

    def test_the_plan_follows_the_matrix(self):
        """Remade when the matrix's values change (loading, redraw, in-place edit), kept when
        they do not."""
        import torch
        ours = self.ours(16, nb_features=32, seed=SEED)
        q, k, v = self.inputs(SEED, 1.0)

        def run():
            with torch.no_grad():
                out = ours(q, k, v).numpy()
            plan = self.ctx.plan(16, projection=ours.projection_matrix.numpy(),
                                 compat="performer-pytorch")
            self.assertTrue(np.array_equal(out, plan(q.numpy(), k.numpy(), v.numpy())))
            return ours._runtime.plans[16]

        first = run()
        ours.load_state_dict({"projection_matrix": ours.projection_matrix.clone()})
        self.assertIs(run(), first)
        other = self.ours(16, nb_features=32, seed=SEED + 1).state_dict()
        ours.load_state_dict(other)
        second = run()
        self.assertIsNot(second, first)
        ours.redraw_projection_matrix()
        third = run()
        self.assertIsNot(third, second)
        with torch.no_grad():
            ours.projection_matrix[0, 0] += 1.0
        self.assertIsNot(run(), third)

    def test_copies_share_the_context(self):
        import torch
        ours = self.ours(16, nb_features=32, causal=True, seed=SEED)
        q, k, v = self.inputs(SEED, 1.0)
        twin = copy.deepcopy(ours)
        self.assertIs(twin._runtime.ctx, self.ctx)
        with torch.no_grad():
            self.assertTrue(torch.equal(ours(q, k, v), twin(q, k, v)))

    def test_empty_and_grouped(self):
        import torch
        ours = self.ours(16, nb_features=32, seed=SEED)
        q, k, v = self.inputs(SEED, 1.0)
        with torch.no_grad():
            self.assertEqual(tuple(ours(q[:, :, :0], k, v).shape), (2, 2, 0, 16))
            out = ours(q, k[:, :1], v[:, :1, :, :8])  # one key/value head for both
        self.assertEqual(tuple(out.shape), (2, 2, 48, 8))

    def test_autograd_is_refused(self):
        import torch
        ours = self.ours(16, nb_features=32, seed=SEED)
        q, k, v = self.inputs(SEED, 1.0)
        q.requires_grad_(True)
        with self.assertRaises(RuntimeError) as e:
            ours(q, k, v)
        self.assertIn("inference only", str(e.exception))
        self.assertIn("torch.no_grad()", str(e.exception))
        with torch.no_grad():
            a = ours(q, k, v)
        with torch.inference_mode():
            b = ours(q, k, v)
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(a.requires_grad)

    def test_unsupported_arguments(self):
        for kwargs, exc, words in (
                ({"generalized_attention": True}, NotImplementedError,
                 ("generalized_attention=True", "generalized_attention=False")),
                ({"no_projection": True}, NotImplementedError,
                 ("no_projection=True", "no_projection=False")),
                ({"ortho_scaling": 2}, ValueError, ("ortho_scaling", "not 2")),
                ({"compat": "performer"}, ValueError, ("compat", "'performer-pytorch'")),
                ({"nb_features": 0}, ValueError, ("nb_features", "not 0")),
                ({"seed": -1}, ValueError, ("seed", "not -1")),
                ({"threads": 1}, ValueError, ("context or threads",))):
            with self.subTest(**{k: repr(v) for k, v in kwargs.items()}):
                with self.assertRaises(exc) as e:
                    self.ours(16, **kwargs)
                for w in words:
                    self.assertIn(w, str(e.exception))
        with self.assertRaises(ValueError) as e:
            self.ours(1)
        self.assertIn("give nb_features", str(e.exception))
        with self.assertRaises(rfjit.Error) as e:  # the library's refusal, at construction
            self.ours(16, estimator="hyperbolic")
        self.assertEqual(e.exception.status, "RFJIT_E_NOT_APPLICABLE")

    def test_tensors_it_does_not_take(self):
        import torch
        ours = self.ours(16, nb_features=32, seed=SEED)
        q, k, v = self.inputs(SEED, 1.0)
        meta = torch.empty(q.shape, device="meta")  # stands for a CUDA tensor: not the CPU
        for args, exc, words in (
                ((q.numpy(), k, v), TypeError, ("q must be a torch.Tensor",)),
                ((q, meta, v), ValueError, ("k is on meta", "CPU")),
                ((q.double(), k.double(), v.double()), ValueError,
                 ("q has dtype torch.float64", "float32, float16 or bfloat16")),
                ((q, k, v.half()), ValueError, ("one dtype",)),
                ((q[0], k[0], v[0]), ValueError, ("(batch, heads, n, dim_heads)",)),
                ((q[..., :8], k, v), ValueError, ("last dimension 8", "dim_heads = 16"))):
            with self.subTest(words=words[0]):
                with self.assertRaises(exc) as e, torch.no_grad():
                    ours(*args)
                for w in words:
                    self.assertIn(w, str(e.exception))
        with self.assertRaises(rfjit.Error) as e, torch.no_grad():
            ours(q, k[:, :, :10], v)  # the library checks what remains, and names it
        self.assertEqual(e.exception.status, "RFJIT_E_SHAPE")

    def test_state_dict_errors(self):
        import torch
        ours = self.ours(16, nb_features=32, seed=SEED)
        before = ours.projection_matrix.clone()
        with self.assertRaises(RuntimeError) as e:
            ours.load_state_dict({})
        self.assertIn('"projection_matrix"', str(e.exception))
        with self.assertRaises(RuntimeError) as e:
            ours.load_state_dict({"projection_matrix": torch.zeros(10, 16)})
        self.assertIn("projection_matrix has shape (10, 16), expected (nb_features, "
                      "dim_heads) = (32, 16)", str(e.exception))
        self.assertIn("nb_features=10", str(e.exception))
        with self.assertRaises(RuntimeError) as e:
            ours.load_state_dict({"projection_matrix": torch.zeros(32)})
        self.assertIn("projection_matrix has shape (32,), expected", str(e.exception))
        bad = before.clone()
        bad[3, 4] = float("nan")
        with self.assertRaises(RuntimeError) as e:
            ours.load_state_dict({"projection_matrix": bad})
        self.assertIn("projection_matrix must hold finite", str(e.exception))
        self.assertTrue(torch.equal(ours.projection_matrix, before))
        wrapped = torch.nn.Sequential(torch.nn.Identity(), ours)
        with self.assertRaises(RuntimeError) as e:
            wrapped.load_state_dict({"1.projection_matrix": torch.zeros(32, 8)})
        self.assertIn("1.projection_matrix has shape (32, 8)", str(e.exception))


class TestImport(unittest.TestCase):
    def test_import_rfjit_does_not_import_torch(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.dirname(os.path.dirname(rfjit.__file__))] + sys.path)
        out = subprocess.run([sys.executable, "-c", "import sys, rfjit; "
                              "print('torch' in sys.modules)"], env=env, check=True,
                             capture_output=True, text=True).stdout
        self.assertEqual(out.strip(), "False")


if __name__ == "__main__":
    unittest.main()
