/* SPDX-License-Identifier: MIT */
/*
 * This file runs a plan on its JIT kernel: it lowers the estimator's parameters into the
 * kernel's float layout (once for frozen plans, per (batch, head) for estimators fitted per
 * call), and calls the kernel once per (batch, head) with that slice's row pointers and
 * strides. Rows must have contiguous elements; a view whose last stride is not 1 is packed
 * into a contiguous copy first (and the output unpacked), which costs one pass over it.
 */
#include "ctx.h"
#include "exec_scratch.h"
#include "pool.h"
#include "plan_util.h"
#include "tensor.h"

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
    c->slot[slot] = rj_alloc(bytes);
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

/* A contiguous copy buffer for a view whose elements are strided (NULL when none needed). */
static int tmp_for(rj_exec_scratch *c, int slot, const rfjit_tensor *t, float **out)
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
    int ok = tmp_for(c, 0, q, &tq) && tmp_for(c, 1, k, &tk) && tmp_for(c, 2, v, &tv) &&
             tmp_for(c, 3, out, &to);
    const int fitted = kp->tmpl == RJ_TMPL_LINEAR && !p->frozen;
    double *x = NULL, *y = NULL;
    if (ok && fitted) {
        x = rj_scratch_buf(c, 4, (size_t)q->shape[2] * (size_t)s->d, sizeof(double));
        y = rj_scratch_buf(c, 5, (size_t)k->shape[2] * (size_t)s->d, sizeof(double));
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
        const double scale = rj_plan_input_scale(s->d);
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

rfjit_status rj_exec_jit(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    exec_job j = {.p = p, .q = q, .k = k, .v = v, .out = out, .st = RFJIT_OK};
    pthread_mutex_init(&j.mu, NULL);
    rj_pool_run(p->ctx->pool, q->shape[0] * q->shape[1], run_slice, &j);
    pthread_mutex_destroy(&j.mu);
    if (j.st != RFJIT_OK && dg)
        *dg = j.dg;
    return j.st;
}
