/* SPDX-License-Identifier: MIT */
/*
 * This file checks that every malformed decode call fails with its status and a message and
 * changes nothing: no slot's position, state or history (compared through every slot's
 * snapshot bytes), and no output element (a sentinel stays bit for bit). Cases: NULLs, a
 * wrong descriptor size, index out of range or repeated, lengths out of range, wrong shapes
 * and dtypes, aliasing, NaN in one entry of several, a step before the first prefill of a
 * slot with per-slot fitted parameters, snapshots of other plans (estimator, m, seed, head
 * counts), truncated or foreign bytes, a too small snapshot buffer, and reset_slots with a
 * bad index.
 */
#include <criterion/criterion.h>

#include "decode_testutil.h"
#include "rfjit.h"
#include "runtime/ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 8, H = 4, HKV = 2, NS = 3, L = 5 };
#define SENTINEL 1000.0f

static rfjit_ctx *ctx;

static rfjit_plan *plan_of(const char *est, int m, uint64_t seed)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = m;
    a.causal = 1;
    a.seed = seed;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    return p;
}

static rfjit_decode *state_of(const rfjit_plan *p, int64_t heads, int64_t kv)
{
    rfjit_decode_desc d = RFJIT_DECODE_DESC_INIT;
    d.slots = NS;
    d.heads = heads;
    d.kv_heads = kv;
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create_ex(p, &d, &s), RFJIT_OK);
    return s;
}

/* Every slot's snapshot, concatenated: what a failed call must leave as it was. */
static unsigned char *fingerprint(const rfjit_decode *s, size_t *n)
{
    size_t total = 0, size = 0;
    for (int64_t i = 0; i < NS; i++) {
        cr_assert_eq(rfjit_decode_snapshot(s, i, NULL, 0, &size), RFJIT_OK);
        total += size;
    }
    unsigned char *b = malloc(total), *w = b;
    for (int64_t i = 0; i < NS; i++) {
        cr_assert_eq(rfjit_decode_snapshot(s, i, w, total - (size_t)(w - b), &size), RFJIT_OK);
        w += size;
    }
    *n = total;
    return b;
}

typedef struct fixture {
    rfjit_plan *p;
    rfjit_decode *s;
    dt_seqs seqs;
    dt_call call; /* NS entries of L tokens */
    float out[NS * H * L * DV];
    rfjit_tensor_ex to;
    rfjit_decode_args a;
    unsigned char *fp;
    size_t nfp;
} fixture;

/* A state with slots 0 and 1 prefilled, and well-formed prefill arguments for all slots. */
static void setup(fixture *f, const char *est)
{
    dtu_seqs_init(&f->seqs, NS, H, HKV, 2 * L, D, DV, RFJIT_F32, 0.6, 3);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = 32;
    a.causal = 1;
    a.seed = 5;
    /* oprf without a calibration sample: each slot fits on its prompt */
    cr_assert_eq(rfjit_plan_create(ctx, &a, &f->p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    f->s = state_of(f->p, H, HKV);
    const int64_t seq[NS] = {0, 1, 2}, t0[NS] = {0, 0, 0};
    const int32_t len[NS] = {L, L, L};
    dtu_call_make(&f->call, &f->seqs, seq, t0, len, NS, L);
    rfjit_decode_args pa = RFJIT_DECODE_ARGS_INIT;
    pa.q = &f->call.tq;
    pa.k = &f->call.tk;
    pa.v = &f->call.tv;
    rfjit_tensor_ex tq = f->call.tq, tk = f->call.tk, tv = f->call.tv;
    tq.shape[0] = tk.shape[0] = tv.shape[0] = 2;
    pa.q = &tq, pa.k = &tk, pa.v = &tv;
    cr_assert_eq(rfjit_decode_prefill(f->s, &pa), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    for (size_t i = 0; i < sizeof f->out / sizeof f->out[0]; i++)
        f->out[i] = SENTINEL;
    f->to = dtu_out(f->out, NS, H, L, DV);
    f->a = (rfjit_decode_args)RFJIT_DECODE_ARGS_INIT;
    f->a.q = &f->call.tq;
    f->a.k = &f->call.tk;
    f->a.v = &f->call.tv;
    f->a.out = &f->to;
    f->fp = fingerprint(f->s, &f->nfp);
}

static void teardown(fixture *f)
{
    free(f->fp);
    dtu_call_free(&f->call);
    dtu_seqs_free(&f->seqs);
    rfjit_decode_destroy(f->s);
    rfjit_plan_destroy(f->p);
}

/* The call failed with `want`, said something, and changed nothing. */
static void unchanged(const fixture *f, rfjit_status got, rfjit_status want, const char *what)
{
    cr_assert_eq(got, want, "%s: status %d, want %d (%s)", what, got, want,
                 rfjit_ctx_last_error(ctx));
    cr_assert(strlen(rfjit_ctx_last_error(ctx)) > 0, "%s: no message", what);
    size_t n = 0;
    unsigned char *fp = fingerprint(f->s, &n);
    cr_assert(n == f->nfp && !memcmp(fp, f->fp, n), "%s: a slot changed", what);
    free(fp);
    for (size_t i = 0; i < sizeof f->out / sizeof f->out[0]; i++)
        cr_assert(f->out[i] == SENTINEL, "%s: out[%zu] written", what, i);
}

static void setup_ctx(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
}

static void teardown_ctx(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(decode_misuse, .init = setup_ctx, .fini = teardown_ctx, .timeout = 300);

static void bad_calls(const char *est)
{
    fixture f;
    setup(&f, est);
    rfjit_decode_args a = f.a;
    cr_assert_eq(rfjit_decode_prefill(NULL, &a), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_decode_step_ex(NULL, &a), RFJIT_E_INVALID_ARG);
    unchanged(&f, rfjit_decode_prefill(f.s, NULL), RFJIT_E_INVALID_ARG, "NULL args");
    a.q = NULL;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "NULL q");
    a = f.a;
    a.out = NULL;
    unchanged(&f, rfjit_decode_step_ex(f.s, &a), RFJIT_E_INVALID_ARG, "step without out");
    a = f.a;
    a.size = 3;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_DESC_SIZE, "args size");

    a = f.a;
    const int64_t out_of_range[NS] = {0, 1, NS}, negative[NS] = {-1, 0, 1},
                  repeated[NS] = {2, 0, 2};
    a.index = out_of_range;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "index >= slots");
    a.index = negative;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "negative index");
    a.index = repeated;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "repeated index");
    a = f.a;
    const int32_t too_long[NS] = {1, L + 1, 2}, neg_len[NS] = {1, -1, 0};
    a.lengths = too_long;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "length > L");
    a.lengths = neg_len;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_INVALID_ARG, "negative length");

    /* shapes */
    rfjit_tensor_ex q = f.call.tq, k = f.call.tk, out = f.to;
    a = f.a;
    q.shape[1] = H - 1;
    a.q = &q;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_SHAPE, "q heads");
    q = f.call.tq;
    q.shape[3] = D - 1;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_SHAPE, "q dim");
    a = f.a;
    k.shape[2] = L - 1;
    a.k = &k;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_SHAPE, "k length");
    a = f.a;
    out.shape[1] = 1;
    a.out = &out;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_SHAPE, "out heads");
    a = f.a;
    unchanged(&f, rfjit_decode_step_ex(f.s, &a), RFJIT_E_SHAPE, "a step of L tokens");
    /* dtypes */
    a = f.a;
    k = f.call.tk;
    k.dtype = RFJIT_F16;
    a.k = &k;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_DTYPE, "k of another dtype");
    k.dtype = 7;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_DTYPE, "unknown dtype");
    /* out over q */
    a = f.a;
    out = f.to;
    out.data = f.call.q;
    out.shape[3] = DV;
    a.out = &out;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_ALIAS, "out overlaps q");
    /* NaN in the last entry: the first two are not taken either */
    float *qv = f.call.q;
    const float keep = qv[(2 * H * L + 1) * D];
    qv[(2 * H * L + 1) * D] = NAN;
    a = f.a;
    unchanged(&f, rfjit_decode_prefill(f.s, &a), RFJIT_E_NONFINITE, "NaN in entry 2");
    qv[(2 * H * L + 1) * D] = keep;
    teardown(&f);
}

Test(decode_misuse, bad_calls_change_nothing)
{
    bad_calls("positive");
    bad_calls("exact");
}

Test(decode_misuse, step_before_prefill_of_a_fitted_slot)
{
    fixture f;
    setup(&f, "oprf");
    /* one token of each of the three slots: slot 2 never had a prompt */
    rfjit_tensor_ex q = f.call.tq, k = f.call.tk, v = f.call.tv, out = f.to;
    q.shape[2] = k.shape[2] = v.shape[2] = out.shape[2] = 1;
    rfjit_decode_args a = f.a;
    a.q = &q, a.k = &k, a.v = &v, a.out = &out;
    unchanged(&f, rfjit_decode_step_ex(f.s, &a), RFJIT_E_STATE, "step before prefill");
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "slot 2"), "%s", rfjit_ctx_last_error(ctx));
    /* with slot 2 left out the step goes through */
    const int64_t two[2] = {1, 0};
    q.shape[0] = k.shape[0] = v.shape[0] = out.shape[0] = 2;
    a.index = two;
    cr_assert_eq(rfjit_decode_step_ex(f.s, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_decode_slot_position(f.s, 0), L + 1);
    cr_assert_eq(rfjit_decode_slot_position(f.s, 2), 0);
    teardown(&f);
}

static void refused(fixture *f, const rfjit_plan *other, int64_t heads, int64_t kv,
                    const char *says)
{
    rfjit_decode *s = state_of(other, heads, kv);
    /* give the other state's slot 0 a few tokens */
    if (heads == H && kv == HKV) {
        rfjit_tensor_ex q = f->call.tq, k = f->call.tk, v = f->call.tv;
        q.shape[0] = k.shape[0] = v.shape[0] = 1;
        rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
        a.q = &q, a.k = &k, a.v = &v;
        cr_assert_eq(rfjit_decode_prefill(s, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    }
    size_t size = 0;
    cr_assert_eq(rfjit_decode_snapshot(s, 0, NULL, 0, &size), RFJIT_OK);
    void *b = malloc(size);
    cr_assert_eq(rfjit_decode_snapshot(s, 0, b, size, &size), RFJIT_OK);
    unchanged(f, rfjit_decode_restore(f->s, 2, b, size), RFJIT_E_STATE, says);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), says), "want '%s' in: %s", says,
              rfjit_ctx_last_error(ctx));
    free(b);
    rfjit_decode_destroy(s);
}

Test(decode_misuse, snapshots_of_other_plans_are_refused)
{
    fixture f;
    setup(&f, "positive");
    rfjit_plan *trig = plan_of("trig", 32, 5), *m64 = plan_of("positive", 64, 5),
               *seed6 = plan_of("positive", 32, 6), *exact = plan_of("exact", 32, 5);
    refused(&f, trig, H, HKV, "estimator 'trig'");
    refused(&f, m64, H, HKV, "m 64");
    refused(&f, seed6, H, HKV, "projection differs");
    refused(&f, exact, H, HKV, "estimator 'exact'");
    refused(&f, f.p, H, H, "heads");
    /* foreign, truncated and too large bytes */
    size_t size = 0;
    cr_assert_eq(rfjit_decode_snapshot(f.s, 0, NULL, 0, &size), RFJIT_OK);
    unsigned char *b = malloc(size + 1);
    cr_assert_eq(rfjit_decode_snapshot(f.s, 0, b, size + 1, &size), RFJIT_OK);
    unchanged(&f, rfjit_decode_restore(f.s, 2, b, size - 4), RFJIT_E_STATE, "truncated");
    unchanged(&f, rfjit_decode_restore(f.s, 2, b, size + 1), RFJIT_E_STATE, "one byte more");
    unchanged(&f, rfjit_decode_restore(f.s, 2, b, 16), RFJIT_E_STATE, "header only");
    b[0] ^= 1;
    unchanged(&f, rfjit_decode_restore(f.s, 2, b, size), RFJIT_E_STATE, "bad magic");
    b[0] ^= 1;
    b[8] = 9;
    unchanged(&f, rfjit_decode_restore(f.s, 2, b, size), RFJIT_E_STATE, "layout version");
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "version"), "%s", rfjit_ctx_last_error(ctx));
    b[8] = 1;
    unchanged(&f, rfjit_decode_restore(f.s, NS, b, size), RFJIT_E_INVALID_ARG, "slot >= slots");
    unchanged(&f, rfjit_decode_restore(f.s, 0, NULL, size), RFJIT_E_INVALID_ARG, "NULL buf");
    /* a buffer too small: nothing written */
    memset(b, 0xab, size + 1);
    size_t got = 0;
    unchanged(&f, rfjit_decode_snapshot(f.s, 0, b, size - 1, &got), RFJIT_E_INVALID_ARG,
              "small buffer");
    cr_assert_eq(got, size);
    for (size_t i = 0; i < size + 1; i++)
        cr_assert_eq(b[i], 0xab);
    unchanged(&f, rfjit_decode_snapshot(f.s, -1, b, size, &got), RFJIT_E_INVALID_ARG,
              "snapshot slot < 0");
    unchanged(&f, rfjit_decode_snapshot(f.s, 0, b, size, NULL), RFJIT_E_INVALID_ARG, "NULL size");
    /* the bytes restore where they belong */
    cr_assert_eq(rfjit_decode_snapshot(f.s, 0, b, size, &got), RFJIT_OK);
    cr_assert_eq(rfjit_decode_restore(f.s, 2, b, size), RFJIT_OK);
    cr_assert_eq(rfjit_decode_slot_position(f.s, 2), L);
    free(b);
    rfjit_plan_destroy(trig);
    rfjit_plan_destroy(m64);
    rfjit_plan_destroy(seed6);
    rfjit_plan_destroy(exact);
    teardown(&f);
}

Test(decode_misuse, reset_and_create_arguments)
{
    fixture f;
    setup(&f, "positive");
    const int64_t bad[2] = {0, NS};
    unchanged(&f, rfjit_decode_reset_slots(f.s, bad, 2), RFJIT_E_INVALID_ARG, "reset index");
    unchanged(&f, rfjit_decode_reset_slots(f.s, bad, -1), RFJIT_E_INVALID_ARG, "reset n < 0");
    cr_assert_eq(rfjit_decode_reset_slots(NULL, NULL, 0), RFJIT_E_INVALID_ARG);
    const int64_t one = 1;
    cr_assert_eq(rfjit_decode_reset_slots(f.s, &one, 1), RFJIT_OK);
    cr_assert_eq(rfjit_decode_slot_position(f.s, 0), L);
    cr_assert_eq(rfjit_decode_slot_position(f.s, 1), 0);
    cr_assert_eq(rfjit_decode_slot_position(f.s, NS), -1);
    cr_assert_eq(rfjit_decode_slot_position(NULL, 0), -1);
    rfjit_decode_desc d = RFJIT_DECODE_DESC_INIT;
    rfjit_decode *s = (rfjit_decode *)&d;
    d.heads = 4;
    d.kv_heads = 3;
    cr_assert_eq(rfjit_decode_create_ex(f.p, &d, &s), RFJIT_E_INVALID_ARG);
    cr_assert_null(s);
    d.kv_heads = 0;
    d.slots = 0;
    cr_assert_eq(rfjit_decode_create_ex(f.p, &d, &s), RFJIT_E_INVALID_ARG);
    cr_assert_eq(rfjit_decode_create_ex(f.p, NULL, &s), RFJIT_E_INVALID_ARG);
    d.slots = 1;
    d.size = 3;
    cr_assert_eq(rfjit_decode_create_ex(f.p, &d, &s), RFJIT_E_DESC_SIZE);
    teardown(&f);
}
