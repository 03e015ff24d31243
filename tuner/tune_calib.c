/* SPDX-License-Identifier: MIT */
/*
 * This file holds the tuner's calibration set and measures a candidate's error on it, for
 * both budget kinds (include/rfjit.h RFJIT_BUDGET_*):
 *
 *   output:  sum ||O_hat - O||^2 / sum ||O||^2 over every (batch, head) of the set;
 *   kernel:  mean over the sampled (query, key) pairs of (K_hat - K)^2 / K^2.
 *
 * One projection seed gives one sample of each; the search averages seeds. Exact outputs and
 * the exact kernel sample are computed once. Everything runs through the plan calls behind the
 * public ones (runtime/plan.h) on the JIT backend, so the error measured is the error the
 * user's plan will have.
 */
#include "tuner/tune.h"

#include "core/philox.h"
#include "runtime/tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SYNTH_MAX_L 1024 /* synthetic calibration length cap */
#define KSAMPLE 128      /* kernel budget: queries x keys sampled */

void rj_calib_free(rj_calib *c)
{
    rj_free(c->q);
    rj_free(c->k);
    rj_free(c->v);
    rj_free(c->o);
    rj_free(c->kq);
    rj_free(c->kk);
    rj_free(c->K);
    memset(c, 0, sizeof *c);
}

/* Copy a checked view into contiguous floats. */
static void copy_view(const rfjit_tensor *t, float *dst)
{
    size_t i = 0;
    for (int64_t b = 0; b < t->shape[0]; b++)
        for (int64_t h = 0; h < t->shape[1]; h++)
            for (int64_t r = 0; r < t->shape[2]; r++)
                for (int64_t c = 0; c < t->shape[3]; c++)
                    dst[i++] = t->data[b * t->stride[0] + h * t->stride[1] + r * t->stride[2] +
                                       c * t->stride[3]];
}

static rfjit_status user_set(const rj_tune_req *r, rj_calib *c, rj_diag *dg)
{
    const rfjit_tensor *q = r->cq, *k = r->ck, *v = r->cv;
    RJ_TRY(rj_tensor_check(q, "calib_q", false, dg));
    RJ_TRY(rj_tensor_check(k, "calib_k", false, dg));
    RJ_TRY(rj_tensor_check(v, "calib_v", false, dg));
    RJ_FAIL_IF(dg, q->shape[3] != r->d || k->shape[3] != r->d, RFJIT_E_SHAPE,
               "calib_q and calib_k must have last dimension d = %d", r->d);
    RJ_FAIL_IF(dg, v->shape[3] != r->dv, RFJIT_E_SHAPE,
               "calib_v must have last dimension dv = %d", r->dv);
    RJ_FAIL_IF(dg, k->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] ||
                       v->shape[0] != q->shape[0] || v->shape[1] != q->shape[1] ||
                       v->shape[2] != k->shape[2],
               RFJIT_E_SHAPE, "calib_q, calib_k, calib_v disagree in batch, heads or keys");
    RJ_FAIL_IF(dg, r->causal && q->shape[2] != k->shape[2], RFJIT_E_SHAPE,
               "a causal tune needs as many calibration queries as keys");
    RJ_TRY(rj_tensor_check_finite(q, "calib_q", dg));
    RJ_TRY(rj_tensor_check_finite(k, "calib_k", dg));
    RJ_TRY(rj_tensor_check_finite(v, "calib_v", dg));
    c->B = q->shape[0];
    c->H = q->shape[1];
    c->lq = q->shape[2];
    c->lk = k->shape[2];
    const size_t nq = (size_t)(c->B * c->H * c->lq), nk = (size_t)(c->B * c->H * c->lk);
    c->q = rj_alloc_array(nq * (size_t)r->d, sizeof(float));
    c->k = rj_alloc_array(nk * (size_t)r->d, sizeof(float));
    c->v = rj_alloc_array(nk * (size_t)r->dv, sizeof(float));
    RJ_FAIL_IF(dg, !c->q || !c->k || !c->v, RFJIT_E_NOMEM, "no memory for the calibration set");
    copy_view(q, c->q);
    copy_view(k, c->k);
    copy_view(v, c->v);
    snprintf(c->what, sizeof c->what,
             "user calibration set: B=%lld H=%lld Lq=%lld Lk=%lld", (long long)c->B,
             (long long)c->H, (long long)c->lq, (long long)c->lk);
    return RFJIT_OK;
}

/* The real-like profile (include/rfjit.h RFJIT_PROFILE_REAL_LIKE), from the statistics of
 * all-MiniLM-L6-v2's 72 heads after the d^-1/4 scaling: the mean component's norm is the
 * middle of the measured 1.2-2.7; the fluctuation's trace makes the median |x|^2 about
 * |mu|^2 + TRACE = 9, the measured median norm 3 squared; the first share is the measured
 * top-eigenvalue share (up to 0.42), the next two a decay that keeps the rest spread; the
 * gain's spread puts the longest of 1024 rows (3.3 sd: g about 2.6) near 8, below the
 * measured maximum 10.6. */
#define REAL_MU_NORM 2.0
#define REAL_TRACE 5.0
#define REAL_GAIN_SD 0.3
#define REAL_SPIKES 3
#define REAL_MIN_D 8 /* narrower heads: isotropic fluctuation */
static const double real_share[REAL_SPIKES] = {0.40, 0.15, 0.10};

/* Rows 1.. of dir (d wide) made orthonormal, row 0 only normalised. */
static void orthonormalise(double *dir, int rows, int d)
{
    for (int r = 0; r < rows; r++) {
        double *u = dir + (size_t)r * d;
        for (int p = 1; p < r; p++) {
            const double *v = dir + (size_t)p * d;
            double dot = 0;
            for (int c = 0; c < d; c++)
                dot += u[c] * v[c];
            for (int c = 0; c < d; c++)
                u[c] -= dot * v[c];
        }
        double n2 = 0;
        for (int c = 0; c < d; c++)
            n2 += u[c] * u[c];
        const double inv = n2 > 0 ? 1 / sqrt(n2) : 0;
        for (int c = 0; c < d; c++)
            u[c] *= inv;
    }
}

rfjit_status rj_calib_real_like(float *x, int64_t n, int32_t d, double s, uint64_t seed, int part,
                                rj_diag *dg)
{
    /* z shares the Gaussian profile's stream; the directions, spike weights and gains have
     * streams of their own per part, clear of every other stream in core/philox.h */
    const uint32_t st = RJ_STREAM_TUNE_CALIB + 0x10u * (uint32_t)(part + 1);
    const int rows = 1 + REAL_SPIKES;
    float *dirf = rj_alloc_array((size_t)rows * (size_t)d, sizeof(float));
    double *dir = rj_alloc_array((size_t)rows * (size_t)d, sizeof(double));
    float *w = rj_alloc_array((size_t)n * REAL_SPIKES, sizeof(float));
    float *g = rj_alloc_array((size_t)n, sizeof(float));
    rfjit_status status = RFJIT_OK;
    if (!dirf || !dir || !w || !g) {
        status = rj_fail(dg, RFJIT_E_NOMEM, "no memory for the real-like calibration set");
        goto out;
    }
    rj_fill_normal(x, (size_t)n * (size_t)d, 1.0, seed, RJ_STREAM_TUNE_CALIB + (uint32_t)part);
    rj_fill_normal(dirf, (size_t)rows * (size_t)d, 1.0, seed, st);
    rj_fill_normal(w, (size_t)n * REAL_SPIKES, 1.0, seed, st + 1);
    rj_fill_normal(g, (size_t)n, 1.0, seed, st + 2);
    for (size_t i = 0; i < (size_t)rows * (size_t)d; i++)
        dir[i] = dirf[i];
    orthonormalise(dir, rows, d);
    const int spikes = d >= REAL_MIN_D ? REAL_SPIKES : 0;
    double rest = 1;
    for (int j = 0; j < spikes; j++)
        rest -= real_share[j];
    const double a2 = rest * REAL_TRACE / d;
    double b[REAL_SPIKES] = {0};
    for (int j = 0; j < spikes; j++)
        b[j] = sqrt(real_share[j] * REAL_TRACE - a2);
    const double a = sqrt(a2);
    for (int64_t i = 0; i < n; i++) {
        /* mean 1: exp(sd n) has mean exp(sd^2 / 2) */
        const double gi = exp(REAL_GAIN_SD * g[i] - REAL_GAIN_SD * REAL_GAIN_SD / 2);
        float *xi = x + i * d;
        for (int c = 0; c < d; c++) {
            double f = a * xi[c];
            for (int j = 0; j < spikes; j++)
                f += b[j] * w[i * REAL_SPIKES + j] * dir[(size_t)(1 + j) * d + c];
            xi[c] = (float)(s * (REAL_MU_NORM * dir[c] + gi * f));
        }
    }
out:
    rj_free(dirf);
    rj_free(dir);
    rj_free(w);
    rj_free(g);
    return status;
}

rfjit_status rj_calib_draw(const rj_tune_req *r, int64_t n, float *q, float *k, float *v,
                           rj_diag *dg)
{
    const size_t nq = (size_t)n * (size_t)r->d;
    if (r->profile == RFJIT_PROFILE_REAL_LIKE) {
        RJ_TRY(rj_calib_real_like(q, n, r->d, r->scale, r->seed, RJ_PART_Q, dg));
        RJ_TRY(rj_calib_real_like(k, n, r->d, r->scale, r->seed, RJ_PART_K, dg));
        /* the draw is of the rows the estimators see; attention multiplies q and k by
         * sqrt(softmax scale) */
        const float inv = (float)(1 / rj_input_scale(r->d, r->attn_scale));
        for (size_t i = 0; i < nq; i++) {
            q[i] *= inv;
            k[i] *= inv;
        }
    } else {
        /* entries N(0, scale^2 / (d softmax scale)): the rows the estimators see, q
         * sqrt(softmax scale), have norm about `scale`, whatever d (spec 8.7: that norm drives
         * every estimator's variance). RJ_STREAM_TUNE_CALIB is apart from every stream the
         * estimators draw from. The default keeps the expression it had before the softmax
         * scale was a parameter, so default synthetic sets (and what wisdom learnt on them)
         * keep their bits. */
        const int dflt = r->attn_scale == 0 || r->attn_scale == rj_default_scale(r->d);
        const double sd = dflt ? r->scale / pow((double)r->d, 0.25)
                               : r->scale / sqrt((double)r->d * r->attn_scale);
        rj_fill_normal(q, nq, sd, r->seed, RJ_STREAM_TUNE_CALIB + RJ_PART_Q);
        rj_fill_normal(k, nq, sd, r->seed, RJ_STREAM_TUNE_CALIB + RJ_PART_K);
    }
    rj_fill_normal(v, (size_t)n * (size_t)r->dv, 1.0, r->seed, RJ_STREAM_TUNE_CALIB + RJ_PART_V);
    return RFJIT_OK;
}

static rfjit_status synthetic_set(const rj_tune_req *r, rj_calib *c, rj_diag *dg)
{
    c->B = c->H = 1;
    c->lq = c->lk = r->L < SYNTH_MAX_L ? r->L : SYNTH_MAX_L;
    const size_t n = (size_t)c->lq;
    c->q = rj_alloc_array(n * (size_t)r->d, sizeof(float));
    c->k = rj_alloc_array(n * (size_t)r->d, sizeof(float));
    c->v = rj_alloc_array(n * (size_t)r->dv, sizeof(float));
    RJ_FAIL_IF(dg, !c->q || !c->k || !c->v, RFJIT_E_NOMEM, "no memory for the calibration set");
    RJ_TRY(rj_calib_draw(r, c->lq, c->q, c->k, c->v, dg));
    if (r->profile == RFJIT_PROFILE_REAL_LIKE)
        snprintf(c->what, sizeof c->what,
                 "synthetic calibration set, real-like profile: L=%lld tokens, q and k rows of "
                 "scaled norm ~%g (median), mean component %g, top eigenvalue share %g; v "
                 "entries N(0, 1); seed %llu",
                 (long long)c->lq, 3 * r->scale, REAL_MU_NORM * r->scale, real_share[0],
                 (unsigned long long)r->seed);
    else
        snprintf(c->what, sizeof c->what,
                 "synthetic calibration set, Gaussian profile: L=%lld tokens, q and k entries "
                 "N(0, %g^2 / (d scale)) (scaled norm ~%g), v entries N(0, 1), seed %llu",
                 (long long)c->lq, r->scale, r->scale, (unsigned long long)r->seed);
    return RFJIT_OK;
}

static rfjit_tensor view(float *p, const rj_calib *c, int64_t L, int64_t w)
{
    return rj_tensor_contiguous(p, c->B, c->H, L, w);
}

/* out = attention of plan a on the set. */
static rfjit_status attend(rfjit_ctx *ctx, const rj_calib *c, const rfjit_attn_desc *a,
                           float *out, rj_diag *dg)
{
    rfjit_plan *p = NULL;
    rfjit_status s = rj_plan_create(ctx, a, &p, dg);
    if (s != RFJIT_OK)
        return s;
    rfjit_tensor tq = view(c->q, c, c->lq, c->d), tk = view(c->k, c, c->lk, c->d);
    rfjit_tensor tv = view(c->v, c, c->lk, c->dv), to = view(out, c, c->lq, c->dv);
    s = rj_plan_execute(p, &tq, &tk, &tv, &to, dg);
    rj_plan_free(p);
    return s;
}

static rfjit_status kernel_of(rfjit_ctx *ctx, const rj_calib *c, const rfjit_attn_desc *a,
                              float *K, rj_diag *dg)
{
    rfjit_plan *p = NULL;
    rfjit_status s = rj_plan_create(ctx, a, &p, dg);
    if (s != RFJIT_OK)
        return s;
    rfjit_tensor tx = rj_tensor_contiguous(c->kq, 1, 1, c->nq, c->d);
    rfjit_tensor ty = rj_tensor_contiguous(c->kk, 1, 1, c->nk, c->d);
    rfjit_tensor to = rj_tensor_contiguous(K, 1, 1, c->nq, c->nk);
    s = rj_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_SOFTMAX, &to, dg);
    rj_plan_free(p);
    return s;
}

rfjit_status rj_calib_make(rfjit_ctx *ctx, const rj_tune_req *r, rj_calib *c, rj_diag *dg)
{
    memset(c, 0, sizeof *c);
    c->d = r->d;
    c->dv = r->dv;
    c->causal = r->causal;
    c->xscale = rj_input_scale(r->d, r->attn_scale);
    rfjit_status s = r->cq ? user_set(r, c, dg) : synthetic_set(r, c, dg);
    const size_t no = (size_t)(c->B * c->H * c->lq) * (size_t)c->dv;
    if (s == RFJIT_OK && !(c->o = rj_alloc_array(no, sizeof(float))))
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for the exact outputs");
    if (s == RFJIT_OK) {
        rfjit_attn_desc a = rj_tune_desc_of(r, rj_est_find("exact"), 0, 0);
        s = attend(ctx, c, &a, c->o, dg);
    }
    if (s == RFJIT_OK) {
        c->o_norm2 = 0;
        for (size_t i = 0; i < no; i++)
            c->o_norm2 += (double)c->o[i] * c->o[i];
        RJ_FAIL_IF(dg, !(c->o_norm2 > 0), RFJIT_E_BUDGET,
                   "the exact output of the calibration set is zero: no relative error exists");
        c->nq = c->lq < KSAMPLE ? c->lq : KSAMPLE;
        c->nk = c->lk < KSAMPLE ? c->lk : KSAMPLE;
        c->kq = rj_alloc_array((size_t)(c->nq * c->d), sizeof(float));
        c->kk = rj_alloc_array((size_t)(c->nk * c->d), sizeof(float));
        c->K = rj_alloc_array((size_t)(c->nq * c->nk), sizeof(float));
        RJ_FAIL_IF(dg, !c->kq || !c->kk || !c->K, RFJIT_E_NOMEM, "no memory for the kernel sample");
        /* attention's kernel exp(scale q.k) is the softmax kernel of the sqrt(scale)-scaled rows */
        const float sc = (float)c->xscale;
        for (int64_t i = 0; i < c->nq * c->d; i++)
            c->kq[i] = c->q[i] * sc;
        for (int64_t i = 0; i < c->nk * c->d; i++)
            c->kk[i] = c->k[i] * sc;
        for (int64_t i = 0; i < c->nq; i++)
            for (int64_t j = 0; j < c->nk; j++) {
                double e = 0;
                for (int a = 0; a < c->d; a++)
                    e += (double)c->kq[i * c->d + a] * c->kk[j * c->d + a];
                c->K[i * c->nk + j] = (float)exp(e);
            }
    }
    return s;
}

rfjit_status rj_calib_error(rfjit_ctx *ctx, const rj_calib *c, int kind,
                            const rfjit_attn_desc *a, double *err, rj_diag *dg)
{
    *err = NAN;
    if (kind == RFJIT_BUDGET_KERNEL) {
        const size_t n = (size_t)(c->nq * c->nk);
        float *K = rj_alloc_array(n, sizeof(float));
        RJ_FAIL_IF(dg, !K, RFJIT_E_NOMEM, "no memory for a kernel sample");
        rfjit_status s = kernel_of(ctx, c, a, K, dg);
        if (s == RFJIT_OK) {
            double sum = 0;
            for (size_t i = 0; i < n; i++) {
                const double r = ((double)K[i] - c->K[i]) / c->K[i];
                sum += r * r;
            }
            *err = sum / (double)n;
        }
        rj_free(K);
        return s;
    }
    const size_t no = (size_t)(c->B * c->H * c->lq) * (size_t)c->dv;
    float *o = rj_alloc_array(no, sizeof(float));
    RJ_FAIL_IF(dg, !o, RFJIT_E_NOMEM, "no memory for an output sample");
    rfjit_status s = attend(ctx, c, a, o, dg);
    if (s == RFJIT_OK) {
        double sum = 0;
        for (size_t i = 0; i < no; i++) {
            const double e = (double)o[i] - c->o[i];
            sum += e * e;
        }
        *err = sum / c->o_norm2;
    }
    rj_free(o);
    return s;
}

/* Slice j of n holds query rows [j lq / n, (j + 1) lq / n) of every (batch, head). */
static int slice_of(int64_t row, int64_t lq, int n)
{
    return (int)(row * n / lq);
}

rfjit_status rj_calib_error_slices(rfjit_ctx *ctx, const rj_calib *c, int kind,
                                   const rfjit_attn_desc *a, int n, double *err, int *used,
                                   rj_diag *dg)
{
    double num[RJ_CALIB_MAX_SLICES] = {0}, den[RJ_CALIB_MAX_SLICES] = {0};
    RJ_FAIL_IF(dg, n < 1 || n > RJ_CALIB_MAX_SLICES, RFJIT_E_INTERNAL, "%d slices", n);
    const int64_t rows = kind == RFJIT_BUDGET_KERNEL ? c->nq : c->lq;
    const int64_t width = kind == RFJIT_BUDGET_KERNEL ? c->nk : c->dv;
    const size_t no = kind == RFJIT_BUDGET_KERNEL ? (size_t)(c->nq * c->nk)
                                                  : (size_t)(c->B * c->H * c->lq) * (size_t)c->dv;
    float *o = rj_alloc_array(no, sizeof(float));
    RJ_FAIL_IF(dg, !o, RFJIT_E_NOMEM, "no memory for an output sample");
    rfjit_status s = kind == RFJIT_BUDGET_KERNEL ? kernel_of(ctx, c, a, o, dg)
                                                 : attend(ctx, c, a, o, dg);
    const float *x = kind == RFJIT_BUDGET_KERNEL ? c->K : c->o;
    for (size_t i = 0; s == RFJIT_OK && i < no; i++) {
        const int j = slice_of((int64_t)(i / (size_t)width) % rows, rows, n);
        const double e = (double)o[i] - x[i];
        /* the kernel kind's error is relative per pair; the output kind's per slice */
        num[j] += kind == RFJIT_BUDGET_KERNEL ? e * e / ((double)x[i] * x[i]) : e * e;
        den[j] += kind == RFJIT_BUDGET_KERNEL ? 1 : (double)x[i] * x[i];
    }
    rj_free(o);
    *used = 0;
    for (int j = 0; s == RFJIT_OK && j < n; j++)
        if (den[j] > 0) {
            const double e = num[j] / den[j];
            err[(*used)++] = isfinite(e) ? e : INFINITY;
        }
    return s;
}

rfjit_attn_desc rj_tune_desc_of(const rj_tune_req *r, const rj_est_ops *est, int32_t m,
                                uint64_t seed)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est->name;
    a.d = r->d;
    a.dv = r->dv;
    a.causal = r->causal;
    a.m = m > 0 ? m : RJ_TUNE_M_STEP;
    a.seed = seed;
    a.scale = r->attn_scale;
    a.backend = RFJIT_BACKEND_JIT;
    return a;
}

rfjit_attn_desc rj_tune_row_desc(const rj_tune_req *r, const rj_tune_row *row, uint64_t seed)
{
    rfjit_attn_desc a = rj_tune_desc_of(r, row->est, row->m, seed);
    if (row->est->tmpl == RJ_TMPL_EVA) {
        a.eva_window = row->eva_window;
        a.eva_chunks = row->eva_chunks;
    }
    /* a row without them (a record before they were searched) keeps the defaults */
    if (row->est->tmpl == RJ_TMPL_BLOCKSPARSE && row->sparse_block > 0) {
        a.sparse_block = row->sparse_block;
        a.sparse_exact = row->sparse_exact;
    }
    a.transform = row->transform;
    a.compute = row->compute;
    return a;
}
