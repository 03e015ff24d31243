/* SPDX-License-Identifier: MIT */
/*
 * This file is EVA, control-variate attention (spec estimators.md 6.2-6.5; Zheng et al.,
 * ICLR 2023), in a principled form with no learned maps: the design fixed for rfjit from
 * 6.4, not the public code of 6.5, which est/eva_official.c reproduces (eva_variant
 * "official"). attend() below serves both variants through their rj_eva_ops.
 *
 * Keys are the visible keys of the call, compacted: masked and padding keys are removed
 * before EVA sees them, so every position below counts visible keys only, and a masked key
 * is in no chunk, no summary and no window. Query i sees the first nvis[i] of them (nvis
 * non-decreasing; without nvis, all keys, or i + 1 when causal with Lq = Lk), which expresses
 * a key mask, padding and the bottom-right causal offset (nvis[i] = number of visible keys
 * at positions <= i + Lk - Lq) alike.
 *
 * Partition, for query i (0-based positions over the compacted keys; Lq, Lk the lengths):
 *   visible   V(i) = keys j < nvis[i] (all keys when bidirectional without nvis)
 *   window    Block(i) = [b w, (b+1) w), w = eva_window, b = floor(p(i) / w), anchor
 *             p(i) = nvis[i] - 1 when causal (the query's own position, i without an offset
 *             or a mask), i when bidirectional; empty if w = 0
 *   chunks    P_c = [c s, (c+1) s) clipped to [0, Lk), s = ceil(Lk / C), C = eva_chunks
 *             (ceil(Lk / s) <= C chunks are non-empty; the rest are unused)
 *   exact set E(i) = Block(i) n V(i); causal with w = 0, the visible part of the chunk
 *             holding p(i) if that chunk has keys beyond p(i) (a summary of a growing
 *             prefix would be one per query), else nothing
 *   summaries the visible keys outside E(i) of each chunk: the whole chunk when E(i) misses
 *             it, else the piece on either side of E(i) (at most one chunk is cut on each
 *             side), each piece summarised like a chunk of its own
 * so every visible key counts exactly once, exactly or in one summary; the exact set does not
 * depend on C, and more chunks only split the summaries finer: the window trades error for
 * time locally, the chunk count for the rest (README "eva: principled vs official"). Were a
 * chunk meeting the window exact whole, the exact set would grow with the chunk size and the
 * error would rise with the chunk count. Pieces cost O(s (d + dv)) per window block.
 *
 * Summary of chunk (or piece) c (n_c keys P_c; query-independent: whole chunks once per
 * call, pieces once per window block):
 *   kbar_c = (1/n_c) sum_{j in P_c} y_j
 *   mu_c   = (qbar_c + kbar_c) / 2,  qbar_c = (1/n_c) sum_{j in P_c} x_j   (aligned)
 *          = kbar_c                                                     (otherwise: the
 *            queries at the chunk's positions are not all there, so kbar_c stands in for
 *            qbar_c). Aligned means bidirectional with Lq = Lk and no nvis (no key masked
 *            away). Causal calls always take kbar_c: a chunked prefill call (Lq < Lk,
 *            bottom-right) lacks the earlier queries, and must equal the last Lq rows of the
 *            full causal call, so neither may use them.
 *            mu_c stands for the queries that read the chunk: their weights are e^{x.y_j}.
 *            The proposal mean qbar_c + kbar_c of the paper's mixture N(x + y_j, I) tilts
 *            the weights by e^{kbar_c.y_j} (each key's own |y_j|^2 / n_c among them), which
 *            grows as chunks shrink; the half, eva.py's own choice, gave a lower error on
 *            every data set and window of `rfjit bench --suite eva` (up to 20% on real heads)
 *            and an error that falls with the chunk count on Gaussian data too.
 *   beta_c = sum_{j in P_c} e^{mu_c . y_j} v_j / sum_{j in P_c} e^{mu_c . y_j}
 * beta_c is the shared control-variate coefficient of 6.3/6.4, beta(w) = sum xi(y_j, w) v_j /
 * sum xi(y_j, w) with xi(y, w) = exp(w.y - |y|^2/2), taken as its ratio of expectations under
 * the chunk's proposal w ~ N(mu_c, I): E xi(y, w) = e^{mu_c . y}, the |y|^2/2 cancelling.
 * That is the limit of many proposal samples, and deterministic. One sample instead (w = mu_c
 * + eps_c) has weights e^{eps.y_j}, log-normal with variance |y_j|^2 whatever d: on Gaussian
 * data with scaled norms ~1 that noise holds the relative error ||O_hat - O||^2 / ||O||^2
 * near 1 for every window and chunk count, against 0.01-0.02 without it (README "eva:
 * principled vs official"). beta_c is a convex combination of the chunk's values,
 * computed with the log-domain shift max_j mu_c . y_j.
 *
 * Output (6.4, linear-time form; s_ij = x_i . y_j = scale q_i . k_j):
 *   logits  [ s_ij, j in E(i) ] ++ [ x_i . kbar_c + ln n_c, c summarised ]
 *   a = softmax(logits),   out_i = sum_{j in E(i)} a_j v_j + sum_c a_c beta_c
 * e^{x.kbar_c + ln n_c} = n_c e^{x.kbar_c} stands for the chunk's mass sum_{j in P_c} e^{s_ij}
 * (a lower bound by Jensen, exact when the chunk's keys coincide, in particular for n_c = 1).
 * The softmax takes the whole chunks' summaries first, then the pieces', then the exact keys.
 *
 * Identities (check C3, tested): w = 0, C = 1, bidirectional gives beta_1 for every query
 * (RFA in the many-sample limit of proposal mu_1); chunk size 1 (C >= Lk) gives exact softmax
 * (kbar = y_j, ln 1 = 0, beta = v_j); w >= Lk gives exact softmax (Block(i) covers every key
 * for i < w); keys at 0 give the uniform average over V(i), i.e. exact softmax, for any w and
 * C, because each key is counted once (all logits are 0 or ln n_c, all weights are 1). Causal
 * prefix property: a summary (chunk or piece) lies entirely in V(i), its proposal uses its
 * keys only (kbar_c) and the exact keys are visible ones, so output i reads
 * positions < nvis[i] only, in an order that does not depend on later positions. The
 * chunking is of the whole call's visible keys, so a summary can differ from the one a call
 * cut at the query's prefix would make: EVA is defined per call, not per prefix.
 * A query with nvis[i] = 0 sees nothing and gets a zero row.
 *
 * Differences from the public code (6.5, pitfall 15; est/eva_official.c has it): no learned
 * maps (kbar_c is the chunk representative, mu_c as eva.py's (qbar_c + kbar_c) / 2, also
 * when causal), the ln n_c count term, no double counting of window keys, no padding, no
 * overlap extension, the proposal's expectation rather than its mean plugged into xi.
 * EVA is biased; it has no closed-form kernel variance (NaN). It has no random parameters:
 * the seed does not change it.
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <stdio.h>

/* Largest chunk count (kept from when the noise block was C x d doubles). */
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
    if (s->eva_variant == RJ_EVA_OFFICIAL && s->eva_window < 1) {
        snprintf(why, n,
                 "the official eva variant needs eva window >= 1 (its local attention "
                 "partitions the sequence into windows)");
        return false;
    }
    return true;
}

/* Deterministic: no parameters (callers allocate at least one double anyway). */
static size_t params_size(const rj_spec *s)
{
    (void)s;
    return 0;
}

static rfjit_status fit(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                        double *params, rj_fit_info *info, rj_diag *dg)
{
    (void)s, (void)W, (void)seed, (void)st, (void)params, (void)dg;
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

static int64_t eva_chunks(const rj_spec *s, int64_t lk, int64_t *size)
{
    *size = (lk + s->eva_chunks - 1) / s->eva_chunks;
    return *size ? (lk + *size - 1) / *size : 0;
}

static void chunk_range(int64_t size, int64_t lk, int64_t c, int64_t *lo, int64_t *hi)
{
    *lo = c * size;
    *hi = *lo + size < lk ? *lo + size : lk;
}

static bool aligned(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis)
{
    return !s->causal && !nvis && lq == lk;
}

void rj_eva_summary(const rj_spec *s, const double *xs, const double *y, const double *v,
                    int64_t lo, int64_t hi, double n, double half, double norm, double *kbar,
                    double *beta)
{
    const int d = s->d, dv = s->dv;
    double mu[RJ_MAX_D], qs[RJ_MAX_D];
    /* row by row, so the chunk streams once; each coordinate still sums in key order */
    for (int a = 0; a < d; a++)
        kbar[a] = qs[a] = 0;
    for (int64_t j = lo; j < hi; j++)
        for (int a = 0; a < d; a++) {
            kbar[a] += y[j * d + a];
            if (xs)
                qs[a] += xs[j * d + a];
        }
    for (int a = 0; a < d; a++) {
        kbar[a] /= n;
        mu[a] = half * ((xs ? qs[a] / n : kbar[a]) + kbar[a]);
    }
    /* log weight mu.y_j (- |y_j|^2/2 when norm), exponentiated after subtracting the
     * running maximum (one pass: Z and beta are rescaled when the maximum grows) */
    double lmax = -INFINITY, Z = 0;
    for (int a = 0; a < dv; a++)
        beta[a] = 0;
    for (int64_t j = lo; j < hi; j++) {
        const double *yj = y + j * d;
        const double l = dot(mu, yj, d) - norm * 0.5 * dot(yj, yj, d);
        if (l > lmax) {
            const double r = exp(lmax - l); /* 0 for the first key */
            Z *= r;
            for (int a = 0; a < dv; a++)
                beta[a] *= r;
            lmax = l;
        }
        const double w = exp(l - lmax);
        Z += w;
        for (int a = 0; a < dv; a++)
            beta[a] += w * v[j * dv + a];
    }
    for (int a = 0; a < dv; a++)
        beta[a] = Z > 0 ? beta[a] / Z : 0;
}

static void eva_piece(const rj_spec *s, const double *x, int64_t lq, const double *y,
                      const double *v, int64_t lk, const int64_t *nvis, int64_t lo, int64_t hi,
                      double *kbar, double *loff, double *beta)
{
    rj_eva_summary(s, aligned(s, lq, lk, nvis) ? x : NULL, y, v, lo, hi, (double)(hi - lo), 0.5,
                   0.0, kbar, beta);
    *loff = log((double)(hi - lo));
}

static void eva_summaries(const rj_spec *s, const double *x, int64_t lq, const double *y,
                          const double *v, int64_t lk, const int64_t *nvis, double *kbar,
                          double *loff, double *beta)
{
    int64_t size;
    const int64_t count = eva_chunks(s, lk, &size);
    for (int64_t c = 0; c < count; c++) {
        int64_t lo, hi;
        chunk_range(size, lk, c, &lo, &hi);
        eva_piece(s, x, lq, y, v, lk, nvis, lo, hi, kbar + c * s->d, loff + c, beta + c * s->dv);
    }
}

/*
 * Query i's exact keys and summaries (file comment): the exact run is the window's visible
 * keys, [blo, min(bhi, lk)) bidirectional and [blo, vis) causal, or without a window the
 * visible part of a causal query's last chunk if that is incomplete; chunks wholly outside
 * it are summarised whole, and the chunks it cuts leave a piece on either side, [lp, elo)
 * and [ehi, rp), summarised on their own.
 */
static void eva_row(const rj_spec *s, int64_t lk, int64_t i, int64_t vis, rj_eva_row *r)
{
    int64_t size;
    const int64_t count = eva_chunks(s, lk, &size), w = s->eva_window;
    if (s->causal) {
        const int64_t last = (vis - 1) / size,
                      end = (last + 1) * size < lk ? (last + 1) * size : lk;
        r->elo = w > 0 ? (vis - 1) / w * w : vis < end ? last * size : vis;
        r->ehi = vis;
        r->phi = count;
        r->rp = vis;
    } else {
        const int64_t blo = w > 0 ? i / w * w : 0, bhi = w > 0 ? blo + w : 0;
        r->elo = blo < lk ? blo : lk;
        r->ehi = bhi < lk ? bhi : lk;
        r->phi = (r->ehi + size - 1) / size;
        r->rp = r->phi * size < lk ? r->phi * size : lk;
    }
    r->plo = r->elo / size;
    r->lp = r->plo * size;
    if (!s->causal && r->ehi == r->elo) { /* no window: every chunk whole */
        r->plo = r->phi = 0;
        r->lp = r->elo, r->rp = r->ehi;
    }
}

static rfjit_status eva_check(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis,
                              rj_diag *dg)
{
    return rj_est_check_nvis(s, lq, lk, nvis, dg);
}

static const rj_eva_ops eva_ops = {eva_check, eva_chunks, eva_row, eva_summaries, eva_piece};

const rj_eva_ops *rj_eva_ops_for(const rj_spec *s)
{
    return s->eva_variant == RJ_EVA_OFFICIAL ? &rj_eva_official_ops : &eva_ops;
}

/* A row's pseudo-keys: the whole chunks' summaries (kbar, loff, beta: count rows), then its
 * pieces' (pk, pl, pb: npieces rows). */
typedef struct pseudo_keys {
    const double *kbar, *loff, *beta;
    int64_t count;
    const double *pk, *pl, *pb;
    int npieces;
} pseudo_keys;

/* Output row i: softmax over the summarised chunks' logits x.kbar_c + loff_c, the pieces',
 * then the exact keys' x.y_j. logit: scratch of lk + count + 2 doubles. */
static void attend_row(const rj_spec *s, const rj_eva_row *r, const pseudo_keys *pk,
                       const double *xi, const double *y, const double *v, double *logit, double *o)
{
    const int d = s->d, dv = s->dv;
    const int64_t np = pk->count + pk->npieces, ne = r->ehi - r->elo;
    int64_t nl = 0;
    double mu = -INFINITY;
    for (int64_t t = 0; t < np + ne; t++) {
        if (t < pk->count && !(t < r->plo || t >= r->phi))
            continue;
        const double *key = t < pk->count ? pk->kbar + t * d
                            : t < np      ? pk->pk + (t - pk->count) * d
                                          : y + (r->elo + t - np) * d;
        const double off = t < pk->count ? pk->loff[t] : t < np ? pk->pl[t - pk->count] : 0;
        logit[nl] = dot(xi, key, d) + off;
        mu = fmax(mu, logit[nl++]);
    }
    double Z = 0;
    for (int a = 0; a < dv; a++)
        o[a] = 0;
    nl = 0;
    for (int64_t t = 0; t < np + ne; t++) {
        if (t < pk->count && !(t < r->plo || t >= r->phi))
            continue;
        const double a = exp(logit[nl++] - mu);
        const double *val = t < pk->count ? pk->beta + t * dv
                            : t < np      ? pk->pb + (t - pk->count) * dv
                                          : v + (r->elo + t - np) * dv;
        Z += a;
        for (int b = 0; b < dv; b++)
            o[b] += a * val[b];
    }
    for (int a = 0; a < dv; a++)
        o[a] /= Z;
}

/* The pieces of row r into pk (at most two), recomputed only when they differ from last's. */
static void row_pieces(const rj_spec *s, const rj_eva_ops *E, const double *x, int64_t lq,
                       const double *y, const double *v, int64_t lk, const int64_t *nvis,
                       const rj_eva_row *r, rj_eva_row *last, double *pk, double *pl, double *pb,
                       int *npieces)
{
    const int64_t lo[2] = {r->lp, r->ehi}, hi[2] = {r->elo, r->rp};
    if (r->lp == last->lp && r->elo == last->elo && r->ehi == last->ehi && r->rp == last->rp)
        return;
    *last = *r;
    *npieces = 0;
    for (int k = 0; k < 2; k++)
        if (hi[k] > lo[k]) {
            E->piece(s, x, lq, y, v, lk, nvis, lo[k], hi[k], pk + *npieces * s->d, pl + *npieces,
                     pb + *npieces * s->dv);
            ++*npieces;
        }
}

static rfjit_status attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    (void)params;
    const rj_eva_ops *E = rj_eva_ops_for(s);
    RJ_TRY(E->check(s, lq, lk, nvis, dg));
    const int d = s->d, dv = s->dv;
    if (lk == 0) { /* no key: nothing to average (as rj_ref_softmax) */
        for (int64_t i = 0; i < lq * dv; i++)
            out[i] = 0;
        return RFJIT_OK;
    }
    int64_t size;
    const int64_t count = E->chunks(s, lk, &size);
    /* the whole chunks' summaries, then room for two pieces */
    double *kbar = rj_alloc_array((size_t)count + 2, (size_t)d * sizeof(double));
    double *beta = rj_alloc_array((size_t)count + 2, (size_t)dv * sizeof(double));
    double *loff = rj_alloc_array((size_t)count + 2, sizeof(double));
    double *logit = rj_alloc_array((size_t)(lk + count + 2), sizeof(double));
    rfjit_status st = RFJIT_OK;
    if (!kbar || !beta || !loff || !logit) {
        st = rj_fail(dg, RFJIT_E_NOMEM, "eva: no memory for %lld chunks of %lld keys",
                     (long long)count, (long long)size);
        goto done;
    }
    E->summaries(s, x, lq, y, v, lk, nvis, kbar, loff, beta);
    pseudo_keys pk = {kbar, loff, beta, count, kbar + count * d, loff + count, beta + count * dv,
                      0};
    rj_eva_row last = {-1, -1, -1, -1, -1, -1};
    for (int64_t i = 0; i < lq; i++) {
        const int64_t vis = nvis ? nvis[i] : s->causal ? i + 1 : lk;
        if (vis == 0) { /* nothing visible: a zero row */
            for (int a = 0; a < dv; a++)
                out[i * dv + a] = 0;
            continue;
        }
        rj_eva_row r;
        E->row(s, lk, i, vis, &r);
        if (E->piece)
            row_pieces(s, E, x, lq, y, v, lk, nvis, &r, &last, kbar + count * d, loff + count,
                       beta + count * dv, &pk.npieces);
        attend_row(s, &r, &pk, x + i * d, y, v, logit, out + i * dv);
    }
done:
    rj_free(kbar);
    rj_free(beta);
    rj_free(loff);
    rj_free(logit);
    return st;
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
 * qbar sums (2d), mu.y (2d), one exp and the beta accumulation (2dv). Bytes: the float32
 * rows of the token (q, k, v, out).
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    const double d = s->d, dv = s->dv, wc = (double)s->eva_window + s->eva_chunks;
    *flops = 2 * wc * (d + dv) + wc * RJ_EST_TRANSCENDENTAL_FLOPS + 4 * d + 2 * dv +
             RJ_EST_TRANSCENDENTAL_FLOPS;
    *bytes = 4 * (2 * d + 2 * dv);
}

const rj_est_ops rj_est_eva = {
    .name = "eva",
    .version = 3,
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
