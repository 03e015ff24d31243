/* SPDX-License-Identifier: MIT */
/* This file gives the API-level suites their test data: a generator independent of the
 * library's own (splitmix64 feeding Box-Muller), so a bug in Philox cannot hide itself. */
#ifndef RJ_DATA_TESTUTIL_H
#define RJ_DATA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* x[i] = scale * N(0, 1), i < n, deterministic for seed. */
void tu_fill_normal(float *x, size_t n, double scale, uint64_t seed);

#endif
