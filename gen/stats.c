/* SPDX-License-Identifier: MIT */
/* This file implements gen/stats.h: plain sums in row order (deterministic). */
#include "stats.h"

#include <string.h>

rfjit_status rj_stats_init(rj_stats *st, int d)
{
    memset(st, 0, sizeof *st);
    st->d = d;
    size_t dd = (size_t)d * (size_t)d;
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
    const int d = st->d;
    double *s = role ? st->sy : st->sx, *m2 = role ? st->myy : st->mxx;
    double *norm2 = role ? &st->ny2 : &st->nx2;
    for (int64_t i = 0; i < n; i++) {
        const double *x = rows + i * d;
        for (int a = 0; a < d; a++) {
            s[a] += x[a];
            *norm2 += x[a] * x[a];
            for (int b = 0; b < d; b++)
                m2[a * d + b] += x[a] * x[b];
        }
    }
    if (role)
        st->ny += n;
    else
        st->nx += n;
}
