/* SPDX-License-Identifier: MIT */
/*
 * This file times rfjit itself for `rfjit bench`: warm executes of one plan on all heads of
 * a problem in one call (with the page faults and peak RSS they cost), and the cost of getting a
 * kernel, cold and from the disk cache, as bench/bench_jit.c measures it (minus a reference-backend
 * plan's creation, which copies W and fits but compiles nothing).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { MAX_RUNS = 1000, WARMUPS = 2 };

static long minflt_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static long maxrss_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int bench_rfjit_exec(rfjit_ctx *ctx, const rfjit_attn_desc *a, const bench_data *p, int runs,
                     float *out, bench_exec *r, char *err, size_t len)
{
    memset(r, 0, sizeof *r);
    if (runs < 1 || runs > MAX_RUNS) {
        snprintf(err, len, "runs must be in 1..%d", MAX_RUNS);
        return -1;
    }
    rfjit_plan *plan = NULL;
    if (rfjit_plan_create(ctx, a, &plan) != RFJIT_OK) {
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
        return -1;
    }
    char desc[512];
    rfjit_plan_describe(plan, desc, sizeof desc);
    r->jit = strstr(desc, "backend=jit") != NULL;
    r->M = rfjit_plan_feature_dim(plan);
    rfjit_tensor tq = rfjit_tensor_contiguous(p->q, 1, p->H, p->L, p->d);
    rfjit_tensor tk = rfjit_tensor_contiguous(p->k, 1, p->H, p->L, p->d);
    rfjit_tensor tv = rfjit_tensor_contiguous(p->v, 1, p->H, p->L, p->dv);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, p->H, p->L, p->dv);
    double ms[MAX_RUNS];
    int rc = 0;
    for (int i = 0; i < WARMUPS && rc == 0; i++)
        if (rfjit_plan_execute(plan, &tq, &tk, &tv, &to) != RFJIT_OK)
            rc = -1;
    const long f0 = minflt_now();
    for (int i = 0; i < runs && rc == 0; i++) {
        const double t0 = cli_now();
        if (rfjit_plan_execute(plan, &tq, &tk, &tv, &to) != RFJIT_OK)
            rc = -1;
        ms[i] = 1e3 * (cli_now() - t0);
    }
    if (rc == 0) {
        r->minflt_per_run = (double)(minflt_now() - f0) / runs;
        r->maxrss_kib = maxrss_now();
        bench_time_of(ms, runs, &r->t);
    } else {
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    }
    rfjit_plan_destroy(plan);
    return rc;
}

int bench_rfjit_paired(rfjit_ctx *one, rfjit_ctx *many, const rfjit_attn_desc *a,
                       const bench_data *p, int rounds, float *out, double *speedup, char *err,
                       size_t len)
{
    rfjit_ctx *const ctx[2] = {one, many};
    const rfjit_attn_desc *const d[2] = {a, a};
    return bench_rfjit_paired_plans(ctx, d, p, rounds, out, speedup, err, len);
}

int bench_rfjit_paired_plans(rfjit_ctx *const ctx[2], const rfjit_attn_desc *const a[2],
                             const bench_data *p, int rounds, float *out, double *ratio, char *err,
                             size_t len)
{
    if (rounds < 1 || rounds > MAX_RUNS) {
        snprintf(err, len, "rounds must be in 1..%d", MAX_RUNS);
        return -1;
    }
    rfjit_plan *plan[2] = {NULL, NULL};
    rfjit_tensor tq = rfjit_tensor_contiguous(p->q, 1, p->H, p->L, p->d);
    rfjit_tensor tk = rfjit_tensor_contiguous(p->k, 1, p->H, p->L, p->d);
    rfjit_tensor tv = rfjit_tensor_contiguous(p->v, 1, p->H, p->L, p->dv);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, p->H, p->L, p->dv);
    int rc = 0;
    for (int e = 0; e < 2 && rc == 0; e++) {
        if (rfjit_plan_create(ctx[e], a[e], &plan[e]) != RFJIT_OK)
            rc = -1;
        for (int w = 0; w < WARMUPS && rc == 0; w++)
            if (rfjit_plan_execute(plan[e], &tq, &tk, &tv, &to) != RFJIT_OK)
                rc = -1;
        if (rc != 0)
            snprintf(err, len, "%s", rfjit_ctx_last_error(ctx[e]));
    }
    double ratios[MAX_RUNS];
    for (int r = 0; r < rounds && rc == 0; r++) {
        double ms[2];
        for (int k = 0; k < 2; k++) {
            const int e = r % 2 ? 1 - k : k; /* who goes first flips every round */
            const double t0 = cli_now();
            rfjit_plan_execute(plan[e], &tq, &tk, &tv, &to);
            ms[e] = cli_now() - t0;
        }
        ratios[r] = ms[0] / ms[1];
    }
    if (rc == 0) {
        bench_time t;
        bench_time_of(ratios, rounds, &t);
        *ratio = t.med;
    }
    rfjit_plan_destroy(plan[0]);
    rfjit_plan_destroy(plan[1]);
    return rc;
}

static rfjit_ctx *context(const char *cache_dir, int threads, char *err, size_t len)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = cache_dir;
    cd.wisdom_path = "";
    cd.threads = threads;
    rfjit_ctx *c = NULL;
    const rfjit_status s = rfjit_ctx_create(&cd, &c);
    if (s != RFJIT_OK)
        snprintf(err, len, "cannot create a context: %s", rfjit_status_string(s));
    return c;
}

/* ms to create (then destroy) a plan of a on c; NaN with err on failure. */
static double plan_ms(rfjit_ctx *c, const rfjit_attn_desc *a, char *err, size_t len)
{
    rfjit_plan *p = NULL;
    const double t0 = cli_now();
    if (rfjit_plan_create(c, a, &p) != RFJIT_OK) {
        snprintf(err, len, "%s", rfjit_ctx_last_error(c));
        return NAN;
    }
    const double ms = 1e3 * (cli_now() - t0);
    rfjit_plan_destroy(p);
    return ms;
}

/* Plan creation in a fresh context on cache_dir with `threads` (0: one per core), minus the
 * reference plan's; NaN on failure. */
static double compile_ms(const rfjit_attn_desc *a, const char *cache_dir, int threads, char *err,
                         size_t len)
{
    rfjit_ctx *c = context(cache_dir, threads, err, len);
    if (!c)
        return NAN;
    rfjit_attn_desc ref = *a;
    ref.backend = RFJIT_BACKEND_REFERENCE;
    const double base = plan_ms(c, &ref, err, len);
    const double t = isfinite(base) ? plan_ms(c, a, err, len) - base : NAN;
    rfjit_ctx_destroy(c);
    return t;
}

int bench_rfjit_compile(const rfjit_attn_desc *a, const char *cache_dir, int samples,
                        double *cold_ms, double *cold1_ms, double *disk_ms, char *err, size_t len)
{
    enum { MAX_SAMPLES = 32 };
    double cold[MAX_SAMPLES], cold1[MAX_SAMPLES], disk[MAX_SAMPLES];
    if (samples < 1 || samples > MAX_SAMPLES) {
        snprintf(err, len, "compile samples must be in 1..%d", MAX_SAMPLES);
        return -1;
    }
    /* fill the disk cache (a no-op if a plan of this kernel was already made on it) */
    if (!isfinite(compile_ms(a, cache_dir, 1, err, len)))
        return -1;
    for (int i = 0; i < samples; i++) {
        cold[i] = compile_ms(a, "", 0, err, len);
        cold1[i] = compile_ms(a, "", 1, err, len);
        disk[i] = compile_ms(a, cache_dir, 1, err, len);
        if (!isfinite(cold[i]) || !isfinite(cold1[i]) || !isfinite(disk[i]))
            return -1;
    }
    bench_time t;
    bench_time_of(cold, samples, &t);
    *cold_ms = t.med;
    bench_time_of(cold1, samples, &t);
    *cold1_ms = t.med;
    bench_time_of(disk, samples, &t);
    *disk_ms = t.med;
    return 0;
}
