/* SPDX-License-Identifier: MIT */
/*
 * This file implements the IR helper layer's plumbing (types, constants, memory access,
 * loops, branches, reductions, tile products) on the LLVM C API. Everything is built with the
 * typed builders and opaque pointers; intrinsics come from LLVMLookupIntrinsicID.
 */
#include "gen/ir.h"

#include <stdio.h>
#include <string.h>

const char *rj_ir_name(const rj_ir *ir, const char *name)
{
    return ir->names && name ? name : "";
}

static rj_v intrinsic(rj_ir *ir, const char *name, LLVMTypeRef ty, LLVMTypeRef *fty)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMTypeRef tys[1] = {ty};
    *fty = LLVMIntrinsicGetType(ir->C, id, tys, 1);
    return LLVMGetIntrinsicDeclaration(ir->M, id, tys, 1);
}

void rj_ir_init(rj_ir *ir, LLVMContextRef C, LLVMModuleRef M, int vw, int fma, int names)
{
    memset(ir, 0, sizeof *ir);
    ir->C = C;
    ir->M = M;
    ir->B = LLVMCreateBuilderInContext(C);
    ir->vw = vw;
    ir->fma = fma;
    ir->names = names;
    ir->ty_f32 = LLVMFloatTypeInContext(C);
    ir->ty_i1 = LLVMInt1TypeInContext(C);
    ir->ty_i32 = LLVMInt32TypeInContext(C);
    ir->ty_i64 = LLVMInt64TypeInContext(C);
    ir->ty_ptr = LLVMPointerTypeInContext(C, 0);
    ir->ty_vf = LLVMVectorType(ir->ty_f32, (unsigned)vw);
    ir->ty_vi = LLVMVectorType(ir->ty_i32, (unsigned)vw);
    ir->ty_vb = LLVMVectorType(ir->ty_i1, (unsigned)vw);
    if (fma) {
        ir->fn_fma_v = intrinsic(ir, "llvm.fma", ir->ty_vf, &ir->ty_fma_v);
        ir->fn_fma_s = intrinsic(ir, "llvm.fma", ir->ty_f32, &ir->ty_fma_s);
    }
}

void rj_ir_dispose(rj_ir *ir)
{
    if (ir->B)
        LLVMDisposeBuilder(ir->B);
    ir->B = NULL;
}

rj_v rj_ir_f(rj_ir *ir, double x)
{
    return LLVMConstReal(ir->ty_f32, x);
}

rj_v rj_ir_vf(rj_ir *ir, double x)
{
    rj_v e[16];
    for (int i = 0; i < ir->vw; i++)
        e[i] = LLVMConstReal(ir->ty_f32, x);
    return LLVMConstVector(e, (unsigned)ir->vw);
}

rj_v rj_ir_i(rj_ir *ir, int64_t x)
{
    return LLVMConstInt(ir->ty_i64, (unsigned long long)x, 1);
}

rj_v rj_ir_at(rj_ir *ir, rj_v p, rj_v idx)
{
    return LLVMBuildInBoundsGEP2(ir->B, ir->ty_f32, p, &idx, 1, "");
}

rj_v rj_ir_atc(rj_ir *ir, rj_v p, int64_t idx)
{
    return idx ? rj_ir_at(ir, p, rj_ir_i(ir, idx)) : p;
}

rj_v rj_ir_ld(rj_ir *ir, rj_v p, const char *name)
{
    rj_v v = LLVMBuildLoad2(ir->B, ir->ty_f32, p, rj_ir_name(ir, name));
    LLVMSetAlignment(v, 4);
    return v;
}

rj_v rj_ir_ldv(rj_ir *ir, rj_v p, const char *name)
{
    rj_v v = LLVMBuildLoad2(ir->B, ir->ty_vf, p, rj_ir_name(ir, name));
    LLVMSetAlignment(v, 4);
    return v;
}

void rj_ir_st(rj_ir *ir, rj_v x, rj_v p)
{
    LLVMSetAlignment(LLVMBuildStore(ir->B, x, p), 4);
}

void rj_ir_stv(rj_ir *ir, rj_v x, rj_v p)
{
    LLVMSetAlignment(LLVMBuildStore(ir->B, x, p), 4);
}

rj_v rj_ir_slot(rj_ir *ir, LLVMTypeRef ty, const char *name)
{
    LLVMBuilderRef b = LLVMCreateBuilderInContext(ir->C);
    LLVMPositionBuilderAtEnd(b, ir->entry);
    rj_v a = LLVMBuildAlloca(b, ty, rj_ir_name(ir, name));
    LLVMDisposeBuilder(b);
    return a;
}

/* The element type of an array slot, for an element pointer of rj_ir_slot_at. */
static LLVMTypeRef slot_type(rj_v slot)
{
    if (LLVMIsAAllocaInst(slot))
        return LLVMGetAllocatedType(slot);
    return LLVMGetElementType(LLVMGetGEPSourceElementType(slot));
}

rj_v rj_ir_slot_at(rj_ir *ir, rj_v slot, int k)
{
    rj_v idx[2] = {LLVMConstInt(ir->ty_i32, 0, 0), LLVMConstInt(ir->ty_i32, (unsigned)k, 0)};
    return LLVMBuildInBoundsGEP2(ir->B, LLVMGetAllocatedType(slot), slot, idx, 2, "");
}

rj_v rj_ir_get(rj_ir *ir, rj_v slot, const char *name)
{
    return LLVMBuildLoad2(ir->B, slot_type(slot), slot, rj_ir_name(ir, name));
}

void rj_ir_set(rj_ir *ir, rj_v slot, rj_v x)
{
    LLVMBuildStore(ir->B, x, slot);
}

void rj_ir_acc_add(rj_ir *ir, rj_v slot, rj_v x)
{
    rj_ir_set(ir, slot, rj_ir_add(ir, rj_ir_get(ir, slot, ""), x, ""));
}

void rj_ir_acc_max(rj_ir *ir, rj_v slot, rj_v x)
{
    rj_ir_set(ir, slot, rj_ir_max(ir, rj_ir_get(ir, slot, ""), x, ""));
}

rj_v rj_ir_iadd(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildNSWAdd(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_isub(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildNSWSub(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_imul(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildNSWMul(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_idx2v(rj_ir *ir, rj_v row, rj_v stride, rj_v col, const char *name)
{
    return rj_ir_iadd(ir, rj_ir_imul(ir, row, stride, ""), col, name);
}

rj_v rj_ir_idx2(rj_ir *ir, rj_v row, int64_t stride, rj_v col, const char *name)
{
    return rj_ir_idx2v(ir, row, rj_ir_i(ir, stride), col, name);
}

rj_v rj_ir_round_down(rj_ir *ir, rj_v n, int64_t m, const char *name)
{
    return LLVMBuildAnd(ir->B, n, rj_ir_i(ir, -m), rj_ir_name(ir, name));
}

rj_v rj_ir_ceil_div(rj_ir *ir, rj_v n, rj_v m, const char *name)
{
    rj_v up = LLVMBuildAdd(ir->B, n, LLVMBuildSub(ir->B, m, rj_ir_i(ir, 1), ""), "");
    return LLVMBuildSDiv(ir->B, up, m, rj_ir_name(ir, name));
}

rj_v rj_ir_bits(rj_ir *ir, rj_v x, int64_t bits, int set, const char *name)
{
    rj_v masked = LLVMBuildAnd(ir->B, x, rj_ir_i(ir, bits), "");
    return LLVMBuildICmp(ir->B, set ? LLVMIntNE : LLVMIntEQ, masked, rj_ir_i(ir, 0),
                         rj_ir_name(ir, name));
}

rj_v rj_ir_byte_set(rj_ir *ir, rj_v p, rj_v idx, const char *name)
{
    LLVMTypeRef i8 = LLVMInt8TypeInContext(ir->C);
    rj_v at = LLVMBuildInBoundsGEP2(ir->B, i8, p, &idx, 1, "");
    rj_v b = LLVMBuildLoad2(ir->B, i8, at, "");
    LLVMSetAlignment(b, 1);
    return LLVMBuildICmp(ir->B, LLVMIntNE, b, LLVMConstInt(i8, 0, 0), rj_ir_name(ir, name));
}

rj_v rj_ir_nonnull(rj_ir *ir, rj_v p, const char *name)
{
    return LLVMBuildICmp(ir->B, LLVMIntNE, p, LLVMConstNull(ir->ty_ptr), rj_ir_name(ir, name));
}

rj_v rj_ir_add(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildFAdd(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_sub(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildFSub(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_mul(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildFMul(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_div(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    return LLVMBuildFDiv(ir->B, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_fma(rj_ir *ir, rj_v a, rj_v b, rj_v c, const char *name)
{
    if (!ir->fma)
        return rj_ir_add(ir, rj_ir_mul(ir, a, b, ""), c, name);
    bool vec = LLVMGetTypeKind(LLVMTypeOf(a)) == LLVMVectorTypeKind;
    rj_v args[3] = {a, b, c};
    return LLVMBuildCall2(ir->B, vec ? ir->ty_fma_v : ir->ty_fma_s,
                          vec ? ir->fn_fma_v : ir->fn_fma_s, args, 3, rj_ir_name(ir, name));
}

rj_v rj_ir_max(rj_ir *ir, rj_v a, rj_v b, const char *name)
{
    rj_v gt = LLVMBuildFCmp(ir->B, LLVMRealOGT, a, b, "");
    return LLVMBuildSelect(ir->B, gt, a, b, rj_ir_name(ir, name));
}

rj_v rj_ir_abs(rj_ir *ir, rj_v a, const char *name)
{
    rj_v zero = LLVMConstNull(LLVMTypeOf(a));
    rj_v neg = LLVMBuildFCmp(ir->B, LLVMRealOLT, a, zero, "");
    return LLVMBuildSelect(ir->B, neg, LLVMBuildFNeg(ir->B, a, ""), a, rj_ir_name(ir, name));
}

rj_v rj_ir_neg(rj_ir *ir, rj_v a, const char *name)
{
    return LLVMBuildFNeg(ir->B, a, rj_ir_name(ir, name));
}

rj_v rj_ir_bcast(rj_ir *ir, rj_v s, const char *name)
{
    rj_v one = LLVMBuildInsertElement(ir->B, LLVMGetPoison(ir->ty_vf), s,
                                      LLVMConstInt(ir->ty_i32, 0, 0), "");
    rj_v mask = LLVMConstNull(ir->ty_vi);
    return LLVMBuildShuffleVector(ir->B, one, LLVMGetPoison(ir->ty_vf), mask,
                                  rj_ir_name(ir, name));
}

/* Halve the vector until one lane is left, combining lane i with lane i + w/2: a fixed
 * tree, so the result does not depend on what the backend would prefer. */
static rj_v reduce(rj_ir *ir, rj_v v, int is_max, const char *name)
{
    for (int w = ir->vw; w > 1; w /= 2) {
        rj_v lo_idx[8], hi_idx[8];
        for (int i = 0; i < w / 2; i++) {
            lo_idx[i] = LLVMConstInt(ir->ty_i32, (unsigned long long)i, 0);
            hi_idx[i] = LLVMConstInt(ir->ty_i32, (unsigned long long)(i + w / 2), 0);
        }
        rj_v pz = LLVMGetPoison(LLVMTypeOf(v));
        rj_v lo = LLVMBuildShuffleVector(ir->B, v, pz, LLVMConstVector(lo_idx, (unsigned)w / 2),
                                         "");
        rj_v hi = LLVMBuildShuffleVector(ir->B, v, pz, LLVMConstVector(hi_idx, (unsigned)w / 2),
                                         "");
        v = is_max ? rj_ir_max(ir, lo, hi, "") : rj_ir_add(ir, lo, hi, "");
    }
    if (LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind)
        v = LLVMBuildExtractElement(ir->B, v, LLVMConstInt(ir->ty_i32, 0, 0), "");
    LLVMSetValueName2(v, rj_ir_name(ir, name), strlen(rj_ir_name(ir, name)));
    return v;
}

rj_v rj_ir_hsum(rj_ir *ir, rj_v v, const char *name)
{
    return reduce(ir, v, 0, name);
}

rj_v rj_ir_hmax(rj_ir *ir, rj_v v, const char *name)
{
    return reduce(ir, v, 1, name);
}

rj_v rj_ir_lane_iota(rj_ir *ir)
{
    rj_v e[16];
    for (int i = 0; i < ir->vw; i++)
        e[i] = rj_ir_i(ir, i);
    return LLVMConstVector(e, (unsigned)ir->vw);
}

rj_v rj_ir_ibcast(rj_ir *ir, rj_v x)
{
    LLVMTypeRef vt = LLVMVectorType(ir->ty_i64, (unsigned)ir->vw);
    rj_v one = LLVMBuildInsertElement(ir->B, LLVMGetPoison(vt), x,
                                      LLVMConstInt(ir->ty_i32, 0, 0), "");
    return LLVMBuildShuffleVector(ir->B, one, LLVMGetPoison(vt), LLVMConstNull(ir->ty_vi), "");
}

rj_v rj_ir_lanes_add(rj_ir *ir, rj_v lanes, rj_v x)
{
    return LLVMBuildAdd(ir->B, lanes, rj_ir_ibcast(ir, x), "");
}

rj_v rj_ir_lanes_from(rj_ir *ir, rj_v t0)
{
    return rj_ir_lanes_add(ir, rj_ir_lane_iota(ir), t0);
}

rj_v rj_ir_any(rj_ir *ir, rj_v lanes, const char *name)
{
    rj_v bits = LLVMBuildBitCast(ir->B, lanes, LLVMIntTypeInContext(ir->C, (unsigned)ir->vw), "");
    return LLVMBuildICmp(ir->B, LLVMIntNE, bits, LLVMConstInt(LLVMTypeOf(bits), 0, 0),
                         rj_ir_name(ir, name));
}

rj_v rj_ir_mask_bcast(rj_ir *ir, rj_v b, const char *name)
{
    rj_v wide = rj_ir_ibcast(ir, LLVMBuildZExt(ir->B, b, ir->ty_i64, ""));
    return LLVMBuildICmp(ir->B, LLVMIntNE, wide, rj_ir_ibcast(ir, rj_ir_i(ir, 0)),
                         rj_ir_name(ir, name));
}

/* Transpose vw vectors of vw lanes in place (rows[i] lane j <- rows[j] lane i): log2(vw)
 * rounds of pairing row p with row p + vw/2 by interleaving (low halves into row
 * 2p, high halves into 2p + 1): each round rotates the bit string (row | lane) left by one,
 * so after log2(vw) rounds row and lane have swapped. vw log2(vw) two-source shuffles (64
 * for 16 lanes) instead of vw^2 strided scalar moves or gathers. */
static void transpose(rj_ir *ir, rj_v *rows)
{
    const int vw = ir->vw, h = vw / 2;
    rj_v mlo[16], mhi[16];
    for (int k = 0; k < vw; k++) {
        mlo[k] = LLVMConstInt(ir->ty_i32, (unsigned long long)((k % 2 ? vw : 0) + k / 2), 0);
        mhi[k] = LLVMConstInt(ir->ty_i32, (unsigned long long)((k % 2 ? vw : 0) + h + k / 2), 0);
    }
    rj_v ml = LLVMConstVector(mlo, (unsigned)vw), mh = LLVMConstVector(mhi, (unsigned)vw);
    for (int w = vw; w > 1; w /= 2) {
        rj_v next[16];
        for (int p = 0; p < h; p++) {
            next[2 * p] = LLVMBuildShuffleVector(ir->B, rows[p], rows[p + h], ml, "");
            next[2 * p + 1] = LLVMBuildShuffleVector(ir->B, rows[p], rows[p + h], mh, "");
        }
        for (int p = 0; p < vw; p++)
            rows[p] = next[p];
    }
}

void rj_ir_outline_attrs(rj_ir *ir, rj_v fn)
{
    const unsigned n = LLVMGetAttributeCountAtIndex(ir->fn, LLVMAttributeFunctionIndex);
    LLVMAttributeRef attrs[32];
    if (n <= 32) {
        LLVMGetAttributesAtIndex(ir->fn, LLVMAttributeFunctionIndex, attrs);
        for (unsigned i = 0; i < n; i++)
            LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, attrs[i]);
    }
    const unsigned noinline = LLVMGetEnumAttributeKindForName("noinline", 8);
    LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex,
                            LLVMCreateEnumAttribute(ir->C, noinline, 0));
}

/* The function behind rj_ir_transpose_block for one pair of element types: internal (or
 * shared by a kernel's parts, ir.h helper_prefix), never inlined, with the kernel's own
 * target attributes (copied, so that it is compiled for the same vectors). */
static rj_v transpose_fn(rj_ir *ir, int src_dt, int dst_dt)
{
    static const char *const names[3][3] = {
        {"rj_transpose_block", "rj_transpose_block_f32_f16", "rj_transpose_block_f32_bf16"},
        {"rj_transpose_block_f16_f32", "rj_transpose_block_f16", "rj_transpose_block_f16_bf16"},
        {"rj_transpose_block_bf16_f32", "rj_transpose_block_bf16_f16", "rj_transpose_block_bf16"}};
    LLVMTypeRef p[7] = {ir->ty_ptr, ir->ty_i64, ir->ty_ptr, ir->ty_i64,
                        ir->ty_ptr, ir->ty_i64, ir->ty_f32};
    ir->ty_tr = LLVMFunctionType(LLVMVoidTypeInContext(ir->C), p, 7, 0);
    if (!ir->one) {
        ir->one = LLVMAddGlobal(ir->M, ir->ty_f32, "rj_one");
        LLVMSetInitializer(ir->one, rj_ir_f(ir, 1.0));
        LLVMSetGlobalConstant(ir->one, 1);
        LLVMSetLinkage(ir->one, LLVMInternalLinkage);
    }
    char name[320];
    if (ir->helper_prefix)
        snprintf(name, sizeof name, "%s_%s", ir->helper_prefix, names[src_dt][dst_dt]);
    else
        snprintf(name, sizeof name, "%s", names[src_dt][dst_dt]);
    rj_v fn = LLVMAddFunction(ir->M, name, ir->ty_tr);
    if (ir->helper_prefix && !ir->helpers_here)
        return fn; /* another module defines it */
    if (!ir->helper_prefix)
        LLVMSetLinkage(fn, LLVMInternalLinkage);
    rj_ir_outline_attrs(ir, fn);

    rj_bb back = LLVMGetInsertBlock(ir->B);
    LLVMPositionBuilderAtEnd(ir->B, LLVMAppendBasicBlockInContext(ir->C, fn, "entry"));
    rj_v a[7];
    for (unsigned i = 0; i < 7; i++)
        a[i] = LLVMGetParam(fn, i);
    rj_v rows[16];
    for (int i = 0; i < ir->vw; i++)
        rows[i] = rj_ir_ld_dt(ir,
                              rj_ir_at_dt(ir, a[0],
                                          LLVMBuildNSWMul(ir->B, rj_ir_i(ir, i), a[1], ""), src_dt),
                              src_dt, 1, "");
    transpose(ir, rows);
    for (int l = 0; l < ir->vw; l++) {
        rj_v r = rj_ir_ld(ir, rj_ir_at(ir, a[4], LLVMBuildNSWMul(ir->B, rj_ir_i(ir, l), a[5], "")),
                          "");
        rj_v m = rj_ir_bcast(ir, rj_ir_mul(ir, a[6], r, ""), "");
        rj_v to = rj_ir_at_dt(ir, a[2], LLVMBuildNSWMul(ir->B, rj_ir_i(ir, l), a[3], ""), dst_dt);
        rj_ir_st_dt(ir, rj_ir_mul(ir, rows[l], m, ""), to, dst_dt);
    }
    LLVMBuildRetVoid(ir->B);
    LLVMPositionBuilderAtEnd(ir->B, back);
    return fn;
}

void rj_ir_transpose_block_dt(rj_ir *ir, rj_v src, int src_dt, rj_v ss, rj_v dst, int dst_dt,
                              rj_v ds, rj_v rs, rj_v rstep, rj_v scale)
{
    if (!ir->fn_tr[src_dt][dst_dt])
        ir->fn_tr[src_dt][dst_dt] = transpose_fn(ir, src_dt, dst_dt);
    rj_v args[7] = {src, ss, dst, ds, rs ? rs : ir->one, rs ? rstep : rj_ir_i(ir, 0), scale};
    LLVMBuildCall2(ir->B, ir->ty_tr, ir->fn_tr[src_dt][dst_dt], args, 7, "");
}

void rj_ir_transpose_block(rj_ir *ir, rj_v src, rj_v ss, rj_v dst, rj_v ds, rj_v rs, rj_v rstep,
                           rj_v scale)
{
    rj_ir_transpose_block_dt(ir, src, RFJIT_F32, ss, dst, RFJIT_F32, ds, rs, rstep, scale);
}

rj_loop rj_ir_loop_begin(rj_ir *ir, const char *name, rj_v start, rj_v end, int64_t step)
{
    rj_loop l;
    char nm[64];
    l.pre = LLVMGetInsertBlock(ir->B);
    snprintf(nm, sizeof nm, "%s.head", name);
    l.head = LLVMAppendBasicBlockInContext(ir->C, ir->fn, rj_ir_name(ir, nm));
    snprintf(nm, sizeof nm, "%s.body", name);
    l.body = LLVMAppendBasicBlockInContext(ir->C, ir->fn, rj_ir_name(ir, nm));
    snprintf(nm, sizeof nm, "%s.exit", name);
    l.exit = LLVMAppendBasicBlockInContext(ir->C, ir->fn, rj_ir_name(ir, nm));
    l.step = rj_ir_i(ir, step);
    LLVMBuildBr(ir->B, l.head);
    LLVMPositionBuilderAtEnd(ir->B, l.head);
    l.i = LLVMBuildPhi(ir->B, ir->ty_i64, rj_ir_name(ir, name));
    LLVMAddIncoming(l.i, &start, &l.pre, 1);
    rj_v more = LLVMBuildICmp(ir->B, LLVMIntSLT, l.i, end, "");
    LLVMBuildCondBr(ir->B, more, l.body, l.exit);
    LLVMPositionBuilderAtEnd(ir->B, l.body);
    return l;
}

void rj_ir_loop_end(rj_ir *ir, rj_loop *l)
{
    rj_v next = LLVMBuildNSWAdd(ir->B, l->i, l->step, "");
    rj_bb latch = LLVMGetInsertBlock(ir->B);
    LLVMBuildBr(ir->B, l->head);
    LLVMAddIncoming(l->i, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(ir->B, l->exit);
}

rj_if rj_ir_if_begin(rj_ir *ir, rj_v cond, const char *name)
{
    rj_if b;
    char nm[64];
    snprintf(nm, sizeof nm, "%s.then", name);
    b.then = LLVMAppendBasicBlockInContext(ir->C, ir->fn, rj_ir_name(ir, nm));
    snprintf(nm, sizeof nm, "%s.join", name);
    b.join = LLVMAppendBasicBlockInContext(ir->C, ir->fn, rj_ir_name(ir, nm));
    LLVMBuildCondBr(ir->B, cond, b.then, b.join);
    LLVMPositionBuilderAtEnd(ir->B, b.then);
    return b;
}

void rj_ir_if_end(rj_ir *ir, rj_if *b)
{
    LLVMBuildBr(ir->B, b->join);
    LLVMPositionBuilderAtEnd(ir->B, b->join);
}

static int largest_divisor(int64_t n, int cap)
{
    for (int r = cap; r > 1; r--)
        if (n % r == 0)
            return r;
    return 1;
}

void rj_ir_mm(rj_ir *ir, const rj_mm *mm)
{
    const int vw = ir->vw;
    const int64_t nj = mm->NJ / vw;
    const int ri = largest_divisor(mm->NI, mm->ri), rj = largest_divisor(nj, mm->rj);
    rj_v acc[8][4];
    for (int i = 0; i < ri; i++)
        for (int j = 0; j < rj; j++)
            acc[i][j] = rj_ir_slot(ir, ir->ty_vf, "acc");

    rj_loop li = rj_ir_loop_begin(ir, mm->name, rj_ir_i(ir, 0), rj_ir_i(ir, mm->NI), ri);
    rj_loop lj = rj_ir_loop_begin(ir, "j", rj_ir_i(ir, 0), rj_ir_i(ir, mm->NJ),
                                  (int64_t)rj * vw);
    rj_v crow[8];
    for (int i = 0; i < ri; i++) {
        rj_v row = LLVMBuildNSWAdd(ir->B, li.i, rj_ir_i(ir, i), "");
        rj_v off = LLVMBuildNSWAdd(ir->B, LLVMBuildNSWMul(ir->B, row, rj_ir_i(ir, mm->c_si), ""),
                                   lj.i, "");
        crow[i] = rj_ir_at(ir, mm->C, off);
        for (int j = 0; j < rj; j++) {
            rj_v init = mm->accumulate ? rj_ir_ldv(ir, rj_ir_atc(ir, crow[i], (int64_t)j * vw), "")
                                       : rj_ir_vf(ir, 0);
            LLVMBuildStore(ir->B, init, acc[i][j]);
        }
    }
    rj_loop lk = rj_ir_loop_begin(ir, "k", rj_ir_i(ir, 0), mm->K, 1);
    rj_v brow = rj_ir_at(ir, mm->B,
                         LLVMBuildNSWAdd(ir->B,
                                         LLVMBuildNSWMul(ir->B, lk.i,
                                                         mm->b_sk_v ? mm->b_sk_v
                                                                    : rj_ir_i(ir, mm->b_sk),
                                                         ""),
                                         lj.i, ""));
    rj_v bv[4];
    for (int j = 0; j < rj; j++)
        bv[j] = rj_ir_ldv(ir, rj_ir_atc(ir, brow, (int64_t)j * vw), "b");
    rj_v a_si = mm->a_si_v ? mm->a_si_v : rj_ir_i(ir, mm->a_si);
    rj_v a_sk = mm->a_sk_v ? mm->a_sk_v : rj_ir_i(ir, mm->a_sk);
    rj_v acol = LLVMBuildNSWMul(ir->B, lk.i, a_sk, "");
    for (int i = 0; i < ri; i++) {
        rj_v row = LLVMBuildNSWAdd(ir->B, li.i, rj_ir_i(ir, i), "");
        rj_v aoff = LLVMBuildNSWAdd(ir->B, LLVMBuildNSWMul(ir->B, row, a_si, ""), acol, "");
        rj_v a = rj_ir_bcast(ir, rj_ir_ld(ir, rj_ir_at(ir, mm->A, aoff), "a"), "");
        for (int j = 0; j < rj; j++) {
            rj_v c = LLVMBuildLoad2(ir->B, ir->ty_vf, acc[i][j], "");
            rj_v r = mm->bf16 ? rj_ir_dot_bf16(ir, c, a, bv[j]) : rj_ir_fma(ir, a, bv[j], c, "");
            LLVMBuildStore(ir->B, r, acc[i][j]);
        }
    }
    rj_ir_loop_end(ir, &lk);
    for (int i = 0; i < ri; i++)
        for (int j = 0; j < rj; j++)
            rj_ir_stv(ir, LLVMBuildLoad2(ir->B, ir->ty_vf, acc[i][j], ""),
                      rj_ir_atc(ir, crow[i], (int64_t)j * vw));
    rj_ir_loop_end(ir, &lj);
    rj_ir_loop_end(ir, &li);
}
