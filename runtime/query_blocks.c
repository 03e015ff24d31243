/* SPDX-License-Identifier: MIT */
/* This file implements runtime/query_blocks.h. */
#include "runtime/query_blocks.h"

#include <stdlib.h>

/* A task's least work, in multiply-adds (about 0.1 ms of one core): waking the pool and
 * warming a second core's caches cost tens of microseconds, so a head with less work than two
 * of these runs whole on one thread. */
#define QCUT_TASK_MIN_MACS ((double)(1 << 22))

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

rj_qcut rj_qcut_make(const rj_qcut_in *in)
{
    rj_qcut cut = {.tasks = 1, .base = in->T, .T = in->T, .causal = in->causal};
    if (in->threads < 2 || in->groups >= 2 * in->threads || in->max_lq <= in->T)
        return cut;
    /* two tasks per thread, so a core slowed by a neighbour does not hold the other back */
    int64_t tasks = ceil_div(2 * in->threads, in->groups);
    const int64_t need = ceil_div(in->threads, in->groups);
    const double seen = in->causal ? (double)in->max_lk - 0.5 * (double)in->max_lq
                                   : (double)in->max_lk;
    const double work = (double)in->ng * (double)in->max_lq * seen * (double)(in->d + in->dv);
    if (work < (double)tasks * QCUT_TASK_MIN_MACS)
        tasks = (int64_t)(work / QCUT_TASK_MIN_MACS);
    /* whole passes while every task gets two (so heavy and light units can pair up) */
    const int64_t pass = in->T * (in->ng > 1 ? 1 : in->gq);
    const int64_t passes = in->max_lq / pass;
    if (passes >= 2 * min64(tasks, need)) {
        cut.base = pass;
        tasks = min64(tasks, passes / 2);
    } else {
        tasks = min64(tasks, ceil_div(in->max_lq, in->T) / 2);
    }
    cut.tasks = tasks < 2 ? 1 : tasks;
    return cut;
}

/* Multiply-adds (up to a constant) of queries [s, s + n): each sees lk keys, or causal the
 * keys up to the end of its tile's diagonal. */
static double unit_work(const rj_qcut *cut, int64_t s, int64_t n, int64_t lk, int64_t qoff)
{
    if (!cut->causal)
        return (double)n * (double)lk;
    const int64_t mid = qoff + s + n / 2 + cut->T / 2;
    return (double)n * (double)min64(lk, mid > 1 ? mid : 1);
}

typedef struct unit {
    double work;
    int64_t index;
} unit;

/* Heaviest first, the earlier of equals first: a total order, so every task sorts alike. */
static int heavier_first(const void *a, const void *b)
{
    const unit *x = a, *y = b;
    if (x->work != y->work)
        return x->work > y->work ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The units go heaviest first to the least loaded task (the lower of equals), which every
 * task works out alike; then a task's adjacent units become one run. */
int64_t rj_qcut_runs(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t task,
                     int64_t runs[][2])
{
    if (lq <= 0 || task >= cut->tasks)
        return 0;
    if (cut->tasks == 1) {
        runs[0][0] = 0;
        runs[0][1] = lq;
        return 1;
    }
    const int64_t len = ceil_div(ceil_div(lq, cut->base), RJ_QCUT_UNITS_MAX) * cut->base;
    const int64_t m = ceil_div(lq, len), k = min64(cut->tasks, m);
    unit us[RJ_QCUT_UNITS_MAX];
    int64_t owner[RJ_QCUT_UNITS_MAX];
    double load[RJ_QCUT_UNITS_MAX] = {0};
    for (int64_t u = 0; u < m; u++)
        us[u] = (unit){unit_work(cut, u * len, min64(len, lq - u * len), lk, qoff), u};
    qsort(us, (size_t)m, sizeof us[0], heavier_first);
    for (int64_t i = 0; i < m; i++) {
        int64_t t = 0;
        for (int64_t j = 1; j < k; j++)
            if (load[j] < load[t])
                t = j;
        owner[us[i].index] = t;
        load[t] += us[i].work;
    }
    int64_t n = 0;
    for (int64_t u = 0; u < m; u++) {
        if (owner[u] != task)
            continue;
        const int64_t s = u * len, e = min64(lq, s + len);
        if (n > 0 && runs[n - 1][0] + runs[n - 1][1] == s) {
            runs[n - 1][1] = e - runs[n - 1][0];
        } else {
            runs[n][0] = s;
            runs[n][1] = e - s;
            n++;
        }
    }
    return n;
}
