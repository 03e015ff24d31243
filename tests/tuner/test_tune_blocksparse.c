/* SPDX-License-Identifier: MIT */
/*
 * This file checks the tuner's search of blocksparse (tuner/tune_blocksparse.c): its rows are
 * in the table with their block size and exact block count, from the documented grid, in the
 * row accessor and the JSON; counts that take every key block are not searched; blocksparse
 * is left out, with a note, where it cannot be measured (kernel budgets, ESTIMATE).
 *
 * The data make blocksparse's error known without knowing its numbers, as test_tune_eva.c's
 * do for eva: every value row is the same vector, so exact attention's output is that vector,
 * and so is blocksparse's, whose weights (exact exponentials and positive features' products,
 * both positive) are normalised by their own sum. The error is float rounding, near 1e-14 in
 * relative squared terms, far under the budget of 1e-6, at every m and exact block count.
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
    tu_fill_normal(q, L * D, 1.0, 21);
    tu_fill_normal(k, L * D, 1.0, 22);
    for (int i = 0; i < L * D; i++)
        v[i] = (float)(1 + i % D); /* every row the same vector */
    tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
}

TestSuite(tune_blocksparse, .init = make_data, .timeout = 300);

static rfjit_tune_desc constant_values(double budget)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = D;
    t.L = L;
    t.budget = budget;
    t.seed = 3;
    t.estimators = "blocksparse";
    t.calib_q = &tq, t.calib_k = &tk, t.calib_v = &tv;
    return t;
}

/* At L = 256 there are 4 key blocks of 64: k = 1 and 2 are searched, 4 and 8 would be exact
 * attention. Each row meets the budget with an m, a bound and a time, or says why not (the
 * machine may time it slower than exact); the other rows have no block fields. */
static void check_rows(const rfjit_tune_result *r, int causal)
{
    int seen = 0;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, i, &row), RFJIT_OK);
        if (strcmp(row.estimator, "blocksparse")) {
            cr_expect(row.sparse_block == 0 && row.sparse_exact == 0, "%s: %d %d", row.estimator,
                      row.sparse_block, row.sparse_exact);
            continue;
        }
        cr_expect(row.sparse_block == 64 && (row.sparse_exact == 1 || row.sparse_exact == 2),
                  "causal %d: block %d, exact blocks %d off the grid at 4 key blocks", causal,
                  row.sparse_block, row.sparse_exact);
        seen |= 1 << row.sparse_exact;
        cr_expect(row.eva_window == 0 && row.eva_chunks == 0);
        if (row.meets_budget)
            cr_expect(row.m >= 16 && row.m % 16 == 0 && row.error_bound <= 1e-6 &&
                          isfinite(row.time_ms) && row.time_ms > 0,
                      "causal %d k %d: m %d, bound %g, %g ms", causal, row.sparse_exact, row.m,
                      row.error_bound, row.time_ms);
        else
            cr_expect(row.note[0], "causal %d k %d missed without a note", causal,
                      row.sparse_exact);
    }
    cr_expect_eq(seen, 2 | 4, "causal %d: rows for exact block counts %#x", causal, seen);
}

/* Each exact block count under the key blocks gets a row with its parameters, bidirectional
 * and causal, and the rows reach the JSON table; the chosen plan describes what its row says. */
Test(tune_blocksparse, rows_carry_block_and_exact_count)
{
    rfjit_ctx *c = tu_ctx_isolated();
    for (int causal = 0; causal < 2; causal++) {
        rfjit_tune_desc t = constant_values(1e-6);
        t.causal = causal;
        rfjit_tune_result *r = NULL;
        cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        check_rows(r, causal);
        static char json[1 << 16];
        cr_assert_eq(rfjit_tune_result_json(r, json, sizeof json), RFJIT_OK);
        cr_expect(strstr(json, "\"sparse_block\": 64, \"sparse_exact\": 1"), "%s", json);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
        rfjit_tune_row chosen;
        cr_assert_eq(rfjit_tune_result_row(r, 0, &chosen), RFJIT_OK);
        if (!strcmp(a.estimator, "blocksparse"))
            cr_expect(a.sparse_block == chosen.sparse_block &&
                          a.sparse_exact == chosen.sparse_exact && a.m == chosen.m,
                      "plan %d %d %d, row %d %d %d", a.sparse_block, a.sparse_exact, a.m,
                      chosen.sparse_block, chosen.sparse_exact, chosen.m);
        rfjit_tune_result_destroy(r);
    }
    rfjit_ctx_destroy(c);
}

/* blocksparse has no kernel estimate and no error model: a kernel budget or ESTIMATE leaves
 * it out with a note saying why, and nothing is measured. */
Test(tune_blocksparse, left_out_where_it_cannot_be_measured)
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
            if (strcmp(row.estimator, "blocksparse"))
                continue;
            cr_expect(!row.meets_budget && isnan(row.measured_error), "pass %d", pass);
            cr_expect(strstr(row.note, pass == 0 ? "output budgets only" : "no error model"),
                      "pass %d: %s", pass, row.note);
        }
        rfjit_tune_result_destroy(r);
    }
    rfjit_ctx_destroy(c);
}

/* Where one exact block holds every key, blocksparse is exact attention: one row says so,
 * none is measured. */
Test(tune_blocksparse, a_block_over_the_whole_sequence_is_not_searched)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_tune_desc t = constant_values(1e-6);
    rfjit_tensor sq = rfjit_tensor_contiguous(q, 1, 1, 64, D),
                 sk = rfjit_tensor_contiguous(k, 1, 1, 64, D),
                 sv = rfjit_tensor_contiguous(v, 1, 1, 64, D);
    t.calib_q = &sq, t.calib_k = &sk, t.calib_v = &sv;
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_tune_result_rows(r), 2);
    rfjit_tune_row row;
    cr_assert_eq(rfjit_tune_result_row(r, 1, &row), RFJIT_OK);
    cr_expect_str_eq(row.estimator, "blocksparse");
    cr_expect(row.sparse_exact == 1 && !row.meets_budget && strstr(row.note, "exact attention"),
              "k %d: %s", row.sparse_exact, row.note);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}
