/* SPDX-License-Identifier: MIT */
/*
 * This file checks compute precision as a tuner parameter (tuner/tune_bf16.c): where the
 * context runs exact attention in bfloat16 the table has one bf16 row with a measured error
 * and its bound over slices, it meets a budget only through that bound (never under a budget
 * below its error), a bf16 winner's plan says so and runs, a second tune answers it from
 * wisdom, and where bf16 cannot run (an avx2 context, or a CPU without AVX512-BF16) there is
 * no such row and nothing fails. Each test that needs bf16 asks the context first and, where
 * it is refused, checks the refusal instead. Nothing here depends on which plan is faster.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(tune_bf16, .timeout = 300);

enum { D = 64, L = 1024 };

/* The Gaussian profile at d = 64, L = 1024 with exact alone among the candidates: its bf16
 * row measures about 5e-6 there, far under 1e-2 and far over 1e-9. */
static rfjit_tune_desc shape(double budget)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = t.dv = D;
    t.L = L;
    t.budget = budget;
    t.seed = 5;
    t.estimators = "exact";
    t.synthetic_profile = RFJIT_PROFILE_GAUSSIAN;
    return t;
}

/* Whether c runs est in bf16 (exact, or bidirectional positive on AMX); where not, the
 * refusal is RFJIT_E_ISA (no AVX512-BF16) or, for positive, RFJIT_E_NOT_APPLICABLE (no AMX). */
static int bf16_here_for(rfjit_ctx *c, const char *est)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = a.dv = D;
    a.estimator = est;
    a.compute = RFJIT_BF16;
    rfjit_plan *p = NULL;
    const rfjit_status s = rfjit_plan_create(c, &a, &p);
    rfjit_plan_destroy(p);
    if (s != RFJIT_OK)
        cr_expect(s == RFJIT_E_ISA || (s == RFJIT_E_NOT_APPLICABLE && strcmp(est, "exact") != 0),
                  "%s in bf16 refused with %d: %s", est, s, rfjit_ctx_last_error(c));
    return s == RFJIT_OK;
}

static int bf16_here(rfjit_ctx *c)
{
    return bf16_here_for(c, "exact");
}

/* The bf16 rows of r (at most one is expected) into *row; how many there are. */
static int bf16_rows(const rfjit_tune_result *r, rfjit_tune_row *row)
{
    int n = 0;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row x;
        cr_assert_eq(rfjit_tune_result_row(r, i, &x), RFJIT_OK);
        if (x.compute == RFJIT_F32)
            continue;
        cr_expect_eq(x.compute, RFJIT_BF16, "row %zu: compute %d", i, x.compute);
        cr_expect_str_eq(x.estimator, "exact");
        *row = x;
        n++;
    }
    return n;
}

static rfjit_tune_row chosen_row(const rfjit_tune_result *r)
{
    rfjit_tune_row x;
    cr_assert_eq(rfjit_tune_result_row(r, 0, &x), RFJIT_OK);
    cr_assert(x.chosen, "row 0 is not the chosen one");
    return x;
}

/* |O - O_f32|^2 / |O_f32|^2 of plan a against float32 exact on the profile's own data. */
static double error_against_exact(rfjit_ctx *c, const rfjit_tune_desc *t, const rfjit_attn_desc *a)
{
    float *q = malloc(sizeof(float) * L * D), *k = malloc(sizeof(float) * L * D);
    float *v = malloc(sizeof(float) * L * D), *o = malloc(sizeof(float) * L * D);
    float *x = malloc(sizeof(float) * L * D);
    cr_assert(q && k && v && o && x);
    rfjit_tune_desc draw = *t;
    draw.seed = t->seed + 99;
    cr_assert_eq(rfjit_tune_synthetic(&draw, L, q, k, v), RFJIT_OK);
    rfjit_attn_desc ex = *a;
    ex.compute = RFJIT_F32;
    ex.tiling = (rfjit_tiling){0, 0, 0, 0};
    rfjit_plan *p = NULL, *pe = NULL;
    cr_assert_eq(rfjit_plan_create(c, a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_create(c, &ex, &pe), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, D);
    rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, L, D);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_execute(pe, &tq, &tk, &tv, &tx), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)L * D; i++) {
        num += ((double)o[i] - x[i]) * ((double)o[i] - x[i]);
        den += (double)x[i] * x[i];
    }
    rfjit_plan_destroy(p);
    rfjit_plan_destroy(pe);
    free(q);
    free(k);
    free(v);
    free(o);
    free(x);
    return num / den;
}

/* Under a loose budget the bf16 row is there with a measured error above 0, its bound, a
 * time, and meets the budget; if it wins, the plan is bf16 and runs within the budget, and
 * a second tune answers it from wisdom as bf16. */
Test(tune_bf16, row_measured_and_its_plan_runs)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const int here = bf16_here(c);
    rfjit_tune_desc t = shape(1e-2);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_row row = {0};
    const int n = bf16_rows(r, &row);
    cr_assert_eq(n, here ? 1 : 0, "%d bf16 rows, bf16 %s here", n, here ? "runs" : "refused");
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    const rfjit_tune_row ch = chosen_row(r);
    cr_expect_eq(a.compute, ch.compute, "plan compute %d, chosen row's %d", a.compute, ch.compute);
    char json[16384];
    cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
    cr_expect(strstr(json, "\"compute\": \"f32\""), "%s", json);
    if (here) {
        cr_expect(isfinite(row.measured_error) && row.measured_error > 0, "measured %g",
                  row.measured_error);
        cr_expect(isfinite(row.error_bound) && row.error_bound >= row.measured_error,
                  "bound %g, measured %g", row.error_bound, row.measured_error);
        cr_expect(row.meets_budget && row.error_bound <= t.budget, "bound %g, budget %g: %s",
                  row.error_bound, t.budget, row.note);
        cr_expect(isfinite(row.time_ms) && row.time_ms > 0, "time %g", row.time_ms);
        cr_expect(row.m == 0 && row.transform == 0, "m %d, transform %d", row.m, row.transform);
        cr_expect(strstr(json, "\"compute\": \"bf16\""), "%s", json);
        cr_expect(strstr(rfjit_tune_result_info(r), "exact in bf16"), "%s",
                  rfjit_tune_result_info(r));
    }
    if (ch.compute == RFJIT_BF16) {
        cr_expect_eq(a.compute, RFJIT_BF16);
        cr_expect_str_eq(a.estimator, "exact");
        const double e = error_against_exact(c, &t, &a);
        cr_expect(e > 0 && e <= t.budget, "bf16 plan's error %g, budget %g", e, t.budget);
    } else {
        cr_expect_eq(a.compute, RFJIT_F32);
    }
    /* the answer comes back from the context's wisdom with its precision */
    rfjit_tune_result *again = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &again), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_expect(strstr(rfjit_tune_result_info(again), "from wisdom"), "%s",
              rfjit_tune_result_info(again));
    rfjit_attn_desc b = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(again, &b), RFJIT_OK);
    cr_expect_eq(b.compute, a.compute, "wisdom gave compute %d, the tune %d", b.compute, a.compute);
    cr_expect_eq(chosen_row(again).compute, ch.compute);
    rfjit_tune_result_destroy(again);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}

/* A budget below bf16's error: its row misses the budget and float32 exact wins. */
Test(tune_bf16, never_chosen_under_a_budget_below_its_error)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const int here = bf16_here(c);
    rfjit_tune_desc t = shape(1e-9);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    const rfjit_tune_row ch = chosen_row(r);
    cr_expect_str_eq(ch.estimator, "exact");
    cr_expect_eq(ch.compute, RFJIT_F32);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    cr_expect_eq(a.compute, RFJIT_F32);
    rfjit_tune_row row = {0};
    cr_expect_eq(bf16_rows(r, &row), here ? 1 : 0);
    if (here) {
        cr_expect(!row.meets_budget && !row.chosen && row.error_bound > t.budget,
                  "bound %g meets %d chosen %d", row.error_bound, row.meets_budget, row.chosen);
        cr_expect(strstr(row.note, "over the budget"), "%s", row.note);
        cr_expect(isnan(row.time_ms), "a row that misses the budget was timed: %g", row.time_ms);
    }
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}

/* On an avx2 context bf16 is refused: no bf16 row, and the tune answers float32 exact. */
Test(tune_bf16, no_row_where_bf16_cannot_run)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.isa = "avx2";
    rfjit_ctx *c = NULL;
    const rfjit_status s = rfjit_ctx_create(&cd, &c);
    if (s == RFJIT_E_ISA) /* not an x86 machine with AVX2 */
        cr_skip_test("no avx2 here: %s", rfjit_ctx_last_error(NULL));
    cr_assert_eq(s, RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
    cr_expect(!bf16_here(c), "an avx2 context ran bf16");
    rfjit_tune_desc t = shape(1e-2);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_row row;
    cr_expect_eq(bf16_rows(r, &row), 0);
    cr_expect_eq(rfjit_tune_result_rows(r), 1);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    cr_expect(a.compute == RFJIT_F32 && !strcmp(a.estimator, "exact"), "%s compute %d", a.estimator,
              a.compute);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}

/* No bf16 row where the request leaves it out: a kernel budget, ESTIMATE, or a candidate
 * list without exact. */
Test(tune_bf16, left_out_where_not_asked_for)
{
    rfjit_ctx *c = tu_ctx_isolated();
    for (int pass = 0; pass < 3; pass++) {
        rfjit_tune_desc t = shape(1e-2);
        if (pass == 0)
            t.budget_kind = RFJIT_BUDGET_KERNEL;
        else if (pass == 1)
            t.patience = RFJIT_PATIENCE_ESTIMATE;
        else
            t.estimators = "eva", t.L = 128;
        rfjit_tune_result *r = NULL;
        cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "pass %d: %s", pass, rfjit_ctx_last_error(c));
        rfjit_tune_row row;
        cr_expect_eq(bf16_rows(r, &row), 0, "pass %d", pass);
        rfjit_tune_result_destroy(r);
    }
    rfjit_ctx_destroy(c);
}

/* A random-feature row that meets the budget gets a bf16 twin where the context runs one: the
 * float row's m and transform, an error measured on the fresh seeds (finite, above zero), a
 * bound that decides whether it meets; chosen, its plan is positive in bf16 and runs within
 * the budget. Where positive has no bf16 kernel there is no twin. */
Test(tune_bf16, a_random_feature_row_gets_a_bf16_twin)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const int here = bf16_here_for(c, "positive");
    rfjit_tune_desc t = shape(2e-2);
    t.estimators = "positive";
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_row f = {0}, twin = {0};
    int nf = 0, nt = 0;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row x;
        cr_assert_eq(rfjit_tune_result_row(r, i, &x), RFJIT_OK);
        if (strcmp(x.estimator, "positive") != 0)
            continue;
        if (x.compute == RFJIT_BF16)
            twin = x, nt++;
        else
            f = x, nf++;
    }
    cr_assert_eq(nf, 1);
    cr_assert(f.meets_budget, "seed 5: positive misses %g in float32 (bound %g): %s", t.budget,
              f.error_bound, f.note);
    cr_assert_eq(nt, here ? 1 : 0, "%d twins, positive bf16 %s here", nt,
                 here ? "runs" : "refused");
    if (here) {
        cr_expect(twin.m == f.m && twin.transform == f.transform, "twin m %d/%d, transform %d/%d",
                  twin.m, f.m, twin.transform, f.transform);
        cr_expect(isfinite(twin.measured_error) && twin.measured_error > 0, "measured %g",
                  twin.measured_error);
        cr_expect(twin.meets_budget == (twin.error_bound <= t.budget), "bound %g, meets %d",
                  twin.error_bound, twin.meets_budget);
        cr_expect(!twin.meets_budget || (isfinite(twin.time_ms) && twin.time_ms > 0), "time %g",
                  twin.time_ms);
    }
    const rfjit_tune_row ch = chosen_row(r);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    cr_expect_eq(a.compute, ch.compute);
    if (ch.compute == RFJIT_BF16 && !strcmp(ch.estimator, "positive")) {
        const double e = error_against_exact(c, &t, &a);
        cr_expect(e > 0 && e <= t.budget, "bf16 positive plan's error %g, budget %g", e, t.budget);
    }
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}

/* The tiling search of a bf16 positive plan (a twin the tuner chose) times only tilings its
 * kernel takes, AMX's 16 lanes, and finds one; where positive has no bf16 kernel, the search
 * is refused as the plan is. */
Test(tune_bf16, tiling_search_of_a_bf16_twin)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = a.dv = D;
    a.estimator = "positive";
    a.compute = RFJIT_BF16;
    rfjit_tiling best;
    double ms = NAN;
    rfjit_tiling_time times[128];
    size_t n = 128;
    const rfjit_status s = rfjit_tune_tiling(c, &a, 512, RFJIT_PATIENCE_EXHAUSTIVE, &best, &ms,
                                             times, &n);
    if (bf16_here_for(c, "positive")) {
        cr_assert_eq(s, RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        cr_expect(n > 1 && isfinite(ms) && best.vw == 16, "%zu candidates, best vw %d", n, best.vw);
        for (size_t i = 0; i < n && i < 128; i++)
            cr_expect_eq(times[i].tiling.vw, 16, "candidate %zu at vw %d", i, times[i].tiling.vw);
    } else {
        cr_expect(s == RFJIT_E_NOT_APPLICABLE || s == RFJIT_E_ISA, "%d: %s", s,
                  rfjit_ctx_last_error(c));
    }
    rfjit_ctx_destroy(c);
}
