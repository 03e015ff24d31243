/* SPDX-License-Identifier: MIT */
/*
 * This file is EVA, control-variate attention (spec estimators.md 6.2-6.5; Zheng et al.,
 * ICML 2022), in a principled form with no learned maps: the design fixed for rfjit from
 * 6.4, not the public code of 6.5 (see "differences" below).
 *
 * Keys are the visible keys of the call, compacted: masked and padding keys are removed
 * before EVA sees them, so every position below counts visible keys only, and a masked key
 * is in no chunk, no summary and no window. Query i sees the first nvis[i] of them (nvis
 * non-decreasing; without nvis, all keys, or i + 1 when causal with Lq = Lk), which expresses
 * a key mask, padding and the bottom-right causal offset (nvis[i] = number of visible keys
 * at positions <= i + Lk - Lq) alike.
 *
 * Partition, for query i (0-based positions over the compacted keys; Lq, Lk the lengths):
 *   anchor    p(i) = nvis[i] - 1 when causal (the query's own position, i without an
 *             offset or a mask), i when bidirectional
 *   window    Block(i) = [b w, (b+1) w), b = floor(p(i) / w), w = eva_window (empty if w = 0)
 *   chunks    P_c = [c s, (c+1) s) clipped to [0, Lk), s = ceil(Lk / C), C = eva_chunks
 *             (ceil(Lk / s) <= C chunks are non-empty; the rest are unused)
 *   visible   V(i) = keys j < nvis[i] (all keys when bidirectional without nvis)
 *   chunk c is summarised for query i  <=>  P_c misses Block(i) and P_c is inside V(i)
 *   exact set E(i) = (Block(i) u all non-summarised chunks) n V(i)
 *                  = the visible keys of the non-summarised chunks (Block(i) n V(i) lies in
 *                    chunks that meet Block(i), which are never summarised)
 * so every visible key counts exactly once: exactly, or through its chunk's summary.
 *
 * Summary of chunk c (n_c = |P_c| keys; query-independent, computed once per call):
 *   kbar_c = (1/n_c) sum_{j in P_c} y_j
 *   w_c    = qbar_c + kbar_c + eps_c,  qbar_c = (1/n_c) sum_{j in P_c} x_j   (aligned)
 *          = 2 kbar_c + eps_c                                              (otherwise:
 *            the queries at the chunk's positions are not all there, so kbar_c stands in
 *            for qbar_c). Aligned means bidirectional with Lq = Lk and no nvis (no key
 *            masked away). Causal calls always take 2 kbar_c: a chunked prefill call
 *            (Lq < Lk, bottom-right) lacks the earlier queries, and must equal the last
 *            Lq rows of the full causal call, so neither may use them.
 *   eps_c ~ N(0, I_d) from RJ_STREAM_EVA row c, drawn in fit() (params: C x d)
 *   xi(y, w) = exp(w.y - |y|^2/2)          (the positive random feature of 6.2, unnormalised)
 *   beta_c = sum_{j in P_c} xi(y_j, w_c) v_j / sum_{j in P_c} xi(y_j, w_c)
 * beta_c is the shared control-variate coefficient of 6.3/6.4 for one proposal sample w_c
 * drawn around the chunk's likely optimum (6.2: the proposal p_q is a mixture of N(q + k, I));
 * xi(q, w) and the proposal density cancel, which makes it query-independent. It is a convex
 * combination of the chunk's values, computed with the log-domain shift max_j log xi_j.
 *
 * Output (6.4, linear-time form; s_ij = x_i . y_j = scale q_i . k_j):
 *   logits  [ s_ij, j in E(i) ] ++ [ x_i . kbar_c + ln n_c, c summarised ]
 *   a = softmax(logits),   out_i = sum_{j in E(i)} a_j v_j + sum_c a_c beta_c
 * e^{x.kbar_c + ln n_c} = n_c e^{x.kbar_c} stands for the chunk's mass sum_{j in P_c} e^{s_ij}
 * (a lower bound by Jensen, exact when the chunk's keys coincide, in particular for n_c = 1).
 *
 * Identities (check C3, tested): w = 0, C = 1, bidirectional gives beta_1 for every query
 * (single-sample RFA with proposal w_1); chunk size 1 (C >= Lk) gives exact softmax
 * (kbar = y_j, ln 1 = 0, beta = v_j); w >= Lk gives exact softmax (Block(i) covers every key
 * for i < w); keys at 0 give the uniform average over V(i), i.e. exact softmax, for any w and
 * C, because each key is counted once (all logits are 0 or ln n_c, all xi are 1). Causal
 * prefix property: a summarised chunk lies entirely in V(i), its proposal uses its keys
 * only (2 kbar_c) and the exact keys are visible ones, so output i reads
 * positions < nvis[i] only, in an order that does not depend on later positions. The
 * chunking is of the whole call's visible keys, so a summary can differ from the one a call
 * cut at the query's prefix would make: EVA is defined per call, not per prefix.
 * A query with nvis[i] = 0 sees nothing and gets a zero row.
 *
 * Differences from the public code (6.5, pitfall 15): no learned maps (kbar_c is the chunk
 * representative, the proposal mean is qbar_c + kbar_c as in causal `qk` mode), one noise
 * sample per chunk always (also "in eval": the seed fixes it), the ln n_c count term, no
 * double counting of window keys, no padding, no overlap extension, sqrt(scale) scaling of
 * both x and y as everywhere in rfjit. EVA is biased; it has no closed-form kernel variance (NaN).
 */
#include "est/est.h"

#include "core/philox.h"
#include "est/est_common.h"

#include <math.h>
#include <stdio.h>

/* Largest chunk count: the noise block is C x d doubles. */
#define EVA_MAX_CHUNKS (1 << 20)

static int64_t feature_dim(const rj_spec *s)
{
    (void)s;
    return 0;
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (!rj_est_valid_ddv(s, why, n))
        return false;
    if (s->eva_window < 0) {
        snprintf(why, n, "eva window %d must be >= 0", s->eva_window);
        return false;
    }
    if (s->eva_chunks < 1 || s->eva_chunks > EVA_MAX_CHUNKS) {
        snprintf(why, n, "eva chunk count %d must be in [1, %d]", s->eva_chunks,
                 EVA_MAX_CHUNKS);
        return false;
    }
    return true;
}

static size_t params_size(const rj_spec *s)
{
    return (size_t)s->eva_chunks * (size_t)s->d;
}

/* eps_c = rj_normals(seed, RJ_STREAM_EVA, c) for c < C; W is unused (RJ_EST_NOPROJ). */
static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)W, (void)st, (void)dg;
    for (int c = 0; c < s->eva_chunks; c++)
        rj_normals(seed, RJ_STREAM_EVA, (uint32_t)c, params + (size_t)c * (size_t)s->d,
                   (size_t)s->d);
    if (info)
        info->A = info->rho = NAN;
    return RFJIT_OK;
}

static double dot(const double *a, const double *b, int n)
{
    double r = 0;
    for (int i = 0; i < n; i++)
        r += a[i] * b[i];
    return r;
}

/* The chunk partition of [0, lk): chunk c is [lo, hi). */
typedef struct chunking {
    int64_t size, count; /* s = ceil(lk / C), number of non-empty chunks */
} chunking;

static void chunk_range(const chunking *ch, int64_t lk, int64_t c, int64_t *lo, int64_t *hi)
{
    *lo = c * ch->size;
    *hi = *lo + ch->size < lk ? *lo + ch->size : lk;
}

/* kbar (d) and beta (dv) of the chunk [lo, hi) with proposal noise eps; xa: the queries
 * aligned with the keys, or NULL; w: d scratch. */
static void summarise(const rj_spec *s, const double *xa, const double *y, const double *v,
                      int64_t lo, int64_t hi, const double *eps, double *w, double *kbar,
                      double *beta)
{
    const int d = s->d, dv = s->dv;
    const double n = (double)(hi - lo);
    /* row by row, so the chunk streams once; each coordinate still sums in key order */
    for (int a = 0; a < d; a++)
        kbar[a] = w[a] = 0;
    for (int64_t j = lo; j < hi; j++)
        for (int a = 0; a < d; a++) {
            kbar[a] += y[j * d + a];
            if (xa)
                w[a] += xa[j * d + a];
        }
    for (int a = 0; a < d; a++) {
        kbar[a] /= n;
        w[a] = (xa ? w[a] / n : kbar[a]) + kbar[a] + eps[a];
    }
    /* log xi_j = w.y_j - |y_j|^2/2, exponentiated after subtracting the running maximum
     * (one pass: Z and beta are rescaled when the maximum grows) */
    double lmax = -INFINITY, Z = 0;
    for (int a = 0; a < dv; a++)
        beta[a] = 0;
    for (int64_t j = lo; j < hi; j++) {
        const double *yj = y + j * d;
        const double l = dot(w, yj, d) - 0.5 * dot(yj, yj, d);
        if (l > lmax) {
            const double r = exp(lmax - l); /* 0 for the first key */
            Z *= r;
            for (int a = 0; a < dv; a++)
                beta[a] *= r;
            lmax = l;
        }
        const double xi = exp(l - lmax);
        Z += xi;
        for (int a = 0; a < dv; a++)
            beta[a] += xi * v[j * dv + a];
    }
    for (int a = 0; a < dv; a++)
        beta[a] /= Z;
}

/* Whether chunk [lo, hi) is summarised for a query with window [blo, bhi) and visible keys
 * [0, vis): it misses the window and lies inside the visible range. */
static bool summarised(int64_t lo, int64_t hi, int64_t blo, int64_t bhi, int64_t vis)
{
    return (hi <= blo || lo >= bhi) && hi <= vis;
}

/* Output row i. logit: scratch of lk + count doubles. The logits are produced chunk by chunk
 * (a chunk's exact keys in order, or its one summary), then softmax-weighted. */
/* Window [*blo, *bhi) of query i seeing keys 0 .. vis - 1 (vis >= 1). */
static void window(const rj_spec *s, int64_t i, int64_t vis, int64_t *blo, int64_t *bhi)
{
    const int64_t w = s->eva_window, p = s->causal ? vis - 1 : i;
    *blo = w > 0 ? (p / w) * w : 0;
    *bhi = w > 0 ? *blo + w : 0;
}

static void attend_row(const rj_spec *s, const chunking *ch, const double *xi, int64_t i,
                       int64_t vis, const double *y, const double *v, int64_t lk,
                       const double *kbar, const double *beta, double *logit, double *o)
{
    const int d = s->d, dv = s->dv;
    int64_t blo, bhi, nl = 0;
    window(s, i, vis, &blo, &bhi);
    double mu = -INFINITY;
    for (int64_t c = 0; c < ch->count; c++) {
        int64_t lo, hi;
        chunk_range(ch, lk, c, &lo, &hi);
        if (lo >= vis)
            break;
        if (summarised(lo, hi, blo, bhi, vis)) {
            logit[nl] = dot(xi, kbar + c * d, d) + log((double)(hi - lo));
            mu = fmax(mu, logit[nl++]);
        } else {
            for (int64_t j = lo; j < hi && j < vis; j++) {
                logit[nl] = dot(xi, y + j * d, d);
                mu = fmax(mu, logit[nl++]);
            }
        }
    }
    double Z = 0;
    for (int a = 0; a < dv; a++)
        o[a] = 0;
    if (vis == 0) /* nothing visible: a zero row (no logit was made) */
        return;
    nl = 0;
    for (int64_t c = 0; c < ch->count; c++) {
        int64_t lo, hi;
        chunk_range(ch, lk, c, &lo, &hi);
        if (lo >= vis)
            break;
        const bool summ = summarised(lo, hi, blo, bhi, vis);
        const int64_t terms = summ ? 1 : (hi < vis ? hi : vis) - lo;
        for (int64_t t = 0; t < terms; t++) {
            const double a = exp(logit[nl++] - mu);
            const double *val = summ ? beta + c * dv : v + (lo + t) * dv;
            Z += a;
            for (int b = 0; b < dv; b++)
                o[b] += a * val[b];
        }
    }
    for (int a = 0; a < dv; a++)
        o[a] /= Z;
}

bool rj_eva_aligned(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis)
{
    return !s->causal && !nvis && lq == lk;
}

static rfjit_status attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    const int d = s->d, dv = s->dv;
    if (lk == 0) { /* no key: nothing to average (as rj_ref_softmax) */
        for (int64_t i = 0; i < lq * dv; i++)
            out[i] = 0;
        return RFJIT_OK;
    }
    chunking ch;
    ch.size = (lk + s->eva_chunks - 1) / s->eva_chunks;
    ch.count = (lk + ch.size - 1) / ch.size;
    double *kbar = rj_alloc_array((size_t)ch.count, (size_t)d * sizeof(double));
    double *beta = rj_alloc_array((size_t)ch.count, (size_t)dv * sizeof(double));
    double *logit = rj_alloc_array((size_t)(lk + ch.count), sizeof(double));
    double *w = rj_alloc_array((size_t)d, sizeof(double));
    rfjit_status r = RFJIT_OK;
    if (!kbar || !beta || !logit || !w) {
        r = rj_fail(dg, RFJIT_E_NOMEM, "eva: no memory for %lld chunks of %lld keys",
                    (long long)ch.count, (long long)ch.size);
        goto done;
    }
    for (int64_t c = 0; c < ch.count; c++) {
        int64_t lo, hi;
        chunk_range(&ch, lk, c, &lo, &hi);
        summarise(s, rj_eva_aligned(s, lq, lk, nvis) ? x : NULL, y, v, lo, hi, params + c * d, w,
                  kbar + c * d, beta + c * dv);
    }
    for (int64_t i = 0; i < lq; i++) {
        const int64_t vis = nvis ? nvis[i] : s->causal ? i + 1 : lk;
        attend_row(s, &ch, x + i * d, i, vis, y, v, lk, kbar, beta, logit, out + i * dv);
    }
done:
    rj_free(kbar);
    rj_free(beta);
    rj_free(logit);
    rj_free(w);
    return r;
}

static double variance(const rj_spec *s, const double *params, const double *x,
                       const double *y)
{
    (void)s, (void)params, (void)x, (void)y;
    return NAN; /* biased, and not a kernel estimate phi_q . phi_k: no closed form */
}

/*
 * Per token (one query, one key): the query's window and chunk logits and weighted values,
 * 2 (w + C)(d + dv) flops and w + C exps, plus the key's share of the summaries: kbar and
 * qbar sums (2d), w.y and |y|^2 (4d), one exp and the beta accumulation (2dv). Bytes: the
 * float32 rows of the token (q, k, v, out).
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, wc = (double)s->eva_window + s->eva_chunks;
    *flops = 2 * wc * (d + dv) + wc * RJ_EST_TRANSCENDENTAL_FLOPS + 6 * d + 2 * dv +
             RJ_EST_TRANSCENDENTAL_FLOPS;
    *bytes = 4 * (2 * d + 2 * dv);
}

static int64_t eva_chunks(const rj_spec *s, int64_t lk, int64_t *size)
{
    *size = (lk + s->eva_chunks - 1) / s->eva_chunks;
    return *size ? (lk + *size - 1) / *size : 0;
}

/* The non-summarised visible chunks of attend_row, which are contiguous: those meeting
 * Block(i) and (causal) the one holding the last visible key p(i), which meets Block(i)
 * whenever w > 0. A query seeing nothing (vis = 0) has none, and no summarised chunk. */
static void eva_exact(const rj_spec *s, int64_t lk, int64_t i, int64_t vis, int64_t *clo,
                      int64_t *chi)
{
    chunking ch;
    ch.count = eva_chunks(s, lk, &ch.size);
    int64_t blo = 0, bhi = 0;
    if (vis > 0)
        window(s, i, vis, &blo, &bhi);
    *clo = *chi = -1;
    int64_t c = 0;
    for (; c < ch.count; c++) {
        int64_t lo, hi;
        chunk_range(&ch, lk, c, &lo, &hi);
        if (lo >= vis)
            break;
        if (!summarised(lo, hi, blo, bhi, vis)) {
            if (*clo < 0)
                *clo = c;
            *chi = c + 1;
        }
    }
    if (*clo < 0) /* nothing exact: below c are the visible chunks, all summarised */
        *clo = *chi = s->causal ? c : 0;
}

static void eva_summaries(const rj_spec *s, const double *params, const double *xa, const double *y,
                          const double *v, int64_t lk, double *kbar, double *beta)
{
    chunking ch;
    ch.count = eva_chunks(s, lk, &ch.size);
    double w[RJ_MAX_D];
    for (int64_t c = 0; c < ch.count; c++) {
        int64_t lo, hi;
        chunk_range(&ch, lk, c, &lo, &hi);
        summarise(s, xa, y, v, lo, hi, params + c * s->d, w, kbar + c * s->d, beta + c * s->dv);
    }
}

static const rj_eva_ops eva_ops = {eva_chunks, eva_exact, eva_summaries};

const rj_est_ops rj_est_eva = {
    .name = "eva",
    .version = 2,
    .tmpl = RJ_TMPL_EVA,
    .flags = RJ_EST_NOPROJ,
    /* ignored (no projection): every kind is accepted */
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) | (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = params_size,
    .fit = fit,
    .features = NULL,
    .attend = attend,
    .variance = variance,
    .objective = NULL,
    .cost = cost,
    .eva = &eva_ops,
    /* float32 accumulation at L ~ 1e3, as positive.c. */
    .ref_tol = 1e-4,
};
