/* SPDX-License-Identifier: MIT */
/*
 * This file is the exact softmax "estimator": weights exp(x^T y) = exp(q^T k / sqrt(d)) with
 * no approximation (spec estimators.md 0). It has no features and no randomness; its kernel
 * estimate is the kernel itself, so its variance is 0. It is the oracle the statistical tests
 * and `rfjit check` compare against, and a tuner candidate that wins at short lengths.
 */
#include "est.h"

#include "../ref/ref.h"

#include <math.h>
#include <stdio.h>

static int64_t feature_dim(const rj_spec *s)
{
    (void)s;
    return 0;
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (s->d < 1 || s->d > RJ_MAX_D || s->dv < 1) {
        snprintf(why, n, "d = %d, dv = %d out of range", s->d, s->dv);
        return false;
    }
    return true;
}

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
                           const double *y, const double *v, int64_t lk, double *out,
                           rj_diag *dg)
{
    (void)params;
    return rj_ref_softmax(s, x, lq, y, v, lk, out, dg);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)s, (void)params, (void)x, (void)y;
    return 0;
}

/* Per token at sequence length 1: 2d (logit) + 2dv (weighted value); multiply by L for a
 * sequence, since every query meets every key. */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    *flops = 2.0 * s->d + 2.0 * s->dv;
    *bytes = 4.0 * (s->d + s->dv);
}

const rj_est_ops rj_est_exact = {
    .name = "exact",
    .version = 1,
    .tmpl = RJ_TMPL_SOFTMAX,
    .flags = RJ_EST_NOPROJ,
    .proj_kinds = 7u,
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = params_size,
    .fit = fit,
    .attend = attend,
    .variance = variance,
    .cost = cost,
    .ref_tol = 1e-5,
};
