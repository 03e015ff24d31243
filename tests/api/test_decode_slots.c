/* SPDX-License-Identifier: MIT */
/*
 * This file checks the slot API of incremental decoding (rfjit_decode_prefill, _step_ex,
 * _reset_slots, _snapshot, _restore) against the plan's causal attention over each slot's
 * tokens:
 * - every estimator with a causal plan, float32 with grouped heads (H = 4, Hkv = 2), float16
 *   with plain heads and bfloat16 with one key/value head: prefills of different lengths, steps
 * over index lists, a second prefill continuing a slot, more steps;
 * - random interleavings of prefill, step, reset, snapshot and restore over 4 slots (the seed
 *   is printed on failure);
 * - a snapshot restored into another slot and into another state (of a plan made from the
 *   same descriptor) continues bit for bit as the original.
 *
 * References. Fixed-parameter estimators (fitted ones calibrated, as causal plans need):
 * rows of the plan's causal execute over the slot's concatenated tokens. eva's chunk size is
 * ceil(Lk / C), so a row depends on how many keys the call sees: its reference for each call is the
 * execute of that call's queries against the slot's keys so far (bottom-right), which is what a
 * decoder that does not know the final length can promise (the header's "rows over a slot's tokens
 * so far"). Fitted estimators with parameters per slot: the float32 case creates the causal
 * plan without a calibration sample, so each slot fits per query head on its first prompt, as an
 * execute of that prompt fits per (batch, head), so the reference of head h of slot b is a plan
 * calibrated on exactly that prompt's queries of h and keys of its key/value head, executed over
 * all tokens.
 *
 * Tolerance: the JIT tolerance of jit/test_decode.c, max |decode - reference| <= 1e-4 max
 * |reference|: both sides run the same kernel on the same values (half inputs are the same
 * half values), and only the chunking of the causal scan differs (a prefill continues a
 * state at another tile boundary, a step is a one-token chunk), which reorders float sums.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "decode_testutil.h"
#include "rfjit.h"
#include "runtime/ctx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = 16, DV = 8, M = 32 };
#define TOL 1e-4

static int fitted(const char *est)
{
    return !strcmp(est, "oprf") || !strcmp(est, "saderf") || !strcmp(est, "sderf") ||
           !strcmp(est, "aderf");
}

static rfjit_attn_desc desc_of(const char *est, int dt)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.causal = 1;
    a.seed = 5;
    a.hybrid_signs = 3;
    a.eva_window = 4;
    a.eva_chunks = 4;
    a.dtype = dt;
    return a;
}

static rfjit_plan *make_plan(rfjit_ctx *c, const rfjit_attn_desc *a)
{
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, a, &p), RFJIT_OK, "%s: %s", a->estimator,
                 rfjit_ctx_last_error(c));
    return p;
}

static rfjit_decode *make_state(const rfjit_plan *p, int64_t slots, int64_t H, int64_t Hkv)
{
    rfjit_decode_desc d = RFJIT_DECODE_DESC_INIT;
    d.slots = slots;
    d.heads = H;
    d.kv_heads = Hkv;
    rfjit_decode *s = NULL;
    cr_assert_eq(rfjit_decode_create_ex(p, &d, &s), RFJIT_OK);
    return s;
}

/* The plan of estimator est; a fitted one calibrated on sequence 0's first plen queries and
 * keys of head 0, or with per_slot left uncalibrated, so that each slot fits on its prompt
 * (see the top of the file). */
static rfjit_plan *plan_for(rfjit_ctx *c, const char *est, int dt, const dt_seqs *s, int64_t plen,
                            int per_slot)
{
    rfjit_attn_desc a = desc_of(est, dt);
    rfjit_tensor cq = {s->fq, {1, 1, plen, D}, {0, 0, D, 1}};
    rfjit_tensor ck = {s->fk, {1, 1, plen, D}, {0, 0, D, 1}};
    if (fitted(est) && !per_slot) {
        a.calib_q = &cq;
        a.calib_k = &ck;
    }
    rfjit_plan *p = make_plan(c, &a);
    cr_assert_eq(p->frozen, !(fitted(est) && per_slot), "%s: fits per slot iff uncalibrated", est);
    return p;
}

/* One prefill (step = 0) or step of n entries: entry i takes tokens t0[i] .. + len[i] - 1
 * of sequence seq[i] of seqs into slot slot[i]; outputs into out (n, H, L, dv) if given. */
static rfjit_status run_call2(rfjit_decode *st, const dt_seqs *s, const int64_t *seq,
                              const int64_t *slot, const int64_t *t0, const int32_t *len, int64_t n,
                              int step, float *out)
{
    int64_t L = 1;
    for (int64_t i = 0; i < n; i++)
        L = len[i] > L ? len[i] : L;
    dt_call c;
    dtu_call_make(&c, s, seq, t0, len, n, L);
    rfjit_tensor_ex to = dtu_out(out, n, s->H, L, s->dv);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &c.tq;
    a.k = &c.tk;
    a.v = &c.tv;
    a.out = out ? &to : NULL;
    a.index = slot;
    a.lengths = len;
    const rfjit_status r = step ? rfjit_decode_step_ex(st, &a) : rfjit_decode_prefill(st, &a);
    dtu_call_free(&c);
    return r;
}

/* run_call2 with sequence i of seqs going to slot i. */
static rfjit_status run_call(rfjit_decode *st, const dt_seqs *s, const int64_t *slot,
                             const int64_t *t0, const int32_t *len, int64_t n, int step, float *out)
{
    return run_call2(st, s, slot, slot, t0, len, n, step, out);
}

/* ---------------------------------------------------------------------------------------- */
/* Prefill + steps against the causal plan, every estimator                                 */

typedef struct ecase {
    int dt;
    int64_t H, Hkv;
} ecase;

enum { B = 2, P0 = 37, P1 = 21, S1 = 10, P2 = 7, S2 = 14, LT = P0 + S1 + P2 + S2 };

/* The reference of every slot (b, head h, row t): (B, H, LT, dv). */
static float *references(rfjit_ctx *ctx, const rfjit_plan *p, const char *est, int dt,
                         const dt_seqs *s, const int64_t *calls, int ncalls)

{
    const int64_t H = s->H, G = s->H / s->Hkv, total[B] = {LT, P1 + S1 + P2 + S2};
    const int64_t plen[B] = {P0, P1};
    float *ref = calloc((size_t)(B * H * LT * DV), sizeof(float));
    float *tmp = malloc((size_t)(H * LT * DV) * sizeof(float));
    if (!strcmp(est, "eva")) { /* per call: (b, t0, len) */
        for (int i = 0; i < ncalls; i++) {
            const int64_t b = calls[3 * i], t0 = calls[3 * i + 1], len = calls[3 * i + 2];
            cr_assert_eq(dtu_reference(p, s, b, t0, len, tmp), RFJIT_OK);
            for (int64_t h = 0; h < H; h++)
                memcpy(ref + ((b * H + h) * LT + t0) * DV, tmp + h * len * DV,
                       (size_t)(len * DV) * sizeof(float));
        }
    } else
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++) {
                const rfjit_plan *rp = p;
                rfjit_plan *cal = NULL;
                if (!p->frozen) {
                    rfjit_tensor cq = {s->fq + (b * H + h) * s->L * D,
                                       {1, 1, plen[b], D},
                                       {0, 0, D, 1}};
                    rfjit_tensor ck = {s->fk + (b * s->Hkv + h / G) * s->L * D,
                                       {1, 1, plen[b], D},
                                       {0, 0, D, 1}};
                    rfjit_attn_desc a = desc_of(est, dt);
                    a.calib_q = &cq;
                    a.calib_k = &ck;
                    rp = cal = make_plan(ctx, &a);
                }
                if (h == 0 || cal)
                    cr_assert_eq(dtu_reference(rp, s, b, 0, total[b], tmp), RFJIT_OK, "%s",
                                 rfjit_ctx_last_error(ctx));
                memcpy(ref + (b * H + h) * LT * DV, tmp + h * total[b] * DV,
                       (size_t)(total[b] * DV) * sizeof(float));
                rfjit_plan_destroy(cal);
            }
    free(tmp);
    return ref;
}

/* Record a call's rows (b, t0, len) and copy its outputs into dec (B, H, LT, dv). */
static void keep(float *dec, const float *out, int64_t H, const int64_t *slot, const int64_t *t0,
                 const int32_t *len, int64_t n, int64_t L, int64_t *calls, int *ncalls)
{
    for (int64_t i = 0; i < n; i++) {
        for (int64_t h = 0; h < H; h++)
            memcpy(dec + ((slot[i] * H + h) * LT + t0[i]) * DV, out + ((i * H + h) * L) * DV,
                   (size_t)(len[i] * DV) * sizeof(float));
        calls[3 * *ncalls] = slot[i];
        calls[3 * *ncalls + 1] = t0[i];
        calls[3 * *ncalls + 2] = len[i];
        ++*ncalls;
    }
}

static void check_estimator(rfjit_ctx *ctx, const char *est, const ecase *ec)
{
    dt_seqs s;
    dtu_seqs_init(&s, B, ec->H, ec->Hkv, LT, D, DV, ec->dt, 0.6, 11);
    rfjit_plan *p = plan_for(ctx, est, ec->dt, &s, P0, ec->dt == RFJIT_F32);
    rfjit_decode *st = make_state(p, B, ec->H, ec->Hkv);
    const int64_t H = ec->H;
    float *dec = calloc((size_t)(B * H * LT * DV), sizeof(float));
    float *out = calloc((size_t)(B * H * P0 * DV), sizeof(float));
    int64_t calls[3 * 128];
    int ncalls = 0;
    int64_t pos[B] = {0, 0};
    const int64_t both[B] = {0, 1}, rev[B] = {1, 0};
    /* prompts of different lengths in one call */
    const int32_t plen[B] = {P0, P1};
    cr_assert_eq(run_call(st, &s, both, pos, plen, B, 0, out), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    keep(dec, out, H, both, pos, plen, B, P0, calls, &ncalls);
    pos[0] = P0, pos[1] = P1;
    for (int part = 0; part < 2; part++) {
        for (int t = 0; t < (part ? S2 : S1); t++) {
            const int64_t *ix = t % 2 ? rev : both;
            const int64_t t0[B] = {pos[ix[0]], pos[ix[1]]};
            const int32_t one[B] = {1, 1};
            cr_assert_eq(run_call(st, &s, ix, t0, one, B, 1, out), RFJIT_OK, "%s: %s", est,
                         rfjit_ctx_last_error(ctx));
            keep(dec, out, H, ix, t0, one, B, 1, calls, &ncalls);
            pos[0]++, pos[1]++;
        }
        if (part == 0) { /* a second prompt continues both slots */
            const int32_t len[B] = {P2, P2};
            cr_assert_eq(run_call(st, &s, rev, (int64_t[]){pos[1], pos[0]}, len, B, 0, out),
                         RFJIT_OK, "%s: %s", est, rfjit_ctx_last_error(ctx));
            keep(dec, out, H, rev, (int64_t[]){pos[1], pos[0]}, len, B, P2, calls, &ncalls);
            pos[0] += P2, pos[1] += P2;
        }
    }
    for (int64_t b = 0; b < B; b++)
        cr_assert_eq(rfjit_decode_slot_position(st, b), pos[b]);
    float *ref = references(ctx, p, est, ec->dt, &s, calls, ncalls);
    double err = 0, mx = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < pos[b]; t++)
                for (int j = 0; j < DV; j++) {
                    const size_t i = (size_t)(((b * H + h) * LT + t) * DV + j);
                    err = fmax(err, fabs(dec[i] - ref[i]));
                    mx = fmax(mx, fabs(ref[i]));
                }
    cr_expect(err <= TOL * mx,
              "%s dtype %d H %lld Hkv %lld: max |decode - causal| = %.3g (max %.3g)", est, ec->dt,
              (long long)ec->H, (long long)ec->Hkv, err, mx);
    free(ref);
    free(dec);
    free(out);
    rfjit_decode_destroy(st);
    dtu_seqs_free(&s);
    rfjit_plan_destroy(p);
}

Test(decode_slots, prefill_and_steps_match_causal, .timeout = 600)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    const ecase cases[3] = {{RFJIT_F32, 4, 2}, {RFJIT_F16, 2, 2}, {RFJIT_BF16, 4, 1}};
    for (int e = 0; rfjit_estimator_name(e); e++)
        for (int c = 0; c < 3 && strcmp(rfjit_estimator_name(e), "blocksparse"); c++)
            check_estimator(ctx, rfjit_estimator_name(e), &cases[c]); /* blocksparse: none */
    rfjit_ctx_destroy(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* Random interleavings                                                                     */

enum { NS = 4, CAP = 160, BANK = 3, OPS = 70, POOL = 1200 };

typedef struct model {
    rfjit_decode *st;
    const rfjit_plan *p;
    dt_seqs src;   /* fresh tokens, drawn in order */
    int64_t next;  /* next fresh token */
    dt_seqs slots; /* each slot's tokens so far (sequence = slot) */
    int64_t pos[NS];
    dt_seqs bank; /* snapshots' tokens (sequence = bank entry) */
    int64_t bank_pos[BANK];
    void *bank_snap[BANK];
    size_t bank_size[BANK];
    unsigned long long rng;
    unsigned seed;
} model;

static unsigned next_rand(model *m, unsigned n)
{
    m->rng = m->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(m->rng >> 33) % n;
}

/* A random non-empty subset of slots in random order; returns its size. */
static int64_t pick(model *m, int64_t *ix)
{
    int64_t perm[NS] = {0, 1, 2, 3}, n = 0;
    for (int i = NS - 1; i > 0; i--) {
        const unsigned j = next_rand(m, (unsigned)i + 1);
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < NS; i++)
        if (next_rand(m, 2))
            ix[n++] = perm[i];
    if (n == 0)
        ix[n++] = perm[0];
    return n;
}

static void op_tokens(model *m, int step)
{
    int64_t ix[NS], t0[NS];
    int32_t len[NS];
    const int64_t n = pick(m, ix);
    int64_t L = 1;
    for (int64_t i = 0; i < n; i++) {
        len[i] = step ? (next_rand(m, 8) ? 1 : 0) : (int32_t)next_rand(m, 10);
        if (m->pos[ix[i]] + len[i] > CAP || m->next + len[i] > POOL)
            len[i] = 0;
        t0[i] = m->pos[ix[i]];
        for (int32_t r = 0; r < len[i]; r++)
            dtu_copy_token(&m->slots, ix[i], t0[i] + r, &m->src, 0, m->next++);
        L = len[i] > L ? len[i] : L;
    }
    const int with_out = step || next_rand(m, 3);
    float *out = calloc((size_t)(n * m->slots.H * L * DV), sizeof(float));
    cr_assert_eq(run_call(m->st, &m->slots, ix, t0, len, n, step, with_out ? out : NULL), RFJIT_OK,
                 "seed %u: %s", m->seed, rfjit_ctx_last_error(NULL));
    const int64_t H = m->slots.H;
    float *ref = malloc((size_t)(H * L * DV) * sizeof(float));
    for (int64_t i = 0; with_out && i < n; i++) {
        if (len[i] == 0)
            continue;
        cr_assert_eq(dtu_reference(m->p, &m->slots, ix[i], t0[i], len[i], ref), RFJIT_OK);
        double err = 0, mx = 0;
        for (int64_t h = 0; h < H; h++)
            for (int64_t r = 0; r < len[i]; r++)
                for (int j = 0; j < DV; j++) {
                    const float x = out[((i * H + h) * L + r) * DV + j];
                    const float y = ref[(h * len[i] + r) * DV + j];
                    err = fmax(err, fabs(x - y));
                    mx = fmax(mx, fabs(y));
                }
        cr_assert(err <= TOL * mx,
                  "seed %u: slot %lld rows %lld..+%d: max |decode - causal| = "
                  "%.3g (max %.3g)",
                  m->seed, (long long)ix[i], (long long)t0[i], len[i], err, mx);
    }
    for (int64_t i = 0; i < n; i++)
        m->pos[ix[i]] += len[i];
    free(ref);
    free(out);
}

static void op_reset(model *m)
{
    int64_t ix[NS];
    const int64_t n = pick(m, ix);
    cr_assert_eq(rfjit_decode_reset_slots(m->st, ix, n), RFJIT_OK);
    for (int64_t i = 0; i < n; i++)
        m->pos[ix[i]] = 0;
}

static void op_snapshot(model *m)
{
    const int64_t slot = next_rand(m, NS);
    const unsigned e = next_rand(m, BANK);
    size_t size = 0;
    cr_assert_eq(rfjit_decode_snapshot(m->st, slot, NULL, 0, &size), RFJIT_OK);
    free(m->bank_snap[e]);
    m->bank_snap[e] = malloc(size);
    m->bank_size[e] = size;
    cr_assert_eq(rfjit_decode_snapshot(m->st, slot, m->bank_snap[e], size, &size), RFJIT_OK);
    for (int64_t t = 0; t < m->pos[slot]; t++)
        dtu_copy_token(&m->bank, e, t, &m->slots, slot, t);
    m->bank_pos[e] = m->pos[slot];
}

static void op_restore(model *m)
{
    const unsigned e = next_rand(m, BANK);
    if (!m->bank_snap[e])
        return;
    const int64_t slot = next_rand(m, NS);
    cr_assert_eq(rfjit_decode_restore(m->st, slot, m->bank_snap[e], m->bank_size[e]), RFJIT_OK,
                 "seed %u: %s", m->seed, rfjit_ctx_last_error(NULL));
    for (int64_t t = 0; t < m->bank_pos[e]; t++)
        dtu_copy_token(&m->slots, slot, t, &m->bank, e, t);
    m->pos[slot] = m->bank_pos[e];
}

static void interleave(rfjit_ctx *ctx, const char *est, int backend, unsigned seed)
{
    rfjit_attn_desc a = desc_of(est, RFJIT_F32);
    a.backend = backend;
    model m = {0};
    m.p = make_plan(ctx, &a);
    m.st = make_state(m.p, NS, 4, 2);
    m.seed = seed;
    m.rng = seed;
    dtu_seqs_init(&m.src, 1, 4, 2, POOL, D, DV, RFJIT_F32, 0.6, seed);
    dtu_seqs_init(&m.slots, NS, 4, 2, CAP, D, DV, RFJIT_F32, 0.0, 1);
    dtu_seqs_init(&m.bank, BANK, 4, 2, CAP, D, DV, RFJIT_F32, 0.0, 1);
    for (int op = 0; op < OPS; op++) {
        const unsigned k = next_rand(&m, 10);
        if (k < 3)
            op_tokens(&m, 0);
        else if (k < 7)
            op_tokens(&m, 1);
        else if (k == 7)
            op_reset(&m);
        else if (k == 8)
            op_snapshot(&m);
        else
            op_restore(&m);
        for (int64_t s = 0; s < NS; s++)
            cr_assert_eq(rfjit_decode_slot_position(m.st, s), m.pos[s], "seed %u op %d slot %lld",
                         seed, op, (long long)s);
    }
    for (int e = 0; e < BANK; e++)
        free(m.bank_snap[e]);
    dtu_seqs_free(&m.src);
    dtu_seqs_free(&m.slots);
    dtu_seqs_free(&m.bank);
    rfjit_decode_destroy(m.st);
    rfjit_plan_destroy((rfjit_plan *)m.p);
}

Test(decode_slots, random_interleavings, .timeout = 600)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    /* constant states, signed features, a history on the JIT, a history on the reference */
    const char *ests[4] = {"positive", "trig", "exact", "positive"};
    const int backend[4] = {RFJIT_BACKEND_AUTO, RFJIT_BACKEND_AUTO, RFJIT_BACKEND_AUTO,
                            RFJIT_BACKEND_REFERENCE};
    for (int e = 0; e < 4; e++)
        for (unsigned seed = 1; seed <= 3; seed++)
            interleave(ctx, ests[e], backend[e], 1000 * (unsigned)e + seed);
    rfjit_ctx_destroy(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* Restored states continue bit for bit                                                     */

static void restore_continues(rfjit_ctx *ctx, const char *est)
{
    enum { H = 4, HKV = 2, PL = 29, STEPS = 12 };
    dt_seqs s;
    dtu_seqs_init(&s, 1, H, HKV, PL + STEPS, D, DV, RFJIT_F32, 0.6, 21);
    /* two plans from one descriptor: the same projection and parameters */
    rfjit_plan *p = plan_for(ctx, est, RFJIT_F32, &s, PL, 1);
    rfjit_plan *p2 = plan_for(ctx, est, RFJIT_F32, &s, PL, 1);
    rfjit_decode *s1 = make_state(p, 3, H, HKV), *s2 = make_state(p2, 3, H, HKV);
    const int64_t zero = 0, z[3] = {0, 0, 0};
    const int32_t pl = PL;
    cr_assert_eq(run_call(s1, &s, &zero, &zero, &pl, 1, 0, NULL), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    size_t size = 0;
    cr_assert_eq(rfjit_decode_snapshot(s1, 0, NULL, 0, &size), RFJIT_OK);
    void *snap = malloc(size);
    cr_assert_eq(rfjit_decode_snapshot(s1, 0, snap, size, &size), RFJIT_OK);
    cr_assert_eq(rfjit_decode_restore(s1, 2, snap, size), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_decode_restore(s2, 1, snap, size), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_decode_slot_position(s1, 2), PL);
    cr_assert_eq(rfjit_decode_slot_position(s2, 1), PL);
    /* one step of s2 on a slot of its own first: the two states then run their steps at
     * opposite parities, which take the state groups in opposite orders */
    cr_assert_eq(rfjit_decode_restore(s2, 0, snap, size), RFJIT_OK);
    {
        float o[H * DV];
        const int64_t t0 = PL, ix = 0;
        const int32_t one = 1;
        cr_assert_eq(run_call2(s2, &s, &zero, &ix, &t0, &one, 1, 1, o), RFJIT_OK);
    }
    for (int t = 0; t < STEPS; t++) {
        float o1[2 * H * DV], o2[H * DV];
        const int64_t t0[3] = {PL + t, PL + t, PL + t}, ix1[2] = {2, 0}, ix2 = 1;
        const int32_t one[2] = {1, 1};
        /* every entry reads the same token: sequence 0 of s */
        cr_assert_eq(run_call2(s1, &s, z, ix1, t0, one, 2, 1, o1), RFJIT_OK);
        cr_assert_eq(run_call2(s2, &s, z, &ix2, t0, one, 1, 1, o2), RFJIT_OK);
        cr_assert(!memcmp(o1, o1 + H * DV, sizeof o2), "%s step %d: restored slot differs", est, t);
        cr_assert(!memcmp(o1, o2, sizeof o2), "%s step %d: restored state differs", est, t);
    }
    free(snap);
    dtu_seqs_free(&s);
    rfjit_decode_destroy(s1);
    rfjit_decode_destroy(s2);
    rfjit_plan_destroy(p);
    rfjit_plan_destroy(p2);
}

Test(decode_slots, restored_state_continues_bit_for_bit, .timeout = 300)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    const char *ests[4] = {"positive", "oprf", "exact", "hybrid"};
    for (int e = 0; e < 4; e++)
        restore_continues(ctx, ests[e]);
    rfjit_ctx_destroy(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* Views whose elements are not contiguous                                                  */

/* A float32 copy of contiguous t with every element two apart (stride[3] = 2). */
static rfjit_tensor_ex spread(const rfjit_tensor_ex *t, float **buf)
{
    const int64_t n = t->shape[0] * t->shape[1] * t->shape[2] * t->shape[3];
    *buf = calloc((size_t)(2 * n), sizeof(float));
    for (int64_t i = 0; i < n; i++)
        (*buf)[2 * i] = ((const float *)t->data)[i];
    rfjit_tensor_ex s = *t;
    s.data = *buf;
    for (int i = 0; i < 4; i++)
        s.stride[i] = 2 * t->stride[i];
    return s;
}

/* One call on st1 with contiguous views and on st2 with spread ones: the same bits. */
static void strided_call(rfjit_decode *st1, rfjit_decode *st2, const dt_seqs *s, const int64_t *ix,
                         const int64_t *t0, const int32_t *len, int64_t n, int step,
                         const char *est)
{
    int64_t L = 1;
    for (int64_t i = 0; i < n; i++)
        L = len[i] > L ? len[i] : L;
    dt_call c;
    dtu_call_make(&c, s, ix, t0, len, n, L);
    const size_t no = (size_t)(n * s->H * L * DV);
    float *o1 = calloc(no, sizeof(float)), *o2 = NULL, *bq, *bk, *bv;
    rfjit_tensor_ex to1 = dtu_out(o1, n, s->H, L, DV), to2 = spread(&to1, &o2);
    rfjit_tensor_ex sq = spread(&c.tq, &bq), sk = spread(&c.tk, &bk), sv = spread(&c.tv, &bv);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &c.tq, a.k = &c.tk, a.v = &c.tv, a.out = &to1, a.index = ix, a.lengths = len;
    cr_assert_eq(step ? rfjit_decode_step_ex(st1, &a) : rfjit_decode_prefill(st1, &a), RFJIT_OK);
    a.q = &sq, a.k = &sk, a.v = &sv, a.out = &to2;
    cr_assert_eq(step ? rfjit_decode_step_ex(st2, &a) : rfjit_decode_prefill(st2, &a), RFJIT_OK,
                 "%s", rfjit_ctx_last_error(NULL));
    for (size_t i = 0; i < no; i++)
        cr_assert(!memcmp(&o1[i], &o2[2 * i], sizeof(float)) && o2[2 * i + 1] == 0.0f,
                  "%s %s: element %zu: %g vs %g", est, step ? "step" : "prefill", i, o1[i],
                  o2[2 * i]);
    free(o1), free(o2), free(bq), free(bk), free(bv);
    dtu_call_free(&c);
}

Test(decode_slots, strided_views_match_contiguous, .timeout = 120)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    const char *ests[2] = {"positive", "exact"};
    for (int e = 0; e < 2; e++) {
        rfjit_attn_desc a = desc_of(ests[e], RFJIT_F32);
        rfjit_plan *p = make_plan(ctx, &a);
        rfjit_decode *st1 = make_state(p, 2, 4, 2), *st2 = make_state(p, 2, 4, 2);
        dt_seqs s;
        dtu_seqs_init(&s, 2, 4, 2, 20, D, DV, RFJIT_F32, 0.6, 31);
        const int64_t both[2] = {0, 1}, rev[2] = {1, 0}, z[2] = {0, 0};
        const int32_t plen[2] = {9, 5};
        strided_call(st1, st2, &s, both, z, plen, 2, 0, ests[e]);
        int64_t pos[2] = {9, 5};
        for (int t = 0; t < 4; t++) {
            /* slot 0 sits out every other step (length 0) */
            const int32_t len[2] = {1, t % 2};
            const int64_t t0[2] = {pos[1], pos[0]};
            strided_call(st1, st2, &s, rev, t0, len, 2, 1, ests[e]);
            pos[1] += 1, pos[0] += t % 2;
        }
        cr_assert_eq(rfjit_decode_slot_position(st2, 0), pos[0]);
        cr_assert_eq(rfjit_decode_slot_position(st2, 1), pos[1]);
        dtu_seqs_free(&s);
        rfjit_decode_destroy(st1);
        rfjit_decode_destroy(st2);
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
}
