/* SPDX-License-Identifier: MIT */
/*
 * This file is what the searches of rfjit_tune share (architecture.md 6): the state of one
 * tune, the error of a row's plan over seeds, its time at L and the cost model's flops.
 * tune_search.c searches m per estimator and runs the whole tune; tune_eva.c searches eva's
 * window and chunk count; tune_xform.c chooses a candidate's transform. Not for: callers outside
 * tuner/ (tune.h is the tuner's inside).
 */
#ifndef RJ_TUNE_SEARCH_H
#define RJ_TUNE_SEARCH_H

#include "tuner/tune.h"
#include "tuner/tune_clock.h"

/* One-sided 95% Student t quantile with RJ_TUNE_SEARCH_SEEDS - 1 degrees of freedom. */
#define RJ_TUNE_T95_SEARCH 2.353363
/* The first search and confirmation seeds, offsets from the request's seed: every candidate
 * is measured on the same seeds, and the confirmation's are seeds the search never saw. */
#define RJ_TUNE_SEARCH_SEED 1
#define RJ_TUNE_CONFIRM_SEED 1001

typedef struct rj_search {
    rfjit_ctx *ctx;
    const rj_tune_req *r;
    rj_calib cal;
    float *tq, *tk, *tv, *to; /* timing problem at L */
    double t_exact;
    double done, total; /* progress */
    rj_tune_clock clock;
    double need; /* the running candidate's m by tune_prune.c's extrapolation (NaN: none) */
    int32_t cap; /* the running candidate's m at exact's time, once timed (0: not yet) */
} rj_search;

void rj_search_progress(rj_search *S, const char *what);

/* Mean and sample deviation of the error of row's plan (rj_tune_row_desc) over n seeds from
 * seed0 on the calibration set; a non-finite error counts as infinite. */
rfjit_status rj_search_error_stats(rj_search *S, const rj_tune_row *row, uint64_t seed0, int n,
                                   double *mean, double *sd, rj_diag *dg);

/* Median of 5 warm executes of a on the timing problem at L, in ms. */
rfjit_status rj_search_time(rj_search *S, const rfjit_attn_desc *a, double *ms, rj_diag *dg);

/* Flops of one execute at L under est's cost model, at m, with row's eva window and chunk
 * count and blocksparse block size and exact block count where it has them (NULL or 0: the
 * descriptor's defaults). */
double rj_search_model_flops(const rj_tune_req *r, const rj_est_ops *est, int32_t m,
                             const rj_tune_row *row);

/* Search eva's window and chunk count: one row per window tried, appended at rows[*n]
 * (room for RJ_TUNE_EVA_ROWS), each with the fewest chunks that meet the budget. */
#define RJ_TUNE_EVA_ROWS 4
rfjit_status rj_search_eva(rj_search *S, const rj_est_ops *eva, rj_tune_row *rows, size_t *n,
                           rj_diag *dg);

/* One candidate's search of m (tune_search.c step 2) for row, whose estimator and other
 * parameters are set: pruning, transform, bracket and bisection, confirmation on fresh seeds,
 * and its time at L when it meets the budget. measure: 0 under ESTIMATE. */
rfjit_status rj_search_row(rj_search *S, rj_tune_row *row, int measure, rj_diag *dg);

/* Search blocksparse's exact block count: one row per count of RJ_TUNE_BS_ROWS tried (at
 * tokens per block RJ_TUNE_BS_BLOCK), appended at rows[*n], each with its searched m. */
#define RJ_TUNE_BS_ROWS 4
#define RJ_TUNE_BS_BLOCK 64
rfjit_status rj_search_blocksparse(rj_search *S, const rj_est_ops *bs, rj_tune_row *rows, size_t *n,
                                   int measure, rj_diag *dg);

/* The confirmation of an estimator without random parameters (tune_eva.c says why): the
 * mean of row's errors on RJ_TUNE_SLICES slices of the calibration queries
 * (rj_calib_error_slices) and its one-sided 95% Student-t upper bound (infinite with fewer
 * slices than that). */
rfjit_status rj_search_data_bound(rj_search *S, const rj_tune_row *row, double *mean, double *bound,
                                  rj_diag *dg);

/* exact attention in bfloat16 (tune_bf16.c): one row appended at rows[*n] where the context
 * runs it, the request asks for exact among its candidates, an output budget and MEASURE or
 * more; its error and bound as rj_search_data_bound's, timed at L when the bound meets the
 * budget. */
rfjit_status rj_search_bf16(rj_search *S, const rj_est_ops *exact, rj_tune_row *rows, size_t *n,
                            rj_diag *dg);
/* A random-feature row that met the budget in float32, again with bf16 products where the
 * context runs them for it (bidirectional positive and hyperbolic on AMX): appended to rows
 * with its error on the same fresh seeds (the rounding and the estimator's variance measured
 * together), timed at L when its bound meets the budget. Same conditions as rj_search_bf16
 * but for exact's place in the list. */
rfjit_status rj_search_bf16_twin(rj_search *S, const rj_tune_row *base, rj_tune_row *rows,
                                 size_t *n, rj_diag *dg);

/* The transform of row's plans (tune_xform.c): row->transform and row->xform_ratio set from
 * a few error evaluations at *m (NULL: row's m, eva's parameters), and *m scaled by the
 * error ratio when a transform is chosen. Nothing changes under r->transforms == 0, a kernel
 * budget or exact. */
rfjit_status rj_search_xform(rj_search *S, rj_tune_row *row, int32_t *m, rj_diag *dg);
/* Whether est's error does not depend on the projection seed (no random parameters). */
int rj_search_seedless(const rj_est_ops *est);

#endif
