/* SPDX-License-Identifier: MIT */
/*
 * This file implements incremental causal decoding (rfjit_decode_*). Two modes:
 *
 * - state: linear-template JIT plans carry (S, z, zabs, c) per sequence, exactly the causal
 *   kernel's chunk state (gen/tmpl/linear.c), and each step is a causal kernel call of one
 *   token on it: O(M dv) memory and O(M (d + dv)) work per step, independent of position.
 * - history: every other plan (exact, hybrid, eva, the reference backend) keeps the tokens
 *   seen so far and runs the plan's own causal execute on the prefix, taking its last row.
 *   Correct by construction, but O(t) (exact: O(t) per row, so O(t^2)) work per step; a
 *   KV-cache kernel for these belongs with the performance work.
 */
#include "api/facade.h"
#include "runtime/plan.h"
#include "runtime/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct rfjit_decode {
    const rfjit_plan *p;
    int64_t B, H, pos;
    int stateful;
    float *st, *ws;          /* state mode: B H st_floats; one workspace */
    float *vo;               /* state mode: one step's value and output row (2 dv) */
    float *hq, *hk, *hv, *ho; /* history mode: B H cap rows each */
    int64_t cap;
};

rfjit_status rfjit_decode_create(const rfjit_plan *p, int64_t batch, int64_t heads,
                                 rfjit_decode **out)
{
    if (out)
        *out = NULL;
    if (!p)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_decode_create: plan is NULL");
    if (!out || batch < 1 || heads < 1 || batch > (1 << 20) || heads > (1 << 20))
        return rj_ctx_failf(p->ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_decode_create: out NULL or batch/heads outside [1, 2^20]");
    if (!p->spec.causal)
        return rj_ctx_failf(p->ctx, RFJIT_E_NOT_APPLICABLE,
                            "rfjit_decode_create: the plan is bidirectional; decoding needs a "
                            "causal plan");
    const bool stateful = p->jit && p->kp.tmpl == RJ_TMPL_LINEAR && p->frozen;
    size_t bytes = 0;
    if (stateful && (!rj_mul_size((size_t)(batch * heads), (size_t)p->kp.st_floats * 4, &bytes) ||
                     !rj_fits_memory(bytes)))
        return rj_ctx_failf(p->ctx, RFJIT_E_TOO_LARGE,
                            "a decode state of %lld x %lld sequences (%lld floats each) does not "
                            "fit this machine's memory",
                            (long long)batch, (long long)heads, (long long)p->kp.st_floats);
    rfjit_decode *s = rj_alloc_zero(sizeof *s);
    if (!s)
        return rj_ctx_failf(p->ctx, RFJIT_E_NOMEM, "no memory for a decode state");
    s->p = p;
    s->B = batch;
    s->H = heads;
    s->stateful = stateful;
    if (s->stateful) {
        s->st = rj_alloc_aligned((size_t)(batch * heads) * (size_t)p->kp.st_floats,
                                 sizeof(float));
        s->ws = rj_alloc_aligned((size_t)p->kp.ws_floats, sizeof(float));
        s->vo = rj_alloc_array(2 * (size_t)p->spec.dv, sizeof(float));
        if (!s->st || !s->ws || !s->vo) {
            rfjit_decode_destroy(s);
            return rj_ctx_failf(p->ctx, RFJIT_E_NOMEM, "no memory for a decode state");
        }
    }
    *out = s;
    return RFJIT_OK;
}

void rfjit_decode_destroy(rfjit_decode *s)
{
    if (!s)
        return;
    rj_free(s->st);
    rj_free(s->ws);
    rj_free(s->vo);
    rj_free(s->hq);
    rj_free(s->hk);
    rj_free(s->hv);
    rj_free(s->ho);
    rj_free(s);
}

void rfjit_decode_reset(rfjit_decode *s)
{
    if (s)
        s->pos = 0;
}

int64_t rfjit_decode_position(const rfjit_decode *s)
{
    return s ? s->pos : 0;
}

static rfjit_status check_step(const rfjit_decode *s, const rfjit_tensor *t, const char *name,
                               int dim, bool is_out, rj_diag *dg)
{
    RJ_TRY(rj_tensor_check(t, name, is_out, dg));
    RJ_FAIL_IF(dg, t->shape[0] != s->B || t->shape[1] != s->H || t->shape[2] != 1 ||
                   t->shape[3] != dim,
               RFJIT_E_SHAPE, "%s must be (%lld, %lld, 1, %d) for a decode step", name,
               (long long)s->B, (long long)s->H, dim);
    if (!is_out)
        RJ_TRY(rj_tensor_check_finite(t, name, dg));
    return RFJIT_OK;
}

static float *elem(const rfjit_tensor *t, int64_t b, int64_t h, int64_t j)
{
    return t->data + b * t->stride[0] + h * t->stride[1] + j * t->stride[3];
}

/* NaN in a row is the kernel's mark of a subnormal denominator (gen/tmpl/linear.c): every
 * sequence still takes its step, then the first such (b, h) is reported. */
static rfjit_status step_state(rfjit_decode *s, const rfjit_tensor *q, const rfjit_tensor *k,
                               const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    int64_t bad_b = -1, bad_h = -1;
    const rfjit_plan *p = s->p;
    const int d = p->spec.d, dv = p->spec.dv;
    rj_kernel_fn fn; /* the state is float32 whatever dtype the plan was made for */
    RJ_TRY(rj_plan_kernel_for(p, RFJIT_F32, RFJIT_F32, &fn, dg));
    float qv[RJ_MAX_D], kv[RJ_MAX_D];
    float *vv = s->vo, *ov = s->vo + dv;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++) {
            for (int j = 0; j < d; j++) {
                qv[j] = *elem(q, b, h, j);
                kv[j] = *elem(k, b, h, j);
            }
            for (int j = 0; j < dv; j++)
                vv[j] = *elem(v, b, h, j);
            rj_kargs a = {0};
            a.q = qv;
            a.k = kv;
            a.v = vv;
            a.out = ov;
            a.pq = p->kpar;
            a.pk = p->kpar + p->kp.role_floats;
            a.ws = s->ws;
            a.st = s->st + (size_t)(b * s->H + h) * (size_t)p->kp.st_floats;
            a.lq = a.lk = 1;
            a.sq = d;
            a.sk = d;
            a.sv = dv;
            a.so = dv;
            a.flags = s->pos == 0 ? RJ_KFLAG_INIT : 0;
            fn(&a);
            for (int j = 0; j < dv; j++) {
                *elem(out, b, h, j) = ov[j];
                if (!isfinite(ov[j]) && bad_b < 0) {
                    bad_b = b;
                    bad_h = h;
                }
            }
        }
    RJ_FAIL_IF(dg, bad_b >= 0, RFJIT_E_RANGE,
               "step %lld, sequence (%lld, %lld): the query's denominator underflows float; "
               "the step was taken, its output row is NaN",
               (long long)s->pos, (long long)bad_b, (long long)bad_h);
    return RFJIT_OK;
}

/* Grow the history to hold at least `need` rows per sequence. */
static rfjit_status grow(rfjit_decode *s, int64_t need, rj_diag *dg)
{
    if (need <= s->cap)
        return RFJIT_OK;
    int64_t cap = s->cap ? s->cap : 64;
    while (cap < need)
        cap *= 2;
    const size_t BH = (size_t)(s->B * s->H), d = (size_t)s->p->spec.d,
                 dv = (size_t)s->p->spec.dv;
    float *nq = rj_alloc_array(BH * (size_t)cap * d, sizeof(float));
    float *nk = rj_alloc_array(BH * (size_t)cap * d, sizeof(float));
    float *nv = rj_alloc_array(BH * (size_t)cap * dv, sizeof(float));
    float *no = rj_alloc_array(BH * (size_t)cap * dv, sizeof(float));
    if (!nq || !nk || !nv || !no) {
        rj_free(nq);
        rj_free(nk);
        rj_free(nv);
        rj_free(no);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for %lld decode positions",
                       (long long)cap);
    }
    for (size_t i = 0; i < BH && s->pos > 0; i++) {
        memcpy(nq + i * (size_t)cap * d, s->hq + i * (size_t)s->cap * d,
               (size_t)s->pos * d * sizeof(float));
        memcpy(nk + i * (size_t)cap * d, s->hk + i * (size_t)s->cap * d,
               (size_t)s->pos * d * sizeof(float));
        memcpy(nv + i * (size_t)cap * dv, s->hv + i * (size_t)s->cap * dv,
               (size_t)s->pos * dv * sizeof(float));
    }
    rj_free(s->hq);
    rj_free(s->hk);
    rj_free(s->hv);
    rj_free(s->ho);
    s->hq = nq, s->hk = nk, s->hv = nv, s->ho = no;
    s->cap = cap;
    return RFJIT_OK;
}

static rfjit_status step_history(rfjit_decode *s, const rfjit_tensor *q, const rfjit_tensor *k,
                                 const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    const int64_t d = s->p->spec.d, dv = s->p->spec.dv, t = s->pos, cap = s->cap;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++) {
            const int64_t i = b * s->H + h;
            for (int64_t j = 0; j < d; j++) {
                s->hq[(i * cap + t) * d + j] = *elem(q, b, h, j);
                s->hk[(i * cap + t) * d + j] = *elem(k, b, h, j);
            }
            for (int64_t j = 0; j < dv; j++)
                s->hv[(i * cap + t) * dv + j] = *elem(v, b, h, j);
        }
    const int64_t L = t + 1;
    rfjit_tensor tq = {s->hq, {s->B, s->H, L, d}, {s->H * cap * d, cap * d, d, 1}};
    rfjit_tensor tk = {s->hk, {s->B, s->H, L, d}, {s->H * cap * d, cap * d, d, 1}};
    rfjit_tensor tv = {s->hv, {s->B, s->H, L, dv}, {s->H * cap * dv, cap * dv, dv, 1}};
    rfjit_tensor to = {s->ho, {s->B, s->H, L, dv}, {s->H * cap * dv, cap * dv, dv, 1}};
    RJ_TRY(rj_plan_execute(s->p, &tq, &tk, &tv, &to, dg));
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t j = 0; j < dv; j++)
                *elem(out, b, h, j) = s->ho[((b * s->H + h) * cap + t) * dv + j];
    return RFJIT_OK;
}

rfjit_status rfjit_decode_step(rfjit_decode *s, const rfjit_tensor *q, const rfjit_tensor *k,
                               const rfjit_tensor *v, rfjit_tensor *out)
{
    if (!s)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_decode_step: state is NULL");
    rj_diag dg = {{0}};
    const rj_spec *sp = &s->p->spec;
    rfjit_status st = check_step(s, q, "q", sp->d, false, &dg);
    if (st == RFJIT_OK)
        st = check_step(s, k, "k", sp->d, false, &dg);
    if (st == RFJIT_OK)
        st = check_step(s, v, "v", sp->dv, false, &dg);
    if (st == RFJIT_OK)
        st = check_step(s, out, "out", sp->dv, true, &dg);
    if (st == RFJIT_OK && s->stateful)
        st = step_state(s, q, k, v, out, &dg);
    else if (st == RFJIT_OK) {
        st = grow(s, s->pos + 1, &dg);
        if (st == RFJIT_OK)
            st = step_history(s, q, k, v, out, &dg);
    }
    if (st == RFJIT_OK || (st == RFJIT_E_RANGE && s->stateful))
        s->pos++;
    return rj_ctx_fail(s->p->ctx, st, &dg);
}
