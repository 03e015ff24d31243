/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit's content hash: 256-bit BLAKE3 through the copy LLVM ships in
 * llvm-c/blake3.h, used for kernel cache keys and to check disk cache entries. It is not a
 * MAC: the disk cache's defence against other users is ownership, not the hash.
 *
 * The incremental form is rj_hash_parts (a list of byte ranges) rather than an exposed hasher
 * state, so that no LLVM type, and no guess at its size, leaks into a runtime header.
 */
#ifndef RJ_HASH_H
#define RJ_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct rj_hash {
    uint8_t b[32];
} rj_hash;

void rj_hash_bytes(const void *p, size_t n, rj_hash *out);
/* The hash of the concatenation of parts[0..n) (sizes[i] bytes each): where one part ends
 * does not change the result, so a caller that wants distinct fields must delimit them
 * itself (kcache hashes its strings with their NULs). n <= 0 hashes nothing. */
void rj_hash_parts(const void *const *parts, const size_t *sizes, int n, rj_hash *out);
/* 64 lowercase hex digits and a NUL: the disk cache's file names and kernel symbol suffixes. */
void rj_hash_hex(const rj_hash *h, char out[65]);

#endif
