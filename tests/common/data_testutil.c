/* SPDX-License-Identifier: MIT */
/* This file implements tests/common/data_testutil.h. */
#include "data_testutil.h"

#include <math.h>

static uint64_t sm_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tu_fill_normal(float *x, size_t n, double scale, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(sm_next(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(sm_next(&s) >> 11) + 0.5) / 9007199254740992.0;
        x[i] = (float)(scale * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
}
