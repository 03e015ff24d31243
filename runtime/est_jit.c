/* SPDX-License-Identifier: MIT */
/*
 * This file runs the estimate API (feature maps and kernel matrices, api_features.c) on JIT
 * kernels: the plan's feature-map kernel (kabi.h RJ_KK_FEAT), which is the attention kernel's
 * own feature code, and a Gram kernel (RJ_KK_GRAM) for the O(nx ny M) product. Exact plans
 * have no features: their Gram runs on the raw rows. Kernels come from the context's cache
 * like attention kernels, so a second call compiles nothing.
 */
#include "runtime/est_jit.h"
#include "runtime/exec.h"

#include <math.h>
#include <string.h>

static int64_t round_up(int64_t x, int64_t to)
{
    return (x + to - 1) / to * to;
}

void rj_est_jit_free(rj_est_jit *e)
{
    rj_free(e->ws_f);
    rj_free(e->ws_g);
    rj_free(e->kpar);
    for (int s = 0; s < 2; s++) {
        rj_free(e->xf[s]);
        rj_free(e->F[s]);
        rj_free(e->h[s]);
        rj_free(e->a[s]);
    }
    memset(e, 0, sizeof *e);
}

rfjit_status rj_est_jit_init(rj_est_jit *e, const rfjit_plan *p, int64_t nx, int64_t ny,
                             rj_diag *dg)
{
    memset(e, 0, sizeof *e);
    const int exact = p->kp.tmpl != RJ_TMPL_LINEAR;
    const int64_t d = p->spec.d;
    if (!exact) {
        RJ_TRY(rj_kplan_feat(&p->spec, &p->kp, &e->fk, dg));
        RJ_FAIL_IF(dg, e->fk.role_floats != p->kp.role_floats, RFJIT_E_INTERNAL,
                   "feature kernel parameter layout differs from the attention kernel's");
        RJ_TRY(rj_kcache_get(p->ctx->kc, &e->fk, &e->feat, dg));
    }
    rj_kplan_gram(&p->kp, exact ? (int32_t)d : e->fk.Mp, &e->gk);
    RJ_TRY(rj_kcache_get(p->ctx->kc, &e->gk, &e->gram, dg));
    const int64_t rows = exact ? d : e->fk.Mp, T = p->kp.T;
    const int64_t n[2] = {nx, ny};
    int ok = 1;
    for (int s = 0; s < 2; s++) {
        e->n[s] = n[s];
        e->np[s] = round_up(n[s] > 0 ? n[s] : 1, T);
        const size_t np = (size_t)e->np[s];
        size_t nF;
        ok = ok && rj_mul_size((size_t)rows, np, &nF);
        e->xf[s] = rj_alloc_array(np * (size_t)d, sizeof(float));
        e->F[s] = ok ? rj_alloc_array_zero(nF, sizeof(float)) : NULL;
        e->h[s] = rj_alloc_array_zero(np, sizeof(float));
        e->a[s] = rj_alloc_array_zero(np, sizeof(float));
        ok = ok && e->xf[s] && e->F[s] && e->h[s] && e->a[s];
    }
    e->ws_f = exact ? NULL : rj_alloc_aligned((size_t)e->fk.ws_floats, sizeof(float));
    e->ws_g = rj_alloc_aligned((size_t)e->gk.ws_floats, sizeof(float));
    e->kpar = exact ? NULL : rj_alloc_array(2 * (size_t)e->fk.role_floats, sizeof(float));
    ok = ok && e->ws_g && (exact || (e->ws_f && e->kpar));
    RJ_FAIL_IF(dg, !ok, RFJIT_E_NOMEM, "no memory for the estimate kernels' buffers");
    return RFJIT_OK;
}

rfjit_status rj_est_jit_side(rj_est_jit *e, const rfjit_plan *p, const double *params,
                             int side, const double *rows, rj_diag *dg)
{
    const int64_t n = e->n[side], np = e->np[side], d = p->spec.d;
    if (!e->feat) {
        /* exact: the rows themselves, feature-major, zero columns past n */
        float *F = e->F[side];
        for (int64_t c = 0; c < d; c++)
            for (int64_t i = 0; i < n; i++)
                F[c * np + i] = (float)rows[i * d + c];
        return RFJIT_OK;
    }
    const float *kpar = p->kpar;
    if (!p->frozen) {
        RJ_TRY(rj_lower_params(p, params, e->kpar, dg));
        kpar = e->kpar;
    }
    float *xf = e->xf[side];
    for (int64_t i = 0; i < n * d; i++)
        xf[i] = (float)rows[i];
    rj_kargs a = {0};
    a.q = xf;
    a.sq = d;
    a.lq = n;
    a.out = e->F[side];
    a.so = np;
    a.st = e->h[side];
    a.pq = kpar;
    a.pk = kpar + e->fk.role_floats;
    a.ws = e->ws_f;
    a.flags = side ? RJ_KFLAG_KEYS : 0;
    e->feat(&a);
    return RFJIT_OK;
}

void rj_est_jit_rows(const rj_est_jit *e, const rfjit_plan *p, int side, double *h, double *f)
{
    const int64_t n = e->n[side], np = e->np[side], M = p->M, B = 64;
    const float *F = e->F[side];
    for (int64_t i = 0; i < n; i++)
        h[i] = e->h[side][i];
    /* a transpose: in B x B blocks, so neither side strides through memory a row at a time */
    for (int64_t c0 = 0; c0 < M; c0 += B)
        for (int64_t i0 = 0; i0 < n; i0 += B) {
            const int64_t c1 = c0 + B < M ? c0 + B : M, i1 = i0 + B < n ? i0 + B : n;
            for (int64_t c = c0; c < c1; c++) {
                const float *row = F + rj_kplan_feature_row(&e->fk, c) * np;
                for (int64_t i = i0; i < i1; i++)
                    f[i * M + c] = row[i];
            }
        }
}

void rj_est_jit_gram(rj_est_jit *e, const double *sqx, const double *sqy, float *K,
                     int64_t ldk)
{
    /* log-scales: h (0 for exact), minus |x|^2 / 2 for the Gaussian kernel */
    for (int s = 0; s < 2; s++) {
        const double *sq = s ? sqy : sqx;
        for (int64_t i = 0; i < e->n[s]; i++)
            e->a[s][i] = (float)((e->feat ? (double)e->h[s][i] : 0.0) - (sq ? 0.5 * sq[i] : 0.0));
    }
    rj_kargs a = {0};
    a.q = e->F[0];
    a.sq = e->np[0];
    a.lq = e->n[0];
    a.k = e->F[1];
    a.sk = e->np[1];
    a.lk = e->n[1];
    a.pq = e->a[0];
    a.pk = e->a[1];
    a.out = K;
    a.so = ldk;
    a.ws = e->ws_g;
    e->gram(&a);
}
