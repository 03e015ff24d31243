# SPDX-License-Identifier: MIT
"""rfjit.torch: a drop-in for performer-pytorch's FastAttention that runs on rfjit.

    import torch, rfjit.torch
    attn = rfjit.torch.FastAttention(dim_heads=64, nb_features=256, causal=True)
    attn.load_state_dict({"projection_matrix": w})   # a trained model's matrix
    with torch.inference_mode():
        out = attn(q, k, v)                           # (batch, heads, n, 64)

FastAttention takes performer-pytorch 1.1.4's constructor arguments and keeps its
`projection_matrix` buffer, so a trained model's state dict loads into it (alone, or as a
submodule of the whole model under its prefix), and the default compat="performer-pytorch"
reproduces that code's outputs from the same matrix. Inference only: CPU tensors of float32,
float16 or bfloat16, read where they lie through their strides and written into a tensor
the module allocates, with no copy either way.

Importing this module imports torch; `import rfjit` alone never does."""
import ctypes as _C
import math as _math
import threading as _threading

import numpy as _np
import torch as _torch

import rfjit as _rfjit
from rfjit import _abi

__all__ = ["FastAttention", "gaussian_orthogonal_random_matrix"]

# torch dtypes the library reads and writes as they are (rfjit_dtype names)
_DTYPES = {_torch.float32: "float32", _torch.float16: "float16", _torch.bfloat16: "bfloat16"}
_COMPAT = ("performer-pytorch", "google-performer", "none", None)


def _orthogonal_chunk(cols, generator):
    block = _torch.randn((cols, cols), generator=generator)
    q, _ = _torch.linalg.qr(block, mode="reduced")
    return q.t()


def gaussian_orthogonal_random_matrix(nb_rows, nb_columns, scaling=0, generator=None):
    """performer-pytorch 1.1.4's projection draw, on the CPU: blocks of orthogonal rows (QR
    of Gaussian squares), rows scaled by the norms of Gaussian vectors (scaling 0) or by
    sqrt(nb_columns) (scaling 1). With generator None it consumes torch's global generator
    in the same order as performer-pytorch, so after one torch.manual_seed both draw the
    same matrix; a seeded torch.Generator draws what that seed gives the global one."""
    if scaling not in (0, 1):
        raise ValueError("ortho_scaling must be 0 (Gaussian row norms) or 1 (rows of norm "
                         "sqrt(dim_heads)), not %r" % (scaling,))
    full = nb_rows // nb_columns
    blocks = [_orthogonal_chunk(nb_columns, generator) for _ in range(full)]
    rest = nb_rows - full * nb_columns
    if rest > 0:
        blocks.append(_orthogonal_chunk(nb_columns, generator)[:rest])
    matrix = _torch.cat(blocks)
    if scaling == 0:
        norms = _torch.randn((nb_rows, nb_columns), generator=generator).norm(dim=1)
    else:
        norms = _math.sqrt(float(nb_columns)) * _torch.ones((nb_rows,))
    return _torch.diag(norms) @ matrix


class _Runtime:
    """The rfjit context a module runs on and its plans, one per value dimension, with the
    float32 matrix they were made from. A deep copy of the module shares the context and
    makes its own plans; a pickled module is restored onto the default context (or a new
    one of the same thread count), since a library context cannot be pickled."""

    def __init__(self, context, threads):
        if context is not None and threads is not None:
            raise ValueError("give context or threads, not both (threads is the thread count "
                             "of a context the module makes for itself)")
        if context is not None and not isinstance(context, _rfjit.Context):
            raise TypeError("context must be an rfjit.Context, not %s" %
                            type(context).__name__)
        self.threads = threads
        self.ctx = context
        if context is None and threads is not None:
            self.ctx = _rfjit.Context(threads=threads)
        self.lock = _threading.Lock()
        self.matrix = None
        self.plans = {}

    def context(self):
        return self.ctx if self.ctx is not None else _rfjit.default_context()

    def __deepcopy__(self, memo):
        copy = _Runtime.__new__(_Runtime)
        copy.threads, copy.ctx = self.threads, self.ctx
        copy.lock, copy.matrix, copy.plans = _threading.Lock(), None, {}
        return copy

    def __reduce__(self):
        return (_Runtime, (None, self.threads))


class FastAttention(_torch.nn.Module):
    """performer-pytorch's FastAttention on rfjit, for inference.

    FastAttention(dim_heads, nb_features=None, ortho_scaling=0, causal=False,
                  generalized_attention=False, kernel_fn=ReLU(), no_projection=False, *,
                  estimator="positive", compat="performer-pytorch", seed=None,
                  context=None, threads=None)

    dim_heads      head dimension d, 1 .. 1024
    nb_features    random features m (rows of projection_matrix); None: int(d ln d), as
                   performer-pytorch
    ortho_scaling  0 (Gaussian row norms) or 1 (rows of norm sqrt(d)), the draw's scaling
    causal         each query sees the keys up to its own position
    generalized_attention, no_projection
                   only False: rfjit has no ReLU/generalized or projection-free estimator
    kernel_fn      kept for signature compatibility (used only by generalized_attention)
    estimator      rfjit's estimator over the projection: "positive" (the only one
                   compat="performer-pytorch" takes); with compat=None any of
                   rfjit.estimators() that takes a projection matrix
    compat         "performer-pytorch" (default: that code's numerics, its eps shifts and
                   maxima, so a model trained with it gives its outputs), "google-performer",
                   or None/"none" for rfjit's own numerics (the JIT kernels)
    seed           None: the matrix is drawn from torch's global generator, exactly as
                   performer-pytorch draws it; an int: from a torch.Generator seeded with it
                   (the same matrix that seed gives the global one). Also the plan's seed.
    context        an rfjit.Context to run on; None: rfjit.default_context(), or a context
                   of its own when threads is given
    threads        threads of that own context (0: one per core)

    The buffer projection_matrix (nb_features, dim_heads) is what the rfjit plan uses; a
    state dict with performer-pytorch's key (under any prefix, as a whole model's is)
    replaces it, a mis-shaped one is refused naming both shapes. The plan is remade only
    when the matrix's values change (loading, redraw_projection_matrix, in-place edits).

    forward(q, k, v): q (batch, heads, n, dim_heads), k (batch, heads, nk, dim_heads), v
    (batch, heads, nk, dv), CPU tensors of one dtype among float32, float16 and bfloat16,
    with any strides (a transposed or sliced view is read in place); k and v may have
    fewer heads dividing q's (grouped-query), and a causal call with nk > n is bottom-right
    aligned (query i sees keys 0 .. i + nk - n), as rfjit.attention. Returns a new
    (batch, heads, n, dv) tensor of that dtype. Inference only: raises RuntimeError when
    autograd would record the call (grad enabled and an input requires grad); run it under
    torch.no_grad() or torch.inference_mode(). Other failures raise TypeError/ValueError
    for the tensors' type, device, dtype or rank, rfjit.Error for what the library
    refuses (its message names the argument)."""

    def __init__(self, dim_heads, nb_features=None, ortho_scaling=0, causal=False,
                 generalized_attention=False, kernel_fn=None, no_projection=False, *,
                 estimator="positive", compat="performer-pytorch", seed=None, context=None,
                 threads=None):
        super().__init__()
        if generalized_attention:
            raise NotImplementedError(
                "generalized_attention=True (performer-pytorch's kernel_fn features) is not "
                "supported: rfjit has no ReLU/generalized estimator; use "
                "generalized_attention=False, the softmax kernel (estimator=%r)" % estimator)
        if no_projection:
            raise NotImplementedError(
                "no_projection=True (softmax-normalised q and k without random features) is "
                "not supported: rfjit's estimators need a projection; use no_projection=False")
        dim_heads = self._count("dim_heads", dim_heads, 1024)
        if nb_features is None:
            nb_features = int(dim_heads * _math.log(dim_heads))
            if nb_features < 1:
                raise ValueError("nb_features defaults to int(dim_heads * ln(dim_heads)) = 0 "
                                 "for dim_heads = %d; give nb_features >= 1" % dim_heads)
        nb_features = self._count("nb_features", nb_features, (1 << 31) - 1)
        if compat not in _COMPAT:
            raise ValueError("compat must be one of %s, not %r" % (
                ", ".join(repr(c) for c in _COMPAT), compat))
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or
                                 not 0 <= seed < 1 << 63):
            raise ValueError("seed must be None or an integer in [0, 2^63), not %r" % (seed,))
        self.dim_heads, self.nb_features = dim_heads, nb_features
        self.ortho_scaling, self.causal = ortho_scaling, bool(causal)
        self.generalized_attention, self.no_projection = False, False
        self.kernel_fn = _torch.nn.ReLU() if kernel_fn is None else kernel_fn
        self.estimator, self.compat, self.seed = estimator, compat, seed
        self._runtime = _Runtime(context, threads)
        self.register_buffer("projection_matrix", self._draw())
        self._plan(dim_heads)  # refuses a bad estimator or compat now, not at the first call

    @staticmethod
    def _count(name, value, hi):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
            raise ValueError("%s must be an integer in [1, %d], not %r" % (name, hi, value))
        return value

    def _draw(self):
        gen = None
        if self.seed is not None:
            gen = _torch.Generator()
            gen.manual_seed(self.seed)
        return gaussian_orthogonal_random_matrix(self.nb_features, self.dim_heads,
                                                 self.ortho_scaling, gen)

    @_torch.no_grad()
    def redraw_projection_matrix(self, device=None):
        """Draw a new projection matrix in place, as performer-pytorch's method does (device
        is accepted for its signature; the module runs on the CPU)."""
        self.projection_matrix.copy_(self._draw())

    def extra_repr(self):
        return ("dim_heads=%d, nb_features=%d, causal=%s, estimator=%r, compat=%r" %
                (self.dim_heads, self.nb_features, self.causal, self.estimator, self.compat))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "projection_matrix"
        w = state_dict.get(key)
        if w is not None:
            want = (self.nb_features, self.dim_heads)
            problem = None
            if not isinstance(w, _torch.Tensor):
                problem = "is a %s, not a tensor" % type(w).__name__
            elif tuple(w.shape) != want:
                problem = "has shape %s, expected (nb_features, dim_heads) = %s" % (
                    tuple(w.shape), want)
                if w.dim() == 2:
                    problem += ("; make the module with nb_features=%d, dim_heads=%d to load "
                                "it" % tuple(w.shape))
            elif not w.is_floating_point() or not bool(_torch.isfinite(w).all()):
                problem = "must hold finite floating-point values"
            if problem:
                error_msgs.append("%s %s" % (key, problem))
                return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def _matrix(self):
        """The buffer as a float32 NumPy matrix (its own memory when it is float32)."""
        w = self.projection_matrix.detach()
        if w.device.type != "cpu":
            raise ValueError("projection_matrix is on %s; rfjit.torch.FastAttention runs on "
                             "the CPU (keep the module there)" % w.device)
        return w.to(_torch.float32).numpy()

    def _plan(self, dv):
        """The plan for value dimension dv over the current matrix, made when either is new."""
        rt = self._runtime
        w = self._matrix()
        with rt.lock:
            if rt.matrix is None or not _np.array_equal(rt.matrix, w):
                # the old plans are not closed: a call on another thread may hold one
                rt.plans, rt.matrix = {}, w.copy()
            plan = rt.plans.get(dv)
            if plan is None:
                plan = rt.context().plan(self.dim_heads, dv=dv, estimator=self.estimator,
                                         causal=self.causal, seed=self.seed or 0,
                                         projection=w, compat=self.compat)
                rt.plans[dv] = plan
            return plan

    def forward(self, q, k, v):
        tensors = (("q", q), ("k", k), ("v", v))
        self._check(tensors)
        b, h, n = q.shape[:3]
        out = _torch.empty((b, h, n, v.shape[-1]), dtype=q.dtype)
        if out.numel() == 0:
            return out
        views = [self._view(t) for _, t in tensors] + [self._view(out)]
        args = _abi.AttnArgs()
        args.size = _C.sizeof(args)
        args.q, args.k, args.v, args.out = (_C.pointer(x) for x in views)
        plan = self._plan(v.shape[-1])
        plan._run(_rfjit._lib.rfjit_plan_execute_args, _C.byref(args))
        return out

    def _check(self, tensors):
        for name, t in tensors:
            if not isinstance(t, _torch.Tensor):
                raise TypeError("%s must be a torch.Tensor, not %s" % (name, type(t).__name__))
        if _torch.is_grad_enabled() and any(t.requires_grad for _, t in tensors):
            raise RuntimeError("rfjit.torch.FastAttention is inference only (no backward): "
                               "call it under torch.no_grad() or torch.inference_mode(), or "
                               "detach the inputs")
        dtype = tensors[0][1].dtype
        for name, t in tensors:
            if t.device.type != "cpu":
                raise ValueError("%s is on %s; rfjit.torch.FastAttention takes CPU tensors" %
                                 (name, t.device))
            if t.dtype not in _DTYPES:
                raise ValueError("%s has dtype %s; rfjit.torch.FastAttention takes float32, "
                                 "float16 or bfloat16" % (name, t.dtype))
            if t.dtype != dtype:
                raise ValueError("q, k and v must have one dtype, not %s, %s and %s" %
                                 tuple(t.dtype for _, t in tensors))
            if t.dim() != 4:
                raise ValueError("%s must be (batch, heads, n, %s), not shape %s" %
                                 (name, "dv" if name == "v" else "dim_heads", tuple(t.shape)))
            if name != "v" and t.shape[-1] != self.dim_heads:
                raise ValueError("%s has last dimension %d, expected dim_heads = %d" %
                                 (name, t.shape[-1], self.dim_heads))

    @staticmethod
    def _view(t):
        """An rfjit_tensor_ex over the tensor's own memory: torch strides count elements, as
        the library's do, and are never negative."""
        return _abi.TensorEx(_C.sizeof(_abi.TensorEx), t.data_ptr(),
                             (_C.c_int64 * 4)(*t.shape), (_C.c_int64 * 4)(*t.stride()),
                             _abi.DTYPE[_DTYPES[t.dtype]])
