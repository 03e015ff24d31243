/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/hash.h on LLVM's BLAKE3. It is the only place outside the IR
 * layer and jit.c that includes an LLVM header (architecture.md 1.3): blake3.h is a plain C
 * hash with no LLVM context behind it, so hashing a key never touches the compiler.
 */
#include "runtime/hash.h"

#include <llvm-c/blake3.h>

_Static_assert(sizeof(((rj_hash *)0)->b) == LLVM_BLAKE3_OUT_LEN, "rj_hash is one BLAKE3 digest");

void rj_hash_parts(const void *const *parts, const size_t *sizes, int n, rj_hash *out)
{
    /* The hasher lives on the stack: no state shared between threads, nothing to free. */
    llvm_blake3_hasher h;
    llvm_blake3_hasher_init(&h);
    for (int i = 0; i < n; i++)
        if (sizes[i])
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
