/* SPDX-License-Identifier: MIT */
/*
 * This file checks exact attention and eva on calls of at most one vector of queries per
 * sequence (decode steps, short chunks), which run the kernel variant with one-vector query tiles
 * (runtime/plan.h rj_plan_kernel_for_rows) rather than the plan's wider tile: against the
 * double reference on the same inputs, causal (bottom-right, so the queries sit after
 * earlier keys) and bidirectional, with a key mask and grouped heads, for 1, 3 and vw
 * queries against 1, 40 and 300 keys. Tolerance: the estimator's documented ref_tol (1e-5
 * for exact, 1e-4 for eva) of max |reference|, as jit/test_jit_equiv.c. The variant must have been
 * compiled, and a call of more queries than a vector must not use it.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"
#include "runtime/ctx.h"

#include <math.h>
#include <stdlib.h>

enum { D = 16, DV = 16, H = 4, HKV = 2, LK_MAX = 300 };

static rfjit_plan *plan_of(rfjit_ctx *ctx, const char *est, int causal, int backend)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.eva_window = 4; /* eva: windows and summarised chunks within 40 keys */
    a.eva_chunks = 6;
    a.d = D;
    a.dv = DV;
    a.causal = causal;
    a.backend = backend;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    return p;
}

static rfjit_tensor_ex view(float *x, int64_t heads, int64_t l, int64_t dim)
{
    rfjit_tensor t = rfjit_tensor_contiguous(x, 1, heads, l, dim);
    return rfjit_tensor_ex_of(&t);
}

static void run(rfjit_ctx *ctx, const rfjit_plan *p, float *q, float *k, float *v,
                const uint8_t *mask, int64_t lq, int64_t lk, float *out)
{
    rfjit_tensor_ex tq = view(q, H, lq, D), tk = view(k, HKV, lk, D), tv = view(v, HKV, lk, DV);
    rfjit_tensor_ex to = view(out, H, lq, DV);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq, a.k = &tk, a.v = &tv, a.out = &to;
    a.key_mask = mask;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
}

Test(jit_short, one_vector_of_queries_matches_the_reference, .timeout = 120)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    float *q = malloc(sizeof(float) * H * 64 * D), *k = malloc(sizeof(float) * HKV * LK_MAX * D);
    float *v = malloc(sizeof(float) * HKV * LK_MAX * DV);
    float *oj = malloc(sizeof(float) * H * 64 * DV), * or = malloc(sizeof(float) * H * 64 * DV);
    uint8_t mask[LK_MAX];
    cr_assert(q && k && v && oj && or);
    tu_fill_normal(q, H * 64 * D, 1.0, 71);
    tu_fill_normal(k, HKV * LK_MAX * D, 1.0, 72);
    tu_fill_normal(v, HKV * LK_MAX * DV, 1.0, 73);
    for (int j = 0; j < LK_MAX; j++)
        mask[j] = j % 5 != 2;
    for (int e = 0; e < 2; e++)
        for (int causal = 0; causal < 2; causal++) {
            const char *est = e ? "eva" : "exact";
            rfjit_plan *pj = plan_of(ctx, est, causal, RFJIT_BACKEND_JIT);
            rfjit_plan *pr = plan_of(ctx, est, causal, RFJIT_BACKEND_REFERENCE);
            const double tol = pj->spec.est->ref_tol;
            const int64_t vw = pj->kp.vw;
            cr_assert(pj->kp.T > vw, "the default exact tile is wider than one vector");
            const int64_t lqs[3] = {1, 3, vw}, lks[3] = {1, 40, LK_MAX};
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    for (int m = 0; m < 2; m++) {
                        const int64_t lq = lqs[a], lk = lks[b];
                        if (lq > lk && causal)
                            continue;
                        const uint8_t *km = m ? mask : NULL;
                        run(ctx, pj, q, k, v, km, lq, lk, oj);
                        run(ctx, pr, q, k, v, km, lq, lk, or);
                        double err = 0, top = 0;
                        for (int64_t i = 0; i < H * lq * DV; i++) {
                            err = fmax(err, fabs((double)oj[i] - or [i]));
                            top = fmax(top, fabs((double) or [i]));
                        }
                        cr_expect(err <= tol * top,
                                  "%s causal=%d lq=%lld lk=%lld mask=%d: max |JIT - ref| = %.3g, "
                                  "max |ref| = %.3g",
                                  est, causal, (long long)lq, (long long)lk, m, err, top);
                    }
            cr_expect_not_null(atomic_load(&pj->kvar[1][RFJIT_F32][RFJIT_F32]),
                               "calls of <= vw queries ran the one-vector tile variant");
            rfjit_plan_destroy(pj);
            rfjit_plan_destroy(pr);
        }
    rfjit_plan *pj = plan_of(ctx, "exact", 1, RFJIT_BACKEND_JIT);
    run(ctx, pj, q, k, v, NULL, pj->kp.vw + 1, 40, oj);
    cr_expect_null(atomic_load(&pj->kvar[1][RFJIT_F32][RFJIT_F32]),
                   "a call of vw + 1 queries used the one-vector tile variant");
    rfjit_plan_destroy(pj);
    free(q), free(k), free(v), free(oj), free(or);
    rfjit_ctx_destroy(ctx);
}
