/* SPDX-License-Identifier: MIT */
/*
 * This file defines the insides of rfjit_ctx and rfjit_plan, shared by the runtime's
 * machinery, the tuner and the public facade (api/), which are the only layers above it.
 */
#ifndef RJ_CTX_H
#define RJ_CTX_H

#include "rfjit.h"

#include "core/base.h"
#include "est/est.h"
#include "runtime/host.h"
#include "runtime/jit.h"
#include "runtime/kcache.h"
#include "gen/kplan.h"
#include "core/spec.h"
#include "runtime/topo.h"

#include <pthread.h>
#include <stdatomic.h>

struct rfjit_ctx {
    pthread_mutex_t lock;      /* guards wisdom (kc and pool have their own locks) */
    uint64_t id;               /* unique in the process: keys the per-thread last errors */
    int32_t threads, verbose;
    rfjit_log_fn log;
    void *log_user;
    char *cache_dir, *wisdom_path;
    rj_host host;              /* CPU and LLVM as seen at creation */
    rj_topo topo;              /* hwloc topology summary */
    rj_isa isa;                /* what the JIT compiles for (after RFJIT_ISA) */
    rj_jit *jit;
    rj_kcache *kc;
    struct rj_pool *pool;      /* workers for executes (threads in all, caller included) */
    struct rj_wisdom *wisdom;  /* guarded by lock */
    int wisdom_ignored, wisdom_bad_lines; /* what loading the file dropped */
};

typedef struct rj_exec_scratch rj_exec_scratch;

struct rfjit_plan {
    rfjit_ctx *ctx;
    pthread_mutex_t pool_mu;   /* guards pool: executes' reusable scratch (exec_jit.c) */
    rj_exec_scratch *pool;
    rj_spec spec;
    uint64_t seed;
    int32_t backend;
    int32_t fallback;          /* rfjit_attn_desc.fallback */
    rfjit_tiling tiling;       /* as asked ({0}: default) */
    int64_t M;                 /* feature dimension (0: none) */
    double *W;                 /* m x d projection (NULL for exact) */
    double *params;            /* fitted once: non-fitted estimators or a calibration sample */
    size_t nparams;
    int frozen;                /* params hold for every (batch, head) */
    /* JIT backend (jit = 1): the kernel, and its lowered parameters [pq | pk] when frozen.
     * blocksparse (bs_fast, jit = 0) keeps positive's feature kernel in kp, fn, kpar, sym. */
    int jit;
    rj_kplan kp;     /* for the dtype pair (dtype, dtype) */
    rj_kernel_fn fn; /* kp's kernel */
    int32_t dtype;   /* rfjit_attn_desc.dtype */
    /* Every (input, output) dtype pair's kernel, NULL until first used (rj_plan_kernel_for);
     * read without the lock, set once under it. */
    pthread_mutex_t kvar_mu;
    _Atomic(rj_kernel_fn) kvar[2][3][3]; /* [one-vector query tile][dt_in][dt_out] */
    float *kpar;
    /* RFJIT_XFORM_WHITEN with a calibration sample: A and A^-1 (d x d each), fixed by the
     * sample (runtime/xform.c); NULL: computed per call. */
    double *xA;
    char sym[96];
    char why_reference[256];   /* why an AUTO or fallback plan runs on the reference */
    /* The float32 path of the Performer compat modes (runtime/exec_compat.h), jit = 0. */
    int compat_fast;
    float *cwt; /* W^T as floats, d x m (compat only) */
    /* blocksparse's float32 path (runtime/exec_blocksparse.c): JIT features, AVX2 products. */
    int bs_fast;
};

/* Send a note to the context's log (or stderr when verbose and no log is set). */
void rj_ctx_note(void *ctx, int level, const char *msg);

/*
 * Read a versioned descriptor: `dst` (our_size bytes) starts as the defaults, then the first
 * min(src_size, our_size) bytes of src are copied. A src_size larger than ours passes only if
 * the unknown tail is all zero. src_size must cover at least the size field and be a multiple
 * of size_t's alignment (as every struct that starts with one is).
 */
rfjit_status rj_desc_read(void *dst, size_t our_size, const void *src, size_t src_size,
                          rj_diag *dg);

#endif
