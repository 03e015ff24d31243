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
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "features overflow float"), "%s",
              rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
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
