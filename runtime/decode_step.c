/* SPDX-License-Identifier: MIT */
/*
 * This file runs a decode step on the constant states made for one token. A causal kernel
 * call would spend a whole T-token tile (projections, an intra-chunk T x T product, a T-wide
 * update of S) on one token; here
 *   1. the plan's feature-map kernel (kabi.h RJ_KK_FEAT, the attention kernel's own feature
 *      code) maps every key row of the step in one call and every query row in another, on
 *      tiles of one vector (T = vw), so padding costs less than a vector per call;
 *   2. one pass over each (entry, key/value head)'s S rescales it when the shift grows, adds
 *      phi_k v^T and accumulates the first query head's numerator while the row is in
 *      registers; the group's other query heads read S once more each.
 * The state update is the causal kernel's for a chunk of one token: c' = max(c, h_k), S, z,
 * zabs times e^{c - c'} when c grows, phi_k = e^{h_k - c'} f_k with f_k = e^{ell - h_k} as
 * the feature kernel gives it; a query's features are shifted by their own h, which cancels
 * in num / den. The denominator guard and the NaN marking are linear.c's.
 */
#include "runtime/decode_step.h"

#include "core/kabi.h"
#include "runtime/kcache.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define DEN_EPS 1e-6f /* as gen/tmpl/linear.c */

/* On x86-64 the state passes are also built for AVX2 and AVX-512 and picked at load time
 * (as core/stats.c does); not under TSan, whose runtime starts after ifunc resolvers run. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                         \
    !defined(__SANITIZE_THREAD__)
#define STEP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define STEP_CLONES
#endif

/* Eight floats as one value: GCC lowers it to the vectors the clone's target has. */
typedef float v8f __attribute__((vector_size(32)));
#define LD8(v, p) memcpy(&(v), (p), sizeof(v8f))
#define ST8(p, v) memcpy((p), &(v), sizeof(v8f))

struct rj_step_ws {
    const rfjit_plan *plan;
    rj_kplan fk;         /* the feature kernel's plan: the attention plan's, T = vw */
    rj_kernel_fn feat;
    float *kws;          /* its scratch */
    float *buf;          /* a step's rows, features and sums (layout: struct step_bufs) */
    size_t cap;          /* floats in buf */
};

void rj_step_ws_free(rj_step_ws *w)
{
    if (!w)
        return;
    rj_free(w->kws);
    rj_free(w->buf);
    rj_free(w);
}

static int64_t round_up(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

static rfjit_status ws_init(rj_step_ws *w, const rfjit_plan *p, rj_diag *dg)
{
    const rj_kplan *kp = &p->kp;
    rj_spec fs = p->spec;
    fs.causal = 0;
    fs.dv = 1;
    const rfjit_tiling t = {kp->vw, kp->vw, kp->ri, kp->rj};
    RJ_TRY(rj_kplan_make(&fs, &t, kp->vw, kp->fma, &w->fk, dg));
    w->fk.kind = RJ_KK_FEAT;
    w->fk.xscale = 1; /* the rows arrive scaled (load_rows) */
    RJ_FAIL_IF(dg, w->fk.role_floats != kp->role_floats || w->fk.Mp != kp->Mp,
               RFJIT_E_INTERNAL, "the step's feature kernel lays features out unlike the plan");
    RJ_TRY(rj_kcache_get(p->ctx->kc, &w->fk, &w->feat, dg));
    w->kws = rj_alloc_aligned((size_t)w->fk.ws_floats, sizeof(float));
    RJ_FAIL_IF(dg, !w->kws, RFJIT_E_NOMEM, "no memory for a decode step's scratch");
    w->plan = p;
    return RFJIT_OK;
}

/* Regions of buf, in floats, each 16-float aligned. */
typedef struct step_bufs {
    int64_t xk, xq;       /* scaled key and query rows, n Hkv x d and n H x d */
    int64_t fk, fq;       /* their features, Mp x ck and Mp x cq (feature-major) */
    int64_t hk, hq;       /* their log-scales, ck and cq */
    int64_t vr;           /* one value row as floats, dvp */
    int64_t num;          /* a group's numerators, G x dvp */
    int64_t den, g;       /* and denominators, guard sums: G each */
    int64_t ck, cq;       /* feature columns: rows rounded up, plus a tile for per-entry calls */
    int64_t total;
} step_bufs;

static int64_t take(int64_t *top, int64_t n)
{
    const int64_t at = *top;
    *top += round_up(n, 16);
    return at;
}

static step_bufs layout(const rj_kplan *kp, int64_t Tf, const rj_step *s)
{
    step_bufs b = {0};
    const int64_t G = s->H / s->Hkv, d = kp->d, Mp = kp->Mp;
    b.ck = round_up(s->n * s->Hkv, Tf) + Tf;
    b.cq = round_up(s->n * s->H, Tf) + Tf;
    int64_t top = 0;
    b.xk = take(&top, s->n * s->Hkv * d);
    b.xq = take(&top, s->n * s->H * d);
    b.fk = take(&top, Mp * b.ck);
    b.fq = take(&top, Mp * b.cq);
    b.hk = take(&top, b.ck);
    b.hq = take(&top, b.cq);
    b.vr = take(&top, kp->dvp);
    b.num = take(&top, G * kp->dvp);
    b.den = take(&top, G);
    b.g = take(&top, G);
    b.total = top;
    return b;
}

static rfjit_status ws_reserve(rj_step_ws *w, size_t floats, rj_diag *dg)
{
    if (floats <= w->cap)
        return RFJIT_OK;
    float *nb = rj_alloc_aligned(floats, sizeof(float));
    RJ_FAIL_IF(dg, !nb, RFJIT_E_NOMEM, "no memory for a decode step's buffers");
    rj_free(w->buf);
    w->buf = nb;
    w->cap = floats;
    return RFJIT_OK;
}

/* n elements of a row of dtype into floats, times scale (the kernel's packing product). */
static void load_row(int dtype, const char *row, int64_t n, float scale, float *dst)
{
    if (dtype == RFJIT_F32) {
        const float *x = (const float *)(const void *)row;
        for (int64_t c = 0; c < n; c++)
            dst[c] = x[c] * scale;
        return;
    }
    for (int64_t c = 0; c < n; c++)
        dst[c] = rj_dtype_load(row, c, dtype) * scale;
}

/* The rows (entry i, head h) of t, entry-major, into dst (rows of d). */
static void load_rows(const rj_view *t, int64_t n, int64_t heads, int64_t d, float scale,
                      float *dst)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t h = 0; h < heads; h++)
            load_row(t->dtype, rj_view_row(t, i, h, 0), d, scale, dst + (i * heads + h) * d);
}

static const float *entry_par(const rfjit_plan *p, const rj_step *s, int64_t i)
{
    return s->kpar && s->kpar[i] ? s->kpar[i] : p->kpar;
}

static int shared_par(const rfjit_plan *p, const rj_step *s)
{
    for (int64_t i = 1; i < s->n; i++)
        if (entry_par(p, s, i) != entry_par(p, s, 0))
            return 0;
    return 1;
}

/* Features of `rows` rows of x (rows of d) into columns col0.. of F (row stride so) and
 * their log-scales into h + col0. Whole tiles are written: the caller leaves a tile of room. */
static void features(const rj_step_ws *w, const float *x, int64_t rows, const float *par,
                     int keys, float *F, float *h, int64_t so, int64_t col0)
{
    rj_kargs a = {0};
    a.q = x;
    a.sq = w->fk.d;
    a.pq = par;
    a.pk = par + w->fk.role_floats;
    a.ws = w->kws;
    a.out = F + col0;
    a.so = so;
    a.st = h + col0;
    a.lq = rows;
    a.flags = keys ? RJ_KFLAG_KEYS : 0;
    w->feat(&a);
}

/* Every row of the step mapped: one call per role when the entries share parameters. */
static void map_rows(const rfjit_plan *p, const rj_step_ws *w, const rj_step *s, float *buf,
                     const step_bufs *b)
{
    const int64_t d = p->kp.d;
    if (shared_par(p, s)) {
        const float *par = entry_par(p, s, 0);
        features(w, buf + b->xk, s->n * s->Hkv, par, 1, buf + b->fk, buf + b->hk, b->ck, 0);
        features(w, buf + b->xq, s->n * s->H, par, 0, buf + b->fq, buf + b->hq, b->cq, 0);
        return;
    }
    /* ascending entries: a call's padding columns belong to entries not mapped yet */
    for (int64_t i = 0; i < s->n; i++) {
        const float *par = entry_par(p, s, i);
        features(w, buf + b->xk + i * s->Hkv * d, s->Hkv, par, 1, buf + b->fk, buf + b->hk,
                 b->ck, i * s->Hkv);
        features(w, buf + b->xq + i * s->H * d, s->H, par, 0, buf + b->fq, buf + b->hq, b->cq,
                 i * s->H);
    }
}

/* Eight copies of a float variable (a macro: a function returning v8f would change the ABI
 * without AVX). */
#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})

/*
 * Columns e0 .. e0 + 31 of rows r < Mp of S (row stride dvp): S_r = a S_r + p_r v (RESCALE)
 * or S_r + p_r v, p_r = wk fk[r * fs]; num = sum_r q[r * qs] S_r after the update. v and the
 * numerator stay in registers over the rows, so S is read and written once.
 */
#define UPDATE_BLOCK(RESCALE)                                                                      \
    for (int64_t r = 0; r < Mp; r++) {                                                             \
        float *row = S + r * dvp + e0;                                                             \
        const float pr = wk * fk[r * fs], qr = q[r * qs];                                          \
        const v8f pv = SPLAT(pr), qv = SPLAT(qr);                                                  \
        v8f x0, x1, x2, x3;                                                                        \
        LD8(x0, row);                                                                              \
        LD8(x1, row + 8);                                                                          \
        LD8(x2, row + 16);                                                                         \
        LD8(x3, row + 24);                                                                         \
        x0 = RESCALE(x0) + pv * v0;                                                                \
        x1 = RESCALE(x1) + pv * v1;                                                                \
        x2 = RESCALE(x2) + pv * v2;                                                                \
        x3 = RESCALE(x3) + pv * v3;                                                                \
        ST8(row, x0);                                                                              \
        ST8(row + 8, x1);                                                                          \
        ST8(row + 16, x2);                                                                         \
        ST8(row + 24, x3);                                                                         \
        n0 += qv * x0;                                                                             \
        n1 += qv * x1;                                                                             \
        n2 += qv * x2;                                                                             \
        n3 += qv * x3;                                                                             \
    }
#define SCALED(x) ((x) * av)
#define AS_IS(x) (x)

/* All of S's columns: blocks of 32 as above, then one at a time. */
STEP_CLONES static void update_S(float *restrict S, int64_t Mp, int64_t dvp, int rescale,
                                 float a, float wk, const float *restrict fk, int64_t fs,
                                 const float *restrict v, const float *restrict q, int64_t qs,
                                 float *restrict num)
{
    int64_t e0 = 0;
    const v8f av = SPLAT(a);
    for (; e0 + 32 <= dvp; e0 += 32) {
        v8f v0, v1, v2, v3, n0 = {0}, n1 = n0, n2 = n0, n3 = n0;
        LD8(v0, v + e0);
        LD8(v1, v + e0 + 8);
        LD8(v2, v + e0 + 16);
        LD8(v3, v + e0 + 24);
        if (rescale) {
            UPDATE_BLOCK(SCALED)
        } else {
            UPDATE_BLOCK(AS_IS)
        }
        ST8(num + e0, n0);
        ST8(num + e0 + 8, n1);
        ST8(num + e0 + 16, n2);
        ST8(num + e0 + 24, n3);
    }
    for (int64_t e = e0; e < dvp; e++) {
        float acc = 0;
        for (int64_t r = 0; r < Mp; r++) {
            float *x = S + r * dvp + e;
            *x = (rescale ? *x * a : *x) + wk * fk[r * fs] * v[e];
            acc += q[r * qs] * *x;
        }
        num[e] = acc;
    }
}

/* num (dvp) = sum_r q[r * qs] S_r: another query head of the group on the updated S. */
STEP_CLONES static void read_S(const float *restrict S, int64_t Mp, int64_t dvp,
                               const float *restrict q, int64_t qs, float *restrict num)
{
    int64_t e0 = 0;
    for (; e0 + 32 <= dvp; e0 += 32) {
        v8f n0 = {0}, n1 = n0, n2 = n0, n3 = n0;
        for (int64_t r = 0; r < Mp; r++) {
            const float *row = S + r * dvp + e0;
            const float qr = q[r * qs];
            const v8f qv = SPLAT(qr);
            v8f x0, x1, x2, x3;
            LD8(x0, row);
            LD8(x1, row + 8);
            LD8(x2, row + 16);
            LD8(x3, row + 24);
            n0 += qv * x0;
            n1 += qv * x1;
            n2 += qv * x2;
            n3 += qv * x3;
        }
        ST8(num + e0, n0);
        ST8(num + e0 + 8, n1);
        ST8(num + e0 + 16, n2);
        ST8(num + e0 + 24, n3);
    }
    for (int64_t e = e0; e < dvp; e++) {
        float acc = 0;
        for (int64_t r = 0; r < Mp; r++)
            acc += q[r * qs] * S[r * dvp + e];
        num[e] = acc;
    }
}

/* z and zabs take the key (rescaled as S); den and g of the G query heads from them. */
static void update_z(const rj_kplan *kp, float *z, float *za, int rescale, float a, float wk,
                     const float *fk, int64_t fs, const float *fq, int64_t qs, int64_t G,
                     float *den, float *g)
{
    const int64_t Mp = kp->Mp;
    for (int64_t r = 0; r < Mp; r++) {
        const float pr = wk * fk[r * fs];
        z[r] = (rescale ? z[r] * a : z[r]) + pr;
        if (kp->sgn)
            za[r] = (rescale ? za[r] * a : za[r]) + fabsf(pr);
    }
    for (int64_t j = 0; j < G; j++) {
        float dn = 0, gs = 0;
        for (int64_t r = 0; r < Mp; r++) {
            const float qr = fq[r * qs + j];
            dn += z[r] * qr;
            if (kp->sgn)
                gs += za[r] * fabsf(qr);
        }
        den[j] = dn;
        g[j] = gs;
    }
}

/* 1 / den' as linear.c forms it: guarded when signed, NaN when it underflows float. */
static float reciprocal_den(const rj_kplan *kp, float den, float g)
{
    if (kp->sgn) {
        const float floor_ = g * DEN_EPS;
        if (fabsf(den) < floor_)
            den = den < 0 ? -floor_ : floor_;
    }
    return fabsf(den) >= FLT_MIN ? 1 / den : NAN;
}

/* out row = num / den in out's dtype; whether every element is finite. */
static int store_row(const rj_view *out, char *row, const float *num, int64_t dv, float rden)
{
    int finite = 1;
    for (int64_t c = 0; c < dv; c++) {
        const float o = num[c] * rden;
        finite &= isfinite(o) != 0;
        if (out->dtype == RFJIT_F32) {
            ((float *)(void *)row)[c] = o;
        } else {
            const uint16_t h = out->dtype == RFJIT_F16 ? rj_f32_to_f16(o) : rj_f32_to_bf16(o);
            memcpy(row + 2 * c, &h, sizeof h);
        }
    }
    return finite;
}

/* Entry i, key/value head g: the token into the state, the group's G rows into out. */
static int64_t step_group(const rfjit_plan *p, const rj_step *s, float *buf, const step_bufs *b,
                          int64_t i, int64_t g)
{
    const rj_kplan *kp = &p->kp;
    const int64_t G = s->H / s->Hkv, dvp = kp->dvp, dv = p->spec.dv, Mp = kp->Mp;
    float *st = s->st[i] + g * kp->st_floats;
    const int64_t colk = i * s->Hkv + g, colq = i * s->H + g * G;
    const float hk = buf[b->hk + colk];
    const float c_old = st[kp->st_c], c_new = fmaxf(c_old, hk);
    const int rescale = c_new > c_old;
    const float a = rescale ? expf(c_old - c_new) : 1.0f, wk = expf(hk - c_new);
    st[kp->st_c] = c_new;
    float *vr = buf + b->vr;
    load_row(s->v.dtype, rj_view_row(&s->v, i, g, 0), dv, 1.0f, vr);
    memset(vr + dv, 0, sizeof(float) * (size_t)(dvp - dv));
    const float *fk = buf + b->fk + colk, *fq = buf + b->fq + colq;
    float *num = buf + b->num, *den = buf + b->den, *gs = buf + b->g;
    update_S(st + kp->st_S, Mp, dvp, rescale, a, wk, fk, b->ck, vr, fq, b->cq, num);
    for (int64_t j = 1; j < G; j++)
        read_S(st + kp->st_S, Mp, dvp, fq + j, b->cq, num + j * dvp);
    update_z(kp, st + kp->st_z, st + kp->st_za, rescale, a, wk, fk, b->ck, fq, b->cq, G, den,
             gs);
    int64_t bad = -1;
    for (int64_t j = 0; j < G; j++) {
        const float rden = reciprocal_den(kp, den[j], gs[j]);
        char *row = rj_view_row(&s->out, i, g * G + j, 0);
        if (!store_row(&s->out, row, num + j * dvp, dv, rden) && bad < 0)
            bad = i * s->H + g * G + j;
    }
    return bad;
}

static void start_states(const rj_kplan *kp, const rj_step *s)
{
    for (int64_t i = 0; i < s->n; i++) {
        if (!s->fresh[i])
            continue;
        for (int64_t g = 0; g < s->Hkv; g++) {
            float *st = s->st[i] + g * kp->st_floats;
            memset(st, 0, sizeof(float) * (size_t)kp->st_c); /* S, z, zabs precede c */
            st[kp->st_c] = -INFINITY;
        }
    }
}

static rfjit_status run(const rfjit_plan *p, const rj_step *s, rj_step_ws *w, int64_t *bad,
                        rj_diag *dg)
{
    const rj_kplan *kp = &p->kp;
    const step_bufs b = layout(kp, w->fk.T, s);
    RJ_TRY(ws_reserve(w, (size_t)b.total, dg));
    float *buf = w->buf;
    const float scale = (float)kp->xscale;
    load_rows(&s->k, s->n, s->Hkv, kp->d, scale, buf + b.xk);
    load_rows(&s->q, s->n, s->H, kp->d, scale, buf + b.xq);
    map_rows(p, w, s, buf, &b);
    start_states(kp, s);
    for (int64_t i = 0; i < s->n; i++)
        for (int64_t g = 0; g < s->Hkv; g++) {
            const int64_t e = step_group(p, s, buf, &b, i, g);
            if (*bad < 0)
                *bad = e;
        }
    return RFJIT_OK;
}

rfjit_status rj_decode_step_states_ws(const rfjit_plan *p, const rj_step *s, rj_step_ws **ws,
                                      int64_t *bad, rj_diag *dg)
{
    *bad = -1;
    rj_step_ws *w = ws ? *ws : NULL;
    if (w && w->plan != p) {
        rj_step_ws_free(w);
        *ws = w = NULL;
    }
    const int own = !w;
    if (own) {
        w = rj_alloc_zero(sizeof *w);
        RJ_FAIL_IF(dg, !w, RFJIT_E_NOMEM, "no memory for a decode step's scratch");
        const rfjit_status st = ws_init(w, p, dg);
        if (st != RFJIT_OK) {
            rj_step_ws_free(w);
            return st;
        }
    }
    const rfjit_status st = run(p, s, w, bad, dg);
    if (own && ws && st == RFJIT_OK)
        *ws = w;
    else if (own)
        rj_step_ws_free(w);
    return st;
}

rfjit_status rj_decode_step_states(const rfjit_plan *p, const rj_step *s, int64_t *bad,
                                   rj_diag *dg)
{
    return rj_decode_step_states_ws(p, s, NULL, bad, dg);
}

rfjit_status rj_decode_step_tile(const rfjit_plan *p, const rj_step *s, int64_t *bad,
                                 rj_diag *dg)
{
    *bad = -1;
    rj_kernel_fn fn;
    RJ_TRY(rj_plan_kernel_for(p, s->q.dtype, s->out.dtype, &fn, dg));
    float *ws = rj_alloc_aligned((size_t)p->kp.ws_floats, sizeof(float));
    RJ_FAIL_IF(dg, !ws, RFJIT_E_NOMEM, "no memory for a decode step's workspace");
    const int64_t G = s->H / s->Hkv, dv = p->spec.dv;
    for (int64_t i = 0; i < s->n; i++) {
        const float *kpar = entry_par(p, s, i);
        for (int64_t g = 0; g < s->Hkv; g++) {
            rj_kargs a = {0};
            a.q = rj_view_row(&s->q, i, g * G, 0);
            a.k = rj_view_row(&s->k, i, g, 0);
            a.v = rj_view_row(&s->v, i, g, 0);
            a.out = rj_view_row(&s->out, i, g * G, 0);
            a.pq = kpar;
            a.pk = kpar + p->kp.role_floats;
            a.ws = ws;
            a.st = s->st[i] + g * p->kp.st_floats;
            a.lq = a.lk = 1;
            a.sq = s->q.stride[2];
            a.sk = s->k.stride[2];
            a.sv = s->v.stride[2];
            a.so = s->out.stride[2];
            a.flags = s->fresh[i] ? RJ_KFLAG_INIT : 0;
            a.ng = G;
            a.sqh = s->q.stride[1];
            a.soh = s->out.stride[1];
            fn(&a);
        }
        for (int64_t h = 0; h < s->H && *bad < 0; h++) {
            const char *row = rj_view_row(&s->out, i, h, 0);
            for (int64_t c = 0; c < dv; c++)
                if (!isfinite(rj_view_get(&s->out, row, c))) {
                    *bad = i * s->H + h;
                    break;
                }
        }
    }
    rj_free(ws);
    return RFJIT_OK;
}
