/* SPDX-License-Identifier: MIT */
/*
 * This file is the angular hybrid random-feature estimator (bipolar HRF with lambda-angular,
 * spec estimators.md 5.1-5.2; Choromanski et al., ICLR 2022):
 *
 *     K_hat = lambda_hat K_b + (1 - lambda_hat) K_t,        E[K_hat] = SM(x, y) = e^{x.y}
 *     lambda = theta_xy / pi,   lambda_hat = 1/2 - (1/(2n)) sum_t s_t(x) s_t(y),
 *     s_t(x) = sgn(r_t . x) (+1 at 0),   r_t ~ N(0, I_d),  t = 1..n   (Goemans-Williamson)
 *
 * K_b, the base, is positive (2.1; exact at x = -y, theta = pi) or hyperbolic (2.2), and
 * K_t is trig (2.3; exact at x = y, theta = 0). Both use the plan's W (m x d, shared by q
 * and k); the r_t are drawn in fit() from RJ_STREAM_HRF rows 0..n-1, independent of W,
 * which is what keeps the product lambda_hat K unbiased (pitfall 16):
 *
 *     phi_b(x) = m^{-1/2} e^{-|x|^2/2} [e^{w_r.x}]_r                       (positive, mb = m)
 *             or (2m)^{-1/2} e^{-|x|^2/2} [e^{w_r.x} ; e^{-w_r.x}]_r       (hyperbolic, mb = 2m)
 *     phi_t(x) = m^{-1/2} e^{|x|^2/2} [cos(w_r.x) ; sin(w_r.x)]_r         (2m)
 *
 * Linearised, asymmetric features (5.1; the minus sign is on the query's base sign block):
 *
 *   phi_q(x) = [ phi_b/sqrt2 ; -s(x) (x) phi_b/sqrt(2n) ; phi_t/sqrt2 ; s(x) (x) phi_t/sqrt(2n) ]
 *   phi_k(y) = [ phi_b/sqrt2 ;  s(y) (x) phi_b/sqrt(2n) ; phi_t/sqrt2 ; s(y) (x) phi_t/sqrt(2n) ]
 *
 * so phi_q . phi_k = (1/2 - s(x).s(y)/(2n)) K_b + (1/2 + s(x).s(y)/(2n)) K_t = K_hat.
 * Layout of f (M = (mb + 2m)(n + 1) entries, signed): [base | base (x) s_1 .. s_n |
 * trig | trig (x) s_1 .. s_n], block t of the Kronecker products being the base (or trig)
 * block times the sign of r_t (the tests rely on this layout).
 *
 * Representation e^h f (est.h): with ell_b,r the log of the r-th base entry and
 * ell_t = |x|^2/2 - (1/2) ln m the log of the trig factor, h = max(max_r ell_b,r, ell_t);
 * every |f| entry is then <= 1/sqrt2, and for |x| ~ 350 the smaller family underflows to 0
 * instead of overflowing.
 *
 * Variance (5.1, i.i.d. W; for this spec's m):
 *     Var = (lambda^2 + v) V1 + ((1 - lambda)^2 + v) V2 + 2 (lambda (1 - lambda) - v) c,
 *     v = Var[lambda_hat] = lambda (1 - lambda) / n,
 *     V1 = MSE of the base = SM^2 (e^{|z|^2} - 1) / m (positive), SM^2 (cosh|z|^2 - 1) / m
 *          (hyperbolic), V2 = e^{|x|^2 + |y|^2} (1 - e^{-|D|^2})^2 / (2m), z = x + y, D = x - y,
 *     c = Cov(K_b, K_t) = SM^2 (cos(|x|^2 - |y|^2) - 1) / m  (shared W; 0 for equal norms).
 * Derivation of c (per projection, then / m since different rows are independent):
 *     E[e^{w.z} cos(w.D)] = Re E[e^{w.(z + iD)}] = e^{(|z|^2 - |D|^2)/2} cos(z.D)
 *                         = e^{2 x.y} cos(|x|^2 - |y|^2),
 * times e^{-(|x|^2+|y|^2)/2} e^{(|x|^2+|y|^2)/2} = 1, minus SM^2 = e^{2 x.y}. For the
 * hyperbolic base, cosh(w.z) = (e^{w.z} + e^{-w.z})/2 and the e^{-w.z} half gives the same
 * value (z -> -z flips z.D, and cos is even), so c is the same expression. lambda_hat is
 * independent of (K_b, K_t), so E[lambda_hat^2] = lambda^2 + v etc. give the formula. When x
 * or y is 0 every s_t of it is +1 (the convention above), so lambda = 1/2, v = 1/(4n).
 *
 * Parameters (params_size = (m + n) d doubles): W (m x d) then R (n x d), row-major.
 */
#include "est/est.h"

#include "core/philox.h"
#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Largest accepted n: the feature dimension grows like 3m(n + 1) (pitfall 16). */
#define HRF_MAX_N 4096
/* Largest accepted feature dimension, so M (dv + 1) state doubles stay addressable. */
#define HRF_MAX_M ((int64_t)1 << 28)

static const double PI = 3.14159265358979323846;

static int64_t base_width(const rj_spec *s)
{
    return s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC ? 2 * (int64_t)s->m : (int64_t)s->m;
}

static int64_t feature_dim(const rj_spec *s)
{
    return (base_width(s) + 2 * (int64_t)s->m) * ((int64_t)s->hrf_n + 1);
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (!rj_est_valid_dm(s, why, n))
        return false;
    if (s->hrf_n < 1 || s->hrf_n > HRF_MAX_N) {
        snprintf(why, n, "hybrid sign features n = %d must be in [1, %d]", s->hrf_n,
                 HRF_MAX_N);
        return false;
    }
    if (s->hrf_base != RFJIT_HYBRID_BASE_POSITIVE && s->hrf_base != RFJIT_HYBRID_BASE_HYPERBOLIC) {
        snprintf(why, n, "hybrid base %d is neither positive (%d) nor hyperbolic (%d)",
                 s->hrf_base, RFJIT_HYBRID_BASE_POSITIVE, RFJIT_HYBRID_BASE_HYPERBOLIC);
        return false;
    }
    if (feature_dim(s) > HRF_MAX_M) {
        snprintf(why, n, "feature dimension (mb + 2m)(n + 1) = %lld exceeds %lld",
                 (long long)feature_dim(s), (long long)HRF_MAX_M);
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
    const size_t d = (size_t)s->d;
    memcpy(params, W, (size_t)s->m * d * sizeof(double));
    double *R = params + (size_t)s->m * d;
    for (int t = 0; t < s->hrf_n; t++)
        rj_normals(seed, RJ_STREAM_HRF, (uint32_t)t, R + (size_t)t * d, d);
    if (info)
        info->A = info->rho = NAN;
    return RFJIT_OK;
}

static void features(const rj_spec *s, const double *params, rj_role role, const double *x,
                     double *h, double *f)
{
    const int d = s->d, m = s->m, n = s->hrf_n;
    const int64_t mb = base_width(s);
    const bool hyper = s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC;
    const double *W = params, *R = params + (size_t)m * d;
    double *fb = f, *ft = f + mb * (n + 1); /* base and trig blocks (unsigned parts) */
    const double xx = rj_est_sqnorm(d, x);
    /* ell_b,r = +-u_r + lb and ell_t = lt, with u = W x */
    const double lb = -0.5 * xx - 0.5 * log((double)mb);
    const double lt = 0.5 * xx - 0.5 * log((double)m);
    double umax = -INFINITY;
    for (int r = 0; r < m; r++) {
        double u = 0;
        for (int a = 0; a < d; a++)
            u += W[(size_t)r * d + a] * x[a];
        fb[r] = u; /* the exponent, until h is known */
        if (hyper)
            fb[m + r] = -u;
        ft[r] = cos(u);
        ft[m + r] = sin(u);
        umax = fmax(umax, hyper ? fabs(u) : u);
    }
    const double H = fmax(umax + lb, lt);
    *h = H;
    const double inv_sqrt2 = 1.0 / sqrt(2.0);
    for (int64_t r = 0; r < mb; r++)
        fb[r] = exp(fb[r] + lb - H) * inv_sqrt2;
    const double trig_scale = exp(lt - H) * inv_sqrt2;
    for (int r = 0; r < 2 * m; r++)
        ft[r] *= trig_scale;
    /* sign blocks: s_t/sqrt(n) times the (already 1/sqrt2-scaled) base and trig blocks */
    const double qsign = role == RJ_ROLE_Q ? -1.0 : 1.0, inv_sqrt_n = 1.0 / sqrt((double)n);
    for (int t = 0; t < n; t++) {
        double p = 0;
        for (int a = 0; a < d; a++)
            p += R[(size_t)t * d + a] * x[a];
        const double st = p >= 0 ? inv_sqrt_n : -inv_sqrt_n;
        double *sb = fb + mb * (t + 1), *stt = ft + (int64_t)2 * m * (t + 1);
        for (int64_t r = 0; r < mb; r++)
            sb[r] = qsign * st * fb[r];
        for (int r = 0; r < 2 * m; r++)
            stt[r] = st * ft[r];
    }
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)params;
    double xx = 0, yy = 0, xy = 0;
    for (int a = 0; a < s->d; a++) {
        xx += x[a] * x[a];
        yy += y[a] * y[a];
        xy += x[a] * y[a];
    }
    const double m = s->m, n = s->hrf_n;
    double lambda = 0.5; /* a zero vector has all signs +1: see the top of the file */
    if (xx > 0 && yy > 0)
        lambda = acos(fmax(-1.0, fmin(1.0, xy / sqrt(xx * yy)))) / PI;
    const double v = lambda * (1 - lambda) / n;
    const double sm2 = exp(2 * xy);
    const double zz = fmax(xx + yy + 2 * xy, 0), dd = fmax(xx + yy - 2 * xy, 0);
    /* Written so they stay accurate where they vanish (x -> -y, x -> y, equal norms) and
     * never form 0 * inf: SM^2 (e^a - 1) = e^{2xy + a} (1 - e^{-a}),
     * SM^2 (cosh a - 1) = e^{2xy + a} (1 - e^{-a})^2 / 2, cos b - 1 = -2 sin^2(b/2). */
    const double ez = -expm1(-zz), ed = -expm1(-dd), sn = sin(0.5 * (xx - yy));
    const double V1 = s->hrf_base == RFJIT_HYBRID_BASE_HYPERBOLIC
                          ? exp(2 * xy + zz) * ez * ez / (2 * m)
                          : exp(2 * xy + zz) * ez / m;
    const double V2 = 0.5 * exp(xx + yy) * ed * ed / m;
    const double c = -2 * sm2 * sn * sn / m;
    return (lambda * lambda + v) * V1 + ((1 - lambda) * (1 - lambda) + v) * V2 +
           2 * (lambda * (1 - lambda) - v) * c;
}

/*
 * Per token (one query and one key): features 2 x (2md projection + 2nd signs + 2d norm +
 * (mb + 2m) transcendentals + M Kronecker products), plus linear attention 4 M dv + 3M + dv
 * (spec 1.1). Bytes: the float32 rows of the token (q, k, v, out) plus the (S, z) state of
 * M (dv + 1) floats a causal scan touches per token, as for the other linear estimators.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, m = s->m, n = s->hrf_n, M = (double)feature_dim(s);
    const double mb = (double)base_width(s);
    const double feat =
        2 * m * d + 2 * n * d + 2 * d + (mb + 2 * m) * RJ_EST_TRANSCENDENTAL_FLOPS + M;
    *flops = 2 * feat + 4 * M * dv + 3 * M + dv;
    *bytes = 4 * (2 * d + 2 * dv) + 4 * M * (dv + 1);
}

static void kfeat(const rj_spec *s, rj_kfeat *kf)
{
    const int32_t mb = (int32_t)base_width(s);
    *kf = (rj_kfeat){RJ_KF_HYBRID, mb + s->hrf_n, RJ_KN_DIAG, mb, s->m, s->hrf_n};
}

/* Rows [W ; (-W for the hyperbolic base) ; R]: ell_b = +-u - |x|^2/2 - (1/2) ln mb and
 * ell_t = |x|^2/2 - (1/2) ln m, as in features(). */
static void klower(const rj_spec *s, const double *params, rj_role role, rj_klowered *out)
{
    (void)role;
    const int64_t mb = base_width(s);
    const size_t md = (size_t)s->m * (size_t)s->d;
    out->h0 = -0.5 * log((double)s->m);
    out->gamma2 = 0.5;
    for (int64_t r = 0; r < mb; r++)
        out->b[r] = -0.5 * log((double)mb);
    memcpy(out->W, params, md * sizeof(double));
    if (mb > s->m)
        for (size_t i = 0; i < md; i++)
            out->W[md + i] = -params[i];
    memcpy(out->W + (size_t)mb * (size_t)s->d, params + md,
           (size_t)s->hrf_n * (size_t)s->d * sizeof(double));
}

const rj_est_ops rj_est_hybrid = {
    .name = "hybrid",
    .version = 1,
    .tmpl = RJ_TMPL_LINEAR,
    .flags = RJ_EST_SIGNED,
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) |
                  (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = params_size,
    .fit = fit,
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
