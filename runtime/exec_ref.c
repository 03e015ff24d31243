/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference executor: per (batch, head) it gathers scaled rows into double
 * buffers, fits parameters if the plan fits per call, runs the estimator's reference
 * attention (est/) and scatters the output.
 */
#include "runtime/exec.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"

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
rfjit_status rj_exec_ref_fits(const rj_spec *s, int64_t lq, int64_t lk, rj_diag *dg)
{
    const double need = 8.0 * (double)(lq + lk) * (double)(s->d + s->dv);
    RJ_FAIL_IF(dg, need >= 0x1p63 || !rj_fits_memory((size_t)need), RFJIT_E_TOO_LARGE,
               "the reference needs %.3g GB for one (batch, head) of %lld x %lld, more than this "
               "machine's memory",
               need * 1e-9, (long long)lq, (long long)lk);
    return RFJIT_OK;
}

rfjit_status rj_exec_ref(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, bool redo, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = q->shape[2], lk = k->shape[2];
    RJ_TRY(rj_exec_ref_fits(s, lq, lk, dg));
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
    const double scale = rj_plan_input_scale(s);
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
