/* SPDX-License-Identifier: MIT */
/*
 * This file checks the NaN/Inf policy of rfjit.h at every entry point that reads floats:
 * a NaN, +Inf or -Inf anywhere in any input is refused with RFJIT_E_NONFINITE, the message
 * names the tensor, and no output is written. Outputs that would overflow float are
 * RFJIT_E_RANGE (features, kernel estimates).
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 20, D = 8, M = 16 };

static rfjit_ctx *ctx;
static float q[L * D], k[L * D], v[L * D], out[L * 2 * M]; /* >= L * L, trig's L x 2m */
static const float bad_values[3] = {NAN, INFINITY, -INFINITY};

/* N(0, 0.25) entries from the suites' shared generator */
static void fill(float *x, int n, uint64_t seed)
{
    tu_fill_normal(x, (size_t)n, 0.25, seed);
}

static void setup(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    fill(q, L * D, 1);
    fill(k, L * D, 2);
    fill(v, L * D, 3);
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(nonfinite, .init = setup, .fini = teardown);

static rfjit_plan *plan(const char *est, int backend, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.estimator = est;
    a.backend = backend;
    a.causal = causal;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    return p;
}

/* The call refused the poisoned input by name and left out (n floats of 7) alone. */
static void expect_refused(rfjit_status st, const char *what, const char *name, int n)
{
    cr_expect_eq(st, RFJIT_E_NONFINITE, "%s with a bad %s: %s (%s)", what, name,
                 rfjit_status_string(st), rfjit_ctx_last_error(ctx));
    char needle[32];
    snprintf(needle, sizeof needle, "%s", name);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), needle) != NULL, "%s: message '%s' lacks '%s'",
              what, rfjit_ctx_last_error(ctx), needle);
    for (int i = 0; i < n; i++)
        if (out[i] != 7.0f) {
            cr_expect_fail("%s with a bad %s wrote out[%d] = %g", what, name, i, out[i]);
            break;
        }
}

/* Run the statements after (arr, n) with one element of arr poisoned, for each bad value at
 * its first, a middle and its last element; the element is restored after each run. */
#define POISONED(arr, n, ...)                                                                    \
    for (int bv_ = 0; bv_ < 3; bv_++)                                                            \
        for (int at_ = 0; at_ < 3; at_++) {                                                      \
            float *slot_ = &(arr)[at_ == 0 ? 0 : at_ == 1 ? (n) / 2 : (n) - 1];                  \
            const float saved_ = *slot_;                                                         \
            *slot_ = bad_values[bv_];                                                            \
            __VA_ARGS__                                                                          \
            *slot_ = saved_;                                                                     \
        }

static void reset_out(void)
{
    for (int i = 0; i < L * 2 * M; i++)
        out[i] = 7.0f;
}

Test(nonfinite, execute_on_every_backend_and_template)
{
    static const struct {
        const char *est;
        int backend, causal;
    } cases[] = {{"positive", RFJIT_BACKEND_JIT, 0}, {"positive", RFJIT_BACKEND_JIT, 1},
                 {"exact", RFJIT_BACKEND_JIT, 0},    {"trig", RFJIT_BACKEND_REFERENCE, 0},
                 {"eva", RFJIT_BACKEND_AUTO, 1},     {"hybrid", RFJIT_BACKEND_AUTO, 0}};
    float *inputs[3] = {q, k, v};
    const char *names[3] = {"q", "k", "v"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rfjit_plan *p = plan(cases[c].est, cases[c].backend, cases[c].causal);
        rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
        rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
        rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
        rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, L, D);
        for (int t = 0; t < 3; t++)
            POISONED(inputs[t], L * D,
                reset_out();
                expect_refused(rfjit_plan_execute(p, &tq, &tk, &tv, &to), cases[c].est,
                               names[t], L * D);
            )
        reset_out();
        cr_expect_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s clean: %s",
                     cases[c].est, rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
    }
}

/* A call large enough to be screened on the pool (runtime/call.c: two heads of 1024 tokens,
 * d = 64, on two threads) names the same first bad element as the serial search would: a bad
 * value at the start, middle or end of each tensor and head, and two at once (the earlier in
 * q, k, v and head order is named). */
Test(nonfinite, pooled_screen_names_the_first_bad_element, .timeout = 120)
{
    enum { PL = 1024, PD = 64, PH = 2, PN = PH * PL * PD };
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.threads = 2;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = PD;
    a.estimator = "exact";
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    float *x[3], *o = calloc(PN, sizeof(float));
    for (int t = 0; t < 3; t++) {
        x[t] = malloc(PN * sizeof(float));
        tu_fill_normal(x[t], PN, 0.25, 10 + (uint64_t)t);
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(x[0], 1, PH, PL, PD);
    rfjit_tensor tk = rfjit_tensor_contiguous(x[1], 1, PH, PL, PD);
    rfjit_tensor tv = rfjit_tensor_contiguous(x[2], 1, PH, PL, PD);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, PH, PL, PD);
    static const char *const names[3] = {"q", "k", "v"};
    const int at[3] = {0, PN / 2 + 3 * PD + 5, PN - 1};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 3; i++) {
            const float saved = x[t][at[i]];
            x[t][at[i]] = bad_values[i];
            /* a second bad value after it, the last element of v: the first is named */
            float *later = &x[2][PN - 1];
            const float later_saved = *later;
            if (later != &x[t][at[i]])
                *later = NAN;
            cr_expect_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_E_NONFINITE);
            char want[96];
            const int e = at[i], h = e / (PL * PD), l = e / PD % PL, col = e % PD;
            snprintf(want, sizeof want, "tensor %s: non-finite value at (0, %d, %d, %d)", names[t],
                     h, l, col);
            cr_expect(strstr(rfjit_ctx_last_error(c), want) != NULL, "got '%s', want '%s'",
                      rfjit_ctx_last_error(c), want);
            *later = later_saved;
            x[t][at[i]] = saved;
        }
    cr_expect_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    for (int t = 0; t < 3; t++)
        free(x[t]);
    free(o);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
}

Test(nonfinite, decode_step)
{
    rfjit_plan *p = plan("positive", RFJIT_BACKEND_JIT, 1);
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create(p, 1, 1, &s), RFJIT_OK);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, 1, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, 1, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, 1, D);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, 1, D);
    float *inputs[3] = {q, k, v};
    const char *names[3] = {"q", "k", "v"};
    for (int t = 0; t < 3; t++)
        POISONED(inputs[t], D,
            reset_out();
            expect_refused(rfjit_decode_step(s, &tq, &tk, &tv, &to), "decode", names[t], D);
            cr_expect_eq(rfjit_decode_position(s), 0, "a refused step advanced the position");
        )
    cr_expect_eq(rfjit_decode_step(s, &tq, &tk, &tv, &to), RFJIT_OK);
    rfjit_decode_destroy(s);
    rfjit_plan_destroy(p);
}

Test(nonfinite, features_kernel_fit)
{
    rfjit_plan *p = plan("positive", RFJIT_BACKEND_JIT, 0);
    rfjit_tensor tx = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor ty = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor phi = rfjit_tensor_contiguous(out, 1, 1, L, M);
    rfjit_tensor K = rfjit_tensor_contiguous(out, 1, 1, L, L);
    float *inputs[2] = {q, k};
    const char *names[2] = {"x", "y"};
    for (int t = 0; t < 2; t++)
        POISONED(inputs[t], L * D,
            reset_out();
            expect_refused(rfjit_plan_features(p, &tx, t ? &ty : NULL, t ? NULL : &phi,
                                               t ? &phi : NULL),
                           "features", names[t], L * M);
            reset_out();
            expect_refused(rfjit_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_GAUSSIAN, &K), "kernel",
                           names[t], L * L);
        )
    rfjit_fit_result r;
    const char *fit_names[2] = {"q", "k"};
    for (int t = 0; t < 2; t++)
        POISONED(inputs[t], L * D,
            const rfjit_status st = rfjit_fit(ctx, "oprf", &tx, &ty, &r, NULL, 0);
            cr_expect_eq(st, RFJIT_E_NONFINITE, "fit with a bad %s: %s", fit_names[t],
                         rfjit_status_string(st));
        )
    rfjit_plan_destroy(p);
}

/* Finite inputs whose features overflow float (trig's e^{|x|^2 / 2} at |x| ~ 113; positive
 * features e^{w.x - |x|^2 / 2} underflow instead): a status, not a silent Inf. */
Test(nonfinite, features_that_overflow_are_a_range_error)
{
    rfjit_plan *p = plan("trig", RFJIT_BACKEND_JIT, 0);
    static float big[L * D];
    for (int i = 0; i < L * D; i++)
        big[i] = 40.0f * q[i] / fabsf(q[i] + 1e-3f);
    rfjit_tensor tx = rfjit_tensor_contiguous(big, 1, 1, L, D);
    rfjit_tensor phi = rfjit_tensor_contiguous(out, 1, 1, L, rfjit_plan_feature_dim(p));
    const rfjit_status st = rfjit_plan_features(p, &tx, NULL, &phi, NULL);
    cr_expect_eq(st, RFJIT_E_RANGE, "features of |x| ~ 113: %s (%s)", rfjit_status_string(st),
                 rfjit_ctx_last_error(ctx));
    const char *m = rfjit_ctx_last_error(ctx);
    cr_expect(strstr(m, "features overflow float: phi_x at (b, h, i, r) = (0, 0, ") &&
                  strstr(m, "past FLT_MAX"),
              "the message does not name the entry: %s", m);
    rfjit_plan_destroy(p);
}

static rfjit_plan *plan_d1(const char *est, int backend)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 1;
    a.m = M;
    a.estimator = est;
    a.backend = backend;
    a.seed = 3;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    return p;
}

/* exp(x y) for d = 1 just under FLT_MAX = e^88.72 is a number, just over it RFJIT_E_RANGE
 * naming the entry, on both backends: the JIT's exp saturates at e^88.3 and used to return
 * that (2.229e38) with RFJIT_OK. */
Test(nonfinite, exact_kernel_at_the_overflow_edge)
{
    for (int backend = RFJIT_BACKEND_REFERENCE; backend <= RFJIT_BACKEND_JIT; backend++) {
        rfjit_plan *p = plan_d1("exact", backend);
        float x[2] = {1.0f, sqrtf(88.5f)}, K[4];
        rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, 2, 1);
        rfjit_tensor tk = rfjit_tensor_contiguous(K, 1, 1, 2, 2);
        rfjit_status st = rfjit_plan_kernel(p, &tx, &tx, RFJIT_KERNEL_SOFTMAX, &tk);
        cr_assert_eq(st, RFJIT_OK, "backend %d: %s", backend, rfjit_ctx_last_error(ctx));
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                const double want = exp((double)x[i] * (double)x[j]);
                cr_expect(fabs(K[i * 2 + j] - want) <= 1e-5 * want,
                          "backend %d: K[%d][%d] = %g, exp(%g) = %g", backend, i, j,
                          K[i * 2 + j], (double)x[i] * x[j], want);
            }
        x[1] = sqrtf(89.0f);
        st = rfjit_plan_kernel(p, &tx, &tx, RFJIT_KERNEL_SOFTMAX, &tk);
        const char *m = rfjit_ctx_last_error(ctx);
        cr_expect_eq(st, RFJIT_E_RANGE, "backend %d, e^89: %s (%s)", backend,
                     rfjit_status_string(st), m);
        cr_expect(strstr(m, "(b, h, i, j) = (0, 0, 1, 1)") && strstr(m, "past FLT_MAX"),
                  "backend %d: %s", backend, m);
        cr_expect(fabsf(K[0] - expf(1.0f)) < 1e-5f && isinf(K[3]),
                  "backend %d: the other entries are written, Inf where it overflows: %g %g",
                  backend, K[0], K[3]);
        rfjit_plan_destroy(p);
    }
}

/* Estimates of e^144 (x = y = 12, d = 1) from each family: the JIT answers what the double
 * reference answers, a number or RFJIT_E_RANGE, never a saturated float. */
Test(nonfinite, estimated_kernel_at_the_overflow_edge)
{
    static const char *const ests[] = {"trig", "positive", "hyperbolic", "oprf", "hybrid"};
    for (size_t e = 0; e < sizeof ests / sizeof *ests; e++) {
        float x[2] = {0.5f, 12.0f}, K[2][4];
        rfjit_status st[2];
        char msg[2][512];
        rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, 2, 1);
        for (int b = 0; b < 2; b++) {
            rfjit_plan *p = plan_d1(ests[e], b ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE);
            rfjit_tensor tk = rfjit_tensor_contiguous(K[b], 1, 1, 2, 2);
            st[b] = rfjit_plan_kernel(p, &tx, &tx, RFJIT_KERNEL_SOFTMAX, &tk);
            snprintf(msg[b], sizeof msg[b], "%s", rfjit_ctx_last_error(ctx));
            rfjit_plan_destroy(p);
        }
        cr_expect_eq(st[1], st[0], "%s: JIT %s (%s), reference %s (%s)", ests[e],
                     rfjit_status_string(st[1]), msg[1], rfjit_status_string(st[0]), msg[0]);
        for (int i = 0; st[0] == RFJIT_OK && i < 4; i++)
            cr_expect(fabsf(K[1][i] - K[0][i]) <= 1e-3f * fmaxf(fabsf(K[0][i]), 1e-30f),
                      "%s: K[%d] JIT %g, reference %g", ests[e], i, K[1][i], K[0][i]);
        if (st[0] == RFJIT_E_RANGE)
            cr_expect(strstr(msg[1], "past FLT_MAX"), "%s: %s", ests[e], msg[1]);
    }
}

Test(nonfinite, plan_creation_and_tuning_inputs)
{
    static float W[M * D];
    fill(W, M * D, 9);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    float *inputs[3] = {q, k, W};
    const char *names[3] = {"calib", "calib", "projection_matrix"};
    for (int t = 0; t < 3; t++)
        POISONED(inputs[t], t == 2 ? M * D : L * D,
            rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
            a.d = D;
            a.m = M;
            a.estimator = t == 2 ? "positive" : "oprf";
            a.calib_q = t == 2 ? NULL : &tq;
            a.calib_k = t == 2 ? NULL : &tk;
            a.projection = t == 2 ? RFJIT_PROJ_USER : RFJIT_PROJ_ORTHOGONAL;
            a.projection_matrix = t == 2 ? W : NULL;
            rfjit_plan *p = NULL;
            const rfjit_status st = rfjit_plan_create(ctx, &a, &p);
            cr_expect_eq(st, RFJIT_E_NONFINITE, "plan with a bad %s: %s", names[t],
                         rfjit_status_string(st));
            cr_expect_null(p);
            rfjit_plan_destroy(p);
        )
    float *calib[3] = {q, k, v};
    for (int t = 0; t < 3; t++)
        POISONED(calib[t], L * D,
            rfjit_tune_desc td = RFJIT_TUNE_DESC_INIT;
            td.d = D;
            td.L = 256;
            td.patience = RFJIT_PATIENCE_ESTIMATE;
            td.calib_q = &tq;
            td.calib_k = &tk;
            td.calib_v = &tv;
            rfjit_tune_result *r = NULL;
            const rfjit_status st = rfjit_tune(ctx, &td, &r);
            cr_expect_eq(st, RFJIT_E_NONFINITE, "tune with a bad calibration array %d: %s", t,
                         rfjit_status_string(st));
            cr_expect_null(r);
            rfjit_tune_result_destroy(r);
        )
}
