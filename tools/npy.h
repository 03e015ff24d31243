/* SPDX-License-Identifier: MIT */
/*
 * This file reads and writes NumPy .npy arrays for the CLI and the tests. It is not a general
 * .npy library: it reads what rfjit can use and refuses the rest with a reason.
 *
 * Read: format versions 1.0, 2.0 and 3.0 (3.0 is 2.0 with a UTF-8 header), dtype '<f4' or
 * '<f8' (float64 is converted to float32; a finite value with |x| > FLT_MAX is refused),
 * C or Fortran order (np.save writes 'fortran_order': True for a transposed array; such
 * data is transposed on load, so it is always row-major here), rank 1 to 4 with every
 * dimension >= 1. The header dict is parsed as
 * the Python literal NumPy writes: exactly the keys 'descr', 'fortran_order' and 'shape',
 * each once, in any order, with an optional trailing comma. The data must be exactly as long
 * as the shape says: trailing bytes are refused too, since they mean the header does not
 * describe the file. NaN and Inf are passed through (the library refuses them with its own
 * message). Callers check the rank they need (the CLI takes (L, d) and (B, H, L, d)).
 *
 * Files: a path read must be a regular file (or a symlink to one); a FIFO, device, directory
 * or socket is refused by type without blocking. A path written is replaced only when the new
 * file is complete, and never when it is not a regular file (runtime/fsutil.h's rule).
 *
 * npy_read_kinds also takes '<f2' (kept as IEEE half bits), '<i4', '<i8', '|u1' and '|b1'
 * (kept as they are), for the kinds the caller names: attention's float16 inputs, lengths
 * and key masks.
 *
 * Write: version 1.0, '<f4' (or '<f2' with npy_write_f16), C order, header padded to a
 * multiple of 64 bytes as NumPy does.
 *
 * Errors: every function returns 0 on success and -1 otherwise, with a one-line message
 * "<file>: <problem>" in the caller's buffer; nothing is printed.
 */
#ifndef RFJIT_NPY_H
#define RFJIT_NPY_H

#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_RANK 4

/* Element kinds of npy_read_kinds, as bits of its `kinds` argument (1 << NPY_*). */
enum {
    NPY_F32 = 0, /* '<f4', or '<f8' converted */
    NPY_F16 = 1, /* '<f2' */
    NPY_I32 = 2, /* '<i4' */
    NPY_I64 = 3, /* '<i8' */
    NPY_U8 = 4,  /* '|u1' */
    NPY_BOOL = 5 /* '|b1' */
};

typedef struct npy_array {
    float *data; /* malloc'd, row-major, count elements; release with npy_free */
    size_t count;
    int rank;    /* 1 .. NPY_MAX_RANK */
    int64_t shape[NPY_MAX_RANK];
    int version; /* major format version of the file read (1, 2 or 3) */
    int from_f8; /* 1 if the file held float64 */
    int kind;    /* NPY_*: data holds NPY_F32; any other kind is in bytes, data NULL */
    void *bytes; /* malloc'd, count elements of the kind in host order, row-major */
} npy_array;

/* Read path into out (zeroed first, so npy_free is safe after a failure). */
int npy_read(const char *path, npy_array *out, char *err, size_t errlen);

/* Read path, taking the element kinds whose bits are set in kinds (1 << NPY_*). */
int npy_read_kinds(const char *path, unsigned kinds, npy_array *out, char *err, size_t errlen);

/* Parse an in-memory .npy image of len bytes; name is used in messages only. */
int npy_parse(const unsigned char *buf, size_t len, const char *name, npy_array *out,
              char *err, size_t errlen);

/* Write count = prod(shape) float32 values as a version 1.0 '<f4' file. rank 1..4, shape >= 1.
 * On failure nothing is left but what path held before. */
int npy_write(const char *path, const float *data, int rank, const int64_t *shape, char *err,
              size_t errlen);

/* npy_write for IEEE half bits: a '<f2' file. */
int npy_write_f16(const char *path, const uint16_t *data, int rank, const int64_t *shape, char *err,
                  size_t errlen);

/* Free out's data; a zeroed or already freed array is fine. */
void npy_free(npy_array *a);

#endif
