/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference attention of the compatibility modes (rfjit.h,
 * rfjit_attn_desc.compat): another implementation's numerics at its defaults, transcribed as
 * math and computed in double, for one (batch, head). The keys are the call's visible ones,
 * compacted (exec_ref.c), so a masked key takes no part, not even in a maximum.
 *
 * performer-pytorch 1.1.4 (softmax_kernel, linear_attention, causal_linear_attention and its
 * CPU twin) and Google's Performer (fast_attention.py: nonnegative_softmax_kernel_feature_
 * creator, FastAttentionviaLowRankDecomposition) share one feature map. With dash = W x and
 * diag = |x|^2 / 2 of the scaled row x:
 *
 *     phi(x)_r = m^{-1/2} (e^{dash_r - diag - c} + eps)
 *     c = max_r dash_r of the row for a query, the maximum over every key and r for a key
 *
 * The keys' c spans the whole sequence even in causal attention, so a later key changes an
 * earlier output through it: the future leaks. Models were trained with it, so it is
 * reproduced. Decoding cannot revise rows it has returned: a decode step's row t is this
 * attention over tokens 0 .. t at row t (c over those tokens), a prefill's rows this
 * attention over the prompt (c over all of it), and earlier rows stay as they were returned
 * when a later key raises c (runtime/decode_compat.c; performer-pytorch's generator, which
 * reruns the whole sequence per token, recomputes them). The float32 path of the two
 * Performer modes (runtime/exec_compat.c) is held to this reference within 1e-5 of the
 * output's largest entry; Google's trig map and fast-transformers run only here.
 *
 * eps = 1e-4 (performer-pytorch) or 1e-6 (Google). With S = sum_j phi_k,j v_j^T and
 * z = sum_j phi_k,j over the keys query i sees, out_i = phi_q,i^T S / R_i:
 *
 *     performer-pytorch  R_i = phi_q,i . z bidirectional, phi_q,i . (z + 1e-6) causal (its
 *                        causal code adds 1e-6 to every element of the cumulative key sum,
 *                        after the m^{-1/2}, so that factor no longer cancels there)
 *     Google             R_i = phi_q,i . z, plus 2e-6 where |R_i| <= 1e-6
 *
 * Google's code also has the trig map (sincos_softmax_kernel_feature_creator, with
 * nonnegative_features=False): phi(x) = m^{-1/2} e^{diag - D} [cos dash ; sin dash], D the
 * largest diag over the whole sequence, the queries' for a query and the keys' for a key
 * (so in causal attention the later queries and keys move R_i, and with it the guard), and
 * the same normaliser guard.
 *
 * fast-transformers (feature_maps/fourier_features.py Favor without stabilize, the defaults of
 * attention/linear_attention.py and causal_linear_attention.py) is the hyperbolic map as it
 * stands, phi = e^h f (est.h), and R_i = phi_q,i . z + 1e-6. Its features are kept in the log
 * domain: keys weighted by e^{h_j - c}, c = max_j h_j, queries by nothing, so the absolute
 * 1e-6 becomes 1e-6 e^{-(h_i + c)} against the shifted sums and neither overflows. c is exact
 * for any value (it cancels); wherever float32 features are finite, h_j - c > -200 and no key
 * underflows in double.
 *
 * A query that sees no key gets a zero row, as everywhere in rfjit (these codes give S = 0
 * over R > 0 there, but for performer-pytorch's bidirectional 0 / 0).
 */
#include "est/ref.h"

#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define PT_FEATURE_EPS 1e-4 /* performer-pytorch softmax_kernel(eps) */
#define PT_CUMSUM_EPS 1e-6  /* performer-pytorch causal_linear_attention*(eps) */
#define GOOGLE_EPS 1e-6     /* fast_attention.py numerical_stabilizer */
#define FT_EPS 1e-6         /* fast-transformers LinearAttention / CausalLinearAttention eps */

const char *rj_compat_estimators(int compat)
{
    switch (compat) {
    case RJ_COMPAT_PERFORMER_PYTORCH:
        return "'positive'";
    case RJ_COMPAT_GOOGLE_PERFORMER:
        return "'positive' and 'trig'";
    case RJ_COMPAT_FAST_TRANSFORMERS:
        return "'hyperbolic'";
    default:
        return NULL;
    }
}

bool rj_compat_applies(int compat, const rj_est_ops *e)
{
    const char *names = rj_compat_estimators(compat);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "'%s'", e->name);
    return compat == RJ_COMPAT_NONE || (names && strstr(names, quoted));
}

typedef struct cstate {
    const rj_spec *s;
    const double *W; /* the estimator's parameters: W (m x d) for positive, hyperbolic, trig */
    int64_t M;
    double c;        /* the keys' shift: Performer's whole-sequence max, max h (Favor), or the
                        largest diag (Google's trig) */
    double cq;       /* Google's trig: the queries' largest diag */
    double *S, *z;   /* M x dv, M */
    double *phi, *u; /* one row's features (M) and projections (m) */
} cstate;

static bool sincos(const rj_spec *s)
{
    return s->compat == RJ_COMPAT_GOOGLE_PERFORMER && strcmp(s->est->name, "trig") == 0;
}

static bool performer(const rj_spec *s)
{
    return (s->compat == RJ_COMPAT_PERFORMER_PYTORCH || s->compat == RJ_COMPAT_GOOGLE_PERFORMER) &&
           !sincos(s);
}

/* Google's trig phi of x into st->phi: m^{-1/2} e^{diag - c} [cos ; sin] (the estimator's f
 * is [cos ; sin]). */
static void sincos_phi(const cstate *st, const double *x, rj_role role, double c)
{
    const rj_spec *s = st->s;
    double h;
    s->est->features(s, st->W, role, x, &h, st->phi);
    const double w = exp(0.5 * rj_est_sqnorm(s->d, x) - c) / sqrt((double)s->m);
    for (int64_t r = 0; r < st->M; r++)
        st->phi[r] *= w;
}

/* The largest diag = |x|^2 / 2 of n rows. */
static double max_diag(const rj_spec *s, const double *x, int64_t n)
{
    double c = -INFINITY;
    for (int64_t j = 0; j < n; j++)
        c = fmax(c, 0.5 * rj_est_sqnorm(s->d, x + j * s->d));
    return c;
}

/* u = W x; returns max_r u_r. */
static double project(const cstate *st, const double *x)
{
    const int d = st->s->d;
    double umax = -INFINITY;
    for (int r = 0; r < st->s->m; r++) {
        const double *w = st->W + (size_t)r * (size_t)d;
        double u = 0;
        for (int j = 0; j < d; j++)
            u += w[j] * x[j];
        st->u[r] = u;
        if (u > umax)
            umax = u;
    }
    return umax;
}

/* Performer's phi of x into st->phi, shifted by c (NAN: the row's own max, a query's). */
static void performer_phi(const cstate *st, const double *x, double c)
{
    const rj_spec *s = st->s;
    const double eps = s->compat == RJ_COMPAT_PERFORMER_PYTORCH ? PT_FEATURE_EPS : GOOGLE_EPS;
    const double umax = project(st, x);
    const double shift = isnan(c) ? umax : c;
    const double diag = 0.5 * rj_est_sqnorm(s->d, x), ratio = 1 / sqrt((double)s->m);
    for (int r = 0; r < s->m; r++)
        st->phi[r] = ratio * (exp(st->u[r] - diag - shift) + eps);
}

/* The keys' shift: the largest dash (Performer) or h (Favor) over all nk keys. */
static double key_shift(cstate *st, const double *y, int64_t nk)
{
    const rj_spec *s = st->s;
    double c = -INFINITY, h;
    if (sincos(s))
        return max_diag(s, y, nk);
    for (int64_t j = 0; j < nk; j++) {
        const double *row = y + j * s->d;
        if (performer(s)) {
            h = project(st, row);
        } else {
            s->est->features(s, st->W, RJ_ROLE_K, row, &h, st->phi);
        }
        if (h > c)
            c = h;
    }
    return c;
}

/* (S, z) += phi_k v^T for one key. */
static void add_key(cstate *st, const double *y, const double *v)
{
    const rj_spec *s = st->s;
    double w = 1, h;
    if (performer(s)) {
        performer_phi(st, y, st->c);
    } else if (sincos(s)) {
        sincos_phi(st, y, RJ_ROLE_K, st->c);
    } else {
        s->est->features(s, st->W, RJ_ROLE_K, y, &h, st->phi);
        w = exp(h - st->c);
    }
    for (int64_t r = 0; r < st->M; r++) {
        const double p = w * st->phi[r];
        double *Sr = st->S + r * s->dv;
        for (int a = 0; a < s->dv; a++)
            Sr[a] += p * v[a];
        st->z[r] += p;
    }
}

/* out = phi_q^T S / R with the mode's normaliser (top of the file). */
static void query(const cstate *st, const double *x, double *out)
{
    const rj_spec *s = st->s;
    double h = 0, den = 0, qsum = 0;
    if (performer(s))
        performer_phi(st, x, NAN);
    else if (sincos(s))
        sincos_phi(st, x, RJ_ROLE_Q, st->cq);
    else
        s->est->features(s, st->W, RJ_ROLE_Q, x, &h, st->phi);
    memset(out, 0, (size_t)s->dv * sizeof *out);
    for (int64_t r = 0; r < st->M; r++) {
        const double p = st->phi[r];
        const double *Sr = st->S + r * s->dv;
        for (int a = 0; a < s->dv; a++)
            out[a] += p * Sr[a];
        den += p * st->z[r];
        qsum += p;
    }
    if (s->compat == RJ_COMPAT_PERFORMER_PYTORCH && s->causal)
        den += PT_CUMSUM_EPS * qsum;
    else if (s->compat == RJ_COMPAT_GOOGLE_PERFORMER && fabs(den) <= GOOGLE_EPS)
        den += 2 * GOOGLE_EPS;
    else if (s->compat == RJ_COMPAT_FAST_TRANSFORMERS)
        den += FT_EPS * exp(-(h + st->c));
    if (den == 0) { /* no key reaches the query: nothing to average */
        memset(out, 0, (size_t)s->dv * sizeof *out);
        return;
    }
    for (int a = 0; a < s->dv; a++)
        out[a] /= den;
}

rfjit_status rj_ref_compat(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !rj_compat_applies(s->compat, s->est) || s->compat == RJ_COMPAT_NONE,
               RFJIT_E_INTERNAL, "compat mode %d does not apply to estimator '%s'", s->compat,
               s->est->name);
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    cstate st = {s, params, s->est->feature_dim(s), 0, 0, NULL, NULL, NULL, NULL};
    st.S = rj_alloc_array_zero((size_t)st.M, (size_t)s->dv * sizeof(double));
    st.z = rj_alloc_array_zero((size_t)st.M, sizeof(double));
    st.phi = rj_alloc_array((size_t)st.M, sizeof(double));
    st.u = rj_alloc_array((size_t)s->m, sizeof(double));
    rfjit_status r = RFJIT_OK;
    if (!st.S || !st.z || !st.phi || !st.u) {
        r = rj_fail(dg, RFJIT_E_NOMEM, "no memory for a %lld x %d compat attention state",
                    (long long)st.M, s->dv);
    } else {
        st.c = key_shift(&st, y, lk);
        st.cq = sincos(s) ? max_diag(s, x, lq) : 0;
        int64_t t = 0; /* keys absorbed so far */
        for (int64_t i = 0; i < lq; i++) {
            const int64_t n = nvis ? nvis[i] : s->causal ? i + 1 : lk;
            for (; t < n; t++)
                add_key(&st, y + t * s->d, v + t * s->dv);
            query(&st, x + i * s->d, out + i * s->dv);
        }
    }
    rj_free(st.S);
    rj_free(st.z);
    rj_free(st.phi);
    rj_free(st.u);
    return r;
}
