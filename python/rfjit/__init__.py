# SPDX-License-Identifier: MIT
"""rfjit from Python: random-feature attention kernels compiled at run time.

    import numpy as np, rfjit
    out = rfjit.attention(q, k, v, estimator="positive", features=256, causal=False)

Arrays
    q and k are (L, d), (H, L, d) or (B, H, L, d); v has the same leading dimensions as k
    with its own last dimension dv; the output has the leading dimensions of q and last
    dimension dv. k and v may have fewer heads than q (grouped-query attention, see
    Plan.__call__). Real arrays of any dtype are accepted: float32, float16 and bfloat16
    (ml_dtypes.bfloat16) arrays with non-negative strides are passed to the library as they
    are, with no copy (C-contiguous or strided views alike); anything else (float64,
    integers, negative strides, sequences) is converted once to a C-contiguous float32 copy
    (a half-precision array with negative strides keeps its dtype). Attention outputs have
    the queries' dtype: float16 in gives float16 out, bfloat16 gives bfloat16, the rest
    float32; or the `out=` array you pass, a writable float32, float16 or bfloat16
    numpy.ndarray of the output's shape with non-negative strides, written in place.

Decoding
    plan.decoder(batch, heads, kv_heads=None) on a causal plan gives a Decoder: prefill,
    step, reset, snapshot and restore over independent sequences (see Decoder).

Lifetimes
    Every object made from a Context (Plan, TuneResult) keeps that context alive, and a
    Decoder keeps its plan (and so the context) alive: closing a context (close() or the end
    of its `with` block) refuses new work on it (its own methods raise rfjit.Error, status
    RFJIT_E_STATE), and the library context is destroyed once the last object made from it
    is closed or garbage-collected. So a plan made inside a `with rfjit.Context()` block
    keeps working after the block ends, `del ctx` is harmless, and garbage collection and
    interpreter shutdown may finalize objects in any order. A closed Plan, Decoder or
    TuneResult raises rfjit.Error (RFJIT_E_STATE) when used; a call in progress on another
    thread finishes before the plan is destroyed.

Errors
    Every failure raises rfjit.Error, whose .status is the status name (e.g. "RFJIT_E_SHAPE"),
    .code its number, and whose message names the argument and what it accepts: the library's
    message where the library refused, the binding's where it checked the argument itself.

The library is loaded from, in order: $RFJIT_LIBRARY; a librfjit.so next to this package
(python/rfjit/ or python/); the loader path (ldconfig, LD_LIBRARY_PATH). Calls release the
GIL, so threads may execute plans concurrently.
"""
import ctypes as _C
import ctypes.util as _cutil
import operator as _operator
import os as _os
import reprlib as _reprlib
import threading as _threading

import numpy as _np

from . import _abi

__all__ = ["Error", "Context", "Plan", "Decoder", "TuneResult", "attention", "version",
           "estimators", "default_context"]


def _load():
    here = _os.path.dirname(_os.path.abspath(__file__))
    names = []
    if _os.environ.get("RFJIT_LIBRARY"):
        names.append(_os.environ["RFJIT_LIBRARY"])
    for d in (here, _os.path.dirname(here)):
        for f in sorted(_os.listdir(d)):
            if f.startswith("librfjit.so"):
                names.append(_os.path.join(d, f))
    names += [n for n in (_cutil.find_library("rfjit"), "librfjit.so.0.4", "librfjit.so") if n]
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
_CODE = {name: code for code, name in _abi.STATUS.items()}


class Error(RuntimeError):
    """A failed rfjit call: .status is the status name (e.g. "RFJIT_E_SHAPE"), .code its
    number (rfjit.h's list), str(e) the status name and the message."""

    def __init__(self, code, message):
        self.code = code
        self.status = _abi.STATUS.get(code, "RFJIT_E_%d" % code)
        super().__init__("%s: %s" % (self.status, _escape(
            message or _lib.rfjit_status_string(code).decode())))


def _escape(text):
    """text with its control characters (C0, DEL, C1) written as escapes, so that a message
    quoting a user's string stays one line and cannot move the terminal's cursor."""
    return "".join(c if not (ord(c) < 32 or 127 <= ord(c) < 160) else
                   {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, "\\x%02x" % ord(c))
                   for c in text)


def _fail(status, message):
    raise Error(_CODE[status], message)


_short = _reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlist = 60, 60, 6


def _show(value):
    """A bounded repr of a user value for a message (repr escapes control characters)."""
    return _short.repr(value)


# --- argument checks: each names the argument, the value given and what is accepted ------

def _int(name, value, lo, hi):
    """value as an int in [lo, hi]: C would silently wrap one outside its field's type."""
    n = None
    if not isinstance(value, bool):
        try:
            n = _operator.index(value)
        except TypeError:
            pass
    if n is None:
        _fail("RFJIT_E_INVALID_ARG", "%s must be an integer in [%d, %d], not %s" %
              (name, lo, hi, _show(value)))
    if not lo <= n <= hi:
        _fail("RFJIT_E_INVALID_ARG", "%s = %d is outside [%d, %d]" % (name, n, lo, hi))
    return n


_I32, _I64, _U64 = (1 << 31) - 1, (1 << 63) - 1, (1 << 64) - 1


def _float(name, value, positive=True):
    x = None
    if not isinstance(value, (str, bytes)):
        try:
            x = float(value)
        except (TypeError, ValueError):
            pass
    if x is None or not (x == x and abs(x) != float("inf")) or (positive and not x > 0):
        _fail("RFJIT_E_INVALID_ARG", "%s must be a finite %snumber, not %s" %
              (name, "positive " if positive else "", _show(value)))
    return x


def _choice(name, value, table):
    if not isinstance(value, str) or value not in table:
        _fail("RFJIT_E_INVALID_ARG", "%s must be one of %s, not %s" %
              (name, ", ".join(repr(k) for k in table), _show(value)))
    return table[value]


def _transform(value):
    """transform= as RFJIT_XFORM_* flags: None, 'none', 'k,q', or a sequence of names."""
    if value is None or value == "none":
        return 0
    names = value.split(",") if isinstance(value, str) else value
    try:
        names = list(names)
    except TypeError:
        names = [value]
    flags = 0
    for n in names:
        flags |= _choice("transform", n.strip() if isinstance(n, str) else n, _abi.XFORM)
    return flags


def _transform_names(flags):
    """RFJIT_XFORM_* flags as transform= takes them: None for none, else 'k,q,balance'."""
    names = [n for n, f in sorted(_abi.XFORM.items(), key=lambda x: x[1]) if flags & f]
    return ",".join(names) if names else None


def _text(name, value):
    """None, or a str without NUL as UTF-8 bytes for a const char * field."""
    if value is None:
        return None
    if isinstance(value, _os.PathLike):
        value = _os.fspath(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if not isinstance(value, str):
        _fail("RFJIT_E_INVALID_ARG", "%s must be a string, not %s" % (name, _show(value)))
    if "\0" in value:
        _fail("RFJIT_E_INVALID_ARG", "%s must not contain a NUL character: %s" %
              (name, _show(value)))
    return value.encode("utf-8", "surrogateescape")


def _estimator(name, value):
    if value is None:
        return None
    if not isinstance(value, str):
        _fail("RFJIT_E_NO_ESTIMATOR", "%s must be an estimator name (one of %s), not %s" %
              (name, ", ".join(estimators()), _show(value)))
    return _text(name, value)


def _dtype_code(dt):
    """The rfjit_dtype of a NumPy dtype rfjit takes as is, or None. bfloat16 is recognised by
    name, so ml_dtypes is needed only by whoever makes such arrays."""
    if dt.byteorder not in "=|<":
        return None
    if dt == _np.float32:
        return _abi.DTYPE["float32"]
    if dt == _np.float16:
        return _abi.DTYPE["float16"]
    if dt.name == "bfloat16" and dt.itemsize == 2:
        return _abi.DTYPE["bfloat16"]
    return None


def _plan_dtype(value):
    """dtype= of Context.plan: None, a name, or anything numpy.dtype() takes."""
    if value is None:
        return _abi.DTYPE["float32"]
    if isinstance(value, str) and value in _abi.DTYPE:
        return _abi.DTYPE[value]
    code = None
    try:
        code = _dtype_code(_np.dtype(value))
    except TypeError:
        pass
    if code is None:
        _fail("RFJIT_E_DTYPE", "dtype must be one of 'float32', 'float16', 'bfloat16' (or "
              "their NumPy dtypes), not %s" % _show(value))
    return code


# Context.plan(compute=): the kernel's product precision (rfjit_attn_desc.compute), named as
# the CLI's --compute names it
_COMPUTE = {"f32": _abi.DTYPE["float32"], "bf16": _abi.DTYPE["bfloat16"]}


def _compute(value):
    return _COMPUTE["f32"] if value is None else _choice("compute", value, _COMPUTE)


def version():
    """The loaded library's version string, e.g. '0.4.0'."""
    return _lib.rfjit_version_string().decode()


def estimators():
    """Names of the built-in estimators, in registry order (exact, positive, ...)."""
    out, i = [], 0
    while True:
        n = _lib.rfjit_estimator_name(i)
        if not n:
            return out
        out.append(n.decode())
        i += 1


def _check_rank(a, name, dim):
    """An array of rank 2 to 4 whose last dimension is dim (any, if dim is None)."""
    if a.ndim not in (2, 3, 4):
        _fail("RFJIT_E_SHAPE", "%s must be (L, %s), (H, L, %s) or (B, H, L, %s), not %s" %
              ((name,) + ("d" if dim is None else str(dim),) * 3 + (a.shape,)))
    if dim is not None and a.shape[-1] != dim:
        _fail("RFJIT_E_SHAPE", "%s has last dimension %d, expected %d (shape %s)" %
              (name, a.shape[-1], dim, a.shape))


class _View:
    """A rank-4 rfjit_tensor over a NumPy array, and the array it must keep alive."""

    def __init__(self, a, name, dim=None, writable=False):
        if writable:
            a = self._output(a, name)
        else:
            a = self._input(a, name)
        _check_rank(a, name, dim)
        self.array = a
        shape = (1,) * (4 - a.ndim) + a.shape
        strides = (0,) * (4 - a.ndim) + tuple(s // 4 for s in a.strides)
        self.t = _abi.Tensor(_C.cast(a.ctypes.data, _C.POINTER(_C.c_float)),
                             (_C.c_int64 * 4)(*shape), (_C.c_int64 * 4)(*strides))

    @staticmethod
    def _direct(a, half=False):
        code = _dtype_code(a.dtype)
        return (code is not None and (half or code == 0) and
                all(s >= 0 and s % a.itemsize == 0 for s in a.strides))

    @classmethod
    def _input(cls, a, name, half=False):
        if not isinstance(a, _np.ndarray):
            try:
                a = _np.asarray(a)
            except (TypeError, ValueError) as e:
                _fail("RFJIT_E_INVALID_ARG", "%s must be an array of real numbers, not %s (%s)"
                      % (name, _show(a), e))
        if a.dtype.kind not in "fiu" and _dtype_code(a.dtype) is None:
            _fail("RFJIT_E_INVALID_ARG", "%s has dtype %s; rfjit takes real numbers (float32, "
                  "float16, bfloat16 as they are, other real dtypes converted to float32)" %
                  (name, a.dtype))
        if cls._direct(a, half):
            return a
        keep = half and _dtype_code(a.dtype) is not None
        return _np.ascontiguousarray(a, dtype=a.dtype if keep else _np.float32)

    @classmethod
    def _output(cls, a, name, half=False):
        kinds = "float32, float16 or bfloat16" if half else "float32"
        if not isinstance(a, _np.ndarray):
            _fail("RFJIT_E_INVALID_ARG", "%s must be a numpy.ndarray of %s (it is written "
                  "in place), not %s" % (name, kinds, type(a).__name__))
        if not cls._direct(a, half):
            _fail("RFJIT_E_INVALID_ARG", "%s must be native %s with non-negative strides "
                  "(it is written in place), not %s with strides %s" %
                  (name, kinds, a.dtype, a.strides))
        if not a.flags.writeable:
            _fail("RFJIT_E_INVALID_ARG", "%s is read-only; it is written in place" % name)
        return a

    def ref(self):
        return _C.byref(self.t)


def _out_like(q_shape, dim, out, name="out", dtype=None):
    """out, checked against the output's shape, or a new array of dtype (None: float32, the
    only one taken then)."""
    shape = tuple(q_shape[:-1]) + (dim,)
    if out is None:
        return _np.empty(shape, dtype=_np.float32 if dtype is None else dtype)
    if not isinstance(out, _np.ndarray):
        _fail("RFJIT_E_INVALID_ARG", "%s must be a numpy.ndarray of %s with shape %s, "
              "not %s" % (name, "float32" if dtype is None else "float32, float16 or "
                          "bfloat16", shape, type(out).__name__))
    if tuple(out.shape) != shape:
        _fail("RFJIT_E_SHAPE", "%s must have shape %s, not %s" % (name, shape, out.shape))
    return out


class _ExView:
    """A rank-4 rfjit_tensor_ex over a float32, float16 or bfloat16 NumPy array (its own
    memory and strides, no copy), and the array it must keep alive. packed: the array is
    (total, H, dim), seen as {1, H, total, dim} with batch stride 0."""

    def __init__(self, a, name, dim=None, writable=False, packed=False):
        a = _View._output(a, name, True) if writable else _View._input(a, name, True)
        if packed and a.ndim != 3:
            _fail("RFJIT_E_SHAPE", "%s must be (total, H, %s) with cu_seqlens, not %s" %
                  (name, "d" if dim is None else dim, a.shape))
        _check_rank(a, name, dim)
        self.array = a
        st = tuple(x // a.itemsize for x in a.strides)
        if packed:
            shape, strides = (1, a.shape[1], a.shape[0], a.shape[2]), (0, st[1], st[0], st[2])
        else:
            shape = (1,) * (4 - a.ndim) + a.shape
            strides = (0,) * (4 - a.ndim) + st
        self.t = _abi.TensorEx(_C.sizeof(_abi.TensorEx), a.ctypes.data,
                               (_C.c_int64 * 4)(*shape), (_C.c_int64 * 4)(*strides),
                               _dtype_code(a.dtype))

    def ref(self):
        return _C.pointer(self.t)


def _int_array(name, value, n, lo=0):
    """value as a C-contiguous int32 array of n entries (n None: any length >= 1), each
    >= lo; the library checks the upper bounds it knows."""
    a = _np.asarray(value)
    if a.dtype.kind not in "iu" or a.ndim != 1:
        _fail("RFJIT_E_INVALID_ARG", "%s must be a 1-D array of integers, not %s" %
              (name, _show(value)))
    if (n is not None and a.shape[0] != n) or a.shape[0] < 1:
        _fail("RFJIT_E_SHAPE", "%s has %d entries, expected %s" %
              (name, a.shape[0], n if n is not None else "at least 1"))
    if a.size and (a.min() < lo or a.max() > _I32):
        bad = a[(a < lo) | (a > _I32)][0]
        _fail("RFJIT_E_INVALID_ARG", "%s[%d] = %d is outside [%d, %d]" %
              (name, int(_np.argmax((a < lo) | (a > _I32))), int(bad), lo, _I32))
    return _np.ascontiguousarray(a, dtype=_np.int32)


def _i32p(a):
    return None if a is None else a.ctypes.data_as(_C.POINTER(_C.c_int32))


class _Handle:
    """An owned library object. Its library handle is destroyed once nothing needs it: close()
    (or the end of a `with` block, or garbage collection) drops the owner's claim, and every
    call in progress and every object made from it hold claims of their own. Finalizers touch
    only instance and class attributes, so they are safe at interpreter shutdown."""
    _h = None
    _lock = None
    _closed = True
    _parent = None
    _destroy = None

    def _adopt(self, h, parent=None):
        """Own h; parent (whose claim the caller already took) is released when h is gone."""
        self._lock = _threading.RLock()
        self._claims, self._parent, self._h, self._closed = 1, parent, h, False

    def _claim(self, dependent=False):
        """The handle, held until _release(). dependent=True: for an object made from this
        one that holds a claim itself (it stays valid after close())."""
        lock = self._lock
        if lock is not None:
            with lock:
                if self._h is not None and (dependent or not self._closed):
                    self._claims += 1
                    return self._h
        _fail("RFJIT_E_STATE", "this %s is closed (close() was called or its with block "
              "ended)" % type(self).__name__)

    def _release(self):
        with self._lock:
            self._claims -= 1
            if self._claims:
                return
            h, self._h = self._h, None
        self._destroy(h)
        if self._parent is not None:
            self._parent._release()

    @property
    def closed(self):
        """True once close() was called (or the with block ended)."""
        return self._closed

    def close(self):
        """Give up this object: later calls on it raise rfjit.Error. The library object is
        destroyed now, or when the last call in progress or object made from it is done."""
        lock = self._lock
        if lock is None:
            return
        with lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def __reduce__(self):
        # A copy would share the handle and destroy it twice; copy, deepcopy and pickle all
        # come through here.
        _fail("RFJIT_E_STATE", "a %s owns a library object and cannot be copied or pickled; "
              "share the object itself" % type(self).__name__)


class Context(_Handle):
    """An rfjit context: the JIT, kernel caches, wisdom and thread pool. Use one per process
    (or per subsystem).

    Context(threads=0, cache_dir=None, wisdom_path=None, isa=None, verbose=0,
            cache_max_bytes=0)
      threads          threads an execute may use, caller included: 0 (one per core) .. 1024
      cache_dir        kernel cache directory; None: $RFJIT_CACHE_DIR or the XDG cache
                       default; "": memory only
      wisdom_path      wisdom file; None: $RFJIT_WISDOM or the default; "": no wisdom
      isa              None (the host's best, or $RFJIT_ISA), 'native', or on x86-64
                       'avx512', 'avx2', 'sse4.2', 'generic' to compile for a lower
                       instruction set than the host's (AArch64: 'neon')
      verbose          0 quiet; 1 or 2: the library's notes go to stderr
      cache_max_bytes  bound on the disk cache, bytes (0: 256 MiB)

    Library warnings (e.g. an unusable cache directory) are issued as Python RuntimeWarnings.
    Plans and tune results made from a context keep it alive (see the module's Lifetimes);
    close() or the end of a `with` block ends the context's own methods."""
    _destroy = _lib.rfjit_ctx_destroy

    def __init__(self, threads=0, cache_dir=None, wisdom_path=None, isa=None, verbose=0,
                 cache_max_bytes=0):
        d = _abi.CtxDesc()
        d.size = _C.sizeof(d)
        d.threads = _int("threads", threads, 0, 1024)
        d.verbose = _int("verbose", verbose, 0, 2)
        d.cache_max_bytes = _int("cache_max_bytes", cache_max_bytes, 0, _I64)
        d.cache_dir, d.wisdom_path = _text("cache_dir", cache_dir), _text("wisdom_path",
                                                                           wisdom_path)
        d.isa = _text("isa", isa)  # names depend on the host: the library judges them
        self._notes = []
        self._log = _abi.LOG_FN(self._make_log(self._notes))
        d.log = self._log
        h = _C.c_void_p()
        st = _lib.rfjit_ctx_create(_C.byref(d), _C.byref(h))
        errors = [m for level, m in self._notes if level == 0]
        self._flush_warnings()
        if st:
            # the library keeps the message per thread too, for a log that was not called
            raise Error(st, errors[-1] if errors else
                        _lib.rfjit_ctx_last_error(None).decode("utf-8", "replace"))
        self._adopt(h.value)

    @staticmethod
    def _make_log(notes):
        """The log callback: errors and warnings are kept for the calling Python thread to
        report; notes (verbose) go to stderr as the library prints them without a callback.
        It touches no module global, so it is safe late in interpreter shutdown."""
        write = _os.write

        def log(user, level, msg):
            text = (msg or b"").decode("utf-8", "replace")
            if level <= 1:
                notes.append((level, text))
            else:
                write(2, b"rfjit: " + (msg or b"") + b"\n")
        return log

    def _flush_warnings(self):
        import warnings
        while True:
            try:
                level, text = self._notes.pop(0)
            except IndexError:  # another thread took the last one
                return
            if level == 1:
                warnings.warn("rfjit: " + text, RuntimeWarning, stacklevel=3)

    def _check(self, st, h):
        """Raise the library's message for a failed call made with handle h (claimed)."""
        self._flush_warnings()
        if st:
            raise Error(st, _lib.rfjit_ctx_last_error(h).decode("utf-8", "replace"))

    def _run(self, fn, *args):
        """fn(handle, *args) under a claim; raises rfjit.Error if it fails."""
        h = self._claim()
        try:
            self._check(fn(h, *args), h)
        finally:
            self._release()

    def info(self):
        """The machine and library as rfjit sees them (CPU, LLVM, topology, estimators), as
        a dict (rfjit_info's JSON)."""
        import json
        buf = _C.create_string_buffer(1 << 16)
        self._run(_lib.rfjit_info, 1, buf, len(buf))
        return json.loads(buf.value.decode())

    def plan(self, d, dv=None, m=256, estimator="positive", causal=False, seed=0,
             projection="orthogonal", backend="auto", fallback=False, eva_window=16,
             eva_chunks=8, hybrid_signs=8, hybrid_base="positive", calib=None, features=None,
             scale=None, dtype=None, compat=None, eva_variant=None, transform=None,
             sparse_block=64, sparse_exact=4, compute=None):
        """A Plan: one specialised attention operator, compiled (or loaded from the cache) now.

        d            query/key head dimension, 1 .. 1024
        dv           value head dimension, 1 .. 2^20; None: d
        m            random projections, >= 1 (ignored by exact and eva); features= is an
                     alias that wins over m when given
        estimator    one of rfjit.estimators(): exact, positive, hyperbolic, trig, oprf,
                     saderf, sderf, aderf, hybrid, eva, blocksparse
        causal       bottom-right causal: query i of Lq sees keys 0 .. i + Lk - Lq (chunked
                     prefill after Lk - Lq earlier tokens); Lq > Lk is an error
        seed         projection and sampling seed, 0 .. 2^64-1
        scale        softmax scale, logits scale * q.k: None (default) 1/sqrt(d), else a
                     finite number > 0; random features see q and k times sqrt(scale)
        dtype        element type of the q, k, v the plan will mostly get, whose kernel is
                     compiled now: None or 'float32', 'float16', 'bfloat16' (or the NumPy
                     dtypes); a call with another type compiles that variant on first use
        compute      precision of the kernel's products: None or 'f32' (default), or
                     'bf16': operands rounded to bfloat16 (8 significant bits) with float32
                     sums, for exact attention (AMX or AVX512-BF16) and bidirectional
                     positive and hyperbolic (AMX). Other estimators and modes and the
                     reference backend raise RFJIT_E_NOT_APPLICABLE, a CPU (or
                     Context(isa=)) without the instructions RFJIT_E_ISA. README: "bf16
                     compute"
        projection   'orthogonal' (default), 'iid', or an (m, d) real array used as the
                     projection matrix (m is then taken from its shape)
        backend      'auto' (the JIT kernel where the estimator has one), 'jit' or 'reference'
        compat       None or 'none' (rfjit's own numerics), or the numerics of the code a model
                     was trained with, at its defaults: 'performer-pytorch' (estimator
                     'positive'), 'google-performer' ('positive', 'trig'),
                     'fast-transformers' ('hyperbolic'); pass the model's projection matrix
                     as projection=. 'positive' in the Performer modes runs a float32 path,
                     the others the reference backend. See the README's "Serving a model
                     trained with performer-pytorch"
        transform    None (default) or exact transforms that shrink a random-feature
                     estimate's variance (rfjit.h RFJIT_XFORM_*), as a comma-separated string
                     or a sequence of names: 'k' (centre the keys), 'q' (centre the queries,
                     each key's weight kept exactly: positive, hyperbolic, oprf, saderf,
                     sderf, aderf), 'balance' (equal query and key scales per coordinate),
                     'whiten' (the same with a full symmetric matrix)
        fallback     if compiling the kernel fails, run on the reference instead of failing
        eva_window   eva: exact local window, >= 0;  eva_chunks: chunk summaries, >= 1
        eva_variant  eva: None or 'principled' (rfjit's estimator), or 'official' (the HKUNLP
                     EVA code in eval mode with identity learned maps; needs eva_window >= 1,
                     Lq = Lk, no key mask). README: "eva: principled vs official"
        hybrid_signs hybrid: sign features n, >= 1;  hybrid_base: 'positive' or 'hyperbolic'
        sparse_block blocksparse: tokens per query and key block, >= 1
        sparse_exact blocksparse: key blocks each query block takes exactly (largest logit
                     bound), >= 0; 0 is positive, as many as there are blocks exact softmax.
                     README: "blocksparse: block-sparse + low-rank"
        calib        (q, k) sample arrays, each (L, d), (H, L, d) or (B, H, L, d), that freeze
                     a fitted estimator's parameters (needed for causal attention with oprf,
                     saderf, sderf, aderf; without it such a causal plan only decodes, each
                     slot fitting on its first prompt)

        Raises rfjit.Error naming the argument on any bad value."""
        return Plan(self, d, dv, features if features is not None else m, estimator, causal,
                    seed, projection, backend, fallback, eva_window, eva_chunks, hybrid_signs,
                    hybrid_base, calib, scale, dtype, compat, eva_variant, transform,
                    sparse_block, sparse_exact, compute)

    def tune(self, d, L, budget=1e-2, dv=None, causal=False, budget_kind="output",
             patience="measure", seed=0, calib=None, scale=1.0, estimators=None,
             softmax_scale=None, profile="real-like", transforms=True):
        """The fastest plan within an error budget on this machine (rfjit_tune), as a
        TuneResult; answers from wisdom when it remembers this problem.

        d, dv        head dimensions (dv None: d); L: sequence length the plan is for, >= 1
        budget       the error the plan may have, > 0: output kind E|O_hat - O|^2 / |O|^2,
                     kernel kind the kernel estimate's relative variance
        budget_kind  'output' or 'kernel'
        causal       consider only causally valid estimators, for causal attention
        patience     'estimate', 'measure', 'patient', 'exhaustive' or 'wisdom-only'
        seed         synthetic data and search seed, 0 .. 2^64-1
        calib        (q, k, v) sample arrays ((L, d)/(L, dv) or with leading (H,) or (B, H));
                     None: a synthetic set of `profile`
        profile      'real-like' (default: rows shaped like a trained model's heads, scaled
                     norms of median 3 x scale, a shared mean, one dominant direction;
                     signed estimators heavy-tailed there are refused) or 'gaussian'
                     (scaled rows of norm about `scale`); see rfjit.h RFJIT_PROFILE_*
        scale        > 0, the synthetic set's scale
        softmax_scale  the plans' softmax scale, as Context.plan's scale: None (1/sqrt(d))
                     or a finite number > 0; every candidate, the exact reference and the
                     wisdom record use it
        estimators   candidate names (a list or a comma-separated string); None: all
        transforms   True (default): each candidate may take the exact transform (Plan's
                     transform=) with the least calibration error, output budgets only;
                     False: none, as plans for Context.decode need"""
        t = _abi.TuneDesc()
        t.size = _C.sizeof(t)
        t.d = _int("d", d, 1, _I32)
        t.dv = 0 if dv is None else _int("dv", dv, 1, _I32)
        t.causal, t.L = int(bool(causal)), _int("L", L, 1, _I64)
        t.budget = _float("budget", budget)
        t.budget_kind = _choice("budget_kind", budget_kind, _abi.BUDGET)
        t.patience = _choice("patience", patience, _abi.PATIENCE)
        t.seed = _int("seed", seed, 0, _U64)
        t.synthetic_scale = _float("scale", scale)
        t.synthetic_profile = _choice("profile", profile, _abi.PROFILE)
        if not isinstance(transforms, (bool, _np.bool_)):
            _fail("RFJIT_E_INVALID_ARG", "transforms must be True or False, not %s" %
                  _show(transforms))
        t.transforms = int(transforms)
        t.scale = 0.0 if softmax_scale is None else _float("softmax_scale", softmax_scale)
        if isinstance(estimators, (list, tuple)):
            for e in estimators:
                _estimator("estimators", e)
            estimators = ",".join(estimators)
        t.estimators = _text("estimators", estimators)
        keep = []
        if calib is not None:
            cq, ck, cv = _calib("calib", calib, 3, t.d)
            keep = [cq, ck, cv]
            t.calib_q, t.calib_k, t.calib_v = (_C.pointer(x.t) for x in keep)
        h = _C.c_void_p()
        self._run(_lib.rfjit_tune, _C.byref(t), _C.byref(h))
        del keep
        return TuneResult(self, h.value)

    def wisdom_export(self, path=None):
        """Save the context's wisdom to path (None: the context's file), merged under a lock
        with what the file holds, atomically."""
        self._run(_lib.rfjit_wisdom_export, _text("path", path))

    def wisdom_import(self, path):
        """Merge the wisdom of the file at path into the context's."""
        if path is None:
            _fail("RFJIT_E_INVALID_ARG", "path must be a wisdom file's path, not None")
        self._run(_lib.rfjit_wisdom_import, _text("path", path))

    def wisdom_forget(self, on_disk=False):
        """Forget the context's wisdom; on_disk=True also empties its file."""
        self._run(_lib.rfjit_wisdom_forget, int(bool(on_disk)))

    def wisdom_to_string(self):
        """The context's wisdom in its file format, as a str."""
        p = _C.c_void_p()
        self._run(_lib.rfjit_wisdom_to_string, _C.byref(p))
        try:
            return _C.string_at(p).decode()
        finally:
            _lib.rfjit_free(p)

    @property
    def wisdom_path(self):
        """The wisdom file this context reads and exports to ('' for none)."""
        h = self._claim()
        try:
            return _lib.rfjit_wisdom_path(h).decode()
        finally:
            self._release()


def _calib(name, calib, n, d):
    """n sample views (q, k[, v]) from a tuple or list of arrays."""
    if not isinstance(calib, (tuple, list)) or len(calib) != n:
        _fail("RFJIT_E_INVALID_ARG", "%s must be a tuple of %d arrays %s, not %s" %
              (name, n, "(q, k, v)" if n == 3 else "(q, k)", _show(calib)))
    views = [_View(calib[0], name + " q", d), _View(calib[1], name + " k", d)]
    if n == 3:
        views.append(_View(calib[2], name + " v"))
    return views


class Plan(_Handle):
    """One attention operator (estimator, sizes, projections, compiled kernel), made by
    Context.plan() or TuneResult.plan(). Calling it runs attention; features() and kernel()
    give feature maps and kernel estimates. It keeps its context alive; close() (or the end
    of a `with` block) frees it, after which calls raise rfjit.Error.

    Attributes: d, dv (head dimensions), causal, scale (the softmax scale), feature_dim (M)."""
    _destroy = _lib.rfjit_plan_destroy

    def __init__(self, ctx, d, dv, m, estimator, causal, seed, projection, backend, fallback,
                 eva_window, eva_chunks, hybrid_signs, hybrid_base, calib, scale=None,
                 dtype=None, compat=None, eva_variant=None, transform=None, sparse_block=64,
                 sparse_exact=4, compute=None):
        if not isinstance(ctx, Context):
            _fail("RFJIT_E_INVALID_ARG", "ctx must be an rfjit.Context, not %s" %
                  type(ctx).__name__)
        a = _abi.AttnDesc()
        a.size = _C.sizeof(a)
        a.d = _int("d", d, 1, _I32)
        a.dv = 0 if dv is None else _int("dv", dv, 1, _I32)
        a.m, a.causal = _int("m", m, 1, _I32), int(bool(causal))
        a.estimator = _estimator("estimator", estimator)
        a.seed = _int("seed", seed, 0, _U64)
        a.scale = 0.0 if scale is None else _float("scale", scale)
        a.dtype = _plan_dtype(dtype)
        a.compat = _text("compat", compat)
        a.eva_variant = _text("eva_variant", eva_variant)
        a.transform = _transform(transform)
        a.compute = _compute(compute)
        keep = []
        if isinstance(projection, str):
            a.projection = _choice("projection", projection,
                                   {"orthogonal": _abi.PROJ["orthogonal"],
                                    "iid": _abi.PROJ["iid"]})
        else:
            w = _np.ascontiguousarray(_View._input(projection, "projection"))
            if w.ndim != 2 or w.shape[1] != a.d:
                _fail("RFJIT_E_SHAPE", "projection must be an (m, d) = (m, %d) array or one of "
                      "'orthogonal', 'iid', not shape %s" % (a.d, w.shape))
            a.projection, a.m = _abi.PROJ["user"], _int("projection rows", w.shape[0], 1, _I32)
            a.projection_matrix = w.ctypes.data_as(_C.POINTER(_C.c_float))
            keep.append(w)
        a.backend = _choice("backend", backend, _abi.BACKEND)
        a.fallback = int(bool(fallback))
        a.eva_window = _int("eva_window", eva_window, 0, _I32)
        a.eva_chunks = _int("eva_chunks", eva_chunks, 1, _I32)
        a.hybrid_signs = _int("hybrid_signs", hybrid_signs, 1, _I32)
        a.hybrid_base = _choice("hybrid_base", hybrid_base, _abi.HYBRID_BASE)
        a.sparse_block = _int("sparse_block", sparse_block, 1, _I32)
        a.sparse_exact = _int("sparse_exact", sparse_exact, 0, _I32)
        if calib is not None:
            keep += _calib("calib", calib, 2, a.d)
            a.calib_q, a.calib_k = _C.pointer(keep[-2].t), _C.pointer(keep[-1].t)
        self._create(ctx, ctx._claim(), a)

    @classmethod
    def _from_desc(cls, ctx, a):
        """A plan from a descriptor, on a context the caller holds a dependent claim on."""
        p = cls.__new__(cls)
        p._create(ctx, ctx._claim(dependent=True), a)
        return p

    def _create(self, ctx, ch, a):
        """Create on the context handle ch (claimed); the claim becomes the plan's."""
        h = _C.c_void_p()
        try:
            ctx._check(_lib.rfjit_plan_create(ch, _C.byref(a), _C.byref(h)), ch)
        except BaseException:
            ctx._release()
            raise
        self._ctx = ctx
        self.d, self.dv, self.causal = a.d, a.dv or a.d, bool(a.causal)
        self.scale = a.scale or a.d ** -0.5
        self._adopt(h.value, parent=ctx)

    def _run(self, fn, *args):
        h = self._claim()
        try:
            st = fn(h, *args)
            self._ctx._check(st, self._ctx._h)  # alive: this plan holds a claim on it
        finally:
            self._release()

    @property
    def feature_dim(self):
        """M, the length of the feature vectors (0 for exact and eva)."""
        h = self._claim()
        try:
            return _lib.rfjit_plan_feature_dim(h)
        finally:
            self._release()

    def describe(self):
        """One line: estimator, d, dv, m, M, causal, projection, seed, backend and why."""
        buf = _C.create_string_buffer(2048)
        self._run(_lib.rfjit_plan_describe, buf, len(buf))
        return buf.value.decode()

    def __call__(self, q, k, v, out=None, *, key_lengths=None, query_lengths=None,
                 key_mask=None, cu_seqlens_q=None, cu_seqlens_k=None, untouched_rows=False):
        """softmax(scale q k^T) v as the plan estimates it, for raw q, k, v (scale is the
        plan's, 1/sqrt(d) by default).

        q    (Lq, d), (H, Lq, d) or (B, H, Lq, d);  k (.., Hkv, Lk, d);  v (.., Hkv, Lk, dv):
             k and v have the leading dimensions of q except that Hkv may be any divisor
             of H (grouped-query attention: query head h reads key/value head
             h // (H // Hkv); Hkv = 1 is multi-query). Causal plans are bottom-right
             aligned: query i sees keys 0 .. i + Lk - Lq, and Lq > Lk is an error.
        out  None (a new array of q's dtype) or a writable float32, float16 or bfloat16
             numpy.ndarray of shape (.., Lq, dv) with non-negative strides, written in place
             and returned
        key_lengths    None or B integers: keys of batch entry b past key_lengths[b] are
             padding, never read (their work is skipped); 0 .. Lk
        query_lengths  None or B integers: output rows of batch entry b past
             query_lengths[b] are not computed and are written as zeros (see
             untouched_rows); 0 .. Lq
        key_mask  None or a bool/uint8 array (B, Lk) (or (Lk,) when B is 1), true/nonzero =
             visible: a masked key contributes to no query, neither to the numerator nor
             to the normaliser (nor to a fitted estimator's statistics); combines with
             key_lengths and causality. With cu_seqlens: one entry per packed key row.
        cu_seqlens_q, cu_seqlens_k  packed (variable-length) batch, as FlashAttention's
             varlen interface: both or neither, B + 1 non-decreasing integers from 0;
             q and out are then (total_q, H, d|dv) and k, v (total_k, Hkv, d|dv), and
             sequence b is rows cu_seqlens_q[b] .. cu_seqlens_q[b+1] - 1 of q against rows
             cu_seqlens_k[b] .. cu_seqlens_k[b+1] - 1 of k and v. Not taken with
             key_lengths or query_lengths (the offsets are the lengths).
        untouched_rows  True: rows past a query length are left as they are, not zeroed
             (with out= given, they keep what the caller wrote)

        A query that sees no key (all masked, key length 0, or causal before the first
        key) gets a row of zeros. Inputs: float32, float16 and bfloat16 (ml_dtypes.bfloat16)
        arrays are used without a copy, computed in float32 and stored in out's dtype; q, k,
        v must then have one dtype (RFJIT_E_DTYPE otherwise); other real dtypes are
        converted to float32. Raises rfjit.Error naming the argument: wrong type, dtype,
        rank or shape, lengths out of range, non-finite values (RFJIT_E_NONFINITE), outputs
        that the output dtype cannot represent (RFJIT_E_RANGE); nothing is written then."""
        packed = cu_seqlens_q is not None or cu_seqlens_k is not None
        if packed and (cu_seqlens_q is None or cu_seqlens_k is None):
            _fail("RFJIT_E_INVALID_ARG", "cu_seqlens_q and cu_seqlens_k go together; only %s "
                  "was given" % ("cu_seqlens_q" if cu_seqlens_k is None else "cu_seqlens_k"))
        if packed and (key_lengths is not None or query_lengths is not None):
            _fail("RFJIT_E_INVALID_ARG", "key_lengths and query_lengths are not taken with "
                  "cu_seqlens_q/cu_seqlens_k (the offsets give each sequence's length)")
        vq = _ExView(q, "q", self.d, packed=packed)
        vk = _ExView(k, "k", self.d, packed=packed)
        vv = _ExView(v, "v", self.dv, packed=packed)
        o = _ExView(_out_like(vq.array.shape, self.dv, out, dtype=vq.array.dtype), "out",
                    self.dv, writable=True, packed=packed)
        a = _abi.AttnArgs()
        a.size = _C.sizeof(a)
        a.q, a.k, a.v, a.out = vq.ref(), vk.ref(), vv.ref(), o.ref()
        keep = []
        if packed:
            cq = _int_array("cu_seqlens_q", cu_seqlens_q, None)
            ck = _int_array("cu_seqlens_k", cu_seqlens_k, cq.shape[0])
            keep += [cq, ck]
            a.cu_seqlens_q, a.cu_seqlens_k, a.batch = _i32p(cq), _i32p(ck), cq.shape[0] - 1
            batch, lk = a.batch, vk.t.shape[2]
        else:
            batch, lk = vq.t.shape[0], vk.t.shape[2]
        for name, val in (("key_lengths", key_lengths), ("query_lengths", query_lengths)):
            if val is not None:
                keep.append(_int_array(name, val, batch))
                setattr(a, name, _i32p(keep[-1]))
        if key_mask is not None:
            mask = self._mask(key_mask, batch, lk, packed)
            keep.append(mask)
            a.key_mask = mask.ctypes.data_as(_C.POINTER(_C.c_uint8))
            a.key_mask_stride = 0 if packed else mask.strides[0]
        a.untouched_rows = int(bool(untouched_rows))
        self._run(_lib.rfjit_plan_execute_args, _C.byref(a))
        del keep
        return o.array

    @staticmethod
    def _mask(key_mask, batch, lk, packed):
        """key_mask as uint8 rows (a view of a bool or uint8 array with unit column stride,
        else a copy), checked against the (B, Lk) (packed: (total_k,)) it must cover."""
        m = _np.asarray(key_mask)
        if m.dtype not in (_np.bool_, _np.uint8):
            _fail("RFJIT_E_INVALID_ARG", "key_mask must be a bool or uint8 array, not dtype "
                  "%s" % m.dtype)
        want = (lk,) if packed else (batch, lk)
        if not packed and m.ndim == 1 and batch == 1:
            m = m.reshape(1, -1)
        if m.shape != want:
            _fail("RFJIT_E_SHAPE", "key_mask must have shape %s (%s), not %s" %
                  (want, "one entry per packed key row" if packed else "B, Lk", m.shape))
        m = m.view(_np.uint8)
        if m.strides[-1] != 1 or (m.ndim == 2 and m.strides[0] < lk):
            m = _np.ascontiguousarray(m)
        return m

    execute = __call__

    def features(self, x=None, y=None):
        """(phi_q(x), phi_k(y)): the feature maps of the vectors as given (no d^-1/4
        scaling), so that phi_q(x) . phi_k(y) estimates exp(x . y).

        x, y  (Lx, d) / (Ly, d) arrays, or with leading (H,) or (B, H); either may be None
              (its result is then None), not both
        Returns float32 arrays (.., Lx, M) and (.., Ly, M), M = feature_dim. Raises
        rfjit.Error for exact and eva (no features, RFJIT_E_NOT_APPLICABLE) and for features
        beyond float32's range (RFJIT_E_RANGE)."""
        if x is None and y is None:
            _fail("RFJIT_E_INVALID_ARG", "features needs x, y or both; both are None")
        M = self.feature_dim
        if M == 0:
            _fail("RFJIT_E_NOT_APPLICABLE", "this plan's estimator has no feature map "
                  "(feature_dim is 0): %s" % self.describe())
        vx = _View(x, "x", self.d) if x is not None else None
        vy = _View(y, "y", self.d) if y is not None else None
        ox = _View(_out_like(vx.array.shape, M, None), "phi_x", M, True) if vx else None
        oy = _View(_out_like(vy.array.shape, M, None), "phi_y", M, True) if vy else None
        self._run(_lib.rfjit_plan_features, vx.ref() if vx else None,
                  vy.ref() if vy else None, ox.ref() if ox else None,
                  oy.ref() if oy else None)
        return (ox.array if ox else None, oy.array if oy else None)

    def kernel(self, x, y, kind="softmax"):
        """Kernel-matrix estimates between the rows of x and y, as given (no scaling).

        x, y  (Lx, d) and (Ly, d), or with the same leading (H,) or (B, H)
        kind  'softmax': exp(x_i . y_j);  'gaussian': exp(-|x_i - y_j|^2 / 2)
        Returns float32 (.., Lx, Ly); the exact estimator gives the exact kernel. Raises
        rfjit.Error when an estimate exceeds float32's range (RFJIT_E_RANGE)."""
        k = _choice("kind", kind, _abi.KERNEL)
        vx, vy = _View(x, "x", self.d), _View(y, "y", self.d)
        shape = tuple(vx.array.shape[:-1]) + (vy.array.shape[-2],)
        o = _View(_np.empty(shape, dtype=_np.float32), "out", None, True)
        self._run(_lib.rfjit_plan_kernel, vx.ref(), vy.ref(), k, o.ref())
        return o.array

    def decoder(self, batch, heads, kv_heads=None):
        """A Decoder on this causal plan: `batch` sequences (slots) decoded token by token,
        each at its own position, with `heads` query heads and `kv_heads` key/value heads.

        batch     slots the decoder holds, 1 .. 2^20; each starts empty, at position 0
        heads     query heads H, 1 .. 2^20
        kv_heads  key/value heads Hkv dividing H (query head h reads key/value head
                  h // (H // Hkv)); None: H

        The decoder keeps this plan (and its context) alive. Raises rfjit.Error for a
        bidirectional plan (RFJIT_E_NOT_APPLICABLE) and for counts outside their ranges."""
        return Decoder(self, batch, heads, kv_heads)


def _slot_index(value, slots, n=None):
    """index= of a Decoder call as C-contiguous int64 slot numbers: a slot number, a 1-D
    array of them, or a bool mask over the slots (its true entries, in order). n: the count
    the tensors' first dimension asks for (None: any). Range is checked here, before the
    cast to int64 could wrap a huge number into a valid slot."""
    try:
        a = _np.asarray(value)
    except (TypeError, ValueError, OverflowError):  # ragged or otherwise not an array
        a = None
    if a is not None and a.ndim == 0:
        a = a.reshape(1)
    if a is not None and a.dtype == _np.bool_ and a.shape == (slots,):
        a = _np.flatnonzero(a)
    elif a is not None and a.size == 0 and a.ndim == 1:
        a = a.astype(_np.int64)
    if a is None or a.dtype.kind not in "iu" or a.ndim != 1:
        _fail("RFJIT_E_INVALID_ARG", "index must be a slot number, a 1-D array of slot numbers "
              "or a bool mask of the %d slots, not %s" % (slots, _show(value)))
    if n is not None and a.shape[0] != n:
        _fail("RFJIT_E_SHAPE", "index names %d slots, but q, k and v have %d entries (one "
              "slot per entry)" % (a.shape[0], n))
    bad = (a < 0) | (a >= slots)
    if bad.any():
        i = int(_np.argmax(bad))
        _fail("RFJIT_E_INVALID_ARG", "index[%d] = %d is outside [0, %d) (the decoder's slots)"
              % (i, int(a[i]), slots))
    return _np.ascontiguousarray(a, dtype=_np.int64)


class Decoder(_Handle):
    """Incremental causal decoding with one plan over `slots` independent sequences
    (continuous batching), made by Plan.decoder(batch, heads, kv_heads=None).

    Each slot holds one sequence at its own position. prefill() takes a prompt into named
    slots at once, step() one token each; every call gives, to the JIT tolerance, the rows
    the plan's causal attention gives over the slot's tokens so far (rfjit.attention(...,
    causal=True) on the concatenated tokens), and calls name the slots they take in `index`,
    leaving the others untouched. reset() empties slots; snapshot() and restore() copy a
    slot's state out as bytes and into any slot of any decoder of an equal plan (prefix
    caching: prefill a shared system prompt once, restore it per request).

    Linear random-feature plans keep a constant-size state per (slot, key/value head); exact,
    hybrid and eva keep the slot's tokens. Causal plans of fitted estimators (oprf, saderf,
    sderf, aderf) made with calib share its fixed parameters, so every slot can step from
    position 0; made without calib, each slot fits its own on its first prefill, and a step
    before it raises RFJIT_E_STATE.

    Arrays: as rfjit.attention, float32, float16 and bfloat16 used without a copy (q, k, v
    of one dtype), other real dtypes converted to float32; q (n, H, L, d), k (n, Hkv, L, d),
    v (n, Hkv, L, dv), entry i going to slot index[i] ((H, L, d) and (L, d) are n = 1, and
    H = Hkv = 1 for the latter); outputs (n, H, L, dv) of q's dtype, or out=.

    Attributes: slots, heads, kv_heads, d, dv, positions (NumPy int64, tokens each slot has
    taken). A failed call raises rfjit.Error naming the argument and changes nothing: no
    slot's position or state, no output; except RFJIT_E_RANGE (see step), which takes the
    tokens. Calls on one decoder are serialised (the library's state is used by one thread
    at a time); different decoders run in parallel. close() (or a `with` block) frees it."""
    _destroy = _lib.rfjit_decode_destroy

    def __init__(self, plan, batch, heads, kv_heads=None):
        if not isinstance(plan, Plan):
            _fail("RFJIT_E_INVALID_ARG", "plan must be an rfjit.Plan, not %s" %
                  type(plan).__name__)
        missing = sorted(n for n in _abi.SINCE_0_4 if not hasattr(_lib, n))
        if missing:
            _fail("RFJIT_E_NOT_APPLICABLE", "the loaded librfjit (%s) lacks %s, which decoding "
                  "from Python needs (rfjit 0.4)" % (version(), ", ".join(missing)))
        desc = _abi.DecodeDesc()
        desc.size = _C.sizeof(desc)
        desc.slots = _int("batch", batch, 1, 1 << 20)
        desc.heads = _int("heads", heads, 1, 1 << 20)
        desc.kv_heads = 0 if kv_heads is None else _int("kv_heads", kv_heads, 1, 1 << 20)
        if desc.kv_heads and desc.heads % desc.kv_heads:
            _fail("RFJIT_E_INVALID_ARG", "kv_heads = %d does not divide heads = %d" %
                  (desc.kv_heads, desc.heads))
        ph, ctx = plan._claim(), plan._ctx  # the claim becomes the decoder's, on success
        h = _C.c_void_p()
        try:
            ctx._check(_lib.rfjit_decode_create_ex(ph, _C.byref(desc), _C.byref(h)), ctx._h)
        except BaseException:
            plan._release()
            raise
        self._plan, self._busy = plan, _threading.Lock()
        self.slots, self.heads = desc.slots, desc.heads
        self.kv_heads = desc.kv_heads or desc.heads
        self.d, self.dv = plan.d, plan.dv
        self._adopt(h.value, parent=plan)

    def _run(self, fn, *args):
        """fn(handle, *args) under a claim and the decoder's lock; raises rfjit.Error if it
        fails. Returns fn's result."""
        h = self._claim()
        try:
            with self._busy:
                st = fn(h, *args)
            ctx = self._plan._ctx
            ctx._check(st, ctx._h)  # alive: the plan this decoder holds claims it
        finally:
            self._release()

    def _args(self, q, k, v, out, index, lengths):
        """The rfjit_decode_args of a prefill or step, the output view (None for out=False)
        and the arrays the call must keep alive."""
        vq, vk, vv = _ExView(q, "q", self.d), _ExView(k, "k", self.d), _ExView(v, "v", self.dv)
        o = None
        if out is not False:
            o = _ExView(_out_like(vq.array.shape, self.dv, out, dtype=vq.array.dtype), "out",
                        self.dv, writable=True)
        n = vq.t.shape[0]
        a = _abi.DecodeArgs()
        a.size = _C.sizeof(a)
        a.q, a.k, a.v, a.out = vq.ref(), vk.ref(), vv.ref(), o.ref() if o else None
        keep = [vq, vk, vv]
        if index is not None:
            keep.append(_slot_index(index, self.slots, n))
            a.index = keep[-1].ctypes.data_as(_C.POINTER(_C.c_int64))
        if lengths is not None:
            keep.append(_int_array("lengths", lengths, n))
            a.lengths = _i32p(keep[-1])
        return a, o, keep

    def _take(self, fn, args, o):
        """Run a prefill or step. RFJIT_E_RANGE comes after the tokens were taken: the
        error's .out then holds the outputs, whose other rows are valid."""
        try:
            self._run(fn, _C.byref(args))
        except Error as e:
            if e.status == "RFJIT_E_RANGE" and o is not None:
                e.out = o.array
            raise

    def prefill(self, q, k, v, out=None, index=None, lengths=None):
        """Take a prompt of up to L tokens per entry into its slot, at the causal kernel's
        speed, and return its causal outputs.

        q, k, v  (n, H, L, d), (n, Hkv, L, d), (n, Hkv, L, dv): entry i's tokens, which
                 continue slot index[i] from its position p
        out      None: a new (n, H, L, dv) array of q's dtype is returned; a writable
                 float32, float16 or bfloat16 numpy.ndarray of that shape with non-negative
                 strides: written in place and returned; False: no outputs are computed and
                 None is returned (a prompt whose rows are not needed)
        index    None: entries go to slots 0 .. n - 1; else the n distinct slots they go to
                 (a slot number, a 1-D array of them, or a bool mask of the slots)
        lengths  None: every entry has L tokens; else n integers 0 .. L, entry i's count: its
                 rows past it are padding, never read, and its out rows past it are left as
                 they are
        Output row j of entry i is row p + j of the causal attention over the slot's tokens;
        the slot ends at position p + lengths[i]. Raises rfjit.Error RFJIT_E_RANGE, as
        step() does, when a linear state cannot represent a query's denominator in float:
        the prompt is still taken, the message names the NaN row, and the error's .out
        holds the outputs."""
        a, o, keep = self._args(q, k, v, out, index, lengths)
        self._take(_lib.rfjit_decode_prefill, a, o)
        del keep
        return o.array if o else None

    def step(self, q, k, v, out=None, index=None):
        """One token for each entry: its slot's next output, and the slot advances by one.

        q, k, v  (n, H, 1, d), (n, Hkv, 1, d), (n, Hkv, 1, dv) (L = 1)
        out      None (a new (n, H, 1, dv) array of q's dtype) or a writable float32,
                 float16 or bfloat16 numpy.ndarray of that shape with non-negative strides,
                 written in place; returned
        index    None: entries go to slots 0 .. n - 1; else the n distinct slots they go to
                 (a slot number, a 1-D array of them, or a bool mask of the slots)
        Raises rfjit.Error RFJIT_E_STATE for a slot of a fitted estimator that has not been
        prefilled, and RFJIT_E_RANGE when a linear state cannot represent a query's
        denominator in float: the step is still taken, the message names the NaN row, and
        the error's .out holds the outputs, valid but for that row."""
        a, o, keep = self._args(q, k, v, out, index, None)
        self._take(_lib.rfjit_decode_step_ex, a, o)
        del keep
        return o.array

    def reset(self, index=None):
        """Empty slots and put them back at position 0, leaving the others untouched.

        index  None: every slot; else the slots to empty (a slot number, a 1-D array of
               them, or a bool mask of the slots)"""
        if index is None:
            self._run(_lib.rfjit_decode_reset_slots, None, 0)
            return
        ix = _slot_index(index, self.slots)
        if ix.size:
            self._run(_lib.rfjit_decode_reset_slots,
                      ix.ctypes.data_as(_C.POINTER(_C.c_int64)), ix.size)

    def snapshot(self, index):
        """Slot `index`'s whole state (position included) as bytes, in a versioned layout
        that restore() takes into any slot of a decoder of an equal plan (same estimator,
        d, dv, m, projection, parameters and tiling, and the same heads and kv_heads). A
        constant-state slot's snapshot has a size fixed by the plan; a slot that keeps its
        tokens (exact, hybrid, eva) grows with its position."""
        i = _int("index", index, 0, self.slots - 1)
        size = _C.c_size_t()
        h = self._claim()
        try:
            with self._busy:  # no step in between may grow the snapshot
                st = _lib.rfjit_decode_snapshot(h, i, None, 0, _C.byref(size))
                buf = _C.create_string_buffer(size.value) if st == 0 else None
                if buf is not None:
                    st = _lib.rfjit_decode_snapshot(h, i, buf, size.value, _C.byref(size))
            ctx = self._plan._ctx
            ctx._check(st, ctx._h)
        finally:
            self._release()
        return buf.raw[:size.value]

    def restore(self, index, snap):
        """Make slot `index` the state snapshot() gave (its position included), from this
        decoder or another of an equal plan and head counts.

        snap  the bytes of snapshot() (any bytes-like object)
        Raises rfjit.Error RFJIT_E_STATE for bytes that are not a snapshot or come from
        another plan, layout version or head count (the message names what differs); the
        slot is then unchanged."""
        i = _int("index", index, 0, self.slots - 1)
        try:
            data = memoryview(snap).tobytes()
        except TypeError:
            _fail("RFJIT_E_INVALID_ARG", "snap must be the bytes Decoder.snapshot returned "
                  "(a bytes-like object), not %s" % type(snap).__name__)
        self._run(_lib.rfjit_decode_restore, i, data, len(data))

    @property
    def positions(self):
        """Tokens each slot has taken, as a NumPy int64 array of `slots` entries."""
        h = self._claim()
        try:
            with self._busy:
                pos = [_lib.rfjit_decode_slot_position(h, i) for i in range(self.slots)]
        finally:
            self._release()
        return _np.array(pos, dtype=_np.int64)


class TuneResult(_Handle):
    """What Context.tune chose: .estimator and .m (the chosen plan; for eva also .eva_window and
    .eva_chunks, for blocksparse .sparse_block and .sparse_exact, 0 otherwise; .transform as
    Context.plan's transform= takes it, None for none), .rows (the table it chose from, one
    dict per candidate: estimator, m, eva_window, eva_chunks, sparse_block, sparse_exact,
    transform, tiling, predicted_error, measured_error,
    error_bound, time_ms, meets_budget, pareto, chosen, note), .info (one line: calibration
    data, confidence rule, wall time, wisdom), .json() (all of it as rfjit_tune_result_json's
    dict) and .plan() (a Plan of the choice). It keeps its context alive, so .plan() works
    after the context's with block."""
    _destroy = _lib.rfjit_tune_result_destroy

    def __init__(self, ctx, h):
        """Own the result h of a rfjit_tune on ctx (made by Context.tune)."""
        try:
            ctx._claim(dependent=True)
        except BaseException:
            _lib.rfjit_tune_result_destroy(h)
            raise
        self._ctx = ctx
        self._adopt(h, parent=ctx)
        a = _abi.AttnDesc()
        a.size = _C.sizeof(a)
        self._run(_lib.rfjit_tune_result_plan, _C.byref(a))
        self._desc = a
        self.estimator, self.m = a.estimator.decode(), a.m
        eva = self.estimator == "eva"
        self.eva_window = a.eva_window if eva else 0
        self.eva_chunks = a.eva_chunks if eva else 0
        bs = self.estimator == "blocksparse"
        self.sparse_block = a.sparse_block if bs else 0
        self.sparse_exact = a.sparse_exact if bs else 0
        self.transform = _transform_names(a.transform)
        self.info = _lib.rfjit_tune_result_info(h).decode()
        self.rows = [self._row(i) for i in range(_lib.rfjit_tune_result_rows(h))]

    def _run(self, fn, *args):
        h = self._claim()
        try:
            self._ctx._check(fn(h, *args), self._ctx._h)
        finally:
            self._release()

    def _row(self, i):
        r = _abi.TuneRow()
        self._run(_lib.rfjit_tune_result_row, i, _C.byref(r))
        return {"estimator": r.estimator.decode(), "m": r.m,
                "eva_window": r.eva_window, "eva_chunks": r.eva_chunks,
                "sparse_block": r.sparse_block, "sparse_exact": r.sparse_exact,
                "transform": _transform_names(r.transform),
                "tiling": (r.tiling.vw, r.tiling.T, r.tiling.ri, r.tiling.rj),
                "predicted_error": r.predicted_error, "measured_error": r.measured_error,
                "error_bound": r.error_bound, "time_ms": r.time_ms,
                "meets_budget": bool(r.meets_budget), "pareto": bool(r.pareto),
                "chosen": bool(r.chosen), "note": (r.note or b"").decode(),
                "compute": "bf16" if r.compute == 2 else "f32"}

    def json(self):
        """The chosen plan and the table as a dict (keys estimator, features, m, tiling,
        predicted_error, measured_error, error_bound, time_ms, budget, budget_kind,
        from_wisdom, tune_seconds, calibration, table)."""
        import json
        buf = _C.create_string_buffer(1 << 16)
        self._run(_lib.rfjit_tune_result_json, buf, len(buf))
        return json.loads(buf.value.decode())

    def plan(self):
        """A Plan for the chosen configuration, on the context that tuned it (even after that
        context's with block ended)."""
        self._claim()  # the descriptor's strings are owned by the result
        try:
            return Plan._from_desc(self._ctx, self._desc)
        finally:
            self._release()


_default = None
_default_lock = _threading.Lock()
_plans = {}


def default_context():
    """The Context rfjit.attention uses, created on first use with the defaults (threads one
    per core, the default kernel cache and wisdom file)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Context()
        return _default


def _last_dim(a, name):
    if isinstance(a, _np.ndarray) and a.ndim >= 1:
        return a.shape[-1]
    return _View(a, name).array.shape[-1]


def attention(q, k, v, estimator="positive", features=256, causal=False, seed=0, out=None, *,
              m=None, scale=None, key_lengths=None, query_lengths=None, key_mask=None,
              cu_seqlens_q=None, cu_seqlens_k=None, untouched_rows=False, **plan_options):
    """softmax(scale q k^T) v for raw q, k, v, exactly or estimated with random features.

    q          queries (Lq, d), (H, Lq, d) or (B, H, Lq, d)
    k          keys (.., Hkv, Lk, d), with the leading dimensions of q except that Hkv may
               divide H (grouped-query / multi-query attention)
    v          values (.., Hkv, Lk, dv)
    estimator  'exact' or a random-feature estimator (rfjit.estimators(): positive,
               hyperbolic, trig, oprf, saderf, sderf, aderf, hybrid, eva, blocksparse);
               default 'positive'
    features   random projections m, >= 1 (default 256; ignored by exact and eva)
    m          the same as features (wins when given)
    causal     bottom-right causal: query i sees keys 0 .. i + Lk - Lq (needs Lq <= Lk)
    seed       projection and sampling seed, 0 .. 2^64-1
    out        None, or a writable float32, float16 or bfloat16 numpy.ndarray of shape
               (.., Lq, dv) with non-negative strides, written in place and returned
    scale      softmax scale: None (1/sqrt(d)) or a finite number > 0
    key_lengths, query_lengths, key_mask, cu_seqlens_q, cu_seqlens_k, untouched_rows
               padded and packed batches, as Plan.__call__ documents: valid keys and
               queries per batch entry, a (B, Lk) bool/uint8 key mask, FlashAttention-style
               offsets of a packed batch, and whether rows past a query length stay as
               they were instead of being zeroed
    plan_options  further Context.plan arguments: projection, backend, fallback, eva_window,
               eva_chunks, eva_variant, hybrid_signs, hybrid_base, calib, compat, transform,
               sparse_block, sparse_exact, compute ('bf16': the kernel's products on
               bfloat16 operands)

    Dtypes: float32, float16 and bfloat16 (ml_dtypes.bfloat16) arrays (native byte order,
    non-negative strides) are used as they are, without a copy, and give an output of the
    same dtype; every other real dtype or array-like is converted to a float32 copy and
    gives float32; complex, object and string arrays are refused. Returns the (.., Lq, dv)
    output. A query that sees no key gets zeros.

    The approximation is good where the scale^(1/2)-scaled rows of q and k have norms of
    about 1 or less; for raw N(0, 1) entries at large d its error can exceed the output
    itself. Plans are cached per configuration on default_context(), so repeated calls
    compile and draw nothing. Raises rfjit.Error, naming the argument, on any bad input."""
    _estimator("estimator", estimator)
    m = _int("m" if m is not None else "features", m if m is not None else features, 1, _I32)
    seed = _int("seed", seed, 0, _U64)
    scale = None if scale is None else _float("scale", scale)
    d, dv = _last_dim(q, "q"), _last_dim(v, "v")
    qt = getattr(q, "dtype", None)
    dtype = qt if isinstance(qt, _np.dtype) and _dtype_code(qt) is not None else None
    # Plans with options (arrays among them) are made for the call only, not cached.
    key = None if plan_options else (d, dv, estimator, m, bool(causal), seed, scale,
                                     None if dtype is None else _dtype_code(dtype))
    ctx = default_context()
    with _default_lock:
        plan = _plans.get(key) if key is not None else None
        if plan is None:
            try:
                plan = ctx.plan(d, dv=dv, m=m, estimator=estimator, causal=causal, seed=seed,
                                scale=scale, dtype=dtype, **plan_options)
            except TypeError as e:
                _fail("RFJIT_E_INVALID_ARG", "attention: %s" % e)
            if key is not None:
                _plans[key] = plan
    return plan(q, k, v, out=out, key_lengths=key_lengths, query_lengths=query_lengths,
                key_mask=key_mask, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
                untouched_rows=untouched_rows)
