/* SPDX-License-Identifier: MIT */
/* This file implements runtime/hash.h on LLVM's BLAKE3 (the one LLVM header outside jit.c). */
#include "hash.h"

#include <llvm-c/blake3.h>

void rj_hash_parts(const void *const *parts, const size_t *sizes, int n, rj_hash *out)
{
    llvm_blake3_hasher h;
    llvm_blake3_hasher_init(&h);
    for (int i = 0; i < n; i++)
        llvm_blake3_hasher_update(&h, parts[i], sizes[i]);
    llvm_blake3_hasher_finalize(&h, out->b, sizeof out->b);
}

void rj_hash_bytes(const void *p, size_t n, rj_hash *out)
{
    rj_hash_parts(&p, &n, 1, out);
}

void rj_hash_hex(const rj_hash *h, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[h->b[i] >> 4];
        out[2 * i + 1] = digits[h->b[i] & 15];
    }
    out[64] = 0;
}
