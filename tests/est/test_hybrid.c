/* SPDX-License-Identifier: MIT */
/*
 * This file checks the hybrid estimator (est/hybrid.c) against spec estimators.md
 * 5.1-5.2: the feature map equals lambda_hat K_b + (1 - lambda_hat) K_t computed directly
 * from W and the sign vectors (and its layout splits into those two terms); fit's draws;
 * the closed-form variance against a direct evaluation of formula 5.1; Monte Carlo over
 * fixed seeds with i.i.d. W: the mean within 5 sigma of exp(x.y) (sigma from the formula)
 * and the sample variance within 5 standard errors of the formula, both for the estimator
 * (W shared by base and trig, covariance c as derived) and for the same construction with
 * independent W's for base and trig (c = 0); zero variance at theta = 0 and pi for equal
 * norms; valid() and finite features at huge norms.
 */
#include <criterion/criterion.h>

#include "est/est.h"
#include "core/philox.h"
#include "core/proj.h"
#include "ref_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(hybrid);







/* N: the default number of sign vectors; NMAX bounds the arrays for other n. */
enum { D = 6, M = 4, N = 2, NMAX = 8 };
static const double PI = 3.14159265358979323846;

static rj_spec hrf_spec(int base, int n)
{
    cr_assert(n >= 1 && n <= NMAX);
    rj_spec s = rt_spec("hybrid", D, D, M, 0);
    s.hrf_n = n;
    s.hrf_base = base;
    s.proj = RFJIT_PROJ_IID;
    return s;
}

/* x, y with norms rx, ry at angle theta, in the plane of two orthonormal vectors drawn from
 * a fixed seed (so every coordinate, and every sign vector component, plays a part). */
static void pair(double rx, double ry, double theta, double *x, double *y)
{
    double e1[D], e2[D], n1 = 0, p = 0, n2 = 0;
    rt_normals(e1, D, 1.0, 7, 1);
    rt_normals(e2, D, 1.0, 7, 2);
    for (int a = 0; a < D; a++)
        n1 += e1[a] * e1[a];
    for (int a = 0; a < D; a++)
        e1[a] /= sqrt(n1), p += e1[a] * e2[a];
    for (int a = 0; a < D; a++)
        e2[a] -= p * e1[a], n2 += e2[a] * e2[a];
    for (int a = 0; a < D; a++) {
        e2[a] /= sqrt(n2);
        x[a] = rx * e1[a];
        y[a] = ry * (cos(theta) * e1[a] + sin(theta) * e2[a]);
    }
}

static double dotd(const double *a, const double *b)
{
    double r = 0;
    for (int i = 0; i < D; i++)
        r += a[i] * b[i];
    return r;
}

/* A reusable draw: W from (wseed, RJ_STREAM_PROJ), R from fit's (rseed, RJ_STREAM_HRF). */
typedef struct draw {
    rj_spec s;
    double W[M * D], params[(M + NMAX) * D];
    double fq[(2 * M + 2 * M) * (NMAX + 1)], fk[(2 * M + 2 * M) * (NMAX + 1)], hq, hk;
} draw;

static void draw_make(draw *g, uint64_t wseed, uint64_t rseed, const double *x, const double *y)
{
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_IID, wseed, M, D, g->W, NULL), RFJIT_OK);
    cr_assert_eq(g->s.est->fit(&g->s, g->W, rseed, NULL, g->params, NULL, NULL), RFJIT_OK);
    g->s.est->features(&g->s, g->params, RJ_ROLE_Q, x, &g->hq, g->fq);
    g->s.est->features(&g->s, g->params, RJ_ROLE_K, y, &g->hk, g->fk);
}

/* The base part (first mb (n + 1) entries) and the trig part of phi_q . phi_k. */
static void parts(const draw *g, double *kb, double *kt)
{
    const int64_t Mf = g->s.est->feature_dim(&g->s);
    const int64_t nb = (g->s.hrf_base ? 2 * M : M) * (g->s.hrf_n + 1);
    double b = 0, t = 0;
    for (int64_t r = 0; r < Mf; r++)
        *(r < nb ? &b : &t) += g->fq[r] * g->fk[r];
    *kb = exp(g->hq + g->hk) * b;
    *kt = exp(g->hq + g->hk) * t;
}

/* lambda_hat, K_b and K_t straight from the definitions of 5.2 with the draw's W and R. */
static void direct(const draw *g, const double *x, const double *y, double *lam, double *kb,
                   double *kt)
{
    const double *W = g->params, *R = g->params + M * D;
    const double xx = dotd(x, x), yy = dotd(y, y);
    const int n = g->s.hrf_n;
    double ss = 0, b = 0, t = 0;
    for (int i = 0; i < n; i++)
        ss += (dotd(R + i * D, x) >= 0 ? 1 : -1) * (dotd(R + i * D, y) >= 0 ? 1 : -1);
    for (int r = 0; r < M; r++) {
        const double uz = dotd(W + r * D, x) + dotd(W + r * D, y);
        const double ud = dotd(W + r * D, x) - dotd(W + r * D, y);
        b += g->s.hrf_base ? cosh(uz) : exp(uz);
        t += cos(ud);
    }
    *lam = 0.5 - ss / (2.0 * n);
    *kb = exp(-(xx + yy) / 2) * b / M;
    *kt = exp((xx + yy) / 2) * t / M;
}

Test(hybrid, features_match_definition)
{
    const double ang[] = {0.3, 1.2, 2.0, 3.0}, nrm[][2] = {{0.4, 0.7}, {1.1, 0.5}, {0, 0.8}};
    for (int bn = 0; bn < 4; bn++) { /* base x n in {1, NMAX} */
        const int base = bn & 1, n = bn < 2 ? 1 : NMAX;
        draw g;
        g.s = hrf_spec(base, n);
        cr_assert_eq(g.s.est->feature_dim(&g.s), (int64_t)((base ? 2 : 1) * M + 2 * M) * (n + 1));
        for (size_t a = 0; a < 4; a++)
            for (size_t r = 0; r < 3; r++)
                for (uint64_t seed = 1; seed <= 20; seed++) {
                    double x[D], y[D], lam, kb, kt, pb, pt;
                    pair(nrm[r][0], nrm[r][1], ang[a], x, y);
                    draw_make(&g, seed, seed, x, y);
                    direct(&g, x, y, &lam, &kb, &kt);
                    parts(&g, &pb, &pt);
                    const double sc = fabs(kb) + fabs(kt);
                    cr_assert(fabs(pb - lam * kb) <= 1e-12 * sc &&
                                  fabs(pt - (1 - lam) * kt) <= 1e-12 * sc,
                              "base %d n %d case (%zu, %zu) seed %llu: parts (%.17g, %.17g) vs "
                              "(%.17g, %.17g)", base, n, a, r, (unsigned long long)seed, pb, pt,
                              lam * kb, (1 - lam) * kt);
                }
    }
}

Test(hybrid, fit_copies_w_and_draws_signs)
{
    rj_spec s = hrf_spec(RFJIT_HYBRID_BASE_POSITIVE, N);
    double W[M * D], p[(M + N) * D], r[D];
    cr_assert_eq(s.est->params_size(&s), (size_t)(M + N) * D);
    rt_normals(W, M * D, 1.0, 3, 0);
    cr_assert_eq(s.est->fit(&s, W, 99, NULL, p, NULL, NULL), RFJIT_OK);
    cr_assert(memcmp(p, W, sizeof W) == 0);
    for (int t = 0; t < N; t++) {
        rj_normals(99, RJ_STREAM_HRF, (uint32_t)t, r, D);
        cr_assert(memcmp(p + (M + t) * D, r, sizeof r) == 0, "sign vector %d", t);
    }
    rj_diag dg = {{0}};
    cr_assert_neq(s.est->fit(&s, NULL, 99, NULL, p, NULL, &dg), RFJIT_OK);
}

/* Formula 5.1 evaluated plainly (no cancellation care), for moderate norms. */
static double formula(int base, int n, const double *x, const double *y, int shared)
{
    const double xx = dotd(x, x), yy = dotd(y, y), xy = dotd(x, y);
    const double lam = (xx > 0 && yy > 0) ? acos(xy / sqrt(xx * yy)) / PI : 0.5;
    const double v = lam * (1 - lam) / n, sm2 = exp(2 * xy), z2 = xx + yy + 2 * xy;
    const double V1 = base ? sm2 * (cosh(z2) - 1) / M : sm2 * (exp(z2) - 1) / M;
    const double V2 = exp(xx + yy) * pow(1 - exp(-(xx + yy - 2 * xy)), 2) / (2.0 * M);
    const double c = shared ? sm2 * (cos(xx - yy) - 1) / M : 0;
    return (lam * lam + v) * V1 + ((1 - lam) * (1 - lam) + v) * V2 +
           2 * (lam * (1 - lam) - v) * c;
}

Test(hybrid, variance_is_formula_5_1)
{
    const double ang[] = {0.2, 1.0, 1.9, 2.9}, nrm[][2] = {{0.3, 0.9}, {1.0, 1.0}, {0.7, 0}};
    for (int bn = 0; bn < 4; bn++) { /* base x n in {1, 3} */
        const int base = bn & 1, n = bn < 2 ? 1 : 3;
        const rj_spec s = hrf_spec(base, n);
        for (size_t a = 0; a < 4; a++)
            for (size_t r = 0; r < 3; r++) {
                double x[D], y[D];
                pair(nrm[r][0], nrm[r][1], ang[a], x, y);
                const double want = formula(base, n, x, y, 1);
                const double got = s.est->variance(&s, NULL, x, y);
                cr_assert(fabs(got - want) <= 1e-10 * want,
                          "base %d n %d (%zu, %zu): %.17g vs %.17g", base, n, a, r, got, want);
            }
    }
}

/* Monte Carlo over T seeds. shared: the estimator itself (one W), against its variance();
 * else the base part from a draw with W_A and the trig part from a draw with W_B, both with
 * the same sign vectors R (fit's seed): the independent-W construction of 5.1 (c = 0).
 * Checks the mean and the sample variance; returns the latter and its standard error. */
static double monte_carlo(int base, int n, double rx, double ry, double theta, int shared,
                          int T, double *se)
{
    draw ga, gb;
    ga.s = gb.s = hrf_spec(base, n);
    double x[D], y[D];
    pair(rx, ry, theta, x, y);
    /* shared: the estimator's own closed form; independent: 5.1 with c = 0 */
    const double sm = exp(dotd(x, y));
    const double var = shared ? ga.s.est->variance(&ga.s, NULL, x, y) : formula(base, n, x, y, 0);
    double *k = malloc(sizeof(double) * (size_t)T);
    cr_assert_not_null(k);
    double s1 = 0;
    for (int t = 0; t < T; t++) {
        const uint64_t seed = 100000 + (uint64_t)t;
        double kb, kt, kb2, kt2;
        draw_make(&ga, seed, seed, x, y);
        parts(&ga, &kb, &kt);
        if (!shared) {
            draw_make(&gb, seed + 500000, seed, x, y);
            parts(&gb, &kb2, &kt2);
            kt = kt2;
        }
        k[t] = kb + kt;
        s1 += k[t];
    }
    const double mean = s1 / T;
    double s2 = 0, s4 = 0;
    for (int t = 0; t < T; t++) {
        const double e = k[t] - mean;
        s2 += e * e;
        s4 += e * e * e * e;
    }
    free(k);
    const double svar = s2 / (T - 1), m4 = s4 / T;
    /* standard error of the sample variance from the sample's own fourth moment */
    const double se_var = sqrt(fmax(m4 - svar * svar * (T - 3.0) / (T - 1.0), 0) / T);
    const double se_mean = sqrt(var / T);
    cr_assert(fabs(mean - sm) <= 5 * se_mean + 1e-12 * sm,
              "base %d shared %d r = (%g, %g) theta = %g: mean %.6f vs SM %.6f, 5 sigma = %.2e "
              "(seeds 100000 + t, t < %d)", base, shared, rx, ry, theta, mean, sm, 5 * se_mean, T);
    cr_assert(fabs(svar - var) <= 5 * se_var + 1e-12 * sm * sm,
              "base %d shared %d r = (%g, %g) theta = %g: sample variance %.6e vs formula %.6e, "
              "5 se = %.2e (seeds 100000 + t, t < %d)", base, shared, rx, ry, theta, svar, var,
              5 * se_var, T);
    if (se)
        *se = se_var;
    return svar;
}

Test(hybrid, unbiased_and_variance_matches, .timeout = 60)
{
    const double thetas[] = {0.4, PI / 2, 2 * PI / 3, 2.8};
    const double norms[][2] = {{0.3, 0.3}, {0.6, 0.4}, {0.5, 0.8}};
    for (int base = 0; base < 2; base++) {
        for (size_t a = 0; a < sizeof thetas / sizeof *thetas; a++)
            for (size_t r = 0; r < sizeof norms / sizeof *norms; r++)
                monte_carlo(base, N, norms[r][0], norms[r][1], thetas[a], 1, 20000, NULL);
        /* x = 0: all its signs are +1, so lambda = 1/2 and v = 1/(4n) */
        monte_carlo(base, N, 0, 0.7, 1.0, 1, 20000, NULL);
    }
}

/* Very unequal norms make c = SM^2 (cos(|x|^2 - |y|^2) - 1)/m strongly negative, and n = 8
 * gives it the weight 2 (lambda (1 - lambda) - v) = 0.44 at theta = pi/2: the shared-W
 * estimator and the independent-W construction each match their own variance, and the
 * shared one's sample variance rejects the c = 0 formula (so the covariance is really
 * tested, not just carried along). */
Test(hybrid, covariance_shared_vs_independent, .timeout = 60)
{
    enum { T = 40000 };
    const double rx = 0.2, ry = 1.0, theta = PI / 2;
    for (int base = 0; base < 2; base++) {
        double x[D], y[D], se_s, se_i;
        pair(rx, ry, theta, x, y);
        const double vs = formula(base, NMAX, x, y, 1), vi = formula(base, NMAX, x, y, 0);
        const double ss = monte_carlo(base, NMAX, rx, ry, theta, 1, T, &se_s);
        const double si = monte_carlo(base, NMAX, rx, ry, theta, 0, T, &se_i);
        cr_log_info("base %d: shared var %.4f +- %.4f (formula %.4f), independent %.4f +- %.4f "
                    "(formula %.4f)", base, ss, se_s, vs, si, se_i, vi);
        cr_assert_gt(fabs(ss - vi), 5 * se_s, "base %d: the shared-W sample variance %.4f does "
                     "not reject the c = 0 formula %.4f at 5 se", base, ss, vi);
    }
}

/* Equal norms: theta = 0 makes lambda_hat = 0 (pure trig, exact at x = y), theta = pi makes
 * it 1 (pure base, exact at x = -y): variance 0 and every draw equals exp(x.y). */
Test(hybrid, zero_variance_at_poles)
{
    for (int base = 0; base < 2; base++)
        for (int pole = 0; pole < 2; pole++) {
            draw g;
            g.s = hrf_spec(base, N);
            double x[D], y[D];
            pair(0.7, 0.7, pole ? PI : 0, x, y);
            const double sm = exp(dotd(x, y));
            cr_assert_leq(fabs(g.s.est->variance(&g.s, NULL, x, y)), 1e-12 * sm * sm,
                          "base %d pole %d", base, pole);
            for (uint64_t t = 0; t < 200; t++) {
                double kb, kt;
                draw_make(&g, t, t, x, y);
                parts(&g, &kb, &kt);
                cr_assert_float_eq(kb + kt, sm, 1e-9 * sm, "base %d pole %d seed %llu", base,
                                   pole, (unsigned long long)t);
            }
        }
}

Test(hybrid, valid_and_huge_norms)
{
    char why[128];
    rj_spec s = hrf_spec(RFJIT_HYBRID_BASE_HYPERBOLIC, N);
    cr_assert(s.est->valid(&s, why, sizeof why), "%s", why);
    cr_assert_eq(s.est->flags & RJ_EST_SIGNED, RJ_EST_SIGNED);
    cr_assert_eq(s.est->tmpl, RJ_TMPL_LINEAR);
    const struct {
        int field, value;
    } bad[] = {{0, 0}, {0, 4097}, {1, 2}, {1, -1}, {2, 0}, {3, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rj_spec b = s;
        int *f[] = {&b.hrf_n, &b.hrf_base, &b.d, &b.m};
        *f[bad[i].field] = bad[i].value;
        why[0] = 0;
        cr_assert(!s.est->valid(&b, why, sizeof why) && why[0], "case %zu accepted", i);
    }
    /* |x| = 350 (1e3 raw at d = 64): h carries the scale, f stays finite and <= 1/sqrt2 */
    for (int base = 0; base < 2; base++) {
        draw g;
        g.s = hrf_spec(base, N);
        double x[D], y[D];
        pair(350, 340, 1.0, x, y);
        draw_make(&g, 5, 5, x, y);
        const int64_t Mf = g.s.est->feature_dim(&g.s);
        cr_assert(isfinite(g.hq) && isfinite(g.hk) && fabs(g.hq) > 709);
        for (int64_t r = 0; r < Mf; r++)
            cr_assert(isfinite(g.fq[r]) && fabs(g.fq[r]) <= sqrt(0.5) + 1e-15 &&
                          isfinite(g.fk[r]) && fabs(g.fk[r]) <= sqrt(0.5) + 1e-15,
                      "base %d entry %lld", base, (long long)r);
    }
}
