/* SPDX-License-Identifier: MIT */
/*
 * This file checks the estimate API (rfjit_plan_features, rfjit_plan_kernel) on the JIT
 * backend against the reference backend: same descriptor, so the same W and fit, for every
 * estimator with a feature map or kernel estimate x d x m x ISA, row counts that are not
 * multiples of any tile, a single row, B x H > 1 and a strided output;
 * max |JIT - reference| <= ref_tol max |reference| (the estimator's est.h ref_tol).
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "est/est.h"
#include "rfjit.h"
#include "slice_testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The bound the estimator documents for its kernels (est.h ref_tol). */
static double tol_of(const char *est)
{
    const rj_est_ops *e = rj_est_find(est);
    cr_assert_not_null(e, "%s", est);
    return e->ref_tol;
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

static rfjit_plan *plan_for(rfjit_ctx *c, const char *est, int d, int m, int backend)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = d;
    a.m = m;
    a.seed = 3;
    a.backend = backend;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s d=%d m=%d: %s", est, d, m,
                 rfjit_ctx_last_error(c));
    return p;
}

typedef struct sides {
    int64_t B, H, nx, ny;
    int d;
    float *x, *y;
    rfjit_tensor tx, ty;
} sides;

static void sides_init(sides *s, int64_t B, int64_t H, int64_t nx, int64_t ny, int d)
{
    *s = (sides){B, H, nx, ny, d, NULL, NULL, {0}, {0}};
    s->x = malloc((size_t)(B * H * nx * d) * sizeof(float));
    s->y = malloc((size_t)(B * H * ny * d) * sizeof(float));
    /* norms around 1 after the d^{-1/4}-free API: the regime the estimators are built for */
    tu_fill_normal(s->x, (size_t)(B * H * nx * d), 0.6 / sqrt(d), 21);
    tu_fill_normal(s->y, (size_t)(B * H * ny * d), 0.6 / sqrt(d), 22);
    s->tx = rfjit_tensor_contiguous(s->x, B, H, nx, d);
    s->ty = rfjit_tensor_contiguous(s->y, B, H, ny, d);
}

static void sides_free(sides *s)
{
    free(s->x);
    free(s->y);
}

static void compare_one(rfjit_ctx *c, const char *isa, const char *est, int d, int m,
                        const sides *s)
{
    rfjit_plan *pr = plan_for(c, est, d, m, RFJIT_BACKEND_REFERENCE);
    rfjit_plan *pj = plan_for(c, est, d, m, RFJIT_BACKEND_JIT);
    const int64_t M = rfjit_plan_feature_dim(pr);
    const double tol = tol_of(est);
    cr_assert_eq(M, rfjit_plan_feature_dim(pj));
    if (M > 0) {
        size_t nfx = (size_t)(s->B * s->H * s->nx * M), nfy = (size_t)(s->B * s->H * s->ny * M);
        float *fr = malloc((nfx + nfy) * sizeof(float)), *fj = malloc((nfx + nfy) * sizeof(float));
        rfjit_tensor rx = rfjit_tensor_contiguous(fr, s->B, s->H, s->nx, M);
        rfjit_tensor ry = rfjit_tensor_contiguous(fr + nfx, s->B, s->H, s->ny, M);
        rfjit_tensor jx = rfjit_tensor_contiguous(fj, s->B, s->H, s->nx, M);
        rfjit_tensor jy = rfjit_tensor_contiguous(fj + nfx, s->B, s->H, s->ny, M);
        cr_assert_eq(rfjit_plan_features(pr, &s->tx, &s->ty, &rx, &ry), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
        cr_assert_eq(rfjit_plan_features(pj, &s->tx, &s->ty, &jx, &jy), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
        double ex = rel_err(fj, fr, nfx), ey = rel_err(fj + nfx, fr + nfx, nfy);
        cr_expect(ex <= tol && ey <= tol,
                  "isa=%s %s d=%d m=%d nx=%lld ny=%lld features: x %.3g, y %.3g > %.0e (seed 21)",
                  isa, est, d, m, (long long)s->nx, (long long)s->ny, ex, ey, tol);
        free(fr);
        free(fj);
    }
    size_t nk = (size_t)(s->B * s->H * s->nx * s->ny);
    float *kr = malloc(nk * sizeof(float)), *kj = malloc(nk * sizeof(float));
    rfjit_tensor tr = rfjit_tensor_contiguous(kr, s->B, s->H, s->nx, s->ny);
    rfjit_tensor tj = rfjit_tensor_contiguous(kj, s->B, s->H, s->nx, s->ny);
    for (int kind = RFJIT_KERNEL_SOFTMAX; kind <= RFJIT_KERNEL_GAUSSIAN; kind++) {
        cr_assert_eq(rfjit_plan_kernel(pr, &s->tx, &s->ty, kind, &tr), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
        cr_assert_eq(rfjit_plan_kernel(pj, &s->tx, &s->ty, kind, &tj), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
        double e = rel_err(kj, kr, nk);
        cr_expect(e <= tol, "isa=%s %s d=%d m=%d nx=%lld ny=%lld kernel %d: %.3g > %.0e (seed 21)",
                  isa, est, d, m, (long long)s->nx, (long long)s->ny, kind, e, tol);
    }
    free(kr);
    free(kj);
    rfjit_plan_destroy(pr);
    rfjit_plan_destroy(pj);
}

/* rot: the ISA's number, so that each ISA's slice visits other sizes (slice_testutil.h) */
static void sweep(const char *isa, int rot)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.isa = isa;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static const int ds[3] = {16, 64, 128}, ms[3] = {16, 30, 100}; /* 30: padded rows */
    for (int di = 0; di < 3; di++) {
        sides s;
        sides_init(&s, 1, 2, 37, 29, ds[di]);
        for (int e = 0; rfjit_estimator_name(e); e++) {
            const char *est = rfjit_estimator_name(e);
            if (!strcmp(est, "eva") || !strcmp(est, "blocksparse"))
                continue; /* no feature map or kernel estimate: api_features tests say so */
            for (int mi = 0; mi < 3; mi++)
                if (tu_slice_keeps(e + 11 * rot, di, 3, mi, 3))
                    compare_one(c, isa ? isa : "native", est, ds[di], ms[mi], &s);
        }
        sides_free(&s);
    }
    rfjit_ctx_destroy(c);
}

Test(jit_estimate, native, .timeout = 600)
{
    sweep(NULL, 0);
}

Test(jit_estimate, generic, .timeout = 600)
{
    sweep("generic", 1);
}

/* One row each side, several slices, and a longer set across many tiles. */
Test(jit_estimate, shapes, .timeout = 300)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static const struct {
        int64_t B, H, nx, ny;
    } cs[] = {{1, 1, 1, 1}, {2, 3, 1, 5}, {1, 1, 300, 77}};
    const char *ests[] = {"exact", "positive", "trig", "hybrid", "saderf"};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        sides s;
        sides_init(&s, cs[i].B, cs[i].H, cs[i].nx, cs[i].ny, 32);
        for (int e = 0; e < 5; e++)
            compare_one(c, "native", ests[e], 32, 64, &s);
        sides_free(&s);
    }
    rfjit_ctx_destroy(c);
}

/* A strided kernel-matrix output (rows padded) holds the same values as a contiguous one. */
Test(jit_estimate, strided_out)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    sides s;
    sides_init(&s, 1, 2, 19, 23, 16);
    rfjit_plan *p = plan_for(c, "positive", 16, 32, RFJIT_BACKEND_JIT);
    float *k1 = calloc(2 * 19 * 23, sizeof(float)), *k2 = calloc(2 * 19 * 30, sizeof(float));
    rfjit_tensor t1 = rfjit_tensor_contiguous(k1, 1, 2, 19, 23);
    rfjit_tensor t2 = {k2, {1, 2, 19, 23}, {0, 19 * 30, 30, 1}};
    cr_assert_eq(rfjit_plan_kernel(p, &s.tx, &s.ty, RFJIT_KERNEL_SOFTMAX, &t1), RFJIT_OK);
    cr_assert_eq(rfjit_plan_kernel(p, &s.tx, &s.ty, RFJIT_KERNEL_SOFTMAX, &t2), RFJIT_OK);
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 19; i++)
            for (int j = 0; j < 23; j++)
                cr_assert_eq(k1[(h * 19 + i) * 23 + j], k2[(h * 19 + i) * 30 + j], "h=%d i=%d j=%d",
                             h, i, j);
    free(k1);
    free(k2);
    rfjit_plan_destroy(p);
    sides_free(&s);
    rfjit_ctx_destroy(c);
}
