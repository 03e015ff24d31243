/* SPDX-License-Identifier: MIT */
/*
 * This file is a context's thread pool: workers pinned one per allowed CPU, woken for one
 * fork-join job at a time; the caller works too. A caller that finds the pool busy (another
 * plan executing on the same context) runs its job alone rather than oversubscribe the cores.
 */
#ifndef RJ_POOL_H
#define RJ_POOL_H

#include "core/base.h"

typedef struct rj_pool rj_pool;
typedef void (*rj_pool_fn)(void *arg, int64_t task);

/* threads in all, the caller included (1: no workers). Errors: RFJIT_E_THREAD, NOMEM. */
rfjit_status rj_pool_create(int threads, rj_pool **out, rj_diag *dg);
void rj_pool_destroy(rj_pool *p); /* NULL is a no-op */
int rj_pool_threads(const rj_pool *p);
/* fn(arg, i) for every i in [0, n), spread over the pool; returns when all have run. */
void rj_pool_run(rj_pool *p, int64_t n, rj_pool_fn fn, void *arg);

#endif
