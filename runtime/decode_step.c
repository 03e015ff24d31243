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
#include "runtime/pool.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define DEN_EPS 1e-6f /* as gen/tmpl/linear.c */

/* On x86-64 the state passes are also built for AVX2 and AVX-512 and picked at load time
 * (as core/stats.c does); not under TSan, whose runtime starts after ifunc resolvers run. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define STEP_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define STEP_CLONES
#endif

/* Eight floats as one value: GCC lowers it to the vectors the clone's target has. */
typedef float v8f __attribute__((vector_size(32)));
#define LD8(v, p) memcpy(&(v), (p), sizeof(v8f))
#define ST8(p, v) memcpy((p), &(v), sizeof(v8f))
/* Eight copies of a float variable (a macro: a function returning v8f would change the ABI
 * without AVX). */
#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})

/* The feature kernels: tiles of one vector (few rows) and the attention plan's tiles (its
 * register tile spans them, so a full one runs faster per row). */
enum { NARROW, WIDE };

struct rj_step_ws {
    const rfjit_plan *plan;
    rj_kplan fk[2]; /* the attention plan's feature map, T = vw and T = its T */
    rj_kernel_fn feat[2];
    float *kws[2];  /* their scratch */
    int same_roles; /* the plan's query and key parameters are one map: one call */
    float *buf;     /* a step's rows, features and sums (layout: struct step_bufs) */
    size_t cap;     /* floats in buf */
    int64_t *bad;   /* per group of a step: its first NaN row, or -1 */
    size_t nbad;
    unsigned steps; /* steps run: odd ones take the groups in reverse order */
};

void rj_step_ws_free(rj_step_ws *w)
{
    if (!w)
        return;
    rj_free(w->kws[NARROW]);
    rj_free(w->kws[WIDE]);
    rj_free(w->buf);
    rj_free(w->bad);
    rj_free(w);
}

static int64_t round_up(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

static rfjit_status feature_kernel(rj_step_ws *w, const rfjit_plan *p, int which, rj_diag *dg)
{
    const rj_kplan *kp = &p->kp;
    rj_spec fs = p->spec;
    fs.causal = 0;
    fs.dv = 1;
    const rfjit_tiling t = {kp->vw, which == WIDE ? kp->T : kp->vw, kp->ri, kp->rj};
    rj_kplan *fk = &w->fk[which];
    RJ_TRY(rj_kplan_make(&fs, &t, kp->vw, kp->fma, fk, dg));
    fk->kind = RJ_KK_FEAT;
    fk->xscale = 1; /* the rows arrive scaled (load_rows) */
    RJ_FAIL_IF(dg, fk->role_floats != kp->role_floats || fk->Mp != kp->Mp, RFJIT_E_INTERNAL,
               "the step's feature kernel lays features out unlike the plan");
    RJ_TRY(rj_kcache_get(p->ctx->kc, fk, &w->feat[which], dg));
    w->kws[which] = rj_alloc_aligned((size_t)fk->ws_floats, sizeof(float));
    RJ_FAIL_IF(dg, !w->kws[which], RFJIT_E_NOMEM, "no memory for a decode step's scratch");
    return RFJIT_OK;
}

static rfjit_status ws_init(rj_step_ws *w, const rfjit_plan *p, rj_diag *dg)
{
    RJ_TRY(feature_kernel(w, p, NARROW, dg));
    RJ_TRY(feature_kernel(w, p, WIDE, dg));
    /* the roles differ only in their parameters but for hybrid's sign (features.c) */
    const size_t rf = (size_t)p->kp.role_floats;
    w->same_roles = p->kpar && p->kp.fam != RJ_KF_HYBRID &&
                    !memcmp(p->kpar, p->kpar + rf, rf * sizeof(float));
    w->plan = p;
    return RFJIT_OK;
}

/* Regions of buf, in floats, each 16-float aligned. Query rows come first and key rows
 * right after them, in the scaled rows, the features and the log-scales alike, so that one
 * feature call can map both. */
typedef struct step_bufs {
    int64_t xq, xk; /* scaled query and key rows, n H x d then n Hkv x d */
    int64_t fq, fk; /* their features, Mp x c feature-major, columns 0.. and n H.. */
    int64_t hq, hk; /* their log-scales: c floats, the keys' from n H on */
    int64_t c;      /* feature columns: rows rounded up to a tile, plus one tile */
    /* per (entry, key/value head) group, grp floats apart (groups run on any thread): */
    int64_t vr;     /* its value row as floats, dvp */
    int64_t num;    /* its numerators, G x dvp */
    int64_t den, g; /* and denominators, guard sums: G each */
    int64_t grp;
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
    const int64_t G = s->H / s->Hkv, d = kp->d, Mp = kp->Mp, nq = s->n * s->H;
    const int64_t rows = nq + s->n * s->Hkv;
    b.c = round_up(rows, Tf) + Tf;
    int64_t top = 0;
    b.xq = take(&top, rows * d);
    b.xk = b.xq + nq * d;
    b.fq = take(&top, Mp * b.c);
    b.fk = b.fq + nq;
    b.hq = take(&top, b.c);
    b.hk = b.hq + nq;
    int64_t gtop = 0;
    b.vr = take(&gtop, kp->dvp);
    b.num = take(&gtop, G * kp->dvp);
    b.den = take(&gtop, G);
    b.g = take(&gtop, G);
    b.grp = gtop;
    const int64_t groups_at = take(&top, gtop * s->n * s->Hkv);
    b.vr += groups_at;
    b.num += groups_at;
    b.den += groups_at;
    b.g += groups_at;
    b.total = top;
    return b;
}

static rfjit_status ws_reserve(rj_step_ws *w, size_t floats, size_t groups, rj_diag *dg)
{
    if (floats > w->cap) {
        float *nb = rj_alloc_aligned(floats, sizeof(float));
        RJ_FAIL_IF(dg, !nb, RFJIT_E_NOMEM, "no memory for a decode step's buffers");
        rj_free(w->buf);
        w->buf = nb;
        w->cap = floats;
    }
    if (groups > w->nbad) {
        int64_t *nb = rj_alloc_array(groups, sizeof(int64_t));
        RJ_FAIL_IF(dg, !nb, RFJIT_E_NOMEM, "no memory for a decode step's buffers");
        rj_free(w->bad);
        w->bad = nb;
        w->nbad = groups;
    }
    return RFJIT_OK;
}

/* n elements of a row of dtype into floats, times scale (the kernel's packing product).
 * float32 goes eight at a time: the library is built at -O2, which leaves the scalar loop
 * as it is, and a step loads 3 rows per head. */
static void load_row(int dtype, const char *row, int64_t n, float scale, float *dst)
{
    if (dtype == RFJIT_F32) {
        const v8f sv = SPLAT(scale);
        int64_t c = 0;
        for (; c + 8 <= n; c += 8) {
            v8f x;
            LD8(x, row + 4 * c);
            x *= sv;
            ST8(dst + c, x);
        }
        for (; c < n; c++) {
            float x;
            memcpy(&x, row + 4 * c, sizeof x);
            dst[c] = x * scale;
        }
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
static void features(const rj_step_ws *w, const float *x, int64_t rows, const float *par, int keys,
                     float *F, float *h, int64_t so, int64_t col0)
{
    const int k = rows >= w->fk[WIDE].T ? WIDE : NARROW;
    rj_kargs a = {0};
    a.q = x;
    a.sq = w->fk[k].d;
    a.pq = par;
    a.pk = par + w->fk[k].role_floats;
    a.ws = w->kws[k];
    a.out = F + col0;
    a.so = so;
    a.st = h + col0;
    a.lq = rows;
    a.flags = keys ? RJ_KFLAG_KEYS : 0;
    w->feat[k](&a);
}

/* Every row of the step mapped: one call for all when the entries use the plan's parameters
 * and its roles share them, one per role when the entries share parameters, else one per
 * entry and role. Calls go in column order, queries first: a call's padding columns belong
 * to rows mapped later. */
static void map_rows(const rfjit_plan *p, const rj_step_ws *w, const rj_step *s, float *buf,
                     const step_bufs *b)
{
    const int64_t d = p->kp.d, nq = s->n * s->H, nk = s->n * s->Hkv;
    float *F = buf + b->fq, *h = buf + b->hq;
    if (shared_par(p, s)) {
        const float *par = entry_par(p, s, 0);
        if (par == p->kpar && w->same_roles) {
            features(w, buf + b->xq, nq + nk, par, 0, F, h, b->c, 0);
            return;
        }
        features(w, buf + b->xq, nq, par, 0, F, h, b->c, 0);
        features(w, buf + b->xk, nk, par, 1, F, h, b->c, nq);
        return;
    }
    for (int64_t i = 0; i < s->n; i++)
        features(w, buf + b->xq + i * s->H * d, s->H, entry_par(p, s, i), 0, F, h, b->c, i * s->H);
    for (int64_t i = 0; i < s->n; i++)
        features(w, buf + b->xk + i * s->Hkv * d, s->Hkv, entry_par(p, s, i), 1, F, h, b->c,
                 nq + i * s->Hkv);
}

/* z_r (and zabs_r) take p_r, rescaled as S; den (and g) take the query's product with them.
 * Scalar: its add chain hides behind the vector work on the row it rides along with. */
#define Z_ROW(RESCALE)                                                                             \
    do {                                                                                           \
        const float zr = RESCALE(z[r]) + pr;                                                       \
        z[r] = zr;                                                                                 \
        dn += qr * zr;                                                                             \
        if (sgn) {                                                                                 \
            const float zar = RESCALE(za[r]) + fabsf(pr);                                          \
            za[r] = zar;                                                                           \
            gs += fabsf(qr) * zar;                                                                 \
        }                                                                                          \
    } while (0)
#define SCALED(x) ((x)*a)
#define AS_IS(x) (x)

/* One token into a state: what update_S below does for a block of columns. */
typedef struct tok {
    float *S, *z, *za; /* the state */
    int64_t Mp, dvp;
    float a, wk;            /* rescale factor, key weight: p_r = wk f[r * fs] */
    const float *f, *v, *q; /* key features, value row, query features (q[r * qs]) */
    int64_t fs, qs;
    int sgn;
} tok;

/*
 * Columns e0 .. e0 + 8 NV - 1 of rows r < Mp of S (row stride dvp): S_r = a S_r + p_r v when
 * RESCALE, else S_r + p_r v, and num = sum_r q_r S_r after the update; with Z, z and zabs
 * take the token too and *den, *g get q . z and |q| . zabs. The numerator stays in
 * registers over the rows, so S is read and written once; with NV = 8 a block is a whole row
 * of dv = 64, and S streams in address order.
 */
#define UPDATE_BLOCK(NV, RESCALE, Z)                                                               \
    do {                                                                                           \
        v8f n[NV], vv[NV];                                                                         \
        const v8f av = SPLAT(a);                                                                   \
        float dn = 0, gs = 0;                                                                      \
        (void)av;                                                                                  \
        _Pragma("GCC unroll 8") for (int u = 0; u < NV; u++)                                       \
        {                                                                                          \
            n[u] = (v8f){0};                                                                       \
            LD8(vv[u], v + e0 + 8 * u);                                                            \
        }                                                                                          \
        for (int64_t r = 0; r < Mp; r++) {                                                         \
            float *row = S + r * dvp + e0;                                                         \
            const float pr = wk * f[r * fs], qr = q[r * qs];                                       \
            const v8f pv = SPLAT(pr), qv = SPLAT(qr);                                              \
            _Pragma("GCC unroll 8") for (int u = 0; u < NV; u++)                                   \
            {                                                                                      \
                v8f x;                                                                             \
                LD8(x, row + 8 * u);                                                               \
                x = RESCALE##_V(x) + pv * vv[u];                                                   \
                ST8(row + 8 * u, x);                                                               \
                n[u] += qv * x;                                                                    \
            }                                                                                      \
            if (Z)                                                                                 \
                Z_ROW(RESCALE);                                                                    \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int u = 0; u < NV; u++) ST8(num + e0 + 8 * u, n[u]);          \
        if (Z) {                                                                                   \
            *den = dn;                                                                             \
            *g = gs;                                                                               \
        }                                                                                          \
    } while (0)
#define SCALED_V(x) ((x)*av)
#define AS_IS_V(x) (x)

/* Every column of S in blocks of 64, then of 8, then one at a time; z rides along with the
 * first block. The rescale test sits outside the row loops, so the hot loop has no branch. */
STEP_CLONES static void update_S(const tok *t, int rescale, float *restrict num, float *den,
                                 float *g)
{
    float *restrict S = t->S, *restrict z = t->z, *restrict za = t->za;
    const float *restrict f = t->f, *restrict v = t->v, *restrict q = t->q;
    const int64_t Mp = t->Mp, dvp = t->dvp, fs = t->fs, qs = t->qs;
    const float a = t->a, wk = t->wk;
    const int sgn = t->sgn;
    int64_t e0 = 0;
    for (; e0 + 64 <= dvp; e0 += 64) {
        if (rescale && e0 == 0)
            UPDATE_BLOCK(8, SCALED, 1);
        else if (rescale)
            UPDATE_BLOCK(8, SCALED, 0);
        else if (e0 == 0)
            UPDATE_BLOCK(8, AS_IS, 1);
        else
            UPDATE_BLOCK(8, AS_IS, 0);
    }
    for (; e0 + 8 <= dvp; e0 += 8) {
        if (rescale && e0 == 0)
            UPDATE_BLOCK(1, SCALED, 1);
        else if (rescale)
            UPDATE_BLOCK(1, SCALED, 0);
        else if (e0 == 0)
            UPDATE_BLOCK(1, AS_IS, 1);
        else
            UPDATE_BLOCK(1, AS_IS, 0);
    }
    if (dvp < 8) {
        float dn = 0, gs = 0;
        for (int64_t r = 0; r < Mp; r++) {
            const float pr = wk * f[r * fs], qr = q[r * qs];
            if (rescale)
                Z_ROW(SCALED);
            else
                Z_ROW(AS_IS);
        }
        *den = dn;
        *g = gs;
    }
    for (int64_t e = e0; e < dvp; e++) {
        float acc = 0;
        for (int64_t r = 0; r < Mp; r++) {
            float *x = S + r * dvp + e;
            *x = (rescale ? *x * a : *x) + wk * f[r * fs] * v[e];
            acc += q[r * qs] * *x;
        }
        num[e] = acc;
    }
}

/* num (dvp) = sum_r q_r S_r, *den = q . z, *g = |q| . zabs: another query head of the group
 * on the updated state. */
STEP_CLONES static void read_S(const tok *t, const float *restrict q, float *restrict num,
                               float *den, float *g)
{
    const float *restrict S = t->S, *restrict z = t->z, *restrict za = t->za;
    const int64_t Mp = t->Mp, dvp = t->dvp, qs = t->qs;
    float dn = 0, gs = 0;
    int64_t e0 = 0;
    for (; e0 + 8 <= dvp; e0 += 8) {
        v8f n = {0};
        for (int64_t r = 0; r < Mp; r++) {
            const float qr = q[r * qs];
            const v8f qv = SPLAT(qr);
            v8f x;
            LD8(x, S + r * dvp + e0);
            n += qv * x;
        }
        ST8(num + e0, n);
    }
    for (int64_t e = e0; e < dvp; e++) {
        float acc = 0;
        for (int64_t r = 0; r < Mp; r++)
            acc += q[r * qs] * S[r * dvp + e];
        num[e] = acc;
    }
    for (int64_t r = 0; r < Mp; r++) {
        dn += q[r * qs] * z[r];
        if (t->sgn)
            gs += fabsf(q[r * qs]) * za[r];
    }
    *den = dn;
    *g = gs;
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

/* out row = num / den in out's dtype; whether every element is finite (x - x is 0 exactly
 * for finite x, NaN otherwise). float32 goes eight at a time, as load_row. */
static int store_row(const rj_view *out, char *row, const float *num, int64_t dv, float rden)
{
    int64_t c = 0;
    float bad = 0;
    if (out->dtype == RFJIT_F32) {
        const v8f rv = SPLAT(rden);
        v8f acc = {0};
        for (; c + 8 <= dv; c += 8) {
            v8f o;
            LD8(o, num + c);
            o *= rv;
            acc += o - o;
            ST8(row + 4 * c, o);
        }
        for (int i = 0; i < 8; i++)
            bad += acc[i];
    }
    for (; c < dv; c++) {
        const float o = num[c] * rden;
        bad += o - o;
        if (out->dtype == RFJIT_F32) {
            memcpy(row + 4 * c, &o, sizeof o);
        } else {
            const uint16_t h = out->dtype == RFJIT_F16 ? rj_f32_to_f16(o) : rj_f32_to_bf16(o);
            memcpy(row + 2 * c, &h, sizeof h);
        }
    }
    return bad == 0;
}

/* Entry i, key/value head g: the token into the state, the group's G rows into out. */
static int64_t step_group(const rfjit_plan *p, const rj_step *s, float *buf, const step_bufs *b,
                          int64_t i, int64_t g)
{
    const rj_kplan *kp = &p->kp;
    const int64_t G = s->H / s->Hkv, dvp = kp->dvp, dv = p->spec.dv, Mp = kp->Mp;
    float *st = s->st[i] + g * kp->st_floats;
    const int64_t colk = i * s->Hkv + g, colq = i * s->H + g * G;
    const float hk = buf[b->hk + colk], *fk = buf + b->fk + colk, *fq = buf + b->fq + colq;
    const float c_old = st[kp->st_c], c_new = fmaxf(c_old, hk);
    const int rescale = c_new > c_old;
    const float a = rescale ? expf(c_old - c_new) : 1.0f, wk = expf(hk - c_new);
    st[kp->st_c] = c_new;
    buf += (i * s->Hkv + g) * b->grp; /* this group's own vr, num, den and g */
    float *vr = buf + b->vr;
    load_row(s->v.dtype, rj_view_row(&s->v, i, g, 0), dv, 1.0f, vr);
    memset(vr + dv, 0, sizeof(float) * (size_t)(dvp - dv));
    float *num = buf + b->num, *den = buf + b->den, *gs = buf + b->g;
    const tok t = {st + kp->st_S, st + kp->st_z, st + kp->st_za, Mp, dvp, a, wk, fk, vr, fq,
                   b->c,          b->c,          kp->sgn};
    update_S(&t, rescale, num, den, gs);
    for (int64_t j = 1; j < G; j++)
        read_S(&t, t.q + j, num + j * dvp, den + j, gs + j);
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

/* Groups from which a step spreads over the context's pool: a group is a few microseconds
 * (m = 256, dv = 64) and waking the workers costs about ten, so on two threads 8 groups took
 * 45 us against 27 on one, and 64 groups 163 against 172-185 (one slot of 8 heads, and 8
 * slots of 8 heads). */
#define POOL_GROUPS 32

typedef struct group_job {
    const rfjit_plan *p;
    const rj_step *s;
    float *buf;
    const step_bufs *b;
    int64_t *bad;          /* per group */
    int64_t groups, tasks; /* task t runs groups t groups / tasks .. (t + 1) groups / tasks - 1 */
    int reverse;           /* from the last of its groups down */
} group_job;

/*
 * A task's groups go forward on even steps and backward on odd ones. The states of a step
 * are usually a little more than the core's L2 (8 heads of m = 256, dv = 64: 532 KB against
 * 512 KiB), and under LRU a pass in one direction finds none of them there, as each evicts
 * the one the next pass needs first; going back over them, a step starts on the states the
 * last one left in L2 (on Zen 3 a step took 5% less). Each group is computed alone, so the
 * order changes no bit.
 */
static void run_groups(void *arg, int64_t t)
{
    const group_job *j = arg;
    const int64_t g0 = t * j->groups / j->tasks, g1 = (t + 1) * j->groups / j->tasks;
    for (int64_t i = g0; i < g1; i++) {
        const int64_t g = j->reverse ? g0 + g1 - 1 - i : i;
        j->bad[g] = step_group(j->p, j->s, j->buf, j->b, g / j->s->Hkv, g % j->s->Hkv);
    }
}

static rfjit_status run(const rfjit_plan *p, const rj_step *s, rj_step_ws *w, int64_t *bad,
                        rj_diag *dg)
{
    const rj_kplan *kp = &p->kp;
    const step_bufs b = layout(kp, w->fk[WIDE].T, s);
    RJ_TRY(ws_reserve(w, (size_t)b.total, (size_t)(s->n * s->Hkv), dg));
    float *buf = w->buf;
    const float scale = (float)kp->xscale;
    load_rows(&s->k, s->n, s->Hkv, kp->d, scale, buf + b.xk);
    load_rows(&s->q, s->n, s->H, kp->d, scale, buf + b.xq);
    map_rows(p, w, s, buf, &b);
    start_states(kp, s);
    const int64_t groups = s->n * s->Hkv;
    /* one run of consecutive groups per thread: a task per group cost more in hand-overs
     * than the groups took */
    const int64_t threads = rj_pool_threads(p->ctx->pool);
    group_job j = {p, s, buf, &b, w->bad, groups, 1, (int)(w->steps++ & 1u)};
    if (groups >= POOL_GROUPS && threads > 1) {
        j.tasks = threads < groups ? threads : groups;
        rj_pool_run(p->ctx->pool, j.tasks, run_groups, &j);
    } else {
        run_groups(&j, 0);
    }
    for (int64_t t = 0; t < groups && *bad < 0; t++)
        *bad = w->bad[t];
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

rfjit_status rj_decode_step_states(const rfjit_plan *p, const rj_step *s, int64_t *bad, rj_diag *dg)
{
    return rj_decode_step_states_ws(p, s, NULL, bad, dg);
}
