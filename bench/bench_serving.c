/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit bench --suite serving`: what the serving features cost against the
 * plain call they replace, at B = 4, H = 8, L = 4096, d = dv = 64, m = 256, each as the
 * median of the ratios of adjacent timed executes, interleaved (A B A B ...) in the same run,
 * so that a clock or load change slower than one pair moves both sides alike:
 *   padding  key_lengths = query_lengths = L/2 against full length (positive both ways, exact
 *            causal): the padded half must be skipped, not masked (target <= 0.55)
 *   gqa      Hkv = 1 against Hkv = H (positive both ways): one key state per group (<= 0.6)
 *   f16/bf16 half-precision q, k, v and output against float32 (positive both ways, exact
 *            causal): same arithmetic, half the memory traffic (<= 1.0)
 * Padded rows of the padded case are zeros the library writes; the inputs are the same
 * N(0, 1/sqrt d) q, k and N(0, 1) v as the other suites, drawn once.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SB = 4, SH = 8, SL = 4096, SD = 64, SM = 256 };

/* One call's inputs: q (SB, SH, SL, SD), k, v (SB, hkv, SL, SD) of one dtype, and out. */
typedef struct serving_call {
    rfjit_tensor_ex q, k, v, out;
    const int32_t *key_lengths, *query_lengths;
} serving_call;

typedef struct serving_data {
    float *q, *k, *v, *out;        /* float32, k and v with SH heads */
    uint16_t *hq, *hk, *hv, *hout; /* half bits of one dtype at a time */
} serving_data;

static rfjit_tensor_ex view(void *data, int64_t h, int32_t dtype)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    const int64_t shape[4] = {SB, h, SL, SD};
    t.data = data;
    t.dtype = dtype;
    for (int i = 3; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = i == 3 ? 1 : t.stride[i + 1] * shape[i + 1];
    }
    return t;
}

/* The first hkv heads of each batch entry of k: Hkv heads are a view with the batch stride
 * of SH heads, as a server's cache of fewer heads would be laid out by its own rules. */
static rfjit_tensor_ex kv_view(void *data, int64_t hkv, int32_t dtype)
{
    rfjit_tensor_ex t = view(data, SH, dtype);
    t.shape[1] = hkv;
    return t;
}

static void to_half(const float *x, uint16_t *h, size_t n, int32_t dtype)
{
    for (size_t i = 0; i < n; i++)
        h[i] = dtype == RFJIT_F16 ? cli_f32_to_f16(x[i]) : cli_f32_to_bf16(x[i]);
}

/* The times of plan on a and b, interleaved, runs each after two warm-ups of each, and the
 * ratios b / a of each adjacent pair (a load change slower than one pair cancels in them). */
static int time_pair(const rfjit_plan *pa, const serving_call *a, const rfjit_plan *pb,
                     const serving_call *b, int runs, bench_time *ta, bench_time *tb,
                     bench_time *ratio)
{
    double ms[2][1000];
    for (int r = -2; r < runs; r++)
        for (int w = 0; w < 2; w++) {
            const serving_call *c = w ? b : a;
            rfjit_attn_args args = RFJIT_ATTN_ARGS_INIT;
            args.q = &c->q;
            args.k = &c->k;
            args.v = &c->v;
            args.out = &c->out;
            args.key_lengths = c->key_lengths;
            args.query_lengths = c->query_lengths;
            const double t0 = cli_now();
            if (rfjit_plan_execute_args(w ? pb : pa, &args) != RFJIT_OK)
                return -1;
            if (r >= 0)
                ms[w][r] = 1e3 * (cli_now() - t0);
        }
    double pr[1000];
    for (int r = 0; r < runs; r++)
        pr[r] = ms[1][r] / ms[0][r];
    bench_time_of(pr, runs, ratio);
    bench_time_of(ms[0], runs, ta);
    bench_time_of(ms[1], runs, tb);
    return 0;
}

typedef struct serving_case {
    const char *name, *estimator, *base, *test;
    int causal;
    double target;
} serving_case;

static void print_case(const serving_case *c, const bench_time *ta, const bench_time *tb,
                       const bench_time *pr, int json)
{
    const double ratio = pr->med;
    const int pass = ratio <= c->target;
    /* spread: (max - min) / median of each side, the run's noise */
    const double sa = (ta->max - ta->min) / ta->med, sb = (tb->max - tb->min) / tb->med;
    if (json) {
        printf("{\"suite\":\"serving\",\"case\":\"%s\",\"estimator\":\"%s\",\"causal\":%d,"
               "\"B\":%d,\"H\":%d,\"L\":%d,\"d\":%d,\"dv\":%d,\"m\":%d,\"base\":\"%s\","
               "\"base_ms\":%.3f,\"base_min_ms\":%.3f,\"base_max_ms\":%.3f,\"test\":\"%s\","
               "\"test_ms\":%.3f,\"test_min_ms\":%.3f,\"test_max_ms\":%.3f,\"runs\":%d,"
               "\"ratio\":%.4f,\"ratio_min\":%.4f,\"ratio_max\":%.4f,\"ratio_of_medians\":%.4f,"
               "\"target\":%.2f,\"pass\":%s,\"spread\":%.4f}\n",
               c->name, c->estimator, c->causal, SB, SH, SL, SD, SD, SM, c->base, ta->med, ta->min,
               ta->max, c->test, tb->med, tb->min, tb->max, ta->runs, ratio, pr->min, pr->max,
               tb->med / ta->med, c->target, pass ? "true" : "false", sa > sb ? sa : sb);
    } else {
        printf("%-8s %-9s %-6s  %-13s %9.1f ms (%.1f-%.1f)  %-13s %9.1f ms (%.1f-%.1f)  "
               "ratio %.3f (%.3f-%.3f)  target <= %.2f  %s\n",
               c->name, c->estimator, c->causal ? "causal" : "bidir", c->base, ta->med, ta->min,
               ta->max, c->test, tb->med, tb->min, tb->max, ratio, pr->min, pr->max, c->target,
               pass ? "pass" : "FAIL");
    }
    fflush(stdout);
}

static int plan_for(rfjit_ctx *ctx, const char *est, int causal, int32_t dtype, rfjit_plan **p)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = a.dv = SD;
    a.m = SM;
    a.causal = causal;
    a.dtype = dtype;
    a.backend = RFJIT_BACKEND_JIT;
    return rfjit_plan_create(ctx, &a, p) == RFJIT_OK ? 0 : -1;
}

/* One case: the base and test calls of c on its plans. */
static int run_case(rfjit_ctx *ctx, const serving_case *c, serving_data *d, int runs, int json)
{
    static const int32_t half_len[SB] = {SL / 2, SL / 2, SL / 2, SL / 2};
    const int32_t dtype = !strcmp(c->name, "f16")    ? RFJIT_F16
                          : !strcmp(c->name, "bf16") ? RFJIT_BF16
                                                     : RFJIT_F32;
    serving_call a = {view(d->q, SH, RFJIT_F32),
                      kv_view(d->k, SH, RFJIT_F32),
                      kv_view(d->v, SH, RFJIT_F32),
                      view(d->out, SH, RFJIT_F32),
                      NULL,
                      NULL};
    serving_call b = a;
    if (!strcmp(c->name, "padding")) {
        b.key_lengths = b.query_lengths = half_len;
    } else if (!strcmp(c->name, "gqa")) {
        b.k = kv_view(d->k, 1, RFJIT_F32);
        b.v = kv_view(d->v, 1, RFJIT_F32);
    } else {
        const size_t nq = (size_t)SB * SH * SL * SD;
        to_half(d->q, d->hq, nq, dtype);
        to_half(d->k, d->hk, nq, dtype);
        to_half(d->v, d->hv, nq, dtype);
        b = (serving_call){view(d->hq, SH, dtype),
                           kv_view(d->hk, SH, dtype),
                           kv_view(d->hv, SH, dtype),
                           view(d->hout, SH, dtype),
                           NULL,
                           NULL};
    }
    rfjit_plan *pa = NULL, *pb = NULL;
    bench_time ta, tb, pr;
    int rc = plan_for(ctx, c->estimator, c->causal, RFJIT_F32, &pa) ||
             plan_for(ctx, c->estimator, c->causal, dtype, &pb) ||
             time_pair(pa, &a, pb, &b, runs, &ta, &tb, &pr);
    if (rc)
        rc = cli_error("bench", CLI_FAILED, "serving %s %s: %s", c->name, c->estimator,
                       rfjit_ctx_last_error(ctx));
    else
        print_case(c, &ta, &tb, &pr, json);
    rfjit_plan_destroy(pa);
    rfjit_plan_destroy(pb);
    return rc;
}

static const serving_case cases[] = {
    {"padding", "positive", "full", "half-length", 0, 0.55},
    {"padding", "positive", "full", "half-length", 1, 0.55},
    {"padding", "exact", "full", "half-length", 1, 0.55},
    {"gqa", "positive", "Hkv=8", "Hkv=1", 0, 0.6},
    {"gqa", "positive", "Hkv=8", "Hkv=1", 1, 0.6},
    {"f16", "positive", "float32", "float16", 0, 1.0},
    {"f16", "positive", "float32", "float16", 1, 1.0},
    {"f16", "exact", "float32", "float16", 1, 1.0},
    {"bf16", "positive", "float32", "bfloat16", 0, 1.0},
    {"bf16", "positive", "float32", "bfloat16", 1, 1.0},
    {"bf16", "exact", "float32", "bfloat16", 1, 1.0},
};

int bench_serving(rfjit_ctx *ctx, int runs, int json)
{
    const size_t n = (size_t)SB * SH * SL * SD;
    serving_data d = {malloc(n * sizeof(float)),    malloc(n * sizeof(float)),
                      malloc(n * sizeof(float)),    malloc(n * sizeof(float)),
                      malloc(n * sizeof(uint16_t)), malloc(n * sizeof(uint16_t)),
                      malloc(n * sizeof(uint16_t)), malloc(n * sizeof(uint16_t))};
    int rc = CLI_OK;
    if (!d.q || !d.k || !d.v || !d.out || !d.hq || !d.hk || !d.hv || !d.hout)
        rc = cli_error("bench", CLI_FAILED, "out of memory for the serving inputs");
    if (rc == CLI_OK) {
        cli_normals(d.q, n, pow(SD, -0.25), 1);
        cli_normals(d.k, n, pow(SD, -0.25), 2);
        cli_normals(d.v, n, 1.0, 3);
        if (!json)
            printf("serving: B = %d, H = %d, L = %d, d = dv = %d, m = %d; %d interleaved runs of "
                   "base and test each (after two warm-ups each); ratio = median (min-max) "
                   "of test / base over adjacent pairs\n",
                   SB, SH, SL, SD, SM, runs);
    }
    for (size_t i = 0; rc == CLI_OK && i < sizeof cases / sizeof *cases; i++)
        rc = run_case(ctx, &cases[i], &d, runs, json);
    free(d.q), free(d.k), free(d.v), free(d.out);
    free(d.hq), free(d.hk), free(d.hv), free(d.hout);
    return rc;
}
