/* SPDX-License-Identifier: MIT */
/*
 * This file is the JIT benchmark (printed, never asserted): per estimator and
 * direction, the cost of getting a kernel (cold compile, disk-cache load, memory-cache hit;
 * median of 5, each minus the same plan's creation on the reference backend, which draws W
 * and fits but compiles nothing) and the execute time of the JIT kernel against the
 * portable reference at d = dv = 64, m = 256, L = 4096, B = H = 1 (median of 5 and 3 runs).
 * An estimator that AUTO runs on the reference rather than a JIT kernel is marked so.
 *
 * usage: rfjit_bench_jit [L]        (one thread; run on an idle machine)
 */
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static rfjit_ctx *context(const char *cache)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = cache;
    rfjit_ctx *c = NULL;
    if (rfjit_ctx_create(&cd, &c) != RFJIT_OK) {
        fprintf(stderr, "bench_jit: no context\n");
        exit(1);
    }
    return c;
}

/* Seconds to create (and destroy) a plan of desc on ctx. */
static double plan_time(rfjit_ctx *c, const rfjit_attn_desc *a)
{
    rfjit_plan *p = NULL;
    double t0 = now();
    if (rfjit_plan_create(c, a, &p) != RFJIT_OK) {
        fprintf(stderr, "bench_jit: %s\n", rfjit_ctx_last_error(c));
        exit(1);
    }
    double t = now() - t0;
    rfjit_plan_destroy(p);
    return t;
}

static double exec_time(rfjit_ctx *c, const rfjit_attn_desc *a, const rfjit_tensor *q,
                        const rfjit_tensor *k, const rfjit_tensor *v, rfjit_tensor *o, int reps,
                        char *backend, size_t blen)
{
    rfjit_plan *p = NULL;
    if (rfjit_plan_create(c, a, &p) != RFJIT_OK) {
        fprintf(stderr, "bench_jit: %s\n", rfjit_ctx_last_error(c));
        exit(1);
    }
    char desc[512];
    rfjit_plan_describe(p, desc, sizeof desc);
    snprintf(backend, blen, "%s", strstr(desc, "backend=jit") ? "jit" : "reference");
    double t[8];
    rfjit_plan_execute(p, q, k, v, o); /* warm: first touch of the buffers */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        rfjit_plan_execute(p, q, k, v, o);
        t[r] = now() - t0;
    }
    rfjit_plan_destroy(p);
    return median(t, reps);
}

int main(int argc, char **argv)
{
    const int L = argc > 1 ? atoi(argv[1]) : 4096, d = 64, m = 256;
    float *q = malloc(sizeof(float) * (size_t)L * d), *k = malloc(sizeof(float) * (size_t)L * d);
    float *v = malloc(sizeof(float) * (size_t)L * d), *o = malloc(sizeof(float) * (size_t)L * d);
    srand(1);
    for (size_t i = 0; i < (size_t)L * d; i++) {
        q[i] = (float)(rand() / (double)RAND_MAX - 0.5);
        k[i] = (float)(rand() / (double)RAND_MAX - 0.5);
        v[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, d), tk = rfjit_tensor_contiguous(k, 1, 1, L, d);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, d), to = rfjit_tensor_contiguous(o, 1, 1, L, d);
    char dir[] = "/tmp/rfjit_bench_XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    rfjit_ctx *info = context("");
    char buf[8192];
    rfjit_info(info, 0, buf, sizeof buf);
    printf("%s", buf);
    rfjit_ctx_destroy(info);
    printf("\nd = dv = %d, m = %d, L = %d, B = H = 1, one thread; compile columns: median of 5, "
           "minus reference plan creation\n\n",
           d, m, L);
    printf("%-10s %-6s %9s %9s %9s %11s %11s %8s  %s\n", "estimator", "mode", "cold_ms",
           "disk_ms", "mem_ms", "kernel_ms", "ref_ms", "speedup", "backend");
    const char *ests[] = {"exact", "positive", "saderf", "hybrid", "eva"};
    for (int e = 0; e < 5; e++)
        for (int causal = 0; causal < 2; causal++) {
            rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
            a.estimator = ests[e];
            a.d = d;
            a.m = m;
            a.causal = causal;
            a.calib_q = causal ? &tq : NULL;
            a.calib_k = causal ? &tk : NULL;
            rfjit_attn_desc r = a;
            r.backend = RFJIT_BACKEND_REFERENCE;
            double cold[5], disk[5], mem[5], base[5];
            rfjit_ctx *warm = context("");
            for (int i = 0; i < 5; i++) {
                rfjit_ctx *c = context("");
                base[i] = plan_time(c, &r);
                cold[i] = plan_time(c, &a) - base[i];
                rfjit_ctx_destroy(c);
                c = context(dir); /* first round fills the disk cache */
                disk[i] = plan_time(c, &a) - base[i];
                rfjit_ctx_destroy(c);
                plan_time(warm, &a);
                mem[i] = plan_time(warm, &a) - base[i];
            }
            char b1[16], b2[16];
            double tj = exec_time(warm, &a, &tq, &tk, &tv, &to, 5, b1, sizeof b1);
            double tr = exec_time(warm, &r, &tq, &tk, &tv, &to, 3, b2, sizeof b2);
            rfjit_ctx_destroy(warm);
            const int jit = !strcmp(b1, "jit");
            if (jit)
                printf("%-10s %-6s %9.2f %9.2f %9.3f %11.2f %11.1f %7.1fx  jit\n", ests[e],
                       causal ? "causal" : "bidir", 1e3 * median(cold, 5),
                       1e3 * median(disk + 1, 4), 1e3 * median(mem, 5), 1e3 * tj, 1e3 * tr,
                       tr / tj);
            else
                printf("%-10s %-6s %9s %9s %9s %11.2f %11.1f %8s  reference (no JIT kernel "
                       "yet)\n",
                       ests[e], causal ? "causal" : "bidir", "-", "-", "-", 1e3 * tj, 1e3 * tr,
                       "-");
            fflush(stdout);
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_jit: could not remove %s\n", dir);
    free(q);
    free(k);
    free(v);
    free(o);
    return 0;
}
