/* SPDX-License-Identifier: MIT */
/*
 * This file cuts exact attention's queries of one (sequence, key/value group) into tasks that
 * the pool's threads run at once, so that one head spreads over all cores. The queries are
 * cut into units (whole passes of the softmax template over the keys when there are enough of
 * them, else whole tiles), each unit costs its queries times the keys they see (causal: later
 * queries see more), and the units go to the tasks heaviest first, each to the task with the
 * least work so far. Equal tasks keep both cores busy to the end, which equal query blocks do
 * not for causal attention. A query's bits do not depend on its unit (each run of units is a
 * kernel call with its own diagonal offset, on the tile grid of the whole sequence), so the
 * cut only balances the load and never changes a result.
 */
#ifndef RJ_QUERY_BLOCKS_H
#define RJ_QUERY_BLOCKS_H

#include "core/base.h"

/* At most this many units per sequence (longer units past it), so that every task can work
 * out the whole assignment on its own, on the stack, in microseconds. */
#define RJ_QCUT_UNITS_MAX 256

/* The shape of a cut, the same for every (sequence, group) of a call. */
typedef struct rj_qcut {
    int64_t tasks; /* tasks per (sequence, group); 1: no cut */
    int64_t base;  /* units are whole multiples of it: a pass (gq tiles) or a tile */
    int64_t T;
    bool causal;
} rj_qcut;

/* What the cut is chosen from. */
typedef struct rj_qcut_in {
    int64_t groups, threads; /* (sequence, group) pairs of the call, and the pool's threads */
    int64_t max_lq, max_lk;  /* the call's longest query and key ranges */
    int64_t ng, d, dv;       /* query heads per group (one call takes them all), their dims */
    int64_t T, gq;           /* the kernel's tile, and tiles per pass of one query head */
    bool causal;
} rj_qcut_in;

rj_qcut rj_qcut_make(const rj_qcut_in *in);

/* The query ranges that task `task` (< cut->tasks) runs of a sequence of lq queries on lk keys,
 * the first at diagonal offset qoff: runs[i] = {first, length}, at most RJ_QCUT_UNITS_MAX, in
 * order; returns their count (0 when the task has nothing). */
int64_t rj_qcut_runs(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t task,
                     int64_t runs[][2]);

#endif
