/* SPDX-License-Identifier: MIT */
/*
 * This file is the target of scripts/jit_profile.sh: it runs one plan (d = dv = 64, m = 256,
 * one thread, Gaussian inputs of scaled norm ~1) warm `reps` times and prints, on stderr, the
 * anonymous executable mappings that hold the JIT's code, so that perf samples in them can
 * be attributed to the loops of the object RFJIT_DUMP wrote (scripts/jit_profile.py).
 *
 * usage: rfjit_bench_profile ESTIMATOR CAUSAL L [REPS [COMPUTE]]   (COMPUTE: f32 or bf16)
 */
#include "rfjit.h"

#include <math.h>
#include <stdint.h>
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

/* splitmix64 into Box-Muller, as the CLI's generator */
static double normal(uint64_t *s)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) * 0x1.0p-53;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ESTIMATOR CAUSAL L [REPS [f32|bf16]]\n", argv[0]);
        return 2;
    }
    const int64_t L = atol(argv[3]), d = 64;
    const int reps = argc > 4 ? atoi(argv[4]) : 200;
    if (L < 1 || reps < 1) {
        fprintf(stderr, "L and REPS must be positive\n");
        return 2;
    }
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.threads = 1;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    if (rfjit_ctx_create(&cd, &c) != RFJIT_OK)
        return 1;
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = (int32_t)d;
    a.estimator = argv[1];
    a.causal = atoi(argv[2]);
    a.backend = RFJIT_BACKEND_JIT;
    a.compute = argc > 5 && !strcmp(argv[5], "bf16") ? RFJIT_BF16 : RFJIT_F32;
    rfjit_plan *p = NULL;
    if (rfjit_plan_create(c, &a, &p) != RFJIT_OK) {
        fprintf(stderr, "%s\n", rfjit_ctx_last_error(c));
        rfjit_ctx_destroy(c);
        return 1;
    }
    const size_t n = (size_t)(L * d);
    float *x = malloc(4 * n * sizeof(float));
    if (!x)
        return 1;
    uint64_t s = 7;
    for (size_t i = 0; i < 4 * n; i++)
        x[i] = (float)(normal(&s) * (i < 2 * n ? 0.35355339 : 1.0)); /* q, k: 1/sqrt(8) */
    rfjit_tensor tq = rfjit_tensor_contiguous(x, 1, 1, L, d);
    rfjit_tensor tk = rfjit_tensor_contiguous(x + n, 1, 1, L, d);
    rfjit_tensor tv = rfjit_tensor_contiguous(x + 2 * n, 1, 1, L, d);
    rfjit_tensor to = rfjit_tensor_contiguous(x + 3 * n, 1, 1, L, d);
    rfjit_status st = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
    const double t0 = now();
    for (int r = 0; r < reps && st == RFJIT_OK; r++)
        st = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
    const double dt = (now() - t0) / reps;
    if (st != RFJIT_OK) {
        fprintf(stderr, "%s\n", rfjit_ctx_last_error(c));
        return 1;
    }
    fprintf(stderr, "%s causal=%d L=%lld: %.3f ms per execute (mean of %d)\n", argv[1], a.causal,
            (long long)L, 1e3 * dt, reps);
    FILE *m = fopen("/proc/self/maps", "r");
    char line[512];
    while (m && fgets(line, sizeof line, m))
        if (strstr(line, " r-xp ") && !strchr(line, '/') && !strchr(line, '['))
            fprintf(stderr, "jit-map %s", line);
    if (m)
        fclose(m);
    free(x);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
    return 0;
}
