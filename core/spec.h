/* SPDX-License-Identifier: MIT */
/*
 * This file defines rj_spec, the canonical description of one operator: which estimator,
 * its sizes and its structural options. Everything random (W, seeds) and every length stays
 * outside it, so one spec serves any seed and sequence length.
 */
#ifndef RJ_SPEC_H
#define RJ_SPEC_H

#include <math.h>
#include <stdint.h>

struct rj_est_ops;

/* Whose numerics a plan reproduces (rfjit.h, rfjit_attn_desc.compat): rfjit's own, or another
 * implementation's eps shifts, stabiliser and normaliser guard (est/ref_compat.c). */
typedef enum rj_compat {
    RJ_COMPAT_NONE = 0,
    RJ_COMPAT_PERFORMER_PYTORCH = 1,
    RJ_COMPAT_GOOGLE_PERFORMER = 2,
    RJ_COMPAT_FAST_TRANSFORMERS = 3,
    RJ_COMPAT_COUNT = 4
} rj_compat;

/* The descriptor's name of a mode, "none" .. "fast-transformers"; NULL out of range. */
static inline const char *rj_compat_name(int c)
{
    static const char *const names[RJ_COMPAT_COUNT] = {"none", "performer-pytorch",
                                                       "google-performer", "fast-transformers"};
    return c >= 0 && c < RJ_COMPAT_COUNT ? names[c] : NULL;
}

/* Which EVA (rfjit.h, rfjit_attn_desc.eva_variant): rfjit's principled estimator (est/eva.c)
 * or the official code's eval-mode computation with identity learned maps
 * (est/eva_official.c). */
typedef enum rj_eva_variant {
    RJ_EVA_PRINCIPLED = 0,
    RJ_EVA_OFFICIAL = 1,
    RJ_EVA_VARIANT_COUNT = 2
} rj_eva_variant;

/* The descriptor's name of a variant, "principled" or "official"; NULL out of range. */
static inline const char *rj_eva_variant_name(int v)
{
    static const char *const names[RJ_EVA_VARIANT_COUNT] = {"principled", "official"};
    return v >= 0 && v < RJ_EVA_VARIANT_COUNT ? names[v] : NULL;
}

/* Largest head dims the reference accepts (stack scratch in feature maps is sized by it). */
#define RJ_MAX_D 1024

typedef struct rj_spec {
    const struct rj_est_ops *est;
    int32_t d, dv, m;    /* head dim, value dim, random projections (m rows of W) */
    int32_t causal;      /* 0 or 1 */
    int32_t proj;        /* RFJIT_PROJ_* */
    int32_t eva_window;  /* eva: local block size (0: no local window) */
    int32_t eva_chunks;  /* eva: number of chunks C >= 1 */
    int32_t hrf_n;       /* hybrid: sign features n >= 1 */
    int32_t hrf_base;    /* hybrid: RFJIT_HYBRID_BASE_* */
    double scale;        /* softmax scale: logits are scale * q.k (resolved, > 0; a spec built
                            by hand may leave it 0, which means the default) */
    int32_t compat;      /* rj_compat: whose numerics (RJ_COMPAT_NONE: rfjit's own) */
    int32_t eva_variant; /* eva: rj_eva_variant (RJ_EVA_PRINCIPLED for every other estimator) */
    int32_t xform;       /* RFJIT_XFORM_* of the executes (runtime/xform.c); no kernel sees it */
    int32_t sparse_block; /* blocksparse: tokens per query and key block, >= 1 */
    int32_t sparse_exact; /* blocksparse: exact key blocks per query block, >= 0 */
    int32_t compute;      /* rfjit_dtype of the kernel's products: RFJIT_F32 or RFJIT_BF16 */
    int32_t amx;          /* bf16 products may use AMX tiles: the context's CPU has AMX-BF16 */
} rj_spec;

/* The softmax scale a descriptor's 0 stands for. */
static inline double rj_default_scale(int d)
{
    return 1.0 / sqrt((double)d);
}

/* What attention multiplies q and k by, sqrt(scale), so that x.y = scale q.k and every
 * estimator sees x and y alone. At the default (scale 0 or 1/sqrt(d)) it is d^{-1/4} computed
 * as before the scale was a parameter, so default results do not move by a rounding. */
static inline double rj_input_scale(int d, double scale)
{
    if (scale == 0 || scale == rj_default_scale(d))
        return 1.0 / sqrt(sqrt((double)d));
    return sqrt(scale);
}

static inline double rj_spec_input_scale(const rj_spec *s)
{
    return rj_input_scale(s->d, s->scale);
}

#endif
