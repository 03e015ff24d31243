/* SPDX-License-Identifier: MIT */
/*
 * This file is the tiling-search benchmark (printed, never asserted): per kernel,
 * the pick of the pruned search (MEASURE) against the best of the exhaustive one over the same
 * space, both re-timed in the same run, alternating, median of 7, so the ratio compares like
 * with like; plus each search's wall time. Goal: ratio <= 1.05 and MEASURE well under 30 s.
 *
 * usage: rfjit_bench_tiling [L]      (one thread; run on an idle machine)
 */
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(float *x, size_t n, unsigned seed)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) / 8388608.0 - 1.0);
    }
}

int main(int argc, char **argv)
{
    const int64_t L = argc > 1 ? atoll(argv[1]) : 4096;
    const int d = 64, m = 256;
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *ctx = NULL;
    if (rfjit_ctx_create(&cd, &ctx) != RFJIT_OK || L < 1) {
        fprintf(stderr, "bench_tiling: no context (or bad L)\n");
        return 1;
    }
    float *q = malloc(sizeof(float) * (size_t)L * d), *k = malloc(sizeof(float) * (size_t)L * d);
    float *v = malloc(sizeof(float) * (size_t)L * d), *o = malloc(sizeof(float) * (size_t)L * d);
    fill(q, (size_t)L * d, 1);
    fill(k, (size_t)L * d, 2);
    fill(v, (size_t)L * d, 3);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, d);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, d);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, d);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, d);
    printf("rfjit %s; d = dv = %d, m = %d, L = %lld, one thread, ms\n", rfjit_version_string(), d,
           m, (long long)L);
    printf("%-9s %-6s | %-16s %8s %7s | %-16s %8s %7s | %6s %8s %8s\n", "estimator", "mode",
           "measure pick", "ms", "wall_s", "exhaustive best", "ms", "wall_s", "cands", "default",
           "ratio");
    static const struct {
        const char *est;
        int causal;
    } rows[] = {{"positive", 0}, {"positive", 1}, {"saderf", 0}, {"exact", 0}};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = rows[r].est;
        a.d = d;
        a.m = m;
        a.causal = rows[r].causal;
        rfjit_tiling pick[2];
        double ms[2], wall[2];
        size_t n = 0;
        for (int e = 0; e < 2; e++) {
            const double t0 = now();
            rfjit_tiling_time tt[1];
            n = 1;
            if (rfjit_tune_tiling(ctx, &a, L, e ? RFJIT_PATIENCE_EXHAUSTIVE : RFJIT_PATIENCE_MEASURE,
                                  &pick[e], &ms[e], tt, &n) != RFJIT_OK) {
                fprintf(stderr, "bench_tiling: %s\n", rfjit_ctx_last_error(ctx));
                return 1;
            }
            wall[e] = now() - t0;
        }
        /* paired re-timing: measure pick, exhaustive best and the default, interleaved */
        rfjit_plan *p[3];
        for (int e = 0; e < 3; e++) {
            a.tiling = e < 2 ? pick[e] : (rfjit_tiling){0, 0, 0, 0};
            if (rfjit_plan_create(ctx, &a, &p[e]) != RFJIT_OK)
                return 1;
            rfjit_plan_execute(p[e], &tq, &tk, &tv, &to);
        }
        double t[3][7];
        for (int i = 0; i < 7; i++)
            for (int e = 0; e < 3; e++) {
                const double t0 = now();
                rfjit_plan_execute(p[e], &tq, &tk, &tv, &to);
                t[e][i] = 1e3 * (now() - t0);
            }
        double med[3];
        for (int e = 0; e < 3; e++) {
            qsort(t[e], 7, sizeof(double), cmp);
            med[e] = t[e][3];
            rfjit_plan_destroy(p[e]);
        }
        char s0[32], s1[32];
        snprintf(s0, sizeof s0, "%d/%d/%d/%d", pick[0].vw, pick[0].T, pick[0].ri, pick[0].rj);
        snprintf(s1, sizeof s1, "%d/%d/%d/%d", pick[1].vw, pick[1].T, pick[1].ri, pick[1].rj);
        printf("%-9s %-6s | %-16s %8.3f %7.1f | %-16s %8.3f %7.1f | %6zu %8.3f %7.3fx\n",
               rows[r].est, rows[r].causal ? "causal" : "bidir", s0, med[0], wall[0], s1, med[1],
               wall[1], n, med[2], med[0] / med[1]);
    }
    printf("tiling = vw/T/ri/rj; ratio = measure pick / exhaustive best, re-timed together\n");
    free(q);
    free(k);
    free(v);
    free(o);
    rfjit_ctx_destroy(ctx);
    return 0;
}
