/* SPDX-License-Identifier: MIT */
/*
 * This file checks every JIT kernel against the portable reference through the public API:
 * the same descriptor (so the same W and the same fit) on the reference and the JIT backend,
 * max |JIT - reference| <= ref_tol * max |reference| (the estimator's est.h ref_tol), over
 * estimators x {bidirectional, causal} x d in {16, 32, 64, 128} x m in {16, 64, 256, 100} x
 * ISA in {native, avx2, generic}, with lengths that are not multiples of any tile, L = 1,
 * Lq != Lk, strided views and B x H > 1, hybrid over both bases and eva over windows and
 * chunk counts. An estimator without a kernel would have to say so (RFJIT_E_NOT_APPLICABLE
 * on the JIT backend, the reason in the AUTO plan's description).
 */
#include <criterion/criterion.h>

#include "runtime/ctx.h"
#include "data_testutil.h"
#include "est/est.h"
#include "rfjit.h"
#include "slice_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static rfjit_ctx *make_ctx(const char *isa)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.isa = isa;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK, "context for ISA %s", isa ? isa : "native");
    return c;
}

/* Every registered estimator has a kernel; a new one without must be listed here. */
static int has_kernel(const char *est)
{
    (void)est;
    return 1;
}

static int fitted(const char *est)
{
    return !strcmp(est, "oprf") || !strcmp(est, "saderf") || !strcmp(est, "sderf") ||
           !strcmp(est, "aderf");
}

typedef struct problem {
    int64_t B, H, lq, lk;
    int d, dv;
    float *q, *k, *v;
    rfjit_tensor tq, tk, tv;
} problem;

static void problem_init(problem *p, int64_t B, int64_t H, int64_t lq, int64_t lk, int d, int dv,
                         uint64_t seed)
{
    p->B = B, p->H = H, p->lq = lq, p->lk = lk, p->d = d, p->dv = dv;
    size_t nq = (size_t)(B * H * lq * d), nk = (size_t)(B * H * lk * d),
           nv = (size_t)(B * H * lk * dv);
    p->q = malloc(nq * sizeof(float));
    p->k = malloc(nk * sizeof(float));
    p->v = malloc(nv * sizeof(float));
    tu_fill_normal(p->q, nq, 0.5, seed);
    tu_fill_normal(p->k, nk, 0.5, seed + 1);
    tu_fill_normal(p->v, nv, 1.0, seed + 2);
    p->tq = rfjit_tensor_contiguous(p->q, B, H, lq, d);
    p->tk = rfjit_tensor_contiguous(p->k, B, H, lk, d);
    p->tv = rfjit_tensor_contiguous(p->v, B, H, lk, dv);
}

static void problem_free(problem *p)
{
    free(p->q);
    free(p->k);
    free(p->v);
}

static rfjit_attn_desc desc_of(const char *est, int d, int dv, int m, int causal,
                               const problem *calib)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = d;
    a.dv = dv;
    a.m = m;
    a.causal = causal;
    a.seed = 7;
    if (causal && fitted(est)) {
        a.calib_q = &calib->tq;
        a.calib_k = &calib->tk;
    }
    return a;
}

/* Run desc on backend into out (B x H x lq x dv floats). */
static void run(rfjit_ctx *c, rfjit_attn_desc a, int backend, const problem *p, float *out)
{
    a.backend = backend;
    rfjit_plan *plan = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &plan), RFJIT_OK, "%s d=%d m=%d causal=%d: %s",
                 a.estimator, a.d, a.m, a.causal, rfjit_ctx_last_error(c));
    rfjit_tensor to = rfjit_tensor_contiguous(out, p->B, p->H, p->lq, p->dv);
    cr_assert_eq(rfjit_plan_execute(plan, &p->tq, &p->tk, &p->tv, &to), RFJIT_OK, "%s: %s",
                 a.estimator, rfjit_ctx_last_error(c));
    rfjit_plan_destroy(plan);
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

/* The bound the estimator documents for its kernels (est.h ref_tol). */
static double tol_of(const char *est)
{
    const rj_est_ops *e = rj_est_find(est);
    cr_assert_not_null(e, "%s", est);
    return e->ref_tol;
}

static void compare(rfjit_ctx *c, const char *isa, const char *est, int d, int dv, int m,
                    int causal, const problem *p)
{
    size_t n = (size_t)(p->B * p->H * p->lq * p->dv);
    float *ref = malloc(n * sizeof(float)), *jit = malloc(n * sizeof(float));
    rfjit_attn_desc a = desc_of(est, d, dv, m, causal, p);
    run(c, a, RFJIT_BACKEND_REFERENCE, p, ref);
    run(c, a, RFJIT_BACKEND_JIT, p, jit);
    double e = rel_err(jit, ref, n), tol = tol_of(est);
    cr_expect(e <= tol, "isa=%s %s d=%d dv=%d m=%d causal=%d B=%lld H=%lld Lq=%lld Lk=%lld: "
              "max|jit-ref|/max|ref| = %.3g > %.0e (data seed 11)", isa, est, d, dv, m, causal,
              (long long)p->B, (long long)p->H, (long long)p->lq, (long long)p->lk, e, tol);
    free(ref);
    free(jit);
}

/* rot: the ISA's number, so that each ISA's slice visits other sizes (slice_testutil.h) */
static void sweep(const char *isa, int rot)
{
    rfjit_ctx *c = make_ctx(isa);
    static const int ds[4] = {16, 32, 64, 128}, ms[4] = {16, 64, 256, 100};
    for (int di = 0; di < 4; di++) {
        problem p;
        problem_init(&p, 1, 2, 37, 37, ds[di], ds[di], 11);
        for (int e = 0; rfjit_estimator_name(e); e++) {
            const char *est = rfjit_estimator_name(e);
            if (!has_kernel(est))
                continue;
            const int nm = strcmp(est, "exact") ? 4 : 1; /* exact has no m */
            for (int causal = 0; causal < 2; causal++)
                for (int mi = 0; mi < nm; mi++)
                    if (tu_slice_keeps(2 * e + causal + 7 * rot, di, 4, mi, nm))
                        compare(c, isa ? isa : "native", est, ds[di], ds[di], ms[mi], causal,
                                &p);
        }
        problem_free(&p);
    }
    rfjit_ctx_destroy(c);
}

Test(jit_equiv, native, .timeout = 600)
{
    sweep(NULL, 0);
}

Test(jit_equiv, avx2, .timeout = 600)
{
    sweep("avx2", 1);
}

Test(jit_equiv, generic, .timeout = 600)
{
    sweep("generic", 2);
}

/* L = 1, Lq != Lk, odd dv, several (batch, head) slices, a long sequence. */
Test(jit_equiv, shapes, .timeout = 600)
{
    rfjit_ctx *c = make_ctx(NULL);
    static const struct {
        int64_t B, H, lq, lk;
        int d, dv, m;
    } cs[] = {{1, 1, 1, 1, 16, 16, 16},  {2, 3, 1, 1, 32, 8, 64},   {1, 1, 5, 83, 64, 24, 100},
              {2, 2, 70, 33, 16, 3, 16}, {1, 1, 1000, 1000, 64, 64, 256}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        problem p;
        problem_init(&p, cs[i].B, cs[i].H, cs[i].lq, cs[i].lk, cs[i].d, cs[i].dv, 11);
        for (int e = 0; rfjit_estimator_name(e); e++) {
            const char *est = rfjit_estimator_name(e);
            if (!has_kernel(est))
                continue;
            for (int causal = 0; causal < 2; causal++) {
                if (causal && p.lq != p.lk)
                    continue;
                if (tu_slice_keeps(2 * e + causal, (int)i, 5, 0, 1))
                    compare(c, "native", est, cs[i].d, cs[i].dv, cs[i].m, causal, &p);
            }
        }
        problem_free(&p);
    }
    rfjit_ctx_destroy(c);
}

/* Bidirectional keys past 2 x 2048 run as independently built key-block states merged in
 * order (exec_jit.c); every estimator against the reference there, Lk not a multiple of the
 * block or tile, queries fewer than keys. */
Test(jit_equiv, key_blocks, .timeout = 300)
{
    rfjit_ctx *c = make_ctx(NULL);
    problem p;
    problem_init(&p, 1, 2, 700, 6001, 32, 16, 11);
    for (int e = 0; rfjit_estimator_name(e); e++)
        if (has_kernel(rfjit_estimator_name(e)))
            compare(c, "native", rfjit_estimator_name(e), 32, 16, 64, 0, &p);
    problem_free(&p);
    rfjit_ctx_destroy(c);
}

/* A causal sequence with fewer slices than threads is scanned in blocks, one per thread
 * (exec_jit.c): key states in parallel (each block's keys in as many parts as threads),
 * prefix merges, blocks in parallel. Against the reference with 3 threads (blocks and parts
 * not multiples of the tile), one slice and two, and with 2 threads, one slice. */
Test(jit_equiv, causal_scan, .timeout = 300)
{
    for (int threads = 3; threads >= 2; threads--) {
        rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
        cd.cache_dir = "";
        cd.wisdom_path = "";
        cd.threads = threads;
        rfjit_ctx *c = NULL;
        cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
        for (int64_t H = 1; H <= threads - 1; H++) {
            problem p;
            problem_init(&p, 1, H, 4999, 4999, 32, 16, 11);
            for (int e = 0; rfjit_estimator_name(e); e++)
                if (has_kernel(rfjit_estimator_name(e)) &&
                    tu_slice_keeps(e, (int)H - 1 + 2 * (3 - threads), 3, 0, 1))
                    compare(c, "native", rfjit_estimator_name(e), 32, 16, 64, 1, &p);
            problem_free(&p);
        }
        rfjit_ctx_destroy(c);
    }
}

/* hybrid over both bases, with 1 and 3 sign features (the sweep uses the defaults). */
Test(jit_equiv, hybrid_variants, .timeout = 300)
{
    rfjit_ctx *c = make_ctx(NULL);
    problem p;
    problem_init(&p, 1, 2, 53, 53, 32, 24, 11);
    for (int base = 0; base < 2; base++)
        for (int signs = 1; signs <= 3; signs += 2)
            for (int causal = 0; causal < 2; causal++) {
                size_t n = (size_t)(p.B * p.H * p.lq * p.dv);
                float *ref = malloc(n * sizeof(float)), *jit = malloc(n * sizeof(float));
                rfjit_attn_desc a = desc_of("hybrid", 32, 24, 40, causal, &p);
                a.hybrid_base = base ? RFJIT_HYBRID_BASE_HYPERBOLIC : RFJIT_HYBRID_BASE_POSITIVE;
                a.hybrid_signs = signs;
                run(c, a, RFJIT_BACKEND_REFERENCE, &p, ref);
                run(c, a, RFJIT_BACKEND_JIT, &p, jit);
                double e = rel_err(jit, ref, n), tol = tol_of("hybrid");
                cr_expect(e <= tol, "hybrid base=%d n=%d causal=%d: %.3g > %.0e", base, signs,
                          causal, e, tol);
                free(ref);
                free(jit);
            }
    problem_free(&p);
    rfjit_ctx_destroy(c);
}

/* eva over windows (none, inside a chunk, across chunks, all) and chunk counts (one, some,
 * one key each), causal and not, Lq != Lk. */
Test(jit_equiv, eva_variants, .timeout = 300)
{
    rfjit_ctx *c = make_ctx(NULL);
    static const int windows[4] = {0, 4, 16, 100}, chunks[4] = {1, 3, 8, 64};
    for (int shape = 0; shape < 2; shape++) {
        problem p;
        problem_init(&p, 1, 2, shape ? 29 : 53, 53, 16, 8, 11);
        for (int wi = 0; wi < 4; wi++)
            for (int ci = 0; ci < 4; ci++)
                for (int causal = 0; causal < 2 - shape; causal++) {
                    /* the slice: a diagonal per mode, every window and chunk count in each */
                    if (tu_slice() && (wi + ci + 2 * shape + causal) % 4)
                        continue;
                    size_t n = (size_t)(p.B * p.H * p.lq * p.dv);
                    float *ref = malloc(n * sizeof(float)), *jit = malloc(n * sizeof(float));
                    rfjit_attn_desc a = desc_of("eva", 16, 8, 16, causal, &p);
                    a.eva_window = windows[wi];
                    a.eva_chunks = chunks[ci];
                    run(c, a, RFJIT_BACKEND_REFERENCE, &p, ref);
                    run(c, a, RFJIT_BACKEND_JIT, &p, jit);
                    double e = rel_err(jit, ref, n), tol = tol_of("eva");
                    cr_expect(e <= tol, "eva window=%d chunks=%d causal=%d Lq=%lld: %.3g > %.0e",
                              windows[wi], chunks[ci], causal, (long long)p.lq, e, tol);
                    free(ref);
                    free(jit);
                }
        problem_free(&p);
    }
    rfjit_ctx_destroy(c);
}

/* The official eva variant on both backends: 48 positions, or 45 padded to 48 by every
 * window; chunks of 48, 16, 6 and 1 positions (chunk counts tiling 48), causal and not. */
Test(jit_equiv, eva_official, .timeout = 300)
{
    rfjit_ctx *c = make_ctx(NULL);
    static const int windows[4] = {4, 8, 16, 48}, chunks[4] = {1, 3, 8, 48};
    for (int shape = 0; shape < 2; shape++) {
        problem p;
        const int64_t L = shape ? 45 : 48;
        problem_init(&p, 1, 2, L, L, 16, 8, 12);
        for (int wi = 0; wi < 4; wi++)
            for (int ci = 0; ci < 4; ci++)
                for (int causal = 0; causal < 2; causal++) {
                    if (tu_slice() && (wi + ci + shape + causal) % 4)
                        continue;
                    size_t n = (size_t)(p.B * p.H * p.lq * p.dv);
                    float *ref = malloc(n * sizeof(float)), *jit = malloc(n * sizeof(float));
                    rfjit_attn_desc a = desc_of("eva", 16, 8, 16, causal, &p);
                    a.eva_window = windows[wi];
                    a.eva_chunks = chunks[ci];
                    a.eva_variant = "official";
                    run(c, a, RFJIT_BACKEND_REFERENCE, &p, ref);
                    run(c, a, RFJIT_BACKEND_JIT, &p, jit);
                    double e = rel_err(jit, ref, n), tol = tol_of("eva");
                    cr_expect(e <= tol,
                              "official window=%d chunks=%d causal=%d L=%lld: %.3g > %.0e",
                              windows[wi], chunks[ci], causal, (long long)L, e, tol);
                    free(ref);
                    free(jit);
                }
        problem_free(&p);
    }
    rfjit_ctx_destroy(c);
}

/* Strided views (padded rows, a non-unit element stride) give the same bits as contiguous. */
Test(jit_equiv, strided)
{
    rfjit_ctx *c = make_ctx(NULL);
    problem p;
    const int64_t L = 45;
    const int d = 32, dv = 16;
    problem_init(&p, 1, 2, L, L, d, dv, 5);
    /* q with rows padded to 40 floats; k with element stride 2; out with rows of 20 floats */
    float *qs = calloc((size_t)(2 * L * 40), sizeof(float));
    float *ks = calloc((size_t)(2 * L * d * 2), sizeof(float));
    for (int64_t h = 0; h < 2; h++)
        for (int64_t i = 0; i < L; i++)
            for (int j = 0; j < d; j++) {
                qs[(h * L + i) * 40 + j] = p.q[(h * L + i) * d + j];
                ks[((h * L + i) * d + j) * 2] = p.k[(h * L + i) * d + j];
            }
    rfjit_tensor tq = {qs, {1, 2, L, d}, {0, L * 40, 40, 1}};
    rfjit_tensor tk = {ks, {1, 2, L, d}, {0, L * d * 2, d * 2, 2}};
    const char *ests[] = {"positive", "trig", "saderf", "exact"};
    for (int e = 0; e < 4; e++)
        for (int causal = 0; causal < 2; causal++) {
            rfjit_attn_desc a = desc_of(ests[e], d, dv, 64, causal, &p);
            a.backend = RFJIT_BACKEND_JIT;
            rfjit_plan *plan = NULL;
            cr_assert_eq(rfjit_plan_create(c, &a, &plan), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
            float *o1 = calloc((size_t)(2 * L * dv), sizeof(float));
            float *o2 = calloc((size_t)(2 * L * 20), sizeof(float));
            rfjit_tensor t1 = rfjit_tensor_contiguous(o1, 1, 2, L, dv);
            rfjit_tensor t2 = {o2, {1, 2, L, dv}, {0, L * 20, 20, 1}};
            cr_assert_eq(rfjit_plan_execute(plan, &p.tq, &p.tk, &p.tv, &t1), RFJIT_OK);
            cr_assert_eq(rfjit_plan_execute(plan, &tq, &tk, &p.tv, &t2), RFJIT_OK, "%s",
                         rfjit_ctx_last_error(c));
            for (int64_t h = 0; h < 2; h++)
                for (int64_t i = 0; i < L; i++)
                    for (int j = 0; j < dv; j++)
                        cr_assert_eq(o1[(h * L + i) * dv + j], o2[(h * L + i) * 20 + j],
                                     "%s causal=%d h=%lld i=%lld j=%d", ests[e], causal,
                                     (long long)h, (long long)i, j);
            free(o1);
            free(o2);
            rfjit_plan_destroy(plan);
        }
    free(qs);
    free(ks);
    problem_free(&p);
    rfjit_ctx_destroy(c);
}

/* Estimators without a kernel: the JIT backend refuses, AUTO runs the reference and says why. */
Test(jit_equiv, no_kernel_is_reported)
{
    rfjit_ctx *c = make_ctx(NULL);
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *est = rfjit_estimator_name(e);
        rfjit_attn_desc a = desc_of(est, 16, 16, 16, 0, NULL);
        a.backend = RFJIT_BACKEND_JIT;
        rfjit_plan *plan = NULL;
        rfjit_status s = rfjit_plan_create(c, &a, &plan);
        char buf[512];
        if (has_kernel(est)) {
            cr_assert_eq(s, RFJIT_OK, "%s: %s", est, rfjit_ctx_last_error(c));
            cr_assert_eq(rfjit_plan_describe(plan, buf, sizeof buf), RFJIT_OK);
            /* blocksparse composes its feature kernel with float loops, and says so */
            cr_assert(strstr(buf, strcmp(est, "blocksparse") ? "backend=jit"
                                                             : "backend=blocksparse jit-features"),
                      "%s", buf);
            rfjit_plan_destroy(plan);
            continue;
        }
        cr_assert_eq(s, RFJIT_E_NOT_APPLICABLE, "%s", est);
        a.backend = RFJIT_BACKEND_AUTO;
        cr_assert_eq(rfjit_plan_create(c, &a, &plan), RFJIT_OK);
        cr_assert_eq(rfjit_plan_describe(plan, buf, sizeof buf), RFJIT_OK);
        cr_assert(strstr(buf, "backend=reference (") != NULL, "%s", buf);
        rfjit_plan_destroy(plan);
    }
    rfjit_ctx_destroy(c);
}

/* Every tiling of the tuner's space computes the same attention (to the float tolerance), and
 * a tiling outside the rules is refused with a message, not clamped. */
Test(jit_equiv, tilings, .timeout = 300)
{
    rfjit_ctx *c = make_ctx(NULL);
    static const rfjit_tiling ok[] = {{8, 8, 1, 1},   {16, 64, 8, 4}, {4, 4, 2, 3},
                                      {16, 16, 2, 1}, {8, 0, 0, 0},   {0, 48, 8, 0}};
    const char *ests[] = {"exact", "positive", "trig", "saderf", "hybrid", "eva"};
    problem p;
    problem_init(&p, 1, 2, 75, 75, 32, 24, 11);
    for (size_t t = 0; t < sizeof ok / sizeof ok[0]; t++)
        for (int e = 0; e < 6; e++)
            for (int causal = 0; causal < 2; causal++) {
                if (!tu_slice_keeps(2 * e + causal, (int)t, 6, 0, 1))
                    continue;
                rfjit_attn_desc a = desc_of(ests[e], 32, 24, 36, causal, &p);
                if (ok[t].vw > c->isa.max_vw) { /* 16 lanes on a CPU without AVX-512 */
                    a.tiling = ok[t];
                    a.backend = RFJIT_BACKEND_JIT;
                    rfjit_plan *plan = NULL;
                    cr_expect_eq(rfjit_plan_create(c, &a, &plan), RFJIT_E_INVALID_ARG);
                    cr_expect(strstr(rfjit_ctx_last_error(c), "exceeds the target"), "%s",
                              rfjit_ctx_last_error(c));
                    continue;
                }
                size_t n = (size_t)(p.B * p.H * p.lq * p.dv);
                float *ref = malloc(n * sizeof(float)), *jit = malloc(n * sizeof(float));
                run(c, a, RFJIT_BACKEND_REFERENCE, &p, ref);
                a.tiling = ok[t];
                run(c, a, RFJIT_BACKEND_JIT, &p, jit);
                double err = rel_err(jit, ref, n), tol = tol_of(ests[e]);
                cr_expect(err <= tol, "%s causal=%d tiling {%d,%d,%d,%d}: %.3g > %.0e", ests[e],
                          causal, ok[t].vw, ok[t].T, ok[t].ri, ok[t].rj, err, tol);
                free(ref);
                free(jit);
            }
    problem_free(&p);
    static const struct {
        rfjit_tiling t;
        const char *says;
    } bad[] = {{{12, 0, 0, 0}, "vector width"}, {{32, 0, 0, 0}, "vector width"},
               {{8, 20, 0, 0}, "token tile"},   {{8, 512, 0, 0}, "token tile"},
               {{0, 0, 3, 0}, "register tile rows"}, {{0, 0, 0, 5}, "register tile vectors"},
               {{-4, 0, 0, 0}, "vector width"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rfjit_attn_desc a = desc_of("positive", 32, 32, 64, 0, NULL);
        a.tiling = bad[i].t;
        rfjit_plan *plan = NULL;
        cr_expect_eq(rfjit_plan_create(c, &a, &plan), RFJIT_E_INVALID_ARG, "tiling %zu", i);
        cr_expect_null(plan);
        cr_expect(strstr(rfjit_ctx_last_error(c), bad[i].says), "tiling %zu: '%s'", i,
                  rfjit_ctx_last_error(c));
    }
    rfjit_ctx_destroy(c);
}
