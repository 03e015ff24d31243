/* SPDX-License-Identifier: MIT */
/*
 * This file is the public plan calls (include/rfjit.h, Plans): create, destroy, feature_dim
 * and describe, over runtime/plan.c.
 */
#include "api/facade.h"
#include "runtime/plan.h"

#include <stdio.h>

rfjit_status rfjit_plan_create(rfjit_ctx *ctx, const rfjit_attn_desc *desc, rfjit_plan **out)
{
    if (out)
        *out = NULL;
    RJ_TRY(RJ_API_ARGS(ctx, "rfjit_plan_create", {ctx, "ctx"}, {out, "out"}));
    rj_diag dg = {{0}};
    return rj_ctx_fail(ctx, rj_plan_create(ctx, desc, out, &dg), &dg);
}

void rfjit_plan_destroy(rfjit_plan *p)
{
    rj_plan_free(p);
}

int64_t rfjit_plan_feature_dim(const rfjit_plan *p)
{
    return p ? p->M : 0;
}

static const char *proj_name(int kind)
{
    return kind == RFJIT_PROJ_IID ? "iid" : kind == RFJIT_PROJ_USER ? "user" : "orthogonal";
}

rfjit_status rfjit_plan_describe(const rfjit_plan *p, char *buf, size_t len)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_describe: plan is NULL");
    if (!buf || len == 0)
        return rj_ctx_failf(p->ctx, RFJIT_E_INVALID_ARG, "rfjit_plan_describe: no buffer");
    const rj_spec *s = &p->spec;
    char backend[320];
    if (p->jit)
        snprintf(backend, sizeof backend, "backend=jit isa=%s kernel=%s vw=%d T=%d ri=%d rj=%d",
                 p->ctx->isa.name, p->sym, p->kp.vw, p->kp.T, p->kp.ri, p->kp.rj);
    else if (p->why_reference[0])
        snprintf(backend, sizeof backend, "backend=reference (%s)", p->why_reference);
    else
        snprintf(backend, sizeof backend, "backend=reference");
    char compat[48] = "";
    if (s->compat != RJ_COMPAT_NONE)
        snprintf(compat, sizeof compat, " compat=%s", rj_compat_name(s->compat));
    int n = snprintf(buf, len,
                     "estimator=%s%s d=%d dv=%d m=%d M=%lld causal=%d scale=%.9g projection=%s "
                     "seed=%llu params=%s %s",
                     s->est->name, compat, s->d, s->dv, s->m, (long long)p->M, s->causal, s->scale,
                     proj_name(s->proj), (unsigned long long)p->seed,
                     p->frozen ? "fixed" : "fitted-per-call", backend);
    if (n < 0 || (size_t)n >= len)
        return rj_ctx_failf(p->ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_plan_describe: buffer of %zu bytes too small, need %d", len,
                            n + 1);
    return RFJIT_OK;
}
