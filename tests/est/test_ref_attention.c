/* SPDX-License-Identifier: MIT */
/*
 * This file checks the reference attention loops (est/ref_linear.c, est/ref_softmax.c) and
 * the exact estimator: the causal and bidirectional linear attention equal the masked and
 * unmasked quadratic forms of explicit features (check C4); the log-domain stabilisation
 * (spec 1.4) gives the same outputs after the norms are pushed to ~350 (1e3 raw at d = 64)
 * where e^h over- or underflows; linearity in V, key permutation equivariance, the causal
 * prefix property (bitwise), convex outputs for positive features, the denominator guard of
 * ref.h, shapes, and the Performer reference tests C5 (a)-(c) with their published bounds.
 * Every case is deterministic (fixed seeds, printed on failure).
 */
#include <criterion/criterion.h>

#include "est/est.h"
#include "core/philox.h"
#include "core/proj.h"
#include "est/ref.h"
#include "ref_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(ref_attention);

/* The non-fitted linear estimators the loops are exercised with (the fitted ones need data
 * statistics and are covered by their own suites through the same loop). */
typedef struct lin_case {
    const char *name;
    int hrf_base;
} lin_case;

static const lin_case LIN_CASES[] = {
    {"positive", 0},
    {"hyperbolic", 0},
    {"trig", 0},
    {"hybrid", RFJIT_HYBRID_BASE_POSITIVE},
    {"hybrid", RFJIT_HYBRID_BASE_HYPERBOLIC},
};
#define N_LIN_CASES (sizeof LIN_CASES / sizeof LIN_CASES[0])

static rj_spec lin_spec(const lin_case *c, int d, int dv, int m, int causal)
{
    rj_spec s = rt_spec(c->name, d, dv, m, causal);
    s.hrf_base = c->hrf_base;
    return s;
}

static double *alloc_d(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof(double));
    cr_assert_not_null(p);
    return p;
}

/* Rows of unit-direction vectors with prescribed norms: row j = g_j / |g_j| * norm(j). */
static void rows_with_norms(double *x, int64_t n, int d, uint64_t seed, uint32_t row,
                            double lo, double hi)
{
    rt_normals(x, (size_t)n * d, 1.0, seed, row);
    for (int64_t j = 0; j < n; j++) {
        double nn = 0;
        for (int a = 0; a < d; a++)
            nn += x[j * d + a] * x[j * d + a];
        const double target = n > 1 ? lo + (hi - lo) * (double)j / (double)(n - 1) : lo;
        for (int a = 0; a < d; a++)
            x[j * d + a] *= target / sqrt(nn);
    }
}

/* How many times the running maximum of the keys' h rises after the first key: the causal
 * loop rescales its state that often, which C4 must exercise. */
static int running_max_rises(const rt_inst *e, const double *y, int64_t lk)
{
    const int64_t M = e->s.est->feature_dim(&e->s);
    double *f = alloc_d((size_t)M), h, c = -INFINITY;
    int rises = 0;
    for (int64_t j = 0; j < lk; j++) {
        e->s.est->features(&e->s, e->params, RJ_ROLE_K, y + j * e->s.d, &h, f);
        if (h > c && j > 0)
            rises++;
        c = fmax(c, h);
    }
    free(f);
    return rises;
}

/* C4: the one-pass loops equal the masked (causal) / unmasked quadratic form of explicit
 * features, tril(Q'K'^T) V / rowsum, to 1e-10 relative to max |reference|. Key norms ramp
 * from 0.1 to 1.4 so the causal running max rises many times. */
Test(ref_attention, c4_linear_equals_quadratic_form)
{
    enum { L = 29, LQ = 13, D = 6, DV = 3, M = 8 };
    double x[L * D], y[L * D], v[L * DV], o1[L * DV], o2[L * DV];
    rt_normals(x, L * D, 0.4, 1, 0);
    rows_with_norms(y, L, D, 2, 0, 0.1, 1.4);
    rt_normals(v, L * DV, 1.0, 3, 0);
    for (size_t e = 0; e < N_LIN_CASES; e++)
        for (int causal = 0; causal < 2; causal++)
            for (int proj = 0; proj < 2; proj++) {
                const rj_spec s = lin_spec(&LIN_CASES[e], D, DV, M, causal);
                rt_inst in;
                rt_inst_init(&in, &s, proj ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL, 4);
                if (causal)
                    cr_assert_geq(running_max_rises(&in, y, L), 3, "%s base %d",
                                  LIN_CASES[e].name, LIN_CASES[e].hrf_base);
                /* self attention, then (bidirectional only) cross attention with LQ queries */
                for (int cross = 0; cross < 2 - causal; cross++) {
                    const int64_t lq = cross ? LQ : L;
                    cr_assert_eq(rj_ref_linear(&in.s, in.params, x, lq, y, v, L, NULL, o1, NULL),
                                 RFJIT_OK);
                    rt_quadratic(&in, x, lq, y, v, L, o2);
                    const double err = rt_max_rel_err(o1, o2, (size_t)lq * DV);
                    cr_assert_leq(err, 1e-10,
                                  "%s base %d causal %d proj %d lq %lld: rel err %.3g (seed 4)",
                                  LIN_CASES[e].name, LIN_CASES[e].hrf_base, causal, proj,
                                  (long long)lq, err);
                }
                rt_inst_free(&in);
            }
}

/* Orthonormal basis B (m x d) of W's row space, m < d: modified Gram-Schmidt, twice. */
static void row_basis(const double *W, int m, int d, double *B)
{
    memcpy(B, W, sizeof(double) * (size_t)m * d);
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < m; r++) {
            double *b = B + (size_t)r * d;
            for (int q = 0; q < r; q++) {
                const double *c = B + (size_t)q * d;
                double p = 0;
                for (int a = 0; a < d; a++)
                    p += b[a] * c[a];
                for (int a = 0; a < d; a++)
                    b[a] -= p * c[a];
            }
            double nn = 0;
            for (int a = 0; a < d; a++)
                nn += b[a] * b[a];
            for (int a = 0; a < d; a++)
                b[a] /= sqrt(nn);
        }
}

/* t := component of t in null(W) (twice, for accuracy). */
static void to_null(const double *B, int m, int d, double *t)
{
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < m; r++) {
            const double *b = B + (size_t)r * d;
            double p = 0;
            for (int a = 0; a < d; a++)
                p += t[a] * b[a];
            for (int a = 0; a < d; a++)
                t[a] -= p * b[a];
        }
}

/* x + t with W t = 0, t orthogonal to x, |t| = r: so W (x + t) = W x and
 * |x + t|^2 = |x|^2 + r^2. g: d scratch normals. */
static void null_shift(const double *B, int m, int d, double r, const double *g, double *x)
{
    double t[256], u[256];
    cr_assert_leq(d, 256);
    memcpy(t, g, sizeof(double) * (size_t)d);
    memcpy(u, x, sizeof(double) * (size_t)d);
    to_null(B, m, d, t);
    to_null(B, m, d, u); /* t . x = t . u once t is in null(W) */
    double tu = 0, uu = 0;
    for (int a = 0; a < d; a++)
        tu += t[a] * u[a], uu += u[a] * u[a];
    for (int a = 0; a < d; a++)
        t[a] -= tu / uu * u[a];
    to_null(B, m, d, t);
    double tt = 0;
    for (int a = 0; a < d; a++)
        tt += t[a] * t[a];
    for (int a = 0; a < d; a++)
        x[a] += t[a] * r / sqrt(tt);
}

/*
 * Stabilisation: with m < d, shifting every query and key by a vector of W's null space,
 * orthogonal to it, of norm 350 (|q|, |k| ~ 1e3 raw at d = 64) changes every positive,
 * hyperbolic and trig feature vector by the scalar e^{-+350^2/2}, common to all keys, which
 * cancels: the outputs must stay the same (1e-9 relative). Unstabilised, e^h would be 0 or
 * inf for every row (asserted), giving 0/0 or inf/inf.
 */
Test(ref_attention, stabilisation_huge_norms_invariance)
{
    enum { L = 24, D = 64, DV = 4, M = 16 };
    const double R = 350;
    double *x = alloc_d(L * D), *y = alloc_d(L * D), *v = alloc_d(L * DV);
    double *xs = alloc_d(L * D), *ys = alloc_d(L * D), *g = alloc_d(L * D);
    double *o1 = alloc_d(L * DV), *o2 = alloc_d(L * DV), *B = alloc_d(M * D);
    double *f = alloc_d(3 * M);
    /* base norms ~1: the trig kernel estimates stay mostly positive, so its signed
     * denominators are well conditioned and the ~1e-11 relative rounding of |y|^2/2 ~ 6e4
     * in the key shifts is not amplified past the tolerance */
    rt_normals(x, L * D, 0.12, 11, 0);
    rt_normals(y, L * D, 0.12, 12, 0);
    rt_normals(v, L * DV, 1.0, 13, 0);
    for (size_t e = 0; e < 3; e++) /* positive, hyperbolic, trig */
        for (int causal = 0; causal < 2; causal++) {
            const rj_spec s = lin_spec(&LIN_CASES[e], D, DV, M, causal);
            rt_inst in;
            rt_inst_init(&in, &s, RFJIT_PROJ_ORTHOGONAL, 14);
            row_basis(in.W, M, D, B);
            memcpy(xs, x, sizeof(double) * L * D);
            memcpy(ys, y, sizeof(double) * L * D);
            rt_normals(g, L * D, 1.0, 15, 0);
            for (int j = 0; j < L; j++) {
                null_shift(B, M, D, R, g + j * D, xs + j * D);
                null_shift(B, M, D, R, g + ((j + 7) % L) * D, ys + j * D);
            }
            for (int j = 0; j < 2 * L; j++) {
                double h;
                const double *row = j < L ? xs + j * D : ys + (j - L) * D;
                in.s.est->features(&in.s, in.params, j < L ? RJ_ROLE_Q : RJ_ROLE_K, row, &h, f);
                cr_assert(fabs(h) > 746 && rt_all_finite(f, (size_t)s.est->feature_dim(&s)),
                          "%s row %d: h = %g should put e^h outside double", s.est->name, j, h);
            }
            cr_assert_eq(rj_ref_linear(&in.s, in.params, x, L, y, v, L, NULL, o1, NULL), RFJIT_OK);
            cr_assert_eq(rj_ref_linear(&in.s, in.params, xs, L, ys, v, L, NULL, o2, NULL),
                         RFJIT_OK);
            cr_assert(rt_all_finite(o2, L * DV), "%s causal %d: non-finite output",
                      s.est->name, causal);
            const double err = rt_max_rel_err(o2, o1, L * DV);
            cr_log_info("%s causal %d: shifted vs plain rel err %.3g", s.est->name, causal, err);
            cr_assert_leq(err, 1e-9, "%s causal %d: shifted vs plain rel err %.3g (seeds 11-15)",
                          s.est->name, causal, err);
            rt_inst_free(&in);
        }
    free(x), free(y), free(v), free(xs), free(ys), free(g), free(o1), free(o2), free(B), free(f);
}

/* A wrapper estimator that adds a large log-scale to every feature vector: a per-query
 * amount (which cancels in the query's own ratio) and a common amount for all keys (which
 * cancels between numerator and denominator). e^h is then inf for every row. */
static const rj_est_ops *g_inner;

static void shifted_features(const rj_spec *s, const double *params, rj_role role,
                             const double *x, double *h, double *f)
{
    rj_spec si = *s;
    si.est = g_inner;
    g_inner->features(&si, params, role, x, h, f);
    *h += role == RJ_ROLE_Q ? 900 + 100 * tanh(x[0]) : 1200;
}

Test(ref_attention, log_scale_shift_invariance)
{
    enum { L = 21, D = 5, DV = 3, M = 6 };
    double x[L * D], y[L * D], v[L * DV], o1[L * DV], o2[L * DV];
    rt_normals(x, L * D, 0.5, 21, 0);
    rt_normals(y, L * D, 0.5, 22, 0);
    rt_normals(v, L * DV, 1.0, 23, 0);
    for (size_t e = 0; e < N_LIN_CASES; e++)
        for (int causal = 0; causal < 2; causal++) {
            const rj_spec s = lin_spec(&LIN_CASES[e], D, DV, M, causal);
            rt_inst in;
            rt_inst_init(&in, &s, RFJIT_PROJ_ORTHOGONAL, 24);
            g_inner = s.est;
            rj_est_ops wrapped = *s.est;
            wrapped.features = shifted_features;
            rj_spec ws = in.s;
            ws.est = &wrapped;
            cr_assert_eq(rj_ref_linear(&in.s, in.params, x, L, y, v, L, NULL, o1, NULL), RFJIT_OK);
            cr_assert_eq(rj_ref_linear(&ws, in.params, x, L, y, v, L, NULL, o2, NULL), RFJIT_OK);
            const double err = rt_max_rel_err(o2, o1, L * DV);
            cr_assert_leq(err, 1e-9, "%s base %d causal %d: rel err %.3g", s.est->name,
                          s.hrf_base, causal, err);
            rt_inst_free(&in);
        }
}

/* Every estimator under test, linear ones and exact softmax, as one attention call. */
static rfjit_status attention(const rt_inst *in, const double *x, int64_t lq, const double *y,
                              const double *v, int64_t lk, double *out)
{
    return rj_est_ref_attend(&in->s, in->params, x, lq, y, v, lk, NULL, out, NULL);
}

typedef struct any_case {
    const char *name;
    int hrf_base;
} any_case;

static const any_case ANY_CASES[] = {
    {"exact", 0},  {"positive", 0}, {"hyperbolic", 0},
    {"trig", 0},   {"hybrid", RFJIT_HYBRID_BASE_POSITIVE},
    {"hybrid", RFJIT_HYBRID_BASE_HYPERBOLIC},
};
#define N_ANY_CASES (sizeof ANY_CASES / sizeof ANY_CASES[0])

static void any_init(rt_inst *in, size_t e, int d, int dv, int m, int causal, uint64_t seed)
{
    rj_spec s = rt_spec(ANY_CASES[e].name, d, dv, m, causal);
    s.hrf_base = ANY_CASES[e].hrf_base;
    rt_inst_init(in, &s, RFJIT_PROJ_ORTHOGONAL, seed);
}

/* out(a V1 + b V2) = a out(V1) + b out(V2): the weights do not depend on V. */
Test(ref_attention, linearity_in_v)
{
    enum { L = 19, D = 5, DV = 4, M = 8 };
    const double a = 2.5, b = -1.5;
    double x[L * D], y[L * D], v1[L * DV], v2[L * DV], v3[L * DV];
    double o1[L * DV], o2[L * DV], o3[L * DV], lin[L * DV];
    rt_normals(x, L * D, 0.5, 31, 0);
    rt_normals(y, L * D, 0.5, 32, 0);
    rt_normals(v1, L * DV, 1.0, 33, 0);
    rt_normals(v2, L * DV, 1.0, 34, 0);
    for (int i = 0; i < L * DV; i++)
        v3[i] = a * v1[i] + b * v2[i];
    for (size_t e = 0; e < N_ANY_CASES; e++)
        for (int causal = 0; causal < 2; causal++) {
            rt_inst in;
            any_init(&in, e, D, DV, M, causal, 35);
            cr_assert_eq(attention(&in, x, L, y, v1, L, o1), RFJIT_OK);
            cr_assert_eq(attention(&in, x, L, y, v2, L, o2), RFJIT_OK);
            cr_assert_eq(attention(&in, x, L, y, v3, L, o3), RFJIT_OK);
            for (int i = 0; i < L * DV; i++)
                lin[i] = a * o1[i] + b * o2[i];
            const double err = rt_max_rel_err(o3, lin, L * DV);
            cr_assert_leq(err, 1e-12, "%s base %d causal %d: rel err %.3g", ANY_CASES[e].name,
                          ANY_CASES[e].hrf_base, causal, err);
            rt_inst_free(&in);
        }
}

/* Bidirectional: permuting the (key, value) pairs leaves every output unchanged. */
Test(ref_attention, key_permutation_equivariance)
{
    enum { L = 23, LQ = 9, D = 5, DV = 3, M = 8 };
    double x[LQ * D], y[L * D], v[L * DV], yp[L * D], vp[L * DV], o1[LQ * DV], o2[LQ * DV];
    rt_normals(x, LQ * D, 0.5, 41, 0);
    rt_normals(y, L * D, 0.5, 42, 0);
    rt_normals(v, L * DV, 1.0, 43, 0);
    for (int j = 0; j < L; j++) { /* j -> 7 j + 3 mod 23 is a bijection (23 is prime) */
        const int p = (7 * j + 3) % L;
        memcpy(yp + p * D, y + j * D, sizeof(double) * D);
        memcpy(vp + p * DV, v + j * DV, sizeof(double) * DV);
    }
    for (size_t e = 0; e < N_ANY_CASES; e++) {
        rt_inst in;
        any_init(&in, e, D, DV, M, 0, 44);
        cr_assert_eq(attention(&in, x, LQ, y, v, L, o1), RFJIT_OK);
        cr_assert_eq(attention(&in, x, LQ, yp, vp, L, o2), RFJIT_OK);
        const double err = rt_max_rel_err(o2, o1, LQ * DV);
        cr_assert_leq(err, 1e-12, "%s base %d: rel err %.3g", ANY_CASES[e].name,
                      ANY_CASES[e].hrf_base, err);
        rt_inst_free(&in);
    }
}

/* Causal: replacing every query, key and value after position T (by rows of 3x the norm,
 * which would raise the running max) leaves outputs 0..T bitwise unchanged. */
Test(ref_attention, causal_prefix_property)
{
    enum { L = 24, T = 11, D = 5, DV = 3, M = 8 };
    double x[L * D], y[L * D], v[L * DV], x2[L * D], y2[L * D], v2[L * DV];
    double o1[L * DV], o2[L * DV];
    rt_normals(x, L * D, 0.5, 51, 0);
    rt_normals(y, L * D, 0.5, 52, 0);
    rt_normals(v, L * DV, 1.0, 53, 0);
    memcpy(x2, x, sizeof x), memcpy(y2, y, sizeof y), memcpy(v2, v, sizeof v);
    rt_normals(x2 + (T + 1) * D, (L - T - 1) * D, 1.5, 54, 0);
    rt_normals(y2 + (T + 1) * D, (L - T - 1) * D, 1.5, 55, 0);
    rt_normals(v2 + (T + 1) * DV, (L - T - 1) * DV, 1.0, 56, 0);
    for (size_t e = 0; e < N_ANY_CASES; e++) {
        rt_inst in;
        any_init(&in, e, D, DV, M, 1, 57);
        cr_assert_eq(attention(&in, x, L, y, v, L, o1), RFJIT_OK);
        cr_assert_eq(attention(&in, x2, L, y2, v2, L, o2), RFJIT_OK);
        cr_assert(memcmp(o1, o2, sizeof(double) * (T + 1) * DV) == 0,
                  "%s base %d: outputs 0..%d changed with the future", ANY_CASES[e].name,
                  ANY_CASES[e].hrf_base, T);
        cr_assert(memcmp(o1 + (T + 1) * DV, o2 + (T + 1) * DV,
                         sizeof(double) * (L - T - 1) * DV) != 0,
                  "%s: later outputs should see the change", ANY_CASES[e].name);
        rt_inst_free(&in);
    }
}

/* Positive features (and softmax) give convex combinations of the visible values: each
 * output column lies in that column's range over J(i), up to rounding. */
Test(ref_attention, positive_outputs_inside_value_range)
{
    enum { L = 25, D = 6, DV = 3, M = 8 };
    double x[L * D], y[L * D], v[L * DV], o[L * DV];
    rt_normals(x, L * D, 0.8, 61, 0);
    rt_normals(y, L * D, 0.8, 62, 0);
    rt_normals(v, L * DV, 1.0, 63, 0);
    for (size_t e = 0; e < 3; e++) /* exact, positive, hyperbolic */
        for (int causal = 0; causal < 2; causal++) {
            rt_inst in;
            any_init(&in, e, D, DV, M, causal, 64);
            cr_assert_eq(attention(&in, x, L, y, v, L, o), RFJIT_OK);
            for (int i = 0; i < L; i++)
                for (int a = 0; a < DV; a++) {
                    double lo = INFINITY, hi = -INFINITY;
                    for (int j = 0; j < (causal ? i + 1 : L); j++)
                        lo = fmin(lo, v[j * DV + a]), hi = fmax(hi, v[j * DV + a]);
                    const double slack = 1e-12 * (hi - lo + 1);
                    cr_assert(o[i * DV + a] >= lo - slack && o[i * DV + a] <= hi + slack,
                              "%s causal %d out[%d][%d] = %.17g outside [%.17g, %.17g]",
                              ANY_CASES[e].name, causal, i, a, o[i * DV + a], lo, hi);
                }
            rt_inst_free(&in);
        }
}

/* Inputs of norm ~350 (1e3 raw at d = 64) in random directions: every output is finite,
 * for every linear estimator and softmax, causal or not. */
Test(ref_attention, huge_norms_finite)
{
    enum { L = 16, D = 64, DV = 4, M = 16 };
    double *x = alloc_d(L * D), *y = alloc_d(L * D), *v = alloc_d(L * DV), *o = alloc_d(L * DV);
    rows_with_norms(x, L, D, 71, 0, 330, 360);
    rows_with_norms(y, L, D, 72, 0, 360, 330);
    rt_normals(v, L * DV, 1.0, 73, 0);
    for (size_t e = 0; e < N_ANY_CASES; e++)
        for (int causal = 0; causal < 2; causal++) {
            rt_inst in;
            any_init(&in, e, D, DV, M, causal, 74);
            cr_assert_eq(attention(&in, x, L, y, v, L, o), RFJIT_OK);
            cr_assert(rt_all_finite(o, L * DV), "%s base %d causal %d: non-finite output",
                      ANY_CASES[e].name, ANY_CASES[e].hrf_base, causal);
            rt_inst_free(&in);
        }
    free(x), free(y), free(v), free(o);
}

/* A test-only estimator whose features are its input: f = x, h = 0 (d = M = 2), signed or
 * not, to drive the denominator guard of ref.h exactly. */
static int64_t direct_dim(const rj_spec *s)
{
    return s->d;
}

static void direct_features(const rj_spec *s, const double *params, rj_role role,
                            const double *x, double *h, double *f)
{
    (void)params, (void)role;
    memcpy(f, x, sizeof(double) * (size_t)s->d);
    *h = 0;
}

static rj_spec direct_spec(rj_est_ops *ops, unsigned flags, int causal)
{
    memset(ops, 0, sizeof *ops);
    ops->name = "direct";
    ops->tmpl = RJ_TMPL_LINEAR;
    ops->flags = flags;
    ops->feature_dim = direct_dim;
    ops->features = direct_features;
    rj_spec s;
    memset(&s, 0, sizeof s);
    s.est = ops;
    s.d = 2;
    s.dv = 1;
    s.m = 2;
    s.causal = causal;
    return s;
}

/*
 * Keys f = (1, 0) and (0, 1) with values 1 and 3: z = zabs = (1, 1), S = (1, 3). For a
 * query f the guard scale is g = |f_1| + |f_2|, den = f_1 + f_2, num = f_1 + 3 f_2, and
 * |den| < 1e-6 g becomes sign(den) 1e-6 g (+ for 0); g = 0 gives 0.
 */
Test(ref_attention, denominator_guard)
{
    rj_est_ops ops;
    const rj_spec s = direct_spec(&ops, RJ_EST_SIGNED, 0);
    const double y[4] = {1, 0, 0, 1}, v[2] = {1, 3};
    const double e = 1e-9;
    const double q[5][2] = {{1, -1}, {1, -1 + e}, {1 - e, -1}, {1, -0.5}, {0, 0}};
    double o[5];
    cr_assert_eq(rj_ref_linear(&s, NULL, &q[0][0], 5, y, v, 2, NULL, o, NULL), RFJIT_OK);
    double want[5];
    for (int i = 0; i < 5; i++) {
        const double f1 = q[i][0], f2 = q[i][1], g = fabs(f1) + fabs(f2);
        double den = f1 + f2;
        if (fabs(den) < 1e-6 * g)
            den = (den < 0 ? -1e-6 : 1e-6) * g;
        want[i] = g > 0 ? (f1 + 3 * f2) / den : 0;
    }
    cr_assert_float_eq(want[0], -2 / 2e-6, 1e-6, "the test's own arithmetic");
    cr_assert_float_eq(want[2], (1 - e - 3) / (-2e-6 + 1e-6 * e), 1e-3,
                       "a negative tiny denominator keeps its sign");
    cr_assert_float_eq(want[3], -1, 1e-15, "a large denominator is untouched");
    for (int i = 0; i < 5; i++)
        cr_assert(fabs(o[i] - want[i]) <= 1e-14 * fabs(want[i]), "query %d: %.17g vs %.17g",
                  i, o[i], want[i]);
    /* unsigned features: den = 0 means no key reaches the query: zero row */
    rj_est_ops ops2;
    const rj_spec s2 = direct_spec(&ops2, 0, 0);
    const double yk[2] = {1, 0}, vk[1] = {5}, qk[2] = {0, 1};
    double o2 = 7;
    cr_assert_eq(rj_ref_linear(&s2, NULL, qk, 1, yk, vk, 1, NULL, &o2, NULL), RFJIT_OK);
    cr_assert_eq(o2, 0);
    /* no keys at all: zero rows, also for softmax */
    double o3[2] = {7, 7};
    cr_assert_eq(rj_ref_linear(&s, NULL, &q[0][0], 2, y, v, 0, NULL, o3, NULL), RFJIT_OK);
    cr_assert(o3[0] == 0 && o3[1] == 0);
    const rj_spec se = rt_spec("exact", 2, 1, 1, 0);
    o3[0] = o3[1] = 7;
    cr_assert_eq(rj_ref_softmax(&se, &q[0][0], 2, y, v, 0, NULL, o3, NULL), RFJIT_OK);
    cr_assert(o3[0] == 0 && o3[1] == 0);
}

Test(ref_attention, causal_shape_errors)
{
    rj_est_ops ops;
    const rj_spec s = direct_spec(&ops, 0, 1);
    const rj_spec se = rt_spec("exact", 2, 1, 1, 1);
    const double x[6] = {1, 0, 0, 1, 1, 1}, v[3] = {1, 2, 3};
    double o[3];
    rj_diag dg = {{0}};
    cr_assert_eq(rj_ref_linear(&s, NULL, x, 2, x, v, 3, NULL, o, &dg), RFJIT_E_SHAPE);
    cr_assert(strstr(dg.msg, "lq == lk") != NULL, "message: %s", dg.msg);
    cr_assert_eq(rj_ref_softmax(&se, x, 3, x, v, 2, NULL, o, NULL), RFJIT_E_SHAPE);
    cr_assert_eq(rj_ref_linear(&s, NULL, x, 3, x, v, 3, NULL, o, NULL), RFJIT_OK);
}

/* Softmax against the textbook formula without the max shift (moderate logits), and its
 * ops table: exact = rj_ref_softmax bit for bit, no features, variance 0. */
Test(ref_attention, exact_is_softmax)
{
    enum { L = 17, LQ = 7, D = 4, DV = 3 };
    double x[L * D], y[L * D], v[L * DV], o1[L * DV], o2[L * DV];
    rt_normals(x, L * D, 0.8, 81, 0);
    rt_normals(y, L * D, 0.8, 82, 0);
    rt_normals(v, L * DV, 1.0, 83, 0);
    for (int causal = 0; causal < 2; causal++) {
        const int64_t lq = causal ? L : LQ;
        const rj_spec s = rt_spec("exact", D, DV, 1, causal);
        cr_assert_eq(rj_ref_softmax(&s, x, lq, y, v, L, NULL, o1, NULL), RFJIT_OK);
        for (int i = 0; i < lq; i++) {
            double Z = 0, acc[DV] = {0};
            for (int j = 0; j < (causal ? i + 1 : L); j++) {
                double sij = 0;
                for (int a = 0; a < D; a++)
                    sij += x[i * D + a] * y[j * D + a];
                Z += exp(sij);
                for (int a = 0; a < DV; a++)
                    acc[a] += exp(sij) * v[j * DV + a];
            }
            for (int a = 0; a < DV; a++)
                o2[i * DV + a] = acc[a] / Z;
        }
        const double err = rt_max_rel_err(o1, o2, (size_t)lq * DV);
        cr_assert_leq(err, 1e-13, "causal %d: rel err %.3g", causal, err);
        rt_inst in;
        rt_inst_init(&in, &s, RFJIT_PROJ_ORTHOGONAL, 1);
        cr_assert_eq(rj_est_ref_attend(&in.s, in.params, x, lq, y, v, L, NULL, o2, NULL), RFJIT_OK);
        cr_assert(memcmp(o1, o2, sizeof(double) * (size_t)lq * DV) == 0);
        cr_assert_eq(s.est->variance(&s, in.params, x, y), 0);
        rt_inst_free(&in);
    }
    const rj_est_ops *e = rj_est_find("exact");
    rj_spec s = rt_spec("exact", 8, 16, 0, 0);
    char why[128];
    cr_assert_eq(e->tmpl, RJ_TMPL_SOFTMAX);
    cr_assert(e->flags & RJ_EST_NOPROJ);
    cr_assert_eq(e->feature_dim(&s), 0);
    cr_assert(e->valid(&s, why, sizeof why));
    double flops, bytes;
    e->cost(&s, &flops, &bytes);
    cr_assert_eq(flops, 2 * 8 + 2 * 16 + 20.0, "one query-key pair: 2d + 2dv + one exp");
    s.d = 0;
    cr_assert(!e->valid(&s, why, sizeof why) && why[0]);
    s.d = 8, s.dv = 0;
    cr_assert(!e->valid(&s, why, sizeof why) && why[0]);
}

/* Softmax at logits ~1e5: finite, and where the top logit leads by more than 40 (weights of
 * the others below e^{-40} ~ 4e-18 relative) the output is that key's value. */
Test(ref_attention, softmax_huge_logits)
{
    enum { L = 12, D = 64, DV = 2 };
    double *x = alloc_d(L * D), *y = alloc_d(L * D), v[L * DV], o[L * DV];
    rows_with_norms(x, L, D, 91, 0, 340, 360);
    rows_with_norms(y, L, D, 92, 0, 360, 340);
    rt_normals(v, L * DV, 1.0, 93, 0);
    const rj_spec s = rt_spec("exact", D, DV, 1, 0);
    cr_assert_eq(rj_ref_softmax(&s, x, L, y, v, L, NULL, o, NULL), RFJIT_OK);
    int checked = 0;
    for (int i = 0; i < L; i++) {
        double best = -INFINITY, second = -INFINITY;
        int arg = -1;
        for (int j = 0; j < L; j++) {
            double sij = 0;
            for (int a = 0; a < D; a++)
                sij += x[i * D + a] * y[j * D + a];
            if (sij > best)
                second = best, best = sij, arg = j;
            else if (sij > second)
                second = sij;
        }
        cr_assert(rt_all_finite(o + i * DV, DV));
        if (best - second > 40) {
            checked++;
            for (int a = 0; a < DV; a++)
                cr_assert_float_eq(o[i * DV + a], v[arg * DV + a], 1e-15 * fabs(v[arg * DV + a]),
                                   "row %d", i);
        }
    }
    cr_assert_geq(checked, L / 2, "the data should give clear winners (%d of %d)", checked, L);
    free(x), free(y);
}

/* C5 (a), JAX unidirectional test: d = 1, q = k = 1, L = 3, v = (1, 0, 0), trig, m = 1e4:
 * outputs (1, 1/2, 1/3) within 0.02, iid and orthogonal. (x = y makes trig exact here.) */
Test(ref_attention, c5a_jax_unidirectional_trig)
{
    const double x[3] = {1, 1, 1}, v[3] = {1, 0, 0};
    double o[3];
    for (int proj = 0; proj < 2; proj++) {
        const rj_spec s = rt_spec("trig", 1, 1, 10000, 1);
        rt_inst in;
        rt_inst_init(&in, &s, proj ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL, 42);
        cr_assert_eq(rj_ref_linear(&in.s, in.params, x, 3, x, v, 3, NULL, o, NULL), RFJIT_OK);
        for (int t = 0; t < 3; t++)
            cr_assert(fabs(o[t] - 1.0 / (t + 1)) < 0.02, "proj %d t %d: %g (seed 42)", proj, t,
                      o[t]);
        rt_inst_free(&in);
    }
}

/* Raw N(0, 1) rows scaled by d^{-1/4}, as rfjit scales q and k. */
static void raw_scaled(double *x, size_t n, int d, uint64_t seed)
{
    rt_normals(x, n, pow((double)d, -0.25), seed, 0);
}

/* C5 (b), TF non-causal test: L = 1e4, d = 8, m = 1e3, q, k, v ~ N(0, 1):
 * max |FAVOR+ - exact| < 0.5 (orthogonal W, the reference's default). */
Test(ref_attention, c5b_tf_noncausal_positive, .timeout = 60)
{
    enum { L = 10000, D = 8 };
    double *x = alloc_d(L * D), *y = alloc_d(L * D), *v = alloc_d(L * D);
    double *o1 = alloc_d(L * D), *o2 = alloc_d(L * D);
    raw_scaled(x, L * D, D, 101);
    raw_scaled(y, L * D, D, 102);
    rt_normals(v, L * D, 1.0, 103, 0);
    const rj_spec se = rt_spec("exact", D, D, 1, 0), sp = rt_spec("positive", D, D, 1000, 0);
    cr_assert_eq(rj_ref_softmax(&se, x, L, y, v, L, NULL, o1, NULL), RFJIT_OK);
    rt_inst in;
    rt_inst_init(&in, &sp, RFJIT_PROJ_ORTHOGONAL, 104);
    cr_assert_eq(rj_ref_linear(&in.s, in.params, x, L, y, v, L, NULL, o2, NULL), RFJIT_OK);
    double mx = 0;
    for (int i = 0; i < L * D; i++)
        mx = fmax(mx, fabs(o1[i] - o2[i]));
    cr_log_info("C5 (b): max |FAVOR+ - exact| = %.4f (bound 0.5)", mx);
    cr_assert(rt_all_finite(o2, L * D));
    cr_assert_lt(mx, 0.5, "max abs error %g (seeds 101-104)", mx);
    rt_inst_free(&in);
    free(x), free(y), free(v), free(o1), free(o2);
}

/* C5 (c), JAX bidirectional trig test: d = 8, dv = 10, L = 2, m = 1e4, q = k ~ N(0, 1)
 * (the reference draws both from one key), v ~ N(0, 1): max relative error < 0.33 (iid),
 * < 2.0 (orthogonal). */
Test(ref_attention, c5c_jax_bidirectional_trig)
{
    enum { L = 2, D = 8, DV = 10 };
    double x[L * D], v[L * DV], o1[L * DV], o2[L * DV];
    raw_scaled(x, L * D, D, 111);
    rt_normals(v, L * DV, 1.0, 112, 0);
    const rj_spec se = rt_spec("exact", D, DV, 1, 0), st = rt_spec("trig", D, DV, 10000, 0);
    cr_assert_eq(rj_ref_softmax(&se, x, L, x, v, L, NULL, o1, NULL), RFJIT_OK);
    const double bound[2] = {2.0, 0.33};
    for (int proj = 0; proj < 2; proj++) {
        rt_inst in;
        rt_inst_init(&in, &st, proj ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL, 113);
        cr_assert_eq(rj_ref_linear(&in.s, in.params, x, L, x, v, L, NULL, o2, NULL), RFJIT_OK);
        double mx = 0;
        for (int i = 0; i < L * DV; i++)
            mx = fmax(mx, fabs(o2[i] - o1[i]) / fabs(o1[i]));
        cr_log_info("C5 (c) %s: max relative error %.4f (bound %.2f)", proj ? "iid" : "orth",
                    mx, bound[proj]);
        cr_assert(rt_all_finite(o2, L * DV));
        cr_assert_lt(mx, bound[proj], "%s: max relative error %g (seeds 111-113)",
                     proj ? "iid" : "orth", mx);
        rt_inst_free(&in);
    }
}
