/* SPDX-License-Identifier: MIT */
/*
 * This file checks user tensor views (shape, strides, overflow, finiteness, aliasing) and
 * moves one (batch, head) slice between a view and a contiguous double buffer.
 */
#ifndef RJ_TENSOR_H
#define RJ_TENSOR_H

#include "core/base.h"

#include <stdbool.h>

/* Shape >= 1, strides >= 0, data non-NULL, element span representable. A written tensor
 * (is_output) must also not overlap itself. name appears in messages ("q", "out", ...). */
rfjit_status rj_tensor_check(const rfjit_tensor *t, const char *name, bool is_output,
                             rj_diag *dg);
/* RFJIT_E_NONFINITE with the first offending index if any element is NaN or Inf. */
rfjit_status rj_tensor_check_finite(const rfjit_tensor *t, const char *name, rj_diag *dg);
/* Whether slice (b, h) of t holds only finite values. */
bool rj_tensor_slice_finite(const rfjit_tensor *t, int64_t b, int64_t h);
/* Whether t holds only finite values (an output check: no message, no position). */
bool rj_tensor_finite(const rfjit_tensor *t);
/* Whether the element ranges of two (checked) views share any byte range. */
bool rj_tensor_overlap(const rfjit_tensor *a, const rfjit_tensor *b);
/* Copy slice (b, h) as shape[2] x shape[3] row-major doubles times scale. */
void rj_tensor_gather(const rfjit_tensor *t, int64_t b, int64_t h, double scale, double *out);
/* Write slice (b, h) from shape[2] x shape[3] row-major doubles (rounded to float). */
void rj_tensor_scatter(rfjit_tensor *t, int64_t b, int64_t h, const double *in);

/* A C-order view of data as (b, h, l, dim), as rfjit_tensor_contiguous. */
rfjit_tensor rj_tensor_contiguous(float *data, int64_t b, int64_t h, int64_t l, int64_t dim);

#endif
