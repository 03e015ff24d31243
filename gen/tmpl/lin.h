/* SPDX-License-Identifier: MIT */
/*
 * This file shares the linear template's feature emitters (linear.c) with the feature-map
 * kernel (features.c), so that the features the estimate API returns are computed by the
 * very code attention runs, not by a second copy that could drift from it.
 */
#ifndef RJ_LIN_H
#define RJ_LIN_H

#include "gen/tmpl/tmpl.h"

typedef struct rj_lin {
    rj_kfn *f;
    rj_ir *ir;
    const rj_kplan *kp;
    rj_v ws, st;
    rj_v S, z, za, c; /* carried state (attention only) */
    rj_v V, V_s;      /* this tile's values (T x dvp) and their row stride (i64) */
    rj_v vis;         /* attention: the key tile's visibility (rj_tmpl_key_vis); NULL: the
                       * keys are the tile's first n tokens */
    rj_v wb;          /* bf16 attention (kplan.h ws_wb): the role's W in bfloat16 rows, for
                       * rj_lin_logfeatures; NULL: float */
} rj_lin;

rj_lin rj_lin_init(rj_kfn *f);
/* Phase 1 for the T tokens of xT (d x T, role parameters par): projections in ws_u and the
 * per-token log-scale h in ws_h. */
void rj_lin_logfeatures(rj_lin *L, rj_v par, rj_v xT);
/* Phase 2: features into F (Mp x T). Key side when shift (one value) or shifts (T floats) is
 * given: weights e^{. - c}, lanes >= n zeroed; query side otherwise: shifted by their own h. */
void rj_lin_features(rj_lin *L, rj_v F, rj_v shift, rj_v shifts, rj_v n);

#endif
