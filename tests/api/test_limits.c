/* SPDX-License-Identifier: MIT */
/*
 * This file checks that sizes rfjit cannot serve are refused up front, with a status and a
 * message, before anything is allocated lazily, compiled or written: value rows too wide for
 * a JIT kernel (LLVM aborted at dv = 2^20), a decode state, a reference execute and a tuning
 * problem larger than the machine's memory. (Views whose extent overflows: api_misuse.)
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(limits, .init = setup, .fini = teardown);

#define EXPECT_MSG(call, status, needle)                                                         \
    do {                                                                                         \
        const rfjit_status st_ = (call);                                                         \
        cr_expect_eq(st_, (status), "%s -> %s: %s", #call, rfjit_status_string(st_),            \
                     rfjit_ctx_last_error(ctx));                                                 \
        cr_expect(strstr(rfjit_ctx_last_error(ctx), (needle)) != NULL, "message '%s' lacks '%s'", \
                  rfjit_ctx_last_error(ctx), (needle));                                          \
    } while (0)

static rfjit_attn_desc desc(int dv, int backend, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 16;
    a.dv = dv;
    a.m = 16;
    a.backend = backend;
    a.causal = causal;
    return a;
}

Test(limits, jit_value_width)
{
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc(4097, RFJIT_BACKEND_JIT, 0);
    EXPECT_MSG(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NOT_APPLICABLE, "above the JIT's limit");
    cr_expect_null(p);
    a.backend = RFJIT_BACKEND_AUTO; /* the reference takes it, and says why */
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    char buf[1024];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, "backend=reference (dv = 4097 is above"), "%s", buf);
    rfjit_plan_destroy(p);
}

Test(limits, decode_state_beyond_memory)
{
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc(16, RFJIT_BACKEND_JIT, 1);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    rfjit_decode *s = (rfjit_decode *)p;
    EXPECT_MSG(rfjit_decode_create(p, 1 << 20, 1 << 20, &s), RFJIT_E_TOO_LARGE,
               "does not fit this machine's memory");
    cr_expect_null(s);
    rfjit_plan_destroy(p);
}

/* 2^40 queries and keys (stride-0 rows: the views are legal, the work is not): refused before
 * the inputs are scanned or a byte of out is written. */
Test(limits, reference_execute_beyond_memory, .timeout = 10)
{
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = desc(16, RFJIT_BACKEND_REFERENCE, 0);
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    static float buf[16 + 64]; /* the row below out: out's claimed extent runs upwards */
    float *row = buf, *out = buf + 16;
    const int64_t L = (int64_t)1 << 40;
    rfjit_tensor x = {row, {1, 1, L, 16}, {0, 0, 0, 1}};
    rfjit_tensor o = {out, {1, 1, L, 16}, {0, 0, 16, 1}};
    for (int i = 0; i < 64; i++)
        out[i] = 7.0f;
    EXPECT_MSG(rfjit_plan_execute(p, &x, &x, &x, &o), RFJIT_E_TOO_LARGE, "the reference needs");
    for (int i = 0; i < 64; i++)
        cr_expect_eq(out[i], 7.0f, "out[%d] written", i);
    rfjit_plan_destroy(p);
}

/* The tuner's timing problem is L x (2 d + 2 dv) floats: 256 GB at L = 2^24, d = dv = 1024. */
Test(limits, tuning_problem_beyond_memory, .timeout = 30)
{
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    cr_assert(phys < 256e9, "this machine has %.0f GB: the case below would fit", phys * 1e-9);
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = 1024;
    t.L = 1 << 24;
    t.budget = 1e-2;
    t.estimators = "positive";
    rfjit_tune_result *r = NULL;
    EXPECT_MSG(rfjit_tune(ctx, &t, &r), RFJIT_E_TOO_LARGE, "does not fit this machine's memory");
    cr_expect_null(r);
}
