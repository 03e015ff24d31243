/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit_tune_tiling (include/rfjit.h, Tuning): argument checks, then the
 * tuner's tiling space and search (tuner/tiling.c).
 */
#include "ctx.h"
#include "tiling.h"

#include <math.h>

rfjit_status rj_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L, int patience,
                            rfjit_tiling *best, double *best_ms, rfjit_tiling_time *times,
                            size_t *n_times, rj_diag *dg)
{
    if (!desc || !best || !best_ms)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_tune_tiling: %s is NULL",
                       !desc ? "desc" : !best ? "best" : "best_ms");
    if (L < 1 || L > (1 << 24))
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "L = %lld is outside [1, 2^24]", (long long)L);
    if (patience < RFJIT_PATIENCE_ESTIMATE || patience > RFJIT_PATIENCE_EXHAUSTIVE)
        return rj_fail(dg, RFJIT_E_INVALID_ARG,
                       "patience %d is not ESTIMATE, MEASURE, PATIENT or EXHAUSTIVE "
                       "(wisdom is consulted by rfjit_tune)", patience);
    if (times && !n_times)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_tune_tiling: times without n_times");
    /* the plan must exist before any search: this checks the descriptor once, with the
     * same messages as rfjit_plan_create */
    rfjit_attn_desc a = *desc;
    a.tiling = (rfjit_tiling){0, 0, 0, 0};
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    RJ_TRY(rj_plan_create(ctx, &a, &p, dg));
    rfjit_plan_destroy(p);
    rj_tiling_cand *c = NULL;
    size_t n = 0, timed = 0;
    rfjit_status s = rj_tiling_space(ctx, &a, &c, &n, dg);
    if (s == RFJIT_OK && n == 0)
        s = rj_fail(dg, RFJIT_E_NOT_APPLICABLE, "no tiling fits this kernel");
    if (s == RFJIT_OK)
        s = rj_tiling_search(ctx, &a, L, patience, c, n, &timed, dg);
    if (s == RFJIT_OK) {
        *best = c[0].t;
        *best_ms = c[0].ms;
        if (times) {
            const size_t cap = *n_times;
            for (size_t i = 0; i < cap && i < n; i++)
                times[i] = (rfjit_tiling_time){c[i].t, c[i].ms};
            *n_times = n;
        }
    }
    rj_free(c);
    return s;
}

rfjit_status rfjit_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L,
                               int patience, rfjit_tiling *best, double *best_ms,
                               rfjit_tiling_time *times, size_t *n_times)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_tune_tiling: ctx is NULL");
    rj_diag dg = {{0}};
    rfjit_status s = rj_tune_tiling(ctx, desc, L, patience, best, best_ms, times, n_times, &dg);
    return rj_ctx_fail(ctx, s, &dg);
}
