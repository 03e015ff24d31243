/* SPDX-License-Identifier: MIT */
/*
 * This file turns an rj_kplan into a kernel: the signature, the function attributes that
 * make the backend generate code for the plan's target and vector width, the unpacking of
 * rj_kargs (its LLVM struct is built from RJ_KARGS_FIELDS, so it cannot drift from the C
 * struct), the dispatch to the plan's template, and the kernel's parts (rj_tmpl_part): the
 * functions a template splits off so that the kernel can be compiled on several threads.
 * Modules are verified (the return action, never abort) before anyone optimises them.
 */
#include "gen/gen.h"

#include "gen/ir.h"
#include "core/kabi.h"
#include "gen/tmpl/tmpl.h"

#include <llvm-c/Analysis.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

/* What the module being built holds of the kernel. */
struct rj_parts {
    const char *sym;
    int want;   /* RJ_GEN_ALL, RJ_GEN_HELPERS, or the one part defined in this module */
    int count;  /* 1 + the highest part id a template asked for */
    int inside; /* building a part's body: a part inside it is emitted inline */
};

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

/* Load the rj_kargs fields at a into f->arg, in the current block. */
static void load_args(rj_kfn *f, rj_v a)
{
    rj_ir *ir = f->ir;
    static const char *const names[RJ_KA_COUNT] = {
#define RJ_KARGS_NAME(type, name, kind) #name,
        RJ_KARGS_FIELDS(RJ_KARGS_NAME)
#undef RJ_KARGS_NAME
    };
    LLVMTypeRef ty_args = kargs_type(ir);
    LLVMSetValueName2(a, rj_ir_name(ir, "a"), strlen(rj_ir_name(ir, "a")));
    f->a = a;
    for (unsigned i = 0; i < RJ_KA_COUNT; i++) {
        LLVMTypeRef ty = LLVMStructGetTypeAtIndex(ty_args, i);
        rj_v p = LLVMBuildStructGEP2(ir->B, ty_args, a, i, "");
        f->arg[i] = LLVMBuildLoad2(ir->B, ty, p, rj_ir_name(ir, names[i]));
    }
}

/* Open fn for building: an entry block for the slots, then "start" with the builder at its
 * end; close_fn branches from the one to the other once the body is done. */
static rj_bb open_fn(rj_ir *ir, rj_v fn)
{
    ir->fn = fn;
    ir->entry = LLVMAppendBasicBlockInContext(ir->C, fn, "entry");
    rj_bb start = LLVMAppendBasicBlockInContext(ir->C, fn, "start");
    LLVMPositionBuilderAtEnd(ir->B, start);
    return start;
}

static void close_fn(rj_ir *ir, rj_bb start)
{
    LLVMBuildRetVoid(ir->B);
    LLVMPositionBuilderAtEnd(ir->B, ir->entry);
    LLVMBuildBr(ir->B, start);
}

/* The symbol of part `part` of the kernel sym (sym itself for part 0). */
static void part_name(char *buf, size_t n, const char *sym, int part)
{
    if (part > 0)
        snprintf(buf, n, "%s_p%d", sym, part);
    else
        snprintf(buf, n, "%s", sym);
}

void rj_tmpl_part(rj_kfn *f, int id, rj_part_body body, int n, const rj_v *p)
{
    rj_parts *ps = f->parts;
    if (!ps || ps->inside || n > RJ_PART_MAX_PARAMS) {
        rj_kfn g = *f; /* what the body changes of f stays in the body, as in a function */
        body(&g, p);
        return;
    }
    rj_ir *ir = f->ir;
    char name[256];
    part_name(name, sizeof name, ps->sym, id);
    LLVMTypeRef ty[1 + RJ_PART_MAX_PARAMS];
    rj_v args[1 + RJ_PART_MAX_PARAMS];
    ty[0] = ir->ty_ptr;
    args[0] = f->a;
    for (int i = 0; i < n; i++) {
        ty[i + 1] = LLVMTypeOf(p[i]);
        args[i + 1] = p[i];
    }
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(ir->C), ty, (unsigned)n + 1, 0);
    rj_v fn = LLVMGetNamedFunction(ir->M, name);
    if (!fn)
        fn = LLVMAddFunction(ir->M, name, fty);
    LLVMBuildCall2(ir->B, fty, fn, args, (unsigned)n + 1, "");
    if (id + 1 > ps->count)
        ps->count = id + 1;
    const int whole = ps->want == RJ_GEN_ALL || ps->want == RJ_GEN_HELPERS;
    if ((!whole && ps->want != id) || LLVMCountBasicBlocks(fn))
        return; /* a declaration: the part is defined by another module, or already here */
    rj_ir_outline_attrs(ir, fn);
    LLVMSetLinkage(fn, whole ? LLVMInternalLinkage : LLVMExternalLinkage);

    const rj_v fn0 = ir->fn;
    const rj_bb entry0 = ir->entry, at = LLVMGetInsertBlock(ir->B);
    const rj_bb start = open_fn(ir, fn);
    rj_kfn g = {.ir = ir, .kp = f->kp, .scale = f->scale, .parts = ps};
    load_args(&g, LLVMGetParam(fn, 0));
    rj_v q[RJ_PART_MAX_PARAMS];
    for (int i = 0; i < n; i++)
        q[i] = LLVMGetParam(fn, (unsigned)i + 1);
    ps->inside = 1;
    body(&g, q);
    ps->inside = 0;
    close_fn(ir, start);
    ir->fn = fn0;
    ir->entry = entry0;
    LLVMPositionBuilderAtEnd(ir->B, at);
}

/* A module that holds only some of the kernel's functions, `keep` (n of them): the others,
 * which were built to reach these, go, and with them whatever only they used. */
static void keep_only(LLVMModuleRef M, const rj_v *keep, int n)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (rj_v fn = LLVMGetFirstFunction(M), next; fn; fn = next) {
            next = LLVMGetNextFunction(fn);
            int kept = 0;
            for (int i = 0; i < n; i++)
                kept |= keep[i] == fn;
            if (!kept && (LLVMCountBasicBlocks(fn) || !LLVMGetFirstUse(fn))) {
                LLVMDeleteFunction(fn);
                changed = 1;
            }
        }
        for (rj_v g = LLVMGetFirstGlobal(M), next; g; g = next) {
            next = LLVMGetNextGlobal(g);
            if (!LLVMGetFirstUse(g)) {
                LLVMDeleteGlobal(g);
                changed = 1;
            }
        }
    }
}

rfjit_status rj_gen_kernel(const rj_kplan *kp, LLVMModuleRef M, const char *sym,
                           const rj_gen_target *tg, int part, int *nparts, rj_diag *dg)
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
    if (part != RJ_GEN_ALL) {
        ir.helper_prefix = sym;
        ir.helpers_here = part == RJ_GEN_HELPERS;
    }
    LLVMTypeRef ty_fn = LLVMFunctionType(LLVMVoidTypeInContext(ir.C), &ir.ty_ptr, 1, 0);
    rj_v entry = LLVMAddFunction(M, sym, ty_fn);
    LLVMSetLinkage(entry, LLVMExternalLinkage);
    const rj_bb start = open_fn(&ir, entry);
    char width[16];
    snprintf(width, sizeof width, "%d", kp->vw * 32);
    add_attr(&ir, "target-cpu", tg->cpu);
    add_attr(&ir, "target-features", tg->features);
    add_attr(&ir, "prefer-vector-width", width);
    add_attr(&ir, "min-legal-vector-width", width);
    add_attr(&ir, "no-builtins", "");
    add_enum_attr(&ir, "nounwind");

    rj_parts ps = {.sym = sym, .want = part, .count = 1};
    rj_kfn f = {.ir = &ir, .kp = kp, .parts = &ps};
    load_args(&f, LLVMGetParam(entry, 0));
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
    close_fn(&ir, start);
    rj_ir_dispose(&ir);
    if (nparts)
        *nparts = ps.count;

    if (part > 0) {
        char name[256];
        part_name(name, sizeof name, sym, part);
        rj_v kept = LLVMGetNamedFunction(M, name);
        RJ_FAIL_IF(dg, part >= ps.count || !kept || !LLVMCountBasicBlocks(kept), RFJIT_E_INTERNAL,
                   "kernel %s has no part %d (%d parts)", sym, part, ps.count);
        keep_only(M, &kept, 1);
    } else if (part == RJ_GEN_HELPERS) {
        rj_v helpers[9];
        int n = 0;
        for (int i = 0; i < 3; i++)
            for (int k = 0; k < 3; k++)
                if (ir.fn_tr[i][k])
                    helpers[n++] = ir.fn_tr[i][k];
        keep_only(M, helpers, n);
    }
    char *msg = NULL;
    if (LLVMVerifyModule(M, LLVMReturnStatusAction, &msg)) {
        rfjit_status s = rj_fail(dg, RFJIT_E_INTERNAL, "generated IR for %s is invalid: %.300s",
                                 sym, msg ? msg : "?");
        LLVMDisposeMessage(msg);
        return s;
    }
    LLVMDisposeMessage(msg);
    return RFJIT_OK;
}
