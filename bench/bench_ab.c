/* SPDX-License-Identifier: MIT */
/*
 * This file is the A/B benchmark of two builds of librfjit.so (printed, never asserted): both
 * loaded into one process (dlopen, RTLD_LOCAL, so each keeps its own symbols), one plan each
 * on the same inputs, their executes alternating (the order flips every round), and the
 * median of the per-round ratios A / B. On a shared machine whose speed drifts by tens of
 * percent within a minute, a drift hits both members of a round alike, so the median of the
 * paired ratios stays put where two separate runs disagree; run the same library as A and B
 * for the noise floor. The two may also differ in thread count only (A one thread, B two).
 *
 * usage: rfjit_bench_ab LIB_A LIB_B ESTIMATOR[:COMPUTE_A[:COMPUTE_B]] L CAUSAL THREADS_A
 *                       THREADS_B [ROUNDS]
 *        e.g. rfjit_bench_ab old/build/librfjit.so build/librfjit.so exact 2048 0 1 1 101
 *             rfjit_bench_ab build/librfjit.so build/librfjit.so exact:f32:bf16 4096 0 1 1
 * COMPUTE f32 (the default) or bf16 (rfjit_attn_desc.compute; B's defaults to A's). d = dv =
 * 64, m = 256, B = H = 1; ROUNDS defaults to 41 (at most 1001). RFJIT_AB_VW=N in the
 * environment sets both plans' tiling.vw (e.g. 8: bf16 on AVX512-BF16's dot product);
 * RFJIT_AB_TILING_A and RFJIT_AB_TILING_B = "vw,T,ri,rj" set each plan's whole tiling (0: that
 * knob's default), to compare tilings on one library.
 */
#include "rfjit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { D = 64, M = 256, MAX_ROUNDS = 1001 };

typedef struct lib {
    rfjit_status (*ctx_create)(const rfjit_ctx_desc *, rfjit_ctx **);
    void (*ctx_destroy)(rfjit_ctx *);
    rfjit_status (*plan_create)(rfjit_ctx *, const rfjit_attn_desc *, rfjit_plan **);
    void (*plan_destroy)(rfjit_plan *);
    rfjit_status (*execute)(rfjit_plan *, const rfjit_tensor *, const rfjit_tensor *,
                            const rfjit_tensor *, const rfjit_tensor *);
    const char *(*last_error)(rfjit_ctx *);
} lib;

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

static int load(const char *path, lib *l)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "bench_ab: %s\n", dlerror());
        return -1;
    }
    /* POSIX guarantees function pointers round-trip through dlsym's void * */
    *(void **)&l->ctx_create = dlsym(h, "rfjit_ctx_create");
    *(void **)&l->ctx_destroy = dlsym(h, "rfjit_ctx_destroy");
    *(void **)&l->plan_create = dlsym(h, "rfjit_plan_create");
    *(void **)&l->plan_destroy = dlsym(h, "rfjit_plan_destroy");
    *(void **)&l->execute = dlsym(h, "rfjit_plan_execute");
    *(void **)&l->last_error = dlsym(h, "rfjit_ctx_last_error");
    if (!l->ctx_create || !l->ctx_destroy || !l->plan_create || !l->plan_destroy || !l->execute ||
        !l->last_error) {
        fprintf(stderr, "bench_ab: %s lacks the rfjit API\n", path);
        return -1;
    }
    return 0;
}

static void fill(float *x, size_t n, unsigned seed, float scale)
{
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = scale * (float)((s >> 8) / 8388608.0 - 1.0);
    }
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, cmp);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: rfjit_bench_ab LIB_A LIB_B ESTIMATOR[:COMPUTE_A[:COMPUTE_B]] L "
                        "CAUSAL THREADS_A "
                        "THREADS_B [ROUNDS]\n");
        return 2;
    }
    /* ESTIMATOR[:COMPUTE_A[:COMPUTE_B]] */
    char est[64];
    snprintf(est, sizeof est, "%s", argv[3]);
    int compute[2] = {RFJIT_F32, RFJIT_F32};
    char *ca = strchr(est, ':');
    if (ca) {
        *ca++ = 0;
        char *cb = strchr(ca, ':');
        if (cb)
            *cb++ = 0;
        compute[0] = !strcmp(ca, "bf16") ? RFJIT_BF16 : RFJIT_F32;
        compute[1] = cb ? (!strcmp(cb, "bf16") ? RFJIT_BF16 : RFJIT_F32) : compute[0];
    }
    const int64_t L = atoll(argv[4]);
    const int causal = atoi(argv[5]), threads[2] = {atoi(argv[6]), atoi(argv[7])};
    const int rounds = argc > 8 ? atoi(argv[8]) : 41;
    if (L < 1 || L > (1 << 22) || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "bench_ab: L in [1, 2^22], ROUNDS in [1, %d]\n", MAX_ROUNDS);
        return 2;
    }
    lib lb[2];
    if (load(argv[1], &lb[0]) || load(argv[2], &lb[1]))
        return 1;
    const size_t n = (size_t)L * D;
    float *x[4];
    for (int i = 0; i < 4; i++)
        if (!(x[i] = malloc(n * sizeof(float))))
            return 1;
    /* q and k of norm about d^(1/4), as a trained head's scaled rows: moderate logits */
    fill(x[0], n, 1, 0.5f);
    fill(x[1], n, 2, 0.5f);
    fill(x[2], n, 3, 1.0f);
    rfjit_tensor t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (rfjit_tensor){x[i], {1, 1, L, D}, {L * D, L * D, D, 1}};
    rfjit_ctx *ctx[2];
    rfjit_plan *plan[2];
    for (int e = 0; e < 2; e++) {
        rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
        cd.cache_dir = "";
        cd.wisdom_path = "";
        cd.threads = threads[e];
        if (lb[e].ctx_create(&cd, &ctx[e]) != RFJIT_OK) {
            fprintf(stderr, "bench_ab: no context from %s\n", argv[1 + e]);
            return 1;
        }
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = est;
        a.compute = compute[e];
        a.tiling.vw = getenv("RFJIT_AB_VW") ? atoi(getenv("RFJIT_AB_VW")) : 0;
        const char *tl = getenv(e ? "RFJIT_AB_TILING_B" : "RFJIT_AB_TILING_A");
        if (tl &&
            sscanf(tl, "%d,%d,%d,%d", &a.tiling.vw, &a.tiling.T, &a.tiling.ri, &a.tiling.rj) != 4) {
            fprintf(stderr, "bench_ab: tiling '%s' is not vw,T,ri,rj\n", tl);
            return 1;
        }
        a.d = D;
        a.m = M;
        a.causal = causal;
        const double t0 = now();
        if (lb[e].plan_create(ctx[e], &a, &plan[e]) != RFJIT_OK) {
            fprintf(stderr, "bench_ab: %s\n", lb[e].last_error(ctx[e]));
            return 1;
        }
        printf("%c: %s, %d thread(s), plan created in %.1f ms\n", 'A' + e, argv[1 + e], threads[e],
               1e3 * (now() - t0));
        for (int w = 0; w < 2; w++)
            if (lb[e].execute(plan[e], &t[0], &t[1], &t[2], &t[3]) != RFJIT_OK) {
                fprintf(stderr, "bench_ab: %s\n", lb[e].last_error(ctx[e]));
                return 1;
            }
    }
    static double ms[2][MAX_ROUNDS], ratio[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < 2; k++) {
            const int e = r % 2 ? 1 - k : k;
            const double t0 = now();
            lb[e].execute(plan[e], &t[0], &t[1], &t[2], &t[3]);
            ms[e][r] = 1e3 * (now() - t0);
        }
        ratio[r] = ms[0][r] / ms[1][r];
    }
    const double ra = median(ratio, rounds), ma = median(ms[0], rounds), mb = median(ms[1], rounds);
    printf("%s L=%lld %s, %d rounds: A median %.3f ms (min %.3f), B median %.3f ms (min %.3f), "
           "A/B median of paired ratios %.3f\n",
           argv[3], (long long)L, causal ? "causal" : "bidir", rounds, ma, ms[0][0], mb, ms[1][0],
           ra);
    for (int e = 0; e < 2; e++) {
        lb[e].plan_destroy(plan[e]);
        lb[e].ctx_destroy(ctx[e]);
    }
    for (int i = 0; i < 4; i++)
        free(x[i]);
    return 0;
}
