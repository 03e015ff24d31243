/* SPDX-License-Identifier: MIT */
/*
 * This file runs a plan on its JIT kernel: it lowers the estimator's parameters into the
 * kernel's float layout (once for frozen plans, per (batch, head) for estimators fitted per
 * call), and calls the kernel once per (batch, head) with that slice's row pointers and
 * strides. Rows must have contiguous elements; a view whose last stride is not 1 is packed
 * into a contiguous copy first (and the output unpacked), which costs one pass over it.
 */
#include "ctx.h"
#include "plan_util.h"
#include "tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rfjit_status rj_lower_params(const rfjit_plan *p, const double *params, float *kpar,
                             rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const rj_kplan *kp = &p->kp;
    if (kp->tmpl != RJ_TMPL_LINEAR)
        return RFJIT_OK;
    const size_t d = (size_t)s->d, P = (size_t)kp->P;
    const size_t ng = kp->norm == RJ_KN_DENSE ? d * d : d;
    double *buf = rj_alloc_array(P + ng + P * d, sizeof(double));
    RJ_FAIL_IF(dg, !buf, RFJIT_E_NOMEM, "no memory to lower kernel parameters");
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
    rj_free(buf);
    return RFJIT_OK;
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

typedef struct jit_bufs {
    float *ws, *st, *kpar, *tq, *tk, *tv, *to;
    double *x, *y;
    rj_fit_scratch fs;
} jit_bufs;

static void bufs_free(jit_bufs *b)
{
    rj_free(b->ws);
    rj_free(b->st);
    rj_free(b->kpar);
    rj_free(b->tq);
    rj_free(b->tk);
    rj_free(b->tv);
    rj_free(b->to);
    rj_free(b->x);
    rj_free(b->y);
    rj_fit_scratch_free(&b->fs);
}

static float *tmp_for(const rfjit_tensor *t, int *ok)
{
    if (t->stride[3] == 1 || t->shape[3] == 1)
        return NULL;
    float *p = rj_alloc_array((size_t)(t->shape[2] * t->shape[3]), sizeof(float));
    if (!p)
        *ok = 0;
    return p;
}

rfjit_status rj_exec_jit(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg)
{
    const rj_kplan *kp = &p->kp;
    const rj_spec *s = &p->spec;
    jit_bufs b = {0};
    int ok = 1;
    b.ws = rj_alloc_aligned((size_t)kp->ws_floats, sizeof(float));
    b.st = rj_alloc_aligned((size_t)kp->st_floats, sizeof(float));
    b.tq = tmp_for(q, &ok);
    b.tk = tmp_for(k, &ok);
    b.tv = tmp_for(v, &ok);
    b.to = tmp_for(out, &ok);
    const int fitted = kp->tmpl == RJ_TMPL_LINEAR && !p->frozen;
    if (fitted) {
        b.kpar = rj_alloc_array(2 * (size_t)kp->role_floats, sizeof(float));
        b.x = rj_alloc_array((size_t)q->shape[2] * (size_t)s->d, sizeof(double));
        b.y = rj_alloc_array((size_t)k->shape[2] * (size_t)s->d, sizeof(double));
        ok = ok && b.kpar && b.x && b.y;
    }
    if (!ok || !b.ws || !b.st) {
        bufs_free(&b);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the kernel's workspace");
    }
    rfjit_status st = fitted ? rj_fit_scratch_init(&b.fs, p, dg) : RFJIT_OK;
    const double scale = rj_plan_input_scale(s->d);
    for (int64_t bi = 0; bi < q->shape[0] && st == RFJIT_OK; bi++)
        for (int64_t hi = 0; hi < q->shape[1] && st == RFJIT_OK; hi++) {
            const float *kpar = p->kpar;
            if (fitted) {
                const double *params = NULL;
                rj_tensor_gather(q, bi, hi, scale, b.x);
                rj_tensor_gather(k, bi, hi, scale, b.y);
                st = rj_fit_slice(p, &b.fs, b.x, q->shape[2], b.y, k->shape[2], &params, dg);
                if (st == RFJIT_OK)
                    st = rj_lower_params(p, params, b.kpar, dg);
                if (st != RFJIT_OK)
                    break;
                kpar = b.kpar;
            }
            rj_kargs a = {0};
            a.q = slice(q, bi, hi, b.tq, &a.sq);
            a.k = slice(k, bi, hi, b.tk, &a.sk);
            a.v = slice(v, bi, hi, b.tv, &a.sv);
            a.out = b.to ? b.to : out->data + bi * out->stride[0] + hi * out->stride[1];
            a.so = b.to ? out->shape[3] : out->stride[2];
            a.pq = kpar;
            a.pk = kpar ? kpar + kp->role_floats : NULL;
            a.ws = b.ws;
            a.st = b.st;
            a.lq = q->shape[2];
            a.lk = k->shape[2];
            a.flags = RJ_KFLAG_INIT;
            p->fn(&a);
            if (b.to)
                unslice(out, bi, hi, b.to);
        }
    bufs_free(&b);
    return st;
}
