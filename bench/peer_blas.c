/* SPDX-License-Identifier: MIT */
/*
 * This file is the OpenBLAS peers of `rfjit bench`: exact attention and FAVOR+ as a C
 * programmer would build them from cblas_sgemm, cblas_sgemv and a vectorised exp loop, one
 * head after another with OpenBLAS's threads inside each call.
 *
 * OpenBLAS is loaded with dlopen at run time, after OPENBLAS_CORETYPE is removed from the
 * environment: the machine exports OPENBLAS_CORETYPE=Haswell, which pins OpenBLAS to its
 * AVX2 kernels (about half its AVX-512 speed, spec performance.md), and a fair benchmark runs
 * the peers at their best. Neither the library nor the CLI links OpenBLAS, so a machine
 * without it only loses these peers.
 *
 * The exp is a Cephes-style polynomial (range reduction by ln 2, degree-6 polynomial, 2^n
 * through the exponent bits; 2-3 ulp) in branch-free C that gcc vectorises at -O3 (CMake
 * compiles this file with -O3 -ffp-contract=fast); the loops are cloned for x86-64-v4
 * (AVX-512), v3 (AVX2) and baseline and picked at load time, so the binary stays portable.
 * glibc's expf would not vectorise without -ffast-math and costs ~12x more (performance.md).
 */
#include "bench.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                         \
    !defined(__SANITIZE_THREAD__)
#define PEER_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PEER_CLONES
#endif

/* CBLAS enum values (cblas.h), passed as int: the ABI of a C enum. */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *,
                         int, float, float *, int);
typedef void (*sgemv_fn)(int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);

struct bench_blas {
    void *lib;
    sgemm_fn sgemm;
    sgemv_fn sgemv;
    void (*set_threads)(int);
    char *(*corename)(void);
    char *(*config)(void);
};

bench_blas *bench_blas_open(char *why, size_t len)
{
    /* before the first dlopen: OpenBLAS reads the variable once, when it initialises */
    unsetenv("OPENBLAS_CORETYPE");
    void *lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(why, len, "libopenblas.so.0 not found (%s)", dlerror());
        return NULL;
    }
    bench_blas *b = calloc(1, sizeof *b);
    if (!b) {
        dlclose(lib);
        snprintf(why, len, "out of memory");
        return NULL;
    }
    b->lib = lib;
    /* dlsym returns void *; ISO C has no cast to function pointers, POSIX guarantees it */
    const char *names[] = {"cblas_sgemm", "cblas_sgemv", "openblas_set_num_threads",
                           "openblas_get_corename", "openblas_get_config"};
    void *syms[5];
    for (int i = 0; i < 5; i++) {
        syms[i] = dlsym(lib, names[i]);
        if (!syms[i]) {
            snprintf(why, len, "libopenblas.so.0 has no %s", names[i]);
            dlclose(lib);
            free(b);
            return NULL;
        }
    }
    memcpy(&b->sgemm, &syms[0], sizeof b->sgemm);
    memcpy(&b->sgemv, &syms[1], sizeof b->sgemv);
    memcpy(&b->set_threads, &syms[2], sizeof b->set_threads);
    memcpy(&b->corename, &syms[3], sizeof b->corename);
    memcpy(&b->config, &syms[4], sizeof b->config);
    return b;
}

void bench_blas_close(bench_blas *b)
{
    if (!b)
        return;
    dlclose(b->lib);
    free(b);
}

void bench_blas_threads(bench_blas *b, int n)
{
    b->set_threads(n);
}

const char *bench_blas_core(bench_blas *b)
{
    return b->corename();
}

const char *bench_blas_config(bench_blas *b)
{
    return b->config();
}

/* ------------------------------------------------------------------ vector loops */

static inline float exp_poly(float x)
{
    /* clamped so that 2^n stays a normal float: e^-87 is far below any softmax weight that
     * matters next to the row's maximum, 1 */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t e = ((int32_t)n + 127) * (1 << 23);
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

PEER_CLONES void peer_exp(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = exp_poly(x[i]);
}

/* Reductions with 16 partial results: without -ffast-math gcc may not reorder a float sum
 * or max itself, but it vectorises independent lanes. */
PEER_CLONES static float row_max(const float *x, size_t n)
{
    float acc[16];
    for (int l = 0; l < 16; l++)
        acc[l] = -INFINITY;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] = x[i + (size_t)l] > acc[l] ? x[i + (size_t)l] : acc[l];
    float mx = -INFINITY;
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int l = 0; l < 16; l++)
        mx = acc[l] > mx ? acc[l] : mx;
    return mx;
}

/* x = exp(x - shift); returns the sum of the new x. */
PEER_CLONES static float exp_shift_sum(float *x, size_t n, float shift)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) {
            const float e = exp_poly(x[i + (size_t)l] - shift);
            x[i + (size_t)l] = e;
            acc[l] += e;
        }
    float s = 0;
    for (; i < n; i++) {
        x[i] = exp_poly(x[i] - shift);
        s += x[i];
    }
    for (int l = 0; l < 16; l++)
        s += acc[l];
    return s;
}

/* x = x - c (the feature map's -|x|^2/2, per row). */
PEER_CLONES static void sub_scalar(float *x, size_t n, float c)
{
    for (size_t i = 0; i < n; i++)
        x[i] -= c;
}

PEER_CLONES static float sum_sq(const float *x, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            acc[l] += x[i + (size_t)l] * x[i + (size_t)l];
    float s = 0;
    for (; i < n; i++)
        s += x[i] * x[i];
    for (int l = 0; l < 16; l++)
        s += acc[l];
    return s;
}

PEER_CLONES static void scale(float *x, size_t n, float c)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= c;
}

/* ------------------------------------------------------------------ workspaces */

struct peer_ws {
    float *s;      /* exact: PEER_EXACT_BLOCK x L scores */
    float *ws;     /* FAVOR+: W d^{-1/4}, m x d */
    float *qf, *kf; /* L x m features */
    float *S, *z;  /* m x dv, m */
    float *den, *ones; /* L, L */
    float *A;      /* causal chunk, C x C */
};

void peer_ws_destroy(peer_ws *w)
{
    if (!w)
        return;
    free(w->s);
    free(w->ws);
    free(w->qf);
    free(w->kf);
    free(w->S);
    free(w->z);
    free(w->den);
    free(w->ones);
    free(w->A);
    free(w);
}

peer_ws *peer_ws_create(const bench_data *p)
{
    peer_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    const size_t L = (size_t)p->L, m = (size_t)p->m, d = (size_t)p->d, dv = (size_t)p->dv;
    const size_t blk = L < PEER_EXACT_BLOCK ? L : PEER_EXACT_BLOCK;
    w->s = malloc(sizeof(float) * blk * L);
    w->ws = malloc(sizeof(float) * m * d);
    w->qf = malloc(sizeof(float) * L * m);
    w->kf = malloc(sizeof(float) * L * m);
    /* zeroed: a beta = 0 call may still read its output (0 * NaN is NaN) */
    w->S = calloc(m * dv, sizeof(float));
    w->z = calloc(m, sizeof(float));
    w->den = calloc(L, sizeof(float));
    w->ones = malloc(sizeof(float) * L);
    w->A = malloc(sizeof(float) * PEER_FAVOR_CHUNK * PEER_FAVOR_CHUNK);
    if (!w->s || !w->ws || !w->qf || !w->kf || !w->S || !w->z || !w->den || !w->ones || !w->A) {
        peer_ws_destroy(w);
        return NULL;
    }
    const float s = (float)(1.0 / pow((double)p->d, 0.25));
    for (size_t i = 0; i < m * d; i++)
        w->ws[i] = s * p->W[i];
    for (size_t i = 0; i < L; i++)
        w->ones[i] = 1.0f;
    /* first touch here, not in the first timed call */
    memset(w->s, 0, sizeof(float) * blk * L);
    memset(w->qf, 0, sizeof(float) * L * m);
    memset(w->kf, 0, sizeof(float) * L * m);
    return w;
}

/* ------------------------------------------------------------------ exact */

static void exact_head(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out)
{
    const int L = p->L, d = p->d, dv = p->dv;
    const float alpha = (float)(1.0 / sqrt((double)d));
    float inv[PEER_EXACT_BLOCK];
    for (int i0 = 0; i0 < L; i0 += PEER_EXACT_BLOCK) {
        const int nb = L - i0 < PEER_EXACT_BLOCK ? L - i0 : PEER_EXACT_BLOCK;
        /* causal: keys past the block's last query are never computed */
        const int nk = causal ? i0 + nb : L;
        b->sgemm(ROW_MAJOR, NO_TRANS, TRANS, nb, nk, d, alpha, p->q + (size_t)i0 * (size_t)d,
                 d, p->k, d, 0.0f, w->s, nk);
        for (int r = 0; r < nb; r++) {
            float *x = w->s + (size_t)r * (size_t)nk;
            const int len = causal ? i0 + r + 1 : nk;
            const float mx = row_max(x, (size_t)len);
            inv[r] = 1.0f / exp_shift_sum(x, (size_t)len, mx);
            if (len < nk)
                memset(x + len, 0, sizeof(float) * (size_t)(nk - len));
        }
        float *o = out + (size_t)i0 * (size_t)dv;
        b->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nb, dv, nk, 1.0f, w->s, nk, p->v, dv, 0.0f, o,
                 dv);
        for (int r = 0; r < nb; r++)
            scale(o + (size_t)r * (size_t)dv, (size_t)dv, inv[r]);
    }
}

/* ------------------------------------------------------------------ FAVOR+ */

/*
 * Positive features as est/positive.c defines them, phi(x)_r = m^{-1/2} exp(w_r.x -
 * |x|^2/2) with x = q d^{-1/4}, stabilised as Performer does: each query row by its own
 * maximum (cancels in its ratio), all keys by one global maximum (cancels between numerator
 * and denominator), and m^{-1/2} left out (it cancels too). The causal form also uses the
 * global key maximum: the outputs are the same numbers, only no longer computable in a
 * stream, which a forward pass over a whole sequence never needs.
 */
static void features(bench_blas *b, const bench_data *p, const float *x, const float *ws,
                     float *f, int per_row)
{
    const int L = p->L, d = p->d, m = p->m;
    const float half_scale = (float)(0.5 / sqrt((double)d)); /* |x d^{-1/4}|^2 / 2 */
    b->sgemm(ROW_MAJOR, NO_TRANS, TRANS, L, m, d, 1.0f, x, d, ws, d, 0.0f, f, m);
    float gmax = -INFINITY;
    for (int i = 0; i < L; i++) {
        float *fi = f + (size_t)i * (size_t)m;
        sub_scalar(fi, (size_t)m, half_scale * sum_sq(x + (size_t)i * (size_t)d, (size_t)d));
        const float mx = row_max(fi, (size_t)m);
        if (per_row)
            exp_shift_sum(fi, (size_t)m, mx);
        else
            gmax = mx > gmax ? mx : gmax;
    }
    if (!per_row)
        for (int i = 0; i < L; i++)
            exp_shift_sum(f + (size_t)i * (size_t)m, (size_t)m, gmax);
}

static void divide_rows(float *o, const float *den, int n, int dv)
{
    for (int i = 0; i < n; i++)
        scale(o + (size_t)i * (size_t)dv, (size_t)dv, 1.0f / den[i]);
}

static void favor_head(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out)
{
    const int L = p->L, m = p->m, dv = p->dv;
    features(b, p, p->q, w->ws, w->qf, 1);
    features(b, p, p->k, w->ws, w->kf, 0);
    if (!causal) {
        b->sgemm(ROW_MAJOR, TRANS, NO_TRANS, m, dv, L, 1.0f, w->kf, m, p->v, dv, 0.0f, w->S,
                 dv);
        b->sgemv(ROW_MAJOR, TRANS, L, m, 1.0f, w->kf, m, w->ones, 1, 0.0f, w->z, 1);
        b->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, L, dv, m, 1.0f, w->qf, m, w->S, dv, 0.0f, out,
                 dv);
        b->sgemv(ROW_MAJOR, NO_TRANS, L, m, 1.0f, w->qf, m, w->z, 1, 0.0f, w->den, 1);
        divide_rows(out, w->den, L, dv);
        return;
    }
    /* chunked prefix sums: inside a chunk the masked C x C product, before it the state
     * (S, z) = sum over earlier keys of (k' v^T, k') */
    const int C = PEER_FAVOR_CHUNK;
    for (int c0 = 0; c0 < L; c0 += C) {
        const int nc = L - c0 < C ? L - c0 : C;
        const float *qc = w->qf + (size_t)c0 * (size_t)m, *kc = w->kf + (size_t)c0 * (size_t)m;
        const float *vc = p->v + (size_t)c0 * (size_t)dv;
        float *oc = out + (size_t)c0 * (size_t)dv, *den = w->den + c0;
        b->sgemm(ROW_MAJOR, NO_TRANS, TRANS, nc, nc, m, 1.0f, qc, m, kc, m, 0.0f, w->A, nc);
        for (int i = 0; i < nc; i++) {
            float *a = w->A + (size_t)i * (size_t)nc;
            memset(a + i + 1, 0, sizeof(float) * (size_t)(nc - i - 1));
            float s = 0;
            for (int j = 0; j <= i; j++)
                s += a[j];
            den[i] = s;
        }
        b->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nc, dv, nc, 1.0f, w->A, nc, vc, dv, 0.0f, oc,
                 dv);
        if (c0 > 0) {
            b->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, nc, dv, m, 1.0f, qc, m, w->S, dv, 1.0f, oc,
                     dv);
            b->sgemv(ROW_MAJOR, NO_TRANS, nc, m, 1.0f, qc, m, w->z, 1, 1.0f, den, 1);
        }
        const float beta = c0 > 0 ? 1.0f : 0.0f;
        b->sgemm(ROW_MAJOR, TRANS, NO_TRANS, m, dv, nc, 1.0f, kc, m, vc, dv, beta, w->S, dv);
        b->sgemv(ROW_MAJOR, TRANS, nc, m, 1.0f, kc, m, w->ones, 1, beta, w->z, 1);
        divide_rows(oc, den, nc, dv);
    }
}

/* ------------------------------------------------------------------ heads */

typedef void (*head_fn)(bench_blas *, const bench_data *, int, peer_ws *, float *);

/* The heads share the workspace (and W's scaled copy in it): one after another. */
static void each_head(head_fn f, bench_blas *b, const bench_data *p, int causal, peer_ws *w,
                      float *out)
{
    const size_t per_head = (size_t)p->L * (size_t)p->dv;
    for (int h = 0; h < p->H; h++) {
        const bench_data x = bench_data_head(p, h);
        f(b, &x, causal, w, out + (size_t)h * per_head);
    }
}

void peer_blas_exact(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out)
{
    each_head(exact_head, b, p, causal, w, out);
}

void peer_blas_favor(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out)
{
    each_head(favor_head, b, p, causal, w, out);
}
