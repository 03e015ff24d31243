# SPDX-License-Identifier: MIT
"""rfjit from Python: random-feature attention kernels compiled at run time.

    import numpy as np, rfjit
    out = rfjit.attention(q, k, v, estimator="positive", features=256, causal=False)

Arrays are NumPy float32, shaped (L, d), (H, L, d) or (B, H, L, d) (v and the output with dv
for d). float32 arrays with non-negative strides are passed to the library as they are, with
no copy (C-contiguous or strided views alike); anything else (float64, negative strides) is
converted once to a C-contiguous float32 copy. Outputs are new C-contiguous float32 arrays,
or the `out=` array you pass, written in place.

The library is loaded from, in order: $RFJIT_LIBRARY; a librfjit.so next to this package
(python/rfjit/ or python/); the loader path (ldconfig, LD_LIBRARY_PATH). Errors raise
rfjit.Error, whose .status is the status name (e.g. "RFJIT_E_SHAPE") and whose message is the
library's. Calls release the GIL, so threads may execute plans concurrently.
"""
import ctypes as _C
import ctypes.util as _cutil
import os as _os
import threading as _threading

import numpy as _np

from . import _abi

__all__ = ["Error", "Context", "Plan", "TuneResult", "attention", "version", "estimators",
           "default_context"]


def _load():
    here = _os.path.dirname(_os.path.abspath(__file__))
    names = []
    if _os.environ.get("RFJIT_LIBRARY"):
        names.append(_os.environ["RFJIT_LIBRARY"])
    for d in (here, _os.path.dirname(here)):
        for f in sorted(_os.listdir(d)):
            if f.startswith("librfjit.so"):
                names.append(_os.path.join(d, f))
    names += [n for n in (_cutil.find_library("rfjit"), "librfjit.so.0.2", "librfjit.so") if n]
    errors = []
    for n in names:
        try:
            return _C.CDLL(n)
        except OSError as e:
            errors.append(str(e))
    raise ImportError("rfjit: cannot load librfjit (set RFJIT_LIBRARY to its path): " +
                      "; ".join(errors or ["not found"]))


_lib = _load()
_abi.declare(_lib)


class Error(RuntimeError):
    """A failed rfjit call: .status is the status name, .code its number."""

    def __init__(self, code, message):
        self.code = code
        self.status = _abi.STATUS.get(code, "RFJIT_E_%d" % code)
        super().__init__("%s: %s" % (self.status, message or
                                     _lib.rfjit_status_string(code).decode()))


def version():
    """The loaded library's version string, e.g. '0.2.0'."""
    return _lib.rfjit_version_string().decode()


def estimators():
    """Names of the built-in estimators, in registry order."""
    out, i = [], 0
    while True:
        n = _lib.rfjit_estimator_name(i)
        if not n:
            return out
        out.append(n.decode())
        i += 1


def _enc(s):
    return None if s is None else str(s).encode()


class _View:
    """A rank-4 rfjit_tensor over a NumPy array, and the array it must keep alive."""

    def __init__(self, a, name, dim=None, writable=False):
        if not isinstance(a, _np.ndarray):
            if writable:
                raise TypeError("%s must be a numpy.ndarray" % name)
            a = _np.asarray(a)
        if a.dtype.kind not in "fiub":
            raise TypeError("%s has dtype %s; rfjit takes real numbers" % (name, a.dtype))
        if a.ndim not in (2, 3, 4):
            raise ValueError("%s must be (L, d), (H, L, d) or (B, H, L, d), not %s" %
                             (name, a.shape))
        direct = (a.dtype == _np.float32 and a.dtype.byteorder in "=|<" and
                  all(s >= 0 and s % 4 == 0 for s in a.strides))
        if not direct:
            if writable:
                raise ValueError("%s must be float32 with non-negative strides (it is written "
                                 "in place)" % name)
            a = _np.ascontiguousarray(a, dtype=_np.float32)
        if writable and not a.flags.writeable:
            raise ValueError("%s is read-only" % name)
        if dim is not None and a.shape[-1] != dim:
            raise ValueError("%s has last dimension %d, expected %d" % (name, a.shape[-1], dim))
        self.array = a
        shape = (1,) * (4 - a.ndim) + a.shape
        strides = (0,) * (4 - a.ndim) + tuple(s // 4 for s in a.strides)
        self.t = _abi.Tensor(_C.cast(a.ctypes.data, _C.POINTER(_C.c_float)),
                             (_C.c_int64 * 4)(*shape), (_C.c_int64 * 4)(*strides))

    def ref(self):
        return _C.byref(self.t)


def _out_like(q_shape, dim, out, name="out"):
    shape = tuple(q_shape[:-1]) + (dim,)
    if out is None:
        return _np.empty(shape, dtype=_np.float32)
    if tuple(out.shape) != shape:
        raise ValueError("%s must have shape %s, not %s" % (name, shape, out.shape))
    return out


class _Handle:
    """An owned library object, destroyed once: by close(), at the end of a `with` block, or
    when garbage-collected. Subclasses name their destroy function."""
    _h = None
    _destroy = None

    @property
    def handle(self):
        if self._h is None:
            raise ValueError("this %s is closed" % type(self).__name__)
        return self._h

    def close(self):
        if self._h is not None:
            self._destroy(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Context(_Handle):
    """An rfjit context: the JIT, kernel caches, wisdom and thread pool. Use one per process
    (or per subsystem); plans created from it must be closed before it."""
    _destroy = _lib.rfjit_ctx_destroy

    def __init__(self, threads=0, cache_dir=None, wisdom_path=None, isa=None, verbose=0,
                 cache_max_bytes=0):
        d = _abi.CtxDesc()
        d.size = _C.sizeof(d)
        d.threads, d.verbose, d.cache_max_bytes = threads, verbose, cache_max_bytes
        d.cache_dir, d.wisdom_path, d.isa = _enc(cache_dir), _enc(wisdom_path), _enc(isa)
        h = _C.c_void_p()
        st = _lib.rfjit_ctx_create(_C.byref(d), _C.byref(h))
        if st:  # no context holds the message: the library keeps it per thread
            raise Error(st, _lib.rfjit_ctx_last_error(None).decode())
        self._h = h

    def _check(self, st):
        if st:
            raise Error(st, _lib.rfjit_ctx_last_error(self._h).decode())

    def info(self):
        """The machine and library as rfjit sees them, as a dict."""
        import json
        buf = _C.create_string_buffer(1 << 16)
        self._check(_lib.rfjit_info(self.handle, 1, buf, len(buf)))
        return json.loads(buf.value.decode())

    def plan(self, d, dv=None, m=256, estimator="positive", causal=False, seed=0,
             projection="orthogonal", backend="auto", fallback=False, eva_window=16,
             eva_chunks=8, hybrid_signs=8, hybrid_base="positive", calib=None, features=None):
        """A plan: one specialised attention operator. projection is 'orthogonal', 'iid' or
        an (m, d) array; calib is a (q, k) sample that freezes a fitted estimator's
        parameters (needed for causal oprf/saderf/sderf/aderf). features= is an alias of m."""
        return Plan(self, d, dv, features if features is not None else m, estimator, causal,
                    seed, projection, backend, fallback, eva_window, eva_chunks, hybrid_signs,
                    hybrid_base, calib)

    def tune(self, d, L, budget=1e-2, dv=None, causal=False, budget_kind="output",
             patience="measure", seed=0, calib=None, scale=1.0, estimators=None):
        """The fastest plan within the error budget on this machine (see rfjit_tune);
        calib is an optional (q, k, v) sample. Answers from wisdom when it can."""
        t = _abi.TuneDesc()
        t.size = _C.sizeof(t)
        t.d, t.dv, t.causal, t.L = d, dv or 0, int(bool(causal)), L
        t.budget, t.budget_kind = budget, _abi.BUDGET[budget_kind]
        t.patience, t.seed, t.synthetic_scale = _abi.PATIENCE[patience], seed, scale
        t.estimators = _enc(",".join(estimators) if isinstance(estimators, (list, tuple))
                            else estimators)
        keep = []
        if calib is not None:
            cq, ck, cv = (_View(calib[0], "calib q", d), _View(calib[1], "calib k", d),
                          _View(calib[2], "calib v"))
            keep = [cq, ck, cv]
            t.calib_q, t.calib_k, t.calib_v = (_C.pointer(x.t) for x in keep)
        h = _C.c_void_p()
        self._check(_lib.rfjit_tune(self.handle, _C.byref(t), _C.byref(h)))
        del keep
        return TuneResult(self, h)

    def wisdom_export(self, path=None):
        """Save the context's wisdom (merged with what the file holds, atomically)."""
        self._check(_lib.rfjit_wisdom_export(self.handle, _enc(path)))

    def wisdom_import(self, path):
        self._check(_lib.rfjit_wisdom_import(self.handle, _enc(path)))

    def wisdom_forget(self, on_disk=False):
        self._check(_lib.rfjit_wisdom_forget(self.handle, int(bool(on_disk))))

    def wisdom_to_string(self):
        p = _C.c_void_p()
        self._check(_lib.rfjit_wisdom_to_string(self.handle, _C.byref(p)))
        try:
            return _C.string_at(p).decode()
        finally:
            _lib.rfjit_free(p)

    @property
    def wisdom_path(self):
        return _lib.rfjit_wisdom_path(self.handle).decode()


class Plan(_Handle):
    """One attention operator (estimator, sizes, projections, compiled kernel). Calling it
    runs attention; features() and kernel() give feature maps and kernel estimates."""
    _destroy = _lib.rfjit_plan_destroy

    def __init__(self, ctx, d, dv, m, estimator, causal, seed, projection, backend, fallback,
                 eva_window, eva_chunks, hybrid_signs, hybrid_base, calib):
        self._ctx = ctx
        self._h = None
        a = _abi.AttnDesc()
        a.size = _C.sizeof(a)
        a.d, a.dv, a.m, a.causal = d, dv or 0, m, int(bool(causal))
        a.estimator = _enc(estimator)
        a.seed = seed
        keep = []
        if isinstance(projection, str):
            a.projection = _abi.PROJ[projection]
        else:
            w = _np.ascontiguousarray(projection, dtype=_np.float32)
            if w.ndim != 2 or w.shape[1] != d:
                raise ValueError("projection must be (m, d) = (m, %d), not %s" % (d, w.shape))
            a.projection, a.m = _abi.PROJ["user"], w.shape[0]
            a.projection_matrix = w.ctypes.data_as(_C.POINTER(_C.c_float))
            keep.append(w)
        a.backend, a.fallback = _abi.BACKEND[backend], int(bool(fallback))
        a.eva_window, a.eva_chunks, a.hybrid_signs = eva_window, eva_chunks, hybrid_signs
        a.hybrid_base = _abi.HYBRID_BASE[hybrid_base]
        if calib is not None:
            cq, ck = _View(calib[0], "calib q", d), _View(calib[1], "calib k", d)
            keep += [cq, ck]
            a.calib_q, a.calib_k = _C.pointer(cq.t), _C.pointer(ck.t)
        self._create(a)
        self.d, self.dv, self.causal = d, dv or d, bool(causal)

    @classmethod
    def _from_desc(cls, ctx, a):
        p = cls.__new__(cls)
        p._ctx, p._h = ctx, None
        p._create(a)
        p.d, p.dv, p.causal = a.d, a.dv or a.d, bool(a.causal)
        return p

    def _create(self, a):
        h = _C.c_void_p()
        self._ctx._check(_lib.rfjit_plan_create(self._ctx.handle, _C.byref(a), _C.byref(h)))
        self._h = h

    @property
    def feature_dim(self):
        """M, the length of the feature vectors (0 for exact and eva)."""
        return _lib.rfjit_plan_feature_dim(self.handle)

    def describe(self):
        buf = _C.create_string_buffer(2048)
        self._ctx._check(_lib.rfjit_plan_describe(self.handle, buf, len(buf)))
        return buf.value.decode()

    def __call__(self, q, k, v, out=None):
        """softmax(q k^T / sqrt(d)) v as the plan estimates it; out (optional) is written in
        place and returned."""
        vq, vk, vv = _View(q, "q", self.d), _View(k, "k", self.d), _View(v, "v", self.dv)
        o = _View(_out_like(vq.array.shape, self.dv, out), "out", self.dv, writable=True)
        self._ctx._check(_lib.rfjit_plan_execute(self.handle, vq.ref(), vk.ref(), vv.ref(),
                                                 o.ref()))
        return o.array

    execute = __call__

    def features(self, x=None, y=None):
        """(phi_q(x), phi_k(y)) for the vectors as given (no d^-1/4 scaling), so that
        phi_q(x) . phi_k(y) estimates exp(x . y); either input may be None."""
        M = self.feature_dim
        vx = _View(x, "x", self.d) if x is not None else None
        vy = _View(y, "y", self.d) if y is not None else None
        ox = _View(_out_like(vx.array.shape, M, None), "phi_x", M, True) if vx else None
        oy = _View(_out_like(vy.array.shape, M, None), "phi_y", M, True) if vy else None
        self._ctx._check(_lib.rfjit_plan_features(
            self.handle, vx.ref() if vx else None, vy.ref() if vy else None,
            ox.ref() if ox else None, oy.ref() if oy else None))
        return (ox.array if ox else None, oy.array if oy else None)

    def kernel(self, x, y, kind="softmax"):
        """Estimates of exp(x_i . y_j) ('softmax') or exp(-|x_i - y_j|^2 / 2) ('gaussian'),
        shape (..., Lx, Ly)."""
        vx, vy = _View(x, "x", self.d), _View(y, "y", self.d)
        shape = tuple(vx.array.shape[:-1]) + (vy.array.shape[-2],)
        o = _View(_np.empty(shape, dtype=_np.float32), "out", None, True)
        self._ctx._check(_lib.rfjit_plan_kernel(self.handle, vx.ref(), vy.ref(),
                                                _abi.KERNEL[kind], o.ref()))
        return o.array


class TuneResult(_Handle):
    """What rfjit_tune chose: .estimator, .m, .rows (the table), .info, .json(), .plan()."""
    _destroy = _lib.rfjit_tune_result_destroy

    def __init__(self, ctx, h):
        self._ctx, self._h = ctx, h
        a = _abi.AttnDesc()
        a.size = _C.sizeof(a)
        ctx._check(_lib.rfjit_tune_result_plan(h, _C.byref(a)))
        self._desc = a
        self.estimator, self.m = a.estimator.decode(), a.m
        self.info = _lib.rfjit_tune_result_info(h).decode()
        self.rows = []
        for i in range(_lib.rfjit_tune_result_rows(h)):
            r = _abi.TuneRow()
            ctx._check(_lib.rfjit_tune_result_row(h, i, _C.byref(r)))
            self.rows.append({
                "estimator": r.estimator.decode(), "m": r.m,
                "tiling": (r.tiling.vw, r.tiling.T, r.tiling.ri, r.tiling.rj),
                "predicted_error": r.predicted_error, "measured_error": r.measured_error,
                "error_bound": r.error_bound, "time_ms": r.time_ms,
                "meets_budget": bool(r.meets_budget), "pareto": bool(r.pareto),
                "chosen": bool(r.chosen), "note": (r.note or b"").decode()})

    def json(self):
        import json
        buf = _C.create_string_buffer(1 << 16)
        self._ctx._check(_lib.rfjit_tune_result_json(self._h, buf, len(buf)))
        return json.loads(buf.value.decode())

    def plan(self):
        """A Plan for the chosen configuration, on the context that tuned it."""
        return Plan._from_desc(self._ctx, self._desc)



_default = None
_default_lock = _threading.Lock()
_plans = {}


def default_context():
    """The context rfjit.attention uses, created on first use with the defaults."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Context()
        return _default


def attention(q, k, v, estimator="positive", features=256, causal=False, seed=0, out=None,
              **plan_options):
    """softmax(q k^T / sqrt(d)) v, exactly (estimator='exact') or estimated with `features`
    random projections. Plans are cached per configuration on the default context, so
    repeated calls compile and draw nothing. plan_options go to Context.plan."""
    q_ = q if isinstance(q, _np.ndarray) else _np.asarray(q)
    v_ = v if isinstance(v, _np.ndarray) else _np.asarray(v)
    key = (q_.shape[-1], v_.shape[-1], estimator, features, bool(causal), seed,
           tuple(sorted((k_, id(x) if isinstance(x, _np.ndarray) else x)
                        for k_, x in plan_options.items())))
    ctx = default_context()
    with _default_lock:
        plan = _plans.get(key)
        if plan is None:
            plan = ctx.plan(q_.shape[-1], dv=v_.shape[-1], m=features, estimator=estimator,
                            causal=causal, seed=seed, **plan_options)
            if not plan_options:
                _plans[key] = plan
    return plan(q_, k, v_, out=out)
