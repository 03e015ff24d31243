/* SPDX-License-Identifier: MIT */
/* This file lets the heavy test matrices (JIT equivalence, estimates, tuning, tiling) run a
 * slice under the sanitizers, where every JIT compile and Monte Carlo pass costs several times
 * more: the slice keeps every estimator, mode (bidirectional, causal) and ISA, and takes fewer
 * sizes and repetitions, rotated so that every size still appears somewhere. The full matrix
 * runs in the plain build (scripts/test.sh as README and CI's last stage run it). */
#ifndef RJ_SLICE_TESTUTIL_H
#define RJ_SLICE_TESTUTIL_H

/* 1 when RFJIT_TEST_SLICE is set to anything but "" or "0" (.ci/run's sanitizer stage). */
int tu_slice(void);

/* Whether the case with coordinates a and b (each counted from 0 within its own list of
 * sizes, na and nb long) belongs to the slice for the combination numbered key (estimator,
 * mode, ISA, ...): always outside slice mode; in it, exactly one (a, b) per key, rotating
 * with key so that consecutive keys visit every a and every b. */
int tu_slice_keeps(int key, int a, int na, int b, int nb);

#endif
