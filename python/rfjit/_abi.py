# SPDX-License-Identifier: MIT
"""The C ABI of include/rfjit.h as ctypes declarations: structs, enums, status codes and
function prototypes, in one place. Descriptors carry their own size, so a library newer than
these declarations accepts them; keep field lists in the header's order when it grows."""
import ctypes as C

STATUS = {  # rfjit.h RFJIT_STATUS_LIST (tests/test_abi.py checks it against the header)
    0: "RFJIT_OK", 1: "RFJIT_E_INVALID_ARG", 2: "RFJIT_E_NOMEM", 3: "RFJIT_E_INTERNAL",
    4: "RFJIT_E_STATE", 5: "RFJIT_E_NONFINITE", 6: "RFJIT_E_TOO_LARGE", 7: "RFJIT_E_RANGE",
    10: "RFJIT_E_DESC_SIZE", 11: "RFJIT_E_SHAPE", 12: "RFJIT_E_STRIDE", 13: "RFJIT_E_ALIAS", 14: "RFJIT_E_DTYPE",
    20: "RFJIT_E_NO_ESTIMATOR", 21: "RFJIT_E_NOT_APPLICABLE", 22: "RFJIT_E_BUDGET",
    23: "RFJIT_E_FIT", 30: "RFJIT_E_JIT", 31: "RFJIT_E_ISA", 32: "RFJIT_E_TARGET",
    40: "RFJIT_E_IO", 41: "RFJIT_E_NO_WISDOM", 42: "RFJIT_E_WISDOM_FORMAT", 50: "RFJIT_E_THREAD",
}
PROJ = {"orthogonal": 0, "iid": 1, "user": 2}
BACKEND = {"auto": 0, "reference": 1, "jit": 2}
HYBRID_BASE = {"positive": 0, "hyperbolic": 1}
KERNEL = {"softmax": 0, "gaussian": 1}
PATIENCE = {"estimate": 0, "measure": 1, "patient": 2, "exhaustive": 3, "wisdom-only": 4}
BUDGET = {"output": 0, "kernel": 1}
PROFILE = {"real-like": 0, "gaussian": 1}
DTYPE = {"float32": 0, "float16": 1, "bfloat16": 2}  # rfjit_dtype

LOG_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_int, C.c_char_p)
PROGRESS_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_double, C.c_char_p)


class Tensor(C.Structure):
    _fields_ = [("data", C.POINTER(C.c_float)), ("shape", C.c_int64 * 4),
                ("stride", C.c_int64 * 4)]


class TensorEx(C.Structure):
    _fields_ = [("size", C.c_size_t), ("data", C.c_void_p), ("shape", C.c_int64 * 4),
                ("stride", C.c_int64 * 4), ("dtype", C.c_int32)]


class AttnArgs(C.Structure):
    _fields_ = [("size", C.c_size_t), ("q", C.POINTER(TensorEx)), ("k", C.POINTER(TensorEx)),
                ("v", C.POINTER(TensorEx)), ("out", C.POINTER(TensorEx)),
                ("key_lengths", C.POINTER(C.c_int32)), ("query_lengths", C.POINTER(C.c_int32)),
                ("key_mask", C.POINTER(C.c_uint8)), ("key_mask_stride", C.c_int64),
                ("cu_seqlens_q", C.POINTER(C.c_int32)), ("cu_seqlens_k", C.POINTER(C.c_int32)),
                ("batch", C.c_int64), ("untouched_rows", C.c_int32)]


class DecodeDesc(C.Structure):
    _fields_ = [("size", C.c_size_t), ("slots", C.c_int64), ("heads", C.c_int64),
                ("kv_heads", C.c_int64)]


class DecodeArgs(C.Structure):
    _fields_ = [("size", C.c_size_t), ("q", C.POINTER(TensorEx)), ("k", C.POINTER(TensorEx)),
                ("v", C.POINTER(TensorEx)), ("out", C.POINTER(TensorEx)),
                ("index", C.POINTER(C.c_int64)), ("lengths", C.POINTER(C.c_int32))]


class Tiling(C.Structure):
    _fields_ = [("vw", C.c_int32), ("T", C.c_int32), ("ri", C.c_int32), ("rj", C.c_int32)]


class CtxDesc(C.Structure):
    _fields_ = [("size", C.c_size_t), ("threads", C.c_int32), ("verbose", C.c_int32),
                ("cache_dir", C.c_char_p), ("wisdom_path", C.c_char_p), ("log", LOG_FN),
                ("log_user", C.c_void_p), ("isa", C.c_char_p), ("cache_max_bytes", C.c_int64)]


class AttnDesc(C.Structure):
    _fields_ = [("size", C.c_size_t), ("d", C.c_int32), ("dv", C.c_int32),
                ("causal", C.c_int32), ("m", C.c_int32), ("estimator", C.c_char_p),
                ("projection", C.c_int32), ("seed", C.c_uint64),
                ("projection_matrix", C.POINTER(C.c_float)), ("eva_window", C.c_int32),
                ("eva_chunks", C.c_int32), ("hybrid_signs", C.c_int32),
                ("hybrid_base", C.c_int32), ("backend", C.c_int32),
                ("calib_q", C.POINTER(Tensor)), ("calib_k", C.POINTER(Tensor)),
                ("tiling", Tiling), ("fallback", C.c_int32), ("scale", C.c_double),
                ("dtype", C.c_int32), ("compat", C.c_char_p), ("eva_variant", C.c_char_p),
                ("transform", C.c_int32), ("sparse_block", C.c_int32),
                ("sparse_exact", C.c_int32), ("compute", C.c_int32)]


# rfjit.h RFJIT_XFORM_*: the names Context.plan(transform=) takes
XFORM = {"k": 1, "q": 2, "balance": 4, "whiten": 8}


class TuneDesc(C.Structure):
    _fields_ = [("size", C.c_size_t), ("d", C.c_int32), ("dv", C.c_int32),
                ("causal", C.c_int32), ("L", C.c_int64), ("budget", C.c_double),
                ("budget_kind", C.c_int32), ("patience", C.c_int32), ("seed", C.c_uint64),
                ("calib_q", C.POINTER(Tensor)), ("calib_k", C.POINTER(Tensor)),
                ("calib_v", C.POINTER(Tensor)), ("synthetic_scale", C.c_double),
                ("estimators", C.c_char_p), ("progress", PROGRESS_FN),
                ("progress_user", C.c_void_p), ("scale", C.c_double),
                ("synthetic_profile", C.c_int32), ("transforms", C.c_int64)]


class TuneRow(C.Structure):
    _fields_ = [("estimator", C.c_char_p), ("m", C.c_int32), ("tiling", Tiling),
                ("predicted_error", C.c_double), ("measured_error", C.c_double),
                ("error_bound", C.c_double), ("time_ms", C.c_double),
                ("meets_budget", C.c_int32), ("pareto", C.c_int32), ("chosen", C.c_int32),
                ("note", C.c_char_p), ("eva_window", C.c_int32), ("eva_chunks", C.c_int32),
                ("transform", C.c_int32), ("sparse_block", C.c_int32),
                ("sparse_exact", C.c_int32),
                ("compute", C.c_int32)]


def declare(lib):
    """Set argtypes/restype of every function the binding calls."""
    P, st, i64 = C.c_void_p, C.c_int, C.c_int64
    T = C.POINTER(Tensor)
    sigs = {
        "rfjit_status_string": ([st], C.c_char_p),
        "rfjit_version": ([], C.c_int),
        "rfjit_version_string": ([], C.c_char_p),
        "rfjit_ctx_create": ([C.POINTER(CtxDesc), C.POINTER(P)], st),
        "rfjit_ctx_destroy": ([P], None),
        "rfjit_ctx_last_error": ([P], C.c_char_p),
        "rfjit_info": ([P, C.c_int, C.c_char_p, C.c_size_t], st),
        "rfjit_plan_create": ([P, C.POINTER(AttnDesc), C.POINTER(P)], st),
        "rfjit_plan_destroy": ([P], None),
        "rfjit_plan_execute": ([P, T, T, T, T], st),
        "rfjit_plan_execute_args": ([P, C.POINTER(AttnArgs)], st),
        "rfjit_plan_feature_dim": ([P], i64),
        "rfjit_plan_features": ([P, T, T, T, T], st),
        "rfjit_plan_kernel": ([P, T, T, C.c_int, T], st),
        "rfjit_plan_describe": ([P, C.c_char_p, C.c_size_t], st),
        "rfjit_estimator_name": ([C.c_int], C.c_char_p),
        "rfjit_tune": ([P, C.POINTER(TuneDesc), C.POINTER(P)], st),
        "rfjit_tune_result_destroy": ([P], None),
        "rfjit_tune_result_plan": ([P, C.POINTER(AttnDesc)], st),
        "rfjit_tune_result_rows": ([P], C.c_size_t),
        "rfjit_tune_result_row": ([P, C.c_size_t, C.POINTER(TuneRow)], st),
        "rfjit_tune_result_info": ([P], C.c_char_p),
        "rfjit_tune_result_json": ([P, C.c_char_p, C.c_size_t], st),
        "rfjit_wisdom_export": ([P, C.c_char_p], st),
        "rfjit_wisdom_import": ([P, C.c_char_p], st),
        "rfjit_wisdom_forget": ([P, C.c_int], st),
        "rfjit_wisdom_to_string": ([P, C.POINTER(C.c_void_p)], st),
        "rfjit_wisdom_path": ([P], C.c_char_p),
        "rfjit_free": ([P], None),
        "rfjit_decode_create_ex": ([P, C.POINTER(DecodeDesc), C.POINTER(P)], st),
        "rfjit_decode_destroy": ([P], None),
        "rfjit_decode_prefill": ([P, C.POINTER(DecodeArgs)], st),
        "rfjit_decode_step_ex": ([P, C.POINTER(DecodeArgs)], st),
        "rfjit_decode_reset_slots": ([P, C.POINTER(C.c_int64), i64], st),
        "rfjit_decode_slot_position": ([P, i64], i64),
        "rfjit_decode_snapshot": ([P, i64, P, C.c_size_t, C.POINTER(C.c_size_t)], st),
        "rfjit_decode_restore": ([P, i64, P, C.c_size_t], st),
    }
    for name, (args, res) in sigs.items():
        f = getattr(lib, name, None)
        if f is None and name in SINCE_0_4:
            continue  # a 0.3 library still serves attention; Plan.decoder says what is missing
        if f is None:
            f = getattr(lib, name)  # the AttributeError names the missing function
        f.argtypes, f.restype = args, res


# Functions a library older than 0.4 does not have.
SINCE_0_4 = frozenset(["rfjit_decode_create_ex", "rfjit_decode_prefill", "rfjit_decode_step_ex",
                       "rfjit_decode_reset_slots", "rfjit_decode_slot_position",
                       "rfjit_decode_snapshot", "rfjit_decode_restore"])
