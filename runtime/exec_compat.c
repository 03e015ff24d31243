/* SPDX-License-Identifier: MIT */
/*
 * This file is the float32 executor of the Performer compatibility modes (performer-pytorch
 * and google-performer with the positive estimator): est/ref_compat.c's math, per (sequence,
 * head) on the context's pool, with the loops of runtime/compat_math.h. The JIT has no kernel
 * for these modes, whose key shift is a maximum over the whole sequence.
 *
 * A slice gathers its scaled queries and its visible keys, compacted as the reference does
 * (masked keys take no part, not even in the maximum), then
 *   1. projects every key (u = W y), takes the shift c = max over keys and r of u, and turns
 *      the projections into e = e^{u - diag - c} in place;
 *   2. maps every query to q' = e^{u - diag - max_r u} + eps;
 *   3. runs the keys into the state in order, and each run of queries that sees the same
 *      number of keys (all of them when bidirectional) reads it once the keys it sees are
 *      in; causal queries that each see one key more go in blocks (rj_compat_causal_block),
 *      so that the state is read and written once per block rather than once per token.
 * The m^{-1/2} of both feature maps cancels but in performer-pytorch's causal guard, which
 * rj_cm_finish applies in these unscaled terms. A row that comes out non-finite is redone by
 * the double reference (runtime/exec.c).
 */
#include "runtime/exec_compat.h"
#include "runtime/compat_math.h"
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/pool.h"

#include <math.h>
#include <string.h>

enum cslot {
    SLOT_X,
    SLOT_Y,
    SLOT_VROW,
    SLOT_E,
    SLOT_QF,
    SLOT_O,
    SLOT_S,
    SLOT_VSUM,
    SLOT_POS,
    SLOT_NVIS,
    SLOT_ROW,
    CSLOTS
};
_Static_assert(CSLOTS <= RJ_SLOTS, "every slot of exec_compat.c exists in a scratch");

rfjit_status rj_compat_prepare(rfjit_plan *p, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    p->cwt = rj_alloc_array((size_t)s->m * (size_t)s->d, sizeof(float));
    RJ_FAIL_IF(dg, !p->cwt, RFJIT_E_NOMEM, "no memory for the %d x %d projection", s->m, s->d);
    /* the positive estimator's parameters are W itself (est/positive.c) */
    for (int r = 0; r < s->m; r++)
        for (int a = 0; a < s->d; a++)
            p->cwt[(size_t)a * (size_t)s->m + (size_t)r] =
                (float)p->params[(size_t)r * (size_t)s->d + (size_t)a];
    p->compat_fast = 1;
    return RFJIT_OK;
}

/* One row of a view as floats times scale. */
static void get_row(const rj_view *t, const char *row, double scale, int64_t n, float *out)
{
    if (t->dtype == RFJIT_F32 && t->stride[3] == 1) {
        memcpy(out, row, (size_t)n * sizeof(float));
        for (int64_t c = 0; scale != 1 && c < n; c++)
            out[c] = (float)(scale * out[c]);
        return;
    }
    for (int64_t c = 0; c < n; c++)
        out[c] = (float)(scale * rj_view_get(t, row, c));
}

void rj_compat_get_row(const rj_view *t, const char *row, double scale, int64_t n, float *out)
{
    get_row(t, row, scale, n, out);
}

void rj_compat_put_row(const rj_view *t, char *row, const double *in)
{
    if (t->dtype == RFJIT_F32 && t->stride[3] == 1) { /* without the per-element dispatch */
        for (int64_t c = 0; c < t->shape[3]; c++) {
            const float f = (float)in[c];
            memcpy(row + 4 * c, &f, sizeof f);
        }
        return;
    }
    for (int64_t c = 0; c < t->shape[3]; c++)
        rj_view_set(t, row, c, in[c]);
}

/* |x|^2 / 2 of a scaled row. */
float rj_compat_diag(const float *x, int d)
{
    double s = 0;
    for (int a = 0; a < d; a++)
        s += (double)x[a] * x[a];
    return (float)(0.5 * s);
}

void rj_compat_query_features(const rfjit_plan *p, const float *x, int64_t n, float *qf,
                              float *umax)
{
    const rj_spec *s = &p->spec;
    rj_cm_project(p->cwt, s->d, s->m, x, n, qf, umax);
    const float eps = rj_cm_eps(s);
    for (int64_t i = 0; i < n; i++)
        rj_cm_exp(qf + i * s->m, s->m, rj_compat_diag(x + i * s->d, s->d) + umax[i], eps);
}

typedef struct cbufs {
    float *x, *y, *vrow, *e, *qf, *o, *S, *V;
    int64_t *pos, *nvis;
    double *row;
} cbufs;

static bool take_bufs(rj_exec_scratch *c, const rj_spec *s, int64_t lq, int64_t lk, cbufs *b)
{
    const size_t d = (size_t)s->d, m = (size_t)s->m, w = (size_t)rj_cm_width(s->dv);
    const size_t nq = (size_t)lq, nk = (size_t)lk;
    b->x = rj_scratch_buf(c, SLOT_X, nq * d, sizeof(float));
    b->y = rj_scratch_buf(c, SLOT_Y, nk * d, sizeof(float));
    b->vrow = rj_scratch_buf(c, SLOT_VROW, nk * w, sizeof(float));
    b->e = rj_scratch_buf(c, SLOT_E, nk * m + (nk > nq ? nk : nq), sizeof(float));
    b->qf = rj_scratch_buf(c, SLOT_QF, nq * m, sizeof(float));
    b->o = rj_scratch_buf(c, SLOT_O, nq * w, sizeof(float));
    b->S = rj_scratch_buf(c, SLOT_S, m * w, sizeof(float));
    b->V = rj_scratch_buf(c, SLOT_VSUM, w, sizeof(float));
    b->pos = rj_scratch_buf(c, SLOT_POS, nk + 1, sizeof(int64_t));
    b->nvis = rj_scratch_buf(c, SLOT_NVIS, nq + 1, sizeof(int64_t));
    b->row = rj_scratch_buf(c, SLOT_ROW, (size_t)s->dv, sizeof(double));
    return b->x && b->y && b->vrow && b->e && b->qf && b->o && b->S && b->V && b->pos && b->nvis &&
           b->row;
}

/* The visible keys of the slice, compacted: scaled rows into y, [v | 1 | 0] rows into vrow,
 * their positions into pos. Returns their count. */
static int64_t gather_keys(const rj_call *c, const rj_seq *sq, int64_t kvh, double scale, int w,
                           cbufs *b)
{
    const int64_t d = c->k.shape[3], dv = c->v.shape[3];
    int64_t n = 0;
    for (int64_t j = 0; j < sq->lk; j++) {
        if (sq->mask && !sq->mask[j])
            continue;
        get_row(&c->k, rj_view_row(&c->k, sq->kb, kvh, sq->k0 + j), scale, d, b->y + n * d);
        float *vr = b->vrow + n * w;
        get_row(&c->v, rj_view_row(&c->v, sq->kb, kvh, sq->k0 + j), 1.0, dv, vr);
        vr[dv] = 1;
        for (int a = (int)dv + 1; a < w; a++)
            vr[a] = 0;
        b->pos[n++] = j;
    }
    return n;
}

/* Keys' e = e^{u - diag - c} in place of their projections, c the largest u. */
static void key_features(const rfjit_plan *p, int64_t nk, cbufs *b)
{
    const rj_spec *s = &p->spec;
    float *umax = b->e + (size_t)nk * (size_t)s->m; /* past the features */
    rj_cm_project(p->cwt, s->d, s->m, b->y, nk, b->e, umax);
    float c = -INFINITY;
    for (int64_t j = 0; j < nk; j++)
        c = fmaxf(c, umax[j]);
    for (int64_t j = 0; j < nk; j++)
        rj_cm_exp(b->e + j * s->m, s->m, rj_compat_diag(b->y + j * s->d, s->d) + c, 0);
}

void rj_compat_state_init(float *S, float *V, int m, int dv)
{
    const int w = rj_cm_width(dv);
    memset(S, 0, (size_t)m * (size_t)w * sizeof(float));
    for (int r = 0; r < m; r++)
        S[(size_t)r * (size_t)w + (size_t)dv + 1] = 1;
    memset(V, 0, (size_t)dv * sizeof(float));
}

void rj_compat_take_keys(const rj_spec *s, float *S, float *V, const float *e, const float *vrow,
                         int64_t n)
{
    const int w = rj_cm_width(s->dv);
    rj_cm_absorb(S, s->m, w, e, vrow, n);
    for (int64_t j = 0; j < n; j++)
        for (int a = 0; a < s->dv; a++)
            V[a] += vrow[j * w + a];
}

void rj_compat_causal_block(const rj_spec *s, float *S, const float *e, const float *vrow,
                            const float *qf, int64_t n, float *o)
{
    const int m = s->m, w = rj_cm_width(s->dv);
    rj_cm_read(S, m, w, qf, n, o);
    rj_cm_intra(qf, e, vrow, m, w, n, o);
    rj_cm_absorb(S, m, w, e, vrow, n);
}

static int64_t visible(const rj_spec *s, const int64_t *nvis, int64_t i, int64_t nk)
{
    return nvis ? nvis[i] : s->causal ? i + 1 : nk;
}

/* Output row i of the slice from its read o, the state holding n keys. */
static void finish_row(const rfjit_plan *p, const rj_call *c, const rj_seq *sq, int64_t h,
                       int64_t i, const float *o, int64_t n, cbufs *b)
{
    rj_cm_finish(&p->spec, o, b->V, n, b->row);
    rj_compat_put_row(&c->out, rj_view_row(&c->out, sq->qb, h, sq->q0 + i), b->row);
}

static void run_slice(const rfjit_plan *p, const rj_call *c, const rj_seq *sq, int64_t h, cbufs *b)
{
    const rj_spec *s = &p->spec;
    const int m = s->m, w = rj_cm_width(s->dv);
    const double scale = rj_plan_input_scale(s);
    const int64_t nk = gather_keys(c, sq, rj_call_kv_head(c, h), scale, w, b);
    if (nk == 0) { /* every key masked: the queries see nothing */
        rj_view_zero_rows(&c->out, sq->qb, h, sq->q0, sq->lq);
        return;
    }
    for (int64_t i = 0; i < sq->lq; i++)
        get_row(&c->q, rj_view_row(&c->q, sq->qb, h, sq->q0 + i), scale, s->d, b->x + i * s->d);
    const int64_t qoff = s->causal ? sq->lk - sq->lq : 0;
    const int64_t *nvis = rj_est_nvis(s, sq->lq, sq->lk, qoff, b->pos, nk, b->nvis);
    key_features(p, nk, b);
    rj_compat_query_features(p, b->x, sq->lq, b->qf, b->e + (size_t)nk * (size_t)m);
    rj_compat_state_init(b->S, b->V, m, s->dv);
    int64_t t = 0; /* keys in the state */
    for (int64_t i0 = 0; i0 < sq->lq;) {
        /* queries that each see one more key than the one before: a causal block */
        int64_t nb = 0;
        while (s->causal && nb < RJ_COMPAT_BLOCK && i0 + nb < sq->lq &&
               visible(s, nvis, i0 + nb, nk) == t + nb + 1)
            nb++;
        if (nb > 0) {
            rj_compat_causal_block(s, b->S, b->e + t * m, b->vrow + t * w, b->qf + i0 * m, nb,
                                   b->o);
            for (int64_t i = 0; i < nb; i++) {
                for (int a = 0; a < s->dv; a++)
                    b->V[a] += b->vrow[(t + i) * w + a];
                finish_row(p, c, sq, h, i0 + i, b->o + i * w, t + i + 1, b);
            }
            t += nb;
            i0 += nb;
            continue;
        }
        /* else a run of queries that see the same keys (all of them, bidirectional) */
        const int64_t n = visible(s, nvis, i0, nk);
        int64_t i1 = i0 + 1;
        while (i1 < sq->lq && visible(s, nvis, i1, nk) == n)
            i1++;
        rj_compat_take_keys(s, b->S, b->V, b->e + t * m, b->vrow + t * w, n - t);
        rj_cm_read(b->S, m, w, b->qf + i0 * m, i1 - i0, b->o);
        t = n;
        for (int64_t i = i0; i < i1; i++)
            finish_row(p, c, sq, h, i, b->o + (i - i0) * w, t, b);
        i0 = i1;
    }
}

typedef struct cjob {
    const rfjit_plan *p;
    const rj_call *c;
    pthread_mutex_t mu;
    rfjit_status st;
    rj_diag dg;
} cjob;

static void task(void *arg, int64_t i)
{
    cjob *j = arg;
    const rj_call *c = j->c;
    const rj_seq sq = rj_call_seq(c, i / c->H);
    if (sq.lq == 0 || sq.lk == 0)
        return;
    rj_diag dg = {{0}};
    rj_exec_scratch *sc = rj_scratch_take(j->p, &dg);
    cbufs b;
    rfjit_status st = RFJIT_OK;
    if (!sc)
        st = RFJIT_E_NOMEM;
    else if (!take_bufs(sc, &j->p->spec, c->max_lq, c->max_lk, &b))
        st = rj_fail(&dg, RFJIT_E_NOMEM, "compat: no memory for a (batch, head) of %lld x %lld",
                     (long long)c->max_lq, (long long)c->max_lk);
    else
        run_slice(j->p, c, &sq, i % c->H, &b);
    if (sc)
        rj_scratch_give(j->p, sc);
    if (st != RFJIT_OK) {
        pthread_mutex_lock(&j->mu);
        if (j->st == RFJIT_OK) {
            j->st = st;
            j->dg = dg;
        }
        pthread_mutex_unlock(&j->mu);
    }
}

rfjit_status rj_exec_compat(const rfjit_plan *p, const rj_call *c, rj_diag *dg)
{
    cjob j = {.p = p, .c = c, .st = RFJIT_OK};
    pthread_mutex_init(&j.mu, NULL);
    rj_pool_run(p->ctx->pool, c->B * c->H, task, &j);
    pthread_mutex_destroy(&j.mu);
    if (j.st != RFJIT_OK && dg)
        *dg = j.dg;
    return j.st;
}
