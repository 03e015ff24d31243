# SPDX-License-Identifier: MIT
"""Tests of rfjit.Decoder (Plan.decoder): every prefill and step gives the rows the same
plan's causal attention gives over the slot's tokens so far, for every estimator, grouped
heads, float16 and bfloat16, index subsets and lengths, reset, snapshot and restore, and
random interleavings of all of them; bad input raises rfjit.Error and changes nothing. Run
by ctest (entry `python`)."""
import threading
import unittest

import numpy as np

import rfjit

from test_serving import BF16, ULP, arrays

FITTED = ("oprf", "saderf", "sderf", "aderf")

# The decode paths chunk the sequence differently from one causal execute (the state is
# carried between calls, a step is one token), so they agree to the JIT tolerance the C
# decode tests use, 1e-4 of max |output| in float32; a half-precision output adds its own
# rounding, up to one ulp (2 ULP, ULP being half an ulp) of the largest entry, on each side.
JIT = 1e-4


def tolerance(dtype, want):
    return (JIT + 2 * ULP[np.dtype(dtype)]) * max(1.0, np.abs(want).max() if want.size else 0)


def tokens(seed, n, H, Hkv, L, d, dv, dtype=np.float32):
    """q (n, H, L, d), k (n, Hkv, L, d), v (n, Hkv, L, dv) of L tokens per entry."""
    return arrays(seed, n, H, Hkv, L, L, d, dv, dtype=dtype)


def context():
    return rfjit.Context(threads=1, cache_dir="", wisdom_path="")


def make_plan(ctx, est, d=16, dv=8, calib=None, **kw):
    """A causal plan of est; fitted estimators get a calibration sample (fixed parameters),
    so that one causal execute over all tokens is the reference."""
    if est in FITTED and calib is not None:
        kw["calib"] = calib
    return ctx.plan(d, dv=dv, m=32, estimator=est, causal=True, seed=5, hybrid_signs=3,
                    eva_window=4, eva_chunks=4, **kw)


class Slots:
    """The tokens each slot has taken, and the rows causal attention gives for new ones."""

    def __init__(self, plan, n):
        self.plan, self.tokens = plan, [[] for _ in range(n)]

    def take(self, slot, q, k, v):
        """Slot takes the tokens of q (H, L, d), k, v; returns the causal rows of them over
        everything the slot holds, (H, L, dv)."""
        self.tokens[slot].append((q, k, v))
        qs, ks, vs = (np.concatenate([t[i] for t in self.tokens[slot]], axis=1)[None]
                      for i in range(3))
        return self.plan(qs, ks, vs)[0, :, -q.shape[1]:]

    def reset(self, slot):
        self.tokens[slot] = []

    def positions(self):
        return [sum(t[0].shape[1] for t in s) for s in self.tokens]


class Matches(unittest.TestCase):
    def check(self, got, want, dtype, what):
        self.assertEqual(got.dtype, np.dtype(dtype), what)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0,
                                   atol=tolerance(dtype, want.astype(np.float64)),
                                   err_msg=what)

    def test_prefill_and_steps_equal_causal_attention(self):
        """Every estimator, two slots of 4 query heads over 2 key/value heads: a 9-token
        prompt, then 6 steps, each call against the causal rows of the tokens so far."""
        ctx = context()
        q, k, v = tokens(31, 2, 4, 2, 15, 16, 8)
        for est in rfjit.estimators():
            if est == "blocksparse":  # no decoding: it picks exact blocks per call
                continue
            plan = make_plan(ctx, est, calib=(q[0, 0], k[0, 0]))
            dec = plan.decoder(2, 4, kv_heads=2)
            ref = Slots(plan, 2)
            got = dec.prefill(q[:, :, :9], k[:, :, :9], v[:, :, :9])
            for s in range(2):
                self.check(got[s], ref.take(s, q[s, :, :9], k[s, :, :9], v[s, :, :9]),
                           np.float32, "%s prefill slot %d" % (est, s))
            for t in range(9, 15):
                got = dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])
                for s in range(2):
                    want = ref.take(s, q[s, :, t:t + 1], k[s, :, t:t + 1], v[s, :, t:t + 1])
                    self.check(got[s], want, np.float32, "%s step %d slot %d" % (est, t, s))
            self.assertEqual(dec.positions.tolist(), [15, 15], est)
            self.assertEqual(dec.positions.dtype, np.int64)
            dec.close()

    def test_concatenated_outputs_equal_rfjit_attention(self):
        """A prompt and the steps after it, put end to end, are rfjit.attention(...,
        causal=True) on the whole sequence, with the same estimator, m and seed."""
        q, k, v = tokens(35, 2, 4, 2, 15, 16, 8)
        for est in ("positive", "hyperbolic", "trig", "exact", "hybrid"):
            plan = make_plan(context(), est)
            dec = plan.decoder(2, 4, kv_heads=2)
            rows = [dec.prefill(q[:, :, :9], k[:, :, :9], v[:, :, :9])]
            rows += [dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])
                     for t in range(9, 15)]
            want = rfjit.attention(q, k, v, estimator=est, features=32, causal=True, seed=5,
                                   hybrid_signs=3)
            self.check(np.concatenate(rows, axis=2), want, np.float32, est)

    def test_half_precision(self):
        """float16 and bfloat16 tokens give outputs of their dtype; out= may be float32."""
        ctx = context()
        for dtype in (np.float16, BF16):
            q, k, v = tokens(32, 2, 4, 1, 8, 16, 8, dtype=dtype)
            for est in ("positive", "exact"):
                plan = make_plan(ctx, est)
                dec = plan.decoder(2, 4, kv_heads=1)
                ref = Slots(plan, 2)
                got = dec.prefill(q[:, :, :5], k[:, :, :5], v[:, :, :5])
                for s in range(2):
                    self.check(got[s], ref.take(s, q[s, :, :5], k[s, :, :5], v[s, :, :5]),
                               dtype, "%s %s prefill" % (est, np.dtype(dtype)))
                for t in range(5, 8):
                    out = np.zeros((2, 4, 1, 8), np.float32)
                    got = dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1],
                                   out=out)
                    self.assertIs(got, out)
                    for s in range(2):
                        want = ref.take(s, q[s, :, t:t + 1], k[s, :, t:t + 1],
                                        v[s, :, t:t + 1])
                        # out is float32: only the reference's half rounding remains
                        np.testing.assert_allclose(
                            got[s], want.astype(np.float32), rtol=0,
                            atol=tolerance(dtype, want.astype(np.float64)),
                            err_msg="%s %s step %d" % (est, np.dtype(dtype), t))

    def test_index_lengths_and_masks(self):
        """Entries go to the slots index names, the others stay as they are; lengths cut
        each entry's prompt, and out rows past it are left untouched."""
        ctx = context()
        q, k, v = tokens(33, 4, 2, 2, 6, 16, 8)
        for est in ("positive", "exact", "hybrid"):
            plan = make_plan(ctx, est)
            dec = plan.decoder(4, 2)
            ref = Slots(plan, 4)
            out = np.full((2, 2, 5, 8), 7.0, np.float32)
            dec.prefill(q[:2, :, :5], k[:2, :, :5], v[:2, :, :5], out=out, index=[2, 0],
                        lengths=[5, 3])
            self.check(out[0], ref.take(2, q[0, :, :5], k[0, :, :5], v[0, :, :5]),
                       np.float32, est + " prefill slot 2")
            self.check(out[1, :, :3], ref.take(0, q[1, :, :3], k[1, :, :3], v[1, :, :3]),
                       np.float32, est + " prefill slot 0")
            self.assertTrue((out[1, :, 3:] == 7.0).all(), est + ": padding rows written")
            self.assertEqual(dec.positions.tolist(), [3, 0, 5, 0])
            # slot 3 was never prefilled: an estimator with fixed parameters starts at 0
            mask = np.array([False, False, True, True])
            got = dec.step(q[2:4, :, 5:6], k[2:4, :, 5:6], v[2:4, :, 5:6], index=mask)
            self.check(got[0], ref.take(2, q[2, :, 5:6], k[2, :, 5:6], v[2, :, 5:6]),
                       np.float32, est + " step slot 2")
            self.check(got[1], ref.take(3, q[3, :, 5:6], k[3, :, 5:6], v[3, :, 5:6]),
                       np.float32, est + " step slot 3")
            got = dec.step(q[3, :, 4:5], k[3, :, 4:5], v[3, :, 4:5], index=0)
            self.assertEqual(got.shape, (2, 1, 8))
            self.check(got, ref.take(0, q[3, :, 4:5], k[3, :, 4:5], v[3, :, 4:5]),
                       np.float32, est + " step slot 0, (H, 1, d) arrays")
            self.assertEqual(dec.positions.tolist(), ref.positions())
            self.assertIsNone(dec.prefill(q[:1, :, :2], k[:1, :, :2], v[:1, :, :2],
                                          out=False, index=[1]))
            ref.take(1, q[0, :, :2], k[0, :, :2], v[0, :, :2])
            self.assertEqual(dec.positions.tolist(), ref.positions())

    def test_reset_empties_only_the_slots_named(self):
        ctx = context()
        q, k, v = tokens(34, 3, 2, 2, 8, 16, 8)
        for est in ("positive", "exact"):
            plan = make_plan(ctx, est)
            dec = plan.decoder(3, 2)
            ref = Slots(plan, 3)
            dec.prefill(q[:, :, :4], k[:, :, :4], v[:, :, :4])
            for s in range(3):
                ref.take(s, q[s, :, :4], k[s, :, :4], v[s, :, :4])
            dec.reset([1])
            ref.reset(1)
            self.assertEqual(dec.positions.tolist(), [4, 0, 4])
            got = dec.step(q[:, :, 4:5], k[:, :, 4:5], v[:, :, 4:5])
            for s in range(3):
                self.check(got[s], ref.take(s, q[s, :, 4:5], k[s, :, 4:5], v[s, :, 4:5]),
                           np.float32, "%s after reset, slot %d" % (est, s))
            dec.reset([])
            self.assertEqual(dec.positions.tolist(), [5, 1, 5])
            dec.reset()
            self.assertEqual(dec.positions.tolist(), [0, 0, 0])


class Snapshots(unittest.TestCase):
    def test_restored_slot_continues_identically(self):
        """A prompt prefilled once, restored into another slot and another decoder: all
        three continue with bit-identical outputs and snapshots."""
        ctx = context()
        q, k, v = tokens(41, 1, 4, 2, 12, 16, 8)
        for est in ("positive", "hyperbolic", "exact", "eva"):
            plan = make_plan(ctx, est)
            a, b = plan.decoder(3, 4, kv_heads=2), plan.decoder(2, 4, kv_heads=2)
            a.prefill(q[:, :, :7], k[:, :, :7], v[:, :, :7])
            snap = a.snapshot(0)
            self.assertIsInstance(snap, bytes)
            a.restore(2, snap)
            b.restore(1, bytearray(snap))
            self.assertEqual(a.positions.tolist(), [7, 0, 7], est)
            self.assertEqual(b.positions.tolist(), [0, 7], est)
            self.assertEqual(a.snapshot(2), snap, est)
            self.assertEqual(b.snapshot(1), snap, est)
            qs, ks, vs = (np.repeat(x, 2, axis=0) for x in (q, k, v))
            for t in range(7, 12):
                sl = slice(t, t + 1)
                ga = a.step(qs[:, :, sl], ks[:, :, sl], vs[:, :, sl], index=[0, 2])
                gb = b.step(q[:, :, sl], k[:, :, sl], v[:, :, sl], index=[1])
                np.testing.assert_array_equal(ga[0], ga[1], err_msg="%s t=%d" % (est, t))
                np.testing.assert_array_equal(ga[0], gb[0], err_msg="%s t=%d" % (est, t))
            self.assertEqual(a.snapshot(0), a.snapshot(2), est)
            self.assertEqual(a.snapshot(0), b.snapshot(1), est)


class Threads(unittest.TestCase):
    def test_threads_sharing_a_decoder_are_serialised(self):
        """Four Python threads stepping their own slot of one decoder (calls release the
        GIL) give the bits of the same steps taken one after another."""
        ctx = context()
        plan = make_plan(ctx, "positive")
        q, k, v = tokens(61, 4, 4, 2, 40, 16, 8)
        shared, alone = plan.decoder(4, 4, kv_heads=2), plan.decoder(4, 4, kv_heads=2)
        got, errors = [None] * 4, []

        def run(slot):
            try:
                got[slot] = [shared.step(q[slot, :, t:t + 1], k[slot, :, t:t + 1],
                                         v[slot, :, t:t + 1], index=slot) for t in range(40)]
            except Exception as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for s in range(4):
            for t in range(40):
                want = alone.step(q[s, :, t:t + 1], k[s, :, t:t + 1], v[s, :, t:t + 1],
                                  index=s)
                np.testing.assert_array_equal(got[s][t], want, err_msg="slot %d t=%d" % (s, t))
        self.assertEqual(shared.positions.tolist(), [40] * 4)


class Interleavings(unittest.TestCase):
    def test_random_interleavings(self):
        """Random prefill, step, reset, snapshot and restore over four slots, each output
        against the causal rows of the slot's tokens so far (seed printed on failure)."""
        ctx = context()
        for seed in (101, 102):
            for est in ("positive", "trig", "exact"):
                with self.subTest(seed=seed, estimator=est):
                    self.interleave(make_plan(ctx, est), np.random.default_rng(seed),
                                    "seed %d %s" % (seed, est))

    def interleave(self, plan, rng, name, H=4, Hkv=2, n=4, ops=30):
        dec = plan.decoder(n, H, kv_heads=Hkv)
        ref = Slots(plan, n)
        snaps = []
        for it in range(ops):
            what = "%s op %d" % (name, it)
            op = rng.choice(["prefill", "step", "step", "reset", "snap", "restore"])
            slots = rng.permutation(n)[:rng.integers(1, n + 1)]
            if op in ("prefill", "step"):
                L = 1 if op == "step" else int(rng.integers(1, 6))
                q, k, v = tokens(int(rng.integers(1 << 30)), len(slots), H, Hkv, L, 16, 8)
                got = (dec.step if op == "step" else dec.prefill)(q, k, v, index=slots)
                for i, s in enumerate(slots):
                    want = ref.take(s, q[i], k[i], v[i])
                    np.testing.assert_allclose(got[i], want, rtol=0,
                                               atol=tolerance(np.float32, want),
                                               err_msg="%s: %s of slot %d" % (what, op, s))
            elif op == "reset":
                dec.reset(slots)
                for s in slots:
                    ref.reset(s)
            elif op == "snap":
                s = int(slots[0])
                snaps.append((dec.snapshot(s), list(ref.tokens[s])))
            elif snaps:
                snap, held = snaps[int(rng.integers(len(snaps)))]
                dec.restore(int(slots[0]), snap)
                ref.tokens[int(slots[0])] = list(held)
            self.assertEqual(dec.positions.tolist(), ref.positions(), what)


class Errors(unittest.TestCase):
    """Bad input raises rfjit.Error with a message naming the problem, moves no slot and
    writes no output."""

    @classmethod
    def setUpClass(cls):
        cls.ctx = context()
        cls.plan = make_plan(cls.ctx, "positive")
        cls.q, cls.k, cls.v = tokens(51, 2, 4, 2, 3, 16, 8)

    def setUp(self):
        self.dec = self.plan.decoder(3, 4, kv_heads=2)
        self.dec.prefill(self.q, self.k, self.v, index=[0, 2])
        self.snap = self.dec.snapshot(0)

    def tearDown(self):
        self.dec.close()

    def expect(self, status, needle, fn, *args, **kw):
        out = kw.get("out")
        with self.assertRaises(rfjit.Error) as e:
            fn(*args, **kw)
        self.assertEqual(e.exception.status, status, str(e.exception))
        self.assertIn(needle, str(e.exception))
        self.assertEqual(self.dec.positions.tolist(), [3, 0, 3], str(e.exception))
        self.assertEqual(self.dec.snapshot(0), self.snap, str(e.exception))
        if out is not None:
            self.assertTrue((out == 5.0).all(), "written despite %s" % e.exception)

    def one(self, x):
        return x[:, :, :1]

    def test_shapes(self):
        q, k, v = (self.one(x) for x in (self.q, self.k, self.v))
        out = np.full((2, 4, 1, 8), 5.0, np.float32)
        self.expect("RFJIT_E_SHAPE", "", self.dec.step, q[..., :8], k, v, out=out)
        self.expect("RFJIT_E_SHAPE", "k is (2, 3, 1, 16)", self.dec.step, q, k[:, :1].repeat(3, 1),
                    v[:, :1].repeat(3, 1), out=out)
        self.expect("RFJIT_E_SHAPE", "one token", self.dec.step, self.q, self.k, self.v,
                    out=np.full((2, 4, 3, 8), 5.0, np.float32))
        self.expect("RFJIT_E_SHAPE", "out must have shape (2, 4, 1, 8)", self.dec.step, q, k,
                    v, out=np.full((2, 4, 1, 4), 5.0, np.float32))
        self.expect("RFJIT_E_SHAPE", "index names 1 slots, but q, k and v have 2 entries",
                    self.dec.step, q, k, v, out=out, index=[1])
        self.expect("RFJIT_E_SHAPE", "lengths has 1 entries, expected 2", self.dec.prefill,
                    self.q, self.k, self.v, lengths=[1])
        self.expect("RFJIT_E_INVALID_ARG", "lengths[1] = 4 is outside", self.dec.prefill,
                    self.q, self.k, self.v, lengths=[1, 4], index=[1, 0])

    def test_dtypes(self):
        q, k, v = (self.one(x) for x in (self.q, self.k, self.v))
        out = np.full((2, 4, 1, 8), 5.0, np.float32)
        self.expect("RFJIT_E_DTYPE", "one dtype", self.dec.step, q, k.astype(np.float16), v,
                    out=out)
        self.expect("RFJIT_E_INVALID_ARG", "q has dtype complex64", self.dec.step,
                    q.astype(np.complex64), k, v, out=out)
        self.expect("RFJIT_E_INVALID_ARG", "out must be native", self.dec.step, q, k, v,
                    out=out.astype(np.float64))

    def test_index(self):
        q, k, v = (self.one(x) for x in (self.q, self.k, self.v))
        out = np.full((2, 4, 1, 8), 5.0, np.float32)
        self.expect("RFJIT_E_INVALID_ARG", "index[1] = 3 is outside [0, 3)", self.dec.step,
                    q, k, v, out=out, index=[0, 3])
        self.expect("RFJIT_E_INVALID_ARG", "index[0] = -1 is outside", self.dec.step, q, k,
                    v, out=out, index=[-1, 0])
        self.expect("RFJIT_E_INVALID_ARG", "index[0] = 18446744073709551615 is outside",
                    self.dec.step, q, k, v, out=out,
                    index=np.array([2 ** 64 - 1, 0], np.uint64))
        self.expect("RFJIT_E_INVALID_ARG", "index[1] = 1", self.dec.step, q, k, v, out=out,
                    index=[1, 1])
        self.expect("RFJIT_E_INVALID_ARG", "index must be a slot number", self.dec.step, q,
                    k, v, out=out, index=[0.5, 1])
        self.expect("RFJIT_E_INVALID_ARG", "index[0] = 4 is outside", self.dec.reset, [4])
        self.expect("RFJIT_E_INVALID_ARG", "index = 3 is outside [0, 2]", self.dec.snapshot,
                    3)
        self.expect("RFJIT_E_INVALID_ARG", "index = -1 is outside [0, 2]", self.dec.restore,
                    -1, self.snap)

    def test_snapshot_of_another_plan(self):
        other = self.ctx.plan(16, dv=8, m=48, causal=True, seed=5)
        dec = other.decoder(3, 4, kv_heads=2)
        dec.prefill(self.q[:1], self.k[:1], self.v[:1])
        self.expect("RFJIT_E_STATE", "48", self.dec.restore, 0, dec.snapshot(0))
        self.expect("RFJIT_E_STATE", "48", self.dec.restore, 1, dec.snapshot(0))
        heads = self.plan.decoder(3, 4, kv_heads=4)
        q = self.q[:1]
        heads.prefill(q, np.repeat(self.k[:1], 2, 1), np.repeat(self.v[:1], 2, 1))
        self.expect("RFJIT_E_STATE", "key/value heads", self.dec.restore, 0, heads.snapshot(0))
        self.expect("RFJIT_E_STATE", "snapshot", self.dec.restore, 0, b"not a snapshot")
        self.expect("RFJIT_E_STATE", "snapshot", self.dec.restore, 0, self.snap[:-1])
        exact = make_plan(self.ctx, "exact").decoder(3, 4, kv_heads=2)
        exact.prefill(self.q[:1], self.k[:1], self.v[:1])
        self.expect("RFJIT_E_STATE", "exact", self.dec.restore, 0, exact.snapshot(0))
        self.expect("RFJIT_E_INVALID_ARG", "snap must be the bytes Decoder.snapshot returned",
                    self.dec.restore, 0, "text")

    def test_step_before_prefill_of_a_fitted_estimator(self):
        plan = self.ctx.plan(16, dv=8, m=32, estimator="oprf", causal=True)
        dec = plan.decoder(2, 4, kv_heads=2)
        q, k, v = (self.one(x) for x in (self.q, self.k, self.v))
        with self.assertRaises(rfjit.Error) as e:
            dec.step(q, k, v)
        self.assertEqual(e.exception.status, "RFJIT_E_STATE", str(e.exception))
        self.assertEqual(dec.positions.tolist(), [0, 0])
        dec.prefill(self.q, self.k, self.v)
        dec.step(q, k, v)
        self.assertEqual(dec.positions.tolist(), [4, 4])

    def test_unrepresentable_row_takes_the_tokens(self):
        """The underflowing row of tests/api/test_edges.c (logits spread by hundreds): the
        step raises RFJIT_E_RANGE yet advances, and .out has the other rows; so does a
        prefill of the whole sequence."""
        L, d, dv, s = 33, 3, 5, 1 + 4 * 3 + 1
        x = np.empty(2 * L * d + L * dv, np.float32)
        for i in range(x.size):  # that test's generator and seed, for its sequence
            s = (s * 6364136223846793005 + 1442695040888963407) % 2 ** 64
            x[i] = np.float32((s >> 11) * 2.0 ** -53 - 0.5)
        x[:2 * L * d] *= np.float32(30)
        q, k = x[:L * d].reshape(1, 1, L, d), x[L * d:2 * L * d].reshape(1, 1, L, d)
        v = x[2 * L * d:].reshape(1, 1, L, dv)
        plan = self.ctx.plan(d, dv=dv, m=2, estimator="oprf", causal=True, backend="jit",
                             calib=(q, k))
        dec, ranged = plan.decoder(1, 1), 0
        for t in range(L):
            try:
                dec.step(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1])
            except rfjit.Error as e:
                self.assertEqual(e.status, "RFJIT_E_RANGE", str(e))
                self.assertEqual(e.out.shape, (1, 1, 1, dv))
                ranged += 1
            self.assertEqual(dec.positions.tolist(), [t + 1])
        self.assertGreaterEqual(ranged, 1)
        dec.reset()
        with self.assertRaises(rfjit.Error) as e:
            dec.prefill(q, k, v)
        self.assertEqual(e.exception.status, "RFJIT_E_RANGE", str(e.exception))
        self.assertEqual(dec.positions.tolist(), [L])
        got = e.exception.out[0, 0]
        rows = np.isfinite(got).all(axis=1)
        self.assertTrue(0 < rows.sum() < L, rows)
        want = plan(q, k, v)[0, 0]
        np.testing.assert_allclose(got[rows], want[rows], rtol=0,
                                   atol=tolerance(np.float32, want))

    def test_decoder_arguments(self):
        bidir = self.ctx.plan(16, dv=8, m=32)
        with self.assertRaises(rfjit.Error) as e:
            bidir.decoder(2, 4)
        self.assertEqual(e.exception.status, "RFJIT_E_NOT_APPLICABLE", str(e.exception))
        self.assertIn("causal", str(e.exception))
        for kw, needle in ((dict(batch=0, heads=4), "batch = 0 is outside"),
                           (dict(batch=2, heads=4, kv_heads=3), "kv_heads = 3 does not divide"),
                           (dict(batch=2, heads=2.0), "heads must be an integer"),
                           (dict(batch=2 ** 64, heads=4), "batch = 18446744073709551616")):
            with self.assertRaises(rfjit.Error) as e:
                self.plan.decoder(**kw)
            self.assertEqual(e.exception.status, "RFJIT_E_INVALID_ARG", str(e.exception))
            self.assertIn(needle, str(e.exception))

    def test_lifetimes(self):
        """A decoder keeps its plan and context alive; a closed decoder refuses calls."""
        ctx = context()
        plan = make_plan(ctx, "positive")
        dec = plan.decoder(1, 4, kv_heads=2)
        plan.close()
        ctx.close()
        dec.prefill(self.q[:1], self.k[:1], self.v[:1])
        self.assertEqual(dec.positions.tolist(), [3])
        dec.close()
        with self.assertRaises(rfjit.Error) as e:
            dec.positions
        self.assertEqual(e.exception.status, "RFJIT_E_STATE")
        with self.assertRaises(rfjit.Error) as e:
            plan.decoder(1, 4)
        self.assertEqual(e.exception.status, "RFJIT_E_STATE")


if __name__ == "__main__":
    unittest.main()
