/* SPDX-License-Identifier: MIT */
/*
 * This file runs a plan on its JIT kernel: it lowers the estimator's parameters into the
 * kernel's float layout (once for frozen plans, per (batch, head) for estimators fitted per
 * call), and calls the kernel once per (batch, head) with that slice's row pointers and
 * strides. Rows must have contiguous elements; a view whose last stride is not 1 is packed
 * into a contiguous copy first (and the output unpacked), which costs one pass over it.
 */
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/pool.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"

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

/* A (batch, head) slice as the kernel wants it: row pointer and row stride, packing the
 * slice into `tmp` (rows x dim floats) when its elements are not contiguous. */
static float *slice(const rfjit_tensor *t, int64_t b, int64_t h, float *tmp, int64_t *rs)
{
    float *base = t->data + b * t->stride[0] + h * t->stride[1];
    if (t->stride[3] == 1 || t->shape[3] == 1) {
        *rs = t->stride[2];
        return base;
    }
    for (int64_t i = 0; i < t->shape[2]; i++)
        for (int64_t j = 0; j < t->shape[3]; j++)
            tmp[i * t->shape[3] + j] = base[i * t->stride[2] + j * t->stride[3]];
    *rs = t->shape[3];
    return tmp;
}

static void unslice(rfjit_tensor *t, int64_t b, int64_t h, const float *tmp)
{
    float *base = t->data + b * t->stride[0] + h * t->stride[1];
    for (int64_t i = 0; i < t->shape[2]; i++)
        for (int64_t j = 0; j < t->shape[3]; j++)
            base[i * t->stride[2] + j * t->stride[3]] = tmp[i * t->shape[3] + j];
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

/* A contiguous copy buffer for a view whose elements are strided (NULL when none needed). */
static int tmp_for(rj_exec_scratch *c, enum jit_slot slot, const rfjit_tensor *t, float **out)
{
    *out = NULL;
    if (t->stride[3] == 1 || t->shape[3] == 1)
        return 1;
    *out = rj_scratch_buf(c, slot, (size_t)(t->shape[2] * t->shape[3]), sizeof(float));
    return *out != NULL;
}

/* One execute, split into (batch, head) slices that the context's pool runs in parallel;
 * each slice takes its own scratch, so slices share nothing but the read-only plan, and the
 * bits of a slice do not depend on the thread count. */
typedef struct exec_job {
    const rfjit_plan *p;
    const rfjit_tensor *q, *k, *v;
    rfjit_tensor *out;
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

static void run_slice(void *arg, int64_t task)
{
    exec_job *j = arg;
    const rfjit_plan *p = j->p;
    const rfjit_tensor *q = j->q, *k = j->k, *v = j->v;
    rfjit_tensor *out = j->out;
    const rj_kplan *kp = &p->kp;
    const rj_spec *s = &p->spec;
    const int64_t bi = task / q->shape[1], hi = task % q->shape[1];
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    float *tq, *tk, *tv, *to;
    int ok = tmp_for(c, SLOT_Q, q, &tq) && tmp_for(c, SLOT_K, k, &tk) &&
             tmp_for(c, SLOT_V, v, &tv) && tmp_for(c, SLOT_OUT, out, &to);
    const int fitted = kp->tmpl == RJ_TMPL_LINEAR && !p->frozen;
    double *x = NULL, *y = NULL;
    if (ok && fitted) {
        x = rj_scratch_buf(c, SLOT_X, (size_t)q->shape[2] * (size_t)s->d, sizeof(double));
        y = rj_scratch_buf(c, SLOT_Y, (size_t)k->shape[2] * (size_t)s->d, sizeof(double));
        ok = x && y;
    }
    if (!ok) {
        rj_scratch_give(p, c);
        rj_fail(&dg, RFJIT_E_NOMEM, "no memory for the kernel's workspace");
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    const float *kpar = p->kpar;
    if (fitted) {
        const double scale = rj_plan_input_scale(s);
        const double *params = NULL;
        rj_tensor_gather(q, bi, hi, scale, x);
        rj_tensor_gather(k, bi, hi, scale, y);
        rfjit_status st = rj_fit_slice(p, &c->fs, x, q->shape[2], y, k->shape[2], &params, &dg);
        if (st != RFJIT_OK) {
            rj_scratch_give(p, c);
            fail_job(j, st, &dg);
            return;
        }
        lower(p, params, c->kpar, c->low);
        kpar = c->kpar;
    }
    rj_kargs a = {0};
    a.q = slice(q, bi, hi, tq, &a.sq);
    a.k = slice(k, bi, hi, tk, &a.sk);
    a.v = slice(v, bi, hi, tv, &a.sv);
    a.out = to ? to : out->data + bi * out->stride[0] + hi * out->stride[1];
    a.so = to ? out->shape[3] : out->stride[2];
    a.pq = kpar;
    a.pk = kpar ? kpar + kp->role_floats : NULL;
    a.ws = c->ws;
    a.st = c->st;
    a.lq = q->shape[2];
    a.lk = k->shape[2];
    a.flags = RJ_KFLAG_INIT;
    p->fn(&a);
    if (to)
        unslice(out, bi, hi, to);
    rj_scratch_give(p, c);
}

/*
 * One long bidirectional sequence on several cores: its keys are cut into nb blocks whose
 * (S, z, zabs, c) states the kernel builds independently (lq = 0), the states are merged in
 * block order (S = sum_b e^{c_b - c} S_b, c = max_b c_b), and then query blocks read the
 * merged state (lk = 0). nb depends on the key count only, never on the thread count, so a
 * slice's bits stay the same for any number of threads; the cost for one thread is nb - 1
 * merges of an m x dv state, nothing per token. Slices go in groups of `threads` so that at
 * most threads x nb states are alive.
 */
enum { KEY_BLOCK_MIN = 2048, KEY_BLOCKS_MAX = 8, QUERY_BLOCK_MIN = 512 };

typedef struct split_job {
    exec_job *j;
    int64_t s0, ns;      /* slices s0 .. s0 + ns - 1 */
    int64_t nb, kb;      /* key blocks and their length (the last may be shorter) */
    int64_t nqb, qb;     /* query blocks */
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

/* How an execute is spread over the pool: one kernel call per slice, key blocks of one
 * bidirectional sequence (exec_key_blocks), or a causal scan over threads (exec_scan). */
typedef enum exec_split { SPLIT_SLICES, SPLIT_KEY_BLOCKS, SPLIT_CAUSAL_SCAN } exec_split;

static exec_split split_kind(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, const rfjit_tensor *out)
{
    const rfjit_tensor *t[4] = {q, k, v, out};
    for (int i = 0; i < 4; i++)
        if (t[i]->stride[3] != 1 && t[i]->shape[3] != 1)
            return SPLIT_SLICES;
    if (p->kp.tmpl != RJ_TMPL_LINEAR || !p->frozen || key_blocks(k->shape[2]) < 2)
        return SPLIT_SLICES;
    if (!p->kp.causal)
        return SPLIT_KEY_BLOCKS;
    return q->shape[0] * q->shape[1] < rj_pool_threads(p->ctx->pool) ? SPLIT_CAUSAL_SCAN
                                                                     : SPLIT_SLICES;
}

/* Row `row` of slice g (batch-major) of t: every tensor of an execute has the same B and H. */
static float *row_at(const rfjit_tensor *t, int64_t g, int64_t row)
{
    const int64_t bi = g / t->shape[1], hi = g % t->shape[1];
    return t->data + bi * t->stride[0] + hi * t->stride[1] + row * t->stride[2];
}

static float *state_of(const split_job *sj, int64_t s, int64_t b)
{
    return sj->states + (s * sj->nb + b) * sj->j->p->kp.st_floats;
}

static void split_call(split_job *sj, int64_t s, rj_kargs *a, float *st)
{
    exec_job *j = sj->j;
    const rfjit_plan *p = j->p;
    const int64_t g = sj->s0 + s;
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    a->q = a->q ? a->q : row_at(j->q, g, 0);
    a->sq = j->q->stride[2];
    a->sk = j->k->stride[2];
    a->sv = j->v->stride[2];
    a->so = j->out->stride[2];
    a->pq = p->kpar;
    a->pk = p->kpar + p->kp.role_floats;
    a->ws = c->ws;
    a->st = st;
    p->fn(a);
    rj_scratch_give(p, c);
}

static void split_keys(void *arg, int64_t task)
{
    split_job *sj = arg;
    exec_job *j = sj->j;
    const int64_t s = task / sj->nb, b = task % sj->nb, g = sj->s0 + s;
    const int64_t k0 = b * sj->kb, lk = j->k->shape[2];
    rj_kargs a = {0};
    a.k = row_at(j->k, g, k0);
    a.v = row_at(j->v, g, k0);
    a.out = row_at(j->out, g, 0);
    a.lk = lk - k0 < sj->kb ? lk - k0 : sj->kb;
    a.lq = 0;
    a.flags = RJ_KFLAG_INIT;
    split_call(sj, s, &a, state_of(sj, s, b));
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
    for (int64_t b = 1; b < sj->nb; b++)
        merge2(&sj->j->p->kp, state_of(sj, s, 0), state_of(sj, s, 0), state_of(sj, s, b));
}

static void split_queries(void *arg, int64_t task)
{
    split_job *sj = arg;
    exec_job *j = sj->j;
    const int64_t s = task / sj->nqb, b = task % sj->nqb, g = sj->s0 + s;
    const int64_t q0 = b * sj->qb, lq = j->q->shape[2];
    if (q0 >= lq)
        return;
    rj_kargs a = {0};
    a.q = row_at(j->q, g, q0);
    a.k = row_at(j->k, g, 0);
    a.v = row_at(j->v, g, 0);
    a.out = row_at(j->out, g, q0);
    a.lq = lq - q0 < sj->qb ? lq - q0 : sj->qb;
    a.lk = 0;
    a.flags = 0; /* keep the merged state */
    split_call(sj, s, &a, state_of(sj, s, 0));
}

/*
 * A causal sequence on several cores, when there are fewer (batch, head) slices than threads:
 * cut into nb = threads blocks, (1) the keys of blocks 0 .. nb-2 become states K_b in
 * parallel (RJ_KFLAG_NO_QUERIES), (2) prefix states P_b = P_{b-1} (+) K_{b-1} in order, (3)
 * every block runs the causal kernel from its P_b in parallel. About 1.45 / threads of the
 * serial work (the keys are taken twice); the split depends on the thread count, so results
 * agree with one thread's to float rounding rather than bit for bit.
 */
typedef struct scan_job {
    exec_job *j;
    int64_t ns, nb, kb;
    float *states; /* per slice: K_0 .. K_{nb-1}, P_0 .. P_{nb-1} */
} scan_job;

static float *scan_state(const scan_job *sj, int64_t s, int64_t i)
{
    return sj->states + (s * 2 * sj->nb + i) * sj->j->p->kp.st_floats;
}

static void scan_call(scan_job *sj, int64_t s, int64_t b, int64_t flags, float *st)
{
    exec_job *j = sj->j;
    const rfjit_plan *p = j->p;
    const int64_t t0 = b * sj->kb, L = j->k->shape[2];
    if (t0 >= L)
        return;
    rj_diag dg = {{0}};
    rj_exec_scratch *c = rj_scratch_take(p, &dg);
    if (!c) {
        fail_job(j, RFJIT_E_NOMEM, &dg);
        return;
    }
    rj_kargs a = {0};
    a.q = row_at(j->q, s, t0);
    a.k = row_at(j->k, s, t0);
    a.v = row_at(j->v, s, t0);
    a.out = row_at(j->out, s, t0);
    a.sq = j->q->stride[2];
    a.sk = j->k->stride[2];
    a.sv = j->v->stride[2];
    a.so = j->out->stride[2];
    a.lq = a.lk = L - t0 < sj->kb ? L - t0 : sj->kb;
    a.pq = p->kpar;
    a.pk = p->kpar + p->kp.role_floats;
    a.ws = c->ws;
    a.st = st;
    a.flags = flags;
    p->fn(&a);
    rj_scratch_give(p, c);
}

static void scan_keys(void *arg, int64_t task)
{
    scan_job *sj = arg;
    const int64_t s = task / (sj->nb - 1), b = task % (sj->nb - 1);
    scan_call(sj, s, b, RJ_KFLAG_INIT | RJ_KFLAG_NO_QUERIES, scan_state(sj, s, b));
}

static void scan_prefix(void *arg, int64_t s)
{
    scan_job *sj = arg;
    const rj_kplan *kp = &sj->j->p->kp;
    const size_t bytes = (size_t)kp->st_floats * sizeof(float);
    memcpy(scan_state(sj, s, sj->nb + 1), scan_state(sj, s, 0), bytes);
    for (int64_t b = 2; b < sj->nb; b++)
        merge2(kp, scan_state(sj, s, sj->nb + b), scan_state(sj, s, sj->nb + b - 1),
               scan_state(sj, s, b - 1));
}

static void scan_blocks(void *arg, int64_t task)
{
    scan_job *sj = arg;
    const int64_t s = task / sj->nb, b = task % sj->nb;
    scan_call(sj, s, b, b == 0 ? RJ_KFLAG_INIT : 0, scan_state(sj, s, sj->nb + b));
}

static rfjit_status exec_scan(exec_job *j, rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_kplan *kp = &p->kp;
    rj_pool *pool = p->ctx->pool;
    scan_job sj = {.j = j, .ns = j->q->shape[0] * j->q->shape[1]};
    sj.nb = rj_pool_threads(pool);
    const int64_t L = j->k->shape[2];
    sj.kb = round_up64((L + sj.nb - 1) / sj.nb, kp->T);
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    sj.states = rj_scratch_buf(c, SLOT_STATES, (size_t)(sj.ns * 2 * sj.nb * kp->st_floats),
                               sizeof(float));
    if (!sj.states) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the scan's states");
    }
    rj_pool_run(pool, sj.ns * (sj.nb - 1), scan_keys, &sj);
    if (j->st == RFJIT_OK)
        rj_pool_run(pool, sj.ns, scan_prefix, &sj);
    if (j->st == RFJIT_OK)
        rj_pool_run(pool, sj.ns * sj.nb, scan_blocks, &sj);
    rj_scratch_give(p, c);
    if (j->st != RFJIT_OK && dg)
        *dg = j->dg;
    return j->st;
}

static rfjit_status exec_key_blocks(exec_job *j, rj_diag *dg)
{
    const rfjit_plan *p = j->p;
    const rj_kplan *kp = &p->kp;
    rj_pool *pool = p->ctx->pool;
    const int64_t slices = j->q->shape[0] * j->q->shape[1];
    const int64_t threads = rj_pool_threads(pool);
    const int64_t lk = j->k->shape[2], lq = j->q->shape[2];
    split_job sj = {.j = j, .nb = key_blocks(lk)};
    sj.kb = round_up64((lk + sj.nb - 1) / sj.nb, kp->T);
    /* query blocks only balance the cores (four per thread, taken as threads free up, so a
     * core slowed by a neighbour does not hold the rest); their count does not touch the bits */
    int64_t nqb = lq / QUERY_BLOCK_MIN;
    nqb = nqb < 1 ? 1 : nqb > 4 * threads ? 4 * threads : nqb;
    sj.qb = round_up64((lq + nqb - 1) / nqb, kp->T);
    sj.nqb = (lq + sj.qb - 1) / sj.qb;
    const int64_t group = threads < slices ? threads : slices;
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    sj.states = rj_scratch_buf(c, SLOT_STATES, (size_t)(group * sj.nb * kp->st_floats),
                               sizeof(float));
    if (!sj.states) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the key-block states");
    }
    for (sj.s0 = 0; sj.s0 < slices && j->st == RFJIT_OK; sj.s0 += group) {
        sj.ns = slices - sj.s0 < group ? slices - sj.s0 : group;
        rj_pool_run(pool, sj.ns * sj.nb, split_keys, &sj);
        rj_pool_run(pool, sj.ns, split_merge, &sj);
        rj_pool_run(pool, sj.ns * sj.nqb, split_queries, &sj);
    }
    rj_scratch_give(p, c);
    if (j->st != RFJIT_OK && dg)
        *dg = j->dg;
    return j->st;
}

rfjit_status rj_exec_jit(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    exec_job j = {.p = p, .q = q, .k = k, .v = v, .out = out, .st = RFJIT_OK};
    pthread_mutex_init(&j.mu, NULL);
    rfjit_status st = RFJIT_OK;
    switch (split_kind(p, q, k, v, out)) {
    case SPLIT_KEY_BLOCKS:
        st = exec_key_blocks(&j, dg);
        break;
    case SPLIT_CAUSAL_SCAN:
        st = exec_scan(&j, dg);
        break;
    case SPLIT_SLICES:
        rj_pool_run(p->ctx->pool, q->shape[0] * q->shape[1], run_slice, &j);
        st = j.st;
        if (st != RFJIT_OK && dg)
            *dg = j.dg;
        break;
    }
    pthread_mutex_destroy(&j.mu);
    return st;
}
