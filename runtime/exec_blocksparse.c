/* SPDX-License-Identifier: MIT */
/*
 * This file runs blocksparse (est/blocksparse.c) in float32 for RFJIT_BACKEND_AUTO. The
 * blocks, their bounds and the choice of exact blocks come from the estimator's own double
 * code (rj_bs_*), so this path and the reference take the same blocks; every product is one
 * of runtime/compat_math.h's register-tiled AVX2 loops:
 *   features     u = W x (rj_cm_project with W^T), f = e^{u - max u} (rj_cm_exp), the
 *                positive map of est/positive.c with h = max u - |x|^2/2 - (1/2) ln m;
 *   block states T_b = sum_{j in b} f_j e^{h_j - H} [v_j | 1] (rj_cm_absorb), summed and
 *                differenced in double, so that T - sum_S T_b keeps a small rest;
 *   the rest     f_i . rest (rj_cm_read), and causal, the diagonal block's masked pair
 *                products (rj_cm_project on the block's features, then rj_cm_read);
 *   exact blocks s = x Y_b^T (rj_cm_project with Y_b^T), e^{s - M} (rj_cm_exp), times
 *                [v | 1] (rj_cm_read), one block at a time with an online maximum.
 * Keys are compacted as for eva (masked keys removed, rj_est_nvis), so key masks, varlen
 * batches, GQA, half dtypes and Lq < Lk bottom-right causal follow exec_eva.c's gathering.
 */
#include "runtime/compat_math.h"
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"

#include <math.h>
#include <string.h>

/* The scratch slots of a blocksparse execute: one arena of each element type. */
enum bs_slot { SLOT_D, SLOT_F, SLOT_I, BS_SLOTS };
_Static_assert(BS_SLOTS <= RJ_SLOTS, "every slot of exec_blocksparse.c exists in a scratch");

typedef struct bs_bufs {
    /* double: gathered rows, log-scales, block bounds, states */
    double *x, *y, *v, *hq, *hk, *cen, *rad, *bound, *T, *rest, *od;
    /* float: rows, features, values, block states, a query block's products */
    float *xf, *yf, *ykt, *fq, *fk, *vrow, *vx, *Tb, *restf, *fkt, *lg, *oe, *orf, *tmp, *umax;
    double *M; /* a query block's running maxima of the exact part */
    int64_t *pos, *nvis, *sel;
} bs_bufs;

static size_t up16(size_t n)
{
    return (n + 15) / 16 * 16;
}

/* n elements of size bytes at offset *off of an arena at base (NULL: only measure), 64-byte
 * aligned when the arena is; *off moves past them. */
static void *carve(char *base, size_t *off, size_t n, size_t size)
{
    void *p = base ? base + *off : NULL;
    *off += up16(n) * size;
    return p;
}

/* Sizes: query and key rows, key blocks, dims, the state width, and the longest query and
 * key block (at most the rows, so B x B products stay O(L) whatever sparse_block is). */
typedef struct bs_dims {
    size_t lq, lk, nkb, d, dv, m, w, bq, bk;
} bs_dims;

/* Point b into the arenas dp, fp, ip (NULL: measure); used[3] receives their sizes. */
static void lay_out(bs_bufs *b, const bs_dims *z, char *dp, char *fp, char *ip, size_t used[3])
{
    const size_t lq = z->lq, lk = z->lk, nkb = z->nkb, d = z->d, dv = z->dv, m = z->m, w = z->w,
                 bq = z->bq, bk = z->bk;
    size_t o = 0;
    b->x = carve(dp, &o, lq * d, 8), b->y = carve(dp, &o, lk * d, 8);
    b->v = carve(dp, &o, lk * dv, 8), b->hq = carve(dp, &o, lq, 8);
    b->hk = carve(dp, &o, lk, 8), b->cen = carve(dp, &o, nkb * d, 8);
    b->rad = carve(dp, &o, nkb, 8), b->bound = carve(dp, &o, nkb, 8);
    b->T = carve(dp, &o, m * w, 8), b->rest = carve(dp, &o, m * w, 8);
    b->od = carve(dp, &o, lq * dv, 8), b->M = carve(dp, &o, bq, 8);
    used[0] = o;
    o = 0;
    b->xf = carve(fp, &o, lq * d, 4), b->yf = carve(fp, &o, lk * d, 4);
    b->ykt = carve(fp, &o, nkb * bk * d, 4), b->fq = carve(fp, &o, lq * m, 4);
    b->fk = carve(fp, &o, lk * m, 4), b->vrow = carve(fp, &o, lk * w, 4);
    b->vx = carve(fp, &o, lk * w, 4), b->Tb = carve(fp, &o, nkb * m * w, 4);
    b->restf = carve(fp, &o, m * w, 4), b->fkt = carve(fp, &o, m * bk, 4);
    b->lg = carve(fp, &o, bq * bk, 4), b->oe = carve(fp, &o, bq * w, 4);
    b->orf = carve(fp, &o, bq * w, 4), b->tmp = carve(fp, &o, bq * w, 4);
    b->umax = carve(fp, &o, lq + lk, 4);
    used[1] = o;
    o = 0;
    b->pos = carve(ip, &o, lk + 1, 8), b->nvis = carve(ip, &o, lq + 1, 8);
    b->sel = carve(ip, &o, nkb + 1, 8);
    used[2] = o;
}

static int64_t visible(const rj_spec *s, const int64_t *nvis, int64_t i, int64_t lk)
{
    return nvis ? nvis[i] : s->causal ? i + 1 : lk;
}

/* Positive features of n rows (double r, d wide): f rows of m floats, log-scales h. */
static void features(const rfjit_plan *p, const double *r, int64_t n, float *rf, float *f,
                     double *h, float *umax)
{
    const int d = p->spec.d, m = p->spec.m;
    for (size_t t = 0; t < (size_t)n * (size_t)d; t++)
        rf[t] = (float)r[t];
    rj_cm_project(p->cwt, d, m, rf, n, f, umax);
    const double c = -0.5 * log((double)m);
    for (int64_t i = 0; i < n; i++) {
        double sq = 0;
        for (int a = 0; a < d; a++)
            sq += r[i * d + a] * r[i * d + a];
        h[i] = umax[i] - 0.5 * sq + c;
        rj_cm_exp(f + i * m, m, umax[i], 0);
    }
}

/* Keys: features, value rows [e^{h_j - H} v_j | e^{h_j - H} | 0] and [v_j | 1 | 0], each
 * block's keys transposed (d x B) and its state T_b. Returns H. */
static double keys(const rfjit_plan *p, bs_bufs *b, int64_t nk, int64_t nkb)
{
    const rj_spec *s = &p->spec;
    const int d = s->d, dv = s->dv, m = s->m, w = rj_cm_width(dv);
    const int64_t B = s->sparse_block;
    features(p, b->y, nk, b->yf, b->fk, b->hk, b->umax);
    double H = -INFINITY;
    for (int64_t j = 0; j < nk; j++)
        H = b->hk[j] > H ? b->hk[j] : H;
    for (int64_t j = 0; j < nk; j++) {
        const float e = (float)exp(b->hk[j] - H);
        float *vr = b->vrow + j * w, *vx = b->vx + j * w;
        memset(vr, 0, (size_t)w * sizeof(float));
        memset(vx, 0, (size_t)w * sizeof(float));
        for (int a = 0; a < dv; a++) {
            vx[a] = (float)b->v[j * dv + a];
            vr[a] = e * vx[a];
        }
        vx[dv] = 1;
        vr[dv] = e;
    }
    for (int64_t k = 0; k < nkb; k++) {
        const int64_t j0 = k * B, nb = nk - j0 < B ? nk - j0 : B;
        float *yt = b->ykt + (size_t)(k * B * d), *T = b->Tb + k * m * w;
        for (int64_t c = 0; c < nb; c++)
            for (int a = 0; a < d; a++)
                yt[a * nb + c] = (float)b->y[(j0 + c) * d + a];
        memset(T, 0, (size_t)m * (size_t)w * sizeof(float));
        rj_cm_absorb(T, m, w, b->fk + j0 * m, b->vrow + j0 * w, nb);
    }
    return H;
}

/* The exact part of queries [i0, i0 + nq) over the selected blocks: oe rows in units
 * e^{M_i}, one block at a time (its logits, then the rows rescaled to a grown maximum). */
static void exact_part(const rj_spec *s, bs_bufs *b, const int64_t *nvis, int64_t i0, int64_t nq,
                       int64_t nk, int64_t ns)
{
    const int d = s->d, w = rj_cm_width(s->dv);
    const int64_t B = s->sparse_block;
    memset(b->oe, 0, (size_t)nq * (size_t)w * sizeof(float));
    for (int64_t i = 0; i < nq; i++)
        b->M[i] = -INFINITY;
    for (int64_t t = 0; t < ns; t++) {
        const int64_t j0 = b->sel[t] * B, nb = nk - j0 < B ? nk - j0 : B;
        rj_cm_project(b->ykt + (size_t)b->sel[t] * (size_t)B * (size_t)d, d, (int)nb,
                      b->xf + i0 * d, nq, b->lg, NULL);
        for (int64_t i = 0; i < nq; i++) {
            float *l = b->lg + i * nb, *oe = b->oe + i * w;
            const int64_t nv = visible(s, nvis, i0 + i, nk) - j0, n = nv < nb ? nv : nb;
            float mx = -INFINITY;
            for (int64_t c = 0; c < n; c++)
                mx = l[c] > mx ? l[c] : mx;
            if (n <= 0) {
                memset(l, 0, (size_t)nb * sizeof(float));
                continue;
            }
            if (mx > b->M[i]) {
                const float r = b->M[i] > -INFINITY ? (float)exp(b->M[i] - mx) : 0;
                for (int a = 0; a < w; a++)
                    oe[a] *= r;
                b->M[i] = mx;
            }
            rj_cm_exp(l, (int)nb, (float)b->M[i], 0);
            for (int64_t c = n; c < nb; c++)
                l[c] = 0;
        }
        rj_cm_read(b->vx + j0 * w, (int)nb, w, b->lg, nq, b->tmp);
        for (size_t t2 = 0; t2 < (size_t)nq * (size_t)w; t2++)
            b->oe[t2] += b->tmp[t2];
    }
}

/* The feature part of queries [i0, i0 + nq): orf rows in units e^{h_i + H}. rest is the
 * double state of the non-selected blocks before the diagonal (all of them bidirectional);
 * D >= 0: the causal diagonal block, by masked pair products. */
static void feature_part(const rj_spec *s, bs_bufs *b, const int64_t *nvis, int64_t i0, int64_t nq,
                         int64_t nk, int64_t D)
{
    const int m = s->m, w = rj_cm_width(s->dv);
    const int64_t B = s->sparse_block;
    for (size_t t = 0; t < (size_t)m * (size_t)w; t++)
        b->restf[t] = (float)b->rest[t];
    rj_cm_read(b->restf, m, w, b->fq + i0 * m, nq, b->orf);
    if (D < 0)
        return;
    const int64_t j0 = D * B, nb = nk - j0 < B ? nk - j0 : B;
    for (int64_t c = 0; c < nb; c++)
        for (int r = 0; r < m; r++)
            b->fkt[r * nb + c] = b->fk[(j0 + c) * m + r];
    rj_cm_project(b->fkt, m, (int)nb, b->fq + i0 * m, nq, b->lg, NULL);
    for (int64_t i = 0; i < nq; i++) {
        const int64_t nv = visible(s, nvis, i0 + i, nk) - j0;
        for (int64_t c = nv > 0 ? nv : 0; c < nb; c++)
            b->lg[i * nb + c] = 0;
    }
    rj_cm_read(b->vrow + j0 * w, (int)nb, w, b->lg, nq, b->tmp);
    for (size_t t = 0; t < (size_t)nq * (size_t)w; t++)
        b->orf[t] += b->tmp[t];
}

/* rest = base - sum of T_b over the selected blocks below upto, in double. */
static void rest_state(const rj_spec *s, bs_bufs *b, const double *base, int64_t ns, int64_t upto)
{
    const size_t n = (size_t)s->m * (size_t)rj_cm_width(s->dv);
    memcpy(b->rest, base, n * sizeof(double));
    for (int64_t t = 0; t < ns; t++)
        if (b->sel[t] < upto)
            for (size_t u = 0; u < n; u++)
                b->rest[u] -= b->Tb[(size_t)b->sel[t] * n + u];
}

static void add_block(const rj_spec *s, const bs_bufs *b, int64_t k, double *T)
{
    const size_t n = (size_t)s->m * (size_t)rj_cm_width(s->dv);
    for (size_t u = 0; u < n; u++)
        T[u] += b->Tb[(size_t)k * n + u];
}

/* Output rows [i0, i0 + nq) from the two parts (est/blocksparse.c, row_out). */
static void combine(const rj_spec *s, bs_bufs *b, int64_t i0, int64_t nq, bool feat, double H)
{
    const int dv = s->dv, w = rj_cm_width(dv);
    for (int64_t i = 0; i < nq; i++) {
        const float *en = b->oe + i * w, *fn = b->orf + i * w;
        const double M = b->M[i], hf = feat ? b->hq[i0 + i] + H : -INFINITY;
        const double top = M > hf ? M : hf;
        const double ce = M > -INFINITY ? exp(M - top) : 0, cf = feat ? exp(hf - top) : 0;
        const double den = ce * en[dv] + (feat ? cf * fn[dv] : 0);
        double *o = b->od + (i0 + i) * dv;
        for (int a = 0; a < dv; a++)
            o[a] = den > 0 ? (ce * en[a] + (feat ? cf * fn[a] : 0)) / den : 0;
    }
}

static void one_head(const rfjit_plan *p, bs_bufs *b, int64_t lq, int64_t nk, const int64_t *nvis)
{
    const rj_spec *s = &p->spec;
    const int dv = s->dv, m = s->m, w = rj_cm_width(dv);
    const int64_t nkb = rj_bs_key_blocks(s, nk);
    const double H = keys(p, b, nk, nkb);
    features(p, b->x, lq, b->xf, b->fq, b->hq, b->umax);
    rj_bs_key_bounds(s, b->y, nk, b->cen, b->rad);
    /* bidirectional: the sum of every block; causal: the prefix before the diagonal block */
    memset(b->T, 0, (size_t)m * (size_t)w * sizeof(double));
    for (int64_t k = 0; !s->causal && k < nkb; k++)
        add_block(s, b, k, b->T);
    int64_t i0 = 0, prefix = 0;
    for (; i0 < lq && visible(s, nvis, i0, nk) == 0; i0++)
        memset(b->od + i0 * dv, 0, (size_t)dv * sizeof(double));
    while (i0 < lq) {
        int64_t nvb;
        const int64_t i1 = rj_bs_query_block(s, lq, nk, nvis, i0, &nvb), nq = i1 - i0;
        const int64_t ns = rj_bs_select(s, b->x, i0, i1, b->cen, b->rad, nvb, b->bound, b->sel);
        const bool feat = ns < nvb;
        exact_part(s, b, nvis, i0, nq, nk, ns);
        if (feat) {
            const int64_t upto = s->causal ? nvb - 1 : nvb;
            for (; prefix < upto && s->causal; prefix++)
                add_block(s, b, prefix, b->T);
            bool diag = s->causal;
            for (int64_t t = 0; t < ns; t++)
                diag = diag && b->sel[t] != nvb - 1;
            rest_state(s, b, b->T, ns, upto);
            feature_part(s, b, nvis, i0, nq, nk, diag ? nvb - 1 : -1);
        }
        combine(s, b, i0, nq, feat, H);
        i0 = i1;
    }
}

static void slice(const rfjit_plan *p, const rj_call *c, const rj_seq *sq, int64_t h, bs_bufs *b)
{
    const rj_spec *s = &p->spec;
    const double scale = rj_plan_input_scale(s);
    rj_view_gather(&c->q, sq->qb, h, sq->q0, sq->lq, scale, b->x);
    const int64_t nk = rj_call_gather_keys(c, sq, rj_call_kv_head(c, h), scale, b->y, b->v, b->pos);
    if (nk == 0) {
        rj_view_zero_rows(&c->out, sq->qb, h, sq->q0, sq->lq);
        return;
    }
    const int64_t qoff = s->causal ? sq->lk - sq->lq : 0;
    const int64_t *nvis = rj_est_nvis(s, sq->lq, sq->lk, qoff, b->pos, nk, b->nvis);
    one_head(p, b, sq->lq, nk, nvis);
    rj_view_scatter(&c->out, sq->qb, h, sq->q0, sq->lq, b->od);
}

rfjit_status rj_exec_blocksparse_prepare(rfjit_plan *p, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    p->cwt = rj_alloc_array((size_t)s->m * (size_t)s->d, sizeof(float));
    RJ_FAIL_IF(dg, !p->cwt, RFJIT_E_NOMEM, "no memory for the %d x %d projection", s->m, s->d);
    /* the parameters are W itself (est/blocksparse.c fits as positive does) */
    for (int r = 0; r < s->m; r++)
        for (int a = 0; a < s->d; a++)
            p->cwt[(size_t)a * (size_t)s->m + (size_t)r] =
                (float)p->params[(size_t)r * (size_t)s->d + (size_t)a];
    p->bs_fast = 1;
    return RFJIT_OK;
}

rfjit_status rj_exec_blocksparse(const rfjit_plan *p, const rj_call *call, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = call->max_lq, lk = call->max_lk;
    const int64_t B = s->sparse_block;
    const bs_dims z = {(size_t)lq,
                       (size_t)lk,
                       (size_t)rj_bs_key_blocks(s, lk),
                       (size_t)s->d,
                       (size_t)s->dv,
                       (size_t)s->m,
                       (size_t)rj_cm_width(s->dv),
                       (size_t)(lq < B ? lq : B),
                       (size_t)(lk < B ? lk : B)};
    bs_bufs b;
    size_t used[3];
    lay_out(&b, &z, NULL, NULL, NULL, used);
    rj_exec_scratch *c = rj_scratch_take(p, dg);
    if (!c)
        return RFJIT_E_NOMEM;
    char *dp = rj_scratch_buf(c, SLOT_D, used[0], 1);
    char *fp = rj_scratch_buf(c, SLOT_F, used[1], 1);
    char *ip = rj_scratch_buf(c, SLOT_I, used[2], 1);
    if (!dp || !fp || !ip) {
        rj_scratch_give(p, c);
        return rj_fail(dg, RFJIT_E_NOMEM,
                       "blocksparse: no memory for a (batch, head) of %lld x %lld", (long long)lq,
                       (long long)lk);
    }
    lay_out(&b, &z, dp, fp, ip, used);
    for (int64_t bi = 0; bi < call->B; bi++) {
        const rj_seq sq = rj_call_seq(call, bi);
        if (sq.lq == 0 || sq.lk == 0)
            continue;
        for (int64_t h = 0; h < call->H; h++)
            slice(p, call, &sq, h, &b);
    }
    rj_scratch_give(p, c);
    return RFJIT_OK;
}
