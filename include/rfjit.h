/* SPDX-License-Identifier: MIT */
/*
 * rfjit.h - the whole public API of rfjit, and its reference manual.
 *
 * rfjit computes softmax attention exactly or approximately with random features
 * (Performer FAVOR+, FAVOR++, FAVOR#, hybrid, EVA), and estimates the softmax kernel
 * exp(x^T y) and the Gaussian kernel exp(-|x-y|^2/2) between two sets of vectors.
 *
 * Objects
 *   rfjit_ctx   owns everything long-lived: the JIT, the kernel caches, wisdom, the thread
 *               pool, and the last error message. Create one per process or per subsystem.
 *   rfjit_plan  one specialised operator: estimator, sizes, projection matrix. Immutable
 *               after creation; rfjit_plan_execute may run concurrently on one plan.
 *   rfjit_decode, rfjit_tune_result  per-use state and answers, owned by the caller.
 *
 * Thread safety, unless a function says otherwise: calls on one context (plan creation,
 * tuning, wisdom, emission, info) may come from any number of threads at once, and so may
 * executes and feature/kernel calls on one plan; a decode state is used by one thread at a
 * time; a tune result is read-only and may be read from any thread. Destroying an object
 * while another thread uses it is undefined, as is destroying a context with plans alive.
 * Last errors are kept per thread and context: rfjit_ctx_last_error(ctx) is the message of
 * the calling thread's last failed call on ctx, so threads failing at once on one context
 * each read their own message.
 *
 * Conventions
 *   - Every call that can fail returns an rfjit_status; RFJIT_OK is 0. On failure the calling
 *     thread's last error on the context (rfjit_ctx_last_error) holds a one-line message naming
 *     the problem: the offending value and what is accepted. Messages (last errors and what
 *     goes to the log) are printable text: control characters of quoted user strings (paths,
 *     names, environment variables, file contents) are shown as \xNN (rfjit_escape), so a
 *     message is always one line and cannot drive a terminal.
 *   - Creators write the new handle through their last argument (NULL on failure).
 *     Destroy functions accept NULL. Plans must be destroyed before their context.
 *   - Descriptors start with `size`; fill them with their *_INIT macro, then set fields.
 *   - Tensors are float32, shape (batch, heads, length, dim), strides in elements.
 *   - Attention inputs are raw q, k, v: rfjit scales q and k by sqrt(scale) (d^{-1/4} at the
 *     default scale 1/sqrt(d)), so the weights estimated are exp(scale q^T k). Kernel and
 *     feature calls work on the vectors as given (no scaling): they estimate exp(x^T y) for
 *     the x, y you pass.
 *   - Non-finite inputs (NaN, Inf) are refused with RFJIT_E_NONFINITE by every entry point
 *     before anything is written. Outputs are finite whenever inputs are: a JIT row whose
 *     float denominator underflows is recomputed by the double reference; where that cannot
 *     be done (a decode step, values near FLT_MAX) the call returns RFJIT_E_RANGE.
 *   - The library never prints, aborts or exits. It reads no environment variable after
 *     rfjit_ctx_create.
 *
 * Since 0.1 unless stated. This header is C99 and C++ clean.
 */
#ifndef RFJIT_H
#define RFJIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(RFJIT_STATIC_BUILD)
#define RFJIT_API __attribute__((visibility("default")))
#else
#define RFJIT_API
#endif

/* The version of this header. 0.x releases keep the ABI within a minor version (the shared
 * library's SONAME is librfjit.so.MAJOR.MINOR); descriptors grow at their end only, and a
 * caller built against an older header passes its smaller `size`, which is accepted. */
#define RFJIT_VERSION_MAJOR 0
#define RFJIT_VERSION_MINOR 4
#define RFJIT_VERSION_PATCH 0
#define RFJIT_VERSION_NUMBER                                                                     \
    (RFJIT_VERSION_MAJOR * 10000 + RFJIT_VERSION_MINOR * 100 + RFJIT_VERSION_PATCH)
#define RFJIT_VERSION RFJIT_VERSION_NUMBER
#define RFJIT_VERSION_STRING "0.4.0"

/* Status codes: pinned numbers, grouped by decade, never renumbered or reused. */
#define RFJIT_STATUS_LIST(X)                                                                       \
    X(RFJIT_OK, 0, "ok")                                                                           \
    X(RFJIT_E_INVALID_ARG, 1, "invalid argument")                                                  \
    X(RFJIT_E_NOMEM, 2, "out of memory")                                                           \
    X(RFJIT_E_INTERNAL, 3, "internal error")                                                       \
    X(RFJIT_E_STATE, 4, "call not valid in this state")                                            \
    X(RFJIT_E_NONFINITE, 5, "input contains NaN or Inf")                                           \
    X(RFJIT_E_TOO_LARGE, 6, "sizes too large")                                                     \
    X(RFJIT_E_RANGE, 7, "result outside float range")                                              \
    X(RFJIT_E_DESC_SIZE, 10, "descriptor size not understood")                                     \
    X(RFJIT_E_SHAPE, 11, "tensor shapes do not match")                                             \
    X(RFJIT_E_STRIDE, 12, "invalid tensor strides")                                                \
    X(RFJIT_E_ALIAS, 13, "output overlaps an input")                                               \
    X(RFJIT_E_DTYPE, 14, "tensor element type not accepted")                                       \
    X(RFJIT_E_NO_ESTIMATOR, 20, "unknown estimator")                                               \
    X(RFJIT_E_NOT_APPLICABLE, 21, "operation not applicable to this estimator")                    \
    X(RFJIT_E_BUDGET, 22, "invalid or unreachable variance budget")                                \
    X(RFJIT_E_FIT, 23, "parameter fit failed")                                                     \
    X(RFJIT_E_JIT, 30, "JIT compilation failed")                                                   \
    X(RFJIT_E_ISA, 31, "instruction set not available")                                            \
    X(RFJIT_E_TARGET, 32, "unknown target")                                                        \
    X(RFJIT_E_IO, 40, "I/O error")                                                                 \
    X(RFJIT_E_NO_WISDOM, 41, "no wisdom for this problem")                                         \
    X(RFJIT_E_WISDOM_FORMAT, 42, "malformed wisdom")                                               \
    X(RFJIT_E_THREAD, 50, "thread error")                                                          \
    X(RFJIT_STATUS_SENTINEL_, 99, "never use")

typedef enum rfjit_status {
#define RFJIT_STATUS_ENUM_(name, num, text) name = num,
    RFJIT_STATUS_LIST(RFJIT_STATUS_ENUM_)
#undef RFJIT_STATUS_ENUM_
} rfjit_status;

/* Static English text for a status; never NULL ("unknown status" for unlisted values). */
RFJIT_API const char *rfjit_status_string(rfjit_status s);

/* Copy src into dst (len bytes with the NUL) as one line of printable text, the form of every
 * rfjit message: each byte that is a control character (C0, DEL), part of a C1 control
 * (U+0080..U+009F) or not valid UTF-8 becomes \xNN; printable UTF-8, backslashes included,
 * is kept, so escaping twice changes nothing. For hosts that print user strings beside
 * rfjit's messages. Truncates at a whole character or escape; returns the length written
 * (0 when dst is NULL or len is 0; src NULL is ""). Since 0.2. Thread safety: any thread. */
RFJIT_API size_t rfjit_escape(char *dst, size_t len, const char *src);

/* The loaded library's version, RFJIT_VERSION_NUMBER of the header it was built with: a host
 * can compare it with its own RFJIT_VERSION to catch a mismatched library at run time. The
 * string is "MAJOR.MINOR.PATCH". Thread safety: any thread. */
RFJIT_API int rfjit_version_number(void);
RFJIT_API const char *rfjit_version_string(void);
/* Deprecated: the same function as rfjit_version_number() under a second name (since 0.2),
 * kept so that hosts linked against it keep loading; new code calls rfjit_version_number(). */
RFJIT_API int rfjit_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                  */

/*
 * A float32 view of shape (batch, heads, length, dim): element (b, h, l, c) lives at
 * data[b*stride[0] + h*stride[1] + l*stride[2] + c*stride[3]]. Shapes are >= 1, strides >= 0.
 * A 2-D array (L, d) is shape {1, 1, L, d}, strides {0, 0, d, 1}. The view is borrowed for the
 * duration of a call. Outputs must not overlap inputs (RFJIT_E_ALIAS).
 */
typedef struct rfjit_tensor {
    float *data;
    int64_t shape[4];
    int64_t stride[4];
} rfjit_tensor;

/* Fill a contiguous row-major (B, H, L, D) view. */
RFJIT_API rfjit_tensor rfjit_tensor_contiguous(float *data, int64_t b, int64_t h, int64_t l,
                                              int64_t dim);

/* Element types of rfjit_tensor_ex. Half types are converted to float32 as kernels load them
 * and back as they store; arithmetic is float32 throughout. Since 0.3. */
typedef enum rfjit_dtype {
    RFJIT_F32 = 0, /* IEEE binary32 */
    RFJIT_F16 = 1, /* IEEE binary16 */
    RFJIT_BF16 = 2 /* bfloat16: the high half of a binary32 */
} rfjit_dtype;

/*
 * A view of any rfjit_dtype: rfjit_tensor with a size (so it can grow) and an element type.
 * Strides count elements, not bytes. Fill with RFJIT_TENSOR_EX_INIT, or from a float32 view
 * with rfjit_tensor_ex_of. Since 0.3.
 */
typedef struct rfjit_tensor_ex {
    size_t size; /* sizeof(rfjit_tensor_ex), set by RFJIT_TENSOR_EX_INIT */
    void *data;
    int64_t shape[4];
    int64_t stride[4]; /* in elements */
    int32_t dtype;     /* rfjit_dtype */
} rfjit_tensor_ex;

#define RFJIT_TENSOR_EX_INIT                                                                       \
    {                                                                                              \
        sizeof(rfjit_tensor_ex), NULL, {0, 0, 0, 0}, {0, 0, 0, 0}, RFJIT_F32                       \
    }

/* The rfjit_tensor_ex of a float32 view. */
RFJIT_API rfjit_tensor_ex rfjit_tensor_ex_of(const rfjit_tensor *t);

/* ---------------------------------------------------------------------------------------- */
/* Context                                                                                  */

typedef struct rfjit_ctx rfjit_ctx;

/* Receives every message the library would otherwise drop (warnings, verbose notes).
 * level: 0 error, 1 warning, 2 info. Called from the thread that caused it. */
typedef void (*rfjit_log_fn)(void *user, int level, const char *msg);

typedef struct rfjit_ctx_desc {
    size_t size;          /* sizeof(rfjit_ctx_desc), set by RFJIT_CTX_DESC_INIT */
    /* Threads an execute may use, the caller included (0 = one per core): JIT executes
     * spread their (batch, head) slices over a pool of pinned workers owned by the context,
     * with the same bits for any count. Bidirectional linear attention also splits a long
     * sequence (>= 4096 keys) into key blocks fixed by its length, so its bits do not depend
     * on the count either; a long causal sequence with fewer slices than threads is scanned
     * in one block per thread, equal to the one-thread result up to float rounding. One
     * execute uses the pool at a time; a concurrent one runs on its caller's thread alone
     * rather than oversubscribe the cores. A kernel's cold compile also spreads its parts
     * over up to this many threads (at most 8); its outputs are the same, bit for bit. */
    int32_t threads;
    int32_t verbose;      /* 0 quiet; 1, 2 send notes to `log` (or stderr if log is NULL) */
    /* Kernel cache directory; NULL = $RFJIT_CACHE_DIR or the default: $XDG_CACHE_HOME/rfjit
     * if absolute, else $HOME/.cache/rfjit if HOME is an existing directory (never created),
     * else none (a verbose note says why); "" = none. */
    const char *cache_dir;
    const char *wisdom_path; /* wisdom file; NULL = $RFJIT_WISDOM or the default, "" = none */
    rfjit_log_fn log;
    void *log_user;
    /* Instruction set the JIT compiles for: NULL = $RFJIT_ISA or else the host's best;
     * "avx512", "avx2", "sse4.2", "generic" may only lower it (RFJIT_E_ISA otherwise). */
    const char *isa;
    /* Bound on the disk cache's size in bytes (0: 256 MiB). Past it the least recently used
     * kernels are removed after a store; a kernel larger than the bound is not kept. Every
     * process sharing the directory enforces its own bound. Negative: RFJIT_E_INVALID_ARG. */
    int64_t cache_max_bytes;
} rfjit_ctx_desc;

#define RFJIT_CTX_DESC_INIT {sizeof(rfjit_ctx_desc), 0, 0, NULL, NULL, NULL, NULL, NULL, 0}

/*
 * Create a context: the CPU and ISA the JIT compiles for, one ORC LLJIT, the kernel caches
 * (memory, and disk unless cache_dir is ""). desc may be NULL for defaults. Errors:
 * RFJIT_E_INVALID_ARG (out NULL, threads outside [0, 1024], negative verbose or
 * cache_max_bytes, unknown ISA name), RFJIT_E_ISA (an ISA above the host's), RFJIT_E_TARGET,
 * RFJIT_E_INTERNAL (LLVM), RFJIT_E_DESC_SIZE, RFJIT_E_NOMEM; the message goes to desc->log, if
 * any, and is rfjit_ctx_last_error(NULL) on the calling thread. An unusable cache directory is
 * not an error: a warning, and the cache stays in memory. Thread safety: any thread.
 */
RFJIT_API rfjit_status rfjit_ctx_create(const rfjit_ctx_desc *desc, rfjit_ctx **out);
/* Destroy a context; NULL is a no-op. All its plans must already be destroyed. */
RFJIT_API void rfjit_ctx_destroy(rfjit_ctx *ctx);
/* The message of the calling thread's last failed call on this context ("" if none): each
 * thread reads its own, whatever other threads do on the context at the same time. A thread
 * keeps the messages of the 8 contexts it failed on most recently. With ctx NULL: the message
 * of the calling thread's last failure that had no context to hold it (a failed
 * rfjit_ctx_create, whose message also goes to desc->log, or a call given a NULL context,
 * plan or state), or a static note that there is none. Valid until the calling thread's next
 * rfjit call. */
RFJIT_API const char *rfjit_ctx_last_error(const rfjit_ctx *ctx);

/*
 * Describe this machine and library as rfjit sees it: CPU name and feature string as LLVM
 * reports them, LLVM version, hwloc topology (cores, PUs, L1d/L2/L3 sizes and where each came
 * from). json != 0 gives one JSON object. Writes at most len bytes including the terminating
 * NUL; RFJIT_E_INVALID_ARG if buf is NULL or too small (the message names the size needed).
 */
RFJIT_API rfjit_status rfjit_info(rfjit_ctx *ctx, int json, char *buf, size_t len);

/*
 * Measure this core's float FMA throughput at the context's ISA (its widest vectors): a JIT'd
 * loop of independent FMA chains, run on the calling thread for about `seconds` (at least 5
 * passes of >= 1 ms); *gflops is the median pass in GFLOP/s (an FMA counts as 2 flops). The
 * denominator of "percent of peak" in `rfjit bench`: measure it in the same run as the
 * kernels it judges, since clocks move. Errors: RFJIT_E_INVALID_ARG (NULL, seconds outside
 * (0, 60]), RFJIT_E_INTERNAL (the JIT failed). Thread safety: any thread.
 */
RFJIT_API rfjit_status rfjit_fma_peak(rfjit_ctx *ctx, double seconds, double *gflops);

/* ---------------------------------------------------------------------------------------- */
/* Plans                                                                                    */

typedef struct rfjit_plan rfjit_plan;

enum {
    RFJIT_PROJ_ORTHOGONAL = 0, /* block-orthogonal, Haar sign fix, chi_d row norms (default) */
    RFJIT_PROJ_IID = 1,        /* i.i.d. N(0, 1) entries */
    RFJIT_PROJ_USER = 2        /* projection_matrix, m x d row-major, copied at plan creation */
};

enum {
    RFJIT_BACKEND_AUTO = 0,      /* the JIT kernel where the estimator has one, else the
                                    reference (rfjit_plan_describe says which and why) */
    RFJIT_BACKEND_REFERENCE = 1, /* portable double-accumulating C reference */
    RFJIT_BACKEND_JIT = 2        /* the JIT kernel or RFJIT_E_NOT_APPLICABLE */
};

enum { RFJIT_HYBRID_BASE_POSITIVE = 0, RFJIT_HYBRID_BASE_HYPERBOLIC = 1 };

/*
 * What to compute. Estimators by name:
 *   exact       softmax attention, no approximation
 *   trig        trigonometric random features (signed)
 *   positive    positive random features, FAVOR+
 *   hyperbolic  cosh positive random features (2m features)
 *   oprf        FAVOR++: optimal positive features, A fitted per (batch, head)
 *   saderf, sderf, aderf   FAVOR#: dense-exponential features fitted per (batch, head)
 *   hybrid      angular hybrid of a positive (or hyperbolic) base and trig, with
 *               hybrid_signs sign features (dimension 3m(n+1), signed)
 *   eva         control-variate attention: exact local window of eva_window keys, plus
 *               eva_chunks chunk summaries
 *   blocksparse block-sparse + low-rank: per block of sparse_block queries, the
 *               sparse_exact key blocks of largest logit bound exactly, the other keys by
 *               positive random features (README "blocksparse: block-sparse + low-rank");
 *               no feature map or kernel estimate of its own, no decoding
 * Data-fitted estimators (oprf, saderf, sderf, aderf) fit their parameters from each
 * (batch, head)'s own queries and keys, which leaks future tokens, so a causal execute with
 * them needs a calibration sample (calib_q, calib_k) that freezes the parameters; without
 * one, a causal plan only decodes, each slot fitting on its prompt (since 0.4).
 */
/*
 * How a JIT kernel is blocked (the tuner's search space). vw: vector lanes (4, 8 or 16, at most
 * the ISA's); T: tokens per tile and causal chunk, a multiple of vw in [vw, 256]; ri:
 * register-tile rows (1, 2, 4 or 8); rj: register-tile vectors (1..4). A field left at 0
 * takes its default (vw the ISA's, T = 2 vw or 16, ri = 4, rj = 2; with 16 lanes, linear
 * attention ri = 8 and exact attention T = 64, ri = rj = 4).
 * Results do not depend on it beyond float rounding. The reference backend ignores it.
 */
typedef struct rfjit_tiling {
    int32_t vw, T, ri, rj;
} rfjit_tiling;

typedef struct rfjit_attn_desc {
    size_t size;              /* set by RFJIT_ATTN_DESC_INIT */
    int32_t d;                /* query/key head dim, 1 .. 1024 */
    int32_t dv;               /* value head dim, 1 .. 2^20 (0 = same as d); JIT kernels take
                                 dv <= 4096, AUTO runs wider values on the reference */
    int32_t causal;           /* 0 bidirectional, 1 causal (bottom-right: Lq <= Lk) */
    int32_t m;                /* random projections, >= 1 (ignored by exact) */
    const char *estimator;    /* see above; NULL = "positive" */
    int32_t projection;       /* RFJIT_PROJ_* */
    uint64_t seed;            /* projection and sampling seed */
    const float *projection_matrix; /* m x d, row-major, for RFJIT_PROJ_USER */
    int32_t eva_window;       /* eva: exact local window (block) size, >= 0 */
    int32_t eva_chunks;       /* eva: number of chunks, >= 1 */
    int32_t hybrid_signs;     /* hybrid: sign features n, >= 1 */
    int32_t hybrid_base;      /* hybrid: RFJIT_HYBRID_BASE_* */
    int32_t backend;          /* RFJIT_BACKEND_* */
    const rfjit_tensor *calib_q; /* optional calibration sample for fitted estimators */
    const rfjit_tensor *calib_k;
    rfjit_tiling tiling;      /* JIT blocking; {0} = the ISA's default */
    /* 1: if compiling or linking the kernel fails (RFJIT_E_INTERNAL, RFJIT_E_JIT,
     * RFJIT_E_TARGET), create the plan on the portable reference instead of failing;
     * rfjit_plan_describe says so and why. 0 (default): the failure is the result. */
    int32_t fallback;
    /* Softmax scale: logits are scale * q.k (0 = 1/sqrt(d), the default; else finite and
     * > 0). Random features see q and k each times sqrt(scale), so variances, fitted
     * parameters and the tuner's choices all follow it. Since 0.3. */
    double scale;
    /* Element type (rfjit_dtype) of the q, k, v the plan will mostly be given: its kernel is
     * compiled at creation. A call with another type compiles that variant once, on first
     * use, in that call. Since 0.3. */
    int32_t dtype;
    /* Numerics of another implementation, to serve a model trained with it (since 0.4). NULL
     * or "none": rfjit's own estimator, exactly as documented (the default). Otherwise one
     * of (estimator it applies to in brackets; any other estimator is RFJIT_E_NOT_APPLICABLE,
     * an unknown name RFJIT_E_INVALID_ARG):
     *   "performer-pytorch" (positive): performer-pytorch 1.1.4's FastAttention at its
     *     defaults: every feature m^-1/2 (e^{w.x - |x|^2/2 - c} + 1e-4), c the row's largest
     *     w.x for a query and the largest over ALL the visible keys of the sequence for a key
     *     (so in a causal plan a later key changes an earlier output: it leaks the future, as
     *     the model was trained); causal normalisers phi_q . (sum_{j<=i} phi_k + 1e-6).
     *   "google-performer" (positive, trig): Google's Performer JAX code (fast_attention.py,
     *     make_fast_softmax_attention) at its defaults: the same features with 1e-6 for 1e-4,
     *     and a normaliser R replaced by R + 2e-6 where |R| <= 1e-6; for trig, its sincos
     *     features m^-1/2 e^{|x|^2/2 - D} [cos w.x ; sin w.x], D the largest |x|^2/2 over the
     *     call's queries (for queries) or visible keys (for keys), with the same guard.
     *   "fast-transformers" (hyperbolic): fast-transformers' Favor features (exact, not
     *     stabilised) and linear attention's normaliser phi_q . sum phi_k + 1e-6.
     * Inputs are scaled by sqrt(scale) as always (at the default scale, their d^-1/4). Import
     * the trained projection with RFJIT_PROJ_USER (README: serving a trained Performer).
     * There is no JIT kernel for these modes (RFJIT_BACKEND_JIT is RFJIT_E_NOT_APPLICABLE).
     * With RFJIT_BACKEND_AUTO, positive in "performer-pytorch" and "google-performer" runs on
     * a float32 path (within 1e-5 of the output's largest entry of the double reference;
     * rfjit_plan_describe says "path=compat-f32"); trig and "fast-transformers" run on the
     * double reference, as does any mode with RFJIT_BACKEND_REFERENCE. rfjit_plan_features
     * and rfjit_plan_kernel give the estimator's own maps. */
    const char *compat;
    /* Which EVA an "eva" plan computes (since 0.4). NULL or "principled": rfjit's estimator
     * (README "eva: principled vs official"), whose window and chunk count trade error for
     * time. "official": the official EVA code (HKUNLP efficient-attention, eva.py and
     * causal_eva.py) in eval mode with identity learned maps: window keys counted again in
     * every chunk summary, no chunk-size term, the deterministic proposal mean, padding to a
     * multiple of the window. It needs eva_window >= 1, Lq = Lk and no key mask (else
     * RFJIT_E_NOT_APPLICABLE), and a padded length divisible by its chunk size (else
     * RFJIT_E_SHAPE), as the official code does. Set for another estimator:
     * RFJIT_E_NOT_APPLICABLE; an unknown name: RFJIT_E_INVALID_ARG. */
    const char *eva_variant;
    /* Exact transforms of q and k that leave softmax attention unchanged but shrink the
     * variance of random-feature estimates (since 0.4; 0, the default: none). An OR of
     * RFJIT_XFORM_* below, applied per call to each (sequence, key/value head) from the rows
     * it reads: the visible keys, and the queries of every query head of the group.
     * RFJIT_XFORM_CENTER_K, RFJIT_XFORM_BALANCE and RFJIT_XFORM_WHITEN apply to every
     * estimator;
     * RFJIT_XFORM_CENTER_Q needs features of the form e^{w.k + ...} (positive, hyperbolic,
     * oprf, saderf, sderf, aderf; exact accepts it and has nothing to do), else
     * RFJIT_E_NOT_APPLICABLE, as is any transform with a compat mode. The transforms act on
     * attention executes only: rfjit_plan_features and rfjit_plan_kernel map the vectors as
     * given, and rfjit_decode_create refuses a plan with a transform (RFJIT_E_NOT_APPLICABLE). */
    int32_t transform;
    /* blocksparse (since 0.5): tokens per block, queries and keys alike, >= 1 (default 64).
     * Keys are blocked over the visible keys of a sequence (masked keys removed). */
    int32_t sparse_block;
    /* blocksparse: key blocks each query block takes exactly, >= 0 (default 4): those with
     * the largest upper bound on the logit. 0 is the positive estimator with the plan's m
     * and seed; as many as a query block sees is exact softmax. */
    int32_t sparse_exact;
    /* Precision of the kernel's products (since 0.5): RFJIT_F32 (the default) or RFJIT_BF16,
     * where the products take operands rounded to bfloat16 (8 significant bits) and
     * accumulate in float32: AMX tiles where the CPU has AMX-BF16, else AVX512-BF16's
     * vdpbf16ps (also for tilings of fewer than 16 lanes). Exact attention: both products
     * (q.k and p v), the online softmax staying float32. Bidirectional positive and
     * hyperbolic attention, on AMX only:
     * the projections W x, S = phi_k^T v and phi_q^T S, the exponentials and normalisers
     * staying float32 (its feature maps, rfjit_plan_features, stay float32). The error this
     * adds (README "bf16 compute") is what the tuner measures before it offers the option.
     * Another estimator or mode, or the reference backend: RFJIT_E_NOT_APPLICABLE; a CPU or
     * context ISA without the instructions: RFJIT_E_ISA (never emulated, never computed in
     * float32 instead, whatever fallback says); RFJIT_F16: RFJIT_E_DTYPE. */
    int32_t compute;
} rfjit_attn_desc;

/*
 * Transforms of rfjit_attn_desc.transform. Rows are scaled by sqrt(scale) first (x = q
 * sqrt(scale), y = k sqrt(scale)); means are over the rows named above.
 *   CENTER_K: y -> y - ybar. x.(y - ybar) differs from x.y by a constant per query, which
 *     the softmax cancels.
 *   CENTER_Q: x -> x - xbar, with each key's exact weight e^{xbar.y} folded into the key
 *     features (every projection row of the key role gets xbar added), since
 *     e^{x.y} = e^{(x - xbar).y} e^{xbar.y}.
 *   BALANCE: x -> A x, y -> A^-1 y with A diagonal, A_ii = (E y_i^2 / E x_i^2)^(1/4) over
 *     the (centred) rows, which minimises E|A x|^2 + E|A^-1 y|^2: the per-coordinate scales
 *     of queries and keys made equal.
 *   WHITEN: the same with A symmetric: A^2 = Cx^-1 # Cy, the matrix geometric mean of the
 *     inverse query covariance and the key covariance (A^2 Cx A^2 = Cy), which minimises
 *     E|A x|^2 + E|A^-1 y|^2 over symmetric A; it supersedes BALANCE. Three d x d
 *     eigendecompositions per (sequence, key/value head) and call, so for small heads; where
 *     a covariance is singular (fewer rows than d) the diagonal A stands in. A fit frozen on a
 *     calibration sample sees the sample balanced with the diagonal A.
 * Centring comes before balancing. Inputs of half dtypes are transformed in float32. In a
 * causal call the means and A are taken over the whole call: constants, so every row keeps
 * its expectation and weighs no later key, but which random estimate a row gets depends on
 * later rows.
 */
enum {
    RFJIT_XFORM_CENTER_K = 1,
    RFJIT_XFORM_CENTER_Q = 2,
    RFJIT_XFORM_BALANCE = 4,
    RFJIT_XFORM_WHITEN = 8
};

#define RFJIT_ATTN_DESC_INIT                                                                       \
    {                                                                                              \
        sizeof(rfjit_attn_desc), 0, 0, 0, 256, NULL, RFJIT_PROJ_ORTHOGONAL, 0, NULL, 16, 8, 8,     \
            RFJIT_HYBRID_BASE_POSITIVE, RFJIT_BACKEND_AUTO, NULL, NULL, {0, 0, 0, 0}, 0, 0.0,      \
            RFJIT_F32, NULL, NULL, 0, 64, 4, RFJIT_F32                                             \
    }

/*
 * Create a plan. Draws the projection matrix from the seed (the same matrix on every machine)
 * or copies projection_matrix; with a calibration sample, fits and freezes the parameters.
 * Errors: RFJIT_E_INVALID_ARG (NULL, sizes < 1, unknown projection kind), RFJIT_E_DESC_SIZE,
 * RFJIT_E_NO_ESTIMATOR, RFJIT_E_NOT_APPLICABLE (e.g. RFJIT_BACKEND_JIT for an estimator
 * without a kernel),
 * RFJIT_E_NONFINITE (projection matrix or sample), RFJIT_E_TOO_LARGE, RFJIT_E_INTERNAL (the
 * JIT failed; the message has LLVM's words), RFJIT_E_NOMEM; a tiling outside its rules is
 * RFJIT_E_INVALID_ARG. The kernel is compiled (or loaded
 * from a cache) here, never in execute (but for a call whose dtypes differ from desc->dtype:
 * that variant is compiled once, on first use); each kernel is compiled once per context however
 * many threads ask. Thread safety: any thread. The descriptor is borrowed.
 */
RFJIT_API rfjit_status rfjit_plan_create(rfjit_ctx *ctx, const rfjit_attn_desc *desc,
                                         rfjit_plan **out);
/* Destroy a plan; NULL is a no-op. */
RFJIT_API void rfjit_plan_destroy(rfjit_plan *plan);

/*
 * Attention forward: out = softmax-like(scale q k^T) v, estimated by the plan.
 * q: (B, H, Lq, d), k: (B, Hkv, Lk, d), v: (B, Hkv, Lk, dv), out: (B, H, Lq, dv), Hkv dividing H
 * (grouped-query heads, see rfjit_attn_args); causal plans need Lq <= Lk and let query i see
 * keys 0 .. i + Lk - Lq. Inputs are borrowed; out is written.
 * Errors: RFJIT_E_INVALID_ARG, RFJIT_E_SHAPE, RFJIT_E_STRIDE, RFJIT_E_ALIAS, RFJIT_E_NONFINITE,
 * RFJIT_E_FIT, RFJIT_E_NOMEM, RFJIT_E_TOO_LARGE (a view's extent overflows, or a reference
 * plan's double copy of one (batch, head) exceeds the machine's memory; checked before
 * anything is read or written), RFJIT_E_RANGE (see the top of this file). Thread safety:
 * concurrent calls on one plan are safe.
 */
RFJIT_API rfjit_status rfjit_plan_execute(const rfjit_plan *plan, const rfjit_tensor *q,
                                          const rfjit_tensor *k, const rfjit_tensor *v,
                                          rfjit_tensor *out);

/*
 * The arguments of one attention call as an inference server makes it (since 0.3). Fill with
 * RFJIT_ATTN_ARGS_INIT, set q, k, v, out and whichever of the rest apply.
 *
 * Shapes. q (B, H, Lq, d); k (B, Hkv, Lk, d); v (B, Hkv, Lk, dv); out (B, H, Lq, dv). Hkv
 * must divide H: query head h reads key/value head h / (H / Hkv) (grouped-query attention;
 * Hkv = 1 is multi-query). q, k and v have one dtype; out may have any (RFJIT_F32 output
 * from half inputs is allowed).
 *
 * Causal plans are bottom-right aligned: query i of a sequence of lq queries and lk keys sees
 * keys j <= i + lk - lq (chunked prefill after lk - lq earlier tokens); lq > lk is
 * RFJIT_E_SHAPE.
 *
 * Padded batches. key_lengths[b] (0 <= . <= Lk): keys past it are padding, never read, and
 * their work is skipped. query_lengths[b] (0 <= . <= Lq): rows past it are not computed and
 * are written as zeros, or left as they are with untouched_rows = 1. key_mask: one byte per
 * (batch, key) at key_mask[b * key_mask_stride + j], nonzero = visible (key_mask_stride 0 =
 * Lk); a masked key contributes to no query (not to the numerator, not to the normaliser,
 * not to a fitted estimator's statistics). It combines with key_lengths and causality.
 *
 * Packed (variable-length) batches, as FlashAttention's varlen interface: with cu_seqlens_q
 * and cu_seqlens_k (both or neither; B + 1 non-decreasing offsets from 0, B = `batch`),
 * sequence b is rows cu_seqlens_q[b] .. cu_seqlens_q[b+1] - 1 of q (and out), and rows
 * cu_seqlens_k[b] .. cu_seqlens_k[b+1] - 1 of k and v, whose batch extent must be 1: a
 * (total, heads, dim) array is shape {1, heads, total, dim}, strides {0, dim, heads * dim, 1}.
 * The key mask then has one byte per packed key row. Lengths arrays are not taken with it.
 *
 * A query with no visible key (all masked, key length 0, or causal before the first key)
 * gets an output row of zeros.
 */
typedef struct rfjit_attn_args {
    size_t size; /* sizeof(rfjit_attn_args), set by RFJIT_ATTN_ARGS_INIT */
    const rfjit_tensor_ex *q, *k, *v;
    const rfjit_tensor_ex *out;   /* written; its data is the only thing changed */
    const int32_t *key_lengths;   /* B entries, or NULL: every key valid */
    const int32_t *query_lengths; /* B entries, or NULL: every query valid */
    const uint8_t *key_mask;      /* or NULL: no mask */
    int64_t key_mask_stride;      /* bytes between batch entries of key_mask (0 = Lk) */
    const int32_t *cu_seqlens_q;  /* packed layout: B + 1 offsets, or NULL */
    const int32_t *cu_seqlens_k;
    int64_t batch;          /* packed layout: B */
    int32_t untouched_rows; /* 1: rows past a query length are not written */
} rfjit_attn_args;

#define RFJIT_ATTN_ARGS_INIT                                                                       \
    {                                                                                              \
        sizeof(rfjit_attn_args), NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0, 0     \
    }

/*
 * Attention forward with the full argument set above; rfjit_plan_execute(plan, q, k, v, out)
 * is this call with float32 views and nothing else set. Every estimator and backend takes
 * every argument, except where the math forbids it (RFJIT_E_NOT_APPLICABLE names the
 * estimator and the argument). Errors as rfjit_plan_execute, and RFJIT_E_INVALID_ARG for a
 * length out of range, RFJIT_E_SHAPE for a mask, offset array or head count that does not
 * fit, RFJIT_E_DTYPE for an unknown dtype or q, k, v of different dtypes; nothing is
 * written when a call fails its checks. Thread safety: concurrent calls on one plan are
 * safe.
 */
RFJIT_API rfjit_status rfjit_plan_execute_args(const rfjit_plan *plan, const rfjit_attn_args *args);

/* ---------------------------------------------------------------------------------------- */
/* Incremental decoding                                                                     */

/*
 * A decode state holds `slots` causal sequences of H query heads and Hkv key/value heads
 * (Hkv divides H; query head h reads key/value head h / (H / Hkv)), each at its own position.
 * Linear JIT plans carry a constant-size state per (slot, key/value head): the causal
 * kernel's (S, z, zabs, c), the same whatever the position, shared by the query heads of the
 * group. exact, hybrid, eva and the reference backend keep each slot's tokens instead.
 *
 * Plans of the compat modes "performer-pytorch" and "google-performer" on their float32 path
 * (rfjit_attn_desc.compat) carry a constant-size state too: per (slot, key/value head) the
 * sums over the slot's keys of e^{w.k - |k|^2/2 - c} v^T and of e^{w.k - |k|^2/2 - c}, the
 * value sum and c, the largest w.k of the slot's keys so far; a key that raises c rescales
 * the sums. Each step's output equals the mode's causal attention over tokens 0 .. t at row
 * t (its key maximum over tokens 0 .. t), and a prefill's rows equal the causal attention over
 * the slot's tokens up to the prompt's last (its maximum over all of them). Rows already
 * returned are not recomputed when a later key raises the maximum; a generator that reruns
 * the whole sequence at every token (performer-pytorch's) does recompute them, since the
 * mode's causal attention lets a later key change earlier rows. The other compat plans
 * (trig, "fast-transformers", the reference backend) keep each slot's tokens, with the same
 * rows.
 *
 * Every call below gives, to the JIT tolerance, the rows the plan's causal attention gives
 * over a slot's tokens so far: a prefill of L tokens at position p writes rows p .. p + L - 1
 * of that attention, a step writes row p, and either leaves the slot at the new position.
 * Slots advance independently (continuous batching): a call names the slots it takes in
 * `index`, and the others are not touched.
 *
 * Fitted estimators (oprf, saderf, sderf, aderf) on a plan whose parameters are fitted per
 * call fit them per slot (and query head, as an execute fits per (batch, head)), on the
 * prompt of the slot's first prefill, and keep them until the slot is reset; a step on such
 * a slot before any prefill is refused with RFJIT_E_STATE. A plan with fixed parameters can
 * step from position 0. Such a causal plan without a calibration sample cannot execute
 * (RFJIT_E_NOT_APPLICABLE: a fit over a whole sequence leaks later tokens into every row) and
 * decodes only on the JIT backend.
 *
 * A state is used by one thread at a time; the plan must outlive it. A failed call changes
 * no slot (position, state or history) and writes no output, except RFJIT_E_RANGE below.
 */
typedef struct rfjit_decode rfjit_decode;

typedef struct rfjit_decode_desc {
    size_t size;      /* sizeof(rfjit_decode_desc), set by RFJIT_DECODE_DESC_INIT */
    int64_t slots;    /* sequences held, 1 .. 2^20 */
    int64_t heads;    /* query heads H, 1 .. 2^20 */
    int64_t kv_heads; /* key/value heads, dividing H (0 = H) */
} rfjit_decode_desc;

#define RFJIT_DECODE_DESC_INIT                                                                     \
    {                                                                                              \
        sizeof(rfjit_decode_desc), 1, 1, 0                                                         \
    }

/* Create a state of desc->slots empty slots (position 0). Errors: RFJIT_E_INVALID_ARG (NULL,
 * counts outside their ranges, kv_heads not dividing heads), RFJIT_E_DESC_SIZE,
 * RFJIT_E_NOT_APPLICABLE (a bidirectional plan), RFJIT_E_NOMEM, RFJIT_E_TOO_LARGE (the states
 * exceed the machine's memory). Since 0.4. */
RFJIT_API rfjit_status rfjit_decode_create_ex(const rfjit_plan *plan, const rfjit_decode_desc *desc,
                                              rfjit_decode **out);
/* rfjit_decode_create_ex with slots = batch, heads = kv_heads = heads. */
RFJIT_API rfjit_status rfjit_decode_create(const rfjit_plan *plan, int64_t batch, int64_t heads,
                                           rfjit_decode **out);
/* Destroy a state; NULL is a no-op. */
RFJIT_API void rfjit_decode_destroy(rfjit_decode *state);

/*
 * The tokens of one prefill or step (since 0.4). Fill with RFJIT_DECODE_ARGS_INIT.
 * q (n, H, L, d); k (n, Hkv, L, d); v (n, Hkv, L, dv); out (n, H, L, dv) or NULL (a prefill
 * that needs no outputs; a step must have out). Entry i goes to slot index[i] (n distinct
 * slots; NULL: slots 0 .. n - 1). lengths[i] (0 .. L): entry i has that many tokens, the rest
 * of its rows are padding, never read, and its out rows past them are left untouched (NULL:
 * L each). Any rfjit_dtype; q, k and v share one, out may differ. A step has L = 1.
 */
typedef struct rfjit_decode_args {
    size_t size; /* sizeof(rfjit_decode_args), set by RFJIT_DECODE_ARGS_INIT */
    const rfjit_tensor_ex *q, *k, *v;
    rfjit_tensor_ex *out;
    const int64_t *index;
    const int32_t *lengths;
} rfjit_decode_args;

#define RFJIT_DECODE_ARGS_INIT                                                                     \
    {                                                                                              \
        sizeof(rfjit_decode_args), NULL, NULL, NULL, NULL, NULL, NULL                              \
    }

/* A prompt of up to L tokens per entry into its slot, at the causal kernel's speed. Errors:
 * RFJIT_E_INVALID_ARG (NULL, an index outside [0, slots) or repeated, a length outside
 * [0, L]), RFJIT_E_DESC_SIZE, RFJIT_E_SHAPE, RFJIT_E_STRIDE, RFJIT_E_DTYPE, RFJIT_E_ALIAS,
 * RFJIT_E_NONFINITE, RFJIT_E_NOMEM, RFJIT_E_RANGE (as for a step). Since 0.4. */
RFJIT_API rfjit_status rfjit_decode_prefill(rfjit_decode *state, const rfjit_decode_args *args);
/* One token per entry (L = 1): every slot named advances by one. Errors as prefill, and
 * RFJIT_E_STATE (a slot of a fitted estimator that has not been prefilled). RFJIT_E_RANGE: a
 * linear JIT state could not represent a query's denominator in float (logits spread by
 * hundreds); the step was still taken (keys in the state, positions advanced) and the
 * message names the (entry, head) whose output row is NaN. Since 0.4. */
RFJIT_API rfjit_status rfjit_decode_step_ex(rfjit_decode *state, const rfjit_decode_args *args);
/* The float32 step of every slot in order: q, k (slots, H, 1, d) with H = Hkv, v and out
 * (slots, H, 1, dv). */
RFJIT_API rfjit_status rfjit_decode_step(rfjit_decode *state, const rfjit_tensor *q,
                                         const rfjit_tensor *k, const rfjit_tensor *v,
                                         rfjit_tensor *out);
/* Empty the n slots of index (NULL: every slot) and put them at position 0; the others are
 * not touched. Errors: RFJIT_E_INVALID_ARG (NULL state, an index outside [0, slots)), with
 * no slot reset. Since 0.4. */
RFJIT_API rfjit_status rfjit_decode_reset_slots(rfjit_decode *state, const int64_t *index,
                                                int64_t n);
/* Every slot back to position 0. */
RFJIT_API void rfjit_decode_reset(rfjit_decode *state);
/* Tokens slot 0 has taken. */
RFJIT_API int64_t rfjit_decode_position(const rfjit_decode *state);
/* Tokens slot `slot` has taken; -1 for a NULL state or a slot outside [0, slots). Since 0.4. */
RFJIT_API int64_t rfjit_decode_slot_position(const rfjit_decode *state, int64_t slot);

/*
 * Snapshots (prefix caching; since 0.4): a slot's whole decode state as bytes in a versioned
 * layout, to restore into any slot of any state of an equal plan (same estimator, d, dv, m,
 * projection, parameters and kernel tiling, and the same H and Hkv): many requests that share
 * a system prompt prefill it once. A constant-state slot's snapshot has a size fixed by the
 * plan; a history slot's grows with its position.
 *
 * rfjit_decode_snapshot: *size receives the snapshot's size in bytes; with buf non-NULL and
 * cap >= *size the snapshot is written to buf. Errors: RFJIT_E_INVALID_ARG (NULL state or
 * size, slot out of range, cap < *size with buf non-NULL: nothing written).
 * rfjit_decode_restore: slot `slot` becomes the snapshot's (position included). Errors:
 * RFJIT_E_INVALID_ARG (NULL, slot out of range), RFJIT_E_STATE (bytes that are not a
 * snapshot, of another layout version, or of another plan or head count: the message names
 * what differs), RFJIT_E_NOMEM; the slot is unchanged on error.
 */
RFJIT_API rfjit_status rfjit_decode_snapshot(const rfjit_decode *state, int64_t slot, void *buf,
                                             size_t cap, size_t *size);
RFJIT_API rfjit_status rfjit_decode_restore(rfjit_decode *state, int64_t slot, const void *buf,
                                            size_t size);

/* ---------------------------------------------------------------------------------------- */
/* Ahead-of-time emission                                                                   */

enum { RFJIT_EMIT_OBJECT = 0, RFJIT_EMIT_ASSEMBLY = 1, RFJIT_EMIT_IR = 2 };

typedef struct rfjit_emit_desc {
    size_t size;          /* sizeof(rfjit_emit_desc), set by RFJIT_EMIT_DESC_INIT */
    const char *triple;   /* NULL: the host's; e.g. "aarch64-unknown-linux-gnu" */
    const char *cpu;      /* NULL: the context's JIT CPU (host) or "generic" (other triples) */
    const char *features; /* NULL: the context's (host) or "" (other triples); e.g. "+neon" */
    int32_t kind;         /* RFJIT_EMIT_* */
    int32_t vector_width; /* float lanes 4, 8 or 16; 0: the context's (host), 4 (aarch64) */
    const char *symbol;   /* NULL: rfjit_k_<estimator>_<16 hex> */
} rfjit_emit_desc;

#define RFJIT_EMIT_DESC_INIT {sizeof(rfjit_emit_desc), NULL, NULL, NULL, RFJIT_EMIT_OBJECT, 0, NULL}

/*
 * Emit the kernel the plan descriptor `attn` would use, for any supported target (x86-64,
 * AArch64), as an ELF object, assembly or optimised LLVM IR. The kernel has the one
 * signature `void symbol(const rj_kargs *)` (core/kabi.h). *out is allocated by the library
 * (free it with rfjit_free), *size its length; the symbol name is written to symbol (may be
 * NULL). Errors: those of rfjit_plan_create, RFJIT_E_TARGET (unknown triple, a cpu that is
 * not one of the target's CPU names, a features item that is not +name or -name of one of
 * its features: checked against the names LLVM lists, llc -mcpu=help, before compiling),
 * RFJIT_E_NOT_APPLICABLE (no kernel for this estimator), RFJIT_E_INTERNAL (LLVM).
 * Thread safety: any thread.
 */
RFJIT_API rfjit_status rfjit_emit(rfjit_ctx *ctx, const rfjit_attn_desc *attn,
                                  const rfjit_emit_desc *target, void **out, size_t *size,
                                  char *symbol, size_t symbol_len);
/* Free memory the library handed out (rfjit_emit); NULL is a no-op. */
RFJIT_API void rfjit_free(void *p);

/* Feature dimension M of the plan's map (0 for exact and eva, which have none). */
RFJIT_API int64_t rfjit_plan_feature_dim(const rfjit_plan *plan);

/*
 * Random-feature maps phi_q(x), phi_k(y) of the vectors as given (no sqrt(scale) scaling), so
 * that phi_q(x)^T phi_k(y) is an unbiased estimate of exp(x^T y). x: (B, H, Lx, d) and
 * y: (B, H, Ly, d); phi_x: (B, H, Lx, M), phi_y: (B, H, Ly, M); either output may be NULL.
 * Fitted estimators take their parameters from the statistics of x and y per (batch, head)
 * (or from the plan's calibration sample). Features are exact values: inputs so large that
 * a feature exceeds FLT_MAX give RFJIT_E_RANGE (the outputs are written, with Inf where they
 * overflow; attention, which is stabilised, takes such inputs). Errors: as execute, plus
 * RFJIT_E_NOT_APPLICABLE for exact and eva.
 */
RFJIT_API rfjit_status rfjit_plan_features(const rfjit_plan *plan, const rfjit_tensor *x,
                                           const rfjit_tensor *y, rfjit_tensor *phi_x,
                                           rfjit_tensor *phi_y);

enum { RFJIT_KERNEL_SOFTMAX = 0, RFJIT_KERNEL_GAUSSIAN = 1 };

/*
 * Kernel-matrix estimate between x: (B, H, Lx, d) and y: (B, H, Ly, d), as given (no scaling):
 * out[b, h, i, j] estimates exp(x_i^T y_j) (RFJIT_KERNEL_SOFTMAX) or exp(-|x_i - y_j|^2 / 2)
 * (RFJIT_KERNEL_GAUSSIAN). out: (B, H, Lx, Ly). The exact estimator gives the exact kernel.
 * Errors: as rfjit_plan_features (RFJIT_E_RANGE when an estimate exceeds FLT_MAX).
 */
RFJIT_API rfjit_status rfjit_plan_kernel(const rfjit_plan *plan, const rfjit_tensor *x,
                                         const rfjit_tensor *y, int kind, rfjit_tensor *out);

/*
 * One-line human-readable description (estimator, d, dv, m, M, causal, scale, projection,
 * seed, backend). Errors: RFJIT_E_INVALID_ARG for NULL or a buffer too small.
 */
RFJIT_API rfjit_status rfjit_plan_describe(const rfjit_plan *plan, char *buf, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Fitting                                                                                  */

/*
 * Closed-form fit of a data-dependent estimator (oprf, saderf, sderf, aderf) on one set of
 * queries q: (1, 1, Lq, d) and keys k: (1, 1, Lk, d), raw (scaled by d^{-1/4} inside, as
 * attention does at its default scale). Reports the objectives of spec section 4.1 for one
 * projection (m = 1), over all Lq x Lk pairs: objective = mean ln E[(f1 f2)^2], variance_objective
 * = mean ln Var[f1 f2]. A and rho are the scalar parameters where the estimator has them (NaN
 * otherwise). If json is non-NULL, one JSON object with these keys and the fitted matrices'
 * summaries is written there (at most json_len bytes). Errors: RFJIT_E_INVALID_ARG,
 * RFJIT_E_NO_ESTIMATOR, RFJIT_E_NOT_APPLICABLE (estimator without a fit), RFJIT_E_SHAPE,
 * RFJIT_E_NONFINITE, RFJIT_E_FIT (degenerate statistics), RFJIT_E_NOMEM.
 */
typedef struct rfjit_fit_result {
    double objective;
    double variance_objective;
    double A;   /* oprf, saderf, aderf: the scalar A; NaN for sderf (matrix A) */
    double rho; /* the rho the closed form used; NaN where undefined */
} rfjit_fit_result;

RFJIT_API rfjit_status rfjit_fit(rfjit_ctx *ctx, const char *estimator, const rfjit_tensor *q,
                                 const rfjit_tensor *k, rfjit_fit_result *result, char *json,
                                 size_t json_len);

/* Names of the built-in estimators, in registry order; NULL past the end. */
RFJIT_API const char *rfjit_estimator_name(int index);

/* ---------------------------------------------------------------------------------------- */
/* Tuning                                                                                   */

/* How hard the tuner may work, as in FFTW; a higher level's wisdom serves lower levels. */
enum {
    RFJIT_PATIENCE_ESTIMATE = 0,   /* no compile or timing: models only */
    RFJIT_PATIENCE_MEASURE = 1,    /* default: a pruned search, timed */
    RFJIT_PATIENCE_PATIENT = 2,    /* a wider search */
    RFJIT_PATIENCE_EXHAUSTIVE = 3, /* every candidate, timed */
    RFJIT_PATIENCE_WISDOM_ONLY = 4 /* only what wisdom remembers (RFJIT_E_NO_WISDOM without) */
};

/* One timed tiling of rfjit_tune_tiling. */
typedef struct rfjit_tiling_time {
    rfjit_tiling tiling;
    double ms;  /* median execute time on the synthetic problem; NaN if not timed */
} rfjit_tiling_time;

/*
 * The fastest tiling for desc (estimator, d, dv, m, causal fixed; desc->tiling ignored) on
 * this context's machine, for sequences of length L (B = H = 1, seeded synthetic Gaussian q,
 * k, v): candidates from the ISA (vector width, registers) and the cache sizes, ranked by a
 * cost model, then timed on this thread pinned to its core (warm, median of several runs)
 * and pruned by successive halving. ESTIMATE returns the model's first choice untimed;
 * EXHAUSTIVE times every candidate fully. *best gets the pick and *best_ms its time; if
 * times is non-NULL, up to *n_times candidates are written there, best first, and *n_times
 * is set to how many were considered. Errors: RFJIT_E_INVALID_ARG (NULL, L < 1, unknown
 * patience), the errors of rfjit_plan_create, RFJIT_E_NOT_APPLICABLE (no JIT kernel),
 * RFJIT_E_NOMEM. Thread safety: any thread; timing assumes an otherwise idle machine.
 */
RFJIT_API rfjit_status rfjit_tune_tiling(rfjit_ctx *ctx, const rfjit_attn_desc *desc, int64_t L,
                                         int patience, rfjit_tiling *best, double *best_ms,
                                         rfjit_tiling_time *times, size_t *n_times);

/* What a variance budget bounds. */
enum {
    /* E||O_hat - O||^2 / ||O||^2 of the attention output over the calibration set */
    RFJIT_BUDGET_OUTPUT = 0,
    /* mean over (query, key) pairs of Var(K_hat) / K^2, K = exp(scale q.k) */
    RFJIT_BUDGET_KERNEL = 1
};

/* Progress of a long call: done in [0, 1], what it is doing now. */
typedef void (*rfjit_progress_fn)(void *user, double done, const char *what);

typedef struct rfjit_tune_desc {
    size_t size;               /* set by RFJIT_TUNE_DESC_INIT */
    int32_t d, dv;             /* head dims (dv 0 = d) */
    int32_t causal;            /* 0 or 1: only causally valid estimators are considered */
    int64_t L;                 /* sequence length the plan is for (timing, length bucket) */
    double budget;             /* > 0: the error the plan may have */
    int32_t budget_kind;       /* RFJIT_BUDGET_* */
    int32_t patience;          /* RFJIT_PATIENCE_* */
    uint64_t seed;             /* synthetic data and search seeds */
    /* Calibration sample (all three or none): q, k (B, H, Lc, d) and v (B, H, Lc, dv). Without
     * one the tuner draws B = H = 1, Lc = min(L, 1024) tokens of synthetic_profile (see
     * RFJIT_PROFILE_*), seeded by seed, and says so in the result's info. */
    const rfjit_tensor *calib_q, *calib_k, *calib_v;
    double synthetic_scale;
    const char *estimators;    /* comma-separated candidates; NULL = every estimator */
    rfjit_progress_fn progress;
    void *progress_user;
    /* Softmax scale of the plans, as rfjit_attn_desc.scale (0 = 1/sqrt(d)): every candidate
     * and the exact reference use it, and a wisdom record holds the scale it was tuned for
     * (records without one are for 1/sqrt(d)). Since 0.3. */
    double scale;
    /* The synthetic calibration set's shape when no calibration sample is given
     * (RFJIT_PROFILE_*; ignored with one). A wisdom record holds the profile it was tuned on
     * (records without one are Gaussian). Since 0.4; a caller built against an older header
     * gets the default, real-like. */
    int32_t synthetic_profile;
    /* 1 (the default): each candidate may take an exact transform (rfjit_attn_desc.transform):
     * per estimator, none or BALANCE after centring (CENTER_K, with CENTER_Q where it applies;
     * for eva also centring alone), whichever has the least calibration error at the search's
     * first m (at most 128) over two seeds, then m is searched with it (WHITEN's per-call cost
     * keeps it out). Output budgets only (the
     * transforms do not act on kernel estimates); exact takes none. 0: never, as for plans
     * meant for rfjit_decode_create, which refuses transformed plans. A wisdom record holds
     * which was asked. Since 0.4; a caller built against an older header gets 1 (64 bits
     * wide so that the descriptor's size tells: 32 would sit in the older descriptor's tail
     * padding, whose bytes a caller never set). */
    int64_t transforms;
} rfjit_tune_desc;

/*
 * Synthetic calibration profiles. x below is a row as the estimators see it, q sqrt(scale)
 * (q d^-1/4 at the default softmax scale 1/sqrt(d)); q = x / sqrt(scale).
 *
 * RFJIT_PROFILE_REAL_LIKE (the default): rows shaped like the queries and keys of a trained
 * transformer's heads (all-MiniLM-L6-v2 on text: scaled norms 2-8 per head with median 3,
 * every head with a mean component of norm 1.2-2.7, top covariance eigenvalue up to 0.42 of
 * the total). q and k rows each get their own draw of
 *     x = s (mu + g (a z + b1 w1 u1 + b2 w2 u2 + b3 w3 u3)),   s = synthetic_scale,
 * mu a random direction of norm 2, u1..u3 random orthonormal directions, z ~ N(0, I_d),
 * w ~ N(0, 1), g = exp(0.3 n - 0.045) a per-row gain (n ~ N(0, 1): a few rows much longer,
 * as in real heads), and a, b chosen so that the covariance of the fluctuation has trace 5
 * with eigenvalue shares 0.40, 0.15, 0.10 along u1..u3 and the rest spread evenly (d < 8:
 * isotropic). So |x| has median about 3 (|mu|^2 + 5 = 9) and its largest rows reach about
 * 8; v entries are N(0, 1). RFJIT_PROFILE_GAUSSIAN: q and k entries N(0, synthetic_scale^2 /
 * (d scale)), so |x| is about synthetic_scale (at the default softmax scale, entries
 * N(0, synthetic_scale^2 / sqrt d)); v entries N(0, 1). The rfjit releases before 0.4 drew
 * this one.
 *
 * Without a calibration sample on the real-like profile, the tuner refuses the estimators
 * whose features can be negative (trig, hybrid) when their error is heavy-tailed across
 * projection seeds there (the largest of 8 seeds' errors above 10 times the smallest): a
 * plan that is off by orders of magnitude on some seeds is not a plan, whatever its mean.
 */
enum { RFJIT_PROFILE_REAL_LIKE = 0, RFJIT_PROFILE_GAUSSIAN = 1 };

#define RFJIT_TUNE_DESC_INIT                                                                       \
    {                                                                                              \
        sizeof(rfjit_tune_desc), 0, 0, 0, 0, 1e-2, RFJIT_BUDGET_OUTPUT, RFJIT_PATIENCE_MEASURE, 0, \
            NULL, NULL, NULL, 1.0, NULL, NULL, NULL, 0.0, RFJIT_PROFILE_REAL_LIKE, 1               \
    }

/* One candidate the tuner considered (a row of its Pareto table). */
typedef struct rfjit_tune_row {
    const char *estimator;     /* owned by the result */
    int32_t m;                 /* random projections (0 for exact) */
    rfjit_tiling tiling;       /* the tiling the time was measured with */
    double predicted_error;    /* closed-form variance model (NaN: none) */
    double measured_error;     /* mean over the confirmation seeds (NaN: not measured) */
    double error_bound;        /* its one-sided 95% upper confidence bound */
    double time_ms;            /* execute time at L (measured, or modelled under ESTIMATE) */
    int32_t meets_budget;      /* error_bound <= budget (predicted under ESTIMATE) */
    int32_t pareto;            /* no other row is both faster and more accurate */
    int32_t chosen;
    const char *note;          /* why a candidate fell out, or "" */
    /* eva's exact window and chunk count (rfjit_attn_desc.eva_window, eva_chunks), which the
     * tuner searches for eva in place of m; 0 for every other estimator. Since 0.4. */
    int32_t eva_window, eva_chunks;
    /* The row's rfjit_attn_desc.transform (RFJIT_XFORM_*; rfjit_tune_desc.transforms), which
     * its errors and time were measured with. Since 0.4. */
    int32_t transform;
    /* blocksparse's tokens per block and exact key blocks per query block
     * (rfjit_attn_desc.sparse_block, sparse_exact), which the tuner searches with m on a small
     * grid; 0 for every other estimator. Since 0.5. */
    int32_t sparse_block, sparse_exact;
    /* The row's rfjit_attn_desc.compute: RFJIT_F32 (0) or, for a bf16 row (exact attention's,
     * or a random-feature row's bf16 twin), RFJIT_BF16. Since 0.5. */
    int32_t compute;
} rfjit_tune_row;

typedef struct rfjit_tune_result rfjit_tune_result;

/*
 * Pick the fastest plan whose error stays within the budget on this machine: per candidate
 * estimator, the variance model's first m, refined by Monte Carlo on the calibration set to
 * the smallest m (in steps of 16) whose error, over 8 projection seeds the search never used,
 * has a one-sided 95% upper confidence bound (Student t) at or under the budget (eva, which
 * has no m and no random parameters: the fewest chunks per window on a small grid, whose
 * bound is over 8 contiguous slices of the calibration queries in place of seeds, output
 * budgets and MEASURE or more only; blocksparse: one row per sparse_exact in {1, 2, 4, 8} at
 * sparse_block 64, fewer than the calibration's key blocks, each with its m searched, output
 * budgets and MEASURE or more only, and refused by rfjit_decode_create, so a tune for decoding
 * leaves it out of estimators); each candidate with the exact transform that gave the
 * least error (rfjit_tune_desc.transforms); exact attention is always a candidate (error 0); and
 * where the context runs it (AVX512-BF16), exact attention with compute RFJIT_BF16, whose
 * error is measured against float32 exact and bounded over the same 8 slices as eva's (output
 * budgets, MEASURE or more, and estimators NULL or naming exact), so it is chosen only when
 * that bound is within the budget and it is faster; likewise, a random-feature row that meets
 * the budget gets a bf16 twin where the context has a bf16 kernel for it (bidirectional
 * positive and hyperbolic on AMX) at the same m, whose error is measured on the same 8 fresh
 * seeds, rounding and variance together; then the fastest tiling for the winner. A
 * problem the context's wisdom remembers at this patience or higher is answered from it.
 * Errors: RFJIT_E_INVALID_ARG (NULL, d or L < 1, unknown kind or patience, unknown name in
 * estimators), RFJIT_E_BUDGET (budget <= 0 or not finite), RFJIT_E_SHAPE and
 * RFJIT_E_NONFINITE (calibration), RFJIT_E_NO_WISDOM (WISDOM_ONLY without an entry),
 * RFJIT_E_NOMEM, RFJIT_E_TOO_LARGE (the timing problem, L x (2 d + 2 dv) floats, exceeds the
 * machine's memory), and the errors of plan creation. Thread safety: any thread; timings assume
 * an otherwise idle machine.
 */
RFJIT_API rfjit_status rfjit_tune(rfjit_ctx *ctx, const rfjit_tune_desc *desc,
                                  rfjit_tune_result **out);
/* Destroy a result; NULL is a no-op. */
RFJIT_API void rfjit_tune_result_destroy(rfjit_tune_result *r);
/* The chosen plan as a descriptor for rfjit_plan_create (its strings are owned by r). desc must
 * come filled by RFJIT_ATTN_DESC_INIT: its size says how many bytes the caller has, and only
 * those are written (RFJIT_E_DESC_SIZE for a size no version of the struct has; since 0.3,
 * before which the whole struct was written whatever the caller had). A bf16 answer sets
 * desc->compute = RFJIT_BF16; a descriptor from before compute gets exact in float32. */
RFJIT_API rfjit_status rfjit_tune_result_plan(const rfjit_tune_result *r, rfjit_attn_desc *desc);
/* Rows of the table, chosen or not, fastest first. */
RFJIT_API size_t rfjit_tune_result_rows(const rfjit_tune_result *r);
RFJIT_API rfjit_status rfjit_tune_result_row(const rfjit_tune_result *r, size_t i,
                                             rfjit_tune_row *row);
/* One line: calibration data used, confidence rule, wall time, whether wisdom answered, and
 * when only exact meets the budget, which estimator came closest, at which m, by how much. */
RFJIT_API const char *rfjit_tune_result_info(const rfjit_tune_result *r);
/* The chosen plan and the table as one JSON object (keys estimator, features, m, tiling,
 * compute ("f32" or "bf16"), predicted_error, measured_error, error_bound, time_ms, budget,
 * budget_kind, from_wisdom, tune_seconds, calibration, profile ("real-like", "gaussian" or "user"),
 * closest, table). closest is null unless exact is the only row that meets the budget; then it is
 * the estimator that missed it by the least: {"estimator", "m", "error" (its least error bound, or
 * under ESTIMATE the model's error at that m), "error_kind" ("error bound" or "predicted error"),
 * "over_budget" (error / budget)}, also in rfjit_tune_result_info. RFJIT_E_INVALID_ARG if buf is
 * too small. */
RFJIT_API rfjit_status rfjit_tune_result_json(const rfjit_tune_result *r, char *buf, size_t len);

/* L tokens of desc's synthetic calibration profile (synthetic_profile, synthetic_scale, the
 * softmax scale, d, dv and seed; the rest is ignored) into contiguous q, k (L, d) and v (L, dv),
 * drawn as rfjit_tune draws its calibration set: the same desc gives the tuner's set's first
 * L tokens. For testing a tuned plan on data like what it was tuned on. Errors:
 * RFJIT_E_INVALID_ARG (NULL, d or L < 1, dv < 0, unknown profile, synthetic_scale outside
 * (0, 100], bad scale), RFJIT_E_NOMEM. Since 0.4. Thread safety: any thread. */
RFJIT_API rfjit_status rfjit_tune_synthetic(const rfjit_tune_desc *desc, int64_t L, float *q,
                                            float *k, float *v);

/*
 * Wisdom: what rfjit_tune learnt on this machine, kept per context in memory. It is read at
 * context creation from rfjit_ctx_desc.wisdom_path (NULL: $XDG_DATA_HOME/rfjit/wisdom if
 * absolute, else ~/.local/share/rfjit/wisdom if HOME is an existing directory, else none;
 * "": none); a missing file is empty wisdom, and a file from another machine or build, or a
 * corrupt or truncated one, is ignored with a warning through the log (a malformed line drops
 * that line only: a record whose numbers overflow their fields or that describes a plan
 * rfjit_plan_create refuses is malformed); planning never fails because of wisdom.
 */
/* Save the context's wisdom to path (NULL: the context's file), merged under a lock with
 * what the file holds (per problem the more patient answer wins), atomically (temporary file
 * in the same directory, renamed over path once complete; on a failed write the old file is
 * left unchanged). A path that exists and is not a regular file (a symlink, which wisdom
 * loads do not follow either; a directory, FIFO, device or socket) is refused with
 * RFJIT_E_IO and left as it is. The lock ("<path>.lock")
 * is waited for at most 5 seconds; a lock held longer by another process gives RFJIT_E_IO
 * with a message naming the lock file, and nothing is saved. Errors: RFJIT_E_INVALID_ARG (no
 * file), RFJIT_E_IO, RFJIT_E_NOMEM. */
RFJIT_API rfjit_status rfjit_wisdom_export(rfjit_ctx *ctx, const char *path);
/* Merge a wisdom file into the context (not saved until exported). Errors: RFJIT_E_IO (no
 * such file, unreadable), RFJIT_E_WISDOM_FORMAT (another machine's or build's, corrupt,
 * truncated, a symlink, or not a regular file, e.g. a FIFO, which is refused without
 * blocking; the message says which), RFJIT_E_NOMEM. */
RFJIT_API rfjit_status rfjit_wisdom_import(rfjit_ctx *ctx, const char *path);
/* Drop every record in memory, and the context's file too if on_disk (a symlink there is
 * removed, not what it points to). Errors: RFJIT_E_INVALID_ARG (ctx NULL), RFJIT_E_IO (the
 * file exists and cannot be removed, or is not a regular file or symlink: then it is kept). */
RFJIT_API rfjit_status rfjit_wisdom_forget(rfjit_ctx *ctx, int on_disk);
/* The context's wisdom as the text of a wisdom file (free with rfjit_free). Errors:
 * RFJIT_E_INVALID_ARG (NULL), RFJIT_E_NOMEM. */
RFJIT_API rfjit_status rfjit_wisdom_to_string(rfjit_ctx *ctx, char **text);
/* The context's wisdom file ("" if none). */
RFJIT_API const char *rfjit_wisdom_path(const rfjit_ctx *ctx);

#ifdef __cplusplus
}
#endif

#endif /* RFJIT_H */
