/* SPDX-License-Identifier: MIT */
/* This file implements the slot table of runtime/decode.h and the checks every prefill and
 * step makes before it touches a slot. */
#include "runtime/decode.h"
#include "runtime/decode_step.h"

#include <string.h>

static bool alloc_arrays(rfjit_decode *s)
{
    const size_t n = (size_t)s->slots;
    s->pos = rj_alloc_array_zero(n, sizeof *s->pos);
    s->idx = rj_alloc_array(n, sizeof *s->idx);
    s->len = rj_alloc_array(n, sizeof *s->len);
    s->mark = rj_alloc_array_zero(n, 1);
    s->fresh = rj_alloc_array(n, 1);
    s->stp = rj_alloc_array(n, sizeof *s->stp);
    s->parp = rj_alloc_array(n, sizeof *s->parp);
    return s->pos && s->idx && s->len && s->mark && s->fresh && s->stp && s->parp;
}

static bool alloc_states(rfjit_decode *s, size_t bytes)
{
    const rj_kplan *kp = &s->p->kp;
    s->st = rj_alloc_aligned(bytes / sizeof(float), sizeof(float));
    if (!s->st)
        return false;
    /* a slot at position 0 has no state yet; zeros make its snapshot's bytes fixed */
    memset(s->st, 0, bytes);
    if (!s->fitted)
        return true;
    s->par = rj_alloc_array((size_t)(s->slots * s->H) * 2 * (size_t)kp->role_floats, sizeof(float));
    s->has_par = rj_alloc_array_zero((size_t)s->slots, 1);
    return s->par && s->has_par;
}

rfjit_status rj_decode_create(const rfjit_plan *p, int64_t slots, int64_t H, int64_t Hkv,
                              rfjit_decode **out, rj_diag *dg)
{
    *out = NULL;
    RJ_FAIL_IF(dg, !p->spec.causal, RFJIT_E_NOT_APPLICABLE,
               "the plan is bidirectional; decoding needs a causal plan");
    /* the official EVA pads queries and keys alike to whole windows: it has no row for a
     * step's one query against a longer history */
    RJ_FAIL_IF(dg, p->spec.eva_variant == RJ_EVA_OFFICIAL, RFJIT_E_NOT_APPLICABLE,
               "eva_variant 'official' needs as many queries as keys in every call, which a "
               "decode step is not; decode with the principled variant");
    /* its exact blocks are chosen per call from every query block's rows, which a step's one
     * query against a growing history does not repeat */
    RJ_FAIL_IF(dg, p->spec.est->tmpl == RJ_TMPL_BLOCKSPARSE, RFJIT_E_NOT_APPLICABLE,
               "estimator 'blocksparse' chooses its exact key blocks per call over blocks of "
               "queries, which decoding one query at a time cannot repeat; it has no decoding");
    /* a transform's means come from a call's rows: a constant-size state cannot follow them
     * as tokens arrive, and per call over the tokens so far a step would not repeat the
     * execute's estimate */
    RJ_FAIL_IF(dg, p->spec.xform != 0, RFJIT_E_NOT_APPLICABLE,
               "the plan has transforms (rfjit_attn_desc.transform), which decoding does not "
               "apply; decode with a plan without them");
    const bool compat = p->compat_fast;
    const bool state = compat || (p->jit && p->kp.tmpl == RJ_TMPL_LINEAR);
    RJ_FAIL_IF(dg, !state && !p->frozen, RFJIT_E_NOT_APPLICABLE,
               "estimator '%s' on the reference backend: a causal plan that fits per slot "
               "needs the JIT backend, or calib_q and calib_k",
               p->spec.est->name);
    const int64_t nst = state && !p->frozen ? H : Hkv;
    const int64_t st_floats = compat ? rj_decode_compat_floats(&p->spec) : p->kp.st_floats;
    size_t bytes = 0;
    RJ_FAIL_IF(dg,
               state && (!rj_mul_size((size_t)slots, (size_t)nst, &bytes) ||
                         !rj_mul_size(bytes, (size_t)st_floats * sizeof(float), &bytes) ||
                         !rj_fits_memory(bytes)),
               RFJIT_E_TOO_LARGE,
               "a decode state of %lld slots x %lld heads (%lld floats each) does not fit this "
               "machine's memory",
               (long long)slots, (long long)nst, (long long)st_floats);
    rfjit_decode *s = rj_alloc_zero(sizeof *s);
    RJ_FAIL_IF(dg, !s, RFJIT_E_NOMEM, "no memory for a decode state");
    s->p = p;
    s->slots = slots;
    s->H = H;
    s->Hkv = Hkv;
    s->mode = compat ? RJ_DECODE_COMPAT : state ? RJ_DECODE_STATE : RJ_DECODE_HISTORY;
    s->fitted = state && !p->frozen;
    s->nst = nst;
    bool ok = alloc_arrays(s);
    if (ok && state)
        ok = alloc_states(s, bytes);
    if (ok && !state)
        ok = (s->hist = rj_alloc_array_zero((size_t)slots, sizeof *s->hist)) != NULL;
    if (!ok) {
        rj_decode_free(s);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for a decode state of %lld slots",
                       (long long)slots);
    }
    *out = s;
    return RFJIT_OK;
}

void rj_decode_free(rfjit_decode *s)
{
    if (!s)
        return;
    for (int64_t i = 0; s->hist && i < s->slots; i++) {
        rj_free(s->hist[i].k);
        rj_free(s->hist[i].v);
    }
    for (int i = 0; i < RJ_DSCRATCH; i++)
        rj_free(s->scr[i]);
    rj_step_ws_free(s->stws);
    void *own[] = {s->pos, s->st,   s->par,   s->has_par, s->hist,        s->idx,
                   s->len, s->mark, s->fresh, s->stp,     (void *)s->parp};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        rj_free(own[i]);
    rj_free(s);
}

void *rj_decode_scratch(rfjit_decode *s, int which, size_t n)
{
    if (s->scr[which] && s->nscr[which] >= n)
        return s->scr[which];
    rj_free(s->scr[which]);
    s->scr[which] = rj_alloc_aligned(n ? n : 1, 1);
    s->nscr[which] = s->scr[which] ? n : 0;
    return s->scr[which];
}

void rj_decode_reset_slot(rfjit_decode *s, int64_t i)
{
    s->pos[i] = 0;
    if (s->has_par)
        s->has_par[i] = 0;
}

static rfjit_status check_shape(const rj_view *t, const char *name, int64_t n, int64_t heads,
                                int64_t L, int64_t dim, rj_diag *dg)
{
    RJ_FAIL_IF(dg,
               t->shape[0] != n || t->shape[1] != heads || t->shape[2] != L || t->shape[3] != dim,
               RFJIT_E_SHAPE, "%s is (%lld, %lld, %lld, %lld), must be (%lld, %lld, %lld, %lld)",
               name, (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
               (long long)t->shape[3], (long long)n, (long long)heads, (long long)L,
               (long long)dim);
    return RFJIT_OK;
}

static rfjit_status read_views(const rfjit_decode *s, const rfjit_decode_args *a, bool step,
                               rj_dcall *c, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !a->q || !a->k || !a->v, RFJIT_E_INVALID_ARG, "%s is NULL",
               !a->q   ? "q"
               : !a->k ? "k"
                       : "v");
    RJ_FAIL_IF(dg, step && !a->out, RFJIT_E_INVALID_ARG, "out is NULL (a step has outputs)");
    RJ_TRY(rj_view_read(&c->q, a->q, "q", false, dg));
    RJ_TRY(rj_view_read(&c->k, a->k, "k", false, dg));
    RJ_TRY(rj_view_read(&c->v, a->v, "v", false, dg));
    memset(&c->out, 0, sizeof c->out);
    if (a->out)
        RJ_TRY(rj_view_read(&c->out, a->out, "out", true, dg));
    RJ_FAIL_IF(dg, c->k.dtype != c->q.dtype || c->v.dtype != c->q.dtype, RFJIT_E_DTYPE,
               "q, k and v must have one dtype (q is %s, k is %s, v is %s)",
               rj_dtype_name(c->q.dtype), rj_dtype_name(c->k.dtype), rj_dtype_name(c->v.dtype));
    c->n = c->q.shape[0];
    c->L = c->q.shape[2];
    RJ_FAIL_IF(dg, c->n > s->slots, RFJIT_E_SHAPE,
               "q has %lld entries but the state has %lld slots", (long long)c->n,
               (long long)s->slots);
    RJ_FAIL_IF(dg, step && c->L != 1, RFJIT_E_SHAPE,
               "a step takes one token per entry (q has length %lld)", (long long)c->L);
    const rj_spec *sp = &s->p->spec;
    RJ_TRY(check_shape(&c->q, "q", c->n, s->H, c->L, sp->d, dg));
    RJ_TRY(check_shape(&c->k, "k", c->n, s->Hkv, c->L, sp->d, dg));
    RJ_TRY(check_shape(&c->v, "v", c->n, s->Hkv, c->L, sp->dv, dg));
    if (c->out.data) {
        RJ_TRY(check_shape(&c->out, "out", c->n, s->H, c->L, sp->dv, dg));
        const rj_view *in[3] = {&c->q, &c->k, &c->v};
        for (int i = 0; i < 3; i++)
            RJ_FAIL_IF(dg, rj_view_overlap(&c->out, in[i]), RFJIT_E_ALIAS, "out overlaps %s",
                       i == 0   ? "q"
                       : i == 1 ? "k"
                                : "v");
    }
    return RFJIT_OK;
}

static rfjit_status check_slots(rfjit_decode *s, const rfjit_decode_args *a, rj_dcall *c,
                                rj_diag *dg)
{
    rfjit_status st = RFJIT_OK;
    int64_t ok = 0; /* entries taken: their slots are marked */
    for (; ok < c->n && st == RFJIT_OK; ok++) {
        const int64_t slot = a->index ? a->index[ok] : ok;
        if (slot < 0 || slot >= s->slots)
            st = rj_fail(dg, RFJIT_E_INVALID_ARG, "index[%lld] = %lld is outside [0, %lld)",
                         (long long)ok, (long long)slot, (long long)s->slots);
        else if (s->mark[slot])
            st = rj_fail(dg, RFJIT_E_INVALID_ARG, "index[%lld] = %lld repeats an earlier entry",
                         (long long)ok, (long long)slot);
        else {
            s->mark[slot] = 1;
            s->idx[ok] = slot;
            continue;
        }
        break;
    }
    for (int64_t j = 0; j < ok; j++)
        s->mark[s->idx[j]] = 0;
    RJ_TRY(st);
    for (int64_t i = 0; i < c->n; i++) {
        const int32_t l = a->lengths ? a->lengths[i] : (int32_t)c->L;
        RJ_FAIL_IF(dg, l < 0 || l > c->L, RFJIT_E_INVALID_ARG,
                   "lengths[%lld] = %d is outside [0, %lld]", (long long)i, (int)l,
                   (long long)c->L);
        s->len[i] = l;
    }
    c->slot = s->idx;
    c->len = s->len;
    return RFJIT_OK;
}

static rfjit_status check_values(const rfjit_decode *s, const rj_dcall *c, rj_diag *dg)
{
    for (int64_t i = 0; i < c->n; i++) {
        for (int64_t h = 0; h < s->H; h++)
            RJ_TRY(rj_view_check_rows(&c->q, "q", i, h, 0, c->len[i], dg));
        for (int64_t h = 0; h < s->Hkv; h++) {
            RJ_TRY(rj_view_check_rows(&c->k, "k", i, h, 0, c->len[i], dg));
            RJ_TRY(rj_view_check_rows(&c->v, "v", i, h, 0, c->len[i], dg));
        }
    }
    return RFJIT_OK;
}

rfjit_status rj_decode_check(rfjit_decode *s, const rfjit_decode_args *args, bool step, rj_dcall *c,
                             rj_diag *dg)
{
    memset(c, 0, sizeof *c);
    RJ_FAIL_IF(dg, !args, RFJIT_E_INVALID_ARG, "args is NULL");
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    RJ_TRY(rj_desc_read(&a, sizeof a, args, args->size, dg));
    RJ_TRY(read_views(s, &a, step, c, dg));
    RJ_TRY(check_slots(s, &a, c, dg));
    return check_values(s, c, dg);
}

/* A fitted slot's parameters come from its first prefill's prompt: before one, a step has
 * nothing to compute its features with. */
static rfjit_status check_fitted(const rfjit_decode *s, const rj_dcall *c, rj_diag *dg)
{
    for (int64_t i = 0; s->fitted && i < c->n; i++)
        RJ_FAIL_IF(dg, c->len[i] > 0 && !s->has_par[c->slot[i]], RFJIT_E_STATE,
                   "slot %lld has not been prefilled: estimator '%s' fits its parameters on "
                   "the slot's first prompt (prefill it, or calibrate the plan)",
                   (long long)c->slot[i], s->p->spec.est->name);
    return RFJIT_OK;
}

rfjit_status rj_decode_prefill(rfjit_decode *s, const rfjit_decode_args *args, rj_diag *dg)
{
    rj_dcall c;
    RJ_TRY(rj_decode_check(s, args, false, &c, dg));
    if (s->mode == RJ_DECODE_COMPAT)
        return rj_decode_compat_run(s, &c, dg);
    return s->mode == RJ_DECODE_STATE ? rj_decode_state_prefill(s, &c, dg)
                                      : rj_decode_hist_run(s, &c, dg);
}

rfjit_status rj_decode_step(rfjit_decode *s, const rfjit_decode_args *args, rj_diag *dg)
{
    rj_dcall c;
    RJ_TRY(rj_decode_check(s, args, true, &c, dg));
    RJ_TRY(check_fitted(s, &c, dg));
    if (s->mode == RJ_DECODE_COMPAT)
        return rj_decode_compat_run(s, &c, dg);
    return s->mode == RJ_DECODE_STATE ? rj_decode_state_step(s, &c, dg)
                                      : rj_decode_hist_run(s, &c, dg);
}
