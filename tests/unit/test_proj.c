/* SPDX-License-Identifier: MIT */
/* This file checks the projection matrices: orthogonality within blocks, chi_d row norms,
 * bit determinism (golden checksums), and the Haar sign-fix bias check C2 of
 * spec estimators.md section 7 together with its failing counterpart. */
#include <criterion/criterion.h>

#include "linalg.h"
#include "philox.h"
#include "proj.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(proj);

Test(proj, orthogonal_blocks_and_norms)
{
    enum { M = 200, D = 16 };
    static double W[M * D];
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_ORTHOGONAL, 3, M, D, W, NULL), RFJIT_OK);
    double s1 = 0;
    for (int r = 0; r < M; r++) {
        double n2 = 0;
        for (int j = 0; j < D; j++)
            n2 += W[r * D + j] * W[r * D + j];
        s1 += n2;
        for (int r2 = (r / D) * D; r2 < r; r2++) {
            double dot = 0, n22 = 0;
            for (int j = 0; j < D; j++) {
                dot += W[r * D + j] * W[r2 * D + j];
                n22 += W[r2 * D + j] * W[r2 * D + j];
            }
            cr_assert_leq(fabs(dot) / sqrt(n2 * n22), 1e-12, "rows %d, %d", r, r2);
        }
    }
    /* |w|^2 ~ chi^2_d: mean d, variance 2d */
    cr_assert_leq(fabs(s1 / M - D), 5 * sqrt(2.0 * D / M), "mean |w|^2 = %g", s1 / M);
}

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Golden checksums: the bits of W for a seed must never change across machines or
 * releases (users' trained models and wisdom depend on them). */
Test(proj, golden_checksums)
{
    static const struct {
        int kind, m, d;
        uint64_t seed, sum;
    } gold[] = {
        {RFJIT_PROJ_IID, 16, 8, 1, 0xb10462504d6d88b2ull},
        {RFJIT_PROJ_ORTHOGONAL, 20, 8, 2, 0x00f597879679464bull},
        {RFJIT_PROJ_ORTHOGONAL, 256, 64, 7, 0xebee66d4bd4af5feull},
    };
    for (size_t t = 0; t < sizeof gold / sizeof *gold; t++) {
        double *W = malloc(sizeof(double) * gold[t].m * gold[t].d);
        cr_assert_eq(rj_proj_draw(gold[t].kind, gold[t].seed, gold[t].m, gold[t].d, W, NULL),
                     RFJIT_OK);
        uint64_t h = fnv1a(W, sizeof(double) * gold[t].m * gold[t].d);
        cr_assert_eq(h, gold[t].sum, "case %zu: checksum 0x%016llxull", t, (unsigned long long)h);
        free(W);
    }
}

Test(proj, invalid_arguments)
{
    double W[4];
    rj_diag dg = {{0}};
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_IID, 1, 0, 4, W, &dg), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(dg.msg, "m, d >= 1"), "%s", dg.msg);
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_USER, 1, 1, 4, W, &dg), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(dg.msg, "kind"), "%s", dg.msg);
}

/* Mean over T seeds of the PRF estimate at x = y = z/2, z = |z| e_1, divided by exp(x.y).
 * sign_fix = 0 rebuilds each block from rj_qr without the fix (the reference codes' bug). */
static void c2_ratio(double zn, int sign_fix, int T, double *mean, double *se)
{
    enum { D = 8 };
    double x[D] = {zn / 2}, G[D * D], Q[D * D], rd[D], W[D * D], g[D];
    double s1 = 0, s2 = 0, sm = exp(zn * zn / 4);
    for (int t = 0; t < T; t++) {
        if (sign_fix) {
            rj_proj_draw(RFJIT_PROJ_ORTHOGONAL, 1000 + (uint64_t)t, D, D, W, NULL);
        } else {
            for (int i = 0; i < D; i++)
                rj_normals(1000 + (uint64_t)t, RJ_STREAM_PROJ, (uint32_t)i, G + i * D, D);
            rj_qr(D, G, Q, rd);
            for (int r = 0; r < D; r++) {
                rj_normals(1000 + (uint64_t)t, RJ_STREAM_NORMS, (uint32_t)r, g, D);
                double n2 = 0;
                for (int j = 0; j < D; j++)
                    n2 += g[j] * g[j];
                for (int j = 0; j < D; j++)
                    W[r * D + j] = sqrt(n2) * Q[j * D + r];
            }
        }
        double est = 0;
        for (int r = 0; r < D; r++) { /* exp(w.x - |x|^2/2)^2 since x = y */
            double u = W[r * D] * x[0];
            est += exp(2 * u - x[0] * x[0]);
        }
        est /= D * sm;
        s1 += est;
        s2 += est * est;
    }
    *mean = s1 / T;
    *se = sqrt((s2 / T - *mean * *mean) / (T - 1));
}

Test(proj, c2_sign_fix_is_unbiased, .timeout = 60)
{
    double mean, se;
    c2_ratio(0.5, 1, 60000, &mean, &se);
    cr_log_info("C2 |z|=0.5 sign-fixed: %.4f +- %.4f", mean, se);
    cr_assert_leq(fabs(mean - 1), fmin(0.003, 5 * se), "ratio %.4f +- %.4f (seeds 1000..)", mean,
                  se);
    c2_ratio(1.0, 1, 240000, &mean, &se);
    cr_log_info("C2 |z|=1 sign-fixed: %.4f +- %.4f", mean, se);
    cr_assert_leq(fabs(mean - 1), 5 * se, "ratio %.4f +- %.4f (seeds 1000..)", mean, se);
}

Test(proj, c2_without_sign_fix_is_biased, .timeout = 60)
{
    double mean, se;
    c2_ratio(0.5, 0, 60000, &mean, &se);
    cr_log_info("C2 |z|=0.5 without fix: %.4f +- %.4f (spec: 0.951 +- 0.001)", mean, se);
    cr_assert_leq(fabs(mean - 0.951), 5 * se + 0.001, "ratio %.4f +- %.4f", mean, se);
}
