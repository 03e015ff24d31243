/* SPDX-License-Identifier: MIT */
/*
 * This file implements rfjit_fit: the closed-form parameters of a data-fitted estimator on
 * one sample, and the objectives of spec estimators.md 4.1 for one projection (m = 1).
 */
#include "api/facade.h"
#include "runtime/plan.h"
#include "runtime/plan_fit.h"
#include "core/proj.h"
#include "runtime/tensor.h"

#include <math.h>
#include <stdio.h>

static void json_number(char *buf, size_t len, double v)
{
    if (isfinite(v))
        snprintf(buf, len, "%.17g", v);
    else
        snprintf(buf, len, "null");
}

static rfjit_status check_sample(const rfjit_tensor *t, const char *name, rj_diag *dg)
{
    RJ_TRY(rj_tensor_check(t, name, false, dg));
    RJ_FAIL_IF(dg, t->shape[0] != 1 || t->shape[1] != 1, RFJIT_E_SHAPE,
               "rfjit_fit takes one (batch, head): %s has shape (%lld, %lld, ...)", name,
               (long long)t->shape[0], (long long)t->shape[1]);
    return rj_tensor_check_finite(t, name, dg);
}

static rfjit_status fit(const rj_spec *s, const rfjit_tensor *q, const rfjit_tensor *k,
                        rfjit_fit_result *res, char *json, size_t json_len, rj_diag *dg)
{
    const int d = s->d;
    const int64_t lq = q->shape[2], lk = k->shape[2];
    rj_stats st;
    RJ_TRY(rj_stats_init(&st, d));
    double *x = rj_alloc_array((size_t)lq * (size_t)d, sizeof(double));
    double *y = rj_alloc_array((size_t)lk * (size_t)d, sizeof(double));
    double *W = rj_alloc_array((size_t)d, sizeof(double));
    double *params = rj_alloc_array(s->est->params_size(s) + 1, sizeof(double));
    rfjit_status r = (x && y && W && params) ? RFJIT_OK
                                             : rj_fail(dg, RFJIT_E_NOMEM, "no memory for fit");
    rj_fit_info info = {NAN, NAN};
    double obj = NAN, var_obj = NAN;
    if (r == RFJIT_OK) {
        const double scale = rj_plan_input_scale(s);
        rj_tensor_gather(q, 0, 0, scale, x);
        rj_tensor_gather(k, 0, 0, scale, y);
        rj_stats_add(&st, 0, x, lq);
        rj_stats_add(&st, 1, y, lk);
        /* The objectives do not depend on W; any valid one-row projection serves the fit. */
        r = rj_proj_draw(RFJIT_PROJ_IID, 0, 1, d, W, dg);
    }
    if (r == RFJIT_OK)
        r = s->est->fit(s, W, 0, &st, params, &info, dg);
    if (r == RFJIT_OK)
        r = s->est->objective(s, params, x, lq, y, lk, &obj, &var_obj, dg);
    if (r == RFJIT_OK) {
        res->objective = obj;
        res->variance_objective = var_obj;
        res->A = info.A;
        res->rho = info.rho;
        if (json) {
            char o[32], vo[32], a[32], rho[32];
            json_number(o, sizeof o, obj);
            json_number(vo, sizeof vo, var_obj);
            json_number(a, sizeof a, info.A);
            json_number(rho, sizeof rho, info.rho);
            int n = snprintf(json, json_len,
                             "{\"estimator\":\"%s\",\"d\":%d,\"Lq\":%lld,\"Lk\":%lld,"
                             "\"objective\":%s,\"variance_objective\":%s,\"A\":%s,\"rho\":%s}",
                             s->est->name, d, (long long)lq, (long long)lk, o, vo, a, rho);
            if (n < 0 || (size_t)n >= json_len)
                r = rj_fail(dg, RFJIT_E_INVALID_ARG, "JSON buffer of %zu bytes too small",
                            json_len);
        }
    }
    rj_free(x);
    rj_free(y);
    rj_free(W);
    rj_free(params);
    rj_stats_free(&st);
    return r;
}

rfjit_status rfjit_fit(rfjit_ctx *ctx, const char *estimator, const rfjit_tensor *q,
                       const rfjit_tensor *k, rfjit_fit_result *res, char *json,
                       size_t json_len)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_fit: ctx is NULL");
    rj_diag dg = {{0}};
    rfjit_status s = RFJIT_OK;
    const rj_est_ops *est = estimator ? rj_est_find(estimator) : NULL;
    if (!estimator || !q || !k || !res || (json && json_len == 0))
        s = rj_fail(&dg, RFJIT_E_INVALID_ARG, "rfjit_fit: estimator, q, k and result are required");
    else if (!est)
        s = rj_fail(&dg, RFJIT_E_NO_ESTIMATOR, "unknown estimator '%s'", estimator);
    else if (!(est->flags & RJ_EST_FITTED) || !est->objective)
        s = rj_fail(&dg, RFJIT_E_NOT_APPLICABLE,
                    "estimator '%s' has no data-fitted parameters (use oprf, saderf, sderf or "
                    "aderf)",
                    estimator);
    if (s == RFJIT_OK)
        s = check_sample(q, "q", &dg);
    if (s == RFJIT_OK)
        s = check_sample(k, "k", &dg);
    if (s == RFJIT_OK && (q->shape[3] != k->shape[3] || q->shape[3] > RJ_MAX_D))
        s = rj_fail(&dg, RFJIT_E_SHAPE, "q and k need the same d <= %d (got %lld and %lld)",
                    RJ_MAX_D, (long long)q->shape[3], (long long)k->shape[3]);
    if (s == RFJIT_OK) {
        rj_spec spec = {0};
        spec.est = est;
        spec.d = (int32_t)q->shape[3];
        spec.dv = spec.d;
        spec.m = 1;
        spec.proj = RFJIT_PROJ_IID;
        char why[256] = "";
        if (!est->valid(&spec, why, sizeof why))
            s = rj_fail(&dg, RFJIT_E_INVALID_ARG, "%s", why);
        else
            s = fit(&spec, q, k, res, json, json_len, &dg);
    }
    return rj_ctx_fail(ctx, s, &dg);
}
