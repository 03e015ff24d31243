/* SPDX-License-Identifier: MIT */
/* This file implements runtime/query_blocks.h. */
#include "runtime/query_blocks.h"

/* A block's least work, in multiply-adds (about 0.1 ms of one core): a fork-join on the pool
 * costs 8 to 16 us on an idle pair of cores, far more when the worker has to wait for a core,
 * and the second core reads the keys and values into its own caches; below two of these
 * (L = 256 bidirectional, 362 causal at d = dv = 64) a head runs whole on one thread. */
#define QCUT_TASK_MIN_MACS ((double)(1 << 22))

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

rj_qcut rj_qcut_make(const rj_qcut_in *in)
{
    rj_qcut cut = {.tasks = 1, .T = in->T, .causal = in->causal};
    if (in->threads < 2 || in->groups >= 2 * in->threads || in->max_lq <= in->T)
        return cut;
    /* two blocks per thread, so a core slowed by a neighbour does not hold the other back,
     * while every block keeps two passes over the keys; at least one block per thread */
    const int64_t want = ceil_div(2 * in->threads, in->groups);
    const int64_t need = ceil_div(in->threads, in->groups);
    const int64_t pass = in->T * (in->ng > 1 ? 1 : in->gq);
    int64_t tasks = min64(want, max64(need, in->max_lq / (2 * pass)));
    const double seen = in->causal ? (double)in->max_lk - 0.5 * (double)in->max_lq
                                   : (double)in->max_lk;
    const double work = (double)in->ng * (double)in->max_lq * seen * (double)(in->d + in->dv);
    if (work < (double)tasks * QCUT_TASK_MIN_MACS)
        tasks = (int64_t)(work / QCUT_TASK_MIN_MACS);
    tasks = min64(tasks, ceil_div(in->max_lq, in->T));
    cut.tasks = tasks < 2 ? 1 : tasks;
    return cut;
}

/* The work (multiply-adds per d + dv) of query tile i: its rows times the keys it visits,
 * all of them, or causal those up to the end of its diagonal. */
static double tile_work(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t i)
{
    const int64_t qt = i * cut->T, rows = min64(cut->T, lq - qt);
    const int64_t keys = cut->causal ? min64(lk, max64(qt + cut->T + qoff, 0)) : lk;
    return (double)rows * (double)keys;
}

/* The tile where block t starts: the first whose work before it is nearest t / tasks of
 * the whole (so every boundary errs by at most half a tile's work). */
static int64_t boundary(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t t,
                        double total)
{
    const int64_t tiles = ceil_div(lq, cut->T);
    if (t >= cut->tasks)
        return tiles;
    const double goal = total * (double)t / (double)cut->tasks;
    double before = 0;
    for (int64_t i = 0; i < tiles; i++) {
        const double w = tile_work(cut, lq, lk, qoff, i);
        if (before + w > goal)
            return goal - before <= before + w - goal ? i : i + 1;
        before += w;
    }
    return tiles;
}

void rj_qcut_block(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t task,
                   int64_t *first, int64_t *n)
{
    *first = *n = 0;
    if (lq <= 0 || task >= cut->tasks)
        return;
    if (cut->tasks == 1) {
        *n = lq;
        return;
    }
    double total = 0;
    for (int64_t i = 0; i < ceil_div(lq, cut->T); i++)
        total += tile_work(cut, lq, lk, qoff, i);
    const int64_t b0 = boundary(cut, lq, lk, qoff, task, total);
    const int64_t b1 = boundary(cut, lq, lk, qoff, task + 1, total);
    *first = min64(lq, b0 * cut->T);
    *n = min64(lq, b1 * cut->T) - *first;
}
