/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference executor: per (sequence, head) it gathers the scaled queries
 * and the visible keys into double buffers, fits parameters if the plan fits per call, runs
 * the estimator's reference attention (est/) and scatters the output.
 *
 * Masked keys are removed before the estimator sees them (rj_call_gather_keys), so each
 * query's visibility is a prefix of the compacted keys: nvis[i] = the number of visible keys
 * at positions <= i + qoff (causal, qoff = lk - lq), or all of them. The count is passed
 * only when it is not the estimator's own default (a sequence with a masked key or a causal
 * offset), so that a plain sequence runs exactly as the estimator defines it without one.
 */
#include "est/ref.h"
#include "runtime/exec.h"
#include "runtime/plan_fit.h"

typedef struct exec_bufs {
    double *x, *y, *v, *o, *ylog;
    int64_t *pos, *nvis;
    rj_fit_scratch fs;
} exec_bufs;

static void bufs_free(exec_bufs *b)
{
    rj_free(b->pos);
    rj_free(b->nvis);
    rj_free(b->x);
    rj_free(b->y);
    rj_free(b->v);
    rj_free(b->o);
    rj_free(b->ylog);
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

/* A transformed call's exact key log-weights u.y_j of sequence bi at head h (query
 * centring, runtime/xform.h), or NULL without them. */
static const double *key_logw(const rj_call *c, int64_t bi, int64_t h, int64_t d, const double *y,
                              int64_t nk, double *ylog)
{
    if (!c->xu)
        return NULL;
    const double *u = c->xu + (bi * c->Hkv + rj_call_kv_head(c, h)) * d;
    for (int64_t j = 0; j < nk; j++) {
        double w = 0;
        for (int64_t i = 0; i < d; i++)
            w += u[i] * y[j * d + i];
        ylog[j] = w;
    }
    return ylog;
}

static rfjit_status one_slice(const rfjit_plan *p, const rj_call *c, const rj_seq *sq, int64_t bi,
                              int64_t h, exec_bufs *b, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const rj_head_rows rows = {b->x, b->y, b->v, b->pos, b->nvis};
    const int64_t *nvis = NULL;
    const int64_t nk = rj_call_gather_head(p, c, sq, h, &rows, &nvis);
    if (nk == 0)
        return RFJIT_OK;
    const double *params = NULL;
    RJ_TRY(rj_fit_slice(p, &b->fs, b->x, sq->lq, b->y, nk, &params, dg));
    const double *ylog = key_logw(c, bi, h, s->d, b->y, nk, b->ylog);
    if (ylog)
        RJ_TRY(rj_ref_linear_keyw(s, params, b->x, sq->lq, b->y, ylog, b->v, nk, nvis, b->o, dg));
    else
        RJ_TRY(rj_est_ref_attend(s, params, b->x, sq->lq, b->y, b->v, nk, nvis, b->o, dg));
    rj_view_scatter(&c->out, sq->qb, h, sq->q0, sq->lq, b->o);
    return RFJIT_OK;
}

rfjit_status rj_exec_ref(const rfjit_plan *p, const rj_call *c, bool redo, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = c->max_lq, lk = c->max_lk;
    RJ_TRY(rj_exec_ref_fits(s, lq, lk, dg));
    exec_bufs b = {0};
    rfjit_status st = rj_fit_scratch_init(&b.fs, p, dg);
    if (st != RFJIT_OK)
        return st;
    b.x = rj_alloc_array((size_t)lq * (size_t)s->d + 1, sizeof(double));
    b.y = rj_alloc_array((size_t)lk * (size_t)s->d + 1, sizeof(double));
    b.v = rj_alloc_array((size_t)lk * (size_t)s->dv + 1, sizeof(double));
    b.o = rj_alloc_array((size_t)lq * (size_t)s->dv + 1, sizeof(double));
    b.pos = rj_alloc_array((size_t)lk + 1, sizeof(int64_t));
    b.nvis = rj_alloc_array((size_t)lq + 1, sizeof(int64_t));
    b.ylog = rj_alloc_array((size_t)lk + 1, sizeof(double));
    if (!b.x || !b.y || !b.v || !b.o || !b.pos || !b.nvis || !b.ylog) {
        bufs_free(&b);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for one (batch, head) of %lld x %lld",
                       (long long)lq, (long long)lk);
    }
    for (int64_t bi = 0; bi < c->B && st == RFJIT_OK; bi++) {
        const rj_seq sq = rj_call_seq(c, bi);
        if (sq.lq == 0 || sq.lk == 0)
            continue;
        for (int64_t h = 0; h < c->H && st == RFJIT_OK; h++)
            if (!redo || !rj_call_out_finite(c, bi, h))
                st = one_slice(p, c, &sq, bi, h, &b, dg);
    }
    bufs_free(&b);
    return st;
}
