/* SPDX-License-Identifier: MIT */
/*
 * This file is a tensor view of any rfjit_dtype as the executors use it: the public
 * rfjit_tensor_ex read at this build's size, with byte-addressed rows. rfjit_tensor (float32)
 * views become one with rj_view_of.
 */
#ifndef RJ_VIEW_H
#define RJ_VIEW_H

#include "core/base.h"
#include "core/half.h"

typedef struct rj_view {
    char *data;
    int64_t shape[4];
    int64_t stride[4]; /* elements */
    int32_t dtype;     /* rfjit_dtype */
    int32_t esize;     /* bytes per element */
} rj_view;

rj_view rj_view_of(const rfjit_tensor *t);
/* The rfjit_tensor_ex of a float32 view (NULL: one with NULL data). */
rfjit_tensor_ex rj_tensor_ex_of(const rfjit_tensor *t);
/* Read a caller's rfjit_tensor_ex (by its size field) into *v and check it as
 * rj_view_check does; name appears in messages ("q", "out", ...). */
rfjit_status rj_view_read(rj_view *v, const rfjit_tensor_ex *t, const char *name, bool is_output,
                          rj_diag *dg);
/* Shape >= 1, strides >= 0, data non-NULL, byte span representable; an output must not
 * overlap itself. */
rfjit_status rj_view_check(const rj_view *t, const char *name, bool is_output, rj_diag *dg);
/* RFJIT_E_NONFINITE naming the first NaN or Inf among rows r0 .. r0 + n - 1 of slice (b, h). */
rfjit_status rj_view_check_rows(const rj_view *t, const char *name, int64_t b, int64_t h,
                                int64_t r0, int64_t n, rj_diag *dg);
/* Whether rows r0 .. r0 + n - 1 of slice (b, h) are all finite. */
bool rj_view_rows_finite(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n);
/* Whether the byte ranges of two checked views intersect. */
bool rj_view_overlap(const rj_view *a, const rj_view *b);

static inline char *rj_view_row(const rj_view *t, int64_t b, int64_t h, int64_t row)
{
    return t->data + (b * t->stride[0] + h * t->stride[1] + row * t->stride[2]) * t->esize;
}

/* Element c of a row as a double, and a double stored into one (rounded to the dtype). */
/* Whether a view's rows have contiguous elements, as the kernels read them. */
static inline bool rj_view_rows_contiguous(const rj_view *t)
{
    return t->stride[3] == 1 || t->shape[3] == 1;
}
/* A contiguous copy of view t (same shape and dtype) in buf, which holds t's elements. */
rj_view rj_view_pack(const rj_view *t, void *buf);

double rj_view_get(const rj_view *t, const char *row, int64_t c);
void rj_view_set(const rj_view *t, char *row, int64_t c, double x);
/* Rows r0 .. r0 + n - 1 of slice (b, h) set to zero. */
void rj_view_zero_rows(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n);

#endif
