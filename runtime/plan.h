/* SPDX-License-Identifier: MIT */
/*
 * This file is the runtime's internal plan API: what the public plan calls do, with the
 * message of a failure in the caller's rj_diag. The facade (api/) wraps each in a public
 * call; the tuner calls them directly, never the public ones.
 */
#ifndef RJ_PLAN_H
#define RJ_PLAN_H

#include "runtime/ctx.h"

/* Validate an attention descriptor (already widened to this build's size by rj_desc_read)
 * and resolve it into *s: everything rj_plan_create checks before it allocates, so the
 * descriptor fuzz target and the wisdom reader (tuner/tune_record.c) call it directly. */
rfjit_status rj_plan_check(const rfjit_attn_desc *d, rj_spec *s, rj_diag *dg);

rfjit_status rj_plan_create(rfjit_ctx *ctx, const rfjit_attn_desc *desc, rfjit_plan **out,
                            rj_diag *dg);
/* Free a plan and everything it owns (NULL: nothing). */
void rj_plan_free(rfjit_plan *p);
rfjit_status rj_plan_execute(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
/* The JIT kernel of a plan for q, k, v of dtype dt_in and out of dt_out (rfjit_dtype),
 * compiled on first use (once per plan and pair, whichever threads ask at once); every pair
 * shares kp's sizes, scratch and parameter layout. Errors: RFJIT_E_DTYPE for an unknown
 * dtype, RFJIT_E_INTERNAL for a plan without JIT kernel, and compile failures
 * (RFJIT_E_JIT, ...), each with a message. */
rfjit_status rj_plan_kernel_for(const rfjit_plan *p, int dt_in, int dt_out, rj_kernel_fn *fn,
                                rj_diag *dg);
/* The kernel for a call of at most max_lq queries per sequence: rj_plan_kernel_for's, except
 * that a softmax kernel (exact attention's, eva's) with at most one vector of them (decode
 * steps, short chunks) gets the variant with one-vector query tiles (T = vw), compiled on
 * first use, where the plan's tile would compute T - vw empty query rows; it needs less
 * scratch than the plan's kernel and takes the same parameters. Errors as
 * rj_plan_kernel_for. */
rfjit_status rj_plan_kernel_for_rows(const rfjit_plan *p, int64_t max_lq, int dt_in, int dt_out,
                                     rj_kernel_fn *fn, rj_diag *dg);
rfjit_status rj_plan_features(const rfjit_plan *p, const rfjit_tensor *x, const rfjit_tensor *y,
                              rfjit_tensor *phi_x, rfjit_tensor *phi_y, rj_diag *dg);
rfjit_status rj_plan_kernel(const rfjit_plan *p, const rfjit_tensor *x, const rfjit_tensor *y,
                            int kind, rfjit_tensor *out, rj_diag *dg);

#endif
