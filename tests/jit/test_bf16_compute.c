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
        a.estimator = "positive";
        expect(ctx, &a, RFJIT_E_NOT_APPLICABLE, "positive");
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
