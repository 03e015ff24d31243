/* SPDX-License-Identifier: MIT */
/*
 * This file is the tuner's inside (architecture.md 6): the calibration set and its error
 * measures (tune_calib.c), the variance model's first guess (tune_model.c) and the search
 * over estimators and feature counts (tune_search.c). api/api_tune.c is its facade.
 */
#ifndef RJ_TUNE_H
#define RJ_TUNE_H

#include "runtime/plan.h"

/* Seeds: the search uses SEARCH_SEEDS seeds from the request's, the confirmation CONFIRM_SEEDS
 * others that the search never saw. */
#define RJ_TUNE_SEARCH_SEEDS 4
#define RJ_TUNE_CONFIRM_SEEDS 8
/* Slices of the calibration queries that bound the error of an estimator without random
 * parameters in place of seeds (tune_eva.c). */
#define RJ_TUNE_SLICES 8
/* One-sided 95% Student t quantile with CONFIRM_SEEDS - 1 (= SLICES - 1) degrees of freedom. */
#define RJ_TUNE_T95 1.894579
#define RJ_TUNE_M_STEP 16
#define RJ_TUNE_M_MAX 8192

typedef struct rj_tune_req {
    int32_t d, dv, causal;
    int64_t L;
    double budget;
    int32_t kind, patience;
    uint64_t seed;
    const rfjit_tensor *cq, *ck, *cv;
    double scale;      /* synthetic_scale */
    int32_t profile;   /* synthetic_profile (RFJIT_PROFILE_*) */
    double attn_scale; /* the plans' softmax scale as given (0 = 1/sqrt(d)) */
    uint32_t est_mask; /* registry indices allowed */
    int32_t transforms; /* 1: each random-feature candidate may take a transform */
    rfjit_progress_fn progress;
    void *progress_user;
} rj_tune_req;

/* The calibration set, contiguous copies, with the exact outputs and kernel sample. */
typedef struct rj_calib {
    int64_t B, H, lq, lk;
    int32_t d, dv, causal;
    float *q, *k, *v, *o;   /* o: exact attention output */
    double o_norm2;         /* ||o||^2 */
    double xscale;          /* sqrt(softmax scale): what attention multiplies q and k by */
    /* kernel budget: the first nq queries and nk keys of slice 0, scaled by xscale */
    int64_t nq, nk;
    float *kq, *kk, *K;     /* K = exp(kq . kk), nq x nk */
    char what[256];
} rj_calib;

/* The real-like profile's q or k rows (include/rfjit.h RFJIT_PROFILE_REAL_LIKE) as the
 * estimators see them: n rows of width d times s, from seed's streams for part (RJ_PART_Q or
 * RJ_PART_K). */
rfjit_status rj_calib_real_like(float *x, int64_t n, int32_t d, double s, uint64_t seed, int part,
                                rj_diag *dg);

/* n tokens of the request's synthetic profile (its seed, scales, d and dv) into q, k (n x d)
 * and v (n x dv): the calibration set's draw, for rfjit_tune_synthetic too. */
rfjit_status rj_calib_draw(const rj_tune_req *r, int64_t n, float *q, float *k, float *v,
                           rj_diag *dg);

/* Heavy tails across projection seeds: the largest of the confirmation seeds' errors above
 * this many times the smallest (tune_search.c says why 10). */
#define RJ_TUNE_HEAVY_RATIO 10.0

rfjit_status rj_calib_make(rfjit_ctx *ctx, const rj_tune_req *r, rj_calib *c, rj_diag *dg);
void rj_calib_free(rj_calib *c);
/* Error of one plan descriptor on the calibration set, for the request's budget kind. */
rfjit_status rj_calib_error(rfjit_ctx *ctx, const rj_calib *c, int kind,
                            const rfjit_attn_desc *a, double *err, rj_diag *dg);

/* rj_calib_error per slice of the calibration queries: slice j of n (at most
 * RJ_CALIB_MAX_SLICES) holds the j-th of n contiguous runs of query positions of every
 * (batch, head) (for the kernel kind, of the kernel sample's queries). *used errors go to
 * err, one per slice that has any output (a slice of zero output or no rows has none). */
#define RJ_CALIB_MAX_SLICES 16
rfjit_status rj_calib_error_slices(rfjit_ctx *ctx, const rj_calib *c, int kind,
                                   const rfjit_attn_desc *a, int n, double *err, int *used,
                                   rj_diag *dg);

/* Predicted error per projection (error at m = predicted / m) from the closed-form variance
 * model on the calibration set; NaN where the estimator has no model. */
rfjit_status rj_model_error1(rfjit_ctx *ctx, const rj_calib *c, int kind, const rj_est_ops *est,
                             double *e1, rj_diag *dg);

typedef struct rj_tune_row {
    const rj_est_ops *est;
    int32_t m;
    int32_t eva_window, eva_chunks; /* eva's parameters; 0 for every other estimator */
    int32_t sparse_block, sparse_exact; /* blocksparse's parameters; 0 for every other */
    uint64_t seed;          /* the plan's projection seed */
    rfjit_tiling tiling;
    double predicted, measured, bound, time_ms;
    int32_t meets, pareto, chosen;
    char note[96];
    /* the least error seen where the budget was missed, and its m (0: none), for the
     * "closest" answer when only exact meets the budget */
    double near_err;
    int32_t near_m;
    int32_t near_chunks; /* eva: the chunk count of near_err (its window is the row's) */
    int32_t transform;   /* rfjit_attn_desc.transform of the row's plan (tune_xform.c) */
    double xform_ratio;  /* error with the transform over without, at the search's first m
                            (0 when transform is 0) */
    int32_t compute;     /* rfjit_attn_desc.compute of the row's plan (tune_bf16.c) */
} rj_tune_row;

typedef struct rj_tune_out {
    rj_tune_row *rows;
    size_t n;
    int chosen;             /* row index */
    char calib[320];
    double wall_s;
} rj_tune_out;

rfjit_status rj_tune_run(rfjit_ctx *ctx, const rj_tune_req *r, rj_tune_out *out, rj_diag *dg);
void rj_tune_out_free(rj_tune_out *o);

/* The descriptor of a row's plan (estimator defaults for the rest). */
rfjit_attn_desc rj_tune_desc_of(const rj_tune_req *r, const rj_est_ops *est, int32_t m,
                                uint64_t seed);
/* rj_tune_desc_of for a row: its estimator, m, transform and compute precision, for eva its
 * window and chunk count, and for blocksparse its block size and exact block count. */
rfjit_attn_desc rj_tune_row_desc(const rj_tune_req *r, const rj_tune_row *row, uint64_t seed);

/* Transform flags as text: "none" or names joined by '+' (center_k+center_q+balance). */
void rj_tune_xform_name(int32_t flags, char *buf, size_t n);

#endif
