/* SPDX-License-Identifier: MIT */
/*
 * This file is the JIT side of the estimate API (est_jit.c): per plan and call, the feature
 * kernel and Gram kernel with their buffers; side 0 is x (mapped as queries), side 1 is y
 * (mapped as keys).
 */
#ifndef RJ_EST_JIT_H
#define RJ_EST_JIT_H

#include "runtime/ctx.h"

typedef struct rj_est_jit {
    rj_kplan fk, gk;
    rj_kernel_fn feat, gram; /* feat is NULL for exact plans */
    float *ws_f, *ws_g, *kpar;
    float *xf[2];            /* n x d float rows */
    float *F[2];             /* rows x np feature-major features (exact: the rows) */
    float *h[2], *a[2];      /* np log-scales of the features and of the Gram factors */
    int64_t n[2], np[2];     /* rows, and rows padded to the token tile */
} rj_est_jit;

/* Kernels (compiled or cached) and buffers for nx x-rows and ny y-rows. */
rfjit_status rj_est_jit_init(rj_est_jit *e, const rfjit_plan *p, int64_t nx, int64_t ny,
                             rj_diag *dg);
void rj_est_jit_free(rj_est_jit *e);
/* Features of one side from its n x d rows (double, unscaled) with the slice's params. */
rfjit_status rj_est_jit_side(rj_est_jit *e, const rfjit_plan *p, const double *params,
                             int side, const double *rows, rj_diag *dg);
/* That side's features as (h, f) rows in the estimator's feature order (n, n x M doubles). */
void rj_est_jit_rows(const rj_est_jit *e, const rfjit_plan *p, int side, double *h, double *f);
/* K (nx x ny, row stride ldk) = e^{a_i + b_j} F_x^T F_y from both sides' features; sqx, sqy
 * the squared norms for the Gaussian kernel, NULL for softmax. */
void rj_est_jit_gram(rj_est_jit *e, const double *sqx, const double *sqy, float *K,
                     int64_t ldk);

#endif
