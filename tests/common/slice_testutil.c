/* SPDX-License-Identifier: MIT */
/* This file implements slice_testutil.h: the sanitizer stage's slice of the heavy matrices. */
#include "slice_testutil.h"

#include <stdlib.h>
#include <string.h>

int tu_slice(void)
{
    const char *s = getenv("RFJIT_TEST_SLICE");
    return s && *s && strcmp(s, "0") != 0;
}

int tu_slice_keeps(int key, int a, int na, int b, int nb)
{
    if (!tu_slice())
        return 1;
    /* b moves with key / na so that (a, b) pairs differ between rounds of a */
    return a == key % na && b == (key + key / na) % nb;
}
