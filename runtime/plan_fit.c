/* SPDX-License-Identifier: MIT */
/* This file implements runtime/plan_fit.h: the input scale and the per-call fit of the
 * estimators whose parameters depend on the data. */
#include "runtime/plan_fit.h"

#include <math.h>

double rj_plan_input_scale(const rj_spec *s)
{
    return rj_spec_input_scale(s);
}

rfjit_status rj_fit_scratch_init(rj_fit_scratch *fs, const rfjit_plan *p, rj_diag *dg)
{
    fs->params = NULL;
    fs->have_stats = 0;
    if (p->frozen)
        return RFJIT_OK;
    fs->params = rj_alloc_array(p->nparams ? p->nparams : 1, sizeof(double));
    RJ_FAIL_IF(dg, !fs->params, RFJIT_E_NOMEM, "no memory for fitted parameters");
    rfjit_status s = rj_stats_init(&fs->st, p->spec.d);
    if (s != RFJIT_OK) {
        rj_free(fs->params);
        fs->params = NULL;
        return rj_fail(dg, s, "no memory for statistics");
    }
    fs->st.moments = rj_est_moments(p->spec.est->flags);
    fs->have_stats = 1;
    return RFJIT_OK;
}

void rj_fit_scratch_free(rj_fit_scratch *fs)
{
    rj_free(fs->params);
    if (fs->have_stats)
        rj_stats_free(&fs->st);
    fs->params = NULL;
    fs->have_stats = 0;
}

rfjit_status rj_fit_slice(const rfjit_plan *p, rj_fit_scratch *fs, const double *x, int64_t nx,
                          const double *y, int64_t ny, const double **params, rj_diag *dg)
{
    if (p->frozen) {
        *params = p->params;
        return RFJIT_OK;
    }
    rj_stats_reset(&fs->st);
    rj_stats_add(&fs->st, 0, x, nx);
    rj_stats_add(&fs->st, 1, y, ny);
    RJ_TRY(p->spec.est->fit(&p->spec, p->W, p->seed, &fs->st, fs->params, NULL, dg));
    *params = fs->params;
    return RFJIT_OK;
}
