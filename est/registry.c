/* SPDX-License-Identifier: MIT */
/*
 * This file is the estimator registry: one line per estimator, in the order that also breaks
 * ties for "auto". Adding an estimator is its est/<name>.c plus one line here; a unit test
 * fails if a file in est/ is missing from this list.
 */
#include "est/est.h"

#include "est/ref.h"

#include <string.h>

extern const rj_est_ops rj_est_exact, rj_est_positive, rj_est_hyperbolic, rj_est_trig, rj_est_oprf,
    rj_est_saderf, rj_est_sderf, rj_est_aderf, rj_est_hybrid, rj_est_eva, rj_est_blocksparse;

const rj_est_ops *const rj_est_registry[] = {
    &rj_est_exact,  &rj_est_positive, &rj_est_hyperbolic,  &rj_est_trig,
    &rj_est_oprf,   &rj_est_saderf,   &rj_est_sderf,       &rj_est_aderf,
    &rj_est_hybrid, &rj_est_eva,      &rj_est_blocksparse,
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

rfjit_status rj_est_ref_attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                               const double *y, const double *v, int64_t lk, const int64_t *nvis,
                               double *out, rj_diag *dg)
{
    if (s->compat != RJ_COMPAT_NONE)
        return rj_ref_compat(s, params, x, lq, y, v, lk, nvis, out, dg);
    if (s->est->tmpl == RJ_TMPL_LINEAR)
        return rj_ref_linear(s, params, x, lq, y, v, lk, nvis, out, dg);
    return s->est->attend(s, params, x, lq, y, v, lk, nvis, out, dg);
}

rfjit_status rj_est_check_nvis(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis,
                               rj_diag *dg)
{
    RJ_FAIL_IF(dg, lq < 0 || lk < 0, RFJIT_E_SHAPE, "negative sequence length (%lld, %lld)",
               (long long)lq, (long long)lk);
    if (!nvis) {
        RJ_FAIL_IF(dg, s->causal && lq != lk, RFJIT_E_SHAPE,
                   "causal attention without visible-key counts needs lq == lk (%lld vs %lld)",
                   (long long)lq, (long long)lk);
        return RFJIT_OK;
    }
    for (int64_t i = 0; i < lq; i++)
        RJ_FAIL_IF(dg, nvis[i] < (i ? nvis[i - 1] : 0) || nvis[i] > lk, RFJIT_E_INTERNAL,
                   "visible-key count %lld of query %lld is outside [%lld, %lld]",
                   (long long)nvis[i], (long long)i, (long long)(i ? nvis[i - 1] : 0),
                   (long long)lk);
    return RFJIT_OK;
}

const int64_t *rj_est_nvis(const rj_spec *s, int64_t lq, int64_t lk, int64_t qoff,
                           const int64_t *pos, int64_t nk, int64_t *nvis)
{
    if (nk == lk && (qoff == 0 || !s->causal))
        return NULL;
    int64_t n = 0;
    for (int64_t i = 0; i < lq; i++) {
        if (!s->causal)
            n = nk;
        while (n < nk && pos[n] <= i + qoff)
            n++;
        nvis[i] = n;
    }
    return nvis;
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
