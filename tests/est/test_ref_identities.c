/* SPDX-License-Identifier: MIT */
/*
 * This file checks the reference attention loops against identities that hold exactly:
 * causal and bidirectional linear attention equal the masked / unmasked quadratic form built
 * from explicit features (check C4), the EVA special cases (C3), and the Performer reference
 * tests with their published tolerances (C5).
 */
#include <criterion/criterion.h>

#include "est/est.h"
#include "philox.h"
#include "proj.h"
#include "ref/ref.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(ref_identities);

static void normals(double *x, int n, double scale, uint64_t seed)
{
    rj_normals(seed, RJ_STREAM_TEST, 0, x, (size_t)n);
    for (int i = 0; i < n; i++)
        x[i] *= scale;
}

/* Quadratic form: out_i = sum_{j in J(i)} k_ij v_j / sum k_ij with k_ij = phi_q(x_i).phi_k(y_j). */
static void quadratic(const rj_spec *s, const double *params, const double *x, const double *y,
                      const double *v, int L, double *out)
{
    int64_t M = s->est->feature_dim(s);
    double *fq = malloc(sizeof(double) * M), *fk = malloc(sizeof(double) * M);
    for (int i = 0; i < L; i++) {
        double hq, hk, den = 0;
        s->est->features(s, params, RJ_ROLE_Q, x + i * s->d, &hq, fq);
        for (int c = 0; c < s->dv; c++)
            out[i * s->dv + c] = 0;
        for (int j = 0; j < (s->causal ? i + 1 : L); j++) {
            s->est->features(s, params, RJ_ROLE_K, y + j * s->d, &hk, fk);
            double k = 0;
            for (int64_t r = 0; r < M; r++)
                k += fq[r] * fk[r];
            k *= exp(hq + hk);
            den += k;
            for (int c = 0; c < s->dv; c++)
                out[i * s->dv + c] += k * v[j * s->dv + c];
        }
        for (int c = 0; c < s->dv; c++)
            out[i * s->dv + c] /= den;
    }
    free(fq);
    free(fk);
}

Test(ref_identities, c4_linear_equals_quadratic_form)
{
    enum { L = 17, D = 6, DV = 3, M = 8 };
    const char *names[] = {"positive", "hyperbolic", "trig", "hybrid"};
    double x[L * D], y[L * D], v[L * DV], W[M * D], o1[L * DV], o2[L * DV];
    normals(x, L * D, 0.3, 1);
    normals(y, L * D, 0.3, 2);
    normals(v, L * DV, 1.0, 3);
    cr_assert_eq(rj_proj_draw(RFJIT_PROJ_ORTHOGONAL, 4, M, D, W, NULL), RFJIT_OK);
    for (size_t e = 0; e < sizeof names / sizeof *names; e++)
        for (int causal = 0; causal < 2; causal++) {
            rj_spec s = {rj_est_find(names[e]), D, DV, M, causal, RFJIT_PROJ_ORTHOGONAL, 0, 1,
                         3, 0};
            cr_assert_not_null(s.est);
            double *params = malloc(sizeof(double) * (s.est->params_size(&s) + 1));
            cr_assert_eq(s.est->fit(&s, W, 9, NULL, params, NULL, NULL), RFJIT_OK);
            cr_assert_eq(rj_ref_linear(&s, params, x, L, y, v, L, o1, NULL), RFJIT_OK);
            quadratic(&s, params, x, y, v, L, o2);
            for (int i = 0; i < L * DV; i++)
                cr_assert(fabs(o1[i] - o2[i]) <= 1e-10 * (1 + fabs(o2[i])),
                          "%s causal=%d [%d]: %.17g vs %.17g", names[e], causal, i, o1[i],
                          o2[i]);
            free(params);
        }
}

/* Runs EVA with window w and chunks C on one slice. */
static void eva(int L, int D, int w, int C, int causal, const double *x, const double *y,
                const double *v, double *out, double *eps)
{
    rj_spec s = {rj_est_find("eva"), D, D, 1, causal, 0, w, C, 1, 0};
    cr_assert_eq(s.est->fit(&s, NULL, 5, NULL, eps, NULL, NULL), RFJIT_OK);
    cr_assert_eq(rj_est_ref_attend(&s, eps, x, L, y, v, L, out, NULL), RFJIT_OK);
}

Test(ref_identities, c3_eva_special_cases)
{
    enum { L = 23, D = 5 };
    double x[L * D], y[L * D], v[L * D], o1[L * D], o2[L * D], eps[L * D];
    normals(x, L * D, 0.7, 11);
    normals(y, L * D, 0.7, 12);
    normals(v, L * D, 1.0, 13);
    for (int causal = 0; causal < 2; causal++) {
        rj_spec sm = {rj_est_find("exact"), D, D, 1, causal, 0, 0, 1, 1, 0};
        cr_assert_eq(rj_ref_softmax(&sm, x, L, y, v, L, o2, NULL), RFJIT_OK);
        /* chunk size 1 (C = L): every summary is one key, so EVA is exact softmax */
        eva(L, D, 4, L, causal, x, y, v, o1, eps);
        for (int i = 0; i < L * D; i++)
            cr_assert_float_eq(o1[i], o2[i], 1e-12, "chunk size 1, causal=%d [%d]", causal, i);
        /* a window covering the sequence: exact softmax */
        eva(L, D, L, 3, causal, x, y, v, o1, eps);
        for (int i = 0; i < L * D; i++)
            cr_assert_float_eq(o1[i], o2[i], 1e-12, "window >= L, causal=%d [%d]", causal, i);
    }
    /* no window, one chunk, bidirectional: every output is beta_1 = single-sample RFA with
     * proposal w = qbar + kbar + eps_0 */
    eva(L, D, 0, 1, 0, x, y, v, o1, eps);
    double w[D], beta[D] = {0}, Z = 0;
    for (int c = 0; c < D; c++) {
        double sq = 0, sk = 0;
        for (int j = 0; j < L; j++)
            sq += x[j * D + c], sk += y[j * D + c];
        w[c] = sq / L + sk / L + eps[c];
    }
    for (int j = 0; j < L; j++) {
        double a = 0, n2 = 0;
        for (int c = 0; c < D; c++)
            a += w[c] * y[j * D + c], n2 += y[j * D + c] * y[j * D + c];
        double xi = exp(a - n2 / 2);
        Z += xi;
        for (int c = 0; c < D; c++)
            beta[c] += xi * v[j * D + c];
    }
    for (int i = 0; i < L; i++)
        for (int c = 0; c < D; c++)
            cr_assert_float_eq(o1[i * D + c], beta[c] / Z, 1e-12, "RFA case (%d, %d)", i, c);
}

static rfjit_ctx *api_ctx(void)
{
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
    return ctx;
}

/* C5 (a), JAX unidirectional test: d = 1, q = k = 1, L = 3, v = (1, 0, 0), trig, m = 1e4:
 * outputs (1, 1/2, 1/3) within 0.02, iid and orthogonal. */
Test(ref_identities, c5a_jax_unidirectional_trig)
{
    rfjit_ctx *ctx = api_ctx();
    float q[3] = {1, 1, 1}, v[3] = {1, 0, 0}, o[3];
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, 3, 1);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, 3, 1);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, 3, 1);
    for (int proj = 0; proj < 2; proj++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = "trig", a.d = 1, a.m = 10000, a.causal = 1, a.seed = 42;
        a.projection = proj ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tq, &tv, &to), RFJIT_OK);
        for (int t = 0; t < 3; t++)
            cr_assert_float_eq(o[t], 1.0 / (t + 1), 0.02, "proj %d t %d: %g", proj, t, o[t]);
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
}

static void fill(float *x, int n, uint64_t seed)
{
    double *t = malloc(sizeof(double) * n);
    rj_normals(seed, RJ_STREAM_TEST, 7, t, (size_t)n);
    for (int i = 0; i < n; i++)
        x[i] = (float)t[i];
    free(t);
}

/* C5 (b), TF non-causal test: L = 1e4, d = 8, m = 1e3, q, k, v ~ N(0, 1):
 * max |FAVOR+ - exact| < 0.5. */
Test(ref_identities, c5b_tf_noncausal_positive, .timeout = 60)
{
    enum { L = 10000, D = 8 };
    rfjit_ctx *ctx = api_ctx();
    float *q = malloc(sizeof(float) * L * D), *k = malloc(sizeof(float) * L * D);
    float *v = malloc(sizeof(float) * L * D), *o1 = malloc(sizeof(float) * L * D);
    float *o2 = malloc(sizeof(float) * L * D);
    fill(q, L * D, 1), fill(k, L * D, 2), fill(v, L * D, 3);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor t1 = rfjit_tensor_contiguous(o1, 1, 1, L, D);
    rfjit_tensor t2 = rfjit_tensor_contiguous(o2, 1, 1, L, D);
    const char *names[2] = {"exact", "positive"};
    rfjit_tensor *outs[2] = {&t1, &t2};
    for (int e = 0; e < 2; e++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = names[e], a.d = D, a.m = 1000, a.seed = 5;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, outs[e]), RFJIT_OK);
        rfjit_plan_destroy(p);
    }
    double mx = 0;
    for (int i = 0; i < L * D; i++)
        mx = fmax(mx, fabs((double)o1[i] - o2[i]));
    cr_log_info("C5 (b): max |FAVOR+ - exact| = %.4f (bound 0.5)", mx);
    cr_assert_lt(mx, 0.5, "max abs error %g (seed 5)", mx);
    free(q), free(k), free(v), free(o1), free(o2);
    rfjit_ctx_destroy(ctx);
}

/* C5 (c), JAX bidirectional trig test: d = 8, m = 1e4, L = 2: max relative error < 0.33 (iid)
 * and < 2.0 (orthogonal). */
Test(ref_identities, c5c_jax_bidirectional_trig)
{
    enum { L = 2, D = 8 };
    rfjit_ctx *ctx = api_ctx();
    float q[L * D], k[L * D], v[L * D], o1[L * D], o2[L * D];
    fill(q, L * D, 21), fill(k, L * D, 22), fill(v, L * D, 23);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor t1 = rfjit_tensor_contiguous(o1, 1, 1, L, D);
    rfjit_tensor t2 = rfjit_tensor_contiguous(o2, 1, 1, L, D);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact", a.d = D;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &t1), RFJIT_OK);
    rfjit_plan_destroy(p);
    const double bound[2] = {2.0, 0.33};
    for (int proj = 0; proj < 2; proj++) {
        a.estimator = "trig", a.m = 10000, a.seed = 8;
        a.projection = proj ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &t2), RFJIT_OK);
        rfjit_plan_destroy(p);
        double mx = 0;
        for (int i = 0; i < L * D; i++)
            mx = fmax(mx, fabs((double)o2[i] - o1[i]) / fabs((double)o1[i]));
        cr_log_info("C5 (c) %s: max relative error %.4f (bound %.2f)", proj ? "iid" : "orth",
                    mx, bound[proj]);
        cr_assert_lt(mx, bound[proj], "max relative error %g", mx);
    }
    rfjit_ctx_destroy(ctx);
}
