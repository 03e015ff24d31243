/* SPDX-License-Identifier: MIT */
/*
 * This file is the kernel cache of a context: kernel plan -> function pointer, backed by an
 * in-memory table and the on-disk object cache. Each key is compiled at most once per
 * context, however many threads ask at the same time.
 */
#ifndef RJ_KCACHE_H
#define RJ_KCACHE_H

#include "runtime/jit.h"

typedef struct rj_kcache rj_kcache;

typedef void (*rj_note_fn)(void *user, int level, const char *msg);

/* cache_dir NULL or "" disables the disk cache; dump_dir non-NULL dumps every compile and
 * skips disk reads until a dump cannot be written (then one warning, and no more dumps).
 * Warnings (an unusable cache directory or dump directory) and verbose notes go to note. */
rfjit_status rj_kcache_create(rj_jit *jit, const rj_isa *isa, const char *llvm_version,
                              const char *cache_dir, const char *dump_dir, rj_note_fn note,
                              void *note_user, rj_kcache **out, rj_diag *dg);
void rj_kcache_destroy(rj_kcache *kc);

/* The kernel of kp, compiled or loaded on first use. */
rfjit_status rj_kcache_get(rj_kcache *kc, const rj_kplan *kp, rj_kernel_fn *fn, rj_diag *dg);

/* Bound the disk cache (see rj_dcache_set_limit); no-op without one. */
void rj_kcache_set_disk_limit(rj_kcache *kc, uint64_t max_bytes);

/* Kernel symbol of a plan for this cache's target: rfjit_k_<estimator>_<16 hex of key>. */
void rj_kcache_symbol(rj_kcache *kc, const rj_kplan *kp, char *sym, size_t n);

#endif
