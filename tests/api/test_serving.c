/* SPDX-License-Identifier: MIT */
/*
 * This file checks attention as an inference server calls it (rfjit_plan_execute_args) on
 * the JIT against the portable reference: every estimator x {bidirectional, causal} x {key
 * lengths (ragged, with 0 and 1), a random key mask, query lengths (rows past them zero, or
 * untouched), grouped-query heads with H / Hkv in {1, 2, 8}, Lq < Lk (the causal offset),
 * the packed layout, all of them at once} x {float32, float16, bfloat16}, with the softmax
 * scale in {0.5, 1, 2} / sqrt(d) taken along a diagonal of dtype x scale (each scale is a
 * compile); half inputs with a float32 output. Without the reference: a grouped call
 * against the same call with k and v repeated, a causal call with Lq < Lk against the tail
 * of the full one, masked and padded keys changing nothing bit for bit. Then every
 * malformed call failing with a status and a message before anything is written.
 *
 * Tolerances. The reference and the JIT run the same descriptor on the same inputs (for a
 * half dtype the same half inputs), so the float32 bound is the estimator's documented
 * ref_tol (max |JIT - reference| <= ref_tol max |reference|, as in jit/test_jit_equiv.c).
 * A half output adds the rounding of each of the two outputs to the dtype: at most u |x|
 * with u = 2^-11 (float16) or 2^-8 (bfloat16), plus 2^-24 for the reference's double going
 * through float on its way, each <= u' max |reference| (1 + ref_tol); relative to the
 * rounded reference's maximum (>= (1 - u) of the unrounded one):
 *     tol = (ref_tol + 2 u' (1 + ref_tol)) / (1 - u),   u' = u + 2^-24.
 * Rows that no key reaches (key length 0, every visible key masked, causal before the first
 * key) must be exactly zero, rows past a query length exactly zero or, with untouched_rows,
 * bit for bit what was there.
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "ctx_testutil.h"
#include "data_testutil.h"
#include "est/est.h"
#include "rfjit.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 16, M = 16 };

#define SENTINEL 1000.0f /* exact in every dtype, far from any attention output here */

static int fitted(const char *est)
{
    return !strcmp(est, "oprf") || !strcmp(est, "saderf") || !strcmp(est, "sderf") ||
           !strcmp(est, "aderf");
}

static const char *dt_name(int dt)
{
    return rj_dtype_name(dt);
}

/* ---------------------------------------------------------------------------------------- */
/* Buffers of any dtype                                                                     */

static void store(void *p, size_t i, int dt, float x)
{
    if (dt == RFJIT_F32)
        ((float *)p)[i] = x;
    else
        ((uint16_t *)p)[i] = dt == RFJIT_F16 ? rj_f32_to_f16(x) : rj_f32_to_bf16(x);
}

static void *alloc_dt(size_t n, int dt)
{
    void *p = calloc(n ? n : 1, rj_dtype_size(dt));
    cr_assert_not_null(p);
    return p;
}

/* n normal numbers of standard deviation sd, as dtype. */
static void *normal_dt(size_t n, double sd, uint64_t seed, int dt)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    tu_fill_normal(x, n, sd, seed);
    void *p = alloc_dt(n, dt);
    for (size_t i = 0; i < n; i++)
        store(p, i, dt, x[i]);
    free(x);
    return p;
}

static void fill_dt(void *p, size_t n, int dt, float x)
{
    for (size_t i = 0; i < n; i++)
        store(p, i, dt, x);
}

/* Whether element i is bit for bit x stored as dtype. */
static bool is_bits(const void *p, size_t i, int dt, float x)
{
    if (dt == RFJIT_F32) {
        float y = ((const float *)p)[i];
        return !memcmp(&y, &x, sizeof x);
    }
    uint16_t want = dt == RFJIT_F16 ? rj_f32_to_f16(x) : rj_f32_to_bf16(x);
    return ((const uint16_t *)p)[i] == want;
}

/* ---------------------------------------------------------------------------------------- */
/* One serving call                                                                         */

typedef struct scase {
    const char *name;
    int64_t B, H, Hkv, lq, lk; /* padded: the tensors' extents; packed: sequences, totals */
    const int32_t *klen, *qlen;
    int mask;                 /* a random key mask, ~30% masked */
    const int32_t *cuq, *cuk; /* packed offsets (B + 1) */
    int untouched;
    int modes; /* 1 bidirectional, 2 causal */
} scase;

static const int32_t KL[4] = {37, 0, 1, 23}, QL_K[4] = {30, 0, 1, 23}, QL[4] = {37, 0, 1, 20};
static const int32_t CUQ[5] = {0, 20, 20, 21, 45}, CUK[5] = {0, 30, 30, 31, 70};

static const scase CASES[] = {
    {"key_lengths", 4, 2, 2, 37, 37, KL, NULL, 0, NULL, NULL, 0, 1},
    {"key_lengths+query_lengths", 4, 2, 2, 37, 37, KL, QL_K, 0, NULL, NULL, 0, 3},
    {"key_mask", 3, 2, 2, 37, 37, NULL, NULL, 1, NULL, NULL, 0, 3},
    {"query_lengths", 4, 2, 2, 37, 37, NULL, QL, 0, NULL, NULL, 0, 3},
    {"query_lengths untouched", 4, 2, 2, 37, 37, NULL, QL, 0, NULL, NULL, 1, 3},
    {"gqa H/Hkv=1", 2, 8, 8, 37, 37, NULL, NULL, 0, NULL, NULL, 0, 3},
    {"gqa H/Hkv=2", 2, 8, 4, 37, 37, NULL, NULL, 0, NULL, NULL, 0, 3},
    {"gqa H/Hkv=8", 2, 8, 1, 37, 37, NULL, NULL, 0, NULL, NULL, 0, 3},
    {"Lq<Lk offset", 2, 2, 2, 20, 53, NULL, NULL, 0, NULL, NULL, 0, 3},
    {"packed", 4, 2, 2, 45, 70, NULL, NULL, 0, CUQ, CUK, 0, 3},
    {"packed+mask", 4, 2, 2, 45, 70, NULL, NULL, 1, CUQ, CUK, 0, 3},
    {"lengths+mask+gqa", 4, 8, 2, 37, 37, KL, QL_K, 1, NULL, NULL, 0, 3},
};
enum { ALL_CASES = sizeof CASES / sizeof CASES[0], COMBINED = ALL_CASES - 1 };

typedef struct call {
    const scase *cs;
    int dt, odt; /* of q, k, v and of out */
    int64_t tb;  /* the tensors' batch extent (1 when packed) */
    void *q, *k, *v;
    uint8_t *mask;
    size_t nq, nk, nv, no, nmask;
    rfjit_tensor_ex tq, tk, tv;
} call;

static rfjit_tensor_ex view_of(void *p, int dt, int64_t b, int64_t h, int64_t l, int64_t dim,
                               bool packed)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = p;
    t.dtype = dt;
    t.shape[0] = b, t.shape[1] = h, t.shape[2] = l, t.shape[3] = dim;
    if (packed) { /* (total, heads, dim) rows */
        t.stride[0] = 0, t.stride[1] = dim, t.stride[2] = h * dim, t.stride[3] = 1;
    } else {
        t.stride[3] = 1, t.stride[2] = dim, t.stride[1] = l * dim, t.stride[0] = h * l * dim;
    }
    return t;
}

/* ~30% of keys masked by a fixed stream; in sequence 0 the first three keys are masked
 * (causal queries before them see nothing), and the last sequence is masked entirely. */
static uint8_t *make_mask(size_t n, int64_t nseq, const int32_t *cuk, int64_t lk)
{
    uint8_t *m = malloc(n ? n : 1);
    uint64_t s = 0x5eed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        m[i] = (uint8_t)((s >> 33) % 10 >= 3);
    }
    const int64_t k0 = cuk ? cuk[nseq - 1] : (nseq - 1) * lk;
    const int64_t k1 = cuk ? cuk[nseq] : nseq * lk;
    for (int i = 0; i < 3 && (size_t)i < n; i++)
        m[i] = 0;
    for (int64_t j = k0; j < k1; j++)
        m[j] = 0;
    return m;
}

static void call_init(call *c, const scase *cs, int dt, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->cs = cs;
    c->dt = c->odt = dt;
    const bool packed = cs->cuq != NULL;
    c->tb = packed ? 1 : cs->B;
    c->nq = (size_t)(c->tb * cs->H * cs->lq * D);
    c->nk = (size_t)(c->tb * cs->Hkv * cs->lk * D);
    c->nv = (size_t)(c->tb * cs->Hkv * cs->lk * DV);
    c->no = (size_t)(c->tb * cs->H * cs->lq * DV);
    c->q = normal_dt(c->nq, 0.5, seed, dt);
    c->k = normal_dt(c->nk, 0.5, seed + 1, dt);
    c->v = normal_dt(c->nv, 1.0, seed + 2, dt);
    c->tq = view_of(c->q, dt, c->tb, cs->H, cs->lq, D, packed);
    c->tk = view_of(c->k, dt, c->tb, cs->Hkv, cs->lk, D, packed);
    c->tv = view_of(c->v, dt, c->tb, cs->Hkv, cs->lk, DV, packed);
    if (cs->mask) {
        c->nmask = (size_t)(c->tb * cs->lk);
        c->mask = make_mask(c->nmask, cs->B, cs->cuk, cs->lk);
    }
}

static void call_free(call *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->mask);
}

static rfjit_attn_args args_of(const call *c, const rfjit_tensor_ex *to)
{
    const scase *cs = c->cs;
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &c->tq, a.k = &c->tk, a.v = &c->tv, a.out = to;
    a.key_lengths = cs->klen;
    a.query_lengths = cs->qlen;
    a.key_mask = c->mask;
    a.cu_seqlens_q = cs->cuq;
    a.cu_seqlens_k = cs->cuk;
    a.batch = cs->cuq ? cs->B : 0;
    a.untouched_rows = cs->untouched;
    return a;
}

/* Run the call on plan into a fresh output (in the call's dtype, filled with SENTINEL). */
static void *run_call(rfjit_ctx *ctx, const rfjit_plan *plan, const call *c, const char *what)
{
    void *out = alloc_dt(c->no, c->odt);
    fill_dt(out, c->no, c->odt, SENTINEL);
    const rfjit_tensor_ex to = view_of(out, c->odt, c->tb, c->cs->H, c->cs->lq, DV, c->cs->cuq);
    const rfjit_attn_args a = args_of(c, &to);
    rfjit_status s = rfjit_plan_execute_args(plan, &a);
    cr_expect_eq(s, RFJIT_OK, "%s: %s %s: %s", what, c->cs->name, dt_name(c->dt),
                 rfjit_ctx_last_error(ctx));
    if (s != RFJIT_OK) {
        free(out);
        return NULL;
    }
    return out;
}

/* Geometry of sequence b as rfjit.h defines it. */
typedef struct seqg {
    int64_t q0, k0, rows, lq, lk, tb;
    const uint8_t *mask;
} seqg;

static seqg seq_of(const call *c, int64_t b)
{
    const scase *cs = c->cs;
    seqg g = {0};
    if (cs->cuq) {
        g.q0 = cs->cuq[b], g.k0 = cs->cuk[b];
        g.rows = g.lq = cs->cuq[b + 1] - cs->cuq[b];
        g.lk = cs->cuk[b + 1] - cs->cuk[b];
        g.mask = c->mask ? c->mask + g.k0 : NULL;
    } else {
        g.tb = b;
        g.rows = cs->lq;
        g.lq = cs->qlen ? cs->qlen[b] : cs->lq;
        g.lk = cs->klen ? cs->klen[b] : cs->lk;
        g.mask = c->mask ? c->mask + b * cs->lk : NULL;
    }
    return g;
}

/* Whether query i of sequence g sees any key. */
static bool sees_a_key(const seqg *g, int64_t i, int causal)
{
    const int64_t last = causal ? i + g->lk - g->lq : g->lk - 1;
    for (int64_t j = 0; j <= last && j < g->lk; j++)
        if (!g->mask || g->mask[j])
            return true;
    return false;
}

static size_t row_index(const call *c, const seqg *g, int64_t h, int64_t r)
{
    const scase *cs = c->cs;
    if (cs->cuq)
        return (size_t)(((g->q0 + r) * cs->H + h) * DV);
    return (size_t)(((g->tb * cs->H + h) * cs->lq + r) * DV);
}

static double tol_for(const char *est, int dt)
{
    const rj_est_ops *e = rj_est_find(est);
    cr_assert_not_null(e, "%s", est);
    const double t = e->ref_tol;
    const double u = dt == RFJIT_F16 ? 0x1p-11 : dt == RFJIT_BF16 ? 0x1p-8 : 0;
    const double u1 = dt == RFJIT_F32 ? 0 : u + 0x1p-24;
    return (t + 2 * u1 * (1 + t)) / (1 - u);
}

/* One comparison of a JIT output with the reference's. */
typedef struct cmp {
    const call *c;
    const char *est;
    int causal;
    const void *ref, *jit;
    double num, den; /* max |jit - ref|, max |ref| over the computed rows */
    int reported;    /* failing elements printed (a few show the pattern) */
} cmp;

static void report(cmp *m, const char *what, int64_t b, int64_t h, int64_t r, size_t x)
{
    if (m->reported++ >= 3)
        return;
    const int dt = m->c->odt;
    cr_expect(0, "%s causal=%d %s %s: row %lld of (%lld, %lld) %s: jit %g, reference %g", m->est,
              m->causal, m->c->cs->name, dt_name(dt), (long long)r, (long long)b, (long long)h,
              what, rj_dtype_load(m->jit, (int64_t)x, dt), rj_dtype_load(m->ref, (int64_t)x, dt));
}

/* Row r of sequence b, head h: a row rfjit.h fixes (past the query length, or a query that
 * sees no key) exactly, in both outputs; a computed row into the error. */
static void compare_row(cmp *m, const seqg *g, int64_t b, int64_t h, int64_t r)
{
    const call *c = m->c;
    const int dt = c->odt;
    const size_t i0 = row_index(c, g, h, r);
    const bool computed = r < g->lq, seen = computed && sees_a_key(g, r, m->causal);
    const float fixed = !computed && c->cs->untouched ? SENTINEL : 0.0f;
    const char *why = computed           ? "sees no key, so must be 0"
                      : c->cs->untouched ? "is past the query length, so must be untouched"
                                         : "is past the query length, so must be 0";
    for (size_t x = i0; x < i0 + DV; x++) {
        if (!seen && (!is_bits(m->jit, x, dt, fixed) || !is_bits(m->ref, x, dt, fixed)))
            report(m, why, b, h, r, x);
        if (!computed)
            continue;
        if (is_bits(m->jit, x, dt, SENTINEL))
            report(m, "was not written", b, h, r, x);
        const double fj = rj_dtype_load(m->jit, (int64_t)x, dt);
        const double fr = rj_dtype_load(m->ref, (int64_t)x, dt);
        m->num = isfinite(fj) && isfinite(fr) ? fmax(m->num, fabs(fj - fr)) : INFINITY;
        m->den = fmax(m->den, fabs(fr));
    }
}

static void compare_outputs(const call *c, const char *est, int causal, double scale,
                            const void *ref, const void *jit)
{
    cmp m = {.c = c, .est = est, .causal = causal, .ref = ref, .jit = jit};
    for (int64_t b = 0; b < c->cs->B; b++) {
        const seqg g = seq_of(c, b);
        for (int64_t h = 0; h < c->cs->H; h++)
            for (int64_t r = 0; r < g.rows; r++)
                compare_row(&m, &g, b, h, r);
    }
    const double e = m.den > 0 ? m.num / m.den : m.num, tol = tol_for(est, c->odt);
    cr_expect(e <= tol, "%s causal=%d scale=%g/sqrt(d) %s %s: max|jit-ref|/max|ref| = %.3g > %.3g",
              est, causal, scale, c->cs->name, dt_name(c->odt), e, tol);
}

/* ---------------------------------------------------------------------------------------- */
/* The matrix                                                                               */

static rfjit_plan *make_plan(rfjit_ctx *ctx, const char *est, int causal, double scale, int dt,
                             int backend, const rfjit_tensor *calib)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.causal = causal;
    a.seed = 7;
    a.scale = scale / sqrt((double)D);
    a.dtype = dt;
    a.backend = backend;
    if (causal && fitted(est))
        a.calib_q = a.calib_k = calib;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s causal=%d scale=%g %s: %s", est,
                 causal, scale, dt_name(dt), rfjit_ctx_last_error(ctx));
    return p;
}

static void gqa_vs_repeated(rfjit_ctx *ctx, const char *est, int causal, const rfjit_plan *jit);
static void hidden_keys(rfjit_ctx *ctx, const char *est, int causal, const rfjit_plan *jit);
static void offset_is_tail(rfjit_ctx *ctx, const char *est, const rfjit_plan *jit);

/* The matrix for one estimator and mode; the float32 plan at the default scale also runs the
 * grouped-heads and hidden-keys checks below. */
static void matrix(const char *est, int causal)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    float calib[40 * D];
    tu_fill_normal(calib, 40 * D, 0.5, 5);
    const rfjit_tensor tc = rfjit_tensor_contiguous(calib, 1, 1, 40, D);
    /* Each scale is a kernel of its own (a compile, most of this file's time), so the product
     * scale x dtype is taken along a diagonal: every case in float32 at the default scale, in
     * float16 at 0.5 and in bfloat16 at 2, and the combined case in float32 at 2 as well (a
     * wrong scale moves outputs by far more than the half tolerances). */
    static const struct {
        int dt;
        double scale;
        int first_case;
    } runs[] = {{RFJIT_F32, 1.0, 0},
                {RFJIT_F32, 2.0, COMBINED},
                {RFJIT_F16, 0.5, 0},
                {RFJIT_BF16, 2.0, 0}};
    for (size_t ri = 0; ri < sizeof runs / sizeof runs[0]; ri++) {
        const int dt = runs[ri].dt;
        const double scale = runs[ri].scale;
        rfjit_plan *ref = make_plan(ctx, est, causal, scale, dt, RFJIT_BACKEND_REFERENCE, &tc);
        rfjit_plan *jit = make_plan(ctx, est, causal, scale, dt, RFJIT_BACKEND_JIT, &tc);
        for (int ci = runs[ri].first_case; ci < ALL_CASES; ci++) {
            if (!(CASES[ci].modes & (1 << causal)))
                continue;
            call c;
            call_init(&c, &CASES[ci], dt, 11 + (uint64_t)ci);
            void *o_ref = run_call(ctx, ref, &c, "reference");
            void *o_jit = run_call(ctx, jit, &c, "jit");
            if (o_ref && o_jit)
                compare_outputs(&c, est, causal, scale, o_ref, o_jit);
            free(o_ref);
            free(o_jit);
            call_free(&c);
        }
        if (ri == 0) {
            gqa_vs_repeated(ctx, est, causal, jit);
            hidden_keys(ctx, est, causal, jit);
            if (causal)
                offset_is_tail(ctx, est, jit);
        }
        rfjit_plan_destroy(ref);
        rfjit_plan_destroy(jit);
    }
    rfjit_ctx_destroy(ctx);
}

#define MATRIX(est)                                                                                \
    Test(serving, est##_bidirectional, .timeout = 120)                                             \
    {                                                                                              \
        matrix(#est, 0);                                                                           \
    }                                                                                              \
    Test(serving, est##_causal, .timeout = 120)                                                    \
    {                                                                                              \
        matrix(#est, 1);                                                                           \
    }

MATRIX(exact)
MATRIX(trig)
MATRIX(positive)
MATRIX(hyperbolic)
MATRIX(oprf)
MATRIX(saderf)
MATRIX(sderf)
MATRIX(aderf)
MATRIX(hybrid)
MATRIX(eva)
MATRIX(blocksparse)

/* Half inputs with a float32 output (the caller's choice, a kernel variant compiled on first
 * use): only the inputs are rounded, so the float32 tolerance applies. */
Test(serving, half_in_float_out, .timeout = 60)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    static const char *const ests[2] = {"exact", "positive"};
    static const int cases[2] = {1, COMBINED}; /* lengths; lengths, mask and groups */
    for (int e = 0; e < 2; e++)
        for (int causal = 0; causal < 2; causal++) {
            const int dt = causal ? RFJIT_F16 : RFJIT_BF16;
            rfjit_plan *ref = make_plan(ctx, ests[e], causal, 1.0, dt, RFJIT_BACKEND_REFERENCE,
                                        NULL);
            rfjit_plan *jit = make_plan(ctx, ests[e], causal, 1.0, dt, RFJIT_BACKEND_JIT, NULL);
            for (int ci = 0; ci < 2; ci++) {
                call c;
                call_init(&c, &CASES[cases[ci]], dt, 61);
                c.odt = RFJIT_F32;
                void *o_ref = run_call(ctx, ref, &c, "reference");
                void *o_jit = run_call(ctx, jit, &c, "jit");
                if (o_ref && o_jit)
                    compare_outputs(&c, ests[e], causal, 1.0, o_ref, o_jit);
                free(o_ref);
                free(o_jit);
                call_free(&c);
            }
            rfjit_plan_destroy(ref);
            rfjit_plan_destroy(jit);
        }
    rfjit_ctx_destroy(ctx);
}

/* Every registered estimator is in the matrix above. */
Test(serving, every_estimator)
{
    static const char *const listed[] = {"exact",  "trig",   "positive",   "hyperbolic",
                                         "oprf",   "saderf", "sderf",      "aderf",
                                         "hybrid", "eva",    "blocksparse"};
    for (int e = 0; rfjit_estimator_name(e); e++) {
        bool found = false;
        for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
            found |= !strcmp(listed[i], rfjit_estimator_name(e));
        cr_expect(found, "estimator %s is missing from the serving matrix",
                  rfjit_estimator_name(e));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Grouped-query heads against repeated heads                                               */

/* A call with Hkv = 2 of H = 8 heads equals the same call with k and v repeated to 8 heads
 * (head h a copy of h / 4). Bidirectional bits may differ: a shared key state is built in
 * other blocks than a per-slice call's (causal grouped calls are bit-identical, which
 * tests/jit/test_jit_gqa.c checks; here one bound serves both). Both are float computations
 * of the same double result, each within ref_tol max|out| of it, and they differ only in
 * where float rounding falls; the bound used is that budget, ref_tol max|repeated|, for both
 * modes and both layouts of the keys (full length, and ragged lengths). */
static void gqa_vs_repeated(rfjit_ctx *ctx, const char *est, int causal, const rfjit_plan *jit)
{
    static const int32_t kl[2] = {37, 23}, ql[2] = {30, 23};
    for (int lengths = 0; lengths < 2; lengths++) {
        const scase g = {"gqa", 2,    8,    2, 37, 37, lengths ? kl : NULL, lengths ? ql : NULL,
                         0,     NULL, NULL, 0, 3};
        scase r = g;
        r.name = "repeated";
        r.Hkv = 8;
        call cg, cr;
        call_init(&cg, &g, RFJIT_F32, 21);
        call_init(&cr, &r, RFJIT_F32, 21);
        for (int64_t b = 0; b < 2; b++)
            for (int64_t h = 0; h < 8; h++) {
                const size_t src = (size_t)((b * 2 + h / 4) * 37), dst = (size_t)((b * 8 + h) * 37);
                memcpy((float *)cr.k + dst * D, (float *)cg.k + src * D, 37 * D * sizeof(float));
                memcpy((float *)cr.v + dst * DV, (float *)cg.v + src * DV, 37 * DV * sizeof(float));
            }
        memcpy(cr.q, cg.q, cg.nq * sizeof(float));
        float *og = run_call(ctx, jit, &cg, "gqa"), *orp = run_call(ctx, jit, &cr, "repeated");
        if (og && orp) {
            double num = 0, den = 0;
            for (size_t i = 0; i < cg.no; i++) {
                num = isfinite(og[i]) ? fmax(num, fabs((double)og[i] - orp[i])) : INFINITY;
                den = fmax(den, fabs((double)orp[i]));
            }
            const double tol = tol_for(est, RFJIT_F32);
            cr_expect(num <= tol * den,
                      "%s causal=%d lengths=%d: GQA vs repeated heads "
                      "max diff %.3g > %.3g max|out|",
                      est, causal, lengths, num / den, tol);
        }
        free(og);
        free(orp);
        call_free(&cg);
        call_free(&cr);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Masked and padded keys change nothing                                                    */

/* Scaling every masked key and value by 3, swapping two masked key rows and writing 1e30 in
 * the padding past key lengths leaves the output bit for bit the same: such keys are in no
 * sum, no normaliser and no fitted statistic. */
static void perturb_hidden(call *c, bool masked_keys, bool padding_keys)
{
    const scase *cs = c->cs;
    float *k = c->k, *v = c->v;
    for (int64_t b = 0; b < cs->B; b++) {
        const seqg g = seq_of(c, b);
        for (int64_t h = 0; h < cs->Hkv; h++) {
            int64_t first = -1;
            for (int64_t j = 0; j < cs->lk; j++) {
                const size_t row = (size_t)((b * cs->Hkv + h) * cs->lk + j);
                const bool padding = padding_keys && j >= g.lk;
                const bool masked = masked_keys && j < g.lk && g.mask && !g.mask[j];
                for (int x = 0; masked && x < D; x++)
                    k[row * D + x] *= 3;
                for (int x = 0; masked && x < DV; x++)
                    v[row * DV + x] *= 3;
                for (int x = 0; padding && x < D; x++)
                    k[row * D + x] = 1e30f;
                for (int x = 0; padding && x < DV; x++)
                    v[row * DV + x] = -1e30f;
                if (masked && first < 0) {
                    first = (int64_t)row;
                } else if (masked) { /* swap with the first masked row */
                    float t[D];
                    memcpy(t, k + row * D, sizeof t);
                    memcpy(k + row * D, k + (size_t)first * D, sizeof t);
                    memcpy(k + (size_t)first * D, t, sizeof t);
                    first = -2;
                }
            }
        }
    }
}

/* Lengths, a mask and grouped heads on the JIT alone: the fixed rows (zeros for queries that
 * see no key, causal ones included, and past the query lengths), then hidden keys changed. */
static void hidden_keys(rfjit_ctx *ctx, const char *est, int causal, const rfjit_plan *jit)
{
    const scase cs = {"hidden", 4, 4, 2, 37, 37, KL, QL_K, 1, NULL, NULL, 0, 3};
    for (int what = 0; what < 2; what++) {
        call c;
        call_init(&c, &cs, RFJIT_F32, 31);
        void *before = run_call(ctx, jit, &c, "jit");
        if (before) /* against itself: the rows rfjit.h fixes, with no reference needed */
            compare_outputs(&c, est, causal, 1.0, before, before);
        perturb_hidden(&c, what == 0, what == 1);
        void *after = run_call(ctx, jit, &c, "jit, hidden keys changed");
        if (before && after)
            cr_expect(!memcmp(before, after, c.no * sizeof(float)),
                      "%s causal=%d: changing %s keys changed the output", est, causal,
                      what ? "padding" : "masked");
        free(before);
        free(after);
        call_free(&c);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The causal offset is the tail of a full causal call                                      */

/* Bottom-right alignment means query i of lq sees keys j <= i + lk - lq, which is what query
 * i + lk - lq of the full causal call (lq = lk) sees: the offset call must equal the last lq
 * rows of the full one, without the reference, with and without a key mask. The two take
 * the keys in other blocks (the linear template first takes the earlier keys into its state),
 * so they agree to float rounding: within ref_tol max|out| as for grouped heads. */
static void offset_is_tail(rfjit_ctx *ctx, const char *est, const rfjit_plan *jit)
{
    for (int masked = 0; masked < 2; masked++) {
        const scase full = {"full", 2, 2, 2, 53, 53, NULL, NULL, masked, NULL, NULL, 0, 2};
        scase tail = full;
        tail.name = "tail";
        tail.lq = 20;
        call cf, ct;
        call_init(&cf, &full, RFJIT_F32, 51);
        call_init(&ct, &tail, RFJIT_F32, 51);
        for (int64_t s = 0; s < 2 * 2; s++) /* the last 20 query rows of each slice */
            memcpy((float *)ct.q + s * 20 * D, (float *)cf.q + (s * 53 + 33) * D,
                   20 * D * sizeof(float));
        memcpy(ct.k, cf.k, cf.nk * sizeof(float));
        memcpy(ct.v, cf.v, cf.nv * sizeof(float));
        float *of = run_call(ctx, jit, &cf, "full"), *ot = run_call(ctx, jit, &ct, "offset");
        if (of && ot) {
            double num = 0, den = 0;
            for (int64_t s = 0; s < 2 * 2; s++)
                for (int64_t i = 0; i < 20 * DV; i++) {
                    const double a = ot[s * 20 * DV + i], b = of[(s * 53 + 33) * DV + i];
                    num = isfinite(a) ? fmax(num, fabs(a - b)) : INFINITY;
                    den = fmax(den, fabs(b));
                }
            const double tol = tol_for(est, RFJIT_F32);
            cr_expect(num <= tol * den,
                      "%s mask=%d: causal Lq = 20 < Lk = 53 vs the last 20 rows of Lq = Lk: max "
                      "diff %.3g > %.3g max|out|",
                      est, masked, num / den, tol);
        }
        free(of);
        free(ot);
        call_free(&cf);
        call_free(&ct);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Bad input: a status, a message, and nothing written                                      */

enum { BB = 2, BH = 4, BHKV = 2, BL = 37, PQ = 45, PK = 70 };

typedef struct bad_fixture {
    rfjit_ctx *ctx;
    rfjit_plan *bidir, *causal;
    float q[BB * BH * BL * D], k[BB * BHKV * BL * D], v[BB * BHKV * BL * DV];
    float out[BB * BH * BL * DV];
    rfjit_tensor_ex tq, tk, tv, to;
    /* packed: (total, heads, dim) rows */
    float pq[PQ * BH * D], pk[PK * BHKV * D], pv[PK * BHKV * DV], pout[PQ * BH * DV];
    rfjit_tensor_ex ptq, ptk, ptv, pto;
} bad_fixture;

static bad_fixture *bad_setup(void)
{
    bad_fixture *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->ctx = tu_ctx_isolated();
    f->bidir = make_plan(f->ctx, "positive", 0, 1.0, RFJIT_F32, RFJIT_BACKEND_JIT, NULL);
    f->causal = make_plan(f->ctx, "positive", 1, 1.0, RFJIT_F32, RFJIT_BACKEND_JIT, NULL);
    tu_fill_normal(f->q, sizeof f->q / sizeof(float), 0.5, 41);
    tu_fill_normal(f->k, sizeof f->k / sizeof(float), 0.5, 42);
    tu_fill_normal(f->v, sizeof f->v / sizeof(float), 1.0, 43);
    tu_fill_normal(f->pq, sizeof f->pq / sizeof(float), 0.5, 44);
    tu_fill_normal(f->pk, sizeof f->pk / sizeof(float), 0.5, 45);
    tu_fill_normal(f->pv, sizeof f->pv / sizeof(float), 1.0, 46);
    f->tq = view_of(f->q, RFJIT_F32, BB, BH, BL, D, false);
    f->tk = view_of(f->k, RFJIT_F32, BB, BHKV, BL, D, false);
    f->tv = view_of(f->v, RFJIT_F32, BB, BHKV, BL, DV, false);
    f->to = view_of(f->out, RFJIT_F32, BB, BH, BL, DV, false);
    f->ptq = view_of(f->pq, RFJIT_F32, 1, BH, PQ, D, true);
    f->ptk = view_of(f->pk, RFJIT_F32, 1, BHKV, PK, D, true);
    f->ptv = view_of(f->pv, RFJIT_F32, 1, BHKV, PK, DV, true);
    f->pto = view_of(f->pout, RFJIT_F32, 1, BH, PQ, DV, true);
    return f;
}

static void bad_teardown(bad_fixture *f)
{
    rfjit_plan_destroy(f->bidir);
    rfjit_plan_destroy(f->causal);
    rfjit_ctx_destroy(f->ctx);
    free(f);
}

static rfjit_attn_args padded_args(const bad_fixture *f)
{
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &f->tq, a.k = &f->tk, a.v = &f->tv, a.out = &f->to;
    return a;
}

static const int32_t PCUQ[4] = {0, 20, 21, PQ}, PCUK[4] = {0, 30, 31, PK};

static rfjit_attn_args packed_args(const bad_fixture *f)
{
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &f->ptq, a.k = &f->ptk, a.v = &f->ptv, a.out = &f->pto;
    a.cu_seqlens_q = PCUQ;
    a.cu_seqlens_k = PCUK;
    a.batch = 3;
    return a;
}

static bool all_sentinel(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_bits(x, i, RFJIT_F32, SENTINEL))
            return false;
    return true;
}

/* Call with args a (NULL allowed) on plan p: want status `want`, a message containing
 * `words`, and neither output written. */
static void expect_bad(bad_fixture *f, const rfjit_plan *p, const rfjit_attn_args *a,
                       rfjit_status want, const char *words, const char *what)
{
    fill_dt(f->out, sizeof f->out / sizeof(float), RFJIT_F32, SENTINEL);
    fill_dt(f->pout, sizeof f->pout / sizeof(float), RFJIT_F32, SENTINEL);
    const rfjit_status s = rfjit_plan_execute_args(p, a);
    const char *msg = rfjit_ctx_last_error(f->ctx);
    cr_expect_eq(s, want, "%s: status %s, want %s (%s)", what, rfjit_status_string(s),
                 rfjit_status_string(want), msg);
    cr_expect(msg && strstr(msg, words), "%s: message \"%s\" lacks \"%s\"", what,
              msg ? msg : "(null)", words);
    cr_expect(all_sentinel(f->out, sizeof f->out / sizeof(float)) &&
                  all_sentinel(f->pout, sizeof f->pout / sizeof(float)),
              "%s: a failed call wrote its output", what);
}

Test(serving, bad_lengths_and_masks)
{
    bad_fixture *f = bad_setup();
    static const int32_t kneg[BB] = {-1, 5}, kbig[BB] = {BL, BL + 1}, qbig[BB] = {BL + 1, 3},
                         qneg[BB] = {3, -2};
    rfjit_attn_args a = padded_args(f);
    a.key_lengths = kneg;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "key_lengths[0] = -1 is outside [0, 37]",
               "key length -1");
    a.key_lengths = kbig;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "key_lengths[1] = 38 is outside [0, 37]",
               "key length Lk + 1");
    a = padded_args(f);
    a.query_lengths = qbig;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "query_lengths[0] = 38 is outside",
               "query length Lq + 1");
    a.query_lengths = qneg;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "query_lengths[1] = -2 is outside",
               "query length -2");

    uint8_t mask[BB * BL];
    memset(mask, 1, sizeof mask);
    a = padded_args(f);
    a.key_mask = mask;
    a.key_mask_stride = -1;
    expect_bad(f, f->bidir, &a, RFJIT_E_STRIDE, "key_mask_stride = -1 is negative",
               "negative mask stride");
    a.key_mask_stride = BL - 1;
    expect_bad(f, f->bidir, &a, RFJIT_E_SHAPE, "shorter than a row of 37 keys",
               "mask stride shorter than Lk");

    a = padded_args(f);
    a.untouched_rows = 2;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "untouched_rows = 2", "untouched_rows 2");
    bad_teardown(f);
}

Test(serving, bad_heads_dtypes_sizes)
{
    bad_fixture *f = bad_setup();
    rfjit_attn_args a = padded_args(f);
    rfjit_tensor_ex k3 = f->tk, v3 = f->tv;
    k3.shape[1] = v3.shape[1] = 3;
    a.k = &k3, a.v = &v3;
    expect_bad(f, f->bidir, &a, RFJIT_E_SHAPE, "does not divide the 4 heads of q",
               "H not a multiple of Hkv");
    rfjit_tensor_ex v1 = f->tv;
    v1.shape[1] = 1;
    a = padded_args(f);
    a.v = &v1;
    expect_bad(f, f->bidir, &a, RFJIT_E_SHAPE, "k and v head counts differ", "k, v heads differ");

    rfjit_tensor_ex q7 = f->tq, k16 = f->tk, out7 = f->to;
    q7.dtype = 7;
    a = padded_args(f);
    a.q = &q7;
    expect_bad(f, f->bidir, &a, RFJIT_E_DTYPE, "tensor q: unknown dtype 7", "q dtype 7");
    out7.dtype = 7;
    a = padded_args(f);
    a.out = &out7;
    expect_bad(f, f->bidir, &a, RFJIT_E_DTYPE, "tensor out: unknown dtype 7", "out dtype 7");
    k16.dtype = RFJIT_F16; /* the float buffer holds twice the halves the view needs */
    a = padded_args(f);
    a.k = &k16;
    expect_bad(f, f->bidir, &a, RFJIT_E_DTYPE, "q, k and v must have one dtype",
               "k float16, q and v float32");

    expect_bad(f, f->bidir, NULL, RFJIT_E_INVALID_ARG, "args is NULL", "args NULL");
    a = padded_args(f);
    a.size = 3;
    expect_bad(f, f->bidir, &a, RFJIT_E_DESC_SIZE, "descriptor size 3", "args size 3");
    rfjit_tensor_ex v0 = f->tv;
    v0.size = 0;
    a = padded_args(f);
    a.v = &v0;
    expect_bad(f, f->bidir, &a, RFJIT_E_DESC_SIZE, "tensor v", "tensor_ex size 0");
    bad_teardown(f);
}

Test(serving, bad_scale_and_desc_dtype)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    static const double bad[] = {-1.0, -1e-300, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = D;
        a.m = M;
        a.scale = bad[i];
        rfjit_plan *p = (rfjit_plan *)&a; /* must be set to NULL on failure */
        const rfjit_status s = rfjit_plan_create(ctx, &a, &p);
        const char *msg = rfjit_ctx_last_error(ctx);
        cr_expect_eq(s, RFJIT_E_INVALID_ARG, "scale %g: status %s (%s)", bad[i],
                     rfjit_status_string(s), msg);
        cr_expect(msg && strstr(msg, "scale"), "scale %g: message \"%s\" does not name it", bad[i],
                  msg ? msg : "(null)");
        if (s == RFJIT_OK)
            rfjit_plan_destroy(p);
        else
            cr_expect_null(p, "scale %g: a failed create left *out set", bad[i]);
    }
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.dtype = 7;
    rfjit_plan *p = NULL;
    cr_expect_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_DTYPE, "descriptor dtype 7");
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "dtype = 7"), "descriptor dtype 7: %s",
              rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(ctx);
}

Test(serving, bad_causal_shapes)
{
    bad_fixture *f = bad_setup();
    rfjit_attn_args a = padded_args(f);
    rfjit_tensor_ex k30 = f->tk, v30 = f->tv;
    k30.shape[2] = v30.shape[2] = 30;
    a.k = &k30, a.v = &v30;
    expect_bad(f, f->causal, &a, RFJIT_E_SHAPE, "has 37 queries but 30 keys", "causal Lq > Lk");
    static const int32_t kl[BB] = {BL, 10};
    a = padded_args(f);
    a.key_lengths = kl;
    expect_bad(f, f->causal, &a, RFJIT_E_SHAPE, "sequence 1 has 37 queries but 10 keys",
               "causal lq > lk by key_lengths");
    static const int32_t pcuk[4] = {0, 30, 31, 31 + 23}; /* sequence 2: 24 queries, 23 keys */
    rfjit_tensor_ex pk = f->ptk, pv = f->ptv;
    pk.shape[2] = pv.shape[2] = 54;
    a = packed_args(f);
    a.cu_seqlens_k = pcuk;
    a.k = &pk, a.v = &pv;
    expect_bad(f, f->causal, &a, RFJIT_E_SHAPE, "sequence 2 has 24 queries but 23 keys",
               "causal packed lq > lk");
    bad_teardown(f);
}

Test(serving, bad_packed)
{
    bad_fixture *f = bad_setup();
    rfjit_attn_args a = packed_args(f);
    a.cu_seqlens_k = NULL;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "go together", "cu_seqlens_q alone");
    a = packed_args(f);
    a.cu_seqlens_q = NULL;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "go together", "cu_seqlens_k alone");
    static const int32_t first1[4] = {1, 20, 21, PQ}, decr[4] = {0, 20, 10, PQ},
                         short_[4] = {0, 20, 21, PQ - 1};
    a = packed_args(f);
    a.cu_seqlens_q = first1;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "cu_seqlens_q[0] = 1, must be 0", "cu[0] = 1");
    a.cu_seqlens_q = decr;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "cu_seqlens_q decreases at entry 2",
               "decreasing offsets");
    a.cu_seqlens_q = short_;
    expect_bad(f, f->bidir, &a, RFJIT_E_SHAPE, "but the packed tensor has 45 rows",
               "cu[B] != total rows");
    a = packed_args(f);
    a.batch = 0;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "batch = 0", "packed batch 0");
    static const int32_t kl[3] = {1, 1, 1};
    a = packed_args(f);
    a.key_lengths = kl;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "not taken with the packed layout",
               "key_lengths with packed");
    a = packed_args(f);
    a.query_lengths = kl;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "not taken with the packed layout",
               "query_lengths with packed");
    a = padded_args(f);
    a.batch = BB;
    expect_bad(f, f->bidir, &a, RFJIT_E_INVALID_ARG, "only for the packed layout",
               "batch without packed");
    bad_teardown(f);
}

/* Keys inside key_lengths are screened; the padding past them is never read, so a NaN there
 * is no error (and changes nothing: hidden_keys). */
Test(serving, nonfinite_keys_and_padding)
{
    bad_fixture *f = bad_setup();
    static const int32_t kl[BB] = {20, BL};
    rfjit_attn_args a = padded_args(f);
    a.key_lengths = kl;
    const size_t inside = (size_t)(1 * BL + 5) * D + 3;   /* (0, 1, 5, 3) */
    const size_t padding = (size_t)(1 * BL + 30) * D + 3; /* (0, 1, 30, 3), past 20 */
    f->k[inside] = NAN;
    expect_bad(f, f->bidir, &a, RFJIT_E_NONFINITE, "tensor k: non-finite value at (0, 1, 5, 3)",
               "NaN in a key inside key_lengths");
    f->k[inside] = 0.25f;
    f->k[padding] = NAN;
    f->v[(size_t)(1 * BL + 30) * DV] = INFINITY;
    fill_dt(f->out, sizeof f->out / sizeof(float), RFJIT_F32, SENTINEL);
    cr_expect_eq(rfjit_plan_execute_args(f->bidir, &a), RFJIT_OK,
                 "NaN and Inf in padding past key_lengths: %s", rfjit_ctx_last_error(f->ctx));
    for (size_t i = 0; i < sizeof f->out / sizeof(float); i++)
        cr_assert(isfinite(f->out[i]) && f->out[i] != SENTINEL, "out[%zu] = %g", i, f->out[i]);
    bad_teardown(f);
}
