/* SPDX-License-Identifier: MIT */
/*
 * This file checks numerical edges of attention: one token, d = 1, m = 1, dv = 1, odd small
 * shapes, and q, k entries up to 500 (|q|, |k| up to ~4e3 at d = 64), for every estimator,
 * bidirectional and causal, on the JIT and the reference: every plan is created and executes,
 * every output is finite, the JIT agrees with the reference to float rounding, and exact
 * attention's JIT output matches its reference closely (its error has no variance to hide
 * behind, even where the softmax is one-hot). oprf causal at L = 33, scale 30 is the case whose
 * float denominator underflowed to a subnormal and gave Inf/NaN before the kernel marked such
 * rows for the double reference.
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) * 0x1.0p-53 - 0.5);
}

Test(edges, tiny_shapes_and_huge_norms_stay_finite, .timeout = 300)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static const int shapes[][4] = {{1, 1, 1, 1}, {1, 1, 3, 1}, {5, 1, 1, 1}, {7, 64, 1, 64},
                                    {33, 3, 2, 5}}; /* L, d, m, dv */
    static const double scales[] = {1.0, 30.0, 1e3};
    for (int e = 0; rfjit_estimator_name(e); e++)
        for (int causal = 0; causal < 2; causal++)
            for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; sh++)
                for (int sc = 0; sc < 3; sc++) {
                    const int L = shapes[sh][0], d = shapes[sh][1], dv = shapes[sh][3];
                    const char *est = rfjit_estimator_name(e);
                    float *x = malloc(sizeof(float) * (size_t)(2 * L * d + L * dv));
                    float *o[2] = {malloc(sizeof(float) * (size_t)(L * dv)),
                                   malloc(sizeof(float) * (size_t)(L * dv))};
                    uint64_t seed = 1 + sh * 3 + (uint64_t)sc;
                    for (int i = 0; i < 2 * L * d; i++)
                        x[i] = (float)scales[sc] * uniform(&seed);
                    for (int i = 0; i < L * dv; i++)
                        x[2 * L * d + i] = uniform(&seed);
                    rfjit_tensor tq = rfjit_tensor_contiguous(x, 1, 1, L, d);
                    rfjit_tensor tk = rfjit_tensor_contiguous(x + L * d, 1, 1, L, d);
                    rfjit_tensor tv = rfjit_tensor_contiguous(x + 2 * L * d, 1, 1, L, dv);
                    for (int be = 0; be < 2; be++) {
                        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
                        a.d = d;
                        a.dv = dv;
                        a.m = shapes[sh][2];
                        a.causal = causal;
                        a.estimator = est;
                        a.backend = be ? RFJIT_BACKEND_REFERENCE : RFJIT_BACKEND_JIT;
                        a.eva_window = 1;
                        a.eva_chunks = 1;
                        a.hybrid_signs = 1;
                        a.calib_q = &tq; /* fitted estimators need it causally */
                        a.calib_k = &tk;
                        rfjit_plan *p = NULL;
                        rfjit_tensor to = rfjit_tensor_contiguous(o[be], 1, 1, L, dv);
                        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK,
                                     "%s causal=%d L=%d d=%d m=%d dv=%d scale=%g: %s", est,
                                     causal, L, d, a.m, dv, scales[sc], rfjit_ctx_last_error(c));
                        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK,
                                     "%s: %s", est, rfjit_ctx_last_error(c));
                        for (int i = 0; i < L * dv; i++)
                            cr_assert(isfinite(o[be][i]),
                                      "%s backend=%d causal=%d L=%d d=%d m=%d dv=%d scale=%g: "
                                      "out[%d] = %g", est, be, causal, L, d, a.m, dv,
                                      scales[sc], i, o[be][i]);
                        rfjit_plan_destroy(p);
                    }
                    /* The JIT adds nothing to the estimator's error beyond float rounding:
                     * same projections, same fitted parameters as the reference. Rounding of
                     * the logits grows with their size (|q||k| up to ~1e6 at scale 1e3), hence
                     * 1e-3 of the output's scale; it measured <= 4e-5. Hybrid's angular part
                     * loses more at large norms in float (3% at scale 30), so it is held to
                     * this only at scale 1. */
                    if (strcmp(est, "hybrid") || sc == 0) {
                        double err = 0, ref = 0;
                        for (int i = 0; i < L * dv; i++) {
                            err = fmax(err, fabs((double)o[0][i] - o[1][i]));
                            ref = fmax(ref, fabs((double)o[1][i]));
                        }
                        cr_expect(err <= 1e-3 * ref + 1e-6,
                                  "%s causal=%d L=%d d=%d m=%d dv=%d scale=%g: JIT off the "
                                  "reference by %g of %g",
                                  est, causal, L, d, shapes[sh][2], dv, scales[sc], err, ref);
                    }
                    if (!strcmp(est, "exact")) {
                        double err = 0, ref = 0;
                        for (int i = 0; i < L * dv; i++) {
                            err = fmax(err, fabs((double)o[0][i] - o[1][i]));
                            ref = fmax(ref, fabs((double)o[1][i]));
                        }
                        cr_expect(err <= 1e-4 * ref + 1e-30,
                                  "exact causal=%d L=%d d=%d dv=%d scale=%g: JIT off by %g of %g",
                                  causal, L, d, dv, scales[sc], err, ref);
                    }
                    free(x);
                    free(o[0]);
                    free(o[1]);
                }
    rfjit_ctx_destroy(c);
}

/* The underflowing row of the case above, decoded token by token: the state cannot make the
 * output and says so (RFJIT_E_RANGE, position still advancing), every other step equals the
 * execute's row, and the execute itself (recomputed by the reference) is finite. */
Test(edges, decode_reports_an_unrepresentable_row, .timeout = 60)
{
    enum { L = 33, d = 3, dv = 5 };
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static float x[2 * L * d + L * dv], o[L * dv], step[dv];
    uint64_t seed = 1 + 4 * 3 + 1; /* the sweep's shape 4, scale 30 */
    for (int i = 0; i < 2 * L * d; i++)
        x[i] = 30.0f * uniform(&seed);
    for (int i = 0; i < L * dv; i++)
        x[2 * L * d + i] = uniform(&seed);
    rfjit_tensor tq = rfjit_tensor_contiguous(x, 1, 1, L, d);
    rfjit_tensor tk = rfjit_tensor_contiguous(x + L * d, 1, 1, L, d);
    rfjit_tensor tv = rfjit_tensor_contiguous(x + 2 * L * d, 1, 1, L, dv);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, dv);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = d;
    a.dv = dv;
    a.m = 2;
    a.causal = 1;
    a.estimator = "oprf";
    a.backend = RFJIT_BACKEND_JIT;
    a.calib_q = &tq;
    a.calib_k = &tk;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create(p, 1, 1, &s), RFJIT_OK);
    int ranged = 0;
    for (int t = 0; t < L; t++) {
        rfjit_tensor sq = rfjit_tensor_contiguous(x + t * d, 1, 1, 1, d);
        rfjit_tensor sk = rfjit_tensor_contiguous(x + L * d + t * d, 1, 1, 1, d);
        rfjit_tensor sv = rfjit_tensor_contiguous(x + 2 * L * d + t * dv, 1, 1, 1, dv);
        rfjit_tensor so = rfjit_tensor_contiguous(step, 1, 1, 1, dv);
        const rfjit_status st = rfjit_decode_step(s, &sq, &sk, &sv, &so);
        cr_assert_eq(rfjit_decode_position(s), t + 1);
        for (int j = 0; j < dv; j++)
            cr_assert(isfinite(o[t * dv + j]), "execute row %d is not finite", t);
        if (st == RFJIT_E_RANGE) {
            ranged++;
            cr_assert(strstr(rfjit_ctx_last_error(c), "underflows") != NULL, "%s",
                      rfjit_ctx_last_error(c));
            continue;
        }
        cr_assert_eq(st, RFJIT_OK, "step %d: %s", t, rfjit_ctx_last_error(c));
        for (int j = 0; j < dv; j++)
            cr_assert_float_eq(step[j], o[t * dv + j], 1e-4 + 1e-4 * fabsf(o[t * dv + j]),
                               "step %d col %d: %g vs execute %g", t, j, step[j], o[t * dv + j]);
    }
    cr_assert(ranged >= 1, "the underflowing row (28) was decoded without RFJIT_E_RANGE");
    rfjit_decode_destroy(s);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
}

/* The same sequence as one prefill: the kernel's row that underflows comes out NaN and the
 * prefill says RFJIT_E_RANGE, yet takes every token; the other rows are the execute's. */
Test(edges, decode_prefill_reports_an_unrepresentable_row, .timeout = 60)
{
    enum { L = 33, d = 3, dv = 5 };
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static float x[2 * L * d + L * dv], o[L * dv], po[L * dv];
    uint64_t seed = 1 + 4 * 3 + 1; /* as above */
    for (int i = 0; i < 2 * L * d; i++)
        x[i] = 30.0f * uniform(&seed);
    for (int i = 0; i < L * dv; i++)
        x[2 * L * d + i] = uniform(&seed);
    rfjit_tensor tq = rfjit_tensor_contiguous(x, 1, 1, L, d);
    rfjit_tensor tk = rfjit_tensor_contiguous(x + L * d, 1, 1, L, d);
    rfjit_tensor tv = rfjit_tensor_contiguous(x + 2 * L * d, 1, 1, L, dv);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, dv);
    rfjit_tensor tp = rfjit_tensor_contiguous(po, 1, 1, L, dv);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = d;
    a.dv = dv;
    a.m = 2;
    a.causal = 1;
    a.estimator = "oprf";
    a.backend = RFJIT_BACKEND_JIT;
    a.calib_q = &tq;
    a.calib_k = &tk;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create(p, 1, 1, &s), RFJIT_OK);
    rfjit_tensor_ex eq = rfjit_tensor_ex_of(&tq), ek = rfjit_tensor_ex_of(&tk),
                    ev = rfjit_tensor_ex_of(&tv), ep = rfjit_tensor_ex_of(&tp);
    rfjit_decode_args da = RFJIT_DECODE_ARGS_INIT;
    da.q = &eq;
    da.k = &ek;
    da.v = &ev;
    da.out = &ep;
    cr_assert_eq(rfjit_decode_prefill(s, &da), RFJIT_E_RANGE, "%s", rfjit_ctx_last_error(c));
    cr_assert(strstr(rfjit_ctx_last_error(c), "underflows") != NULL, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_decode_position(s), L);
    int nan_rows = 0;
    for (int t = 0; t < L; t++) {
        if (!isfinite(po[t * dv])) {
            nan_rows++;
            continue;
        }
        for (int j = 0; j < dv; j++)
            cr_assert_float_eq(po[t * dv + j], o[t * dv + j], 1e-4 + 1e-4 * fabsf(o[t * dv + j]),
                               "row %d col %d: %g vs execute %g", t, j, po[t * dv + j],
                               o[t * dv + j]);
    }
    cr_assert(nan_rows >= 1);
    rfjit_decode_destroy(s);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
}
