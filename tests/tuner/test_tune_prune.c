/* SPDX-License-Identifier: MIT */
/*
 * This file checks that a candidate the tuner drops before its search (tuner/tune_prune.c)
 * is still in the Pareto table, not meeting the budget, with a note saying why it was not
 * measured, and that exact, which always meets, is then the answer.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "rfjit.h"

#include <stdio.h>
#include <string.h>

TestSuite(tune_prune, .timeout = 300);

static rfjit_tune_row row_of(const rfjit_tune_result *r, const char *est)
{
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, i, &row), RFJIT_OK);
        if (!strcmp(row.estimator, est))
            return row;
    }
    cr_assert_fail("no row for %s", est);
    return (rfjit_tune_row){0};
}

static rfjit_tune_desc request(const char *estimators, int32_t d, int64_t L, double budget)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = t.dv = d;
    t.L = L;
    t.budget = budget;
    t.patience = RFJIT_PATIENCE_MEASURE;
    t.seed = 3;
    t.estimators = estimators;
    return t;
}

/* On the real-like rows at d = 32 positive's error at m = 128 is about 1, a hundred times a
 * budget of 1e-2: by 1/m it needs m above 10^4, past the tuner's reach, so it is dropped
 * after its two small measurements, and the closest answer names it at that m. */
Test(tune_prune, hopeless_error_is_not_searched)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_tune_desc t = request("positive", 32, 1024, 1e-2);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    const rfjit_tune_row row = row_of(r, "positive");
    cr_expect(!row.meets_budget && !row.chosen, "positive meets or is chosen");
    cr_expect(strstr(row.note, "not measured further") && strstr(row.note, "by 1/m"), "%s",
              row.note);
    cr_expect(row_of(r, "exact").chosen);
    cr_expect(strstr(rfjit_tune_result_info(r), "closest positive at m = 128"), "%s",
              rfjit_tune_result_info(r));
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}

/* At L = 32 exact costs 32 key dot products per query; hybrid's features at m = 16 cost more
 * than four times that in the cost model, so it is not measured at all. */
Test(tune_prune, costlier_than_exact_is_not_measured)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_tune_desc t = request("hybrid", 64, 32, 1e-1);
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    const rfjit_tune_row row = row_of(r, "hybrid");
    cr_expect(!row.meets_budget && !row.chosen, "hybrid meets or is chosen");
    cr_expect(strstr(row.note, "not measured: at m = 16 the cost model puts it at"), "%s",
              row.note);
    cr_expect(row_of(r, "exact").chosen);
    rfjit_tune_result_destroy(r);
    rfjit_ctx_destroy(c);
}
