/* SPDX-License-Identifier: MIT */
/*
 * Streaming decode with the causal state API, as in text generation: a prompt (the first
 * quarter of the tokens) goes into the state in one prefill, then the other tokens arrive
 * one at a time, and each step costs the same however long the sequence is, because a
 * linear plan carries only its (S, z) state. At the end the streamed outputs are checked
 * against one causal execute over the whole sequence.
 *
 *     decode_stream [TOKENS]        (default 2000; B = 1, H = 8, d = dv = 64, m = 128)
 */
#include <rfjit.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { H = 8, D = 64, M = 128 };

static void fill(float *x, size_t n, uint64_t s)
{
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
    }
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const int64_t T = argc > 1 ? atoll(argv[1]) : 2000;
    if (T < 1)
        return 2;
    /* q, k, v as (1, H, T, D): token t of head h at row t */
    const size_t n = (size_t)H * (size_t)T * D;
    float *q = malloc(n * sizeof *q), *k = malloc(n * sizeof *k), *v = malloc(n * sizeof *v);
    float *streamed = malloc(n * sizeof *q), *whole = malloc(n * sizeof *q);
    fill(q, n, 1);
    fill(k, n, 2);
    fill(v, n, 3);

    rfjit_ctx *ctx = NULL;
    rfjit_plan *plan = NULL;
    rfjit_decode *state = NULL;
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.m = M;
    a.causal = 1; /* decoding needs a causal plan */
    a.estimator = "positive";
    rfjit_status s = rfjit_ctx_create(NULL, &ctx);
    if (s == RFJIT_OK)
        s = rfjit_plan_create(ctx, &a, &plan);
    if (s == RFJIT_OK)
        s = rfjit_decode_create(plan, 1, H, &state);
    /* the prompt: tokens 0 .. P - 1 of every head in one call, their outputs too */
    const int64_t P = T / 4;
    if (s == RFJIT_OK && P > 0) {
        rfjit_tensor tq = {q, {1, H, P, D}, {0, T * D, D, 1}};
        rfjit_tensor tk = {k, {1, H, P, D}, {0, T * D, D, 1}};
        rfjit_tensor tv = {v, {1, H, P, D}, {0, T * D, D, 1}};
        rfjit_tensor to = {streamed, {1, H, P, D}, {0, T * D, D, 1}};
        rfjit_tensor_ex xq = rfjit_tensor_ex_of(&tq), xk = rfjit_tensor_ex_of(&tk);
        rfjit_tensor_ex xv = rfjit_tensor_ex_of(&tv), xo = rfjit_tensor_ex_of(&to);
        rfjit_decode_args pa = RFJIT_DECODE_ARGS_INIT;
        pa.q = &xq, pa.k = &xk, pa.v = &xv, pa.out = &xo;
        s = rfjit_decode_prefill(state, &pa);
    }
    /* one step: views of token t in every head (rows T apart), output likewise */
    const double t0 = now();
    for (int64_t t = P; t < T && s == RFJIT_OK; t++) {
        rfjit_tensor tq = {q + t * D, {1, H, 1, D}, {0, T * D, D, 1}};
        rfjit_tensor tk = {k + t * D, {1, H, 1, D}, {0, T * D, D, 1}};
        rfjit_tensor tv = {v + t * D, {1, H, 1, D}, {0, T * D, D, 1}};
        rfjit_tensor to = {streamed + t * D, {1, H, 1, D}, {0, T * D, D, 1}};
        s = rfjit_decode_step(state, &tq, &tk, &tv, &to);
    }
    const double per_step = (now() - t0) / (double)(T - P);
    if (s != RFJIT_OK) {
        fprintf(stderr, "decode_stream: %s (%s)\n", rfjit_status_string(s),
                rfjit_ctx_last_error(ctx));
        return 1;
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, H, T, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, H, T, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, H, T, D);
    rfjit_tensor to = rfjit_tensor_contiguous(whole, 1, H, T, D);
    if ((s = rfjit_plan_execute(plan, &tq, &tk, &tv, &to)) != RFJIT_OK) {
        fprintf(stderr, "decode_stream: %s\n", rfjit_ctx_last_error(ctx));
        return 1;
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)streamed[i] - whole[i]));
    printf("prefilled %lld tokens, decoded %lld x %d heads at %.1f us per step; "
           "max |streamed - whole| = %.2g\n",
           (long long)P, (long long)(T - P), H, per_step * 1e6, worst);
    rfjit_decode_destroy(state);
    rfjit_plan_destroy(plan);
    rfjit_ctx_destroy(ctx);
    free(q);
    free(k);
    free(v);
    free(streamed);
    free(whole);
    return worst < 1e-4 ? 0 : 1; /* float rounding of two summation orders */
}
