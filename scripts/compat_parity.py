#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Prints the compat modes' parity table: for every mode and estimator, bidirectional and
causal, the largest max|rfjit - want| / max|want| over scaled norms 0.5, 1, 2 and 3, against
the NumPy transcriptions of python/tests/test_compat.py (reference backend and default
backend), then against performer-pytorch's FastAttention itself when it is importable.

    RFJIT_LIBRARY=build/librfjit.so PYTHONPATH=python .venv/bin/python3 scripts/compat_parity.py
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python",
                                "tests"))
import test_compat as tc  # noqa: E402

import rfjit  # noqa: E402


def main():
    ctx = rfjit.Context(cache_dir="", wisdom_path="")
    print("| mode | estimator | direction | reference backend | default backend |")
    print("|---|---|---|---|---|")
    for mode, est in tc.TestTranscriptions.MODES:
        for causal in (False, True):
            errs = {"reference": [], "auto": []}
            for norm in tc.NORMS:
                rng = np.random.default_rng([tc.SEED, int(norm * 10), causal, len(mode)])
                lq = lk = 40
                d, m, dv = 16, 24, 8
                q, k = tc.rows_of_norm(rng, (lq, d), norm), tc.rows_of_norm(rng, (lk, d), norm)
                v = rng.standard_normal((lk, dv)).astype(np.float32)
                w = rng.standard_normal((m, d)).astype(np.float32)
                want = tc.compat_attention(mode, q, k, v, w, causal, None, est)
                for backend, out in errs.items():
                    p = ctx.plan(d, dv=dv, estimator=est, causal=causal, projection=w,
                                 compat=mode, backend=backend)
                    got = p(q[None, None], k[None, None], v[None, None])[0, 0]
                    out.append(tc.rel_err(got, want))
            print("| %s | %s | %s | %.1e | %.1e |" % (mode, est, "causal" if causal else "bidir",
                                                      max(errs["reference"]), max(errs["auto"])))
    if tc.performer_pytorch_missing():
        print("performer-pytorch is not importable: its row is skipped")
        return
    t = tc.TestPerformerPytorch()
    t.ctx = ctx
    for causal in (False, True):
        e = max(t.run_fast_attention(causal, n) for n in tc.NORMS)
        print("| performer-pytorch's FastAttention | positive | %s | | %.1e |" %
              ("causal" if causal else "bidir", e))


if __name__ == "__main__":
    main()
