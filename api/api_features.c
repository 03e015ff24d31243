/* SPDX-License-Identifier: MIT */
/* This file is the public kernel-estimation calls (include/rfjit.h, Kernel estimates):
 * feature maps and kernel matrices, over runtime/features.c. */
#include "api/facade.h"
#include "runtime/plan.h"

rfjit_status rfjit_plan_features(const rfjit_plan *p, const rfjit_tensor *x,
                                 const rfjit_tensor *y, rfjit_tensor *phi_x,
                                 rfjit_tensor *phi_y)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_features: plan is NULL");
    rj_diag dg = {{0}};
    return rj_ctx_fail(p->ctx, rj_plan_features(p, x, y, phi_x, phi_y, &dg), &dg);
}

rfjit_status rfjit_plan_kernel(const rfjit_plan *p, const rfjit_tensor *x,
                               const rfjit_tensor *y, int kind, rfjit_tensor *out)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_kernel: plan is NULL");
    rj_diag dg = {{0}};
    return rj_ctx_fail(p->ctx, rj_plan_kernel(p, x, y, kind, out, &dg), &dg);
}
