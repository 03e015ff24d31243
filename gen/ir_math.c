/* SPDX-License-Identifier: MIT */
/*
 * This file emits exp, sin and cos as inline IR (architecture.md 3.2: no calls, no
 * llvm.exp/sin/cos/floor/round, which become libm calls on baseline x86-64). Only fadd, fmul,
 * fma (when the plan has it), compares, selects, fptosi/sitofp, shifts and bitcasts are used,
 * so every target lowers them inline and the result does not depend on a libm.
 *
 * Rounding to nearest uses the 1.5 * 2^23 trick (t + 1.5*2^23) - 1.5*2^23: exact for
 * |t| < 2^22 in float without fast-math, which we never set, so the optimiser keeps it.
 *
 * exp(x): Cody-Waite with ln 2 = 0.693359375 - 2.12194440e-4 (the first part has 9 bits, so
 * n ln2_hi is exact for |n| <= 2^15), r in [-ln2/2, ln2/2], then Cephes' degree-6 minimax
 * polynomial for e^r, scaled by 2^n built in the exponent bits. Inputs are clamped to
 * [-88, 88.3]; results below e^-87.33 are flushed to +0 (no denormals), so -inf gives 0.
 * Measured (tests/jit/test_ir_math.c, against double exp over [-87, 88] on 2^20 points):
 * relative error 8.3e-8 with FMA, 7.9e-8 without (about 1 ulp); the test asserts 1.5e-7.
 *
 * sin/cos(x): k = round(x 2/pi), r = x - k pi/2 in three Cody-Waite parts (Cephes DP1..DP3
 * doubled), |r| <= pi/4, Cephes' sinf/cosf polynomials, quadrant (k mod 4) by selects.
 * Measured (same test, 2^20 points): absolute error 9.3e-8 (sin), 9.1e-8 (cos) for
 * |x| <= 2^13, asserted <= 2e-7 (the used range:
 * features u = w^T x of unit-scale inputs stay far inside; beyond 2^13 the reduction loses
 * bits and beyond 2^22 k is meaningless, so larger arguments are out of contract).
 */
#include "gen/ir.h"

#define MAGIC 12582912.0 /* 1.5 * 2^23 */

static rj_v like(rj_ir *ir, rj_v x, double c)
{
    return LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind ? rj_ir_vf(ir, c)
                                                                : rj_ir_f(ir, c);
}

static LLVMTypeRef int_like(rj_ir *ir, rj_v x)
{
    return LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind ? ir->ty_vi : ir->ty_i32;
}

static rj_v int_const(rj_ir *ir, rj_v x, int c)
{
    LLVMTypeRef ti = int_like(ir, x);
    if (LLVMGetTypeKind(ti) != LLVMVectorTypeKind)
        return LLVMConstInt(ti, (unsigned long long)(long long)c, 1);
    rj_v e[16];
    for (int i = 0; i < ir->vw; i++)
        e[i] = LLVMConstInt(ir->ty_i32, (unsigned long long)(long long)c, 1);
    return LLVMConstVector(e, (unsigned)ir->vw);
}

static rj_v min_(rj_ir *ir, rj_v a, rj_v b)
{
    rj_v lt = LLVMBuildFCmp(ir->B, LLVMRealOLT, a, b, "");
    return LLVMBuildSelect(ir->B, lt, a, b, "");
}

/* Horner with FMA where the plan has it: c[0] + x (c[1] + x (...)). */
static rj_v horner(rj_ir *ir, rj_v x, const double *c, int n)
{
    rj_v p = like(ir, x, c[n - 1]);
    for (int i = n - 2; i >= 0; i--)
        p = rj_ir_fma(ir, p, x, like(ir, x, c[i]), "");
    return p;
}

static rj_v round_nearest(rj_ir *ir, rj_v t)
{
    rj_v m = like(ir, t, MAGIC);
    return rj_ir_sub(ir, rj_ir_add(ir, t, m, ""), m, "");
}

rj_v rj_ir_exp(rj_ir *ir, rj_v x, const char *name)
{
    static const double P[6] = {5.0000001201E-1, 1.6666665459E-1, 4.1665795894E-2,
                                8.3334519073E-3, 1.3981999507E-3, 1.9875691500E-4};
    rj_v xc = min_(ir, rj_ir_max(ir, x, like(ir, x, -88.0), ""), like(ir, x, 88.3));
    rj_v n = round_nearest(ir, rj_ir_mul(ir, xc, like(ir, x, 1.44269504088896341), "n"));
    /* x - n ln2 in two steps (Cody-Waite); one FMA each where the target has it */
    rj_v r = rj_ir_fma(ir, n, like(ir, x, -0.693359375), xc, "");
    r = rj_ir_fma(ir, n, like(ir, x, 2.12194440e-4), r, "r");
    rj_v r2 = rj_ir_mul(ir, r, r, "");
    /* e^r = 1 + r + r^2 (P0 + r P1 + ...) */
    rj_v p = horner(ir, r, P, 6);
    rj_v er = rj_ir_add(ir, rj_ir_fma(ir, p, r2, r, ""), like(ir, x, 1.0), "er");
    LLVMTypeRef ti = int_like(ir, x);
    rj_v ni = LLVMBuildFPToSI(ir->B, n, ti, "");
    rj_v bits = LLVMBuildShl(ir->B, LLVMBuildAdd(ir->B, ni, int_const(ir, x, 127), ""),
                             int_const(ir, x, 23), "");
    rj_v scale = LLVMBuildBitCast(ir->B, bits, LLVMTypeOf(x), "");
    rj_v y = rj_ir_mul(ir, er, scale, "");
    rj_v tiny = LLVMBuildFCmp(ir->B, LLVMRealOLT, x, like(ir, x, -87.33), "");
    return LLVMBuildSelect(ir->B, tiny, like(ir, x, 0.0), y, rj_ir_name(ir, name));
}

void rj_ir_sincos(rj_ir *ir, rj_v x, rj_v *s_out, rj_v *c_out)
{
    static const double S[4] = {1.0, -1.6666654611E-1, 8.3321608736E-3, -1.9515295891E-4};
    static const double Cc[3] = {4.166664568298827E-2, -1.388731625493765E-3,
                                 2.443315711809948E-5};
    rj_v k = round_nearest(ir, rj_ir_mul(ir, x, like(ir, x, 0.63661977236758134), "k"));
    rj_v r = rj_ir_sub(ir, x, rj_ir_mul(ir, k, like(ir, x, 1.5703125), ""), "");
    r = rj_ir_sub(ir, r, rj_ir_mul(ir, k, like(ir, x, 4.837512969970703125e-4), ""), "");
    r = rj_ir_sub(ir, r, rj_ir_mul(ir, k, like(ir, x, 7.54978995489188216e-8), ""), "r");
    rj_v r2 = rj_ir_mul(ir, r, r, "");
    rj_v sp = rj_ir_mul(ir, r, horner(ir, r2, S, 4), "sr");
    /* cos r = 1 - r^2/2 + r^4 (C0 + r^2 C1 + r^4 C2) */
    rj_v r4 = rj_ir_mul(ir, r2, r2, "");
    rj_v cp = rj_ir_fma(ir, horner(ir, r2, Cc, 3), r4,
                        rj_ir_fma(ir, r2, like(ir, x, -0.5), like(ir, x, 1.0), ""), "cr");
    rj_v q = LLVMBuildAnd(ir->B, LLVMBuildFPToSI(ir->B, k, int_like(ir, x), ""),
                          int_const(ir, x, 3), "quadrant");
    rj_v odd = LLVMBuildICmp(ir->B, LLVMIntNE,
                             LLVMBuildAnd(ir->B, q, int_const(ir, x, 1), ""), int_const(ir, x, 0),
                             "");
    /* sin: q 0: s, 1: c, 2: -s, 3: -c;  cos: q 0: c, 1: -s, 2: -c, 3: s */
    rj_v sin_mag = LLVMBuildSelect(ir->B, odd, cp, sp, "");
    rj_v cos_mag = LLVMBuildSelect(ir->B, odd, sp, cp, "");
    rj_v sin_neg = LLVMBuildICmp(ir->B, LLVMIntSGE, q, int_const(ir, x, 2), "");
    rj_v q1 = LLVMBuildAdd(ir->B, q, int_const(ir, x, 1), "");
    rj_v cos_neg = LLVMBuildICmp(ir->B, LLVMIntNE,
                                 LLVMBuildAnd(ir->B, q1, int_const(ir, x, 2), ""),
                                 int_const(ir, x, 0), "");
    *s_out = LLVMBuildSelect(ir->B, sin_neg, LLVMBuildFNeg(ir->B, sin_mag, ""), sin_mag,
                             rj_ir_name(ir, "sin"));
    *c_out = LLVMBuildSelect(ir->B, cos_neg, LLVMBuildFNeg(ir->B, cos_mag, ""), cos_mag,
                             rj_ir_name(ir, "cos"));
}
