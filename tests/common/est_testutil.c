/* SPDX-License-Identifier: MIT */
/* This file implements tests/common/est_testutil.h. */
#include "est_testutil.h"

#include "core/philox.h"
#include "core/proj.h"
#include "core/testing.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

void et_inst_init(et_inst *e, const char *name, int d, int m)
{
    memset(e, 0, sizeof *e);
    e->s.est = rj_est_find(name);
    cr_assert_not_null(e->s.est, "estimator %s not registered", name);
    e->s.d = d;
    e->s.dv = d;
    e->s.m = m;
    e->s.proj = RFJIT_PROJ_IID;
    e->M = e->s.est->feature_dim(&e->s);
    e->W = malloc(sizeof(double) * (size_t)m * (size_t)d);
    e->params = malloc(sizeof(double) * e->s.est->params_size(&e->s));
    e->fq = malloc(sizeof(double) * (size_t)e->M);
    e->fk = malloc(sizeof(double) * (size_t)e->M);
    cr_assert(e->W && e->params && e->fq && e->fk);
}

void et_inst_free(et_inst *e)
{
    free(e->W);
    free(e->params);
    free(e->fq);
    free(e->fk);
    memset(e, 0, sizeof *e);
}

rfjit_status et_inst_draw(et_inst *e, uint64_t seed, const rj_stats *st, rj_fit_info *info)
{
    rj_diag dg = {{0}};
    rfjit_status s = rj_proj_draw(RFJIT_PROJ_IID, seed, e->s.m, e->s.d, e->W, &dg);
    cr_assert_eq(s, RFJIT_OK, "rj_proj_draw(seed %llu): %s", (unsigned long long)seed, dg.msg);
    return e->s.est->fit(&e->s, e->W, seed, (e->s.est->flags & RJ_EST_FITTED) ? st : NULL,
                         e->params, info, &dg);
}

double et_kernel(et_inst *e, const double *x, const double *y)
{
    double hq, hk;
    e->s.est->features(&e->s, e->params, RJ_ROLE_Q, x, &hq, e->fq);
    e->s.est->features(&e->s, e->params, RJ_ROLE_K, y, &hk, e->fk);
    double dot = 0;
    for (int64_t r = 0; r < e->M; r++)
        dot += e->fq[r] * e->fk[r];
    return exp(hq + hk) * dot;
}

void et_pair(int d, double a, double b, double theta, uint64_t seed, double *x, double *y)
{
    double *u = malloc(sizeof(double) * (size_t)d), *v = malloc(sizeof(double) * (size_t)d);
    cr_assert(u && v);
    rj_normals(seed, RJ_STREAM_TEST, 0, u, (size_t)d);
    rj_normals(seed, RJ_STREAM_TEST, 1, v, (size_t)d);
    double nu = 0, uv = 0, nv = 0;
    for (int j = 0; j < d; j++)
        nu += u[j] * u[j];
    for (int j = 0; j < d; j++)
        u[j] /= sqrt(nu);
    for (int j = 0; j < d; j++)
        uv += u[j] * v[j];
    for (int j = 0; j < d; j++)
        v[j] -= uv * u[j];
    for (int j = 0; j < d; j++)
        nv += v[j] * v[j];
    for (int j = 0; j < d; j++) {
        v[j] /= d > 1 ? sqrt(nv) : 1;
        x[j] = a * u[j];
        y[j] = b * (cos(theta) * u[j] + (d > 1 ? sin(theta) * v[j] : 0));
    }
    free(u);
    free(v);
}

/* Rows L g + mu with a random lower-triangular L (diagonal 0.5 + l/d or 1.5 - l/d). */
static void make_rows(double *out, int d, int64_t n, double scale, uint64_t seed, int role)
{
    double *L = calloc((size_t)d * (size_t)d, sizeof(double));
    double *mu = malloc(sizeof(double) * (size_t)d), *g = malloc(sizeof(double) * (size_t)d);
    cr_assert(L && mu && g);
    const uint32_t base = role ? 100000u : 0u;
    for (int i = 0; i < d; i++) {
        rj_normals(seed, RJ_STREAM_TEST, base + (uint32_t)i, g, (size_t)d);
        for (int j = 0; j < i; j++)
            L[i * d + j] = 0.3 * g[j];
        L[i * d + i] = role ? 1.5 - (double)i / d : 0.5 + (double)i / d;
    }
    rj_normals(seed, RJ_STREAM_TEST, base + 5000u, mu, (size_t)d);
    for (int j = 0; j < d; j++)
        mu[j] *= 0.4;
    for (int64_t r = 0; r < n; r++) {
        rj_normals(seed, RJ_STREAM_TEST, base + 10000u + (uint32_t)r, g, (size_t)d);
        for (int i = 0; i < d; i++) {
            double t = mu[i];
            for (int j = 0; j <= i; j++)
                t += L[i * d + j] * g[j];
            out[r * d + i] = scale * t;
        }
    }
    free(L);
    free(mu);
    free(g);
}

void et_sample_make(et_sample *smp, int d, int64_t lq, int64_t lk, double scale, uint64_t seed)
{
    smp->d = d;
    smp->lq = lq;
    smp->lk = lk;
    smp->x = malloc(sizeof(double) * (size_t)(lq * d));
    smp->y = malloc(sizeof(double) * (size_t)(lk * d));
    cr_assert(smp->x && smp->y);
    make_rows(smp->x, d, lq, scale, seed, 0);
    make_rows(smp->y, d, lk, scale, seed, 1);
    cr_assert_eq(rj_stats_init(&smp->st, d), RFJIT_OK);
    rj_stats_add(&smp->st, 0, smp->x, lq);
    rj_stats_add(&smp->st, 1, smp->y, lk);
}

void et_sample_free(et_sample *smp)
{
    free(smp->x);
    free(smp->y);
    rj_stats_free(&smp->st);
}

et_moments et_moments_of(const double *v, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    et_moments mo = {s / (double)n, 0, 0};
    double s2 = 0, s4 = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = v[i] - mo.mean;
        s2 += e * e;
        s4 += e * e * e * e;
    }
    mo.s2 = s2 / (double)(n - 1);
    mo.m4 = s4 / (double)n;
    return mo;
}

double et_s2_stderr(et_moments mo, int64_t n)
{
    const double nn = (double)n;
    const double v = (mo.m4 - mo.s2 * mo.s2 * (nn - 3) / (nn - 1)) / nn;
    return v > 0 ? sqrt(v) : 0;
}

void et_matmul(int d, const double *X, const double *Y, double *Z)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int k = 0; k < d; k++)
                t += X[i * d + k] * Y[k * d + j];
            Z[i * d + j] = t;
        }
}

/* Gauss-Jordan with partial pivoting; *logdet = ln|det X|, *sign its sign. */
static int invert(int d, const double *X, double *Xi, double *logdet, int *sign)
{
    double *a = malloc(sizeof(double) * (size_t)(d * d));
    cr_assert(a);
    memcpy(a, X, sizeof(double) * (size_t)(d * d));
    for (int i = 0; i < d * d; i++)
        Xi[i] = 0;
    for (int i = 0; i < d; i++)
        Xi[i * d + i] = 1;
    *logdet = 0;
    *sign = 1;
    for (int c = 0; c < d; c++) {
        int p = c;
        for (int r = c + 1; r < d; r++)
            if (fabs(a[r * d + c]) > fabs(a[p * d + c]))
                p = r;
        if (a[p * d + c] == 0) {
            free(a);
            return 0;
        }
        if (p != c) {
            *sign = -*sign;
            for (int j = 0; j < d; j++) {
                double t = a[c * d + j];
                a[c * d + j] = a[p * d + j];
                a[p * d + j] = t;
                t = Xi[c * d + j];
                Xi[c * d + j] = Xi[p * d + j];
                Xi[p * d + j] = t;
            }
        }
        const double piv = a[c * d + c];
        *logdet += log(fabs(piv));
        if (piv < 0)
            *sign = -*sign;
        for (int j = 0; j < d; j++) {
            a[c * d + j] /= piv;
            Xi[c * d + j] /= piv;
        }
        for (int r = 0; r < d; r++) {
            if (r == c)
                continue;
            const double f = a[r * d + c];
            if (f == 0)
                continue;
            for (int j = 0; j < d; j++) {
                a[r * d + j] -= f * a[c * d + j];
                Xi[r * d + j] -= f * Xi[c * d + j];
            }
        }
    }
    free(a);
    return 1;
}

int et_inverse(int d, const double *X, double *Xi)
{
    double ld;
    int sg;
    return invert(d, X, Xi, &ld, &sg);
}

/* Z = X^T Y Z' helpers: out = P^T M Q (d x d). */
static void congruence(int d, const double *P, const double *Mx, const double *Q, double *out)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double t = 0;
            for (int k = 0; k < d; k++)
                for (int l = 0; l < d; l++)
                    t += P[k * d + i] * Mx[k * d + l] * Q[l * d + j];
            out[i * d + j] = t;
        }
}

int et_derf_init(et_derf *g, int d, const double *A, const double *B1, const double *B2)
{
    const size_t dd = (size_t)d * (size_t)d;
    memset(g, 0, sizeof *g);
    g->d = d;
    double *blk = malloc(sizeof(double) * dd * 12);
    cr_assert(blk);
    g->A = blk;
    g->B1 = blk + dd;
    g->B2 = blk + 2 * dd;
    g->C1 = blk + 3 * dd;
    g->C2 = blk + 4 * dd;
    g->G1 = blk + 5 * dd;
    g->G2 = blk + 6 * dd;
    g->G12 = blk + 7 * dd;
    double *I4 = blk + 8 * dd, *I8 = blk + 9 * dd, *I4i = blk + 10 * dd, *N = blk + 11 * dd;
    memcpy(g->A, A, sizeof(double) * dd);
    memcpy(g->B1, B1, sizeof(double) * dd);
    memcpy(g->B2, B2, sizeof(double) * dd);
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            I4[i * d + j] = (i == j) - 4 * A[i * d + j];
            I8[i * d + j] = (i == j) - 8 * A[i * d + j];
        }
    double ld4, ld8;
    int s4, s8;
    if (!invert(d, I4, I4i, &ld4, &s4) || !invert(d, I8, N, &ld8, &s8) || s4 < 0 || s8 < 0)
        return 0;
    g->logD = 0.25 * ld4;
    g->logmom = ld4 - 0.5 * ld8;
    congruence(d, B1, I4i, B1, g->C1);
    congruence(d, B2, I4i, B2, g->C2);
    congruence(d, B1, N, B1, g->G1);
    congruence(d, B2, N, B2, g->G2);
    congruence(d, B1, N, B2, g->G12);
    for (size_t i = 0; i < dd; i++) {
        g->C1[i] *= -0.5;
        g->C2[i] *= -0.5;
        g->G1[i] += g->C1[i];
        g->G2[i] += g->C2[i];
    }
    return 1;
}

void et_derf_free(et_derf *g)
{
    free(g->A);
    memset(g, 0, sizeof *g);
}

static double quad(int d, const double *u, const double *Mx, const double *v)
{
    double t = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            t += u[i] * Mx[i * d + j] * v[j];
    return t;
}

double et_derf_log_feature(const et_derf *g, int k, const double *w, const double *x)
{
    const int d = g->d;
    const double *B = k == 1 ? g->B1 : g->B2, *C = k == 1 ? g->C1 : g->C2;
    double wBx = 0;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            wBx += w[i] * B[i * d + j] * x[j];
    return g->logD + quad(d, w, g->A, w) + wBx + quad(d, x, C, x);
}

double et_derf_log_moment(const et_derf *g, const double *x, const double *y)
{
    const int d = g->d;
    return g->logmom + 2 * quad(d, x, g->G1, x) + 2 * quad(d, y, g->G2, y) +
           4 * quad(d, x, g->G12, y);
}

void et_derf_objective(const et_derf *g, const double *x, int64_t lq, const double *y,
                       int64_t lk, double *obj, double *var_obj)
{
    const int d = g->d;
    double so = 0, sv = 0;
    for (int64_t i = 0; i < lq; i++)
        for (int64_t j = 0; j < lk; j++) {
            const double *xi = x + i * d, *yj = y + j * d;
            double xy = 0;
            for (int c = 0; c < d; c++)
                xy += xi[c] * yj[c];
            const double lm = et_derf_log_moment(g, xi, yj);
            const double e = lm - 2 * xy; /* ln(E[(f1 f2)^2] / SM^2) */
            so += lm;
            sv += 2 * xy + (e > 0 ? log(expm1(e)) : -INFINITY);
        }
    *obj = so / (double)(lq * lk);
    *var_obj = sv / (double)(lq * lk);
}

void et_derf_params(const et_inst *e, double *A, double *B1, double *B2)
{
    const int d = e->s.d, m = e->s.m;
    const char *n = e->s.est->name;
    const double *p = e->params;
    memset(A, 0, sizeof(double) * (size_t)(d * d));
    memset(B1, 0, sizeof(double) * (size_t)(d * d));
    memset(B2, 0, sizeof(double) * (size_t)(d * d));
    if (!strcmp(n, "sderf")) {
        const double *a = p + 2, *Q = p + 2 + 2 * d;
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++) {
                double ta = 0, tb = 0;
                for (int l = 0; l < d; l++) {
                    ta += Q[i * d + l] * a[l] * Q[j * d + l];
                    tb += Q[i * d + l] * sqrt(1 - 4 * a[l]) * Q[j * d + l];
                }
                A[i * d + j] = ta;
                B1[i * d + j] = B2[i * d + j] = tb;
            }
        return;
    }
    const double a = p[0], sb = sqrt(1 - 4 * a);
    for (int i = 0; i < d; i++)
        A[i * d + i] = a;
    if (!strcmp(n, "oprf")) {
        for (int i = 0; i < d; i++)
            B1[i * d + i] = B2[i * d + i] = sb;
    } else if (!strcmp(n, "saderf")) {
        const double *psi = p + 4;
        for (int i = 0; i < d; i++) {
            B1[i * d + i] = sb * psi[i];
            B2[i * d + i] = sb / psi[i];
        }
    } else {
        cr_assert_str_eq(n, "aderf");
        const double *b1 = p + 3 + m, *b2 = b1 + d * d;
        for (int i = 0; i < d * d; i++) {
            B1[i] = sb * b1[i];
            B2[i] = sb * b2[i];
        }
    }
}

void et_derf_w(const et_inst *e, const double *wrow, double *w)
{
    const int d = e->s.d;
    if (strcmp(e->s.est->name, "sderf") != 0) {
        memcpy(w, wrow, sizeof(double) * (size_t)d);
        return;
    }
    const double *Q = e->params + 2 + 2 * d;
    for (int i = 0; i < d; i++) {
        double t = 0;
        for (int l = 0; l < d; l++)
            t += Q[i * d + l] * wrow[l];
        w[i] = t;
    }
}
