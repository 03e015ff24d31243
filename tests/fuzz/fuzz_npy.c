/* SPDX-License-Identifier: MIT */
/*
 * This file is the libFuzzer target of the .npy reader (tools/npy.c, npy_parse: the whole of
 * npy_read after the file is in memory). Invariants: on success the data holds exactly
 * prod(shape) floats of a rank the reader allows; a refusal always says why.
 */
#include "npy.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_array a;
    char err[256];
    if (npy_parse(data, size, "fuzz.npy", &a, err, sizeof err) == 0) {
        size_t count = 1;
        for (int i = 0; i < a.rank; i++)
            count *= (size_t)a.shape[i];
        if (count != a.count || a.rank < 1 || a.rank > NPY_MAX_RANK)
            abort();
        volatile float sink = 0; /* every element must be readable (ASan checks the bounds) */
        for (size_t i = 0; i < a.count; i++)
            sink += a.data[i];
        (void)sink;
    } else if (!err[0]) {
        abort(); /* a refusal always says why */
    }
    npy_free(&a);
    return 0;
}
