/* SPDX-License-Identifier: MIT */
/* This file implements est/est_common.h. */
#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool valid_d(const rj_spec *s, char *why, size_t n)
{
    if (s->d < 1 || s->d > RJ_MAX_D) {
        snprintf(why, n, "d = %d is outside [1, %d]", s->d, RJ_MAX_D);
        return false;
    }
    return true;
}

static bool at_least_one(int v, const char *what, char *why, size_t n)
{
    if (v < 1) {
        snprintf(why, n, "%s = %d must be >= 1", what, v);
        return false;
    }
    return true;
}

bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n)
{
    return valid_d(s, why, n) && at_least_one(s->m, "m", why, n);
}

bool rj_est_valid_ddv(const rj_spec *s, char *why, size_t n)
{
    return valid_d(s, why, n) && at_least_one(s->dv, "dv", why, n);
}

double rj_est_sqnorm(int d, const double *x)
{
    double sq = 0;
    for (int j = 0; j < d; j++)
        sq += x[j] * x[j];
    return sq;
}

size_t rj_est_params_w(const rj_spec *s)
{
    return (size_t)s->m * (size_t)s->d;
}

rfjit_status rj_est_fit_w(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                          double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)seed;
    (void)st;
    RJ_FAIL_IF(dg, !W, RFJIT_E_INTERNAL, "%s: no projection matrix", s->est->name);
    memcpy(params, W, rj_est_params_w(s) * sizeof(double));
    if (info) {
        info->A = NAN;
        info->rho = NAN;
    }
    return RFJIT_OK;
}

/*
 * For rho < 1 the textbook form cancels (1 - 2 rho ~ sqrt(...)), so use the conjugate
 * -rho / (1 - 2 rho + sqrt(...)) (same value: the product of the two numerators is -16 rho);
 * for rho >= 1 the textbook form has no cancellation. The square root is taken as
 * (2 rho + 1) sqrt(1 + 8 rho / (2 rho + 1)^2) so that it cannot overflow.
 */
double rj_gerf_a_star(double rho)
{
    const double t = 2 * rho + 1;
    const double root = t * sqrt(1 + (8 * rho / t) / t);
    if (rho < 1)
        return -rho / (1 - 2 * rho + root);
    return (1 - 2 * rho - root) / 16;
}

/* 2(1-4A)/(1-8A) - 1 = 1/(1-8A) merges the |x|^2, |y|^2 terms of spec 3.1. */
double rj_gerf_log_excess(int d, double A, double zz)
{
    return d * log1p(-4 * A) - 0.5 * d * log1p(-8 * A) + zz / (1 - 8 * A);
}

double rj_log_expm1(double g)
{
    if (!(g > 0))
        return -INFINITY;
    return g > 30 ? g + log1p(-exp(-g)) : log(expm1(g));
}

rfjit_status rj_gerf_check_fit(const rj_spec *s, const double *W, const rj_stats *st,
                               const char *what, rj_diag *dg)
{
    const char *name = s->est->name;
    RJ_FAIL_IF(dg, !W, RFJIT_E_INTERNAL, "%s: no projection matrix", name);
    RJ_FAIL_IF(dg, !st, RFJIT_E_FIT, "%s: %s needs query/key statistics", name, what);
    RJ_FAIL_IF(dg, st->d != s->d, RFJIT_E_INTERNAL, "%s: statistics of dimension %d, spec %d",
               name, st->d, s->d);
    RJ_FAIL_IF(dg, st->nx < 1 || st->ny < 1, RFJIT_E_FIT,
               "%s: %s needs at least one query and one key (got %lld, %lld)", name, what,
               (long long)st->nx, (long long)st->ny);
    return RFJIT_OK;
}

rfjit_status rj_gerf_scalars(const rj_spec *s, double rho, double *a, double *sb, double *c,
                             rj_diag *dg)
{
    *a = rj_gerf_a_star(rho);
    *sb = sqrt(1 - 4 * *a);
    *c = 0.25 * s->d * log1p(-4 * *a) - 0.5 * log((double)s->m);
    RJ_FAIL_IF(dg, !isfinite(*a) || !isfinite(*c), RFJIT_E_FIT,
               "%s: A*(rho = %g) is not representable", s->est->name, rho);
    return RFJIT_OK;
}

/* For g > 1 as e^{2xy + g}(1 - e^{-g}), so that e^g alone cannot overflow. */
double rj_gerf_variance(const rj_spec *s, double xy, double g)
{
    if (g > 1)
        return exp(2 * xy + g) * -expm1(-g) / s->m;
    return exp(2 * xy) * expm1(g) / s->m;
}

void rj_gerf_features(const rj_spec *s, const double *bias, const double *W, double sq,
                      const double *x, double *h, double *f)
{
    const int d = s->d, m = s->m;
    double hmax = -INFINITY;
    for (int r = 0; r < m; r++) {
        const double *w = W + (size_t)r * (size_t)d;
        double u = 0;
        for (int j = 0; j < d; j++)
            u += w[j] * x[j];
        f[r] = bias[r] + u - 0.5 * sq;
        if (f[r] > hmax)
            hmax = f[r];
    }
    for (int r = 0; r < m; r++)
        f[r] = exp(f[r] - hmax);
    *h = hmax;
}

/* |x'_i + y'_j|^2 = |x'_i|^2 + |y'_j|^2 + 2 x_i^T y_j, since x'^T y' = x^T y: the rows' norms
 * once (the keys' in a buffer), then one dot product per pair. */
rfjit_status rj_gerf_objective(const rj_spec *s, const double *params, double A,
                               rj_gerf_norm norm, const double *x, int64_t lq, const double *y,
                               int64_t lk, double *obj, double *var_obj, rj_diag *dg)
{
    const int d = s->d;
    RJ_FAIL_IF(dg, lq < 1 || lk < 1, RFJIT_E_INVALID_ARG,
               "%s: objective needs at least one query and one key", s->est->name);
    double *ny = rj_alloc_array((size_t)lk, sizeof(double));
    RJ_FAIL_IF(dg, !ny, RFJIT_E_NOMEM, "%s: no memory for %lld key norms", s->est->name,
               (long long)lk);
    for (int64_t j = 0; j < lk; j++)
        ny[j] = norm(s, params, RJ_ROLE_K, y + j * d);
    double so = 0, sv = 0;
    for (int64_t i = 0; i < lq; i++) {
        const double *xi = x + i * d;
        const double nx = norm(s, params, RJ_ROLE_Q, xi);
        for (int64_t j = 0; j < lk; j++) {
            const double *yj = y + j * d;
            double xy = 0;
            for (int c = 0; c < d; c++)
                xy += xi[c] * yj[c];
            rj_gerf_pair(xy, rj_gerf_log_excess(d, A, nx + ny[j] + 2 * xy), &so, &sv);
        }
    }
    rj_free(ny);
    rj_gerf_means(so, sv, lq, lk, obj, var_obj);
    return RFJIT_OK;
}

void rj_gerf_pair(double xy, double g, double *so, double *sv)
{
    *so += 2 * xy + g;
    *sv += 2 * xy + rj_log_expm1(g);
}

void rj_gerf_means(double so, double sv, int64_t lq, int64_t lk, double *obj, double *var_obj)
{
    const double pairs = (double)lq * (double)lk;
    *obj = so / pairs;
    *var_obj = sv / pairs;
}

void rj_gerf_cost(const rj_spec *s, double norm_flops, double stat_flops, double *flops,
                  double *bytes)
{
    const double d = s->d, dv = s->dv, m = s->m, M = m;
    const double feat = 2 * m * d + norm_flops + 4 * m + m * RJ_EST_TRANSCENDENTAL_FLOPS;
    *flops = 2 * feat + stat_flops + 4 * M * dv + 3 * M + dv;
    *bytes = 4 * (2 * d + 2 * dv) + 4 * M * (dv + 1);
}
