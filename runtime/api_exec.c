/* SPDX-License-Identifier: MIT */
/*
 * This file implements rfjit_plan_execute on the reference backend: validate every view,
 * then per (batch, head) gather scaled rows into double buffers, fit parameters if the plan
 * fits per call, run the estimator's reference attention and scatter the output.
 */
#include "ctx.h"
#include "plan_util.h"
#include "tensor.h"

typedef struct exec_bufs {
    double *x, *y, *v, *o;
    rj_fit_scratch fs;
} exec_bufs;

static void bufs_free(exec_bufs *b)
{
    rj_free(b->x);
    rj_free(b->y);
    rj_free(b->v);
    rj_free(b->o);
    rj_fit_scratch_free(&b->fs);
}

/* The reference holds one (batch, head) in double: (lq + lk) (d + dv) doubles. Checked
 * before anything is read or written, so an impossible length fails at once. */
static rfjit_status reference_fits(const rj_spec *s, int64_t lq, int64_t lk, rj_diag *dg)
{
    const double need = 8.0 * (double)(lq + lk) * (double)(s->d + s->dv);
    RJ_FAIL_IF(dg, need >= 0x1p63 || !rj_fits_memory((size_t)need), RFJIT_E_TOO_LARGE,
               "the reference needs %.3g GB for one (batch, head) of %lld x %lld, more than this "
               "machine's memory",
               need * 1e-9, (long long)lq, (long long)lk);
    return RFJIT_OK;
}

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
        RJ_TRY(reference_fits(s, q->shape[2], k->shape[2], dg));
    RJ_TRY(rj_tensor_check_finite(q, "q", dg));
    RJ_TRY(rj_tensor_check_finite(k, "k", dg));
    RJ_TRY(rj_tensor_check_finite(v, "v", dg));
    return RFJIT_OK;
}

/* The reference over every (batch, head) slice, or with redo only over the slices of out that
 * hold a non-finite value. */
static rfjit_status run(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                        const rfjit_tensor *v, rfjit_tensor *out, bool redo, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = q->shape[2], lk = k->shape[2];
    RJ_TRY(reference_fits(s, lq, lk, dg));
    exec_bufs b = {0};
    rfjit_status st = rj_fit_scratch_init(&b.fs, p, dg);
    if (st != RFJIT_OK)
        return st;
    b.x = rj_alloc_array((size_t)lq * (size_t)s->d, sizeof(double));
    b.y = rj_alloc_array((size_t)lk * (size_t)s->d, sizeof(double));
    b.v = rj_alloc_array((size_t)lk * (size_t)s->dv, sizeof(double));
    b.o = rj_alloc_array((size_t)lq * (size_t)s->dv, sizeof(double));
    if (!b.x || !b.y || !b.v || !b.o) {
        bufs_free(&b);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for one (batch, head) of %lld x %lld",
                       (long long)lq, (long long)lk);
    }
    const double scale = rj_plan_input_scale(s->d);
    for (int64_t bi = 0; bi < q->shape[0] && st == RFJIT_OK; bi++)
        for (int64_t hi = 0; hi < q->shape[1] && st == RFJIT_OK; hi++) {
            if (redo && rj_tensor_slice_finite(out, bi, hi))
                continue;
            rj_tensor_gather(q, bi, hi, scale, b.x);
            rj_tensor_gather(k, bi, hi, scale, b.y);
            rj_tensor_gather(v, bi, hi, 1.0, b.v);
            const double *params = NULL;
            st = rj_fit_slice(p, &b.fs, b.x, lq, b.y, lk, &params, dg);
            if (st == RFJIT_OK)
                st = rj_est_ref_attend(s, params, b.x, lq, b.y, b.v, lk, b.o, dg);
            if (st == RFJIT_OK)
                rj_tensor_scatter(out, bi, hi, b.o);
        }
    bufs_free(&b);
    return st;
}

rfjit_status rj_plan_execute(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    rfjit_status s = check_views(p, q, k, v, out, dg);
    if (s == RFJIT_OK)
        s = !p->jit                              ? run(p, q, k, v, out, false, dg)
            : p->spec.est->tmpl == RJ_TMPL_EVA ? rj_exec_eva(p, q, k, v, out, dg)
                                               : rj_exec_jit(p, q, k, v, out, dg);
    /* Finite inputs promise a finite output (rfjit.h). A float kernel can still meet a row
     * whose denominator falls below FLT_MIN (features of widely spread logits: the linear
     * template then writes NaN rather than a subnormal's imprecise or infinite reciprocal);
     * such slices are recomputed by the double reference, which has the range. */
    if (s == RFJIT_OK && !rj_tensor_finite(out)) { /* one scan when all is well */
        if (p->jit)
            s = run(p, q, k, v, out, true, dg);
        if (s == RFJIT_OK && (!p->jit || !rj_tensor_finite(out)))
            s = rj_fail(dg, RFJIT_E_RANGE, "the output is outside float range (values near "
                                           "FLT_MAX?)");
    }
    return s;
}

rfjit_status rfjit_plan_execute(const rfjit_plan *p, const rfjit_tensor *q,
                                const rfjit_tensor *k, const rfjit_tensor *v,
                                rfjit_tensor *out)
{
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_plan_execute: plan is NULL");
    rj_diag dg = {{0}};
    return rj_ctx_fail(p->ctx, rj_plan_execute(p, q, k, v, out, &dg), &dg);
}
