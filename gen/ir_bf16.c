/* SPDX-License-Identifier: MIT */
/*
 * This file implements the bfloat16 compute path of gen/ir.h: the operand packs that round
 * float tiles to bfloat16 rows and pairs, the pair dot product rj_ir_mm issues for them
 * (AVX512-BF16), and AMX's tile configuration and tile product. Packing is linear in a tile
 * and the product it feeds is not, so operands are rounded once, where they are made, and
 * never inside a product's inner loop.
 */
#include "gen/ir.h"

#include <stdio.h>
#include <string.h>

static LLVMTypeRef ty_bf(rj_ir *ir)
{
    return LLVMBFloatTypeInContext(ir->C);
}

/* <vw x float> -> <vw x bfloat>, nearest even (vcvtneps2bf16). */
static rj_v narrow(rj_ir *ir, rj_v x)
{
    return LLVMBuildFPTrunc(ir->B, x, LLVMVectorType(ty_bf(ir), (unsigned)ir->vw), "");
}

/* Store a bf16 vector at bf16 element idx of p; pair slots keep 4-byte alignment. */
static void store_bf(rj_ir *ir, rj_v x, rj_v p, rj_v idx)
{
    rj_v at = LLVMBuildInBoundsGEP2(ir->B, ty_bf(ir), p, &idx, 1, "");
    LLVMSetAlignment(LLVMBuildStore(ir->B, x, at), 4);
}

rj_v rj_ir_dot_bf16(rj_ir *ir, rj_v acc, rj_v a, rj_v b)
{
    if (!ir->fn_dot) {
        char name[48];
        snprintf(name, sizeof name, "llvm.x86.avx512bf16.dpbf16ps.%d", 32 * ir->vw);
        unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
        ir->ty_dot = LLVMIntrinsicGetType(ir->C, id, NULL, 0);
        ir->fn_dot = LLVMGetIntrinsicDeclaration(ir->M, id, NULL, 0);
        ir->ty_vbf = LLVMVectorType(ty_bf(ir), 2u * (unsigned)ir->vw);
    }
    rj_v args[3] = {acc, LLVMBuildBitCast(ir->B, a, ir->ty_vbf, ""),
                    LLVMBuildBitCast(ir->B, b, ir->ty_vbf, "")};
    return LLVMBuildCall2(ir->B, ir->ty_dot, ir->fn_dot, args, 3, "");
}

void rj_ir_pack_bf16_rows(rj_ir *ir, rj_v src, rj_v ss, rj_v n, int64_t K, int64_t Kpad, rj_v dst,
                          int64_t ds)
{
    const int vw = ir->vw;
    rj_loop r = rj_ir_loop_begin(ir, "bf_row", rj_ir_i(ir, 0), n, 1);
    rj_v row = rj_ir_at(ir, src, rj_ir_imul(ir, r.i, ss, ""));
    rj_v out = rj_ir_imul(ir, r.i, rj_ir_i(ir, ds), "");
    /* whole vectors in a loop (a row may be thousands of features long), then the tail */
    const int64_t whole = K / vw * vw;
    rj_loop c = rj_ir_loop_begin(ir, "bf_col", rj_ir_i(ir, 0), rj_ir_i(ir, whole), vw);
    store_bf(ir, narrow(ir, rj_ir_ldv(ir, rj_ir_at(ir, row, c.i), "x")), dst,
             rj_ir_iadd(ir, out, c.i, ""));
    rj_ir_loop_end(ir, &c);
    for (int64_t at = whole; at < Kpad; at += vw) {
        /* the row's tail, zero-filled to a whole vector: no read past element K - 1 */
        rj_v x = rj_ir_vf(ir, 0);
        for (int64_t e = at; e < K; e++)
            x = LLVMBuildInsertElement(ir->B, x, rj_ir_ld(ir, rj_ir_atc(ir, row, e), "x"),
                                       LLVMConstInt(ir->ty_i32, (unsigned)(e - at), 0), "");
        store_bf(ir, narrow(ir, x), dst, rj_ir_iadd(ir, out, rj_ir_i(ir, at), ""));
    }
    rj_ir_loop_end(ir, &r);
}

void rj_ir_store_bf16_pairs(rj_ir *ir, rj_v x0, rj_v x1, rj_v dst)
{
    const int vw = ir->vw;
    rj_v mask[32];
    for (int l = 0; l < vw; l++) {
        mask[2 * l] = LLVMConstInt(ir->ty_i32, (unsigned)l, 0);
        mask[2 * l + 1] = LLVMConstInt(ir->ty_i32, (unsigned)(vw + l), 0);
    }
    rj_v interleave = LLVMConstVector(mask, 2u * (unsigned)vw);
    rj_v both = LLVMBuildShuffleVector(ir->B, narrow(ir, x0), narrow(ir, x1), interleave, "");
    LLVMSetAlignment(LLVMBuildStore(ir->B, both, dst), 4);
}

void rj_ir_pack_bf16_pairs(rj_ir *ir, rj_v src, rj_v ss, rj_v K, int64_t NJ, rj_v dst, int64_t kpad)
{
    const int vw = ir->vw;
    rj_v pairs = rj_ir_ceil_div(ir, K, rj_ir_i(ir, 2), "pairs");
    rj_loop k = rj_ir_loop_begin(ir, "bf_pair", rj_ir_i(ir, 0), pairs, 1);
    rj_v k0 = rj_ir_imul(ir, k.i, rj_ir_i(ir, 2), "");
    rj_v k1 = rj_ir_iadd(ir, k0, rj_ir_i(ir, 1), "");
    rj_v odd_row = LLVMBuildICmp(ir->B, LLVMIntSLT, k1, K, "has_partner");
    rj_v r0 = rj_ir_at(ir, src, rj_ir_imul(ir, k0, ss, ""));
    /* a missing partner row (K odd) reads row k0 again and is then replaced by zeros */
    rj_v r1 = rj_ir_at(ir, src,
                       rj_ir_imul(ir, LLVMBuildSelect(ir->B, odd_row, k1, k0, ""), ss, ""));
    rj_v keep = rj_ir_mask_bcast(ir, odd_row, "");
    rj_v out = rj_ir_imul(ir, k.i, rj_ir_i(ir, NJ), "");
    rj_loop j = rj_ir_loop_begin(ir, "bf_col", rj_ir_i(ir, 0), rj_ir_i(ir, NJ), vw);
    rj_v x0 = rj_ir_ldv(ir, rj_ir_at(ir, r0, j.i), "x0");
    rj_v x1 = LLVMBuildSelect(ir->B, keep, rj_ir_ldv(ir, rj_ir_at(ir, r1, j.i), "x1"),
                              rj_ir_vf(ir, 0), "x1");
    rj_ir_store_bf16_pairs(ir, x0, x1, rj_ir_at(ir, dst, rj_ir_iadd(ir, out, j.i, "")));
    rj_ir_loop_end(ir, &j);
    rj_ir_loop_end(ir, &k);
    if (kpad > 0) {
        /* pair rows past the operand's, up to the tile's depth, are zero */
        rj_loop z = rj_ir_loop_begin(ir, "bf_pad", rj_ir_imul(ir, pairs, rj_ir_i(ir, NJ), ""),
                                     rj_ir_i(ir, kpad * NJ), vw);
        rj_ir_stv(ir, rj_ir_vf(ir, 0), rj_ir_at(ir, dst, z.i));
        rj_ir_loop_end(ir, &z);
    }
}

/* An AMX intrinsic (none is overloaded), called with args. */
static rj_v amx(rj_ir *ir, const char *name, rj_v *args, unsigned n)
{
    char full[48];
    snprintf(full, sizeof full, "llvm.x86.%s", name);
    unsigned id = LLVMLookupIntrinsicID(full, strlen(full));
    LLVMTypeRef ty = LLVMIntrinsicGetType(ir->C, id, NULL, 0);
    rj_v fn = LLVMGetIntrinsicDeclaration(ir->M, id, NULL, 0);
    return LLVMBuildCall2(ir->B, ty, fn, args, n, "");
}

static rj_v tile(rj_ir *ir, int t)
{
    return LLVMConstInt(LLVMInt8TypeInContext(ir->C), (unsigned)t, 0);
}

void rj_ir_amx_begin(rj_ir *ir)
{
    /* palette 1; tiles 0-3 accumulate, 4-5 hold A, 6-7 B: all 16 rows of 64 bytes */
    unsigned char cfg[64] = {1};
    for (int t = 0; t < 8; t++) {
        cfg[16 + 2 * t] = 64;
        cfg[48 + t] = 16;
    }
    LLVMTypeRef i8 = LLVMInt8TypeInContext(ir->C);
    rj_v bytes[64];
    for (int i = 0; i < 64; i++)
        bytes[i] = LLVMConstInt(i8, cfg[i], 0);
    rj_v init = LLVMConstArray2(i8, bytes, 64);
    rj_v g = LLVMAddGlobal(ir->M, LLVMTypeOf(init), "rj_amx_tiles");
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetAlignment(g, 64);
    amx(ir, "ldtilecfg", &g, 1);
}

void rj_ir_amx_end(rj_ir *ir)
{
    amx(ir, "tilerelease", NULL, 0);
}

void rj_ir_mm_amx(rj_ir *ir, const rj_amx_mm *mm)
{
    const int ti = mm->NI % 32 == 0 ? 2 : 1, tj = mm->NJ % 32 == 0 ? 2 : 1;
    rj_v cs = rj_ir_i(ir, 4 * mm->c_si), as = rj_ir_i(ir, 4 * mm->a_si);
    rj_v bs = rj_ir_i(ir, 4 * mm->b_sk);
    rj_loop li = rj_ir_loop_begin(ir, "amx_i", rj_ir_i(ir, 0), rj_ir_i(ir, mm->NI), 16 * ti);
    rj_loop lj = rj_ir_loop_begin(ir, "amx_j", rj_ir_i(ir, 0), rj_ir_i(ir, mm->NJ), 16 * tj);
    rj_v c_at[2][2];
    for (int a = 0; a < ti; a++)
        for (int b = 0; b < tj; b++) {
            rj_v row = rj_ir_iadd(ir, li.i, rj_ir_i(ir, 16 * a), "");
            rj_v col = rj_ir_iadd(ir, lj.i, rj_ir_i(ir, 16 * b), "");
            c_at[a][b] = rj_ir_at(ir, mm->C, rj_ir_idx2(ir, row, mm->c_si, col, ""));
            rj_v ld[3] = {tile(ir, 2 * a + b), c_at[a][b], cs};
            if (mm->accumulate)
                amx(ir, "tileloadd64", ld, 3);
            else
                amx(ir, "tilezero", ld, 1);
        }
    rj_loop lk = rj_ir_loop_begin(ir, "amx_k", rj_ir_i(ir, 0), rj_ir_i(ir, mm->K), 16);
    for (int a = 0; a < ti; a++) {
        rj_v row = rj_ir_iadd(ir, li.i, rj_ir_i(ir, 16 * a), "");
        rj_v ld[3] = {tile(ir, 4 + a), rj_ir_at(ir, mm->A, rj_ir_idx2(ir, row, mm->a_si, lk.i, "")),
                      as};
        amx(ir, "tileloadd64", ld, 3);
    }
    for (int b = 0; b < tj; b++) {
        rj_v col = rj_ir_iadd(ir, lj.i, rj_ir_i(ir, 16 * b), "");
        rj_v ld[3] = {tile(ir, 6 + b), rj_ir_at(ir, mm->B, rj_ir_idx2(ir, lk.i, mm->b_sk, col, "")),
                      bs};
        amx(ir, "tileloadd64", ld, 3);
    }
    for (int a = 0; a < ti; a++)
        for (int b = 0; b < tj; b++) {
            rj_v op[3] = {tile(ir, 2 * a + b), tile(ir, 4 + a), tile(ir, 6 + b)};
            amx(ir, "tdpbf16ps", op, 3);
        }
    rj_ir_loop_end(ir, &lk);
    for (int a = 0; a < ti; a++)
        for (int b = 0; b < tj; b++) {
            rj_v st[3] = {tile(ir, 2 * a + b), c_at[a][b], cs};
            amx(ir, "tilestored64", st, 3);
        }
    rj_ir_loop_end(ir, &lj);
    rj_ir_loop_end(ir, &li);
}
