/* SPDX-License-Identifier: MIT */
/*
 * This file checks the float32 path of the Performer compat modes (runtime/exec_compat.c)
 * against the double reference of the same plan (est/ref_compat.c, which python/tests/
 * test_compat.py checks against the real packages): both modes, causal and bidirectional, row
 * norms 0.5 .. 3 (where the feature epsilons matter), masks, key and query lengths with a
 * causal offset, grouped-query heads, and half inputs, which widen exactly.
 *
 * Tolerance: float32 features and sums of at most L = 48 positive terms, each with a relative
 * rounding of a few float ulps (the polynomial exp is within 2 ulp, the projection of d = 16
 * products within d ulp of |u|, |u| <= 3 |w| <= 30): the output is a ratio of such sums, so
 * its error is far below 1e-5 of max|out|, the bound the path promises.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "data_testutil.h"
#include "decode_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    ctx = tu_ctx_isolated();
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(compat_fast, .init = setup, .fini = teardown);

enum { D = 16, DV = 8, M = 32, B = 2, H = 4, L = 48 };

static rfjit_plan *plan_of(const char *mode, int causal, int backend)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.compat = mode;
    a.causal = causal;
    a.seed = 11;
    a.backend = backend;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    return p;
}

/* Every row of q and k (B, heads, L, D) rescaled to a norm in 0.5 .. 3 after the plan's
 * d^{-1/4} scaling, cycling so that every slice has small and large rows. */
static void set_norms(float *x, int64_t rows)
{
    static const double norms[] = {0.5, 1.0, 1.7, 2.4, 3.0};
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int a = 0; a < D; a++)
            s += (double)x[i * D + a] * x[i * D + a];
        const double want = norms[i % 5] * pow(D, 0.25);
        for (int a = 0; a < D; a++)
            x[i * D + a] = (float)(x[i * D + a] * want / sqrt(s));
    }
}

static rfjit_tensor_ex view(void *data, int dt, int64_t b, int64_t h, int64_t l, int64_t dim)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = data;
    t.dtype = dt;
    const int64_t shape[4] = {b, h, l, dim}, stride[4] = {h * l * dim, l * dim, dim, 1};
    memcpy(t.shape, shape, sizeof shape);
    memcpy(t.stride, stride, sizeof stride);
    return t;
}

typedef struct call_opts {
    int hkv;             /* key/value heads */
    int lq;              /* queries per sequence (<= L: a causal offset L - lq) */
    const uint8_t *mask; /* B x L, or NULL */
    const int32_t *klen; /* key lengths, or NULL */
    const int32_t *qlen; /* query lengths, or NULL */
} call_opts;

static void run(const rfjit_plan *p, const dt_seqs *s, const call_opts *o, float *out)
{
    const int64_t dq = (int64_t)(s->dt == RFJIT_F32 ? 4 : 2);
    /* the last lq query rows of each sequence */
    char *q = (char *)s->q;
    rfjit_tensor_ex tq = view(q + (L - o->lq) * D * dq, s->dt, B, H, o->lq, D);
    tq.stride[0] = H * L * D;
    tq.stride[1] = L * D;
    rfjit_tensor_ex tk = view(s->k, s->dt, B, o->hkv, L, D);
    rfjit_tensor_ex tv = view(s->v, s->dt, B, o->hkv, L, DV);
    rfjit_tensor_ex to = view(out, RFJIT_F32, B, H, o->lq, DV);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &tq;
    a.k = &tk;
    a.v = &tv;
    a.out = &to;
    a.key_mask = o->mask;
    a.key_lengths = o->klen;
    a.query_lengths = o->qlen;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
}

static void check(const char *mode, int causal, int dt, const call_opts *o, uint64_t seed)
{
    dt_seqs h;
    dtu_seqs_init(&h, B, H, o->hkv, L, D, DV, dt, 1.0, seed);
    set_norms(h.fq, B * H * L);
    set_norms(h.fk, B * o->hkv * L);
    for (int64_t i = 0; i < B * H * L * D; i++)
        dtu_store(h.q, i, dt, h.fq[i]);
    for (int64_t i = 0; i < B * o->hkv * L * D; i++)
        dtu_store(h.k, i, dt, h.fk[i]);
    /* both plans read the same dt values; the float copies are not used past here */
    rfjit_plan *fast = plan_of(mode, causal, RFJIT_BACKEND_AUTO);
    rfjit_plan *ref = plan_of(mode, causal, RFJIT_BACKEND_REFERENCE);
    char desc[512];
    cr_assert_eq(rfjit_plan_describe(fast, desc, sizeof desc), RFJIT_OK);
    cr_assert(strstr(desc, "path=compat-f32"), "%s", desc);
    const size_t n = (size_t)B * H * o->lq * DV;
    float *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
    run(fast, &h, o, a);
    run(ref, &h, o, b);
    double top = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        top = fmax(top, fabs(b[i]));
        err = fmax(err, fabs((double)a[i] - b[i]));
    }
    cr_assert(top > 0, "%s: the reference is all zeros", mode);
    cr_assert(err <= 1e-5 * top, "%s causal %d dtype %d seed %llu: max error %g, max|out| %g", mode,
              causal, dt, (unsigned long long)seed, err, top);
    free(a);
    free(b);
    rfjit_plan_destroy(fast);
    rfjit_plan_destroy(ref);
    dtu_seqs_free(&h);
}

static const char *const MODES[] = {"performer-pytorch", "google-performer"};

Test(compat_fast, matches_the_reference_plain_and_grouped)
{
    for (int mi = 0; mi < 2; mi++)
        for (int causal = 0; causal < 2; causal++)
            for (int hkv = 1; hkv <= H; hkv *= 2) {
                const call_opts o = {.hkv = hkv, .lq = L};
                check(MODES[mi], causal, RFJIT_F32, &o, 100 + (uint64_t)hkv);
            }
}

Test(compat_fast, matches_the_reference_with_masks_lengths_and_offsets)
{
    uint8_t mask[B * L];
    for (int i = 0; i < B * L; i++)
        mask[i] = (uint8_t)(i % 7 != 3 && i % 11 != 0); /* sequence 0's first query sees none */
    const int32_t klen[B] = {L, 29}, qlen[B] = {17, 9};
    for (int mi = 0; mi < 2; mi++)
        for (int causal = 0; causal < 2; causal++) {
            const call_opts masked = {.hkv = 2, .lq = L, .mask = mask};
            check(MODES[mi], causal, RFJIT_F32, &masked, 200);
            const call_opts lens = {.hkv = 2, .lq = 20, .klen = klen, .qlen = qlen, .mask = mask};
            check(MODES[mi], causal, RFJIT_F32, &lens, 201);
            const call_opts offset = {.hkv = 4, .lq = 13};
            check(MODES[mi], causal, RFJIT_F32, &offset, 202);
        }
}

Test(compat_fast, half_inputs_match_the_reference)
{
    for (int mi = 0; mi < 2; mi++)
        for (int causal = 0; causal < 2; causal++)
            for (int dt = RFJIT_F16; dt <= RFJIT_BF16; dt++) {
                const call_opts o = {.hkv = 2, .lq = L};
                check(MODES[mi], causal, dt, &o, 300 + (uint64_t)dt);
            }
}

Test(compat_fast, the_other_modes_and_explicit_backends_keep_their_paths)
{
    char desc[512];
    rfjit_plan *p = plan_of("performer-pytorch", 1, RFJIT_BACKEND_REFERENCE);
    cr_assert_eq(rfjit_plan_describe(p, desc, sizeof desc), RFJIT_OK);
    cr_assert(!strstr(desc, "compat-f32"), "%s", desc);
    rfjit_plan_destroy(p);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.estimator = "trig";
    a.compat = "google-performer";
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_plan_describe(p, desc, sizeof desc), RFJIT_OK);
    cr_assert(strstr(desc, "backend=reference (compat mode 'google-performer' has no JIT kernel"),
              "%s", desc);
    cr_assert(!strstr(desc, "compat-f32"), "%s", desc);
    rfjit_plan_destroy(p);
}
