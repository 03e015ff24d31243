/* SPDX-License-Identifier: MIT */
/*
 * This file is the exact softmax "estimator" (spec estimators.md 0, 0.1):
 *
 *     K(x, y) = SM(x, y) = exp(x^T y) = exp(scale q^T k),   Var = 0
 *
 * with no features, no projection and no randomness: its attention is rj_ref_softmax
 * (est/ref_softmax.c). It is the oracle the statistical tests and `rfjit check` compare every
 * other estimator with, and a tuner candidate that wins at short lengths. Not for long
 * sequences: its cost grows with L per token (see cost()).
 */
#include "est/est.h"

#include "est/est_common.h"
#include "est/ref.h"

#include <math.h>
#include <stdio.h>

static int64_t feature_dim(const rj_spec *s)
{
    (void)s;
    return 0;
}

/* No parameters; callers allocate at least one double anyway (api_plan.c). */
static size_t params_size(const rj_spec *s)
{
    (void)s;
    return 0;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)s, (void)W, (void)seed, (void)st, (void)params, (void)dg;
    if (info)
        info->A = info->rho = NAN;
    return RFJIT_OK;
}

static rfjit_status attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    (void)params;
    return rj_ref_softmax(s, x, lq, y, v, lk, nvis, out, dg);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)s, (void)params, (void)x, (void)y;
    return 0;
}

/*
 * Every query meets every key, so the work per token is proportional to L, which the ops
 * signature does not carry: this reports one query-key pair (L = 1), namely the logit x.y
 * (2d), one exp, and the weighted value (2dv): 4 L d + L exp for dv = d. Callers ranking
 * against linear estimators multiply by L (L/2 on average when causal). Bytes: the float32
 * rows of one token (q, k, v, out).
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    *flops = 2.0 * s->d + 2.0 * s->dv + RJ_EST_TRANSCENDENTAL_FLOPS;
    *bytes = 4.0 * (2.0 * s->d + 2.0 * s->dv);
}

const rj_est_ops rj_est_exact = {
    .name = "exact",
    .version = 1,
    .tmpl = RJ_TMPL_SOFTMAX,
    .flags = RJ_EST_NOPROJ,
    /* ignored (no projection), but every kind is accepted so no request is refused for it */
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) |
                  (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = rj_est_valid_ddv,
    .params_size = params_size,
    .fit = fit,
    .features = NULL,
    .attend = attend,
    .variance = variance,
    .objective = NULL,
    .cost = cost,
    /* Ten times tighter than the random-feature estimators: no feature map, one float32
     * softmax (the 1e-5 that `rfjit check` holds exact to as well). */
    .ref_tol = 1e-5,
};
