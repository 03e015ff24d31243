/* SPDX-License-Identifier: MIT */
/*
 * This file is the one ABI between the runtime and every compiled kernel: the argument block
 * `rj_kargs` passed as `void fn(const rj_kargs *a)`. It is plain C on purpose: the x86 runtime,
 * the IR builder (gen/gen.c builds the matching LLVM struct from RJ_KARGS_FIELDS) and the
 * AArch64 cross-test driver all include it, and LP64 gives every one of them the same layout.
 *
 * One call handles one (batch, head), or for the causal linear template the ng query heads
 * of a grouped-query group, which share one pass over the keys (ng, sqh, soh below). Rows are
 * strided (row strides in elements), elements of a row contiguous; q, k, v and out hold the
 * kernel plan's dtypes (rj_kplan.dt_in, dt_out), everything else floats. Everything random or
 * fitted (projections, biases, norm gains) arrives through pq / pk in the float layout rj_kplan
 * fixes, so a new seed or a fit never recompiles.
 */
#ifndef RJ_KABI_H
#define RJ_KABI_H

#include <stdint.h>

/* X(type, name, kind): kind P = pointer, I = int64. The order is the struct order. */
#define RJ_KARGS_FIELDS(X)                                                                         \
    X(const void *, q, P)   /* lq rows of d: queries (row 0 of this head) */                       \
    X(const void *, k, P)   /* lk rows of d: keys */                                               \
    X(const void *, v, P)   /* lk rows of dv: values */                                            \
    X(void *, out, P)       /* lq rows of dv: output */                                            \
    X(const float *, pq, P) /* query-role feature parameters (rj_kplan layout) */                  \
    X(const float *, pk, P) /* key-role feature parameters */                                      \
    X(float *, ws, P)       /* scratch of rj_kplan.ws_floats floats, 64-byte aligned */            \
    X(float *, st, P)       /* carried state (S, z, zabs, c) of rj_kplan.st_floats floats */       \
    X(int64_t, lq, I)                                                                              \
    X(int64_t, lk, I)                                                                              \
    X(int64_t, sq, I) /* row strides, in elements */                                               \
    X(int64_t, sk, I)                                                                              \
    X(int64_t, sv, I)                                                                              \
    X(int64_t, so, I)                                                                              \
    X(int64_t, flags, I)      /* RJ_KFLAG_* below */                                               \
    X(int64_t, qoff, I)       /* causal: query i sees keys j <= i + qoff (bottom-right) */         \
    X(const uint8_t *, km, P) /* lk key-mask bytes, nonzero = visible; NULL: all visible */        \
    X(int64_t, ng, I)         /* causal linear: query heads sharing these keys; 0 or 1: one */     \
    X(int64_t, sqh, I)        /* element stride from one such head's q rows to the next's */       \
    X(int64_t, soh, I)        /* and from one head's out rows to the next's */

typedef struct rj_kargs {
#define RJ_KARGS_MEMBER(type, name, kind) type name;
    RJ_KARGS_FIELDS(RJ_KARGS_MEMBER)
#undef RJ_KARGS_MEMBER
} rj_kargs;

enum rj_kargs_field {
#define RJ_KARGS_ENUM(type, name, kind) RJ_KA_##name,
    RJ_KARGS_FIELDS(RJ_KARGS_ENUM)
#undef RJ_KARGS_ENUM
    RJ_KA_COUNT
};

/* flags: initialise the carried state before the call (a fresh sequence); without it a
 * causal kernel continues the sequence whose state `st` holds (the decode API). */
#define RJ_KFLAG_INIT 1
/* Feature kernels (rj_kplan.kind RJ_KK_FEAT): map the rows as keys (parameters pk) rather
 * than as queries (pq). */
#define RJ_KFLAG_KEYS 2
/* Causal linear attention: take the keys into the state but compute no output (the first
 * pass of a sequence split over threads, exec_jit.c); q and out are not read. */
#define RJ_KFLAG_NO_QUERIES 4

/*
 * The same block serves the two helper kernels of the estimate API (rj_kplan.kind):
 *   RJ_KK_FEAT: rows q (lq, sq) -> features, feature-major: out[r * so + t] for the Mp rows r
 *               and every t < lq rounded up to T (so >= that), and log-scales st[t]; the
 *               feature of row t is e^{st[t]} out[r * so + t].
 *   RJ_KK_GRAM: out[i * so + j] = e^{pq[i] + pk[j]} G_ij (tmpl linear) or e^{pq[i] + pk[j]
 *               + G_ij} (tmpl softmax), G_ij = sum_r q[r * sq + i] k[r * sk + j], for i < lq,
 *               j < lk; q, k feature-major with columns padded to T, pq and pk padded to T
 *               too (the padding is read, never used).
 *   RJ_KK_PEAK: lk rounds of the FMA peak probe (gen/tmpl/peak.c) with b = q[0], c = q[1];
 *               out[0 .. vw-1] receives the chains' sum.
 */

typedef void (*rj_kernel_fn)(const rj_kargs *a);

#endif
