/* SPDX-License-Identifier: MIT */
/*
 * This file is ADERF, the asymmetric dense-exponential random features of FAVOR# (spec
 * estimators.md 4.2; DERF 4.1 with A = aI, B(1) = sqrt(1-4a) B1', B(2) = sqrt(1-4a) B2',
 * B1'^T B2' = I, C(k) = -(1/2) Bk'^T Bk'): OPRF (3.1) applied to x' = B1' x (queries) and
 * y' = B2' y (keys), which keep x'^T y' = x^T B1'^T B2' y = x^T y:
 *
 *     phi_q(x)_r = m^{-1/2} (1-4a)^{d/4} exp(a|w_r|^2 + sqrt(1-4a) w_r^T B1' x - |B1' x|^2/2)
 *     phi_k(y)_r = the same with B2' y                                    M = m, shared W
 *     E_w[phi_q(x)^T phi_k(y)] = SM(x, y)
 *     Var = (1/m) SM^2 expm1( d ln(1-4a) - (d/2) ln(1-8a) + |x' + y'|^2/(1-8a) )
 *
 * Fit: the mean over pairs of ln E[(f1 f2)^2] is 2 mean x^T y + d ln(1-4a) - (d/2) ln(1-8a)
 * + mean|x' + y'|^2/(1-8a), and mean|x' + y'|^2 = tr(P M1) + tr(P^{-1} M2) + 2 xbar^T ybar
 * with P = B1'^T B1', M1 = mean x x^T, M2 = mean y y^T. Its minimiser is the matrix geometric
 * mean P M1 P = M2; explicitly (spec 4.2)
 *
 *     M1 = Q1 L1 Q1^T,  M2 = Q2 L2 Q2^T  (rj_eigh),   L1^{1/2} Q1^T Q2 L2^{1/2} = U S V^T (rj_svd)
 *     B1' = S^{1/2} U^T L1^{-1/2} Q1^T,   B2' = S^{1/2} V^T L2^{-1/2} Q2^T   (B1'^T B2' = I)
 *     rho = (1/d) mean|x'_i + y'_j|^2,   a = A*(rho)  (OPRF's closed form, 3.2)
 *
 * rho is evaluated as (1/d)(tr(B1' M1 B1'^T) + tr(B2' M2 B2'^T) + 2 xbar^T ybar) on the data's
 * moments; without regularisation this is the spec's (2/d)(sum_l s_l + xbar^T ybar), and with
 * it a is still the exact minimiser for the B' actually used.
 *
 * Regularisation (spec pitfall 13: L < d or degenerate data make M1, M2 singular): the
 * eigenvalues of each moment are floored at 1e-6 tr(Mk)/d before the square roots. Data whose
 * moments have condition number below ~1e6 d are untouched (the exact closed form); singular
 * moments get the geometric mean of the floored matrices, which is finite and still satisfies
 * B1'^T B2' = I exactly, so the estimator stays unbiased. tr(Mk) = 0 (all queries or all keys
 * zero) has no minimiser and is RFJIT_E_FIT.
 *
 * Data flow: fold into role projections W_q = sqrt(1-4a) W B1', W_k = sqrt(1-4a) W B2', biases
 * b_r = a|w_r|^2 + (d/4) ln(1-4a) - (1/2) ln m; ell_r = b_r + (W_role x)_r - |Bk' x|^2/2
 * (2md + 2d^2 flops per row).
 *
 * Parameter block (version 1): [a, rho, c = (d/4) ln(1-4a) - (1/2) ln m, b_1..b_m,
 * B1' (d x d), B2' (d x d), W_q (m x d), W_k (m x d)], all row-major; 3 + m + 2d^2 + 2md doubles.
 */
#include "est/est.h"

#include "est/est_common.h"

#include "core/linalg.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

/* Eigenvalue floor relative to tr(Mk)/d (see the regularisation paragraph above). */
#define EIG_FLOOR 1e-6

enum { P_A = 0, P_RHO = 1, P_C = 2, P_BIAS = 3 };

typedef struct layout {
    const double *bias, *B1, *B2, *Wq, *Wk;
} layout;

static layout layout_of(const rj_spec *s, const double *params)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m;
    layout L;
    L.bias = params + P_BIAS;
    L.B1 = L.bias + m;
    L.B2 = L.B1 + d * d;
    L.Wq = L.B2 + d * d;
    L.Wk = L.Wq + m * d;
    return L;
}

static int64_t feature_dim(const rj_spec *s)
{
    return s->m;
}

static size_t params_size(const rj_spec *s)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m;
    return P_BIAS + m + 2 * d * d + 2 * m * d;
}

/* tr(B M B^T) = sum_k B_k^T M B_k over the rows B_k of B (d x d). */
static double sandwich_trace(int d, const double *B, const double *M)
{
    double t = 0;
    for (int k = 0; k < d; k++) {
        const double *bk = B + (size_t)k * (size_t)d;
        for (int i = 0; i < d; i++) {
            const double *mi = M + (size_t)i * (size_t)d;
            double row = 0;
            for (int j = 0; j < d; j++)
                row += mi[j] * bk[j];
            t += bk[i] * row;
        }
    }
    return t;
}

/*
 * Eigendecomposition of one moment with the eigenvalue floor; lam gets the floored values.
 * what names the role for messages.
 */
static rfjit_status floored_eigh(int d, const double *M, double *lam, double *Q,
                                 const char *what, rj_diag *dg)
{
    double tr = 0;
    for (int l = 0; l < d; l++)
        tr += M[(size_t)l * (size_t)d + (size_t)l];
    RJ_FAIL_IF(dg, !(tr > 0) || !isfinite(tr), RFJIT_E_FIT,
               "aderf: the %s second moment has trace %g; B' needs some non-zero %s rows",
               what, tr, what);
    const rfjit_status s = rj_eigh(d, M, lam, Q);
    RJ_FAIL_IF(dg, s != RFJIT_OK, s, "aderf: eigendecomposition of the %s moment failed", what);
    const double floor_ = EIG_FLOOR * tr / d;
    for (int l = 0; l < d; l++)
        if (!(lam[l] >= floor_))
            lam[l] = floor_;
    return RFJIT_OK;
}

/* Bk' = S^{1/2} U^T L^{-1/2} Q^T: Bk'[k][j] = sqrt(s_k) sum_i U[i][k] irl_i Q[j][i], where
 * irl_i = lam_i^{-1/2}. */
static void factor(int d, const double *sig, const double *U, const double *irl,
                   const double *Q, double *B)
{
    for (int k = 0; k < d; k++)
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int i = 0; i < d; i++)
                t += U[(size_t)i * (size_t)d + (size_t)k] * irl[i] *
                     Q[(size_t)j * (size_t)d + (size_t)i];
            B[(size_t)k * (size_t)d + (size_t)j] = sqrt(sig[k]) * t;
        }
}

/* B1', B2' from the moments (work: 5 d^2 + 3 d doubles). */
static rfjit_status fit_b(int d, const double *M1, const double *M2, double *work, double *B1,
                          double *B2, rj_diag *dg)
{
    const size_t dd = (size_t)d * (size_t)d;
    double *Q1 = work, *Q2 = Q1 + dd, *C = Q2 + dd, *U = C + dd, *V = U + dd;
    double *lam1 = V + dd, *lam2 = lam1 + d, *sig = lam2 + d;
    RJ_TRY(floored_eigh(d, M1, lam1, Q1, "query", dg));
    RJ_TRY(floored_eigh(d, M2, lam2, Q2, "key", dg));
    /* C = L1^{1/2} Q1^T Q2 L2^{1/2}. */
    for (int k = 0; k < d; k++)
        for (int l = 0; l < d; l++) {
            double t = 0;
            for (int i = 0; i < d; i++)
                t += Q1[(size_t)i * (size_t)d + (size_t)k] * Q2[(size_t)i * (size_t)d + (size_t)l];
            C[(size_t)k * (size_t)d + (size_t)l] = sqrt(lam1[k]) * t * sqrt(lam2[l]);
        }
    const rfjit_status s = rj_svd(d, C, U, sig, V);
    RJ_FAIL_IF(dg, s != RFJIT_OK, s, "aderf: SVD of L1^{1/2} Q1^T Q2 L2^{1/2} failed");
    /* C is a product of nonsingular factors, so s_d > 0 unless it underflowed. */
    RJ_FAIL_IF(dg, !(sig[d - 1] > 0), RFJIT_E_FIT,
               "aderf: the moments are too ill-conditioned (smallest singular value %g)",
               sig[d - 1]);
    for (int l = 0; l < d; l++) {
        lam1[l] = 1 / sqrt(lam1[l]);
        lam2[l] = 1 / sqrt(lam2[l]);
    }
    factor(d, sig, U, lam1, Q1, B1);
    factor(d, sig, V, lam2, Q2, B2);
    return RFJIT_OK;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)seed;
    const int d = s->d, m = s->m;
    const size_t dd = (size_t)d * (size_t)d;
    RJ_TRY(rj_gerf_check_fit(s, W, st, "fitting", dg));
    const double nx = (double)st->nx, ny = (double)st->ny;
    double *M = rj_alloc_array(7 * dd + 3 * (size_t)d, sizeof(double));
    RJ_FAIL_IF(dg, !M, RFJIT_E_NOMEM, "aderf: no memory for the %d x %d factorisations", d, d);
    double *M1 = M, *M2 = M + dd;
    for (size_t i = 0; i < dd; i++) {
        M1[i] = st->mxx[i] / nx;
        M2[i] = st->myy[i] / ny;
    }
    double *bias = params + P_BIAS, *B1 = bias + m, *B2 = B1 + dd;
    double *Wq = B2 + dd, *Wk = Wq + (size_t)m * (size_t)d;
    rfjit_status r = fit_b(d, M1, M2, M + 2 * dd, B1, B2, dg);
    double rho = 0;
    if (r == RFJIT_OK) {
        double cross = 0;
        for (int j = 0; j < d; j++)
            cross += (st->sx[j] / nx) * (st->sy[j] / ny);
        rho = (sandwich_trace(d, B1, M1) + sandwich_trace(d, B2, M2) + 2 * cross) / d;
    }
    rj_free(M);
    RJ_TRY(r);
    /* rho = mean |x' + y'|^2 / d >= 0; a negative value is rounding. */
    if (rho < 0)
        rho = 0;
    RJ_FAIL_IF(dg, !isfinite(rho), RFJIT_E_FIT, "aderf: statistics overflow (rho not finite)");
    double a, sb, c;
    RJ_TRY(rj_gerf_scalars(s, rho, &a, &sb, &c, dg));
    params[P_A] = a;
    params[P_RHO] = rho;
    params[P_C] = c;
    for (int k = 0; k < m; k++) {
        const double *w = W + (size_t)k * (size_t)d;
        double ww = 0;
        for (int l = 0; l < d; l++)
            ww += w[l] * w[l];
        bias[k] = a * ww + c;
        /* (W B')[k][j] = sum_l w_kl B'[l][j]. */
        for (int j = 0; j < d; j++) {
            double tq = 0, tk = 0;
            for (int l = 0; l < d; l++) {
                tq += w[l] * B1[(size_t)l * (size_t)d + (size_t)j];
                tk += w[l] * B2[(size_t)l * (size_t)d + (size_t)j];
            }
            Wq[(size_t)k * (size_t)d + (size_t)j] = sb * tq;
            Wk[(size_t)k * (size_t)d + (size_t)j] = sb * tk;
        }
    }
    if (info) {
        info->A = a;
        info->rho = rho;
    }
    return RFJIT_OK;
}

/* |B x|^2 row by row (no scratch, so features stay allocation-free). */
static double transformed_norm2(int d, const double *B, const double *x)
{
    double sq = 0;
    for (int k = 0; k < d; k++) {
        const double *bk = B + (size_t)k * (size_t)d;
        double t = 0;
        for (int j = 0; j < d; j++)
            t += bk[j] * x[j];
        sq += t * t;
    }
    return sq;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    const layout L = layout_of(s, params);
    const double *Wr = role == RJ_ROLE_Q ? L.Wq : L.Wk;
    const double sq = transformed_norm2(s->d, role == RJ_ROLE_Q ? L.B1 : L.B2, x);
    rj_gerf_features(s, L.bias, Wr, sq, x, h, f);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    const int d = s->d;
    const layout L = layout_of(s, params);
    double xy = 0, zz = 0;
    for (int j = 0; j < d; j++)
        xy += x[j] * y[j];
    for (int k = 0; k < d; k++) {
        const double *b1 = L.B1 + (size_t)k * (size_t)d, *b2 = L.B2 + (size_t)k * (size_t)d;
        double z = 0;
        for (int j = 0; j < d; j++)
            z += b1[j] * x[j] + b2[j] * y[j];
        zz += z * z;
    }
    return rj_gerf_variance(s, xy, rj_gerf_log_excess(d, params[P_A], zz));
}

static double norm_of(const rj_spec *s, const double *params, rj_role role, const double *x)
{
    const layout L = layout_of(s, params);
    return transformed_norm2(s->d, role == RJ_ROLE_Q ? L.B1 : L.B2, x);
}

static rfjit_status objective(const rj_spec *s, const double *params, const double *x,
                              int64_t lq, const double *y, int64_t lk, double *obj,
                              double *var_obj, rj_diag *dg)
{
    return rj_gerf_objective(s, params, params[P_A], norm_of, x, lq, y, lk, obj, var_obj, dg);
}

/*
 * Per token: features 2 x (2md + 2d^2 + 4m + m exp) (spec 4.6), statistics ~2d^2, linear
 * attention 4 M dv + 3M + dv with M = m (spec 1.1). Bytes as positive.c. Two eigh, one SVD
 * and the 4 m d^2 fold are per (batch, head), not per token.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d;
    rj_gerf_cost(s, 2 * d * d, 2 * d * d, flops, bytes);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, s->m, RJ_KN_DENSE, 0, 0, 0};
}

/* ell_r = b_r + (W_role x)_r - |B' x|^2/2 with B' = B1' (queries) or B2' (keys). */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    const layout L = layout_of(s, params);
    const size_t d = (size_t)s->d;
    memcpy(out->b, L.bias, (size_t)s->m * sizeof(double));
    memcpy(out->g, role == RJ_ROLE_Q ? L.B1 : L.B2, d * d * sizeof(double));
    memcpy(out->W, role == RJ_ROLE_Q ? L.Wq : L.Wk, (size_t)s->m * d * sizeof(double));
}

const rj_est_ops rj_est_aderf = {
    .name = "aderf",
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
