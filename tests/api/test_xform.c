/* SPDX-License-Identifier: MIT */
/*
 * This file checks rfjit_attn_desc.transform (rfjit.h RFJIT_XFORM_*) through the public API:
 *   - exact attention is unchanged by every transform, to float rounding, whatever the
 *     layout (causal, key mask, lengths, grouped-query heads, packed sequences);
 *   - a random-feature plan with a transform computes the estimate of the transformed
 *     problem: key centring and balancing equal the untransformed plan run on rows the test
 *     transforms itself, and query centring equals the double-precision estimate
 *     sum_j phi(x_i - xbar).phi(y_j) e^{xbar.y_j} v_j / sum_j (...), computed here from the
 *     plan's own feature maps (rfjit_plan_features);
 *   - the JIT and the reference agree on every transform and layout (the JIT folds the key
 *     weights into each (sequence, key/value head)'s parameters, the reference into each
 *     key's log-scale), and masked keys take no part in the means or the scales;
 *   - bad flags and the estimators that cannot centre their queries are refused.
 * Inputs are seeded (tu_fill_normal) with a shared mean component, as real heads have.
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "ctx_testutil.h"
#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    ctx = tu_ctx_isolated();
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(xform, .init = setup, .fini = teardown);

enum { D = 8, M = 64, L = 40, B = 2, H = 4, HKV = 2 };

static const int32_t ALL = RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_BALANCE;

/* n rows of d: a per-row N(0, s^2) part plus a mean row shared by all (norm about 1.5 after
 * the d^-1/4 scaling), so that centring has something to remove. */
static void fill_rows(float *x, int64_t n, uint64_t seed, double s)
{
    float mean[D];
    tu_fill_normal(mean, D, 0.9, seed ^ 0x5eed);
    tu_fill_normal(x, (size_t)(n * D), s, seed);
    for (int64_t i = 0; i < n * D; i++)
        x[i] += mean[i % D];
}

static rfjit_plan *plan_of(const char *est, int causal, int backend, int32_t xf)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.estimator = est;
    a.causal = causal;
    a.backend = backend;
    a.seed = 11;
    a.transform = xf;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s causal %d transform %d: %s", est,
                 causal, xf, rfjit_ctx_last_error(ctx));
    return p;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static double max_diff(const float *x, const float *y, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i] - y[i]));
    return m;
}

/* One (L, D) head: q, k, v and the output. */
static void run1(rfjit_plan *p, const float *q, const float *k, const float *v, float *o)
{
    rfjit_tensor tq = rfjit_tensor_contiguous((float *)q, 1, 1, L, D),
                 tk = rfjit_tensor_contiguous((float *)k, 1, 1, L, D),
                 tv = rfjit_tensor_contiguous((float *)v, 1, 1, L, D),
                 to = rfjit_tensor_contiguous(o, 1, 1, L, D);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
}

static const int32_t FLAG_SETS[] = {RFJIT_XFORM_CENTER_K,
                                    RFJIT_XFORM_CENTER_Q,
                                    RFJIT_XFORM_BALANCE,
                                    RFJIT_XFORM_CENTER_K | RFJIT_XFORM_BALANCE,
                                    ALL,
                                    RFJIT_XFORM_WHITEN,
                                    RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q |
                                        RFJIT_XFORM_WHITEN};
enum { NSETS = sizeof FLAG_SETS / sizeof *FLAG_SETS };

/* Softmax cancels a per-query constant and A x . A^-1 y = x.y: only the rounding of the
 * float32 transformed rows (|x| |y| 2^-24 per logit, a few 1e-7 here) can move the output. */
Test(xform, exact_attention_is_unchanged)
{
    float q[L * D], k[L * D], v[L * D], o0[L * D], o1[L * D];
    fill_rows(q, L, 1, 0.8);
    fill_rows(k, L, 2, 0.8);
    tu_fill_normal(v, L * D, 1.0, 3);
    for (int causal = 0; causal < 2; causal++)
        for (int be = RFJIT_BACKEND_REFERENCE; be <= RFJIT_BACKEND_JIT; be++) {
            rfjit_plan *p0 = plan_of("exact", causal, be, 0);
            run1(p0, q, k, v, o0);
            for (int s = 0; s < NSETS; s++) {
                rfjit_plan *p1 = plan_of("exact", causal, be, FLAG_SETS[s]);
                run1(p1, q, k, v, o1);
                const double err = max_diff(o0, o1, L * D) / max_abs(o0, L * D);
                cr_expect_lt(err, 1e-5, "causal %d backend %d transform %d: %g", causal, be,
                             FLAG_SETS[s], err);
                rfjit_plan_destroy(p1);
            }
            rfjit_plan_destroy(p0);
        }
}

/* Key centring and balancing of one head as the library does them (rfjit.h), into kq, kk. */
static void transform_by_hand(const float *q, const float *k, int32_t xf, float *tq, float *tk)
{
    double qm[D] = {0}, km[D] = {0}, q2[D] = {0}, k2[D] = {0}, a[D];
    for (int64_t j = 0; j < L; j++)
        for (int i = 0; i < D; i++)
            km[i] += (xf & RFJIT_XFORM_CENTER_K) ? k[j * D + i] / (double)L : 0;
    for (int64_t j = 0; j < L; j++)
        for (int i = 0; i < D; i++) {
            q2[i] += (q[j * D + i] - qm[i]) * (q[j * D + i] - qm[i]);
            k2[i] += (k[j * D + i] - km[i]) * (k[j * D + i] - km[i]);
        }
    for (int i = 0; i < D; i++)
        a[i] = (xf & RFJIT_XFORM_BALANCE) ? sqrt(sqrt(k2[i] / q2[i])) : 1;
    for (int64_t j = 0; j < L * D; j++) {
        tq[j] = (float)((q[j] - qm[j % D]) * a[j % D]);
        tk[j] = (float)((k[j] - km[j % D]) / a[j % D]);
    }
}

/* A transformed plan's estimate is its untransformed twin's on the transformed rows: the
 * same projection, so the same numbers up to the rounding of the rows (and the JIT's float
 * accumulation against itself: identical order, so far below ref_tol). */
Test(xform, key_centring_and_balance_estimate_the_transformed_problem)
{
    float q[L * D], k[L * D], v[L * D], tq[L * D], tk[L * D], o0[L * D], o1[L * D];
    fill_rows(q, L, 4, 0.7);
    fill_rows(k, L, 5, 0.5);
    tu_fill_normal(v, L * D, 1.0, 6);
    const int32_t sets[] = {RFJIT_XFORM_CENTER_K, RFJIT_XFORM_BALANCE,
                            RFJIT_XFORM_CENTER_K | RFJIT_XFORM_BALANCE};
    const char *ests[] = {"positive", "hyperbolic", "trig"};
    for (int e = 0; e < 3; e++)
        for (int be = RFJIT_BACKEND_REFERENCE; be <= RFJIT_BACKEND_JIT; be++)
            for (int s = 0; s < 3; s++) {
                transform_by_hand(q, k, sets[s], tq, tk);
                rfjit_plan *p0 = plan_of(ests[e], 0, be, 0), *p1 = plan_of(ests[e], 0, be, sets[s]);
                run1(p0, tq, tk, v, o0);
                run1(p1, q, k, v, o1);
                const double err = max_diff(o0, o1, L * D) / max_abs(o0, L * D);
                cr_expect_lt(err, 1e-4, "%s backend %d transform %d: %g", ests[e], be, sets[s],
                             err);
                rfjit_plan_destroy(p0);
                rfjit_plan_destroy(p1);
            }
}

/* Query centring through the kernel: the output against the double-precision estimate of
 * the transformed problem built from the plan's own features, phi(x - xbar).phi(y) e^{xbar.y}
 * (x = q d^-1/4, y = k d^-1/4). Both sides are the same estimator on the same projection,
 * so they differ by the float32 accumulation (positive's ref_tol, 1e-4) on the JIT and by
 * rounding on the reference. */
static void centred_reference(rfjit_plan *p, const float *q, const float *k, const float *v,
                              double *out)
{
    const double s = pow(D, -0.25);
    const int64_t Mf = rfjit_plan_feature_dim(p);
    float x[L * D], y[L * D];
    double xbar[D] = {0};
    for (int64_t j = 0; j < L * D; j++)
        xbar[j % D] += q[j] * s / L;
    for (int64_t j = 0; j < L * D; j++) {
        x[j] = (float)(q[j] * s - xbar[j % D]);
        y[j] = (float)(k[j] * s);
    }
    float *fx = malloc(sizeof(float) * (size_t)(L * Mf)),
          *fy = malloc(sizeof(float) * (size_t)(L * Mf));
    cr_assert(fx && fy);
    rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, L, D),
                 ty = rfjit_tensor_contiguous(y, 1, 1, L, D),
                 tfx = rfjit_tensor_contiguous(fx, 1, 1, L, Mf),
                 tfy = rfjit_tensor_contiguous(fy, 1, 1, L, Mf);
    cr_assert_eq(rfjit_plan_features(p, &tx, &ty, &tfx, &tfy), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    for (int64_t i = 0; i < L; i++) {
        double num[D] = {0}, den = 0;
        for (int64_t j = 0; j < L; j++) {
            double w = 0, xy = 0;
            for (int64_t r = 0; r < Mf; r++)
                w += (double)fx[i * Mf + r] * fy[j * Mf + r];
            for (int c = 0; c < D; c++)
                xy += xbar[c] * y[j * D + c];
            w *= exp(xy);
            den += w;
            for (int c = 0; c < D; c++)
                num[c] += w * v[j * D + c];
        }
        for (int c = 0; c < D; c++)
            out[i * D + c] = num[c] / den;
    }
    free(fx);
    free(fy);
}

Test(xform, query_centring_keeps_each_key_weight_exactly)
{
    float q[L * D], k[L * D], v[L * D], o[L * D];
    double want[L * D];
    fill_rows(q, L, 7, 0.6);
    fill_rows(k, L, 8, 0.6);
    tu_fill_normal(v, L * D, 1.0, 9);
    const char *ests[] = {"positive", "hyperbolic"};
    for (int e = 0; e < 2; e++)
        for (int be = RFJIT_BACKEND_REFERENCE; be <= RFJIT_BACKEND_JIT; be++) {
            rfjit_plan *p = plan_of(ests[e], 0, be, RFJIT_XFORM_CENTER_Q);
            run1(p, q, k, v, o);
            centred_reference(p, q, k, v, want);
            double err = 0, top = 0;
            for (int64_t i = 0; i < L * D; i++) {
                err = fmax(err, fabs(o[i] - want[i]));
                top = fmax(top, fabs(want[i]));
            }
            cr_expect_lt(err / top, 1e-4, "%s backend %d: %g", ests[e], be, err / top);
            if (be == RFJIT_BACKEND_REFERENCE)
                cr_expect_lt(err / top, 1e-5, "%s reference: %g", ests[e], err / top);
            rfjit_plan_destroy(p);
        }
}

/* A batch of B sequences, H query heads on HKV key/value heads, with key lengths, query
 * lengths and a key mask, causal or not: out for plan p. */
typedef struct batch {
    float q[B * H * L * D], k[B * HKV * L * D], v[B * HKV * L * D];
    int32_t klen[B], qlen[B];
    uint8_t mask[B * L];
} batch;

static void batch_fill(batch *x, uint64_t seed)
{
    fill_rows(x->q, B * H * L, seed, 0.6);
    fill_rows(x->k, B * HKV * L, seed + 1, 0.6);
    tu_fill_normal(x->v, B * HKV * L * D, 1.0, seed + 2);
    x->klen[0] = L, x->klen[1] = L - 7;
    x->qlen[0] = L - 3, x->qlen[1] = L - 9; /* causal: lq <= lk */
    for (int64_t i = 0; i < B * L; i++)
        x->mask[i] = (uint8_t)(i % 5 != 2);
}

static void batch_run(rfjit_plan *p, const batch *x, int masked, float *out)
{
    rfjit_tensor tq = rfjit_tensor_contiguous((float *)x->q, B, H, L, D),
                 tk = rfjit_tensor_contiguous((float *)x->k, B, HKV, L, D),
                 tv = rfjit_tensor_contiguous((float *)x->v, B, HKV, L, D),
                 to = rfjit_tensor_contiguous(out, B, H, L, D);
    rfjit_tensor_ex eq = rfjit_tensor_ex_of(&tq), ek = rfjit_tensor_ex_of(&tk),
                    ev = rfjit_tensor_ex_of(&tv), eo = rfjit_tensor_ex_of(&to);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &eq, a.k = &ek, a.v = &ev, a.out = &eo;
    a.key_lengths = x->klen;
    a.query_lengths = x->qlen;
    a.key_mask = masked ? x->mask : NULL;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
}

enum { NOUT = B * H * L * D };

/* Every layout at once: exact unchanged, and the JIT equal to the reference (positive's
 * ref_tol) for each transform, so each (sequence, key/value head) got its own statistics and
 * its own folded parameters on every split of the JIT. */
Test(xform, causal_masks_lengths_and_grouped_heads)
{
    static batch x;
    static float o0[NOUT], o1[NOUT];
    batch_fill(&x, 21);
    for (int causal = 0; causal < 2; causal++)
        for (int masked = 0; masked < 2; masked++) {
            rfjit_plan *e0 = plan_of("exact", causal, RFJIT_BACKEND_JIT, 0),
                       *e1 = plan_of("exact", causal, RFJIT_BACKEND_JIT, ALL);
            batch_run(e0, &x, masked, o0);
            batch_run(e1, &x, masked, o1);
            cr_expect_lt(max_diff(o0, o1, NOUT) / max_abs(o0, NOUT), 1e-5,
                         "exact causal %d masked %d", causal, masked);
            rfjit_plan_destroy(e0);
            rfjit_plan_destroy(e1);
            for (int s = 0; s < NSETS; s++) {
                rfjit_plan *r = plan_of("positive", causal, RFJIT_BACKEND_REFERENCE, FLAG_SETS[s]),
                           *j = plan_of("positive", causal, RFJIT_BACKEND_JIT, FLAG_SETS[s]);
                batch_run(r, &x, masked, o0);
                batch_run(j, &x, masked, o1);
                const double err = max_diff(o0, o1, NOUT) / max_abs(o0, NOUT);
                cr_expect_lt(err, 1e-4, "causal %d masked %d transform %d: %g", causal, masked,
                             FLAG_SETS[s], err);
                rfjit_plan_destroy(r);
                rfjit_plan_destroy(j);
            }
        }
}

/* A masked key is in no mean and no scale: changing its row changes no output bit. */
Test(xform, masked_keys_take_no_part)
{
    static batch x;
    static float o0[NOUT], o1[NOUT];
    batch_fill(&x, 31);
    rfjit_plan *p = plan_of("positive", 0, RFJIT_BACKEND_JIT, ALL);
    batch_run(p, &x, 1, o0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < HKV; h++)
            for (int64_t j = 0; j < L; j++)
                if (!x.mask[b * L + j])
                    for (int c = 0; c < D; c++)
                        x.k[((b * HKV + h) * L + j) * D + c] += 25.0f;
    batch_run(p, &x, 1, o1);
    cr_expect_eq(memcmp(o0, o1, sizeof o0), 0, "a masked key moved the output");
    rfjit_plan_destroy(p);
}

/* Packed sequences: the statistics follow cu_seqlens, so the JIT and the reference agree. */
Test(xform, packed_sequences)
{
    enum { TOT = 2 * L };
    static float q[H * TOT * D], k[HKV * TOT * D], v[HKV * TOT * D], o0[H * TOT * D],
        o1[H * TOT * D];
    fill_rows(q, H * TOT, 41, 0.6);
    fill_rows(k, HKV * TOT, 42, 0.6);
    tu_fill_normal(v, HKV * TOT * D, 1.0, 43);
    const int32_t cu[3] = {0, L - 12, TOT};
    rfjit_tensor tq = {q, {1, H, TOT, D}, {0, D, H * D, 1}},
                 tk = {k, {1, HKV, TOT, D}, {0, D, HKV * D, 1}},
                 tv = {v, {1, HKV, TOT, D}, {0, D, HKV * D, 1}};
    float *outs[2] = {o0, o1};
    for (int be = 0; be < 2; be++) {
        rfjit_tensor to = {outs[be], {1, H, TOT, D}, {0, D, H * D, 1}};
        rfjit_tensor_ex eq = rfjit_tensor_ex_of(&tq), ek = rfjit_tensor_ex_of(&tk),
                        ev = rfjit_tensor_ex_of(&tv), eo = rfjit_tensor_ex_of(&to);
        rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
        a.q = &eq, a.k = &ek, a.v = &ev, a.out = &eo;
        a.cu_seqlens_q = a.cu_seqlens_k = cu;
        a.batch = 2;
        rfjit_plan *p = plan_of("positive", 1, be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE,
                                ALL);
        cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
    }
    const double err = max_diff(o0, o1, H * TOT * D) / max_abs(o0, H * TOT * D);
    cr_expect_lt(err, 1e-4, "%g", err);
}

/* A fitted estimator frozen on a calibration sample fits on the transformed sample, and a
 * sample fixes the whitening matrix; the JIT and the reference still compute one estimate.
 * Half inputs are transformed in float32. */
Test(xform, fitted_and_half_inputs)
{
    float q[L * D], k[L * D], v[L * D], o0[L * D], o1[L * D];
    fill_rows(q, L, 51, 0.6);
    fill_rows(k, L, 52, 0.6);
    tu_fill_normal(v, L * D, 1.0, 53);
    rfjit_tensor cq = rfjit_tensor_contiguous(q, 1, 1, L, D),
                 ck = rfjit_tensor_contiguous(k, 1, 1, L, D);
    const char *ests[] = {"oprf", "sderf", "positive", "exact"};
    const int32_t kqw = RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_WHITEN;
    for (int e = 0; e < 8; e++) {
        float *outs[2] = {o0, o1};
        for (int be = 0; be < 2; be++) {
            rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
            a.d = D, a.m = M, a.estimator = ests[e / 2], a.causal = 1, a.seed = 3;
            a.transform = e % 2 ? kqw : ALL; /* kqw: the sample fixes the whitening matrix */
            a.calib_q = &cq, a.calib_k = &ck;
            a.backend = be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE;
            rfjit_plan *p = NULL;
            cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
            run1(p, q, k, v, outs[be]);
            rfjit_plan_destroy(p);
        }
        const double err = max_diff(o0, o1, L * D) / max_abs(o0, L * D);
        cr_expect_lt(err, 1e-4, "%s transform %d: %g", ests[e / 2], e % 2 ? kqw : ALL, err);
    }
    /* f16 rows: the same plan on the f16 rounding of the rows, given as f32 */
    uint16_t hq[L * D], hk[L * D], hv[L * D];
    float rq[L * D], rk[L * D], rv[L * D];
    const float *src[3] = {q, k, v};
    uint16_t *dst[3] = {hq, hk, hv};
    float *back[3] = {rq, rk, rv};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < L * D; i++) {
            dst[t][i] = rj_f32_to_f16(src[t][i]);
            back[t][i] = rj_f16_to_f32(dst[t][i]);
        }
    rfjit_plan *p = plan_of("positive", 0, RFJIT_BACKEND_JIT, ALL);
    run1(p, rq, rk, rv, o0);
    rfjit_tensor_ex eq = RFJIT_TENSOR_EX_INIT, ek = RFJIT_TENSOR_EX_INIT, ev = RFJIT_TENSOR_EX_INIT;
    rfjit_tensor to = rfjit_tensor_contiguous(o1, 1, 1, L, D);
    rfjit_tensor_ex eo = rfjit_tensor_ex_of(&to);
    rfjit_tensor_ex *ins[3] = {&eq, &ek, &ev};
    for (int t = 0; t < 3; t++) {
        *ins[t] = (rfjit_tensor_ex)RFJIT_TENSOR_EX_INIT;
        ins[t]->data = dst[t];
        ins[t]->dtype = RFJIT_F16;
        const int64_t sh[4] = {1, 1, L, D}, st[4] = {0, 0, D, 1};
        memcpy(ins[t]->shape, sh, sizeof sh);
        memcpy(ins[t]->stride, st, sizeof st);
    }
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &eq, a.k = &ek, a.v = &ev, a.out = &eo;
    cr_assert_eq(rfjit_plan_execute_args(p, &a), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    const double err = max_diff(o0, o1, L * D) / max_abs(o0, L * D);
    cr_expect_lt(err, 1e-4, "f16: %g", err);
    rfjit_plan_destroy(p);
}

static void expect_refused(const char *est, const char *compat, int32_t xf, rfjit_status want,
                           const char *needle)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D, a.m = M, a.estimator = est, a.compat = compat, a.transform = xf;
    rfjit_plan *p = (rfjit_plan *)&a;
    const rfjit_status st = rfjit_plan_create(ctx, &a, &p);
    cr_expect_eq(st, want, "%s transform %d: %s", est, xf, rfjit_ctx_last_error(ctx));
    cr_expect_null(p);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), needle), "'%s' lacks '%s'",
              rfjit_ctx_last_error(ctx), needle);
}

Test(xform, bad_flags_and_estimators_are_refused)
{
    expect_refused("positive", NULL, 16, RFJIT_E_INVALID_ARG, "transform = 16 has unknown bits");
    expect_refused("positive", NULL, -1, RFJIT_E_INVALID_ARG, "unknown bits");
    expect_refused("trig", NULL, RFJIT_XFORM_CENTER_Q, RFJIT_E_NOT_APPLICABLE,
                   "estimator 'trig' does not have");
    expect_refused("hybrid", NULL, ALL, RFJIT_E_NOT_APPLICABLE, "estimator 'hybrid'");
    expect_refused("eva", NULL, RFJIT_XFORM_CENTER_Q, RFJIT_E_NOT_APPLICABLE, "estimator 'eva'");
    expect_refused("positive", "performer-pytorch", RFJIT_XFORM_CENTER_K, RFJIT_E_NOT_APPLICABLE,
                   "compat mode 'performer-pytorch'");
    /* what applies everywhere is accepted: exact, trig and eva take key centring and balance */
    const char *any[] = {"exact", "trig", "eva", "hybrid"};
    for (int i = 0; i < 4; i++) {
        rfjit_plan *p = plan_of(any[i], 0, RFJIT_BACKEND_AUTO,
                                RFJIT_XFORM_CENTER_K | RFJIT_XFORM_BALANCE);
        rfjit_plan_destroy(p);
    }
}

/* A decoder would not repeat the execute's transformed estimate: refused at creation. */
Test(xform, decoding_is_refused)
{
    rfjit_plan *p = plan_of("positive", 1, RFJIT_BACKEND_AUTO, RFJIT_XFORM_CENTER_K);
    rfjit_decode *dec = NULL;
    cr_expect_eq(rfjit_decode_create(p, 1, 1, &dec), RFJIT_E_NOT_APPLICABLE, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_expect_null(dec);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "rfjit_attn_desc.transform"), "%s",
              rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
}

/* The description names the transforms, which change the estimate. */
Test(xform, describe_names_them)
{
    rfjit_plan *p = plan_of("positive", 0, RFJIT_BACKEND_AUTO,
                            RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_WHITEN);
    char buf[1024];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, " transform=k,q,whiten "), "%s", buf);
    rfjit_plan_destroy(p);
    p = plan_of("positive", 0, RFJIT_BACKEND_AUTO, 0);
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(!strstr(buf, "transform"), "%s", buf);
    rfjit_plan_destroy(p);
}

/* A caller built before the field passes a shorter descriptor: no transform. */
Test(xform, older_descriptor_has_none)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D, a.m = M;
    a.size = offsetof(rfjit_attn_desc, transform);
    a.transform = 16; /* past the size: never read */
    rfjit_plan *p = NULL;
    cr_expect_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
}
