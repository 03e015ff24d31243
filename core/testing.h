/* SPDX-License-Identifier: MIT */
/*
 * This file declares the test seams: the few functions that let the tests reach behind the
 * internal API (fail the n-th allocation, count live blocks, retarget a JIT, read counters).
 * They exist only when RFJIT_TESTING is defined, i.e. in the rfjit_static_testing library the
 * tests link, never in the installed librfjit.so or librfjit.a; no production header declares
 * them (layout.md 4.2, item 6). Tests include this header for seams; the library files that
 * define a seam include it for the prototypes. It names the runtime's types by their struct
 * tags only, so that core/ includes nothing above itself.
 */
#ifndef RJ_TESTING_H
#define RJ_TESTING_H

#ifndef RFJIT_TESTING
#error "core/testing.h is for builds with RFJIT_TESTING (the tests' library), not the shipped one"
#endif

#include "core/base.h"

/* Allocation faults (core/base.c): every rj_alloc* goes through one process-wide countdown,
 * so a test can make the n-th allocation from now fail (n = 0: the next one; n < 0: never,
 * the default) and walk every allocation point of a call. rj_test_fail_alloc_left is what
 * remains of the countdown: -1 once the failure was delivered (or when none is armed).
 * rj_test_live_allocs counts blocks allocated and not yet freed, for leak checks across
 * threads. LLVM's and hwloc's own allocations are outside this layer and are not injected. */
void rj_test_fail_alloc_after(long n);
long rj_test_fail_alloc_left(void);
long rj_test_live_allocs(void);

/* The Philox stream (core/philox.h) the tests draw their data from; production consumers
 * never use it, so a test's numbers never shift theirs. */
#define RJ_STREAM_TEST 6u

/* runtime/jit.c: compile from now on for another target while linking into this process, so
 * that the JIT fails the way a broken toolchain would, with a status and LLVM's message.
 * Not thread-safe; call before the context is shared. */
struct rj_jit;
rfjit_status rj_test_jit_retarget(struct rj_jit *j, const char *triple, const char *cpu,
                                  const char *features, rj_diag *dg);

/* runtime/dcache.c: counts since open. Every load is a hit or a miss; bad entries are a
 * subset of the misses. c == NULL gives zeros. */
struct rj_dcache;
typedef struct rj_test_dcache_stats {
    uint64_t hits, misses, bad, stores;
} rj_test_dcache_stats;
void rj_test_dcache_get_stats(const struct rj_dcache *c, rj_test_dcache_stats *st);

/* runtime/wisdom.c: the i-th record in key order, 0 <= i < rj_wisdom_count(w); pointers as
 * for rj_wisdom_get. */
struct rj_wisdom;
void rj_test_wisdom_record(const struct rj_wisdom *w, size_t i, const char **key,
                           int *patience, const char **value);

#endif
