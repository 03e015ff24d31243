# SPDX-License-Identifier: MIT
"""Tests of Context.plan(transform=): the names it takes (a comma-separated string or a
sequence), that exact attention is unchanged by every transform, that key centring of a
random-feature plan equals the same plan run on keys the test centres itself, and that
bad names and inapplicable estimators raise rfjit.Error. Run by ctest (entry `python`)."""
import unittest

import numpy as np

import rfjit


def rows(seed, L, d, mean):
    r = np.random.default_rng(seed)
    return (r.standard_normal((L, d)) * 0.6 + mean).astype(np.float32)


class TransformTest(unittest.TestCase):
    def setUp(self):
        self.ctx = rfjit.Context(cache_dir="", wisdom_path="")
        mean = np.random.default_rng(1).standard_normal(16) * 0.8
        self.q, self.k = rows(2, 48, 16, mean), rows(3, 48, 16, mean)
        self.v = np.random.default_rng(4).standard_normal((48, 16)).astype(np.float32)

    def tearDown(self):
        self.ctx.close()

    def test_exact_is_unchanged(self):
        base = self.ctx.plan(16, estimator="exact")(self.q, self.k, self.v)
        for t in ("k", "q", "balance", "k,q,balance", ["k", "balance"], ("q",)):
            out = self.ctx.plan(16, estimator="exact", transform=t)(self.q, self.k, self.v)
            np.testing.assert_allclose(out, base, rtol=0, atol=1e-5 * np.abs(base).max(),
                                       err_msg=str(t))

    def test_key_centring_is_the_centred_problem(self):
        kc = (self.k - self.k.astype(np.float64).mean(0)).astype(np.float32)
        want = self.ctx.plan(16, m=32, seed=9)(self.q, kc, self.v)
        got = self.ctx.plan(16, m=32, seed=9, transform="k")(self.q, self.k, self.v)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())

    def test_errors(self):
        for bad in ("x", "k,,q", 3, ["k", None]):
            with self.assertRaises(rfjit.Error, msg=repr(bad)) as cm:
                self.ctx.plan(16, transform=bad)
            self.assertIn("transform", str(cm.exception))
        with self.assertRaises(rfjit.Error) as cm:
            self.ctx.plan(16, estimator="trig", transform="q")
        self.assertIn("RFJIT_E_NOT_APPLICABLE", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
