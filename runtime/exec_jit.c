/* SPDX-License-Identifier: MIT */
/*
 * This file runs a plan on its JIT kernel: it lowers the estimator's parameters into the
 * kernel's float layout (once for frozen plans, per (batch, head) for estimators fitted per
 * call), and calls the kernel once per (batch, head) with that slice's row pointers and
 * strides (exact attention, and causal linear grouped-query attention: once per key/value
 * head, for all of its query heads, run_group). Rows must have contiguous elements; a view whose
 * last stride is not 1 is packed into a contiguous copy first (and the output unpacked), which
 * costs one pass over it.
 */
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/plan_fit.h"
#include "runtime/pool.h"
#include "runtime/query_blocks.h"
#include "runtime/tensor.h"
#include "runtime/xform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Doubles rj_lower_params needs as scratch. */
static size_t lower_size(const rfjit_plan *p)
{
    const size_t d = (size_t)p->spec.d, P = (size_t)p->kp.P;
    return P + (p->kp.norm == RJ_KN_DENSE ? d * d : d) + P * d;
}

static void lower(const rfjit_plan *p, const double *params, float *kpar, double *buf);

rfjit_status rj_lower_params(const rfjit_plan *p, const double *params, float *kpar,
                             rj_diag *dg)
{
    if (p->kp.tmpl != RJ_TMPL_LINEAR)
        return RFJIT_OK;
    double *buf = rj_alloc_array(lower_size(p), sizeof(double));
    RJ_FAIL_IF(dg, !buf, RFJIT_E_NOMEM, "no memory to lower kernel parameters");
    lower(p, params, kpar, buf);
    rj_free(buf);
    return RFJIT_OK;
}

static void lower(const rfjit_plan *p, const double *params, float *kpar, double *buf)
{
    const rj_spec *s = &p->spec;
    const rj_kplan *kp = &p->kp;
    const size_t d = (size_t)s->d, P = (size_t)kp->P;
    const size_t ng = kp->norm == RJ_KN_DENSE ? d * d : d;
    for (int role = 0; role < 2; role++) {
        rj_klowered lw = {0, -0.5, 0, buf, buf + P, buf + P + ng};
        for (size_t i = 0; i < P; i++)
            lw.b[i] = 0;
        for (size_t i = 0; i < ng; i++)
            lw.g[i] = kp->norm == RJ_KN_DIAG ? 1.0 : 0.0;
        s->est->klower(s, params, role ? RJ_ROLE_K : RJ_ROLE_Q, &lw);
        float *o = kpar + (size_t)role * (size_t)kp->role_floats;
        memset(o, 0, (size_t)kp->role_floats * sizeof(float));
        o[0] = (float)lw.h0;
        o[1] = (float)lw.gamma;
        o[2] = (float)lw.gamma2;
        for (size_t r = 0; r < P; r++)
            o[kp->off_b + (int64_t)r] = (float)lw.b[r];
        for (size_t i = 0; i < ng; i++)
            o[kp->off_g + (int64_t)i] = (float)lw.g[i];
        for (size_t i = 0; i < P * d; i++)
            o[kp->off_w + (int64_t)i] = (float)lw.W[i];
    }
}

static void scratch_free(rj_exec_scratch *c)
{
    rj_free(c->ws);
    rj_free(c->st);
    rj_free(c->kpar);
    rj_free(c->low);
    for (int i = 0; i < RJ_SLOTS; i++)
        rj_free(c->slot[i]);
    if (c->fs_ready)
        rj_fit_scratch_free(&c->fs);
    rj_free(c);
}

void rj_exec_pool_free(rfjit_plan *p)
{
    for (rj_exec_scratch *c = p->pool, *n; c; c = n) {
        n = c->next;
        scratch_free(c);
    }
    p->pool = NULL;
}

void *rj_scratch_buf(rj_exec_scratch *c, int slot, size_t n, size_t size)
{
    size_t bytes;
    if (!rj_mul_size(n ? n : 1, size, &bytes))
        return NULL;
    if (c->slot[slot] && c->nslot[slot] >= bytes)
        return c->slot[slot];
    rj_free(c->slot[slot]);
    c->slot[slot] = rj_alloc_aligned(bytes, 1);
    c->nslot[slot] = c->slot[slot] ? bytes : 0;
    return c->slot[slot];
}

rj_exec_scratch *rj_scratch_take(const rfjit_plan *p, rj_diag *dg)
{
    rfjit_plan *mp = (rfjit_plan *)p; /* the pool is the one mutable part of a plan */
    pthread_mutex_lock(&mp->pool_mu);
    rj_exec_scratch *c = mp->pool;
    if (c)
        mp->pool = c->next;
    pthread_mutex_unlock(&mp->pool_mu);
    if (c)
        return c;
    const rj_kplan *kp = &p->kp;
    c = rj_alloc_zero(sizeof *c);
    int ok = c != NULL;
    if (ok) {
        c->ws = rj_alloc_aligned((size_t)kp->ws_floats, sizeof(float));
        c->st = rj_alloc_aligned((size_t)kp->st_floats, sizeof(float));
        ok = c->ws && c->st;
    }
    if (ok && kp->tmpl == RJ_TMPL_LINEAR && !p->frozen) {
        c->kpar = rj_alloc_array(2 * (size_t)kp->role_floats, sizeof(float));
        c->low = rj_alloc_array(lower_size(p), sizeof(double));
        ok = c->kpar && c->low && rj_fit_scratch_init(&c->fs, p, dg) == RFJIT_OK;
        c->fs_ready = ok;
    }
    if (!ok) {
        if (c)
            scratch_free(c);
        rj_fail(dg, RFJIT_E_NOMEM, "no memory for the kernel's workspace");
        return NULL;
    }
    return c;
}

void rj_scratch_give(const rfjit_plan *p, rj_exec_scratch *c)
{
    rfjit_plan *mp = (rfjit_plan *)p;
    pthread_mutex_lock(&mp->pool_mu);
    c->next = mp->pool;
    mp->pool = c;
    pthread_mutex_unlock(&mp->pool_mu);
}

/* The scratch slots of this file's executes (exec_scratch.h): contiguous copies of the four
 * views, the rows gathered for a per-call fit, and the states of the split paths. */
enum jit_slot { SLOT_Q, SLOT_K, SLOT_V, SLOT_OUT, SLOT_X, SLOT_Y, SLOT_STATES, JIT_SLOTS };
_Static_assert(JIT_SLOTS <= RJ_SLOTS, "every slot of exec_jit.c exists in a scratch");

/* Rows r0 .. r0 + n - 1 of slice (b, h) as the kernel reads them: in place when their
 * elements are contiguous (*rs = the row stride), else packed into scratch slot `slot`
 * (*rs = the row length). NULL: no memory. */
static char *rows_in(rj_exec_scratch *c, enum jit_slot slot, const rj_view *t, int64_t b, int64_t h,
                     int64_t r0, int64_t n, int64_t *rs)
{
    if (rj_view_rows_contiguous(t)) {
        *rs = t->stride[2];
        return rj_view_row(t, b, h, r0);
    }
    const int64_t dim = t->shape[3];
    char *tmp = rj_scratch_buf(c, slot, (size_t)(n * dim), (size_t)t->esize);
    for (int64_t i = 0; tmp && i < n; i++) {
        const char *row = rj_view_row(t, b, h, r0 + i);
        for (int64_t j = 0; j < dim; j++)
            memcpy(tmp + (i * dim + j) * t->esize, row + j * t->stride[3] * t->esize,
                   (size_t)t->esize);
    }
    *rs = dim;
    return tmp;
}

static void rows_out(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n, const char *tmp)
{
    const int64_t dim = t->shape[3];
    for (int64_t i = 0; i < n; i++) {
        char *row = rj_view_row(t, b, h, r0 + i);
        for (int64_t j = 0; j < dim; j++)
            memcpy(row + j * t->stride[3] * t->esize, tmp + (i * dim + j) * t->esize,
                   (size_t)t->esize);
    }
}

/* One execute, split into tasks that the context's pool runs in parallel; each task takes
 * its own scratch, so tasks share nothing but the read-only plan and call, and the bits of a
 * (sequence, head) do not depend on the thread count. */
typedef struct exec_job {
    const rfjit_plan *p;
    const rj_call *c;
    rj_kernel_fn fn;
    pthread_mutex_t mu;
    rfjit_status st; /* the first failure */
    rj_diag dg;
} exec_job;

static void fail_job(exec_job *j, rfjit_status s, const rj_diag *dg)
{
    pthread_mutex_lock(&j->mu);
    if (j->st == RFJIT_OK) {
        j->st = s;
        j->dg = *dg;
    }
    pthread_mutex_unlock(&j->mu);
}

/* The key-role parameters of sequence b at key/value head kvh: the plan's, or with a
 * transformed call's query centring folded in (runtime/xform.h). */
static const float *key_params(const exec_job *j, int64_t b, int64_t kvh)
{
    const rfjit_plan *p = j->p;
    if (j->c->xpk)
        return j->c->xpk + (b * j->c->Hkv + kvh) * p->kp.role_floats;
    return p->kpar ? p->kpar + p->kp.role_floats : NULL;
}

/* Per-call parameters of a fitted estimator, from the sequence's queries and visible keys;
 * *nk = 0 when no key is visible (then nothing is fitted). */
static rfjit_status fit_call(exec_job *j, rj_exec_scratch *c, const rj_seq *sq, int64_t b,
                             int64_t h, int64_t *nk, rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_spec *s = &p->spec;
    double *x = rj_scratch_buf(c, SLOT_X, (size_t)sq->lq * (size_t)s->d, sizeof(double));
    double *y = rj_scratch_buf(c, SLOT_Y, (size_t)sq->lk * (size_t)(s->d + s->dv), sizeof(double));
    RJ_FAIL_IF(dg, !x || !y, RFJIT_E_NOMEM, "no memory for the kernel's workspace");
    const double scale = rj_plan_input_scale(s);
    rj_view_gather(&j->c->q, sq->qb, h, sq->q0, sq->lq, scale, x);
    *nk = rj_call_gather_keys(j->c, sq, rj_call_kv_head(j->c, h), scale, y, y + sq->lk * s->d,
                              NULL);
    if (*nk == 0)
        return RFJIT_OK;
    const double *params = NULL;
    RJ_TRY(rj_fit_slice(p, &c->fs, x, sq->lq, y, *nk, &params, dg));
    lower(p, params, c->kpar, c->low);
    if (j->c->xu)
        rj_xform_fold(&p->kp, c->kpar + p->kp.role_floats,
                      j->c->xu + (b * j->c->Hkv + rj_call_kv_head(j->c, h)) * s->d);
    return RFJIT_OK;
}

/* The kernel calls of one (sequence, head). A linear causal sequence with earlier context
 * (qoff > 0) first takes keys 0 .. qoff - 1 into the state without queries, then runs the
 * aligned causal scan over the rest; the softmax template takes qoff itself. */
static void call_kernel(exec_job *j, rj_kargs *a, const rj_seq *sq)
{
    const rfjit_plan *p = j->p;
    if (!p->kp.causal || sq->qoff == 0 || p->kp.tmpl != RJ_TMPL_LINEAR) {
        a->qoff = p->kp.causal ? sq->qoff : 0;
        j->fn(a);
        return;
    }
    rj_kargs pre = *a;
    pre.lq = 0;
    pre.lk = sq->qoff;
    pre.flags = RJ_KFLAG_INIT | RJ_KFLAG_NO_QUERIES;
    j->fn(&pre);
    const int64_t ek = j->c->k.esize, ev = j->c->v.esize;
    a->k = (const float *)((const char *)a->k + sq->qoff * a->sk * ek);
    a->v = (const float *)((const char *)a->v + sq->qoff * a->sv * ev);
    a->km = a->km ? a->km + sq->qoff : NULL;
    a->lk -= sq->qoff;
    a->flags = 0;
    j->fn(a);
}

static void run_seq_head(exec_job *j, rj_exec_scratch *c, const rj_seq *sq, int64_t b, int64_t h,
                         rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_call *call = j->c;
    const int64_t kvh = rj_call_kv_head(call, h);
    const float *kpar = p->kpar, *pk = key_params(j, b, kvh);
    if (p->kp.tmpl == RJ_TMPL_LINEAR && !p->frozen) {
        int64_t nk = 0;
        rfjit_status st = fit_call(j, c, sq, b, h, &nk, dg);
        if (st != RFJIT_OK) {
            fail_job(j, st, dg);
            return;
        }
        if (nk == 0) {
            rj_view_zero_rows(&call->out, sq->qb, h, sq->q0, sq->lq);
            return;
        }
        kpar = c->kpar;
        pk = c->kpar + p->kp.role_floats;
    }
    rj_kargs a = {0};
    a.q = (const float *)rows_in(c, SLOT_Q, &call->q, sq->qb, h, sq->q0, sq->lq, &a.sq);
    a.k = (const float *)rows_in(c, SLOT_K, &call->k, sq->kb, kvh, sq->k0, sq->lk, &a.sk);
    a.v = (const float *)rows_in(c, SLOT_V, &call->v, sq->kb, kvh, sq->k0, sq->lk, &a.sv);
    const bool pack_out = !rj_view_rows_contiguous(&call->out);
    char *out = pack_out ? rj_scratch_buf(c, SLOT_OUT, (size_t)(sq->lq * call->out.shape[3]),
                                          (size_t)call->out.esize)
                         : rj_view_row(&call->out, sq->qb, h, sq->q0);
    if (!a.q || !a.k || !a.v || !out) {
        rj_fail(dg, RFJIT_E_NOMEM, "no memory for the kernel's workspace");
        fail_job(j, RFJIT_E_NOMEM, dg);
        return;
    }
    a.out = (float *)out;
    a.so = pack_out ? call->out.shape[3] : call->out.stride[2];
    a.pq = kpar;
    a.pk = pk;
    a.ws = c->ws;
    a.st = c->st;
    a.lq = sq->lq;
    a.lk = sq->lk;
    a.km = sq->mask;
    a.flags = RJ_KFLAG_INIT;
    call_kernel(j, &a, sq);
    if (pack_out)
        rows_out(&call->out, sq->qb, h, sq->q0, sq->lq, out);
}

/*
 * Grouped-query attention: one kernel call takes the H / Hkv query heads of key/value head
 * kvh (kabi.h ng), so causal linear attention computes the keys' features and the state once
 * per group, and exact attention reads (and widens) each key and value tile once per pass of
 * heads, not once per query head. The query heads of a group are adjacent
 * (h / (H / Hkv) = kvh), and each one's rows come out as a call of its own would give them,
 * bit for bit. Exact attention also cuts a sequence's queries into blocks of equal work
 * (runtime/query_blocks.h) when the (sequence, group) pairs alone would leave threads idle;
 * a query's bits do not depend on the block it is in.
 */
typedef struct group_job {
    exec_job *j;
    rj_qcut cut;
} group_job;

/* Queries [first, first + n) of the sequence: one kernel call from its own diagonal offset. */
static void run_queries(exec_job *j, rj_exec_scratch *c, rj_seq sq, int64_t b, int64_t kvh,
                        int64_t first, int64_t n)
{
    const rj_call *call = j->c;
    const rfjit_plan *p = j->p;
    const int64_t group = call->H / call->Hkv;
    sq.q0 += first;
    sq.qoff += p->kp.causal ? first : 0;
    sq.lq = n;
    rj_kargs a = {0};
    a.q = rj_view_row(&call->q, sq.qb, kvh * group, sq.q0);
    a.k = rj_view_row(&call->k, sq.kb, kvh, sq.k0);
    a.v = rj_view_row(&call->v, sq.kb, kvh, sq.k0);
    a.out = rj_view_row(&call->out, sq.qb, kvh * group, sq.q0);
    a.sq = call->q.stride[2];
    a.sk = call->k.stride[2];
    a.sv = call->v.stride[2];
    a.so = call->out.stride[2];
    a.pq = p->kpar;
    a.pk = key_params(j, b, kvh);
    a.ws = c->ws;
    a.st = c->st;
    a.lq = sq.lq;
    a.lk = sq.lk;
    a.km = sq.mask;
    a.flags = RJ_KFLAG_INIT;
    a.ng = group;
    a.sqh = call->q.stride[1];
    a.soh = call->out.stride[1];
    call_kernel(j, &a, &sq);
}

static void run_group(void *arg, int64_t task)
{
    const group_job *gj = arg;
    exec_job *j = gj->j;
    const rj_call *call = j->c;
    const int64_t part = task % gj->cut.tasks;
    task /= gj->cut.tasks;
    const rj_seq sq = rj_call_seq(call, task / call->Hkv);
    if (sq.lq == 0 || sq.lk == 0)
        return;
    int64_t first, n;
    rj_qcut_block(&gj->cut, sq.lq, sq.lk, j->p->kp.causal ? sq.qoff : 0, part, &first, &n);
    if (n == 0)
        return;
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(j->p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    run_queries(j, c, sq, task / call->Hkv, task % call->Hkv, first, n);
    rj_scratch_give(j->p, c);
}

static void run_slice(void *arg, int64_t task)
{
    exec_job *j = arg;
    const rj_seq sq = rj_call_seq(j->c, task / j->c->H);
    if (sq.lq == 0 || sq.lk == 0)
        return;
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(j->p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    run_seq_head(j, c, &sq, task / j->c->H, task % j->c->H, &dg);
    rj_scratch_give(j->p, c);
}

/*
 * Bidirectional linear attention through key states: the keys of each (sequence, key/value
 * head) are cut into nb blocks whose (S, z, zabs, c) states the kernel builds independently
 * (lq = 0), the states are merged in block order (S = sum_b e^{c_b - c} S_b, c = max_b c_b),
 * and then query blocks of every query head of the group read the merged state (lk = 0). One
 * state serves H / Hkv query heads (grouped-query attention divides the key work by that),
 * and a long sequence spreads over several cores. nb depends on the key count only, never on
 * the thread count, so a slice's bits stay the same for any number of threads; the cost for
 * one thread is nb - 1 merges of an m x dv state, nothing per token. Key slices go in groups
 * of `threads` so that at most threads x nb states are alive.
 */
enum { KEY_BLOCK_MIN = 2048, KEY_BLOCKS_MAX = 8, QUERY_BLOCK_MIN = 512 };

typedef struct split_job {
    exec_job *j;
    int64_t s0, ns;      /* key slices s0 .. s0 + ns - 1: (sequence, kv head), batch-major */
    int64_t nb;          /* key blocks per slice allotted (a slice uses key_blocks(lk)) */
    int64_t nqb;         /* query blocks per query head allotted */
    float *states;       /* ns x nb states of st_floats */
} split_job;

static int64_t round_up64(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

static int64_t key_blocks(int64_t lk)
{
    const int64_t nb = lk / KEY_BLOCK_MIN;
    return nb < 1 ? 1 : nb > KEY_BLOCKS_MAX ? KEY_BLOCKS_MAX : nb;
}

/* How an execute is spread over the pool: one kernel call per (sequence, head), key states
 * (exec_key_states), a causal scan over threads (exec_scan), or one kernel call per
 * (sequence, key/value head) for all the query heads of its group (run_group; exact, and
 * causal linear). */
typedef enum exec_split {
    SPLIT_SLICES,
    SPLIT_KEY_STATES,
    SPLIT_CAUSAL_SCAN,
    SPLIT_GROUPS
} exec_split;

static exec_split split_kind(const rfjit_plan *p, const rj_call *c)
{
    const rj_view *t[4] = {&c->q, &c->k, &c->v, &c->out};
    for (int i = 0; i < 4; i++)
        if (!rj_view_rows_contiguous(t[i]))
            return SPLIT_SLICES;
    if (p->kp.tmpl == RJ_TMPL_SOFTMAX)
        return SPLIT_GROUPS;
    if (!p->frozen)
        return SPLIT_SLICES;
    const int64_t lk = c->max_lk;
    if (!p->kp.causal)
        return c->H > c->Hkv || key_blocks(lk) >= 2 ? SPLIT_KEY_STATES : SPLIT_SLICES;
    if (c->H > c->Hkv)
        return SPLIT_GROUPS;
    return c->plain && key_blocks(lk) >= 2 && c->B * c->H < rj_pool_threads(p->ctx->pool)
               ? SPLIT_CAUSAL_SCAN
               : SPLIT_SLICES;
}

static float *state_of(const split_job *sj, int64_t s, int64_t b)
{
    return sj->states + (s * sj->nb + b) * sj->j->p->kp.st_floats;
}

/* Key block length of a sequence of lk keys cut into key_blocks(lk) blocks. */
static int64_t block_len(const rfjit_plan *p, int64_t lk)
{
    const int64_t nb = key_blocks(lk);
    return round_up64((lk + nb - 1) / nb, p->kp.T);
}

static void split_call(exec_job *j, rj_kargs *a, int64_t b, int64_t kvh, float *st)
{
    const rfjit_plan *p = j->p;
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    a->sq = j->c->q.stride[2];
    a->sk = j->c->k.stride[2];
    a->sv = j->c->v.stride[2];
    a->so = j->c->out.stride[2];
    a->pq = p->kpar;
    a->pk = key_params(j, b, kvh);
    a->ws = c->ws;
    a->st = st;
    j->fn(a);
    rj_scratch_give(p, c);
}

static void split_keys(void *arg, int64_t task)
{
    split_job *sj = arg;
    exec_job *j = sj->j;
    const rj_call *c = j->c;
    const int64_t s = task / sj->nb, b = task % sj->nb, g = sj->s0 + s;
    const rj_seq sq = rj_call_seq(c, g / c->Hkv);
    const int64_t kvh = g % c->Hkv, kb = block_len(j->p, sq.lk), k0 = b * kb;
    if (b >= key_blocks(sq.lk) || (b > 0 && k0 >= sq.lk))
        return;
    rj_kargs a = {0};
    a.k = (const float *)rj_view_row(&c->k, sq.kb, kvh, sq.k0 + k0);
    a.v = (const float *)rj_view_row(&c->v, sq.kb, kvh, sq.k0 + k0);
    a.km = sq.mask ? sq.mask + k0 : NULL;
    a.lk = sq.lk - k0 < kb ? sq.lk - k0 : kb;
    a.lq = 0;
    a.flags = RJ_KFLAG_INIT;
    split_call(j, &a, g / c->Hkv, kvh, state_of(sj, s, b));
}

/* out = a (+) b, the state of both key sets: S = e^{c_a - c} S_a + e^{c_b - c} S_b (and z, zabs)
 * with c = max(c_a, c_b); out may be a. */
static void merge2(const rj_kplan *kp, float *out, const float *a, const float *b)
{
    const float ca = a[kp->st_c], cb = b[kp->st_c], c = fmaxf(ca, cb);
    if (c == -INFINITY) {
        if (out != a)
            memcpy(out, a, (size_t)kp->st_floats * sizeof(float));
        return;
    }
    const float wa = expf(ca - c), wb = expf(cb - c);
    for (int64_t i = 0; i < kp->st_c; i++)
        out[i] = wa * a[i] + wb * b[i];
    out[kp->st_c] = c;
}

/* Block 0's state becomes the merge of all: in block order, so the bits are fixed. */
static void split_merge(void *arg, int64_t s)
{
    split_job *sj = arg;
    const rj_call *c = sj->j->c;
    const rj_seq sq = rj_call_seq(c, (sj->s0 + s) / c->Hkv);
    const int64_t nb = key_blocks(sq.lk), kb = block_len(sj->j->p, sq.lk);
    for (int64_t b = 1; b < nb && b * kb < sq.lk; b++)
        merge2(&sj->j->p->kp, state_of(sj, s, 0), state_of(sj, s, 0), state_of(sj, s, b));
}

/* Query block length: blocks only balance the cores (four per thread, taken as threads free
 * up, so a core slowed by a neighbour does not hold the rest); their count does not touch
 * the bits. */
static int64_t query_block(const rfjit_plan *p, int64_t lq, int64_t nqb_max)
{
    int64_t nqb = lq / QUERY_BLOCK_MIN;
    nqb = nqb < 1 ? 1 : nqb > nqb_max ? nqb_max : nqb;
    return round_up64((lq + nqb - 1) / nqb, p->kp.T);
}

static void split_queries(void *arg, int64_t task)
{
    split_job *sj = arg;
    exec_job *j = sj->j;
    const rj_call *c = j->c;
    const int64_t group = c->H / c->Hkv;
    const int64_t per_slice = group * sj->nqb;
    const int64_t s = task / per_slice, r = task % per_slice, g = sj->s0 + s;
    const int64_t h = (g % c->Hkv) * group + r / sj->nqb, b = r % sj->nqb;
    const rj_seq sq = rj_call_seq(c, g / c->Hkv);
    if (sq.lq == 0 || sq.lk == 0)
        return;
    const int64_t qb = query_block(j->p, sq.lq, sj->nqb), q0 = b * qb;
    if (q0 >= sq.lq)
        return;
    rj_kargs a = {0};
    a.q = (const float *)rj_view_row(&c->q, sq.qb, h, sq.q0 + q0);
    a.out = (float *)rj_view_row(&c->out, sq.qb, h, sq.q0 + q0);
    a.lq = sq.lq - q0 < qb ? sq.lq - q0 : qb;
    a.lk = 0;
    a.flags = 0; /* keep the merged state */
    split_call(j, &a, g / c->Hkv, g % c->Hkv, state_of(sj, s, 0));
}

static rfjit_status exec_key_states(exec_job *j, rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_call *call = j->c;
    const rj_kplan *kp = &p->kp;
    rj_pool *pool = p->ctx->pool;
    const int64_t slices = call->B * call->Hkv, group_heads = call->H / call->Hkv;
    const int64_t threads = rj_pool_threads(pool);
    const int64_t lk = call->max_lk, lq = call->max_lq;
    split_job sj = {.j = j, .nb = key_blocks(lk)};
    int64_t nqb = lq / QUERY_BLOCK_MIN;
    sj.nqb = nqb < 1 ? 1 : nqb > 4 * threads ? 4 * threads : nqb;
    const int64_t group = threads < slices ? threads : slices;
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    sj.states = rj_scratch_buf(c, SLOT_STATES, (size_t)(group * sj.nb * kp->st_floats),
                               sizeof(float));
    if (!sj.states) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the key states");
    }
    for (sj.s0 = 0; sj.s0 < slices && j->st == RFJIT_OK; sj.s0 += group) {
        sj.ns = slices - sj.s0 < group ? slices - sj.s0 : group;
        rj_pool_run(pool, sj.ns * sj.nb, split_keys, &sj);
        rj_pool_run(pool, sj.ns, split_merge, &sj);
        rj_pool_run(pool, sj.ns * group_heads * sj.nqb, split_queries, &sj);
    }
    rj_scratch_give(p, c);
    if (j->st != RFJIT_OK && dg)
        *dg = j->dg;
    return j->st;
}

/*
 * A causal sequence on several cores, when there are fewer (sequence, head) slices than
 * threads and every sequence is whole: cut into nb = threads blocks of kb keys, (1) the keys
 * of blocks 0 .. nb-2 become states in parallel (RJ_KFLAG_NO_QUERIES), each block in nb
 * parts so that the parts fill the threads evenly (with two threads, block 0 in two halves:
 * the block alone left the other core idle for a fifth of the serial time), (2) prefix
 * states P_b = P_{b-1} (+) the parts of block b-1, in order, (3) every block runs the causal
 * kernel from its P_b in parallel. The keys of all but the last block are taken twice; the
 * split depends on the thread count, so results agree with one thread's to float rounding
 * rather than bit for bit.
 */
typedef struct scan_job {
    exec_job *j;
    int64_t ns, nb, kb;
    int64_t sub, skb; /* parts per key block of phase (1), and their length */
    float *states;    /* per slice: the (nb - 1) sub part states, then P_0 .. P_{nb-1} */
} scan_job;

static float *scan_state(const scan_job *sj, int64_t s, int64_t i)
{
    return sj->states + (s * ((sj->nb - 1) * sj->sub + sj->nb) + i) * sj->j->p->kp.st_floats;
}

static float *scan_prefix_state(const scan_job *sj, int64_t s, int64_t b)
{
    return scan_state(sj, s, (sj->nb - 1) * sj->sub + b);
}

/* Keys [t0, t1) of slice s (queries t0 .. t1 - 1 too unless flags say none) from state st. */
static void scan_call(scan_job *sj, int64_t s, int64_t t0, int64_t t1, int64_t flags, float *st)
{
    exec_job *j = sj->j;
    const rj_call *call = j->c;
    const int64_t bi = s / call->H, h = s % call->H, kvh = rj_call_kv_head(call, h);
    rj_kargs a = {0};
    a.q = (const float *)rj_view_row(&call->q, bi, h, t0);
    a.k = (const float *)rj_view_row(&call->k, bi, kvh, t0);
    a.v = (const float *)rj_view_row(&call->v, bi, kvh, t0);
    a.out = (float *)rj_view_row(&call->out, bi, h, t0);
    a.lq = a.lk = t1 - t0;
    a.flags = flags;
    split_call(j, &a, bi, kvh, st);
}

/* Part u of key block b: keys [*t0, *t1), empty when *t0 >= *t1. */
static void scan_part(const scan_job *sj, int64_t b, int64_t u, int64_t *t0, int64_t *t1)
{
    const int64_t L = sj->j->c->k.shape[2], end = (b + 1) * sj->kb < L ? (b + 1) * sj->kb : L;
    *t0 = b * sj->kb + u * sj->skb;
    *t1 = *t0 + sj->skb < end ? *t0 + sj->skb : end;
}

static void scan_keys(void *arg, int64_t task)
{
    scan_job *sj = arg;
    const int64_t parts = (sj->nb - 1) * sj->sub, s = task / parts, i = task % parts;
    int64_t t0, t1;
    scan_part(sj, i / sj->sub, i % sj->sub, &t0, &t1);
    if (t0 < t1)
        scan_call(sj, s, t0, t1, RJ_KFLAG_INIT | RJ_KFLAG_NO_QUERIES, scan_state(sj, s, i));
}

static void scan_prefix(void *arg, int64_t s)
{
    scan_job *sj = arg;
    const rj_kplan *kp = &sj->j->p->kp;
    const size_t bytes = (size_t)kp->st_floats * sizeof(float);
    for (int64_t b = 1; b < sj->nb; b++) {
        float *P = scan_prefix_state(sj, s, b);
        for (int64_t u = 0; u < sj->sub; u++) {
            int64_t t0, t1;
            scan_part(sj, b - 1, u, &t0, &t1);
            const float *K = scan_state(sj, s, (b - 1) * sj->sub + u);
            if (t0 >= t1)
                continue;
            if (b == 1 && u == 0)
                memcpy(P, K, bytes);
            else
                merge2(kp, P, u == 0 ? scan_prefix_state(sj, s, b - 1) : P, K);
        }
    }
}

static void scan_blocks(void *arg, int64_t task)
{
    scan_job *sj = arg;
    const int64_t s = task / sj->nb, b = task % sj->nb;
    const int64_t L = sj->j->c->k.shape[2], t0 = b * sj->kb;
    if (t0 < L)
        scan_call(sj, s, t0, t0 + sj->kb < L ? t0 + sj->kb : L, b == 0 ? RJ_KFLAG_INIT : 0,
                  scan_prefix_state(sj, s, b));
}

static rfjit_status exec_scan(exec_job *j, rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_kplan *kp = &p->kp;
    rj_pool *pool = p->ctx->pool;
    scan_job sj = {.j = j, .ns = j->c->B * j->c->H};
    sj.nb = rj_pool_threads(pool);
    const int64_t L = j->c->k.shape[2];
    sj.kb = round_up64((L + sj.nb - 1) / sj.nb, kp->T);
    /* nb parts per block make (nb - 1) nb parts, a multiple of the threads; a part is at
     * least a tile */
    sj.sub = sj.nb;
    sj.skb = round_up64((sj.kb + sj.sub - 1) / sj.sub, kp->T);
    sj.sub = (sj.kb + sj.skb - 1) / sj.skb;
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    const int64_t per_slice = (sj.nb - 1) * sj.sub + sj.nb;
    sj.states = rj_scratch_buf(c, SLOT_STATES, (size_t)(sj.ns * per_slice * kp->st_floats),
                               sizeof(float));
    if (!sj.states) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the scan's states");
    }
    rj_pool_run(pool, sj.ns * (sj.nb - 1) * sj.sub, scan_keys, &sj);
    if (j->st == RFJIT_OK)
        rj_pool_run(pool, sj.ns, scan_prefix, &sj);
    if (j->st == RFJIT_OK)
        rj_pool_run(pool, sj.ns * sj.nb, scan_blocks, &sj);
    rj_scratch_give(p, c);
    if (j->st != RFJIT_OK && dg)
        *dg = j->dg;
    return j->st;
}

/* n tasks on the pool, each taking its own scratch; the job's first failure. */
static rfjit_status run_tasks(exec_job *j, int64_t n, rj_pool_fn task, void *arg, rj_diag *dg)
{
    rj_pool_run(j->p->ctx->pool, n, task, arg);
    if (j->st != RFJIT_OK && dg)
        *dg = j->dg;
    return j->st;
}

/* run_group over every (sequence, key/value head, query block): exact attention cuts a
 * sequence's queries into blocks when the groups alone are too few to balance the threads. */
static rfjit_status exec_groups(exec_job *j, rj_diag *dg)
{
    const rj_call *c = j->c;
    const rj_kplan *kp = &j->p->kp;
    const int64_t groups = c->B * c->Hkv;
    group_job gj = {.j = j, .cut = {.tasks = 1, .T = kp->T}};
    if (kp->tmpl == RJ_TMPL_SOFTMAX) {
        const rj_qcut_in in = {.groups = groups,
                               .threads = rj_pool_threads(j->p->ctx->pool),
                               .max_lq = c->max_lq,
                               .max_lk = c->max_lk,
                               .ng = c->H / c->Hkv,
                               .d = kp->d,
                               .dv = kp->dv,
                               .T = kp->T,
                               .gq = kp->gq,
                               .causal = kp->causal};
        gj.cut = rj_qcut_make(&in);
    }
    return run_tasks(j, groups * gj.cut.tasks, run_group, &gj, dg);
}

rfjit_status rj_exec_jit(const rfjit_plan *p, const rj_call *c, rj_diag *dg)
{
    exec_job j = {.p = p, .c = c, .st = RFJIT_OK};
    RJ_TRY(rj_plan_kernel_for_rows(p, c->max_lq, c->q.dtype, c->out.dtype, &j.fn, dg));
    pthread_mutex_init(&j.mu, NULL);
    rfjit_status st = RFJIT_OK;
    switch (split_kind(p, c)) {
    case SPLIT_KEY_STATES:
        st = exec_key_states(&j, dg);
        break;
    case SPLIT_CAUSAL_SCAN:
        st = exec_scan(&j, dg);
        break;
    case SPLIT_GROUPS:
        st = exec_groups(&j, dg);
        break;
    case SPLIT_SLICES:
        st = run_tasks(&j, c->B * c->H, run_slice, &j, dg);
        break;
    }
    pthread_mutex_destroy(&j.mu);
    return st;
}
