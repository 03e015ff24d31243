/* SPDX-License-Identifier: MIT */
/*
 * This file checks the decode slots of the Performer compat modes (runtime/decode_compat.c)
 * against the double reference of the same descriptor (est/ref_compat.c): a prefill of P
 * tokens gives the rows of a causal execute of those P tokens (the key shift over the whole
 * prompt), and step t the last row of a causal execute of tokens 0 .. t (the shift over
 * 0 .. t). Keys' norms rise and then fall, so the shift grows in the middle of the steps.
 * Both modes, three slots of which two run (through index) and one is reset and prefilled
 * again, H = 4 query heads on 1, 2 and 4 key/value heads; and a snapshot restored into another slot
 * continues bit for bit as the original.
 *
 * Tolerance 1e-5 of max|reference| per call, the bound of the float path (its executor test,
 * test_compat_fast.c, says why it holds): a slot's state is a float sum of at most 88 keys.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "decode_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 8, M = 32, H = 4, HKV = 2, P = 24, STEPS = 64, L = P + STEPS, SLOTS = 3 };

static rfjit_ctx *ctx;

static void setup(void)
{
    ctx = tu_ctx_isolated();
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(compat_decode, .init = setup, .fini = teardown);

static rfjit_plan *plan_of(const char *mode, int backend)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.compat = mode;
    a.causal = 1;
    a.seed = 21;
    a.backend = backend;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    return p;
}

static rfjit_decode *state_of(const rfjit_plan *p, int64_t hkv)
{
    rfjit_decode_desc dd = RFJIT_DECODE_DESC_INIT;
    dd.slots = SLOTS;
    dd.heads = H;
    dd.kv_heads = hkv;
    rfjit_decode *st = NULL;
    cr_assert_eq(rfjit_decode_create_ex(p, &dd, &st), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    return st;
}

/* B sequences whose key rows (after the d^{-1/4} scaling) have norms 0.5 at first, 3 near
 * token P + 24 and 1 again at the end, so the largest projection moves mid-way. */
static void seqs_make(dt_seqs *s, int64_t B, int64_t hkv, uint64_t seed)
{
    dtu_seqs_init(s, B, H, hkv, L, D, DV, RFJIT_F32, 1.0, seed);
    for (int64_t r = 0; r < B * hkv * L; r++) {
        const int64_t t = r % L;
        const double x = (double)(t - (P + 24)) / 20.0, norm = 0.5 + 2.5 * exp(-x * x);
        double n2 = 0;
        for (int a = 0; a < D; a++)
            n2 += (double)s->fk[r * D + a] * s->fk[r * D + a];
        for (int a = 0; a < D; a++) {
            s->fk[r * D + a] = (float)(s->fk[r * D + a] * norm * pow(D, 0.25) / sqrt(n2));
            dtu_store(s->k, r * D + a, RFJIT_F32, s->fk[r * D + a]);
        }
    }
}

/* max |a - b| <= 1e-5 max |b| over n floats. */
static void expect_close(const float *a, const float *b, size_t n, const char *what, int64_t t)
{
    double top = 0, err = 0;
    for (size_t i = 0; i < n; i++) {
        top = fmax(top, fabs(b[i]));
        err = fmax(err, fabs((double)a[i] - b[i]));
    }
    cr_assert(top > 0 && err <= 1e-5 * top, "%s at token %lld: max error %g, max|ref| %g", what,
              (long long)t, err, top);
}

/* Entries seq[i] -> slot[i] (n of them) take tokens t0 .. t0 + len - 1; out (n, H, len, DV). */
static void call(rfjit_decode *st, const dt_seqs *s, const int64_t *seq, const int64_t *slot,
                 int64_t n, int64_t t0, int32_t len, float *out)
{
    int64_t t0s[SLOTS];
    int32_t lens[SLOTS];
    for (int64_t i = 0; i < n; i++) {
        t0s[i] = t0;
        lens[i] = len;
    }
    dt_call c;
    dtu_call_make(&c, s, seq, t0s, lens, n, len);
    rfjit_tensor_ex to = dtu_out(out, n, H, len, DV);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &c.tq;
    a.k = &c.tk;
    a.v = &c.tv;
    a.out = &to;
    a.index = slot;
    const rfjit_status r = len == 1 ? rfjit_decode_step_ex(st, &a) : rfjit_decode_prefill(st, &a);
    cr_assert_eq(r, RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    dtu_call_free(&c);
}

/* Entry i's rows of out against the reference of sequence seq[i], rows t0 .. t0 + len - 1. */
static void check_rows(const rfjit_plan *ref, const dt_seqs *s, const int64_t *seq, int64_t n,
                       int64_t t0, int64_t len, const float *out, const char *what)
{
    float *want = malloc((size_t)(H * len * DV) * sizeof *want);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(dtu_reference(ref, s, seq[i], t0, len, want), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(ctx));
        expect_close(out + i * H * len * DV, want, (size_t)(H * len * DV), what, t0);
    }
    free(want);
}

static void run_mode(const char *mode, int64_t hkv)
{
    rfjit_plan *fast = plan_of(mode, RFJIT_BACKEND_AUTO),
               *ref = plan_of(mode, RFJIT_BACKEND_REFERENCE);
    dt_seqs s;
    seqs_make(&s, 3, hkv, 77);
    rfjit_decode *st = state_of(fast, hkv);
    const int64_t seq[2] = {0, 1}, slot[2] = {2, 0};
    float *out = malloc((size_t)(2 * H * P * DV) * sizeof *out);
    call(st, &s, seq, slot, 2, 0, P, out);
    check_rows(ref, &s, seq, 2, 0, P, out, mode);
    for (int64_t t = P; t < L; t++) {
        if (t == P + 16) { /* slot 0 starts again with sequence 2: reset, prefill to t */
            const int64_t s2 = 2, sl0 = 0;
            cr_assert_eq(rfjit_decode_reset_slots(st, &sl0, 1), RFJIT_OK);
            float *o2 = malloc((size_t)(H * t * DV) * sizeof *o2);
            call(st, &s, &s2, &sl0, 1, 0, (int32_t)t, o2);
            check_rows(ref, &s, &s2, 1, 0, t, o2, mode);
            free(o2);
        }
        const int64_t now[2] = {0, t < P + 16 ? 1 : 2};
        call(st, &s, now, slot, 2, t, 1, out);
        check_rows(ref, &s, now, 2, t, 1, out, mode);
    }
    cr_assert_eq(rfjit_decode_slot_position(st, 1), 0);
    cr_assert_eq(rfjit_decode_slot_position(st, 2), L);
    free(out);
    rfjit_decode_destroy(st);
    dtu_seqs_free(&s);
    rfjit_plan_destroy(fast);
    rfjit_plan_destroy(ref);
}

Test(compat_decode, prefill_and_steps_match_causal_executes_with_a_rising_shift)
{
    for (int64_t hkv = 1; hkv <= H; hkv *= 2) { /* H / Hkv = 4, 2 and 1 query heads a state */
        run_mode("performer-pytorch", hkv);
        run_mode("google-performer", hkv);
    }
}

/* Sequence 0 prefilled to P + 8 in slot 0 and snapshot; the rest of it stepped in slot 0, and
 * again in slot 1 after the snapshot is restored there: the same bits. */
Test(compat_decode, a_restored_snapshot_continues_bit_for_bit)
{
    rfjit_plan *fast = plan_of("performer-pytorch", RFJIT_BACKEND_AUTO);
    dt_seqs s;
    seqs_make(&s, 1, HKV, 78);
    rfjit_decode *st = state_of(fast, HKV);
    const int64_t seq = 0, s0 = 0, s1 = 1;
    const int64_t t0 = P + 8;
    float *pre = malloc((size_t)(H * t0 * DV) * sizeof *pre);
    call(st, &s, &seq, &s0, 1, 0, (int32_t)t0, pre);
    size_t size = 0;
    cr_assert_eq(rfjit_decode_snapshot(st, 0, NULL, 0, &size), RFJIT_OK);
    unsigned char *snap = malloc(size);
    cr_assert_eq(rfjit_decode_snapshot(st, 0, snap, size, &size), RFJIT_OK);
    float a[H * DV], b[H * DV];
    float *first = malloc((size_t)((L - t0) * H * DV) * sizeof *first);
    for (int64_t t = t0; t < L; t++) {
        call(st, &s, &seq, &s0, 1, t, 1, a);
        memcpy(first + (t - t0) * H * DV, a, sizeof a);
    }
    cr_assert_eq(rfjit_decode_restore(st, 1, snap, size), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_decode_slot_position(st, 1), t0);
    size_t size1 = 0;
    unsigned char *snap1 = malloc(size);
    cr_assert_eq(rfjit_decode_snapshot(st, 1, snap1, size, &size1), RFJIT_OK);
    cr_assert(size1 == size && !memcmp(snap, snap1, size), "a restored slot's bytes differ");
    for (int64_t t = t0; t < L; t++) {
        call(st, &s, &seq, &s1, 1, t, 1, b);
        cr_assert(!memcmp(first + (t - t0) * H * DV, b, sizeof b),
                  "token %lld: the restored slot's row differs", (long long)t);
    }
    /* a Google plan reads the same state with other epsilons: refused */
    rfjit_plan *google = plan_of("google-performer", RFJIT_BACKEND_AUTO);
    rfjit_decode *gst = state_of(google, HKV);
    cr_assert_eq(rfjit_decode_restore(gst, 0, snap, size), RFJIT_E_STATE);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "projection differs"), "%s",
              rfjit_ctx_last_error(ctx));
    rfjit_decode_destroy(gst);
    rfjit_plan_destroy(google);
    free(snap);
    free(snap1);
    free(first);
    free(pre);
    rfjit_decode_destroy(st);
    dtu_seqs_free(&s);
    rfjit_plan_destroy(fast);
}
