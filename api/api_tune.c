/* SPDX-License-Identifier: MIT */
/*
 * This file is the public face of the tuner (include/rfjit.h, Tuning): it checks the
 * descriptor, runs tuner/tune_search.c (or answers from wisdom), and keeps the table in a
 * result object whose accessors and JSON never fail on a valid result.
 */
#include "api/facade.h"
#include "runtime/ctx_wisdom.h"
#include "runtime/hash.h"
#include "runtime/tensor.h"
#include "tuner/tune.h"
#include "tuner/tune_record.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rfjit_tune_result {
    rj_tune_req req;
    rj_tune_out out;
    int from_wisdom;
    char info[896];
};

/* Candidates from a comma-separated list (NULL: all). */
static rfjit_status parse_estimators(rfjit_ctx *ctx, const char *list, uint32_t *mask)
{
    *mask = 0;
    if (!list) {
        for (int i = 0; i < rj_est_count; i++)
            *mask |= 1u << i;
        return RFJIT_OK;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int found = -1;
        for (int i = 0; i < rj_est_count; i++)
            if (strlen(rj_est_registry[i]->name) == n && !strncmp(rj_est_registry[i]->name, p, n))
                found = i;
        if (found < 0)
            return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                                "unknown estimator '%.*s' in the candidate list", (int)n, p);
        *mask |= 1u << found;
        p += n + (end != NULL);
    }
    if (*mask == 0)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "the candidate list is empty");
    return RFJIT_OK;
}

static rfjit_status check(rfjit_ctx *ctx, const rfjit_tune_desc *d, rj_tune_req *r)
{
    memset(r, 0, sizeof *r);
    if (d->d < 1 || d->d > RJ_MAX_D)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "d = %d is outside [1, %d]", d->d, RJ_MAX_D);
    if (d->dv < 0 || d->dv > (1 << 20))
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "dv = %d is outside [0, 2^20]", d->dv);
    if (d->causal != 0 && d->causal != 1)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "causal = %d is not 0 or 1", d->causal);
    if (d->L < 1 || d->L > (1 << 24))
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "L = %lld is outside [1, 2^24]",
                            (long long)d->L);
    if (!(d->budget > 0) || !isfinite(d->budget))
        return rj_ctx_failf(ctx, RFJIT_E_BUDGET,
                            "budget %g is not a positive finite number (it bounds a relative "
                            "squared error, e.g. 1e-2)", d->budget);
    if (d->budget_kind != RFJIT_BUDGET_OUTPUT && d->budget_kind != RFJIT_BUDGET_KERNEL)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "budget kind %d is unknown (RFJIT_BUDGET_OUTPUT or _KERNEL)",
                            d->budget_kind);
    if (d->patience < RFJIT_PATIENCE_ESTIMATE || d->patience > RFJIT_PATIENCE_WISDOM_ONLY)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "patience %d is unknown", d->patience);
    const int nc = !!d->calib_q + !!d->calib_k + !!d->calib_v;
    if (nc != 0 && nc != 3)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "calibration needs calib_q, calib_k and calib_v together");
    if (!nc && (!(d->synthetic_scale > 0) || !isfinite(d->synthetic_scale) ||
                d->synthetic_scale > 100))
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "synthetic_scale %g is outside (0, 100]", d->synthetic_scale);
    if (!nc && d->synthetic_profile != RFJIT_PROFILE_REAL_LIKE &&
        d->synthetic_profile != RFJIT_PROFILE_GAUSSIAN)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "synthetic_profile %d is unknown (RFJIT_PROFILE_REAL_LIKE or "
                            "RFJIT_PROFILE_GAUSSIAN)",
                            d->synthetic_profile);
    if (d->transforms != 0 && d->transforms != 1)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "transforms = %lld is not 0 (never) or 1 (consider them)",
                            (long long)d->transforms);
    if (!(d->scale == 0 || (d->scale > 0 && isfinite(d->scale))))
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "scale = %g is not a finite number > 0 (or 0 for 1/sqrt(d))", d->scale);
    RJ_TRY(parse_estimators(ctx, d->estimators, &r->est_mask));
    r->d = d->d;
    r->dv = d->dv ? d->dv : d->d;
    r->causal = d->causal;
    r->L = d->L;
    r->budget = d->budget;
    r->kind = d->budget_kind;
    r->patience = d->patience;
    r->seed = d->seed;
    r->cq = d->calib_q;
    r->ck = d->calib_k;
    r->cv = d->calib_v;
    r->scale = d->synthetic_scale;
    r->profile = nc ? RFJIT_PROFILE_GAUSSIAN : d->synthetic_profile;
    r->attn_scale = d->scale;
    r->transforms = (int32_t)d->transforms;
    r->progress = d->progress;
    r->progress_user = d->progress_user;
    return RFJIT_OK;
}

/* When exact is the only row that meets the budget, the row that missed it by the least
 * (error over budget at its largest m tried), so the user can tell whether a larger budget
 * would buy a faster plan; NULL otherwise or when no candidate got an error at all. */
static const rj_tune_row *closest(const rfjit_tune_result *res)
{
    const rj_tune_row *best = NULL;
    for (size_t i = 0; i < res->out.n; i++) {
        const rj_tune_row *x = &res->out.rows[i];
        if (x->meets && x->est->tmpl != RJ_TMPL_SOFTMAX)
            return NULL;
        if ((x->near_m > 0 || x->near_chunks > 0) && isfinite(x->near_err) &&
            (!best || x->near_err < best->near_err))
            best = x;
    }
    return best;
}

/* What the closest row's error is: ESTIMATE has only the model's prediction. */
static const char *near_kind(const rfjit_tune_result *res)
{
    return res->req.patience == RFJIT_PATIENCE_ESTIMATE ? "predicted error" : "error bound";
}

/* The parameters of a near miss: m, eva's window and chunk count, or blocksparse's m and exact
 * blocks. */
static void near_params(const rj_tune_row *c, char *buf, size_t n)
{
    if (c->est->tmpl == RJ_TMPL_EVA)
        snprintf(buf, n, "window = %d, chunks = %d", c->eva_window, c->near_chunks);
    else if (c->est->tmpl == RJ_TMPL_BLOCKSPARSE)
        snprintf(buf, n, "m = %d, %d exact blocks", c->near_m, c->sparse_exact);
    else
        snprintf(buf, n, "m = %d", c->near_m);
}

static void set_info(rfjit_tune_result *res)
{
    char near[240] = "", at[64];
    const rj_tune_row *c = res->from_wisdom ? NULL : closest(res);
    if (c) {
        near_params(c, at, sizeof at);
        snprintf(near, sizeof near,
                 "; only exact meets the budget: closest %s at %s with %s %.3g, %.3g "
                 "times the budget",
                 c->est->name, at, near_kind(res), c->near_err, c->near_err / res->req.budget);
    }
    snprintf(res->info, sizeof res->info,
             "%s; budget %g (%s) met when the one-sided 95%% upper confidence bound over %d "
             "fresh projection seeds (eva and exact in bf16, which have no random parameters: "
             "over %d contiguous slices of the calibration queries) is <= budget; transforms "
             "%s; tuned in %.2f s%s%s",
             res->out.calib, res->req.budget,
             res->req.kind == RFJIT_BUDGET_KERNEL ? "kernel" : "output", RJ_TUNE_CONFIRM_SEEDS,
             RJ_TUNE_SLICES,
             !res->req.transforms                   ? "off"
             : res->req.kind == RFJIT_BUDGET_KERNEL ? "off (kernel budget)"
                                                    : "chosen per estimator",
             res->out.wall_s, res->from_wisdom ? " (answered from wisdom)" : "", near);
}

/* Identity of the calibration data in a wisdom key: the synthetic profile and scale ("syn"
 * is the Gaussian one, as in records written before there were profiles), or a hash of the
 * user's sample (so other data is another problem). */
static rfjit_status calib_id(const rj_tune_req *r, char *buf, size_t n, rj_diag *dg)
{
    if (!r->cq) {
        snprintf(buf, n, "%s%.4g", r->profile == RFJIT_PROFILE_REAL_LIKE ? "real" : "syn",
                 r->scale);
        return RFJIT_OK;
    }
    const rfjit_tensor *t[3] = {r->cq, r->ck, r->cv};
    const void *parts[3];
    size_t sizes[3];
    float *copy[3] = {NULL, NULL, NULL};
    rfjit_status s = RFJIT_OK;
    for (int i = 0; i < 3 && s == RFJIT_OK; i++) {
        s = rj_tensor_check(t[i], i == 0 ? "calib_q" : i == 1 ? "calib_k" : "calib_v", false, dg);
        if (s != RFJIT_OK)
            break;
        const size_t cnt = (size_t)(t[i]->shape[0] * t[i]->shape[1] * t[i]->shape[2] *
                                    t[i]->shape[3]);
        copy[i] = rj_alloc_array(cnt, sizeof(float));
        if (!copy[i]) {
            s = rj_fail(dg, RFJIT_E_NOMEM, "no memory to hash the calibration set");
            break;
        }
        size_t k = 0;
        for (int64_t b = 0; b < t[i]->shape[0]; b++)
            for (int64_t h = 0; h < t[i]->shape[1]; h++)
                for (int64_t x = 0; x < t[i]->shape[2]; x++)
                    for (int64_t y = 0; y < t[i]->shape[3]; y++)
                        copy[i][k++] = t[i]->data[b * t[i]->stride[0] + h * t[i]->stride[1] +
                                                  x * t[i]->stride[2] + y * t[i]->stride[3]];
        parts[i] = copy[i];
        sizes[i] = cnt * sizeof(float);
    }
    if (s == RFJIT_OK) {
        rj_hash hh;
        rj_hash_parts(parts, sizes, 3, &hh);
        char hex[65];
        rj_hash_hex(&hh, hex);
        snprintf(buf, n, "cal%.16s", hex);
    }
    for (int i = 0; i < 3; i++)
        rj_free(copy[i]);
    return s;
}

/* Problem key (architecture.md 6): budget kind and value, direction, sizes, the softmax
 * scale unless it is the default (so records written before it was a parameter keep their
 * meaning), the length bucket (L rounded up to a power of two), calibration and candidate
 * set, whether transforms were considered (.x0 or .x1), and the record version
 * (tuner/tune_record.h: v1 answers never searched eva, v2 ones took no transform and bounded
 * eva over seeds, v3 ones never searched blocksparse, v4 ones never tried bf16). The scale is
 * written with %.17e: it reads back as the same double, and its exponent ends the number where a
 * bare "2." would swallow the dot before L. */
static rfjit_status wisdom_key(const rj_tune_req *r, char *key, size_t n, rj_diag *dg)
{
    int64_t bucket = 1;
    while (bucket < r->L)
        bucket *= 2;
    char cal[48], scale[40] = "";
    RJ_TRY(calib_id(r, cal, sizeof cal, dg));
    if (r->attn_scale != 0 && r->attn_scale != rj_default_scale(r->d))
        snprintf(scale, sizeof scale, ".scale%.17e", r->attn_scale);
    snprintf(key, n, "tune.%s.%s.d%d.dv%d%s.L%lld.b%.4e.%s.cand%x.x%d.v5",
             r->kind == RFJIT_BUDGET_KERNEL ? "kernel" : "output", r->causal ? "causal" : "bidir",
             r->d, r->dv, scale, (long long)bucket, r->budget, cal, (unsigned)r->est_mask,
             r->transforms);
    return RFJIT_OK;
}

static void wisdom_value(const rj_tune_row *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "est=%s m=%d vw=%d T=%d ri=%d rj=%d predicted=%.6e measured=%.6e bound=%.6e "
             "ms=%.6e seed=%llu window=%d chunks=%d xform=%d sblock=%d sexact=%d compute=%d",
             c->est->name, c->m, c->tiling.vw, c->tiling.T, c->tiling.ri, c->tiling.rj,
             c->predicted, c->measured, c->bound, c->time_ms, (unsigned long long)c->seed,
             c->eva_window, c->eva_chunks, c->transform, c->sparse_block, c->sparse_exact,
             c->compute);
}

/* The chosen row back from a wisdom record; 0 if it is not one this context can plan (then:
 * tune again). A bf16 answer needs the instruction, which a context of the same machine at a
 * lower ISA (rfjit_ctx_desc.isa) lacks. */
static int wisdom_row(const rfjit_ctx *ctx, const char *key, const char *v, rj_tune_row *c)
{
    rj_diag why = {{0}};
    if (rj_tune_record_check_for(key, v, ctx->isa.max_vw, ctx->isa.amx, c, &why) != RFJIT_OK)
        return 0;
    if (c->compute == RFJIT_BF16 && !ctx->isa.bf16dot)
        return 0;
    c->meets = c->pareto = c->chosen = 1;
    snprintf(c->note, sizeof c->note, "from wisdom");
    return 1;
}

rfjit_status rfjit_tune(rfjit_ctx *ctx, const rfjit_tune_desc *desc_in, rfjit_tune_result **out)
{
    if (out)
        *out = NULL;
    RJ_TRY(RJ_API_ARGS(ctx, "rfjit_tune", {ctx, "ctx"}, {out, "out"}, {desc_in, "desc"}));
    rfjit_tune_desc d = RFJIT_TUNE_DESC_INIT;
    RJ_TRY(RJ_API_DESC_READ(ctx, &d, desc_in));
    rj_diag dg = {{0}};
    rfjit_tune_result *res = rj_alloc_zero(sizeof *res);
    if (!res)
        return rj_ctx_failf(ctx, RFJIT_E_NOMEM, "no memory for a tuning result");
    rfjit_status s = check(ctx, &d, &res->req);
    if (s != RFJIT_OK) {
        rj_free(res);
        return s;
    }
    char key[256], val[512];
    int pat = 0;
    s = wisdom_key(&res->req, key, sizeof key, &dg);
    const int min_pat = res->req.patience == RFJIT_PATIENCE_WISDOM_ONLY ? 0 : res->req.patience;
    rj_tune_row row = {0};
    if (s == RFJIT_OK && rj_ctx_wisdom_get(ctx, key, min_pat, val, sizeof val, &pat) &&
        wisdom_row(ctx, key, val, &row)) {
        if (!(res->out.rows = rj_alloc_array(1, sizeof row))) {
            rj_free(res);
            return rj_ctx_failf(ctx, RFJIT_E_NOMEM, "no memory for a tuning result");
        }
        res->out.rows[0] = row;
        res->out.n = 1;
        res->from_wisdom = 1;
        snprintf(res->out.calib, sizeof res->out.calib, "wisdom record %.260s (patience %d)", key,
                 pat);
        set_info(res);
        *out = res;
        return RFJIT_OK;
    }
    if (s == RFJIT_OK && res->req.patience == RFJIT_PATIENCE_WISDOM_ONLY)
        s = rj_fail(&dg, RFJIT_E_NO_WISDOM, "no wisdom for this problem (key %s in %s)", key,
                    rfjit_wisdom_path(ctx)[0] ? rfjit_wisdom_path(ctx) : "no wisdom file");
    if (s == RFJIT_OK)
        s = rj_tune_run(ctx, &res->req, &res->out, &dg);
    if (s == RFJIT_OK) {
        wisdom_value(&res->out.rows[res->out.chosen], val, sizeof val);
        s = rj_ctx_wisdom_put(ctx, key, res->req.patience, val, &dg);
    }
    if (s != RFJIT_OK) {
        rj_tune_out_free(&res->out);
        rj_free(res);
        return rj_ctx_fail(ctx, s, &dg);
    }
    set_info(res);
    *out = res;
    return RFJIT_OK;
}

rfjit_status rfjit_tune_synthetic(const rfjit_tune_desc *desc_in, int64_t L, float *q, float *k,
                                  float *v)
{
    if (!desc_in || !q || !k || !v)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG,
                            "rfjit_tune_synthetic: desc, q, k and v must not be NULL");
    if (L < 1)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_tune_synthetic: L = %lld is < 1",
                            (long long)L);
    rfjit_tune_desc d = RFJIT_TUNE_DESC_INIT;
    RJ_TRY(RJ_API_DESC_READ(NULL, &d, desc_in));
    /* check() wants a whole request: give it the fields this call ignores */
    d.calib_q = d.calib_k = d.calib_v = NULL;
    d.budget = 1;
    d.budget_kind = RFJIT_BUDGET_OUTPUT;
    d.patience = RFJIT_PATIENCE_ESTIMATE;
    d.estimators = NULL;
    d.causal = 0;
    d.L = 1;
    rj_tune_req r;
    RJ_TRY(check(NULL, &d, &r));
    rj_diag dg = {{0}};
    const rfjit_status s = rj_calib_draw(&r, L, q, k, v, &dg);
    return s == RFJIT_OK ? s : rj_ctx_fail(NULL, s, &dg);
}

void rfjit_tune_result_destroy(rfjit_tune_result *r)
{
    if (!r)
        return;
    rj_tune_out_free(&r->out);
    rj_free(r);
}

rfjit_status rfjit_tune_result_plan(const rfjit_tune_result *r, rfjit_attn_desc *desc)
{
    if (!r || !desc)
        return RFJIT_E_INVALID_ARG;
    /* A caller built against an older header has a shorter descriptor: write only its size. */
    const size_t n = desc->size;
    if (n < offsetof(rfjit_attn_desc, fallback) || n > sizeof *desc || n % _Alignof(size_t))
        return rj_ctx_failf(NULL, RFJIT_E_DESC_SIZE,
                            "rfjit_tune_result_plan: desc->size = %zu is not the size of any "
                            "version of rfjit_attn_desc (fill it with RFJIT_ATTN_DESC_INIT)",
                            n);
    const rj_tune_row *c = &r->out.rows[r->out.chosen];
    /* a descriptor too short for compute gets the float32 plan of a bf16 answer, which is
     * within the budget too: exact has no error, and a twin's float32 row met it */
    rfjit_attn_desc full = rj_tune_row_desc(&r->req, c, c->seed);
    full.backend = RFJIT_BACKEND_AUTO;
    full.tiling = c->tiling;
    memcpy(desc, &full, n);
    desc->size = n;
    return RFJIT_OK;
}

size_t rfjit_tune_result_rows(const rfjit_tune_result *r)
{
    return r ? r->out.n : 0;
}

rfjit_status rfjit_tune_result_row(const rfjit_tune_result *r, size_t i, rfjit_tune_row *row)
{
    if (!r || !row || i >= r->out.n)
        return RFJIT_E_INVALID_ARG;
    const rj_tune_row *x = &r->out.rows[i];
    *row = (rfjit_tune_row){x->est->name,  x->m,         x->tiling,       x->predicted,
                            x->measured,   x->bound,     x->time_ms,      x->meets,
                            x->pareto,     x->chosen,    x->note,         x->eva_window,
                            x->eva_chunks, x->transform, x->sparse_block, x->sparse_exact,
                            x->compute};
    return RFJIT_OK;
}

const char *rfjit_tune_result_info(const rfjit_tune_result *r)
{
    return r ? r->info : "";
}

/* Appends to a fixed buffer, remembering overflow. */
typedef struct jbuf {
    char *p;
    size_t len, at;
    int over;
} jbuf;

__attribute__((format(printf, 2, 3))) static void jput(jbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->at, b->at < b->len ? b->len - b->at : 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->at + (size_t)n >= b->len)
        b->over = 1;
    else
        b->at += (size_t)n;
}

/* A JSON number, or null for NaN and infinities (JSON has neither). */
static void jnum(jbuf *b, const char *key, double x)
{
    if (isfinite(x))
        jput(b, "\"%s\": %.6g", key, x);
    else
        jput(b, "\"%s\": null", key);
}

static void jrow(jbuf *b, const rj_tune_row *x, int64_t M)
{
    jput(b, "\"estimator\": \"%s\", \"m\": %d, \"features\": %lld, ", x->est->name, x->m,
         (long long)M);
    jput(b, "\"tiling\": {\"vw\": %d, \"T\": %d, \"ri\": %d, \"rj\": %d}, ", x->tiling.vw,
         x->tiling.T, x->tiling.ri, x->tiling.rj);
    jput(b, "\"eva_window\": %d, \"eva_chunks\": %d, ", x->eva_window, x->eva_chunks);
    jput(b, "\"sparse_block\": %d, \"sparse_exact\": %d, ", x->sparse_block, x->sparse_exact);
    char xf[64];
    rj_tune_xform_name(x->transform, xf, sizeof xf);
    jput(b, "\"transform\": %d, \"transform_name\": \"%s\", ", x->transform, xf);
    jnum(b, "transform_ratio", x->transform ? x->xform_ratio : NAN);
    jput(b, ", \"compute\": \"%s\", ", x->compute == RFJIT_BF16 ? "bf16" : "f32");
    jnum(b, "predicted_error", x->predicted);
    jput(b, ", ");
    jnum(b, "measured_error", x->measured);
    jput(b, ", ");
    jnum(b, "error_bound", x->bound);
    jput(b, ", ");
    jnum(b, "time_ms", x->time_ms);
}

static int64_t features_of(const rj_tune_req *r, const rj_tune_row *x)
{
    if (x->m <= 0)
        return 0;
    /* the row's plan as rfjit_tune_result_plan describes it, with the descriptor's defaults */
    const rfjit_attn_desc a = rj_tune_row_desc(r, x, x->seed);
    rj_spec s;
    return rj_plan_check(&a, &s, NULL) == RFJIT_OK ? x->est->feature_dim(&s) : 0;
}

rfjit_status rfjit_tune_result_json(const rfjit_tune_result *r, char *buf, size_t len)
{
    if (!r || !buf || len == 0)
        return RFJIT_E_INVALID_ARG;
    jbuf b = {buf, len, 0, 0};
    const rj_tune_row *c = &r->out.rows[r->out.chosen];
    jput(&b, "{");
    jrow(&b, c, features_of(&r->req, c));
    jput(&b, ", \"budget\": %.6g, \"budget_kind\": \"%s\", \"causal\": %d, \"d\": %d, "
             "\"dv\": %d, \"L\": %lld, \"from_wisdom\": %s, \"tune_seconds\": %.3f, ",
         r->req.budget, r->req.kind == RFJIT_BUDGET_KERNEL ? "kernel" : "output", r->req.causal,
         r->req.d, r->req.dv, (long long)r->req.L, r->from_wisdom ? "true" : "false",
         r->out.wall_s);
    jput(&b, "\"calibration\": \"");
    for (const char *p = r->out.calib; *p; p++)
        jput(&b, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
    jput(&b, "\", \"profile\": \"%s\", \"closest\": ",
         r->req.cq                                   ? "user"
         : r->req.profile == RFJIT_PROFILE_REAL_LIKE ? "real-like"
                                                     : "gaussian");
    const rj_tune_row *near = r->from_wisdom ? NULL : closest(r);
    if (near) {
        jput(&b, "{\"estimator\": \"%s\", \"m\": %d, ", near->est->name, near->near_m);
        if (near->est->tmpl == RJ_TMPL_EVA)
            jput(&b, "\"eva_window\": %d, \"eva_chunks\": %d, ", near->eva_window,
                 near->near_chunks);
        if (near->est->tmpl == RJ_TMPL_BLOCKSPARSE)
            jput(&b, "\"sparse_block\": %d, \"sparse_exact\": %d, ", near->sparse_block,
                 near->sparse_exact);
        jnum(&b, "error", near->near_err);
        jput(&b, ", \"error_kind\": \"%s\", ", near_kind(r));
        jnum(&b, "over_budget", near->near_err / r->req.budget);
        jput(&b, "}");
    } else {
        jput(&b, "null");
    }
    jput(&b, ", \"table\": [");
    for (size_t i = 0; i < r->out.n; i++) {
        const rj_tune_row *x = &r->out.rows[i];
        jput(&b, "%s{", i ? ", " : "");
        jrow(&b, x, features_of(&r->req, x));
        jput(&b, ", \"meets_budget\": %s, \"pareto\": %s, \"chosen\": %s, \"note\": \"%s\"}",
             x->meets ? "true" : "false", x->pareto ? "true" : "false",
             x->chosen ? "true" : "false", x->note);
    }
    jput(&b, "]}");
    if (b.over) {
        buf[0] = 0;
        return RFJIT_E_INVALID_ARG;
    }
    return RFJIT_OK;
}
