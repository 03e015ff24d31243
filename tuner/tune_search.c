/* SPDX-License-Identifier: MIT */
/*
 * This file is the statistical and timing search of rfjit_tune (architecture.md 6):
 *
 *  1. exact attention is timed at L: it always meets the budget, and it caps every other
 *     candidate, since a random-feature plan slower than exact can never be chosen;
 *  2. per candidate estimator, m0 = e1 / budget from the variance model (tune_model.c), then
 *     Monte Carlo on the calibration set with RJ_TUNE_SEARCH_SEEDS seeds: halve or double
 *     from m0 to bracket the budget, bisect to a step of RJ_TUNE_M_STEP, and confirm on
 *     RJ_TUNE_CONFIRM_SEEDS fresh seeds: the one-sided 95% Student-t upper bound of the mean
 *     error must be at or under the budget, else m grows by a quarter and is confirmed again;
 *     before the search, the candidate's transform is chosen at m0 (tune_xform.c), and m0
 *     shrinks by the error ratio it gained;
 *     eva, which has no m, is searched over its window and chunk count (tune_eva.c), one row
 *     per window; it has no random parameters, so its bound is not over seeds, where it
 *     would have no spread, but over the data: the one-sided 95% Student-t upper bound of
 *     the mean error over RJ_TUNE_SLICES contiguous slices of the calibration queries must
 *     be at or under the budget (any estimator whose error does not depend on the seed
 *     would need that rule; eva is the only one among the estimators);
 *     exact attention in bfloat16 (rfjit_attn_desc.compute) is one more row where the
 *     context runs it (tune_bf16.c): no m and no random parameters either, so its bound is
 *     the same one over slices;
 *  3. each survivor is timed at L with the default tiling; the fastest row wins, and its
 *     tiling is searched (rfjit_tune_tiling) at MEASURE and above.
 *
 * Candidates that cannot win are dropped before step 2's search, with a note (tune_prune.c
 * says why each rule is safe): (a) one whose cost model at the smallest m is over 4 times
 * exact's; (b) one whose least error over the search seeds at m = 32 and 128 falls no faster
 * than m^-1.5 and, extrapolated as 1/m from 128, needs over 4 times the largest m the tuner
 * tries or the m where the cost model puts it at 4 times exact's cost (or, once timed, the m
 * where it takes exact's time: find_m). Signed estimators on the real-like profile take
 * their tail probe before (b), at an m the cost model puts within twice exact's cost. The
 * tiling search times its candidates at L / 4 from L = 1024 on and its winner at L, where it
 * must beat the default (tile_chosen). Nothing here chooses a plan without step 2's
 * confirmation. RFJIT_VERBOSE notes the time per phase (tune_clock.h).
 *
 * Times are extrapolated linearly in m from the first timing of an estimator, so a search
 * stops as soon as the estimator would be slower than exact. Under ESTIMATE nothing runs:
 * m0 stands, and times come from the estimators' flop counts at a nominal rate.
 */
#include "tuner/tune_search.h"
#include "core/philox.h"
#include "runtime/tensor.h"
#include "tuner/tiling.h"
#include "tuner/tune.h"
#include "tuner/tune_prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ESTIMATE's nominal rate: a quarter of one core's FMA peak at 2.5 GHz. */
#define NOMINAL_GHZ 2.5
#define NOMINAL_EFFICIENCY 0.25

static int32_t step_up(double m)
{
    double s = ceil(m / RJ_TUNE_M_STEP) * RJ_TUNE_M_STEP;
    return s < RJ_TUNE_M_STEP ? RJ_TUNE_M_STEP : s > RJ_TUNE_M_MAX ? RJ_TUNE_M_MAX + RJ_TUNE_M_STEP
                                                                  : (int32_t)s;
}

void rj_search_progress(rj_search *S, const char *what)
{
    /* the step count is a guess until the end: never claim to be done early */
    const double f = S->total > 0 ? fmin(S->done / S->total, 0.99) : 0;
    if (S->r->progress)
        S->r->progress(S->r->progress_user, f, what);
}

/* Mean and sample deviation of the error of row's plan over n seeds from seed0. */
rfjit_status rj_search_error_stats(rj_search *S, const rj_tune_row *row, uint64_t seed0, int n,
                                   double *mean, double *sd, rj_diag *dg)
{
    double sum = 0, sum2 = 0;
    const double t0 = rj_now_s();
    for (int i = 0; i < n; i++) {
        rfjit_attn_desc a = rj_tune_row_desc(S->r, row, seed0 + (uint64_t)i);
        double e;
        RJ_TRY(rj_calib_error(S->ctx, &S->cal, S->r->kind, &a, &e, dg));
        if (!isfinite(e))
            e = INFINITY;
        sum += e;
        sum2 += e * e;
    }
    rj_tune_clock_errors(&S->clock, rj_now_s() - t0, n);
    *mean = sum / n;
    *sd = n > 1 && isfinite(*mean) ? sqrt(fmax(0, (sum2 - sum * sum / n) / (n - 1))) : 0;
    return RFJIT_OK;
}

/* rj_search_error_stats of row's estimator at m. */
static rfjit_status m_stats(rj_search *S, const rj_tune_row *row, int32_t m, uint64_t seed0, int n,
                            double *mean, double *sd, rj_diag *dg)
{
    rj_tune_row at = *row;
    at.m = m;
    return rj_search_error_stats(S, &at, seed0, n, mean, sd, dg);
}

/* A missed budget: keep the least error bound seen, for the "closest" answer. */
static void near_miss(rj_tune_row *row, int32_t m, double bound)
{
    if (isfinite(bound) && (!row->near_m || bound < row->near_err)) {
        row->near_err = bound;
        row->near_m = m;
    }
}

/* Median of 5 warm executes of a at L, in ms. */
rfjit_status rj_search_time(rj_search *S, const rfjit_attn_desc *a, double *ms, rj_diag *dg)
{
    rfjit_plan *p = NULL;
    const double started = rj_now_s();
    rfjit_status s = rj_plan_create(S->ctx, a, &p, dg);
    if (s != RFJIT_OK)
        return s;
    const int64_t L = S->r->L;
    rfjit_tensor tq = rj_tensor_contiguous(S->tq, 1, 1, L, S->r->d);
    rfjit_tensor tk = rj_tensor_contiguous(S->tk, 1, 1, L, S->r->d);
    rfjit_tensor tv = rj_tensor_contiguous(S->tv, 1, 1, L, S->r->dv);
    rfjit_tensor to = rj_tensor_contiguous(S->to, 1, 1, L, S->r->dv);
    double t[5];
    s = rj_plan_execute(p, &tq, &tk, &tv, &to, dg);
    for (int i = 0; i < 5 && s == RFJIT_OK; i++) {
        const double t0 = rj_now_s();
        s = rj_plan_execute(p, &tq, &tk, &tv, &to, dg);
        t[i] = 1e3 * (rj_now_s() - t0);
    }
    rj_plan_free(p);
    rj_tune_clock_timing(&S->clock, rj_now_s() - started);
    *ms = rj_median(t, 5);
    return s;
}

/* Work in flops of one execute at L under the estimator's cost model. */
double rj_search_model_flops(const rj_tune_req *r, const rj_est_ops *est, int32_t m,
                             const rj_tune_row *row)
{
    const int eva = row && row->eva_window > 0, bs = row && row->sparse_block > 0;
    rj_spec s = {0};
    s.est = est;
    s.d = r->d;
    s.dv = r->dv;
    s.m = m > 0 ? m : RJ_TUNE_M_STEP;
    s.causal = r->causal;
    s.hrf_n = 8;
    s.eva_window = eva ? row->eva_window : 16;
    s.eva_chunks = eva ? row->eva_chunks : 8;
    s.sparse_block = bs ? row->sparse_block : 64;
    s.sparse_exact = bs ? row->sparse_exact : 4;
    double flops = 0, bytes = 0;
    est->cost(&s, &flops, &bytes);
    const double L = (double)r->L;
    /* exact's cost is per (query, key) pair, the others' per token */
    if (est->tmpl == RJ_TMPL_SOFTMAX)
        return flops * L * (r->causal ? (L + 1) / 2 : L);
    return flops * L;
}

static double model_ms(const rj_search *S, const rj_est_ops *est, int32_t m)
{
    const double rate = S->ctx->isa.max_vw * 2.0 * NOMINAL_GHZ * 1e9 * NOMINAL_EFFICIENCY;
    return 1e3 * rj_search_model_flops(S->r, est, m, NULL) / rate;
}

static int allowed(const rj_tune_req *r, const rj_est_ops *est, char *why, size_t n)
{
    if (r->causal && (est->flags & RJ_EST_FITTED)) {
        snprintf(why, n, "fits on the whole sequence: not valid causally");
        return 0;
    }
    if (est->tmpl == RJ_TMPL_EVA && r->kind == RFJIT_BUDGET_KERNEL) {
        snprintf(why, n, "no kernel estimate (no feature map): output budgets only");
        return 0;
    }
    if (est->tmpl == RJ_TMPL_EVA && r->patience == RFJIT_PATIENCE_ESTIMATE) {
        snprintf(why, n, "no error model: its window and chunks are searched by measuring");
        return 0;
    }
    if (est->tmpl == RJ_TMPL_BLOCKSPARSE && r->kind == RFJIT_BUDGET_KERNEL) {
        snprintf(why, n,
                 "no kernel estimate (its exact blocks depend on the call): output "
                 "budgets only");
        return 0;
    }
    if (est->tmpl == RJ_TMPL_BLOCKSPARSE && r->patience == RFJIT_PATIENCE_ESTIMATE) {
        snprintf(why, n, "no error model: its m and exact blocks are searched by measuring");
        return 0;
    }
    return 1;
}

static int32_t step_down(double m)
{
    return (int32_t)(floor(m / RJ_TUNE_M_STEP) * RJ_TUNE_M_STEP);
}

/* The largest m at which the estimator is still faster than exact at L (0: none, or below
 * one step), from two timings: t = a + b m fitted through a modest m and the linear guess,
 * so fixed costs (fits, statistics) do not make the cap too low. */
static rfjit_status exact_cap(rj_search *S, const rj_tune_row *row, int32_t m0, int32_t *cap,
                              rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const int32_t m1 = m0 < 8 * RJ_TUNE_M_STEP ? m0 : 8 * RJ_TUNE_M_STEP;
    double t1, t2;
    rj_tune_row at = *row;
    at.m = m1;
    rfjit_attn_desc a = rj_tune_row_desc(r, &at, r->seed);
    RJ_TRY(rj_search_time(S, &a, &t1, dg));
    int32_t c = step_down(m1 * S->t_exact / t1);
    if (c > m1) {
        at.m = c > RJ_TUNE_M_MAX ? RJ_TUNE_M_MAX : c;
        a = rj_tune_row_desc(r, &at, r->seed);
        RJ_TRY(rj_search_time(S, &a, &t2, dg));
        const double slope = (t2 - t1) / (a.m - m1);
        if (slope > 0)
            c = step_down(m1 + (S->t_exact - t1) / slope);
    }
    *cap = c > RJ_TUNE_M_MAX ? RJ_TUNE_M_MAX : c;
    return RFJIT_OK;
}

/* The smallest m (a multiple of the step) whose search-seed mean error meets the budget, or
 * 0 when none does at or below the cap where the estimator stops being faster than exact. */
static rfjit_status find_m(rj_search *S, rj_tune_row *row, int32_t m0, int32_t *m_out, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const uint64_t seed0 = r->seed + RJ_TUNE_SEARCH_SEED;
    int32_t cap = S->cap;
    *m_out = 0;
    if (!cap)
        RJ_TRY(exact_cap(S, row, m0, &cap, dg));
    if (cap < RJ_TUNE_M_STEP) {
        snprintf(row->note, sizeof row->note, "slower than exact at any m");
        return RFJIT_OK;
    }
    if (rj_prune_past_cap(S, row, cap))
        return RFJIT_OK;
    int32_t lo = 0, hi = 0; /* lo fails (0: none known), hi meets (0: none known) */
    int32_t m = m0 < cap ? m0 : cap;
    for (;;) {
        double mean, sd;
        RJ_TRY(m_stats(S, row, m, seed0, RJ_TUNE_SEARCH_SEEDS, &mean, &sd, dg));
        S->done += 1;
        rj_search_progress(S, row->est->name);
        if (mean <= r->budget) {
            hi = m;
            if (lo || m <= RJ_TUNE_M_STEP)
                break;
            m = step_up(m / 2.0);
            if (m >= hi) /* m0 was one step */
                break;
        } else {
            lo = m;
            near_miss(row, m, mean + RJ_TUNE_T95_SEARCH * sd / sqrt((double)RJ_TUNE_SEARCH_SEEDS));
            if (hi)
                break;
            if (m >= cap) {
                snprintf(row->note, sizeof row->note,
                         "budget not met up to m = %d, past which exact is faster", cap);
                break;
            }
            m = step_up(m * 2.0) < cap ? step_up(m * 2.0) : cap;
        }
    }
    while (hi && hi - lo > RJ_TUNE_M_STEP) {
        const int32_t mid = step_up((lo + hi) / 2.0 - RJ_TUNE_M_STEP / 2.0);
        if (mid <= lo || mid >= hi)
            break;
        double mean, sd;
        RJ_TRY(m_stats(S, row, mid, seed0, RJ_TUNE_SEARCH_SEEDS, &mean, &sd, dg));
        S->done += 1;
        rj_search_progress(S, row->est->name);
        if (mean <= r->budget) {
            hi = mid;
        } else {
            lo = mid;
            near_miss(row, mid,
                      mean + RJ_TUNE_T95_SEARCH * sd / sqrt((double)RJ_TUNE_SEARCH_SEEDS));
        }
    }
    *m_out = hi;
    return RFJIT_OK;
}

/* With an extrapolated need (tune_prune.c), the timings that find_m would make come first,
 * so a candidate that needs m far past exact's time is dropped before its variance model
 * (the costliest part of some, aderf's) and its errors at large m. */
static rfjit_status cap_first(rj_search *S, rj_tune_row *row, int *pruned, rj_diag *dg)
{
    if (!isfinite(S->need))
        return RFJIT_OK;
    RJ_TRY(exact_cap(S, row, 8 * RJ_TUNE_M_STEP, &S->cap, dg));
    if (S->cap < RJ_TUNE_M_STEP) {
        snprintf(row->note, sizeof row->note, "slower than exact at any m");
        *pruned = 1;
    } else {
        *pruned = rj_prune_past_cap(S, row, S->cap);
    }
    return RFJIT_OK;
}

/* Confirmation on fresh seeds, growing m until the bound holds. */
static rfjit_status confirm(rj_search *S, rj_tune_row *row, int32_t m, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    for (int tries = 0; tries < 6 && m <= RJ_TUNE_M_MAX; tries++) {
        double mean, sd;
        RJ_TRY(m_stats(S, row, m, r->seed + RJ_TUNE_CONFIRM_SEED, RJ_TUNE_CONFIRM_SEEDS, &mean, &sd,
                       dg));
        S->done += 1;
        rj_search_progress(S, row->est->name);
        row->m = m;
        row->measured = mean;
        row->bound = mean + RJ_TUNE_T95 * sd / sqrt((double)RJ_TUNE_CONFIRM_SEEDS);
        if (row->bound <= r->budget) {
            row->meets = 1;
            return RFJIT_OK;
        }
        near_miss(row, m, row->bound);
        m = step_up(m * 1.25);
    }
    snprintf(row->note, sizeof row->note, "fresh seeds missed the budget up to m = %d", row->m);
    return RFJIT_OK;
}

static void mark_pareto(rj_tune_out *o)
{
    for (size_t i = 0; i < o->n; i++) {
        rj_tune_row *a = &o->rows[i];
        const double ea = isfinite(a->measured) ? a->measured : a->predicted;
        a->pareto = a->meets;
        for (size_t j = 0; j < o->n && a->pareto; j++) {
            const rj_tune_row *b = &o->rows[j];
            const double eb = isfinite(b->measured) ? b->measured : b->predicted;
            if (j != i && b->meets && b->time_ms <= a->time_ms && eb <= ea &&
                (b->time_ms < a->time_ms || eb < ea))
                a->pareto = 0;
        }
    }
}

static int cmp_rows(const void *x, const void *y)
{
    const rj_tune_row *a = x, *b = y;
    if (a->meets != b->meets)
        return b->meets - a->meets;
    const double ta = isfinite(a->time_ms) ? a->time_ms : INFINITY;
    const double tb = isfinite(b->time_ms) ? b->time_ms : INFINITY;
    return (ta > tb) - (ta < tb);
}

void rj_tune_out_free(rj_tune_out *o)
{
    rj_free(o->rows);
    memset(o, 0, sizeof *o);
}

/* Progress steps counted for each candidate estimator: about how many error evaluations
 * (bracketing, bisection, confirmation) one search takes. A guess, so progress() never
 * reports more than 0.99 before the end. */
enum { PROGRESS_STEPS_PER_ESTIMATOR = 12 };

static double progress_steps(const rj_tune_req *r)
{
    double total = 1; /* the yardstick */
    for (int e = 0; e < rj_est_count; e++)
        if (r->est_mask & (1u << e)) /* eva, blocksparse: an estimator's worth per row */
            total += PROGRESS_STEPS_PER_ESTIMATOR *
                     (rj_est_registry[e]->tmpl == RJ_TMPL_EVA           ? RJ_TUNE_EVA_ROWS
                      : rj_est_registry[e]->tmpl == RJ_TMPL_BLOCKSPARSE ? RJ_TUNE_BS_ROWS
                                                                        : 1);
    return total;
}

/* The timing problem at L (MEASURE and above): one (batch, head) of q, k, v and out. */
static rfjit_status timing_problem(rj_search *S, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const size_t n = (size_t)r->L;
    RJ_FAIL_IF(dg, !rj_fits_memory(n * (size_t)(2 * r->d + 2 * r->dv) * sizeof(float)),
               RFJIT_E_TOO_LARGE,
               "the timing problem (L = %lld, d = %d, dv = %d) does not fit this machine's "
               "memory; tune a shorter L or with patience estimate",
               (long long)r->L, r->d, r->dv);
    S->tq = rj_alloc_array(n * (size_t)r->d, sizeof(float));
    S->tk = rj_alloc_array(n * (size_t)r->d, sizeof(float));
    S->tv = rj_alloc_array(n * (size_t)r->dv, sizeof(float));
    S->to = rj_alloc_array(n * (size_t)r->dv, sizeof(float));
    RJ_FAIL_IF(dg, !S->tq || !S->tk || !S->tv || !S->to, RFJIT_E_NOMEM,
               "no memory for the timing problem (L = %lld)", (long long)r->L);
    rj_fill_normal(S->tq, n * (size_t)r->d, 1.0, r->seed, RJ_STREAM_TUNE_TIMING + RJ_PART_Q);
    rj_fill_normal(S->tk, n * (size_t)r->d, 1.0, r->seed, RJ_STREAM_TUNE_TIMING + RJ_PART_K);
    rj_fill_normal(S->tv, n * (size_t)r->dv, 1.0, r->seed, RJ_STREAM_TUNE_TIMING + RJ_PART_V);
    return RFJIT_OK;
}

/* Exact attention's row, timed (or modelled) at L: the yardstick that caps every other
 * candidate's time. */
static rfjit_status yardstick(rj_search *S, const rj_est_ops *exact, rj_tune_row *x, int measure,
                              rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    *x = (rj_tune_row){.est = exact, .seed = r->seed, .meets = 1};
    if (measure) {
        rfjit_attn_desc a = rj_tune_desc_of(r, exact, 0, r->seed);
        RJ_TRY(rj_search_time(S, &a, &x->time_ms, dg));
    } else {
        x->time_ms = model_ms(S, exact, 0);
    }
    S->t_exact = x->time_ms;
    S->done += 1;
    rj_search_progress(S, "exact");
    return RFJIT_OK;
}

/* Whether the tails of a signed estimator's error are checked: only on the real-like
 * synthetic set. With the user's own data the usual rule applies, and the Gaussian profile
 * is the caller's explicit choice. */
static int tails_checked(const rj_tune_req *r, const rj_est_ops *est)
{
    return (est->flags & RJ_EST_SIGNED) && !r->cq && r->profile == RFJIT_PROFILE_REAL_LIKE;
}

/* Refuse a signed estimator whose error is heavy-tailed across projection seeds. Signed
 * features make the softmax normaliser a sum that can come near zero, and where the rows are
 * long and share a mean (the real-like profile) it does on some seeds: their errors are
 * orders of magnitude above the others', which a mean and a t bound over 8 seeds do not
 * reliably see. The rule is on the spread of RJ_TUNE_CONFIRM_SEEDS errors, largest over
 * smallest (the median was tried: with tails this heavy the median itself lands among the
 * bad seeds half the time). A light-tailed error sums squared residuals over every query and
 * output column; the seed-to-seed spread the tuner measures on Gaussian rows is about 0.1 of
 * the mean, a chi-square with some 200 degrees of freedom, whose largest of 8 draws is within
 * 2 times the smallest; even with 16 degrees of freedom the chance of a factor 10 is 7e-4.
 * On the real-like rows at d = 32 trig and hybrid spread by factors of 15 to 1000. So 10
 * separates them with room on both sides. An error that is the same bad value on every seed
 * (it happens: the normaliser's guard answers alike) is not a tail: the budget refuses it.
 * The probe runs at the model's m, at most RJ_TUNE_M_MAX / 8 to stay cheap, and at most
 * where the cost model puts the estimator at PROBE_COST_FACTOR times exact's cost: past it
 * the estimator cannot be faster than exact (tune_prune.c: the model overstates a kernel's
 * time relative to exact's by at most 1.7x), so its tails there do not matter. */
#define PROBE_COST_FACTOR 2.0
static rfjit_status heavy_tailed(rj_search *S, rj_tune_row *row, int32_t m0, int *heavy,
                                 rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const int32_t cheap = rj_prune_cost_m(S, row, PROBE_COST_FACTOR);
    const int32_t m = m0 < RJ_TUNE_M_MAX / 8
                          ? (m0 < cheap ? m0 : cheap)
                          : (RJ_TUNE_M_MAX / 8 < cheap ? RJ_TUNE_M_MAX / 8 : cheap);
    double sum = 0, lo = INFINITY, hi = 0;
    const double t0 = rj_now_s();
    for (int i = 0; i < RJ_TUNE_CONFIRM_SEEDS; i++) {
        rj_tune_row at = *row;
        at.m = m;
        rfjit_attn_desc a = rj_tune_row_desc(r, &at, r->seed + 2001 + (uint64_t)i);
        double e;
        RJ_TRY(rj_calib_error(S->ctx, &S->cal, r->kind, &a, &e, dg));
        if (!isfinite(e))
            e = INFINITY;
        sum += e;
        lo = fmin(lo, e);
        hi = fmax(hi, e);
    }
    rj_tune_clock_errors(&S->clock, rj_now_s() - t0, RJ_TUNE_CONFIRM_SEEDS);
    S->done += 1;
    rj_search_progress(S, row->est->name);
    const double ratio = lo > 0 ? hi / lo : INFINITY;
    *heavy = !(ratio <= RJ_TUNE_HEAVY_RATIO) && hi > 0;
    if (*heavy) {
        row->m = m;
        row->measured = sum / RJ_TUNE_CONFIRM_SEEDS;
        snprintf(row->note, sizeof row->note,
                 "heavy-tailed on the real-like profile: max/min error %.3g over %d seeds", ratio,
                 RJ_TUNE_CONFIRM_SEEDS);
    }
    return RFJIT_OK;
}

/* Under ESTIMATE the model's m and time; otherwise the searched m, confirmed on fresh seeds,
 * and its time at L when it meets the budget. */
rfjit_status rj_search_row(rj_search *S, rj_tune_row *row, int measure, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const rj_est_ops *est = row->est;
    if (!allowed(r, est, row->note, sizeof row->note))
        return RFJIT_OK;
    S->need = NAN;
    S->cap = 0;
    int pruned = measure && rj_prune_by_cost(S, row);
    if (!pruned && measure && !tails_checked(r, est)) /* their tails are probed first */
        RJ_TRY(rj_prune_by_error(S, row, &pruned, dg));
    if (!pruned && measure && !tails_checked(r, est))
        RJ_TRY(cap_first(S, row, &pruned, dg));
    if (pruned)
        return RFJIT_OK;
    double e1;
    RJ_TRY(rj_model_error1(S->ctx, &S->cal, r->kind, est, &e1, dg));
    const int32_t m0 = isfinite(e1) ? step_up(e1 / r->budget) : 4 * RJ_TUNE_M_STEP;
    if (!measure && tails_checked(r, est)) {
        snprintf(row->note, sizeof row->note,
                 "signed: its tails on the real-like profile need measure or more patience");
        return RFJIT_OK;
    }
    if (!measure) {
        row->m = m0 <= RJ_TUNE_M_MAX ? m0 : 0;
        row->predicted = isfinite(e1) && row->m ? e1 / row->m : NAN;
        row->meets = row->m && row->predicted <= r->budget;
        row->time_ms = row->m ? model_ms(S, est, row->m) : NAN;
        if (!row->m) {
            snprintf(row->note, sizeof row->note, "model needs m > %d", RJ_TUNE_M_MAX);
            near_miss(row, RJ_TUNE_M_MAX, e1 / RJ_TUNE_M_MAX);
        }
        return RFJIT_OK;
    }
    int heavy = 0;
    if (tails_checked(r, est))
        RJ_TRY(heavy_tailed(S, row, m0, &heavy, dg));
    if (heavy)
        return RFJIT_OK;
    if (tails_checked(r, est))
        RJ_TRY(rj_prune_by_error(S, row, &pruned, dg));
    if (pruned)
        return RFJIT_OK;
    int32_t m = 0, m1 = m0 <= RJ_TUNE_M_MAX ? m0 : RJ_TUNE_M_MAX;
    RJ_TRY(rj_search_xform(S, row, &m1, dg));
    RJ_TRY(find_m(S, row, m1, &m, dg));
    if (!m)
        return RFJIT_OK;
    RJ_TRY(confirm(S, row, m, dg));
    /* the model is of the rows as given: a transform's measured ratio carries it over */
    row->predicted = isfinite(e1) ? e1 * (row->transform ? row->xform_ratio : 1) / row->m : NAN;
    if (row->meets) {
        rfjit_attn_desc a = rj_tune_row_desc(r, row, r->seed);
        RJ_TRY(rj_search_time(S, &a, &row->time_ms, dg));
    }
    return RFJIT_OK;
}

/* The chosen row's tiling search; its default tiling stays unless the search beats it. The
 * search times its candidates at a quarter of L from TILING_SHORT_L on (exact's runs there
 * cost a sixteenth, a linear kernel's a quarter), and its winner is then timed at L like
 * the default was, so a tiling is only taken for being faster at L. */
#define TILING_SHORT_L 1024
static rfjit_status tile_chosen(rj_search *S, rj_tune_row *c, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    rj_search_progress(S, "tiling");
    rfjit_attn_desc a = rj_tune_row_desc(r, c, r->seed);
    double ms = NAN;
    rj_diag why = {{0}};
    const int64_t L = r->L >= TILING_SHORT_L ? r->L / 4 : r->L;
    rfjit_status s = rj_tune_tiling(S->ctx, &a, L, r->patience, &c->tiling, &ms, NULL, NULL, &why);
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "tiling search: %s", why.msg);
    if (L != r->L && isfinite(ms)) {
        a.tiling = c->tiling;
        RJ_TRY(rj_search_time(S, &a, &ms, dg));
    }
    if (isfinite(ms) && ms < c->time_ms)
        c->time_ms = ms;
    else
        c->tiling = (rfjit_tiling){0, 0, 0, 0};
    return RFJIT_OK;
}

/* The phases of the file's opening comment: calibration set and timing problem, the exact
 * yardstick, one search per candidate, the choice, its tiling, and the Pareto marks. */
static rfjit_status run(rj_search *S, rj_tune_out *o, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const int measure = r->patience != RFJIT_PATIENCE_ESTIMATE;
    o->rows = rj_alloc_array(2 * (size_t)rj_est_count + RJ_TUNE_EVA_ROWS +
                                 RJ_TUNE_BS_ROWS /* and
each estimator's bf16 twin */,
                             sizeof *o->rows);
    RJ_FAIL_IF(dg, !o->rows, RFJIT_E_NOMEM, "no memory for the tuner's table");
    rj_tune_clock_phase(&S->clock, "calibration");
    RJ_TRY(rj_calib_make(S->ctx, r, &S->cal, dg));
    snprintf(o->calib, sizeof o->calib, "%s", S->cal.what);
    if (measure)
        RJ_TRY(timing_problem(S, dg));
    S->total = progress_steps(r);
    const rj_est_ops *exact = rj_est_find("exact");
    rj_tune_clock_phase(&S->clock, "exact");
    RJ_TRY(yardstick(S, exact, &o->rows[o->n++], measure, dg));
    rj_tune_clock_phase(&S->clock, "exact bf16");
    RJ_TRY(rj_search_bf16(S, exact, o->rows, &o->n, dg));
    for (int e = 0; e < rj_est_count; e++) {
        const rj_est_ops *est = rj_est_registry[e];
        if (!(r->est_mask & (1u << e)) || est == exact)
            continue;
        rj_tune_clock_phase(&S->clock, est->name);
        if (est->tmpl == RJ_TMPL_EVA && allowed(r, est, NULL, 0) && measure) {
            RJ_TRY(rj_search_eva(S, est, o->rows, &o->n, dg));
            continue;
        }
        if (est->tmpl == RJ_TMPL_BLOCKSPARSE && allowed(r, est, NULL, 0)) {
            RJ_TRY(rj_search_blocksparse(S, est, o->rows, &o->n, measure, dg));
            continue;
        }
        rj_tune_row *row = &o->rows[o->n++];
        *row = (rj_tune_row){.est = est,
                             .seed = r->seed,
                             .predicted = NAN,
                             .measured = NAN,
                             .bound = NAN,
                             .time_ms = NAN,
                             .near_err = NAN};
        RJ_TRY(rj_search_row(S, row, measure, dg));
        if (est->tmpl == RJ_TMPL_LINEAR)
            RJ_TRY(rj_search_bf16_twin(S, row, o->rows, &o->n, dg));
    }
    qsort(o->rows, o->n, sizeof *o->rows, cmp_rows);
    o->chosen = 0; /* fastest that meets: exact always does */
    o->rows[0].chosen = 1;
    rj_tune_clock_phase(&S->clock, "tiling");
    if (r->patience >= RFJIT_PATIENCE_MEASURE && r->patience <= RFJIT_PATIENCE_EXHAUSTIVE)
        RJ_TRY(tile_chosen(S, &o->rows[0], dg));
    mark_pareto(o);
    if (r->progress)
        r->progress(r->progress_user, 1.0, "done");
    return RFJIT_OK;
}

/* Where the time went (tune_clock.h), as verbose notes. */
static void note_clock(rj_search *S, double wall_s)
{
    rj_tune_clock_phase(&S->clock, NULL);
    char line[160];
    snprintf(line, sizeof line, "tune: %.2f s in all, by phase:", wall_s);
    rj_ctx_note(S->ctx, 2, line);
    for (int i = 0; i < S->clock.n; i++) {
        rj_tune_clock_line(&S->clock, i, line, sizeof line);
        rj_ctx_note(S->ctx, 2, line);
    }
}

rfjit_status rj_tune_run(rfjit_ctx *ctx, const rj_tune_req *r, rj_tune_out *out, rj_diag *dg)
{
    memset(out, 0, sizeof *out);
    rj_search S = {.ctx = ctx, .r = r};
    const double t0 = rj_now_s();
    rfjit_status s = run(&S, out, dg);
    out->wall_s = rj_now_s() - t0;
    if (s == RFJIT_OK)
        note_clock(&S, out->wall_s);
    rj_calib_free(&S.cal);
    rj_free(S.tq);
    rj_free(S.tk);
    rj_free(S.tv);
    rj_free(S.to);
    if (s != RFJIT_OK)
        rj_tune_out_free(out);
    return s;
}
