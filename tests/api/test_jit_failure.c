/* SPDX-License-Identifier: MIT */
/*
 * This file forces the JIT to fail the way a broken toolchain would: the context's code
 * generator is retargeted to AArch64 (the seam rj_test_jit_retarget of core/testing.h) while
 * kernels are still linked into this x86-64 process. Plan creation must then return a status
 * with LLVM's reason, print nothing and leave the context usable; with
 * rfjit_attn_desc.fallback the plan runs on the portable reference, says so, and computes
 * what the reference backend computes. A disk-cache entry holding such an object is dropped
 * and recompiled, never linked.
 */
#include <criterion/criterion.h>

#include "runtime/ctx.h"
#include "runtime/jit.h"
#include "core/testing.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { L = 33, D = 8 };

static float q[L * D], k[L * D], v[L * D], out[L * D], ref[L * D];

/* N(0, 0.25) entries from the suites' shared generator */
static void fill(float *x, int n, uint64_t seed)
{
    tu_fill_normal(x, (size_t)n, 0.25, seed);
}

static rfjit_ctx *broken_ctx(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_test_jit_retarget(c->jit, "aarch64-unknown-linux-gnu", "generic", "+neon",
                                      &dg),
                 RFJIT_OK, "%s", dg.msg);
    return c;
}

static rfjit_status run(rfjit_ctx *c, int backend, int fallback, float *o, char *describe)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = 16;
    a.seed = 3;
    a.backend = backend;
    a.fallback = fallback;
    rfjit_plan *p = NULL;
    rfjit_status s = rfjit_plan_create(c, &a, &p);
    if (s != RFJIT_OK) {
        cr_expect_null(p);
        return s;
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, D);
    s = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
    if (describe)
        cr_assert_eq(rfjit_plan_describe(p, describe, 1024), RFJIT_OK);
    rfjit_plan_destroy(p);
    return s;
}

Test(jit_failure, a_failed_compile_is_a_status_and_the_fallback_runs_the_reference)
{
    fill(q, L * D, 1);
    fill(k, L * D, 2);
    fill(v, L * D, 3);
    rfjit_ctx *c = broken_ctx();
    for (int backend = RFJIT_BACKEND_AUTO; backend <= RFJIT_BACKEND_JIT; backend += 2) {
        const rfjit_status s = run(c, backend, 0, out, NULL);
        cr_expect(s == RFJIT_E_INTERNAL || s == RFJIT_E_JIT || s == RFJIT_E_TARGET,
                  "backend %d without fallback: %s (%s)", backend, rfjit_status_string(s),
                  rfjit_ctx_last_error(c));
        cr_expect(strlen(rfjit_ctx_last_error(c)) > 10, "no reason given");
    }
    cr_assert_eq(run(c, RFJIT_BACKEND_REFERENCE, 0, ref, NULL), RFJIT_OK,
                 "the reference does not need the JIT: %s", rfjit_ctx_last_error(c));
    char describe[1024];
    cr_assert_eq(run(c, RFJIT_BACKEND_JIT, 1, out, describe), RFJIT_OK, "fallback: %s",
                 rfjit_ctx_last_error(c));
    cr_expect(strstr(describe, "backend=reference (fallback: the JIT failed"), "%s", describe);
    cr_expect(!memcmp(out, ref, sizeof out), "the fallback's output is not the reference's");
    /* the failure is not cached: a repaired JIT compiles the same kernel */
    rj_diag dg = {{0}};
    cr_assert_eq(rj_test_jit_retarget(c->jit, c->isa.triple, c->isa.cpu, c->isa.features, &dg),
                 RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(run(c, RFJIT_BACKEND_JIT, 0, out, describe), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    cr_expect(strstr(describe, "backend=jit"), "%s", describe);
    rfjit_ctx_destroy(c);
}

static void count_dropped(void *user, int level, const char *msg)
{
    (void)level;
    if (strstr(msg, "dropped") && strstr(msg, "ELF machine"))
        ++*(int *)user;
}

/* A whole, hash-checked disk-cache entry holding another architecture's object (written here
 * by the retargeted JIT, which stores before it links) is never linked: the next context
 * drops it, recompiles, and runs. */
Test(jit_failure, a_cached_object_for_another_architecture_is_recompiled)
{
    char dir[] = "/tmp/rfjit_jitfail_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cache[64];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    fill(q, L * D, 1);
    fill(k, L * D, 2);
    fill(v, L * D, 3);
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = cache;
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_test_jit_retarget(c->jit, "aarch64-unknown-linux-gnu", "generic", "+neon",
                                      &dg),
                 RFJIT_OK);
    cr_assert_eq(run(c, RFJIT_BACKEND_JIT, 0, out, NULL), RFJIT_E_JIT, "%s",
                 rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);

    int dropped = 0;
    cd.verbose = 1;
    cd.log = count_dropped;
    cd.log_user = &dropped;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    cr_assert_eq(run(c, RFJIT_BACKEND_REFERENCE, 0, ref, NULL), RFJIT_OK);
    char describe[1024];
    cr_assert_eq(run(c, RFJIT_BACKEND_JIT, 0, out, describe), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(c));
    cr_expect_eq(dropped, 1, "the planted entry was not reported as dropped");
    for (int i = 0; i < L * D; i++)
        cr_assert_float_eq(out[i], ref[i], 1e-4, "out[%d]", i);
    rfjit_ctx_destroy(c);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

Test(jit_failure, fallback_takes_0_or_1)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.fallback = 2;
    rfjit_plan *p = NULL;
    cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_E_INVALID_ARG);
    cr_expect_null(p);
    cr_expect(strstr(rfjit_ctx_last_error(c), "fallback = 2 is not 0 or 1"), "%s",
              rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);
}
