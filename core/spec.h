/* SPDX-License-Identifier: MIT */
/*
 * This file defines rj_spec, the canonical description of one operator: which estimator,
 * its sizes and its structural options. Everything random (W, seeds) and every length stays
 * outside it, so one spec serves any seed and sequence length.
 */
#ifndef RJ_SPEC_H
#define RJ_SPEC_H

#include <stdint.h>

struct rj_est_ops;

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
} rj_spec;

#endif
