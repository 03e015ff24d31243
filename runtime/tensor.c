/* SPDX-License-Identifier: MIT */
/* This file implements runtime/tensor.h. */
#include "runtime/tensor.h"

#include <math.h>
#include <string.h>

/* Largest element offset of a view, or -1 on overflow. */
static int64_t max_offset(const rfjit_tensor *t)
{
    int64_t off = 0;
    for (int i = 0; i < 4; i++) {
        int64_t part;
        if (__builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &part) ||
            __builtin_add_overflow(off, part, &off))
            return -1;
    }
    return off;
}

rfjit_status rj_tensor_check(const rfjit_tensor *t, const char *name, bool is_output,
                             rj_diag *dg)
{
    RJ_FAIL_IF(dg, !t, RFJIT_E_INVALID_ARG, "tensor %s is NULL", name);
    RJ_FAIL_IF(dg, !t->data, RFJIT_E_INVALID_ARG, "tensor %s has NULL data", name);
    for (int i = 0; i < 4; i++) {
        RJ_FAIL_IF(dg, t->shape[i] < 1, RFJIT_E_SHAPE, "tensor %s: shape[%d] = %lld < 1", name,
                   i, (long long)t->shape[i]);
        RJ_FAIL_IF(dg, t->stride[i] < 0, RFJIT_E_STRIDE,
                   "tensor %s: stride[%d] = %lld is negative", name, i,
                   (long long)t->stride[i]);
    }
    int64_t off = max_offset(t);
    int64_t bytes;
    RJ_FAIL_IF(dg, off < 0 || __builtin_mul_overflow(off + 1, (int64_t)sizeof(float), &bytes) ||
                       (uint64_t)bytes > (uint64_t)PTRDIFF_MAX,
               RFJIT_E_TOO_LARGE, "tensor %s: extent overflows the address space", name);
    int64_t elems = 1;
    for (int i = 0; i < 4; i++)
        RJ_FAIL_IF(dg, __builtin_mul_overflow(elems, t->shape[i], &elems), RFJIT_E_TOO_LARGE,
                   "tensor %s: element count overflows", name);
    if (is_output) {
        /* No two elements may share an address: order dims by stride; each stride must pass
         * the extent of the smaller ones (dims of size 1 do not move). */
        int idx[4], n = 0;
        for (int i = 0; i < 4; i++)
            if (t->shape[i] > 1)
                idx[n++] = i;
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && t->stride[idx[b]] < t->stride[idx[b - 1]]; b--) {
                int tmp = idx[b];
                idx[b] = idx[b - 1];
                idx[b - 1] = tmp;
            }
        int64_t extent = 1;
        for (int a = 0; a < n; a++) {
            int i = idx[a];
            RJ_FAIL_IF(dg, t->stride[i] < extent, RFJIT_E_STRIDE,
                       "tensor %s: strides make elements overlap (stride[%d] = %lld)", name, i,
                       (long long)t->stride[i]);
            extent = t->stride[i] * (t->shape[i] - 1) + extent;
        }
    }
    return RFJIT_OK;
}

/* Rows with unit stride are screened sixteen floats at a time in four SSE vectors: x * 0 is
 * 0 for a finite x and NaN for NaN or +-Inf, and the NaN survives the sums. This runs on every
 * execute over every input: the scalar isfinite loop cost 5% of a FAVOR+ execute at L = 4096
 * (7 GB/s); this one reads 50 GB/s from cache. Only a row that fails is searched again for the
 * position the message names. */
typedef float v4f __attribute__((vector_size(16)));

static bool row_finite(const float *row, int64_t n)
{
    v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, zero = {0};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) {
        v4f x[4];
        memcpy(x, row + c, sizeof x);
        a0 += x[0] * zero;
        a1 += x[1] * zero;
        a2 += x[2] * zero;
        a3 += x[3] * zero;
    }
    const v4f acc = (a0 + a1) + (a2 + a3);
    float any = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (; c < n; c++)
        any += row[c] * 0.0f;
    return any == 0;
}

rfjit_status rj_tensor_check_finite(const rfjit_tensor *t, const char *name, rj_diag *dg)
{
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            for (int64_t l = 0; l < t->shape[2]; l++) {
                const float *row = t->data + b * t->stride[0] + h * t->stride[1] +
                                   l * t->stride[2];
                if ((t->stride[3] == 1 || t->shape[3] == 1) && row_finite(row, t->shape[3]))
                    continue;
                for (int64_t c = 0; c < t->shape[3]; c++)
                    RJ_FAIL_IF(dg, !isfinite(row[c * t->stride[3]]), RFJIT_E_NONFINITE,
                               "tensor %s: non-finite value at (%lld, %lld, %lld, %lld)", name,
                               (long long)b, (long long)h, (long long)l, (long long)c);
            }
    return RFJIT_OK;
}

bool rj_tensor_slice_finite(const rfjit_tensor *t, int64_t b, int64_t h)
{
    const float *base = t->data + b * t->stride[0] + h * t->stride[1];
    for (int64_t l = 0; l < t->shape[2]; l++) {
        const float *row = base + l * t->stride[2];
        if ((t->stride[3] == 1 || t->shape[3] == 1) && row_finite(row, t->shape[3]))
            continue;
        for (int64_t c = 0; c < t->shape[3]; c++)
            if (!isfinite(row[c * t->stride[3]]))
                return false;
    }
    return true;
}

bool rj_tensor_finite(const rfjit_tensor *t)
{
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            if (!rj_tensor_slice_finite(t, b, h))
                return false;
    return true;
}

bool rj_tensor_overlap(const rfjit_tensor *a, const rfjit_tensor *b)
{
    uintptr_t alo = (uintptr_t)a->data, ahi = alo + (uintptr_t)(max_offset(a) + 1) * 4;
    uintptr_t blo = (uintptr_t)b->data, bhi = blo + (uintptr_t)(max_offset(b) + 1) * 4;
    return alo < bhi && blo < ahi;
}

void rj_tensor_gather(const rfjit_tensor *t, int64_t b, int64_t h, double scale, double *out)
{
    const float *base = t->data + b * t->stride[0] + h * t->stride[1];
    for (int64_t l = 0; l < t->shape[2]; l++)
        for (int64_t c = 0; c < t->shape[3]; c++)
            *out++ = scale * (double)base[l * t->stride[2] + c * t->stride[3]];
}

void rj_tensor_scatter(rfjit_tensor *t, int64_t b, int64_t h, const double *in)
{
    float *base = t->data + b * t->stride[0] + h * t->stride[1];
    for (int64_t l = 0; l < t->shape[2]; l++)
        for (int64_t c = 0; c < t->shape[3]; c++)
            base[l * t->stride[2] + c * t->stride[3]] = (float)*in++;
}

rfjit_tensor rj_tensor_contiguous(float *data, int64_t b, int64_t h, int64_t l, int64_t dim)
{
    rfjit_tensor t = {data, {b, h, l, dim}, {h * l * dim, l * dim, dim, 1}};
    return t;
}
