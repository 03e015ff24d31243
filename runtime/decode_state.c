/* SPDX-License-Identifier: MIT */
/*
 * This file runs prefills and steps on constant states (runtime/decode.h). A prefill of L
 * tokens is the causal kernel over them continuing the slot's state (RJ_KFLAG_INIT at
 * position 0), all query heads of a key/value group in one call; without outputs it only
 * takes the keys (RJ_KFLAG_NO_QUERIES). A step is rj_decode_step_states_ws, on scratch the
 * state keeps.
 */
#include "runtime/decode.h"
#include "runtime/decode_step.h"
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/plan_fit.h"
#include "runtime/pool.h"

#include "core/kabi.h"

#include <math.h>
#include <string.h>

static size_t view_bytes(const rj_view *t)
{
    return (size_t)(t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3] * t->esize);
}

/* The kernels read rows with contiguous elements: other views go through a packed copy. */
static rfjit_status contiguous(rfjit_decode *s, rj_view *t, int which, rj_diag *dg)
{
    if (!t->data || rj_view_rows_contiguous(t))
        return RFJIT_OK;
    void *buf = rj_decode_scratch(s, which, view_bytes(t));
    RJ_FAIL_IF(dg, !buf, RFJIT_E_NOMEM, "no memory for a packed copy of a decode call");
    *t = rj_view_pack(t, buf);
    return RFJIT_OK;
}

/* Rows 0 .. len - 1 of every entry's heads from a packed output back to the caller's. */
static void unpack_out(const rj_view *dst, const rj_view *src, const rj_dcall *c)
{
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t h = 0; h < dst->shape[1]; h++)
            for (int64_t r = 0; r < c->len[i]; r++) {
                const char *a = rj_view_row(src, i, h, r);
                char *b = rj_view_row(dst, i, h, r);
                for (int64_t j = 0; j < dst->shape[3]; j++)
                    memcpy(b + j * dst->stride[3] * dst->esize, a + j * dst->esize,
                           (size_t)dst->esize);
            }
}

static float *slot_par(const rfjit_decode *s, int64_t slot, int64_t h)
{
    return s->par + (size_t)(slot * s->H + h) * 2 * (size_t)s->p->kp.role_floats;
}

static float *slot_state(const rfjit_decode *s, int64_t slot, int64_t j)
{
    return s->st + (size_t)(slot * s->nst + j) * (size_t)s->p->kp.st_floats;
}

/* Fit, per query head, the parameters of every entry that starts its slot (position 0) on
 * its prompt: x = its queries, y = its keys, all visible to the prompt's last query, as an
 * execute of the prompt fits them. Written to `out` (n x H blocks); slots are not touched. */
static rfjit_status fit_entries(rfjit_decode *s, const rj_dcall *c, float *out, rj_diag *dg)
{
    const rfjit_plan *p = s->p;
    const int64_t d = p->spec.d, G = s->H / s->Hkv, rf2 = 2 * p->kp.role_floats;
    double *x = rj_decode_scratch(s, RJ_DSCR_X, (size_t)(c->L * d) * sizeof(double));
    double *y = rj_decode_scratch(s, RJ_DSCR_Y, (size_t)(c->L * d) * sizeof(double));
    RJ_FAIL_IF(dg, !x || !y, RFJIT_E_NOMEM, "no memory to fit a prompt's parameters");
    rj_fit_scratch fs;
    RJ_TRY(rj_fit_scratch_init(&fs, p, dg));
    const double scale = rj_plan_input_scale(&p->spec);
    rfjit_status st = RFJIT_OK;
    for (int64_t i = 0; i < c->n && st == RFJIT_OK; i++) {
        if (c->len[i] == 0 || s->pos[c->slot[i]] > 0)
            continue;
        for (int64_t h = 0; h < s->H && st == RFJIT_OK; h++) {
            const double *params = NULL;
            rj_view_gather(&c->q, i, h, 0, c->len[i], scale, x);
            rj_view_gather(&c->k, i, h / G, 0, c->len[i], scale, y);
            st = rj_fit_slice(p, &fs, x, c->len[i], y, c->len[i], &params, dg);
            if (st == RFJIT_OK)
                st = rj_lower_params(p, params, out + (i * s->H + h) * rf2, dg);
        }
    }
    rj_fit_scratch_free(&fs);
    return st;
}

/* The kernel over entry i's prompt, for query heads h0 .. h0 + ng - 1 and key/value head g,
 * continuing state st with parameters kpar. */
static void run_prompt(const rfjit_decode *s, const rj_dcall *c, rj_kernel_fn fn, int64_t i,
                       int64_t h0, int64_t ng, int64_t g, float *st, const float *kpar, float *ws)
{
    rj_kargs a = {0};
    a.q = (const float *)rj_view_row(&c->q, i, h0, 0);
    a.sq = c->q.stride[2];
    a.k = (const float *)rj_view_row(&c->k, i, g, 0);
    a.v = (const float *)rj_view_row(&c->v, i, g, 0);
    a.sk = c->k.stride[2];
    a.sv = c->v.stride[2];
    a.lk = c->len[i];
    a.pq = kpar;
    a.pk = kpar + s->p->kp.role_floats;
    a.ws = ws;
    a.st = st;
    a.flags = s->pos[c->slot[i]] == 0 ? RJ_KFLAG_INIT : 0;
    if (c->out.data) {
        a.out = (float *)rj_view_row(&c->out, i, h0, 0);
        a.so = c->out.stride[2];
        a.lq = c->len[i];
        a.ng = ng;
        a.sqh = c->q.stride[1];
        a.soh = c->out.stride[1];
    } else
        a.flags |= RJ_KFLAG_NO_QUERIES;
    fn(&a);
}

/* The first (entry, head, row) of the outputs that is not finite, as a RFJIT_E_RANGE. */
static rfjit_status check_range(const rj_dcall *c, const rj_view *out, rj_diag *dg)
{
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t h = 0; h < out->shape[1]; h++)
            RJ_FAIL_IF(dg, !rj_view_rows_finite(out, i, h, 0, c->len[i]), RFJIT_E_RANGE,
                       "entry %lld (slot %lld), head %lld: a query's denominator underflows "
                       "float; the tokens were taken, the row is NaN",
                       (long long)i, (long long)c->slot[i], (long long)h);
    return RFJIT_OK;
}

/*
 * The kernel calls of a prefill, one per (entry, state) on the context's pool, as an execute
 * spreads (sequence, head) slices: each state is written by one task. The workspaces are
 * taken from the plan's scratch pool before any task runs, one per thread that can run at
 * once, so no task can fail once the slots start changing.
 */
typedef struct prefill_job {
    rfjit_decode *s;
    const rj_dcall *c;
    rj_kernel_fn fn;
    pthread_mutex_t mu;
    rj_exec_scratch **free; /* workspaces not in use */
    int64_t nfree;
} prefill_job;

static void prefill_task(void *arg, int64_t task)
{
    prefill_job *j = arg;
    rfjit_decode *s = j->s;
    const rj_dcall *c = j->c;
    const int64_t i = task / s->nst, st = task % s->nst, G = s->H / s->Hkv;
    if (c->len[i] == 0)
        return;
    pthread_mutex_lock(&j->mu);
    rj_exec_scratch *w = j->free[--j->nfree];
    pthread_mutex_unlock(&j->mu);
    const int64_t slot = c->slot[i];
    if (s->fitted)
        run_prompt(s, c, j->fn, i, st, 1, st / G, slot_state(s, slot, st), slot_par(s, slot, st),
                   w->ws);
    else
        run_prompt(s, c, j->fn, i, st * G, G, st, slot_state(s, slot, st), s->p->kpar, w->ws);
    pthread_mutex_lock(&j->mu);
    j->free[j->nfree++] = w;
    pthread_mutex_unlock(&j->mu);
}

static rfjit_status take_workspaces(prefill_job *j, int64_t n, rj_diag *dg)
{
    const rfjit_plan *p = j->s->p;
    j->free = rj_alloc_array((size_t)n, sizeof *j->free);
    RJ_FAIL_IF(dg, !j->free, RFJIT_E_NOMEM, "no memory for a prefill's workspaces");
    for (j->nfree = 0; j->nfree < n; j->nfree++)
        if (!(j->free[j->nfree] = rj_scratch_take(p, dg)))
            return RFJIT_E_NOMEM;
    return RFJIT_OK;
}

static void give_workspaces(prefill_job *j)
{
    for (int64_t i = 0; j->free && i < j->nfree; i++)
        rj_scratch_give(j->s->p, j->free[i]);
    rj_free(j->free);
}

rfjit_status rj_decode_state_prefill(rfjit_decode *s, const rj_dcall *c0, rj_diag *dg)
{
    const rfjit_plan *p = s->p;
    rj_dcall c = *c0;
    prefill_job j = {.s = s, .c = &c};
    RJ_TRY(rj_plan_kernel_for(p, c.q.dtype, c.out.data ? c.out.dtype : c.q.dtype, &j.fn, dg));
    RJ_TRY(contiguous(s, &c.q, RJ_DSCR_Q, dg));
    RJ_TRY(contiguous(s, &c.k, RJ_DSCR_K, dg));
    RJ_TRY(contiguous(s, &c.v, RJ_DSCR_V, dg));
    RJ_TRY(contiguous(s, &c.out, RJ_DSCR_OUT, dg));
    const int64_t rf2 = 2 * p->kp.role_floats, tasks = c.n * s->nst;
    float *fit = NULL;
    if (s->fitted) {
        fit = rj_decode_scratch(s, RJ_DSCR_PAR, (size_t)(c.n * s->H * rf2) * sizeof(float));
        RJ_FAIL_IF(dg, !fit, RFJIT_E_NOMEM, "no memory for a prompt's parameters");
        RJ_TRY(fit_entries(s, &c, fit, dg));
    }
    const int64_t threads = rj_pool_threads(p->ctx->pool);
    rfjit_status st = take_workspaces(&j, tasks < threads ? tasks : threads, dg);
    if (st != RFJIT_OK) {
        give_workspaces(&j);
        return st;
    }
    /* nothing below fails: the slots change from here on */
    for (int64_t i = 0; s->fitted && i < c.n; i++)
        if (c.len[i] > 0 && s->pos[c.slot[i]] == 0) {
            memcpy(slot_par(s, c.slot[i], 0), fit + i * s->H * rf2,
                   (size_t)(s->H * rf2) * sizeof(float));
            s->has_par[c.slot[i]] = 1;
        }
    pthread_mutex_init(&j.mu, NULL);
    rj_pool_run(p->ctx->pool, tasks, prefill_task, &j);
    pthread_mutex_destroy(&j.mu);
    give_workspaces(&j);
    for (int64_t i = 0; i < c.n; i++)
        s->pos[c.slot[i]] += c.len[i];
    if (c.out.data && c.out.data != c0->out.data)
        unpack_out(&c0->out, &c.out, &c);
    return c.out.data ? check_range(&c, &c.out, dg) : RFJIT_OK;
}

/*
 * A step whose entries all take a token, on rows with contiguous elements, goes to
 * rj_decode_step_states on the caller's views. Otherwise the entries that take one are
 * copied to packed views first (and their outputs back): `act` lists them.
 */
typedef struct step_views {
    rj_view q, k, v, out;
    int64_t n;
    int64_t *act; /* entry of the call behind each packed entry, or NULL: the same */
} step_views;

static rj_view pack_entries(const rj_view *t, const int64_t *act, int64_t n, void *buf)
{
    rj_view sub = *t;
    sub.shape[0] = 1;
    rj_view c = *t;
    c.shape[0] = n;
    c.data = buf;
    c.stride[3] = 1;
    c.stride[2] = t->shape[3];
    c.stride[1] = t->shape[2] * c.stride[2];
    c.stride[0] = t->shape[1] * c.stride[1];
    for (int64_t e = 0; e < n; e++) {
        sub.data = t->data + act[e] * t->stride[0] * t->esize;
        (void)rj_view_pack(&sub, c.data + e * c.stride[0] * c.esize);
    }
    return c;
}

static rfjit_status step_views_make(rfjit_decode *s, const rj_dcall *c, step_views *sv, rj_diag *dg)
{
    int64_t n = 0;
    for (int64_t i = 0; i < c->n; i++)
        n += c->len[i] > 0;
    const bool direct = n == c->n && rj_view_rows_contiguous(&c->q) &&
                        rj_view_rows_contiguous(&c->k) && rj_view_rows_contiguous(&c->v) &&
                        rj_view_rows_contiguous(&c->out);
    *sv = (step_views){c->q, c->k, c->v, c->out, n, NULL};
    if (direct || n == 0)
        return RFJIT_OK;
    const rj_view *t[4] = {&c->q, &c->k, &c->v, &c->out};
    void *buf[4];
    for (int w = 0; w < 4; w++) {
        const size_t row = (size_t)(t[w]->shape[1] * t[w]->shape[3] * t[w]->esize);
        buf[w] = rj_decode_scratch(s, RJ_DSCR_Q + w, (size_t)n * row);
        RJ_FAIL_IF(dg, !buf[w], RFJIT_E_NOMEM, "no memory for a packed copy of a decode step");
    }
    sv->act = rj_decode_scratch(s, RJ_DSCR_X, (size_t)n * sizeof(int64_t));
    RJ_FAIL_IF(dg, !sv->act, RFJIT_E_NOMEM, "no memory for a decode step");
    for (int64_t i = 0, e = 0; i < c->n; i++)
        if (c->len[i] > 0)
            sv->act[e++] = i;
    sv->q = pack_entries(&c->q, sv->act, n, buf[0]);
    sv->k = pack_entries(&c->k, sv->act, n, buf[1]);
    sv->v = pack_entries(&c->v, sv->act, n, buf[2]);
    sv->out = pack_entries(&c->out, sv->act, n, buf[3]);
    return RFJIT_OK;
}

/* Query head h alone (and its key/value head) of every entry: a fitted slot's parameters
 * and state are per query head. */
static rj_view head_view(const rj_view *t, int64_t h)
{
    rj_view v = *t;
    v.data += h * t->stride[1] * t->esize;
    v.shape[1] = 1;
    return v;
}

static int64_t entry_of(const step_views *sv, int64_t e)
{
    return sv->act ? sv->act[e] : e;
}

rfjit_status rj_decode_state_step(rfjit_decode *s, const rj_dcall *c, rj_diag *dg)
{
    step_views sv;
    RJ_TRY(step_views_make(s, c, &sv, dg));
    if (sv.n == 0)
        return RFJIT_OK;
    for (int64_t e = 0; e < sv.n; e++) {
        const int64_t slot = c->slot[entry_of(&sv, e)];
        s->fresh[e] = s->pos[slot] == 0;
        s->stp[e] = slot_state(s, slot, 0);
    }
    const rj_step st = {.n = sv.n,
                        .H = s->H,
                        .Hkv = s->Hkv,
                        .q = sv.q,
                        .k = sv.k,
                        .v = sv.v,
                        .out = sv.out,
                        .st = s->stp,
                        .kpar = NULL,
                        .fresh = s->fresh};
    int64_t bad = -1;
    if (!s->fitted)
        RJ_TRY(rj_decode_step_states_ws(s->p, &st, &s->stws, &bad, dg));
    const int64_t G = s->H / s->Hkv;
    for (int64_t h = 0; s->fitted && h < s->H; h++) {
        for (int64_t e = 0; e < sv.n; e++) {
            const int64_t slot = c->slot[entry_of(&sv, e)];
            s->stp[e] = slot_state(s, slot, h);
            s->parp[e] = slot_par(s, slot, h);
        }
        const rj_step one = {.n = sv.n,
                             .H = 1,
                             .Hkv = 1,
                             .q = head_view(&sv.q, h),
                             .k = head_view(&sv.k, h / G),
                             .v = head_view(&sv.v, h / G),
                             .out = head_view(&sv.out, h),
                             .st = s->stp,
                             .kpar = s->parp,
                             .fresh = s->fresh};
        int64_t b = -1;
        RJ_TRY(rj_decode_step_states_ws(s->p, &one, &s->stws, &b, dg));
        if (b >= 0 && (bad < 0 || b < bad / s->H)) /* heads ascend: the entry's first */
            bad = b * s->H + h;
    }
    for (int64_t e = 0; e < sv.n; e++)
        s->pos[c->slot[entry_of(&sv, e)]]++;
    if (sv.act)
        for (int64_t e = 0; e < sv.n; e++) {
            rj_view src = sv.out, dst = c->out;
            src.data += e * src.stride[0] * src.esize;
            dst.data += sv.act[e] * dst.stride[0] * dst.esize;
            src.shape[0] = dst.shape[0] = 1;
            const int32_t one = 1;
            const rj_dcall c1 = {.n = 1, .len = &one};
            unpack_out(&dst, &src, &c1);
        }
    RJ_FAIL_IF(dg, bad >= 0, RFJIT_E_RANGE,
               "entry %lld (slot %lld), head %lld: the query's denominator underflows float; "
               "the step was taken, its output row is NaN",
               (long long)entry_of(&sv, bad / s->H), (long long)c->slot[entry_of(&sv, bad / s->H)],
               (long long)(bad % s->H));
    return RFJIT_OK;
}
