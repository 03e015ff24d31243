/* SPDX-License-Identifier: MIT */
/*
 * This file declares the executors behind rj_plan_execute (runtime/exec.c): the JIT's, EVA's
 * and the reference's, which take a plan whose views exec.c has checked.
 */
#ifndef RJ_EXEC_H
#define RJ_EXEC_H

#include "runtime/plan.h"

/* JIT execution (runtime/exec_jit.c). */
rfjit_status rj_exec_jit(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
/* Free the plan's scratch pool (plan destruction). */
void rj_exec_pool_free(rfjit_plan *p);
/* EVA on the softmax kernel (runtime/exec_eva.c). */
rfjit_status rj_exec_eva(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
/* Lower params (double, estimator layout) into the kernel's float layout [pq | pk]. */
rfjit_status rj_lower_params(const rfjit_plan *p, const double *params, float *kpar,
                             rj_diag *dg);

/* The reference executor (runtime/exec_ref.c): every (batch, head) slice, or with redo only
 * the slices of out that hold a non-finite value. */
rfjit_status rj_exec_ref(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, bool redo, rj_diag *dg);

/* The reference holds one (batch, head) in double: checked before anything is read or
 * written, so an impossible length fails at once. */
rfjit_status rj_exec_ref_fits(const rj_spec *s, int64_t lq, int64_t lk, rj_diag *dg);

#endif
