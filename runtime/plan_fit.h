/* SPDX-License-Identifier: MIT */
/* This file holds what every executor shares about a plan's parameters: the input scale and
 * the per-call fit of estimators whose parameters depend on the data. */
#ifndef RJ_PLAN_FIT_H
#define RJ_PLAN_FIT_H

#include "runtime/ctx.h"

/* sqrt(scale) (d^{-1/4} at the default): attention scales q and k by it so that
 * x^T y = scale q^T k. */
double rj_plan_input_scale(const rj_spec *s);

/* Per-call scratch of one (batch, head): parameters and statistics for estimators fitted
 * per call (unused when the plan's parameters are frozen). */
typedef struct rj_fit_scratch {
    double *params;
    rj_stats st;
    int have_stats;
} rj_fit_scratch;

rfjit_status rj_fit_scratch_init(rj_fit_scratch *fs, const rfjit_plan *p, rj_diag *dg);
void rj_fit_scratch_free(rj_fit_scratch *fs);
/* The parameters for one (batch, head) whose rows are x (nx x d) and y (ny x d): the plan's
 * frozen ones, or freshly fitted into fs. */
rfjit_status rj_fit_slice(const rfjit_plan *p, rj_fit_scratch *fs, const double *x, int64_t nx,
                          const double *y, int64_t ny, const double **params, rj_diag *dg);

#endif
