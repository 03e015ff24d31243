/* SPDX-License-Identifier: MIT */
/*
 * This file runs EVA (est/eva.c) on the exact-softmax JIT kernel. For query i, EVA is a
 * softmax over the visible keys of the chunks it sees exactly plus one pseudo-key per
 * summarised chunk c, whose logit is x_i . kbar_c + ln n_c and whose value is beta_c. Queries
 * with the same exact chunk range [clo, chi) share that key set, so each run of them is one
 * kernel call on [pseudo-keys ; exact keys], with the causal diagonal shifted by qoff so
 * that pseudo-keys are always visible and exact key j is visible to query i iff j <= i.
 *
 * The logit offset rides on one extra coordinate (the kernel has d' = d + 1 and scales by
 * d'^{-1/4}): with c1 = (d'/d)^{1/4},
 *   q' = [c1 q, 1],  k' = [c1 k, 0],  pseudo' = [c1 d^{1/4} kbar_c, sqrt(d') ln n_c]
 * gives d'^{-1/2} q'.k' = q.k / sqrt d and x . kbar_c + ln n_c, exactly the reference's
 * logits. Chunk summaries come from the estimator in double (O(L d) per head).
 */
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct eva_bufs {
    double *x, *y, *v, *kbar, *beta;
    float *qa, *ka, *va, *ws, *st;
} eva_bufs;

/* The scratch slots of an EVA execute (exec_scratch.h): the scaled rows and values in double,
 * the chunk means and their values, the augmented float rows the kernel reads, and the output
 * in float and double. */
enum eva_slot {
    SLOT_X,
    SLOT_Y,
    SLOT_V,
    SLOT_KBAR,
    SLOT_BETA,
    SLOT_QA,
    SLOT_KA,
    SLOT_VA,
    SLOT_OUT,
    SLOT_OUT_D,
    EVA_SLOTS
};
_Static_assert(EVA_SLOTS <= RJ_SLOTS, "every slot of exec_eva.c exists in a scratch");

/* Rows [lo, hi) of the head as augmented keys (c1 k, 0) and values into ka/va at row r. */
static void put_keys(const rfjit_plan *p, const double *y, const double *v, int64_t lo,
                     int64_t hi, int64_t r, double c1, eva_bufs *b)
{
    const int d = p->spec.d, dv = p->spec.dv, d1 = d + 1;
    const double unscale = pow((double)d, 0.25); /* y holds d^{-1/4} k */
    for (int64_t j = lo; j < hi; j++, r++) {
        for (int a = 0; a < d; a++)
            b->ka[r * d1 + a] = (float)(c1 * unscale * y[j * d + a]);
        b->ka[r * d1 + d] = 0;
        for (int a = 0; a < dv; a++)
            b->va[r * dv + a] = (float)v[j * dv + a];
    }
}

static void one_head(const rfjit_plan *p, eva_bufs *b, int64_t lq, int64_t lk, float *out,
                     int64_t so)
{
    const rj_spec *s = &p->spec;
    const rj_eva_ops *E = s->est->eva;
    const int d = s->d, dv = s->dv, d1 = d + 1;
    const double c1 = pow((double)d1 / d, 0.25), unscale = pow((double)d, 0.25);
    int64_t size = 0;
    const int64_t count = E->chunks(s, lk, &size);
    E->summaries(s, p->params, b->x, lq, b->y, b->v, lk, b->kbar, b->beta);
    for (int64_t i = 0; i < lq; i++) {
        for (int a = 0; a < d; a++)
            b->qa[i * d1 + a] = (float)(c1 * unscale * b->x[i * d + a]);
        b->qa[i * d1 + d] = 1;
    }
    int64_t i0 = 0;
    while (i0 < lq) {
        int64_t clo, chi, c2lo, c2hi, i1 = i0 + 1;
        E->exact_chunks(s, lk, i0, &clo, &chi);
        while (i1 < lq && (E->exact_chunks(s, lk, i1, &c2lo, &c2hi), c2lo == clo && c2hi == chi))
            i1++;
        /* pseudo-keys of the summarised chunks, then the exact keys */
        int64_t np = 0;
        for (int64_t c = 0; c < count; c++) {
            if ((c >= clo && c < chi) || (s->causal && c >= clo))
                continue;
            const int64_t lo = c * size, hi = lo + size < lk ? lo + size : lk;
            for (int a = 0; a < d; a++)
                b->ka[np * d1 + a] = (float)(c1 * unscale * b->kbar[c * d + a]);
            b->ka[np * d1 + d] = (float)(sqrt((double)d1) * log((double)(hi - lo)));
            for (int a = 0; a < dv; a++)
                b->va[np * dv + a] = (float)b->beta[c * dv + a];
            np++;
        }
        const int64_t elo = clo * size, ehi = chi * size < lk ? chi * size : lk;
        put_keys(p, b->y, b->v, elo, ehi, np, c1, b);
        rj_kargs a = {0};
        a.q = b->qa + i0 * d1;
        a.k = b->ka;
        a.v = b->va;
        a.out = out + i0 * so;
        a.ws = b->ws;
        a.st = b->st;
        a.lq = i1 - i0;
        a.lk = np + (ehi > elo ? ehi - elo : 0);
        a.sq = d1;
        a.sk = d1;
        a.sv = dv;
        a.so = so;
        a.flags = RJ_KFLAG_INIT;
        a.qoff = np + (i0 > elo ? i0 - elo : 0);
        p->fn(&a);
        i0 = i1;
    }
}

rfjit_status rj_exec_eva(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = q->shape[2], lk = k->shape[2];
    const size_t d = (size_t)s->d, dv = (size_t)s->dv, d1 = d + 1;
    int64_t size = 0;
    const int64_t count = s->est->eva->chunks(s, lk, &size);
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    eva_bufs b = {0};
    b.x = rj_scratch_buf(c, SLOT_X, (size_t)lq * d, sizeof(double));
    b.y = rj_scratch_buf(c, SLOT_Y, (size_t)lk * d, sizeof(double));
    b.v = rj_scratch_buf(c, SLOT_V, (size_t)lk * dv, sizeof(double));
    b.kbar = rj_scratch_buf(c, SLOT_KBAR, (size_t)(count + 1) * d, sizeof(double));
    b.beta = rj_scratch_buf(c, SLOT_BETA, (size_t)(count + 1) * dv, sizeof(double));
    b.qa = rj_scratch_buf(c, SLOT_QA, (size_t)lq * d1, sizeof(float));
    b.ka = rj_scratch_buf(c, SLOT_KA, (size_t)(lk + count + 1) * d1, sizeof(float));
    b.va = rj_scratch_buf(c, SLOT_VA, (size_t)(lk + count + 1) * dv, sizeof(float));
    b.ws = c->ws;
    b.st = c->st;
    float *o = rj_scratch_buf(c, SLOT_OUT, (size_t)lq * dv, sizeof(float));
    double *od = rj_scratch_buf(c, SLOT_OUT_D, (size_t)lq * dv, sizeof(double));
    if (!b.x || !b.y || !b.v || !b.kbar || !b.beta || !b.qa || !b.ka || !b.va || !o || !od) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "eva: no memory for a (batch, head) of %lld x %lld",
                       (long long)lq, (long long)lk);
    }
    const double scale = rj_plan_input_scale(s);
    for (int64_t bi = 0; bi < q->shape[0]; bi++)
        for (int64_t hi = 0; hi < q->shape[1]; hi++) {
            rj_tensor_gather(q, bi, hi, scale, b.x);
            rj_tensor_gather(k, bi, hi, scale, b.y);
            rj_tensor_gather(v, bi, hi, 1.0, b.v);
            one_head(p, &b, lq, lk, o, s->dv);
            for (size_t i = 0; i < (size_t)lq * dv; i++)
                od[i] = o[i];
            rj_tensor_scatter(out, bi, hi, od);
        }
    rj_scratch_give(p, c);
    return RFJIT_OK;
}
