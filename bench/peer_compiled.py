# SPDX-License-Identifier: MIT
"""The compiled and library FAVOR+ peers of `rfjit bench` (imported by peer_torch.py): the
bidirectional FAVOR+ math of peer_torch.favor with the harness's W, through torch.compile,
jax.jit and an ONNX Runtime session, and performer-pytorch's FastAttention with W as its
projection. q, k, v are (H, L, d) with one W for all heads; each peer computes every head in
one call, batched over a leading head dimension ((1, H, L, d) for performer). Each maker
builds its peer (compiling it with one call where it compiles) and returns the timed call,
which blocks until the result exists.
"""
import math

import numpy as np


def makers(torch, data, threads):
    q, k, v, w = data
    d = q.shape[-1]
    ws = w * d ** -0.25
    qn, kn, vn, wsn = (t.numpy() for t in (q, k, v, ws))
    return {
        "torch_compile_favor": lambda: compiled(torch_compile(torch, q, k, v, ws)),
        "jax_favor": lambda: compiled(jax_favor(qn, kn, vn, wsn)),
        "ort_favor": lambda: compiled(ort_favor(qn, kn, vn, wsn, threads)),
        "performer_favor": lambda: performer(torch, q, k, v, w),
    }


def compiled(fn):
    fn()  # the first call compiles: timed as the peer's compile, not as a run
    fn.compiles = True
    return fn


def torch_compile(torch, q, k, v, ws):
    half = 0.5 / math.sqrt(q.shape[-1])

    def favor(q, k, v, ws):
        lq = q @ ws.T - half * (q * q).sum(-1, keepdim=True)
        fq = torch.exp(lq - lq.amax(-1, keepdim=True))
        lk = k @ ws.T - half * (k * k).sum(-1, keepdim=True)
        fk = torch.exp(lk - lk.amax((-2, -1), keepdim=True))
        return (fq @ (fk.transpose(-2, -1) @ v)) / (fq @ fk.sum(-2).unsqueeze(-1))

    f = torch.compile(favor, dynamic=False)
    return lambda: f(q, k, v, ws)


def jax_favor(q, k, v, ws):
    import jax
    import jax.numpy as jnp

    half = 0.5 / math.sqrt(q.shape[-1])

    @jax.jit
    def favor(q, k, v, ws):
        lq = q @ ws.T - half * jnp.sum(q * q, -1, keepdims=True)
        fq = jnp.exp(lq - jnp.max(lq, -1, keepdims=True))
        lk = k @ ws.T - half * jnp.sum(k * k, -1, keepdims=True)
        fk = jnp.exp(lk - jnp.max(lk, (-2, -1), keepdims=True))
        return (fq @ (jnp.swapaxes(fk, -2, -1) @ v)) / (fq @ jnp.sum(fk, -2)[..., None])

    args = [jax.device_put(a) for a in (q, k, v, ws)]
    return lambda: favor(*args).block_until_ready()


def ort_graph(H, L, d, dv, ws):
    from onnx import TensorProto, helper, numpy_helper

    f32 = TensorProto.FLOAT
    init = [numpy_helper.from_array(np.ascontiguousarray(ws.T), "wsT"),
            numpy_helper.from_array(np.array(0.5 / math.sqrt(d), np.float32), "half"),
            numpy_helper.from_array(np.array([-1], np.int64), "last"),
            numpy_helper.from_array(np.array([-2], np.int64), "rows")]
    n = helper.make_node
    nodes = []
    for x in ("q", "k"):
        nodes += [n("MatMul", [x, "wsT"], [x + "p"]),
                  n("Mul", [x, x], [x + "2"]),
                  n("ReduceSum", [x + "2", "last"], [x + "n"], keepdims=1),
                  n("Mul", [x + "n", "half"], [x + "h"]),
                  n("Sub", [x + "p", x + "h"], [x + "l"])]
    # each head's keys shifted by that head's maximum
    nodes += [n("ReduceMax", ["ql"], ["qm"], axes=[-1], keepdims=1),
              n("ReduceMax", ["kl"], ["km"], axes=[-2, -1], keepdims=1),
              n("Sub", ["ql", "qm"], ["qs"]), n("Exp", ["qs"], ["fq"]),
              n("Sub", ["kl", "km"], ["ks"]), n("Exp", ["ks"], ["fk"]),
              n("Transpose", ["fk"], ["fkT"], perm=[0, 2, 1]),
              n("MatMul", ["fkT", "v"], ["s"]),
              n("ReduceSum", ["fk", "rows"], ["z"], keepdims=0),
              n("Unsqueeze", ["z", "last"], ["z2"]),
              n("MatMul", ["fq", "s"], ["num"]),
              n("MatMul", ["fq", "z2"], ["den"]),
              n("Div", ["num", "den"], ["out"])]
    inputs = [helper.make_tensor_value_info(x, f32, [H, L, c]) for x, c in
              (("q", d), ("k", d), ("v", dv))]
    out = [helper.make_tensor_value_info("out", f32, [H, L, dv])]
    graph = helper.make_graph(nodes, "favor", inputs, out, init)
    # opset 17: ReduceMax still takes axes as an attribute, ReduceSum as an input
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_favor(q, k, v, ws, threads):
    import onnxruntime as ort

    model = ort_graph(*q.shape, v.shape[-1], ws)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feed = {"q": q, "k": k, "v": v}
    return lambda: sess.run(None, feed)[0]


def performer(torch, q, k, v, w):
    import functools

    import performer_pytorch.performer_pytorch as pp

    # FastAttention adds eps = 1e-4 to every feature (a bias of its own, not rounding): set to
    # 0 so its output can be checked against rfjit's; the work per call is the same
    if not isinstance(pp.softmax_kernel, functools.partial):
        pp.softmax_kernel = functools.partial(pp.softmax_kernel, eps=0.0)
    fa = pp.FastAttention(dim_heads=q.shape[-1], nb_features=w.shape[0])
    fa.projection_matrix = w.clone()
    q4, k4, v4 = (t[None] for t in (q, k, v))
    return lambda: fa(q4, k4, v4)[0]


def jax_dot_kernels(jax):
    """What XLA compiled a float32 matmul of the peer's kind into: a library fusion or custom
    call (YNNPACK, XNNPACK, oneDNN) named in the optimised HLO, else its own emitter."""
    import re

    a = np.ones((256, 64), np.float32)
    text = jax.jit(lambda x, y: x @ y.T).lower(a, a).compile().as_text()
    found = set(re.findall(r'"kind":"(__\w+)"', text))
    found |= set(re.findall(r'custom_call_target="([^"]+)"', text))
    names = {"__ynn_fusion": "YNNPACK", "__xnn_fusion": "XNNPACK"}
    found = {f"{names.get(f, 'oneDNN' if 'onednn' in f else f)} ({f})" for f in found}
    return ", ".join(sorted(found)) if found else "XLA's own dot emitter (no library fusion)"


def probe(torch):
    about = {}
    try:
        import jax
        devs = jax.devices()
        about["jax"] = jax.__version__
        about["jax_about"] = (f"backend {jax.default_backend()}, {len(devs)} device(s) "
                              f"{devs[0].device_kind}, matmuls by {jax_dot_kernels(jax)}")
    except Exception as e:
        about["jax_error"] = f"{type(e).__name__}: {e}"[:150]
    try:
        import onnx
        import onnxruntime as ort
        about["onnxruntime"] = ort.__version__
        about["ort_about"] = (f"providers {','.join(ort.get_available_providers())}, "
                              f"CPUExecutionProvider used (MLAS GEMM), graph built with "
                              f"onnx {onnx.__version__} opset 17")
    except Exception as e:
        about["ort_error"] = f"{type(e).__name__}: {e}"[:150]
    try:
        from importlib.metadata import version

        import performer_pytorch  # noqa: F401
        about["performer"] = version("performer-pytorch")
        about["performer_about"] = (f"FastAttention on torch {torch.__version__} (its eps "
                                    f"set to 0), W as its projection_matrix")
    except Exception as e:
        about["performer_error"] = f"{type(e).__name__}: {e}"[:150]
    try:
        from threadpoolctl import threadpool_info
        pools = [f"{p.get('internal_api')} {p.get('version')}"
                 + (f" ({p['architecture']})" if p.get("architecture") else "")
                 for p in threadpool_info()]
        about["pools"] = "; ".join(sorted(set(pools)))
    except Exception as e:
        about["pools_error"] = f"{type(e).__name__}: {e}"[:150]
    return about
