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

bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n)
{
    if (!valid_d(s, why, n))
        return false;
    if (s->m < 1) {
        snprintf(why, n, "m = %d must be >= 1", s->m);
        return false;
    }
    return true;
}

bool rj_est_valid_ddv(const rj_spec *s, char *why, size_t n)
{
    if (!valid_d(s, why, n))
        return false;
    if (s->dv < 1) {
        snprintf(why, n, "dv = %d must be >= 1", s->dv);
        return false;
    }
    return true;
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
