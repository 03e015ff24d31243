/* SPDX-License-Identifier: MIT */
/*
 * This file cuts exact attention's queries of one (sequence, key/value group) into blocks
 * that the pool's threads run at once, so that one head spreads over all cores. Each block
 * is one kernel call on consecutive whole tiles, so the softmax template still serves up to
 * gq of them per pass over the keys (single-tile passes cost a fifth more per tile). Block
 * boundaries sit where the work done so far reaches t / tasks of the whole: causal queries
 * see more keys the later they come, so equal lengths would leave the core with the first
 * block idle while another runs the last. A query's bits do not depend on its block (each
 * block starts on the tile grid of the whole sequence, with its own diagonal offset), so the
 * cut only balances the load and never changes a result.
 */
#ifndef RJ_QUERY_BLOCKS_H
#define RJ_QUERY_BLOCKS_H

#include "core/base.h"

/* The shape of a cut, the same for every (sequence, group) of a call. */
typedef struct rj_qcut {
    int64_t tasks; /* blocks per (sequence, group); 1: no cut */
    int64_t T;     /* the kernel's query tile */
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

/* Block `task` (< cut->tasks) of a sequence of lq queries on lk keys, the first at diagonal
 * offset qoff: queries [*first, *first + *n), *n = 0 when the block is empty. The blocks of a
 * sequence cover its queries once, in order. */
void rj_qcut_block(const rj_qcut *cut, int64_t lq, int64_t lk, int64_t qoff, int64_t task,
                   int64_t *first, int64_t *n);

#endif
