/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference random-feature linear attention (spec estimators.md 1.1, 1.2)
 * with the exact log-domain stabilisation of 1.4, for one (batch, head), in double. It is the
 * oracle the JIT's linear template is tested against and the fallback backend; it is not
 * fast (one scalar pass, features recomputed rather than stored).
 *
 * With phi = e^h f (est.h) for queries (h_i, f_i) and keys (h_j, f_j):
 *
 *     S = sum_j e^{h_j - c} f_j v_j^T   (M x dv)      z = sum_j e^{h_j - c} f_j   (M)
 *     num_i = f_i^T S,   den_i = f_i . z,   out_i = num_i / den_i
 *
 * The query's e^{h_i} cancels in its own ratio and the keys' common e^{-c} cancels between
 * num and den, so out_i is the mathematically exact estimator for any c; c = max_j h_j keeps
 * every key weight <= 1, and exponential estimators keep max_r f_r = 1, so nothing overflows
 * for |x|, |y| up to a few hundred (1e3 raw at d = 64) where e^h itself would.
 *
 * Bidirectional: a first pass over the keys finds c = max_j h_j, a second accumulates
 * (S, z) with that fixed shift (the features are recomputed; storing them would cost Lk x M).
 * Causal, or per-query visible-key counts nvis (query i sees keys 0 .. nvis[i] - 1, nvis
 * non-decreasing; causal without nvis is nvis[i] = i + 1): one pass, the keys below nvis[i]
 * absorbed before query i; a running maximum c_t, with (S, z, zabs) multiplied by
 * e^{c_old - c_new} when it grows (online-softmax style), so output i depends on its visible
 * keys only and the prefix property holds bit for bit. nvis with every entry lk is the
 * bidirectional case and takes its two passes.
 *
 * Denominator guard (ref.h). zabs = sum_j e^{h_j - c} |f_j| gives the cancellation-free
 * scale g_i = sum_r |f_ir| zabs_r >= |den_i|. For signed estimators (RJ_EST_SIGNED) a
 * |den_i| < DEN_EPS g_i is replaced by sign(den_i) DEN_EPS g_i (+ for 0), so a near-zero
 * signed denominator cannot blow an output up by more than 1 / DEN_EPS. Unsigned features
 * are >= 0, so g_i = den_i and zabs is not kept. g_i = 0 (no key reaches the query in
 * double, or no key at all) gives a zero output row: there is nothing to average.
 */
#include "est/ref.h"

#include <math.h>

/* Relative denominator floor of ref.h; also the size of the JAX reference's stabiliser
 * (numerical_stabilizer = 1e-6, spec 1.1), here relative instead of absolute. */
#define DEN_EPS 1e-6

typedef struct lin_state {
    int64_t M;
    int dv;
    bool keep_abs;        /* signed features: zabs is needed for the guard */
    double c;             /* current key shift; -inf while no key contributed */
    double *S, *z, *zabs; /* M x dv, M, M (zabs only if keep_abs) */
} lin_state;

static void rescale(lin_state *st, double factor)
{
    const int64_t n = st->M * st->dv;
    for (int64_t i = 0; i < n; i++)
        st->S[i] *= factor;
    for (int64_t r = 0; r < st->M; r++)
        st->z[r] *= factor;
    if (st->keep_abs)
        for (int64_t r = 0; r < st->M; r++)
            st->zabs[r] *= factor;
}

/* (S, z, zabs) += e^{h - c} f v^T with the current shift c (h <= c by the caller). */
static void accumulate(lin_state *st, double h, const double *f, const double *v)
{
    const double w = exp(h - st->c);
    for (int64_t r = 0; r < st->M; r++) {
        const double wf = w * f[r];
        if (wf == 0)
            continue;
        double *Sr = st->S + r * st->dv;
        for (int a = 0; a < st->dv; a++)
            Sr[a] += wf * v[a];
        st->z[r] += wf;
        if (st->keep_abs)
            st->zabs[r] += fabs(wf);
    }
}

/* Causal step: raise the running shift to h if needed, then accumulate. A key whose
 * features all underflowed (h = -inf) contributes nothing and never moves c. */
static void add_key_running(lin_state *st, double h, const double *f, const double *v)
{
    if (h == -INFINITY)
        return;
    if (h > st->c) {
        if (st->c != -INFINITY)
            rescale(st, exp(st->c - h));
        st->c = h;
    }
    accumulate(st, h, f, v);
}

/* out = (f^T S) / (f . z) with the guard described at the top of the file. */
static void query(const lin_state *st, const double *f, double *out)
{
    double den = 0, g = 0;
    for (int a = 0; a < st->dv; a++)
        out[a] = 0;
    for (int64_t r = 0; r < st->M; r++) {
        if (f[r] == 0)
            continue;
        const double *Sr = st->S + r * st->dv;
        for (int a = 0; a < st->dv; a++)
            out[a] += f[r] * Sr[a];
        den += f[r] * st->z[r];
        if (st->keep_abs)
            g += fabs(f[r]) * st->zabs[r];
    }
    if (!st->keep_abs)
        g = den;
    /* g == 0, not !(g > 0): a NaN from a broken feature map must propagate, not vanish */
    if (g == 0) {
        for (int a = 0; a < st->dv; a++)
            out[a] = 0;
        return;
    }
    if (fabs(den) < DEN_EPS * g)
        den = (den < 0 ? -DEN_EPS : DEN_EPS) * g;
    for (int a = 0; a < st->dv; a++)
        out[a] /= den;
}

/* Whether nvis says anything beyond "every key": some query sees fewer than lk. */
static bool prefix_visibility(const rj_spec *s, const int64_t *nvis, int64_t lq, int64_t lk)
{
    if (!nvis)
        return s->causal;
    return lq > 0 && nvis[0] < lk; /* non-decreasing: the first count is the smallest */
}

/* Key j's features, its log-scale raised by its exact log-weight if there are any. */
static void key_features(const rj_spec *s, const double *params, const double *y,
                         const double *ylog, int64_t j, double *h, double *f)
{
    s->est->features(s, params, RJ_ROLE_K, y + j * s->d, h, f);
    if (ylog)
        *h += ylog[j];
}

rfjit_status rj_ref_linear(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    return rj_ref_linear_keyw(s, params, x, lq, y, NULL, v, lk, nvis, out, dg);
}

rfjit_status rj_ref_linear_keyw(const rj_spec *s, const double *params, const double *x, int64_t lq,
                                const double *y, const double *ylog, const double *v, int64_t lk,
                                const int64_t *nvis, double *out, rj_diag *dg)
{
    const rj_est_ops *e = s->est;
    RJ_FAIL_IF(dg, e->tmpl != RJ_TMPL_LINEAR || !e->features, RFJIT_E_INTERNAL,
               "estimator '%s' has no feature map for linear attention", e->name);
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    const int64_t M = e->feature_dim(s);
    RJ_FAIL_IF(dg, M < 1 || s->dv < 1, RFJIT_E_INTERNAL,
               "linear attention with M = %lld features and dv = %d", (long long)M, s->dv);
    const bool keep_abs = (e->flags & RJ_EST_SIGNED) != 0;
    lin_state st = {M, s->dv, keep_abs, -INFINITY, NULL, NULL, NULL};
    st.S = rj_alloc_array_zero((size_t)M, (size_t)s->dv * sizeof(double));
    st.z = rj_alloc_array_zero((size_t)M, sizeof(double));
    st.zabs = keep_abs ? rj_alloc_array_zero((size_t)M, sizeof(double)) : NULL;
    double *f = rj_alloc_array((size_t)M, sizeof(double));
    rfjit_status r = RFJIT_OK;
    if (!st.S || !st.z || (keep_abs && !st.zabs) || !f) {
        r = rj_fail(dg, RFJIT_E_NOMEM, "no memory for a %lld x %d linear-attention state",
                    (long long)M, s->dv);
        goto done;
    }
    const int d = s->d, dv = s->dv;
    double h;
    if (!prefix_visibility(s, nvis, lq, lk)) {
        /* pass 1: the shift c = max_j h_j (keys with h = -inf never raise it) */
        for (int64_t j = 0; j < lk; j++) {
            key_features(s, params, y, ylog, j, &h, f);
            if (h > st.c)
                st.c = h;
        }
        /* pass 2: (S, z, zabs) with that fixed shift; the features are a pure function of
         * the row, so h is the same value pass 1 saw and h - c <= 0 */
        if (st.c != -INFINITY)
            for (int64_t j = 0; j < lk; j++) {
                key_features(s, params, y, ylog, j, &h, f);
                if (h != -INFINITY)
                    accumulate(&st, h, f, v + j * dv);
            }
        for (int64_t i = 0; i < lq; i++) {
            e->features(s, params, RJ_ROLE_Q, x + i * d, &h, f);
            query(&st, f, out + i * dv);
        }
    } else {
        int64_t t = 0; /* keys absorbed so far */
        for (int64_t i = 0; i < lq; i++) {
            for (const int64_t n = nvis ? nvis[i] : i + 1; t < n; t++) {
                key_features(s, params, y, ylog, t, &h, f);
                add_key_running(&st, h, f, v + t * dv);
            }
            e->features(s, params, RJ_ROLE_Q, x + i * d, &h, f);
            query(&st, f, out + i * dv);
        }
    }
done:
    rj_free(st.S);
    rj_free(st.z);
    rj_free(st.zabs);
    rj_free(f);
    return r;
}
