/* SPDX-License-Identifier: MIT */
/*
 * This file checks exact attention with bf16 compute (rfjit_attn_desc.compute = RFJIT_BF16)
 * against its portable reference: the double reference backend run on the operands rounded
 * as the kernel rounds them (x = q sqrt(scale)^2 in float, then x, k and v to bfloat16). What
 * the kernel does beyond that is rounding each weight p to bfloat16 (relative error at most
 * u = 2^-8, round to nearest even with 8 significant bits) before p v, while its
 * denominators sum the float weights; and float32 arithmetic elsewhere. So output (i, c)
 * differs from the reference by at most
 *
 *     (u + 2 e_s + 1e-5) B_ic,   B_ic = sum_j w_ij |v~_jc|,
 *
 * B the reference run on |v~|, e_s = d 2^-24 max |x~| . |k~| the float accumulation of a
 * score (each weight moves by at most e^{2 e_s}), and 1e-5 the relative error of the inline
 * exp and of the float sums. Both bf16 units run: AMX tiles (16 lanes, where the CPU has
 * them) and AVX512-BF16's dot product (8 lanes), over head dims that fill and do not fill a
 * tile, causal and bidirectional, Lq < Lk, decode-sized calls (a one-vector tile), a key mask,
 * grouped-query heads and bfloat16 inputs. On a CPU without AVX512-BF16 the plan must be
 * refused (RFJIT_E_ISA), which is what the suite then checks.
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    int d, dv, causal, lq, lk, heads, kv_heads, masked, bf16_in;
} shape;

static const shape shapes[] = {
    {64, 64, 0, 200, 200, 1, 1, 0, 0}, {64, 64, 1, 200, 200, 1, 1, 0, 0},
    {17, 40, 0, 70, 150, 1, 1, 0, 0},  {17, 40, 1, 70, 150, 1, 1, 0, 0},
    {128, 24, 1, 3, 100, 1, 1, 0, 0},  {64, 64, 0, 1, 77, 1, 1, 0, 0},
    {32, 32, 0, 130, 130, 1, 1, 1, 0}, {64, 64, 1, 96, 160, 4, 2, 0, 0},
    {64, 48, 1, 120, 120, 2, 2, 0, 1},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static float bf16_round(float x)
{
    return rj_bf16_to_f32(rj_f32_to_bf16(x));
}

static rfjit_status make_plan(rfjit_ctx *ctx, const shape *s, int compute, int backend, int vw,
                              rfjit_plan **p)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = s->d;
    a.dv = s->dv;
    a.causal = s->causal;
    a.backend = backend;
    a.compute = compute;
    a.tiling.vw = vw;
    a.dtype = s->bf16_in ? RFJIT_BF16 : RFJIT_F32;
    return rfjit_plan_create(ctx, &a, p);
}

static rfjit_tensor_ex view(void *data, int dt, int64_t h, int64_t l, int64_t dim)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = data;
    t.dtype = dt;
    t.shape[0] = 1;
    t.shape[1] = h;
    t.shape[2] = l;
    t.shape[3] = dim;
    t.stride[3] = 1;
    t.stride[2] = dim;
    t.stride[1] = l * dim;
    t.stride[0] = h * l * dim;
    return t;
}

static void run(const rfjit_plan *p, const shape *s, const rfjit_tensor_ex *q,
                const rfjit_tensor_ex *k, const rfjit_tensor_ex *v, float *out, const uint8_t *km)
{
    rfjit_tensor_ex o = view(out, RFJIT_F32, s->heads, s->lq, s->dv);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = &o;
    a.key_mask = km;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
}

/* Rows as a call hands them to the kernel: float, or bfloat16 widened. */
static void inputs(const shape *s, uint64_t seed, float *q, float *k, float *v, uint16_t *qh,
                   uint16_t *kh, uint16_t *vh)
{
    const size_t nq = (size_t)s->heads * s->lq * s->d, nk = (size_t)s->kv_heads * s->lk * s->d;
    const size_t nv = (size_t)s->kv_heads * s->lk * s->dv;
    tu_fill_normal(q, nq, 1.5, seed);
    tu_fill_normal(k, nk, 1.5, seed + 1);
    tu_fill_normal(v, nv, 1.0, seed + 2);
    struct {
        float *x;
        uint16_t *h;
        size_t n;
    } t[3] = {{q, qh, nq}, {k, kh, nk}, {v, vh, nv}};
    for (int r = 0; r < 3; r++)
        for (size_t i = 0; i < t[r].n; i++) {
            t[r].h[i] = rj_f32_to_bf16(t[r].x[i]);
            if (s->bf16_in)
                t[r].x[i] = rj_bf16_to_f32(t[r].h[i]);
        }
}

/* Which unit a bf16 plan runs on, from its description (" bf16=amx" or " bf16=dot"). */
static const char *unit_of(const rfjit_plan *p)
{
    static char buf[1024];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    return strstr(buf, " bf16=amx") ? "amx" : strstr(buf, " bf16=dot") ? "dot" : "?";
}

static void check_shape(rfjit_ctx *ctx, const shape *s, int vw, uint64_t seed)
{
    rfjit_plan *pb = NULL, *pr = NULL;
    cr_assert_eq(make_plan(ctx, s, RFJIT_BF16, RFJIT_BACKEND_JIT, vw, &pb), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    shape sr = *s;
    sr.bf16_in = 0;
    cr_assert_eq(make_plan(ctx, &sr, RFJIT_F32, RFJIT_BACKEND_REFERENCE, 0, &pr), RFJIT_OK);
    const char *unit = unit_of(pb);
    cr_assert(strcmp(unit, vw == 8 ? "dot" : unit) == 0 && strcmp(unit, "?") != 0,
              "vw %d runs on %s", vw, unit);

    const size_t nq = (size_t)s->heads * s->lq * s->d, nk = (size_t)s->kv_heads * s->lk * s->d;
    const size_t nv = (size_t)s->kv_heads * s->lk * s->dv, no = (size_t)s->heads * s->lq * s->dv;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4);
    float *qr = malloc(nq * 4), *kr = malloc(nk * 4), *vr = malloc(nv * 4), *va = malloc(nv * 4);
    uint16_t *qh = malloc(nq * 2), *kh = malloc(nk * 2), *vh = malloc(nv * 2);
    float *out = malloc(no * 4), *ref = malloc(no * 4), *bnd = malloc(no * 4);
    uint8_t *km = NULL;
    cr_assert(q && k && v && qr && kr && vr && va && qh && kh && vh && out && ref && bnd);
    inputs(s, seed, q, k, v, qh, kh, vh);
    if (s->masked) {
        km = malloc((size_t)s->lk);
        for (int j = 0; j < s->lk; j++)
            km[j] = (uint8_t)(j % 3 != 1 && j < s->lk - 20);
    }

    /* the kernel's rounding of its operands: x = q * (float)(scale^(1/4))^2, then bf16; the
     * reference scales by 1/sqrt(d), so it is handed x~ sqrt(d) */
    const float xs = (float)pow((double)s->d, -0.25);
    const float x_scale = xs * xs;
    double dot_max = 0;
    for (size_t i = 0; i < nq; i++)
        qr[i] = (float)(bf16_round(q[i] * x_scale) * sqrt((double)s->d));
    for (size_t i = 0; i < nk; i++)
        kr[i] = bf16_round(k[i]);
    for (size_t i = 0; i < nv; i++) {
        vr[i] = bf16_round(v[i]);
        va[i] = fabsf(vr[i]);
    }
    for (int h = 0; h < s->heads; h++)
        for (int i = 0; i < s->lq; i++)
            for (int j = 0; j < s->lk; j++) {
                const int g = h / (s->heads / s->kv_heads);
                double a = 0;
                for (int c = 0; c < s->d; c++)
                    a += fabs(qr[((size_t)h * s->lq + i) * s->d + c] / sqrt((double)s->d) *
                              kr[((size_t)g * s->lk + j) * s->d + c]);
                dot_max = a > dot_max ? a : dot_max;
            }
    const double e_s = s->d * 0x1p-24 * dot_max + 0x1p-23;

    const int dt = s->bf16_in ? RFJIT_BF16 : RFJIT_F32;
    rfjit_tensor_ex tq = view(s->bf16_in ? (void *)qh : q, dt, s->heads, s->lq, s->d);
    rfjit_tensor_ex tk = view(s->bf16_in ? (void *)kh : k, dt, s->kv_heads, s->lk, s->d);
    rfjit_tensor_ex tv = view(s->bf16_in ? (void *)vh : v, dt, s->kv_heads, s->lk, s->dv);
    run(pb, s, &tq, &tk, &tv, out, km);
    rfjit_tensor_ex rq = view(qr, RFJIT_F32, s->heads, s->lq, s->d);
    rfjit_tensor_ex rk = view(kr, RFJIT_F32, s->kv_heads, s->lk, s->d);
    rfjit_tensor_ex rv = view(vr, RFJIT_F32, s->kv_heads, s->lk, s->dv);
    rfjit_tensor_ex ra = view(va, RFJIT_F32, s->kv_heads, s->lk, s->dv);
    run(pr, s, &rq, &rk, &rv, ref, km);
    run(pr, s, &rq, &rk, &ra, bnd, km);
    for (size_t i = 0; i < no; i++) {
        const double tol = (0x1p-8 + 2 * e_s + 1e-5) * bnd[i] + 1e-30;
        cr_assert(fabs((double)out[i] - ref[i]) <= tol,
                  "seed %llu, %s, d=%d dv=%d causal=%d lq=%d lk=%d heads=%d/%d mask=%d "
                  "bf16-in=%d: out[%zu] = %.9g, reference %.9g, bound %.3g",
                  (unsigned long long)seed, unit, s->d, s->dv, s->causal, s->lq, s->lk, s->heads,
                  s->kv_heads, s->masked, s->bf16_in, i, (double)out[i], (double)ref[i], tol);
    }
    free(q), free(k), free(v), free(qr), free(kr), free(vr), free(va);
    free(qh), free(kh), free(vh), free(out), free(ref), free(bnd), free(km);
    rfjit_plan_destroy(pb);
    rfjit_plan_destroy(pr);
}

/* Whether this context runs bf16; when not, the refusal is checked and 0 returned. */
static int bf16_available(rfjit_ctx *ctx)
{
    rfjit_plan *p = NULL;
    const rfjit_status st = make_plan(ctx, &shapes[0], RFJIT_BF16, RFJIT_BACKEND_AUTO, 0, &p);
    if (st == RFJIT_OK) {
        rfjit_plan_destroy(p);
        return 1;
    }
    cr_assert_eq(st, RFJIT_E_ISA, "%s", rfjit_ctx_last_error(ctx));
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "AVX512-BF16"), "%s", rfjit_ctx_last_error(ctx));
    return 0;
}

Test(bf16_compute, exact_within_the_rounding_bound, .timeout = 300)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    if (bf16_available(ctx))
        for (int vw = 16; vw >= 8; vw /= 2)
            for (int i = 0; i < N_SHAPES; i++)
                check_shape(ctx, &shapes[i], vw, 1000u + (uint64_t)i);
    rfjit_ctx_destroy(ctx);
}

/* A bf16 plan that computed in float would pass the bound above: its outputs must differ
 * from the float32 kernel's by what bfloat16 operands make (~3e-3 relative here), not by
 * float rounding (~1e-6). */
Test(bf16_compute, rounds_its_operands)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    if (!bf16_available(ctx)) {
        rfjit_ctx_destroy(ctx);
        return;
    }
    const shape *s = &shapes[0];
    const size_t n = (size_t)s->lq * s->d;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o[2];
    o[0] = malloc(n * 4);
    o[1] = malloc(n * 4);
    tu_fill_normal(q, n, 1.5, 42);
    tu_fill_normal(k, n, 1.5, 43);
    tu_fill_normal(v, n, 1.0, 44);
    for (int vw = 16; vw >= 8; vw /= 2) {
        for (int c = 0; c < 2; c++) {
            rfjit_plan *p = NULL;
            cr_assert_eq(make_plan(ctx, s, c ? RFJIT_BF16 : RFJIT_F32, RFJIT_BACKEND_JIT, vw, &p),
                         RFJIT_OK);
            rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, s->lq, s->d);
            rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, s->lk, s->d);
            rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, s->lk, s->dv);
            rfjit_tensor to = rfjit_tensor_contiguous(o[c], 1, 1, s->lq, s->dv);
            cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
            rfjit_plan_destroy(p);
        }
        double e = 0, nn = 0;
        for (size_t i = 0; i < n; i++) {
            e += ((double)o[1][i] - o[0][i]) * ((double)o[1][i] - o[0][i]);
            nn += (double)o[0][i] * o[0][i];
        }
        cr_assert(sqrt(e / nn) > 3e-4 && sqrt(e / nn) < 3e-2,
                  "seed 42, vw %d: bf16 differs from float32 by %.3g (relative)", vw, sqrt(e / nn));
    }
    free(q), free(k), free(v), free(o[0]), free(o[1]);
    rfjit_ctx_destroy(ctx);
}

static void expect(rfjit_ctx *ctx, const rfjit_attn_desc *a, rfjit_status want, const char *what)
{
    rfjit_plan *p = NULL;
    const rfjit_status st = rfjit_plan_create(ctx, a, &p);
    cr_assert_eq(st, want, "%s: got %d (%s)", what, st, rfjit_ctx_last_error(ctx));
    cr_assert_null(p);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "compute"), "%s: %s", what,
              rfjit_ctx_last_error(ctx));
}

Test(bf16_compute, refused_where_it_cannot_run)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = 64;
    a.compute = RFJIT_F16;
    expect(ctx, &a, RFJIT_E_DTYPE, "float16 compute");
    a.compute = 7;
    expect(ctx, &a, RFJIT_E_DTYPE, "compute 7");
    a.compute = RFJIT_BF16;
    a.backend = RFJIT_BACKEND_REFERENCE;
    expect(ctx, &a, RFJIT_E_NOT_APPLICABLE, "the reference backend");
    a.backend = RFJIT_BACKEND_AUTO;
    if (bf16_available(ctx)) {
        const char *const none[] = {"trig", "oprf", "eva", "blocksparse", "hybrid"};
        for (int i = 0; i < 5; i++) {
            a.estimator = none[i];
            expect(ctx, &a, RFJIT_E_NOT_APPLICABLE, none[i]);
        }
        a.estimator = "exact";
    }
    rfjit_ctx_destroy(ctx);

    /* an ISA below the host's has no bf16 instruction, and fallback does not turn the
     * refusal into a float plan */
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.isa = "avx2";
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    a.fallback = 1;
    expect(ctx, &a, RFJIT_E_ISA, "isa avx2");
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "AVX512-BF16"), "%s", rfjit_ctx_last_error(ctx));
    rfjit_ctx_destroy(ctx);
}

/*
 * Linear attention with exponential features (positive, hyperbolic), bidirectional, on AMX:
 * the projections W x, S = phi_k^T V and num = S^T phi_q take bfloat16 operands. The inputs
 * are made exact in the kernel's arithmetic (entries of bfloat16 precision, d in {16, 256},
 * where the input scale d^-1/4 is a power of two), and the reference is handed W rounded to
 * bfloat16 as a user projection, so kernel and reference see the same x, y and W. What is
 * left: rounding phi_k, S and phi_q in num (relative u each, so the numerator moves by at
 * most (1 + u)^3 - 1 of sum_j kappa_ij |v_j|, the denominator stays float), the float sums
 * of the projections (d 2^-24 |w||x| on each log-feature, twice per weight), and the inline
 * exp (1e-5):  |out - ref| <= (e^{2 a}(1 + u)^3 - 1 + 1e-5) (B + |ref|), B = sum_j w_j |v_j|.
 */
typedef struct lshape {
    const char *est;
    int d, dv, m, lq, lk, heads, kv_heads, masked;
} lshape;

static const lshape lshapes[] = {
    {"positive", 16, 16, 100, 200, 200, 1, 1, 0},   {"positive", 256, 64, 256, 150, 90, 1, 1, 0},
    {"positive", 16, 40, 64, 70, 130, 2, 1, 1},     {"hyperbolic", 16, 16, 48, 100, 100, 1, 1, 0},
    {"positive", 16, 64, 256, 1000, 1000, 1, 1, 0},
};
#define N_LSHAPES ((int)(sizeof lshapes / sizeof lshapes[0]))

static rfjit_plan *linear_plan(rfjit_ctx *ctx, const lshape *s, int compute, int backend,
                               const float *W)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = s->est;
    a.d = s->d;
    a.dv = s->dv;
    a.m = s->m;
    a.backend = backend;
    a.compute = compute;
    a.projection = RFJIT_PROJ_USER;
    a.projection_matrix = W;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", s->est,
                 rfjit_ctx_last_error(ctx));
    return p;
}

static void check_linear(rfjit_ctx *ctx, const lshape *s, uint64_t seed)
{
    const size_t nq = (size_t)s->heads * s->lq * s->d, nk = (size_t)s->kv_heads * s->lk * s->d;
    const size_t nv = (size_t)s->kv_heads * s->lk * s->dv, no = (size_t)s->heads * s->lq * s->dv;
    const size_t nw = (size_t)s->m * s->d;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4), *va = malloc(nv * 4);
    float *W = malloc(nw * 4), *Wr = malloc(nw * 4);
    float *out = malloc(no * 4), *ref = malloc(no * 4), *bnd = malloc(no * 4);
    uint8_t *km = NULL;
    cr_assert(q && k && v && va && W && Wr && out && ref && bnd);
    tu_fill_normal(q, nq, 1.0, seed);
    tu_fill_normal(k, nk, 1.0, seed + 1);
    tu_fill_normal(v, nv, 1.0, seed + 2);
    tu_fill_normal(W, nw, 1.0, seed + 3);
    const double xs = pow((double)s->d, -0.25);
    double xmax = 0, wmax = 0;
    for (size_t i = 0; i < nq; i++)
        q[i] = bf16_round(q[i]);
    for (size_t i = 0; i < nk; i++)
        k[i] = bf16_round(k[i]);
    for (size_t i = 0; i < nv; i++) {
        v[i] = bf16_round(v[i]);
        va[i] = fabsf(v[i]);
    }
    for (size_t i = 0; i < nw; i++)
        Wr[i] = bf16_round(W[i]);
    for (int r = 0; r < s->m; r++) {
        double a = 0;
        for (int c = 0; c < s->d; c++)
            a += (double)Wr[(size_t)r * s->d + c] * Wr[(size_t)r * s->d + c];
        wmax = fmax(wmax, sqrt(a));
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < (pass ? nk : nq); i += (size_t)s->d) {
            double a = 0;
            for (int c = 0; c < s->d; c++)
                a += (double)(pass ? k : q)[i + c] * (pass ? k : q)[i + c];
            xmax = fmax(xmax, sqrt(a) * xs);
        }
    if (s->masked) {
        km = malloc((size_t)s->lk);
        for (int j = 0; j < s->lk; j++)
            km[j] = (uint8_t)(j % 4 != 2);
    }
    rfjit_plan *pb = linear_plan(ctx, s, RFJIT_BF16, RFJIT_BACKEND_JIT, W);
    rfjit_plan *pr = linear_plan(ctx, s, RFJIT_F32, RFJIT_BACKEND_REFERENCE, Wr);
    cr_assert_str_eq(unit_of(pb), "amx");
    shape sh = {s->d, s->dv, 0, s->lq, s->lk, s->heads, s->kv_heads, s->masked, 0};
    rfjit_tensor_ex tq = view(q, RFJIT_F32, s->heads, s->lq, s->d);
    rfjit_tensor_ex tk = view(k, RFJIT_F32, s->kv_heads, s->lk, s->d);
    rfjit_tensor_ex tv = view(v, RFJIT_F32, s->kv_heads, s->lk, s->dv);
    rfjit_tensor_ex ta = view(va, RFJIT_F32, s->kv_heads, s->lk, s->dv);
    run(pb, &sh, &tq, &tk, &tv, out, km);
    run(pr, &sh, &tq, &tk, &tv, ref, km);
    run(pr, &sh, &tq, &tk, &ta, bnd, km);
    const double u = 0x1p-8, a = s->d * 0x1p-24 * wmax * xmax;
    const double rel = exp(2 * a) * pow(1 + u, 3) - 1 + 1e-5;
    for (size_t i = 0; i < no; i++) {
        const double tol = rel * (bnd[i] + fabs(ref[i])) + 1e-30;
        cr_assert(fabs((double)out[i] - ref[i]) <= tol,
                  "seed %llu, %s d=%d dv=%d m=%d lq=%d lk=%d heads=%d/%d mask=%d: out[%zu] = "
                  "%.9g, reference %.9g, bound %.3g",
                  (unsigned long long)seed, s->est, s->d, s->dv, s->m, s->lq, s->lk, s->heads,
                  s->kv_heads, s->masked, i, (double)out[i], (double)ref[i], tol);
    }
    free(q), free(k), free(v), free(va), free(W), free(Wr), free(out), free(ref), free(bnd);
    free(km);
    rfjit_plan_destroy(pb);
    rfjit_plan_destroy(pr);
}

Test(bf16_compute, linear_within_the_rounding_bound, .timeout = 300)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    rfjit_plan *p = NULL;
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "positive";
    a.d = 16;
    a.compute = RFJIT_BF16;
    const rfjit_status st = rfjit_plan_create(ctx, &a, &p);
    if (st == RFJIT_OK) {
        cr_assert_str_eq(unit_of(p), "amx");
        rfjit_plan_destroy(p);
        for (int i = 0; i < N_LSHAPES; i++)
            check_linear(ctx, &lshapes[i], 2000u + (uint64_t)i);
    } else {
        /* no AMX (or no AVX512-BF16 at all): linear attention has no bf16 kernel there */
        cr_assert(st == RFJIT_E_NOT_APPLICABLE || st == RFJIT_E_ISA, "%d: %s", st,
                  rfjit_ctx_last_error(ctx));
    }
    /* causal linear attention has none anywhere */
    a.causal = 1;
    cr_assert_neq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "compute"), "%s", rfjit_ctx_last_error(ctx));
    rfjit_ctx_destroy(ctx);
}

/* Emission of a bf16 kernel follows the target, not this host: AMX where the target has it,
 * AVX512-BF16's dot product where it has only that (a Zen 4), and RFJIT_E_TARGET where it
 * has neither (AArch64, AVX2, AVX-512 without BF16), never handed to LLVM (whose instruction
 * selection would abort). */
Test(bf16_compute, emission_follows_the_target)
{
    rfjit_ctx *ctx = tu_ctx_isolated();
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = 64;
    a.compute = RFJIT_BF16;
    const struct {
        const char *triple, *features, *has; /* has: an instruction of the assembly, or NULL */
    } t[] = {{"x86_64-unknown-linux-gnu",
              "+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx512bf16,"
              "+amx-tile,+amx-bf16",
              "tdpbf16ps"},
             {"x86_64-unknown-linux-gnu", "+avx512f,+avx512vl,+avx512bw,+avx512dq,+avx512bf16",
              "vdpbf16ps"},
             {"aarch64-unknown-linux-gnu", "+neon", NULL},
             {"x86_64-unknown-linux-gnu", "+avx2,+fma", NULL},
             {"x86_64-unknown-linux-gnu", "+avx512f,+avx512vl,+avx512bw,+avx512dq", NULL}};
    for (int i = 0; i < 5; i++) {
        rfjit_emit_desc e = RFJIT_EMIT_DESC_INIT;
        e.triple = t[i].triple;
        e.features = t[i].features;
        e.cpu = "";
        e.kind = RFJIT_EMIT_ASSEMBLY;
        e.vector_width = i == 2 ? 4 : i == 3 ? 8 : 16;
        void *out = NULL;
        size_t n = 0;
        const rfjit_status s = rfjit_emit(ctx, &a, &e, &out, &n, NULL, 0);
        if (t[i].has) {
            cr_assert_eq(s, RFJIT_OK, "%s: %s", t[i].features, rfjit_ctx_last_error(ctx));
            char *text = malloc(n + 1);
            cr_assert_not_null(text);
            memcpy(text, out, n);
            text[n] = 0;
            cr_expect(strstr(text, t[i].has), "%s: no %s in the assembly", t[i].features, t[i].has);
            free(text);
        } else {
            cr_expect_eq(s, RFJIT_E_TARGET, "%s %s: %d (%s)", t[i].triple, t[i].features, s,
                         rfjit_ctx_last_error(ctx));
            cr_expect(strstr(rfjit_ctx_last_error(ctx), "bf16"), "%s", rfjit_ctx_last_error(ctx));
        }
        rfjit_free(out);
    }
    rfjit_ctx_destroy(ctx);
}
