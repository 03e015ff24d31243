/* SPDX-License-Identifier: MIT */
/*
 * This file is the estimator registry: one line per estimator, in the order that also breaks
 * ties for "auto". Adding an estimator is its est/<name>.c plus one line here; a unit test
 * fails if a file in est/ is missing from this list.
 */
#include "est/est.h"

#include "est/ref.h"

#include <string.h>

extern const rj_est_ops rj_est_exact, rj_est_positive, rj_est_hyperbolic, rj_est_trig,
    rj_est_oprf, rj_est_saderf, rj_est_sderf, rj_est_aderf, rj_est_hybrid, rj_est_eva;

const rj_est_ops *const rj_est_registry[] = {
    &rj_est_exact,
    &rj_est_positive,
    &rj_est_hyperbolic,
    &rj_est_trig,
    &rj_est_oprf,
    &rj_est_saderf,
    &rj_est_sderf,
    &rj_est_aderf,
    &rj_est_hybrid,
    &rj_est_eva,
};

const int rj_est_count = (int)(sizeof rj_est_registry / sizeof rj_est_registry[0]);

const rj_est_ops *rj_est_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < rj_est_count; i++)
        if (strcmp(rj_est_registry[i]->name, name) == 0)
            return rj_est_registry[i];
    return NULL;
}

rfjit_status rj_est_ref_attend(const rj_spec *s, const double *params, const double *x,
                               int64_t lq, const double *y, const double *v, int64_t lk,
                               double *out, rj_diag *dg)
{
    if (s->est->tmpl == RJ_TMPL_LINEAR)
        return rj_ref_linear(s, params, x, lq, y, v, lk, out, dg);
    return s->est->attend(s, params, x, lq, y, v, lk, out, dg);
}

const char *rfjit_estimator_name(int index)
{
    if (index < 0 || index >= rj_est_count)
        return NULL;
    return rj_est_registry[index]->name;
}

const rj_est_ops *rj_est_default(void)
{
    return &rj_est_positive;
}
