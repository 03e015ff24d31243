/* SPDX-License-Identifier: MIT */
/*
 * This file checks the tiling search (rfjit_tune_tiling, tuner/tiling.c): every candidate of
 * the space makes a plan, ESTIMATE is the model's deterministic first choice and times
 * nothing, MEASURE returns a timed candidate of the space with the list sorted, and bad
 * arguments are refused with the documented statuses and a message.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "rfjit.h"
#include "slice_testutil.h"
#include "tuner/tiling.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static rfjit_attn_desc small(const char *est)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = 16;
    a.m = 16;
    return a;
}

Test(tiling, every_candidate_makes_a_plan, .timeout = 300)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const char *ests[] = {"positive", "exact"};
    for (int e = 0; e < 2; e++) {
        rfjit_attn_desc a = small(ests[e]);
        rj_tune_tiling_cand *cand = NULL;
        size_t n = 0;
        cr_assert_eq(rj_tune_tiling_space(c, &a, &cand, &n, NULL), RFJIT_OK);
        cr_assert_gt(n, 4);
        for (size_t i = 0; i < n; i++) {
            if (i)
                cr_expect_leq(cand[i - 1].score, cand[i].score, "space not ranked");
            /* the slice compiles every third candidate, a different third per estimator */
            if (!tu_slice_keeps(e, (int)(i % 3), 3, 0, 1))
                continue;
            a.tiling = cand[i].t;
            rfjit_plan *p = NULL;
            cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s {%d,%d,%d,%d}: %s",
                         ests[e], cand[i].t.vw, cand[i].t.T, cand[i].t.ri, cand[i].t.rj,
                         rfjit_ctx_last_error(c));
            rfjit_plan_destroy(p);
        }
        rj_free(cand);
    }
    rfjit_ctx_destroy(c);
}

Test(tiling, estimate_and_measure)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc a = small("positive");
    rfjit_tiling b1, b2;
    double ms1 = 0, ms2 = 0;
    cr_assert_eq(rfjit_tune_tiling(c, &a, 256, RFJIT_PATIENCE_ESTIMATE, &b1, &ms1, NULL, NULL),
                 RFJIT_OK);
    cr_assert_eq(rfjit_tune_tiling(c, &a, 256, RFJIT_PATIENCE_ESTIMATE, &b2, &ms2, NULL, NULL),
                 RFJIT_OK);
    cr_expect(isnan(ms1) && memcmp(&b1, &b2, sizeof b1) == 0);
    rfjit_tiling_time tt[256];
    size_t n = 256;
    cr_assert_eq(rfjit_tune_tiling(c, &a, 256, RFJIT_PATIENCE_MEASURE, &b1, &ms1, tt, &n),
                 RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_expect(isfinite(ms1) && ms1 > 0);
    cr_expect(memcmp(&tt[0].tiling, &b1, sizeof b1) == 0);
    int found = 0, timed = 0;
    for (size_t i = 0; i < n; i++) {
        found |= memcmp(&tt[i].tiling, &b1, sizeof b1) == 0;
        timed += isfinite(tt[i].ms);
        if (i > 1 && isfinite(tt[i].ms))
            cr_expect_leq(tt[i - 1].ms, tt[i].ms, "times not sorted at %zu", i);
    }
    cr_expect(found);
    cr_expect(timed >= 2 && timed <= 12, "%d timed", timed);
    rfjit_ctx_destroy(c);
}

Test(tiling, bad_arguments)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc a = small("positive");
    rfjit_tiling b;
    double ms;
    cr_expect_eq(rfjit_tune_tiling(NULL, &a, 64, 1, &b, &ms, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rfjit_tune_tiling(c, NULL, 64, 1, &b, &ms, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rfjit_tune_tiling(c, &a, 64, 1, NULL, &ms, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rfjit_tune_tiling(c, &a, 0, 1, &b, &ms, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect(strstr(rfjit_ctx_last_error(c), "L = 0"), "%s", rfjit_ctx_last_error(c));
    cr_expect_eq(rfjit_tune_tiling(c, &a, 64, 99, &b, &ms, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rfjit_tune_tiling(c, &a, 64, RFJIT_PATIENCE_WISDOM_ONLY, &b, &ms, NULL, NULL),
                 RFJIT_E_INVALID_ARG);
    a.estimator = "nope";
    cr_expect_eq(rfjit_tune_tiling(c, &a, 64, 1, &b, &ms, NULL, NULL), RFJIT_E_NO_ESTIMATOR);
    rfjit_ctx_destroy(c);
}

/* A caller built against an older, shorter descriptor (one that ends before tiling): the
 * search reads only the bytes it was given (ASan catches a read past them) and gives the
 * full descriptor's answer, the fields it lacks taking their defaults. */
Test(tiling, older_shorter_descriptor)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc full = small("positive");
    const size_t n = offsetof(rfjit_attn_desc, tiling);
    unsigned char *buf = malloc(n);
    cr_assert_not_null(buf);
    memcpy(buf, &full, n);
    size_t size = n;
    memcpy(buf, &size, sizeof size);
    const rfjit_attn_desc *old = (const rfjit_attn_desc *)buf;
    rfjit_tiling want, got;
    double ms = 0;
    cr_assert_eq(rfjit_tune_tiling(c, &full, 256, RFJIT_PATIENCE_ESTIMATE, &want, &ms, NULL, NULL),
                 RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_tune_tiling(c, old, 256, RFJIT_PATIENCE_ESTIMATE, &got, &ms, NULL, NULL),
                 RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_expect(!memcmp(&want, &got, sizeof want), "%d %d %d %d vs %d %d %d %d", want.vw, want.T,
              want.ri, want.rj, got.vw, got.T, got.ri, got.rj);
    size = n + 4; /* no version has this size */
    memcpy(buf, &size, sizeof size);
    cr_expect_eq(rfjit_tune_tiling(c, old, 256, RFJIT_PATIENCE_ESTIMATE, &got, &ms, NULL, NULL),
                 RFJIT_E_DESC_SIZE);
    free(buf);
    rfjit_ctx_destroy(c);
}
