/* SPDX-License-Identifier: MIT */
/*
 * This file checks the hybrid estimator statistically against spec estimators.md 5.1-5.2:
 * unbiasedness (Monte Carlo mean within 5 sigma of exp(x.y), sigma from the closed-form
 * variance), the variance formula against the sample variance (band of 5 standard errors of
 * the sample variance, estimated from the sample's own fourth moment, so heavy tails widen
 * it honestly), and zero variance at theta = 0 and pi for equal norms. i.i.d. projections.
 */
#include <criterion/criterion.h>

#include "est/est.h"
#include "philox.h"
#include "proj.h"

#include <math.h>
#include <stdlib.h>

TestSuite(hybrid);

enum { D = 6, M = 4, N = 2, T = 20000 };

/* x, y with norms rx, ry at angle theta, in the plane of e_1, e_2. */
static void pair(double rx, double ry, double theta, double *x, double *y)
{
    for (int i = 0; i < D; i++)
        x[i] = y[i] = 0;
    x[0] = rx;
    y[0] = ry * cos(theta);
    y[1] = ry * sin(theta);
}

static double estimate(const rj_spec *s, uint64_t seed, const double *x, const double *y)
{
    double W[M * D], params[(M + N) * D], fq[(M + 2 * M) * (N + 1) * 2],
        fk[(M + 2 * M) * (N + 1) * 2], hq, hk;
    rj_proj_draw(RFJIT_PROJ_IID, seed, M, D, W, NULL);
    s->est->fit(s, W, seed, NULL, params, NULL, NULL);
    s->est->features(s, params, RJ_ROLE_Q, x, &hq, fq);
    s->est->features(s, params, RJ_ROLE_K, y, &hk, fk);
    double dot = 0;
    for (int64_t r = 0; r < s->est->feature_dim(s); r++)
        dot += fq[r] * fk[r];
    return exp(hq + hk) * dot;
}

static void check_case(int base, double rx, double ry, double theta)
{
    rj_spec s = {rj_est_find("hybrid"), D, D, M, 0, RFJIT_PROJ_IID, 0, 1, N, base};
    double x[D], y[D];
    pair(rx, ry, theta, x, y);
    const double sm = exp(rx * ry * cos(theta)), var = s.est->variance(&s, NULL, x, y);
    double s1 = 0, s2 = 0, s4 = 0;
    double *k = malloc(sizeof(double) * T);
    for (int t = 0; t < T; t++) {
        k[t] = estimate(&s, 100000 + (uint64_t)t, x, y);
        s1 += k[t];
    }
    const double mean = s1 / T;
    for (int t = 0; t < T; t++) {
        double e = k[t] - mean;
        s2 += e * e;
        s4 += e * e * e * e;
    }
    free(k);
    const double svar = s2 / (T - 1), m4 = s4 / T;
    const double se_mean = sqrt(var / T), se_var = sqrt(fmax(m4 - svar * svar, 0) / T);
    cr_assert(fabs(mean - sm) <= 5 * se_mean + 1e-12 * sm,
              "base %d r=(%g,%g) theta=%g: mean %.6f vs SM %.6f (5 sigma = %.2e; seeds 100000..)",
              base, rx, ry, theta, mean, sm, 5 * se_mean);
    cr_assert(fabs(svar - var) <= 5 * se_var + 1e-12 * sm * sm,
              "base %d r=(%g,%g) theta=%g: sample var %.6e vs formula %.6e (5 se = %.2e)", base,
              rx, ry, theta, svar, var, 5 * se_var);
}

Test(hybrid, unbiased_and_variance_matches, .timeout = 60)
{
    const double thetas[] = {0.4, 1.5707963267948966, 2.0943951023931957, 2.8};
    const double norms[][2] = {{0.3, 0.3}, {0.6, 0.4}, {0.5, 0.8}};
    for (int base = 0; base < 2; base++)
        for (size_t a = 0; a < sizeof thetas / sizeof *thetas; a++)
            for (size_t r = 0; r < sizeof norms / sizeof *norms; r++)
                check_case(base, norms[r][0], norms[r][1], thetas[a]);
}

/* Equal norms: at theta = 0 the estimate is pure trig, exact at x = y; at theta = pi it is
 * pure positive, exact at x = -y. Every draw must equal exp(x.y). */
Test(hybrid, zero_variance_at_poles)
{
    for (int base = 0; base < 2; base++)
        for (int pole = 0; pole < 2; pole++) {
            rj_spec s = {rj_est_find("hybrid"), D, D, M, 0, RFJIT_PROJ_IID, 0, 1, N, base};
            double x[D], y[D];
            pair(0.7, 0.7, pole ? 3.141592653589793 : 0, x, y);
            const double sm = exp(0.49 * (pole ? -1 : 1));
            cr_assert_leq(s.est->variance(&s, NULL, x, y), 1e-12);
            for (int t = 0; t < 200; t++)
                cr_assert_float_eq(estimate(&s, (uint64_t)t, x, y), sm, 1e-9 * sm,
                                   "base %d pole %d seed %d", base, pole, t);
        }
}
