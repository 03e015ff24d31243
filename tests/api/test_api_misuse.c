/* SPDX-License-Identifier: MIT */
/*
 * This file feeds every public entry point bad input (NULLs, bad descriptor sizes, invalid
 * sizes, mismatched shapes, overlapping outputs, non-finite values, unknown names) and checks
 * that each answers with its status and a message naming the problem, never a crash.
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <math.h>
#include <stddef.h>
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

TestSuite(api_misuse, .init = setup, .fini = teardown);

#define EXPECT_MSG(status, expected, needle)                                                   \
    do {                                                                                       \
        rfjit_status got_ = (status);                                                          \
        cr_assert_eq(got_, expected, "status %d (%s), expected %d; message: %s", got_,         \
                     rfjit_status_string(got_), expected, rfjit_ctx_last_error(ctx));          \
        cr_assert(strstr(rfjit_ctx_last_error(ctx), needle), "message '%s' lacks '%s'",        \
                  rfjit_ctx_last_error(ctx), needle);                                          \
    } while (0)

static rfjit_attn_desc desc_for(const char *est, int d, int m)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = d;
    a.m = m;
    a.seed = 7;
    return a;
}

Test(api_misuse, null_handles_and_destroy_null)
{
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "no context (NULL rfjit_ctx)");
    cr_assert_eq(rfjit_ctx_create(NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "rfjit_ctx_create: out is NULL");
    rfjit_ctx_destroy(NULL);
    rfjit_plan_destroy(NULL);
    rfjit_attn_desc a = desc_for("positive", 8, 4);
    rfjit_plan *p = (rfjit_plan *)&a;
    cr_assert_eq(rfjit_plan_create(NULL, &a, &p), RFJIT_E_INVALID_ARG);
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "rfjit_plan_create: ctx is NULL");
    EXPECT_MSG(rfjit_plan_create(ctx, NULL, &p), RFJIT_E_INVALID_ARG, "desc");
    cr_assert_null(p, "handle must be NULL after a failed create");
    EXPECT_MSG(rfjit_plan_create(ctx, &a, NULL), RFJIT_E_INVALID_ARG, "out");
    cr_assert_eq(rfjit_plan_execute(NULL, NULL, NULL, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "rfjit_plan_execute: plan is NULL");
    cr_assert_eq(rfjit_plan_describe(NULL, NULL, 0), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_plan_feature_dim(NULL), 0);
    cr_assert_eq(rfjit_info(NULL, 0, NULL, 0), RFJIT_E_INVALID_ARG);
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "rfjit_info: ctx is NULL");
    cr_assert_eq(rfjit_wisdom_export(NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_assert_str_eq(rfjit_ctx_last_error(NULL), "rfjit_wisdom_export: ctx is NULL");
}

Test(api_misuse, descriptor_sizes)
{
    struct {
        rfjit_ctx_desc d;
        char tail[16];
    } big;
    memset(&big, 0, sizeof big);
    rfjit_ctx_desc init = RFJIT_CTX_DESC_INIT;
    big.d = init;
    big.d.size = sizeof big;
    rfjit_ctx *c2 = NULL;
    cr_assert_eq(rfjit_ctx_create(&big.d, &c2), RFJIT_OK, "zero tail must pass");
    rfjit_ctx_destroy(c2);
    big.tail[3] = 1;
    cr_assert_eq(rfjit_ctx_create(&big.d, &c2), RFJIT_E_DESC_SIZE);
    cr_assert_null(c2);
    big.d.size = 2;
    cr_assert_eq(rfjit_ctx_create(&big.d, &c2), RFJIT_E_DESC_SIZE);

    rfjit_attn_desc a = desc_for("positive", 8, 4);
    a.size = 3;
    rfjit_plan *p = NULL;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_DESC_SIZE, "size");

    /* Found by tests/fuzz/fuzz_desc.c: a size ending inside the estimator pointer kept its
     * low half and took the default's (NULL) high half, and strcmp followed the result. */
    a = desc_for("positive", 8, 4);
    a.size = offsetof(rfjit_attn_desc, estimator) + 4;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_DESC_SIZE, "not a multiple of 8");
    cr_assert_null(p);
    /* A size that ends on a field (an older, shorter struct) still reads that prefix. */
    a = desc_for("positive", 8, 4);
    a.size = offsetof(rfjit_attn_desc, projection);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    /* and emission reads it the same way */
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    t.kind = RFJIT_EMIT_IR;
    void *ir = NULL;
    size_t n = 0;
    cr_assert_eq(rfjit_emit(ctx, &a, &t, &ir, &n, NULL, 0), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    rfjit_free(ir);
    rfjit_plan_destroy(p);
}

Test(api_misuse, invalid_descriptor_fields)
{
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc_for("no-such-estimator", 8, 4);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NO_ESTIMATOR, "no-such-estimator");
    a = desc_for("positive", 0, 4);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "d = 0");
    a = desc_for("positive", -3, 4);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "d = -3");
    a = desc_for("positive", 8, 0);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "m = 0");
    a = desc_for("trig", 8, -5);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "m = -5");
    a = desc_for("positive", 8, 4);
    a.dv = -1;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "dv");
    a = desc_for("positive", 8, 4);
    a.causal = 2;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "causal");
    a = desc_for("positive", 8, 4);
    a.projection = 9;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "projection");
    a = desc_for("positive", 8, 4);
    a.backend = 9;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "backend");
    a = desc_for("positive", 8, 4);
    a.projection = RFJIT_PROJ_USER;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "projection_matrix");
    float W[32];
    for (int i = 0; i < 32; i++)
        W[i] = 0.1f * (float)i;
    W[13] = NAN;
    a.projection_matrix = W;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NONFINITE, "projection_matrix");
    a = desc_for("hybrid", 8, 4);
    a.hybrid_signs = 0;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "%s",
                 rfjit_ctx_last_error(ctx));
    a = desc_for("eva", 8, 4);
    a.eva_chunks = 0;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "%s",
                 rfjit_ctx_last_error(ctx));
    a = desc_for("eva", 8, 4);
    a.eva_window = -1;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_assert_null(p);
}

/* eva_variant: an unknown name lists the known ones, another estimator is refused, and the
 * official variant needs a window. */
Test(api_misuse, eva_variant)
{
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc_for("eva", 8, 4);
    a.eva_variant = "offical";
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "principled, official");
    a = desc_for("positive", 8, 4);
    a.eva_variant = "official";
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NOT_APPLICABLE, "eva only");
    a.eva_variant = "principled";
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NOT_APPLICABLE, "eva only");
    a = desc_for("eva", 8, 4);
    a.eva_variant = "official";
    a.eva_window = 0;
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_INVALID_ARG, "window");
    cr_assert_null(p);
    /* a caller built before the field: its size ends there, the variant is principled (the
     * official one would refuse window 0) */
    a.size = offsetof(rfjit_attn_desc, eva_variant);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
    p = NULL;
    const char *ok[] = {NULL, "principled", "official"};
    for (int i = 0; i < 3; i++) {
        a = desc_for("eva", 8, 4);
        a.eva_variant = ok[i];
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
        p = NULL;
    }
    /* a decode step's one query against a longer history has no row in the official code */
    a = desc_for("eva", 8, 4);
    a.eva_variant = "official";
    a.causal = 1;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    char buf[1024];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, "estimator=eva eva_variant=official "), "%s", buf);
    rfjit_decode *dec = NULL;
    EXPECT_MSG(rfjit_decode_create(p, 1, 2, &dec), RFJIT_E_NOT_APPLICABLE, "principled variant");
    cr_assert_null(dec);
    rfjit_plan_destroy(p);
    p = NULL;
}

/* Buffers for a small problem: B = 1, H = 2, L = 5, d = 4, dv = 3. */
typedef struct prob {
    float q[40], k[40], v[30], o[30];
    rfjit_tensor tq, tk, tv, to;
} prob;

static void prob_init(prob *pr)
{
    for (int i = 0; i < 40; i++) {
        pr->q[i] = 0.1f * (float)((i * 7) % 11) - 0.5f;
        pr->k[i] = 0.1f * (float)((i * 5) % 13) - 0.6f;
    }
    for (int i = 0; i < 30; i++)
        pr->v[i] = (float)(i % 4);
    pr->tq = rfjit_tensor_contiguous(pr->q, 1, 2, 5, 4);
    pr->tk = rfjit_tensor_contiguous(pr->k, 1, 2, 5, 4);
    pr->tv = rfjit_tensor_contiguous(pr->v, 1, 2, 5, 3);
    pr->to = rfjit_tensor_contiguous(pr->o, 1, 2, 5, 3);
}

/* A causal plan of a fitted estimator without a calibration sample fits per decode slot; an
 * execute, which would fit on the whole sequence and leak later tokens into every row, is
 * refused with a message that names both ways out, and writes nothing. */
Test(api_misuse, causal_fit_without_calibration_only_decodes)
{
    rfjit_attn_desc a = desc_for("oprf", 4, 8);
    a.dv = 3;
    a.causal = 1;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    prob pr;
    prob_init(&pr);
    for (int i = 0; i < 30; i++)
        pr.o[i] = 7.0f;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &pr.to), RFJIT_E_NOT_APPLICABLE,
               "calib_q");
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "decode"), "%s", rfjit_ctx_last_error(ctx));
    for (int i = 0; i < 30; i++)
        cr_assert_eq(pr.o[i], 7.0f, "out[%d] written", i);
    rfjit_decode *st = NULL;
    cr_assert_eq(rfjit_decode_create(p, 1, 2, &st), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    rfjit_tensor q1 = {pr.q, {1, 2, 1, 4}, {40, 20, 4, 1}},
                 k1 = {pr.k, {1, 2, 1, 4}, {40, 20, 4, 1}};
    rfjit_tensor v1 = {pr.v, {1, 2, 1, 3}, {30, 15, 3, 1}},
                 o1 = {pr.o, {1, 2, 1, 3}, {30, 15, 3, 1}};
    EXPECT_MSG(rfjit_decode_step(st, &q1, &k1, &v1, &o1), RFJIT_E_STATE, "prefill");
    cr_assert_eq(rfjit_decode_position(st), 0);
    rfjit_decode_destroy(st);
    rfjit_plan_destroy(p);
}

Test(api_misuse, execute_bad_views)
{
    rfjit_attn_desc a = desc_for("positive", 4, 8);
    a.dv = 3;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    prob pr;
    prob_init(&pr);
    cr_assert_eq(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &pr.to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));

    EXPECT_MSG(rfjit_plan_execute(p, NULL, &pr.tk, &pr.tv, &pr.to), RFJIT_E_INVALID_ARG, "q");
    rfjit_tensor t = pr.tq;
    t.data = NULL;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_INVALID_ARG, "NULL");
    t = pr.tq;
    t.shape[3] = 3;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_SHAPE, "d = 4");
    t = pr.tq;
    t.shape[2] = 0;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_SHAPE, "< 1");
    t = pr.tq;
    t.shape[1] = 1;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_SHAPE, "heads");
    t = pr.tv;
    t.shape[2] = 4;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &t, &pr.to), RFJIT_E_SHAPE, "lengths");
    t = pr.tq;
    t.stride[2] = -4;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_STRIDE, "negative");
    t = pr.to;
    t.stride[2] = 0;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &t), RFJIT_E_STRIDE, "overlap");
    t = pr.to;
    t.data = pr.v;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &t), RFJIT_E_ALIAS, "overlaps v");
    t = pr.tq;
    t.stride[2] = INT64_MAX / 2;
    EXPECT_MSG(rfjit_plan_execute(p, &t, &pr.tk, &pr.tv, &pr.to), RFJIT_E_TOO_LARGE, "overflow");
    pr.q[17] = NAN;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &pr.to), RFJIT_E_NONFINITE, "q");
    pr.q[17] = 0;
    pr.v[29] = INFINITY;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &pr.tk, &pr.tv, &pr.to), RFJIT_E_NONFINITE, "v");
    rfjit_plan_destroy(p);

    a.causal = 1;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    prob_init(&pr);
    /* bottom-right aligned causal attention takes fewer queries than keys, never more */
    t = pr.tk;
    t.shape[2] = 4;
    rfjit_tensor tv = pr.tv;
    tv.shape[2] = 4;
    EXPECT_MSG(rfjit_plan_execute(p, &pr.tq, &t, &tv, &pr.to), RFJIT_E_SHAPE, "causal");
    rfjit_plan_destroy(p);
}

Test(api_misuse, features_kernel_fit_info)
{
    prob pr;
    prob_init(&pr);
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc_for("exact", 4, 8);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    float phi[80];
    rfjit_tensor tphi = rfjit_tensor_contiguous(phi, 1, 2, 5, 8);
    EXPECT_MSG(rfjit_plan_features(p, &pr.tq, NULL, &tphi, NULL), RFJIT_E_NOT_APPLICABLE,
               "exact");
    float K[50];
    rfjit_tensor tK = rfjit_tensor_contiguous(K, 1, 2, 5, 5);
    EXPECT_MSG(rfjit_plan_kernel(p, &pr.tq, &pr.tk, 7, &tK), RFJIT_E_INVALID_ARG, "kind");
    cr_assert_eq(rfjit_plan_kernel(p, &pr.tq, &pr.tk, RFJIT_KERNEL_SOFTMAX, &tK), RFJIT_OK);
    rfjit_tensor bad = rfjit_tensor_contiguous(K, 1, 2, 5, 4);
    EXPECT_MSG(rfjit_plan_kernel(p, &pr.tq, &pr.tk, RFJIT_KERNEL_SOFTMAX, &bad), RFJIT_E_SHAPE,
               "shape");
    rfjit_plan_destroy(p);

    a = desc_for("eva", 4, 8);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    EXPECT_MSG(rfjit_plan_kernel(p, &pr.tq, &pr.tk, RFJIT_KERNEL_SOFTMAX, &tK),
               RFJIT_E_NOT_APPLICABLE, "eva");
    rfjit_plan_destroy(p);

    a = desc_for("positive", 4, 8);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    EXPECT_MSG(rfjit_plan_features(p, NULL, NULL, NULL, NULL), RFJIT_E_INVALID_ARG, "output");
    EXPECT_MSG(rfjit_plan_features(p, NULL, NULL, &tphi, NULL), RFJIT_E_INVALID_ARG, "input");
    EXPECT_MSG(rfjit_plan_features(p, &pr.tq, NULL, &pr.tq, NULL), RFJIT_E_SHAPE, "phi_x");
    rfjit_plan_destroy(p);

    rfjit_fit_result r;
    rfjit_tensor q1 = rfjit_tensor_contiguous(pr.q, 1, 1, 10, 4);
    EXPECT_MSG(rfjit_fit(ctx, "positive", &q1, &q1, &r, NULL, 0), RFJIT_E_NOT_APPLICABLE,
               "positive");
    EXPECT_MSG(rfjit_fit(ctx, "bogus", &q1, &q1, &r, NULL, 0), RFJIT_E_NO_ESTIMATOR, "bogus");
    EXPECT_MSG(rfjit_fit(ctx, "oprf", &pr.tq, &pr.tk, &r, NULL, 0), RFJIT_E_SHAPE, "one");
    EXPECT_MSG(rfjit_fit(ctx, "oprf", NULL, &q1, &r, NULL, 0), RFJIT_E_INVALID_ARG, "required");
    char small[8];
    EXPECT_MSG(rfjit_fit(ctx, "oprf", &q1, &q1, &r, small, sizeof small), RFJIT_E_INVALID_ARG,
               "small");
    EXPECT_MSG(rfjit_info(ctx, 0, small, sizeof small), RFJIT_E_INVALID_ARG, "too small");
    char buf[8192];
    cr_assert_eq(rfjit_info(ctx, 1, buf, sizeof buf), RFJIT_OK);
    cr_assert(strstr(buf, "\"cpu\":") && strstr(buf, "\"llvm_version\":\"19."), "%s", buf);
}

Test(api_misuse, status_strings)
{
    cr_assert_str_eq(rfjit_status_string(RFJIT_OK), "ok");
    cr_assert_str_eq(rfjit_status_string((rfjit_status)77), "unknown status");
    cr_assert_str_eq(rfjit_status_string(RFJIT_E_NONFINITE), "input contains NaN or Inf");
    cr_assert_eq(rfjit_version_number(), RFJIT_VERSION_NUMBER);
    cr_assert_eq(rfjit_version(), RFJIT_VERSION);
    cr_assert_str_eq(rfjit_version_string(), RFJIT_VERSION_STRING);
    cr_assert_str_eq(rfjit_estimator_name(0), "exact");
    cr_assert_null(rfjit_estimator_name(-1));
    cr_assert_null(rfjit_estimator_name(11));
}
