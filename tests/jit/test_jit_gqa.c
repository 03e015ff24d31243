/* SPDX-License-Identifier: MIT */
/*
 * This file checks grouped-query attention where one kernel call takes the ng query heads
 * that share a key/value head (kabi.h ng, sqh, soh): the causal linear template (positive,
 * trig, hyperbolic and hybrid: signed features), which takes the keys once for the group,
 * and the exact softmax template, which reads each key and value tile once per pass of up to
 * gq heads:
 *   - the kernel: ng heads in one call, with their own head strides, equal ng calls of one
 *     head each, with a key mask and with earlier context (linear: a NO_QUERIES call first,
 *     as the executor does for Lq < Lk; exact: qoff), and ng = 1 equals ng = 0; exact also
 *     with more heads than one pass takes;
 *   - the execute API: k and v with H / G heads, G in {2, 8}, equal the same call with k and
 *     v repeated to H heads (head h a copy of h / G), with key lengths, query lengths, a key
 *     mask, Lq < Lk and the packed layout, in float32, float16 and bfloat16 (exact both
 *     causal and bidirectional);
 *   - exact attention cut into query blocks over threads gives the one-thread bits.
 * Every comparison is bit for bit: each query head's rows come from the same instructions
 * on the same key features, values and state in either form, only the keys' work is shared
 * (the per-head path is one (sequence, head) call at these lengths, never the split scan).
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "core/kabi.h"
#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"
#include "runtime/ctx.h"
#include "runtime/query_blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 16, M = 16, H = 8, NG = 3, LQ = 70, LK = 150 };

static const char *const ests[] = {"positive", "trig", "hyperbolic", "hybrid"};
#define N_EST ((int)(sizeof ests / sizeof ests[0]))

static rfjit_plan *make_plan_dir(rfjit_ctx *ctx, const char *est, int dt, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.causal = causal;
    a.seed = 7;
    a.dtype = dt;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    cr_assert(p->fn && p->frozen, "%s: a frozen JIT plan", est);
    return p;
}

static rfjit_plan *make_plan(rfjit_ctx *ctx, const char *est, int dt)
{
    return make_plan_dir(ctx, est, dt, 1);
}

static float *floats(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *x = aligned_alloc(64, bytes);
    cr_assert_not_null(x);
    return x;
}

/* ---------------------------------------------------------------------------------------- */
/* The kernel                                                                               */

/* q rows (LQ, NG, D) interleaved (sqh = D, sq = NG D); out heads-major (NG, LQ, DV). */
typedef struct kdata {
    float *q, *k, *v;
    uint8_t km[LK];
} kdata;

/* The kernel on keys [0, lk) with queries aligned to the last lq of them (qoff = lk - lq,
 * taken as the executor takes it: keys [0, qoff) into the state first, without queries);
 * ng heads from q, or head `one` alone (ng = -1 means ng = 0, the field left as today's). */
static void kc_run(const rfjit_plan *p, const kdata *x, int64_t lq, int64_t lk, const uint8_t *km,
                   int ng, int one, float *out)
{
    const rj_kplan *kp = &p->kp;
    float *ws = floats(kp->ws_floats), *st = floats(kp->st_floats);
    const int64_t qoff = lk - lq;
    rj_kargs a = {0};
    a.pq = p->kpar;
    a.pk = p->kpar + kp->role_floats;
    a.ws = ws;
    a.st = st;
    a.sq = NG * D;
    a.sk = D;
    a.sv = DV;
    a.so = DV;
    if (qoff > 0) {
        rj_kargs pre = a;
        pre.k = x->k;
        pre.v = x->v;
        pre.km = km;
        pre.lk = qoff;
        pre.flags = RJ_KFLAG_INIT | RJ_KFLAG_NO_QUERIES;
        pre.ng = ng < 0 ? 0 : ng;
        p->fn(&pre);
    }
    a.q = x->q + (ng > 0 ? 0 : one * D);
    a.out = out + (ng > 0 ? 0 : one * LQ * DV);
    a.k = x->k + qoff * D;
    a.v = x->v + qoff * DV;
    a.km = km ? km + qoff : NULL;
    a.lq = lq;
    a.lk = lq;
    a.flags = qoff > 0 ? 0 : RJ_KFLAG_INIT;
    a.ng = ng < 0 ? 0 : ng;
    a.sqh = D;
    a.soh = LQ * DV;
    p->fn(&a);
    free(ws);
    free(st);
}

static void poison(float *o, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        o[i] = NAN;
}

/* Grouped (ng = NG) against NG single-head calls, and ng = 1 against ng = 0. */
static void kernel_case(const rfjit_plan *p, const char *est, const kdata *x, int64_t lq,
                        int64_t lk, const uint8_t *km, const char *what)
{
    const int64_t n = NG * LQ * DV;
    float *og = floats(n), *os = floats(n);
    poison(og, n);
    poison(os, n);
    kc_run(p, x, lq, lk, km, NG, 0, og);
    for (int g = 0; g < NG; g++)
        kc_run(p, x, lq, lk, km, -1, g, os);
    for (int g = 0; g < NG; g++)
        cr_expect(!memcmp(og + g * LQ * DV, os + g * LQ * DV, (size_t)(lq * DV) * sizeof(float)),
                  "%s %s: head %d of a grouped call differs from its own call", est, what, g);
    poison(og, n);
    kc_run(p, x, lq, lk, km, 1, 0, og);
    cr_expect(!memcmp(og, os, (size_t)(lq * DV) * sizeof(float)), "%s %s: ng = 1 differs from 0",
              est, what);
    free(og);
    free(os);
}

Test(jit_gqa, kernel_heads_share_keys, .timeout = 120)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    kdata x = {floats(LQ * NG * D), floats(LK * D), floats(LK * DV), {0}};
    tu_fill_normal(x.q, LQ * NG * D, 0.5, 31);
    tu_fill_normal(x.k, LK * D, 0.5, 32);
    tu_fill_normal(x.v, LK * DV, 1.0, 33);
    /* keys 0..4 hidden (queries before the first visible key see nothing), then ~40% */
    uint64_t s = 0x9e37;
    for (int j = 0; j < LK; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x.km[j] = j >= 5 && (s >> 33) % 10 >= 4;
    }
    for (int e = 0; e < N_EST; e++) {
        rfjit_plan *p = make_plan(ctx, ests[e], RFJIT_F32);
        kernel_case(p, ests[e], &x, LQ, LQ, NULL, "aligned");
        kernel_case(p, ests[e], &x, LQ, LQ, x.km, "aligned, masked");
        kernel_case(p, ests[e], &x, LQ, LK, NULL, "earlier context");
        kernel_case(p, ests[e], &x, LQ, LK, x.km, "earlier context, masked");
        kernel_case(p, ests[e], &x, 1, 1, NULL, "one token");
        rfjit_plan_destroy(p);
    }
    free(x.q);
    free(x.k);
    free(x.v);
    rfjit_ctx_destroy(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* The execute API                                                                          */

typedef struct gcase {
    const char *name;
    int64_t B, lq, lk; /* padded: the tensors' extents; packed: sequences, totals */
    const int32_t *klen, *qlen;
    int mask;
    const int32_t *cuq, *cuk;
} gcase;

static const int32_t KL[4] = {70, 0, 1, 45}, QL[4] = {70, 0, 1, 30};
static const int32_t CUQ[5] = {0, 20, 20, 21, 45}, CUK[5] = {0, 30, 30, 31, 70};

static const gcase CASES[] = {
    {"full", 2, 70, 70, NULL, NULL, 0, NULL, NULL},
    {"key and query lengths", 4, 70, 70, KL, QL, 0, NULL, NULL},
    {"key mask", 3, 70, 70, NULL, NULL, 1, NULL, NULL},
    {"Lq<Lk", 2, 20, 75, NULL, NULL, 0, NULL, NULL},
    {"lengths+mask", 4, 70, 70, KL, QL, 1, NULL, NULL},
    {"packed+mask", 4, 45, 70, NULL, NULL, 1, CUQ, CUK},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))

static size_t esize(int dt)
{
    return dt == RFJIT_F32 ? 4 : 2;
}

static void *normal_dt(size_t n, double sd, uint64_t seed, int dt)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    tu_fill_normal(x, n, sd, seed);
    void *p = calloc(n ? n : 1, esize(dt));
    cr_assert(x && p);
    for (size_t i = 0; i < n; i++) {
        if (dt == RFJIT_F32)
            ((float *)p)[i] = x[i];
        else
            ((uint16_t *)p)[i] = dt == RFJIT_F16 ? rj_f32_to_f16(x[i]) : rj_f32_to_bf16(x[i]);
    }
    free(x);
    return p;
}

/* Element offset of row t of head h of batch b in a (tb, heads, l, dim) tensor, or packed
 * (total, heads, dim) rows. */
static size_t at(bool packed, int64_t b, int64_t h, int64_t t, int64_t heads, int64_t l,
                 int64_t dim)
{
    return (size_t)(packed ? (t * heads + h) * dim : ((b * heads + h) * l + t) * dim);
}

static rfjit_tensor_ex view_of(void *p, int dt, int64_t b, int64_t h, int64_t l, int64_t dim,
                               bool packed)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = p;
    t.dtype = dt;
    t.shape[0] = b, t.shape[1] = h, t.shape[2] = l, t.shape[3] = dim;
    if (packed) {
        t.stride[0] = 0, t.stride[1] = dim, t.stride[2] = h * dim, t.stride[3] = 1;
    } else {
        t.stride[3] = 1, t.stride[2] = dim, t.stride[1] = l * dim, t.stride[0] = h * l * dim;
    }
    return t;
}

/* src with hs heads into dst with H heads, head h a copy of head h / (H / hs). */
static void repeat_heads(const void *src, void *dst, int dt, bool packed, int64_t tb, int64_t hs,
                         int64_t l, int64_t dim)
{
    const size_t es = esize(dt);
    for (int64_t b = 0; b < tb; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < l; t++)
                memcpy((char *)dst + at(packed, b, h, t, H, l, dim) * es,
                       (const char *)src + at(packed, b, h / (H / hs), t, hs, l, dim) * es,
                       (size_t)dim * es);
}

/* out (filled with 0x7f bytes first) = the call with k, v of hkv heads. */
static void *run(rfjit_ctx *ctx, const rfjit_plan *p, const gcase *cs, int dt, const void *q,
                 const void *k, const void *v, int64_t hkv, const uint8_t *mask, size_t no)
{
    const bool packed = cs->cuq != NULL;
    const int64_t tb = packed ? 1 : cs->B;
    void *out = malloc(no * esize(dt));
    cr_assert_not_null(out);
    memset(out, 0x7f, no * esize(dt));
    rfjit_tensor_ex tq = view_of((void *)q, dt, tb, H, cs->lq, D, packed);
    rfjit_tensor_ex tk = view_of((void *)k, dt, tb, hkv, cs->lk, D, packed);
    rfjit_tensor_ex tv = view_of((void *)v, dt, tb, hkv, cs->lk, DV, packed);
    rfjit_tensor_ex to = view_of(out, dt, tb, H, cs->lq, DV, packed);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq, a.k = &tk, a.v = &tv, a.out = &to;
    a.key_lengths = cs->klen;
    a.query_lengths = cs->qlen;
    a.key_mask = mask;
    a.cu_seqlens_q = cs->cuq;
    a.cu_seqlens_k = cs->cuk;
    a.batch = packed ? cs->B : 0;
    cr_expect_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s hkv=%lld: %s", cs->name,
                 (long long)hkv, rfjit_ctx_last_error(ctx));
    return out;
}

static void api_case(rfjit_ctx *ctx, const rfjit_plan *p, const char *est, const gcase *cs, int dt,
                     int64_t G, uint64_t seed)
{
    const bool packed = cs->cuq != NULL;
    const int64_t tb = packed ? 1 : cs->B, hkv = H / G;
    const size_t nq = (size_t)(tb * H * cs->lq * D), no = (size_t)(tb * H * cs->lq * DV);
    const size_t nk = (size_t)(tb * hkv * cs->lk * D), nv = (size_t)(tb * hkv * cs->lk * DV);
    void *q = normal_dt(nq, 0.5, seed, dt), *k = normal_dt(nk, 0.5, seed + 1, dt);
    void *v = normal_dt(nv, 1.0, seed + 2, dt);
    void *kr = malloc((size_t)(tb * H * cs->lk * D) * esize(dt));
    void *vr = malloc((size_t)(tb * H * cs->lk * DV) * esize(dt));
    cr_assert(kr && vr);
    repeat_heads(k, kr, dt, packed, tb, hkv, cs->lk, D);
    repeat_heads(v, vr, dt, packed, tb, hkv, cs->lk, DV);
    uint8_t *mask = NULL;
    if (cs->mask) {
        const size_t n = (size_t)(tb * cs->lk);
        mask = malloc(n);
        uint64_t s = seed;
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            mask[i] = i >= 3 && (s >> 33) % 10 >= 3;
        }
    }
    void *og = run(ctx, p, cs, dt, q, k, v, hkv, mask, no);
    void *orp = run(ctx, p, cs, dt, q, kr, vr, H, mask, no);
    cr_expect(!memcmp(og, orp, no * esize(dt)),
              "%s %s %s G=%lld: grouped heads differ from repeated heads", est, cs->name,
              rj_dtype_name(dt), (long long)G);
    free(og);
    free(orp);
    free(mask);
    free(q);
    free(k);
    free(v);
    free(kr);
    free(vr);
}

static void api_matrix_dir(const char *est, int causal)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    static const int dts[3] = {RFJIT_F32, RFJIT_F16, RFJIT_BF16};
    static const int64_t groups[2] = {2, 8};
    for (int di = 0; di < 3; di++) {
        rfjit_plan *p = make_plan_dir(ctx, est, dts[di], causal);
        for (int ci = 0; ci < N_CASES; ci++)
            for (int gi = 0; gi < 2; gi++)
                api_case(ctx, p, est, &CASES[ci], dts[di], groups[gi], 41 + (uint64_t)ci);
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
}

static void api_matrix(const char *est)
{
    api_matrix_dir(est, 1);
}

Test(jit_gqa, positive_grouped_equals_repeated, .timeout = 120)
{
    api_matrix("positive");
}

Test(jit_gqa, trig_grouped_equals_repeated, .timeout = 120)
{
    api_matrix("trig");
}

Test(jit_gqa, hyperbolic_grouped_equals_repeated, .timeout = 120)
{
    api_matrix("hyperbolic");
}

Test(jit_gqa, hybrid_grouped_equals_repeated, .timeout = 120)
{
    api_matrix("hybrid");
}

Test(jit_gqa, exact_causal_grouped_equals_repeated, .timeout = 120)
{
    api_matrix_dir("exact", 1);
}

Test(jit_gqa, exact_bidirectional_grouped_equals_repeated, .timeout = 120)
{
    api_matrix_dir("exact", 0);
}

/* ---------------------------------------------------------------------------------------- */
/* The exact kernel's passes of heads                                                       */

enum { SNG = RJ_SOFTMAX_HEADS + 3 }; /* two passes, the second partial */

/* The softmax kernel on keys [0, lk) with queries aligned to the last lq (causal qoff =
 * lk - lq): ng heads of q (rows interleaved, sqh = D, sq = SNG D), or head `one` alone
 * (ng = -1: the field left at 0). out is heads-major (SNG, LQ, DV). */
static void sm_run(const rfjit_plan *p, const float *q, const kdata *x, int64_t lq, int64_t lk,
                   const uint8_t *km, int ng, int one, float *out)
{
    const rj_kplan *kp = &p->kp;
    float *ws = floats(kp->ws_floats);
    rj_kargs a = {0};
    a.ws = ws;
    a.sq = SNG * D;
    a.sk = D;
    a.sv = DV;
    a.so = DV;
    a.q = q + (ng > 0 ? 0 : one * D);
    a.out = out + (ng > 0 ? 0 : one * LQ * DV);
    a.k = x->k;
    a.v = x->v;
    a.km = km;
    a.lq = lq;
    a.lk = lk;
    a.qoff = kp->causal ? lk - lq : 0;
    a.flags = RJ_KFLAG_INIT;
    a.ng = ng < 0 ? 0 : ng;
    a.sqh = D;
    a.soh = LQ * DV;
    p->fn(&a);
    free(ws);
}

Test(jit_gqa, exact_kernel_passes_of_heads, .timeout = 120)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    kdata x = {NULL, floats(LK * D), floats(LK * DV), {0}};
    float *q = floats(LQ * SNG * D);
    tu_fill_normal(q, LQ * SNG * D, 0.5, 51);
    tu_fill_normal(x.k, LK * D, 0.5, 52);
    tu_fill_normal(x.v, LK * DV, 1.0, 53);
    uint64_t s = 0x5eed;
    for (int j = 0; j < LK; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x.km[j] = j >= 5 && (s >> 33) % 10 >= 4;
    }
    const int64_t n = SNG * LQ * DV;
    float *og = floats(n), *os = floats(n);
    for (int causal = 0; causal < 2; causal++) {
        rfjit_plan *p = make_plan_dir(ctx, "exact", RFJIT_F32, causal);
        cr_assert_eq(p->kp.gq, RJ_SOFTMAX_HEADS);
        const struct {
            int64_t lq, lk;
            const uint8_t *km;
            const char *what;
        } cs[] = {{LQ, LQ, NULL, "aligned"},
                  {LQ, LQ, x.km, "aligned, masked"},
                  {LQ, LK, NULL, "Lq < Lk"},
                  {LQ, LK, x.km, "Lq < Lk, masked"},
                  {1, 1, NULL, "one token"}};
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            poison(og, n);
            poison(os, n);
            sm_run(p, q, &x, cs[c].lq, cs[c].lk, cs[c].km, SNG, 0, og);
            for (int g = 0; g < SNG; g++)
                sm_run(p, q, &x, cs[c].lq, cs[c].lk, cs[c].km, -1, g, os);
            for (int g = 0; g < SNG; g++)
                cr_expect(!memcmp(og + g * LQ * DV, os + g * LQ * DV,
                                  (size_t)(cs[c].lq * DV) * sizeof(float)),
                          "exact causal=%d %s: head %d of %d in one call differs from its own "
                          "call",
                          causal, cs[c].what, g, SNG);
            poison(og, n);
            sm_run(p, q, &x, cs[c].lq, cs[c].lk, cs[c].km, 1, 0, og);
            cr_expect(!memcmp(og, os, (size_t)(cs[c].lq * DV) * sizeof(float)),
                      "exact causal=%d %s: ng = 1 differs from 0", causal, cs[c].what);
        }
        rfjit_plan_destroy(p);
    }
    free(og);
    free(os);
    free(q);
    free(x.k);
    free(x.v);
    rfjit_ctx_destroy(ctx);
}

/* One (sequence, group) on four threads runs in query blocks; its bits are one thread's. The
 * keys are enough for the causal call to be cut too (runtime/query_blocks.h). */
Test(jit_gqa, exact_query_blocks_match_one_thread, .timeout = 120)
{
    enum { LKB = 420 };
    static const gcase one_group = {"one sequence", 1, 200, LKB, NULL, NULL, 1, NULL, NULL};
    uint8_t mask[LKB];
    for (int j = 0; j < LKB; j++)
        mask[j] = j % 7 != 3;
    const size_t nq = (size_t)H * 200 * D, no = (size_t)H * 200 * DV;
    void *q = normal_dt(nq, 0.5, 61, RFJIT_F32), *k = normal_dt(LKB * D, 0.5, 62, RFJIT_F32);
    void *v = normal_dt(LKB * DV, 1.0, 63, RFJIT_F32);
    for (int causal = 0; causal < 2; causal++) {
        void *o[2];
        int64_t T = 0, gq = 0;
        for (int t = 0; t < 2; t++) {
            rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
            cd.cache_dir = "";
            cd.wisdom_path = "";
            cd.threads = t ? 4 : 1;
            rfjit_ctx *ctx = NULL;
            cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
            rfjit_plan *p = make_plan_dir(ctx, "exact", RFJIT_F32, causal);
            o[t] = run(ctx, p, &one_group, RFJIT_F32, q, k, v, 1, mask, no);
            T = p->kp.T;
            gq = p->kp.gq;
            rfjit_plan_destroy(p);
            rfjit_ctx_destroy(ctx);
        }
        const rj_qcut_in in = {1, 4, 200, LKB, H, D, DV, T, gq, causal != 0};
        cr_assert_geq(rj_qcut_make(&in).tasks, 2, "causal=%d: the call is not cut", causal);
        cr_expect(!memcmp(o[0], o[1], no * sizeof(float)),
                  "exact causal=%d: four threads' query blocks differ from one thread", causal);
        free(o[0]);
        free(o[1]);
    }
    free(q);
    free(k);
    free(v);
}
