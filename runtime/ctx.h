/* SPDX-License-Identifier: MIT */
/*
 * This file defines the insides of rfjit_ctx and rfjit_plan, shared by the runtime's api_*.c
 * files and the reference executor. Nothing outside runtime/ sees these structs.
 */
#ifndef RJ_CTX_H
#define RJ_CTX_H

#include "rfjit.h"

#include "base.h"
#include "est/est.h"
#include "host.h"
#include "jit.h"
#include "kcache.h"
#include "kplan.h"
#include "spec.h"
#include "topo.h"

#include <pthread.h>

struct rfjit_ctx {
    pthread_mutex_t lock;      /* guards wisdom */
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
    /* JIT backend (jit = 1): the kernel, and its lowered parameters [pq | pk] when frozen. */
    int jit;
    rj_kplan kp;
    rj_kernel_fn fn;
    float *kpar;
    char sym[96];
    char why_reference[256];   /* why an AUTO or fallback plan runs on the reference */
};

/* Send a note to the context's log (or stderr when verbose and no log is set). */
void rj_ctx_note(void *ctx, int level, const char *msg);

/* JIT execution (runtime/exec_jit.c). */
rfjit_status rj_exec_jit(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
/* Free the plan's scratch pool (plan destruction). */
void rj_exec_pool_free(rfjit_plan *p);
/* EVA on the softmax kernel (runtime/exec_eva.c). */
rfjit_status rj_exec_eva(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                         const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
/* Lower params (double, estimator layout) into the kernel's float layout [pq | pk]. */
rfjit_status rj_lower_params(const rfjit_plan *p, const double *params, float *kpar,
                             rj_diag *dg);

/* The context's wisdom (api_wisdom.c): opened at creation; get copies a record's value. */
rfjit_status rj_ctx_wisdom_open(rfjit_ctx *ctx, rj_diag *dg);
int rj_ctx_wisdom_get(rfjit_ctx *ctx, const char *key, int min_patience, char *val, size_t n,
                      int *patience);
rfjit_status rj_ctx_wisdom_put(rfjit_ctx *ctx, const char *key, int patience, const char *val,
                               rj_diag *dg);

/* The public calls the runtime and the tuner make themselves, with the message in dg
 * rather than in the caller's thread's last error (which a public caller reads). */
rfjit_status rj_plan_create(rfjit_ctx *ctx, const rfjit_attn_desc *desc, rfjit_plan **out,
                            rj_diag *dg);
rfjit_status rj_plan_execute(const rfjit_plan *p, const rfjit_tensor *q, const rfjit_tensor *k,
                             const rfjit_tensor *v, rfjit_tensor *out, rj_diag *dg);
rfjit_status rj_plan_kernel(const rfjit_plan *p, const rfjit_tensor *x, const rfjit_tensor *y,
                            int kind, rfjit_tensor *out, rj_diag *dg);
rfjit_status rj_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L, int patience,
                            rfjit_tiling *best, double *best_ms, rfjit_tiling_time *times,
                            size_t *n_times, rj_diag *dg);

/* Record dg's message (or s's text) as the calling thread's last error on ctx (ctx NULL: of
 * rfjit_ctx_create) and return s. */
rfjit_status rj_ctx_fail(rfjit_ctx *ctx, rfjit_status s, const rj_diag *dg);
/* Record a formatted message as ctx's last error and return s. */
rfjit_status rj_ctx_failf(rfjit_ctx *ctx, rfjit_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Read a versioned descriptor: `dst` (our_size bytes) starts as the defaults, then the first
 * min(src_size, our_size) bytes of src are copied. A src_size larger than ours passes only if
 * the unknown tail is all zero. src_size must cover at least the size field and be a multiple
 * of size_t's alignment (as every struct that starts with one is).
 */
rfjit_status rj_desc_read(void *dst, size_t our_size, const void *src, size_t src_size,
                          rj_diag *dg);

#endif
