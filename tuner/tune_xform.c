/* SPDX-License-Identifier: MIT */
/*
 * This file chooses a candidate's exact transform (include/rfjit.h RFJIT_XFORM_*) before its
 * search (tune_search.c step 2, tune_eva.c). The transforms leave softmax attention as it is
 * and move only the estimate's error, so the choice is by error alone, measured where the
 * search starts; the search and the confirmation then run with the chosen transform, which
 * the confirmation's budget rule guards like any other part of the plan.
 *
 * The candidates are none and BALANCE after centring: CENTER_K, with CENTER_Q where the
 * estimator's features are e^{w.k + ...} (rj_plan_check says where). Centring alone is not a
 * candidate of the random-feature estimators: on the real heads (data/real) it helped on some
 * and hurt on others (centring k grew positive's error 1.45 -> 1.8 on head 5, m = 256), where
 * the balanced form gained on both heads measured. eva, which draws nothing random, measures
 * centring alone too, at one evaluation per candidate: its error fell 20% with the keys
 * centred on head 5. WHITEN is not a candidate although it gains the most (positive on head
 * 0: 0.215 without a transform, 0.175 balanced, 0.134 whitened): its eigendecompositions per
 * call cost 25 ms at d = 32 (runtime/xform.c), thirty times eva's whole execute at L = 512,
 * so a whitened plan is never the faster one. Exact has nothing to gain; kernel budgets
 * neither, since the transforms act on attention executes only (rfjit_plan_kernel maps the
 * vectors as given).
 *
 * Each candidate is measured at the same m on the same seeds (RJ_TUNE_SEARCH_SEED on), so
 * the candidates differ by their transform and not by their projections; the lowest mean
 * error wins and ties keep the simpler one. Two seeds per candidate (one for an estimator
 * whose error does not depend on the seed) hold the cost to four error evaluations: a seed's
 * error on the real heads spreads by 30-100% around its mean, so two seeds can take a
 * transform that gains little, but not one that loses much, and the confirmation still
 * decides whether the plan meets its budget.
 */
#include "tuner/tune_search.h"

#include "runtime/plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Seeds per candidate for estimators with random parameters. */
#define XFORM_SEEDS 2
/* The largest m a candidate is measured at. The model's m can be thousands, but the error
 * goes as 1/m, so the ratio between two transforms' errors is the same at a small m, where
 * an evaluation costs a fraction: 128 keeps the evaluations under a tenth of a tune's
 * CPU time on the real heads, and far enough from m = 16 that no transform wins on the
 * bias of a handful of features. */
#define XFORM_M_MAX 128

void rj_tune_xform_name(int32_t flags, char *buf, size_t n)
{
    static const char *const names[] = {"center_k", "center_q", "balance", "whiten"};
    size_t at = 0;
    if (n)
        buf[0] = 0;
    for (int i = 0; i < 4; i++)
        if (flags & (1 << i) && at < n) {
            const int w = snprintf(buf + at, n - at, "%s%s", at ? "+" : "", names[i]);
            at += w > 0 ? (size_t)w : 0;
        }
    if (!flags && n)
        snprintf(buf, n, "none");
}

/* Whether est's plans at r's shape accept transform flags. */
static int applies(const rj_tune_req *r, const rj_tune_row *row, int32_t flags)
{
    rj_tune_row at = *row;
    at.transform = flags;
    rfjit_attn_desc a = rj_tune_row_desc(r, &at, r->seed);
    rj_spec s;
    rj_diag why = {{0}};
    return rj_plan_check(&a, &s, &why) == RFJIT_OK;
}

int rj_search_seedless(const rj_est_ops *est)
{
    return (est->flags & RJ_EST_NOPROJ) != 0;
}

/* The candidates for row's estimator (none first), their count. */
static int candidates(const rj_tune_req *r, const rj_tune_row *row, int32_t x[3])
{
    int32_t centre = RFJIT_XFORM_CENTER_K;
    if (applies(r, row, centre | RFJIT_XFORM_CENTER_Q))
        centre |= RFJIT_XFORM_CENTER_Q;
    int n = 0;
    x[n++] = 0;
    if (rj_search_seedless(row->est))
        x[n++] = centre;
    x[n++] = centre | RFJIT_XFORM_BALANCE;
    return n;
}

rfjit_status rj_search_xform(rj_search *S, rj_tune_row *row, int32_t *m, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    row->transform = 0;
    row->xform_ratio = 0;
    if (!r->transforms || r->kind == RFJIT_BUDGET_KERNEL || row->est->tmpl == RJ_TMPL_SOFTMAX)
        return RFJIT_OK;
    int32_t x[3];
    const int n = candidates(r, row, x);
    const int seeds = rj_search_seedless(row->est) ? 1 : XFORM_SEEDS;
    rj_tune_row at = *row;
    if (at.m > XFORM_M_MAX)
        at.m = XFORM_M_MAX;
    if (m)
        at.m = *m < XFORM_M_MAX ? *m : XFORM_M_MAX;
    double none = INFINITY, best = INFINITY;
    for (int i = 0; i < n; i++) {
        at.transform = x[i];
        if (x[i] && !applies(r, &at, x[i]))
            continue;
        double mean, sd;
        RJ_TRY(rj_search_error_stats(S, &at, r->seed + RJ_TUNE_SEARCH_SEED, seeds, &mean, &sd, dg));
        if (i == 0)
            none = best = mean;
        else if (mean < best) {
            best = mean;
            row->transform = x[i];
        }
    }
    S->done += 1;
    rj_search_progress(S, row->est->name);
    if (!row->transform)
        return RFJIT_OK;
    row->xform_ratio = isfinite(none) && none > 0 ? best / none : 0;
    /* the error goes as 1/m: the model's m, made for the untransformed rows, shrinks alike */
    if (m && row->xform_ratio > 0) {
        const double s = ceil(*m * row->xform_ratio / RJ_TUNE_M_STEP) * RJ_TUNE_M_STEP;
        *m = s < RJ_TUNE_M_STEP ? RJ_TUNE_M_STEP : (int32_t)s;
    }
    return RFJIT_OK;
}
