/* SPDX-License-Identifier: MIT */
/*
 * This file is the tuner's closed-form guess (architecture.md 6): each estimator's variance
 * model (est.h `variance`, i.i.d. projections) turned into the error per projection e1, so
 * that m = e1 / budget is the first feature count the Monte Carlo search tries.
 *
 *   kernel budget:  e1 = mean over sampled pairs of m_ref Var_{m_ref}(x, y) / K(x, y)^2
 *   output budget:  e1 = sum_i sum_j w_ij^2 r_ij |v_j - o_i|^2 / sum_i |o_i|^2,
 *                   w_ij = K_ij / sum_j K_ij,  r_ij = m_ref Var_{m_ref} / K_ij^2
 *
 * The output form is the delta method with the pairs' errors taken as independent; they are
 * not (one W serves every pair), which is why it is only the search's starting point.
 */
#include "tuner/tune.h"

#include "core/proj.h"

#include <math.h>
#include <string.h>

#define M_REF 64
#define OUT_QUERIES 128
#define OUT_KEYS 2048

/* The estimator at m = M_REF with parameters drawn (and fitted on the sample) like a plan's. */
static rfjit_status instance(const rj_calib *c, const rj_est_ops *est, rj_spec *s,
                             double **params, const double *x, int64_t nx, const double *y,
                             int64_t ny, rj_diag *dg)
{
    memset(s, 0, sizeof *s);
    s->est = est;
    s->d = c->d;
    s->dv = c->dv;
    s->m = M_REF;
    s->proj = RFJIT_PROJ_IID;
    s->hrf_n = 8;
    s->eva_window = 16;
    s->eva_chunks = 8;
    double *W = NULL;
    *params = rj_alloc_array(est->params_size(s) + 1, sizeof(double));
    rfjit_status st = *params ? RFJIT_OK : RFJIT_E_NOMEM;
    if (st == RFJIT_OK && !(est->flags & RJ_EST_NOPROJ)) {
        W = rj_alloc_array((size_t)M_REF * (size_t)c->d, sizeof(double));
        st = W ? rj_proj_draw(RFJIT_PROJ_IID, 1, M_REF, c->d, W, dg) : RFJIT_E_NOMEM;
    }
    rj_stats stats = {0};
    int have = 0;
    if (st == RFJIT_OK && (est->flags & RJ_EST_FITTED)) {
        st = rj_stats_init(&stats, c->d);
        have = st == RFJIT_OK;
        if (have) {
            rj_stats_add(&stats, 0, x, nx);
            rj_stats_add(&stats, 1, y, ny);
        }
    }
    if (st == RFJIT_OK)
        st = est->fit(s, W, 1, have ? &stats : NULL, *params, NULL, dg);
    if (have)
        rj_stats_free(&stats);
    rj_free(W);
    if (st == RFJIT_E_NOMEM)
        return rj_fail(dg, st, "no memory for the variance model");
    return st;
}

rfjit_status rj_model_error1(rfjit_ctx *ctx, const rj_calib *c, int kind, const rj_est_ops *est,
                             double *e1, rj_diag *dg)
{
    (void)ctx;
    *e1 = NAN;
    if (!est->variance || est->tmpl != RJ_TMPL_LINEAR)
        return RFJIT_OK;
    const int d = c->d, dv = c->dv;
    const double sc = c->xscale;
    const int64_t nq = kind == RFJIT_BUDGET_KERNEL ? c->nq
                                                   : (c->lq < OUT_QUERIES ? c->lq : OUT_QUERIES);
    const int64_t nk = kind == RFJIT_BUDGET_KERNEL ? c->nk : (c->lk < OUT_KEYS ? c->lk : OUT_KEYS);
    double *x = rj_alloc_array((size_t)(nq * d), sizeof(double));
    double *y = rj_alloc_array((size_t)(nk * d), sizeof(double));
    double *r = rj_alloc_array((size_t)nk, sizeof(double));
    double *K = rj_alloc_array((size_t)nk, sizeof(double));
    double *params = NULL;
    rfjit_status s = x && y && r && K
                         ? RFJIT_OK
                         : rj_fail(dg, RFJIT_E_NOMEM, "no memory for the variance model");
    if (s == RFJIT_OK) {
        /* slice 0's first rows, scaled as attention scales them */
        for (int64_t i = 0; i < nq * d; i++)
            x[i] = c->q[i] * sc;
        for (int64_t i = 0; i < nk * d; i++)
            y[i] = c->k[i] * sc;
    }
    rj_spec sp;
    if (s == RFJIT_OK)
        s = instance(c, est, &sp, &params, x, nq, y, nk, dg);
    double num = 0, den = 0;
    for (int64_t i = 0; i < nq && s == RFJIT_OK; i++) {
        const double *xi = x + i * d;
        const int64_t vis = kind == RFJIT_BUDGET_OUTPUT && c->causal ? (i + 1 < nk ? i + 1 : nk)
                                                                      : nk;
        double ksum = 0;
        for (int64_t j = 0; j < vis; j++) {
            const double *yj = y + j * d;
            double e = 0;
            for (int a = 0; a < d; a++)
                e += xi[a] * yj[a];
            K[j] = exp(e);
            ksum += K[j];
            r[j] = M_REF * est->variance(&sp, params, xi, yj) / (K[j] * K[j]);
        }
        if (kind == RFJIT_BUDGET_KERNEL) {
            for (int64_t j = 0; j < vis; j++)
                num += r[j];
            den += (double)vis;
            continue;
        }
        /* o_i over the visible keys, then the delta-method sum */
        double o[1024];
        const int w = dv < 1024 ? dv : 1024;
        for (int a = 0; a < w; a++)
            o[a] = 0;
        for (int64_t j = 0; j < vis; j++)
            for (int a = 0; a < w; a++)
                o[a] += K[j] / ksum * c->v[j * dv + a];
        for (int a = 0; a < w; a++)
            den += o[a] * o[a];
        for (int64_t j = 0; j < vis; j++) {
            double dist = 0;
            for (int a = 0; a < w; a++) {
                const double t = c->v[j * dv + a] - o[a];
                dist += t * t;
            }
            const double wij = K[j] / ksum;
            num += wij * wij * r[j] * dist;
        }
    }
    if (s == RFJIT_OK && den > 0)
        *e1 = num / den;
    rj_free(x);
    rj_free(y);
    rj_free(r);
    rj_free(K);
    rj_free(params);
    return s;
}
