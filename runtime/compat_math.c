/* SPDX-License-Identifier: MIT */
/*
 * This file is the float32 loops of runtime/compat_math.h. They are written so that GCC
 * vectorises them (the file is compiled with -O3): the projection and the state passes keep
 * a block of rows' accumulators in a fixed-size local array, which becomes registers, so each
 * weight or state vector is loaded once for several rows; exp is a polynomial in plain float
 * arithmetic rather than libm's expf, which would keep the loops scalar.
 */
#include "runtime/compat_math.h"

#include "est/est.h"

#include <math.h>
#include <string.h>

#define PT_FEATURE_EPS 1e-4f /* performer-pytorch softmax_kernel(eps) */
#define PT_CUMSUM_EPS 1e-6   /* performer-pytorch causal_linear_attention*(eps) */
#define GOOGLE_EPS 1e-6      /* fast_attention.py numerical_stabilizer */

/* On x86-64 the hot loops are also built for AVX2 + FMA and picked at load time (as
 * runtime/decode_step.c does); not under TSan, whose runtime starts after ifunc resolvers. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                          \
    !defined(__SANITIZE_THREAD__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

enum { RB = 16, NB = 4 }; /* features per register block, rows per block */

bool rj_cm_applies(const rj_spec *s)
{
    return (s->compat == RJ_COMPAT_PERFORMER_PYTORCH || s->compat == RJ_COMPAT_GOOGLE_PERFORMER) &&
           strcmp(s->est->name, "positive") == 0;
}

float rj_cm_eps(const rj_spec *s)
{
    return s->compat == RJ_COMPAT_PERFORMER_PYTORCH ? PT_FEATURE_EPS : (float)GOOGLE_EPS;
}

/* u = W x for rows i0 .. i0 + nr - 1 (nr <= NB), features r0 .. r0 + RB - 1. */
static inline void project_block(const float *wt, int d, int m, const float *x, int nr, int r0,
                                 float *u)
{
    float acc[NB][RB] = {{0}};
    for (int a = 0; a < d; a++) {
        const float *w = wt + (size_t)a * (size_t)m + r0;
        for (int i = 0; i < NB; i++) {
            const float xa = i < nr ? x[(size_t)i * (size_t)d + (size_t)a] : 0.0f;
            for (int l = 0; l < RB; l++)
                acc[i][l] += xa * w[l];
        }
    }
    for (int i = 0; i < nr; i++)
        memcpy(u + (size_t)i * (size_t)m + r0, acc[i], sizeof acc[i]);
}

/* The features past the last whole block, one at a time. */
static inline void project_tail(const float *wt, int d, int m, const float *x, int r0, float *u)
{
    for (int r = r0; r < m; r++) {
        float acc = 0;
        for (int a = 0; a < d; a++)
            acc += x[a] * wt[(size_t)a * (size_t)m + (size_t)r];
        u[r] = acc;
    }
}

HOT void rj_cm_project(const float *wt, int d, int m, const float *x, int64_t n, float *u,
                       float *umax)
{
    const int mb = m / RB * RB;
    for (int64_t i0 = 0; i0 < n; i0 += NB) {
        const int nr = n - i0 < NB ? (int)(n - i0) : NB;
        const float *xi = x + i0 * d;
        float *ui = u + i0 * m;
        for (int r0 = 0; r0 < mb; r0 += RB)
            project_block(wt, d, m, xi, nr, r0, ui);
        for (int i = 0; i < nr && mb < m; i++)
            project_tail(wt, d, m, xi + (size_t)i * (size_t)d, mb, ui + (size_t)i * (size_t)m);
        for (int i = 0; umax && i < nr; i++) {
            float mx = -INFINITY;
            for (int r = 0; r < m; r++)
                mx = fmaxf(mx, ui[(size_t)i * (size_t)m + (size_t)r]);
            umax[i0 + i] = mx;
        }
    }
}

/*
 * e^x for x <= 0 (arguments here are shifted by a maximum), Cephes' expf: x = n ln 2 + g
 * with |g| <= ln 2 / 2, e^g by a degree-7 polynomial (about 1 ulp), 2^n built in the
 * exponent bits. Below -87 the result is clamped to e^-87, far under any feature epsilon
 * that is added to it. Rounding to the nearest integer by adding and subtracting 1.5 * 2^23
 * keeps it plain float arithmetic (no libm call, no rounding instruction SSE2 lacks).
 */
static inline float exp_neg(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    x = x < -87.0f ? -87.0f : x;
    const float fn = (x * 1.44269504088896341f + magic) - magic;
    const float g = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * g + 1.3981999507e-3f;
    p = p * g + 8.3334519073e-3f;
    p = p * g + 4.1665795894e-2f;
    p = p * g + 1.6666665459e-1f;
    p = p * g + 5.0000001201e-1f;
    p = p * g * g + g + 1.0f;
    const int32_t bits = ((int32_t)fn + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

HOT void rj_cm_exp(float *u, int m, float shift, float add)
{
    for (int r = 0; r < m; r++)
        u[r] = exp_neg(u[r] - shift) + add;
}

HOT void rj_cm_rescale(float *S, int m, int w, float f)
{
    for (int r = 0; r < m; r++) {
        float *row = S + (size_t)r * (size_t)w;
        for (int a = 0; a < w - 1; a++)
            row[a] *= f;
    }
}

/* Columns c0 .. c0 + RB - 1 of every state row take keys j0 .. j0 + nr - 1. */
static inline void absorb_block(float *S, int m, int w, const float *e, const float *vrow, int nr,
                                int c0)
{
    for (int r = 0; r < m; r++) {
        float acc[RB];
        float *row = S + (size_t)r * (size_t)w + c0;
        memcpy(acc, row, sizeof acc);
        for (int j = 0; j < nr; j++) {
            const float ej = e[(size_t)j * (size_t)m + (size_t)r];
            const float *v = vrow + (size_t)j * (size_t)w + c0;
            for (int l = 0; l < RB; l++)
                acc[l] += ej * v[l];
        }
        memcpy(row, acc, sizeof acc);
    }
}

HOT void rj_cm_absorb(float *S, int m, int w, const float *e, const float *vrow, int64_t n)
{
    const int wb = w / RB * RB;
    for (int64_t j0 = 0; j0 < n; j0 += NB) {
        const int nr = n - j0 < NB ? (int)(n - j0) : NB;
        const float *ej = e + j0 * m, *vj = vrow + j0 * w;
        for (int c0 = 0; c0 < wb; c0 += RB)
            absorb_block(S, m, w, ej, vj, nr, c0);
        for (int r = 0; r < m && wb < w; r++) {
            float *row = S + (size_t)r * (size_t)w;
            for (int j = 0; j < nr; j++) {
                const float x = ej[(size_t)j * (size_t)m + (size_t)r];
                for (int a = wb; a < w; a++)
                    row[a] += x * vj[(size_t)j * (size_t)w + (size_t)a];
            }
        }
    }
}

/* Columns c0 .. c0 + RB - 1 of the reads of queries i0 .. i0 + nr - 1. */
static inline void read_block(const float *S, int m, int w, const float *q, int nr, int c0,
                              float *o)
{
    float acc[NB][RB] = {{0}};
    for (int r = 0; r < m; r++) {
        const float *row = S + (size_t)r * (size_t)w + c0;
        for (int i = 0; i < NB; i++) {
            const float qr = i < nr ? q[(size_t)i * (size_t)m + (size_t)r] : 0.0f;
            for (int l = 0; l < RB; l++)
                acc[i][l] += qr * row[l];
        }
    }
    for (int i = 0; i < nr; i++)
        memcpy(o + (size_t)i * (size_t)w + c0, acc[i], sizeof acc[i]);
}

HOT void rj_cm_read(const float *S, int m, int w, const float *q, int64_t n, float *o)
{
    const int wb = w / RB * RB;
    for (int64_t i0 = 0; i0 < n; i0 += NB) {
        const int nr = n - i0 < NB ? (int)(n - i0) : NB;
        const float *qi = q + i0 * m;
        float *oi = o + i0 * w;
        for (int c0 = 0; c0 < wb; c0 += RB)
            read_block(S, m, w, qi, nr, c0, oi);
        for (int i = 0; i < nr && wb < w; i++) {
            float *oo = oi + (size_t)i * (size_t)w;
            for (int a = wb; a < w; a++)
                oo[a] = 0;
            for (int r = 0; r < m; r++) {
                const float x = qi[(size_t)i * (size_t)m + (size_t)r];
                for (int a = wb; a < w; a++)
                    oo[a] += x * S[(size_t)r * (size_t)w + (size_t)a];
            }
        }
    }
}

void rj_cm_finish(const rj_spec *s, const float *o, const float *V, int64_t n, double *out)
{
    const int dv = s->dv;
    const double eps = rj_cm_eps(s), qsum = o[dv + 1];
    double den = o[dv] + eps * (double)n * qsum;
    if (s->compat == RJ_COMPAT_PERFORMER_PYTORCH && s->causal)
        den += PT_CUMSUM_EPS * sqrt((double)s->m) * qsum;
    else if (s->compat == RJ_COMPAT_GOOGLE_PERFORMER && fabs(den) <= GOOGLE_EPS * s->m)
        den += 2 * GOOGLE_EPS * s->m;
    if (n == 0 || den == 0) {
        memset(out, 0, (size_t)dv * sizeof *out);
        return;
    }
    for (int a = 0; a < dv; a++)
        out[a] = (o[a] + eps * qsum * V[a]) / den;
}
