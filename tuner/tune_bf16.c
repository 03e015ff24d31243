/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit_tune's precision candidate (architecture.md 6): exact attention with
 * rfjit_attn_desc.compute = RFJIT_BF16, whose products round their operands to bfloat16 and
 * so trade error for speed like any estimator. Its error is measured, never taken from the
 * rounding's nominal 2^-8: on rows with large norms and a wide range of scores (the real-like
 * profile) the rounding of q.k moves the softmax weights by far more than on small Gaussian
 * rows. It draws nothing random, so a bound over seeds would have no spread at all; like
 * eva's (tune_eva.c says why) its bound is over RJ_TUNE_SLICES contiguous slices of the
 * calibration queries against the float32 exact output. It meets the budget only when that
 * bound does, and then competes on its time at L.
 *
 * A random-feature row that met the budget in float32 gets a bf16 twin where the context has
 * a kernel for it (rj_search_bf16_twin): the same m, seed and transform, its error measured on
 * the same fresh projection seeds as the float row's confirmation, so that the bound holds
 * the rounding and the estimator's variance together. Its m is not searched again: rounding
 * adds error, so a twin that misses at the float row's m is reported and left out.
 *
 * The row is there only where the context can run it (rfjit_plan_create refuses the plan
 * with RFJIT_E_ISA or RFJIT_E_NOT_APPLICABLE otherwise, and then there is no row), for
 * output budgets (a kernel budget is about feature maps, which bf16 does not change) and
 * MEASURE or more (no model of its error exists, and ESTIMATE compiles nothing). A candidate
 * list that leaves exact out (rfjit_tune_desc.estimators) leaves it out too: exact in float32
 * always competes as the yardstick, its bf16 variant only as a candidate asked for.
 */
#include "tuner/tune_search.h"

#include <math.h>
#include <stdio.h>

/* Whether the plan of row can be made on this context; a refusal for want of the instruction
 * or of a kernel is a no, any other failure the tune's. */
static rfjit_status runs_here(rj_search *S, const rj_tune_row *row, int *yes, rj_diag *dg)
{
    rfjit_attn_desc a = rj_tune_row_desc(S->r, row, S->r->seed);
    rfjit_plan *p = NULL;
    rj_diag why = {{0}};
    const rfjit_status s = rj_plan_create(S->ctx, &a, &p, &why);
    rj_plan_free(p);
    *yes = s == RFJIT_OK;
    if (s == RFJIT_OK || s == RFJIT_E_ISA || s == RFJIT_E_NOT_APPLICABLE)
        return RFJIT_OK;
    return rj_fail(dg, s, "%s", why.msg);
}

/* x appended to rows as *row where its plan runs here (else *row = NULL). */
static rfjit_status take_row(rj_search *S, const rj_tune_row *x, rj_tune_row *rows, size_t *n,
                             rj_tune_row **row, rj_diag *dg)
{
    int yes;
    *row = NULL;
    RJ_TRY(runs_here(S, x, &yes, dg));
    if (!yes)
        return RFJIT_OK;
    *row = &rows[(*n)++];
    **row = *x;
    S->total += 1;
    return RFJIT_OK;
}

/* row's bound (measured) against the budget: a miss says why (no_bound: a bound that could
 * not be had), a hit is timed at L. */
static rfjit_status judge(rj_search *S, rj_tune_row *row, const char *no_bound, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    S->done += 1;
    rj_search_progress(S, "bf16");
    row->meets = row->bound <= r->budget;
    if (!row->meets) {
        if (isfinite(row->bound))
            snprintf(row->note, sizeof row->note, "bf16 products: error bound %.3g over the budget",
                     row->bound);
        else
            snprintf(row->note, sizeof row->note, "bf16 products: %s", no_bound);
        return RFJIT_OK;
    }
    rfjit_attn_desc a = rj_tune_row_desc(r, row, r->seed);
    return rj_search_time(S, &a, &row->time_ms, dg);
}

rfjit_status rj_search_bf16(rj_search *S, const rj_est_ops *exact, rj_tune_row *rows, size_t *n,
                            rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    int in_list = 0;
    for (int e = 0; e < rj_est_count; e++)
        if (rj_est_registry[e] == exact)
            in_list = (r->est_mask >> e) & 1;
    if (!in_list || r->kind != RFJIT_BUDGET_OUTPUT || r->patience == RFJIT_PATIENCE_ESTIMATE)
        return RFJIT_OK;
    const rj_tune_row x = {.est = exact,
                           .seed = r->seed,
                           .compute = RFJIT_BF16,
                           .predicted = NAN,
                           .measured = NAN,
                           .bound = NAN,
                           .time_ms = NAN,
                           .near_err = NAN};
    rj_tune_row *row;
    RJ_TRY(take_row(S, &x, rows, n, &row, dg));
    if (!row)
        return RFJIT_OK;
    RJ_TRY(rj_search_data_bound(S, row, &row->measured, &row->bound, dg));
    char why[96];
    snprintf(why, sizeof why, "no bound with fewer than %d calibration queries", RJ_TUNE_SLICES);
    return judge(S, row, why, dg);
}

rfjit_status rj_search_bf16_twin(rj_search *S, const rj_tune_row *base, rj_tune_row *rows,
                                 size_t *n, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    if (!base->meets || r->kind != RFJIT_BUDGET_OUTPUT || r->patience == RFJIT_PATIENCE_ESTIMATE)
        return RFJIT_OK;
    rj_tune_row x = *base;
    x.compute = RFJIT_BF16;
    x.meets = x.chosen = x.pareto = 0;
    x.measured = x.bound = x.time_ms = NAN;
    x.note[0] = 0;
    rj_tune_row *row;
    RJ_TRY(take_row(S, &x, rows, n, &row, dg));
    if (!row)
        return RFJIT_OK;
    double mean, sd;
    RJ_TRY(rj_search_error_stats(S, row, r->seed + RJ_TUNE_CONFIRM_SEED, RJ_TUNE_CONFIRM_SEEDS,
                                 &mean, &sd, dg));
    row->measured = mean;
    row->bound = mean + RJ_TUNE_T95 * sd / sqrt((double)RJ_TUNE_CONFIRM_SEEDS);
    return judge(S, row, "no finite error on the fresh seeds", dg);
}
