/* SPDX-License-Identifier: MIT */
/*
 * This file is the tuner's performance search (architecture.md 6): the tilings worth trying
 * for one kernel on this machine, ranked by a cost model, and a timed search over them that
 * never changes what is computed (estimator, m), only how fast.
 */
#ifndef RJ_TILING_H
#define RJ_TILING_H

#include "runtime/plan.h"

typedef struct rj_tune_tiling_cand {
    rfjit_tiling t;
    double score; /* cost model: lower is better */
    double ms;    /* last timing (NaN: not timed) */
    int rank;
} rj_tune_tiling_cand;

/* Candidates for desc's kernel, best-ranked first (*out rj_alloc'd); a desc that
 * rj_plan_check refuses fails with its message. */
rfjit_status rj_tune_tiling_space(const rfjit_ctx *ctx, const rfjit_attn_desc *desc,
                                  rj_tune_tiling_cand **out, size_t *n, rj_diag *dg);
/* The search of rfjit_tune_tiling; cands are reordered best first (timed ones by time). */
rfjit_status rj_tune_tiling_search(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L,
                                   int patience, rj_tune_tiling_cand *cands, size_t n,
                                   size_t *timed, rj_diag *dg);

/* The tiling search of rfjit_tune_tiling: argument checks, the descriptor checked once by
 * making its plan, then the space and the search; the message of a failure goes to dg. */
rfjit_status rj_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L, int patience,
                            rfjit_tiling *best, double *best_ms, rfjit_tiling_time *times,
                            size_t *n_times, rj_diag *dg);

#endif
