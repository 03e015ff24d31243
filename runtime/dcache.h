/* SPDX-License-Identifier: MIT */
/*
 * This file is the on-disk cache of compiled kernel objects (architecture.md 5, "Disk cache"):
 * one file per key, <dir>/<64 hex of key>.o, so a second process skips LLVM entirely. It is
 * only an accelerator: every failure (unusable directory, bad entry, full disk) costs a
 * recompile, never a wrong kernel, and deleting the directory is always safe. It knows
 * nothing about kernels or LLVM; the key and the object are opaque bytes.
 *
 * Threads: one rj_dcache may be used by several threads at once. Processes: any number may
 * share a directory; stores are atomic renames, so readers see an old entry, a new one, or
 * none, never a mix.
 */
#ifndef RJ_DCACHE_H
#define RJ_DCACHE_H

#include "core/base.h"
#include "runtime/hash.h"

typedef struct rj_dcache rj_dcache;

/* dir NULL or "" disables the cache: RFJIT_OK with *out = NULL. Otherwise dir and its missing
 * parents are created with mode 0700. A directory we cannot use (not creatable, a symlink,
 * not a directory, not owned by our euid, writable by group or others) also gives RFJIT_OK
 * with *out = NULL and a one-line reason in warn[0..n); warn[0] = 0 when there is none.
 * Only running out of memory is an error. Never prints. */
rfjit_status rj_dcache_open(const char *dir, rj_dcache **out, char *warn, size_t n);
/* The size bound a new cache starts with: 256 MiB, some thousands of kernels. */
#define RJ_DCACHE_DEFAULT_MAX ((uint64_t)256 << 20)
/* Bound the entries' total size (bytes, headers included); least recently used entries go
 * first (see dcache.c). UINT64_MAX: no bound. c == NULL: no-op. */
void rj_dcache_set_limit(rj_dcache *c, uint64_t max_bytes);
/* NULL is a no-op. The files stay. */
void rj_dcache_close(rj_dcache *c);

/* 1 with an rj_alloc'd copy of the object (*obj, *size; the caller rj_frees it) on a hit whose
 * every header field and content hash checked out; 0 with *obj = NULL on a miss. An entry that
 * is present but bad (see dcache.c) is unlinked, counted as bad and as a miss, and described
 * on one line in note[0..n); note[0] = 0 on hits and plain misses. c == NULL: always a miss. */
int rj_dcache_load(rj_dcache *c, const rj_hash *key, void **obj, size_t *size, char *note,
                   size_t n);
/* Write the entry for key (replacing any). Concurrent stores of one key are safe: the last
 * rename wins and every version is whole. Errors: RFJIT_E_INVALID_ARG (size 0: an object is
 * never empty), RFJIT_E_IO with the errno text in dg (the temporary file is removed).
 * c == NULL (cache disabled) stores nothing and returns RFJIT_OK. */
rfjit_status rj_dcache_store(rj_dcache *c, const rj_hash *key, const void *obj, size_t size,
                             rj_diag *dg);

/* The directory as used (trailing slashes removed); NULL for c == NULL. */
const char *rj_dcache_dir(const rj_dcache *c);

#endif
