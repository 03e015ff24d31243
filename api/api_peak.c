/* SPDX-License-Identifier: MIT */
/*
 * This file implements rfjit_fma_peak: the single-core float FMA throughput of the context's
 * ISA, measured with a JIT'd probe (gen/tmpl/peak.c) rather than taken from a data sheet, so
 * that "percent of peak" means this core at its present clock, in the same run as the kernel
 * it judges.
 */
#include "api/facade.h"

enum { MAX_PASSES = 64, MIN_PASSES = 5 };

rfjit_status rfjit_fma_peak(rfjit_ctx *ctx, double seconds, double *gflops)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_fma_peak: ctx is NULL");
    if (!gflops || !(seconds > 0) || seconds > 60)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "rfjit_fma_peak: gflops NULL or seconds outside (0, 60]");
    rj_kplan kp;
    rj_kplan_peak(ctx->isa.max_vw, ctx->isa.fma, &kp);
    rj_kernel_fn fn = NULL;
    rj_diag dg = {0};
    rfjit_status s = rj_kcache_get(ctx->kc, &kp, &fn, &dg);
    if (s != RFJIT_OK)
        return rj_ctx_fail(ctx, s, &dg);
    /* b just below 1 and c small keep every chain near c / (1 - b): finite for any length */
    float bc[2] = {0.999999f, 1e-6f}, out[16];
    rj_kargs a = {.q = bc, .out = out};
    const double per_round = 2.0 * RJ_PEAK_CHAINS * RJ_PEAK_UNROLL * kp.vw;
    /* grow a pass until it lasts over 1 ms, so that timer noise is small */
    a.lk = 1024;
    fn(&a); /* first call pays for the code's page and warms the clock */
    for (;;) {
        const double t0 = rj_now_s();
        fn(&a);
        const double dt = rj_now_s() - t0;
        if (dt > 1e-3 || a.lk > ((int64_t)1 << 40))
            break;
        a.lk *= 4;
    }
    double passes[MAX_PASSES];
    int n = 0;
    const double t_end = rj_now_s() + seconds;
    while (n < MAX_PASSES && (n < MIN_PASSES || rj_now_s() < t_end)) {
        const double t0 = rj_now_s();
        fn(&a);
        passes[n++] = (double)a.lk * per_round / (rj_now_s() - t0);
    }
    *gflops = 1e-9 * rj_median(passes, (size_t)n);
    return RFJIT_OK;
}
