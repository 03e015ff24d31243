/* SPDX-License-Identifier: MIT */
/*
 * This file implements the dtype-aware loads and stores of gen/ir.h: the only place a kernel
 * meets float16 or bfloat16. Widening is exact; narrowing rounds to nearest even, with the
 * same bits as core/half.c whichever path a target takes, except that AVX512-BF16's
 * conversion flushes float subnormals (below 2^-126) to zero.
 */
#include "gen/ir.h"

#include <string.h>

/* Whether the kernel's target-features attribute enables feature ("+f16c"). */
static int has_feature(rj_ir *ir, const char *feature)
{
    LLVMAttributeRef a = LLVMGetStringAttributeAtIndex(ir->fn, LLVMAttributeFunctionIndex,
                                                       "target-features", 15);
    if (!a)
        return 0;
    unsigned n = 0;
    const char *s = LLVMGetStringAttributeValue(a, &n);
    const size_t fl = strlen(feature);
    for (unsigned i = 0; i + fl <= n; i++)
        if (!memcmp(s + i, feature, fl) && (i + fl == n || s[i + fl] == ','))
            return 1;
    return 0;
}

/* Whether the kernel's target-cpu attribute is one of cpus (a NULL-terminated list). */
static int cpu_is(rj_ir *ir, const char *const *cpus)
{
    LLVMAttributeRef a = LLVMGetStringAttributeAtIndex(ir->fn, LLVMAttributeFunctionIndex,
                                                       "target-cpu", 10);
    if (!a)
        return 0;
    unsigned n = 0;
    const char *s = LLVMGetStringAttributeValue(a, &n);
    for (int i = 0; cpus[i]; i++)
        if (strlen(cpus[i]) == n && !memcmp(s, cpus[i], n))
            return 1;
    return 0;
}

static int target_is_aarch64(rj_ir *ir)
{
    const char *t = LLVMGetTarget(ir->M);
    return t && !strncmp(t, "aarch64", 7);
}

/* Without F16C, x86 lowers half conversions to calls of compiler-rt's __extendhfsf2 and
 * __truncsfhf2, which a JIT-linked kernel cannot count on; AArch64 always has fcvt. */
static int half_native(rj_ir *ir)
{
    /* an ISA class below the host's names only its CPU level (runtime/jit.c) */
    static const char *const f16c_levels[] = {"x86-64-v3", "x86-64-v4", NULL};
    if (!ir->half_native)
        ir->half_native =
            target_is_aarch64(ir) || has_feature(ir, "+f16c") || cpu_is(ir, f16c_levels) ? 1 : -1;
    return ir->half_native > 0;
}

static int bf16_native(rj_ir *ir)
{
    if (!ir->bf16_native)
        ir->bf16_native = has_feature(ir, "+avx512bf16") && has_feature(ir, "+avx512vl") ? 1 : -1;
    return ir->bf16_native > 0;
}

static LLVMTypeRef lanes(rj_ir *ir, LLVMTypeRef elem, int vec)
{
    return vec ? LLVMVectorType(elem, (unsigned)ir->vw) : elem;
}

/* An integer constant of type ty (i32 or i16, scalar or vector). */
static rj_v kint(LLVMTypeRef ty, uint64_t x)
{
    if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind)
        return LLVMConstInt(ty, x, 0);
    rj_v e[16];
    const unsigned n = LLVMGetVectorSize(ty);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstInt(LLVMGetElementType(ty), x, 0);
    return LLVMConstVector(e, n);
}

static rj_v kfloat(LLVMTypeRef ty, double x)
{
    if (LLVMGetTypeKind(ty) != LLVMVectorTypeKind)
        return LLVMConstReal(ty, x);
    rj_v e[16];
    const unsigned n = LLVMGetVectorSize(ty);
    for (unsigned i = 0; i < n; i++)
        e[i] = LLVMConstReal(LLVMGetElementType(ty), x);
    return LLVMConstVector(e, n);
}

rj_v rj_ir_at_dt(rj_ir *ir, rj_v p, rj_v idx, int dt)
{
    LLVMTypeRef elem = dt == RFJIT_F32 ? ir->ty_f32 : LLVMInt16TypeInContext(ir->C);
    return LLVMBuildInBoundsGEP2(ir->B, elem, p, &idx, 1, "");
}

/* binary16 bits (i32 lanes, high half zero) to float without hardware: normal numbers move
 * their exponent bias, subnormals are m 2^-24 (exact in float), inf and NaN keep the
 * payload under an all-ones exponent. */
static rj_v f16_widen_int(rj_ir *ir, rj_v h, LLVMTypeRef ti, LLVMTypeRef tf)
{
    LLVMBuilderRef B = ir->B;
    rj_v sign = LLVMBuildShl(B, LLVMBuildAnd(B, h, kint(ti, 0x8000), ""), kint(ti, 16), "");
    rj_v em = LLVMBuildAnd(B, h, kint(ti, 0x7fff), "");
    rj_v shifted = LLVMBuildShl(B, em, kint(ti, 13), "");
    rj_v normal = LLVMBuildAdd(B, shifted, kint(ti, 112u << 23), "");
    rj_v special = LLVMBuildOr(B, shifted, kint(ti, 0x7f800000), "");
    rj_v sub = LLVMBuildFMul(B, LLVMBuildSIToFP(B, em, tf, ""), kfloat(tf, 0x1p-24), "");
    rj_v is_sub = LLVMBuildICmp(B, LLVMIntULT, em, kint(ti, 0x400), "");
    rj_v is_special = LLVMBuildICmp(B, LLVMIntUGE, em, kint(ti, 0x7c00), "");
    rj_v bits = LLVMBuildSelect(B, is_sub, LLVMBuildBitCast(B, sub, ti, ""), normal, "");
    bits = LLVMBuildSelect(B, is_special, special, bits, "");
    return LLVMBuildBitCast(B, LLVMBuildOr(B, bits, sign, ""), tf, "");
}

/* float to binary16 bits (i32 lanes) without hardware, as rj_f32_to_f16: NaN quiet with
 * its top payload, 65520 and up infinity, normals rounded at bit 13 with ties to even, and
 * subnormals rounded by the FPU: |x| + 0.5 has ulp 2^-24, the subnormal unit. */
static rj_v f16_narrow_int(rj_ir *ir, rj_v x, LLVMTypeRef ti, LLVMTypeRef tf)
{
    LLVMBuilderRef B = ir->B;
    rj_v u = LLVMBuildBitCast(B, x, ti, "");
    rj_v sign = LLVMBuildAnd(B, LLVMBuildLShr(B, u, kint(ti, 16), ""), kint(ti, 0x8000), "");
    rj_v a = LLVMBuildAnd(B, u, kint(ti, 0x7fffffff), "");
    rj_v r = LLVMBuildSub(B, a, kint(ti, 112u << 23), "");
    rj_v lsb = LLVMBuildAnd(B, LLVMBuildLShr(B, r, kint(ti, 13), ""), kint(ti, 1), "");
    rj_v normal = LLVMBuildLShr(B,
                                LLVMBuildAdd(B, LLVMBuildAdd(B, r, kint(ti, 0xfff), ""), lsb, ""),
                                kint(ti, 13), "");
    rj_v s = LLVMBuildFAdd(B, LLVMBuildBitCast(B, a, tf, ""), kfloat(tf, 0.5), "");
    rj_v sub = LLVMBuildSub(B, LLVMBuildBitCast(B, s, ti, ""), kint(ti, 0x3f000000), "");
    rj_v nan =
        LLVMBuildOr(B, LLVMBuildAnd(B, LLVMBuildLShr(B, a, kint(ti, 13), ""), kint(ti, 0x3ff), ""),
                    kint(ti, 0x7e00), "");
    rj_v bits = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntULT, a, kint(ti, 0x38800000), ""), sub,
                                normal, "");
    bits = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntUGE, a, kint(ti, 0x477ff000), ""),
                           kint(ti, 0x7c00), bits, "");
    bits = LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntUGT, a, kint(ti, 0x7f800000), ""), nan, bits,
                           "");
    return LLVMBuildOr(B, bits, sign, "");
}

/* float to bfloat16 bits (i32 lanes): round at bit 16, ties to even; NaN quiet. */
static rj_v bf16_narrow_int(rj_ir *ir, rj_v x, LLVMTypeRef ti)
{
    LLVMBuilderRef B = ir->B;
    rj_v u = LLVMBuildBitCast(B, x, ti, "");
    rj_v hi = LLVMBuildLShr(B, u, kint(ti, 16), "");
    rj_v lsb = LLVMBuildAnd(B, hi, kint(ti, 1), "");
    rj_v rounded = LLVMBuildLShr(B,
                                 LLVMBuildAdd(B, LLVMBuildAdd(B, u, kint(ti, 0x7fff), ""), lsb, ""),
                                 kint(ti, 16), "");
    rj_v a = LLVMBuildAnd(B, u, kint(ti, 0x7fffffff), "");
    rj_v nan = LLVMBuildICmp(B, LLVMIntUGT, a, kint(ti, 0x7f800000), "");
    return LLVMBuildSelect(B, nan, LLVMBuildOr(B, hi, kint(ti, 0x40), ""), rounded, "");
}

rj_v rj_ir_ld_dt(rj_ir *ir, rj_v p, int dt, int vec, const char *name)
{
    if (dt == RFJIT_F32)
        return vec ? rj_ir_ldv(ir, p, name) : rj_ir_ld(ir, p, name);
    LLVMBuilderRef B = ir->B;
    LLVMTypeRef tf = lanes(ir, ir->ty_f32, vec), ti = lanes(ir, ir->ty_i32, vec);
    if (dt == RFJIT_F16 && half_native(ir)) {
        rj_v h = LLVMBuildLoad2(B, lanes(ir, LLVMHalfTypeInContext(ir->C), vec), p, "");
        LLVMSetAlignment(h, 2);
        return LLVMBuildFPExt(B, h, tf, rj_ir_name(ir, name));
    }
    rj_v h = LLVMBuildLoad2(B, lanes(ir, LLVMInt16TypeInContext(ir->C), vec), p, "");
    LLVMSetAlignment(h, 2);
    rj_v w = LLVMBuildZExt(B, h, ti, "");
    if (dt == RFJIT_F16)
        return f16_widen_int(ir, w, ti, tf);
    return LLVMBuildBitCast(B, LLVMBuildShl(B, w, kint(ti, 16), ""), tf, rj_ir_name(ir, name));
}

void rj_ir_st_dt(rj_ir *ir, rj_v x, rj_v p, int dt)
{
    if (dt == RFJIT_F32) {
        rj_ir_st(ir, x, p);
        return;
    }
    LLVMBuilderRef B = ir->B;
    const int vec = LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind;
    LLVMTypeRef tf = lanes(ir, ir->ty_f32, vec), ti = lanes(ir, ir->ty_i32, vec);
    rj_v h;
    if (dt == RFJIT_F16 && half_native(ir))
        h = LLVMBuildFPTrunc(B, x, lanes(ir, LLVMHalfTypeInContext(ir->C), vec), "");
    else if (dt == RFJIT_BF16 && vec && bf16_native(ir)) /* scalars could become a libcall */
        h = LLVMBuildFPTrunc(B, x, lanes(ir, LLVMBFloatTypeInContext(ir->C), vec), "");
    else {
        rj_v bits = dt == RFJIT_F16 ? f16_narrow_int(ir, x, ti, tf) : bf16_narrow_int(ir, x, ti);
        h = LLVMBuildTrunc(B, bits, lanes(ir, LLVMInt16TypeInContext(ir->C), vec), "");
    }
    LLVMSetAlignment(LLVMBuildStore(B, h, p), 2);
}
