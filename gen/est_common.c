/* SPDX-License-Identifier: MIT */
/* This file implements gen/est_common.h. */
#include "est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n)
{
    if (s->d < 1 || s->d > RJ_MAX_D) {
        snprintf(why, n, "d = %d is outside [1, %d]", s->d, RJ_MAX_D);
        return false;
    }
    if (s->m < 1) {
        snprintf(why, n, "m = %d must be >= 1", s->m);
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
