/* SPDX-License-Identifier: MIT */
/*
 * This file checks blocksparse (est/blocksparse.c): its float32 path (runtime/
 * exec_blocksparse.c) against its double reference at odd sizes, bidirectional and causal,
 * with key masks, grouped heads, padded batches and Lq < Lk; its identities on both backends
 * (sparse_exact = 0 is positive with the same seed and m, sparse_exact >= the blocks is exact
 * softmax); that on the hardest real head its error falls when blocks are taken exactly; and
 * that bad parameters and the calls it has no meaning for give statuses with messages.
 *
 * Float tolerance, |fast - reference| <= TOL max |reference|: every output is a ratio of two
 * sums of positive weights times values, so a relative error eps on each weight moves it by
 * at most 2 eps max |v|. A weight is a float exp of a float logit (x.y over d = 16 terms,
 * |x.y| < 10 here: error about d u |x||y|) or a product of two float feature vectors (m = 32
 * terms, each an exp of a float projection, max f = 1) and a key scale; with u = 6e-8 that is
 * eps < 1e-5 with room, and 1e-4 is the estimator's ref_tol, the same bound every estimator's
 * float path is held to (tests/jit/test_jit_equiv.c). The reference identities hold to
 * rounding in double: the same sums in another order and with another shift, 1e-12.
 */
#include <criterion/criterion.h>

#include "bench.h"
#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 12, M = 32, LMAX = 80, HMAX = 4 };
#define TOL 1e-4
#define REF_TOL 1e-12

typedef struct problem {
    int causal, H, Hkv, B;
    int64_t lq, lk;
    const uint8_t *mask;        /* B x lk, or NULL */
    const int32_t *klen, *qlen; /* B entries, or NULL */
} problem;

typedef struct data {
    float q[2 * HMAX * LMAX * D], k[2 * HMAX * LMAX * D], v[2 * HMAX * LMAX * DV];
} data;

static void fill(data *x, uint64_t seed)
{
    tu_fill_normal(x->q, sizeof x->q / sizeof(float), 1.0, seed);
    tu_fill_normal(x->k, sizeof x->k / sizeof(float), 1.0, seed + 1);
    tu_fill_normal(x->v, sizeof x->v / sizeof(float), 1.0, seed + 2);
}

static rfjit_plan *plan(rfjit_ctx *c, const char *est, int causal, int backend, int block,
                        int exact)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.seed = 11;
    a.causal = causal;
    a.backend = backend;
    a.sparse_block = block;
    a.sparse_exact = exact;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s: %s", est, rfjit_ctx_last_error(c));
    return p;
}

static void run(rfjit_ctx *c, const rfjit_plan *p, const problem *pr, const data *x, float *out)
{
    rfjit_tensor q = rfjit_tensor_contiguous((float *)x->q, pr->B, pr->H, pr->lq, D),
                 k = rfjit_tensor_contiguous((float *)x->k, pr->B, pr->Hkv, pr->lk, D),
                 v = rfjit_tensor_contiguous((float *)x->v, pr->B, pr->Hkv, pr->lk, DV),
                 o = rfjit_tensor_contiguous(out, pr->B, pr->H, pr->lq, DV);
    rfjit_tensor_ex tq = rfjit_tensor_ex_of(&q), tk = rfjit_tensor_ex_of(&k),
                    tv = rfjit_tensor_ex_of(&v), to = rfjit_tensor_ex_of(&o);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq, a.k = &tk, a.v = &tv, a.out = &to;
    a.key_mask = pr->mask;
    a.key_lengths = pr->klen;
    a.query_lengths = pr->qlen;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
}

/* max |a - b| / max |b| over n entries. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return s > 0 ? e / s : e;
}

static size_t out_len(const problem *pr)
{
    return (size_t)pr->B * (size_t)pr->H * (size_t)pr->lq * DV;
}

/* est1 (backend1, block, exact) against est2 (backend2) on pr: the relative error. */
static double compare(rfjit_ctx *c, const problem *pr, const char *est1, int be1, const char *est2,
                      int be2, int block, int exact, uint64_t seed)
{
    static data x;
    static float o1[2 * HMAX * LMAX * DV], o2[2 * HMAX * LMAX * DV];
    fill(&x, seed);
    rfjit_plan *p1 = plan(c, est1, pr->causal, be1, block, exact);
    rfjit_plan *p2 = plan(c, est2, pr->causal, be2, block, exact);
    memset(o1, 0, sizeof o1);
    memset(o2, 0, sizeof o2);
    run(c, p1, pr, &x, o1);
    run(c, p2, pr, &x, o2);
    rfjit_plan_destroy(p1);
    rfjit_plan_destroy(p2);
    return rel_err(o1, o2, out_len(pr));
}

static uint8_t mask[2 * LMAX];
static const int32_t klen[2] = {61, 37}, qlen[2] = {23, 30};

/* The shapes every check runs on: odd lengths, blocks of 7 (a ragged last block). */
static problem cases(int i)
{
    for (int j = 0; j < 2 * LMAX; j++)
        mask[j] = (uint8_t)(j % 5 != 2 && j % 11 != 0);
    const problem all[] = {
        {0, 1, 1, 1, 61, 61, NULL, NULL, NULL}, /* bidirectional */
        {1, 1, 1, 1, 61, 61, NULL, NULL, NULL}, /* causal */
        {0, 2, 2, 1, 43, 61, mask, NULL, NULL}, /* masked, Lq != Lk */
        {1, 2, 2, 1, 61, 61, mask, NULL, NULL}, /* causal masked */
        {0, 4, 2, 1, 29, 61, NULL, NULL, NULL}, /* grouped heads */
        {1, 4, 2, 1, 23, 61, NULL, NULL, NULL}, /* causal Lq < Lk, bottom-right */
        {1, 2, 1, 2, 30, 61, mask, klen, qlen}, /* padded batch, mask, GQA */
    };
    return all[i];
}
#define NCASES 7

Test(blocksparse, fast_path_matches_the_double_reference, .timeout = 60)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const int exacts[] = {0, 1, 3, 100};
    for (int i = 0; i < NCASES; i++)
        for (int e = 0; e < 4; e++) {
            const problem pr = cases(i);
            const double err = compare(c, &pr, "blocksparse", RFJIT_BACKEND_AUTO, "blocksparse",
                                       RFJIT_BACKEND_REFERENCE, 7, exacts[e], 100 + (uint64_t)i);
            cr_expect_leq(err, TOL, "case %d sparse_exact %d (seed %d): %.3g", i, exacts[e],
                          100 + i, err);
        }
    rfjit_ctx_destroy(c);
}

/* sparse_exact = 0 is positive (same seed and m); enough exact blocks is exact softmax. */
Test(blocksparse, identities_on_both_backends, .timeout = 60)
{
    rfjit_ctx *c = tu_ctx_isolated();
    for (int i = 0; i < NCASES; i++) {
        const problem pr = cases(i);
        const uint64_t seed = 200 + (uint64_t)i;
        double e = compare(c, &pr, "blocksparse", RFJIT_BACKEND_REFERENCE, "positive",
                           RFJIT_BACKEND_REFERENCE, 7, 0, seed);
        cr_expect_leq(e, REF_TOL, "case %d (seed %llu): reference vs positive %.3g", i,
                      (unsigned long long)seed, e);
        e = compare(c, &pr, "blocksparse", RFJIT_BACKEND_AUTO, "positive", RFJIT_BACKEND_AUTO, 7, 0,
                    seed);
        cr_expect_leq(e, TOL, "case %d (seed %llu): float path vs positive %.3g", i,
                      (unsigned long long)seed, e);
        e = compare(c, &pr, "blocksparse", RFJIT_BACKEND_REFERENCE, "exact",
                    RFJIT_BACKEND_REFERENCE, 7, 9, seed);
        cr_expect_leq(e, REF_TOL, "case %d (seed %llu): reference vs exact %.3g", i,
                      (unsigned long long)seed, e);
        e = compare(c, &pr, "blocksparse", RFJIT_BACKEND_AUTO, "exact", RFJIT_BACKEND_AUTO, 7, 9,
                    seed);
        cr_expect_leq(e, TOL, "case %d (seed %llu): float path vs exact %.3g", i,
                      (unsigned long long)seed, e);
        /* one block of every key is exact whatever sparse_exact >= 1 */
        e = compare(c, &pr, "blocksparse", RFJIT_BACKEND_AUTO, "exact", RFJIT_BACKEND_AUTO, 64, 1,
                    seed);
        cr_expect_leq(e, TOL, "case %d (seed %llu): one block vs exact %.3g", i,
                      (unsigned long long)seed, e);
    }
    rfjit_ctx_destroy(c);
}

/* Relative Frobenius error of blocksparse (m = 64, sparse_exact k) against exact attention
 * on the hardest real head, held-out split, bidirectional, mean over 8 seeds. */
static double real_error(rfjit_ctx *c, const real_set *set, int k)
{
    const int64_t L = set->L, d = set->d, head = 11;
    rfjit_tensor q = real_set_view(set, REAL_HELDOUT, REAL_Q, head),
                 kk = real_set_view(set, REAL_HELDOUT, REAL_K, head),
                 v = real_set_view(set, REAL_HELDOUT, REAL_V, head);
    float *ref = malloc(sizeof(float) * (size_t)(L * d)),
          *out = malloc(sizeof(float) * (size_t)(L * d));
    cr_assert(ref && out);
    rfjit_tensor r = rfjit_tensor_contiguous(ref, 1, 1, L, d),
                 o = rfjit_tensor_contiguous(out, 1, 1, L, d);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = (int32_t)d;
    a.estimator = "exact";
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_execute(p, &q, &kk, &v, &r), RFJIT_OK);
    rfjit_plan_destroy(p);
    a.estimator = "blocksparse";
    a.m = 64;
    a.sparse_exact = k;
    double sum = 0;
    for (uint64_t s = 0; s < 8; s++) {
        a.seed = 30001 + s;
        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        cr_assert_eq(rfjit_plan_execute(p, &q, &kk, &v, &o), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
        rfjit_plan_destroy(p);
        double e2 = 0, r2 = 0;
        for (int64_t i = 0; i < L * d; i++) {
            e2 += ((double)out[i] - ref[i]) * ((double)out[i] - ref[i]);
            r2 += (double)ref[i] * ref[i];
        }
        sum += sqrt(e2 / r2);
    }
    free(ref);
    free(out);
    return sum / 8;
}

/*
 * On the hardest head (logits up to ~80, layer 0 head 2 of data/real) the positive
 * features' error is dominated by the few keys with the largest logits: the variance of
 * phi(x).phi(y) grows as e^{2 x.y} e^{|x + y|^2}. Blocks that hold them have the largest
 * bounds (the bound is >= every logit in the block, and a block holding a logit near the
 * row's maximum has a bound at least that), so sparse_exact = 4 takes them exactly, and the
 * remaining pairs' variance, a sum over fewer and smaller terms, is below sparse_exact = 0's
 * (all pairs) for every seed's W: the mean error over 8 seeds must fall. Not a timed check.
 */
Test(blocksparse, error_falls_with_exact_blocks_on_a_real_head, .timeout = 60)
{
    real_set set;
    char err[512];
    cr_assert_eq(real_set_load(RFJIT_REAL_DIR, &set, err, sizeof err), 0, "%s", err);
    rfjit_ctx *c = tu_ctx_isolated();
    const double e0 = real_error(c, &set, 0), e4 = real_error(c, &set, 4);
    cr_log_info("hardest head, m = 64: mean error %.4g (sparse_exact 0), %.4g (4)", e0, e4);
    cr_expect_lt(e4, e0, "sparse_exact 4: %.4g, not below sparse_exact 0: %.4g", e4, e0);
    rfjit_ctx_destroy(c);
    real_set_free(&set);
}

static void expect_refused(rfjit_ctx *c, rfjit_attn_desc a, rfjit_status want, const char *msg)
{
    rfjit_plan *p = NULL;
    cr_expect_eq(rfjit_plan_create(c, &a, &p), want, "%s", rfjit_ctx_last_error(c));
    cr_expect_null(p);
    cr_expect(strstr(rfjit_ctx_last_error(c), msg), "'%s' lacks '%s'", rfjit_ctx_last_error(c),
              msg);
}

Test(blocksparse, bad_parameters_and_calls_are_refused_with_messages)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "blocksparse";
    a.d = D;
    a.causal = 1;
    a.sparse_block = 0;
    expect_refused(c, a, RFJIT_E_INVALID_ARG, "sparse_block = 0 must be >= 1");
    a.sparse_block = 8;
    a.sparse_exact = -1;
    expect_refused(c, a, RFJIT_E_INVALID_ARG, "sparse_exact = -1 must be >= 0");
    a.sparse_exact = 2;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    char buf[512];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, "sparse_block=8 sparse_exact=2") &&
                  strstr(buf, "backend=blocksparse jit-features"),
              "%s", buf);
    rfjit_decode *dec = NULL;
    cr_expect_eq(rfjit_decode_create(p, 1, 1, &dec), RFJIT_E_NOT_APPLICABLE);
    cr_expect_null(dec);
    cr_expect(strstr(rfjit_ctx_last_error(c), "no decoding"), "%s", rfjit_ctx_last_error(c));
    float x[4 * D] = {0}, f[4 * 64] = {0};
    rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, 4, D),
                 tf = rfjit_tensor_contiguous(f, 1, 1, 4, 64);
    cr_expect_eq(rfjit_plan_features(p, &tx, NULL, &tf, NULL), RFJIT_E_NOT_APPLICABLE);
    rfjit_plan_destroy(p);
    /* RFJIT_BACKEND_JIT asks for the same path */
    a.backend = RFJIT_BACKEND_JIT;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, "backend=blocksparse jit-features"), "%s", buf);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
}
