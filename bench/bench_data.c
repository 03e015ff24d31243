/* SPDX-License-Identifier: MIT */
/*
 * This file draws the benchmark's problems (bench.h) and summarises timings. The data comes
 * from cli_normals with fixed seeds, so a shorter L is a prefix of a longer one, head 0 of
 * H heads is the one-head problem, and every run of `rfjit bench` times the same numbers.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* head h draws q, k, v from SEED_x + h * HEAD_SEEDS: streams apart from W's and each other's */
enum { SEED_Q = 1, SEED_K = 2, SEED_V = 3, SEED_W = 4, HEAD_SEEDS = 8 };

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_time_of(double *ms, int n, bench_time *t)
{
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    t->med = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    t->min = ms[0];
    t->max = ms[n - 1];
    t->runs = n;
}

void bench_orthogonal_rows(float *W, int m, int d, uint64_t seed)
{
    double *blk = malloc(sizeof(double) * (size_t)d * (size_t)d);
    float *g = malloc(sizeof(float) * (size_t)d * (size_t)d);
    if (!blk || !g) {
        /* the caller's W stays i.i.d. Gaussian: still unbiased, only less accurate */
        cli_normals(W, (size_t)m * (size_t)d, 1.0, seed);
        free(blk);
        free(g);
        return;
    }
    for (int r0 = 0, b = 0; r0 < m; r0 += d, b++) {
        cli_normals(g, (size_t)d * (size_t)d, 1.0, seed * 1000003u + 2u * (uint64_t)b);
        for (size_t i = 0; i < (size_t)d * (size_t)d; i++)
            blk[i] = g[i];
        /* modified Gram-Schmidt in double: orthonormal far below float precision */
        for (int i = 0; i < d; i++) {
            double *x = blk + (size_t)i * (size_t)d;
            for (int j = 0; j < i; j++) {
                const double *y = blk + (size_t)j * (size_t)d;
                double dot = 0;
                for (int c = 0; c < d; c++)
                    dot += x[c] * y[c];
                for (int c = 0; c < d; c++)
                    x[c] -= dot * y[c];
            }
            double nrm = 0;
            for (int c = 0; c < d; c++)
                nrm += x[c] * x[c];
            nrm = sqrt(nrm);
            for (int c = 0; c < d; c++)
                x[c] /= nrm;
        }
        /* chi_d row norms: the norms of fresh Gaussian vectors, from a stream of their own */
        const int rows = m - r0 < d ? m - r0 : d;
        cli_normals(g, (size_t)d * (size_t)rows, 1.0, seed * 1000003u + 2u * (uint64_t)b + 1u);
        for (int i = 0; i < rows; i++) {
            const float *z = g + (size_t)i * (size_t)d;
            double chi = 0;
            for (int c = 0; c < d; c++)
                chi += (double)z[c] * z[c];
            chi = sqrt(chi);
            for (int c = 0; c < d; c++)
                W[(size_t)(r0 + i) * (size_t)d + (size_t)c] =
                    (float)(chi * blk[(size_t)i * (size_t)d + (size_t)c]);
        }
    }
    free(blk);
    free(g);
}

int bench_data_init_heads(bench_data *b, int H, int L, int d, int dv, int m)
{
    memset(b, 0, sizeof *b);
    b->H = H, b->L = L, b->d = d, b->dv = dv, b->m = m;
    const size_t nq = (size_t)L * (size_t)d, nv = (size_t)L * (size_t)dv;
    b->q = malloc(sizeof(float) * nq * (size_t)H);
    b->k = malloc(sizeof(float) * nq * (size_t)H);
    b->v = malloc(sizeof(float) * nv * (size_t)H);
    b->W = malloc(sizeof(float) * (size_t)m * (size_t)d);
    if (!b->q || !b->k || !b->v || !b->W) {
        bench_data_free(b);
        return -1;
    }
    /* entries N(0, 1/sqrt d): the d^{-1/4}-scaled rows the estimators see have norm ~1 */
    const double s = 1.0 / pow((double)d, 0.25);
    for (int h = 0; h < H; h++) {
        const uint64_t off = (uint64_t)h * HEAD_SEEDS;
        cli_normals(b->q + (size_t)h * nq, nq, s, SEED_Q + off);
        cli_normals(b->k + (size_t)h * nq, nq, s, SEED_K + off);
        cli_normals(b->v + (size_t)h * nv, nv, 1.0, SEED_V + off);
    }
    bench_orthogonal_rows(b->W, m, d, SEED_W);
    return 0;
}

int bench_data_init(bench_data *b, int L, int d, int dv, int m)
{
    return bench_data_init_heads(b, 1, L, d, dv, m);
}

bench_data bench_data_head(const bench_data *p, int h)
{
    bench_data x = *p;
    x.H = 1;
    x.q = p->q + (size_t)h * (size_t)p->L * (size_t)p->d;
    x.k = p->k + (size_t)h * (size_t)p->L * (size_t)p->d;
    x.v = p->v + (size_t)h * (size_t)p->L * (size_t)p->dv;
    return x;
}

void bench_data_free(bench_data *b)
{
    free(b->q);
    free(b->k);
    free(b->v);
    free(b->W);
    b->q = b->k = b->v = b->W = NULL;
}

double bench_rel_err2(const float *x, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)x[i] - ref[i];
        num += e * e;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : NAN;
}

double bench_rel_err(const float *x, const float *ref, size_t n)
{
    return sqrt(bench_rel_err2(x, ref, n));
}

double bench_max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i]));
    return m;
}

double bench_max_rel_err(const float *x, const float *ref, size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs((double)x[i] - ref[i]));
    const double r = bench_max_abs(ref, n);
    return r > 0 ? e / r : NAN;
}

/* What float32 rounding can explain of the difference between two implementations of the
 * same attention, as a max-norm relative error (bench_max_rel_err). Both compute
 * o_i = sum_j w_ij v_j / sum_j w_ij with w_ij = exp(a_ij) (exact: a = q.k / sqrt d) or an
 * m-term sum of such exps (FAVOR+). To first order, with unit roundoff u: an exponent is off
 * by at most (d + 2) u A, A bounding |a| and the shift by its maximum (Cauchy-Schwarz on the
 * data); the m-term feature sums add m u, the L-term sums over keys L u in the numerator and
 * in the denominator. So each o_i is within 2 ((d + 2) A + m + L + 2) u |v|_inf of the exact
 * value, and two implementations within twice that: relative to |o|_inf, the bound below.
 * It is a worst case: honest rounding stays far below it, a different formula does not. */
double bench_rounding_tol(const bench_data *p, int exact, const float *ref)
{
    const double u = 0x1p-24, d = p->d;
    double q2 = 0, k2 = 0, w2 = 0; /* squared row norms' maxima, over every head */
    const int rows = p->H * p->L;
    for (int i = 0; i < rows; i++) {
        double a = 0, b = 0;
        for (int c = 0; c < p->d; c++) {
            a += (double)p->q[(size_t)i * p->d + c] * p->q[(size_t)i * p->d + c];
            b += (double)p->k[(size_t)i * p->d + c] * p->k[(size_t)i * p->d + c];
        }
        q2 = fmax(q2, a), k2 = fmax(k2, b);
    }
    for (int r = 0; r < p->m; r++) {
        double a = 0;
        for (int c = 0; c < p->d; c++)
            a += (double)p->W[(size_t)r * p->d + c] * p->W[(size_t)r * p->d + c];
        w2 = fmax(w2, a);
    }
    const double x2 = fmax(q2, k2) / sqrt(d); /* x = q d^{-1/4} */
    const double A = exact ? 2 * sqrt(q2 * k2 / d) : 2 * (sqrt(w2 * x2) + x2);
    const double m = exact ? 0 : p->m;
    const size_t nv = (size_t)rows * (size_t)p->dv;
    return 4 * ((d + 2) * A + m + p->L + 2) * u * bench_max_abs(p->v, nv) / bench_max_abs(ref, nv);
}

static double norm2(const float *x, int n)
{
    double s = 0;
    for (int c = 0; c < n; c++)
        s += (double)x[c] * x[c];
    return s;
}

/* The worst case for exact attention with bfloat16 operands (u = 2^-8) and float sums,
 * rfjit's RFJIT_BF16 compute or torch's bf16 SDPA, per output entry: rounding q and k moves
 * logit (i, j) by at most e_i = 2 u scale |q_i| max_j |k_j|, so each weight by a factor
 * within e^(+-e_i), which moves o_ic by at most 2 e_i wv_ic to first order (numerator and
 * normaliser), wv_ic = sum_j p_ij |v_jc|; rounding the weights and v for the second product
 * adds 2 u wv_ic. Two implementations differ by twice one's error, plus the rounding of a
 * bf16 output, u |o_ic|; float32 sums add far less (a floor of 1e-6 covers them). */
double bench_bf16_excess(const bench_data *p, const float *wv, const float *x, const float *ref)
{
    const double u = 0x1p-8, scale = 1 / sqrt((double)p->d);
    double worst = 0;
    for (int h = 0; h < p->H; h++) {
        const size_t row0 = (size_t)h * (size_t)p->L;
        double k2 = 0;
        for (int j = 0; j < p->L; j++)
            k2 = fmax(k2, norm2(p->k + (row0 + (size_t)j) * (size_t)p->d, p->d));
        for (int i = 0; i < p->L; i++) {
            const size_t row = row0 + (size_t)i;
            const double e = 2 * u * scale * sqrt(norm2(p->q + row * (size_t)p->d, p->d) * k2);
            for (int c = 0; c < p->dv; c++) {
                const size_t at = row * (size_t)p->dv + (size_t)c;
                const double tol = 2 * (2 * e + 2 * u) * wv[at] + u * fabs(ref[at]) + 1e-6;
                worst = fmax(worst, fabs((double)x[at] - ref[at]) / tol);
            }
        }
    }
    return worst;
}
