/* SPDX-License-Identifier: MIT */
/*
 * This file drops candidates that cannot win before their search (tune_prune.h), so a tune
 * whose answer is clear early (the quick start's: only exact meets 1e-2 on the real-like
 * profile) does not time and bracket every estimator at large m. Two rules:
 *
 *  - cost: the cost model (est.h `cost`, as rj_search_model_flops counts it at L) puts the
 *    estimator at the smallest m above RJ_PRUNE_COST_FACTOR = 4 times exact's cost. Both are
 *    modelled, so the nominal rate cancels; on 30 (estimator, m, d, L) pairs timed on the
 *    development machine the model overstated a random-feature kernel's time relative to
 *    exact's by at most 1.7x (trig at d = 64, m = 1616), so a factor 4 drops nothing that
 *    could be faster than exact.
 *  - error: the least error over the RJ_TUNE_SEARCH_SEEDS search seeds at m_a = 32 and
 *    m_b = 128 (the first m exact_cap times, so that kernel serves both). An unbiased
 *    estimator's error falls as c / m + d / m^2 (d >= 0: the ratio's second-order terms),
 *    or is flat where it saturates (a normaliser near zero, positive features' convex
 *    outputs) before it falls as c / m; either way m times the error does not fall past m_b
 *    by more than the factor its local slope allows. The rule applies only when the slope
 *    between m_a and m_b is at most RJ_PRUNE_MAX_SLOPE = 1.5 (m error then falls at most 2x
 *    further under c / m + d / m^2), and drops the estimator when m_b e_b / budget, the 1/m
 *    extrapolation, exceeds RJ_PRUNE_SAFETY = 4 (2 for the slope, 2 for the seeds' noise)
 *    times the limit: RJ_TUNE_M_MAX, or less where the cost model puts the estimator at
 *    RJ_PRUNE_COST_FACTOR times exact's cost (past the m where it is slower than exact, by
 *    the first rule's argument), or, once the search has timed it, the m where it takes
 *    exact's time. The least error over seeds, not the mean, so one bad seed (the
 *    real-like profile's heavy tails) cannot make a candidate look worse than it is.
 *
 * Neither rule can choose a plan: a candidate that survives is searched and confirmed as
 * before, and a dropped one keeps its least error bound at m_b as its near miss.
 */
#include "tuner/tune_prune.h"

#include <math.h>
#include <stdio.h>

#define RJ_PRUNE_COST_FACTOR 4.0
#define RJ_PRUNE_MAX_SLOPE 1.5
#define RJ_PRUNE_SAFETY 4.0
#define M_A (2 * RJ_TUNE_M_STEP)
#define M_B (8 * RJ_TUNE_M_STEP)

static double cost_ratio(const rj_search *S, const rj_tune_row *row, int32_t m)
{
    return rj_search_model_flops(S->r, row->est, m, row) /
           rj_search_model_flops(S->r, rj_est_find("exact"), 0, NULL);
}

int rj_prune_by_cost(const rj_search *S, rj_tune_row *row)
{
    const double ratio = cost_ratio(S, row, RJ_TUNE_M_STEP);
    if (!(ratio > RJ_PRUNE_COST_FACTOR))
        return 0;
    snprintf(row->note, sizeof row->note,
             "not measured: at m = %d the cost model puts it at %.3g times exact's cost",
             RJ_TUNE_M_STEP, ratio);
    return 1;
}

int32_t rj_prune_cost_m(const rj_search *S, const rj_tune_row *row, double factor)
{
    int32_t m = RJ_TUNE_M_STEP;
    while (m < RJ_TUNE_M_MAX && cost_ratio(S, row, m + RJ_TUNE_M_STEP) <= factor)
        m += RJ_TUNE_M_STEP;
    return m;
}

/* The least error, and the mean and its search bound, over the search seeds at m. */
static rfjit_status least_error(rj_search *S, const rj_tune_row *row, int32_t m, double *least,
                                double *bound, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const double t0 = rj_now_s();
    double sum = 0, sum2 = 0;
    *least = INFINITY;
    rj_tune_row at = *row;
    at.m = m;
    for (int i = 0; i < RJ_TUNE_SEARCH_SEEDS; i++) {
        rfjit_attn_desc a = rj_tune_row_desc(r, &at, r->seed + RJ_TUNE_SEARCH_SEED + (uint64_t)i);
        double e;
        RJ_TRY(rj_calib_error(S->ctx, &S->cal, r->kind, &a, &e, dg));
        if (!isfinite(e))
            e = INFINITY;
        *least = fmin(*least, e);
        sum += e;
        sum2 += e * e;
    }
    rj_tune_clock_errors(&S->clock, rj_now_s() - t0, RJ_TUNE_SEARCH_SEEDS);
    const int n = RJ_TUNE_SEARCH_SEEDS;
    const double mean = sum / n;
    const double sd = isfinite(mean) ? sqrt(fmax(0, (sum2 - sum * sum / n) / (n - 1))) : 0;
    *bound = mean + RJ_TUNE_T95_SEARCH * sd / sqrt((double)n);
    S->done += 1;
    rj_search_progress(S, row->est->name);
    return RFJIT_OK;
}

rfjit_status rj_prune_by_error(rj_search *S, rj_tune_row *row, int *pruned, rj_diag *dg)
{
    const double budget = S->r->budget;
    double ea, eb, bound_a, bound_b;
    *pruned = 0;
    S->need = NAN;
    RJ_TRY(least_error(S, row, M_B, &eb, &bound_b, dg));
    if (!(eb > budget) || !isfinite(eb))
        return RFJIT_OK; /* met already, or nothing to extrapolate from */
    RJ_TRY(least_error(S, row, M_A, &ea, &bound_a, dg));
    const double slope = log(ea / eb) / log((double)M_B / M_A);
    const double need = M_B * eb / budget;
    const int32_t limit = rj_prune_cost_m(S, row, RJ_PRUNE_COST_FACTOR);
    if (!(slope <= RJ_PRUNE_MAX_SLOPE))
        return RFJIT_OK;
    if (isfinite(bound_b)) {
        row->near_err = bound_b;
        row->near_m = M_B;
    }
    S->need = need;
    if (!(need > RJ_PRUNE_SAFETY * limit))
        return RFJIT_OK;
    *pruned = 1;
    snprintf(row->note, sizeof row->note,
             "not measured further: error %.3g at m = %d needs m ~ %.3g by 1/m (> %g x %d)", eb,
             M_B, need, RJ_PRUNE_SAFETY, limit);
    return RFJIT_OK;
}

int rj_prune_past_cap(rj_search *S, rj_tune_row *row, int32_t cap)
{
    if (!(S->need > RJ_PRUNE_SAFETY * cap))
        return 0;
    snprintf(row->note, sizeof row->note,
             "not measured further: m ~ %.3g needed by 1/m from %d, > %g x %d (exact's time)",
             S->need, M_B, RJ_PRUNE_SAFETY, cap);
    return 1;
}
