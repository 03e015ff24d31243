/* SPDX-License-Identifier: MIT */
/*
 * This file is the float32 loops of runtime/compat_math.h. They are written so that GCC
 * vectorises them (the file is compiled with -O3): the projection and the state passes keep
 * a block of rows' accumulators in vector variables, which become registers, so each weight
 * or state vector is loaded once for several rows; exp is a polynomial in plain float
 * arithmetic rather than libm's expf, which would keep the loop scalar.
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
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define HOT
#endif
/* The helpers of a HOT function must be inlined into each of its clones to be built for the
 * clone's target. */
#define INLINE __attribute__((always_inline))

/* Eight floats as one value: GCC lowers it to the vectors the clone's target has (one AVX
 * register, or two SSE ones). */
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));
#define LD8(v, p) memcpy(&(v), (p), sizeof(v8f))
#define ST8(p, v) memcpy((p), &(v), sizeof(v8f))
#define SPLAT(x) ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})

enum { NB = 4 }; /* rows (keys or queries) a block of accumulators serves */

bool rj_cm_applies(const rj_spec *s)
{
    return (s->compat == RJ_COMPAT_PERFORMER_PYTORCH || s->compat == RJ_COMPAT_GOOGLE_PERFORMER) &&
           strcmp(s->est->name, "positive") == 0;
}

float rj_cm_eps(const rj_spec *s)
{
    return s->compat == RJ_COMPAT_PERFORMER_PYTORCH ? PT_FEATURE_EPS : (float)GOOGLE_EPS;
}

/* C[i][c] = sum_a A[i][a] B[a][c] for nr <= NB rows of A (K wide) and the columns c0 .. c0 +
 * 8 nv - 1 of B and C (both ldb wide); nv is 1 or 2, a constant where it is inlined, so the
 * accumulators are registers. The projection u = x W^T (B = W^T, d x m) and the state read
 * o = phi_q [A | a | 1] (B = the state, m x w) are both this product. */
static inline INLINE void gemm_block(const float *B, int K, int ldb, const float *A, int nr, int c0,
                                     float *C, const int nv)
{
    v8f acc[NB][2];
    for (int i = 0; i < NB; i++)
        acc[i][0] = acc[i][1] = SPLAT(0.0f);
    for (int a = 0; a < K; a++) {
        v8f b[2];
        for (int k = 0; k < nv; k++)
            LD8(b[k], B + (size_t)a * (size_t)ldb + (size_t)(c0 + 8 * k));
        for (int i = 0; i < NB; i++) {
            const v8f xs = SPLAT(i < nr ? A[(size_t)i * (size_t)K + (size_t)a] : 0.0f);
            for (int k = 0; k < nv; k++)
                acc[i][k] += xs * b[k];
        }
    }
    for (int i = 0; i < nr; i++)
        for (int k = 0; k < nv; k++)
            ST8(C + (size_t)i * (size_t)ldb + (size_t)(c0 + 8 * k), acc[i][k]);
}

/* gemm_block over the first n8 columns (a multiple of 8): two vectors at a time, then one. */
static inline INLINE void gemm_rows(const float *B, int K, int ldb, const float *A, int nr,
                                    float *C, int n8)
{
    const int n16 = n8 / 16 * 16;
    for (int c0 = 0; c0 < n16; c0 += 16)
        gemm_block(B, K, ldb, A, nr, c0, C, 2);
    if (n8 > n16)
        gemm_block(B, K, ldb, A, nr, n16, C, 1);
}

/* The features past the last whole vector, one at a time. */
static inline INLINE void project_tail(const float *wt, int d, int m, const float *x, int r0,
                                       float *u)
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
    const int m8 = m / 8 * 8;
    for (int64_t i0 = 0; i0 < n; i0 += NB) {
        const int nr = n - i0 < NB ? (int)(n - i0) : NB;
        const float *xi = x + i0 * d;
        float *ui = u + i0 * m;
        gemm_rows(wt, d, m, xi, nr, ui, m8);
        for (int i = 0; i < nr && m8 < m; i++)
            project_tail(wt, d, m, xi + (size_t)i * (size_t)d, m8, ui + (size_t)i * (size_t)m);
        for (int i = 0; umax && i < nr; i++) {
            float mx = -INFINITY;
            for (int r = 0; r < m; r++) { /* not fmaxf: a libm call per element */
                const float ur = ui[(size_t)i * (size_t)m + (size_t)r];
                mx = ur > mx ? ur : mx;
            }
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
/* p[0 .. 8) = e^{p - shift} + add (in memory: a function returning a vector would change the
 * ABI without AVX). */
static inline INLINE void exp_neg8(float *ptr, float shift, float add)
{
    v8f x;
    LD8(x, ptr);
    x -= SPLAT(shift);
    const v8f magic = SPLAT(12582912.0f); /* 1.5 * 2^23 */
    const v8f lo = SPLAT(-87.0f);
    const v8si below = x < lo;
    x = (v8f)(((v8si)x & ~below) | ((v8si)lo & below));
    const v8f fn = (x * SPLAT(1.44269504088896341f) + magic) - magic;
    const v8f g = (x - fn * SPLAT(0.693359375f)) - fn * SPLAT(-2.12194440e-4f);
    v8f p = SPLAT(1.9875691500e-4f);
    p = p * g + SPLAT(1.3981999507e-3f);
    p = p * g + SPLAT(8.3334519073e-3f);
    p = p * g + SPLAT(4.1665795894e-2f);
    p = p * g + SPLAT(1.6666665459e-1f);
    p = p * g + SPLAT(5.0000001201e-1f);
    p = p * g * g + g + SPLAT(1.0f);
    const v8si bits = (__builtin_convertvector(fn, v8si) + 127) << 23;
    x = p * (v8f)bits + SPLAT(add);
    ST8(ptr, x);
}

HOT void rj_cm_exp(float *u, int m, float shift, float add)
{
    int r = 0;
    for (; r + 8 <= m; r += 8)
        exp_neg8(u + r, shift, add);
    if (r < m) { /* the last few through a zero-padded vector */
        float t[8] = {0};
        memcpy(t, u + r, (size_t)(m - r) * sizeof(float));
        exp_neg8(t, shift, add);
        memcpy(u + r, t, (size_t)(m - r) * sizeof(float));
    }
}

HOT void rj_cm_rescale(float *S, int m, int w, int dv, float f)
{
    for (int r = 0; r < m; r++) {
        float *row = S + (size_t)r * (size_t)w;
        for (int a = 0; a < w; a++)
            row[a] *= f;
        row[dv + 1] = 1;
    }
}

/* Columns c0 .. c0 + 8 nv - 1 of every state row take nr <= NB keys. */
static inline INLINE void absorb_block(float *S, int m, int w, const float *e, const float *vrow,
                                       int nr, int c0, const int nv)
{
    v8f v[NB][2];
    for (int j = 0; j < NB; j++)
        for (int k = 0; k < nv; k++) {
            if (j < nr)
                LD8(v[j][k], vrow + (size_t)j * (size_t)w + (size_t)(c0 + 8 * k));
            else
                v[j][k] = SPLAT(0.0f);
        }
    for (int r = 0; r < m; r++) {
        float *row = S + (size_t)r * (size_t)w + c0;
        v8f acc[2];
        for (int k = 0; k < nv; k++)
            LD8(acc[k], row + 8 * k);
        for (int j = 0; j < NB; j++) {
            const v8f ej = SPLAT(j < nr ? e[(size_t)j * (size_t)m + (size_t)r] : 0.0f);
            for (int k = 0; k < nv; k++)
                acc[k] += ej * v[j][k];
        }
        for (int k = 0; k < nv; k++)
            ST8(row + 8 * k, acc[k]);
    }
}

HOT void rj_cm_absorb(float *S, int m, int w, const float *e, const float *vrow, int64_t n)
{
    const int w16 = w / 16 * 16;
    for (int64_t j0 = 0; j0 < n; j0 += NB) {
        const int nr = n - j0 < NB ? (int)(n - j0) : NB;
        const float *ej = e + j0 * m, *vj = vrow + j0 * w;
        for (int c0 = 0; c0 < w16; c0 += 16)
            absorb_block(S, m, w, ej, vj, nr, c0, 2);
        if (w > w16)
            absorb_block(S, m, w, ej, vj, nr, w16, 1);
    }
}

HOT void rj_cm_read(const float *S, int m, int w, const float *q, int64_t n, float *o)
{
    for (int64_t i0 = 0; i0 < n; i0 += NB) {
        const int nr = n - i0 < NB ? (int)(n - i0) : NB;
        gemm_rows(S, m, w, q + i0 * m, nr, o + i0 * w, w); /* w is a multiple of 8 */
    }
}

/* Columns c0 .. c0 + 8 nv - 1: the state takes one key and one query reads it, in one pass. */
static inline INLINE void step_block(float *S, int m, int w, const float *e, const float *vrow,
                                     const float *q, float *o, int c0, const int nv)
{
    v8f v[2], acc[2];
    for (int k = 0; k < nv; k++) {
        LD8(v[k], vrow + c0 + 8 * k);
        acc[k] = SPLAT(0.0f);
    }
    for (int r = 0; r < m; r++) {
        float *row = S + (size_t)r * (size_t)w + c0;
        const v8f er = SPLAT(e[r]), qr = SPLAT(q[r]);
        for (int k = 0; k < nv; k++) {
            v8f s;
            LD8(s, row + 8 * k);
            s += er * v[k];
            ST8(row + 8 * k, s);
            acc[k] += qr * s;
        }
    }
    for (int k = 0; k < nv; k++)
        ST8(o + c0 + 8 * k, acc[k]);
}

HOT void rj_cm_step(float *S, int m, int w, const float *e, const float *vrow, const float *q,
                    float *o)
{
    const int w16 = w / 16 * 16;
    for (int c0 = 0; c0 < w16; c0 += 16)
        step_block(S, m, w, e, vrow, q, o, c0, 2);
    if (w > w16)
        step_block(S, m, w, e, vrow, q, o, w16, 1);
}

/* sum_r a_r b_r of m floats, in eight lanes. */
static inline INLINE float dot(const float *a, const float *b, int m)
{
    v8f acc = SPLAT(0.0f);
    int r = 0;
    for (; r + 8 <= m; r += 8) {
        v8f x, y;
        LD8(x, a + r);
        LD8(y, b + r);
        acc += x * y;
    }
    float s = 0;
    for (; r < m; r++)
        s += a[r] * b[r];
    for (int l = 0; l < 8; l++)
        s += acc[l];
    return s;
}

HOT void rj_cm_intra(const float *q, const float *e, const float *vrow, int m, int w, int64_t n,
                     float *o)
{
    for (int64_t i = 0; i < n; i++) {
        float *oi = o + i * w;
        for (int64_t j = 0; j <= i; j++) {
            const float sij = dot(q + i * m, e + j * m, m);
            const float *vj = vrow + j * w;
            for (int a = 0; a < w; a++)
                oi[a] += sij * vj[a];
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
