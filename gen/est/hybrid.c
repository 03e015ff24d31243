/* SPDX-License-Identifier: MIT */
/*
 * This file is the angular hybrid random-feature estimator (HRF, spec estimators.md 5.1-5.2):
 *
 *     K_hat = lambda_hat K_base + (1 - lambda_hat) K_trig,   lambda = theta_xy / pi
 *     lambda_hat = 1/2 - (1/(2n)) sum_t s_t(x) s_t(y),     s_t(x) = sgn(r_t^T x), r_t ~ N(0, I)
 *
 * K_base is positive (FAVOR+, exact at x = -y) or hyperbolic, K_trig is trig (exact at x = y);
 * both use the plan's W, while the n sign vectors r_t are independent (own Philox stream
 * RJ_STREAM_HRF), which is what keeps the product lambda_hat K unbiased. Linearised features
 * (asymmetric: the minus sign sits on the query's base sign block):
 *
 *     phi_q = [ phi_b/sqrt2 ; -s(x) (x) phi_b/sqrt(2n) ; phi_t/sqrt2 ;  s(x) (x) phi_t/sqrt(2n) ]
 *     phi_k = [ phi_b/sqrt2 ;  s(y) (x) phi_b/sqrt(2n) ; phi_t/sqrt2 ;  s(y) (x) phi_t/sqrt(2n) ]
 *
 * so phi_q.phi_k = (1/2 - s.s/(2n)) K_base + (1/2 + s.s/(2n)) K_trig. Dimension
 * (mb + 2m)(n + 1), mb = m (positive) or 2m (hyperbolic). Features are signed.
 * Variance (5.1): (lambda^2 + v) V1 + ((1 - lambda)^2 + v) V2 + 2 (lambda (1 - lambda) - v) c,
 * v = lambda (1 - lambda) / n, with c = Cov(K_base, K_trig) = (1/m) SM^2 (cos(|x|^2 - |y|^2) - 1)
 * for a shared W: E[e^{w.z} cos(w.D)] = e^{(|z|^2 - |D|^2)/2} cos(z.D), z.D = |x|^2 - |y|^2,
 * and the same holds for cosh, so the expression is identical for both bases.
 * Parameters: W (m x d) then R (n x d), row-major.
 */
#include "est.h"

#include "../philox.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TRANSCENDENTAL_FLOPS 20.0

static int base_width(const rj_spec *s)
{
    return s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC ? 2 * s->m : s->m;
}

static int64_t feature_dim(const rj_spec *s)
{
    return ((int64_t)base_width(s) + 2 * (int64_t)s->m) * ((int64_t)s->hrf_n + 1);
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (s->d < 1 || s->d > RJ_MAX_D || s->m < 1) {
        snprintf(why, n, "d = %d, m = %d out of range", s->d, s->m);
        return false;
    }
    if (s->hrf_n < 1 || s->hrf_n > 4096) {
        snprintf(why, n, "hybrid sign features n = %d must be in [1, 4096]", s->hrf_n);
        return false;
    }
    if (s->hrf_base != RFJIT_HYBRID_BASE_POSITIVE && s->hrf_base != RFJIT_HYBRID_BASE_HYPERBOLIC) {
        snprintf(why, n, "hybrid base %d is neither positive (0) nor hyperbolic (1)",
                 s->hrf_base);
        return false;
    }
    if (feature_dim(s) > ((int64_t)1 << 31)) {
        snprintf(why, n, "feature dimension 3m(n+1) is too large");
        return false;
    }
    return true;
}

static size_t params_size(const rj_spec *s)
{
    return ((size_t)s->m + (size_t)s->hrf_n) * (size_t)s->d;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)st;
    RJ_FAIL_IF(dg, !W, RFJIT_E_INTERNAL, "hybrid: no projection matrix");
    memcpy(params, W, (size_t)s->m * (size_t)s->d * sizeof(double));
    double *R = params + (size_t)s->m * (size_t)s->d;
    for (int t = 0; t < s->hrf_n; t++)
        rj_normals(seed, RJ_STREAM_HRF, (uint32_t)t, R + (size_t)t * s->d, (size_t)s->d);
    if (info)
        info->A = info->rho = NAN;
    return RFJIT_OK;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    const int d = s->d, m = s->m, n = s->hrf_n, mb = base_width(s);
    const int hyper = s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC;
    const double *W = params, *R = params + (size_t)m * d;
    double sq = 0;
    for (int j = 0; j < d; j++)
        sq += x[j] * x[j];
    /* Layout of f: [base (mb) | base signs (n mb) | trig (2m) | trig signs (2m n)]. */
    double *fb = f, *ft = f + (size_t)mb * (n + 1);
    const double lb = -0.5 * sq - 0.5 * log((double)mb); /* log of phi_b's common factor */
    const double lt = 0.5 * sq - 0.5 * log((double)m);  /* log of phi_t's common factor */
    double ub_max = -INFINITY;
    for (int r = 0; r < m; r++) {
        double u = 0;
        for (int j = 0; j < d; j++)
            u += W[(size_t)r * d + j] * x[j];
        fb[r] = u; /* exponent of the base feature before the common factor */
        if (hyper)
            fb[m + r] = -u;
        ft[r] = cos(u);
        ft[m + r] = sin(u);
        ub_max = fmax(ub_max, hyper ? fabs(u) : u);
    }
    const double H = fmax(ub_max + lb, lt);
    *h = H;
    for (int r = 0; r < mb; r++)
        fb[r] = exp(fb[r] + lb - H) / sqrt(2.0);
    const double trig_scale = exp(lt - H) / sqrt(2.0);
    for (int r = 0; r < 2 * m; r++)
        ft[r] *= trig_scale;
    const double qsign = role == RJ_ROLE_Q ? -1.0 : 1.0, inv_sqrt_n = 1.0 / sqrt((double)n);
    for (int t = 0; t < n; t++) {
        double proj = 0;
        for (int j = 0; j < d; j++)
            proj += R[(size_t)t * d + j] * x[j];
        const double st = proj >= 0 ? inv_sqrt_n : -inv_sqrt_n;
        double *sb = fb + (size_t)mb * (t + 1), *stf = ft + (size_t)2 * m * (t + 1);
        for (int r = 0; r < mb; r++)
            sb[r] = qsign * st * fb[r];
        for (int r = 0; r < 2 * m; r++)
            stf[r] = st * ft[r];
    }
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)params;
    double xx = 0, yy = 0, xy = 0;
    for (int j = 0; j < s->d; j++) {
        xx += x[j] * x[j];
        yy += y[j] * y[j];
        xy += x[j] * y[j];
    }
    const double m = s->m, n = s->hrf_n, sm2 = exp(2 * xy), z2 = xx + yy + 2 * xy;
    const double dd = xx + yy - 2 * xy;
    double cosang = (xx > 0 && yy > 0) ? xy / sqrt(xx * yy) : 1.0;
    cosang = fmax(-1.0, fmin(1.0, cosang));
    const double lam = acos(cosang) / 3.14159265358979323846, v = lam * (1 - lam) / n;
    const double V1 = s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC
                          ? sm2 * (cosh(z2) - 1) / m
                          : sm2 * (exp(z2) - 1) / m;
    const double V2 = 0.5 * exp(xx + yy) * pow(1 - exp(-dd), 2) / m;
    const double c = sm2 * (cos(xx - yy) - 1) / m;
    return (lam * lam + v) * V1 + ((1 - lam) * (1 - lam) + v) * V2 +
           2 * (lam * (1 - lam) - v) * c;
}

static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double M = (double)feature_dim(s), d = s->d, m = s->m, n = s->hrf_n;
    /* both sides: projections 2md each + signs 2nd each + transcendentals, then 4 M dv */
    *flops = 4 * m * d + 4 * n * d + 6 * m * TRANSCENDENTAL_FLOPS + 2 * M + 4 * M * s->dv;
    *bytes = 4.0 * (2 * d + 2 * s->dv);
}

const rj_est_ops rj_est_hybrid = {
    .name = "hybrid",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_SIGNED,
    .proj_kinds = 7u,
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = params_size,
    .fit = fit,
    .features = features,
    .variance = variance,
    .cost = cost,
    .ref_tol = 1e-4,
};
