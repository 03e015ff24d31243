/* SPDX-License-Identifier: MIT */
/*
 * This file is EVA, control-variate attention (spec estimators.md 6.3-6.5), in a principled
 * form without learned maps. Keys are split into C chunks P_c of s = ceil(Lk / C) positions;
 * query i has a local window Block(i) = [b w, (b+1) w), b = i / w (empty for w = 0), and sees
 * V(i) = all keys (bidirectional) or keys j <= i (causal).
 *
 *   chunk c is summarised for query i  <=>  P_c misses Block(i) and P_c is inside V(i)
 *   exact set E(i) = union of the other chunks' visible keys (Block(i) lies inside it)
 *
 * so every visible key is counted once, exactly or through one summary (the public code
 * double counts; pitfall 15). A summary is (kbar_c, n_c, beta_c) with the SNIS control-variate
 * coefficient of 6.4 for one proposal sample w_c ~ N(qbar_c + kbar_c, I):
 *
 *   beta_c = sum_{j in P_c} xi(y_j, w_c) v_j / sum_{j in P_c} xi(y_j, w_c),
 *   xi(y, w) = exp(w.y - |y|^2/2)                       (query-independent: 6.4)
 *
 * and the output is a softmax over |E(i)| + (#summaries) logits (6.4, linear-time form):
 *
 *   logits [x_i.y_j, j in E(i)] ++ [x_i.kbar_c + ln n_c],  out_i = sum a_j v_j + sum a_c beta_c
 *
 * ln n_c makes e^{x.kbar} n_c the chunk mass estimate (the public code omits it). Identities
 * (check C3): w = 0, C = 1, bidirectional gives beta_1 (single-sample RFA); chunk size 1 gives
 * exact softmax; w >= Lk gives exact softmax. Causal outputs depend only on the past because a
 * summarised chunk lies entirely in the past, its queries included. With Lq != Lk (cross
 * attention) qbar_c is not defined and the proposal mean is 2 kbar_c. Parameters: the proposal
 * noise eps_c ~ N(0, I_d), c < C, from RJ_STREAM_EVA (C x d).
 */
#include "est.h"

#include "../philox.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int64_t feature_dim(const rj_spec *s)
{
    (void)s;
    return 0;
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (s->d < 1 || s->d > RJ_MAX_D || s->dv < 1) {
        snprintf(why, n, "d = %d, dv = %d out of range", s->d, s->dv);
        return false;
    }
    if (s->eva_window < 0) {
        snprintf(why, n, "eva window %d must be >= 0", s->eva_window);
        return false;
    }
    if (s->eva_chunks < 1 || s->eva_chunks > (1 << 20)) {
        snprintf(why, n, "eva chunk count %d must be in [1, 2^20]", s->eva_chunks);
        return false;
    }
    return true;
}

static size_t params_size(const rj_spec *s)
{
    return (size_t)s->eva_chunks * (size_t)s->d;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)W, (void)st, (void)dg;
    for (int c = 0; c < s->eva_chunks; c++)
        rj_normals(seed, RJ_STREAM_EVA, (uint32_t)c, params + (size_t)c * s->d, (size_t)s->d);
    if (info)
        info->A = info->rho = NAN;
    return RFJIT_OK;
}

typedef struct chunk_summary {
    double *kbar, *beta, logn; /* d, dv, ln n_c */
} chunk_summary;

/* kbar_c, beta_c for chunk [lo, hi) with proposal noise eps. wbuf: d scratch. */
static void summarise(const rj_spec *s, const double *x, int64_t lq, const double *y,
                      const double *v, int64_t lk, int64_t lo, int64_t hi, const double *eps,
                      double *wbuf, double *kbar, double *beta)
{
    const int d = s->d, dv = s->dv;
    const double n = (double)(hi - lo);
    for (int a = 0; a < d; a++) {
        double sk = 0, sq = 0;
        for (int64_t j = lo; j < hi; j++) {
            sk += y[j * d + a];
            if (lq == lk)
                sq += x[j * d + a];
        }
        kbar[a] = sk / n;
        wbuf[a] = (lq == lk ? sq / n : kbar[a]) + kbar[a] + eps[a];
    }
    /* log xi_j = w.y_j - |y_j|^2/2, shifted by its max before exponentiating */
    double amax = -INFINITY;
    for (int64_t j = lo; j < hi; j++) {
        double a = 0, sq = 0;
        for (int c = 0; c < d; c++) {
            a += wbuf[c] * y[j * d + c];
            sq += y[j * d + c] * y[j * d + c];
        }
        amax = fmax(amax, a - 0.5 * sq);
    }
    double Z = 0;
    for (int c = 0; c < dv; c++)
        beta[c] = 0;
    for (int64_t j = lo; j < hi; j++) {
        double a = 0, sq = 0;
        for (int c = 0; c < d; c++) {
            a += wbuf[c] * y[j * d + c];
            sq += y[j * d + c] * y[j * d + c];
        }
        const double xi = exp(a - 0.5 * sq - amax);
        Z += xi;
        for (int c = 0; c < dv; c++)
            beta[c] += xi * v[j * dv + c];
    }
    for (int c = 0; c < dv; c++)
        beta[c] /= Z;
}

static double dot(const double *a, const double *b, int n)
{
    double r = 0;
    for (int i = 0; i < n; i++)
        r += a[i] * b[i];
    return r;
}

static rfjit_status attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, double *out,
                           rj_diag *dg)
{
    RJ_FAIL_IF(dg, s->causal && lq != lk, RFJIT_E_SHAPE,
               "causal attention needs lq == lk (%lld vs %lld)", (long long)lq, (long long)lk);
    const int d = s->d, dv = s->dv;
    const int64_t size = (lk + s->eva_chunks - 1) / s->eva_chunks;
    const int64_t nc = (lk + size - 1) / size, w = s->eva_window;
    double *kbar = rj_alloc_array((size_t)nc * (size_t)d, sizeof(double));
    double *beta = rj_alloc_array((size_t)nc * (size_t)dv, sizeof(double));
    double *logit = rj_alloc_array((size_t)(lk + nc), sizeof(double));
    double *wbuf = rj_alloc_array((size_t)d, sizeof(double));
    if (!kbar || !beta || !logit || !wbuf) {
        rj_free(kbar), rj_free(beta), rj_free(logit), rj_free(wbuf);
        return rj_fail(dg, RFJIT_E_NOMEM, "eva: no memory for %lld chunks", (long long)nc);
    }
    for (int64_t c = 0; c < nc; c++) {
        const int64_t lo = c * size, hi = lo + size < lk ? lo + size : lk;
        summarise(s, x, lq, y, v, lk, lo, hi, params + c * d, wbuf, kbar + c * d,
                  beta + c * dv);
    }
    for (int64_t i = 0; i < lq; i++) {
        const int64_t blo = w > 0 ? (i / w) * w : 0, bhi = w > 0 ? blo + w : 0;
        const int64_t vis = s->causal ? i + 1 : lk; /* keys [0, vis) visible */
        const double *xi = x + i * d;
        /* logits in a fixed order: chunk by chunk, its exact keys or its summary */
        int64_t nl = 0;
        double mx = -INFINITY;
        for (int64_t c = 0; c < nc; c++) {
            const int64_t lo = c * size, hi = lo + size < lk ? lo + size : lk;
            if (lo >= vis)
                break;
            const int summarised = (hi <= blo || lo >= bhi) && hi <= vis;
            if (summarised) {
                logit[nl] = dot(xi, kbar + c * d, d) + log((double)(hi - lo));
                mx = fmax(mx, logit[nl++]);
            } else {
                for (int64_t j = lo; j < hi && j < vis; j++) {
                    logit[nl] = dot(xi, y + j * d, d);
                    mx = fmax(mx, logit[nl++]);
                }
            }
        }
        double *o = out + i * dv, Z = 0;
        for (int c = 0; c < dv; c++)
            o[c] = 0;
        nl = 0;
        for (int64_t c = 0; c < nc; c++) {
            const int64_t lo = c * size, hi = lo + size < lk ? lo + size : lk;
            if (lo >= vis)
                break;
            const int summarised = (hi <= blo || lo >= bhi) && hi <= vis;
            const int64_t count = summarised ? 1 : (hi < vis ? hi : vis) - lo;
            for (int64_t t = 0; t < count; t++) {
                const double a = exp(logit[nl++] - mx);
                const double *val = summarised ? beta + c * dv : v + (lo + t) * dv;
                Z += a;
                for (int cc = 0; cc < dv; cc++)
                    o[cc] += a * val[cc];
            }
        }
        for (int c = 0; c < dv; c++)
            o[c] /= Z;
    }
    rj_free(kbar), rj_free(beta), rj_free(logit), rj_free(wbuf);
    return RFJIT_OK;
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)s, (void)params, (void)x, (void)y;
    return NAN; /* EVA is biased and has no closed-form kernel variance */
}

/* Per token: window and chunk logits and values, plus the per-key summary work (means,
 * w.y and |y|^2, beta accumulation). */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv;
    *flops = 2.0 * (s->eva_window + s->eva_chunks) * (d + dv) + 6 * d + 2 * dv;
    *bytes = 4.0 * (2 * d + 2 * dv);
}

const rj_est_ops rj_est_eva = {
    .name = "eva",
    .version = 1,
    .tmpl = RJ_TMPL_EVA,
    .flags = RJ_EST_NOPROJ,
    .proj_kinds = 7u,
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = params_size,
    .fit = fit,
    .attend = attend,
    .variance = variance,
    .cost = cost,
    .ref_tol = 1e-4,
};
