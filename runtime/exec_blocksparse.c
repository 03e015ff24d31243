/* SPDX-License-Identifier: MIT */
/*
 * This file runs blocksparse (est/blocksparse.c) in float32 for RFJIT_BACKEND_AUTO and JIT.
 * The blocks, their bounds and the choice of exact blocks come from the estimator's own
 * double code (rj_bs_*), so this path and the reference take the same blocks. The feature
 * maps run on a JIT kernel, every other product on one of runtime/compat_math.h's
 * ahead-of-time register-tiled AVX2 loops:
 *   features     positive's JIT feature kernel (kabi.h RJ_KK_FEAT, compiled once per plan
 *                from the kernel cache): f = e^{ell - h}, h = max u - |x|^2/2 - (1/2) ln m
 *                with u = W x, as est/positive.c; its feature-major tiles become rows;
 *   block states T_b = sum_{j in b} f_j e^{h_j - H} [v_j | 1] (rj_cm_absorb), summed and
 *                differenced in double, so that T - sum_S T_b keeps a small rest;
 *   the rest     f_i . rest (rj_cm_read), and causal, the diagonal block's masked pair
 *                products (rj_cm_project on the block's features, then rj_cm_read);
 *   exact blocks s = x Y_b^T (rj_cm_project with Y_b^T), e^{s - M} (rj_cm_exp), times
 *                [v | 1] (rj_cm_read), one block at a time with an online maximum.
 * Keys are compacted as for eva (masked keys removed, rj_est_nvis), so key masks, varlen
 * batches, GQA, half dtypes and Lq < Lk bottom-right causal follow exec_eva.c's gathering.
 * A head's keys (features, states, bounds) are one pass; its query blocks are then split
 * over the context's pool, each worker with its own buffers and, causal, its own running
 * prefix of block states (summed afresh up to its first block), writing disjoint rows.
 */
#include "runtime/compat_math.h"
#include "runtime/exec.h"
#include "runtime/exec_scratch.h"
#include "runtime/kcache.h"
#include "runtime/pool.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The scratch slots of a blocksparse execute: one arena of each element type. */
enum bs_slot { SLOT_D, SLOT_F, SLOT_I, BS_SLOTS };
/* Workers of one head at most (each holds O(m dv + B^2) floats of its own). */
#define RJ_BS_MAX_WORKERS 64
_Static_assert(BS_SLOTS <= RJ_SLOTS, "every slot of exec_blocksparse.c exists in a scratch");

/* A worker's buffers for its query blocks. */
typedef struct bs_work {
    double *T;     /* causal: the prefix of block states before its diagonal block */
    double *rest;  /* the states of the non-selected blocks (m x w) */
    double *bound; /* the selection's scratch (nkb) */
    double *M;     /* a query block's running maxima of the exact part */
    float *restf, *fkt, *lg, *oe, *orf, *tmp;
    int64_t *sel;
} bs_work;

typedef struct bs_bufs {
    /* double: gathered rows, log-scales, block bounds, the sum of all states, output */
    double *x, *y, *v, *hq, *hk, *cen, *rad, *T, *od;
    /* float: rows, features, values, block states; the feature kernel's log-scales (keys,
     * then queries) and one scratch per feature task (task_floats) */
    float *xf, *yf, *ykt, *fq, *fk, *vrow, *vx, *Tb, *st, *kws;
    int64_t *pos, *nvis, *qstart; /* key positions, visible counts, query block starts */
    int64_t *frow;                /* the kernel's row of each feature (rj_kplan_feature_row) */
    bs_work *work;                /* one per worker */
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

/* Sizes: query and key rows, key blocks, dims, the state width, the longest query and key
 * block (at most the rows, so B x B products stay O(L) whatever sparse_block is), workers. */
typedef struct bs_dims {
    size_t lq, lk, nkb, d, dv, m, w, bq, bk, nw;
    size_t npq, npk, task; /* feature kernel: rows padded to its T, a task's scratch floats */
} bs_dims;

static void lay_out_work(bs_work *k, const bs_dims *z, char *dp, char *fp, char *ip, size_t o[3])
{
    const size_t m = z->m, w = z->w, bq = z->bq, bk = z->bk;
    k->T = carve(dp, &o[0], m * w, 8), k->rest = carve(dp, &o[0], m * w, 8);
    k->bound = carve(dp, &o[0], z->nkb, 8), k->M = carve(dp, &o[0], bq, 8);
    k->restf = carve(fp, &o[1], m * w, 4), k->fkt = carve(fp, &o[1], m * bk, 4);
    k->lg = carve(fp, &o[1], bq * bk, 4), k->oe = carve(fp, &o[1], bq * w, 4);
    k->orf = carve(fp, &o[1], bq * w, 4), k->tmp = carve(fp, &o[1], bq * w, 4);
    k->sel = carve(ip, &o[2], z->nkb + 1, 8);
}

/* Point b into the arenas dp, fp, ip (NULL: measure) and its workers' into work (nw entries);
 * o[3] receives the arenas' sizes. */
static void lay_out(bs_bufs *b, bs_work *work, const bs_dims *z, char *dp, char *fp, char *ip,
                    size_t o[3])
{
    const size_t lq = z->lq, lk = z->lk, nkb = z->nkb, d = z->d, dv = z->dv, m = z->m, w = z->w,
                 bk = z->bk;
    o[0] = o[1] = o[2] = 0;
    b->x = carve(dp, &o[0], lq * d, 8), b->y = carve(dp, &o[0], lk * d, 8);
    b->v = carve(dp, &o[0], lk * dv, 8), b->hq = carve(dp, &o[0], lq, 8);
    b->hk = carve(dp, &o[0], lk, 8), b->cen = carve(dp, &o[0], nkb * d, 8);
    b->rad = carve(dp, &o[0], nkb, 8), b->T = carve(dp, &o[0], m * w, 8);
    b->od = carve(dp, &o[0], lq * dv, 8);
    b->xf = carve(fp, &o[1], lq * d, 4), b->yf = carve(fp, &o[1], lk * d, 4);
    b->ykt = carve(fp, &o[1], nkb * bk * d, 4), b->fq = carve(fp, &o[1], lq * m, 4);
    b->fk = carve(fp, &o[1], lk * m, 4), b->vrow = carve(fp, &o[1], lk * w, 4);
    b->vx = carve(fp, &o[1], lk * w, 4), b->Tb = carve(fp, &o[1], nkb * m * w, 4);
    b->st = carve(fp, &o[1], z->npq + z->npk, 4);
    b->kws = carve(fp, &o[1], 2 * z->nw * z->task, 4);
    b->pos = carve(ip, &o[2], lk + 1, 8), b->nvis = carve(ip, &o[2], lq + 1, 8);
    b->qstart = carve(ip, &o[2], lq + 1, 8), b->frow = carve(ip, &o[2], m, 8);
    b->work = work;
    for (size_t t = 0; t < z->nw; t++)
        lay_out_work(&work[t], z, dp, fp, ip, o);
}

static int64_t visible(const rj_spec *s, const int64_t *nvis, int64_t i, int64_t lk)
{
    return nvis ? nvis[i] : s->causal ? i + 1 : lk;
}

/* Rows the feature kernel maps per call: a whole number of its tiles, few enough that its
 * feature-major output (Mp x chunk floats) stays in L2 until it is turned into rows. */
static int64_t feature_chunk(const rj_kplan *kp)
{
    return (64 + kp->T - 1) / kp->T * kp->T;
}

/* Floats of one feature task's scratch: the kernel's, then its output tile F. */
static size_t task_floats(const rj_kplan *kp)
{
    return up16((size_t)kp->ws_floats) + up16((size_t)kp->Mp * (size_t)feature_chunk(kp));
}

/* Positive features of rows [r0, r1) of r (double, d wide; r0 a multiple of the kernel's T)
 * on the plan's feature kernel, a chunk of rows per call: float rows into rf, the kernel's
 * feature-major tiles into the task's F and its log-scales into st, then f rows of m floats
 * and h in double. The kernel's h is est/positive.c's, max_r u_r - |x|^2/2 - (1/2) ln m,
 * and its features e^{ell - h}, so both go to the rest of the path as they are. */
static void features(const rfjit_plan *p, const int64_t *rows, const double *r, int64_t r0,
                     int64_t r1, float *rf, float *st, float *task, float *f, double *h)
{
    const int64_t d = p->spec.d, m = p->spec.m, ch = feature_chunk(&p->kp), TB = 16;
    float *F = task + up16((size_t)p->kp.ws_floats);
    for (int64_t t = r0 * d; t < r1 * d; t++)
        rf[t] = (float)r[t];
    for (int64_t k0 = r0; k0 < r1; k0 += ch) {
        const int64_t n = r1 - k0 < ch ? r1 - k0 : ch;
        rj_kargs a = {0};
        a.q = rf + k0 * d;
        a.sq = d;
        a.lq = n;
        a.out = F;
        a.so = ch;
        a.st = st + k0;
        a.pq = p->kpar;
        a.pk = p->kpar + p->kp.role_floats;
        a.ws = task;
        p->fn(&a);
        for (int64_t i = k0; i < k0 + n; i++)
            h[i] = st[i];
        /* feature-major to rows in TB x TB blocks: a block's TB output rows (m floats
         * apart, a power of two at common m) stay in L1 while its TB features fill them */
        for (int64_t c0 = 0; c0 < m; c0 += TB)
            for (int64_t i0 = 0; i0 < n; i0 += TB) {
                const int64_t c1 = c0 + TB < m ? c0 + TB : m, i1 = i0 + TB < n ? i0 + TB : n;
                for (int64_t c = c0; c < c1; c++) {
                    const float *row = F + rows[c] * ch;
                    for (int64_t i = i0; i < i1; i++)
                        f[(k0 + i) * m + c] = row[i];
                }
            }
    }
}

/* A head's first passes, split over the pool: features of rows, then per key block. */
typedef struct bs_prep {
    const rfjit_plan *p;
    bs_bufs *b;
    int64_t lq, nk, nkb, nw;
    double H;
} bs_prep;

/* Task t < nw: features of a share of the keys' tiles; nw + t: of the queries'. Shares are
 * whole tiles, since the kernel writes whole tiles of st. */
static void prep_features(void *arg, int64_t t)
{
    const bs_prep *j = arg;
    const rfjit_plan *p = j->p;
    bs_bufs *b = j->b;
    const bool q = t >= j->nw;
    const int64_t n = q ? j->lq : j->nk, u = q ? t - j->nw : t, T = p->kp.T;
    const int64_t nt = (n + T - 1) / T, r0 = u * nt / j->nw * T;
    const int64_t r1 = (u + 1) * nt / j->nw * T < n ? (u + 1) * nt / j->nw * T : n;
    if (r0 >= r1)
        return;
    float *task = b->kws + (size_t)t * task_floats(&p->kp);
    const int64_t npk = (j->nk + T - 1) / T * T;
    if (q)
        features(p, b->frow, b->x, r0, r1, b->xf, b->st + npk, task, b->fq, b->hq);
    else
        features(p, b->frow, b->y, r0, r1, b->yf, b->st, task, b->fk, b->hk);
}

/* Task t: a share of the key blocks: value rows [e^{h_j - H} v_j | e^{h_j - H} | 0] and
 * [v_j | 1 | 0], the block's keys transposed (d x B) and its state T_b. */
static void prep_blocks(void *arg, int64_t t)
{
    const bs_prep *j = arg;
    const rj_spec *s = &j->p->spec;
    bs_bufs *b = j->b;
    const int d = s->d, dv = s->dv, m = s->m, w = rj_cm_width(dv);
    const int64_t B = s->sparse_block, nk = j->nk;
    for (int64_t k = t * j->nkb / j->nw; k < (t + 1) * j->nkb / j->nw; k++) {
        const int64_t j0 = k * B, nb = nk - j0 < B ? nk - j0 : B;
        for (int64_t r = j0; r < j0 + nb; r++) {
            const float e = (float)exp(b->hk[r] - j->H);
            float *vr = b->vrow + r * w, *vx = b->vx + r * w;
            memset(vr, 0, (size_t)w * sizeof(float));
            memset(vx, 0, (size_t)w * sizeof(float));
            for (int a = 0; a < dv; a++) {
                vx[a] = (float)b->v[r * dv + a];
                vr[a] = e * vx[a];
            }
            vx[dv] = 1;
            vr[dv] = e;
        }
        float *yt = b->ykt + (size_t)(k * B * d), *T = b->Tb + k * m * w;
        for (int64_t c = 0; c < nb; c++)
            for (int a = 0; a < d; a++)
                yt[a * nb + c] = (float)b->y[(j0 + c) * d + a];
        memset(T, 0, (size_t)m * (size_t)w * sizeof(float));
        rj_cm_absorb(T, m, w, b->fk + j0 * m, b->vrow + j0 * w, nb);
    }
}

static void run_tasks(const rfjit_plan *p, int64_t n, rj_pool_fn fn, void *arg)
{
    if (n > 1)
        rj_pool_run(p->ctx->pool, n, fn, arg);
    else
        for (int64_t t = 0; t < n; t++)
            fn(arg, t);
}

/* Features of the queries and keys, and the key blocks' rows and states. Returns H, the
 * largest key log-scale. */
static double prepare(const rfjit_plan *p, bs_bufs *b, int64_t nw, int64_t lq, int64_t nk,
                      int64_t nkb)
{
    bs_prep j = {p, b, lq, nk, nkb, nw, -INFINITY};
    run_tasks(p, 2 * nw, prep_features, &j);
    for (int64_t r = 0; r < nk; r++)
        j.H = b->hk[r] > j.H ? b->hk[r] : j.H;
    j.nw = nw < nkb ? nw : nkb;
    run_tasks(p, j.nw, prep_blocks, &j);
    return j.H;
}

/* The exact part of queries [i0, i0 + nq) over the selected blocks: oe rows in units
 * e^{M_i}, one block at a time (its logits, then the rows rescaled to a grown maximum). */
static void exact_part(const rj_spec *s, const bs_bufs *b, bs_work *k, const int64_t *nvis,
                       int64_t i0, int64_t nq, int64_t nk, int64_t ns)
{
    const int d = s->d, w = rj_cm_width(s->dv);
    const int64_t B = s->sparse_block;
    memset(k->oe, 0, (size_t)nq * (size_t)w * sizeof(float));
    for (int64_t i = 0; i < nq; i++)
        k->M[i] = -INFINITY;
    for (int64_t t = 0; t < ns; t++) {
        const int64_t j0 = k->sel[t] * B, nb = nk - j0 < B ? nk - j0 : B;
        rj_cm_project(b->ykt + (size_t)(k->sel[t] * B * d), d, (int)nb, b->xf + i0 * d, nq, k->lg,
                      NULL);
        for (int64_t i = 0; i < nq; i++) {
            float *l = k->lg + i * nb, *oe = k->oe + i * w;
            const int64_t nv = visible(s, nvis, i0 + i, nk) - j0, n = nv < nb ? nv : nb;
            float mx = -INFINITY;
            for (int64_t c = 0; c < n; c++)
                mx = l[c] > mx ? l[c] : mx;
            if (n <= 0) {
                memset(l, 0, (size_t)nb * sizeof(float));
                continue;
            }
            if (mx > k->M[i]) {
                const float r = k->M[i] > -INFINITY ? (float)exp(k->M[i] - mx) : 0;
                for (int a = 0; a < w; a++)
                    oe[a] *= r;
                k->M[i] = mx;
            }
            rj_cm_exp(l, (int)nb, (float)k->M[i], 0);
            for (int64_t c = n; c < nb; c++)
                l[c] = 0;
        }
        rj_cm_read(b->vx + j0 * w, (int)nb, w, k->lg, nq, k->tmp);
        for (size_t u = 0; u < (size_t)nq * (size_t)w; u++)
            k->oe[u] += k->tmp[u];
    }
}

/* The feature part of queries [i0, i0 + nq): orf rows in units e^{h_i + H}. k->rest is the
 * double state of the non-selected blocks before the diagonal (all of them bidirectional);
 * D >= 0: the causal diagonal block, by masked pair products. */
static void feature_part(const rj_spec *s, const bs_bufs *b, bs_work *k, const int64_t *nvis,
                         int64_t i0, int64_t nq, int64_t nk, int64_t D)
{
    const int m = s->m, w = rj_cm_width(s->dv);
    const int64_t B = s->sparse_block;
    for (size_t u = 0; u < (size_t)m * (size_t)w; u++)
        k->restf[u] = (float)k->rest[u];
    rj_cm_read(k->restf, m, w, b->fq + i0 * m, nq, k->orf);
    if (D < 0)
        return;
    const int64_t j0 = D * B, nb = nk - j0 < B ? nk - j0 : B;
    for (int64_t c = 0; c < nb; c++)
        for (int r = 0; r < m; r++)
            k->fkt[r * nb + c] = b->fk[(j0 + c) * m + r];
    rj_cm_project(k->fkt, m, (int)nb, b->fq + i0 * m, nq, k->lg, NULL);
    for (int64_t i = 0; i < nq; i++) {
        const int64_t nv = visible(s, nvis, i0 + i, nk) - j0;
        for (int64_t c = nv > 0 ? nv : 0; c < nb; c++)
            k->lg[i * nb + c] = 0;
    }
    rj_cm_read(b->vrow + j0 * w, (int)nb, w, k->lg, nq, k->tmp);
    for (size_t u = 0; u < (size_t)nq * (size_t)w; u++)
        k->orf[u] += k->tmp[u];
}

/* k->rest = base - sum of T_b over the selected blocks below upto, in double. */
static void rest_state(const rj_spec *s, const bs_bufs *b, bs_work *k, const double *base,
                       int64_t ns, int64_t upto)
{
    const size_t n = (size_t)s->m * (size_t)rj_cm_width(s->dv);
    memcpy(k->rest, base, n * sizeof(double));
    for (int64_t t = 0; t < ns; t++)
        if (k->sel[t] < upto)
            for (size_t u = 0; u < n; u++)
                k->rest[u] -= b->Tb[(size_t)k->sel[t] * n + u];
}

static void add_block(const rj_spec *s, const bs_bufs *b, int64_t blk, double *T)
{
    const size_t n = (size_t)s->m * (size_t)rj_cm_width(s->dv);
    for (size_t u = 0; u < n; u++)
        T[u] += b->Tb[(size_t)blk * n + u];
}

/* Output rows [i0, i0 + nq) from the two parts (est/blocksparse.c, row_out). */
static void combine(const rj_spec *s, const bs_bufs *b, const bs_work *k, int64_t i0, int64_t nq,
                    bool feat, double H)
{
    const int dv = s->dv, w = rj_cm_width(dv);
    for (int64_t i = 0; i < nq; i++) {
        const float *en = k->oe + i * w, *fn = k->orf + i * w;
        const double M = k->M[i], hf = feat ? b->hq[i0 + i] + H : -INFINITY;
        const double top = M > hf ? M : hf;
        const double ce = M > -INFINITY ? exp(M - top) : 0, cf = feat ? exp(hf - top) : 0;
        const double den = ce * en[dv] + (feat ? cf * fn[dv] : 0);
        double *o = b->od + (i0 + i) * dv;
        for (int a = 0; a < dv; a++)
            o[a] = den > 0 ? (ce * en[a] + (feat ? cf * fn[a] : 0)) / den : 0;
    }
}

/* One head's query blocks, shared by the workers: the keys' states are read only, each worker
 * writes its own buffers and its query blocks' output rows. */
typedef struct bs_job {
    const rj_spec *s;
    const bs_bufs *b;
    const int64_t *nvis;
    int64_t lq, nk, nqb, nw;
    double H;
} bs_job;

/* Worker t: query blocks [t nqb / nw, (t + 1) nqb / nw), the causal prefix of block states
 * built from scratch for its first block and then carried. */
static void run_blocks(void *arg, int64_t t)
{
    const bs_job *j = arg;
    const rj_spec *s = j->s;
    const bs_bufs *b = j->b;
    bs_work *k = &b->work[t];
    const int64_t q0 = t * j->nqb / j->nw, q1 = (t + 1) * j->nqb / j->nw;
    int64_t prefix = 0;
    memset(k->T, 0, (size_t)s->m * (size_t)rj_cm_width(s->dv) * sizeof(double));
    for (int64_t qb = q0; qb < q1; qb++) {
        const int64_t i0 = b->qstart[qb];
        int64_t nvb;
        const int64_t i1 = rj_bs_query_block(s, j->lq, j->nk, j->nvis, i0, &nvb), nq = i1 - i0;
        const int64_t ns = rj_bs_select(s, b->x, i0, i1, b->cen, b->rad, nvb, k->bound, k->sel);
        const bool feat = ns < nvb;
        exact_part(s, b, k, j->nvis, i0, nq, j->nk, ns);
        if (feat) {
            const int64_t upto = s->causal ? nvb - 1 : nvb;
            for (; s->causal && prefix < upto; prefix++)
                add_block(s, b, prefix, k->T);
            bool diag = s->causal;
            for (int64_t u = 0; u < ns; u++)
                diag = diag && k->sel[u] != nvb - 1;
            rest_state(s, b, k, s->causal ? k->T : b->T, ns, upto);
            feature_part(s, b, k, j->nvis, i0, nq, j->nk, diag ? nvb - 1 : -1);
        }
        combine(s, b, k, i0, nq, feat, j->H);
    }
}

static void one_head(const rfjit_plan *p, bs_bufs *b, int64_t nw, int64_t lq, int64_t nk,
                     const int64_t *nvis)
{
    const rj_spec *s = &p->spec;
    const int dv = s->dv, m = s->m, w = rj_cm_width(dv);
    const int64_t nkb = rj_bs_key_blocks(s, nk);
    const double H = prepare(p, b, nw, lq, nk, nkb);
    rj_bs_key_bounds(s, b->y, nk, b->cen, b->rad);
    /* bidirectional: the sum of every block's state */
    memset(b->T, 0, (size_t)m * (size_t)w * sizeof(double));
    for (int64_t k = 0; !s->causal && k < nkb; k++)
        add_block(s, b, k, b->T);
    int64_t i0 = 0, nqb = 0;
    for (; i0 < lq && visible(s, nvis, i0, nk) == 0; i0++)
        memset(b->od + i0 * dv, 0, (size_t)dv * sizeof(double));
    while (i0 < lq) {
        int64_t nvb;
        b->qstart[nqb++] = i0;
        i0 = rj_bs_query_block(s, lq, nk, nvis, i0, &nvb);
    }
    bs_job j = {s, b, nvis, lq, nk, nqb, nw < nqb ? nw : nqb, H};
    run_tasks(p, j.nw, run_blocks, &j);
}

static void slice(const rfjit_plan *p, const rj_call *c, const rj_seq *sq, int64_t h, bs_bufs *b,
                  int64_t nw)
{
    const rj_head_rows rows = {b->x, b->y, b->v, b->pos, b->nvis};
    const int64_t *nvis = NULL;
    const int64_t nk = rj_call_gather_head(p, c, sq, h, &rows, &nvis);
    if (nk == 0)
        return;
    one_head(p, b, nw, sq->lq, nk, nvis);
    rj_view_scatter(&c->out, sq->qb, h, sq->q0, sq->lq, b->od);
}

/* The positive feature kernel for blocksparse's features (its W and m are positive's): the
 * kernel the estimate API and a positive plan of this shape compile, taken from the context's
 * kernel cache, and its lowered parameters. It goes in p->kp and p->fn with p->jit = 0, as
 * no attention kernel runs. */
static rfjit_status feature_kernel(rfjit_plan *p, rj_diag *dg)
{
    rj_spec fs = p->spec;
    fs.est = rj_est_find("positive");
    RJ_FAIL_IF(dg, !fs.est, RFJIT_E_INTERNAL, "blocksparse needs the positive estimator");
    rj_kplan attn;
    RJ_TRY(rj_kplan_make(&fs, &p->tiling, p->ctx->isa.max_vw, p->ctx->isa.fma, &attn, dg));
    RJ_TRY(rj_kplan_feat(&fs, &attn, &p->kp, dg));
    p->kp.xscale = 1; /* the rows arrive scaled (rj_view_gather) */
    RJ_TRY(rj_kcache_get(p->ctx->kc, &p->kp, &p->fn, dg));
    rj_kcache_symbol(p->ctx->kc, &p->kp, p->sym, sizeof p->sym);
    p->kpar = rj_alloc_array(2 * (size_t)p->kp.role_floats, sizeof(float));
    RJ_FAIL_IF(dg, !p->kpar, RFJIT_E_NOMEM, "no memory for kernel parameters");
    /* positive's lowering (exec_jit.c) reads only the spec and the kernel plan: a plan that
     * names positive and holds this kernel plan lowers blocksparse's W as positive's */
    rfjit_plan lp = {0};
    lp.spec = fs;
    lp.kp = p->kp;
    return rj_lower_params(&lp, p->params, p->kpar, dg);
}

rfjit_status rj_exec_blocksparse_prepare(rfjit_plan *p, rj_diag *dg)
{
    rj_diag why = {{0}};
    const rfjit_status s = feature_kernel(p, &why);
    /* as for attention kernels (plan.c): a JIT that fails may fall back to the reference */
    if ((s == RFJIT_E_INTERNAL || s == RFJIT_E_JIT || s == RFJIT_E_TARGET) && p->fallback) {
        snprintf(p->why_reference, sizeof p->why_reference, "fallback: the JIT failed (%s): %.180s",
                 rj_status_text(s), why.msg);
        return RFJIT_OK;
    }
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "%s", why.msg);
    p->bs_fast = 1;
    return RFJIT_OK;
}

rfjit_status rj_exec_blocksparse(const rfjit_plan *p, const rj_call *call, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    const int64_t lq = call->max_lq, lk = call->max_lk;
    const int64_t B = s->sparse_block;
    /* workers split a head's query blocks: a head's keys are one pass, shared by all */
    const int64_t threads = rj_pool_threads(p->ctx->pool);
    bs_dims z = {(size_t)lq,
                 (size_t)lk,
                 (size_t)rj_bs_key_blocks(s, lk),
                 (size_t)s->d,
                 (size_t)s->dv,
                 (size_t)s->m,
                 (size_t)rj_cm_width(s->dv),
                 (size_t)(lq < B ? lq : B),
                 (size_t)(lk < B ? lk : B),
                 (size_t)(threads > 0 ? threads : 1),
                 (size_t)((lq + p->kp.T - 1) / p->kp.T * p->kp.T),
                 (size_t)((lk + p->kp.T - 1) / p->kp.T * p->kp.T),
                 task_floats(&p->kp)};
    bs_work work[RJ_BS_MAX_WORKERS];
    z.nw = z.nw < RJ_BS_MAX_WORKERS ? z.nw : RJ_BS_MAX_WORKERS;
    bs_bufs b;
    size_t used[3];
    lay_out(&b, work, &z, NULL, NULL, NULL, used);
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
    lay_out(&b, work, &z, dp, fp, ip, used);
    for (int r = 0; r < s->m; r++)
        b.frow[r] = rj_kplan_feature_row(&p->kp, r);
    for (int64_t bi = 0; bi < call->B; bi++) {
        const rj_seq sq = rj_call_seq(call, bi);
        if (sq.lq == 0 || sq.lk == 0)
            continue;
        for (int64_t h = 0; h < call->H; h++)
            slice(p, call, &sq, h, &b, (int64_t)z.nw);
    }
    rj_scratch_give(p, c);
    return RFJIT_OK;
}
