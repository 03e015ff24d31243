/* SPDX-License-Identifier: MIT */
/*
 * This file is the positive random-feature estimator (PRF, FAVOR+; spec estimators.md 2.1,
 * stabilisation 1.4), the Performer default:
 *
 *     phi(x)_r = m^{-1/2} exp(w_r^T x - |x|^2 / 2),   r = 1..m,   M = m
 *     E_w[phi(x)^T phi(y)] = e^{-(|x|^2+|y|^2)/2} E[e^{w^T (x+y)}] = e^{x^T y} = SM(x, y)
 *     Var = (1/m) SM^2 (e^{|z|^2} - 1),   z = x + y        (Performer Lemma 2, i.i.d. w_r)
 *
 * Queries and keys share W and the same map. The feature map works in the log domain:
 * ell_r = u_r - |x|^2/2 - (1/2) ln m with u = W x, h = max_r ell_r, f_r = e^{ell_r - h}, so
 * max_r f_r = 1 and the attention reference stabilises exactly (est.h). There is nothing to
 * fit: the parameter block is W itself (m x d, row-major).
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t feature_dim(const rj_spec *s)
{
    return s->m;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    (void)role;
    const int d = s->d, m = s->m;
    const double sq = rj_est_sqnorm(d, x);
    /* ell_r = w_r^T x - |x|^2/2 - (1/2) ln m, kept in f until the max is known. */
    const double c = -0.5 * sq - 0.5 * log((double)m);
    double hmax = -INFINITY;
    for (int r = 0; r < m; r++) {
        const double *w = params + (size_t)r * (size_t)d;
        double u = 0;
        for (int j = 0; j < d; j++)
            u += w[j] * x[j];
        f[r] = u + c;
        if (f[r] > hmax)
            hmax = f[r];
    }
    for (int r = 0; r < m; r++)
        f[r] = exp(f[r] - hmax);
    *h = hmax;
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
    /* SM^2 (e^{|z|^2} - 1) / m with expm1, exact as z -> 0 (x -> -y). */
    return exp(2 * xy) * expm1(zz) / s->m;
}

/*
 * Per token (one query and one key): features 2 x (2md projection + 2d norm + 2m shift and
 * max + m exp) (spec 4.6), plus linear attention 4 M dv + 3M + dv (spec 1.1). Bytes: the
 * float32 rows streamed per token (q, k, v, out) plus the state (S, z) of M (dv + 1) floats a
 * causal scan reads and writes per token; W is read once per tile and not counted.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, m = s->m, M = m;
    const double feat = 2 * m * d + 2 * d + 2 * m + m * RJ_EST_TRANSCENDENTAL_FLOPS;
    *flops = 2 * feat + 4 * M * dv + 3 * M + dv;
    *bytes = 4 * (2 * d + 2 * dv) + 4 * M * (dv + 1);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* ell_r = w_r^T x - |x|^2/2 - (1/2) ln m, as in features(). */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    for (int r = 0; r < s->m; r++)
        out->b[r] = -0.5 * log((double)s->m);
    memcpy(out->W, params, (size_t)s->m * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_positive = {
    .name = "positive",
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
    /* |JIT - reference| <= ref_tol * max|reference|: float32 accumulation at L ~ 1e3
     * (tests/jit/test_jit_equiv.c checks every estimator against this field). */
    .ref_tol = 1e-4,
};
