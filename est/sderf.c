/* SPDX-License-Identifier: MIT */
/*
 * This file is SDERF, the symmetric dense-exponential random features of FAVOR# (spec
 * estimators.md 4.3; DERF 4.1 with B1 = B2 = B and a dense symmetric A):
 *
 *     f(w, x) = D exp(w^T A w + w^T B x - |x|^2/2),   w ~ N(0, I_d),   the same for q and k
 *     A = Q diag(a) Q^T,  B = Q diag(sqrt(1-4a_l)) Q^T,  D = prod_l (1-4a_l)^{1/4},  C = -I/2
 *     (valid: B^T (I-4A)^{-1} B = I, C = -(1/2) B^T (I-4A)^{-1} B), so E_w[f(w,x) f(w,y)] = SM.
 *
 * In the rotated coordinates x~ = Q^T x (and w' = Q^T w, still N(0, I)) everything splits into
 * d one-dimensional OPRFs, one per eigendirection l:
 *
 *     ln E[(f1 f2)^2] = 2 x^T y + sum_l [ ln(1-4a_l) - (1/2) ln(1-8a_l) + z~_l^2/(1-8a_l) ],
 *     z~ = Q^T (x + y);   Var = (1/m) SM^2 expm1(sum_l [...])   (DERF variance 4.1)
 *
 * Fit: the mean over pairs of that is sum_l [ ... + (q_l^T M3 q_l)/(1-8a_l) ], with
 * M3 = mean_{ij} (x_i + y_j)(x_i + y_j)^T = M1 + M2 + xbar ybar^T + ybar xbar^T. For a fixed
 * basis each a_l is OPRF's d = 1 closed form a_l = A*(q_l^T M3 q_l); the optimum per direction
 * is concave in q_l^T M3 q_l, so the eigenvectors of M3 are the optimal basis:
 *
 *     M3 = Q diag(lambda) Q^T (rj_eigh),   a_l = A*(lambda_l) = (1 - 2 lambda_l -
 *     sqrt((2 lambda_l + 1)^2 + 8 lambda_l)) / 16
 *
 * Data flow: with the rows of W used as w' directly,
 *     ell_r(x) = b_r + (W_eff x)_r - |x|^2/2 + c,  W_eff = (W o sqrt(1-4a)) Q^T,
 *     b_r = sum_l a_l w_rl^2,  c = (1/4) sum_l ln(1-4a_l) - (1/2) ln m,
 * so the per-token cost is PRF's; the setup is one eigh plus 2 m d^2 flops.
 *
 * A is a matrix here, so rj_fit_info reports A = NaN, and rho = NaN as well: the closed form
 * uses the d eigenvalues lambda_l (per-direction rho's), not one scalar.
 *
 * Parameter block (version 1): [K = sum_l (ln(1-4a_l) - (1/2) ln(1-8a_l)), c, a_1..a_d,
 * k_1..k_d with k_l = 1/(1-8a_l), Q (d x d row-major, column l = eigenvector l), b_1..b_m,
 * W_eff (m x d)]; 2 + 2d + d^2 + m + m d doubles.
 */
#include "est/est.h"

#include "est/est_common.h"

#include "core/linalg.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

enum { P_K = 0, P_C = 1, P_A = 2 };

typedef struct layout {
    const double *a, *k, *Q, *bias, *Weff;
} layout;

static layout layout_of(const rj_spec *s, const double *params)
{
    const size_t d = (size_t)s->d;
    layout L;
    L.a = params + P_A;
    L.k = L.a + d;
    L.Q = L.k + d;
    L.bias = L.Q + d * d;
    L.Weff = L.bias + s->m;
    return L;
}

static int64_t feature_dim(const rj_spec *s)
{
    return s->m;
}

static size_t params_size(const rj_spec *s)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m;
    return P_A + 2 * d + d * d + m + m * d;
}

/* M3 = M1 + M2 + xbar ybar^T + ybar xbar^T from the sums in st (means over nx, ny rows). */
static void second_moment(const rj_stats *st, double *M3)
{
    const int d = st->d;
    const double nx = (double)st->nx, ny = (double)st->ny;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            const size_t ij = (size_t)i * (size_t)d + (size_t)j;
            M3[ij] = st->mxx[ij] / nx + st->myy[ij] / ny +
                     (st->sx[i] / nx) * (st->sy[j] / ny) + (st->sy[i] / ny) * (st->sx[j] / nx);
        }
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)seed;
    const int d = s->d, m = s->m;
    const size_t dd = (size_t)d * (size_t)d;
    RJ_TRY(rj_gerf_check_fit(s, W, st, "fitting", dg));
    double *M3 = rj_alloc_array(dd, sizeof(double));
    RJ_FAIL_IF(dg, !M3, RFJIT_E_NOMEM, "sderf: no memory for a %d x %d moment", d, d);
    second_moment(st, M3);
    double *a = params + P_A, *k = a + d, *Q = k + d, *bias = Q + dd, *Weff = bias + m;
    /* lambda goes to k (overwritten below), the eigenvectors straight into Q. */
    const rfjit_status es = rj_eigh(d, M3, k, Q);
    if (es != RFJIT_OK) {
        rj_free(M3);
        return rj_fail(dg, es, "sderf: eigendecomposition of M3 (%d x %d) failed", d, d);
    }
    /* M3's storage is free now; its first d entries hold sqrt(1 - 4 a_l) for the fold. */
    double *bl = M3;
    double K = 0, c = 0;
    for (int l = 0; l < d; l++) {
        /* M3 is a mean of outer products, so PSD: a negative eigenvalue is rounding. */
        const double lam = k[l] > 0 ? k[l] : 0;
        if (!isfinite(lam)) {
            rj_free(M3);
            return rj_fail(dg, RFJIT_E_FIT,
                           "sderf: eigenvalue %d of M3 is not finite (statistics overflow)", l);
        }
        a[l] = rj_gerf_a_star(lam);
        bl[l] = sqrt(1 - 4 * a[l]);
        k[l] = 1 / (1 - 8 * a[l]);
        K += log1p(-4 * a[l]) - 0.5 * log1p(-8 * a[l]);
        c += 0.25 * log1p(-4 * a[l]);
    }
    c -= 0.5 * log((double)m);
    if (!isfinite(K) || !isfinite(c)) {
        rj_free(M3);
        return rj_fail(dg, RFJIT_E_FIT, "sderf: fitted a_l are not representable");
    }
    params[P_K] = K;
    params[P_C] = c;
    for (int r = 0; r < m; r++) {
        const double *w = W + (size_t)r * (size_t)d;
        double *we = Weff + (size_t)r * (size_t)d;
        double b = 0;
        for (int l = 0; l < d; l++)
            b += a[l] * w[l] * w[l];
        bias[r] = b + c;
        /* W_eff[r][j] = sum_l w_rl sqrt(1-4a_l) Q[j][l]. */
        for (int j = 0; j < d; j++) {
            const double *qj = Q + (size_t)j * (size_t)d;
            double t = 0;
            for (int l = 0; l < d; l++)
                t += w[l] * bl[l] * qj[l];
            we[j] = t;
        }
    }
    rj_free(M3);
    if (info) {
        info->A = NAN;
        info->rho = NAN;
    }
    return RFJIT_OK;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    (void)role;
    const layout L = layout_of(s, params);
    rj_gerf_features(s, L.bias, L.Weff, rj_est_sqnorm(s->d, x), x, h, f);
}

/* (Q^T v)_l = sum_i Q[i][l] v_i. */
static double rotated(int d, const double *Q, const double *v, int l)
{
    double t = 0;
    for (int i = 0; i < d; i++)
        t += Q[(size_t)i * (size_t)d + (size_t)l] * v[i];
    return t;
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    const int d = s->d;
    const layout L = layout_of(s, params);
    double xy = 0, g = params[P_K];
    for (int j = 0; j < d; j++)
        xy += x[j] * y[j];
    for (int l = 0; l < d; l++) {
        const double z = rotated(d, L.Q, x, l) + rotated(d, L.Q, y, l);
        g += L.k[l] * z * z;
    }
    return rj_gerf_variance(s, xy, g);
}

/*
 * Per pair sum_l k_l z~_l^2 = sum_l k_l x~_l^2 + sum_l k_l y~_l^2 + 2 (k o x~)^T y~: rotate
 * every row once (O((lq + lk) d^2)), then one weighted and one plain dot per pair.
 */
static rfjit_status objective(const rj_spec *s, const double *params, const double *x,
                              int64_t lq, const double *y, int64_t lk, double *obj,
                              double *var_obj, rj_diag *dg)
{
    const int d = s->d;
    const layout L = layout_of(s, params);
    RJ_FAIL_IF(dg, lq < 1 || lk < 1, RFJIT_E_INVALID_ARG,
               "sderf: objective needs at least one query and one key");
    double *xt = rj_alloc_array((size_t)lq * (size_t)d, sizeof(double));
    double *yt = rj_alloc_array((size_t)lk * (size_t)d, sizeof(double));
    double *nq = rj_alloc_array((size_t)lq, sizeof(double));
    double *nk = rj_alloc_array((size_t)lk, sizeof(double));
    if (!xt || !yt || !nq || !nk) {
        rj_free(xt);
        rj_free(yt);
        rj_free(nq);
        rj_free(nk);
        return rj_fail(dg, RFJIT_E_NOMEM, "sderf: no memory for %lld + %lld rotated rows",
                       (long long)lq, (long long)lk);
    }
    /* xt_i = k o (Q^T x_i), nq_i = sum_l k_l (Q^T x_i)_l^2; yt_j = Q^T y_j, nk_j likewise. */
    for (int64_t i = 0; i < lq; i++) {
        double n2 = 0;
        for (int l = 0; l < d; l++) {
            const double t = rotated(d, L.Q, x + i * d, l);
            xt[i * d + l] = L.k[l] * t;
            n2 += L.k[l] * t * t;
        }
        nq[i] = n2;
    }
    for (int64_t j = 0; j < lk; j++) {
        double n2 = 0;
        for (int l = 0; l < d; l++) {
            const double t = rotated(d, L.Q, y + j * d, l);
            yt[j * d + l] = t;
            n2 += L.k[l] * t * t;
        }
        nk[j] = n2;
    }
    double so = 0, sv = 0;
    for (int64_t i = 0; i < lq; i++) {
        const double *xi = x + i * d, *xti = xt + i * d;
        for (int64_t j = 0; j < lk; j++) {
            const double *yj = y + j * d, *ytj = yt + j * d;
            double xy = 0, kxy = 0;
            for (int c = 0; c < d; c++) {
                xy += xi[c] * yj[c];
                kxy += xti[c] * ytj[c];
            }
            rj_gerf_pair(xy, params[P_K] + nq[i] + nk[j] + 2 * kxy, &so, &sv);
        }
    }
    rj_free(xt);
    rj_free(yt);
    rj_free(nq);
    rj_free(nk);
    rj_gerf_means(so, sv, lq, lk, obj, var_obj);
    return RFJIT_OK;
}

/*
 * Per token: features 2 x (2md + 2d + 4m + m exp) (PRF + m, spec 4.6), statistics ~2d^2
 * (second moments of x and y), linear attention 4 M dv + 3M + dv with M = m (spec 1.1).
 * Bytes as positive.c. The eigh and the 2 m d^2 fold are per (batch, head), not per token.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d;
    rj_gerf_cost(s, 2 * d, 2 * d * d, flops, bytes);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* ell_r = b_r + (W_eff x)_r - |x|^2/2, as in features(). */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    const layout L = layout_of(s, params);
    memcpy(out->b, L.bias, (size_t)s->m * sizeof(double));
    memcpy(out->W, L.Weff, (size_t)s->m * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_sderf = {
    .name = "sderf",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_FITTED,
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
