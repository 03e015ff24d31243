/* SPDX-License-Identifier: MIT */
/*
 * This file checks the public entry points end to end on every registered estimator:
 * outputs finite (also for |q|, |k| ~ 1e3), strided and contiguous views giving identical
 * bits, (batch, head) slices independent, features and kernel matrices consistent with each
 * other and with the exact kernels, and calibrated causal plans for fitted estimators.
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(api_exec, .init = setup, .fini = teardown);


static rfjit_attn_desc desc_for(const char *est, int d, int dv, int m, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = d;
    a.dv = dv;
    a.m = m;
    a.causal = causal;
    a.seed = 11;
    a.hybrid_signs = 2;
    a.eva_window = 4;
    a.eva_chunks = 3;
    return a;
}

static int is_fitted(const char *name)
{
    return !strcmp(name, "oprf") || !strcmp(name, "saderf") || !strcmp(name, "sderf") ||
           !strcmp(name, "aderf");
}

/* Run estimator `name` on (B, H, L, d) data with raw scale `scale`; out must be finite. */
static void run_all(double scale, int causal)
{
    enum { B = 2, H = 2, L = 13, D = 8, DV = 5 };
    static float q[B * H * L * D], k[B * H * L * D], v[B * H * L * DV], o[B * H * L * DV];
    tu_fill_normal(q, sizeof q / 4, scale, 1);
    tu_fill_normal(k, sizeof k / 4, scale, 2);
    tu_fill_normal(v, sizeof v / 4, 1.0, 3);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, B, H, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(o, B, H, L, DV);
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        rfjit_attn_desc a = desc_for(name, D, DV, 16, causal);
        if (causal && is_fitted(name)) {
            a.calib_q = &tq;
            a.calib_k = &tk;
        }
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", name,
                     rfjit_ctx_last_error(ctx));
        memset(o, 0xff, sizeof o); /* NaN pattern: every element must be written */
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s: %s", name,
                     rfjit_ctx_last_error(ctx));
        for (size_t i = 0; i < sizeof o / 4; i++)
            cr_assert(isfinite(o[i]), "%s causal=%d scale=%g: out[%zu] = %g", name, causal,
                      scale, i, o[i]);
        rfjit_plan_destroy(p);
    }
}

Test(api_exec, every_estimator_finite_bidirectional)
{
    run_all(1.0, 0);
}

Test(api_exec, every_estimator_finite_causal)
{
    run_all(1.0, 1);
}

Test(api_exec, every_estimator_finite_huge_norms)
{
    run_all(1e3 / sqrt(8.0), 0); /* |q| ~ 1e3 */
    run_all(1e3 / sqrt(8.0), 1);
}

/* Strided views (every other float, heads interleaved) give the same bits as contiguous. */
Test(api_exec, strided_equals_contiguous)
{
    enum { B = 1, H = 3, L = 9, D = 6 };
    float q[B * H * L * D], k[B * H * L * D], v[B * H * L * D], o1[B * H * L * D];
    float qs[2 * B * H * L * D], o2[2 * B * H * L * D];
    tu_fill_normal(q, sizeof q / 4, 1, 5);
    tu_fill_normal(k, sizeof k / 4, 1, 6);
    tu_fill_normal(v, sizeof v / 4, 1, 7);
    /* qs holds q with layout (b, l, h, d) and stride 2 in the last dimension */
    for (int h = 0; h < H; h++)
        for (int l = 0; l < L; l++)
            for (int c = 0; c < D; c++)
                qs[2 * ((l * H + h) * D + c)] = q[(h * L + l) * D + c];
    rfjit_tensor tq = rfjit_tensor_contiguous(q, B, H, L, D);
    rfjit_tensor tqs = {qs, {B, H, L, D}, {0, 2 * D, 2 * H * D, 2}};
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, D);
    rfjit_tensor to1 = rfjit_tensor_contiguous(o1, B, H, L, D);
    rfjit_tensor to2 = {o2, {B, H, L, D}, {0, 2 * L * D, 2 * D, 2}};
    for (int e = 0; rfjit_estimator_name(e); e++) {
        rfjit_attn_desc a = desc_for(rfjit_estimator_name(e), D, D, 8, 0);
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to1), RFJIT_OK);
        cr_assert_eq(rfjit_plan_execute(p, &tqs, &tk, &tv, &to2), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(ctx));
        for (int h = 0; h < H; h++)
            for (int l = 0; l < L; l++)
                for (int c = 0; c < D; c++)
                    cr_assert_eq(memcmp(&o1[(h * L + l) * D + c], &o2[2 * ((h * L + l) * D + c)],
                                        4),
                                 0, "%s: strided output differs at (%d, %d, %d)",
                                 rfjit_estimator_name(e), h, l, c);
        rfjit_plan_destroy(p);
    }
}

/* Each (batch, head) depends only on its own slice: running one head alone gives its bits. */
Test(api_exec, heads_are_independent)
{
    enum { H = 3, L = 7, D = 4 };
    float q[H * L * D], k[H * L * D], v[H * L * D], o[H * L * D], o1[L * D];
    tu_fill_normal(q, sizeof q / 4, 1, 8);
    tu_fill_normal(k, sizeof k / 4, 1, 9);
    tu_fill_normal(v, sizeof v / 4, 1, 10);
    for (int e = 0; rfjit_estimator_name(e); e++) {
        rfjit_attn_desc a = desc_for(rfjit_estimator_name(e), D, D, 8, 0);
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, H, L, D);
        rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, H, L, D);
        rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, H, L, D);
        rfjit_tensor to = rfjit_tensor_contiguous(o, 1, H, L, D);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
        rfjit_tensor q1 = rfjit_tensor_contiguous(q + L * D, 1, 1, L, D);
        rfjit_tensor k1 = rfjit_tensor_contiguous(k + L * D, 1, 1, L, D);
        rfjit_tensor v1 = rfjit_tensor_contiguous(v + L * D, 1, 1, L, D);
        rfjit_tensor t1 = rfjit_tensor_contiguous(o1, 1, 1, L, D);
        cr_assert_eq(rfjit_plan_execute(p, &q1, &k1, &v1, &t1), RFJIT_OK);
        cr_assert_eq(memcmp(o1, o + L * D, sizeof o1), 0, "%s: head 1 differs alone",
                     rfjit_estimator_name(e));
        rfjit_plan_destroy(p);
    }
}

/* phi_x phi_y^T equals the kernel matrix; the Gaussian kernel is the softmax kernel times
 * e^{-(|x|^2+|y|^2)/2}; exact gives exp(x.y) itself. */
Test(api_exec, features_match_kernel)
{
    enum { L = 6, D = 5 };
    float x[L * D], y[L * D], Ks[L * L], Kg[L * L], Ke[L * L], Kge[L * L];
    tu_fill_normal(x, L * D, 0.4, 12);
    tu_fill_normal(y, L * D, 0.4, 13);
    rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, L, D);
    rfjit_tensor ty = rfjit_tensor_contiguous(y, 1, 1, L, D);
    rfjit_tensor tks = rfjit_tensor_contiguous(Ks, 1, 1, L, L);
    rfjit_tensor tkg = rfjit_tensor_contiguous(Kg, 1, 1, L, L);
    rfjit_plan *pe = NULL;
    rfjit_attn_desc ae = desc_for("exact", D, D, 1, 0);
    cr_assert_eq(rfjit_plan_create(ctx, &ae, &pe), RFJIT_OK);
    rfjit_tensor tke = rfjit_tensor_contiguous(Ke, 1, 1, L, L);
    rfjit_tensor tkge = rfjit_tensor_contiguous(Kge, 1, 1, L, L);
    cr_assert_eq(rfjit_plan_kernel(pe, &tx, &ty, RFJIT_KERNEL_SOFTMAX, &tke), RFJIT_OK);
    cr_assert_eq(rfjit_plan_kernel(pe, &tx, &ty, RFJIT_KERNEL_GAUSSIAN, &tkge), RFJIT_OK);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            double dot = 0, dist = 0;
            for (int c = 0; c < D; c++) {
                dot += (double)x[i * D + c] * y[j * D + c];
                dist += ((double)x[i * D + c] - y[j * D + c]) * ((double)x[i * D + c] - y[j * D + c]);
            }
            cr_assert_float_eq(Ke[i * L + j], exp(dot), 1e-6 * exp(dot));
            cr_assert_float_eq(Kge[i * L + j], exp(-dist / 2), 1e-6);
        }
    rfjit_plan_destroy(pe);

    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        if (!strcmp(name, "exact") || !strcmp(name, "eva") || !strcmp(name, "blocksparse"))
            continue;
        rfjit_attn_desc a = desc_for(name, D, D, 4, 0);
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        int64_t M = rfjit_plan_feature_dim(p);
        cr_assert_gt(M, 0, "%s", name);
        float *fx = malloc(sizeof(float) * L * M), *fy = malloc(sizeof(float) * L * M);
        rfjit_tensor tfx = rfjit_tensor_contiguous(fx, 1, 1, L, M);
        rfjit_tensor tfy = rfjit_tensor_contiguous(fy, 1, 1, L, M);
        cr_assert_eq(rfjit_plan_features(p, &tx, &ty, &tfx, &tfy), RFJIT_OK, "%s: %s", name,
                     rfjit_ctx_last_error(ctx));
        cr_assert_eq(rfjit_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_SOFTMAX, &tks), RFJIT_OK);
        cr_assert_eq(rfjit_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_GAUSSIAN, &tkg), RFJIT_OK);
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                double dot = 0, sum = 0, nx = 0, ny = 0;
                for (int64_t r = 0; r < M; r++) {
                    dot += (double)fx[i * M + r] * fy[j * M + r];
                    sum += fabs((double)fx[i * M + r] * fy[j * M + r]);
                }
                for (int c = 0; c < D; c++) {
                    nx += (double)x[i * D + c] * x[i * D + c];
                    ny += (double)y[j * D + c] * y[j * D + c];
                }
                /* float features: the dot agrees to float rounding of the summands */
                cr_assert(fabs(dot - Ks[i * L + j]) <= 1e-5 * sum + 1e-30,
                          "%s (%d, %d): features %g vs kernel %g", name, i, j, dot,
                          Ks[i * L + j]);
                double g = Ks[i * L + j] * exp(-(nx + ny) / 2);
                cr_assert(fabs(g - Kg[i * L + j]) <= 1e-5 * fabs(g) + 1e-6 * sum,
                          "%s: gaussian %g vs %g", name, Kg[i * L + j], g);
            }
        free(fx);
        free(fy);
        rfjit_plan_destroy(p);
    }
}

/* A causal plan of a fitted estimator with a calibration sample is causal: changing the
 * future leaves earlier outputs bitwise unchanged. */
Test(api_exec, calibrated_causal_prefix)
{
    enum { L = 12, D = 6 };
    float q[L * D], k[L * D], v[L * D], o1[L * D], o2[L * D];
    tu_fill_normal(q, L * D, 1, 20);
    tu_fill_normal(k, L * D, 1, 21);
    tu_fill_normal(v, L * D, 1, 22);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor t1 = rfjit_tensor_contiguous(o1, 1, 1, L, D);
    rfjit_tensor t2 = rfjit_tensor_contiguous(o2, 1, 1, L, D);
    float cq[L * D], ck[L * D];
    tu_fill_normal(cq, L * D, 1, 23);
    tu_fill_normal(ck, L * D, 1, 24);
    rfjit_tensor tcq = rfjit_tensor_contiguous(cq, 1, 1, L, D);
    rfjit_tensor tck = rfjit_tensor_contiguous(ck, 1, 1, L, D);
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        rfjit_attn_desc a = desc_for(name, D, D, 8, 1);
        a.calib_q = &tcq;
        a.calib_k = &tck;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", name,
                     rfjit_ctx_last_error(ctx));
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &t1), RFJIT_OK);
        float keep[3] = {q[9 * D], k[10 * D], v[11 * D]};
        q[9 * D] += 3;
        k[10 * D] -= 2;
        v[11 * D] *= 5;
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &t2), RFJIT_OK);
        q[9 * D] = keep[0];
        k[10 * D] = keep[1];
        v[11 * D] = keep[2];
        cr_assert_eq(memcmp(o1, o2, 9 * D * sizeof(float)), 0, "%s: future changed the past",
                     name);
        rfjit_plan_destroy(p);
    }
}

Test(api_exec, describe)
{
    rfjit_attn_desc a = desc_for("positive", 8, 8, 16, 1);
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    char buf[256];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_assert(strstr(buf, "estimator=positive") && strstr(buf, "m=16") &&
                  strstr(buf, "causal=1") && strstr(buf, "projection=orthogonal"),
              "%s", buf);
    cr_assert_eq(rfjit_plan_describe(p, buf, 10), RFJIT_E_INVALID_ARG);
    rfjit_plan_destroy(p);
}
