/* SPDX-License-Identifier: MIT */
/*
 * This file checks the execute path's scratch reuse (runtime/exec_jit.c): after a first call,
 * repeated executes of a JIT plan touch no fresh pages (minor faults from getrusage), for a
 * fixed estimator, one that fits per call, exact and eva; and concurrent executes of one plan from
 * several threads each get their own scratch and the same bits as a lone call.
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum { L = 2048, D = 64 };

static long minor_faults(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

typedef struct job {
    const rfjit_plan *p;
    const rfjit_tensor *q, *k, *v;
    float *o;
    rfjit_status s;
} job;

static void *run(void *arg)
{
    job *j = arg;
    rfjit_tensor to = rfjit_tensor_contiguous(j->o, 1, 2, L, D);
    for (int i = 0; i < 5 && j->s == RFJIT_OK; i++)
        j->s = rfjit_plan_execute(j->p, j->q, j->k, j->v, &to);
    return NULL;
}

Test(exec_reuse, no_page_faults_and_threads_agree, .timeout = 120)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    /* one thread: with a pool, each thread's first slice makes its own scratch, and when
     * that first happens depends on scheduling; one thread makes "warm" mean one call */
    cd.threads = 1;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    const size_t n = (size_t)2 * L * D;
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float));
    float *v = malloc(n * sizeof(float)), *o[4];
    tu_fill_normal(q, n, 0.3, 1);
    tu_fill_normal(k, n, 0.3, 2);
    tu_fill_normal(v, n, 1.0, 3);
    for (int t = 0; t < 4; t++)
        o[t] = calloc(n, sizeof(float));
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 2, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 2, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 2, L, D);
    const char *ests[] = {"positive", "saderf", "exact", "eva"};
    for (int e = 0; e < 4; e++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = ests[e];
        a.d = D;
        a.m = 128;
        a.backend = RFJIT_BACKEND_JIT;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
        rfjit_tensor to = rfjit_tensor_contiguous(o[0], 1, 2, L, D);
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
        const long f0 = minor_faults();
        for (int i = 0; i < 10; i++)
            cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
        const long faults = minor_faults() - f0;
        /* before scratch reuse: ~1000 per execute for saderf's gathered rows */
        cr_expect_leq(faults, 4, "%s: %ld minor page faults in 10 warm executes", ests[e], faults);
        job jobs[3];
        pthread_t th[3];
        for (int t = 0; t < 3; t++) {
            jobs[t] = (job){p, &tq, &tk, &tv, o[t + 1], RFJIT_OK};
            cr_assert_eq(pthread_create(&th[t], NULL, run, &jobs[t]), 0);
        }
        for (int t = 0; t < 3; t++) {
            pthread_join(th[t], NULL);
            cr_expect_eq(jobs[t].s, RFJIT_OK, "%s thread %d", ests[e], t);
            cr_expect(memcmp(o[0], o[t + 1], n * sizeof(float)) == 0,
                      "%s: thread %d differs from a lone execute", ests[e], t);
        }
        rfjit_plan_destroy(p);
    }
    for (int t = 0; t < 4; t++)
        free(o[t]);
    free(q);
    free(k);
    free(v);
    rfjit_ctx_destroy(c);
}

/* The context's pool splits (batch, head) slices over threads: any thread count gives the
 * same bits, and a context asking for more threads than cores still works. */
/* Many short slices, and one long sequence whose keys run in blocks (exec_jit.c). */
static void thread_counts_agree(int64_t B, int64_t H, int64_t Ls)
{
    const size_t n = (size_t)(B * H * Ls * D);
    float *q = malloc(n * sizeof(float)), *k = malloc(n * sizeof(float));
    float *v = malloc(n * sizeof(float)), *o[3];
    tu_fill_normal(q, n, 0.3, 4);
    tu_fill_normal(k, n, 0.3, 5);
    tu_fill_normal(v, n, 1.0, 6);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, B, H, Ls, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, B, H, Ls, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, B, H, Ls, D);
    const char *ests[] = {"positive", "saderf", "exact", "trig"};
    static const int threads[3] = {1, 2, 5};
    for (int e = 0; e < 4; e++) {
        for (int t = 0; t < 3; t++) {
            rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
            cd.cache_dir = "";
            cd.wisdom_path = "";
            cd.threads = threads[t];
            rfjit_ctx *c = NULL;
            cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
            rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
            a.estimator = ests[e];
            a.d = D;
            a.m = 64;
            a.causal = e == 3;
            rfjit_plan *p = NULL;
            cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(c));
            o[t] = calloc(n, sizeof(float));
            rfjit_tensor to = rfjit_tensor_contiguous(o[t], B, H, Ls, D);
            cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
            rfjit_plan_destroy(p);
            rfjit_ctx_destroy(c);
        }
        for (int t = 1; t < 3; t++) {
            /* a long causal sequence with fewer slices than threads is scanned in blocks
             * (exec_jit.c): equal to float rounding, not bit for bit */
            if (e == 3 && B * H < threads[t] && Ls >= 4096) {
                double num = 0, den = 0;
                for (size_t i = 0; i < n; i++) {
                    num = fmax(num, fabs((double)o[t][i] - o[0][i]));
                    den = fmax(den, fabs((double)o[0][i]));
                }
                cr_expect(num <= 1e-5 * den, "%s L=%lld: %d threads differ from 1 by %g of %g",
                          ests[e], (long long)Ls, threads[t], num, den);
                continue;
            }
            cr_expect(memcmp(o[0], o[t], n * sizeof(float)) == 0,
                      "%s B=%lld H=%lld L=%lld: %d threads differ from 1", ests[e], (long long)B,
                      (long long)H, (long long)Ls, threads[t]);
        }
        for (int t = 0; t < 3; t++)
            free(o[t]);
    }
    free(q);
    free(k);
    free(v);
}

Test(exec_reuse, thread_counts_agree, .timeout = 120)
{
    thread_counts_agree(2, 3, 300);
    thread_counts_agree(1, 1, 9000);
}
