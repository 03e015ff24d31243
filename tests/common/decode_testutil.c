/* SPDX-License-Identifier: MIT */
/* This file implements decode_testutil.h. */
#include "decode_testutil.h"

#include "core/half.h"
#include "data_testutil.h"

#include <stdlib.h>
#include <string.h>

void dtu_store(void *p, int64_t i, int dt, float x)
{
    if (dt == RFJIT_F32)
        ((float *)p)[i] = x;
    else
        ((uint16_t *)p)[i] = dt == RFJIT_F16 ? rj_f32_to_f16(x) : rj_f32_to_bf16(x);
}

static float load(const void *p, int64_t i, int dt)
{
    return rj_dtype_load(p, i, dt);
}

static void make(float **f, void **x, int64_t n, int dt, double sd, uint64_t seed)
{
    *f = malloc((size_t)n * sizeof(float));
    *x = malloc((size_t)n * rj_dtype_size(dt));
    tu_fill_normal(*f, (size_t)n, sd, seed);
    for (int64_t i = 0; i < n; i++) {
        dtu_store(*x, i, dt, (*f)[i]);
        (*f)[i] = load(*x, i, dt);
    }
}

void dtu_seqs_init(dt_seqs *s, int64_t B, int64_t H, int64_t Hkv, int64_t L, int64_t d, int64_t dv,
                   int dt, double sd, uint64_t seed)
{
    *s = (dt_seqs){B, H, Hkv, L, d, dv, dt, NULL, NULL, NULL, NULL, NULL, NULL};
    make(&s->fq, &s->q, B * H * L * d, dt, sd, seed);
    make(&s->fk, &s->k, B * Hkv * L * d, dt, sd, seed + 1);
    make(&s->fv, &s->v, B * Hkv * L * dv, dt, 1.0, seed + 2);
}

void dtu_seqs_free(dt_seqs *s)
{
    free(s->fq), free(s->fk), free(s->fv), free(s->q), free(s->k), free(s->v);
}

static void copy_el(void *dst, float *fdst, int64_t i, const void *src, const float *fsrc,
                    int64_t j, int dt)
{
    const size_t es = rj_dtype_size(dt);
    memcpy((char *)dst + i * (int64_t)es, (const char *)src + j * (int64_t)es, es);
    fdst[i] = fsrc[j];
}

void dtu_copy_token(dt_seqs *dst, int64_t c, int64_t u, const dt_seqs *src, int64_t b, int64_t t)
{
    const int64_t L = src->L, M = dst->L;
    for (int64_t h = 0; h < src->H; h++)
        for (int64_t j = 0; j < src->d; j++)
            copy_el(dst->q, dst->fq, ((c * src->H + h) * M + u) * src->d + j, src->q, src->fq,
                    ((b * src->H + h) * L + t) * src->d + j, src->dt);
    for (int64_t h = 0; h < src->Hkv; h++) {
        for (int64_t j = 0; j < src->d; j++)
            copy_el(dst->k, dst->fk, ((c * src->Hkv + h) * M + u) * src->d + j, src->k, src->fk,
                    ((b * src->Hkv + h) * L + t) * src->d + j, src->dt);
        for (int64_t j = 0; j < src->dv; j++)
            copy_el(dst->v, dst->fv, ((c * src->Hkv + h) * M + u) * src->dv + j, src->v, src->fv,
                    ((b * src->Hkv + h) * L + t) * src->dv + j, src->dt);
    }
}

static rfjit_tensor_ex contiguous(void *p, int dt, int64_t n, int64_t h, int64_t L, int64_t dim)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = p;
    t.dtype = dt;
    const int64_t shape[4] = {n, h, L, dim}, stride[4] = {h * L * dim, L * dim, dim, 1};
    memcpy(t.shape, shape, sizeof shape);
    memcpy(t.stride, stride, sizeof stride);
    return t;
}

rfjit_tensor_ex dtu_out(float *out, int64_t n, int64_t H, int64_t L, int64_t dv)
{
    return contiguous(out, RFJIT_F32, n, H, L, dv);
}

static void *gather(const void *src, int dt, int64_t heads, int64_t SL, int64_t dim,
                    const int64_t *seq, const int64_t *t0, const int32_t *len, int64_t n, int64_t L)
{
    const size_t es = rj_dtype_size(dt);
    char *dst = calloc((size_t)(n * heads * L * dim), es);
    for (int64_t i = 0; i < n; i++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t r = 0; r < len[i]; r++)
                memcpy(dst + (((i * heads + h) * L + r) * dim) * (int64_t)es,
                       (const char *)src +
                           (((seq[i] * heads + h) * SL + t0[i] + r) * dim) * (int64_t)es,
                       (size_t)dim * es);
    return dst;
}

void dtu_call_make(dt_call *c, const dt_seqs *s, const int64_t *seq, const int64_t *t0,
                   const int32_t *len, int64_t n, int64_t L)
{
    c->q = gather(s->q, s->dt, s->H, s->L, s->d, seq, t0, len, n, L);
    c->k = gather(s->k, s->dt, s->Hkv, s->L, s->d, seq, t0, len, n, L);
    c->v = gather(s->v, s->dt, s->Hkv, s->L, s->dv, seq, t0, len, n, L);
    c->tq = contiguous(c->q, s->dt, n, s->H, L, s->d);
    c->tk = contiguous(c->k, s->dt, n, s->Hkv, L, s->d);
    c->tv = contiguous(c->v, s->dt, n, s->Hkv, L, s->dv);
}

void dtu_call_free(dt_call *c)
{
    free(c->q), free(c->k), free(c->v);
}

static rfjit_tensor_ex slice(void *p, int dt, int64_t b, int64_t heads, int64_t SL, int64_t t0,
                             int64_t L, int64_t dim)
{
    rfjit_tensor_ex t = contiguous(p, dt, 1, heads, L, dim);
    t.data = (char *)p + ((b * heads * SL + t0) * dim) * (int64_t)rj_dtype_size(dt);
    t.stride[0] = heads * SL * dim;
    t.stride[1] = SL * dim;
    return t;
}

rfjit_status dtu_reference(const rfjit_plan *p, const dt_seqs *s, int64_t b, int64_t q0, int64_t lq,
                           float *out)
{
    rfjit_tensor_ex tq = slice(s->q, s->dt, b, s->H, s->L, q0, lq, s->d);
    rfjit_tensor_ex tk = slice(s->k, s->dt, b, s->Hkv, s->L, 0, q0 + lq, s->d);
    rfjit_tensor_ex tv = slice(s->v, s->dt, b, s->Hkv, s->L, 0, q0 + lq, s->dv);
    rfjit_tensor_ex to = contiguous(out, RFJIT_F32, 1, s->H, lq, s->dv);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq;
    a.k = &tk;
    a.v = &tv;
    a.out = &to;
    return rfjit_plan_execute_args(p, &a);
}
