# SPDX-License-Identifier: MIT
"""Tests of the binding's serving keywords (scale, key_lengths, query_lengths, key_mask,
cu_seqlens_q/k, untouched_rows, grouped-query heads, bottom-right causal, float16 and
bfloat16 arrays) against a float64 NumPy reference that applies the same mask, lengths,
groups, offset and scale. Run by ctest (entry `python`)."""
import unittest

import numpy as np

import rfjit

import ml_dtypes  # in the venv scripts/deps.sh makes (python/requirements.txt)

BF16 = np.dtype(ml_dtypes.bfloat16)


def reference(q, k, v, scale=None, causal=False, key_lengths=None, query_lengths=None,
              key_mask=None):
    """Exact attention in float64 of (B, H, Lq, d) q against (B, Hkv, Lk, d) k, v: query
    head h reads key/value head h // (H // Hkv), causal is bottom-right within each
    sequence's own lengths lq, lk (query i sees keys j <= i + lk - lq), a query with no
    visible key and rows past a query length are 0."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    B, H, Lq, d = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    scale = d ** -0.5 if scale is None else scale
    out = np.zeros((B, H, Lq, v.shape[-1]))
    for b in range(B):
        lk = Lk if key_lengths is None else key_lengths[b]
        rows = Lq if query_lengths is None else query_lengths[b]
        vis = np.ones((Lq, Lk), bool)
        vis[:, lk:] = False
        if causal:
            vis &= np.arange(Lk)[None, :] <= np.arange(Lq)[:, None] + lk - rows
        if key_mask is not None:
            vis &= np.asarray(key_mask[b], bool)[None, :]
        for h in range(H):
            g = h // (H // Hkv)
            s = np.where(vis, scale * q[b, h] @ k[b, g].T, -np.inf)
            for i in range(rows):
                if vis[i].any():
                    p = np.exp(s[i] - s[i].max())
                    out[b, h, i] = p / p.sum() @ v[b, g]
    return out


def arrays(seed, B, H, Hkv, Lq, Lk, d, dv=None, dtype=np.float32, norm=0.8):
    """q, k, v whose rows have norm about `norm` once scaled by d^-1/4, in dtype."""
    r = np.random.default_rng(seed)
    dv = dv or d
    q = norm * d ** 0.25 * r.standard_normal((B, H, Lq, d)) / np.sqrt(d)
    k = norm * d ** 0.25 * r.standard_normal((B, Hkv, Lk, d)) / np.sqrt(d)
    v = r.standard_normal((B, Hkv, Lk, dv))
    return [x.astype(dtype) for x in (q, k, v)]


# The output's own rounding (half an ulp of its largest entry) plus float32 arithmetic
# (1e-5 of the output scale, ~100 float32 ulps over the key sums): the tolerance of the exact
# estimator against the float64 reference evaluated on the same (already rounded) inputs.
ULP = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float16): 2.0 ** -11, BF16: 2.0 ** -8}


def tolerance(dtype, want):
    return (ULP[np.dtype(dtype)] + 1e-5) * max(1.0, np.abs(want).max() if want.size else 0)


def dtypes():
    return [np.float32, np.float16, BF16]


class Exact(unittest.TestCase):
    """Each keyword alone and together, for every dtype, bidirectional and causal."""

    def check(self, dtype, causal, B=2, H=4, Hkv=2, Lq=7, Lk=11, d=16, **kw):
        q, k, v = arrays(3, B, H, Hkv, Lq, Lk, d, dtype=dtype)
        if causal and "key_lengths" in kw and "query_lengths" not in kw:
            # a causal sequence's queries are the last of its keys: lq <= lk
            kw["query_lengths"] = [min(Lq, n) for n in kw["key_lengths"]]
        got = rfjit.attention(q, k, v, estimator="exact", causal=causal, **kw)
        self.assertEqual(got.dtype, np.dtype(dtype))
        want = reference(q, k, v, causal=causal, **kw)
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=0,
                                   atol=tolerance(dtype, want),
                                   err_msg="%s causal %s %s" % (np.dtype(dtype), causal, kw))

    def test_every_keyword_every_dtype(self):
        mask = np.ones((2, 11), bool)
        mask[0, [1, 4, 5]] = False
        mask[1, :] = False
        mask[1, 9] = True
        for dtype in dtypes():
            for causal in (False, True):
                self.check(dtype, causal)
                self.check(dtype, causal, key_lengths=[11, 3])
                self.check(dtype, causal, key_lengths=[0, 1])
                self.check(dtype, causal, query_lengths=[7, 0])
                self.check(dtype, causal, query_lengths=[1, 4], key_lengths=[5, 11])
                self.check(dtype, causal, query_lengths=[0, 7], key_lengths=[0, 7])
                self.check(dtype, causal, key_mask=mask)
                self.check(dtype, causal, key_mask=mask.astype(np.uint8), key_lengths=[9, 10])
                for hkv in (1, 4):
                    self.check(dtype, causal, Hkv=hkv, key_lengths=[6, 2])
                self.check(dtype, causal, H=8, Hkv=1)

    def test_scale(self):
        """0.5, 1 and 2 times 1/sqrt(d), with lengths (and Lq = Lk: offsets are above)."""
        for dtype in dtypes():
            for causal in (False, True):
                for s in (0.5, 1.0, 2.0):
                    self.check(dtype, causal, scale=s / 4.0, Lq=11, key_lengths=[8, 11])

    def test_rank_2_and_3_arrays_take_a_one_dimensional_mask(self):
        q, k, v = arrays(4, 1, 1, 1, 5, 6, 8)
        mask = np.array([1, 0, 1, 1, 0, 1], bool)
        got = rfjit.attention(q[0, 0], k[0, 0], v[0, 0], estimator="exact", key_mask=mask)
        want = reference(q, k, v, key_mask=mask[None])[0, 0]
        np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(np.float32, want))

    def test_query_rows_past_the_length_are_zero_or_untouched(self):
        q, k, v = arrays(5, 2, 2, 2, 6, 6, 8)
        out = np.full((2, 2, 6, 8), 7.0, np.float32)
        rfjit.attention(q, k, v, estimator="exact", query_lengths=[2, 6], out=out,
                        untouched_rows=True)
        self.assertTrue((out[0, :, 2:] == 7.0).all())
        self.assertFalse((out[0, :, :2] == 7.0).any())
        rfjit.attention(q, k, v, estimator="exact", query_lengths=[2, 6], out=out)
        self.assertTrue((out[0, :, 2:] == 0.0).all())

    def test_half_inputs_into_a_float32_out(self):
        q, k, v = arrays(6, 1, 2, 1, 5, 9, 8, dtype=np.float16)
        out = np.empty((1, 2, 5, 8), np.float32)
        self.assertIs(rfjit.attention(q, k, v, estimator="exact", out=out), out)
        want = reference(q, k, v)
        np.testing.assert_allclose(out, want, rtol=0, atol=tolerance(np.float32, want))

    def test_packed_equals_each_sequence_alone(self):
        lq, lk = [3, 0, 5], [4, 2, 8]
        cq, ck = np.cumsum([0] + lq), np.cumsum([0] + lk)
        r = np.random.default_rng(7)
        q = (0.5 * r.standard_normal((cq[-1], 4, 8))).astype(np.float32)
        k = (0.5 * r.standard_normal((ck[-1], 2, 8))).astype(np.float32)
        v = r.standard_normal((ck[-1], 2, 8)).astype(np.float32)
        mask = r.random(ck[-1]) > 0.3
        for causal in (False, True):
            got = rfjit.attention(q, k, v, estimator="exact", causal=causal, key_mask=mask,
                                  cu_seqlens_q=cq, cu_seqlens_k=ck)
            self.assertEqual(got.shape, (cq[-1], 4, 8))
            for b in range(3):
                qs, ks, vs = (x.transpose(1, 0, 2)[None] for x in
                              (q[cq[b]:cq[b + 1]], k[ck[b]:ck[b + 1]], v[ck[b]:ck[b + 1]]))
                want = reference(qs, ks, vs, causal=causal, key_mask=mask[None, ck[b]:ck[b + 1]])
                np.testing.assert_allclose(got[cq[b]:cq[b + 1]].transpose(1, 0, 2)[None],
                                           want, rtol=0, atol=tolerance(np.float32, want))


ESTIMATORS = ["positive", "hyperbolic", "trig", "hybrid", "oprf", "saderf", "sderf", "aderf",
              "eva", "blocksparse"]


class RandomFeatures(unittest.TestCase):
    """The estimators under lengths, masks and groups, by identities that hold for any
    projection: padding and masked keys are the same as keys that are not there at all, and
    a group of query heads sharing k, v is the same as each head given its own copy."""

    def test_key_lengths_and_masks_equal_removing_the_keys(self):
        q, k, v = arrays(11, 2, 2, 2, 9, 12, 16)
        mask = np.ones((2, 12), bool)
        mask[:, [0, 5, 6]] = False
        for est in ESTIMATORS:
            for dtype in dtypes():
                qd, kd, vd = (x.astype(dtype) for x in (q, k, v))
                got = rfjit.attention(qd, kd, vd, estimator=est, key_lengths=[8, 8],
                                      key_mask=mask, m=64)
                keep = np.flatnonzero(mask[0, :8])
                want = rfjit.attention(qd, kd[:, :, keep], vd[:, :, keep], estimator=est, m=64)
                # eva's chunks and windows follow key positions: only the sets must agree
                if est == "eva":
                    continue
                np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                           rtol=0, atol=4 * (ULP[np.dtype(dtype)] + 1e-5),
                                           err_msg="%s %s" % (est, np.dtype(dtype)))

    def test_masked_keys_change_nothing(self):
        """Permuting or rescaling masked keys and values leaves the output bit-identical."""
        q, k, v = arrays(12, 2, 2, 2, 10, 10, 16)  # offsets have their own test
        mask = np.ones((2, 10), bool)
        mask[:, [2, 3, 7]] = False
        k2, v2 = k.copy(), v.copy()
        k2[:, :, [2, 3, 7]] = 1.5 * k[:, :, [7, 2, 3]]
        v2[:, :, [2, 3, 7]] = -3 * v[:, :, [3, 7, 2]]
        for est in ["exact"] + ESTIMATORS:
            for causal in (False, True):
                if causal and est in ("oprf", "saderf", "sderf", "aderf"):
                    continue  # they need a calibration sample causally
                a = rfjit.attention(q, k, v, estimator=est, causal=causal, key_mask=mask, m=32)
                b = rfjit.attention(q, k2, v2, estimator=est, causal=causal, key_mask=mask,
                                    m=32)
                self.assertTrue(np.array_equal(a, b), "%s causal %s" % (est, causal))

    def test_scale_equals_prescaled_inputs(self):
        """Random features see q and k times sqrt(scale): scale s on raw rows is the default
        scale 1/sqrt(d) on rows times (s sqrt(d))^(1/2)."""
        q, k, v = arrays(15, 1, 2, 2, 10, 10, 16)
        for est in ["exact"] + ESTIMATORS:
            for s in (0.125, 0.25, 0.5):
                c = np.float32(np.sqrt(s * 4.0))
                a = rfjit.attention(q, k, v, estimator=est, scale=s, m=32)
                b = rfjit.attention(q * c, k * c, v, estimator=est, m=32)
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max(),
                                           err_msg="%s scale %g" % (est, s))

    def test_grouped_heads_equal_repeated_heads(self):
        q, k, v = arrays(13, 1, 8, 2, 10, 10, 16)
        kr, vr = (np.repeat(x, 4, axis=1) for x in (k, v))
        for est in ["exact"] + ESTIMATORS:
            for causal in (False, True):
                if causal and est in ("oprf", "saderf", "sderf", "aderf"):
                    continue
                a = rfjit.attention(q, k, v, estimator=est, causal=causal, m=32)
                b = rfjit.attention(q, kr, vr, estimator=est, causal=causal, m=32)
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max(),
                                           err_msg="%s causal %s" % (est, causal))

    def test_causal_offset_equals_the_last_queries_of_the_full_square(self):
        """Chunked prefill: the last Lq queries against all Lk keys are the last Lq rows of
        the Lk x Lk causal result (linear estimators scan the earlier keys first)."""
        q, k, v = arrays(14, 1, 2, 2, 12, 12, 16)
        for est in ["exact", "positive", "hyperbolic", "trig", "hybrid", "eva"]:
            full = rfjit.attention(q, k, v, estimator=est, causal=True, m=32)
            tail = rfjit.attention(q[:, :, 7:], k, v, estimator=est, causal=True, m=32)
            np.testing.assert_allclose(tail, full[:, :, 7:], rtol=0,
                                       atol=1e-5 * np.abs(full).max(), err_msg=est)


class Errors(unittest.TestCase):
    """Bad serving arguments raise rfjit.Error with a message, and write nothing."""

    def setUp(self):
        self.q, self.k, self.v = arrays(21, 2, 4, 2, 5, 6, 8)
        self.out = np.full((2, 4, 5, 8), 3.0, np.float32)

    def expect(self, status, needle, **kw):
        args = dict(q=self.q, k=self.k, v=self.v)
        args.update(kw)
        with self.assertRaises(rfjit.Error) as e:
            rfjit.attention(args.pop("q"), args.pop("k"), args.pop("v"), estimator="exact",
                            out=self.out, **args)
        self.assertEqual(e.exception.status, status, str(e.exception))
        self.assertIn(needle, str(e.exception))
        self.assertTrue((self.out == 3.0).all(), "written despite %s" % e.exception)

    def test_lengths(self):
        self.expect("RFJIT_E_INVALID_ARG", "key_lengths[1] = -1 is outside",
                    key_lengths=[6, -1])
        self.expect("RFJIT_E_INVALID_ARG", "7", key_lengths=[7, 6])
        self.expect("RFJIT_E_INVALID_ARG", "9", query_lengths=[9, 1])
        self.expect("RFJIT_E_SHAPE", "key_lengths has 3 entries, expected 2",
                    key_lengths=[1, 2, 3])
        self.expect("RFJIT_E_INVALID_ARG", "query_lengths must be a 1-D array of integers",
                    query_lengths=[1.5, 2])

    def test_mask(self):
        self.expect("RFJIT_E_SHAPE", "key_mask must have shape (2, 6)",
                    key_mask=np.ones((2, 5), bool))
        self.expect("RFJIT_E_INVALID_ARG", "key_mask must be a bool or uint8 array",
                    key_mask=np.ones((2, 6)))

    def test_heads_dtypes_scale_causal(self):
        self.expect("RFJIT_E_SHAPE", "", k=self.k[:, :1].repeat(3, 1), v=self.v[:, :1].repeat(3, 1))
        self.expect("RFJIT_E_DTYPE", "one dtype", k=self.k.astype(np.float16))
        for bad in (0, -1.0, float("nan"), float("inf")):
            self.expect("RFJIT_E_INVALID_ARG", "scale must be a finite positive number",
                        scale=bad)
        self.expect("RFJIT_E_SHAPE", "", causal=True, k=self.k[:, :, :4], v=self.v[:, :, :4])

    def test_packed(self):
        q = self.q[0].transpose(1, 0, 2)
        self.expect("RFJIT_E_INVALID_ARG", "cu_seqlens_q and cu_seqlens_k go together",
                    cu_seqlens_q=[0, 5])
        self.expect("RFJIT_E_INVALID_ARG", "not taken with cu_seqlens", cu_seqlens_q=[0, 5],
                    cu_seqlens_k=[0, 6], key_lengths=[3])
        self.expect("RFJIT_E_SHAPE", "q must be (total, H, 8) with cu_seqlens",
                    cu_seqlens_q=[0, 5], cu_seqlens_k=[0, 6])
        with self.assertRaises(rfjit.Error) as e:
            rfjit.attention(q, self.k[0].transpose(1, 0, 2), self.v[0].transpose(1, 0, 2),
                            cu_seqlens_q=[0, 3, 9], cu_seqlens_k=[0, 6, 6])
        self.assertEqual(e.exception.status, "RFJIT_E_SHAPE", str(e.exception))

    def test_plan_dtype(self):
        with self.assertRaises(rfjit.Error) as e:
            rfjit.default_context().plan(8, dtype="int8")
        self.assertEqual(e.exception.status, "RFJIT_E_DTYPE")
        for dt in ("float16", np.float16, "bfloat16", None):
            rfjit.default_context().plan(8, dtype=dt, estimator="exact").close()


if __name__ == "__main__":
    unittest.main()
