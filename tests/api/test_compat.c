/* SPDX-License-Identifier: MIT */
/*
 * This file checks rfjit_attn_desc.compat through the public API: the errors of a bad mode,
 * an older descriptor without the field, the description, and that a masked key takes no part
 * in a compat plan, not even in the whole-sequence key maximum of the Performer modes. The
 * numerics themselves are checked against transcriptions of each code and against
 * performer-pytorch in python/tests/test_compat.py.
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <stddef.h>
#include <string.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(compat, .init = setup, .fini = teardown);

enum { D = 8, M = 16, L = 12 };

static rfjit_attn_desc desc_of(const char *est, const char *compat, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.estimator = est;
    a.compat = compat;
    a.causal = causal;
    a.seed = 5;
    return a;
}

static void expect_fail(rfjit_attn_desc a, rfjit_status want, const char *needle)
{
    rfjit_plan *p = (rfjit_plan *)&a; /* must come back NULL */
    rfjit_status st = rfjit_plan_create(ctx, &a, &p);
    cr_assert_eq(st, want, "status %s, expected %s: %s", rfjit_status_string(st),
                 rfjit_status_string(want), rfjit_ctx_last_error(ctx));
    cr_assert_null(p);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), needle), "message '%s' lacks '%s'",
              rfjit_ctx_last_error(ctx), needle);
}

Test(compat, bad_modes_are_refused_with_their_reason)
{
    expect_fail(desc_of("positive", "performer", 0), RFJIT_E_INVALID_ARG,
                "compat mode 'performer' is unknown (known: none, performer-pytorch, "
                "google-performer, fast-transformers)");
    expect_fail(desc_of("positive", "", 0), RFJIT_E_INVALID_ARG, "'' is unknown");
    expect_fail(desc_of("hyperbolic", "performer-pytorch", 1), RFJIT_E_NOT_APPLICABLE,
                "compat mode 'performer-pytorch' reproduces estimator 'positive' only, not "
                "'hyperbolic'");
    expect_fail(desc_of("positive", "fast-transformers", 0), RFJIT_E_NOT_APPLICABLE,
                "reproduces estimator 'hyperbolic' only, not 'positive'");
    expect_fail(desc_of("exact", "google-performer", 0), RFJIT_E_NOT_APPLICABLE, "not 'exact'");
    expect_fail(desc_of("hyperbolic", "google-performer", 0), RFJIT_E_NOT_APPLICABLE,
                "reproduces estimator 'positive' and 'trig' only, not 'hyperbolic'");
    expect_fail(desc_of("trig", "performer-pytorch", 0), RFJIT_E_NOT_APPLICABLE, "not 'trig'");
    rfjit_attn_desc a = desc_of(NULL, "google-performer", 0);
    a.backend = RFJIT_BACKEND_JIT;
    expect_fail(a, RFJIT_E_NOT_APPLICABLE, "compat mode 'google-performer' has no JIT kernel");
}

static void describe(const rfjit_attn_desc *a, char *buf, size_t n)
{
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_plan_describe(p, buf, n), RFJIT_OK);
    rfjit_plan_destroy(p);
}

Test(compat, description_and_older_descriptors)
{
    char buf[512];
    rfjit_attn_desc a = desc_of(NULL, "performer-pytorch", 1);
    describe(&a, buf, sizeof buf);
    cr_assert(strstr(buf, "estimator=positive compat=performer-pytorch d=8"), "%s", buf);
    cr_assert(strstr(buf, "backend=reference (compat mode"), "%s", buf);
    a.compat = "none";
    describe(&a, buf, sizeof buf);
    cr_assert(!strstr(buf, "compat"), "%s", buf);
    /* a caller built before the field existed: its size ends where compat starts, so the
     * bytes there are never read */
    a.compat = "no such mode";
    a.size = offsetof(rfjit_attn_desc, compat);
    describe(&a, buf, sizeof buf);
    cr_assert(!strstr(buf, "compat"), "%s", buf);
}

/* out of one (1, 1, L, D) call with key `masked` masked (or none for -1). */
static void run(const rfjit_plan *p, float *q, float *k, float *v, int masked, float *out)
{
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, L, D);
    rfjit_tensor_ex xq = rfjit_tensor_ex_of(&tq), xk = rfjit_tensor_ex_of(&tk),
                    xv = rfjit_tensor_ex_of(&tv), xo = rfjit_tensor_ex_of(&to);
    uint8_t mask[L];
    memset(mask, 1, sizeof mask);
    if (masked >= 0)
        mask[masked] = 0;
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &xq;
    a.k = &xk;
    a.v = &xv;
    a.out = &xo;
    a.key_mask = mask;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
}

Test(compat, masked_keys_take_no_part_not_even_in_the_maximum)
{
    static const char *const modes[][2] = {{"positive", "performer-pytorch"},
                                           {"positive", "google-performer"},
                                           {"trig", "google-performer"},
                                           {"hyperbolic", "fast-transformers"}};
    float q[L * D], k[L * D], k2[L * D], v[L * D], o1[L * D], o2[L * D];
    tu_fill_normal(q, L * D, 0.8, 31);
    tu_fill_normal(k, L * D, 0.8, 32);
    tu_fill_normal(v, L * D, 1.0, 33);
    memcpy(k2, k, sizeof k);
    for (int j = 0; j < D; j++) /* key 4 larger than the rest: it would set the max */
        k2[4 * D + j] = 2.0f;
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
        for (int causal = 0; causal < 2; causal++) {
            rfjit_attn_desc a = desc_of(modes[i][0], modes[i][1], causal);
            rfjit_plan *p = NULL;
            cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
            run(p, q, k, v, 4, o1);
            run(p, q, k2, v, 4, o2);
            cr_assert(!memcmp(o1, o2, sizeof o1), "%s causal %d: a masked key changed the output",
                      modes[i][1], causal);
            run(p, q, k2, v, -1, o2); /* and unmasked, it does change it */
            cr_assert(memcmp(o1, o2, sizeof o1), "%s causal %d", modes[i][1], causal);
            rfjit_plan_destroy(p);
        }
}
