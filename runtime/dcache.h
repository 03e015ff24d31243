/* SPDX-License-Identifier: MIT */
/*
 * This file is the on-disk cache of compiled kernel objects (architecture.md 5): one file per
 * key, <dir>/<64 hex of key>.o, a fixed header then the object. Readers never see a partial
 * file (mkstemp + rename), a bad or foreign entry is unlinked and reported as a miss, and
 * deleting the directory is always safe.
 */
#ifndef RJ_DCACHE_H
#define RJ_DCACHE_H

#include "base.h"
#include "hash.h"

typedef struct rj_dcache rj_dcache;

/* dir NULL or "" disables the cache (*out = NULL). An unusable directory (not ours, writable
 * by group or others, a symlink, not creatable) also gives *out = NULL, with the reason in
 * warn (warn[0] = 0 otherwise). Never prints. */
rfjit_status rj_dcache_open(const char *dir, rj_dcache **out, char *warn, size_t n);
void rj_dcache_close(rj_dcache *c);

/* 1 and an rj_alloc'd copy of the object on a verified hit, 0 on a miss. A bad entry is
 * unlinked, counted, and described in note (note[0] = 0 otherwise). */
int rj_dcache_load(rj_dcache *c, const rj_hash *key, void **obj, size_t *size, char *note,
                   size_t n);
/* Atomic store. Errors: RFJIT_E_IO (the temporary file is removed), RFJIT_E_NOMEM. */
rfjit_status rj_dcache_store(rj_dcache *c, const rj_hash *key, const void *obj, size_t size,
                             rj_diag *dg);

typedef struct rj_dcache_stats {
    uint64_t hits, misses, bad, stores;
} rj_dcache_stats;
void rj_dcache_get_stats(const rj_dcache *c, rj_dcache_stats *st);
const char *rj_dcache_dir(const rj_dcache *c);

#endif
