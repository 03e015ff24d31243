/* SPDX-License-Identifier: MIT */
/*
 * This file accumulates the per-(batch, head) statistics the data-fitted estimators need,
 * over the scaled queries x and keys y: sums, sums of squared norms and second-moment sums
 * (spec estimators.md 3.2, 4.1). Sums, not means: callers divide by nx, ny.
 */
#ifndef RJ_STATS_H
#define RJ_STATS_H

#include "core/base.h"

/* How much of mxx, myy rj_stats_add forms: an estimator that reads only the diagonal (or
 * nothing) of them saves the O(L d^2) pass (est.h RJ_EST_MOM_*). */
typedef enum rj_moments { RJ_MOM_FULL = 0, RJ_MOM_DIAG = 1, RJ_MOM_NONE = 2 } rj_moments;

typedef struct rj_stats {
    int d;
    int moments;       /* rj_moments; rj_stats_init sets RJ_MOM_FULL. Unformed entries stay 0 */
    int64_t nx, ny;    /* number of query / key rows accumulated */
    double *sx, *sy;   /* sum_i x_i, sum_j y_j (d each) */
    double *mxx, *myy; /* sum_i x_i x_i^T, sum_j y_j y_j^T (d x d, row-major) */
    double nx2, ny2;   /* sum_i |x_i|^2, sum_j |y_j|^2 */
} rj_stats;

/* Allocate zeroed statistics for dimension d. Errors: RFJIT_E_NOMEM. */
rfjit_status rj_stats_init(rj_stats *st, int d);
void rj_stats_free(rj_stats *st);
void rj_stats_reset(rj_stats *st);
/* Add rows (row-major, n x d) of x (role 0) or y (role 1). */
void rj_stats_add(rj_stats *st, int role, const double *rows, int64_t n);

#endif
