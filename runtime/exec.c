/* SPDX-License-Identifier: MIT */
/*
 * This file is the one way into execution: check every view against the plan, dispatch to
 * the plan's executor (JIT, EVA or the reference), and redo on the reference the slices a
 * float kernel could not keep finite.
 */
#include "runtime/exec.h"
#include "runtime/tensor.h"

static rfjit_status check_views(const rfjit_plan *p, const rfjit_tensor *q,
                                const rfjit_tensor *k, const rfjit_tensor *v,
                                const rfjit_tensor *out, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    RJ_TRY(rj_tensor_check(q, "q", false, dg));
    RJ_TRY(rj_tensor_check(k, "k", false, dg));
    RJ_TRY(rj_tensor_check(v, "v", false, dg));
    RJ_TRY(rj_tensor_check(out, "out", true, dg));
    RJ_FAIL_IF(dg, q->shape[3] != s->d || k->shape[3] != s->d, RFJIT_E_SHAPE,
               "q and k must have last dimension d = %d (got %lld and %lld)", s->d,
               (long long)q->shape[3], (long long)k->shape[3]);
    RJ_FAIL_IF(dg, v->shape[3] != s->dv || out->shape[3] != s->dv, RFJIT_E_SHAPE,
               "v and out must have last dimension dv = %d (got %lld and %lld)", s->dv,
               (long long)v->shape[3], (long long)out->shape[3]);
    const rfjit_tensor *all[4] = {q, k, v, out};
    for (int i = 1; i < 4; i++)
        RJ_FAIL_IF(dg, all[i]->shape[0] != q->shape[0] || all[i]->shape[1] != q->shape[1],
                   RFJIT_E_SHAPE, "batch and heads differ: q has (%lld, %lld), %s has (%lld, %lld)",
                   (long long)q->shape[0], (long long)q->shape[1],
                   i == 1 ? "k" : i == 2 ? "v" : "out", (long long)all[i]->shape[0],
                   (long long)all[i]->shape[1]);
    RJ_FAIL_IF(dg, v->shape[2] != k->shape[2], RFJIT_E_SHAPE,
               "k and v lengths differ (%lld vs %lld)", (long long)k->shape[2],
               (long long)v->shape[2]);
    RJ_FAIL_IF(dg, out->shape[2] != q->shape[2], RFJIT_E_SHAPE,
               "out length %lld differs from q length %lld", (long long)out->shape[2],
               (long long)q->shape[2]);
    RJ_FAIL_IF(dg, s->causal && q->shape[2] != k->shape[2], RFJIT_E_SHAPE,
               "causal attention needs as many queries as keys (%lld vs %lld)",
               (long long)q->shape[2], (long long)k->shape[2]);
    for (int i = 0; i < 3; i++)
        RJ_FAIL_IF(dg, rj_tensor_overlap(out, all[i]), RFJIT_E_ALIAS, "out overlaps %s",
                   i == 0 ? "q" : i == 1 ? "k" : "v");
    if (!p->jit)
        RJ_TRY(rj_exec_ref_fits(s, q->shape[2], k->shape[2], dg));
    RJ_TRY(rj_tensor_check_finite(q, "q", dg));
    RJ_TRY(rj_tensor_check_finite(k, "k", dg));
    RJ_TRY(rj_tensor_check_finite(v, "v", dg));
    return RFJIT_OK;
}

rfjit_status rj_plan_execute(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    rfjit_status s = check_views(p, q, k, v, out, dg);
    if (s == RFJIT_OK)
        s = !p->jit                              ? rj_exec_ref(p, q, k, v, out, false, dg)
            : p->spec.est->tmpl == RJ_TMPL_EVA ? rj_exec_eva(p, q, k, v, out, dg)
                                               : rj_exec_jit(p, q, k, v, out, dg);
    /* Finite inputs promise a finite output (rfjit.h). A float kernel can still meet a row
     * whose denominator falls below FLT_MIN (features of widely spread logits: the linear
     * template then writes NaN rather than a subnormal's imprecise or infinite reciprocal);
     * such slices are recomputed by the double reference, which has the range. */
    if (s == RFJIT_OK && !rj_tensor_finite(out)) { /* one scan when all is well */
        if (p->jit)
            s = rj_exec_ref(p, q, k, v, out, true, dg);
        if (s == RFJIT_OK && (!p->jit || !rj_tensor_finite(out)))
            s = rj_fail(dg, RFJIT_E_RANGE, "the output is outside float range (values near "
                                           "FLT_MAX?)");
    }
    return s;
}
