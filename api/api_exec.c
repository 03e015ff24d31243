/* SPDX-License-Identifier: MIT */
/* This file is the public execute call (include/rfjit.h, Execution) and the tensor helper. */
#include "api/facade.h"
#include "runtime/call.h"
#include "runtime/tensor.h"

rfjit_status rfjit_plan_execute(const rfjit_plan *p, const rfjit_tensor *q,
                                const rfjit_tensor *k, const rfjit_tensor *v,
                                rfjit_tensor *out)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_execute: plan is NULL");
    rj_diag dg = {{0}};
    return rj_ctx_fail(p->ctx, rj_plan_execute(p, q, k, v, out, &dg), &dg);
}

rfjit_tensor rfjit_tensor_contiguous(float *data, int64_t b, int64_t h, int64_t l, int64_t dim)
{
    return rj_tensor_contiguous(data, b, h, l, dim);
}

rfjit_status rfjit_plan_execute_args(const rfjit_plan *p, const rfjit_attn_args *args)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_execute_args: plan is NULL");
    rj_diag dg = {{0}};
    rj_call c;
    rfjit_status s = rj_call_make(p, args, &c, &dg);
    if (s == RFJIT_OK)
        s = rj_plan_execute_call(p, &c, &dg);
    return rj_ctx_fail(p->ctx, s, &dg);
}

rfjit_tensor_ex rfjit_tensor_ex_of(const rfjit_tensor *t)
{
    return rj_tensor_ex_of(t);
}
