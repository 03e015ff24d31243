/* SPDX-License-Identifier: MIT */
/* This file implements runtime/call.h: the checks of an attention call, in the order a user
 * fixes them (pointers, dtypes, shapes, lengths, aliasing, memory, values). */
#include "runtime/call.h"
#include "runtime/exec.h"
#include "runtime/plan_fit.h"
#include "runtime/pool.h"

#include <string.h>

static const char *const VIEW_NAME[4] = {"q", "k", "v", "out"};

static rfjit_status read_views(const rfjit_attn_args *a, rj_call *c, rj_diag *dg)
{
    const rfjit_tensor_ex *t[4] = {a->q, a->k, a->v, a->out};
    rj_view *v[4] = {&c->q, &c->k, &c->v, &c->out};
    for (int i = 0; i < 4; i++)
        RJ_TRY(rj_view_read(v[i], t[i], VIEW_NAME[i], i == 3, dg));
    RJ_FAIL_IF(dg, c->k.dtype != c->q.dtype || c->v.dtype != c->q.dtype, RFJIT_E_DTYPE,
               "q, k and v must have one dtype (q is %s, k is %s, v is %s)",
               rj_dtype_name(c->q.dtype), rj_dtype_name(c->k.dtype), rj_dtype_name(c->v.dtype));
    return RFJIT_OK;
}

static rfjit_status check_dims(const rj_spec *s, const rj_call *c, rj_diag *dg)
{
    const rj_view *q = &c->q, *k = &c->k, *v = &c->v, *o = &c->out;
    RJ_FAIL_IF(dg, q->shape[3] != s->d || k->shape[3] != s->d, RFJIT_E_SHAPE,
               "q and k must have last dimension d = %d (got %lld and %lld)", s->d,
               (long long)q->shape[3], (long long)k->shape[3]);
    RJ_FAIL_IF(dg, v->shape[3] != s->dv || o->shape[3] != s->dv, RFJIT_E_SHAPE,
               "v and out must have last dimension dv = %d (got %lld and %lld)", s->dv,
               (long long)v->shape[3], (long long)o->shape[3]);
    RJ_FAIL_IF(dg,
               k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0] ||
                   o->shape[0] != q->shape[0],
               RFJIT_E_SHAPE, "batch sizes differ: q %lld, k %lld, v %lld, out %lld",
               (long long)q->shape[0], (long long)k->shape[0], (long long)v->shape[0],
               (long long)o->shape[0]);
    RJ_FAIL_IF(dg, o->shape[1] != q->shape[1], RFJIT_E_SHAPE,
               "batch and heads differ: q has (%lld, %lld), out has (%lld, %lld)",
               (long long)q->shape[0], (long long)q->shape[1], (long long)o->shape[0],
               (long long)o->shape[1]);
    RJ_FAIL_IF(dg, v->shape[1] != k->shape[1], RFJIT_E_SHAPE,
               "k and v head counts differ (%lld vs %lld)", (long long)k->shape[1],
               (long long)v->shape[1]);
    RJ_FAIL_IF(dg, q->shape[1] % k->shape[1] != 0, RFJIT_E_SHAPE,
               "k and v have %lld heads, which does not divide the %lld heads of q (grouped-query "
               "attention needs Hkv | H)",
               (long long)k->shape[1], (long long)q->shape[1]);
    RJ_FAIL_IF(dg, v->shape[2] != k->shape[2], RFJIT_E_SHAPE,
               "k and v lengths differ (%lld vs %lld)", (long long)k->shape[2],
               (long long)v->shape[2]);
    RJ_FAIL_IF(dg, o->shape[2] != q->shape[2], RFJIT_E_SHAPE,
               "out length %lld differs from q length %lld", (long long)o->shape[2],
               (long long)q->shape[2]);
    return RFJIT_OK;
}

static rfjit_status check_offsets(const int32_t *cu, const char *name, int64_t B, int64_t total,
                                  rj_diag *dg)
{
    RJ_FAIL_IF(dg, cu[0] != 0, RFJIT_E_INVALID_ARG, "%s[0] = %d, must be 0", name, (int)cu[0]);
    for (int64_t b = 0; b < B; b++)
        RJ_FAIL_IF(dg, cu[b + 1] < cu[b], RFJIT_E_INVALID_ARG,
                   "%s decreases at entry %lld (%d after %d)", name, (long long)b + 1,
                   (int)cu[b + 1], (int)cu[b]);
    RJ_FAIL_IF(dg, cu[B] != total, RFJIT_E_SHAPE,
               "%s[%lld] = %d, but the packed tensor has %lld rows", name, (long long)B, (int)cu[B],
               (long long)total);
    return RFJIT_OK;
}

static rfjit_status check_packed(const rfjit_attn_args *a, rj_call *c, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !a->cu_seqlens_q || !a->cu_seqlens_k, RFJIT_E_INVALID_ARG,
               "cu_seqlens_q and cu_seqlens_k go together (the packed layout needs both)");
    RJ_FAIL_IF(dg, a->key_lengths || a->query_lengths, RFJIT_E_INVALID_ARG,
               "key_lengths and query_lengths are not taken with the packed layout (its "
               "offsets give the lengths)");
    RJ_FAIL_IF(dg, a->batch < 1 || a->batch > INT32_MAX, RFJIT_E_INVALID_ARG,
               "packed layout: batch = %lld, must be in [1, 2^31)", (long long)a->batch);
    RJ_FAIL_IF(dg, c->q.shape[0] != 1, RFJIT_E_SHAPE,
               "packed layout: the tensors' batch extent must be 1 (got %lld)",
               (long long)c->q.shape[0]);
    c->B = a->batch;
    c->cuq = a->cu_seqlens_q;
    c->cuk = a->cu_seqlens_k;
    RJ_TRY(check_offsets(c->cuq, "cu_seqlens_q", c->B, c->q.shape[2], dg));
    return check_offsets(c->cuk, "cu_seqlens_k", c->B, c->k.shape[2], dg);
}

static rfjit_status check_lengths(const int32_t *len, const char *name, int64_t B, int64_t max,
                                  rj_diag *dg)
{
    for (int64_t b = 0; len && b < B; b++)
        RJ_FAIL_IF(dg, len[b] < 0 || len[b] > max, RFJIT_E_INVALID_ARG,
                   "%s[%lld] = %d is outside [0, %lld]", name, (long long)b, (int)len[b],
                   (long long)max);
    return RFJIT_OK;
}

static rfjit_status check_padded(const rfjit_attn_args *a, rj_call *c, rj_diag *dg)
{
    RJ_FAIL_IF(dg, a->batch != 0, RFJIT_E_INVALID_ARG,
               "batch = %lld is only for the packed layout (cu_seqlens_q/k); a padded call takes "
               "B from the tensors",
               (long long)a->batch);
    c->B = c->q.shape[0];
    c->klen = a->key_lengths;
    c->qlen = a->query_lengths;
    RJ_TRY(check_lengths(c->klen, "key_lengths", c->B, c->k.shape[2], dg));
    return check_lengths(c->qlen, "query_lengths", c->B, c->q.shape[2], dg);
}

static rfjit_status check_mask(const rfjit_attn_args *a, rj_call *c, rj_diag *dg)
{
    c->mask = a->key_mask;
    RJ_FAIL_IF(dg, a->key_mask_stride < 0, RFJIT_E_STRIDE, "key_mask_stride = %lld is negative",
               (long long)a->key_mask_stride);
    if (!c->mask || c->cuq) {
        c->mask_stride = 0;
        return RFJIT_OK;
    }
    const int64_t lk = c->k.shape[2];
    c->mask_stride = a->key_mask_stride ? a->key_mask_stride : lk;
    RJ_FAIL_IF(dg, c->B > 1 && c->mask_stride < lk, RFJIT_E_SHAPE,
               "key_mask_stride = %lld is shorter than a row of %lld keys",
               (long long)c->mask_stride, (long long)lk);
    int64_t span;
    RJ_FAIL_IF(dg,
               __builtin_mul_overflow(c->B - 1, c->mask_stride, &span) ||
                   __builtin_add_overflow(span, lk, &span),
               RFJIT_E_TOO_LARGE, "key_mask's extent overflows");
    return RFJIT_OK;
}

rj_seq rj_call_seq(const rj_call *c, int64_t b)
{
    rj_seq s = {0};
    if (c->cuq) {
        s.q0 = c->cuq[b];
        s.lq = s.rows = c->cuq[b + 1] - c->cuq[b];
        s.k0 = c->cuk[b];
        s.lk = c->cuk[b + 1] - c->cuk[b];
        s.mask = c->mask ? c->mask + s.k0 : NULL;
    } else {
        s.qb = s.kb = b;
        s.rows = c->q.shape[2];
        s.lq = c->qlen ? c->qlen[b] : s.rows;
        s.lk = c->klen ? c->klen[b] : c->k.shape[2];
        s.mask = c->mask ? c->mask + b * c->mask_stride : NULL;
    }
    s.qoff = c->causal ? s.lk - s.lq : 0;
    return s;
}

static rfjit_status check_sequences(const rfjit_plan *p, rj_call *c, rj_diag *dg)
{
    c->max_lq = c->max_lk = 0;
    c->plain = !c->mask && !c->cuq;
    for (int64_t b = 0; b < c->B; b++) {
        const rj_seq s = rj_call_seq(c, b);
        RJ_FAIL_IF(dg, p->spec.causal && s.lq > s.lk, RFJIT_E_SHAPE,
                   "causal attention: sequence %lld has %lld queries but %lld keys (queries are "
                   "the last lq of the lk positions, so lq <= lk%s)",
                   (long long)b, (long long)s.lq, (long long)s.lk,
                   c->klen && !c->qlen ? "; with key_lengths, pass query_lengths too" : "");
        c->max_lq = s.lq > c->max_lq ? s.lq : c->max_lq;
        c->max_lk = s.lk > c->max_lk ? s.lk : c->max_lk;
        if (s.lq != c->q.shape[2] || s.lk != c->k.shape[2] || s.lq != s.rows ||
            (p->spec.causal && s.lq != s.lk))
            c->plain = false;
    }
    if (!p->jit)
        RJ_TRY(rj_exec_ref_fits(&p->spec, c->max_lq, c->max_lk, dg));
    return RFJIT_OK;
}

/* The screen of check_values spread over the context's pool: unit u is one (sequence, head)
 * of q, k or v, cut into parts row ranges; any non-finite value clears all_finite. */
typedef struct screen_job {
    const rj_call *c;
    int64_t parts;
    _Atomic int all_finite;
} screen_job;

static void screen_part(void *arg, int64_t task)
{
    screen_job *sj = arg;
    const rj_call *c = sj->c;
    const int64_t per_seq = c->H + 2 * c->Hkv, u = task / sj->parts, part = task % sj->parts;
    const int64_t b = u / per_seq, i = u % per_seq;
    const rj_seq s = rj_call_seq(c, b);
    const rj_view *t = i < c->H ? &c->q : i < c->H + c->Hkv ? &c->k : &c->v;
    const int64_t h = i < c->H ? i : i < c->H + c->Hkv ? i - c->H : i - c->H - c->Hkv;
    const int64_t sb = i < c->H ? s.qb : s.kb, r0 = i < c->H ? s.q0 : s.k0;
    const int64_t n = i < c->H ? s.lq : s.lk, len = (n + sj->parts - 1) / sj->parts;
    const int64_t first = part * len, rows = n - first < len ? n - first : len;
    if (rows > 0 && !rj_view_rows_finite(t, sb, h, r0 + first, rows))
        sj->all_finite = 0;
}

/* At least this many elements per task of the parallel screen: a fork-join costs about as
 * much as screening 64K floats from memory. */
#define SCREEN_TASK_MIN ((int64_t)1 << 16)

/* Every row a kernel will read is screened (masked keys too: they are loaded); padding past
 * a length is never read, so it may hold anything. A large call is screened on the pool
 * first (on one thread the screen is 4-5% of a FAVOR+ execute at L = 4096); a non-finite
 * value found there is then searched in order, so the message names the same position. */
static rfjit_status check_values(const rfjit_plan *p, const rj_call *c, rj_diag *dg)
{
    const int64_t threads = rj_pool_threads(p->ctx->pool), per_seq = c->H + 2 * c->Hkv;
    const int64_t elems = c->B * (c->H * c->q.shape[2] * c->q.shape[3] +
                                  c->Hkv * c->k.shape[2] * (c->k.shape[3] + c->v.shape[3]));
    if (threads > 1 && elems >= 2 * SCREEN_TASK_MIN) {
        const int64_t units = c->B * per_seq, want = 4 * threads;
        int64_t parts = units >= want ? 1 : (want + units - 1) / units;
        while (parts > 1 && elems / (units * parts) < SCREEN_TASK_MIN)
            parts--;
        screen_job sj = {.c = c, .parts = parts, .all_finite = 1};
        rj_pool_run(p->ctx->pool, units * parts, screen_part, &sj);
        if (sj.all_finite)
            return RFJIT_OK;
    }
    for (int64_t b = 0; b < c->B; b++) {
        const rj_seq s = rj_call_seq(c, b);
        for (int64_t h = 0; h < c->H; h++)
            RJ_TRY(rj_view_check_rows(&c->q, "q", s.qb, h, s.q0, s.lq, dg));
        for (int64_t h = 0; h < c->Hkv; h++) {
            RJ_TRY(rj_view_check_rows(&c->k, "k", s.kb, h, s.k0, s.lk, dg));
            RJ_TRY(rj_view_check_rows(&c->v, "v", s.kb, h, s.k0, s.lk, dg));
        }
    }
    return RFJIT_OK;
}

rfjit_status rj_call_make(const rfjit_plan *p, const rfjit_attn_args *args, rj_call *c, rj_diag *dg)
{
    memset(c, 0, sizeof *c);
    c->causal = p->spec.causal;
    RJ_FAIL_IF(dg, !args, RFJIT_E_INVALID_ARG, "args is NULL");
    /* a fit over a causal call's whole sequence would let every row see later tokens;
     * decoding fits each slot on its prompt instead (rfjit.h) */
    RJ_FAIL_IF(dg, p->spec.causal && !p->frozen, RFJIT_E_NOT_APPLICABLE,
               "estimator '%s' fits its parameters from the whole sequence, which leaks future "
               "tokens into causal rows: create the plan with calib_q and calib_k, or decode "
               "with it (a decode slot fits on its prompt)",
               p->spec.est->name);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    RJ_TRY(rj_desc_read(&a, sizeof a, args, args->size, dg));
    RJ_TRY(read_views(&a, c, dg));
    RJ_TRY(check_dims(&p->spec, c, dg));
    c->H = c->q.shape[1];
    c->Hkv = c->k.shape[1];
    RJ_FAIL_IF(dg, a.untouched_rows != 0 && a.untouched_rows != 1, RFJIT_E_INVALID_ARG,
               "untouched_rows = %d, must be 0 or 1", (int)a.untouched_rows);
    c->untouched = a.untouched_rows;
    RJ_TRY(a.cu_seqlens_q || a.cu_seqlens_k ? check_packed(&a, c, dg) : check_padded(&a, c, dg));
    RJ_TRY(check_mask(&a, c, dg));
    for (int i = 0; i < 3; i++) {
        const rj_view *in[3] = {&c->q, &c->k, &c->v};
        RJ_FAIL_IF(dg, rj_view_overlap(&c->out, in[i]), RFJIT_E_ALIAS, "out overlaps %s",
                   VIEW_NAME[i]);
    }
    RJ_TRY(check_sequences(p, c, dg));
    return check_values(p, c, dg);
}

void rj_view_gather(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n, double scale,
                    double *out)
{
    const int64_t w = t->shape[3];
    for (int64_t l = r0; l < r0 + n; l++) {
        const char *row = rj_view_row(t, b, h, l);
        if (t->dtype == RFJIT_F32 && t->stride[3] == 1) {
            /* the common case without the per-element dtype dispatch, which cost eva and the
             * reference most of their time on long histories */
            for (int64_t c = 0; c < w; c++) {
                float x;
                memcpy(&x, row + 4 * c, sizeof x); /* rows need not be aligned */
                out[c] = scale * x;
            }
            out += w;
            continue;
        }
        for (int64_t c = 0; c < w; c++)
            *out++ = scale * rj_view_get(t, row, c);
    }
}

int64_t rj_call_gather_keys(const rj_call *c, const rj_seq *s, int64_t h, double scale, double *y,
                            double *v, int64_t *pos)
{
    const int64_t d = c->k.shape[3], dv = c->v.shape[3];
    int64_t n = 0;
    for (int64_t j = 0; j < s->lk; j++) {
        if (s->mask && !s->mask[j])
            continue;
        rj_view_gather(&c->k, s->kb, h, s->k0 + j, 1, scale, y + n * d);
        rj_view_gather(&c->v, s->kb, h, s->k0 + j, 1, 1.0, v + n * dv);
        if (pos)
            pos[n] = j;
        n++;
    }
    return n;
}

int64_t rj_call_gather_head(const rfjit_plan *p, const rj_call *c, const rj_seq *s, int64_t h,
                            const rj_head_rows *r, const int64_t **nvis)
{
    const double scale = rj_plan_input_scale(&p->spec);
    rj_view_gather(&c->q, s->qb, h, s->q0, s->lq, scale, r->x);
    const int64_t nk = rj_call_gather_keys(c, s, rj_call_kv_head(c, h), scale, r->y, r->v, r->pos);
    if (nk == 0) { /* every key masked: the queries see nothing */
        rj_view_zero_rows(&c->out, s->qb, h, s->q0, s->lq);
        return 0;
    }
    const int64_t qoff = p->spec.causal ? s->lk - s->lq : 0;
    *nvis = rj_est_nvis(&p->spec, s->lq, s->lk, qoff, r->pos, nk, r->nvis);
    return nk;
}

void rj_view_scatter(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n,
                     const double *in)
{
    for (int64_t l = r0; l < r0 + n; l++) {
        char *row = rj_view_row(t, b, h, l);
        for (int64_t c = 0; c < t->shape[3]; c++)
            rj_view_set(t, row, c, *in++);
    }
}
