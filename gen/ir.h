/* SPDX-License-Identifier: MIT */
/*
 * This file is the IR helper layer: the vocabulary the kernel templates are written in
 * (counted loops, strided float and vector access, broadcast-FMA tile products, inline
 * exp/sin/cos, fixed-tree horizontal reductions). Only gen/ir*.c and gen/tmpl/ include it;
 * it is where the LLVM C API is allowed in gen/ (architecture.md 1.3).
 *
 * Values are named after the math when `names` is set (RFJIT_DUMP, debug builds); release
 * builds pass "" so that naming costs nothing.
 *
 * An idiom a template needs twice becomes a helper here: the templates call LLVM builders
 * only for selects, compares and mask logic (scripts/check_ir_helpers.sh).
 */
#ifndef RJ_IR_H
#define RJ_IR_H

#include "core/base.h"

#include <llvm-c/Core.h>

typedef LLVMValueRef rj_v;
typedef LLVMBasicBlockRef rj_bb;

typedef struct rj_ir {
    LLVMContextRef C;
    LLVMModuleRef M;
    LLVMBuilderRef B;
    rj_v fn;
    rj_bb entry;          /* allocas go here, before its terminator */
    LLVMTypeRef ty_f32, ty_i1, ty_i32, ty_i64, ty_ptr, ty_vf, ty_vi, ty_vb;
    int vw, fma, names;
    LLVMTypeRef ty_fma_v, ty_fma_s;
    rj_v fn_fma_v, fn_fma_s;
    LLVMTypeRef ty_tr;    /* the out-of-line block transpose (rj_ir_transpose_block) */
    rj_v fn_tr[3][3], one; /* one per (source, destination) rfjit_dtype */
    /* Out-of-line functions: NULL keeps them internal to the module; a prefix names them
     * `<prefix>_<name>`, external, and defines them only where helpers_here is set, so that
     * one module of a kernel built in parts (gen.h) holds them for all the others. */
    const char *helper_prefix;
    int helpers_here;
    int half_native;       /* 0 unknown, 1 the target converts binary16 in hardware, -1 not */
    int bf16_native;       /* the same for rounding float to bfloat16 */
    LLVMTypeRef ty_vbf;    /* <2 vw x bfloat>: a vector of bf16 pairs */
    LLVMTypeRef ty_dot;    /* AVX512-BF16's pair dot product (rj_mm.bf16), declared on use */
    rj_v fn_dot;
} rj_ir;

/* Set up types and intrinsics for module M (lanes vw, FMA or not). */
void rj_ir_init(rj_ir *ir, LLVMContextRef C, LLVMModuleRef M, int vw, int fma, int names);
void rj_ir_dispose(rj_ir *ir);
/* A name, or "" when names are off. */
const char *rj_ir_name(const rj_ir *ir, const char *name);

/* Constants. */
rj_v rj_ir_f(rj_ir *ir, double x);           /* float scalar */
rj_v rj_ir_vf(rj_ir *ir, double x);          /* <vw x float> splat */
rj_v rj_ir_i(rj_ir *ir, int64_t x);          /* i64 */

/* Memory: float element `idx` (i64) of p, and loads/stores of scalars and vectors. */
rj_v rj_ir_at(rj_ir *ir, rj_v p, rj_v idx);
rj_v rj_ir_atc(rj_ir *ir, rj_v p, int64_t idx);
rj_v rj_ir_ld(rj_ir *ir, rj_v p, const char *name);
rj_v rj_ir_ldv(rj_ir *ir, rj_v p, const char *name);
void rj_ir_st(rj_ir *ir, rj_v x, rj_v p);
void rj_ir_stv(rj_ir *ir, rj_v x, rj_v p);
/*
 * Tensors the caller owns hold rfjit_dtype elements; registers hold float. rj_ir_at_dt is
 * element idx of p for that type; rj_ir_ld_dt loads a vector of vw elements (vec) or one
 * and widens it to float exactly; rj_ir_st_dt rounds a float scalar or vector to nearest
 * even (overflow to infinity, NaN stays NaN) and stores it. binary16 uses the target's
 * conversions where it has them (x86 F16C, AArch64) and integer code elsewhere, so a kernel
 * never calls a runtime library; bfloat16 widens by a shift and rounds in integer code, or
 * with AVX512-BF16's conversion.
 */
rj_v rj_ir_at_dt(rj_ir *ir, rj_v p, rj_v idx, int dt);
rj_v rj_ir_ld_dt(rj_ir *ir, rj_v p, int dt, int vec, const char *name);
void rj_ir_st_dt(rj_ir *ir, rj_v x, rj_v p, int dt);
/* An entry-block slot (promoted to registers by the optimiser). */
rj_v rj_ir_slot(rj_ir *ir, LLVMTypeRef ty, const char *name);
/*
 * Slot access and accumulators. A slot (or element k of an array slot, rj_ir_slot_at) is read
 * and written at its type's natural alignment, unlike rj_ir_ld/st, which assume only float
 * alignment of a pointer into the caller's buffers.
 */
rj_v rj_ir_slot_at(rj_ir *ir, rj_v slot, int k);
rj_v rj_ir_get(rj_ir *ir, rj_v slot, const char *name);
void rj_ir_set(rj_ir *ir, rj_v slot, rj_v x);
void rj_ir_acc_add(rj_ir *ir, rj_v slot, rj_v x); /* slot += x */
void rj_ir_acc_max(rj_ir *ir, rj_v slot, rj_v x); /* slot = max(slot, x) */

/* i64 index arithmetic; nsw, as no index of a tile or buffer wraps. */
rj_v rj_ir_iadd(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_isub(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_imul(rj_ir *ir, rj_v a, rj_v b, const char *name);
/* row * stride + col: the element of a row-major tile (stride constant, or i64 for idx2v). */
rj_v rj_ir_idx2(rj_ir *ir, rj_v row, int64_t stride, rj_v col, const char *name);
rj_v rj_ir_idx2v(rj_ir *ir, rj_v row, rj_v stride, rj_v col, const char *name);
/* n rounded down to a multiple of m (a power of two). */
rj_v rj_ir_round_down(rj_ir *ir, rj_v n, int64_t m, const char *name);
/* ceil(n / m) for n >= 0 and m >= 1 (both i64). */
rj_v rj_ir_ceil_div(rj_ir *ir, rj_v n, rj_v m, const char *name);
/* (x & bits) != 0, or == 0 when set is 0: a flag of the kernel arguments. */
rj_v rj_ir_bits(rj_ir *ir, rj_v x, int64_t bits, int set, const char *name);
/* p[idx] != 0 for a byte pointer p (i64 idx): one entry of a caller's mask, read as is (no
 * alignment assumed). */
rj_v rj_ir_byte_set(rj_ir *ir, rj_v p, rj_v idx, const char *name);
/* p != NULL for an argument pointer. */
rj_v rj_ir_nonnull(rj_ir *ir, rj_v p, const char *name);

/* Arithmetic on scalars or vectors of the same type. */
rj_v rj_ir_add(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_sub(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_mul(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_div(rj_ir *ir, rj_v a, rj_v b, const char *name);
rj_v rj_ir_fma(rj_ir *ir, rj_v a, rj_v b, rj_v c, const char *name); /* a*b + c */
rj_v rj_ir_max(rj_ir *ir, rj_v a, rj_v b, const char *name);         /* NaN-free max */
rj_v rj_ir_abs(rj_ir *ir, rj_v a, const char *name);
rj_v rj_ir_bcast(rj_ir *ir, rj_v s, const char *name);               /* scalar -> vector */
rj_v rj_ir_hsum(rj_ir *ir, rj_v v, const char *name);                /* fixed tree */
rj_v rj_ir_hmax(rj_ir *ir, rj_v v, const char *name);                /* fixed tree */
rj_v rj_ir_neg(rj_ir *ir, rj_v a, const char *name);                 /* -a */
rj_v rj_ir_lane_iota(rj_ir *ir);                                     /* <0, 1, .., vw-1> i64 */
rj_v rj_ir_ibcast(rj_ir *ir, rj_v x);                                /* i64 -> <vw x i64> */
rj_v rj_ir_mask_bcast(rj_ir *ir, rj_v b, const char *name);          /* i1 -> <vw x i1> */
rj_v rj_ir_any(rj_ir *ir, rj_v lanes, const char *name);             /* <vw x i1> -> i1 */
/* <t0, t0 + 1, .., t0 + vw - 1>: the token index of each lane of the vector at t0 (i64), and
 * lane indices moved by an i64 x. */
rj_v rj_ir_lanes_from(rj_ir *ir, rj_v t0);
rj_v rj_ir_lanes_add(rj_ir *ir, rj_v lanes, rj_v x);
/*
 * dst[l * ds + i] = src[i * ss + l] * scale * rs[l * rstep] for i, l < vw (strides in floats,
 * i64; rs NULL: 1). One call of a function the module holds once, however many templates
 * use it: an inline 16 x 16 transpose costs ~90 M instructions of compile time each.
 */
void rj_ir_transpose_block(rj_ir *ir, rj_v src, rj_v ss, rj_v dst, rj_v ds, rj_v rs, rj_v rstep,
                           rj_v scale);
/* The same with src holding src_dt and dst dst_dt elements (strides in elements). */
void rj_ir_transpose_block_dt(rj_ir *ir, rj_v src, int src_dt, rj_v ss, rj_v dst, int dst_dt,
                              rj_v ds, rj_v rs, rj_v rstep, rj_v scale);

/* Give fn, a function of the kernel's module called out of line, the attributes of the one
 * being built (its target and vector width) and noinline: inlined, it would be compiled once
 * per call site. */
void rj_ir_outline_attrs(rj_ir *ir, rj_v fn);

/* Inline math, no calls (ir_math.c states the error bounds). Vector or scalar float. */
rj_v rj_ir_exp(rj_ir *ir, rj_v x, const char *name);
void rj_ir_sincos(rj_ir *ir, rj_v x, rj_v *s, rj_v *c);

/* Counted loop for (i = start; i < end; i += step), i64. Build the body between begin and
 * end; the builder sits in the exit block afterwards. */
typedef struct rj_loop {
    rj_bb head, body, exit, pre;
    rj_v i, step;
} rj_loop;
rj_loop rj_ir_loop_begin(rj_ir *ir, const char *name, rj_v start, rj_v end, int64_t step);
void rj_ir_loop_end(rj_ir *ir, rj_loop *l);

/* if (cond) { then } ; builder in `then` after begin, after the join after end. */
typedef struct rj_if {
    rj_bb then, join;
} rj_if;
rj_if rj_ir_if_begin(rj_ir *ir, rj_v cond, const char *name);
void rj_ir_if_end(rj_ir *ir, rj_if *b);

/*
 * Tile product, the one contraction every template uses:
 *
 *     C[i, j] (= or +=) sum_{k < K} A[i a_si + k a_sk] * B[k b_sk + j]
 *     for i < NI, j < NJ, C row stride c_si,
 *
 * with A broadcast one scalar at a time and B, C streamed as vectors (NJ a multiple of vw).
 * Register blocking ri x rj (the largest divisors of NI and NJ / vw not above the plan's);
 * K is an i64 value (constant or run time).
 */
typedef struct rj_mm {
    rj_v A, B, C;
    int64_t a_si, a_sk, b_sk, c_si, NI, NJ;
    rj_v a_si_v, a_sk_v; /* run-time strides of A (i64) overriding a_si, a_sk when set */
    rj_v b_sk_v;         /* the same for B's b_sk */
    rj_v K;
    int accumulate;
    int ri, rj;
    /* Operands in bfloat16 pairs (rj_ir_pack_bf16_*), each pair one 4-byte slot, so every
     * stride and index above counts pairs; K counts pairs too. One AVX512-BF16 dot product
     * (vdpbf16ps) takes two steps of k, accumulating in float: A's slot (i, k) holds
     * A[i, 2k], A[i, 2k + 1], B's slot (k, j) holds B[2k, j], B[2k + 1, j]. */
    int bf16;
    const char *name;
} rj_mm;
void rj_ir_mm(rj_ir *ir, const rj_mm *mm);

/*
 * Operands of a bf16 product, rounded from float to nearest even (float subnormals flush to
 * zero, as the hardware conversion does). The target must have AVX512-BF16 and AVX512VL.
 *
 * rows:  dst[r * ds + c] = bf16(src[r * ss + c]) for r < n (i64), c < K, and 0 for K <= c <
 *        Kpad (a multiple of vw; ss i64 in floats, ds in bfloat16s, even, >= Kpad): rows
 *        whose consecutive elements pair up, an A operand with a_si = ds / 2, a_sk = 1 and
 *        ceil(K / 2) pairs (AMX: Kpad / 2).
 * pairs: slot (k, j) of dst (row stride NJ slots) = bf16(src[2k * ss + j]),
 *        bf16(src[(2k + 1) * ss + j]) for k < ceil(K / 2) (K i64, ss i64 in floats), j < NJ
 *        (a multiple of vw); row K (when K is odd) reads as 0, and slots of rows k from
 *        ceil(K / 2) to kpad (> 0: a constant, AMX's multiple of 16) are 0: a B operand
 *        (b_sk = NJ), or an A operand read with a_si = 1, a_sk = NJ.
 */
void rj_ir_pack_bf16_rows(rj_ir *ir, rj_v src, rj_v ss, rj_v n, int64_t K, int64_t Kpad, rj_v dst,
                          int64_t ds);
void rj_ir_pack_bf16_pairs(rj_ir *ir, rj_v src, rj_v ss, rj_v K, int64_t NJ, rj_v dst,
                           int64_t kpad);
/* Store x0, x1 (<vw x float>) rounded to bfloat16 as vw pairs (x0[l], x1[l]) at dst (vw
 * 4-byte slots): one row of a pairs operand. */
void rj_ir_store_bf16_pairs(rj_ir *ir, rj_v x0, rj_v x1, rj_v dst);
/* acc + the pair dot products of a and b (<vw x float> each, holding bf16 pairs): rj_mm.bf16's
 * step. */
rj_v rj_ir_dot_bf16(rj_ir *ir, rj_v acc, rj_v a, rj_v b);

/*
 * AMX (AMX-TILE, AMX-BF16): rj_ir_amx_begin configures eight tiles of 16 rows x 64 bytes at
 * the kernel's entry and rj_ir_amx_end releases them before it returns (the process must
 * have the kernel's permission, runtime/jit.c). Between them,
 *
 *     C[i, j] (= or +=) sum_{k < 2 K} A[i, k] B[k, j]   for i < NI, j < NJ
 *
 * with A in bf16 rows (rj_ir_pack_bf16_rows; row i at A + i a_si slots), B in pairs
 * (rj_ir_pack_bf16_pairs; pair row k at B + k b_sk slots), C float with row stride c_si,
 * NI and NJ multiples of 16, K (pairs) a multiple of 16: 16 x 16 x 32 per tile product, on
 * up to 2 x 2 accumulator tiles.
 */
void rj_ir_amx_begin(rj_ir *ir);
void rj_ir_amx_end(rj_ir *ir);
typedef struct rj_amx_mm {
    rj_v A, B, C;
    int64_t a_si, b_sk, c_si, NI, NJ, K;
    int accumulate;
} rj_amx_mm;
void rj_ir_mm_amx(rj_ir *ir, const rj_amx_mm *mm);

#endif
