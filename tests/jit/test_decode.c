/* SPDX-License-Identifier: MIT */
/*
 * This file checks the decode API: for every estimator (fitted ones calibrated), feeding a
 * causal sequence one token at a time gives the plan's full causal output row by row, to
 * the JIT tolerance (1e-4 of max |output|; the state path chunks differently, the history
 * path re-runs the prefix), for B x H = 2 x 2 and a length crossing several tiles; a reset
 * starts over; bad shapes and bidirectional plans are refused.
 *
 * eva is left out of the row-by-row comparison: its chunk size is ceil(L / C), so a row of
 * the causal output depends on the sequence length (not on later tokens' values), and a
 * decoder that does not know L cannot match it; its decode gives each prefix's own output.
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, double scale, unsigned seed)
{
    srand(seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * ((double)rand() / RAND_MAX - 0.5) * 2);
}

static int fitted(const char *est)
{
    return !strcmp(est, "oprf") || !strcmp(est, "saderf") || !strcmp(est, "sderf") ||
           !strcmp(est, "aderf");
}

Test(decode, matches_full_causal, .timeout = 300)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    enum { B = 2, H = 2, L = 70, D = 16, DV = 8 };
    float *q = malloc(sizeof(float) * B * H * L * D), *k = malloc(sizeof(float) * B * H * L * D);
    float *v = malloc(sizeof(float) * B * H * L * DV);
    float *full = malloc(sizeof(float) * B * H * L * DV);
    fill(q, B * H * L * D, 0.6, 1);
    fill(k, B * H * L * D, 0.6, 2);
    fill(v, B * H * L * DV, 1.0, 3);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, B, H, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
    rfjit_tensor tf = rfjit_tensor_contiguous(full, B, H, L, DV);
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *est = rfjit_estimator_name(e);
        if (!strcmp(est, "eva") || !strcmp(est, "blocksparse")) /* blocksparse: no decoding */
            continue;
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = est;
        a.d = D;
        a.dv = DV;
        a.m = 32;
        a.causal = 1;
        a.seed = 5;
        a.hybrid_signs = 3;
        a.eva_window = 4;
        a.eva_chunks = 4;
        if (fitted(est)) {
            a.calib_q = &tq;
            a.calib_k = &tk;
        }
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s: %s", est,
                     rfjit_ctx_last_error(c));
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &tf), RFJIT_OK, "%s: %s", est,
                     rfjit_ctx_last_error(c));
        rfjit_decode *s = NULL;
        cr_assert_eq(rfjit_decode_create(p, B, H, &s), RFJIT_OK);
        for (int pass = 0; pass < 2; pass++) {
            double err = 0, mx = 0;
            for (int t = 0; t < L; t++) {
                /* views of token t of every (batch, head): strides of the full arrays */
                rfjit_tensor sq = {q + t * D, {B, H, 1, D}, {H * L * D, L * D, D, 1}};
                rfjit_tensor sk = {k + t * D, {B, H, 1, D}, {H * L * D, L * D, D, 1}};
                rfjit_tensor sv = {v + t * DV, {B, H, 1, DV}, {H * L * DV, L * DV, DV, 1}};
                float o[B * H * DV];
                rfjit_tensor so = rfjit_tensor_contiguous(o, B, H, 1, DV);
                cr_assert_eq(rfjit_decode_step(s, &sq, &sk, &sv, &so), RFJIT_OK, "%s t=%d: %s",
                             est, t, rfjit_ctx_last_error(c));
                for (int bh = 0; bh < B * H; bh++)
                    for (int j = 0; j < DV; j++) {
                        double f = full[(bh * L + t) * DV + j];
                        err = fmax(err, fabs(o[bh * DV + j] - f));
                        mx = fmax(mx, fabs(f));
                    }
            }
            cr_expect(err <= 1e-4 * mx, "%s pass %d: max |step - full| = %.3g (max %.3g)", est,
                      pass, err, mx);
            cr_assert_eq(rfjit_decode_position(s), L);
            rfjit_decode_reset(s);
            cr_assert_eq(rfjit_decode_position(s), 0);
        }
        /* a step of the wrong length is refused */
        rfjit_tensor bad = rfjit_tensor_contiguous(q, B, H, 2, D);
        float o[B * H * DV];
        rfjit_tensor so = rfjit_tensor_contiguous(o, B, H, 1, DV);
        cr_assert_eq(rfjit_decode_step(s, &bad, &bad, &tv, &so), RFJIT_E_SHAPE);
        rfjit_decode_destroy(s);
        rfjit_plan_destroy(p);
    }
    /* bidirectional plans cannot decode */
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK);
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create(p, 1, 1, &s), RFJIT_E_NOT_APPLICABLE);
    cr_assert_null(s);
    rfjit_decode_destroy(NULL);
    rfjit_plan_destroy(p);
    free(q);
    free(k);
    free(v);
    free(full);
    rfjit_ctx_destroy(c);
}
