/* SPDX-License-Identifier: MIT */
/*
 * This file declares the float32 loops of the Performer compatibility modes' fast path
 * (runtime/exec_compat.c, runtime/decode_compat.c): the feature map of est/ref_compat.c on
 * float rows, and a state that both the executor and the decode slots keep.
 *
 * The state of one (slice or slot, key/value head) is m rows of w = rj_cm_width(dv) floats,
 * row r = [A_r | a_r | 1 | 0 ...] with A = sum_j e_j v_j^T and a = sum_j e_j over the keys taken,
 * e_j,r = e^{u_j,r - diag_j - c} without the feature epsilon (c the keys' shift), and beside it the
 * value sum V = sum_j v_j and the key count n. With eps the mode's feature epsilon the
 * features are e_j + eps, so S = A + eps 1 V^T and z = a + eps n 1: eps enters once per
 * read, not once per key and state element. The constant column makes one pass over the
 * rows give a query's q'.A, q'.a and sum_r q'_r together.
 */
#ifndef RJ_COMPAT_MATH_H
#define RJ_COMPAT_MATH_H

#include "core/base.h"
#include "core/spec.h"

/* The state's row length: dv + 2 rounded up to whole vectors of 8 floats. */
static inline int rj_cm_width(int dv)
{
    return (dv + 2 + 7) / 8 * 8;
}

/* Whether the float path runs the compat mode of spec s (the Performer feature map; Google's
 * trig map and fast-transformers stay on the double reference). */
bool rj_cm_applies(const rj_spec *s);
/* The feature epsilon of s's mode (1e-4 performer-pytorch, 1e-6 Google). */
float rj_cm_eps(const rj_spec *s);

/* u = W x for n rows x (d floats each, stride d) with wt = W^T (d x m): u rows of m floats;
 * umax[i] (if not NULL) = max_r u_i,r. */
void rj_cm_project(const float *wt, int d, int m, const float *x, int64_t n, float *u, float *umax);
/* u_r = e^{u_r - shift} + add for r < m. */
void rj_cm_exp(float *u, int m, float shift, float add);
/* Rows [A | a] of the state (m rows of w) times f; the constant column dv + 1 is kept. */
void rj_cm_rescale(float *S, int m, int w, int dv, float f);
/* The state takes n keys: S_r += e_j,r [v_j | 1 | 0] with e rows of m floats and vrow rows
 * of w floats holding [v_j | 1 | 0 ...]. */
void rj_cm_absorb(float *S, int m, int w, const float *e, const float *vrow, int64_t n);
/* o_i = sum_r q_i,r S_r (w floats) for n query feature rows q (m floats each). */
void rj_cm_read(const float *S, int m, int w, const float *q, int64_t n, float *o);
/* rj_cm_absorb of one key and then rj_cm_read of one query, in one pass over the state. */
void rj_cm_step(float *S, int m, int w, const float *e, const float *vrow, const float *q,
                float *o);
/* Causal reads within a block of n tokens: o_i += sum_{j <= i} (q_i . e_j) vrow_j, for
 * query feature rows q and key feature rows e (m floats each), vrow and o rows of w. */
void rj_cm_intra(const float *q, const float *e, const float *vrow, int m, int w, int64_t n,
                 float *o);
/* One output row from its read o (w floats): num = o[:dv] + eps qsum V, den = o[dv] + eps n
 * qsum with qsum = o[dv + 1], then the mode's guard (est/ref_compat.c). n = 0: zeros. */
void rj_cm_finish(const rj_spec *s, const float *o, const float *V, int64_t n, double *out);

#endif
