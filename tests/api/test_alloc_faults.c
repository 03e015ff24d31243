/* SPDX-License-Identifier: MIT */
/*
 * This file walks every allocation point of rfjit's own memory (core/base.c's countdown) in
 * each scenario below: the run with the k-th allocation failing, for k = 0, 1, 2, ... until a
 * run no longer reaches the injection. Each run must return RFJIT_OK with the right output
 * (a failure the code may absorb, e.g. an optional cache) or RFJIT_E_NOMEM from the call that
 * failed, never crash; and once everything is destroyed, the live-block count must be back
 * where it started (nothing leaked on any error path). LLVM's own allocations are not
 * injected. The number of points walked per scenario is printed.
 */
#include <criterion/criterion.h>

#include "core/testing.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { L = 40, D = 8, M = 8 };

static float q[L * D], k[L * D], v[L * D], out[L * 2 * M], want[16][L * 2 * M];
static char tmpdir[64];

/* N(0, 0.25) entries from the suites' shared generator */
static void fill(float *x, int n, uint64_t seed)
{
    tu_fill_normal(x, (size_t)n, 0.25, seed);
}

static rfjit_status ctx_new(rfjit_ctx **c, const char *cache)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = cache;
    cd.wisdom_path = "";
    cd.threads = 2;
    return rfjit_ctx_create(&cd, c);
}

/* A scenario runs on ctx (NULL: it makes its own), writes what it computed to out, and
 * returns the first failing status after cleaning up everything it made. */
typedef rfjit_status (*scenario_fn)(rfjit_ctx *ctx);

static rfjit_status attend(rfjit_ctx *c, const char *est, int backend, int causal, int calib)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.estimator = est;
    a.backend = backend;
    a.causal = causal;
    a.eva_window = 4;
    a.eva_chunks = 2;
    a.hybrid_signs = 1;
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 2, L / 2, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 2, L / 2, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 2, L / 2, D);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 2, L / 2, D);
    a.calib_q = calib ? &tq : NULL;
    a.calib_k = calib ? &tk : NULL;
    rfjit_plan *p = NULL;
    rfjit_status s = rfjit_plan_create(c, &a, &p);
    if (s == RFJIT_OK)
        s = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
    rfjit_plan_destroy(p);
    return s;
}

static rfjit_status s_ctx(rfjit_ctx *unused)
{
    (void)unused;
    rfjit_ctx *c = NULL;
    rfjit_status s = ctx_new(&c, "");
    rfjit_ctx_destroy(c);
    out[0] = 1;
    return s;
}

/* a fresh context: the compile path (IR generation, kernel cache) is walked too */
static rfjit_status s_compile_positive(rfjit_ctx *unused)
{
    (void)unused;
    rfjit_ctx *c = NULL;
    rfjit_status s = ctx_new(&c, "");
    if (s == RFJIT_OK)
        s = attend(c, "positive", RFJIT_BACKEND_JIT, 0, 0);
    rfjit_ctx_destroy(c);
    return s;
}

/* a fresh context on a disk cache: stores, then a second context loads */
static rfjit_status s_disk_cache(rfjit_ctx *unused)
{
    (void)unused;
    char dir[128];
    snprintf(dir, sizeof dir, "%s/cache", tmpdir);
    rfjit_status s = RFJIT_OK;
    for (int round = 0; round < 2 && s == RFJIT_OK; round++) {
        rfjit_ctx *c = NULL;
        s = ctx_new(&c, dir);
        if (s == RFJIT_OK)
            s = attend(c, "exact", RFJIT_BACKEND_JIT, 1, 0);
        rfjit_ctx_destroy(c);
    }
    return s;
}

static rfjit_status s_exact(rfjit_ctx *c)
{
    return attend(c, "exact", RFJIT_BACKEND_JIT, 0, 0);
}

static rfjit_status s_positive_causal(rfjit_ctx *c)
{
    return attend(c, "positive", RFJIT_BACKEND_JIT, 1, 0);
}

static rfjit_status s_trig_reference(rfjit_ctx *c)
{
    return attend(c, "trig", RFJIT_BACKEND_REFERENCE, 0, 0);
}

static rfjit_status s_saderf_fitted(rfjit_ctx *c)
{
    return attend(c, "saderf", RFJIT_BACKEND_JIT, 0, 0);
}

static rfjit_status s_oprf_calibrated_causal(rfjit_ctx *c)
{
    return attend(c, "oprf", RFJIT_BACKEND_JIT, 1, 1);
}

static rfjit_status s_eva(rfjit_ctx *c)
{
    return attend(c, "eva", RFJIT_BACKEND_AUTO, 1, 0);
}

static rfjit_status s_hybrid(rfjit_ctx *c)
{
    return attend(c, "hybrid", RFJIT_BACKEND_AUTO, 0, 0);
}

static rfjit_status s_decode(rfjit_ctx *c)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.causal = 1;
    rfjit_plan *p = NULL;
    rfjit_decode *st = NULL;
    rfjit_status s = rfjit_plan_create(c, &a, &p);
    if (s == RFJIT_OK)
        s = rfjit_decode_create(p, 1, 2, &st);
    for (int t = 0; t < 3 && s == RFJIT_OK; t++) {
        rfjit_tensor tq = {q + t * D, {1, 2, 1, D}, {0, (L / 2) * D, D, 1}};
        rfjit_tensor tk = {k + t * D, {1, 2, 1, D}, {0, (L / 2) * D, D, 1}};
        rfjit_tensor tv = {v + t * D, {1, 2, 1, D}, {0, (L / 2) * D, D, 1}};
        rfjit_tensor to = {out + t * 2 * D, {1, 2, 1, D}, {0, D, D, 1}};
        s = rfjit_decode_step(st, &tq, &tk, &tv, &to);
    }
    rfjit_decode_destroy(st);
    rfjit_plan_destroy(p);
    return s;
}

static rfjit_tensor_ex ex_of(float *x, int64_t n, int64_t h, int64_t l)
{
    rfjit_tensor t = rfjit_tensor_contiguous(x, n, h, l, D);
    return rfjit_tensor_ex_of(&t);
}

/* The slot calls on a constant state (positive) and on a history (exact), grouped heads:
 * prefill, step, snapshot, restore into another slot, step. */
static rfjit_status decode_slots(rfjit_ctx *c, const char *est, float *o)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.m = M;
    a.causal = 1;
    rfjit_plan *p = NULL;
    rfjit_decode *st = NULL;
    rfjit_decode_desc dd = RFJIT_DECODE_DESC_INIT;
    dd.slots = 3;
    dd.heads = 2;
    dd.kv_heads = 1;
    const int64_t two[2] = {2, 0}, one = 1;
    const int32_t len[2] = {5, 3};
    rfjit_tensor_ex tq = ex_of(q, 2, 2, 5), tk = ex_of(k, 2, 1, 5), tv = ex_of(v, 2, 1, 5),
                    to = ex_of(o, 2, 2, 5);
    rfjit_decode_args da = RFJIT_DECODE_ARGS_INIT;
    da.q = &tq, da.k = &tk, da.v = &tv, da.out = &to, da.index = two, da.lengths = len;
    rfjit_status s = rfjit_plan_create(c, &a, &p);
    if (s == RFJIT_OK)
        s = rfjit_decode_create_ex(p, &dd, &st);
    if (s == RFJIT_OK)
        s = rfjit_decode_prefill(st, &da);
    rfjit_tensor_ex sq = ex_of(q + 200, 2, 2, 1), sk = ex_of(k + 200, 2, 1, 1),
                    sv = ex_of(v + 200, 2, 1, 1), so = ex_of(o + 160, 2, 2, 1);
    da.q = &sq, da.k = &sk, da.v = &sv, da.out = &so, da.lengths = NULL;
    if (s == RFJIT_OK)
        s = rfjit_decode_step_ex(st, &da);
    size_t size = 0;
    if (s == RFJIT_OK)
        s = rfjit_decode_snapshot(st, 2, NULL, 0, &size);
    void *snap = s == RFJIT_OK ? malloc(size) : NULL;
    if (s == RFJIT_OK)
        s = rfjit_decode_snapshot(st, 2, snap, size, &size);
    if (s == RFJIT_OK)
        s = rfjit_decode_restore(st, 1, snap, size);
    so = ex_of(o + 200, 1, 2, 1);
    sq.shape[0] = sk.shape[0] = sv.shape[0] = 1;
    da.index = &one;
    if (s == RFJIT_OK)
        s = rfjit_decode_step_ex(st, &da);
    free(snap);
    rfjit_decode_destroy(st);
    rfjit_plan_destroy(p);
    return s;
}

static rfjit_status s_decode_slots(rfjit_ctx *c)
{
    rfjit_status s = decode_slots(c, "positive", out);
    return s == RFJIT_OK ? decode_slots(c, "exact", out + 320) : s;
}

static rfjit_status s_features_kernel(rfjit_ctx *c)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    rfjit_plan *p = NULL;
    rfjit_status s = rfjit_plan_create(c, &a, &p);
    rfjit_tensor tx = rfjit_tensor_contiguous(q, 1, 1, 8, D);
    rfjit_tensor ty = rfjit_tensor_contiguous(k, 1, 1, 8, D);
    rfjit_tensor phi = rfjit_tensor_contiguous(out, 1, 1, 8, M);
    rfjit_tensor K = rfjit_tensor_contiguous(out + 8 * M, 1, 1, 8, 8);
    if (s == RFJIT_OK)
        s = rfjit_plan_features(p, &tx, NULL, &phi, NULL);
    if (s == RFJIT_OK)
        s = rfjit_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_GAUSSIAN, &K);
    rfjit_plan_destroy(p);
    return s;
}

static rfjit_status s_fit(rfjit_ctx *c)
{
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_fit_result r;
    char json[512];
    const rfjit_status s = rfjit_fit(c, "aderf", &tq, &tk, &r, json, sizeof json);
    out[0] = s == RFJIT_OK ? (float)r.objective : 0;
    return s;
}

static rfjit_status s_tune_and_wisdom(rfjit_ctx *c)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = D;
    t.L = 256;
    t.budget = 0.1;
    t.patience = RFJIT_PATIENCE_ESTIMATE;
    t.estimators = "positive,trig";
    rfjit_tune_result *r = NULL;
    rfjit_status s = rfjit_tune(c, &t, &r);
    char path[128];
    snprintf(path, sizeof path, "%s/wisdom", tmpdir);
    char *text = NULL;
    if (s == RFJIT_OK)
        s = rfjit_wisdom_to_string(c, &text);
    if (s == RFJIT_OK)
        s = rfjit_wisdom_export(c, path);
    if (s == RFJIT_OK)
        s = rfjit_wisdom_import(c, path);
    /* the context keeps what tune and import put in its wisdom: empty it whatever failed */
    const rfjit_status f = rfjit_wisdom_forget(c, 0);
    if (s == RFJIT_OK)
        s = f;
    out[0] = text ? (float)strlen(text) : 0;
    rfjit_free(text);
    rfjit_tune_result_destroy(r);
    return s;
}

static const struct {
    const char *name;
    scenario_fn run;
    int own_ctx; /* makes its own contexts */
} scenarios[] = {{"context", s_ctx, 1},
                 {"compile positive", s_compile_positive, 1},
                 {"disk cache store and load", s_disk_cache, 1},
                 {"exact", s_exact, 0},
                 {"positive causal", s_positive_causal, 0},
                 {"trig reference", s_trig_reference, 0},
                 {"saderf fitted per call", s_saderf_fitted, 0},
                 {"oprf calibrated causal", s_oprf_calibrated_causal, 0},
                 {"eva", s_eva, 0},
                 {"hybrid", s_hybrid, 0},
                 {"decode", s_decode, 0},
                 {"features and kernel", s_features_kernel, 0},
                 {"fit", s_fit, 0},
                 {"tune and wisdom", s_tune_and_wisdom, 0},
                 {"decode slots", s_decode_slots, 0}};

static void walk(size_t i)
{
    rfjit_ctx *c = NULL;
    if (!scenarios[i].own_ctx)
        cr_assert_eq(ctx_new(&c, ""), RFJIT_OK);
    /* a clean run: the output to compare with, and warm caches (a kernel compiled into the
     * shared context stays there: that is not a leak of the scenario) */
    memset(out, 0, sizeof out);
    cr_assert_eq(scenarios[i].run(c), RFJIT_OK, "%s: %s", scenarios[i].name,
                 c ? rfjit_ctx_last_error(c) : "");
    memcpy(want[i], out, sizeof out);
    long points = 0, absorbed = 0;
    for (long n = 0;; n++) {
        const long live = rj_test_live_allocs();
        memset(out, 0, sizeof out);
        rj_test_fail_alloc_after(n);
        const rfjit_status s = scenarios[i].run(c);
        const int fired = rj_test_fail_alloc_left() < 0;
        rj_test_fail_alloc_after(-1);
        cr_assert_eq(rj_test_live_allocs(), live,
                     "%s, allocation %ld failing: %ld blocks leaked", scenarios[i].name, n,
                     rj_test_live_allocs() - live);
        if (!fired) {
            cr_assert_eq(s, RFJIT_OK);
            break;
        }
        points++;
        if (s == RFJIT_OK) {
            absorbed++;
            cr_assert(!memcmp(out, want[i], sizeof out),
                      "%s, allocation %ld failing: OK but a different output",
                      scenarios[i].name, n);
        } else {
            cr_assert_eq(s, RFJIT_E_NOMEM, "%s, allocation %ld failing: %s (%s)",
                         scenarios[i].name, n, rfjit_status_string(s),
                         c ? rfjit_ctx_last_error(c) : "");
        }
    }
    rfjit_ctx_destroy(c);
    cr_log_info("%s: %ld allocation points, %ld failures absorbed (result unchanged)",
                scenarios[i].name, points, absorbed);
    fprintf(stderr, "alloc_faults: %s: %ld allocation points, %ld absorbed\n",
            scenarios[i].name, points, absorbed);
}

static void setup(void)
{
    fill(q, L * D, 1);
    fill(k, L * D, 2);
    fill(v, L * D, 3);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rfjit_faults_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(alloc_faults, .init = setup, .fini = teardown, .timeout = 600);

Test(alloc_faults, context)
{
    walk(0);
}

Test(alloc_faults, compile_positive)
{
    walk(1);
}

Test(alloc_faults, disk_cache)
{
    walk(2);
}

Test(alloc_faults, exact)
{
    walk(3);
}

Test(alloc_faults, positive_causal)
{
    walk(4);
}

Test(alloc_faults, trig_reference)
{
    walk(5);
}

Test(alloc_faults, saderf_fitted)
{
    walk(6);
}

Test(alloc_faults, oprf_calibrated_causal)
{
    walk(7);
}

Test(alloc_faults, eva)
{
    walk(8);
}

Test(alloc_faults, hybrid)
{
    walk(9);
}

Test(alloc_faults, decode)
{
    walk(10);
}

Test(alloc_faults, features_and_kernel)
{
    walk(11);
}

Test(alloc_faults, fit)
{
    walk(12);
}

Test(alloc_faults, tune_and_wisdom)
{
    walk(13);
}

Test(alloc_faults, decode_slots)
{
    walk(14);
}
