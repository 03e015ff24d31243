/* SPDX-License-Identifier: MIT */
/*
 * This file is the trigonometric random-feature estimator (Rahimi-Recht, SM^{trig}; spec
 * estimators.md 2.3, JAX sincos_softmax_kernel_feature_creator):
 *
 *     phi(x) = m^{-1/2} e^{|x|^2/2} [ cos u_1 .. cos u_m, sin u_1 .. sin u_m ],  u = W x,  M = 2m
 *     phi(x)^T phi(y) = e^{(|x|^2+|y|^2)/2} (1/m) sum_r cos(w_r^T (x - y)),  unbiased for
 *     SM(x, y) = e^{x^T y} since E cos(w^T D) = e^{-|D|^2/2}
 *     Var = (1/(2m)) e^{|z|^2} SM^{-2} (1 - e^{-|D|^2})^2,   z = x + y,  D = x - y
 *
 * (Var cos(w^T D) = (1 - e^{-|D|^2})^2 / 2 and e^{|x|^2+|y|^2} = e^{|z|^2} SM^{-2}.) The features
 * are signed (RJ_EST_SIGNED): attention denominators can be <= 0 and need the reference's
 * guard. The scale goes to h = |x|^2/2 - (1/2) ln m and f = [cos u, sin u], |f_r| <= 1.
 * Queries and keys share W and the map; the parameter block is W (m x d, row-major).
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
    for (int r = 0; r < m; r++) {
        const double *w = params + (size_t)r * (size_t)d;
        double u = 0;
        for (int j = 0; j < d; j++)
            u += w[j] * x[j];
        f[r] = cos(u);
        f[m + r] = sin(u);
    }
    *h = 0.5 * sq - 0.5 * log((double)m);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)params;
    double xy = 0, zz = 0, dd = 0;
    for (int j = 0; j < s->d; j++) {
        xy += x[j] * y[j];
        zz += (x[j] + y[j]) * (x[j] + y[j]);
        dd += (x[j] - y[j]) * (x[j] - y[j]);
    }
    /* e^{|z|^2 - 2 x^T y} = e^{|x|^2 + |y|^2}; -expm1(-|D|^2) keeps x -> y exact. */
    const double g = -expm1(-dd);
    return exp(zz - 2 * xy) * g * g / (2.0 * s->m);
}

/*
 * Per token: features 2 x (2md + 2d + m sin + m cos + 1 exp) (spec 4.6), linear attention
 * 4 M dv + 3M + dv with M = 2m (spec 1.1). Bytes as positive.c.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, m = s->m, M = 2 * m;
    const double feat = 2 * m * d + 2 * d + (2 * m + 1) * RJ_EST_TRANSCENDENTAL_FLOPS;
    *flops = 2 * feat + 4 * M * dv + 3 * M + dv;
    *bytes = 4 * (2 * d + 2 * dv) + 4 * M * (dv + 1);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_TRIG, s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* f = [cos Wx ; sin Wx], h = |x|^2/2 - (1/2) ln m, as in features(). */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    out->h0 = -0.5 * log((double)s->m);
    out->gamma = 0.5;
    memcpy(out->W, params, (size_t)s->m * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_trig = {
    .name = "trig",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_SIGNED,
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
