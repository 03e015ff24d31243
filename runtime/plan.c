/* SPDX-License-Identifier: MIT */
/*
 * This file makes and frees plans: descriptor validation, the projection matrix (drawn from
 * the seed or copied from the user), the parameters that can be fixed once (every non-fitted
 * estimator, or a fitted one frozen by a calibration sample) and the choice of backend.
 */
#include "runtime/plan.h"
#include "core/half.h"
#include "core/proj.h"
#include "est/ref.h"
#include "runtime/compat_math.h"
#include "runtime/exec.h"
#include "runtime/exec_compat.h"
#include "runtime/plan_fit.h"
#include "runtime/tensor.h"
#include "runtime/xform.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Far above any useful m, and small enough that m * d * 8 and M * L stay representable. */
#define RJ_MAX_M (1 << 20)

static rfjit_status unknown_estimator(rj_diag *dg, const char *name)
{
    char list[256] = "";
    size_t pos = 0;
    for (int i = 0; i < rj_est_count && pos < sizeof list; i++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%s", i ? ", " : "",
                                rj_est_registry[i]->name);
    return rj_fail(dg, RFJIT_E_NO_ESTIMATOR, "unknown estimator '%s' (known: %s)", name,
                   list);
}

/* The descriptor's compat name as an rj_compat, refused where it does not apply. */
static rfjit_status read_compat(const rfjit_attn_desc *d, rj_spec *s, rj_diag *dg)
{
    s->compat = RJ_COMPAT_NONE;
    if (!d->compat)
        return RFJIT_OK;
    int c = 0;
    while (c < RJ_COMPAT_COUNT && strcmp(rj_compat_name(c), d->compat) != 0)
        c++;
    RJ_FAIL_IF(dg, c == RJ_COMPAT_COUNT, RFJIT_E_INVALID_ARG,
               "compat mode '%.64s' is unknown (known: none, performer-pytorch, "
               "google-performer, fast-transformers)",
               d->compat);
    RJ_FAIL_IF(dg, !rj_compat_applies(c, s->est), RFJIT_E_NOT_APPLICABLE,
               "compat mode '%s' reproduces estimator %s only, not '%s'", rj_compat_name(c),
               rj_compat_estimators(c), s->est->name);
    s->compat = c;
    return RFJIT_OK;
}

/* The descriptor's eva_variant as an rj_eva_variant, refused for other estimators. */
static rfjit_status read_eva_variant(const rfjit_attn_desc *d, rj_spec *s, rj_diag *dg)
{
    s->eva_variant = RJ_EVA_PRINCIPLED;
    if (!d->eva_variant)
        return RFJIT_OK;
    int v = 0;
    while (v < RJ_EVA_VARIANT_COUNT && strcmp(rj_eva_variant_name(v), d->eva_variant) != 0)
        v++;
    RJ_FAIL_IF(dg, v == RJ_EVA_VARIANT_COUNT, RFJIT_E_INVALID_ARG,
               "eva variant '%.64s' is unknown (known: principled, official)", d->eva_variant);
    RJ_FAIL_IF(dg, strcmp(s->est->name, "eva") != 0, RFJIT_E_NOT_APPLICABLE,
               "eva variant '%s' applies to estimator eva only, not '%s'", d->eva_variant,
               s->est->name);
    s->eva_variant = v;
    return RFJIT_OK;
}

rfjit_status rj_plan_check(const rfjit_attn_desc *d, rj_spec *s, rj_diag *dg)
{
    const rj_est_ops *est = d->estimator ? rj_est_find(d->estimator) : rj_est_default();
    if (!est)
        return unknown_estimator(dg, d->estimator);
    memset(s, 0, sizeof *s);
    s->est = est;
    s->d = d->d;
    s->dv = d->dv ? d->dv : d->d;
    s->m = d->m;
    s->causal = d->causal;
    s->proj = d->projection;
    s->eva_window = d->eva_window;
    s->eva_chunks = d->eva_chunks;
    s->sparse_block = d->sparse_block;
    s->sparse_exact = d->sparse_exact;
    s->compute = d->compute;
    s->hrf_n = d->hybrid_signs;
    s->hrf_base = d->hybrid_base;
    if (d->d < 1 || d->d > RJ_MAX_D)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "d = %d is outside [1, %d]", d->d,
                       RJ_MAX_D);
    if (d->dv < 0 || s->dv > (1 << 20))
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "dv = %d is outside [0, 2^20]", d->dv);
    if (!(d->scale == 0 || (d->scale > 0 && isfinite(d->scale))))
        return rj_fail(dg, RFJIT_E_INVALID_ARG,
                       "scale = %g is not a finite number > 0 (or 0 for 1/sqrt(d))", d->scale);
    s->scale = d->scale != 0 ? d->scale : rj_default_scale(d->d);
    if (d->fallback != 0 && d->fallback != 1)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "fallback = %d is not 0 or 1", d->fallback);
    if (d->causal != 0 && d->causal != 1)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "causal = %d is not 0 or 1", d->causal);
    if (!rj_dtype_size(d->dtype))
        return rj_fail(dg, RFJIT_E_DTYPE,
                       "dtype = %d is not RFJIT_F32 (0), RFJIT_F16 (1) or RFJIT_BF16 (2)",
                       d->dtype);
    if (d->compute != RFJIT_F32 && d->compute != RFJIT_BF16)
        return rj_fail(dg, RFJIT_E_DTYPE, "compute = %d is not RFJIT_F32 (0) or RFJIT_BF16 (2)",
                       d->compute);
    if (d->backend != RFJIT_BACKEND_AUTO && d->backend != RFJIT_BACKEND_REFERENCE &&
        d->backend != RFJIT_BACKEND_JIT)
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "backend = %d is unknown", d->backend);
    if (!(est->flags & RJ_EST_NOPROJ)) {
        if (d->m < 1 || d->m > RJ_MAX_M)
            return rj_fail(dg, RFJIT_E_INVALID_ARG, "m = %d is outside [1, %d]", d->m,
                           RJ_MAX_M);
        if (d->projection < RFJIT_PROJ_ORTHOGONAL || d->projection > RFJIT_PROJ_USER)
            return rj_fail(dg, RFJIT_E_INVALID_ARG, "projection kind %d is unknown",
                           d->projection);
        if (!(est->proj_kinds & (1u << d->projection)))
            return rj_fail(dg, RFJIT_E_NOT_APPLICABLE,
                           "estimator '%s' does not accept projection kind %d", est->name,
                           d->projection);
        if (d->projection == RFJIT_PROJ_USER && !d->projection_matrix)
            return rj_fail(dg, RFJIT_E_INVALID_ARG,
                           "RFJIT_PROJ_USER needs projection_matrix (m x d floats)");
    }
    RJ_TRY(read_compat(d, s, dg));
    RJ_TRY(read_eva_variant(d, s, dg));
    char why[256] = "";
    if (!est->valid(s, why, sizeof why))
        return rj_fail(dg, RFJIT_E_INVALID_ARG, "estimator '%s': %s", est->name,
                       why[0] ? why : "invalid parameters");
    RJ_TRY(rj_xform_check(d->transform, s, dg));
    if ((d->calib_q != NULL) != (d->calib_k != NULL))
        return rj_fail(dg, RFJIT_E_INVALID_ARG,
                       "calibration needs both calib_q and calib_k");
    return RFJIT_OK;
}

static rfjit_status make_projection(rfjit_plan *p, const rfjit_attn_desc *d, rj_diag *dg)
{
    const rj_spec *s = &p->spec;
    if (s->est->flags & RJ_EST_NOPROJ)
        return RFJIT_OK;
    RJ_FAIL_IF(dg, !rj_fits_memory((size_t)s->m * (size_t)s->d * sizeof(double)),
               RFJIT_E_TOO_LARGE, "the %d x %d projection does not fit this machine's memory",
               s->m, s->d);
    p->W = rj_alloc_array((size_t)s->m * (size_t)s->d, sizeof(double));
    RJ_FAIL_IF(dg, !p->W, RFJIT_E_NOMEM, "no memory for the %d x %d projection", s->m, s->d);
    if (s->proj != RFJIT_PROJ_USER)
        return rj_proj_draw(s->proj, p->seed, s->m, s->d, p->W, dg);
    for (size_t i = 0; i < (size_t)s->m * (size_t)s->d; i++) {
        float w = d->projection_matrix[i];
        RJ_FAIL_IF(dg, !isfinite(w), RFJIT_E_NONFINITE,
                   "projection_matrix[%zu] (row %zu) is not finite", i, i / (size_t)s->d);
        p->W[i] = w;
    }
    return RFJIT_OK;
}

/* Statistics of a calibration sample: every (batch, head) of calib_q / calib_k pooled. */
static rfjit_status calibrate(rfjit_plan *p, const rfjit_attn_desc *d, rj_diag *dg)
{
    const rfjit_tensor *tq = d->calib_q, *tk = d->calib_k;
    RJ_TRY(rj_tensor_check(tq, "calib_q", false, dg));
    RJ_TRY(rj_tensor_check(tk, "calib_k", false, dg));
    RJ_FAIL_IF(dg, tq->shape[3] != p->spec.d || tk->shape[3] != p->spec.d, RFJIT_E_SHAPE,
               "calibration samples must have last dimension d = %d", p->spec.d);
    RJ_TRY(rj_tensor_check_finite(tq, "calib_q", dg));
    RJ_TRY(rj_tensor_check_finite(tk, "calib_k", dg));
    rj_stats st;
    RJ_TRY(rj_stats_init(&st, p->spec.d));
    int64_t rows = tq->shape[2] > tk->shape[2] ? tq->shape[2] : tk->shape[2];
    /* the rows, then the transform's scales a (d) and their scratch (2 d) */
    double *buf = rj_alloc_array((size_t)(rows + 3) * (size_t)p->spec.d, sizeof(double));
    rfjit_status s = buf ? RFJIT_OK : rj_fail(dg, RFJIT_E_NOMEM, "no memory for calibration");
    double scale = rj_plan_input_scale(&p->spec), *a = buf ? buf + rows * p->spec.d : NULL;
    if (s == RFJIT_OK && p->spec.xform) {
        const rfjit_tensor *qk[2] = {tq, tk};
        rj_xform_calib_scales(&p->spec, qk, buf, a + p->spec.d, a);
    }
    for (int role = 0; role < 2 && s == RFJIT_OK; role++) {
        const rfjit_tensor *t = role ? tk : tq;
        for (int64_t b = 0; b < t->shape[0]; b++)
            for (int64_t h = 0; h < t->shape[1]; h++) {
                rj_tensor_gather(t, b, h, scale, buf);
                if (p->spec.xform)
                    rj_xform_calib_rows(p, role, buf, t->shape[2], a);
                rj_stats_add(&st, role, buf, t->shape[2]);
            }
    }
    if (s == RFJIT_OK)
        s = p->spec.est->fit(&p->spec, p->W, p->seed, &st, p->params, NULL, dg);
    rj_free(buf);
    rj_stats_free(&st);
    return s;
}

/* bf16 compute is a kernel's hardware instruction: where no kernel can run it the plan is
 * refused, never computed in float or emulated. */
static rfjit_status check_bf16(const rfjit_plan *p, rj_diag *dg)
{
    if (p->spec.compute != RFJIT_BF16)
        return RFJIT_OK;
    RJ_FAIL_IF(dg, p->spec.est->tmpl == RJ_TMPL_BLOCKSPARSE, RFJIT_E_NOT_APPLICABLE,
               "compute = RFJIT_BF16: estimator '%s' composes float loops and has no bfloat16 "
               "kernel",
               p->spec.est->name);
    RJ_FAIL_IF(dg, p->backend == RFJIT_BACKEND_REFERENCE, RFJIT_E_NOT_APPLICABLE,
               "compute = RFJIT_BF16 is a JIT kernel's; the reference backend computes in "
               "double");
    RJ_FAIL_IF(dg, !p->ctx->isa.bf16dot, RFJIT_E_ISA,
               "compute = RFJIT_BF16 needs AVX512-BF16 (vdpbf16ps) at the avx512 ISA; this "
               "context compiles for '%s' on %s, which has no such instruction",
               p->ctx->isa.name, p->ctx->isa.cpu);
    return RFJIT_OK;
}

/* Pick the backend: the JIT kernel unless asked for the reference or the estimator has none
 * (then AUTO falls back and says why, JIT refuses; a Performer compat mode takes its float32
 * path rather than the double reference). Frozen parameters are lowered now. */
static rfjit_status choose_backend(rfjit_plan *p, rj_diag *dg)
{
    RJ_TRY(check_bf16(p, dg));
    p->spec.amx = p->ctx->isa.amx;
    if (p->backend == RFJIT_BACKEND_REFERENCE)
        return RFJIT_OK;
    /* blocksparse composes compat_math's float loops rather than compiling a kernel: both
     * AUTO and JIT ask for its float path */
    if (p->spec.est->tmpl == RJ_TMPL_BLOCKSPARSE)
        return rj_exec_blocksparse_prepare(p, dg);
    rj_diag why = {{0}};
    rfjit_status s = rj_kplan_make(&p->spec, &p->tiling, p->ctx->isa.max_vw, p->ctx->isa.fma,
                                   &p->kp, &why);
    if (s != RFJIT_OK && p->spec.compute == RFJIT_BF16)
        return rj_fail(dg, s, "%s", why.msg);
    if (s == RFJIT_E_NOT_APPLICABLE && p->backend == RFJIT_BACKEND_AUTO &&
        rj_cm_applies(&p->spec)) {
        snprintf(p->why_reference, sizeof p->why_reference,
                 "compat mode '%s' has no JIT kernel; path=compat-f32, its float32 executor",
                 rj_compat_name(p->spec.compat));
        return rj_compat_prepare(p, dg);
    }
    if (s == RFJIT_E_NOT_APPLICABLE && p->backend == RFJIT_BACKEND_AUTO) {
        snprintf(p->why_reference, sizeof p->why_reference, "%.180s", why.msg);
        return RFJIT_OK;
    }
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "%s", why.msg);
    RJ_TRY(rj_kplan_set_dtypes(&p->kp, p->dtype, p->dtype, dg));
    s = rj_kcache_get(p->ctx->kc, &p->kp, &p->fn, &why);
    if ((s == RFJIT_E_INTERNAL || s == RFJIT_E_JIT || s == RFJIT_E_TARGET) && p->fallback &&
        p->spec.compute != RFJIT_BF16) {
        snprintf(p->why_reference, sizeof p->why_reference,
                 "fallback: the JIT failed (%s): %.180s", rj_status_text(s), why.msg);
        return RFJIT_OK;
    }
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "%s", why.msg);
    rj_kcache_symbol(p->ctx->kc, &p->kp, p->sym, sizeof p->sym);
    atomic_store(&p->kvar[0][p->dtype][p->dtype], p->fn);
    p->jit = 1;
    if (p->frozen) {
        p->kpar = rj_alloc_array(2 * (size_t)p->kp.role_floats, sizeof(float));
        RJ_FAIL_IF(dg, !p->kpar, RFJIT_E_NOMEM, "no memory for kernel parameters");
        RJ_TRY(rj_lower_params(p, p->params, p->kpar, dg));
    }
    return RFJIT_OK;
}

/* kp with tiles of one vector of queries: the softmax template puts a tile's queries on the
 * vector lanes, so a call of a few queries (a decode step) fills one vector rather than a
 * whole tile; its scratch fits in the plan's. */
static rfjit_status one_vector_tiles(const rfjit_plan *p, rj_kplan *kp, rj_diag *dg)
{
    const rfjit_tiling t = {p->kp.vw, p->kp.vw, p->kp.ri, p->kp.rj};
    RJ_TRY(rj_kplan_make(&p->spec, &t, p->kp.vw, p->kp.fma, kp, dg));
    RJ_FAIL_IF(dg, kp->ws_floats > p->kp.ws_floats, RFJIT_E_INTERNAL,
               "a one-vector tile needs more scratch than the plan's tile");
    return RFJIT_OK;
}

static rfjit_status kernel_variant(const rfjit_plan *p, int small, int dt_in, int dt_out,
                                   rj_kernel_fn *fn, rj_diag *dg)
{
    *fn = NULL;
    RJ_FAIL_IF(dg, !rj_dtype_size(dt_in) || !rj_dtype_size(dt_out), RFJIT_E_DTYPE,
               "dtype %d is not RFJIT_F32 (0), RFJIT_F16 (1) or RFJIT_BF16 (2)",
               rj_dtype_size(dt_in) ? dt_out : dt_in);
    RJ_FAIL_IF(dg, !p->jit, RFJIT_E_INTERNAL, "the plan has no JIT kernel");
    rfjit_plan *mp = (rfjit_plan *)p; /* the variant table is a cache, not plan state */
    *fn = atomic_load_explicit(&mp->kvar[small][dt_in][dt_out], memory_order_acquire);
    if (*fn)
        return RFJIT_OK;
    rj_kplan kp = p->kp;
    if (small)
        RJ_TRY(one_vector_tiles(p, &kp, dg));
    RJ_TRY(rj_kplan_set_dtypes(&kp, dt_in, dt_out, dg));
    pthread_mutex_lock(&mp->kvar_mu);
    rfjit_status s = RFJIT_OK;
    *fn = atomic_load_explicit(&mp->kvar[small][dt_in][dt_out], memory_order_relaxed);
    if (!*fn)
        s = rj_kcache_get(p->ctx->kc, &kp, fn, dg);
    if (s == RFJIT_OK)
        atomic_store_explicit(&mp->kvar[small][dt_in][dt_out], *fn, memory_order_release);
    pthread_mutex_unlock(&mp->kvar_mu);
    return s;
}

rfjit_status rj_plan_kernel_for(const rfjit_plan *p, int dt_in, int dt_out, rj_kernel_fn *fn,
                                rj_diag *dg)
{
    return kernel_variant(p, 0, dt_in, dt_out, fn, dg);
}

rfjit_status rj_plan_kernel_for_rows(const rfjit_plan *p, int64_t max_lq, int dt_in, int dt_out,
                                     rj_kernel_fn *fn, rj_diag *dg)
{
    /* softmax kernels only (exact attention's, and eva's, which exec_eva.c runs): a linear
     * kernel's tile is also its causal chunk */
    const bool small = p->jit && p->kp.tmpl == RJ_TMPL_SOFTMAX && p->kp.T > p->kp.vw &&
                       max_lq <= p->kp.vw;
    return kernel_variant(p, small, dt_in, dt_out, fn, dg);
}

rfjit_status rj_plan_create(rfjit_ctx *ctx, const rfjit_attn_desc *desc_in, rfjit_plan **out,
                            rj_diag *dg)
{
    *out = NULL;
    RJ_FAIL_IF(dg, !desc_in, RFJIT_E_INVALID_ARG, "rfjit_plan_create: desc is NULL");
    rfjit_attn_desc d = RFJIT_ATTN_DESC_INIT;
    RJ_TRY(rj_desc_read(&d, sizeof d, desc_in, desc_in->size, dg));
    rj_spec spec;
    RJ_TRY(rj_plan_check(&d, &spec, dg));

    rfjit_plan *p = rj_alloc_zero(sizeof *p);
    RJ_FAIL_IF(dg, !p, RFJIT_E_NOMEM, "no memory for a plan");
    if (pthread_mutex_init(&p->pool_mu, NULL) != 0) {
        rj_free(p);
        return rj_fail(dg, RFJIT_E_THREAD, "cannot create a plan's lock");
    }
    if (pthread_mutex_init(&p->kvar_mu, NULL) != 0) {
        pthread_mutex_destroy(&p->pool_mu);
        rj_free(p);
        return rj_fail(dg, RFJIT_E_THREAD, "cannot create a plan's lock");
    }
    p->ctx = ctx;
    p->spec = spec;
    p->seed = d.seed;
    p->backend = d.backend;
    p->fallback = d.fallback;
    p->tiling = d.tiling;
    p->dtype = d.dtype;
    p->M = spec.est->feature_dim(&spec);
    p->nparams = spec.est->params_size(&spec);
    rfjit_status s = make_projection(p, &d, dg);
    if (s == RFJIT_OK && !(p->params = rj_alloc_array(p->nparams ? p->nparams : 1,
                                                       sizeof(double))))
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for %zu parameters", p->nparams);
    if (s == RFJIT_OK && (spec.xform & RFJIT_XFORM_WHITEN) && d.calib_q)
        s = rj_xform_plan_whiten(p, d.calib_q, d.calib_k, dg);
    if (s == RFJIT_OK && !(spec.est->flags & RJ_EST_FITTED)) {
        s = spec.est->fit(&p->spec, p->W, p->seed, NULL, p->params, NULL, dg);
        p->frozen = 1;
    } else if (s == RFJIT_OK && d.calib_q) {
        s = calibrate(p, &d, dg);
        p->frozen = 1;
    }
    if (s == RFJIT_OK)
        s = choose_backend(p, dg);
    if (s != RFJIT_OK) {
        rj_plan_free(p);
        return s;
    }
    *out = p;
    return RFJIT_OK;
}

void rj_plan_free(rfjit_plan *p)
{
    if (!p)
        return;
    rj_exec_pool_free(p);
    pthread_mutex_destroy(&p->pool_mu);
    pthread_mutex_destroy(&p->kvar_mu);
    rj_free(p->W);
    rj_free(p->params);
    rj_free(p->kpar);
    rj_free(p->xA);
    rj_free(p->cwt);
    rj_free(p);
}
