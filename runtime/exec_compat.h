/* SPDX-License-Identifier: MIT */
/*
 * This file declares the float32 path of the Performer compatibility modes
 * (runtime/exec_compat.c) and the pieces of it that the decode slots of such plans share
 * (runtime/decode_compat.c). The state layout is runtime/compat_math.h's.
 */
#ifndef RJ_EXEC_COMPAT_H
#define RJ_EXEC_COMPAT_H

#include "runtime/call.h"

/* Make plan p (positive, a Performer mode, parameters fixed) run on this path: W^T as
 * floats, and p->compat_fast set. */
rfjit_status rj_compat_prepare(rfjit_plan *p, rj_diag *dg);
/* Every (sequence, head) of a checked call, on the context's pool. */
rfjit_status rj_exec_compat(const rfjit_plan *p, const rj_call *c, rj_diag *dg);

/* Tokens per causal block: their keys' products with the block's queries (O(block) per token)
 * buy one pass over the state per block rather than per token. */
#define RJ_COMPAT_BLOCK 16

/* n tokens of a causal sequence after the state's keys, each query seeing the keys before
 * it and its own: o (n x rj_cm_width(dv)) receives the queries' reads of the state with the
 * block's keys up to each one's own, then S takes the keys (V does not: the caller adds
 * each row's value to V before it finishes that row). */
void rj_compat_causal_block(const rj_spec *s, float *S, const float *e, const float *vrow,
                            const float *qf, int64_t n, float *o);
/* Row `row` of view t (its shape[3] elements, any dtype) as floats times scale: n of them. */
void rj_compat_get_row(const rj_view *t, const char *row, double scale, int64_t n, float *out);
/* A row of t written from doubles (rounded once to t's dtype). */
void rj_compat_put_row(const rj_view *t, char *row, const double *in);
/* |x|^2 / 2 of a scaled row of d floats. */
float rj_compat_diag(const float *x, int d);
/* The query features q' = e^{u - diag - max_r u} + eps of n scaled rows x (d floats each)
 * into qf (n x m); umax receives each row's max_r u (n floats). */
void rj_compat_query_features(const rfjit_plan *p, const float *x, int64_t n, float *qf,
                              float *umax);
/* An empty state: S (m x rj_cm_width(dv)) with its constant column, V (dv) zero. */
void rj_compat_state_init(float *S, float *V, int m, int dv);
/* The state takes n keys: features e (n x m, shifted, without eps) and [v | 1 | 0] rows
 * vrow (n x rj_cm_width(dv), zero-padded). */
void rj_compat_take_keys(const rj_spec *s, float *S, float *V, const float *e, const float *vrow,
                         int64_t n);

#endif
