/* SPDX-License-Identifier: MIT */
/*
 * This file is shared by the pieces of `rfjit bench` (bench/cmd_bench.c and the files named
 * below): the benchmark's data, its timings, the OpenBLAS and Python peers, the suites and the
 * plot. Like the other verbs it sees the library only through include/rfjit.h; the peers
 * never call rfjit, so they can be checked against it.
 */
#ifndef RFJIT_BENCH_H
#define RFJIT_BENCH_H

#include "cli.h"

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ bench_data.c */

/* Median, min and max of a set of timed runs, in ms. */
typedef struct bench_time {
    double med, min, max;
    int runs;
} bench_time;

/* Summarise ms[0..n) (sorted in place). */
void bench_time_of(double *ms, int n, bench_time *t);

/* One problem, B = 1 and H heads: q, k entries N(0, 1/sqrt d) (scaled rows of norm about 1),
 * v entries N(0, 1), each head its own; W the m x d projection every FAVOR+ implementation
 * shares, one for all heads as a model's layer has. */
typedef struct bench_data {
    int L, d, dv, m;
    float *q, *k, *v; /* H x L x d, H x L x d, H x L x dv, row-major */
    float *W;         /* m x d, row-major */
    int H;
} bench_data;

/* Draw a problem of one head (deterministic for the sizes); -1 when out of memory. */
int bench_data_init(bench_data *b, int L, int d, int dv, int m);
/* The same with H heads; head 0 is the one-head problem, so H = 1 rows keep their data. */
int bench_data_init_heads(bench_data *b, int H, int L, int d, int dv, int m);
void bench_data_free(bench_data *b);
/* Head h of p as a one-head problem sharing p's memory (never freed on its own). */
bench_data bench_data_head(const bench_data *p, int h);

/* Block-orthogonal Gaussian rows (Performer's ORF): each block of d rows is a Gram-Schmidt
 * orthonormal basis drawn from Gaussians, each row then scaled to the norm of an independent
 * N(0, I_d) vector, so every row is marginally N(0, I_d). */
void bench_orthogonal_rows(float *W, int m, int d, uint64_t seed);

/* |x - ref|_F / |ref|_F in double (NaN if ref is zero), and its square (the real suite's
 * error measure). */
double bench_rel_err(const float *x, const float *ref, size_t n);
double bench_rel_err2(const float *x, const float *ref, size_t n);
/* max_i |x_i| */
double bench_max_abs(const float *x, size_t n);
/* |x - ref|_inf / |ref|_inf in double (NaN if ref is zero): the peers' agreement, which an
 * output entry far off cannot hide in a norm over all of them. */
double bench_max_rel_err(const float *x, const float *ref, size_t n);
/* The bench_max_rel_err two float32 implementations of the same attention on p can differ by
 * through rounding alone (exact: softmax attention, else FAVOR+ with p->W), ref one of their
 * outputs (all heads): a first-order worst case from the norms of the data. */
double bench_rounding_tol(const bench_data *p, int exact, const float *ref);
/* For two implementations of exact attention on bfloat16 operands (or one of them against
 * float32), x and ref their outputs: the largest ratio over output entries of |x - ref| to
 * what bfloat16 rounding of q, k, the weights and v can explain there (<= 1: explained);
 * wv = exact attention of q, k and |v| (each entry's weighted |v|). */
double bench_bf16_excess(const bench_data *p, const float *wv, const float *x, const float *ref);

/* ------------------------------------------------------------------ peer_blas.c */

/* OpenBLAS, loaded with dlopen after OPENBLAS_CORETYPE is removed from the environment. */
typedef struct bench_blas bench_blas;

/* NULL when libopenblas.so.0 or one of its symbols is missing; why says which. */
bench_blas *bench_blas_open(char *why, size_t len);
void bench_blas_close(bench_blas *b);
void bench_blas_threads(bench_blas *b, int n);
const char *bench_blas_core(bench_blas *b);
const char *bench_blas_config(bench_blas *b);

/* A peer's buffers, allocated once per problem like any C program would, not per call. */
typedef struct peer_ws peer_ws;
peer_ws *peer_ws_create(const bench_data *p);
void peer_ws_destroy(peer_ws *w);

/* Row block of the exact peer and chunk of the causal FAVOR+ peer. */
enum { PEER_EXACT_BLOCK = 256, PEER_FAVOR_CHUNK = 128 };

/* softmax(q k^T / sqrt d) v, causal or not, into out (H x L x dv), one head after another. */
void peer_blas_exact(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out);
/* FAVOR+ with p->W, the positive features of est/positive.c, into out (H x L x dv). */
void peer_blas_favor(bench_blas *b, const bench_data *p, int causal, peer_ws *w, float *out);

/* exp of n floats in place: the vectorisable polynomial the peers use (2-3 ulp). */
void peer_exp(float *x, size_t n);

/* ------------------------------------------------------------------ peer_torch.c */

/* The Python peers (bench/peer_torch.py, bench/peer_compiled.py), by their JSON keys. */
enum {
    PY_TORCH_FAVOR,
    PY_TORCH_SDPA,
    PY_TORCH_COMPILE,
    PY_JAX,
    PY_ORT,
    PY_PERFORMER,
    PY_TORCH_SDPA_BF16, /* SDPA on bfloat16 tensors (converted before the timed calls) */
    N_PY
};
extern const char *const bench_py_name[N_PY];

/* The interpreter of the Python peers: $RFJIT_BENCH_PYTHON, else /usr/bin/python3. */
const char *bench_py_python(void);

/* The number after "key": in a JSON line (the peers' and the suites' output); NaN for null
 * or a missing key. */
double bench_json_number(const char *line, const char *key);
/* The string after "key": into out (escapes undone); 0, or -1 when absent. */
int bench_json_string(const char *line, const char *key, char *out, size_t n);

/* torch's version, 0; or -1 with why ("import torch" failed). */
int bench_torch_probe(char *version, size_t vlen, char *why, size_t wlen);

/* A running peer_torch.py serving one thread count. */
typedef struct bench_py bench_py;
/* Start it (torch.compile's cache under cache_dir); about gets its probe line (JSON: each
 * framework's version and kernels, or NAME_error). NULL with why when it cannot start. */
bench_py *bench_py_open(int threads, const char *cache_dir, char *about, size_t alen, char *why,
                        size_t wlen);
void bench_py_close(bench_py *s);

/* One peer's result on a shape: median ms, compile ms (NaN when it does not compile), its
 * output (H x L x dv, NULL when it failed, with why). */
typedef struct bench_py_out {
    double ms, compile_ms;
    float *out;
    char why[160];
} bench_py_out;
/* Run the peers with want[i] set on p; 0 (each peer's own failure is in its result), or -1
 * with why when the server is gone. Free the outputs with bench_py_free. */
int bench_py_run(bench_py *s, const bench_data *p, int causal, int runs, const int want[N_PY],
                 bench_py_out res[N_PY], char *why, size_t len);
void bench_py_free(bench_py_out res[N_PY]);
/* The text header's lines on the Python peers, from the probe line of bench_py_open. */
void bench_py_print_header(const char *probe, int runs);

/* Run bench/peer_torch_decode.py: torch's recurrent FAVOR+ decode loop over bh states of
 * m x dv, `runs` batches of `steps` steps on `threads` threads; *us the median microseconds
 * per step of every state. 0 or -1 with why. */
int bench_torch_decode(int bh, int m, int d, int dv, int threads, int steps, int runs, double *us,
                       char *why, size_t len);
/* The environment the Python peers get beyond the caller's (for the header). */
extern const char bench_torch_tunables[];

/* ------------------------------------------------------------------ bench_rfjit.c */

/* A warm rfjit execute: its time, and what it costs the process. */
typedef struct bench_exec {
    bench_time t;
    double minflt_per_run; /* minor page faults per timed execute */
    long maxrss_kib;       /* the process's peak RSS after the runs */
    int64_t M;             /* feature dimension */
    int jit;               /* the plan ran on the JIT backend */
} bench_exec;

/* Plan a, 1-2 warm-ups then runs timed executes on p, all its heads in one (1, H, L, d)
 * call; out holds the output. 0 or -1 with err (the library's message). */
int bench_rfjit_exec(rfjit_ctx *ctx, const rfjit_attn_desc *a, const bench_data *p, int runs,
                     float *out, bench_exec *r, char *err, size_t len);
/* The speed-up of many (a context with more threads) over one on plan a: both plans warm,
 * their executes alternating over rounds (who goes first flips every round), *speedup the
 * median of the per-round ratios one / many. A shared machine's speed drifts over minutes;
 * a drift hits both executes of a round alike, so this ratio holds where two rows timed
 * apart do not. 0 or -1 with err. */
int bench_rfjit_paired(rfjit_ctx *one, rfjit_ctx *many, const rfjit_attn_desc *a,
                       const bench_data *p, int rounds, float *out, double *speedup, char *err,
                       size_t len);
/* The same for any two plans: plan a[e] on ctx[e], *ratio the median of time 0 / time 1
 * (bf16 compute against float32: a[0] float32, a[1] bf16, one context). */
int bench_rfjit_paired_plans(rfjit_ctx *const ctx[2], const rfjit_attn_desc *const a[2],
                             const bench_data *p, int rounds, float *out, double *ratio, char *err,
                             size_t len);
/* Cold compile (context with no disk cache) with one thread per core, which compiles a
 * kernel's parts side by side, and with one thread, and disk-cache load (a context on
 * cache_dir, which a first context fills) of plan a, each minus a reference-backend plan's
 * creation in the same context; medians of samples. 0 or -1 with err. */
int bench_rfjit_compile(const rfjit_attn_desc *a, const char *cache_dir, int samples,
                        double *cold_ms, double *cold1_ms, double *disk_ms, char *err, size_t len);

/* ------------------------------------------------------------------ bench_suite.c */

typedef struct bench_row {
    const char *estimator;
    int causal, L, d, dv, m, threads;
    int peers;   /* run the OpenBLAS and Python peers on this shape */
    int compile; /* measure cold compile and disk-cache load */
    int heads;   /* H of the (1, H, L, d) call; 0 means 1 */
    int compute; /* rfjit_attn_desc.compute: RFJIT_F32 (0) or RFJIT_BF16 (exact only) */
} bench_row;

/* r's head count: heads, or 1 for 0. */
int bench_row_heads(const bench_row *r);

/* The rows of a suite (headline, scaling, error, smoke) into rows (at most cap); the count,
 * or -1 for an unknown suite. */
int bench_suite_rows(const char *suite, bench_row *rows, int cap);
/* Timed runs a suite asks for when --runs is not given. */
int bench_suite_runs(const char *suite);
/* Cold compiles (and disk loads) timed per row of suite for their medians. */
int bench_suite_compile_samples(const char *suite);
/* ------------------------------------------------------------------ bench_serving.c */
/* The serving suite (it has no rows: each case is a ratio of two calls): padding, grouped
 * heads and half precision against the plain call, on ctx, runs interleaved pairs each,
 * printed as text or JSON lines. CLI_OK or the exit code after printing the error. */
int bench_serving(rfjit_ctx *ctx, int runs, int json);

/* ------------------------------------------------------------------ bench_decode.c */
/* The decode suite (no rows either): step and prefill of the decode API against the memory
 * floor, causal execute and torch's recurrent loop (torch nonzero: the peer runs), on
 * ctx[0] (one thread) and ctx[1] (two); smoke: tiny sizes. CLI_OK or the exit code after
 * printing the error. */
int bench_decode(rfjit_ctx *const ctx[2], int smoke, int runs, int torch, int json);

/* ------------------------------------------------------------------ real_data.c */
/* The real attention heads of data/real/ (its README.md): q, k, v of H heads of a trained
 * transformer on a calibration text and a held-out text. */
enum { REAL_CALIB = 0, REAL_HELDOUT = 1 };
enum { REAL_Q = 0, REAL_K = 1, REAL_V = 2 };
typedef struct real_set {
    int64_t H, L, d;
    int32_t *layer_head; /* H (layer, head) pairs */
    float *x[2][3];      /* [split][q, k, v]: H x L x d, row-major */
} real_set;

/* Where the set is: <prefix>/share/rfjit/real beside an installed rfjit, else the source
 * tree's data/real. */
const char *real_set_dir(void);

/* path = <the binary's dir>/../share/rfjit/rel, the file an installed rfjit reads; whether it
 * is there to read (bench_paths.c). */
int bench_installed_path(char *path, size_t n, const char *rel);
/* Load every file of the set in dir; 0, or -1 with why (a missing set says how to make it). */
int real_set_load(const char *dir, real_set *s, char *err, size_t len);
void real_set_free(real_set *s);
/* Head `head` of one split and tensor as a (1, 1, L, d) view. */
rfjit_tensor real_set_view(const real_set *s, int split, int which, int64_t head);
/* Over the rows of one head after rfjit's d^-1/4 scaling: the mean row norm and the norm of
 * the mean row (the mean component). */
void real_norms(const real_set *s, int split, int which, int64_t head, double *mean_norm,
                double *mean_component);

/* ------------------------------------------------------------------ bench_real.c */
/* The real suite: every estimator on the held-out split of each real head, both directions,
 * its error against the double reference and its time against exact attention's in the same
 * run (fitted estimators calibrated on the calibration split); smoke: two heads, one m, one
 * seed. CLI_OK or the exit code after printing the error. */
int bench_real(rfjit_ctx *ctx, int smoke, int runs, int json);

/* ------------------------------------------------------------------ bench_eva.c */
/* The eva suite: both eva variants' error against exact attention and time, over windows and
 * chunk counts, on Gaussian, local and real data, both directions, as markdown tables or
 * JSON lines. CLI_OK or the exit code after printing the error. */
int bench_eva(rfjit_ctx *ctx, int runs, int json);

/* ------------------------------------------------------------------ bench_plot.c */

/* One measured row as the plot reads it. */
typedef struct bench_point {
    const char *estimator;
    int causal, L, m, threads;
    const char *suite;
    double ms, rel_err, blas_favor_ms, blas_exact_ms, torch_favor_ms, torch_sdpa_ms;
} bench_point;

/* 0 when gnuplot runs; -1 otherwise. */
int bench_plot_available(void);
/* 1 when path can take the plot: it ends in .svg or .png and is a file rfjit may replace
 * (runtime/fsutil.h: absent, regular, or a symlink to a regular file); 0 with the reason in
 * why. Checked before the benchmarks run, so a refused path costs nothing. */
int bench_plot_path_ok(const char *path, char *why, size_t len);
/* Write the two-panel plot (.svg or .png by the name) of the scaling and error points:
 * gnuplot draws into a temporary directory and the result replaces path only once complete;
 * 0, or -1 with why. */
int bench_plot_write(const char *path, const bench_point *pts, int n, char *why, size_t len);

#endif
