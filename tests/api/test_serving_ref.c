/* SPDX-License-Identifier: MIT */
/*
 * This file checks the reference backend and EVA on the calls an inference server makes
 * (rfjit_plan_execute_args): key lengths, key masks, query lengths, grouped-query heads,
 * bottom-right causal offsets and packed sequences. Exact attention is held to a naive double
 * masked softmax written here; every other estimator to itself run through plain
 * rfjit_plan_execute on the visible keys only; JIT EVA to reference EVA. Masked keys must
 * not matter at all: scaling or permuting them leaves the output bit for bit.
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 8, DV = 5, B = 3, H = 8, LQ = 6, LK = 9 };

static rfjit_ctx *ctx;

static void setup(void)
{
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(serving_ref, .init = setup, .fini = teardown);

/* One padded batch: q (B, H, LQ, D), k/v (B, hkv, LK, .), out (B, H, LQ, DV). The sequences
 * are ragged (lengths 0 and 1 included), the mask hides the first key of sequence 0 (so
 * causal queries before its second key see nothing) and scattered keys elsewhere. */
typedef struct batch {
    int hkv;
    float q[B * H * LQ * D], k[B * H * LK * D], v[B * H * LK * DV], out[B * H * LQ * DV];
    int32_t klen[B], qlen[B];
    uint8_t mask[B * LK];
} batch;

static const int32_t KLEN[B] = {9, 4, 1}, QLEN[B] = {6, 1, 1};

static void batch_init(batch *t, int hkv, uint64_t seed)
{
    t->hkv = hkv;
    tu_fill_normal(t->q, sizeof t->q / 4, 1.0, seed);
    tu_fill_normal(t->k, sizeof t->k / 4, 1.0, seed + 1);
    tu_fill_normal(t->v, sizeof t->v / 4, 1.0, seed + 2);
    memcpy(t->klen, KLEN, sizeof KLEN);
    memcpy(t->qlen, QLEN, sizeof QLEN);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < LK; j++)
            t->mask[b * LK + j] = (uint8_t) !((b == 0 && (j == 0 || j == 5)) || (b == 1 && j == 2));
}

/* The call on t: lengths and mask when asked. */
static rfjit_status run(const rfjit_plan *p, batch *t, int lengths, int mask)
{
    rfjit_tensor tq = rfjit_tensor_contiguous(t->q, B, H, LQ, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(t->k, B, t->hkv, LK, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(t->v, B, t->hkv, LK, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(t->out, B, H, LQ, DV);
    rfjit_tensor_ex q = rfjit_tensor_ex_of(&tq), k = rfjit_tensor_ex_of(&tk),
                    v = rfjit_tensor_ex_of(&tv), o = rfjit_tensor_ex_of(&to);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &q;
    a.k = &k;
    a.v = &v;
    a.out = &o;
    if (lengths) {
        a.key_lengths = t->klen;
        a.query_lengths = t->qlen;
    }
    if (mask)
        a.key_mask = t->mask;
    return rfjit_plan_execute_args(p, &a);
}

/* Whether key j of sequence b is visible to query i (of lq, against lk keys). */
static int sees(const batch *t, int mask, int causal, int b, int64_t i, int64_t j, int64_t lq,
                int64_t lk)
{
    if (j >= lk || (mask && !t->mask[b * LK + j]))
        return 0;
    return !causal || j <= i + lk - lq;
}

/* Naive double masked softmax of query i of slice (b, h) with logits q.k / sqrt(D). */
static void naive_row(const batch *t, int mask, int causal, int b, int h, int64_t i, int64_t lq,
                      int64_t lk, double *o)
{
    const int kh = h / (H / t->hkv);
    const float *qi = t->q + (((size_t)b * H + h) * LQ + i) * D;
    double mu = -INFINITY, z = 0, s[LK];
    for (int64_t j = 0; j < lk; j++) {
        const float *kj = t->k + (((size_t)b * t->hkv + kh) * LK + j) * D;
        s[j] = 0;
        for (int a = 0; a < D; a++)
            s[j] += (double)qi[a] * kj[a] / sqrt((double)D);
        if (sees(t, mask, causal, b, i, j, lq, lk))
            mu = fmax(mu, s[j]);
    }
    for (int a = 0; a < DV; a++)
        o[a] = 0;
    for (int64_t j = 0; j < lk; j++) {
        if (!sees(t, mask, causal, b, i, j, lq, lk))
            continue;
        const double w = exp(s[j] - mu);
        z += w;
        for (int a = 0; a < DV; a++)
            o[a] += w * t->v[(((size_t)b * t->hkv + kh) * LK + j) * DV + a];
    }
    for (int a = 0; a < DV; a++)
        o[a] = z > 0 ? o[a] / z : 0;
}

static int is_fitted(const char *name)
{
    return !strcmp(name, "oprf") || !strcmp(name, "saderf") || !strcmp(name, "sderf") ||
           !strcmp(name, "aderf");
}

/* A plan of estimator est; fitted estimators take the calibration sample (cq, ck). */
static rfjit_plan *plan_of(const char *est, int causal, int backend, const rfjit_tensor *cq,
                           const rfjit_tensor *ck)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = 16;
    a.causal = causal;
    a.seed = 7;
    a.hybrid_signs = 2;
    a.eva_window = 2;
    a.eva_chunks = 3;
    a.backend = backend;
    a.calib_q = is_fitted(est) ? cq : NULL;
    a.calib_k = is_fitted(est) ? ck : NULL;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    return p;
}

/*
 * The reference computes in double from the float inputs and rounds once to float; the naive
 * softmax here does the same math in another order, so the two differ by the float rounding
 * of the output (2^-24 relative) plus double round-off: 2^-22 of max|v| bounds it.
 */
static void check_exact(const batch *t, int lengths, int mask, int causal)
{
    const double tol = 0x1p-22 * 5; /* |v| of N(0, 1) data stays below 5 */
    for (int b = 0; b < B; b++) {
        const int64_t lq = lengths ? t->qlen[b] : LQ, lk = lengths ? t->klen[b] : LK;
        for (int h = 0; h < H; h++)
            for (int64_t i = 0; i < LQ; i++) {
                double o[DV];
                const float *got = t->out + (((size_t)b * H + h) * LQ + i) * DV;
                if (i < lq)
                    naive_row(t, mask, causal, b, h, i, lq, lk, o);
                for (int a = 0; a < DV; a++) {
                    if (i >= lq) /* past the query length: written as zeros */
                        cr_assert_eq(got[a], 0.0f, "b=%d h=%d i=%lld", b, h, (long long)i);
                    else
                        cr_assert(fabs(got[a] - o[a]) <= tol,
                                  "hkv=%d len=%d mask=%d causal=%d b=%d h=%d i=%lld: %g vs %g",
                                  t->hkv, lengths, mask, causal, b, h, (long long)i, got[a], o[a]);
                }
            }
    }
}

Test(serving_ref, exact_lengths_mask_groups_offsets)
{
    static batch t;
    static const int hkvs[3] = {8, 4, 1}; /* H / Hkv = 1, 2, 8 */
    for (int causal = 0; causal < 2; causal++) {
        rfjit_plan *p = plan_of("exact", causal, RFJIT_BACKEND_REFERENCE, NULL, NULL);
        for (int g = 0; g < 3; g++)
            for (int lengths = 0; lengths < 3; lengths++)
                for (int mask = 0; mask < 2; mask++) {
                    batch_init(&t, hkvs[g], 100 + (uint64_t)g);
                    if (lengths == 2) { /* no key at all: zero rows, or no query (causal) */
                        t.klen[1] = 0;
                        t.qlen[1] = causal ? 0 : 1;
                    }
                    memset(t.out, 0xff, sizeof t.out);
                    cr_assert_eq(run(p, &t, lengths, mask), RFJIT_OK, "%s",
                                 rfjit_ctx_last_error(ctx));
                    check_exact(&t, lengths, mask, causal);
                }
        rfjit_plan_destroy(p);
    }
}

/* Causal, sequence 0 with its first key masked and Lq < Lk: with lq = 6 of lk = 9 every
 * query sees a key; cut to lk = 4 keys for lq = 4 queries, query 0 sees only the masked key
 * and its row is exactly zero, for every estimator. */
Test(serving_ref, no_visible_key_gives_zeros)
{
    static batch t;
    batch_init(&t, 2, 5);
    t.klen[0] = 4;
    t.qlen[0] = 4;
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        rfjit_tensor cq = rfjit_tensor_contiguous(t.q, 1, 1, LQ, D);
        rfjit_tensor ck = rfjit_tensor_contiguous(t.k, 1, 1, LK, D);
        rfjit_plan *p = plan_of(name, 1, RFJIT_BACKEND_REFERENCE, &cq, &ck);
        memset(t.out, 0xff, sizeof t.out);
        cr_assert_eq(run(p, &t, 1, 1), RFJIT_OK, "%s: %s", name, rfjit_ctx_last_error(ctx));
        for (int h = 0; h < H; h++)
            for (int a = 0; a < DV; a++) {
                cr_assert_eq(t.out[(size_t)h * LQ * DV + a], 0.0f, "%s h=%d", name, h);
                cr_assert(isfinite(t.out[((size_t)h * LQ + 1) * DV + a]), "%s h=%d", name, h);
            }
        rfjit_plan_destroy(p);
    }
}

/* Scaling masked keys and values by 1e3, permuting them among the masked positions and
 * changing the padding past the key lengths leaves every estimator's output bit for bit. */
Test(serving_ref, masked_keys_change_nothing)
{
    static batch t, t2;
    static float o1[sizeof t.out / 4];
    for (int e = 0; rfjit_estimator_name(e); e++)
        for (int causal = 0; causal < 2; causal++) {
            const char *name = rfjit_estimator_name(e);
            batch_init(&t, 4, 21);
            rfjit_tensor cq = rfjit_tensor_contiguous(t.q, 1, 1, LQ, D);
            rfjit_tensor ck = rfjit_tensor_contiguous(t.k, 1, 1, LK, D);
            rfjit_plan *p = plan_of(name, causal, RFJIT_BACKEND_REFERENCE, causal ? &cq : NULL,
                                    causal ? &ck : NULL);
            cr_assert_eq(run(p, &t, 1, 1), RFJIT_OK, "%s: %s", name, rfjit_ctx_last_error(ctx));
            memcpy(o1, t.out, sizeof o1);
            t2 = t;
            for (int kh = 0; kh < t.hkv; kh++) {
                float *k0 = t2.k + ((size_t)0 * t.hkv + kh) * LK * D;
                float *v0 = t2.v + ((size_t)0 * t.hkv + kh) * LK * DV;
                for (int a = 0; a < D; a++) { /* sequence 0: keys 0 and 5 masked, swapped */
                    const float x = k0[a];
                    k0[a] = 1e3f * k0[5 * D + a];
                    k0[5 * D + a] = -1e3f * x;
                }
                for (int a = 0; a < DV; a++)
                    v0[a] *= 1e3f;
                float *k1 = t2.k + ((size_t)1 * t.hkv + kh) * LK * D; /* masked key 2 */
                for (int a = 0; a < D; a++)
                    k1[2 * D + a] *= 1e3f;
                for (int a = 4 * D; a < LK * D; a++) /* padding past its length 4 */
                    k1[a] = -k1[a];
            }
            cr_assert_eq(run(p, &t2, 1, 1), RFJIT_OK, "%s: %s", name, rfjit_ctx_last_error(ctx));
            cr_assert(!memcmp(o1, t2.out, sizeof o1),
                      "%s causal=%d: masked keys changed the output", name, causal);
            rfjit_plan_destroy(p);
        }
}

/* Slice (b, h) of t compacted to its visible keys: the plain call's inputs. */
static int64_t compact(const batch *t, int b, int h, float *k, float *v)
{
    const int kh = h / (H / t->hkv);
    int64_t n = 0;
    for (int64_t j = 0; j < t->klen[b]; j++) {
        if (!t->mask[b * LK + j])
            continue;
        memcpy(k + n * D, t->k + (((size_t)b * t->hkv + kh) * LK + j) * D, D * sizeof(float));
        memcpy(v + n * DV, t->v + (((size_t)b * t->hkv + kh) * LK + j) * DV, DV * sizeof(float));
        n++;
    }
    return n;
}

/* Plain rfjit_plan_execute of lq queries against n keys, one (batch, head). */
static void plain(const rfjit_plan *p, const float *q, int64_t lq, float *k, float *v, int64_t n,
                  float *o)
{
    rfjit_tensor tq = rfjit_tensor_contiguous((float *)q, 1, 1, lq, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, n, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, n, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, lq, DV);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
}

/*
 * Every linear estimator against itself on the compacted keys. Bidirectional: the masked call
 * and the plain call on the visible keys run the same double computation, so they agree bit
 * for bit. Causal: query i against the keys it sees, as a one-query bidirectional call on
 * that prefix, with the same (calibrated) parameters; the causal reference keeps a running
 * log-domain shift where the bidirectional one shifts by the maximum once, so the double
 * results differ by round-off amplified at most by the denominator guard's 1e6 (about
 * 1e-9 relative) and the float outputs by one rounding step each: |a - b| <= 2^-22 max|row|.
 */
Test(serving_ref, linear_estimators_on_visible_keys)
{
    static batch t;
    static const char *const names[] = {"trig", "positive", "hyperbolic", "hybrid",
                                        "oprf", "saderf",   "sderf",      "aderf"};
    float k[LK * D], v[LK * DV], o[LQ * DV];
    for (size_t e = 0; e < sizeof names / sizeof *names; e++) {
        batch_init(&t, 2, 31);
        rfjit_tensor cq = rfjit_tensor_contiguous(t.q, 1, 1, LQ, D);
        rfjit_tensor ck = rfjit_tensor_contiguous(t.k, 1, 1, LK, D);
        rfjit_plan *bi = plan_of(names[e], 0, RFJIT_BACKEND_REFERENCE, NULL, NULL);
        cr_assert_eq(run(bi, &t, 1, 1), RFJIT_OK, "%s: %s", names[e], rfjit_ctx_last_error(ctx));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int64_t n = compact(&t, b, h, k, v), lq = t.qlen[b];
                const float *q = t.q + ((size_t)b * H + h) * LQ * D;
                const float *got = t.out + ((size_t)b * H + h) * LQ * DV;
                if (n == 0)
                    continue;
                plain(bi, q, lq, k, v, n, o);
                cr_assert(!memcmp(o, got, (size_t)lq * DV * sizeof(float)),
                          "%s b=%d h=%d: masked call differs from the call on its visible keys",
                          names[e], b, h);
            }
        rfjit_plan_destroy(bi);
        /* causal: bidirectional one-query calls with the same calibration */
        rfjit_plan *ca = plan_of(names[e], 1, RFJIT_BACKEND_REFERENCE, &cq, &ck);
        bi = plan_of(names[e], 0, RFJIT_BACKEND_REFERENCE, &cq, &ck);
        cr_assert_eq(run(ca, &t, 1, 1), RFJIT_OK, "%s: %s", names[e], rfjit_ctx_last_error(ctx));
        for (int h = 0; h < H; h += 3) {
            const int b = 0; /* lq 6, lk 9 (offset 3), keys 0 and 5 masked */
            compact(&t, b, h, k, v);
            for (int64_t i = 0; i < t.qlen[b]; i++) {
                /* visible keys at positions <= i + 3: positions 1..i+3 minus position 5 */
                const int64_t n = i + 3 - (i + 3 >= 5);
                const float *got = t.out + (((size_t)b * H + h) * LQ + i) * DV;
                plain(bi, t.q + (((size_t)b * H + h) * LQ + i) * D, 1, k, v, n, o);
                double top = 0;
                for (int a = 0; a < DV; a++)
                    top = fmax(top, fabs(o[a]));
                for (int a = 0; a < DV; a++)
                    cr_assert(fabs(o[a] - got[a]) <= 0x1p-22 * top,
                              "%s causal h=%d i=%lld: %g vs %g", names[e], h, (long long)i, got[a],
                              o[a]);
            }
        }
        rfjit_plan_destroy(ca);
        rfjit_plan_destroy(bi);
    }
}

/* Packed sequences (cu_seqlens): the exact reference equals the padded call row for row. */
Test(serving_ref, exact_packed)
{
    enum { TQ = LQ + 1 + 1, TK = LK + 4 + 1, HKV = 2 };
    static batch t;
    batch_init(&t, HKV, 41);
    const int32_t cuq[B + 1] = {0, LQ, LQ + 1, TQ}, cuk[B + 1] = {0, LK, LK + 4, TK};
    /* (total, heads, dim) arrays from the padded batch */
    static float q[TQ * H * D], k[TK * HKV * D], v[TK * HKV * DV], o[TQ * H * DV];
    static uint8_t mask[TK];
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++)
            for (int i = 0; i < cuq[b + 1] - cuq[b]; i++)
                memcpy(q + ((size_t)(cuq[b] + i) * H + h) * D,
                       t.q + (((size_t)b * H + h) * LQ + i) * D, D * sizeof(float));
        for (int h = 0; h < HKV; h++)
            for (int j = 0; j < cuk[b + 1] - cuk[b]; j++) {
                memcpy(k + ((size_t)(cuk[b] + j) * HKV + h) * D,
                       t.k + (((size_t)b * HKV + h) * LK + j) * D, D * sizeof(float));
                memcpy(v + ((size_t)(cuk[b] + j) * HKV + h) * DV,
                       t.v + (((size_t)b * HKV + h) * LK + j) * DV, DV * sizeof(float));
            }
        for (int j = 0; j < cuk[b + 1] - cuk[b]; j++)
            mask[cuk[b] + j] = t.mask[b * LK + j];
    }
    for (int causal = 0; causal < 2; causal++) {
        rfjit_plan *p = plan_of("exact", causal, RFJIT_BACKEND_REFERENCE, NULL, NULL);
        rfjit_tensor_ex tq = RFJIT_TENSOR_EX_INIT, tk = RFJIT_TENSOR_EX_INIT,
                        tv = RFJIT_TENSOR_EX_INIT, to = RFJIT_TENSOR_EX_INIT;
        const struct {
            rfjit_tensor_ex *t;
            float *data;
            int64_t heads, total, dim;
        } views[4] = {{&tq, q, H, TQ, D},
                      {&tk, k, HKV, TK, D},
                      {&tv, v, HKV, TK, DV},
                      {&to, o, H, TQ, DV}};
        for (int i = 0; i < 4; i++) {
            rfjit_tensor_ex *x = views[i].t;
            x->data = views[i].data;
            const int64_t sh[4] = {1, views[i].heads, views[i].total, views[i].dim};
            const int64_t st[4] = {0, views[i].dim, views[i].heads * views[i].dim, 1};
            memcpy(x->shape, sh, sizeof sh);
            memcpy(x->stride, st, sizeof st);
        }
        rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
        a.q = &tq;
        a.k = &tk;
        a.v = &tv;
        a.out = &to;
        a.key_mask = mask;
        a.cu_seqlens_q = cuq;
        a.cu_seqlens_k = cuk;
        a.batch = B;
        cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        cr_assert_eq(run(p, &t, 1, 1), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < cuq[b + 1] - cuq[b]; i++)
                    cr_assert(!memcmp(o + ((size_t)(cuq[b] + i) * H + h) * DV,
                                      t.out + (((size_t)b * H + h) * LQ + i) * DV,
                                      DV * sizeof(float)),
                              "causal=%d b=%d h=%d i=%d: packed differs from padded", causal, b, h,
                              i);
        rfjit_plan_destroy(p);
    }
}

/* JIT EVA (the exact kernel over EVA's key sets) against reference EVA with masks, lengths,
 * groups and causal offsets, over windows and chunk counts, to EVA's documented ref_tol
 * (1e-4 of max|reference|, as tests/jit/test_jit_equiv.c). Rows with no visible key are
 * exact zeros in both. */
Test(serving_ref, eva_jit_equals_reference, .timeout = 120)
{
    static batch t;
    static float ref[sizeof t.out / 4];
    static const int windows[3] = {0, 2, 4}, chunks[3] = {1, 3, 8};
    for (int causal = 0; causal < 2; causal++)
        for (int wi = 0; wi < 3; wi++)
            for (int ci = 0; ci < 3; ci++) {
                batch_init(&t, 4, 51);
                t.qlen[0] = 4; /* lk 9, lq 4: offset 5; and the no-key row of lk 1 below */
                t.klen[2] = 1;
                t.mask[2 * LK] = (uint8_t)(ci != 1);
                rfjit_plan *p[2];
                for (int be = 0; be < 2; be++) {
                    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
                    a.estimator = "eva";
                    a.d = D;
                    a.dv = DV;
                    a.causal = causal;
                    a.seed = 7;
                    a.eva_window = windows[wi];
                    a.eva_chunks = chunks[ci];
                    a.backend = be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE;
                    cr_assert_eq(rfjit_plan_create(ctx, &a, &p[be]), RFJIT_OK, "%s",
                                 rfjit_ctx_last_error(ctx));
                }
                cr_assert_eq(run(p[0], &t, 1, 1), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
                memcpy(ref, t.out, sizeof ref);
                cr_assert_eq(run(p[1], &t, 1, 1), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
                double num = 0, den = 0;
                for (size_t i = 0; i < sizeof ref / 4; i++) {
                    cr_assert(isfinite(t.out[i]) && isfinite(ref[i]));
                    if (ref[i] == 0)
                        cr_assert_eq(t.out[i], 0.0f, "a zero row of the reference is zero");
                    num = fmax(num, fabs((double)t.out[i] - ref[i]));
                    den = fmax(den, fabs((double)ref[i]));
                }
                cr_assert(num <= 1e-4 * den, "eva causal=%d window=%d chunks=%d: %.3g > 1e-4",
                          causal, windows[wi], chunks[ci], num / den);
                rfjit_plan_destroy(p[0]);
                rfjit_plan_destroy(p[1]);
            }
}

/* EVA on the visible keys is exact softmax when every chunk holds one key (C >= Lk) or the
 * window covers every key: masked keys are in no chunk and no window, and the causal offset
 * moves the window with the query's last visible key. Same bound as check_exact. */
Test(serving_ref, eva_identities_with_masks_and_offsets)
{
    static batch t;
    static float want[sizeof t.out / 4];
    static const int windows[2] = {0, 16}, chunks[2] = {64, 1};
    for (int causal = 0; causal < 2; causal++)
        for (int id = 0; id < 2; id++)
            for (int be = 0; be < 2; be++) {
                batch_init(&t, 2, 61);
                rfjit_plan *ex = plan_of("exact", causal, RFJIT_BACKEND_REFERENCE, NULL, NULL);
                cr_assert_eq(run(ex, &t, 1, 1), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
                memcpy(want, t.out, sizeof want);
                rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
                a.estimator = "eva";
                a.d = D;
                a.dv = DV;
                a.causal = causal;
                a.eva_window = windows[id];
                a.eva_chunks = chunks[id];
                a.backend = be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE;
                rfjit_plan *p = NULL;
                cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s",
                             rfjit_ctx_last_error(ctx));
                cr_assert_eq(run(p, &t, 1, 1), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
                /* the JIT computes in float32: EVA's ref_tol, 1e-4 of max|out| <= 5 */
                const double tol = be ? 1e-4 * 5 : 0x1p-22 * 5;
                for (size_t i = 0; i < sizeof want / 4; i++)
                    cr_assert(fabs(t.out[i] - want[i]) <= tol,
                              "eva causal=%d window=%d chunks=%d backend=%d: [%zu] %g vs %g",
                              causal, windows[id], chunks[id], be, i, t.out[i], want[i]);
                rfjit_plan_destroy(p);
                rfjit_plan_destroy(ex);
            }
}
