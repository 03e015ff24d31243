/* SPDX-License-Identifier: MIT */
/*
 * This file implements gen/stats.h, the data statistics of the fitted estimators (spec
 * estimators.md 3.2, 4.1) over scaled rows x_i (role 0) and y_j (role 1):
 *
 *   sx = sum_i x_i,   mxx = sum_i x_i x_i^T,   nx2 = sum_i |x_i|^2,   nx = number of rows
 *
 * and the same for y. Plain sums in row order, so one input gives the same bits every time and
 * adding rows in several calls equals adding them in one. mxx is accumulated on and above the
 * diagonal and mirrored after each call: x_a x_b and x_b x_a are the same IEEE product, so the
 * mirror is bit-identical to accumulating the full matrix, at half the work.
 */
#include "stats.h"

#include <string.h>

rfjit_status rj_stats_init(rj_stats *st, int d)
{
    memset(st, 0, sizeof *st);
    if (d < 1)
        return RFJIT_E_INVALID_ARG;
    st->d = d;
    const size_t dd = (size_t)d * (size_t)d;
    st->sx = rj_alloc_array_zero((size_t)d, sizeof(double));
    st->sy = rj_alloc_array_zero((size_t)d, sizeof(double));
    st->mxx = rj_alloc_array_zero(dd, sizeof(double));
    st->myy = rj_alloc_array_zero(dd, sizeof(double));
    if (!st->sx || !st->sy || !st->mxx || !st->myy) {
        rj_stats_free(st);
        return RFJIT_E_NOMEM;
    }
    return RFJIT_OK;
}

void rj_stats_free(rj_stats *st)
{
    rj_free(st->sx);
    rj_free(st->sy);
    rj_free(st->mxx);
    rj_free(st->myy);
    st->sx = st->sy = st->mxx = st->myy = NULL;
}

void rj_stats_reset(rj_stats *st)
{
    const size_t d = (size_t)st->d;
    memset(st->sx, 0, d * sizeof(double));
    memset(st->sy, 0, d * sizeof(double));
    memset(st->mxx, 0, d * d * sizeof(double));
    memset(st->myy, 0, d * d * sizeof(double));
    st->nx = st->ny = 0;
    st->nx2 = st->ny2 = 0;
}

void rj_stats_add(rj_stats *st, int role, const double *rows, int64_t n)
{
    if (n <= 0)
        return;
    const size_t d = (size_t)st->d;
    double *s = role ? st->sy : st->sx, *m2 = role ? st->myy : st->mxx;
    double norm2 = role ? st->ny2 : st->nx2;
    for (int64_t i = 0; i < n; i++) {
        const double *x = rows + (size_t)i * d;
        for (size_t a = 0; a < d; a++) {
            const double xa = x[a];
            s[a] += xa;
            norm2 += xa * xa;
            double *ma = m2 + a * d;
            for (size_t b = a; b < d; b++)
                ma[b] += xa * x[b];
        }
    }
    for (size_t a = 0; a < d; a++)
        for (size_t b = a + 1; b < d; b++)
            m2[b * d + a] = m2[a * d + b];
    if (role) {
        st->ny2 = norm2;
        st->ny += n;
    } else {
        st->nx2 = norm2;
        st->nx += n;
    }
}
