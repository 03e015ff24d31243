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
        snprintf(backend, sizeof backend, "backend=jit isa=%s kernel=%s vw=%d T=%d ri=%d rj=%d%s",
                 p->ctx->isa.name, p->sym, p->kp.vw, p->kp.T, p->kp.ri, p->kp.rj,
                 p->kp.bf16 == RJ_BF16_AMX ? " bf16=amx"
                 : p->kp.bf16              ? " bf16=dot"
                                           : "");
    else if (p->bs_fast)
        /* its feature maps run on the JIT feature kernel, the rest on compat_math's loops */
        snprintf(backend, sizeof backend,
                 "backend=blocksparse jit-features isa=%s kernel=%s vw=%d T=%d aot-loops=states,"
                 "rest,exact-blocks",
                 p->ctx->isa.name, p->sym, p->kp.vw, p->kp.T);
    else if (p->why_reference[0])
        snprintf(backend, sizeof backend, "backend=reference (%s)", p->why_reference);
    else
        snprintf(backend, sizeof backend, "backend=reference");
    /* what changes the numbers beyond the estimator: compat mode, eva variant, transforms */
    char compat[160] = "";
    size_t at = 0;
    if (s->compat != RJ_COMPAT_NONE)
        at += (size_t)snprintf(compat + at, sizeof compat - at, " compat=%s",
                               rj_compat_name(s->compat));
    if (s->eva_variant != RJ_EVA_PRINCIPLED)
        at += (size_t)snprintf(compat + at, sizeof compat - at, " eva_variant=%s",
                               rj_eva_variant_name(s->eva_variant));
    if (s->est->tmpl == RJ_TMPL_BLOCKSPARSE)
        at += (size_t)snprintf(compat + at, sizeof compat - at, " sparse_block=%d sparse_exact=%d",
                               s->sparse_block, s->sparse_exact);
    if (s->compute == RFJIT_BF16)
        at += (size_t)snprintf(compat + at, sizeof compat - at, " compute=bf16");
    static const char *const xform_names[] = {"k", "q", "balance", "whiten"};
    for (int b = 0, first = 1; b < 4; b++)
        if (s->xform & (1 << b)) {
            at += (size_t)snprintf(compat + at, sizeof compat - at, "%s%s",
                                   first ? " transform=" : ",", xform_names[b]);
            first = 0;
        }
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
