/* SPDX-License-Identifier: MIT */
/*
 * This file checks the softmax scale (rfjit_attn_desc.scale, logits scale * q.k) through the
 * public API, for every estimator, on the reference and the JIT backend, bidirectional and
 * causal, at scale in {0.5, 1, 2} / sqrt(d):
 *   exact_naive    exact attention equals softmax(scale q k^T) v computed here in double, within
 *                  a float32 error bound derived below;
 *   jit_vs_ref     the JIT equals the reference within the estimator's ref_tol (as
 *                  tests/jit/test_jit_equiv.c);
 *   prescaled      scale s on (q, k) equals the default scale on (c q, c k), c^2 = s sqrt(d),
 *                  within ref_tol (the scale enters as sqrt(s) on each side, fits included);
 *   default_bits   scale = 1/sqrt(d) given explicitly is bit-identical to scale = 0;
 *   unbiased       the kernel estimate on the rows the plan scales (by its own input scale) is
 *                  unbiased for exp(s q.k): mean over 64 seeds within 5 sigma of it, sigma from
 *                  the estimator's closed-form variance (as tests/est/test_est_unbiased.c);
 *   bad            a scale < 0, NaN or infinite is RFJIT_E_INVALID_ARG naming it, no plan;
 *   tuner          rfjit_tune at 2/sqrt(d) picks a plan that meets its budget, carries the
 *                  scale to the plan, and keys its wisdom on it.
 */
#include <criterion/criterion.h>

#include "ctx_testutil.h"
#include "data_testutil.h"
#include "est/est.h"
#include "rfjit.h"
#include "runtime/ctx.h"
#include "runtime/plan_fit.h"
#include "tuner/tune.h"
#include "tuner/tune_record.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(scale);

enum { D = 16, DV = 8, L = 29, B = 1, H = 2 };

/* The three scales, as multiples of 1/sqrt(d). */
static const double factors[3] = {0.5, 1.0, 2.0};

static int fitted(const char *est)
{
    const rj_est_ops *e = rj_est_find(est);
    return e && (e->flags & RJ_EST_FITTED);
}

typedef struct data {
    float q[B * H * L * D], k[B * H * L * D], v[B * H * L * DV];
    rfjit_tensor tq, tk, tv;
} data;

static void data_init(data *x, double qk_sd, uint64_t seed)
{
    tu_fill_normal(x->q, sizeof x->q / sizeof *x->q, qk_sd, seed);
    tu_fill_normal(x->k, sizeof x->k / sizeof *x->k, qk_sd, seed + 1);
    tu_fill_normal(x->v, sizeof x->v / sizeof *x->v, 1.0, seed + 2);
    x->tq = rfjit_tensor_contiguous(x->q, B, H, L, D);
    x->tk = rfjit_tensor_contiguous(x->k, B, H, L, D);
    x->tv = rfjit_tensor_contiguous(x->v, B, H, L, DV);
}

static rfjit_attn_desc desc_of(const char *est, int causal, double scale, int backend,
                               const data *calib)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = 64;
    a.causal = causal;
    a.seed = 7;
    a.scale = scale;
    a.backend = backend;
    if (causal && fitted(est)) {
        a.calib_q = &calib->tq;
        a.calib_k = &calib->tk;
    }
    return a;
}

static void run(rfjit_ctx *c, const rfjit_attn_desc *a, const data *x, float *out)
{
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, a, &p), RFJIT_OK, "%s causal=%d scale=%g backend=%d: %s",
                 a->estimator, a->causal, a->scale, a->backend, rfjit_ctx_last_error(c));
    rfjit_tensor to = rfjit_tensor_contiguous(out, B, H, L, DV);
    cr_assert_eq(rfjit_plan_execute(p, &x->tq, &x->tk, &x->tv, &to), RFJIT_OK, "%s: %s",
                 a->estimator, rfjit_ctx_last_error(c));
    rfjit_plan_destroy(p);
}

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i]));
    return m;
}

/* max |a - b| / max |b| (infinite if anything is not finite) */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        num = fmax(num, fabs((double)a[i] - b[i]));
    }
    const double den = max_abs(b, n);
    return den > 0 ? num / den : num;
}

#define NOUT ((size_t)B * H * L * DV)

/* softmax(s q k^T) v per (batch, head) in double, causal: query i sees keys j <= i. Also
 * G = max over visible pairs of s sum_a |q_a k_a| and the largest |logit|. */
static void naive(const data *x, double s, int causal, double *out, double *G, double *lmax)
{
    *G = 0;
    *lmax = 0;
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < L; i++) {
            const float *qi = x->q + ((size_t)bh * L + (size_t)i) * D;
            double lg[L], mx = -INFINITY;
            const int nj = causal ? i + 1 : L;
            for (int j = 0; j < nj; j++) {
                const float *kj = x->k + ((size_t)bh * L + (size_t)j) * D;
                double dot = 0, g = 0;
                for (int a = 0; a < D; a++) {
                    dot += (double)qi[a] * kj[a];
                    g += fabs((double)qi[a] * kj[a]);
                }
                lg[j] = s * dot;
                *G = fmax(*G, s * g);
                *lmax = fmax(*lmax, fabs(lg[j]));
                mx = fmax(mx, lg[j]);
            }
            double den = 0, num[DV] = {0};
            for (int j = 0; j < nj; j++) {
                const double w = exp(lg[j] - mx);
                den += w;
                for (int a = 0; a < DV; a++)
                    num[a] += w * x->v[((size_t)bh * L + (size_t)j) * DV + (size_t)a];
            }
            for (int a = 0; a < DV; a++)
                out[((size_t)bh * L + (size_t)i) * DV + (size_t)a] = num[a] / den;
        }
}

/*
 * Float32 bound on |exact attention - naive|, u = 2^-24: the rows scaled by the float
 * sqrt(s) and the d-term dot product in float move a logit by at most (d + 4) u G; subtracting
 * the running max adds u |logit|max; exp adds 1.5e-7 relative (tests/jit/test_ir_math.c), once
 * per weight and once per rescale of the running sums (at most L of them). A weight's relative
 * error delta moves a normalised average of v by at most 2 delta max|v|, and the sums of at
 * most L terms (numerator and denominator) add 2 (L + 1) u max|v|.
 */
static double exact_bound(double G, double lmax, double vmax)
{
    const double u = 0x1p-24, e_exp = 1.5e-7;
    const double delta = (D + 4) * u * G + u * lmax + (L + 1) * e_exp;
    return vmax * (2 * delta + 2 * (L + 1) * u);
}

Test(scale, exact_naive, .timeout = 120)
{
    rfjit_ctx *c = tu_ctx_isolated();
    data x;
    data_init(&x, 0.7, 31);
    double ref[NOUT];
    float got[NOUT];
    double vmax = 0;
    for (size_t i = 0; i < B * H * L * DV; i++)
        vmax = fmax(vmax, fabs((double)x.v[i]));
    for (int f = 0; f < 3; f++)
        for (int causal = 0; causal < 2; causal++)
            for (int be = 0; be < 2; be++) {
                const double s = factors[f] / sqrt((double)D);
                double G, lmax;
                naive(&x, s, causal, ref, &G, &lmax);
                const int backend = be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE;
                rfjit_attn_desc a = desc_of("exact", causal, s, backend, &x);
                run(c, &a, &x, got);
                double worst = 0;
                for (size_t i = 0; i < NOUT; i++)
                    worst = fmax(worst, fabs((double)got[i] - ref[i]));
                const double tol = exact_bound(G, lmax, vmax);
                cr_expect(worst <= tol,
                          "exact %s causal=%d scale=%g/sqrt(d): max|out - naive| = %.3g > %.3g",
                          be ? "jit" : "reference", causal, factors[f], worst, tol);
            }
    rfjit_ctx_destroy(c);
}

Test(scale, jit_vs_ref, .timeout = 600)
{
    rfjit_ctx *c = tu_ctx_isolated();
    data x;
    data_init(&x, 0.5, 11);
    float ref[NOUT], jit[NOUT];
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *est = rfjit_estimator_name(e);
        const double tol = rj_est_find(est)->ref_tol;
        for (int f = 0; f < 3; f++)
            for (int causal = 0; causal < 2; causal++) {
                const double s = factors[f] / sqrt((double)D);
                rfjit_attn_desc a = desc_of(est, causal, s, RFJIT_BACKEND_REFERENCE, &x);
                run(c, &a, &x, ref);
                a.backend = RFJIT_BACKEND_JIT;
                run(c, &a, &x, jit);
                const double err = rel_err(jit, ref, NOUT);
                cr_expect(err <= tol,
                          "%s causal=%d scale=%g/sqrt(d): max|jit-ref|/max|ref| = %.3g > %.0e", est,
                          causal, factors[f], err, tol);
            }
    }
    rfjit_ctx_destroy(c);
}

/* The same computation reached two ways: the scale inside, or the rows pre-multiplied so
 * that the default scale gives the same logits. Only the float rounding of the pre-multiplied
 * rows differs, far below ref_tol. */
Test(scale, prescaled, .timeout = 300)
{
    rfjit_ctx *c = tu_ctx_isolated();
    data x, y;
    data_init(&x, 0.5, 17);
    float a_out[NOUT], b_out[NOUT];
    for (int f = 0; f < 3; f += 2) {
        const double s = factors[f] / sqrt((double)D), cf = sqrt(factors[f]);
        y = x;
        for (size_t i = 0; i < sizeof y.q / sizeof *y.q; i++) {
            y.q[i] = (float)(cf * x.q[i]);
            y.k[i] = (float)(cf * x.k[i]);
        }
        y.tq = rfjit_tensor_contiguous(y.q, B, H, L, D);
        y.tk = rfjit_tensor_contiguous(y.k, B, H, L, D);
        y.tv = rfjit_tensor_contiguous(y.v, B, H, L, DV);
        for (int e = 0; rfjit_estimator_name(e); e++) {
            const char *est = rfjit_estimator_name(e);
            const double tol = rj_est_find(est)->ref_tol;
            for (int causal = 0; causal < 2; causal++) {
                rfjit_attn_desc a = desc_of(est, causal, s, RFJIT_BACKEND_REFERENCE, &x);
                run(c, &a, &x, a_out);
                rfjit_attn_desc b = desc_of(est, causal, 0, RFJIT_BACKEND_REFERENCE, &y);
                run(c, &b, &y, b_out);
                const double err = rel_err(a_out, b_out, NOUT);
                cr_expect(err <= tol,
                          "%s causal=%d: scale %g/sqrt(d) on (q, k) vs the default on "
                          "sqrt(%g) (q, k): %.3g > %.0e",
                          est, causal, factors[f], factors[f], err, tol);
            }
        }
    }
    rfjit_ctx_destroy(c);
}

Test(scale, default_bits, .timeout = 300)
{
    rfjit_ctx *c = tu_ctx_isolated();
    data x;
    data_init(&x, 0.5, 23);
    float a_out[NOUT], b_out[NOUT];
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *est = rfjit_estimator_name(e);
        for (int causal = 0; causal < 2; causal++)
            for (int be = 0; be < 2; be++) {
                const int backend = be ? RFJIT_BACKEND_JIT : RFJIT_BACKEND_REFERENCE;
                rfjit_attn_desc a = desc_of(est, causal, 0, backend, &x);
                run(c, &a, &x, a_out);
                a.scale = 1 / sqrt((double)D);
                run(c, &a, &x, b_out);
                cr_expect(memcmp(a_out, b_out, sizeof a_out) == 0,
                          "%s causal=%d %s: scale 1/sqrt(d) differs from scale 0", est, causal,
                          be ? "jit" : "reference");
            }
    }
    rfjit_ctx_destroy(c);
}

enum { NX = 4, NY = 4, MU = 64, SEEDS = 64 };

/* Rows of norm `norm` after the plan's scaling: raw rows normalised to norm / sqrt(s). */
static void unit_rows(float *r, int n, double norm, double s, uint64_t seed)
{
    tu_fill_normal(r, (size_t)n * D, 1.0, seed);
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int a = 0; a < D; a++)
            nn += (double)r[i * D + a] * r[i * D + a];
        for (int a = 0; a < D; a++)
            r[i * D + a] = (float)(r[i * D + a] * norm / sqrt(s * nn));
    }
}

/*
 * Norms 0.6 after scaling keep |x + y|^2 <= 1.44, so a positive-feature term's relative
 * variance e^{|x + y|^2} - 1 <= 3.3, well inside the e^2 - 1 that test_est_unbiased.c shows
 * is safe for a 5-sigma rule on the mean of 64 x 64 terms; trig features are bounded.
 */
static void unbiased_one(rfjit_ctx *c, const char *est, double s)
{
    float q[NX * D], k[NY * D], xs[NX * D], ys[NY * D], K[NX * NY];
    unit_rows(q, NX, 0.6, s, 101);
    unit_rows(k, NY, 0.6, s, 202);
    double sum[NX * NY] = {0}, var[NX * NY] = {0};
    for (int t = 0; t < SEEDS; t++) {
        rfjit_attn_desc a = desc_of(est, 0, s, RFJIT_BACKEND_REFERENCE, NULL);
        a.m = MU;
        a.projection = RFJIT_PROJ_IID;
        a.seed = 9000 + (uint64_t)t;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s: %s", est,
                     rfjit_ctx_last_error(c));
        /* the rows the plan's attention would see, scaled by its own input scale */
        const double in = rj_plan_input_scale(&p->spec);
        cr_assert(fabs(in * in / s - 1) < 1e-15, "%s: input scale %.17g^2 != %.17g", est, in, s);
        for (int i = 0; i < NX * D; i++)
            xs[i] = (float)(q[i] * in);
        for (int i = 0; i < NY * D; i++)
            ys[i] = (float)(k[i] * in);
        rfjit_tensor tx = rfjit_tensor_contiguous(xs, 1, 1, NX, D);
        rfjit_tensor ty = rfjit_tensor_contiguous(ys, 1, 1, NY, D);
        rfjit_tensor to = rfjit_tensor_contiguous(K, 1, 1, NX, NY);
        cr_assert_eq(rfjit_plan_kernel(p, &tx, &ty, RFJIT_KERNEL_SOFTMAX, &to), RFJIT_OK, "%s: %s",
                     est, rfjit_ctx_last_error(c));
        for (int i = 0; i < NX; i++)
            for (int j = 0; j < NY; j++) {
                double x[D], y[D];
                for (int a2 = 0; a2 < D; a2++) {
                    x[a2] = xs[i * D + a2];
                    y[a2] = ys[j * D + a2];
                }
                sum[i * NY + j] += K[i * NY + j];
                var[i * NY + j] += p->spec.est->variance(&p->spec, p->params, x, y);
            }
        rfjit_plan_destroy(p);
    }
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NY; j++) {
            double dot = 0;
            for (int a2 = 0; a2 < D; a2++)
                dot += (double)q[i * D + a2] * k[j * D + a2];
            const double want = exp(s * dot), mean = sum[i * NY + j] / SEEDS;
            const double sigma = sqrt(var[i * NY + j] / SEEDS / SEEDS);
            cr_expect(fabs(mean - want) <= 5 * sigma + 1e-6 * want,
                      "%s scale=%g: pair (%d, %d) mean %.6g vs exp(s q.k) = %.6g, 5 sigma = %.3g",
                      est, s * sqrt((double)D), i, j, mean, want, 5 * sigma);
        }
}

Test(scale, unbiased, .timeout = 300)
{
    rfjit_ctx *c = tu_ctx_isolated();
    static const char *const ests[] = {"positive", "hyperbolic", "trig"};
    for (size_t e = 0; e < sizeof ests / sizeof *ests; e++)
        for (int f = 0; f < 3; f += 2)
            unbiased_one(c, ests[e], factors[f] / sqrt((double)D));
    rfjit_ctx_destroy(c);
}

Test(scale, bad)
{
    rfjit_ctx *c = tu_ctx_isolated();
    static const double bad[] = {-1.0, NAN, INFINITY, -INFINITY, -0x1p-1074};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rfjit_attn_desc a = desc_of("positive", 0, bad[i], RFJIT_BACKEND_AUTO, NULL);
        rfjit_plan *p = NULL;
        cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_E_INVALID_ARG, "scale %g", bad[i]);
        cr_expect_null(p, "scale %g: a plan was returned", bad[i]);
        cr_expect(strstr(rfjit_ctx_last_error(c), "scale") != NULL,
                  "scale %g: the message does not name the scale: %s", bad[i],
                  rfjit_ctx_last_error(c));
        rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
        t.d = D;
        t.L = 64;
        t.scale = bad[i];
        rfjit_tune_result *r = NULL;
        cr_expect_eq(rfjit_tune(c, &t, &r), RFJIT_E_INVALID_ARG, "tune scale %g", bad[i]);
        cr_expect_null(r);
        cr_expect(strstr(rfjit_ctx_last_error(c), "scale") != NULL, "%s", rfjit_ctx_last_error(c));
    }
    rfjit_ctx_destroy(c);
}

Test(scale, describe)
{
    rfjit_ctx *c = tu_ctx_isolated();
    rfjit_attn_desc a = desc_of("positive", 0, 0.375, RFJIT_BACKEND_REFERENCE, NULL);
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    char buf[1024];
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, " scale=0.375 ") != NULL, "%s", buf);
    rfjit_plan_destroy(p);
    a.scale = 0;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    cr_assert_eq(rfjit_plan_describe(p, buf, sizeof buf), RFJIT_OK);
    cr_expect(strstr(buf, " scale=0.25 ") != NULL, "the default at d = 16 is 1/4: %s", buf);
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
}

/* Keys with a scale parse; a key without one means the default; a bad one is refused. */
Test(scale, wisdom_key)
{
    rj_tune_row row;
    rj_diag dg = {{0}};
    const char *val = "est=positive m=64 vw=8 T=16 ri=4 rj=2 predicted=1e-03 measured=1e-03 "
                      "bound=2e-03 ms=1 seed=5";
    static const char *const scales[] = {".scale5.00000000000000000e-01",
                                         "",
                                         ".scale-5.00000000000000000e-01",
                                         ".scaleinf",
                                         ".scale0",
                                         ".scale"};
    for (size_t i = 0; i < sizeof scales / sizeof *scales; i++) {
        char key[160];
        snprintf(key, sizeof key, "tune.output.bidir.d16.dv16%s.L1024.b1.0000e-02.syn1.cand%x",
                 scales[i], (1u << rj_est_count) - 1);
        const rfjit_status want = i < 2 ? RFJIT_OK : RFJIT_E_WISDOM_FORMAT;
        cr_expect_eq(rj_tune_record_check(key, val, 8, &row, &dg), want, "%s: %s", key, dg.msg);
    }
}

Test(scale, tuner, .timeout = 600)
{
    rfjit_ctx *c = tu_ctx_isolated();
    const double s = 2 / sqrt((double)D);
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = D;
    t.dv = D;
    t.L = 1024;
    t.budget = 1e-2;
    t.seed = 5;
    t.estimators = "positive,trig";
    t.synthetic_profile = RFJIT_PROFILE_GAUSSIAN; /* where random features meet 1e-2 */
    t.scale = s;
    rfjit_tune_result *r = NULL;
    cr_assert_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_row chosen = {0};
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        cr_assert_eq(rfjit_tune_result_row(r, i, &row), RFJIT_OK);
        if (row.chosen)
            chosen = row;
    }
    cr_assert_not_null(chosen.estimator);
    cr_expect(chosen.meets_budget && chosen.measured_error <= t.budget,
              "chosen %s m=%d: measured %.3g, bound %.3g, budget %.3g", chosen.estimator, chosen.m,
              chosen.measured_error, chosen.error_bound, t.budget);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    cr_assert_eq(rfjit_tune_result_plan(r, &a), RFJIT_OK);
    cr_expect_eq(a.scale, s, "the plan's scale %.17g, not the tuner's %.17g", a.scale, s);
    rfjit_tune_result_destroy(r);

    /* the calibration rows and the error measure follow the scale: the exact output of the
     * synthetic set at scale s, as the tuner computes it, is attention at s */
    rj_tune_req req = {
        .d = D, .dv = D, .L = 1024, .budget = 1e-2, .seed = 5, .scale = 1.0, .attn_scale = s};
    rj_calib cal;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_calib_make(c, &req, &cal, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(fabs(cal.xscale * cal.xscale / s - 1) < 1e-15, "calibration scale %.17g", cal.xscale);
    rj_calib_free(&cal);

    /* the record is keyed on the scale: the same request is answered from wisdom, the
     * default scale is another problem */
    char *text = NULL;
    cr_assert_eq(rfjit_wisdom_to_string(c, &text), RFJIT_OK);
    cr_expect(strstr(text, ".scale5.00000000000000000e-01.") != NULL, "%s", text);
    rfjit_free(text);
    t.patience = RFJIT_PATIENCE_WISDOM_ONLY;
    cr_expect_eq(rfjit_tune(c, &t, &r), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
    rfjit_tune_result_destroy(r);
    t.scale = 0;
    cr_expect_eq(rfjit_tune(c, &t, &r), RFJIT_E_NO_WISDOM);
    rfjit_ctx_destroy(c);
}
