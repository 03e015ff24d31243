/* SPDX-License-Identifier: MIT */
/*
 * This file checks that the seven linear estimators (positive, hyperbolic, trig, oprf, saderf,
 * sderf, aderf) are unbiased: over T independent i.i.d. projection seeds, the mean of
 * phi_q(x)^T phi_k(y) = e^{h_q + h_k} f_q . f_k must lie within 5 sigma of SM = exp(x^T y),
 * sigma = sqrt(Var_m / T) with Var_m the estimator's own closed-form variance (est.h
 * `variance`, which other suites check against the sample variance and against spec C1).
 *
 * Cases: |x|, |y| in {0.3, 0.7, 1.0}, angles {0, pi/2, 2pi/3, pi}, d = 8, m = 4, T = 20000.
 * Fitted estimators are fitted once per seed on one fixed sample (their parameters do not
 * depend on W, only the folded projections do) and then evaluated on the pairs.
 *
 * Heavy tails (spec C1): exponential features are log-normal-like, and a 5-sigma rule needs
 * the mean of the T m terms to be close to normal. For PRF the k-th moment of one term is
 * e^{k^2 |z|^2/2 - k(|x|^2 + |y|^2)/2}, so relative variance rv = e^{|z|^2} - 1 goes with
 * standardised skewness ~ (1 + rv)^{3/2} and kurtosis ~ (1 + rv)^4. Positive-feature cases are
 * therefore kept only when rv (per projection, from the closed form) is at most e^2 - 1 ~ 6.4:
 * kurtosis <= e^8 ~ 3e3 and skewness <= e^3 ~ 20 per term, i.e. excess kurtosis <= 0.04 and
 * skewness <= 0.07 for the mean of 8e4 terms, where the normal 5-sigma rule is sound. The
 * fitted estimators (A <= 0) have lighter tails than PRF at equal rv. Trig features are
 * bounded (|f| <= 1), so every trig case is kept. At least half of the 24 cases must be kept,
 * so the test cannot pass vacuously.
 */
#include <criterion/criterion.h>

#include "est_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

TestSuite(est_unbiased);

enum { D = 8, M = 4, T = 20000, NCASE = 24 };

#define PI 3.14159265358979323846
#define SEED0 7000u
#define PAIR_SEED 4242u
#define SAMPLE_SEED 99u

typedef struct ucase {
    double a, b, theta;
    double x[D], y[D];
    double sm, var; /* var: closed form at m = M */
    int kept;
    double sum;
} ucase;

static void run(const char *name)
{
    static const double norms[][2] = {{0.3, 0.3}, {0.3, 0.7}, {0.3, 1.0},
                                      {0.7, 0.7}, {0.7, 1.0}, {1.0, 1.0}};
    static const double angles[] = {0, PI / 2, 2 * PI / 3, PI};
    et_inst e;
    et_inst_init(&e, name, D, M);
    et_sample smp;
    et_sample_make(&smp, D, 40, 56, 0.35, SAMPLE_SEED);
    ucase *cs = calloc(NCASE, sizeof *cs);
    cr_assert(cs);
    const rj_stats *st = (e.s.est->flags & RJ_EST_FITTED) ? &smp.st : NULL;

    /* The closed-form variances need fitted parameters; any seed's fit gives the same A. */
    cr_assert_eq(et_inst_draw(&e, SEED0, st, NULL), RFJIT_OK, "%s: fit failed", name);
    int kept = 0;
    for (int c = 0; c < NCASE; c++) {
        ucase *u = &cs[c];
        u->a = norms[c / 4][0];
        u->b = norms[c / 4][1];
        u->theta = angles[c % 4];
        et_pair(D, u->a, u->b, u->theta, PAIR_SEED + (uint64_t)c, u->x, u->y);
        double xy = 0;
        for (int j = 0; j < D; j++)
            xy += u->x[j] * u->y[j];
        u->sm = exp(xy);
        u->var = e.s.est->variance(&e.s, e.params, u->x, u->y);
        const double rv1 = u->var * M / (u->sm * u->sm);
        u->kept = (e.s.est->flags & RJ_EST_SIGNED) || rv1 <= expm1(2.0);
        kept += u->kept;
    }
    cr_assert_geq(kept, NCASE / 2, "%s: only %d cases with moderate tails", name, kept);

    for (int t = 0; t < T; t++) {
        const uint64_t seed = SEED0 + (uint64_t)t;
        rj_fit_info info;
        cr_assert_eq(et_inst_draw(&e, seed, st, &info), RFJIT_OK, "%s: fit failed (seed %llu)",
                     name, (unsigned long long)seed);
        for (int c = 0; c < NCASE; c++)
            if (cs[c].kept)
                cs[c].sum += et_kernel(&e, cs[c].x, cs[c].y);
    }
    for (int c = 0; c < NCASE; c++) {
        const ucase *u = &cs[c];
        if (!u->kept)
            continue;
        const double mean = u->sum / T, sigma = sqrt(u->var / T);
        /* Zero-variance cases (x = -y for PRF, x = y for trig) must be exact up to rounding. */
        const double tol = 5 * sigma + 1e-12 * u->sm;
        cr_expect_leq(fabs(mean - u->sm), tol,
                      "%s: |x| = %.1f |y| = %.1f theta = %.4f (case %d, seeds %u..%u, pair seed "
                      "%u): mean %.6g vs SM %.6g, |diff| = %.3g sigma",
                      name, u->a, u->b, u->theta, c, SEED0, SEED0 + T - 1,
                      PAIR_SEED + (unsigned)c, mean, u->sm,
                      sigma > 0 ? fabs(mean - u->sm) / sigma : 0.0);
    }
    free(cs);
    et_sample_free(&smp);
    et_inst_free(&e);
}

Test(est_unbiased, positive, .timeout = 30)
{
    run("positive");
}

Test(est_unbiased, hyperbolic, .timeout = 30)
{
    run("hyperbolic");
}

Test(est_unbiased, trig, .timeout = 30)
{
    run("trig");
}

Test(est_unbiased, oprf, .timeout = 30)
{
    run("oprf");
}

Test(est_unbiased, saderf, .timeout = 30)
{
    run("saderf");
}

Test(est_unbiased, sderf, .timeout = 30)
{
    run("sderf");
}

Test(est_unbiased, aderf, .timeout = 30)
{
    run("aderf");
}
