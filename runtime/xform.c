/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/xform.h. Every statistic is taken in the raw units of the
 * rows (the ratio of A and the means do not depend on the softmax scale) and the copies hold
 * raw rows, so the executors scale them by sqrt(scale) as they scale any call:
 *
 *     q' = a (q - qbar),   k' = (k - kbar) / a,   so q'.k' = (q - qbar).(k - kbar),
 *
 * with qbar = 0 without CENTER_Q, kbar = 0 without CENTER_K, a = 1 without BALANCE. The key
 * weight e^{s qbar.(k - kbar)} (s the softmax scale) is e^{u.y'} for the scaled row
 * y' = sqrt(s) k' and u = sqrt(s) a qbar, which is what the executors fold in.
 */
#include "runtime/xform.h"
#include "core/linalg.h"
#include "est/est.h"
#include "runtime/exec_scratch.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"

#include <math.h>
#include <string.h>

#define XFORM_ALL                                                                                  \
    (RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_BALANCE | RFJIT_XFORM_WHITEN)

rfjit_status rj_xform_check(int32_t flags, rj_spec *s, rj_diag *dg)
{
    s->xform = 0;
    RJ_FAIL_IF(dg, flags & ~XFORM_ALL, RFJIT_E_INVALID_ARG,
               "transform = %d has unknown bits (known: RFJIT_XFORM_CENTER_K 1, "
               "RFJIT_XFORM_CENTER_Q 2, RFJIT_XFORM_BALANCE 4, RFJIT_XFORM_WHITEN 8)",
               (int)flags);
    if (!flags)
        return RFJIT_OK;
    RJ_FAIL_IF(dg, s->compat != RJ_COMPAT_NONE, RFJIT_E_NOT_APPLICABLE,
               "compat mode '%s' reproduces another code's numerics, which a transform would "
               "change: use transform = 0 with it",
               rj_compat_name(s->compat));
    const rj_est_ops *e = s->est;
    if ((flags & RFJIT_XFORM_CENTER_Q) && e->tmpl != RJ_TMPL_SOFTMAX) {
        rj_kfeat kf = {0};
        if (e->tmpl == RJ_TMPL_LINEAR && e->kfeat)
            e->kfeat(s, &kf);
        RJ_FAIL_IF(dg, kf.fam != RJ_KF_EXP, RFJIT_E_NOT_APPLICABLE,
                   "RFJIT_XFORM_CENTER_Q folds each key's weight e^{xbar.k} into key features "
                   "of the form e^{w.k + ...}, which estimator '%s' does not have (positive, "
                   "hyperbolic, oprf, saderf, sderf and aderf do)",
                   e->name);
    }
    s->xform = flags;
    return RFJIT_OK;
}

void rj_xform_fold(const rj_kplan *kp, float *pk, const double *u)
{
    float *W = pk + kp->off_w;
    for (int64_t r = 0; r < kp->P; r++)
        for (int64_t i = 0; i < kp->d; i++)
            W[r * kp->d + i] = (float)((double)W[r * kp->d + i] + u[i]);
}

/* A contiguous float32 copy of view t's shape over buf. */
static rj_view f32_view(const rj_view *t, float *buf)
{
    rj_view v = *t;
    v.data = (char *)buf;
    v.dtype = RFJIT_F32;
    v.esize = (int32_t)sizeof(float);
    v.stride[3] = 1;
    v.stride[2] = t->shape[3];
    v.stride[1] = t->shape[2] * v.stride[2];
    v.stride[0] = t->shape[1] * v.stride[1];
    return v;
}

static size_t elements_of(const rj_view *t)
{
    size_t n = 1;
    for (int i = 0; i < 4; i++)
        if (!rj_mul_size(n, (size_t)t->shape[i], &n))
            return SIZE_MAX / 8; /* too large for any buffer: the allocation fails */
    return n;
}

/* Per (sequence, key/value head): the statistics of its rows, d each. */
typedef struct slice_stats {
    double *qbar, *kbar, *a;
    double *A, *Ai; /* WHITEN: d x d, symmetric, A Ai = I; else NULL */
} slice_stats;

/* Row `row` of a view as doubles: float32 rows with contiguous elements read directly (the
 * common case, and the one a 512-token head spends its transform time on). */
static void load_row(const rj_view *t, const char *row, int64_t d, double *x)
{
    if (t->dtype == RFJIT_F32 && t->stride[3] == 1) {
        const float *f = (const float *)(const void *)row;
        for (int64_t i = 0; i < d; i++)
            x[i] = f[i];
        return;
    }
    for (int64_t i = 0; i < d; i++)
        x[i] = rj_view_get(t, row, i);
}

/* Sums of the entries and of their squares per coordinate (sum, sq: d each, added to) over
 * the n rows r0 .. of slice (b, h) of t, but those with keep[j] == 0 (keep NULL: all);
 * returns how many rows were taken. x: d doubles of scratch. */
static int64_t row_sums(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n,
                        const uint8_t *keep, double *sum, double *sq, double *x)
{
    int64_t taken = 0;
    const int64_t d = t->shape[3];
    for (int64_t j = 0; j < n; j++) {
        if (keep && !keep[j])
            continue;
        const char *row = rj_view_row(t, b, h, r0 + j);
        if (t->dtype == RFJIT_F32 && t->stride[3] == 1) {
            const float *f = (const float *)(const void *)row;
            for (int64_t i = 0; i < d; i++) {
                sum[i] += f[i];
                sq[i] += (double)f[i] * f[i];
            }
        } else {
            load_row(t, row, d, x);
            for (int64_t i = 0; i < d; i++) {
                sum[i] += x[i];
                sq[i] += x[i] * x[i];
            }
        }
        taken++;
    }
    return taken;
}

/* The statistics of sequence s at key/value head g: queries of the group's heads, the
 * visible keys. tmp: 5 d doubles of scratch. One pass: the second moments come from the
 * sums of squares, in double, which holds them for rows of any real head's size. */
static void stats_of(const rj_spec *sp, const rj_call *c, const rj_seq *s, int64_t g,
                     const slice_stats *out, double *tmp)
{
    const int64_t d = sp->d, group = c->H / c->Hkv;
    /* exact attention has no features to carry the weights, and needs none */
    const bool centre_q = (sp->xform & RFJIT_XFORM_CENTER_Q) && sp->est->tmpl == RJ_TMPL_LINEAR;
    double *mq = tmp, *mk = tmp + d, *q2 = tmp + 2 * d, *k2 = tmp + 3 * d, *x = tmp + 4 * d;
    memset(tmp, 0, 4 * (size_t)d * sizeof(double));
    int64_t nq = 0;
    for (int64_t h = g * group; h < (g + 1) * group; h++)
        nq += row_sums(&c->q, s->qb, h, s->q0, s->lq, NULL, mq, q2, x);
    const int64_t nk = row_sums(&c->k, s->kb, g, s->k0, s->lk, s->mask, mk, k2, x);
    /* WHITEN falls back on the diagonal scales where a covariance is singular */
    const bool balance = (sp->xform & (RFJIT_XFORM_BALANCE | RFJIT_XFORM_WHITEN)) && nq && nk;
    for (int64_t i = 0; i < d; i++) {
        const double qm = nq ? mq[i] / (double)nq : 0, km = nk ? mk[i] / (double)nk : 0;
        out->qbar[i] = centre_q ? qm : 0;
        out->kbar[i] = (sp->xform & RFJIT_XFORM_CENTER_K) ? km : 0;
        out->a[i] = 1;
        if (!balance)
            continue;
        /* second moments about the centre each role gets: E x^2 - 2 c E x + c^2 */
        const double cq = out->qbar[i], ck = out->kbar[i];
        const double eq = q2[i] / (double)nq - 2 * cq * qm + cq * cq;
        const double ek = k2[i] / (double)nk - 2 * ck * km + ck * ck;
        /* a coordinate constant in either set has no scale to balance */
        const double r = ek / eq;
        out->a[i] = isfinite(r) && r > 1e-12 && r < 1e12 ? sqrt(sqrt(r)) : 1;
    }
}

/* Rows r0 .. r0 + n - 1 of slice (b, h): dst = (src - mean) * mul or / mul (div). */
/* out = a b, n x n row-major. */
static void matmul(int64_t n, const double *a, const double *b, double *out)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double t = 0;
            for (int64_t l = 0; l < n; l++)
                t += a[i * n + l] * b[l * n + j];
            out[i * n + j] = t;
        }
}

/* P = C^pw and, if Pi is not NULL, Pi = C^-pw of a symmetric positive definite C (n x n);
 * false when C is not clearly positive definite (an eigenvalue at or below 1e-10 of the
 * largest) or the decomposition failed. w: n + n^2 doubles of scratch. */
static bool sym_pow(int64_t n, const double *C, double pw, double *P, double *Pi, double *w)
{
    double *lam = w, *V = w + n;
    if (rj_eigh((int)n, C, lam, V) != RFJIT_OK || !(lam[0] > 1e-10 * lam[n - 1]))
        return false;
    for (int64_t l = 0; l < n; l++)
        lam[l] = pow(lam[l], pw); /* and lam^-pw is its reciprocal */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double t = 0, ti = 0;
            for (int64_t l = 0; l < n; l++) {
                const double vv = V[i * n + l] * V[j * n + l];
                t += vv * lam[l];
                ti += Pi ? vv / lam[l] : 0;
            }
            P[i * n + j] = t;
            if (Pi)
                Pi[i * n + j] = ti;
        }
    return true;
}

/* A = B^1/2 and Ai = B^-1/2 for B = Cq^-1 # Ck = Cq^-1/2 (Cq^1/2 Ck Cq^1/2)^1/2 Cq^-1/2, the
 * symmetric B with B Cq B = Ck, which minimises E|A x|^2 + E|A^-1 y|^2 = tr(B Cq) +
 * tr(B^-1 Ck). w: 5 n^2 + n doubles. false: a covariance is singular. */
static bool whitening(int64_t n, const double *Cq, const double *Ck, double *A, double *Ai,
                      double *w)
{
    const int64_t n2 = n * n;
    double *S = w, *Si = w + n2, *T = w + 2 * n2, *M = w + 3 * n2, *ew = w + 4 * n2;
    if (!sym_pow(n, Cq, 0.5, S, Si, ew))
        return false;
    matmul(n, S, Ck, T);
    matmul(n, T, S, M);
    if (!sym_pow(n, M, 0.5, T, NULL, ew))
        return false;
    matmul(n, Si, T, M);
    matmul(n, M, Si, T); /* B */
    return sym_pow(n, T, 0.5, A, Ai, ew);
}

/* The covariance about c (d) of rows r0 .. r0 + n - 1 of slice (b, h), added into C (d x d)
 * unnormalised; rows with keep[j] == 0 skipped. x: d doubles. */
static void row_cov(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n,
                    const uint8_t *keep, const double *c, double *C, double *x)
{
    const int64_t d = t->shape[3];
    for (int64_t j = 0; j < n; j++) {
        if (keep && !keep[j])
            continue;
        load_row(t, rj_view_row(t, b, h, r0 + j), d, x);
        for (int64_t i = 0; i < d; i++)
            x[i] -= c[i];
        for (int64_t i = 0; i < d; i++)
            for (int64_t l = 0; l < d; l++)
                C[i * d + l] += x[i] * x[l];
    }
}

/* WHITEN: A and Ai of sequence s at key/value head g about the centres in st; false (and
 * the diagonal scales stand) when a covariance is singular. w: 7 d^2 + 2 d doubles. */
static bool whiten_slice(const rj_spec *sp, const rj_call *c, const rj_seq *s, int64_t g,
                         const slice_stats *st, double *w)
{
    const int64_t d = sp->d, group = c->H / c->Hkv, d2 = d * d;
    double *Cq = w, *Ck = w + d2, *x = w + 2 * d2;
    memset(w, 0, 2 * (size_t)d2 * sizeof(double));
    for (int64_t h = g * group; h < (g + 1) * group; h++)
        row_cov(&c->q, s->qb, h, s->q0, s->lq, NULL, st->qbar, Cq, x);
    row_cov(&c->k, s->kb, g, s->k0, s->lk, s->mask, st->kbar, Ck, x);
    return whitening(d, Cq, Ck, st->A, st->Ai, w + 2 * d2 + d);
}

static void write_rows(const rj_view *src, const rj_view *dst, int64_t b, int64_t h, int64_t r0,
                       int64_t n, const double *mean, const double *mul, bool div, double *x)
{
    const int64_t d = src->shape[3];
    /* y = (x - mean) * f with f = mul or 1 / mul, in float: one rounding more than the
     * double form, far below what the estimate can resolve, and it vectorises */
    float *mf = (float *)(void *)(x + d), *ff = mf + d;
    for (int64_t i = 0; i < d; i++) {
        mf[i] = (float)mean[i];
        ff[i] = (float)(div ? 1 / mul[i] : mul[i]);
    }
    for (int64_t j = 0; j < n; j++) {
        const char *row = rj_view_row(src, b, h, r0 + j);
        float *out = (float *)(void *)rj_view_row(dst, b, h, r0 + j);
        if (src->dtype == RFJIT_F32 && src->stride[3] == 1) {
            const float *f = (const float *)(const void *)row;
            for (int64_t i = 0; i < d; i++)
                out[i] = (f[i] - mf[i]) * ff[i];
        } else {
            load_row(src, row, d, x);
            for (int64_t i = 0; i < d; i++)
                out[i] = ((float)x[i] - mf[i]) * ff[i];
        }
    }
}

/* Rows r0 .. r0 + n - 1 of slice (b, h): dst = M (src - mean), M symmetric d x d. x: 2 d
 * doubles of scratch. */
static void map_rows(const rj_view *src, const rj_view *dst, int64_t b, int64_t h, int64_t r0,
                     int64_t n, const double *mean, const double *M, double *x)
{
    const int64_t d = src->shape[3];
    for (int64_t j = 0; j < n; j++) {
        load_row(src, rj_view_row(src, b, h, r0 + j), d, x);
        for (int64_t i = 0; i < d; i++)
            x[i] -= mean[i];
        float *out = (float *)(void *)rj_view_row(dst, b, h, r0 + j);
        for (int64_t i = 0; i < d; i++) {
            double t = 0;
            for (int64_t l = 0; l < d; l++)
                t += M[i * d + l] * x[l];
            out[i] = (float)t;
        }
    }
}

/* Rows of a half view widened into a float32 one as they are. */
static void widen_rows(const rj_view *src, const rj_view *dst, int64_t b, int64_t h, int64_t r0,
                       int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const char *in = rj_view_row(src, b, h, r0 + j);
        float *out = (float *)(void *)rj_view_row(dst, b, h, r0 + j);
        for (int64_t i = 0; i < src->shape[3]; i++)
            out[i] = (float)rj_view_get(src, in, i);
    }
}

/* Sequence s at key/value head g: its rows transformed, and its u (if any). */
static void transform_slice(const rfjit_plan *p, const rj_call *c, rj_xform *x, int64_t b,
                            int64_t g, const slice_stats *st, double *tmp)
{
    const int64_t d = p->spec.d, group = c->H / c->Hkv;
    const rj_seq sq = rj_call_seq(c, b), *s = &sq;
    for (int64_t h = g * group; h < (g + 1) * group; h++)
        if (st->A)
            map_rows(&c->q, &x->call.q, s->qb, h, s->q0, s->lq, st->qbar, st->A, tmp);
        else
            write_rows(&c->q, &x->call.q, s->qb, h, s->q0, s->lq, st->qbar, st->a, false, tmp);
    if (st->A)
        map_rows(&c->k, &x->call.k, s->kb, g, s->k0, s->lk, st->kbar, st->Ai, tmp);
    else
        write_rows(&c->k, &x->call.k, s->kb, g, s->k0, s->lk, st->kbar, st->a, true, tmp);
    if (x->v)
        widen_rows(&c->v, &x->call.v, s->kb, g, s->k0, s->lk);
    if (!x->u)
        return;
    const double xs = rj_plan_input_scale(&p->spec);
    const int64_t slice = b * c->Hkv + g;
    double *u = x->u + slice * d;
    for (int64_t i = 0; i < d; i++) {
        double t = 0; /* (A qbar)_i, A symmetric: the weight's exponent is qbar . A k' */
        for (int64_t l = 0; l < d && st->A; l++)
            t += st->A[i * d + l] * st->qbar[l];
        u[i] = xs * (st->A ? t : st->a[i] * st->qbar[i]);
    }
    if (x->pk) {
        float *pk = x->pk + slice * p->kp.role_floats;
        memcpy(pk, p->kpar + p->kp.role_floats, (size_t)p->kp.role_floats * sizeof(float));
        rj_xform_fold(&p->kp, pk, u);
    }
}

void rj_xform_free(rj_xform *x)
{
    if (x->sc) {
        rj_scratch_give(x->p, x->sc);
    } else {
        rj_free(x->q);
        rj_free(x->k);
        rj_free(x->v);
        rj_free(x->u);
        rj_free(x->pk);
        rj_free(x->stats);
    }
    memset(x, 0, sizeof *x);
}

/* The buffers of a transform: the slots of a scratch from the plan's pool on JIT plans, whose
 * warm executes then allocate nothing (a fresh 64 KiB block costs more page faults than the
 * transform's arithmetic), fresh memory on the reference. None is zeroed: only the rows of
 * the call's sequences are written, and only they are read. */
enum xform_slot { XSLOT_Q, XSLOT_K, XSLOT_V, XSLOT_U, XSLOT_PK, XSLOT_STATS, XFORM_SLOTS };
_Static_assert(XFORM_SLOTS <= RJ_SLOTS, "every slot of xform.c exists in a scratch");

static void *buf_of(rj_xform *x, enum xform_slot slot, size_t n, size_t size)
{
    if (x->sc)
        return rj_scratch_buf(x->sc, (int)slot, n, size);
    return rj_alloc_array(n ? n : 1, size);
}

/* The statistics buffer: means, scales and scratch (8 d), and with WHITEN A, Ai and the
 * whitening's scratch (9 d^2 + 2 d). */
static size_t stats_doubles(const rj_spec *s)
{
    const size_t d = (size_t)s->d;
    return 8 * d + ((s->xform & RFJIT_XFORM_WHITEN) ? 9 * d * d + 2 * d : 0);
}

/* Query centring needs u where the features take it: linear templates (the softmax one,
 * exact attention, has nothing to estimate). */
static bool needs_u(const rfjit_plan *p)
{
    return (p->spec.xform & RFJIT_XFORM_CENTER_Q) && p->spec.est->tmpl == RJ_TMPL_LINEAR;
}

static rfjit_status alloc_copies(const rfjit_plan *p, const rj_call *c, rj_xform *x, rj_diag *dg)
{
    const size_t slices = (size_t)c->B * (size_t)c->Hkv, d = (size_t)p->spec.d;
    x->p = p;
    if (p->jit && !(x->sc = rj_scratch_take(p, dg)))
        return RFJIT_E_NOMEM;
    x->q = buf_of(x, XSLOT_Q, elements_of(&c->q), sizeof(float));
    x->k = buf_of(x, XSLOT_K, elements_of(&c->k), sizeof(float));
    x->stats = buf_of(x, XSLOT_STATS, stats_doubles(&p->spec), sizeof(double));
    bool ok = x->q && x->k && x->stats;
    if (ok && c->q.dtype != RFJIT_F32)
        ok = (x->v = buf_of(x, XSLOT_V, elements_of(&c->v), sizeof(float))) != NULL;
    if (ok && needs_u(p))
        ok = (x->u = buf_of(x, XSLOT_U, slices * d, sizeof(double))) != NULL;
    if (ok && x->u && p->jit && p->frozen)
        ok = (x->pk = buf_of(x, XSLOT_PK, slices * (size_t)p->kp.role_floats, sizeof(float))) !=
             NULL;
    if (ok)
        return RFJIT_OK;
    rj_xform_free(x);
    return rj_fail(dg, RFJIT_E_NOMEM, "no memory for the transformed rows of the call");
}

rfjit_status rj_xform_make(const rfjit_plan *p, const rj_call *c, rj_xform *x, rj_diag *dg)
{
    memset(x, 0, sizeof *x);
    RJ_TRY(alloc_copies(p, c, x, dg));
    const size_t d = (size_t)p->spec.d;
    double *buf = x->stats;
    x->call = *c;
    x->call.q = f32_view(&c->q, x->q);
    x->call.k = f32_view(&c->k, x->k);
    if (x->v)
        x->call.v = f32_view(&c->v, x->v);
    x->call.xu = x->u;
    x->call.xpk = x->pk;
    const bool whiten = p->spec.xform & RFJIT_XFORM_WHITEN;
    double *wbuf = buf + 8 * d;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t g = 0; g < c->Hkv; g++) {
            const rj_seq s = rj_call_seq(c, b);
            slice_stats st = {buf, buf + d, buf + 2 * d, NULL, NULL};
            stats_of(&p->spec, c, &s, g, &st, buf + 3 * d);
            if (whiten && p->xA) {
                st.A = p->xA;
                st.Ai = p->xA + d * d;
            } else if (whiten) {
                st.A = wbuf;
                st.Ai = wbuf + d * d;
                if (!s.lq || !s.lk || !whiten_slice(&p->spec, c, &s, g, &st, wbuf + 2 * d * d))
                    st.A = st.Ai = NULL; /* too few rows for a covariance: the diagonal */
            }
            transform_slice(p, c, x, b, g, &st, buf + 3 * d);
        }
    return RFJIT_OK;
}

/* Centre the n rows (d doubles each) by their mean if the flags centre this role. */
static void centre_rows(const rj_spec *s, int role, double *x, int64_t n)
{
    const int flag = role ? RFJIT_XFORM_CENTER_K : RFJIT_XFORM_CENTER_Q;
    if (!(s->xform & flag) || n == 0)
        return;
    const int64_t d = s->d;
    for (int64_t i = 0; i < d; i++) {
        double m = 0;
        for (int64_t j = 0; j < n; j++)
            m += x[j * d + i];
        m /= (double)n;
        for (int64_t j = 0; j < n; j++)
            x[j * d + i] -= m;
    }
}

void rj_xform_calib_rows(const rfjit_plan *p, int role, double *x, int64_t n, const double *a)
{
    const rj_spec *s = &p->spec;
    const int64_t d = s->d;
    centre_rows(s, role, x, n);
    if (p->xA) {
        const double *M = p->xA + (role ? d * d : 0);
        double t[RJ_MAX_D];
        for (int64_t j = 0; j < n; j++) {
            for (int64_t i = 0; i < d; i++) {
                t[i] = 0;
                for (int64_t l = 0; l < d; l++)
                    t[i] += M[i * d + l] * x[j * d + l];
            }
            memcpy(x + j * d, t, (size_t)d * sizeof(double));
        }
        return;
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < d; i++)
            x[j * d + i] = role ? x[j * d + i] / a[i] : x[j * d + i] * a[i];
}

/* Pooled covariance (d x d, normalised) of every (batch, head) slice of t, each centred on
 * its own mean if role's centring is on. buf: the rows of one slice. */
static void pooled_cov(const rj_spec *s, int role, const rfjit_tensor *t, double *buf, double *C)
{
    const int64_t d = s->d, L = t->shape[2];
    memset(C, 0, (size_t)(d * d) * sizeof(double));
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++) {
            rj_tensor_gather(t, b, h, 1.0, buf);
            centre_rows(s, role, buf, L);
            for (int64_t j = 0; j < L; j++)
                for (int64_t i = 0; i < d; i++)
                    for (int64_t l = 0; l < d; l++)
                        C[i * d + l] += buf[j * d + i] * buf[j * d + l];
        }
    const double n = (double)(t->shape[0] * t->shape[1] * L);
    for (int64_t i = 0; i < d * d; i++)
        C[i] /= n;
}

rfjit_status rj_xform_plan_whiten(rfjit_plan *p, const rfjit_tensor *tq, const rfjit_tensor *tk,
                                  rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    RJ_TRY(rj_tensor_check(tq, "calib_q", false, dg));
    RJ_TRY(rj_tensor_check(tk, "calib_k", false, dg));
    RJ_FAIL_IF(dg, tq->shape[3] != s->d || tk->shape[3] != s->d, RFJIT_E_SHAPE,
               "calibration samples must have last dimension d = %d", s->d);
    RJ_TRY(rj_tensor_check_finite(tq, "calib_q", dg));
    RJ_TRY(rj_tensor_check_finite(tk, "calib_k", dg));
    const int64_t d = s->d, rows = tq->shape[2] > tk->shape[2] ? tq->shape[2] : tk->shape[2];
    double *buf = rj_alloc_array((size_t)(rows * d + 9 * d * d + 2 * d), sizeof(double));
    double *A = rj_alloc_array(2 * (size_t)(d * d), sizeof(double));
    if (!buf || !A) {
        rj_free(buf);
        rj_free(A);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory to whiten the calibration sample");
    }
    double *Cq = buf + rows * d, *Ck = Cq + d * d;
    pooled_cov(s, 0, tq, buf, Cq);
    pooled_cov(s, 1, tk, buf, Ck);
    if (whitening(d, Cq, Ck, A, A + d * d, Ck + d * d))
        p->xA = A;
    else
        rj_free(A);
    rj_free(buf);
    return RFJIT_OK;
}

void rj_xform_calib_scales(const rj_spec *s, const rfjit_tensor *t[2], double *buf, double *m2,
                           double *a)
{
    const int64_t d = s->d;
    memset(m2, 0, 2 * (size_t)d * sizeof(double));
    int64_t n[2] = {0, 0};
    for (int role = 0; role < 2; role++)
        for (int64_t b = 0; b < t[role]->shape[0]; b++)
            for (int64_t h = 0; h < t[role]->shape[1]; h++) {
                const int64_t L = t[role]->shape[2];
                rj_tensor_gather(t[role], b, h, 1.0, buf);
                centre_rows(s, role, buf, L);
                for (int64_t j = 0; j < L * d; j++)
                    m2[role * d + j % d] += buf[j] * buf[j];
                n[role] += L;
            }
    for (int64_t i = 0; i < d; i++) {
        const double r = (m2[d + i] / (double)n[1]) / (m2[i] / (double)n[0]);
        a[i] = (s->xform & (RFJIT_XFORM_BALANCE | RFJIT_XFORM_WHITEN)) && isfinite(r) &&
                       r > 1e-12 && r < 1e12
                   ? sqrt(sqrt(r))
                   : 1;
    }
}
