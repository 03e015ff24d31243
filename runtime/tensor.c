/* SPDX-License-Identifier: MIT */
/* This file implements runtime/tensor.h. */
#include "runtime/tensor.h"
#include "runtime/view.h"

#include <math.h>
#include <string.h>

/* Every check is the dtype-general one of runtime/view.c on the float32 view. */
rfjit_status rj_tensor_check(const rfjit_tensor *t, const char *name, bool is_output,
                             rj_diag *dg)
{
    RJ_FAIL_IF(dg, !t, RFJIT_E_INVALID_ARG, "tensor %s is NULL", name);
    const rj_view v = rj_view_of(t);
    return rj_view_check(&v, name, is_output, dg);
}

rfjit_status rj_tensor_check_finite(const rfjit_tensor *t, const char *name, rj_diag *dg)
{
    const rj_view v = rj_view_of(t);
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            RJ_TRY(rj_view_check_rows(&v, name, b, h, 0, t->shape[2], dg));
    return RFJIT_OK;
}

bool rj_tensor_slice_finite(const rfjit_tensor *t, int64_t b, int64_t h)
{
    const rj_view v = rj_view_of(t);
    return rj_view_rows_finite(&v, b, h, 0, t->shape[2]);
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
    const rj_view va = rj_view_of(a), vb = rj_view_of(b);
    return rj_view_overlap(&va, &vb);
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
