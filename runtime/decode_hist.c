/* SPDX-License-Identifier: MIT */
/*
 * This file runs prefills and steps of history slots (runtime/decode.h): the new key and
 * value rows are appended to the slot's, and the new queries' rows are the plan's causal
 * execute of those queries against every row so far (Lq = new tokens, Lk = position + new
 * tokens, bottom-right aligned), so earlier rows are never recomputed and no query is padded
 * to a tile beyond what the executor itself does. Rows are kept as float32 (half inputs
 * widen exactly), and outputs are rounded to out's dtype once.
 */
#include "runtime/decode.h"
#include "runtime/call.h"

#include <string.h>

static rfjit_status grow(rfjit_decode *s, int64_t slot, int64_t need, rj_diag *dg)
{
    rj_hist *h = &s->hist[slot];
    if (need <= h->cap)
        return RFJIT_OK;
    int64_t cap = h->cap < 32 ? 64 : 2 * h->cap;
    cap = cap < need ? need : cap;
    const size_t kd = (size_t)(s->Hkv * s->p->spec.d), vd = (size_t)(s->Hkv * s->p->spec.dv);
    size_t nk = 0, nv = 0;
    float *k = NULL, *v = NULL;
    if (rj_mul_size((size_t)cap, kd, &nk) && rj_mul_size((size_t)cap, vd, &nv)) {
        k = rj_alloc_array(nk, sizeof(float));
        v = rj_alloc_array(nv, sizeof(float));
    }
    if (!k || !v) {
        rj_free(k);
        rj_free(v);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for %lld tokens of slot %lld",
                       (long long)cap, (long long)slot);
    }
    if (h->cap) {
        memcpy(k, h->k, (size_t)s->pos[slot] * kd * sizeof(float));
        memcpy(v, h->v, (size_t)s->pos[slot] * vd * sizeof(float));
    }
    rj_free(h->k);
    rj_free(h->v);
    h->k = k;
    h->v = v;
    h->cap = cap;
    return RFJIT_OK;
}

/* Entry i's key and value rows after the slot's last (past its position: not yet its). */
static void append(rfjit_decode *s, const rj_dcall *c, int64_t i)
{
    const rj_hist *h = &s->hist[c->slot[i]];
    const int64_t d = s->p->spec.d, dv = s->p->spec.dv, p0 = s->pos[c->slot[i]];
    for (int64_t t = 0; t < c->len[i]; t++)
        for (int64_t g = 0; g < s->Hkv; g++) {
            const char *kr = rj_view_row(&c->k, i, g, t), *vr = rj_view_row(&c->v, i, g, t);
            float *kd = h->k + ((p0 + t) * s->Hkv + g) * d, *vd = h->v + ((p0 + t) * s->Hkv + g) * dv;
            for (int64_t j = 0; j < d; j++)
                kd[j] = (float)rj_view_get(&c->k, kr, j);
            for (int64_t j = 0; j < dv; j++)
                vd[j] = (float)rj_view_get(&c->v, vr, j);
        }
}

/* Entry i's rows into o (H x L x dv float32, rows past its length untouched). */
static rfjit_status run_entry(rfjit_decode *s, const rj_dcall *c, int64_t i, float *qs, float *o,
                              rj_diag *dg)
{
    const rfjit_plan *p = s->p;
    const int64_t d = p->spec.d, dv = p->spec.dv, len = c->len[i], H = s->H, Hkv = s->Hkv;
    const int64_t lk = s->pos[c->slot[i]] + len;
    const rj_hist *h = &s->hist[c->slot[i]];
    for (int64_t hq = 0; hq < H; hq++)
        for (int64_t t = 0; t < len; t++) {
            const char *row = rj_view_row(&c->q, i, hq, t);
            for (int64_t j = 0; j < d; j++)
                qs[(hq * len + t) * d + j] = (float)rj_view_get(&c->q, row, j);
        }
    rfjit_tensor_ex tq = RFJIT_TENSOR_EX_INIT, tk = tq, tv = tq, to = tq;
    tq.data = qs;
    memcpy(tq.shape, (int64_t[4]){1, H, len, d}, sizeof tq.shape);
    memcpy(tq.stride, (int64_t[4]){H * len * d, len * d, d, 1}, sizeof tq.stride);
    tk.data = h->k;
    memcpy(tk.shape, (int64_t[4]){1, Hkv, lk, d}, sizeof tk.shape);
    memcpy(tk.stride, (int64_t[4]){lk * Hkv * d, d, Hkv * d, 1}, sizeof tk.stride);
    tv.data = h->v;
    memcpy(tv.shape, (int64_t[4]){1, Hkv, lk, dv}, sizeof tv.shape);
    memcpy(tv.stride, (int64_t[4]){lk * Hkv * dv, dv, Hkv * dv, 1}, sizeof tv.stride);
    to.data = o;
    memcpy(to.shape, (int64_t[4]){1, H, len, dv}, sizeof to.shape);
    memcpy(to.stride, (int64_t[4]){H * c->L * dv, c->L * dv, dv, 1}, sizeof to.stride);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq;
    a.k = &tk;
    a.v = &tv;
    a.out = &to;
    rj_call call;
    RJ_TRY(rj_call_make(p, &a, &call, dg));
    return rj_plan_execute_call(p, &call, dg);
}

static void write_out(const rfjit_decode *s, const rj_dcall *c, const float *o)
{
    const int64_t dv = s->p->spec.dv;
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t t = 0; t < c->len[i]; t++) {
                char *row = rj_view_row(&c->out, i, h, t);
                const float *src = o + ((i * s->H + h) * c->L + t) * dv;
                for (int64_t j = 0; j < dv; j++)
                    rj_view_set(&c->out, row, j, src[j]);
            }
}

rfjit_status rj_decode_hist_run(rfjit_decode *s, const rj_dcall *c, rj_diag *dg)
{
    for (int64_t i = 0; i < c->n; i++)
        RJ_TRY(grow(s, c->slot[i], s->pos[c->slot[i]] + c->len[i], dg));
    const rj_spec *sp = &s->p->spec;
    float *o = NULL, *qs = NULL;
    if (c->out.data) {
        o = rj_decode_scratch(s, RJ_DSCR_OUT, (size_t)(c->n * s->H * c->L * sp->dv) * sizeof(float));
        qs = rj_decode_scratch(s, RJ_DSCR_Q, (size_t)(s->H * c->L * sp->d) * sizeof(float));
        RJ_FAIL_IF(dg, !o || !qs, RFJIT_E_NOMEM, "no memory for a decode call's outputs");
    }
    for (int64_t i = 0; i < c->n; i++)
        append(s, c, i);
    for (int64_t i = 0; o && i < c->n; i++)
        if (c->len[i] > 0)
            RJ_TRY(run_entry(s, c, i, qs, o + i * s->H * c->L * sp->dv, dg));
    /* every entry has its rows: the call takes effect */
    if (o)
        write_out(s, c, o);
    for (int64_t i = 0; i < c->n; i++)
        s->pos[c->slot[i]] += c->len[i];
    return RFJIT_OK;
}
