/* SPDX-License-Identifier: MIT */
/*
 * This file turns an rj_kplan into a kernel function: the signature, the function
 * attributes that make the backend generate code for the plan's target and vector width,
 * the unpacking of rj_kargs (its LLVM struct is built from RJ_KARGS_FIELDS, so it cannot
 * drift from the C struct), and the dispatch to the plan's template. Modules are verified
 * (the return action, never abort) before anyone optimises them.
 */
#include "gen/gen.h"

#include "gen/ir.h"
#include "core/kabi.h"
#include "gen/tmpl/tmpl.h"

#include <llvm-c/Analysis.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static LLVMTypeRef kargs_type(rj_ir *ir)
{
    LLVMTypeRef f[RJ_KA_COUNT];
    int i = 0;
#define RJ_KARGS_TYPE(type, name, kind) f[i++] = (#kind[0] == 'P') ? ir->ty_ptr : ir->ty_i64;
    RJ_KARGS_FIELDS(RJ_KARGS_TYPE)
#undef RJ_KARGS_TYPE
    return LLVMStructTypeInContext(ir->C, f, RJ_KA_COUNT, 0);
}

static void add_attr(rj_ir *ir, const char *k, const char *v)
{
    LLVMAttributeRef a = LLVMCreateStringAttribute(ir->C, k, (unsigned)strlen(k), v,
                                                   (unsigned)strlen(v));
    LLVMAddAttributeAtIndex(ir->fn, LLVMAttributeFunctionIndex, a);
}

static void add_enum_attr(rj_ir *ir, const char *k)
{
    unsigned id = LLVMGetEnumAttributeKindForName(k, strlen(k));
    LLVMAddAttributeAtIndex(ir->fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(ir->C, id, 0));
}

rfjit_status rj_gen_kernel(const rj_kplan *kp, LLVMModuleRef M, const char *sym,
                           const rj_gen_target *tg, rj_diag *dg)
{
    /* bf16 products are x86 instructions (AVX512-BF16, AMX): a target without them would
     * reach LLVM's instruction selection and abort, so it is refused here (cross emission
     * names its own target; the JIT's is the host, which plan creation checked) */
    const char *triple = LLVMGetTarget(M);
    const char *const need[2][3] = {{"+avx512bf16", "+avx512vl", NULL},
                                    {"+avx512bf16", "+amx-tile", "+amx-bf16"}};
    for (int i = 0; kp->bf16 && i < 3 && need[kp->bf16 - 1][i]; i++)
        RJ_FAIL_IF(dg,
                   !triple || strncmp(triple, "x86_64", 6) != 0 ||
                       !rj_has_feature(tg->features, need[kp->bf16 - 1][i]),
                   RFJIT_E_TARGET,
                   "bf16 compute needs %s, which target %s (features '%.200s') does not enable",
                   need[kp->bf16 - 1][i], triple ? triple : "?", tg->features);
    rj_ir ir;
    rj_ir_init(&ir, LLVMGetModuleContext(M), M, kp->vw, kp->fma, tg->names);
    LLVMTypeRef ty_fn = LLVMFunctionType(LLVMVoidTypeInContext(ir.C), &ir.ty_ptr, 1, 0);
    ir.fn = LLVMAddFunction(M, sym, ty_fn);
    LLVMSetLinkage(ir.fn, LLVMExternalLinkage);
    char width[16];
    snprintf(width, sizeof width, "%d", kp->vw * 32);
    add_attr(&ir, "target-cpu", tg->cpu);
    add_attr(&ir, "target-features", tg->features);
    add_attr(&ir, "prefer-vector-width", width);
    add_attr(&ir, "min-legal-vector-width", width);
    add_attr(&ir, "no-builtins", "");
    add_enum_attr(&ir, "nounwind");

    ir.entry = LLVMAppendBasicBlockInContext(ir.C, ir.fn, "entry");
    rj_bb start = LLVMAppendBasicBlockInContext(ir.C, ir.fn, "start");
    LLVMPositionBuilderAtEnd(ir.B, start);
    rj_kfn f = {.ir = &ir, .kp = kp};
    LLVMTypeRef ty_args = kargs_type(&ir);
    rj_v a = LLVMGetParam(ir.fn, 0);
    LLVMSetValueName2(a, rj_ir_name(&ir, "a"), strlen(rj_ir_name(&ir, "a")));
    static const char *const names[RJ_KA_COUNT] = {
#define RJ_KARGS_NAME(type, name, kind) #name,
        RJ_KARGS_FIELDS(RJ_KARGS_NAME)
#undef RJ_KARGS_NAME
    };
    for (unsigned i = 0; i < RJ_KA_COUNT; i++) {
        LLVMTypeRef ty = LLVMStructGetTypeAtIndex(ty_args, i);
        rj_v p = LLVMBuildStructGEP2(ir.B, ty_args, a, i, "");
        f.arg[i] = LLVMBuildLoad2(ir.B, ty, p, rj_ir_name(&ir, names[i]));
    }
    /* attention scales rows by sqrt(scale); the estimate API takes vectors as given */
    f.scale = rj_ir_f(&ir, kp->kind == RJ_KK_ATTN ? kp->xscale : 1.0);
    if (kp->kind == RJ_KK_FEAT)
        rj_tmpl_features(&f);
    else if (kp->kind == RJ_KK_GRAM)
        rj_tmpl_gram(&f);
    else if (kp->kind == RJ_KK_PEAK)
        rj_tmpl_peak(&f);
    else {
        if (kp->bf16 == RJ_BF16_AMX)
            rj_ir_amx_begin(&ir);
        if (kp->tmpl == RJ_TMPL_SOFTMAX)
            rj_tmpl_softmax(&f);
        else
            rj_tmpl_linear(&f);
        if (kp->bf16 == RJ_BF16_AMX)
            rj_ir_amx_end(&ir);
    }
    LLVMBuildRetVoid(ir.B);
    LLVMPositionBuilderAtEnd(ir.B, ir.entry);
    LLVMBuildBr(ir.B, start);
    rj_ir_dispose(&ir);

    char *msg = NULL;
    if (LLVMVerifyFunction(ir.fn, LLVMReturnStatusAction)) {
        LLVMVerifyModule(M, LLVMReturnStatusAction, &msg);
        rfjit_status s = rj_fail(dg, RFJIT_E_INTERNAL, "generated IR for %s is invalid: %.300s",
                                 sym, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return s;
    }
    return RFJIT_OK;
}
