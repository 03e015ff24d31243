/* SPDX-License-Identifier: MIT */
/*
 * This file checks core/stats.c against a naive loop over the same rows: sums, second-moment
 * sums (full and symmetric), squared-norm sums and counts per role, accumulation across
 * several calls, reset and free.
 */
#include <criterion/criterion.h>

#include "core/philox.h"
#include "core/stats.h"
#include "core/testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(stats);

struct naive {
    double s[64], m[64 * 64], n2;
};

/* Straightforward reference: sum over rows of x, x x^T (every entry) and |x|^2. */
static void naive_sums(int d, const double *rows, int n, struct naive *r)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        const double *x = rows + i * d;
        double sq = 0;
        for (int a = 0; a < d; a++) {
            r->s[a] += x[a];
            sq += x[a] * x[a];
            for (int b = 0; b < d; b++)
                r->m[a * d + b] += x[a] * x[b];
        }
        r->n2 += sq;
    }
}

/* Relative 1e-13: both are sums of the same n terms, in orders that may differ. */
static void assert_close(double got, double want, double scale, const char *what, int d, int a)
{
    cr_assert_leq(fabs(got - want), 1e-13 * scale, "d=%d %s[%d]: %.17g vs naive %.17g", d, what,
                  a, got, want);
}

static void check_role(int d, const double *s, const double *m, double n2, int64_t count,
                       const struct naive *r, int n, const char *name)
{
    cr_assert_eq(count, n, "d=%d %s count", d, name);
    const double scale = fmax(r->n2, 1);
    assert_close(n2, r->n2, scale, name, d, -1);
    for (int a = 0; a < d; a++) {
        assert_close(s[a], r->s[a], sqrt(scale * n), name, d, a);
        for (int b = 0; b < d; b++) {
            assert_close(m[a * d + b], r->m[a * d + b], scale, name, d, a * d + b);
            cr_assert_eq(m[a * d + b], m[b * d + a], "d=%d %s not symmetric", d, name);
        }
    }
}

Test(stats, sums_match_naive_loop)
{
    static const int dims[] = {1, 3, 16, 64};
    enum { NX = 37, NY = 23 };
    for (size_t t = 0; t < sizeof dims / sizeof *dims; t++) {
        const int d = dims[t];
        double *x = malloc(sizeof(double) * NX * d), *y = malloc(sizeof(double) * NY * d);
        cr_assert(x && y);
        for (int i = 0; i < NX; i++)
            rj_normals(21, RJ_STREAM_TEST, (uint32_t)i, x + i * d, (size_t)d);
        for (int i = 0; i < NY; i++) { /* offset keys: non-zero means */
            rj_normals(22, RJ_STREAM_TEST, (uint32_t)i, y + i * d, (size_t)d);
            for (int a = 0; a < d; a++)
                y[i * d + a] = 0.5 * y[i * d + a] + 0.25 * a;
        }
        rj_stats st;
        cr_assert_eq(rj_stats_init(&st, d), RFJIT_OK);
        cr_assert_eq(st.d, d);
        /* x in three calls (one empty), y in one */
        rj_stats_add(&st, 0, x, 10);
        rj_stats_add(&st, 0, x + 10 * d, 0);
        rj_stats_add(&st, 1, y, NY);
        rj_stats_add(&st, 0, x + 10 * d, NX - 10);
        struct naive rx, ry;
        naive_sums(d, x, NX, &rx);
        naive_sums(d, y, NY, &ry);
        check_role(d, st.sx, st.mxx, st.nx2, st.nx, &rx, NX, "x");
        check_role(d, st.sy, st.myy, st.ny2, st.ny, &ry, NY, "y");

        /* one call gives the same bits as several (plain sums in row order) */
        rj_stats one;
        cr_assert_eq(rj_stats_init(&one, d), RFJIT_OK);
        rj_stats_add(&one, 0, x, NX);
        cr_assert_eq(memcmp(one.sx, st.sx, sizeof(double) * d), 0, "d=%d", d);
        cr_assert_eq(memcmp(one.mxx, st.mxx, sizeof(double) * d * d), 0, "d=%d", d);
        cr_assert_eq(one.nx2, st.nx2);

        rj_stats_reset(&st);
        cr_assert(st.nx == 0 && st.ny == 0 && st.nx2 == 0 && st.ny2 == 0);
        for (int a = 0; a < d * d; a++)
            cr_assert(st.mxx[a] == 0 && st.myy[a] == 0);
        for (int a = 0; a < d; a++)
            cr_assert(st.sx[a] == 0 && st.sy[a] == 0);
        rj_stats_add(&st, 1, y, NY); /* usable after reset */
        check_role(d, st.sy, st.myy, st.ny2, st.ny, &ry, NY, "y after reset");

        rj_stats_free(&st);
        rj_stats_free(&one);
        cr_assert(!st.sx && !st.sy && !st.mxx && !st.myy);
        rj_stats_free(&st); /* a second free is harmless */
        free(x);
        free(y);
    }
}

Test(stats, init_is_zeroed_and_rejects_bad_d)
{
    rj_stats st;
    cr_assert_eq(rj_stats_init(&st, 4), RFJIT_OK);
    cr_assert(st.nx == 0 && st.ny == 0 && st.nx2 == 0 && st.ny2 == 0);
    for (int a = 0; a < 16; a++)
        cr_assert(st.mxx[a] == 0 && st.myy[a] == 0);
    rj_stats_free(&st);
    cr_assert_eq(rj_stats_init(&st, 0), RFJIT_E_INVALID_ARG);
    cr_assert(!st.sx && !st.mxx);
    rj_stats_free(&st);
}
