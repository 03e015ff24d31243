/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit's content hash: BLAKE3 (256 bits) through the copy LLVM ships in
 * llvm-c/blake3.h, used for kernel cache keys and to check disk cache entries.
 */
#ifndef RJ_HASH_H
#define RJ_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct rj_hash {
    uint8_t b[32];
} rj_hash;

void rj_hash_bytes(const void *p, size_t n, rj_hash *out);
/* The hash of the concatenation of n parts. */
void rj_hash_parts(const void *const *parts, const size_t *sizes, int n, rj_hash *out);
/* 64 lowercase hex digits and a NUL. */
void rj_hash_hex(const rj_hash *h, char out[65]);

#endif
