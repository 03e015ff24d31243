/* SPDX-License-Identifier: MIT */
/*
 * This file holds the concurrency scenarios shared by the Criterion suite (tests/api/
 * test_concurrency.c) and the TSan driver (tests/tsan/tsan_driver.c, which cannot use
 * Criterion: its process arena does not fit TSan's address-space layout). One context shared
 * by many threads, the way an inference server uses it: threads creating and executing plans
 * of the same and of different specs at once compile each kernel exactly once (counted from
 * the verbose log), and every concurrent execute, of its own plan or of one plan shared by
 * all threads, writes the same bits as a serial run on a fresh context; over a shared disk
 * cache the first context compiles each kernel once and the next one loads them all; threads
 * failing at once, each differently, read back their own messages.
 */
#include "conc_testutil.h"

#include "rfjit.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
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

static int fail(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
    return 1;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void count_compiles(void *user, int level, const char *msg)
{
    (void)level;
    pthread_mutex_lock(&log_mu);
    if (strstr(msg, " compiled ("))
        ++*(int *)user;
    pthread_mutex_unlock(&log_mu);
}

static rfjit_ctx *make_ctx_on(const char *cache_dir, int threads, int *compiles)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = cache_dir;
    cd.wisdom_path = "";
    cd.threads = threads;
    cd.verbose = 1;
    cd.log = count_compiles;
    cd.log_user = compiles;
    rfjit_ctx *c = NULL;
    return rfjit_ctx_create(&cd, &c) == RFJIT_OK ? c : NULL;
}

static rfjit_ctx *make_ctx(int threads, int *compiles)
{
    return make_ctx_on("", threads, compiles);
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

static rfjit_status create_and_run(rfjit_ctx *c, int s, float *out)
{
    rfjit_attn_desc a = desc_of(s);
    rfjit_plan *p = NULL;
    rfjit_status st = rfjit_plan_create(c, &a, &p);
    if (st != RFJIT_OK)
        return st;
    rfjit_tensor tq = rfjit_tensor_contiguous(q, B, H, L, D);
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

/* Inputs, every spec's output and the number of kernels they need, on a fresh context, one
 * call at a time. */
static int serial_compiles;

int conc_setup(char *why, size_t n)
{
    fill(q, sizeof q / sizeof *q, 1);
    fill(k, sizeof k / sizeof *k, 2);
    fill(v, sizeof v / sizeof *v, 3);
    serial_compiles = 0;
    rfjit_ctx *c = make_ctx(2, &serial_compiles);
    if (!c)
        return fail(why, n, "context creation failed");
    for (int s = 0; s < N_SPECS; s++)
        if (create_and_run(c, s, serial[s]) != RFJIT_OK) {
            fail(why, n, "serial %s: %s", specs[s].est, rfjit_ctx_last_error(c));
            rfjit_ctx_destroy(c);
            return 1;
        }
    rfjit_ctx_destroy(c);
    if (serial_compiles < N_SPECS)
        return fail(why, n, "%d compiles for %d specs", serial_compiles, N_SPECS);
    return 0;
}

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
            w->st = create_and_run(w->ctx, s, w->out);
            if (w->st == RFJIT_OK && memcmp(w->out, serial[s], sizeof w->out)) {
                w->mismatches++;
                w->first_bad_spec = s;
            }
        }
    return NULL;
}

/* N_THREADS workers on one context over cache_dir; the number of compiles in *compiles. */
static int race_on(const char *cache_dir, int *compiles, char *why, size_t n)
{
    int bad = 0;
    *compiles = 0;
    rfjit_ctx *c = make_ctx_on(cache_dir, 2, compiles);
    if (!c)
        return fail(why, n, "context creation failed");
    static worker w[N_THREADS];
    pthread_t t[N_THREADS];
    int started = 0;
    for (; started < N_THREADS; started++) {
        w[started] = (worker){.ctx = c, .id = started, .first_bad_spec = -1, .st = RFJIT_OK};
        if (pthread_create(&t[started], NULL, create_execute_loop, &w[started]) != 0)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    if (started < N_THREADS)
        bad = fail(why, n, "pthread_create failed at thread %d", started);
    for (int i = 0; i < started && !bad; i++) {
        if (w[i].st != RFJIT_OK)
            bad = fail(why, n, "thread %d: %s", i, rfjit_ctx_last_error(c));
        else if (w[i].mismatches)
            bad = fail(why, n, "thread %d: %d outputs differ from serial, e.g. %s causal=%d", i,
                       w[i].mismatches, specs[w[i].first_bad_spec].est,
                       specs[w[i].first_bad_spec].causal);
    }
    rfjit_ctx_destroy(c);
    return bad;
}

int conc_create_and_execute(char *why, size_t n)
{
    int compiles = 0;
    if (race_on("", &compiles, why, n))
        return 1;
    if (compiles != serial_compiles)
        return fail(why, n, "%d threads x %d rounds compiled %d kernels; one thread compiled %d",
                    N_THREADS, ROUNDS, compiles, serial_compiles);
    return 0;
}

int conc_disk_cache(char *why, size_t n)
{
    char dir[] = "/tmp/rfjit_conc_XXXXXX";
    if (!mkdtemp(dir))
        return fail(why, n, "mkdtemp failed");
    char cache[64];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    int first = 0, second = 0;
    int bad = race_on(cache, &first, why, n);
    if (!bad && first != serial_compiles)
        bad = fail(why, n, "empty disk cache: %d compiles, one thread compiled %d", first,
                   serial_compiles);
    if (!bad)
        bad = race_on(cache, &second, why, n);
    if (!bad && second != 0)
        bad = fail(why, n, "full disk cache: %d compiles, want 0 (all loaded)", second);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0 && !bad)
        bad = fail(why, n, "could not remove %s", dir);
    return bad;
}

typedef struct shared_worker {
    const rfjit_plan *p;
    int mismatches;
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
int conc_shared_plan(char *why, size_t n)
{
    int compiles = 0, bad = 0;
    rfjit_ctx *c = make_ctx(2, &compiles);
    if (!c)
        return fail(why, n, "context creation failed");
    static const int which[] = {1, 2}; /* positive causal (linear), exact (softmax) */
    static shared_worker w[N_THREADS];
    for (size_t s = 0; s < sizeof which / sizeof *which && !bad; s++) {
        rfjit_attn_desc a = desc_of(which[s]);
        rfjit_plan *p = NULL;
        if (rfjit_plan_create(c, &a, &p) != RFJIT_OK) {
            bad = fail(why, n, "%s: %s", a.estimator, rfjit_ctx_last_error(c));
            break;
        }
        rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, L, D);
        rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, L, DV);
        for (int i = 0; i < N_THREADS && !bad; i++) {
            w[i] = (shared_worker){.p = p, .st = RFJIT_OK};
            fill(w[i].q, sizeof w[i].q / sizeof *w[i].q, 100 + (uint64_t)i);
            rfjit_tensor tq = rfjit_tensor_contiguous(w[i].q, B, H, L, D);
            rfjit_tensor to = rfjit_tensor_contiguous(w[i].want, B, H, L, DV);
            if (rfjit_plan_execute(p, &tq, &tk, &tv, &to) != RFJIT_OK)
                bad = fail(why, n, "serial execute: %s", rfjit_ctx_last_error(c));
        }
        pthread_t t[N_THREADS];
        int started = 0;
        for (; started < N_THREADS && !bad; started++)
            if (pthread_create(&t[started], NULL, execute_loop, &w[started]) != 0)
                break;
        for (int i = 0; i < started; i++)
            pthread_join(t[i], NULL);
        if (!bad && started < N_THREADS)
            bad = fail(why, n, "pthread_create failed at thread %d", started);
        for (int i = 0; i < started && !bad; i++)
            if (w[i].st != RFJIT_OK || w[i].mismatches)
                bad = fail(why, n, "%s causal=%d thread %d: status %d, %d of 10 outputs differ",
                           a.estimator, a.causal, i, (int)w[i].st, w[i].mismatches);
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(c);
    return bad;
}

/* Threads failing at once on one context, each in its own way (a plan with its own bad d or
 * estimator name, an execute of one shared plan with its own wrong output length), read back
 * their own message every time: last errors are per thread. The yield between the call and
 * the read is the window a binding has there (Python's GIL handoff). */
typedef struct {
    rfjit_ctx *c;
    const rfjit_plan *p;
    int id, wrong;
    char seen[256];
} failing_worker;

/* The start gate: the workers wait for it so that they fail at the same moments. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void check_own(failing_worker *w, rfjit_status st, const char *want)
{
    sched_yield();
    const char *m = rfjit_ctx_last_error(w->c);
    if (st == RFJIT_OK || !strstr(m, want)) {
        w->wrong++;
        snprintf(w->seen, sizeof w->seen, "%s (wanted '%s')", m, want);
    }
}

static void *failing_loop(void *arg)
{
    failing_worker *w = arg;
    char name[32], want[3][96];
    snprintf(name, sizeof name, "bogus%d", w->id);
    snprintf(want[0], sizeof want[0], "d = %d is outside", 2000 + w->id);
    snprintf(want[1], sizeof want[1], "unknown estimator 'bogus%d'", w->id);
    snprintf(want[2], sizeof want[2], "out length %d differs from q length 1", 2 + w->id);
    float x[D] = {0}, o[(2 + N_THREADS) * DV];
    rfjit_tensor tq = rfjit_tensor_contiguous(x, 1, 1, 1, D);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, 2 + w->id, DV);
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    for (int it = 0; it < 600; it++) {
        const int kind = (it + w->id) % 3;
        if (kind == 2) {
            check_own(w, rfjit_plan_execute(w->p, &tq, &tq, &tq, &to), want[2]);
            continue;
        }
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.m = M;
        a.d = kind ? D : 2000 + w->id;
        a.estimator = kind ? name : "positive";
        rfjit_plan *p = NULL;
        check_own(w, rfjit_plan_create(w->c, &a, &p), want[kind]);
        rfjit_plan_destroy(p);
    }
    return NULL;
}

int conc_failing_calls(char *why, size_t n)
{
    int compiles = 0;
    rfjit_ctx *c = make_ctx(2, &compiles);
    if (!c)
        return fail(why, n, "context: %s", rfjit_ctx_last_error(NULL));
    rfjit_attn_desc a = desc_of(0);
    rfjit_plan *p = NULL;
    int bad = rfjit_plan_create(c, &a, &p) != RFJIT_OK
                  ? fail(why, n, "plan: %s", rfjit_ctx_last_error(c))
                  : 0;
    failing_worker w[N_THREADS];
    pthread_t t[N_THREADS];
    int started = 0;
    gate_open = 0;
    for (; !bad && started < N_THREADS; started++) {
        w[started] = (failing_worker){.c = c, .p = p, .id = started};
        if (pthread_create(&t[started], NULL, failing_loop, &w[started]) != 0)
            break;
    }
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    if (!bad && started < N_THREADS)
        bad = fail(why, n, "pthread_create failed at thread %d", started);
    for (int i = 0; i < started && !bad; i++)
        if (w[i].wrong)
            bad = fail(why, n, "thread %d read %d messages not its own, e.g. %s", i, w[i].wrong,
                       w[i].seen);
    /* this thread never failed on c: nothing of the others' reaches it */
    if (!bad && rfjit_ctx_last_error(c)[0])
        bad = fail(why, n, "the main thread reads '%s'", rfjit_ctx_last_error(c));
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(c);
    return bad;
}
