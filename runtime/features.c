/* SPDX-License-Identifier: MIT */
/*
 * This file implements the kernel-estimation side of a plan: explicit feature maps and the
 * kernel matrix between two sets, on the vectors as given (no sqrt(scale) scaling). Features are
 * kept as (h, f) with phi = e^h f until the end, so the kernel matrix is formed as
 * e^{h_i + h_j} (f_i . f_j) without overflowing intermediate features. JIT plans compute the
 * features and the product with compiled kernels (est_jit.c); the reference plans in double.
 */
#include "runtime/plan.h"
#include "runtime/est_jit.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>

/* Rows (h, f) of one (batch, head) slice of n rows. */
typedef struct feat_rows {
    double *raw, *h, *f, *sq; /* raw rows (n x d), log-scales, features (n x M), |x|^2 */
} feat_rows;

static void rows_free(feat_rows *r)
{
    rj_free(r->raw);
    rj_free(r->h);
    rj_free(r->f);
    rj_free(r->sq);
}

static rfjit_status rows_alloc(feat_rows *r, int64_t n, int d, int64_t M, rj_diag *dg)
{
    r->raw = rj_alloc_array((size_t)n * (size_t)d, sizeof(double));
    r->h = rj_alloc_array((size_t)n, sizeof(double));
    r->sq = rj_alloc_array((size_t)n, sizeof(double));
    size_t nf;
    r->f = rj_mul_size((size_t)n, (size_t)(M ? M : 1), &nf)
               ? rj_alloc_array(nf, sizeof(double))
               : NULL;
    RJ_FAIL_IF(dg, !r->raw || !r->h || !r->f || !r->sq, RFJIT_E_NOMEM,
               "no memory for %lld rows of %lld features", (long long)n, (long long)M);
    return RFJIT_OK;
}

static void rows_sq(const rfjit_plan *p, feat_rows *r, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const double *x = r->raw + i * p->spec.d;
        double sq = 0;
        for (int c = 0; c < p->spec.d; c++)
            sq += x[c] * x[c];
        r->sq[i] = sq;
    }
}

/* (h, f) of n rows in role `role`, by the reference or by the JIT's feature kernel. */
static rfjit_status rows_features(const rfjit_plan *p, rj_est_jit *e, const double *params,
                                  rj_role role, feat_rows *r, int64_t n, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    rows_sq(p, r, n);
    if (e) {
        RJ_TRY(rj_est_jit_side(e, p, params, role == RJ_ROLE_K, r->raw, dg));
        if (p->M)
            rj_est_jit_rows(e, p, role == RJ_ROLE_K, r->h, r->f);
        return RFJIT_OK;
    }
    if (p->M)
        for (int64_t i = 0; i < n; i++)
            s->est->features(s, params, role, r->raw + i * s->d, &r->h[i], r->f + i * p->M);
    return RFJIT_OK;
}

static rfjit_status check_in(const rfjit_plan *p, const rfjit_tensor *t, const char *name,
                             rj_diag *dg)
{
    RJ_TRY(rj_tensor_check(t, name, false, dg));
    RJ_FAIL_IF(dg, t->shape[3] != p->spec.d, RFJIT_E_SHAPE,
               "%s must have last dimension d = %d (got %lld)", name, p->spec.d,
               (long long)t->shape[3]);
    return rj_tensor_check_finite(t, name, dg);
}

static rfjit_status check_out(const rfjit_tensor *o, const char *name, const rfjit_tensor *in,
                              int64_t len, int64_t last, const rfjit_tensor *x,
                              const rfjit_tensor *y, rj_diag *dg)
{
    RJ_TRY(rj_tensor_check(o, name, true, dg));
    RJ_FAIL_IF(dg, o->shape[0] != in->shape[0] || o->shape[1] != in->shape[1] ||
                       o->shape[2] != len || o->shape[3] != last,
               RFJIT_E_SHAPE, "%s must have shape (%lld, %lld, %lld, %lld)", name,
               (long long)in->shape[0], (long long)in->shape[1], (long long)len,
               (long long)last);
    RJ_FAIL_IF(dg, (x && rj_tensor_overlap(o, x)) || (y && rj_tensor_overlap(o, y)),
               RFJIT_E_ALIAS, "%s overlaps an input", name);
    return RFJIT_OK;
}

static rfjit_status check_pair(const rfjit_plan *p, const rfjit_tensor *x,
                               const rfjit_tensor *y, rj_diag *dg)
{
    RJ_FAIL_IF(dg, p->spec.est->tmpl == RJ_TMPL_EVA || p->spec.est->tmpl == RJ_TMPL_BLOCKSPARSE,
               RFJIT_E_NOT_APPLICABLE, "estimator '%s' has no kernel estimate or feature map",
               p->spec.est->name);
    if (x)
        RJ_TRY(check_in(p, x, "x", dg));
    if (y)
        RJ_TRY(check_in(p, y, "y", dg));
    RJ_FAIL_IF(dg, x && y && (x->shape[0] != y->shape[0] || x->shape[1] != y->shape[1]),
               RFJIT_E_SHAPE, "x and y differ in batch or heads");
    return RFJIT_OK;
}

/* phi = e^h f of slice (b, h) into o, named `name`; whether a value is past float range (the
 * first one is named in why). */
static bool write_features(const rfjit_plan *p, const feat_rows *r, int64_t n, rfjit_tensor *o,
                           const char *name, int64_t b, int64_t h, double *row_buf, rj_diag *why)
{
    bool over = false;
    for (int64_t i = 0; i < n; i++) {
        double scale = exp(r->h[i]);
        for (int64_t c = 0; c < p->M; c++) {
            const double v = scale * r->f[i * p->M + c];
            row_buf[i * p->M + c] = v;
            if (!over && !isfinite((float)v)) {
                over = true;
                rj_fail(why, RFJIT_E_RANGE,
                        "features overflow float: %s at (b, h, i, r) = (%lld, %lld, %lld, %lld) "
                        "is %.4g, past FLT_MAX (%.4g); attention, which is stabilised, takes "
                        "such inputs", name, (long long)b, (long long)h, (long long)i,
                        (long long)c, v, (double)FLT_MAX);
            }
        }
    }
    rj_tensor_scatter(o, b, h, row_buf);
    return over;
}

rfjit_status rj_plan_features(const rfjit_plan *p, const rfjit_tensor *x, const rfjit_tensor *y,
                              rfjit_tensor *phi_x, rfjit_tensor *phi_y, rj_diag *dg)
{
    rfjit_status s = RFJIT_OK;
    const rfjit_tensor *ref = x ? x : y;
    if (!phi_x && !phi_y)
        s = rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_plan_features: no output requested");
    else if ((phi_x && !x) || (phi_y && !y))
        s = rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_plan_features: output without its input");
    else if (!p->frozen && (!x || !y))
        s = rj_fail(dg, RFJIT_E_INVALID_ARG,
                    "estimator '%s' fits its parameters from both x and y: pass both",
                    p->spec.est->name);
    else if (p->M == 0)
        s = rj_fail(dg, RFJIT_E_NOT_APPLICABLE, "estimator '%s' has no feature map",
                    p->spec.est->name);
    if (s == RFJIT_OK)
        s = check_pair(p, x, y, dg);
    if (s == RFJIT_OK && phi_x)
        s = check_out(phi_x, "phi_x", x, x->shape[2], p->M, x, y, dg);
    if (s == RFJIT_OK && phi_y)
        s = check_out(phi_y, "phi_y", y, y->shape[2], p->M, x, y, dg);
    if (s == RFJIT_OK && phi_x && phi_y && rj_tensor_overlap(phi_x, phi_y))
        s = rj_fail(dg, RFJIT_E_ALIAS, "phi_x overlaps phi_y");
    if (s != RFJIT_OK)
        return s;

    const int64_t nx = x ? x->shape[2] : 0, ny = y ? y->shape[2] : 0;
    feat_rows rx = {0}, ry = {0};
    rj_fit_scratch fs = {0};
    double *buf = NULL;
    int64_t nmax = nx > ny ? nx : ny;
    rj_est_jit ej = {0}, *e = p->jit ? &ej : NULL;
    bool over = false;
    rj_diag why = {{0}};
    s = rj_fit_scratch_init(&fs, p, dg);
    if (s == RFJIT_OK && e)
        s = rj_est_jit_init(e, p, nx, ny, dg);
    if (s == RFJIT_OK && x)
        s = rows_alloc(&rx, nx, p->spec.d, p->M, dg);
    if (s == RFJIT_OK && y)
        s = rows_alloc(&ry, ny, p->spec.d, p->M, dg);
    if (s == RFJIT_OK && !(buf = rj_alloc_array((size_t)nmax * (size_t)p->M, sizeof(double))))
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for features");
    for (int64_t b = 0; b < ref->shape[0] && s == RFJIT_OK; b++)
        for (int64_t h = 0; h < ref->shape[1] && s == RFJIT_OK; h++) {
            if (x)
                rj_tensor_gather(x, b, h, 1.0, rx.raw);
            if (y)
                rj_tensor_gather(y, b, h, 1.0, ry.raw);
            const double *params = NULL;
            s = rj_fit_slice(p, &fs, rx.raw, nx, ry.raw, ny, &params, dg);
            if (s != RFJIT_OK)
                break;
            if (phi_x && (s = rows_features(p, e, params, RJ_ROLE_Q, &rx, nx, dg)) == RFJIT_OK)
                over |= write_features(p, &rx, nx, phi_x, "phi_x", b, h, buf, over ? NULL : &why);
            if (phi_y && s == RFJIT_OK &&
                (s = rows_features(p, e, params, RJ_ROLE_K, &ry, ny, dg)) == RFJIT_OK)
                over |= write_features(p, &ry, ny, phi_y, "phi_y", b, h, buf, over ? NULL : &why);
        }
    if (s == RFJIT_OK && over) /* every slice written, Inf where it overflows */
        s = rj_fail(dg, RFJIT_E_RANGE, "%s", why.msg);
    rj_est_jit_free(&ej);
    rows_free(&rx);
    rows_free(&ry);
    rj_free(buf);
    rj_fit_scratch_free(&fs);
    return s;
}

/* K[i][j] of one pair: exact, or e^{h_i + h_j} f_i . f_j; the Gaussian kernel multiplies by
 * e^{-(|x|^2 + |y|^2)/2}, folded into the exponent so huge norms do not overflow first. */
static double kernel_pair(const rfjit_plan *p, const feat_rows *rx, int64_t i,
                          const feat_rows *ry, int64_t j, int kind)
{
    const int d = p->spec.d;
    double e, dot = 1.0;
    if (p->spec.est->tmpl == RJ_TMPL_SOFTMAX) {
        e = 0;
        for (int c = 0; c < d; c++)
            e += rx->raw[i * d + c] * ry->raw[j * d + c];
    } else {
        e = rx->h[i] + ry->h[j];
        dot = 0;
        for (int64_t r = 0; r < p->M; r++)
            dot += rx->f[i * p->M + r] * ry->f[j * p->M + r];
    }
    if (kind == RFJIT_KERNEL_GAUSSIAN)
        e -= 0.5 * (rx->sq[i] + ry->sq[j]);
    return exp(e) * dot;
}

static void kernel_slice(const rfjit_plan *p, const feat_rows *rx, int64_t nx,
                         const feat_rows *ry, int64_t ny, int kind, double *K)
{
    for (int64_t i = 0; i < nx; i++)
        for (int64_t j = 0; j < ny; j++)
            K[i * ny + j] = kernel_pair(p, rx, i, ry, j, kind);
}

/* The JIT's exp saturates at e^88.3 (gen/ir_math.c), below FLT_MAX = e^88.72: a pair whose
 * exponent may pass it would come back as a plausible finite number. Such pairs (a bound:
 * |x||y| for the exact kernel's x . y, h_i + h_j for features) are recomputed in double, so
 * that a value past FLT_MAX is reported (RFJIT_E_RANGE) and one just below it is right. */
static void kernel_fix_saturated(const rfjit_plan *p, const feat_rows *rx, int64_t nx,
                                 const feat_rows *ry, int64_t ny, int kind, double *K)
{
    const int exact = p->spec.est->tmpl == RJ_TMPL_SOFTMAX;
    for (int64_t i = 0; i < nx; i++)
        for (int64_t j = 0; j < ny; j++) {
            double e = exact ? sqrt(rx->sq[i] * ry->sq[j]) : rx->h[i] + ry->h[j];
            if (kind == RFJIT_KERNEL_GAUSSIAN)
                e -= 0.5 * (rx->sq[i] + ry->sq[j]);
            if (e > 88.0)
                K[i * ny + j] = kernel_pair(p, rx, i, ry, j, kind);
        }
}

/* Whether a value of K (one nx x ny slice) is past float range; the first one found is named
 * in dg. */
static bool kernel_overflows(const double *K, int64_t nx, int64_t ny, int64_t b, int64_t h,
                             rj_diag *dg)
{
    for (int64_t i = 0; i < nx; i++)
        for (int64_t j = 0; j < ny; j++)
            if (!isfinite((float)K[i * ny + j])) {
                rj_fail(dg, RFJIT_E_RANGE,
                        "the kernel estimate at (b, h, i, j) = (%lld, %lld, %lld, %lld) is %.4g, "
                        "past FLT_MAX (%.4g): exp(x^T y) of these inputs is outside float range",
                        (long long)b, (long long)h, (long long)i, (long long)j, K[i * ny + j],
                        (double)FLT_MAX);
                return true;
            }
    return false;
}

rfjit_status rj_plan_kernel(const rfjit_plan *p, const rfjit_tensor *x, const rfjit_tensor *y,
                            int kind, rfjit_tensor *out, rj_diag *dg)
{
    rfjit_status s = RFJIT_OK;
    if (!x || !y || !out)
        s = rj_fail(dg, RFJIT_E_INVALID_ARG, "rfjit_plan_kernel: x, y and out are required");
    else if (kind != RFJIT_KERNEL_SOFTMAX && kind != RFJIT_KERNEL_GAUSSIAN)
        s = rj_fail(dg, RFJIT_E_INVALID_ARG,
                    "unknown kernel kind %d (RFJIT_KERNEL_SOFTMAX 0, RFJIT_KERNEL_GAUSSIAN 1)",
                    kind);
    if (s == RFJIT_OK)
        s = check_pair(p, x, y, dg);
    if (s == RFJIT_OK)
        s = check_out(out, "out", x, x->shape[2], y->shape[2], x, y, dg);
    if (s != RFJIT_OK)
        return s;

    const int64_t nx = x->shape[2], ny = y->shape[2];
    feat_rows rx = {0}, ry = {0};
    rj_fit_scratch fs = {0};
    size_t nk = 0;
    double *K = NULL;
    float *Kf = NULL;
    rj_est_jit ej = {0}, *e = p->jit ? &ej : NULL;
    bool over = false;
    rj_diag why = {{0}};
    s = rj_fit_scratch_init(&fs, p, dg);
    if (s == RFJIT_OK && e)
        s = rj_est_jit_init(e, p, nx, ny, dg);
    if (s == RFJIT_OK)
        s = rows_alloc(&rx, nx, p->spec.d, p->M, dg);
    if (s == RFJIT_OK)
        s = rows_alloc(&ry, ny, p->spec.d, p->M, dg);
    if (s == RFJIT_OK && (!rj_mul_size((size_t)nx, (size_t)ny, &nk) ||
                          !(K = rj_alloc_array(nk, sizeof(double))) ||
                          (e && !(Kf = rj_alloc_array(nk, sizeof(float))))))
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for a %lld x %lld kernel matrix",
                    (long long)nx, (long long)ny);
    for (int64_t b = 0; b < x->shape[0] && s == RFJIT_OK; b++)
        for (int64_t h = 0; h < x->shape[1] && s == RFJIT_OK; h++) {
            rj_tensor_gather(x, b, h, 1.0, rx.raw);
            rj_tensor_gather(y, b, h, 1.0, ry.raw);
            const double *params = NULL;
            s = rj_fit_slice(p, &fs, rx.raw, nx, ry.raw, ny, &params, dg);
            if (s != RFJIT_OK)
                break;
            s = rows_features(p, e, params, RJ_ROLE_Q, &rx, nx, dg);
            if (s == RFJIT_OK)
                s = rows_features(p, e, params, RJ_ROLE_K, &ry, ny, dg);
            if (s != RFJIT_OK)
                break;
            if (e) {
                const int gauss = kind == RFJIT_KERNEL_GAUSSIAN;
                rj_est_jit_gram(e, gauss ? rx.sq : NULL, gauss ? ry.sq : NULL, Kf, ny);
                for (size_t i = 0; i < nk; i++)
                    K[i] = Kf[i];
                kernel_fix_saturated(p, &rx, nx, &ry, ny, kind, K);
            } else {
                kernel_slice(p, &rx, nx, &ry, ny, kind, K);
            }
            rj_tensor_scatter(out, b, h, K);
            over = over || kernel_overflows(K, nx, ny, b, h, &why);
        }
    if (s == RFJIT_OK && over) /* every slice written, Inf where it overflows */
        s = rj_fail(dg, RFJIT_E_RANGE, "%s", why.msg);
    rj_est_jit_free(&ej);
    rj_free(Kf);
    rows_free(&rx);
    rows_free(&ry);
    rj_free(K);
    rj_fit_scratch_free(&fs);
    return s;
}
