/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference linear attention (spec estimators.md 1.1, 1.2) with the exact
 * log-domain stabilisation of 1.4, for one (batch, head), in double:
 *
 *     S = sum_j e^{h_j - c} f_j v_j^T,   z = sum_j e^{h_j - c} f_j      (keys)
 *     out_i = (f_i^T S) / (f_i . z)                                       (queries)
 *
 * phi = e^h f (est.h): the query's e^{h_i} cancels in its own ratio, and the keys' common
 * shift e^{-c} cancels too, so the output is the mathematically exact estimator whatever c is;
 * c = max h_j keeps every weight <= 1. Causal mode keeps a running max c_t and rescales
 * (S, z, zabs) by e^{c_old - c_new} when it grows (online-softmax style), so one pass suffices
 * and no future key influences a past output. The denominator guard is relative (ref.h).
 */
#include "ref.h"

#include <math.h>
#include <string.h>

#define DEN_EPS 1e-6

typedef struct lin_state {
    int64_t M;
    int dv;
    double c;             /* current key shift */
    double *S, *z, *zabs; /* M x dv, M, M */
} lin_state;

static void rescale(lin_state *st, double factor)
{
    for (int64_t i = 0; i < st->M * st->dv; i++)
        st->S[i] *= factor;
    for (int64_t r = 0; r < st->M; r++) {
        st->z[r] *= factor;
        st->zabs[r] *= factor;
    }
}

static void add_key(lin_state *st, double h, const double *f, const double *v)
{
    if (h == -INFINITY) /* a key whose features all underflow contributes nothing */
        return;
    if (h > st->c) {
        if (isfinite(st->c))
            rescale(st, exp(st->c - h));
        st->c = h;
    }
    const double w = exp(h - st->c);
    for (int64_t r = 0; r < st->M; r++) {
        const double wf = w * f[r];
        if (wf == 0)
            continue;
        double *Sr = st->S + r * st->dv;
        for (int c = 0; c < st->dv; c++)
            Sr[c] += wf * v[c];
        st->z[r] += wf;
        st->zabs[r] += fabs(wf);
    }
}

static void query(const lin_state *st, const double *f, double *out)
{
    double den = 0, den_scale = 0;
    for (int c = 0; c < st->dv; c++)
        out[c] = 0;
    for (int64_t r = 0; r < st->M; r++) {
        if (f[r] == 0)
            continue;
        const double *Sr = st->S + r * st->dv;
        for (int c = 0; c < st->dv; c++)
            out[c] += f[r] * Sr[c];
        den += f[r] * st->z[r];
        den_scale += fabs(f[r]) * st->zabs[r];
    }
    if (den_scale == 0) { /* no key reachable in double: nothing to average */
        for (int c = 0; c < st->dv; c++)
            out[c] = 0;
        return;
    }
    if (fabs(den) < DEN_EPS * den_scale)
        den = (den < 0 ? -DEN_EPS : DEN_EPS) * den_scale;
    for (int c = 0; c < st->dv; c++)
        out[c] /= den;
}

rfjit_status rj_ref_linear(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, double *out,
                           rj_diag *dg)
{
    RJ_FAIL_IF(dg, s->causal && lq != lk, RFJIT_E_SHAPE,
               "causal attention needs lq == lk (%lld vs %lld)", (long long)lq, (long long)lk);
    const int64_t M = s->est->feature_dim(s);
    lin_state st = {M, s->dv, -INFINITY, NULL, NULL, NULL};
    st.S = rj_alloc_array_zero((size_t)M * (size_t)s->dv, sizeof(double));
    st.z = rj_alloc_array_zero((size_t)M, sizeof(double));
    st.zabs = rj_alloc_array_zero((size_t)M, sizeof(double));
    double *f = rj_alloc_array((size_t)M, sizeof(double));
    rfjit_status r = RFJIT_OK;
    if (!st.S || !st.z || !st.zabs || !f) {
        r = rj_fail(dg, RFJIT_E_NOMEM, "no memory for a %lld x %d attention state",
                    (long long)M, s->dv);
        goto done;
    }
    double h;
    if (!s->causal) {
        for (int64_t j = 0; j < lk; j++) {
            s->est->features(s, params, RJ_ROLE_K, y + j * s->d, &h, f);
            add_key(&st, h, f, v + j * s->dv);
        }
        for (int64_t i = 0; i < lq; i++) {
            s->est->features(s, params, RJ_ROLE_Q, x + i * s->d, &h, f);
            query(&st, f, out + i * s->dv);
        }
    } else {
        for (int64_t t = 0; t < lk; t++) {
            s->est->features(s, params, RJ_ROLE_K, y + t * s->d, &h, f);
            add_key(&st, h, f, v + t * s->dv);
            s->est->features(s, params, RJ_ROLE_Q, x + t * s->d, &h, f);
            query(&st, f, out + t * s->dv);
        }
    }
done:
    rj_free(st.S);
    rj_free(st.z);
    rj_free(st.zabs);
    rj_free(f);
    return r;
}
