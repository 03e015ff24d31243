/* SPDX-License-Identifier: MIT */
/*
 * This file checks the one-token decode step (runtime/decode_step.c) against the causal plan
 * on the concatenated tokens: for every estimator with a causal linear JIT kernel (fitted
 * ones frozen by a calibration sample), float32, float16 and bfloat16, grouped (H = 4,
 * Hkv = 2) and plain heads, slot 0 is prefilled by the causal kernel, both slots then take
 * steps (slot 1 starts fresh on its first step), and a second kernel prefill continues both.
 * Each slot's rows must equal a causal execute of its own tokens to the JIT tolerance
 * (1e-4 of max |output|, as tests/jit/test_decode.c) plus one rounding of the step's output
 * to a half dtype (2^-11 relative for float16, 2^-8 for bfloat16).
 * dv = 40 takes the step's blocks of 8 columns. A two-thread context runs the groups of a
 * step on the pool.
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "core/kabi.h"
#include "rfjit.h"
#include "runtime/ctx.h"
#include "runtime/decode_step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, L = 53, P1 = 19, NS = 13, D = 16, DV = 40 };

typedef struct bufs {
    int dt;
    size_t es;
    char *q, *k, *v, *out;
    float *full[B];
    int H, Hkv;
} bufs;

static void fill_dt(char *dst, size_t n, double scale, unsigned seed, int dt)
{
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        const float x = (float)(scale * ((double)rand() / RAND_MAX - 0.5) * 2);
        if (dt == RFJIT_F32) {
            memcpy(dst + 4 * i, &x, 4);
        } else {
            const uint16_t h = dt == RFJIT_F16 ? rj_f32_to_f16(x) : rj_f32_to_bf16(x);
            memcpy(dst + 2 * i, &h, 2);
        }
    }
}

static rfjit_tensor_ex view(void *data, int dt, int64_t b, int64_t h, int64_t l, int64_t c,
                            int64_t heads)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = data;
    t.dtype = dt;
    t.shape[0] = b;
    t.shape[1] = h;
    t.shape[2] = l;
    t.shape[3] = c;
    t.stride[0] = heads * L * c;
    t.stride[1] = L * c;
    t.stride[2] = c;
    t.stride[3] = 1;
    return t;
}

static rj_view rview(char *data, const bufs *u, int64_t heads, int64_t c, int64_t t)
{
    rj_view r = {0};
    r.data = data + (size_t)(t * c) * u->es;
    r.shape[0] = B;
    r.shape[1] = heads;
    r.shape[2] = 1;
    r.shape[3] = c;
    r.stride[0] = heads * L * c;
    r.stride[1] = L * c;
    r.stride[2] = c;
    r.stride[3] = 1;
    r.dtype = u->dt;
    r.esize = (int32_t)u->es;
    return r;
}

/* Slot e's causal reference: its tokens first .. L - 1 alone. */
static void reference(rfjit_plan *p, bufs *u, int e, int first)
{
    const size_t es = u->es;
    rfjit_tensor_ex q = view(u->q + (size_t)(e * u->H * L * D + first * D) * es, u->dt, 1, u->H,
                             L - first, D, u->H);
    rfjit_tensor_ex k = view(u->k + (size_t)(e * u->Hkv * L * D + first * D) * es, u->dt, 1, u->Hkv,
                             L - first, D, u->Hkv);
    rfjit_tensor_ex v = view(u->v + (size_t)(e * u->Hkv * L * DV + first * DV) * es, u->dt, 1,
                             u->Hkv, L - first, DV, u->Hkv);
    rfjit_tensor_ex o = view(u->full[e], RFJIT_F32, 1, u->H, L - first, DV, u->H);
    o.stride[0] = o.stride[1] = (L - first) * DV;
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &q;
    a.k = &k;
    a.v = &v;
    a.out = &o;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK);
}

/* Tokens t0 .. t0 + n - 1 of slot e through the causal kernel, continuing its states. */
static void prefill(rfjit_plan *p, bufs *u, float *st, int e, int t0, int n, int init)
{
    rj_kernel_fn fn;
    cr_assert_eq(rj_plan_kernel_for(p, u->dt, u->dt, &fn, NULL), RFJIT_OK);
    float *ws = rj_alloc_aligned((size_t)p->kp.ws_floats, sizeof(float));
    const int G = u->H / u->Hkv;
    const size_t es = u->es;
    for (int g = 0; g < u->Hkv; g++) {
        rj_kargs a = {0};
        a.q = u->q + (size_t)(((e * u->H + g * G) * L + t0) * D) * es;
        a.k = u->k + (size_t)(((e * u->Hkv + g) * L + t0) * D) * es;
        a.v = u->v + (size_t)(((e * u->Hkv + g) * L + t0) * DV) * es;
        a.out = u->out + (size_t)(((e * u->H + g * G) * L + t0) * DV) * es;
        a.pq = p->kpar;
        a.pk = p->kpar + p->kp.role_floats;
        a.ws = ws;
        a.st = st + g * p->kp.st_floats;
        a.lq = a.lk = n;
        a.sq = a.sk = D;
        a.sv = a.so = DV;
        a.flags = init ? RJ_KFLAG_INIT : 0;
        a.ng = G;
        a.sqh = L * D;
        a.soh = L * DV;
        fn(&a);
    }
    rj_free(ws);
}

static double out_at(const bufs *u, size_t i)
{
    return rj_dtype_load(u->out, (int64_t)i, u->dt);
}

/* Whether est has a frozen causal linear JIT plan (and so was checked). */
static int check_one(rfjit_ctx *c, const char *est, int dt, int H, int Hkv, int own_par)
{
    bufs u = {.dt = dt, .es = rj_dtype_size(dt), .H = H, .Hkv = Hkv};
    u.q = malloc(u.es * B * H * L * D);
    u.k = malloc(u.es * B * Hkv * L * D);
    u.v = malloc(u.es * B * Hkv * L * DV);
    u.out = calloc(u.es, B * H * L * DV);
    fill_dt(u.q, (size_t)B * H * L * D, 0.6, 11, dt);
    fill_dt(u.k, (size_t)B * Hkv * L * D, 0.6, 12, dt);
    fill_dt(u.v, (size_t)B * Hkv * L * DV, 1.0, 13, dt);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = 32;
    a.causal = 1;
    a.seed = 5;
    a.hybrid_signs = 3;
    /* a calibration sample freezes fitted estimators' parameters */
    float *cal = malloc(sizeof(float) * 64 * D);
    fill_dt((char *)cal, 64 * D, 0.6, 14, RFJIT_F32);
    rfjit_tensor tc = rfjit_tensor_contiguous(cal, 1, 1, 64, D);
    a.calib_q = &tc;
    a.calib_k = &tc;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s: %s", est, rfjit_ctx_last_error(c));
    if (!p->jit || p->kp.tmpl != RJ_TMPL_LINEAR || !p->frozen) {
        rfjit_plan_destroy(p);
        free(cal), free(u.q), free(u.k), free(u.v), free(u.out);
        return 0;
    }
    for (int e = 0; e < B; e++) {
        u.full[e] = calloc(sizeof(float), (size_t)H * L * DV);
        reference(p, &u, e, e == 0 ? 0 : P1);
    }
    const int64_t sf = p->kp.st_floats * Hkv;
    float *st = rj_alloc_aligned((size_t)(B * sf), sizeof(float));
    float *sts[B] = {st, st + sf};
    float *par1 = malloc(sizeof(float) * 2 * (size_t)p->kp.role_floats);
    memcpy(par1, p->kpar, sizeof(float) * 2 * (size_t)p->kp.role_floats);
    const float *kpar[B] = {p->kpar, par1};
    prefill(p, &u, sts[0], 0, 0, P1, 1);
    rj_step_ws *ws = NULL;
    for (int t = P1; t < P1 + NS; t++) {
        const uint8_t fresh[B] = {0, t == P1};
        rj_step s = {.n = B, .H = H, .Hkv = Hkv, .st = sts, .fresh = fresh};
        s.kpar = own_par ? kpar : NULL;
        s.q = rview(u.q, &u, H, D, t);
        s.k = rview(u.k, &u, Hkv, D, t);
        s.v = rview(u.v, &u, Hkv, DV, t);
        s.out = rview(u.out, &u, H, DV, t);
        int64_t bad = 0;
        /* the caller's scratch on even steps, the call's own on odd ones */
        rj_step_ws **keep = t % 2 ? NULL : &ws;
        cr_assert_eq(rj_decode_step_states_ws(p, &s, keep, &bad, NULL), RFJIT_OK);
        cr_assert_eq(bad, -1, "%s: row %lld not finite", est, (long long)bad);
    }
    for (int e = 0; e < B; e++)
        prefill(p, &u, sts[e], e, P1 + NS, L - P1 - NS, 0);
    const double ulp = dt == RFJIT_F32 ? 0 : dt == RFJIT_F16 ? 0x1p-11 : 0x1p-8;
    for (int e = 0; e < B; e++) {
        const int first = e == 0 ? 0 : P1, n = L - first;
        double err = 0, mx = 0;
        for (int h = 0; h < H; h++)
            for (int t = first; t < L; t++)
                for (int j = 0; j < DV; j++) {
                    const double f = u.full[e][((size_t)h * n + (size_t)(t - first)) * DV + j];
                    const double o = out_at(&u, (((size_t)e * H + h) * L + t) * DV + j);
                    err = fmax(err, fabs(o - f));
                    mx = fmax(mx, fabs(f));
                }
        cr_expect(err <= (1e-4 + ulp) * mx,
                  "%s dtype %d H %d Hkv %d own params %d slot %d: max |steps - causal| = %.3g "
                  "(max %.3g)",
                  est, dt, H, Hkv, own_par, e, err, mx);
        free(u.full[e]);
    }
    rj_step_ws_free(ws);
    rj_free(st);
    free(par1), free(cal), free(u.q), free(u.k), free(u.v), free(u.out);
    rfjit_plan_destroy(p);
    return 1;
}

Test(decode_step, prefill_steps_prefill_equal_causal, .timeout = 600)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.threads = 1;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    int checked = 0;
    for (int e = 0; rfjit_estimator_name(e); e++)
        for (int dt = RFJIT_F32; dt <= RFJIT_BF16; dt++) {
            checked += check_one(c, rfjit_estimator_name(e), dt, 4, 2, 0);
            checked += check_one(c, rfjit_estimator_name(e), dt, 2, 2, 1);
        }
    /* positive, trig, hyperbolic, hybrid, oprf, saderf, sderf, aderf; 3 dtypes; 2 layouts */
    cr_expect_geq(checked, 8 * 3 * 2, "only %d cases had a causal linear JIT plan", checked);
    rfjit_ctx_destroy(c);
    /* two threads: the step's B x Hkv = 32 groups spread over the pool */
    cd.threads = 2;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    cr_expect(check_one(c, "positive", RFJIT_F32, 32, 16, 0));
    cr_expect(check_one(c, "hybrid", RFJIT_BF16, 16, 16, 1));
    rfjit_ctx_destroy(c);
}
