/* SPDX-License-Identifier: MIT */
/*
 * This file declares the executors behind rj_plan_execute_call (runtime/exec.c): the JIT's,
 * EVA's and the reference's, which take a call rj_call_make has checked. Each computes the
 * rows [q0, q0 + lq) of every sequence with lq > 0 and lk > 0; exec.c writes the others.
 */
#ifndef RJ_EXEC_H
#define RJ_EXEC_H

#include "runtime/call.h"

/* JIT execution (runtime/exec_jit.c). */
rfjit_status rj_exec_jit(const rfjit_plan *p, const rj_call *c, rj_diag *dg);
/* Free the plan's scratch pool (plan destruction). */
void rj_exec_pool_free(rfjit_plan *p);
/* blocksparse's float32 path (runtime/exec_blocksparse.c); prepare sets it up at plan
 * creation. */
rfjit_status rj_exec_blocksparse_prepare(rfjit_plan *p, rj_diag *dg);
rfjit_status rj_exec_blocksparse(const rfjit_plan *p, const rj_call *c, rj_diag *dg);
/* EVA on the softmax kernel (runtime/exec_eva.c). */
rfjit_status rj_exec_eva(const rfjit_plan *p, const rj_call *c, rj_diag *dg);
/* The official eva variant's shape rules (self-attention, no mask) over every sequence of a
 * call, checked before any backend writes an output row. */
rfjit_status rj_exec_eva_check_official(const rj_spec *s, const rj_call *call, rj_diag *dg);
/* Lower params (double, estimator layout) into the kernel's float layout [pq | pk]. */
rfjit_status rj_lower_params(const rfjit_plan *p, const double *params, float *kpar,
                             rj_diag *dg);

/* The reference executor (runtime/exec_ref.c): every (sequence, head), or with redo only
 * those whose computed rows of out hold a non-finite value. */
rfjit_status rj_exec_ref(const rfjit_plan *p, const rj_call *c, bool redo, rj_diag *dg);
/* Whether the computed rows of (sequence b, head h) of out are all finite. */
bool rj_call_out_finite(const rj_call *c, int64_t b, int64_t h);

/* The reference holds one (batch, head) in double: checked before anything is read or
 * written, so an impossible length fails at once. */
rfjit_status rj_exec_ref_fits(const rj_spec *s, int64_t lq, int64_t lk, rj_diag *dg);

#endif
