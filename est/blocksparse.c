/* SPDX-License-Identifier: MIT */
/*
 * This file is blocksparse, block-sparse + low-rank attention in the spirit of Scatterbrain
 * (Chen et al., NeurIPS 2021) and of EVA's exact-plus-summary split: for each block of
 * queries, the key blocks that can hold its largest logits are taken exactly, and every other
 * key through positive random features (est/positive.c: the same map, m and W from the seed).
 * attend() below is the double reference; runtime/exec_blocksparse.c is the float32 path.
 *
 * Keys are the visible keys of the call, compacted (masked keys removed), as for eva: query i
 * sees keys j < nvis[i] (all keys bidirectional, j <= i causal without nvis). x = scaled
 * queries, y = scaled keys (est.h), s_ij = x_i . y_j, phi the positive map, phi(x) = e^h f.
 *
 * Blocks (B = sparse_block): key block b = keys [b B, (b + 1) B). Query blocks: bidirectional,
 * B consecutive queries; causal, maximal runs of at most B queries whose last visible key lies
 * in the same key block D, the diagonal block (queries seeing no key get a zero row). A query
 * block sees key blocks 0 .. D (bidirectional: all).
 *
 * Bound, once per call: per key block its centroid c_b and radius r_b = max_{j in b} |y_j -
 * c_b|; per query block cq and rq likewise. For i in Q, j in b, write x_i = cq + a, y_j =
 * c_b + e with |a| <= rq, |e| <= r_b; by Cauchy-Schwarz
 *     s_ij = cq.c_b + a.c_b + cq.e + a.e <= cq.c_b + rq |c_b| + |cq| r_b + rq r_b = bound(Q, b).
 * Selection S(Q): the sparse_exact visible blocks of largest bound (ties: the lower index),
 * or all of them when there are no more; it depends on the data only, not on W.
 *
 * Output, with the visible keys V(i):
 *     out_i = [sum_{j in V(i) n S} e^{s_ij} v_j + sum_{j in V(i) \ S} phi(x_i).phi(y_j) v_j]
 *             / [the same with v = 1]
 * No key is counted twice: a key is in exactly one block, taken exactly or by features. The
 * rest is read from per-block states T_b = sum_{j in b} phi(y_j) [v_j, 1]^T: bidirectional
 * phi(x_i)^T sum_{b not in S} T_b; causal, the blocks before D that are not selected, plus,
 * when D is not selected, the masked pair products phi(x_i).phi(y_j) over j in D n V(i).
 * Stabilised in the log domain: the feature part in units e^{h_i + H} (H the largest key
 * log-scale of the call), the exact part in units e^{M_i} (its row maximum), both brought to
 * e^{max(M_i, h_i + H)}. When S(Q) holds every visible block the feature part is not computed
 * at all, so that case is exact softmax to rounding.
 *
 * Bias and variance. The numerator and denominator are each unbiased for the softmax sums
 * N_i = sum_j e^{s_ij} v_j and Z_i = sum_j e^{s_ij}: the exact part is exact, and positive
 * features are unbiased per pair (E phi(x).phi(y) = e^{x.y}). With i.i.d. projections,
 *     Var[Zhat_i] = sum_{j, j' in R(i)} Cov[phi(x_i).phi(y_j), phi(x_i).phi(y_j')],
 *     R(i) = V(i) \ S,  whose diagonal terms are positive's (1/m) SM_ij^2 (e^{|x_i+y_j|^2} - 1),
 * so the variance falls as the blocks holding the largest logits are taken exactly (their
 * SM_ij^2 e^{|x_i + y_j|^2} terms dominate). The ratio out_i keeps positive's O(1/m) bias,
 * restricted to the rest. Identities: sparse_exact >= the blocks a query block sees gives
 * exact softmax; sparse_exact = 0 gives the positive estimator with the same seed and m
 * (bidirectional and causal: the diagonal block is then the features' masked product).
 */
#include "est/est.h"

#include "est/est_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

extern const rj_est_ops rj_est_positive;

static int64_t feature_dim(const rj_spec *s)
{
    (void)s;
    return 0; /* no feature map of its own (est.h: features is positive's, inside attend) */
}

static bool valid(const rj_spec *s, char *why, size_t n)
{
    if (!rj_est_valid_dm(s, why, n) || !rj_est_valid_ddv(s, why, n))
        return false;
    if (s->sparse_block < 1) {
        snprintf(why, n, "sparse_block = %d must be >= 1 (tokens per block)", s->sparse_block);
        return false;
    }
    if (s->sparse_exact < 0) {
        snprintf(why, n, "sparse_exact = %d must be >= 0 (exact key blocks per query block)",
                 s->sparse_exact);
        return false;
    }
    return true;
}

static double dot(const double *a, const double *b, int n)
{
    double r = 0;
    for (int i = 0; i < n; i++)
        r += a[i] * b[i];
    return r;
}

int64_t rj_bs_key_blocks(const rj_spec *s, int64_t lk)
{
    return (lk + s->sparse_block - 1) / s->sparse_block;
}

/* Centroid and radius of rows [lo, hi) of r (d wide). */
static void ball(int d, const double *r, int64_t lo, int64_t hi, double *cen, double *rad)
{
    for (int a = 0; a < d; a++)
        cen[a] = 0;
    for (int64_t j = lo; j < hi; j++)
        for (int a = 0; a < d; a++)
            cen[a] += r[j * d + a];
    for (int a = 0; a < d; a++)
        cen[a] /= (double)(hi - lo);
    double r2 = 0;
    for (int64_t j = lo; j < hi; j++) {
        double e2 = 0;
        for (int a = 0; a < d; a++)
            e2 += (r[j * d + a] - cen[a]) * (r[j * d + a] - cen[a]);
        r2 = e2 > r2 ? e2 : r2;
    }
    *rad = sqrt(r2);
}

void rj_bs_key_bounds(const rj_spec *s, const double *y, int64_t lk, double *cen, double *rad)
{
    const int64_t B = s->sparse_block, nb = rj_bs_key_blocks(s, lk);
    for (int64_t b = 0; b < nb; b++)
        ball(s->d, y, b * B, (b + 1) * B < lk ? (b + 1) * B : lk, cen + b * s->d, rad + b);
}

static int64_t visible(const rj_spec *s, const int64_t *nvis, int64_t i, int64_t lk)
{
    return nvis ? nvis[i] : s->causal ? i + 1 : lk;
}

int64_t rj_bs_query_block(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis, int64_t i0,
                          int64_t *nvb)
{
    const int64_t B = s->sparse_block, end = lq - i0 > B ? i0 + B : lq;
    if (!s->causal) {
        *nvb = rj_bs_key_blocks(s, lk);
        return end;
    }
    const int64_t D = (visible(s, nvis, i0, lk) - 1) / B;
    int64_t i1 = i0 + 1;
    while (i1 < end && (visible(s, nvis, i1, lk) - 1) / B == D)
        i1++;
    *nvb = D + 1;
    return i1;
}

int64_t rj_bs_select(const rj_spec *s, const double *x, int64_t i0, int64_t i1, const double *cen,
                     const double *rad, int64_t nvb, double *bound, int64_t *sel)
{
    const int d = s->d;
    if (s->sparse_exact >= nvb) {
        for (int64_t b = 0; b < nvb; b++)
            sel[b] = b;
        return nvb;
    }
    double cq[RJ_MAX_D], rq;
    ball(d, x, i0, i1, cq, &rq);
    const double ncq = sqrt(dot(cq, cq, d));
    for (int64_t b = 0; b < nvb; b++) {
        const double *c = cen + b * d, nc = sqrt(dot(c, c, d));
        bound[b] = dot(cq, c, d) + rq * nc + ncq * rad[b] + rq * rad[b];
    }
    /* k passes of an argmax: k is small, and a taken block drops to -inf (bounds are finite) */
    const int64_t k = s->sparse_exact;
    for (int64_t t = 0; t < k; t++) {
        int64_t best = -1;
        for (int64_t b = 0; b < nvb; b++)
            if (bound[b] > -INFINITY && (best < 0 || bound[b] > bound[best]))
                best = b;
        sel[t] = best;
        bound[best] = -INFINITY;
    }
    /* ascending, so that every sum over the selected blocks runs in key order */
    for (int64_t t = 1; t < k; t++)
        for (int64_t u = t; u > 0 && sel[u - 1] > sel[u]; u--) {
            const int64_t tmp = sel[u];
            sel[u] = sel[u - 1];
            sel[u - 1] = tmp;
        }
    return k;
}

static bool selected(const int64_t *sel, int64_t ns, int64_t b)
{
    for (int64_t t = 0; t < ns; t++)
        if (sel[t] == b)
            return true;
    return false;
}

/* The reference's buffers for one call. */
typedef struct bs_ref {
    double *hq, *fq, *hk, *fk; /* features: lq, lq x m, lk, lk x m */
    double *Tb;                /* per key block, m x (dv + 1) */
    double *cen, *rad, *bound; /* key block bounds and the selection's scratch */
    double *rest;              /* m x (dv + 1) */
    double *acc;               /* a row's exact and feature sums, 2 (dv + 1) */
    int64_t *sel;
} bs_ref;

static void free_ref(bs_ref *r)
{
    void *all[] = {r->hq,  r->fq,    r->hk,   r->fk,  r->Tb, r->cen,
                   r->rad, r->bound, r->rest, r->acc, r->sel};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        rj_free(all[i]);
}

static bool alloc_ref(const rj_spec *s, int64_t lq, int64_t lk, int64_t nkb, bs_ref *r)
{
    const size_t m = (size_t)s->m, w = (size_t)s->dv + 1, n = (size_t)nkb;
    memset(r, 0, sizeof *r);
    r->hq = rj_alloc_array((size_t)lq + 1, sizeof(double));
    r->fq = rj_alloc_array(((size_t)lq + 1) * m, sizeof(double));
    r->hk = rj_alloc_array((size_t)lk + 1, sizeof(double));
    r->fk = rj_alloc_array(((size_t)lk + 1) * m, sizeof(double));
    r->Tb = rj_alloc_array_zero((n + 1) * m, w * sizeof(double));
    r->cen = rj_alloc_array(n + 1, (size_t)s->d * sizeof(double));
    r->rad = rj_alloc_array(n + 1, sizeof(double));
    r->bound = rj_alloc_array(n + 1, sizeof(double));
    r->rest = rj_alloc_array(m, w * sizeof(double));
    r->acc = rj_alloc_array(2 * w, sizeof(double));
    r->sel = rj_alloc_array(n + 1, sizeof(int64_t));
    return r->hq && r->fq && r->hk && r->fk && r->Tb && r->cen && r->rad && r->bound && r->rest &&
           r->acc && r->sel;
}

/* Features of every query and key, H = max_j h_j, and the block states T_b in units e^H. */
static double features_and_states(const rj_spec *s, const double *W, const double *x, int64_t lq,
                                  const double *y, const double *v, int64_t lk, bs_ref *r)
{
    const int d = s->d, dv = s->dv, m = s->m, w = dv + 1;
    for (int64_t i = 0; i < lq; i++)
        rj_est_positive.features(s, W, RJ_ROLE_Q, x + i * d, r->hq + i, r->fq + i * m);
    double H = -INFINITY;
    for (int64_t j = 0; j < lk; j++) {
        rj_est_positive.features(s, W, RJ_ROLE_K, y + j * d, r->hk + j, r->fk + j * m);
        H = r->hk[j] > H ? r->hk[j] : H;
    }
    for (int64_t j = 0; j < lk; j++) {
        const double e = exp(r->hk[j] - H);
        double *T = r->Tb + (j / s->sparse_block) * m * w;
        for (int c = 0; c < m; c++) {
            const double f = e * r->fk[j * m + c];
            for (int a = 0; a < dv; a++)
                T[c * w + a] += f * v[j * dv + a];
            T[c * w + dv] += f;
        }
    }
    return H;
}

/* rest = sum of T_b over the blocks 0 .. upto - 1 that are not selected. */
static void rest_state(const rj_spec *s, const bs_ref *r, int64_t ns, int64_t upto)
{
    const size_t n = (size_t)s->m * ((size_t)s->dv + 1);
    memset(r->rest, 0, n * sizeof(double));
    for (int64_t b = 0; b < upto; b++)
        if (!selected(r->sel, ns, b))
            for (size_t t = 0; t < n; t++)
                r->rest[t] += r->Tb[(size_t)b * n + t];
}

/* Output row i of a query block with ns selected blocks; feat: whether the feature part is
 * there (some visible block is not selected), D the causal diagonal block (-1: none). */
static void row_out(const rj_spec *s, const bs_ref *r, const double *xi, int64_t i, const double *y,
                    const double *v, int64_t lk, int64_t vis, int64_t ns, bool feat, int64_t D,
                    double H, double *o)
{
    const int d = s->d, dv = s->dv, m = s->m, w = dv + 1;
    const int64_t B = s->sparse_block;
    double *en = r->acc, *fn = r->acc + w;
    memset(r->acc, 0, 2 * (size_t)w * sizeof(double));
    /* the exact part: two passes over the selected visible keys (max, then sums) */
    double M = -INFINITY;
    for (int64_t t = 0; t < ns; t++)
        for (int64_t j = r->sel[t] * B; j < (r->sel[t] + 1) * B && j < vis && j < lk; j++) {
            const double l = dot(xi, y + j * d, d);
            M = l > M ? l : M;
        }
    for (int64_t t = 0; t < ns; t++)
        for (int64_t j = r->sel[t] * B; j < (r->sel[t] + 1) * B && j < vis && j < lk; j++) {
            const double e = exp(dot(xi, y + j * d, d) - M);
            for (int a = 0; a < dv; a++)
                en[a] += e * v[j * dv + a];
            en[dv] += e;
        }
    /* the feature part, in units e^{h_i + H} */
    const double *fi = r->fq + i * m;
    if (feat) {
        for (int c = 0; c < m; c++)
            for (int a = 0; a < w; a++)
                fn[a] += fi[c] * r->rest[c * w + a];
        for (int64_t j = D * B; D >= 0 && j < vis; j++) {
            const double k = exp(r->hk[j] - H) * dot(fi, r->fk + j * m, m);
            for (int a = 0; a < dv; a++)
                fn[a] += k * v[j * dv + a];
            fn[dv] += k;
        }
    }
    const double hf = feat ? r->hq[i] + H : -INFINITY, top = M > hf ? M : hf;
    const double ce = M > -INFINITY ? exp(M - top) : 0, cf = feat ? exp(hf - top) : 0;
    const double den = ce * en[dv] + cf * fn[dv];
    for (int a = 0; a < dv; a++)
        o[a] = den > 0 ? (ce * en[a] + cf * fn[a]) / den : 0;
}

static rfjit_status attend(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg)
{
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    const int d = s->d, dv = s->dv;
    const int64_t nkb = rj_bs_key_blocks(s, lk);
    bs_ref r;
    if (!alloc_ref(s, lq, lk, nkb, &r)) {
        free_ref(&r);
        return rj_fail(dg, RFJIT_E_NOMEM, "blocksparse: no memory for %lld x %lld", (long long)lq,
                       (long long)lk);
    }
    const double H = features_and_states(s, params, x, lq, y, v, lk, &r);
    rj_bs_key_bounds(s, y, lk, r.cen, r.rad);
    int64_t i0 = 0;
    for (; i0 < lq && visible(s, nvis, i0, lk) == 0; i0++) /* a prefix seeing no key */
        memset(out + i0 * dv, 0, (size_t)dv * sizeof(double));
    while (i0 < lq) {
        int64_t nvb;
        const int64_t i1 = rj_bs_query_block(s, lq, lk, nvis, i0, &nvb);
        const int64_t ns = rj_bs_select(s, x, i0, i1, r.cen, r.rad, nvb, r.bound, r.sel);
        const bool feat = ns < nvb;
        /* causal: the diagonal block by pair products unless it is exact */
        const int64_t D = s->causal && feat && !selected(r.sel, ns, nvb - 1) ? nvb - 1 : -1;
        if (feat)
            rest_state(s, &r, ns, s->causal ? nvb - 1 : nvb);
        for (int64_t i = i0; i < i1; i++)
            row_out(s, &r, x + i * d, i, y, v, lk, visible(s, nvis, i, lk), ns, feat, D, H,
                    out + i * dv);
        i0 = i1;
    }
    free_ref(&r);
    return RFJIT_OK;
}

static double variance(const rj_spec *s, const double *params, const double *x, const double *y)
{
    (void)s, (void)params, (void)x, (void)y;
    return NAN; /* a pair's variance depends on whether its block is exact: not a kernel */
}

/*
 * Per token (one query, one key, L = lq = lk): the exact part, sparse_exact blocks of B keys
 * per query, 2 B k (d + dv) flops and B k exps; the positive features and their linear
 * attention (positive's cost); and per query block (1/B of a token) the rest state, (k + 1)
 * m (dv + 1) additions, with its key block's state built once. Bytes: the float rows of the
 * token and its share of the block states, m (dv + 1) floats per block of B tokens.
 */
static void cost(const rj_spec *s, double *flops, double *bytes)
{
    double pf, pb;
    rj_est_positive.cost(s, &pf, &pb);
    /* a spec built by hand (the tuner's models) may leave the block fields at 0 */
    const double d = s->d, dv = s->dv, m = s->m, B = s->sparse_block > 0 ? s->sparse_block : 64,
                 k = s->sparse_exact > 0 ? s->sparse_exact : 0;
    *flops = pf + 2 * B * k * (d + dv) + B * k * RJ_EST_TRANSCENDENTAL_FLOPS +
             (k + 1) * m * (dv + 1) / B;
    *bytes = pb + 4 * m * (dv + 1) / B;
}

const rj_est_ops rj_est_blocksparse = {
    .name = "blocksparse",
    .version = 1,
    .tmpl = RJ_TMPL_BLOCKSPARSE,
    .flags = 0,
    .proj_kinds = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) | (1u << RFJIT_PROJ_USER),
    .feature_dim = feature_dim,
    .valid = valid,
    .params_size = rj_est_params_w,
    .fit = rj_est_fit_w,
    .features = NULL,
    .attend = attend,
    .variance = variance,
    .objective = NULL,
    .cost = cost,
    .kfeat = NULL,
    .klower = NULL,
    /* float32 accumulation at L ~ 1e3, as positive.c: the exact part's weights and the
     * features are each within float rounding of the reference's */
    .ref_tol = 1e-4,
};
