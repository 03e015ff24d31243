/* SPDX-License-Identifier: MIT */
/*
 * This file runs EVA, both variants (est/eva.c, est/eva_official.c, through rj_eva_ops_for),
 * on the exact-softmax JIT kernel. For query i, EVA is a softmax over a run of exact keys plus
 * one pseudo-key per summarised chunk or piece of a chunk c, whose logit is
 * x_i . kbar_c + loff_c (loff_c = ln n_c, or 0 for the official variant) and whose value is
 * beta_c. Queries with the same sets (rj_eva_row) share that key set, so each run of them is
 * one kernel call on [pseudo-keys ; exact keys], with the causal diagonal shifted by qoff so
 * that pseudo-keys are always visible.
 *
 * Keys are compacted as for the reference (masked keys removed, est/eva.c), and query i sees
 * the exact keys j < nvis[i] (rj_est_nvis: mask, padding and the bottom-right causal offset
 * in one count). The kernel can express, in one call of lk' keys with diagonal qoff, query t
 * seeing keys j <= min(t + qoff, lk' - 1): a run of counts rising by one per query followed
 * by a run of equal counts. A causal group is cut into such runs; for a plain sequence
 * (nvis[i] = i + 1) that is the group itself, as before masks existed.
 *
 * The logit offset rides on one extra coordinate (the kernel has d' = d + 1 and scales by
 * d'^{-1/4}): with c1 = (d'/d)^{1/4},
 *   q' = [c1 q, 1],  k' = [c1 k, 0],  pseudo' = [c1 d^{1/4} kbar_c, sqrt(d') loff_c]
 * gives d'^{-1/2} q'.k' = q.k / sqrt d and x . kbar_c + loff_c, exactly the reference's
 * logits. Summaries come from the estimator in double (chunks O(L d) per head, pieces once
 * per run).
 */
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/plan_fit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct eva_bufs {
    double *x, *y, *v, *kbar, *beta, *loff;
    float *qa, *ka, *va, *ws, *st;
    int64_t *pos, *nvis;
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
    SLOT_POS,
    SLOT_NVIS,
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

/* Visible keys of query i: nvis[i], or the estimator's rule without counts. */
static int64_t visible(const rj_spec *s, const int64_t *nvis, int64_t i, int64_t lk)
{
    return nvis ? nvis[i] : s->causal ? i + 1 : lk;
}

static bool same_sets(const rj_spec *s, const rj_eva_row *a, const rj_eva_row *b)
{
    return a->elo == b->elo && a->plo == b->plo && a->phi == b->phi && a->lp == b->lp &&
           (s->causal || (a->ehi == b->ehi && a->rp == b->rp));
}

/* End of the run from i0 that one kernel call can take: the same summarised chunks and first
 * exact key (and, bidirectional, last) and, causal, visible counts rising by one per query
 * and then constant (file comment). */
static int64_t run_end(const rj_spec *s, const rj_eva_ops *E, const int64_t *nvis, int64_t i0,
                       int64_t lq, int64_t lk, const rj_eva_row *r0)
{
    bool flat = false;
    int64_t i1 = i0 + 1;
    for (; i1 < lq; i1++) {
        const int64_t vis = visible(s, nvis, i1, lk), step = vis - visible(s, nvis, i1 - 1, lk);
        if (s->causal && !(step == 0 || (step == 1 && !flat)))
            break;
        flat = flat || step == 0;
        rj_eva_row r;
        E->row(s, lk, i1, vis, &r);
        if (!same_sets(s, r0, &r))
            break;
    }
    return i1;
}

static void one_head(const rfjit_plan *p, rj_kernel_fn fn, eva_bufs *b, int64_t lq, int64_t lk,
                     const int64_t *nvis, float *out, int64_t so)
{
    const rj_spec *s = &p->spec;
    const rj_eva_ops *E = rj_eva_ops_for(s);
    const int d = s->d, dv = s->dv, d1 = d + 1;
    const double c1 = pow((double)d1 / d, 0.25), unscale = pow((double)d, 0.25);
    int64_t size = 0;
    const int64_t count = E->chunks(s, lk, &size);
    E->summaries(s, b->x, lq, b->y, b->v, lk, nvis, b->kbar, b->loff, b->beta);
    for (int64_t i = 0; i < lq; i++) {
        for (int a = 0; a < d; a++)
            b->qa[i * d1 + a] = (float)(c1 * unscale * b->x[i * d + a]);
        b->qa[i * d1 + d] = 1;
    }
    int64_t i0 = 0;
    for (; i0 < lq && visible(s, nvis, i0, lk) == 0; i0++) /* a prefix seeing no key */
        for (int a = 0; a < dv; a++)
            out[i0 * so + a] = 0;
    while (i0 < lq) {
        const int64_t vis0 = visible(s, nvis, i0, lk);
        rj_eva_row r0, rl;
        E->row(s, lk, i0, vis0, &r0);
        const int64_t i1 = run_end(s, E, nvis, i0, lq, lk, &r0);
        E->row(s, lk, i1 - 1, visible(s, nvis, i1 - 1, lk), &rl);
        /* pseudo-keys of the summarised chunks and pieces, then the exact keys the run sees;
         * the pieces' summaries go after the chunks' (rows count, count + 1) */
        int64_t np = 0;
        const int64_t plo[2] = {r0.lp, r0.ehi}, phi[2] = {r0.elo, s->causal ? r0.ehi : r0.rp};
        for (int k = 0; k < 2; k++)
            if (phi[k] > plo[k])
                E->piece(s, b->x, lq, b->y, b->v, lk, nvis, plo[k], phi[k],
                         b->kbar + (count + k) * d, b->loff + count + k,
                         b->beta + (count + k) * dv);
        for (int64_t c = 0; c < count + 2; c++) {
            if (c < count ? c >= r0.plo && c < r0.phi : !(phi[c - count] > plo[c - count]))
                continue;
            for (int a = 0; a < d; a++)
                b->ka[np * d1 + a] = (float)(c1 * unscale * b->kbar[c * d + a]);
            b->ka[np * d1 + d] = (float)(sqrt((double)d1) * b->loff[c]);
            for (int a = 0; a < dv; a++)
                b->va[np * dv + a] = (float)b->beta[c * dv + a];
            np++;
        }
        const int64_t elo = r0.elo, ehi = rl.ehi;
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
        /* query i0 sees the pseudo-keys and exact keys elo .. vis0 - 1 */
        a.qoff = s->causal ? np + vis0 - 1 - elo : 0;
        fn(&a);
        i0 = i1;
    }
}

static void eva_slice(const rfjit_plan *p, rj_kernel_fn fn, const rj_call *c, const rj_seq *sq,
                      int64_t h, eva_bufs *b, float *o, double *od)
{
    const rj_spec *s = &p->spec;
    const rj_head_rows rows = {b->x, b->y, b->v, b->pos, b->nvis};
    const int64_t *nvis = NULL;
    const int64_t nk = rj_call_gather_head(p, c, sq, h, &rows, &nvis);
    if (nk == 0)
        return;
    one_head(p, fn, b, sq->lq, nk, nvis, o, s->dv);
    for (size_t i = 0; i < (size_t)sq->lq * (size_t)s->dv; i++)
        od[i] = o[i];
    rj_view_scatter(&c->out, sq->qb, h, sq->q0, sq->lq, od);
}

/* The official variant defines self-attention without masks only (est/eva_official.c). */
rfjit_status rj_exec_eva_check_official(const rj_spec *s, const rj_call *call, rj_diag *dg)
{
    for (int64_t bi = 0; bi < call->B; bi++) {
        const rj_seq sq = rj_call_seq(call, bi);
        RJ_FAIL_IF(dg, sq.mask != NULL, RFJIT_E_NOT_APPLICABLE,
                   "the official eva variant takes no key mask or padding");
        RJ_TRY(rj_eva_official_ops.check(s, sq.lq, sq.lk, NULL, dg));
    }
    return RFJIT_OK;
}

rfjit_status rj_exec_eva(const rfjit_plan *p, const rj_call *call, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = call->max_lq, lk = call->max_lk;
    const size_t d = (size_t)s->d, dv = (size_t)s->dv, d1 = d + 1;
    /* a sequence with masked keys is chunked over fewer keys, into smaller and possibly
     * more chunks than the longest one: every count is at most C and at most its keys. The
     * official variant pads to a multiple of the window, and floor(Np / C) can be small:
     * its count is at most the padded length. */
    const int64_t count = s->eva_variant == RJ_EVA_OFFICIAL ? lk + s->eva_window
                          : s->eva_chunks < lk              ? s->eva_chunks
                                                            : lk;
    rj_kernel_fn fn; /* EVA's rows are float32, built here in double whatever the inputs */
    RJ_TRY(rj_plan_kernel_for_rows(p, lq, RFJIT_F32, RFJIT_F32, &fn, dg));
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    eva_bufs b = {0};
    b.x = rj_scratch_buf(c, SLOT_X, (size_t)lq * d, sizeof(double));
    b.y = rj_scratch_buf(c, SLOT_Y, (size_t)lk * d, sizeof(double));
    b.v = rj_scratch_buf(c, SLOT_V, (size_t)lk * dv, sizeof(double));
    /* the chunks' logit offsets follow their mean keys */
    b.kbar = rj_scratch_buf(c, SLOT_KBAR, (size_t)(count + 3) * (d + 1), sizeof(double));
    b.loff = b.kbar ? b.kbar + (size_t)(count + 3) * d : NULL;
    b.beta = rj_scratch_buf(c, SLOT_BETA, (size_t)(count + 3) * dv, sizeof(double));
    b.qa = rj_scratch_buf(c, SLOT_QA, (size_t)lq * d1, sizeof(float));
    b.ka = rj_scratch_buf(c, SLOT_KA, (size_t)(lk + count + 3) * d1, sizeof(float));
    b.va = rj_scratch_buf(c, SLOT_VA, (size_t)(lk + count + 3) * dv, sizeof(float));
    b.pos = rj_scratch_buf(c, SLOT_POS, (size_t)lk + 1, sizeof(int64_t));
    b.nvis = rj_scratch_buf(c, SLOT_NVIS, (size_t)lq + 1, sizeof(int64_t));
    b.ws = c->ws;
    b.st = c->st;
    float *o = rj_scratch_buf(c, SLOT_OUT, (size_t)lq * dv, sizeof(float));
    double *od = rj_scratch_buf(c, SLOT_OUT_D, (size_t)lq * dv, sizeof(double));
    if (!b.x || !b.y || !b.v || !b.kbar || !b.beta || !b.qa || !b.ka || !b.va || !b.pos ||
        !b.nvis || !o || !od) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "eva: no memory for a (batch, head) of %lld x %lld",
                       (long long)lq, (long long)lk);
    }
    for (int64_t bi = 0; bi < call->B; bi++) {
        const rj_seq sq = rj_call_seq(call, bi);
        if (sq.lq == 0 || sq.lk == 0)
            continue;
        for (int64_t h = 0; h < call->H; h++)
            eva_slice(p, fn, call, &sq, h, &b, o, od);
    }
    rj_scratch_give(p, c);
    return RFJIT_OK;
}
