/* SPDX-License-Identifier: MIT */
/*
 * This file checks one context shared by many threads, the way an inference server uses it:
 * threads creating and executing plans of the same and of different specs at once compile
 * each kernel exactly once (counted from the verbose log), and every concurrent execute,
 * of its own plan or of one plan shared by all threads, writes the same bits as a serial run
 * on a fresh context. It is also the suite the TSan stage of CI runs (scripts/tsan.sh).
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { B = 1, H = 2, L = 300, D = 16, DV = 16, M = 32, N_SPECS = 6, N_THREADS = 8, ROUNDS = 3 };

static const struct {
    const char *est;
    int causal;
} specs[N_SPECS] = {{"positive", 0}, {"positive", 1}, {"exact", 0},
                    {"exact", 1},    {"trig", 0},     {"hyperbolic", 1}};

static float q[B * H * L * D], k[B * H * L * D], v[B * H * L * DV];
static float serial[N_SPECS][B * H * L * DV];

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_compiles(void *user, int level, const char *msg)
{
    (void)level;
    pthread_mutex_lock(&log_mu);
    if (strstr(msg, " compiled ("))
        ++*(int *)user;
    pthread_mutex_unlock(&log_mu);
}

static rfjit_ctx *make_ctx(int threads, int *compiles)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.threads = threads;
    cd.verbose = 1;
    cd.log = count_compiles;
    cd.log_user = compiles;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    return c;
}

static rfjit_attn_desc desc_of(int s)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.estimator = specs[s].est;
    a.causal = specs[s].causal;
    a.seed = 11;
    a.backend = RFJIT_BACKEND_JIT;
    return a;
}

static rfjit_status create_and_run(rfjit_ctx *c, int s, const float *qq, float *out)
{
    rfjit_attn_desc a = desc_of(s);
    rfjit_plan *p = NULL;
    rfjit_status st = rfjit_plan_create(c, &a, &p);
    if (st != RFJIT_OK)
        return st;
    rfjit_tensor tq = rfjit_tensor_contiguous((float *)qq, B, H, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(out, B, H, L, DV);
    st = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
    rfjit_plan_destroy(p);
    return st;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 11) * 0x1.0p-53 - 0.5);
    }
}

/* Inputs, and every spec's output on a fresh context, one call at a time. */
static void setup(void)
{
    fill(q, sizeof q / sizeof *q, 1);
    fill(k, sizeof k / sizeof *k, 2);
    fill(v, sizeof v / sizeof *v, 3);
    int compiles = 0;
    rfjit_ctx *c = make_ctx(2, &compiles);
    for (int s = 0; s < N_SPECS; s++)
        cr_assert_eq(create_and_run(c, s, q, serial[s]), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);
}

TestSuite(concurrency, .init = setup);

typedef struct worker {
    rfjit_ctx *ctx;
    int id, mismatches, first_bad_spec;
    rfjit_status st;
    float out[B * H * L * DV];
} worker;

/* Rounds over every spec, each thread starting at a different one, so the first requests
 * for one kernel race from several threads and later ones hit the cache mid-compile. */
static void *create_execute_loop(void *arg)
{
    worker *w = arg;
    for (int r = 0; r < ROUNDS && w->st == RFJIT_OK; r++)
        for (int i = 0; i < N_SPECS && w->st == RFJIT_OK; i++) {
            const int s = (w->id + i) % N_SPECS;
            w->st = create_and_run(w->ctx, s, q, w->out);
            if (w->st == RFJIT_OK && memcmp(w->out, serial[s], sizeof w->out)) {
                w->mismatches++;
                w->first_bad_spec = s;
            }
        }
    return NULL;
}

Test(concurrency, threads_create_and_execute_plans_on_one_context, .timeout = 300)
{
    int serial_compiles = 0, compiles = 0;
    rfjit_ctx *one = make_ctx(2, &serial_compiles);
    static float scratch[B * H * L * DV];
    for (int s = 0; s < N_SPECS; s++)
        cr_assert_eq(create_and_run(one, s, q, scratch), RFJIT_OK);
    rfjit_ctx_destroy(one);

    rfjit_ctx *c = make_ctx(2, &compiles);
    static worker w[N_THREADS];
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){.ctx = c, .id = i, .first_bad_spec = -1, .st = RFJIT_OK};
        cr_assert_eq(pthread_create(&t[i], NULL, create_execute_loop, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N_THREADS; i++) {
        cr_expect_eq(w[i].st, RFJIT_OK, "thread %d: %s", i, rfjit_ctx_last_error(c));
        cr_expect_eq(w[i].mismatches, 0, "thread %d: %d outputs differ from serial, e.g. %s "
                     "causal=%d", i, w[i].mismatches,
                     w[i].first_bad_spec < 0 ? "-" : specs[w[i].first_bad_spec].est,
                     w[i].first_bad_spec < 0 ? -1 : specs[w[i].first_bad_spec].causal);
    }
    cr_expect(serial_compiles >= N_SPECS, "%d compiles for %d specs", serial_compiles, N_SPECS);
    cr_expect_eq(compiles, serial_compiles,
                 "%d threads x %d rounds compiled %d kernels; one thread compiled %d", N_THREADS,
                 ROUNDS, compiles, serial_compiles);
    rfjit_ctx_destroy(c);
}

typedef struct shared_worker {
    const rfjit_plan *p;
    int id, mismatches;
    rfjit_status st;
    float q[B * H * L * D], out[B * H * L * DV], want[B * H * L * DV];
} shared_worker;

static void *execute_loop(void *arg)
{
    shared_worker *w = arg;
    rfjit_tensor tq = rfjit_tensor_contiguous(w->q, B, H, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
    rfjit_tensor to = rfjit_tensor_contiguous(w->out, B, H, L, DV);
    for (int r = 0; r < 10 && w->st == RFJIT_OK; r++) {
        w->st = rfjit_plan_execute(w->p, &tq, &tk, &tv, &to);
        w->mismatches += w->st == RFJIT_OK && memcmp(w->out, w->want, sizeof w->out) != 0;
    }
    return NULL;
}

/* One plan of each template executed from 8 threads at once, each on its own queries (the
 * pool and the plan's scratch are shared): every output is the serial one. */
Test(concurrency, one_plan_executed_from_many_threads, .timeout = 300)
{
    int compiles = 0;
    rfjit_ctx *c = make_ctx(2, &compiles);
    static const int which[] = {1, 2}; /* positive causal (linear), exact (softmax) */
    static shared_worker w[N_THREADS];
    for (size_t s = 0; s < sizeof which / sizeof *which; s++) {
        rfjit_attn_desc a = desc_of(which[s]);
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK);
        rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
        rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
        for (int i = 0; i < N_THREADS; i++) {
            w[i] = (shared_worker){.p = p, .id = i, .st = RFJIT_OK};
            fill(w[i].q, sizeof w[i].q / sizeof *w[i].q, 100 + (uint64_t)i);
            rfjit_tensor tq = rfjit_tensor_contiguous(w[i].q, B, H, L, D);
            rfjit_tensor to = rfjit_tensor_contiguous(w[i].want, B, H, L, DV);
            cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
        }
        pthread_t t[N_THREADS];
        for (int i = 0; i < N_THREADS; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, execute_loop, &w[i]), 0);
        for (int i = 0; i < N_THREADS; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < N_THREADS; i++) {
            cr_expect_eq(w[i].st, RFJIT_OK, "%s thread %d: %s", a.estimator, i,
                         rfjit_ctx_last_error(c));
            cr_expect_eq(w[i].mismatches, 0, "%s causal=%d thread %d: %d of 10 outputs differ",
                         a.estimator, a.causal, i, w[i].mismatches);
        }
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(c);
}
