/* SPDX-License-Identifier: MIT */
/*
 * This file implements tuner/tiling.h.
 *
 * Space: vector widths {ISA lanes, half of them (>= 4)} x token tiles T in {1, 2, 4, 8}
 * vectors (<= 256) x register tiles ri in {1, 2, 4, 8}, rj in {1..4} vectors, keeping the
 * register tiles that fit the register file (ri rj accumulators + rj streamed vectors + one
 * broadcast <= 32 registers with AVX-512, 16 otherwise) and the token tiles whose working set
 * ((d + 3 M + dv) T floats: rows, features, |features|, values) fits half the L2.
 *
 * Model (BLIS-style, a ranking only): the register tile's loads per FMA (ri + rj) / (ri rj),
 * plus the projection traffic per token (W is re-read once per token tile: P d / T floats
 * per token against M (d + dv) flops), plus, for causal linear kernels, the masked
 * intra-chunk work T (M + dv) per token against the same M (d + dv), plus a penalty when the
 * tile spills out of L1 and a small one for a narrower vector than the ISA's.
 *
 * Search: MEASURE times the best 12 by the model with successive halving (1, then 3, then 5
 * timed samples; each round keeps the faster half); PATIENT the best 24; EXHAUSTIVE every
 * candidate with 5 samples. A sample is a warm execute repeated until it lasts >= 2 ms, on
 * this thread pinned to its CPU; times within 3% count as equal and the better-ranked
 * candidate wins, so repeated searches agree.
 */
#define _GNU_SOURCE
#include "tuner/tiling.h"

#include "core/philox.h"
#include "runtime/tensor.h"
#include "tuner/tune.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static int cmp_score(const void *a, const void *b)
{
    const rj_tune_tiling_cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    /* a fixed order for ties: wider vectors, then smaller tiles */
    if (x->t.vw != y->t.vw)
        return y->t.vw - x->t.vw;
    if (x->t.T != y->t.T)
        return x->t.T - y->t.T;
    if (x->t.ri != y->t.ri)
        return y->t.ri - x->t.ri;
    return y->t.rj - x->t.rj;
}

rfjit_status rj_tune_tiling_space(const rfjit_ctx *ctx, const rfjit_attn_desc *desc,
                                  rj_tune_tiling_cand **out, size_t *n, rj_diag *dg)
{
    *out = NULL;
    *n = 0;
    rj_spec s;
    RJ_TRY(rj_plan_check(desc, &s, dg)); /* the plan's own spec, as rj_tune_tiling checked it */
    s.amx = ctx->isa.amx;                /* as the plan's backend choice sets it */
    const rj_est_ops *est = s.est;
    const double d = s.d, dv = s.dv;
    const double M = est->tmpl == RJ_TMPL_LINEAR ? (double)est->feature_dim(&s) : 0;
    const double P = est->tmpl == RJ_TMPL_LINEAR ? (double)s.m : 0;
    const int maxvw = ctx->isa.max_vw;
    const int regs = maxvw >= 16 ? 32 : 16;
    const double l1 = ctx->topo.l1d > 0 ? (double)ctx->topo.l1d : 32768;
    const double l2 = ctx->topo.l2 > 0 ? (double)ctx->topo.l2 : 262144;
    rj_tune_tiling_cand *c = rj_alloc_array(2 * 4 * 4 * 4, sizeof *c);
    RJ_FAIL_IF(dg, !c, RFJIT_E_NOMEM, "no memory for tiling candidates");
    size_t k = 0;
    for (int vw = maxvw; vw >= 4 && vw >= maxvw / 2; vw /= 2)
        for (int tv = 1; tv <= 8; tv *= 2) {
            const int T = tv * vw;
            if (T > 256)
                continue;
            const double ws = (d + 3 * M + dv) * T * 4;
            if (ws > l2 / 2 && tv > 1)
                continue;
            for (int ri = 1; ri <= 8; ri *= 2)
                for (int rj = 1; rj <= 4; rj++) {
                    if (ri * rj + rj + 1 > regs || rj * vw > T)
                        continue;
                    const double work = M > 0 ? M * (d + dv) : d + dv;
                    double score = (double)(ri + rj) / (ri * rj);
                    score += P * d / T / work;
                    /* causal linear: the masked intra-chunk form costs T (M + dv) per token */
                    if (desc->causal && M > 0)
                        score += T * (M + dv) / work;
                    score += ws > l1 ? 0.25 : 0;
                    score += vw < maxvw ? 0.3 : 0;
                    /* a tiling the plan's kernel refuses is no candidate: bf16 linear
                     * attention runs on AMX's 16 lanes only */
                    const rfjit_tiling t = {vw, T, ri, rj};
                    rj_kplan kp;
                    rj_diag why = {{0}};
                    if (rj_kplan_make(&s, &t, maxvw, ctx->isa.fma, &kp, &why) != RFJIT_OK)
                        continue;
                    c[k++] = (rj_tune_tiling_cand){t, score, NAN, 0};
                }
        }
    qsort(c, k, sizeof *c, cmp_score);
    for (size_t i = 0; i < k; i++)
        c[i].rank = (int)i;
    *out = c;
    *n = k;
    return RFJIT_OK;
}

/* Pins this thread to the CPU it runs on for the timing, and undoes it. */
typedef struct pin {
    cpu_set_t old;
    int pinned;
} pin;

static void pin_here(pin *p)
{
    p->pinned = 0;
    const int cpu = sched_getcpu();
    if (cpu < 0 || pthread_getaffinity_np(pthread_self(), sizeof p->old, &p->old) != 0)
        return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    p->pinned = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
}

static void unpin(pin *p)
{
    if (p->pinned)
        pthread_setaffinity_np(pthread_self(), sizeof p->old, &p->old);
}

typedef struct bench {
    rfjit_ctx *ctx;
    const rfjit_attn_desc *desc;
    int64_t L;
    float *q, *k, *v, *o;
} bench;

/* Median over `samples` samples of one execute, in ms. */
static rfjit_status time_one(bench *b, rj_tune_tiling_cand *c, int samples, rj_diag *dg)
{
    rfjit_attn_desc a = *b->desc;
    a.tiling = c->t;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    rfjit_status s = rj_plan_create(b->ctx, &a, &p, dg);
    if (s != RFJIT_OK)
        return s;
    const int dv = a.dv ? a.dv : a.d;
    rfjit_tensor tq = rj_tensor_contiguous(b->q, 1, 1, b->L, a.d);
    rfjit_tensor tk = rj_tensor_contiguous(b->k, 1, 1, b->L, a.d);
    rfjit_tensor tv = rj_tensor_contiguous(b->v, 1, 1, b->L, dv);
    rfjit_tensor to = rj_tensor_contiguous(b->o, 1, 1, b->L, dv);
    double t0 = rj_now_s();
    s = rj_plan_execute(p, &tq, &tk, &tv, &to, dg); /* warm: pages, caches */
    const double once = rj_now_s() - t0;
    const int reps = once >= 2e-3 ? 1 : (int)ceil(2e-3 / fmax(once, 1e-6));
    double t[5];
    for (int i = 0; i < samples && s == RFJIT_OK; i++) {
        t0 = rj_now_s();
        for (int r = 0; r < reps && s == RFJIT_OK; r++)
            s = rj_plan_execute(p, &tq, &tk, &tv, &to, dg);
        t[i] = 1e3 * (rj_now_s() - t0) / reps;
    }
    rj_plan_free(p);
    c->ms = rj_median(t, (size_t)samples); /* samples is odd: 1, 3 or 5 */
    return s;
}

/* Faster first (untimed last), ties by rank: a total order, as qsort needs. */
static int cmp_time(const void *a, const void *b)
{
    const rj_tune_tiling_cand *x = a, *y = b;
    const double tx = isfinite(x->ms) ? x->ms : INFINITY, ty = isfinite(y->ms) ? y->ms : INFINITY;
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return x->rank - y->rank;
}

/* Sort by time, then put first the best-ranked candidate within 3% of the fastest: noise
 * of that size must not flip the answer between two runs. */
static void order(rj_tune_tiling_cand *c, size_t n)
{
    qsort(c, n, sizeof *c, cmp_time);
    if (n < 2 || !isfinite(c[0].ms))
        return;
    size_t pick = 0;
    for (size_t i = 1; i < n && isfinite(c[i].ms) && c[i].ms <= 1.03 * c[0].ms; i++)
        if (c[i].rank < c[pick].rank)
            pick = i;
    const rj_tune_tiling_cand w = c[pick];
    memmove(c + 1, c, pick * sizeof *c);
    c[0] = w;
}

rfjit_status rj_tune_tiling_search(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L,
                                   int patience, rj_tune_tiling_cand *cands, size_t n,
                                   size_t *timed, rj_diag *dg)
{
    *timed = 0;
    if (patience == RFJIT_PATIENCE_ESTIMATE || n == 0)
        return RFJIT_OK;
    const int d = desc->d, dv = desc->dv ? desc->dv : desc->d;
    RJ_FAIL_IF(dg, !rj_fits_memory((size_t)L * (size_t)(2 * d + 2 * dv) * sizeof(float)),
               RFJIT_E_TOO_LARGE,
               "the timing problem (L = %lld, d = %d, dv = %d) does not fit this machine's memory",
               (long long)L, d, dv);
    bench b = {ctx, desc, L, NULL, NULL, NULL, NULL};
    b.q = rj_alloc_array((size_t)L * (size_t)d, sizeof(float));
    b.k = rj_alloc_array((size_t)L * (size_t)d, sizeof(float));
    b.v = rj_alloc_array((size_t)L * (size_t)dv, sizeof(float));
    b.o = rj_alloc_array((size_t)L * (size_t)dv, sizeof(float));
    rfjit_status s = b.q && b.k && b.v && b.o
                         ? RFJIT_OK
                         : rj_fail(dg, RFJIT_E_NOMEM, "no memory for the timing problem");
    if (s == RFJIT_OK) {
        rj_fill_normal(b.q, (size_t)L * d, 1.0, desc->seed, RJ_STREAM_TUNE_TILING + RJ_PART_Q);
        rj_fill_normal(b.k, (size_t)L * d, 1.0, desc->seed, RJ_STREAM_TUNE_TILING + RJ_PART_K);
        rj_fill_normal(b.v, (size_t)L * dv, 1.0, desc->seed, RJ_STREAM_TUNE_TILING + RJ_PART_V);
    }
    pin p;
    pin_here(&p);
    size_t live = patience == RFJIT_PATIENCE_EXHAUSTIVE ? n
                  : patience == RFJIT_PATIENCE_PATIENT  ? (n < 24 ? n : 24)
                                                        : (n < 12 ? n : 12);
    *timed = live;
    if (patience == RFJIT_PATIENCE_EXHAUSTIVE) {
        for (size_t i = 0; i < live && s == RFJIT_OK; i++)
            s = time_one(&b, &cands[i], 5, dg);
        order(cands, live);
    } else {
        static const int samples[3] = {1, 3, 5};
        for (int round = 0; s == RFJIT_OK; round++) {
            for (size_t i = 0; i < live && s == RFJIT_OK; i++)
                s = time_one(&b, &cands[i], samples[round < 2 ? round : 2], dg);
            order(cands, live);
            if (live == 1 || round >= 2)
                break;
            live = (live + 1) / 2;
            if (round == 1)
                live = 1 + (live > 1); /* the last round re-times the best two */
        }
    }
    unpin(&p);
    /* the winner stays first: an early round's single sample of a loser is no evidence
     * against it; the rest are listed by time */
    if (s == RFJIT_OK && n > 1)
        qsort(cands + 1, n - 1, sizeof *cands, cmp_time);
    rj_free(b.q);
    rj_free(b.k);
    rj_free(b.v);
    rj_free(b.o);
    return s;
}

rfjit_status rj_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L, int patience,
                            rfjit_tiling *best, double *best_ms, rfjit_tiling_time *times,
                            size_t *n_times, rj_diag *dg)
{
    if (!desc || !best || !best_ms)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_tune_tiling: %s is NULL",
                       !desc ? "desc" : !best ? "best" : "best_ms");
    if (L < 1 || L > (1 << 24))
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "L = %lld is outside [1, 2^24]", (long long)L);
    if (patience < RFJIT_PATIENCE_ESTIMATE || patience > RFJIT_PATIENCE_EXHAUSTIVE)
        return rj_fail(dg, RFJIT_E_INVALID_ARG,
                       "patience %d is not ESTIMATE, MEASURE, PATIENT or EXHAUSTIVE "
                       "(wisdom is consulted by rfjit_tune)", patience);
    if (times && !n_times)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_tune_tiling: times without n_times");
    /* the plan must exist before any search: this checks the descriptor once, with the
     * same messages as rfjit_plan_create */
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT; /* a caller's older, shorter version: defaults */
    RJ_TRY(rj_desc_read(&a, sizeof a, desc, desc->size, dg));
    a.tiling = (rfjit_tiling){0, 0, 0, 0};
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    RJ_TRY(rj_plan_create(ctx, &a, &p, dg));
    rj_plan_free(p);
    rj_tune_tiling_cand *c = NULL;
    size_t n = 0, timed = 0;
    rfjit_status s = rj_tune_tiling_space(ctx, &a, &c, &n, dg);
    if (s == RFJIT_OK && n == 0)
        s = rj_fail(dg, RFJIT_E_NOT_APPLICABLE, "no tiling fits this kernel");
    if (s == RFJIT_OK)
        s = rj_tune_tiling_search(ctx, &a, L, patience, c, n, &timed, dg);
    if (s == RFJIT_OK) {
        *best = c[0].t;
        *best_ms = c[0].ms;
        if (times) {
            const size_t cap = *n_times;
            for (size_t i = 0; i < cap && i < n; i++)
                times[i] = (rfjit_tiling_time){c[i].t, c[i].ms};
            *n_times = n;
        }
    }
    rj_free(c);
    return s;
}
