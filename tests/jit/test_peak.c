/* SPDX-License-Identifier: MIT */
/*
 * This file checks the FMA peak probe (gen/tmpl/peak.c, rfjit_fma_peak): the kernel computes
 * the chains it claims (so its flop count is real, not a loop the optimiser emptied), the
 * figure is physically possible for the ISA, and bad arguments get a status.
 */
#include <criterion/criterion.h>

#include "runtime/ctx.h"
#include "rfjit.h"

#include <math.h>

static rfjit_ctx *context(const char *isa)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.isa = isa;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    return c;
}

Test(peak, kernel_runs_every_chain)
{
    rfjit_ctx *c = context(NULL);
    rj_kplan kp;
    rj_kplan_peak(c->isa.max_vw, c->isa.fma, &kp);
    rj_kernel_fn fn = NULL;
    rj_diag dg = {0};
    cr_assert_eq(rj_kcache_get(c->kc, &kp, &fn, &dg), RFJIT_OK, "%s", dg.msg);
    const float bc[2] = {0.5f, 1.0f};
    float out[16] = {0};
    for (int64_t rounds = 0; rounds <= 3; rounds++) {
        rj_kargs a = {.q = bc, .out = out, .lk = rounds};
        fn(&a);
        /* chain i starts at i and takes rounds * unroll steps of x -> x / 2 + 1 (exact in
         * float for these few steps) */
        double want = 0;
        for (int i = 0; i < RJ_PEAK_CHAINS; i++) {
            double x = i;
            for (int64_t s = 0; s < rounds * RJ_PEAK_UNROLL; s++)
                x = 0.5 * x + 1.0;
            want += x;
        }
        for (int l = 0; l < kp.vw; l++)
            cr_assert_float_eq(out[l], (float)want, 1e-4 * want + 1e-6,
                               "rounds %lld lane %d: %g, want %g", (long long)rounds, l, out[l],
                               want);
    }
    rfjit_ctx_destroy(c);
}

Test(peak, figure_is_possible)
{
    rfjit_ctx *c = context(NULL);
    double g = 0;
    cr_assert_eq(rfjit_fma_peak(c, 0.05, &g), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    /* at most 4 FMA pipes of vw lanes at 6 GHz: a load can only make a measured figure lower,
     * so only the upper bound is checked (a lower one fails on a busy machine) */
    const double hi = 2.0 * 4 * c->isa.max_vw * 6.0;
    cr_assert(g > 0 && g < hi, "peak %g GFLOP/s outside (0, %g)", g, hi);
    rfjit_ctx_destroy(c);
}

Test(peak, bad_arguments)
{
    rfjit_ctx *c = context(NULL);
    double g = 0;
    cr_assert_eq(rfjit_fma_peak(NULL, 0.1, &g), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_fma_peak(c, 0.1, NULL), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_fma_peak(c, 0, &g), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_fma_peak(c, NAN, &g), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_fma_peak(c, 61, &g), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(rfjit_ctx_last_error(c), "seconds") != NULL);
    rfjit_ctx_destroy(c);
}
