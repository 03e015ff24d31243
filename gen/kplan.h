/* SPDX-License-Identifier: MIT */
/*
 * This file defines rj_kplan, the resolved kernel plan: everything a template needs to emit
 * one kernel, decided in plain C first (architecture.md 3.2: decide, then emit). It fixes the
 * template and feature family, every size (padded to the vector width), the tiling, and the
 * float layouts of the role parameters (pq, pk), the scratch (ws) and the carried state (st).
 * Emission only reads it, so equal plans give byte-identical IR, which is what makes the
 * bytes of a plan a sound cache key (with the target, see runtime/kcache.c).
 */
#ifndef RJ_KPLAN_H
#define RJ_KPLAN_H

#include "est/est.h"

/* Tiling knobs: the public rfjit_tiling, with the rules include/rfjit.h states (a knob at 0
 * asks for its default); rj_kplan's vw, T, ri and rj hold the resolved values. */
_Static_assert(sizeof(rfjit_tiling) == 4 * sizeof(int32_t), "rfjit_tiling is vw, T, ri, rj");

/* What a kernel computes: attention (the plan's template), or a helper of the estimate API. */
typedef enum rj_kkind { RJ_KK_ATTN = 0, RJ_KK_FEAT = 1, RJ_KK_GRAM = 2, RJ_KK_PEAK = 3 } rj_kkind;

/* Widest value rows a kernel is compiled for. Code and compile time grow with dv: 0.4 s at
 * 4096, 3.5 s at 16384, 46 s at 65536, and LLVM runs out of memory (and aborts) at 2^20.
 * Wider values run on the reference. */
#define RJ_JIT_MAX_DV 4096

/* Query heads of a grouped-query group that one pass of the softmax template over a key and
 * value tile serves (rj_kplan.gq): 8 covers the common groups of 4 and 8 in one pass, and
 * each head's scratch (a query tile and its numerators: 16 KiB at d = dv = 64, T = 32) keeps
 * the pass within L2. */
#define RJ_SOFTMAX_HEADS 8

/* The peak probe's shape (gen/tmpl/peak.c): chains and unroll per round. */
#define RJ_PEAK_CHAINS 12
#define RJ_PEAK_UNROLL 4

typedef struct rj_kplan {
    /* The identity: every field below is a function of these (and all are zero-filled
     * before being set, so padding bytes are zero too and the struct hashes as bytes). */
    int32_t kind;   /* rj_kkind */
    int32_t tmpl;   /* rj_tmpl */
    int32_t fam;    /* rj_kfam (linear template) */
    int32_t norm;   /* rj_knorm */
    int32_t causal;
    int32_t sgn;    /* signed features: denominators need the guard */
    int32_t fma;    /* emit llvm.fma (else fmul + fadd) */
    int32_t d, dv;
    int32_t vw, T, ri, rj;
    int32_t est_version;
    /* Element types (rfjit_dtype) of q, k, v and of out in the caller's memory: a kernel
     * converts as it loads and stores and computes in float, so they change no size or
     * layout below, only the code (and so the cache key). */
    int32_t dt_in, dt_out;
    /* rfjit_attn_desc.compute = RFJIT_BF16: the products take operands rounded to bfloat16
     * and accumulate in float, with AVX512-BF16's dot product (RJ_BF16_DOT, rj_mm.bf16) or
     * AMX tiles (RJ_BF16_AMX, rj_ir_mm_amx; 16 lanes); 0: float throughout. */
    int32_t bf16;
    char est_name[16];
    /* What the kernel multiplies q and k rows by (attention kernels; 1 for the others):
     * sqrt(scale), so each softmax scale is its own kernel and cache entry. */
    double xscale;

    /* Derived sizes. A "p" suffix is the padded count the tiles and layouts use. */
    int32_t dvp;    /* dv rounded up to vw */
    int32_t P;      /* projection rows (rows of W) */
    int32_t Pp;     /* P rounded up to ri */
    int32_t M;      /* feature rows: P, 2 Pp for trig (cos block, sin block), hybrid's blocks */
    int32_t Mp;     /* M rounded up to ri */
    int32_t dn;     /* rows of the dense norm matrix G (RJ_KN_DENSE), rounded up to ri; else 0 */
    /* Hybrid only (est.h RJ_KF_HYBRID; 0 otherwise): hn + 1 blocks of hmb + 2 hm rows. */
    int32_t hmb;    /* base rows per block (the estimator's mb) */
    int32_t hm;     /* trig projections per block (m): rows of cos, then of sin */
    int32_t hn;     /* sign features (n): blocks 1..hn are block 0 times sigma_k */
    /* Query heads the softmax template takes per pass over the keys (kabi.h ng): a grouped
     * call of more heads runs ceil(ng / gq) passes. 1 for the other templates. */
    int32_t gq;

    /* Role parameter block (floats): [h0, gamma, gamma2, ...] at 0, b at off_b (Pp, -inf
     * padded), g at off_g (d, or dn x d), W at off_w (Pp x d, zero padded). */
    int64_t off_b, off_g, off_w, role_floats;

    /* Scratch (floats, each region 16-float aligned). */
    int64_t ws_x;   /* d x T: scaled rows, transposed (linear); T x d row-major keys (softmax) */
    int64_t ws_xq;  /* d x T: scaled query rows, transposed (softmax, causal linear) */
    int64_t ws_v;   /* T x dvp values */
    int64_t ws_u;   /* max(Pp, dn) x T projections */
    int64_t ws_fk, ws_fq, ws_fa; /* Mp x T key, query and |query| features */
    int64_t ws_fka; /* Mp x T |key| features (signed causal) */
    int64_t ws_n, ws_h; /* T each: n(x) and the row log-scale h */
    int64_t ws_num; /* dvp x T numerators (transposed) */
    int64_t ws_den, ws_g; /* T each: denominators and guard scales */
    int64_t ws_a, ws_aa; /* T x T intra-chunk scores (and |scores|) */
    int64_t ws_m, ws_l;  /* T each: softmax running max and sum */
    int64_t ws_kv;       /* T: the key tile's visibility, 1 or 0 (key mask and tile end) */
    /* bf16 operands (softmax, kp.bf16; one float per bfloat16 pair): keys as rows of bk
     * bfloat16s (T rows), weights as pairs of their rows (pk x T), and each head's query tile
     * as pairs of its d rows (pq x T, at ws_xqb + g ws_gs). Values: DOT, pairs of rows
     * (T / 2 x dvp); AMX, rows of the transposed tile (ws_vt, dvp x T floats) as dvp rows of
     * bv bfloat16s. The padding (to AMX's tile depth) is zero. */
    int64_t ws_kb, ws_vb, ws_pb, ws_xqb, ws_vt;
    int32_t bk, bv, pq, pk;
    /* bf16 operands of the linear template (AMX, bidirectional): both roles' W as Pp rows of
     * bk bfloat16s (keys' at ws_wb, queries' ws_wb + Pp bk / 2), the tile's rows as pq pairs
     * (ws_xb, pq x T), key features as Mp rows of bv (ws_fkb), values as pk pairs (ws_vpb,
     * pk x dvp), S transposed (ws_st, dvp x Mp floats) as dvp rows of bm (ws_sb), and query
     * features as bm / 2 pairs (ws_fqb, bm / 2 x T). */
    int64_t ws_wb, ws_xb, ws_fkb, ws_vpb, ws_st, ws_sb, ws_fqb;
    int32_t bm;
    /* ws_xq, ws_num, ws_m and ws_l belong to query head 0 of a pass; head g's are ws_gs g
     * floats further on (gq heads). */
    int64_t ws_gs;
    int64_t ws_floats;

    /* Carried state (floats), the linear template's sums over the keys seen so far, each
     * relative to the shift c: */
    int64_t st_S;  /* S = sum phi_k v^T (Mp x dvp) */
    int64_t st_z;  /* z = sum phi_k (Mp) */
    int64_t st_za; /* zabs = sum |phi_k| (Mp): the signed features' guard scale */
    int64_t st_c;  /* c, the running shift (1, padded to 16) */
    int64_t st_floats;
} rj_kplan;

enum { RJ_BF16_DOT = 1, RJ_BF16_AMX = 2 };

/* Resolve spec x tiling for a target with `max_vw` lanes and (no) FMA. Errors:
 * RFJIT_E_NOT_APPLICABLE when the estimator has no kernel of this template,
 * RFJIT_E_INVALID_ARG for a tiling outside the rules above. */
rfjit_status rj_kplan_make(const rj_spec *s, const rfjit_tiling *t, int max_vw, int fma,
                           rj_kplan *kp, rj_diag *dg);

/* kp for inputs of dt_in and output of dt_out (attention kernels; helper kernels read and
 * write float only). Errors: RFJIT_E_DTYPE for a type that is not an rfjit_dtype. */
rfjit_status rj_kplan_set_dtypes(rj_kplan *kp, int dt_in, int dt_out, rj_diag *dg);

/* The feature-map kernel of a linear attention plan (same features, tiling and parameter
 * layout; kabi.h RJ_KK_FEAT). Errors: RFJIT_E_NOT_APPLICABLE for other templates. */
rfjit_status rj_kplan_feat(const rj_spec *s, const rj_kplan *attn, rj_kplan *kp, rj_diag *dg);
/* The Gram kernel over K rows (kabi.h RJ_KK_GRAM), with attn's tiling and target: of the
 * features for a linear attn, of the raw rows (exponentiated) for a softmax one. */
void rj_kplan_gram(const rj_kplan *attn, int32_t K, rj_kplan *kp);
/* The FMA peak probe (kabi.h RJ_KK_PEAK) at vw lanes, with or without FMA. */
void rj_kplan_peak(int vw, int fma, rj_kplan *kp);
/* Row of a feature-major tile that holds feature c (0 <= c < M) in the estimator's own order
 * (est->features): trig pads each of its cos and sin halves, hybrid interleaves its blocks. */
int64_t rj_kplan_feature_row(const rj_kplan *kp, int64_t c);

/* The default tiling for a target with max_vw lanes. */
rfjit_tiling rj_tiling_default(int max_vw);

/* One line describing the plan, for logs and dumps. */
void rj_kplan_describe(const rj_kplan *kp, char *buf, size_t n);

#endif
