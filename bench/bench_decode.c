/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit bench --suite decode`: the decode API's one-token step and prefill on
 * positive causal plans, d = dv = 64, for B x H = 1 x 1, 1 x 8 and 8 x 8 slots x heads,
 * m = 128 and 256, on one and two threads. Per case:
 *   us_per_step       median over batches of steps of the time of one step of every slot
 *                     (warm, the state prefilled with a prompt first), and per head
 *   state_bytes       B H m (dv + 1) floats: S and z, what a step must read and write
 *   floor_us          measured in the same run: one read-and-write pass in address order
 *                     over a buffer of state_bytes (warm), the traffic a step cannot
 *                     avoid; timed right after each batch of steps (median of the
 *                     batches' medians)
 *   vs_floor          the median over batches of a batch's us_per_step over its own floor
 *   prefill_vs_causal a prompt of L tokens prefilled into reset slots (outputs written)
 *                     against one causal execute of the same shape, the median of the
 *                     ratios of adjacent interleaved calls
 *   vs_torch_recurrent the torch peer's recurrent loop (bench/peer_torch_decode.py) per step
 *                     over rfjit's, when the peers' interpreter (RFJIT_BENCH_PYTHON, else
 *                     /usr/bin/python3) imports torch
 * Targets, at B x H = 8, m = 256 on one thread (the issue's): us_per_step <= 25,
 * us_per_step <= 2 floor_us, prefill_vs_causal <= 1.1, vs_torch_recurrent >= 3.
 * decode-smoke runs the same on tiny sizes, for the tests.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DD = 64, NTOK = 16, PROMPT = 64 };

/* As the library's own state passes: built for AVX2 and AVX-512 too on x86-64, so the floor
 * is what the machine's vectors stream, not what baseline SSE2 does. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define FLOOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FLOOR_CLONES
#endif

typedef struct dec_case {
    int B, H, m, threads;
} dec_case;

typedef struct dec_size {
    int steps, prefill_L, floor_passes; /* steps per timed batch */
} dec_size;

typedef struct dec_res {
    bench_time step_us, floor_us, vs_floor, ratio;
    double prefill_ms, causal_ms, torch_us;
    size_t state_bytes;
} dec_res;

/* Eight floats as one value (the loop below in vectors whatever the optimiser's cost model). */
typedef float v8f __attribute__((vector_size(32)));

/* x = x / 2 + 1/4 over n floats (n a multiple of 8): each element read once and written
 * once, and the values stay bounded however many passes run. */
FLOOR_CLONES static void stream_pass(float *restrict x, size_t n)
{
    const v8f h = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    const v8f q = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    for (size_t i = 0; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v = v * h + q;
        memcpy(x + i, &v, sizeof v);
    }
}

/* The median of `passes` timed passes over x (n floats), after two warm ones: us. */
static double floor_pass_us(float *x, size_t n, int passes)
{
    double us[256];
    passes = passes < 256 ? passes : 256;
    for (int r = -2; r < passes; r++) {
        const double t0 = cli_now();
        stream_pass(x, n);
        if (r >= 0)
            us[r] = 1e6 * (cli_now() - t0);
    }
    bench_time t;
    bench_time_of(us, passes, &t);
    return t.med;
}

static rfjit_tensor_ex view(float *data, int64_t b, int64_t h, int64_t l, int64_t c)
{
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    const int64_t shape[4] = {b, h, l, c};
    t.data = data;
    for (int i = 3; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = i == 3 ? 1 : t.stride[i + 1] * shape[i + 1];
    }
    return t;
}

/* The inputs of one case: NTOK step tokens per slot and head, and a prompt of L tokens. */
typedef struct dec_data {
    float *q, *k, *v, *o;     /* NTOK x (B, H, 1, d) */
    float *pq, *pk, *pv, *po; /* (B, H, L, d) */
} dec_data;

static void data_free(dec_data *d)
{
    free(d->q), free(d->k), free(d->v), free(d->o);
    free(d->pq), free(d->pk), free(d->pv), free(d->po);
}

static int data_init(dec_data *d, const dec_case *c, int L)
{
    const size_t tok = (size_t)c->B * c->H * DD, pr = tok * (size_t)L;
    *d = (dec_data){malloc(sizeof(float) * tok * NTOK), malloc(sizeof(float) * tok * NTOK),
                    malloc(sizeof(float) * tok * NTOK), malloc(sizeof(float) * tok),
                    malloc(sizeof(float) * pr),         malloc(sizeof(float) * pr),
                    malloc(sizeof(float) * pr),         malloc(sizeof(float) * pr)};
    if (!d->q || !d->k || !d->v || !d->o || !d->pq || !d->pk || !d->pv || !d->po)
        return -1;
    const double s = pow(DD, -0.25); /* rows of norm about 1, as the other suites */
    cli_normals(d->q, tok * NTOK, s, 1);
    cli_normals(d->k, tok * NTOK, s, 2);
    cli_normals(d->v, tok * NTOK, 1.0, 3);
    cli_normals(d->pq, pr, s, 4);
    cli_normals(d->pk, pr, s, 5);
    cli_normals(d->pv, pr, 1.0, 6);
    return 0;
}

static int prefill(rfjit_decode *st, const dec_case *c, dec_data *d, int L, int with_out)
{
    rfjit_tensor_ex q = view(d->pq, c->B, c->H, L, DD), k = view(d->pk, c->B, c->H, L, DD);
    rfjit_tensor_ex v = view(d->pv, c->B, c->H, L, DD), o = view(d->po, c->B, c->H, L, DD);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &q, a.k = &k, a.v = &v;
    a.out = with_out ? &o : NULL;
    return rfjit_decode_prefill(st, &a) == RFJIT_OK ? 0 : -1;
}

static int step(rfjit_decode *st, const dec_case *c, dec_data *d, int t)
{
    const size_t tok = (size_t)c->B * c->H * DD, at = tok * (size_t)(t % NTOK);
    rfjit_tensor_ex q = view(d->q + at, c->B, c->H, 1, DD), k = view(d->k + at, c->B, c->H, 1, DD);
    rfjit_tensor_ex v = view(d->v + at, c->B, c->H, 1, DD), o = view(d->o, c->B, c->H, 1, DD);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &q, a.k = &k, a.v = &v, a.out = &o;
    return rfjit_decode_step_ex(st, &a) == RFJIT_OK ? 0 : -1;
}

/*
 * Steps of every slot, `runs` batches of sz->steps after a warm batch: us per step. Each
 * batch is followed by floor passes over fb (nf floats, the state's size), so that a step
 * and its floor see the same machine: on a shared host memory bandwidth drifts by a third
 * within a minute, and a floor timed apart from the steps judged them against another one.
 */
static int time_steps(rfjit_decode *st, const dec_case *c, dec_data *d, const dec_size *sz,
                      int runs, float *fb, size_t nf, dec_res *res)
{
    double us[1000], fl[1000], ratio[1000];
    if (rfjit_decode_reset_slots(st, NULL, 0) != RFJIT_OK || prefill(st, c, d, PROMPT, 0))
        return -1;
    for (int r = -1; r < runs; r++) {
        const double t0 = cli_now();
        for (int s = 0; s < sz->steps; s++)
            if (step(st, c, d, s))
                return -1;
        const double t1 = cli_now();
        const double f = floor_pass_us(fb, nf, sz->floor_passes);
        if (r >= 0) {
            us[r] = 1e6 * (t1 - t0) / sz->steps;
            fl[r] = f;
            ratio[r] = us[r] / f;
        }
    }
    bench_time_of(us, runs, &res->step_us);
    bench_time_of(fl, runs, &res->floor_us);
    bench_time_of(ratio, runs, &res->vs_floor);
    return 0;
}

/* A prompt of L tokens into reset slots against one causal execute, interleaved. */
static int time_prefill(rfjit_decode *st, const rfjit_plan *p, const dec_case *c, dec_data *d,
                        int L, int runs, dec_res *r)
{
    double pre[1000], ex[1000], ratio[1000];
    rfjit_tensor_ex q = view(d->pq, c->B, c->H, L, DD), k = view(d->pk, c->B, c->H, L, DD);
    rfjit_tensor_ex v = view(d->pv, c->B, c->H, L, DD), o = view(d->po, c->B, c->H, L, DD);
    rfjit_attn_args a = RFJIT_ATTN_ARGS_INIT;
    a.q = &q, a.k = &k, a.v = &v, a.out = &o;
    for (int i = -1; i < runs; i++) {
        if (rfjit_decode_reset_slots(st, NULL, 0) != RFJIT_OK)
            return -1;
        double t0 = cli_now();
        if (prefill(st, c, d, L, 1))
            return -1;
        const double t1 = cli_now();
        if (rfjit_plan_execute_args(p, &a) != RFJIT_OK)
            return -1;
        const double t2 = cli_now();
        if (i >= 0) {
            pre[i] = 1e3 * (t1 - t0);
            ex[i] = 1e3 * (t2 - t1);
            ratio[i] = pre[i] / ex[i];
        }
    }
    bench_time tp, te;
    bench_time_of(pre, runs, &tp);
    bench_time_of(ex, runs, &te);
    bench_time_of(ratio, runs, &r->ratio);
    r->prefill_ms = tp.med;
    r->causal_ms = te.med;
    return 0;
}

static int run_case(rfjit_ctx *ctx, const dec_case *c, const dec_size *sz, int runs, int torch,
                    dec_res *r, char *err, size_t len)
{
    rfjit_attn_desc ad = RFJIT_ATTN_DESC_INIT;
    ad.estimator = "positive";
    ad.d = ad.dv = DD;
    ad.m = c->m;
    ad.causal = 1;
    ad.backend = RFJIT_BACKEND_JIT;
    rfjit_decode_desc dd = RFJIT_DECODE_DESC_INIT;
    dd.slots = c->B;
    dd.heads = dd.kv_heads = c->H;
    rfjit_plan *p = NULL;
    rfjit_decode *st = NULL;
    dec_data d;
    r->state_bytes = (size_t)c->B * c->H * c->m * (DD + 1) * sizeof(float);
    const size_t nf = r->state_bytes / sizeof(float);
    float *fb = calloc(nf, sizeof(float));
    int rc = data_init(&d, c, sz->prefill_L) || !fb;
    if (rc)
        snprintf(err, len, "out of memory for the inputs");
    if (!rc && (rfjit_plan_create(ctx, &ad, &p) != RFJIT_OK ||
                rfjit_decode_create_ex(p, &dd, &st) != RFJIT_OK ||
                time_steps(st, c, &d, sz, runs, fb, nf, r) ||
                time_prefill(st, p, c, &d, sz->prefill_L, runs, r)))
        rc = -1, snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    free(fb);
    r->torch_us = NAN;
    char why[256];
    if (!rc && torch &&
        bench_torch_decode(c->B * c->H, c->m, DD, DD, c->threads, sz->steps, runs, &r->torch_us,
                           why, sizeof why) != 0)
        fprintf(stderr, "rfjit bench: torch decode peer: %s\n", why);
    rfjit_decode_destroy(st);
    rfjit_plan_destroy(p);
    data_free(&d);
    return rc;
}

/* The targets, judged at B x H = 8, m = 256, one thread only. */
static int target_case(const dec_case *c)
{
    return c->B * c->H == 8 && c->m == 256 && c->threads == 1;
}

static const char *verdict(int applies, int ok)
{
    return !applies ? "-" : ok ? "pass" : "FAIL";
}

static void print_json_num(const char *key, double x)
{
    if (isfinite(x))
        printf(",\"%s\":%.4g", key, x);
    else
        printf(",\"%s\":null", key);
}

static void print_res(const dec_case *c, const dec_size *sz, const dec_res *r, int json)
{
    const double us = r->step_us.med, vs_floor = r->vs_floor.med;
    const double vs_torch = r->torch_us / us;
    const int tc = target_case(c);
    const int ok_us = us <= 25, ok_floor = vs_floor <= 2, ok_pre = r->ratio.med <= 1.1;
    const int ok_torch = vs_torch >= 3;
    if (json) {
        printf("{\"suite\":\"decode\",\"estimator\":\"positive\",\"B\":%d,\"H\":%d,\"d\":%d,"
               "\"dv\":%d,\"m\":%d,\"threads\":%d,\"steps_per_run\":%d,\"runs\":%d",
               c->B, c->H, DD, DD, c->m, c->threads, sz->steps, r->step_us.runs);
        print_json_num("us_per_step", us);
        print_json_num("us_per_step_min", r->step_us.min);
        print_json_num("us_per_step_max", r->step_us.max);
        print_json_num("us_per_head_step", us / (c->B * c->H));
        printf(",\"state_bytes\":%zu", r->state_bytes);
        print_json_num("floor_us", r->floor_us.med);
        print_json_num("vs_floor", vs_floor);
        printf(",\"prefill_L\":%d", sz->prefill_L);
        print_json_num("prefill_ms", r->prefill_ms);
        print_json_num("causal_ms", r->causal_ms);
        print_json_num("prefill_vs_causal", r->ratio.med);
        print_json_num("torch_us_per_step", r->torch_us);
        print_json_num("vs_torch_recurrent", vs_torch);
        printf(",\"target_case\":%s", tc ? "true" : "false");
        if (tc)
            printf(",\"pass_us_per_step\":%s,\"pass_floor\":%s,\"pass_prefill\":%s,"
                   "\"pass_torch\":%s",
                   ok_us ? "true" : "false", ok_floor ? "true" : "false", ok_pre ? "true" : "false",
                   isfinite(vs_torch) ? (ok_torch ? "true" : "false") : "null");
        printf("}\n");
    } else {
        char torch[48] = "skipped";
        if (isfinite(vs_torch))
            snprintf(torch, sizeof torch, "%.1f us, vs %.2f %s", r->torch_us, vs_torch,
                     verdict(tc, ok_torch));
        printf("%2dx%-2d m=%-3d %dt  %8.1f us/step (%.1f-%.1f) %s  %6.2f us/head  %8zu B  "
               "floor %7.1f us, x%.2f %s  prefill %5d: %8.2f ms / causal %8.2f ms = %.3f %s  "
               "torch %s\n",
               c->B, c->H, c->m, c->threads, us, r->step_us.min, r->step_us.max, verdict(tc, ok_us),
               us / (c->B * c->H), r->state_bytes, r->floor_us.med, vs_floor, verdict(tc, ok_floor),
               sz->prefill_L, r->prefill_ms, r->causal_ms, r->ratio.med, verdict(tc, ok_pre),
               torch);
    }
    fflush(stdout);
}

int bench_decode(rfjit_ctx *const ctx[2], int smoke, int runs, int torch, int json)
{
    static const int bh[3][2] = {{1, 1}, {1, 8}, {8, 8}};
    const dec_size sz = smoke ? (dec_size){10, 256, 5} : (dec_size){200, 4096, 41};
    if (!json)
        printf("decode: positive causal, d = dv = %d, prompt %d tokens then %d steps per run "
               "x %d runs (median, min-max); targets at B x H = 8, m = 256, 1 thread: "
               "<= 25 us/step, <= 2x floor, prefill <= 1.1x causal, >= 3x torch\n",
               DD, PROMPT, sz.steps, runs);
    for (int t = 0; t < (smoke ? 1 : 2); t++)
        for (int i = 0; i < (smoke ? 2 : 3); i++)
            for (int m = 128; m <= (smoke ? 128 : 256); m *= 2) {
                const dec_case c = {bh[i][0], bh[i][1], m, t + 1};
                dec_res r;
                char err[512];
                if (run_case(ctx[t], &c, &sz, runs, torch, &r, err, sizeof err))
                    return cli_error("bench", CLI_FAILED, "decode %dx%d m=%d: %s", c.B, c.H, m,
                                     err);
                print_res(&c, &sz, &r, json);
            }
    return CLI_OK;
}
