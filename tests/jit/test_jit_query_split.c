/* SPDX-License-Identifier: MIT */
/*
 * This file checks how exact attention spreads one head's queries over the pool
 * (runtime/query_blocks.h):
 *   - the cut: the blocks of a sequence cover its queries once, in order, starting on the
 *     tile grid; a call too small to be worth waking the pool (or one thread, or enough
 *     heads) is not cut; and the blocks' work is even. Work is counted as the kernel does it,
 *     independently of the cut: each query tile visits the key tiles up to its diagonal, T
 *     keys each. A boundary placed at the nearest tile errs by at most half a tile's work, so
 *     the heaviest block exceeds the mean by at most the heaviest tile's work;
 *   - the execute: one head, d = dv = 64, causal and bidirectional, on 2 and 3 threads gives
 *     one thread's bits, at lengths that are whole passes, whole tiles only and neither, and
 *     with queries after earlier keys (Lq < Lk).
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"
#include "runtime/ctx.h"
#include "runtime/query_blocks.h"

#include <stdlib.h>
#include <string.h>

enum { D = 64, DV = 64 };

/* The kernel's multiply-add count (per d + dv) for queries [s, s + n) of a sequence: tile by
 * tile, the rows times the keys up to the tile's diagonal (causal) or all keys. */
static double run_work(const rj_qcut *cut, int64_t s, int64_t n, int64_t lk, int64_t qoff)
{
    double w = 0;
    for (int64_t qt = s; qt < s + n; qt += cut->T) {
        const int64_t rows = s + n - qt < cut->T ? s + n - qt : cut->T;
        int64_t keys = lk;
        if (cut->causal && qt + cut->T + qoff < lk)
            keys = qt + cut->T + qoff;
        w += (double)rows * (double)keys;
    }
    return w;
}

typedef struct cut_case {
    int64_t threads, groups, ng, lq, lk;
    bool causal;
} cut_case;

static rj_qcut cut_of(const cut_case *cc)
{
    const rj_qcut_in in = {.groups = cc->groups,
                           .threads = cc->threads,
                           .max_lq = cc->lq,
                           .max_lk = cc->lk,
                           .ng = cc->ng,
                           .d = D,
                           .dv = DV,
                           .T = 32,
                           .gq = 8,
                           .causal = cc->causal};
    return rj_qcut_make(&in);
}

/* Checks coverage and returns the heaviest and the mean block's work, and the heaviest
 * tile's. */
static void check_cover(const cut_case *cc, const rj_qcut *cut, double *max, double *mean,
                        double *tile_max)
{
    const int64_t lq = cc->lq, lk = cc->lk, qoff = cc->causal ? lk - lq : 0;
    int64_t next = 0;
    double total = 0;
    *max = 0;
    for (int64_t t = 0; t < cut->tasks; t++) {
        int64_t first, n;
        rj_qcut_block(cut, lq, lk, qoff, t, &first, &n);
        cr_assert(n == 0 || (first == next && first % cut->T == 0 && first + n <= lq),
                  "lq=%lld causal=%d block %lld: [%lld, +%lld) after %lld", (long long)lq,
                  cc->causal, (long long)t, (long long)first, (long long)n, (long long)next);
        next += n;
        const double w = run_work(cut, first, n, lk, qoff);
        total += w;
        *max = w > *max ? w : *max;
    }
    cr_assert_eq(next, lq, "lq=%lld causal=%d: the blocks end at %lld", (long long)lq, cc->causal,
                 (long long)next);
    *mean = total / (double)cut->tasks;
    *tile_max = 0;
    for (int64_t s = 0; s < lq; s += cut->T) {
        const double w = run_work(cut, s, lq - s < cut->T ? lq - s : cut->T, lk, qoff);
        *tile_max = w > *tile_max ? w : *tile_max;
    }
}

static void check_balance(const cut_case *cc)
{
    const rj_qcut cut = cut_of(cc);
    double max, mean, tile_max;
    check_cover(cc, &cut, &max, &mean, &tile_max);
    cr_expect(max <= mean + tile_max,
              "lq=%lld lk=%lld threads=%lld ng=%lld causal=%d: heaviest block %.0f > mean %.0f + "
              "heaviest tile %.0f",
              (long long)cc->lq, (long long)cc->lk, (long long)cc->threads, (long long)cc->ng,
              cc->causal, max, mean, tile_max);
}

Test(jit_query_split, issue_lengths_are_cut_evenly)
{
    const int64_t lens[] = {1024, 4096, 16384};
    for (int i = 0; i < 3; i++)
        for (int causal = 0; causal < 2; causal++) {
            const cut_case cc = {2, 1, 1, lens[i], lens[i], causal};
            cr_assert_geq(cut_of(&cc).tasks, 2, "L=%lld causal=%d: not cut", (long long)lens[i],
                          causal);
            check_balance(&cc);
        }
}

Test(jit_query_split, any_length_covers_once_and_balances)
{
    const int64_t lens[] = {33, 100, 300, 1000, 1023, 1025, 2600, 5000, 20000, 70000};
    const int64_t threads[] = {2, 3, 4, 8};
    for (int i = 0; i < 10; i++)
        for (int t = 0; t < 4; t++)
            for (int causal = 0; causal < 2; causal++)
                for (int shape = 0; shape < 3; shape++) {
                    /* one head; Lq < Lk; grouped heads on two groups */
                    const int64_t lq = lens[i], lk = shape == 1 ? lq + 700 : lq;
                    const cut_case cc = {threads[t], shape == 2 ? 2 : 1, shape == 2 ? 4 : 1, lq, lk,
                                         causal};
                    check_balance(&cc);
                }
}

Test(jit_query_split, small_work_or_one_thread_is_not_cut)
{
    const cut_case one = {1, 1, 1, 16384, 16384, false}, small = {2, 1, 1, 128, 128, true};
    const cut_case many = {2, 4, 1, 4096, 4096, true};
    cr_expect_eq(cut_of(&one).tasks, 1, "one thread: cut");
    cr_expect_eq(cut_of(&small).tasks, 1, "128 queries on one head: cut");
    cr_expect_eq(cut_of(&many).tasks, 1, "four heads on two threads: cut");
}

static rfjit_ctx *make_ctx(int threads)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.threads = threads;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    return c;
}

/* One head's output on `threads` threads. */
static float *attend(int threads, int causal, const float *q, const float *k, const float *v,
                     int64_t lq, int64_t lk)
{
    rfjit_ctx *ctx = make_ctx(threads);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = D;
    a.dv = DV;
    a.causal = causal;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    const int64_t T = p->kp.T, gq = p->kp.gq;
    float *out = malloc((size_t)(lq * DV) * sizeof(float));
    cr_assert_not_null(out);
    memset(out, 0x7f, (size_t)(lq * DV) * sizeof(float));
    rfjit_tensor tq = rfjit_tensor_contiguous((float *)q, 1, 1, lq, D);
    rfjit_tensor tk = rfjit_tensor_contiguous((float *)k, 1, 1, lk, D);
    rfjit_tensor tv = rfjit_tensor_contiguous((float *)v, 1, 1, lk, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, lq, DV);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(ctx);
    if (threads > 1) {
        /* the case must be one the executor cuts, or it checks nothing */
        const rj_qcut_in in = {1, threads, lq, lk, 1, D, DV, T, gq, causal != 0};
        cr_assert_geq(rj_qcut_make(&in).tasks, 2, "lq=%lld threads=%d: not cut", (long long)lq,
                      threads);
    }
    return out;
}

Test(jit_query_split, threads_give_one_threads_bits, .timeout = 300)
{
    /* whole passes; whole 32-query tiles only (AVX2's); neither; Lq < Lk */
    const int64_t lqs[] = {1024, 1248, 2600, 1000}, lks[] = {1024, 1248, 2600, 1700};
    for (int c = 0; c < 4; c++) {
        const int64_t lq = lqs[c], lk = lks[c];
        const uint64_t seed = 900 + (uint64_t)c;
        float *q = malloc((size_t)(lq * D) * sizeof(float));
        float *k = malloc((size_t)(lk * D) * sizeof(float));
        float *v = malloc((size_t)(lk * DV) * sizeof(float));
        cr_assert(q && k && v);
        tu_fill_normal(q, (size_t)(lq * D), 0.5, seed);
        tu_fill_normal(k, (size_t)(lk * D), 0.5, seed + 1);
        tu_fill_normal(v, (size_t)(lk * DV), 1.0, seed + 2);
        for (int causal = 0; causal < 2; causal++) {
            float *one = attend(1, causal, q, k, v, lq, lk);
            for (int threads = 2; threads <= 3; threads++) {
                float *o = attend(threads, causal, q, k, v, lq, lk);
                cr_expect(!memcmp(one, o, (size_t)(lq * DV) * sizeof(float)),
                          "lq=%lld lk=%lld causal=%d seed=%llu: %d threads differ from one",
                          (long long)lq, (long long)lk, causal, (unsigned long long)seed, threads);
                free(o);
            }
            free(one);
        }
        free(q);
        free(k);
        free(v);
    }
}
