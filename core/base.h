/* SPDX-License-Identifier: MIT */
/*
 * This file is the bottom of the internal stack: status forwarding (RJ_TRY), error recording
 * with a message (RJ_FAIL_IF), and the allocation wrappers every allocation goes through.
 * It knows nothing about estimators, LLVM or threads.
 */
#ifndef RJ_BASE_H
#define RJ_BASE_H

#include "rfjit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a failing internal call records why. One per public call (usually the context's). */
typedef struct rj_diag {
    char msg[512];
} rj_diag;

/*
 * Copy src into dst (n bytes with the NUL) as one line of printable text: every byte that
 * is a control character (C0, DEL), part of a C1 control (U+0080..U+009F) or not valid UTF-8
 * becomes \xNN; printable UTF-8 and backslashes are kept, so escaping twice changes nothing.
 * A message can then neither start a forged line nor drive a terminal, whatever user string
 * (path, name, environment variable, file content) it quotes. Truncates at a whole character
 * or escape; returns the length written. dst and src must not overlap.
 */
size_t rj_escape(char *dst, size_t n, const char *src);
/* The text of a status code (core/status.c), as rfjit_status_string. */
const char *rj_status_text(rfjit_status s);

/* Record a printf-style message (escaped by rj_escape, truncated to fit) and return s. dg may
 * be NULL. */
rfjit_status rj_fail(rj_diag *dg, rfjit_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RJ_TRY(expr)                                                                             \
    do {                                                                                         \
        rfjit_status rj_try_s_ = (expr);                                                         \
        if (rj_try_s_ != RFJIT_OK)                                                               \
            return rj_try_s_;                                                                    \
    } while (0)

#define RJ_FAIL_IF(dg, cond, status, ...)                                                        \
    do {                                                                                         \
        if (cond)                                                                                \
            return rj_fail((dg), (status), __VA_ARGS__);                                         \
    } while (0)

/* Allocation: NULL when there is no memory, and for the _array variants also when n * size
 * overflows; callers map NULL to RFJIT_E_NOMEM. n == 0 gives a valid block to free. Memory
 * is zeroed by the _zero variants. */
void *rj_alloc(size_t n);
void *rj_alloc_zero(size_t n);
void *rj_alloc_array(size_t n, size_t size);
void *rj_alloc_array_zero(size_t n, size_t size);
/* n elements of `size` bytes on a 64-byte boundary (kernel workspaces: whole cache lines,
 * aligned vector loads); overflow-checked, released with rj_free. */
void *rj_alloc_aligned(size_t n, size_t size);
void rj_free(void *p);

/* Builds with RFJIT_TESTING (the tests' library) also count live blocks and can fail an
 * allocation on demand (core/testing.h); the shipped library does neither, so an allocation
 * costs malloc and nothing shared between threads. */

/* Make room for one more element in a growable array (*arr holds *n of *cap elements of
 * `size` bytes): doubles the capacity when full. false (and *arr untouched) on no memory. */
bool rj_grow(void **arr, size_t n, size_t *cap, size_t size);

/* A copy of s (rj_strndup: of its first n bytes, which must be readable) with a NUL, on
 * rj_alloc, released with rj_free; NULL on no memory. */
char *rj_strdup(const char *s);
char *rj_strndup(const char *s, size_t n);

/* Whether a comma-separated LLVM feature list ("+avx2,-sse4a,...") enables feature ("+name");
 * NULL lists nothing. */
bool rj_has_feature(const char *features, const char *feature);

/* a * b without overflow: false if it would exceed SIZE_MAX. */
bool rj_mul_size(size_t a, size_t b, size_t *out);

/* Whether `bytes` fits this machine's physical memory: buffers larger than that are refused
 * up front (RFJIT_E_TOO_LARGE) rather than allocated lazily by an overcommitting kernel and
 * killed mid-write. */
bool rj_fits_memory(size_t bytes);

/* Seconds on CLOCK_MONOTONIC, for timing kernels and searches. */
double rj_now_s(void);
/* The median of v[0 .. n-1], n >= 1 (the mean of the middle two for even n); sorts v. */
double rj_median(double *v, size_t n);

#endif
