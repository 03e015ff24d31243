/* SPDX-License-Identifier: MIT */
/*
 * This file implements rfjit_emit: ahead-of-time emission of the kernel a plan would run,
 * for the host or another target (AArch64 + NEON from x86 is the tested case). The plan is
 * created on the reference backend only to validate the descriptor the same way
 * rfjit_plan_create does; the kernel plan is then resolved for the target's vector width.
 */
#include "api/facade.h"
#include "runtime/plan.h"
#include "runtime/hash.h"

#include <stdio.h>
#include <string.h>

void rfjit_free(void *p)
{
    rj_free(p);
}

rfjit_status rfjit_emit(rfjit_ctx *ctx, const rfjit_attn_desc *attn,
                        const rfjit_emit_desc *target_in, void **out, size_t *size,
                        char *symbol, size_t symbol_len)
{
    RJ_TRY(RJ_API_ARGS(ctx, "rfjit_emit", {ctx, "ctx"}, {attn, "attn"}, {target_in, "target"},
                       {out, "out"}, {size, "size"}));
    *out = NULL;
    *size = 0;
    rj_diag dg = {{0}};
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    RJ_TRY(RJ_API_DESC_READ(ctx, &t, target_in));
    if (t.kind < RFJIT_EMIT_OBJECT || t.kind > RFJIT_EMIT_IR)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_emit: kind %d is unknown (0 object, 1 assembly, 2 IR)", t.kind);
    /* read as rfjit_plan_create reads it: an older caller's smaller descriptor is accepted */
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    RJ_TRY(RJ_API_DESC_READ(ctx, &a, attn));
    a.backend = RFJIT_BACKEND_REFERENCE;
    /* the reference plan carries the spec and parameters; bf16 is the emitted kernel's
     * business and the target's, not this host's (set on the spec below) */
    const int32_t compute = a.compute;
    a.compute = compute == RFJIT_BF16 ? RFJIT_F32 : compute;
    rfjit_plan *p = NULL;
    RJ_TRY(rj_ctx_fail(ctx, rj_plan_create(ctx, &a, &p, &dg), &dg));

    const int host = t.triple == NULL || strcmp(t.triple, ctx->isa.triple) == 0;
    const char *triple = t.triple ? t.triple : ctx->isa.triple;
    rfjit_status s = rj_jit_check_target(triple, t.cpu, t.features, &dg);
    if (s != RFJIT_OK) {
        rfjit_plan_destroy(p);
        return rj_ctx_fail(ctx, s, &dg);
    }
    const int arm = strncmp(triple, "aarch64", 7) == 0;
    const char *cpu = t.cpu ? t.cpu : host ? ctx->isa.cpu : "generic";
    const char *features = t.features ? t.features : host ? ctx->isa.features : "";
    int vw = t.vector_width ? t.vector_width : host ? ctx->isa.max_vw : arm ? 4 : 8;
    int fma = host ? ctx->isa.fma : 1;
    rfjit_tiling tl = {vw, 0, 0, 0}; /* the rest as a plan's kernel for this width has it */
    rj_kplan kp;
    p->spec.compute = compute;
    p->spec.amx = rj_has_feature(features, "+amx-tile") && rj_has_feature(features, "+amx-bf16");
    s = rj_kplan_make(&p->spec, &tl, vw, fma, &kp, &dg);
    if (s == RFJIT_OK) /* the element types the descriptor asks for, as plan creation does */
        s = rj_kplan_set_dtypes(&kp, a.dtype, a.dtype, &dg);
    char sym[128];
    if (s == RFJIT_OK && t.symbol) {
        snprintf(sym, sizeof sym, "%s", t.symbol);
    } else if (s == RFJIT_OK) {
        const void *parts[4] = {&kp, triple, cpu, features};
        size_t sizes[4] = {sizeof kp, strlen(triple) + 1, strlen(cpu) + 1,
                           strlen(features) + 1};
        rj_hash h;
        char hex[65];
        rj_hash_parts(parts, sizes, 4, &h);
        rj_hash_hex(&h, hex);
        snprintf(sym, sizeof sym, "rfjit_k_%s_%.16s", kp.est_name, hex);
    }
    if (s == RFJIT_OK)
        s = rj_jit_emit(&kp, sym, triple, cpu, features, (rj_emit_kind)t.kind, out, size, &dg);
    if (s == RFJIT_OK && symbol && symbol_len)
        snprintf(symbol, symbol_len, "%s", sym);
    rfjit_plan_destroy(p);
    return rj_ctx_fail(ctx, s, &dg);
}
