/* SPDX-License-Identifier: MIT */
/*
 * This file checks the key mask (kabi.h km) inside the JIT kernels, called the way the
 * executor calls them: one (batch, head) through the plan's kernel with an rj_kargs filled
 * here. For positive, trig, hyperbolic, hybrid (signed features) and exact, bidirectional
 * and causal:
 *   - a masked call equals a call on the visible keys alone (bidirectional), or, causal, the
 *     double reference (exact) or a bidirectional call on the visible keys a query may see
 *     (linear); both sides are within the estimator's ref_tol * max|out| of one double
 *     reference (tests/jit/test_jit_equiv.c), so they are within twice that of each other;
 *   - masked keys leave no trace: scaled by 100 and permuted among the masked positions,
 *     the output keeps every bit;
 *   - a query that sees no key (all masked, lk = 0, or a causal prefix of masked keys) gets
 *     exact zeros, and every other query a finite row;
 *   - a mask of ones gives the bits of no mask.
 */
#include <criterion/criterion.h>

#include "core/kabi.h"
#include "data_testutil.h"
#include "est/est.h"
#include "rfjit.h"
#include "runtime/ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { D = 32, DV = 32, M = 64, LQ = 70, LK = 150 };

static const char *const ests[] = {"positive", "trig", "hyperbolic", "hybrid", "exact"};
#define N_EST ((int)(sizeof ests / sizeof ests[0]))

typedef struct kcall {
    rfjit_ctx *ctx;
    rfjit_plan *p;
    float *ws, *st;
    double tol; /* the estimator's ref_tol */
} kcall;

static float *floats(int64_t n)
{
    size_t bytes = ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) / 64 * 64;
    float *x = aligned_alloc(64, bytes);
    cr_assert_not_null(x);
    return x;
}

static kcall kc_make(const char *est, int causal)
{
    kcall c = {0};
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cr_assert_eq(rfjit_ctx_create(&cd, &c.ctx), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.causal = causal;
    a.seed = 7;
    a.backend = RFJIT_BACKEND_JIT;
    cr_assert_eq(rfjit_plan_create(c.ctx, &a, &c.p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(c.ctx));
    cr_assert(c.p->fn && c.p->frozen, "%s: a frozen JIT plan", est);
    c.ws = floats(c.p->kp.ws_floats);
    c.st = floats(c.p->kp.st_floats);
    c.tol = rj_est_find(est)->ref_tol;
    return c;
}

static void kc_free(kcall *c)
{
    free(c->ws);
    free(c->st);
    rfjit_plan_destroy(c->p);
    rfjit_ctx_destroy(c->ctx);
}

/* out (lq x DV, contiguous) = the kernel on q (lq x D), k (lk x D), v (lk x DV). The output
 * is poisoned first, so a row the kernel leaves unwritten cannot pass for zeros. */
static void kc_run(kcall *c, const float *q, int64_t lq, const float *k, const float *v, int64_t lk,
                   const uint8_t *km, int64_t qoff, float *out)
{
    const rj_kplan *kp = &c->p->kp;
    for (int64_t i = 0; i < lq * DV; i++)
        out[i] = NAN;
    rj_kargs a = {0};
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.pq = c->p->kpar;
    a.pk = c->p->kpar ? c->p->kpar + kp->role_floats : NULL;
    a.ws = c->ws;
    a.st = c->st;
    a.lq = lq;
    a.lk = lk;
    a.sq = D;
    a.sk = D;
    a.sv = DV;
    a.so = DV;
    a.flags = RJ_KFLAG_INIT;
    a.qoff = qoff;
    a.km = km;
    c->p->fn(&a);
}

typedef struct data {
    float *q, *k, *v;
} data;

static data data_make(uint64_t seed)
{
    data x = {floats(LQ * D), floats(LK * D), floats(LK * DV)};
    tu_fill_normal(x.q, LQ * D, 0.5, seed);
    tu_fill_normal(x.k, LK * D, 0.5, seed + 1);
    tu_fill_normal(x.v, LK * DV, 1.0, seed + 2);
    return x;
}

static void data_free(data *x)
{
    free(x->q);
    free(x->k);
    free(x->v);
}

/* A mask with keys lo .. hi - 1 hidden and about 40% of the others hidden at random, so
 * that a whole tile, a ragged run and single keys are all masked. */
static void mask_make(uint8_t *km, int64_t lk, int64_t lo, int64_t hi, uint64_t seed)
{
    uint64_t s = seed;
    for (int64_t j = 0; j < lk; j++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        km[j] = (j >= lo && j < hi) ? 0 : (s >> 33) % 10 >= 4;
    }
}

/* The visible keys among the first n, in order, into kc, vc; returns their count. */
static int64_t compact(const data *x, const uint8_t *km, int64_t n, float *kc, float *vc)
{
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++) {
        if (!km[j])
            continue;
        memcpy(kc + c * D, x->k + j * D, D * sizeof(float));
        memcpy(vc + c * DV, x->v + j * DV, DV * sizeof(float));
        c++;
    }
    return c;
}

static double max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void assert_finite_rows(const char *what, const float *out, int64_t r0, int64_t r1)
{
    for (int64_t i = r0 * DV; i < r1 * DV; i++)
        cr_assert(isfinite(out[i]), "%s: out[%ld] = %g", what, (long)i, out[i]);
}

static void assert_zero_rows(const char *what, const float *out, int64_t r0, int64_t r1)
{
    for (int64_t i = r0 * DV; i < r1 * DV; i++)
        cr_assert(out[i] == 0.0f, "%s: row %ld sees no key, out = %g", what, (long)(i / DV),
                  out[i]);
}

/* Softmax attention in double: query i sees key j iff km[j] (NULL: all) and, causal,
 * j <= i + qoff; zeros when it sees none. */
static void exact_ref(const data *x, int64_t lq, int64_t lk, const uint8_t *km, int causal,
                      int64_t qoff, double *out)
{
    double *s = malloc((size_t)lk * sizeof(double));
    for (int64_t i = 0; i < lq; i++) {
        double mx = -INFINITY, den = 0;
        for (int64_t j = 0; j < lk; j++) {
            int vis = (!km || km[j]) && (!causal || j <= i + qoff);
            double dot = 0;
            for (int c = 0; c < D; c++)
                dot += (double)x->q[i * D + c] * x->k[j * D + c];
            s[j] = vis ? dot / sqrt((double)D) : -INFINITY;
            mx = fmax(mx, s[j]);
        }
        for (int c = 0; c < DV; c++)
            out[i * DV + c] = 0;
        if (mx == -INFINITY)
            continue;
        for (int64_t j = 0; j < lk; j++) {
            if (s[j] == -INFINITY)
                continue;
            double w = exp(s[j] - mx);
            den += w;
            for (int c = 0; c < DV; c++)
                out[i * DV + c] += w * x->v[j * DV + c];
        }
        for (int c = 0; c < DV; c++)
            out[i * DV + c] /= den;
    }
    free(s);
}

Test(jit_mask, bidirectional_equals_visible_keys)
{
    uint8_t km[LK], ones[LK];
    memset(ones, 1, sizeof ones);
    float *kc = floats(LK * D), *vc = floats(LK * DV);
    float *om = floats(LQ * DV), *oc = floats(LQ * DV), *o1 = floats(LQ * DV);
    for (int e = 0; e < N_EST; e++) {
        kcall c = kc_make(ests[e], 0);
        data x = data_make(100 + (uint64_t)e);
        mask_make(km, LK, 64, 128, 5 + (uint64_t)e);
        const int64_t n = compact(&x, km, LK, kc, vc);
        kc_run(&c, x.q, LQ, x.k, x.v, LK, km, 0, om);
        kc_run(&c, x.q, LQ, kc, vc, n, NULL, 0, oc);
        assert_finite_rows(ests[e], om, 0, LQ);
        const double err = max_diff(om, oc, LQ * DV), tol = 2 * c.tol * max_abs(oc, LQ * DV);
        cr_expect(err <= tol, "%s: masked vs visible keys only: %.3g > %.3g", ests[e], err, tol);
        /* a mask of ones is no mask, to the bit */
        kc_run(&c, x.q, LQ, x.k, x.v, LK, ones, 0, om);
        kc_run(&c, x.q, LQ, x.k, x.v, LK, NULL, 0, o1);
        cr_expect(!memcmp(om, o1, LQ * DV * sizeof(float)), "%s: mask of ones", ests[e]);
        data_free(&x);
        kc_free(&c);
    }
    free(kc), free(vc), free(om), free(oc), free(o1);
}

/* Causal linear, query i against a bidirectional call of its own on the visible keys 0..i
 * (the same seed gives both plans the same features). The first 70 keys are masked (a whole
 * tile and a ragged part of the next), so queries 0..69 see nothing. */
Test(jit_mask, causal_linear_equals_visible_prefix)
{
    enum { L = LK, HIDE = 70 };
    uint8_t km[L];
    float *kc = floats(L * D), *vc = floats(L * DV), *om = floats(L * DV), *oi = floats(DV);
    for (int e = 0; e < N_EST - 1; e++) {
        kcall c = kc_make(ests[e], 1), b = kc_make(ests[e], 0);
        data x = data_make(200 + (uint64_t)e);
        float *q = floats(L * D);
        tu_fill_normal(q, L * D, 0.5, 300 + (uint64_t)e);
        mask_make(km, L, 0, HIDE, 9 + (uint64_t)e);
        kc_run(&c, q, L, x.k, x.v, L, km, 0, om);
        assert_zero_rows(ests[e], om, 0, HIDE);
        assert_finite_rows(ests[e], om, HIDE, L);
        const double tol = 2 * c.tol * max_abs(om, L * DV);
        for (int64_t i = HIDE; i < L; i += 3) {
            const int64_t n = compact(&x, km, i + 1, kc, vc);
            kc_run(&b, q + i * D, 1, kc, vc, n, NULL, 0, oi);
            const double err = max_diff(om + i * DV, oi, DV);
            cr_expect(err <= tol, "%s: causal row %ld vs its visible prefix: %.3g > %.3g", ests[e],
                      (long)i, err, tol);
        }
        free(q);
        data_free(&x);
        kc_free(&b);
        kc_free(&c);
    }
    free(kc), free(vc), free(om), free(oi);
}

/* Causal exact with the diagonal moved by qoff (bottom-right: lq = lk - qoff), qoff 0, not
 * a multiple of the tile, and past a tile, against the double reference. */
Test(jit_mask, causal_exact_matches_reference)
{
    const int64_t qoffs[] = {0, 13, 80};
    uint8_t km[LK];
    float *om = floats(LK * DV);
    double *ref = malloc(LK * DV * sizeof(double));
    float *reff = floats(LK * DV);
    kcall c = kc_make("exact", 1);
    data x = data_make(400);
    float *q = floats(LK * D);
    tu_fill_normal(q, LK * D, 0.5, 401);
    data xq = x;
    xq.q = q;
    for (int t = 0; t < 3; t++) {
        for (int masked = 0; masked < 2; masked++) {
            const int64_t qoff = qoffs[t], lq = LK - qoff;
            mask_make(km, LK, 0, 70, 11 + (uint64_t)t);
            const uint8_t *m = masked ? km : NULL;
            kc_run(&c, q, lq, x.k, x.v, LK, m, qoff, om);
            exact_ref(&xq, lq, LK, m, 1, qoff, ref);
            for (int64_t i = 0; i < lq * DV; i++)
                reff[i] = (float)ref[i];
            assert_finite_rows("exact causal", om, 0, lq);
            const double err = max_diff(om, reff, lq * DV), tol = c.tol * max_abs(reff, lq * DV);
            cr_expect(err <= tol, "exact causal qoff=%ld mask=%d: %.3g > %.3g", (long)qoff, masked,
                      err, tol);
            if (masked) {
                /* query i sees keys <= i + qoff, all masked while i + qoff < 70 */
                const int64_t empty = 70 - qoff > 0 ? 70 - qoff : 0;
                assert_zero_rows("exact causal", om, 0, empty < lq ? empty : lq);
            }
        }
    }
    free(q);
    data_free(&x);
    kc_free(&c);
    free(om), free(ref), free(reff);
}

/* Masked keys scaled by 100 (keys and values) and permuted among the masked positions: the
 * output keeps every bit, bidirectional and causal. */
Test(jit_mask, masked_keys_leave_no_trace)
{
    uint8_t km[LK];
    float *o0 = floats(LK * DV), *o1 = floats(LK * DV);
    for (int e = 0; e < N_EST; e++) {
        for (int causal = 0; causal < 2; causal++) {
            kcall c = kc_make(ests[e], causal);
            data x = data_make(500 + (uint64_t)e), y = data_make(500 + (uint64_t)e);
            mask_make(km, LK, 64, 100, 13 + (uint64_t)e);
            int64_t hid[LK], nh = 0;
            for (int64_t j = 0; j < LK; j++)
                if (!km[j])
                    hid[nh++] = j;
            cr_assert(nh > 2);
            for (int64_t h = 0; h < nh; h++) {
                const int64_t from = hid[h], to = hid[nh - 1 - h];
                for (int i = 0; i < D; i++)
                    y.k[to * D + i] = 100 * x.k[from * D + i];
                for (int i = 0; i < DV; i++)
                    y.v[to * DV + i] = 100 * x.v[from * DV + i];
            }
            /* linear causal kernels take lq = lk (the executor splits an offset) */
            const int64_t lq = causal && e < N_EST - 1 ? LK : LQ;
            float *q = floats(lq * D);
            tu_fill_normal(q, (size_t)(lq * D), 0.5, 600 + (uint64_t)e);
            const int64_t qoff = causal ? LK - lq : 0;
            kc_run(&c, q, lq, x.k, x.v, LK, km, qoff, o0);
            kc_run(&c, q, lq, y.k, y.v, LK, km, qoff, o1);
            cr_expect(!memcmp(o0, o1, (size_t)(lq * DV) * sizeof(float)),
                      "%s causal=%d: masked keys changed the output", ests[e], causal);
            free(q);
            data_free(&x);
            data_free(&y);
            kc_free(&c);
        }
    }
    free(o0), free(o1);
}

/* No visible key at all, or no key: exact zeros. */
Test(jit_mask, no_visible_key_gives_zeros)
{
    uint8_t none[LK];
    memset(none, 0, sizeof none);
    float *out = floats(LK * DV);
    for (int e = 0; e < N_EST; e++) {
        for (int causal = 0; causal < 2; causal++) {
            kcall c = kc_make(ests[e], causal);
            data x = data_make(700 + (uint64_t)e);
            float *q = floats(LK * D);
            tu_fill_normal(q, LK * D, 0.5, 701 + (uint64_t)e);
            const int64_t lq = causal && e < N_EST - 1 ? LK : LQ;
            kc_run(&c, q, lq, x.k, x.v, LK, none, causal ? LK - lq : 0, out);
            assert_zero_rows(ests[e], out, 0, lq);
            if (!causal) {
                kc_run(&c, q, LQ, x.k, x.v, 0, NULL, 0, out);
                assert_zero_rows(ests[e], out, 0, LQ);
            }
            free(q);
            data_free(&x);
            kc_free(&c);
        }
    }
    free(out);
}
