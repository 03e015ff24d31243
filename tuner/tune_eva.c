/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit_tune's search of eva (architecture.md 6): eva has no m, its error and
 * cost are set by its exact window w and its chunk count C (est/eva.c), so it is searched on
 * a small grid, w in {16, 32, 64, 128} and C in {4, 8, 16, 32}. eva draws nothing random
 * (est/eva.c: the proposal's expectation, no samples), so its error is the same on every
 * seed: one evaluation stands for the search seeds' mean, and a bound over seeds would be
 * that one number with no margin at all. Its confirmation is over the calibration data
 * instead (rj_search_data_bound): the calibration queries split into RJ_TUNE_SLICES
 * contiguous runs of positions, the error of each run against exact, and the one-sided 95%
 * Student-t upper bound of their mean must be within the budget. Runs of consecutive tokens
 * are the nearest stand-in for text the tuner never saw; interleaved slices would share every
 * stretch of it and see almost no spread. Each window gets a row with the fewest chunks that
 * pass both, timed at L; the choice among all rows is tune_search.c's. Each window's
 * transform (tune_xform.c) is chosen at its fewest chunks, before its search.
 *
 * The chunk counts are tried in rising cost order and the first that passes wins, so nothing
 * here assumes how eva's error moves with w or C (that is est/eva.c's business and may
 * change). The cost model prunes first: a (w, C) whose modelled flops reach exact's is not
 * measured, nor one whose chunk count a smaller window already met the budget with (its cost
 * grows with w + C), nor a window that holds every key (eva is then exact attention, and on a
 * calibration set that short its error says nothing about L).
 */
#include "tuner/tune_search.h"

#include <math.h>
#include <stdio.h>

_Static_assert(RJ_TUNE_SLICES == RJ_TUNE_CONFIRM_SEEDS, "RJ_TUNE_T95 is Student's t at 7 degrees");

static const int32_t windows[RJ_TUNE_EVA_ROWS] = {16, 32, 64, 128};
enum { N_CHUNKS = 4 };
static const int32_t chunk_counts[N_CHUNKS] = {4, 8, 16, 32};

static int cheaper_than_exact(const rj_tune_req *r, const rj_tune_row *at)
{
    return rj_search_model_flops(r, at->est, 0, at) <
           rj_search_model_flops(r, rj_est_find("exact"), 0, NULL);
}

/* A missed budget: keep the least error bound seen and its chunk count, for "closest". */
static void near_miss(rj_tune_row *row, int32_t chunks, double bound)
{
    if (isfinite(bound) && (!row->near_chunks || bound < row->near_err)) {
        row->near_err = bound;
        row->near_chunks = chunks;
    }
}

/* The search seeds' mean error of at is within the budget; else its bound is a near miss. */
static rfjit_status passes_search(rj_search *S, rj_tune_row *row, const rj_tune_row *at, int *pass,
                                  rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    double mean, sd;
    RJ_TRY(rj_search_error_stats(S, at, r->seed + RJ_TUNE_SEARCH_SEED, 1, &mean, &sd, dg));
    S->done += 1;
    rj_search_progress(S, "eva");
    *pass = mean <= r->budget;
    if (!*pass)
        near_miss(row, at->eva_chunks, mean);
    return RFJIT_OK;
}

rfjit_status rj_search_data_bound(rj_search *S, const rj_tune_row *row, double *mean, double *bound,
                                  rj_diag *dg)
{
    double e[RJ_TUNE_SLICES];
    int n = 0;
    rfjit_attn_desc a = rj_tune_row_desc(S->r, row, S->r->seed + RJ_TUNE_CONFIRM_SEED);
    RJ_TRY(rj_calib_error_slices(S->ctx, &S->cal, S->r->kind, &a, RJ_TUNE_SLICES, e, &n, dg));
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        sum += e[i];
        sum2 += e[i] * e[i];
    }
    *mean = n ? sum / n : INFINITY;
    /* fewer slices than RJ_TUNE_SLICES (a set of fewer queries): no bound at the t of 8 */
    if (n < RJ_TUNE_SLICES || !isfinite(*mean)) {
        *bound = INFINITY;
        return RFJIT_OK;
    }
    const double sd = sqrt(fmax(0, (sum2 - sum * sum / n) / (n - 1)));
    *bound = *mean + RJ_TUNE_T95 * sd / sqrt((double)n);
    return RFJIT_OK;
}

/* The confirmation over the calibration data's slices: row takes at's chunk count, mean and
 * bound. */
static rfjit_status confirm(rj_search *S, rj_tune_row *row, const rj_tune_row *at, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    double mean, bound;
    RJ_TRY(rj_search_data_bound(S, at, &mean, &bound, dg));
    S->done += 1;
    rj_search_progress(S, "eva");
    row->eva_chunks = at->eva_chunks;
    row->measured = mean;
    row->bound = bound;
    row->meets = row->bound <= r->budget;
    if (!row->meets)
        near_miss(row, at->eva_chunks, row->bound);
    return RFJIT_OK;
}

/* row's window with the fewest chunks that pass the search and the confirmation, timed.
 * Only chunk counts under below_chunks (0: any) are tried: a smaller window met the budget
 * with that many, at less cost in the model. */
static rfjit_status search_window(rj_search *S, rj_tune_row *row, int32_t below_chunks, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    int32_t last = 0;
    RJ_TRY(rj_search_xform(S, row, NULL, dg));
    for (int i = 0; i < N_CHUNKS && !row->meets; i++) {
        rj_tune_row at = *row;
        at.eva_chunks = chunk_counts[i];
        if (below_chunks && at.eva_chunks >= below_chunks) {
            snprintf(row->note, sizeof row->note,
                     "a smaller window meets with %d chunks, cheaper in the cost model",
                     below_chunks);
            break;
        }
        if (!cheaper_than_exact(r, &at)) {
            snprintf(row->note, sizeof row->note,
                     "from %d chunks on, the cost model puts it above exact", at.eva_chunks);
            break;
        }
        last = at.eva_chunks;
        int pass;
        RJ_TRY(passes_search(S, row, &at, &pass, dg));
        if (pass)
            RJ_TRY(confirm(S, row, &at, dg));
    }
    if (row->meets) {
        rfjit_attn_desc a = rj_tune_row_desc(r, row, r->seed);
        return rj_search_time(S, &a, &row->time_ms, dg);
    }
    if (last && !row->note[0])
        snprintf(row->note, sizeof row->note, "budget not met with up to %d chunks", last);
    if (!isfinite(row->measured))
        row->eva_chunks = last ? last : chunk_counts[0];
    return RFJIT_OK;
}

rfjit_status rj_search_eva(rj_search *S, const rj_est_ops *eva, rj_tune_row *rows, size_t *n,
                           rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const int64_t keys = r->L < S->cal.lk ? r->L : S->cal.lk;
    int32_t fewest = 0; /* the fewest chunks any window met the budget with (0: none yet) */
    for (int i = 0; i < RJ_TUNE_EVA_ROWS; i++) {
        rj_tune_row *row = &rows[*n];
        *row = (rj_tune_row){.est = eva,
                             .seed = r->seed,
                             .eva_window = windows[i],
                             .eva_chunks = chunk_counts[0],
                             .predicted = NAN,
                             .measured = NAN,
                             .bound = NAN,
                             .time_ms = NAN,
                             .near_err = NAN};
        if (windows[i] >= keys) {
            if (i > 0)
                break;
            snprintf(row->note, sizeof row->note,
                     "window %d holds all %lld keys: that is exact attention", windows[i],
                     (long long)keys);
            ++*n;
            break;
        }
        ++*n;
        RJ_TRY(search_window(S, row, fewest, dg));
        if (row->meets && (!fewest || row->eva_chunks < fewest))
            fewest = row->eva_chunks;
    }
    return RFJIT_OK;
}
