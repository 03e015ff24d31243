/* SPDX-License-Identifier: MIT */
/*
 * This file is SADERF, the simplified asymmetric dense-exponential random features of FAVOR#
 * (spec estimators.md 4.4; DERF 4.1 with A = aI, B1' = Psi, B2' = Psi^{-1}, Psi diagonal):
 * OPRF (3.1) applied to the rescaled vectors x' = psi o x (queries) and y' = y / psi (keys),
 * which keep x'^T y' = x^T y:
 *
 *     phi_q(x)_r = m^{-1/2} (1-4a)^{d/4} exp(a|w_r|^2 + sqrt(1-4a) w_r^T x' - |x'|^2/2)
 *     phi_k(y)_r = the same with y'                                       M = m, shared W
 *     E_w[phi_q(x)^T phi_k(y)] = e^{x'^T y'} = SM(x, y)
 *     Var = (1/m) SM^2 expm1( d ln(1-4a) - (d/2) ln(1-8a) + |x' + y'|^2/(1-8a) )   (GERF, 3.1)
 *
 * Fit: ln E[(f1 f2)^2] = 2 x^T y + d ln(1-4a) - (d/2) ln(1-8a) + |x' + y'|^2/(1-8a), so for
 * any a < 1/8 the mean over pairs is minimised by the psi minimising mean|x' + y'|^2 =
 * sum_l (psi_l^2 M1_ll + psi_l^{-2} M2_ll) + 2 xbar^T ybar, i.e.
 *
 *     psi_l = (M2_ll / M1_ll)^{1/4},   M1 = mean_i x_i x_i^T,  M2 = mean_j y_j y_j^T
 *     rho = (1/d) mean_{ij} |x'_i + y'_j|^2 = (2/d)(sum_l sqrt(M1_ll M2_ll) + xbar^T ybar),
 *     a = A*(rho)  (OPRF's closed form, 3.2)
 *
 * The spec writes psi_l with sums over rows; with L_q != L_k that is only right with means
 * (the sums differ by (L_k/L_q)^{1/4}), which is what the minimisation gives, so means are used.
 * A dimension with M1_ll = M2_ll = 0 carries no data and gets psi_l = 1 (any value is
 * optimal); a dimension where exactly one of them is zero has no minimiser (psi_l -> 0 or
 * infinity), which is RFJIT_E_FIT.
 *
 * Data flow: fold psi into the role projections, W_q = sqrt(1-4a) W diag(psi) and
 * W_k = sqrt(1-4a) W diag(1/psi), biases b_r = a|w_r|^2 + (d/4) ln(1-4a) - (1/2) ln m; then
 * ell_r = b_r + (W_role x)_r - |x'|^2/2, where |x'|^2 must use the rescaled vector.
 *
 * Parameter block (version 1): [a, rho, sqrt(1-4a), c = (d/4) ln(1-4a) - (1/2) ln m,
 * psi_1..psi_d, b_1..b_m, W_q (m x d), W_k (m x d)]; 4 + d + m + 2 m d doubles.
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

enum { P_A = 0, P_RHO = 1, P_B = 2, P_C = 3, P_PSI = 4 };

static const double *bias_of(const rj_spec *s, const double *params)
{
    return params + P_PSI + s->d;
}

static const double *proj_of(const rj_spec *s, const double *params, rj_role role)
{
    return bias_of(s, params) + s->m + (role == RJ_ROLE_K ? (size_t)s->m * (size_t)s->d : 0);
}

static int64_t feature_dim(const rj_spec *s)
{
    return s->m;
}

static size_t params_size(const rj_spec *s)
{
    return P_PSI + (size_t)s->d + (size_t)s->m + 2 * (size_t)s->m * (size_t)s->d;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)seed;
    const int d = s->d, m = s->m;
    RJ_TRY(rj_gerf_check_fit(s, W, st, "fitting", dg));
    const double nx = (double)st->nx, ny = (double)st->ny;
    double *psi = params + P_PSI;
    double trace = 0, cross = 0;
    for (int l = 0; l < d; l++) {
        const double m1 = st->mxx[(size_t)l * (size_t)d + (size_t)l] / nx;
        const double m2 = st->myy[(size_t)l * (size_t)d + (size_t)l] / ny;
        RJ_FAIL_IF(dg, (m1 > 0) != (m2 > 0), RFJIT_E_FIT,
                   "saderf: dimension %d is zero in all %s but not in all %s, so psi has no "
                   "minimiser",
                   l, m1 > 0 ? "keys" : "queries", m1 > 0 ? "queries" : "keys");
        psi[l] = m1 > 0 ? sqrt(sqrt(m2 / m1)) : 1.0;
        RJ_FAIL_IF(dg, !(psi[l] > 0) || !isfinite(psi[l]), RFJIT_E_FIT,
                   "saderf: psi_%d = (M2_ll / M1_ll)^{1/4} is not representable", l);
        trace += sqrt(m1 * m2);
        cross += (st->sx[l] / nx) * (st->sy[l] / ny);
    }
    double rho = 2 * (trace + cross) / d;
    /* rho = mean |x' + y'|^2 / d >= 0; a negative value is rounding. */
    if (rho < 0)
        rho = 0;
    RJ_FAIL_IF(dg, !isfinite(rho), RFJIT_E_FIT, "saderf: statistics overflow (rho not finite)");
    double a, B, c;
    RJ_TRY(rj_gerf_scalars(s, rho, &a, &B, &c, dg));
    params[P_A] = a;
    params[P_RHO] = rho;
    params[P_B] = B;
    params[P_C] = c;
    double *bias = params + P_PSI + d, *Wq = bias + m, *Wk = Wq + (size_t)m * (size_t)d;
    for (int r = 0; r < m; r++) {
        const double *w = W + (size_t)r * (size_t)d;
        double ww = 0;
        for (int l = 0; l < d; l++) {
            ww += w[l] * w[l];
            Wq[(size_t)r * (size_t)d + (size_t)l] = B * w[l] * psi[l];
            Wk[(size_t)r * (size_t)d + (size_t)l] = B * w[l] / psi[l];
        }
        bias[r] = a * ww + c;
    }
    if (info) {
        info->A = a;
        info->rho = rho;
    }
    return RFJIT_OK;
}

/* |x'|^2 with x' = psi o x (queries) or x / psi (keys). */
static double scaled_norm2(int d, const double *psi, rj_role role, const double *x)
{
    double sq = 0;
    for (int l = 0; l < d; l++) {
        const double t = role == RJ_ROLE_Q ? psi[l] * x[l] : x[l] / psi[l];
        sq += t * t;
    }
    return sq;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    const double sq = scaled_norm2(s->d, params + P_PSI, role, x);
    rj_gerf_features(s, bias_of(s, params), proj_of(s, params, role), sq, x, h, f);
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    const double *psi = params + P_PSI;
    double xy = 0, zz = 0;
    for (int l = 0; l < s->d; l++) {
        const double z = psi[l] * x[l] + y[l] / psi[l];
        xy += x[l] * y[l];
        zz += z * z;
    }
    return rj_gerf_variance(s, xy, rj_gerf_log_excess(s->d, params[P_A], zz));
}

static double norm_of(const rj_spec *s, const double *params, rj_role role, const double *x)
{
    return scaled_norm2(s->d, params + P_PSI, role, x);
}

static rfjit_status objective(const rj_spec *s, const double *params, const double *x,
                              int64_t lq, const double *y, int64_t lk, double *obj,
                              double *var_obj, rj_diag *dg)
{
    return rj_gerf_objective(s, params, params[P_A], norm_of, x, lq, y, lk, obj, var_obj, dg);
}

/*
 * Per token: features 2 x (2md + 4d (rescaled norm) + 4m + m exp) (PRF + d + m, spec 4.6),
 * statistics ~4d (per-dimension sums and sums of squares), linear attention 4 M dv + 3M + dv
 * with M = m (spec 1.1). Bytes as positive.c.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d;
    rj_gerf_cost(s, 4 * d, 4 * d, flops, bytes);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    *kf = (rj_kfeat){RJ_KF_EXP, s->m, RJ_KN_DIAG, 0, 0, 0};
}

/* ell_r = b_r + (W_role x)_r - |x'|^2/2 with x' = psi o x (queries) or x / psi (keys), so
 * n(x) has the gains psi^2 or psi^-2. */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    const double *psi = params + P_PSI;
    memcpy(out->b, bias_of(s, params), (size_t)s->m * sizeof(double));
    for (int l = 0; l < s->d; l++)
        out->g[l] = role == RJ_ROLE_Q ? psi[l] * psi[l] : 1.0 / (psi[l] * psi[l]);
    memcpy(out->W, proj_of(s, params, role), (size_t)s->m * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_saderf = {
    .name = "saderf",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_FITTED | RJ_EST_MOM_DIAG,
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
