/* SPDX-License-Identifier: MIT */
/*
 * This file checks the data-fitted estimators (oprf, saderf, sderf, aderf) against an
 * independent oracle, the general DERF formulas of spec estimators.md 4.1 evaluated from the
 * estimators' primary parameters (tests/common/est_testutil.h):
 *
 *   - the fitted parameters are the optimum: OPRF's A equals a golden-section argmin of the
 *     mean objective over A in (-inf, 1/8) to 1e-6; for saderf, sderf and aderf 200 random
 *     perturbations of the primary parameters (psi and a; the eigenvalues a_l and the
 *     eigenvectors Q; B1' with B2' = B1'^{-T} re-derived, and a) never lower the objective.
 *     Each perturbed point is a valid estimator of the same family, and the fitted point is
 *     the family's global minimum (spec 3.2, 4.2-4.4), so no perturbation size may improve it;
 *   - A* properties: A* <= 0, decreasing, A*(0) = 0 exactly, the stationarity equation
 *     16A^2 - (2 - 4rho)A - rho = 0 and the asymptotes -rho/2, -rho/4 - 1/8;
 *   - the estimators' own closed forms agree with the oracle at the fitted point: features
 *     (e^h f against m^{-1/2} f^k(w_r, x)), objective and variance objective, variance;
 *   - degenerate statistics give RFJIT_E_FIT with a message; singular moments are
 *     regularised by aderf (still B1'^T B2' = I).
 */
#include <criterion/criterion.h>

#include "est_testutil.h"
#include "core/philox.h"
#include "core/proj.h"
#include "core/testing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(est_fit);

enum { D = 8, LQ = 40, LK = 56, NPERT = 200 };

#define SAMPLE_SEED 2024u
#define PERT_SEED 777u

/* Mean objective of the general DERF formula for (A, B1, B2); +inf if invalid. */
static double derf_obj(const double *A, const double *B1, const double *B2,
                       const et_sample *smp, double *var_obj)
{
    et_derf g;
    double obj = INFINITY, vo = INFINITY;
    if (et_derf_init(&g, smp->d, A, B1, B2))
        et_derf_objective(&g, smp->x, smp->lq, smp->y, smp->lk, &obj, &vo);
    et_derf_free(&g);
    if (var_obj)
        *var_obj = vo;
    return obj;
}

/* DERF parameters of a scalar-A estimator: A = aI, Bk = sqrt(1-4a) Bk'. */
static void scalar_derf(int d, double a, const double *B1p, const double *B2p, double *A,
                        double *B1, double *B2)
{
    const double sb = sqrt(1 - 4 * a);
    for (int i = 0; i < d * d; i++) {
        A[i] = (i % (d + 1) == 0) ? a : 0;
        B1[i] = sb * B1p[i];
        B2[i] = sb * B2p[i];
    }
}

/* Oracle cross-checks at the fitted point: features, objectives, variance. */
static void check_against_oracle(et_inst *e, const et_sample *smp)
{
    const int d = e->s.d, m = e->s.m;
    const char *name = e->s.est->name;
    double *A = malloc(sizeof(double) * d * d), *B1 = malloc(sizeof(double) * d * d),
           *B2 = malloc(sizeof(double) * d * d), w[D];
    cr_assert(A && B1 && B2 && d == D);
    et_derf_params(e, A, B1, B2);
    et_derf g;
    cr_assert(et_derf_init(&g, d, A, B1, B2), "%s: fitted parameters are not a valid DERF",
              name);
    /* Features: phi(x)_r = m^{-1/2} f^k(w_r, x), for a few sample rows of each role. */
    for (int i = 0; i < 4; i++)
        for (int role = 0; role < 2; role++) {
            const double *x = role ? smp->y + (i % smp->lk) * d : smp->x + (i % smp->lq) * d;
            double h, *f = role ? e->fk : e->fq;
            e->s.est->features(&e->s, e->params, role ? RJ_ROLE_K : RJ_ROLE_Q, x, &h, f);
            double fmax = 0;
            for (int r = 0; r < m; r++) {
                et_derf_w(e, e->W + r * d, w);
                const double ref = et_derf_log_feature(&g, role + 1, w, x) - 0.5 * log(m);
                cr_expect_leq(fabs(h + log(f[r]) - ref), 1e-11 * (1 + fabs(ref)),
                              "%s: ln phi_%s(x_%d)_%d = %.15g, DERF formula %.15g", name,
                              role ? "k" : "q", i, r, h + log(f[r]), ref);
                fmax = fmax > f[r] ? fmax : f[r];
            }
            cr_expect_eq(fmax, 1.0, "%s: max_r f_r = %.17g, must be 1 (h is the max)", name,
                         fmax);
        }
    /* Objectives of the ops table against the oracle. */
    double obj, vobj, robj, rvobj;
    rj_diag dg = {{0}};
    cr_assert_eq(e->s.est->objective(&e->s, e->params, smp->x, smp->lq, smp->y, smp->lk, &obj,
                                     &vobj, &dg),
                 RFJIT_OK, "%s: %s", name, dg.msg);
    et_derf_objective(&g, smp->x, smp->lq, smp->y, smp->lk, &robj, &rvobj);
    cr_expect_leq(fabs(obj - robj), 1e-10 * (1 + fabs(robj)), "%s: objective %.15g vs %.15g",
                  name, obj, robj);
    cr_expect_leq(fabs(vobj - rvobj), 1e-9 * (1 + fabs(rvobj)),
                  "%s: variance objective %.15g vs %.15g", name, vobj, rvobj);
    /* Variance at m: (E[(f1 f2)^2] - SM^2) / m. */
    for (int i = 0; i < 5; i++) {
        const double *x = smp->x + (i % smp->lq) * d, *y = smp->y + ((i + 7) % smp->lk) * d;
        double xy = 0;
        for (int c = 0; c < d; c++)
            xy += x[c] * y[c];
        const double ref = exp(2 * xy) * expm1(et_derf_log_moment(&g, x, y) - 2 * xy) / m;
        const double v = e->s.est->variance(&e->s, e->params, x, y);
        cr_expect_leq(fabs(v - ref), 1e-10 * ref, "%s: variance %.15g vs DERF %.15g", name, v,
                      ref);
    }
    et_derf_free(&g);
    free(A);
    free(B1);
    free(B2);
}

Test(est_fit, oprf_a_is_numeric_argmin)
{
    static const double scales[] = {0.2, 0.5, 1.2};
    for (int k = 0; k < 3; k++) {
        et_sample smp;
        et_sample_make(&smp, D, LQ, LK, scales[k], SAMPLE_SEED + (uint64_t)k);
        et_inst e;
        et_inst_init(&e, "oprf", D, 5);
        rj_fit_info info;
        cr_assert_eq(et_inst_draw(&e, 1, &smp.st, &info), RFJIT_OK);
        check_against_oracle(&e, &smp);
        /* Golden section of the mean objective over A in [-10, 1/8): unimodal there (the
         * stationarity quadratic's other root exceeds 1/8). */
        double I[D * D], A[D * D], B1[D * D], B2[D * D];
        for (int i = 0; i < D * D; i++)
            I[i] = (i % (D + 1) == 0);
        const double gr = (sqrt(5.0) - 1) / 2;
        double lo = -10, hi = 0.125 - 1e-9;
        double c = hi - gr * (hi - lo), dd = lo + gr * (hi - lo);
        scalar_derf(D, c, I, I, A, B1, B2);
        double fc = derf_obj(A, B1, B2, &smp, NULL);
        scalar_derf(D, dd, I, I, A, B1, B2);
        double fd = derf_obj(A, B1, B2, &smp, NULL);
        for (int it = 0; it < 200 && hi - lo > 1e-10; it++) {
            if (fc < fd) {
                hi = dd;
                dd = c;
                fd = fc;
                c = hi - gr * (hi - lo);
                scalar_derf(D, c, I, I, A, B1, B2);
                fc = derf_obj(A, B1, B2, &smp, NULL);
            } else {
                lo = c;
                c = dd;
                fc = fd;
                dd = lo + gr * (hi - lo);
                scalar_derf(D, dd, I, I, A, B1, B2);
                fd = derf_obj(A, B1, B2, &smp, NULL);
            }
        }
        const double a_num = 0.5 * (lo + hi);
        cr_expect_leq(fabs(info.A - a_num), 1e-6,
                      "oprf (sample seed %u, scale %g): fitted A = %.10f, numeric argmin %.10f "
                      "(rho %.6g)",
                      SAMPLE_SEED + k, scales[k], info.A, a_num, info.rho);
        cr_expect_lt(info.A, 0, "oprf: A* = %g must be negative for rho = %g > 0", info.A,
                     info.rho);
        et_inst_free(&e);
        et_sample_free(&smp);
    }
}

/* OPRF's A for a given rho_bar, through fit: d = 1, one query with x^2 = rho, one zero key. */
static double a_of_rho(double rho)
{
    et_inst e;
    et_inst_init(&e, "oprf", 1, 1);
    rj_stats st;
    cr_assert_eq(rj_stats_init(&st, 1), RFJIT_OK);
    const double x = sqrt(rho), y = 0;
    rj_stats_add(&st, 0, &x, 1);
    rj_stats_add(&st, 1, &y, 1);
    rj_fit_info info;
    cr_assert_eq(et_inst_draw(&e, 1, &st, &info), RFJIT_OK);
    cr_expect_leq(fabs(info.rho - rho), 1e-15 * rho, "rho %.17g reported as %.17g", rho,
                  info.rho);
    rj_stats_free(&st);
    et_inst_free(&e);
    return info.A;
}

Test(est_fit, a_star_properties)
{
    cr_expect_eq(a_of_rho(0), 0.0, "A*(0) = %g", a_of_rho(0));
    double prev = 0;
    for (int k = -8; k <= 8; k++) {
        for (int s = 1; s <= 9; s += 4) {
            const double rho = s * pow(10, k), A = a_of_rho(rho);
            cr_expect_lt(A, prev, "A*(%g) = %.17g not below the previous %.17g", rho, A, prev);
            prev = A;
            /* Stationarity 16A^2 - (2 - 4rho)A - rho = 0, relative to its largest term. */
            const double res = 16 * A * A - (2 - 4 * rho) * A - rho;
            const double scale = 16 * A * A + fabs((2 - 4 * rho) * A) + rho;
            cr_expect_leq(fabs(res), 1e-13 * scale, "A*(%g) = %.17g: residual %.3g", rho, A,
                          res);
        }
    }
    /* Asymptotes: A* ~ -rho/2 (rho -> 0, next term O(rho^2)), ~ -rho/4 - 1/8 (rho -> inf,
     * next term O(1/rho)). */
    cr_expect_leq(fabs(a_of_rho(1e-8) / (-0.5e-8) - 1), 1e-7);
    cr_expect_leq(fabs(a_of_rho(1e6) - (-0.25e6 - 0.125)), 1e-5);
    /* rho_bar = 0 from data: every query c, every key -c (dyadic entries, exact arithmetic). */
    for (int n = 0; n < 2; n++) {
        const char *name = n ? "saderf" : "oprf";
        double x[3 * D], y[3 * D];
        for (int i = 0; i < 3 * D; i++) {
            x[i] = 0.25 * ((i % D) + 1);
            y[i] = -x[i];
        }
        rj_stats st;
        cr_assert_eq(rj_stats_init(&st, D), RFJIT_OK);
        rj_stats_add(&st, 0, x, 3);
        rj_stats_add(&st, 1, y, 3);
        et_inst e;
        et_inst_init(&e, name, D, 3);
        rj_fit_info info;
        cr_assert_eq(et_inst_draw(&e, 5, &st, &info), RFJIT_OK);
        cr_expect_eq(info.rho, 0.0, "%s: rho = %g for x = -y", name, info.rho);
        cr_expect_eq(info.A, 0.0, "%s: A = %g at rho = 0", name, info.A);
        et_inst_free(&e);
        rj_stats_free(&st);
    }
}

/* Orthonormalise the columns of Q (d x d, row-major), modified Gram-Schmidt twice. */
static void orthonormalise(int d, double *Q)
{
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < d; j++) {
            for (int k = 0; k < j; k++) {
                double dot = 0;
                for (int i = 0; i < d; i++)
                    dot += Q[i * d + j] * Q[i * d + k];
                for (int i = 0; i < d; i++)
                    Q[i * d + j] -= dot * Q[i * d + k];
            }
            double n = 0;
            for (int i = 0; i < d; i++)
                n += Q[i * d + j] * Q[i * d + j];
            for (int i = 0; i < d; i++)
                Q[i * d + j] /= sqrt(n);
        }
}

/*
 * One perturbed point of name's family around its fitted params, as DERF (A, B1, B2).
 * g: 2 d^2 + d + 1 standard normals, eps the relative step.
 */
static void perturbed(const et_inst *e, const double *g, double eps, double *A, double *B1,
                      double *B2)
{
    const int d = e->s.d, m = e->s.m;
    const double *p = e->params;
    const char *name = e->s.est->name;
    double *T1 = malloc(sizeof(double) * d * d), *T2 = malloc(sizeof(double) * d * d);
    cr_assert(T1 && T2);
    /* Scalar a (oprf, saderf, aderf): a' = a + eps (|a| + 0.05) g_0, kept below 1/8. */
    double a = p[0] + eps * (fabs(p[0]) + 0.05) * g[0];
    if (a > 0.1)
        a = 0.1;
    if (!strcmp(name, "saderf")) {
        memset(T1, 0, sizeof(double) * d * d);
        memset(T2, 0, sizeof(double) * d * d);
        for (int l = 0; l < d; l++) {
            const double psi = p[4 + l] * exp(eps * g[1 + l]);
            T1[l * d + l] = psi;
            T2[l * d + l] = 1 / psi;
        }
        scalar_derf(d, a, T1, T2, A, B1, B2);
    } else if (!strcmp(name, "aderf")) {
        /* B1'' = B1' (I + eps E), B2'' = B1''^{-T}: B1''^T B2'' = I. */
        double *E = malloc(sizeof(double) * d * d), *Inv = malloc(sizeof(double) * d * d);
        cr_assert(E && Inv);
        for (int i = 0; i < d * d; i++)
            E[i] = (i % (d + 1) == 0) + eps * g[1 + i];
        et_matmul(d, p + 3 + m, E, T1);
        cr_assert(et_inverse(d, T1, Inv));
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                T2[i * d + j] = Inv[j * d + i];
        scalar_derf(d, a, T1, T2, A, B1, B2);
        free(E);
        free(Inv);
    } else {
        cr_assert_str_eq(name, "sderf");
        /* a_l' = a_l + eps (|a_l| + 0.05) g; Q' = orth(Q (I + eps S)), S skew. */
        const double *al = p + 2, *Q = p + 2 + 2 * d;
        double *S = malloc(sizeof(double) * d * d), *a2 = malloc(sizeof(double) * d);
        cr_assert(S && a2);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                S[i * d + j] = (i == j) + (i < j ? eps * g[1 + i * d + j]
                                                 : i > j ? -eps * g[1 + j * d + i] : 0);
        et_matmul(d, Q, S, T1);
        orthonormalise(d, T1);
        for (int l = 0; l < d; l++) {
            a2[l] = al[l] + eps * (fabs(al[l]) + 0.05) * g[1 + d * d + l];
            if (a2[l] > 0.1)
                a2[l] = 0.1;
        }
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double ta = 0, tb = 0;
                for (int l = 0; l < d; l++) {
                    ta += T1[i * d + l] * a2[l] * T1[j * d + l];
                    tb += T1[i * d + l] * sqrt(1 - 4 * a2[l]) * T1[j * d + l];
                }
                A[i * d + j] = ta;
                B1[i * d + j] = B2[i * d + j] = tb;
            }
        free(S);
        free(a2);
    }
    free(T1);
    free(T2);
}

static void perturbation_test(const char *name)
{
    et_sample smp;
    et_sample_make(&smp, D, LQ, LK, 0.5, SAMPLE_SEED);
    et_inst e;
    et_inst_init(&e, name, D, 6);
    rj_fit_info info;
    cr_assert_eq(et_inst_draw(&e, 11, &smp.st, &info), RFJIT_OK);
    check_against_oracle(&e, &smp);
    double A[D * D], B1[D * D], B2[D * D], g[2 * D * D + D + 1];
    et_derf_params(&e, A, B1, B2);
    const double best = derf_obj(A, B1, B2, &smp, NULL);
    cr_assert(isfinite(best));
    static const double eps[] = {1e-3, 1e-2, 1e-1};
    int worse = 0;
    for (int t = 0; t < NPERT; t++) {
        rj_normals(PERT_SEED, RJ_STREAM_TEST, (uint32_t)t, g, sizeof g / sizeof g[0]);
        perturbed(&e, g, eps[t % 3], A, B1, B2);
        const double o = derf_obj(A, B1, B2, &smp, NULL);
        /* 1e-12 relative: the oracle's rounding, far below the first-order change a wrong
         * fit would show at eps >= 1e-3. */
        cr_expect_geq(o, best - 1e-12 * (1 + fabs(best)),
                      "%s: perturbation %d (eps %g, seed %u row %d) lowers the objective "
                      "%.15g -> %.15g",
                      name, t, eps[t % 3], PERT_SEED, t, best, o);
        worse += o > best;
    }
    /* A flat objective would pass the inequality trivially; most steps must cost something. */
    cr_expect_geq(worse, NPERT * 9 / 10, "%s: only %d of %d perturbations raised the objective",
                  name, worse, NPERT);
    et_inst_free(&e);
    et_sample_free(&smp);
}

Test(est_fit, saderf_is_minimum)
{
    perturbation_test("saderf");
}

Test(est_fit, sderf_is_minimum)
{
    perturbation_test("sderf");
}

Test(est_fit, aderf_is_minimum)
{
    perturbation_test("aderf");
}

Test(est_fit, info_fields)
{
    static const char *const fitted[] = {"oprf", "saderf", "sderf", "aderf"};
    static const char *const plain[] = {"positive", "hyperbolic", "trig"};
    et_sample smp;
    et_sample_make(&smp, D, LQ, LK, 0.5, SAMPLE_SEED);
    for (int i = 0; i < 4; i++) {
        et_inst e;
        et_inst_init(&e, fitted[i], D, 3);
        rj_fit_info info = {0, 0};
        cr_assert_eq(et_inst_draw(&e, 2, &smp.st, &info), RFJIT_OK);
        if (!strcmp(fitted[i], "sderf")) {
            cr_expect(isnan(info.A) && isnan(info.rho), "sderf: A is a matrix, report NaN");
        } else {
            cr_expect(info.A < 0 && info.rho > 0, "%s: A = %g, rho = %g", fitted[i], info.A,
                      info.rho);
        }
        /* info may be NULL. */
        cr_expect_eq(e.s.est->fit(&e.s, e.W, 2, &smp.st, e.params, NULL, NULL), RFJIT_OK);
        et_inst_free(&e);
    }
    for (int i = 0; i < 3; i++) {
        et_inst e;
        et_inst_init(&e, plain[i], D, 3);
        rj_fit_info info = {0, 0};
        cr_assert_eq(et_inst_draw(&e, 2, NULL, &info), RFJIT_OK);
        cr_expect(isnan(info.A) && isnan(info.rho), "%s has no fitted scalars", plain[i]);
        et_inst_free(&e);
    }
    et_sample_free(&smp);
}

static void expect_fit_error(const char *name, const rj_stats *st, const char *what)
{
    et_inst e;
    et_inst_init(&e, name, st ? st->d : D, 3);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_IID, 1, e.s.m, e.s.d, e.W, NULL), RFJIT_OK);
    const rfjit_status s = e.s.est->fit(&e.s, e.W, 0, st, e.params, NULL, &dg);
    cr_expect_eq(s, RFJIT_E_FIT, "%s, %s: status %d, expected RFJIT_E_FIT", name, what, s);
    cr_expect_neq(dg.msg[0], 0, "%s, %s: no message", name, what);
    et_inst_free(&e);
}

Test(est_fit, degenerate_statistics)
{
    static const char *const fitted[] = {"oprf", "saderf", "sderf", "aderf"};
    rj_stats st;
    cr_assert_eq(rj_stats_init(&st, D), RFJIT_OK);
    double rows[4 * D];
    rj_normals(1, RJ_STREAM_TEST, 0, rows, 4 * D);
    for (int i = 0; i < 4; i++) {
        expect_fit_error(fitted[i], NULL, "no statistics");
        rj_stats_reset(&st);
        rj_stats_add(&st, 1, rows, 4);
        expect_fit_error(fitted[i], &st, "no queries");
        rj_stats_reset(&st);
        rj_stats_add(&st, 0, rows, 4);
        expect_fit_error(fitted[i], &st, "no keys");
    }
    /* saderf: dimension 0 is zero in every key but not in the queries: no minimising psi. */
    double keys[4 * D];
    memcpy(keys, rows, sizeof keys);
    for (int i = 0; i < 4; i++)
        keys[i * D] = 0;
    rj_stats_reset(&st);
    rj_stats_add(&st, 0, rows, 4);
    rj_stats_add(&st, 1, keys, 4);
    expect_fit_error("saderf", &st, "one-sided zero dimension");
    /* aderf: all queries zero (trace 0). */
    double zero[4 * D] = {0};
    rj_stats_reset(&st);
    rj_stats_add(&st, 0, zero, 4);
    rj_stats_add(&st, 1, rows, 4);
    expect_fit_error("aderf", &st, "all-zero queries");
    rj_stats_free(&st);
}

Test(est_fit, aderf_regularises_singular_moments)
{
    /* L = 3 < d = 8 rows: M1 and M2 have rank 3. */
    et_sample smp;
    et_sample_make(&smp, D, 3, 3, 0.5, SAMPLE_SEED + 9);
    et_inst e;
    et_inst_init(&e, "aderf", D, 4);
    rj_fit_info info;
    cr_assert_eq(et_inst_draw(&e, 3, &smp.st, &info), RFJIT_OK, "aderf with L < d");
    cr_expect(isfinite(info.A) && info.A <= 0 && isfinite(info.rho), "A = %g, rho = %g",
              info.A, info.rho);
    const size_t np = e.s.est->params_size(&e.s);
    for (size_t i = 0; i < np; i++)
        cr_assert(isfinite(e.params[i]), "aderf: parameter %zu is %g", i, e.params[i]);
    /* Validity (spec 4.2): B1'^T B2' = I, whatever the floor did. */
    const double *b1 = e.params + 3 + e.s.m, *b2 = b1 + D * D;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double t = 0;
            for (int k = 0; k < D; k++)
                t += b1[k * D + i] * b2[k * D + j];
            cr_expect_leq(fabs(t - (i == j)), 1e-9, "(B1'^T B2')[%d][%d] = %.3g", i, j, t);
        }
    check_against_oracle(&e, &smp);
    et_inst_free(&e);
    et_sample_free(&smp);
}

/* Each fitted estimator declares which second moments it reads (est.h RJ_EST_MOM_*), and the
 * per-call fit forms only those: the parameters must come out bit for bit as from full
 * statistics, or the declaration is wrong. */
Test(est_fit, declared_moments_suffice)
{
    enum { DM = 12, LM = 23 };
    double x[LM * DM], y[LM * DM];
    for (int i = 0; i < LM * DM; i++) {
        x[i] = 0.3 * sin(1.7 * i + 0.2) * (1 + (i % DM) * 0.1);
        y[i] = 0.4 * cos(0.9 * i) - 0.05;
    }
    for (int e = 0; e < rj_est_count; e++) {
        const rj_est_ops *ops = rj_est_registry[e];
        if (!(ops->flags & RJ_EST_FITTED))
            continue;
        double *p[2];
        for (int lim = 0; lim < 2; lim++) {
            rj_stats st;
            cr_assert_eq(rj_stats_init(&st, DM), RFJIT_OK);
            if (lim)
                st.moments = rj_est_moments(ops->flags);
            rj_stats_add(&st, 0, x, LM);
            rj_stats_add(&st, 1, y, LM);
            et_inst in;
            et_inst_init(&in, ops->name, DM, 8);
            rj_fit_info info;
            cr_assert_eq(et_inst_draw(&in, 3, &st, &info), RFJIT_OK, "%s", ops->name);
            size_t n = ops->params_size(&in.s);
            p[lim] = malloc(n * sizeof(double));
            memcpy(p[lim], in.params, n * sizeof(double));
            if (lim)
                cr_expect(memcmp(p[0], p[1], n * sizeof(double)) == 0,
                          "%s: parameters from its declared moments (%d) differ from full ones",
                          ops->name, st.moments);
            et_inst_free(&in);
            rj_stats_free(&st);
        }
        free(p[0]);
        free(p[1]);
    }
}
