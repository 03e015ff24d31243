/* SPDX-License-Identifier: MIT */
/*
 * This file reads and writes NumPy .npy arrays for the CLI and the tests: versions 1.0, 2.0
 * and 3.0, little-endian float32 ('<f4') or float64 ('<f8', converted), C order, rank 1 to 4.
 * Everything else is refused with a message naming the file and the problem.
 */
#ifndef RFJIT_NPY_H
#define RFJIT_NPY_H

#include <stddef.h>
#include <stdint.h>

typedef struct npy_array {
    float *data; /* malloc'd, row-major; free with npy_free */
    int rank;
    int64_t shape[4];
} npy_array;

/* 0 on success; -1 with a one-line message in err (naming path) otherwise. */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);
/* Parse an in-memory .npy image (the reader behind npy_read; also the fuzz entry point). */
int npy_parse(const unsigned char *buf, size_t len, const char *name, npy_array *out,
              char *err, size_t errlen);
/* Write float32 data of the given shape as a version 1.0 '<f4' file. */
int npy_write(const char *path, const float *data, int rank, const int64_t *shape, char *err,
              size_t errlen);
void npy_free(npy_array *a);

#endif
