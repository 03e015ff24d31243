/* SPDX-License-Identifier: MIT */
/*
 * This file checks the tuner's search of eva (tuner/tune_eva.c): eva's rows are in the table
 * with their window and chunk count, from the documented grid, in the row accessor and the
 * JSON; the fewest chunks that meet the budget win a window's row; eva is left out, with a
 * note, where it cannot be measured (kernel budgets, ESTIMATE).
 *
 * The data make eva's error known without knowing eva's numbers: every value row is the same
 * vector, so exact attention's output is that vector (softmax weights sum to 1), and so is
 * eva's, whose output is a softmax over exact keys and chunk summaries, each summary a
 * convex combination of its chunk's values. The error is float rounding, near 1e-14 in
 * relative squared terms, far under the budget of 1e-6, at every window and chunk count.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { L = 256, D = 16 };

static float q[L * D], k[L * D], v[L * D];
static rfjit_tensor tq, tk, tv;

static void make_data(void)
{
    tu_fill_normal(q, L * D, 1.0, 11);
    tu_fill_normal(k, L * D, 1.0, 12);
    for (int i = 0; i < L * D; i++)
        v[i] = (float)(1 + i % D); /* every row the same vector */
    tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
}

TestSuite(tune_eva, .init = make_data, .timeout = 300);

static rfjit_tune_desc constant_values(double budget)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = D;
    t.L = L;
    t.budget = budget;
    t.seed = 3;
    t.estimators = "eva";
    t.calib_q = &tq, t.calib_k = &tk, t.calib_v = &tv;
    return t;
}

static int in(int32_t x, const int32_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == x)
            return 1;
    return 0;
}

static void check_eva_rows(const rfjit_tune_result *r, int causal)
{
    static const int32_t windows[] = {16, 32, 64, 128}, chunks[] = {4, 8, 16, 32};
    int seen = 0;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, i, &row), RFJIT_OK);
        if (strcmp(row.estimator, "eva")) {
            cr_expect(row.eva_window == 0 && row.eva_chunks == 0, "%s: %d %d", row.estimator,
                      row.eva_window, row.eva_chunks);
            continue;
        }
        seen |= 1 << (int)log2(row.eva_window / 16.0);
        cr_expect(in(row.eva_window, windows, 4) && in(row.eva_chunks, chunks, 4),
                  "causal %d: window %d, chunks %d off the grid", causal, row.eva_window,
                  row.eva_chunks);
        cr_expect_eq(row.m, 0);
        /* the cheapest chunk count meets: rounding error only (the file's comment) */
        if (row.meets_budget) {
            cr_expect_eq(row.eva_chunks, 4, "causal %d window %d", causal, row.eva_window);
            cr_expect(row.error_bound <= 1e-6 && isfinite(row.time_ms) && row.time_ms > 0,
                      "causal %d window %d: bound %g, %g ms", causal, row.eva_window,
                      row.error_bound, row.time_ms);
        } else {
            cr_expect(strstr(row.note, "cost model"), "causal %d window %d missed: %s", causal,
                      row.eva_window, row.note);
        }
    }
    cr_expect(seen & 1, "causal %d: no eva row of window 16", causal);
}

/* Every window below L gets a row with its parameters, bidirectional and causal, and the
 * rows reach the JSON table; the chosen plan describes what its row says. */
Test(tune_eva, rows_carry_window_and_chunks)
{
    rfjit_ctx *c = tu_ctx_isolated();
    for (int causal = 0; causal < 2; causal++) {
        rfjit_tune_desc t = constant_values(1e-6);
        t.causal = causal;
        rfjit_tune_result *r = NULL;
        cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        check_eva_rows(r, causal);
        static char json[1 << 16];
        cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
        cr_expect(strstr(json, "\"estimator\": \"eva\", \"m\": 0, \"features\": 0, \"tiling\"") &&
                      strstr(json, "\"eva_window\": 16, \"eva_chunks\": 4"),
                  "%s", json);
        rfjit_tune_row chosen;
        cr_assert_eq(rfjit_tune_result_row(r, 0, &chosen), RFJIT_OK);
        cr_expect(chosen.chosen);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
        cr_expect_str_eq(a.estimator, chosen.estimator);
        cr_expect_eq(a.causal, causal);
        if (!strcmp(a.estimator, "eva"))
            cr_expect(a.eva_window == chosen.eva_window && a.eva_chunks == chosen.eva_chunks);
        rfjit_tune_result_destroy(r);
    }
    rfjit_ctx_destroy(c);
}

/* eva has no kernel estimate and no error model: a kernel budget or ESTIMATE leaves it out
 * with a note saying why, and nothing is measured. */
Test(tune_eva, left_out_where_it_cannot_be_measured)
{
    rfjit_ctx *c = tu_ctx_isolated();
    for (int pass = 0; pass < 2; pass++) {
        rfjit_tune_desc t = constant_values(1e-2);
        if (pass == 0)
            t.budget_kind = RFJIT_BUDGET_KERNEL;
        else
            t.patience = RFJIT_PATIENCE_ESTIMATE;
        rfjit_tune_result *r = NULL;
        cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        cr_assert_eq(rfjit_tune_result_rows(r), 2);
        for (size_t i = 0; i < 2; i++) {
            rfjit_tune_row row;
            cr_assert_eq(rfjit_tune_result_row(r, i, &row), RFJIT_OK);
            if (strcmp(row.estimator, "eva"))
                continue;
            cr_expect(!row.meets_budget && isnan(row.measured_error), "pass %d", pass);
            cr_expect(strstr(row.note, pass == 0 ? "output budgets only" : "no error model"),
                      "pass %d: %s", pass, row.note);
        }
        rfjit_tune_result_destroy(r);
    }
    rfjit_ctx_destroy(c);
}

/* Where the window holds every key, eva is exact attention: one row says so, none is
 * measured. */
Test(tune_eva, a_window_over_the_whole_sequence_is_not_searched)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_tune_desc t = constant_values(1e-6);
    rfjit_tensor sq = rfjit_tensor_contiguous(q, 1, 1, 16, D),
                 sk = rfjit_tensor_contiguous(k, 1, 1, 16, D),
                 sv = rfjit_tensor_contiguous(v, 1, 1, 16, D);
    t.calib_q = &sq, t.calib_k = &sk, t.calib_v = &sv;
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_tune_result_rows(r), 2);
    rfjit_tune_row row;
    cr_assert_eq(rfjit_tune_result_row(r, 1, &row), RFJIT_OK);
    cr_expect_str_eq(row.estimator, "eva");
    cr_expect(!row.meets_budget && strstr(row.note, "exact attention"), "%s", row.note);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}
