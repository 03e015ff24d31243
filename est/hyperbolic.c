/* SPDX-License-Identifier: MIT */
/*
 * This file is the hyperbolic positive random-feature estimator (SM^{hyp+}, cosh; spec
 * estimators.md 2.2, as fast-transformers' Favor and HKUNLP's hyperm_projection):
 *
 *     phi(x) = (2m)^{-1/2} e^{-|x|^2/2} [ e^{u_1} .. e^{u_m}, e^{-u_1} .. e^{-u_m} ],  u = W x,
 *     M = 2m (m projections)
 *     phi(x)^T phi(y) = e^{-(|x|^2+|y|^2)/2} (1/m) sum_r cosh(w_r^T (x + y)),  unbiased for
 *     SM(x, y) = e^{x^T y} since E cosh(w^T z) = e^{|z|^2/2}
 *     Var = (1/m) SM^2 (cosh|z|^2 - 1) = (1/2)(1 - e^{-|z|^2}) Var_PRF,   z = x + y
 *
 * (E cosh^2(w^T z) = (1 + e^{2|z|^2})/2 gives the variance.) Queries and keys share W and the
 * map. Log-features ell_r^{+-} = +-u_r - |x|^2/2 - (1/2) ln(2m); h is their maximum, so
 * max f = 1. The parameter block is W (m x d, row-major); nothing is fitted.
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t feature_dim(const rj_spec *s)
{
    return 2 * (int64_t)s->m;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    (void)role;
    const int d = s->d, m = s->m;
    const double sq = rj_est_sqnorm(d, x);
    const double c = -0.5 * sq - 0.5 * log(2.0 * m);
    /* The larger of ell^+ and ell^- is c + |u_r|, so h = c + max_r |u_r|. */
    double umax = 0;
    for (int r = 0; r < m; r++) {
        const double *w = params + (size_t)r * (size_t)d;
        double u = 0;
        for (int j = 0; j < d; j++)
            u += w[j] * x[j];
        f[r] = u;
        if (fabs(u) > umax)
            umax = fabs(u);
    }
    for (int r = 0; r < m; r++) {
        const double u = f[r];
        f[r] = exp(u - umax);
        f[m + r] = exp(-u - umax);
    }
    *h = c + umax;
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)params;
    double xy = 0, zz = 0;
    for (int j = 0; j < s->d; j++) {
        xy += x[j] * y[j];
        zz += (x[j] + y[j]) * (x[j] + y[j]);
    }
    /* cosh t - 1 = 2 sinh^2(t/2): no cancellation for small |z|. */
    const double sh = sinh(0.5 * zz);
    return exp(2 * xy) * 2 * sh * sh / s->m;
}

/*
 * Per token: features 2 x (2md + 2d + 3m + 2m exp) (spec 4.6), linear attention
 * 4 M dv + 3M + dv with M = 2m (spec 1.1). Bytes as positive.c: float32 q, k, v, out rows
 * plus the (S, z) state of M (dv + 1) floats.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, m = s->m, M = 2 * m;
    const double feat = 2 * m * d + 2 * d + 3 * m + 2 * m * RJ_EST_TRANSCENDENTAL_FLOPS;
    *flops = 2 * feat + 4 * M * dv + 3 * M + dv;
    *bytes = 4 * (2 * d + 2 * dv) + 4 * M * (dv + 1);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, 2 * s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* ell^{+-}_r = +-w_r^T x - |x|^2/2 - (1/2) ln(2m): the rows [W ; -W], whose maximum is
 * features()' c + max_r |u_r|. */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    const size_t md = (size_t)s->m * (size_t)s->d;
    for (int r = 0; r < 2 * s->m; r++)
        out->b[r] = -0.5 * log(2.0 * s->m);
    for (size_t i = 0; i < md; i++) {
        out->W[i] = params[i];
        out->W[md + i] = -params[i];
    }
}

const rj_est_ops rj_est_hyperbolic = {
    .name = "hyperbolic",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = 0,
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) |
                  (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = rj_est_valid_dm,
    .params_size = rj_est_params_w,
    .fit = rj_est_fit_w,
    .features = features,
    .attend = NULL,
    .variance = variance,
    .objective = NULL,
    .cost = cost,
    .kfeat = kfeat,
    .klower = klower,
    /* float32 accumulation at L ~ 1e3, as positive.c. */
    .ref_tol = 1e-4,
};
