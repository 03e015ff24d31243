/* SPDX-License-Identifier: MIT */
/* This file is rfjit_tune_tiling (include/rfjit.h, Tuning) over the tuner's rj_tune_tiling
 * (tuner/tiling.c). */
#include "api/facade.h"
#include "tuner/tiling.h"

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
