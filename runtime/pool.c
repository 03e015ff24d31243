/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/pool.h. Tasks are handed out by an atomic counter, so a slow
 * task never holds up the others' share; a generation number tells sleeping workers that a
 * new job arrived. Worker w is pinned to the w-th CPU of the process's allowed set (the
 * caller keeps its own placement), so the operating system does not migrate kernels between
 * cores mid-run.
 */
#define _GNU_SOURCE
#include "runtime/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct rj_pool {
    int n;                     /* threads in all, caller included */
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    pthread_mutex_t busy;      /* one job at a time; others run inline */
    uint64_t gen;
    int stop, active;
    rj_pool_fn fn;
    void *arg;
    int64_t ntask;
    atomic_llong next;
};

static void drain(rj_pool *p, rj_pool_fn fn, void *arg, int64_t n)
{
    for (;;) {
        const int64_t i = atomic_fetch_add(&p->next, 1);
        if (i >= n)
            return;
        fn(arg, i);
    }
}

static void *worker(void *a)
{
    rj_pool *p = a;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->wake, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        rj_pool_fn fn = p->fn;
        void *arg = p->arg;
        const int64_t n = p->ntask;
        pthread_mutex_unlock(&p->mu);
        drain(p, fn, arg, n);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pin(pthread_t t, int k)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
        return;
    int seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &allowed) && seen++ == k) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(t, sizeof one, &one);
            return;
        }
}

rfjit_status rj_pool_create(int threads, rj_pool **out, rj_diag *dg)
{
    *out = NULL;
    RJ_FAIL_IF(dg, threads < 1 || threads > 1024, RFJIT_E_INVALID_ARG,
               "thread count %d is outside [1, 1024]", threads);
    rj_pool *p = rj_alloc_zero(sizeof *p);
    RJ_FAIL_IF(dg, !p, RFJIT_E_NOMEM, "no memory for a thread pool");
    p->n = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->next, 0);
    if (threads > 1 && !(p->th = rj_alloc_array((size_t)threads - 1, sizeof *p->th))) {
        rj_pool_destroy(p);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for a thread pool");
    }
    for (int w = 0; w < threads - 1; w++) {
        if (pthread_create(&p->th[w], NULL, worker, p) != 0) {
            p->n = w + 1; /* the ones that started */
            rj_pool_destroy(p);
            return rj_fail(dg, RFJIT_E_THREAD, "cannot start worker thread %d of %d", w + 1,
                           threads - 1);
        }
        pin(p->th[w], w + 1);
    }
    *out = p;
    return RFJIT_OK;
}

void rj_pool_destroy(rj_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int w = 0; w < p->n - 1 && p->th; w++)
        pthread_join(p->th[w], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->busy);
    rj_free(p->th);
    rj_free(p);
}

int rj_pool_threads(const rj_pool *p)
{
    return p ? p->n : 1;
}

void rj_pool_run(rj_pool *p, int64_t n, rj_pool_fn fn, void *arg)
{
    if (!p || p->n == 1 || n <= 1 || pthread_mutex_trylock(&p->busy) != 0) {
        for (int64_t i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->ntask = n;
    atomic_store(&p->next, 0);
    p->active = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    drain(p, fn, arg, n);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->busy);
}
