/* SPDX-License-Identifier: MIT */
/*
 * This file is the one way into execution: check the call against the plan (runtime/call.c),
 * transform the rows if the plan asks for it (runtime/xform.c), write the rows no kernel
 * computes, dispatch to the plan's executor (JIT, EVA, the float32 compat or blocksparse
 * paths or the reference), and redo on the reference the slices a float path could not keep finite.
 */
#include "runtime/exec.h"
#include "runtime/exec_compat.h"
#include "runtime/tensor.h"
#include "runtime/xform.h"

rfjit_status rj_plan_execute(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    const rfjit_tensor_ex tq = rj_tensor_ex_of(q), tk = rj_tensor_ex_of(k), tv = rj_tensor_ex_of(v),
                          to = rj_tensor_ex_of(out);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = q ? &tq : NULL;
    a.k = k ? &tk : NULL;
    a.v = v ? &tv : NULL;
    a.out = out ? &to : NULL;
    rj_call c;
    RJ_TRY(rj_call_make(p, &a, &c, dg));
    return rj_plan_execute_call(p, &c, dg);
}

/* Rows of out that no kernel computes: padding past a query length (unless the caller keeps
 * it), and every row of a sequence without keys, whose queries see nothing (rfjit.h). */
static void zero_rows(const rj_call *c)
{
    for (int64_t b = 0; b < c->B; b++) {
        const rj_seq s = rj_call_seq(c, b);
        for (int64_t h = 0; h < c->H; h++) {
            if (!c->untouched && s.rows > s.lq)
                rj_view_zero_rows(&c->out, s.qb, h, s.q0 + s.lq, s.rows - s.lq);
            if (s.lk == 0)
                rj_view_zero_rows(&c->out, s.qb, h, s.q0, s.lq);
        }
    }
}

bool rj_call_out_finite(const rj_call *c, int64_t b, int64_t h)
{
    const rj_seq s = rj_call_seq(c, b);
    return rj_view_rows_finite(&c->out, s.qb, h, s.q0, s.lq);
}

static bool out_finite(const rj_call *c)
{
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++)
            if (!rj_call_out_finite(c, b, h))
                return false;
    return true;
}

static rfjit_status execute(const rfjit_plan *p, const rj_call *c, rj_diag *dg)
{
    if (p->spec.eva_variant == RJ_EVA_OFFICIAL)
        RJ_TRY(rj_exec_eva_check_official(&p->spec, c, dg));
    zero_rows(c);
    rfjit_status s = p->compat_fast                     ? rj_exec_compat(p, c, dg)
                     : p->bs_fast                       ? rj_exec_blocksparse(p, c, dg)
                     : !p->jit                          ? rj_exec_ref(p, c, false, dg)
                     : p->spec.est->tmpl == RJ_TMPL_EVA ? rj_exec_eva(p, c, dg)
                                                        : rj_exec_jit(p, c, dg);
    /* Finite inputs promise a finite output (rfjit.h). A float kernel can still meet a row
     * whose denominator falls below FLT_MIN (features of widely spread logits: the linear
     * template then writes NaN rather than a subnormal's imprecise or infinite reciprocal);
     * such slices are recomputed by the double reference, which has the range. */
    if (s == RFJIT_OK && !out_finite(c)) { /* one scan when all is well */
        const bool float_path = p->jit || p->compat_fast || p->bs_fast;
        if (float_path)
            s = rj_exec_ref(p, c, true, dg);
        if (s == RFJIT_OK && (!float_path || !out_finite(c)))
            s = rj_fail(dg, RFJIT_E_RANGE, "the output is outside float range (values near "
                                           "FLT_MAX?)");
    }
    return s;
}

rfjit_status rj_plan_execute_call(const rfjit_plan *p, const rj_call *c, rj_diag *dg)
{
    if (!rj_xform_on(p))
        return execute(p, c, dg);
    rj_xform x;
    RJ_TRY(rj_xform_make(p, c, &x, dg));
    const rfjit_status s = execute(p, &x.call, dg);
    rj_xform_free(&x);
    return s;
}
