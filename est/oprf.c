/* SPDX-License-Identifier: MIT */
/*
 * This file is OPRF, the optimal positive random features of Chefs' Random Tables (GERF with
 * s = +1 and real A; attention version FAVOR++; spec estimators.md 3.1-3.3):
 *
 *     phi(x)_r = m^{-1/2} (1-4A)^{d/4} exp(A|w_r|^2 + sqrt(1-4A) w_r^T x - |x|^2/2),   M = m
 *     E_w[phi(x)^T phi(y)] = SM(x, y) = e^{x^T y} for A < 1/4 (the same map for q and k)
 *     Var = (1/m) [ (1-4A)^d (1-8A)^{-d/2} exp(2(1-4A)|z|^2/(1-8A) - |x|^2 - |y|^2) - SM^2 ]
 *         = (1/m) SM^2 expm1( d ln(1-4A) - (d/2) ln(1-8A) + |z|^2/(1-8A) ),   z = x + y,
 *     finite for A < 1/8; A = 0 is PRF.
 *
 * Fit (spec 3.2, homogeneity heuristic): one A per (batch, head) minimising the mean over all
 * query/key pairs of ln E[(f1 f2)^2], which is affine in |x_i + y_j|^2, so
 *
 *     A = A*(rho_bar) = (1 - 2 rho - sqrt((2 rho + 1)^2 + 8 rho)) / 16   (the negative root of
 *     16u^2 - (2 - 4 rho) u - rho = 0),  rho_bar = (1/d)(mean|x|^2 + mean|y|^2 + 2 xbar^T ybar)
 *
 * from the O(L d) statistics (sums of x, y, |x|^2, |y|^2 over the scaled rows). A* <= 0, so
 * the features are bounded, and A* = 0 exactly when rho_bar = 0.
 *
 * Data flow (spec 3.3): fit folds everything that does not depend on x into per-feature biases
 * b_r = A|w_r|^2 + (d/4) ln(1-4A) - (1/2) ln m and the scaled projection W_B = sqrt(1-4A) W;
 * features are ell_r = b_r + (W_B x)_r - |x|^2/2, h = max_r ell_r (b_r varies with r, so it is
 * inside the max), f_r = e^{ell_r - h}.
 *
 * Parameter block (version 1): [A, rho_bar, B = sqrt(1-4A), c = (d/4) ln(1-4A) - (1/2) ln m,
 * b_1..b_m, W_B (m x d row-major)]; 4 + m + m d doubles.
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

enum { P_A = 0, P_RHO = 1, P_B = 2, P_C = 3, P_BIAS = 4 };

static int64_t feature_dim(const rj_spec *s)
{
    return s->m;
}

static size_t params_size(const rj_spec *s)
{
    return P_BIAS + (size_t)s->m + (size_t)s->m * (size_t)s->d;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)seed;
    const int d = s->d, m = s->m;
    RJ_TRY(rj_gerf_check_fit(s, W, st, "fitting A", dg));
    const double nx = (double)st->nx, ny = (double)st->ny;
    double cross = 0;
    for (int j = 0; j < d; j++)
        cross += (st->sx[j] / nx) * (st->sy[j] / ny);
    double rho = (st->nx2 / nx + st->ny2 / ny + 2 * cross) / d;
    /* rho_bar = mean |x_i + y_j|^2 / d >= 0; a negative value is rounding. */
    if (rho < 0)
        rho = 0;
    RJ_FAIL_IF(dg, !isfinite(rho), RFJIT_E_FIT,
               "oprf: statistics overflow (rho = mean |x + y|^2 / d is not finite)");
    double A, B, c;
    RJ_TRY(rj_gerf_scalars(s, rho, &A, &B, &c, dg));
    params[P_A] = A;
    params[P_RHO] = rho;
    params[P_B] = B;
    params[P_C] = c;
    double *bias = params + P_BIAS, *WB = bias + m;
    for (int r = 0; r < m; r++) {
        const double *w = W + (size_t)r * (size_t)d;
        double ww = 0;
        for (int j = 0; j < d; j++) {
            ww += w[j] * w[j];
            WB[(size_t)r * (size_t)d + (size_t)j] = B * w[j];
        }
        bias[r] = A * ww + c;
    }
    if (info) {
        info->A = A;
        info->rho = rho;
    }
    return RFJIT_OK;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    (void)role;
    const double *bias = params + P_BIAS, *WB = bias + s->m;
    rj_gerf_features(s, bias, WB, rj_est_sqnorm(s->d, x), x, h, f);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    double xy = 0, zz = 0;
    for (int j = 0; j < s->d; j++) {
        xy += x[j] * y[j];
        zz += (x[j] + y[j]) * (x[j] + y[j]);
    }
    return rj_gerf_variance(s, xy, rj_gerf_log_excess(s->d, params[P_A], zz));
}

/* x' = x: the plain norm. */
static double plain_norm(const rj_spec *s, const double *params, rj_role role, const double *x)
{
    (void)params, (void)role;
    return rj_est_sqnorm(s->d, x);
}

static rfjit_status objective(const rj_spec *s, const double *params, const double *x,
                              int64_t lq, const double *y, int64_t lk, double *obj,
                              double *var_obj, rj_diag *dg)
{
    return rj_gerf_objective(s, params, params[P_A], plain_norm, x, lq, y, lk, obj, var_obj,
                             dg);
}

/*
 * Per token: features 2 x (2md + 2d + 4m + m exp) (PRF plus the bias add, spec 4.6), the
 * statistics ~4d (sums and squared norms of x and y), linear attention 4 M dv + 3M + dv with
 * M = m (spec 1.1). Bytes as positive.c. The O(md) per-(batch, head) fold is not per token.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d;
    rj_gerf_cost(s, 2 * d, 4 * d, flops, bytes);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* ell_r = b_r + (W_B x)_r - |x|^2/2 with the fitted b and W_B. */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    memcpy(out->b, params + P_BIAS, (size_t)s->m * sizeof(double));
    memcpy(out->W, params + P_BIAS + s->m, (size_t)s->m * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_oprf = {
    .name = "oprf",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_FITTED | RJ_EST_MOM_NONE,
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) |
                  (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = rj_est_valid_dm,
    .params_size = params_size,
    .fit = fit,
    .features = features,
    .attend = NULL,
    .variance = variance,
    .objective = objective,
    .cost = cost,
    .kfeat = kfeat,
    .klower = klower,
    /* float32 accumulation at L ~ 1e3, as positive.c. */
    .ref_tol = 1e-4,
};
