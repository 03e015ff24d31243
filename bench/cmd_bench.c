/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit bench`: rfjit's attention against the single-core FMA peak
 * measured in the same run and against its peers (exact attention and FAVOR+ built on
 * OpenBLAS, bench/peer_blas.c; torch eager and SDPA, torch.compile, JAX, ONNX Runtime and
 * performer-pytorch, bench/peer_torch.py and bench/peer_compiled.py), on the shapes of a
 * suite (bench/bench_suite.c). Every peer computes on rfjit's inputs and projection matrix,
 * and its output must agree with rfjit's: a peer that disagrees is reported WRONG, not timed
 * as a win. Text tables by default, one JSON object per line with --json; --plot draws the
 * scaling and error suites (bench/bench_plot.c).
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char help[] =
    "usage: rfjit bench [--suite headline|scaling|error|smoke|serving|decode|decode-smoke|\n"
    "                            real|real-smoke|eva|compile]\n"
    "         [--json] [--runs N]\n"
    "         [--threads N] [--no-blas] [--no-torch] [--plot FILE.svg|FILE.png]\n"
    "Times rfjit attention (B = 1, H = 1, d = dv = 64, m = 256 unless the suite says\n"
    "otherwise; H heads run in one call, the peers compute the same H heads)\n"
    "against the one-core FMA peak measured in the same run and against OpenBLAS, torch (eager\n"
    "FAVOR+, SDPA, torch.compile), JAX, ONNX Runtime and performer-pytorch implementations of\n"
    "exact attention and FAVOR+ on the same inputs and projection matrix.\n"
    "  --suite S     headline (default): L = 4096 both directions, exact/positive crossover,\n"
    "                saderf and hybrid, L = 16384 on 1 and 2 threads, L = 4096 positive\n"
    "                and exact on 2 threads; H = 8 on 1 and 2 threads: positive L = 4096\n"
    "                both directions, exact bidirectional L = 1024; exact with bf16\n"
    "                compute at L = 4096 and 1024 (both directions; L = 4096 bidir also on\n"
    "                2 threads) against float32 exact (paired) and torch SDPA in float32\n"
    "                and bf16, positive with bf16 compute at L = 4096 bidirectional (1 and 2\n"
    "                threads, H = 1 and 8) against its float32 plan (paired) and the FAVOR+\n"
    "                peers; scaling: L sweep;\n"
    "                error: m sweep of every estimator; smoke: tiny shapes, 2 runs;\n"
    "                serving: B = 4, H = 8, L = 4096 ratios against the plain call, each\n"
    "                with its target and pass/fail: 50% padding (<= 0.55), grouped-query\n"
    "                Hkv = 1 (<= 0.6), float16 and bfloat16 inputs (<= 1.0); no peers\n"
    "                real: every estimator on the real attention heads of data/real (a\n"
    "                trained transformer on real text), m = 64 and 256, both directions:\n"
    "                error against exact and time against exact; real-smoke: two heads\n"
    "                eva: both eva variants (principled, official) over windows 0, 16, 64\n"
    "                and chunk counts 4, 16, 64, both directions, on Gaussian, local and\n"
    "                real data: error against exact and time, as markdown tables\n"
    "                compile: the cold compile and disk load of positive and exact kernels\n"
    "                (both directions, median of 21) and their execute times at L = 4096\n"
    "  --json        one JSON object per line: machine first, then one per row\n"
    "  --runs N      timed runs per measurement (default 5; smoke 2; real 20), after\n"
    "                2 warm-ups\n"
    "  --threads N   run every row on N threads (rfjit's pool and OpenBLAS alike)\n"
    "  --no-blas      skip the OpenBLAS peers\n"
    "  --no-torch    skip the Python peers (torch, JAX, ONNX Runtime, performer-pytorch)\n"
    "  --plot FILE   also run the scaling and error suites and plot them with gnuplot\n"
    "                (time against L, error against m); .svg or .png\n"
    "Columns: median ms (min-max), GFLOP/s by the flop model in the header, pct_peak of the\n"
    "one-core peak, rel_err against rfjit's exact attention, minor page faults per warm\n"
    "execute, and per peer its median ms and vs = peer time / rfjit time.\n"
    "Environment:\n"
    "  RFJIT_BENCH_PYTHON  the Python peers' interpreter, a path (default /usr/bin/python3);\n"
    "                      scripts/bench.sh sets it to .venv-bench/bin/python3\n";

enum { MAX_ROWS = 256, MAX_CTX = 8, EXACT_PEER_MAX_L = 8192, REF_CHECK_MAX_L = 4096 };
#define PEER_TOL 1e-3
/* bf16 rows: a Frobenius distance of 8 bfloat16 unit roundoffs (2^-5). One bf16
 * implementation sits about one roundoff from float32 (3.5e-3 for rfjit), two independent
 * ones about 1.4; a wrong mask or scale is off by tenths. */
#define PEER_TOL_BF16 0x1p-5

typedef struct peer_res {
    int ran, wrong;
    double ms, min, max, compile_ms; /* ms: median; compile_ms: NaN unless it compiles */
    double err, frob;                /* against rfjit's output: max-norm and Frobenius */
    double bf16_excess; /* bf16 rows: bench_bf16_excess against rfjit's output; else NaN */
} peer_res;

/* The OpenBLAS peers, then the Python ones in bench_py_name's order. */
enum { OB_FAVOR, OB_EXACT, PY0, N_PEERS = PY0 + N_PY };
#define TH_FAVOR (PY0 + PY_TORCH_FAVOR)
#define TH_SDPA (PY0 + PY_TORCH_SDPA)
#define TH_SDPA_BF16 (PY0 + PY_TORCH_SDPA_BF16)
static const char *peer_key(int i)
{
    return i == OB_FAVOR   ? "openblas_favor"
           : i == OB_EXACT ? "openblas_exact"
                           : bench_py_name[i - PY0];
}
static const char *const peer_title[N_PEERS] = {
    "OpenBLAS FAVOR+", "OpenBLAS exact", "torch FAVOR+", "torch SDPA",
    "torch.compile",   "JAX jit",        "ORT",          "performer",
    "torch SDPA bf16"};

typedef struct row_res {
    bench_row r;
    const char *suite;
    bench_exec x;
    double gflops, pct, rel_err, cold_ms, cold1_ms, disk_ms;
    double speedup; /* threads > 1: bench_rfjit_paired's over one thread; NaN otherwise */
    peer_res peer[N_PEERS];
    double tol_favor, tol_exact; /* the shape's bench_rounding_tol, NaN without peers */
    /* bf16 rows: rfjit float32 exact over bf16, paired (bench_rfjit_paired_plans); NaN
     * otherwise */
    double vs_f32;
} row_res;

/* The data of the current shape, rfjit's exact and positive outputs on it, and its peers. */
typedef struct shape {
    int valid, H, L, d, dv, m, causal;
    bench_data data;
    float *exact_out, *pos_out;
    int peers_threads; /* the thread count the peers ran with; 0 when not yet */
    peer_res peer[N_PEERS];
    double tol_favor, tol_exact; /* what float32 rounding explains (bench_rounding_tol) */
} shape;

typedef struct bench {
    int json, runs, threads, compile_samples;
    double peak;
    char cache_dir[64];
    struct {
        int threads;
        rfjit_ctx *ctx;
    } ctx[MAX_CTX];
    bench_blas *blas;
    int torch; /* the Python peers run */
    struct {
        int threads;
        bench_py *py;
    } py[MAX_CTX];
    char about[4096];   /* the Python peers' probe line */
    int py_noted[N_PY]; /* a failure of that peer was noted */
    int bf16_refused;   /* the library refused bf16 compute here: its rows are skipped */
    shape sh;
    row_res rows[MAX_ROWS];
    int n_rows;
} bench;

static void note(const bench *b, const char *fmt, const char *arg)
{
    FILE *f = b->json ? stderr : stdout;
    fputs(b->json ? "rfjit bench: note: " : "note: ", f);
    fprintf(f, fmt, arg);
    fputc('\n', f);
}

static rfjit_ctx *ctx_for(bench *b, int threads)
{
    int i = 0;
    for (; i < MAX_CTX && b->ctx[i].ctx; i++)
        if (b->ctx[i].threads == threads)
            return b->ctx[i].ctx;
    if (i == MAX_CTX)
        return NULL;
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.threads = threads;
    cd.cache_dir = b->cache_dir;
    cd.wisdom_path = ""; /* default tilings: what a user without wisdom gets */
    if (rfjit_ctx_create(&cd, &b->ctx[i].ctx) != RFJIT_OK)
        return NULL;
    b->ctx[i].threads = threads;
    return b->ctx[i].ctx;
}

static rfjit_attn_desc desc_of(const bench_row *r, const bench_data *p, const char *est)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = r->d;
    a.dv = r->dv;
    a.m = r->m;
    a.causal = r->causal;
    a.projection = RFJIT_PROJ_USER;
    a.projection_matrix = p->W;
    a.backend = RFJIT_BACKEND_JIT;
    a.compute = r->compute;
    return a;
}

/* One execute of est on the shape's data into out (threads: the row's). */
static int run_once(bench *b, const bench_row *r, const char *est, int backend, float *out,
                    char *err, size_t len)
{
    rfjit_ctx *ctx = ctx_for(b, r->threads);
    rfjit_attn_desc a = desc_of(r, &b->sh.data, est);
    a.backend = backend;
    a.compute = RFJIT_F32; /* the shape's references are float32, whatever the row's compute */
    rfjit_plan *plan = NULL;
    if (!ctx || rfjit_plan_create(ctx, &a, &plan) != RFJIT_OK) {
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
        return -1;
    }
    const bench_data *p = &b->sh.data;
    rfjit_tensor tq = rfjit_tensor_contiguous(p->q, 1, p->H, p->L, p->d);
    rfjit_tensor tk = rfjit_tensor_contiguous(p->k, 1, p->H, p->L, p->d);
    rfjit_tensor tv = rfjit_tensor_contiguous(p->v, 1, p->H, p->L, p->dv);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, p->H, p->L, p->dv);
    const int rc = rfjit_plan_execute(plan, &tq, &tk, &tv, &to) == RFJIT_OK ? 0 : -1;
    if (rc)
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(plan);
    return rc;
}

/* Floats in a row's output: every head's L x dv. */
static size_t out_len(const bench_row *r)
{
    return (size_t)bench_row_heads(r) * (size_t)r->L * (size_t)r->dv;
}

static void shape_free(shape *s)
{
    bench_data_free(&s->data);
    free(s->exact_out);
    free(s->pos_out);
    memset(s, 0, sizeof *s);
}

/* Make the row's shape current: draw its data and rfjit's exact output on it. */
static int shape_for(bench *b, const bench_row *r, char *err, size_t len)
{
    shape *s = &b->sh;
    const int H = bench_row_heads(r);
    if (s->valid && s->H == H && s->L == r->L && s->d == r->d && s->dv == r->dv && s->m == r->m &&
        s->causal == r->causal)
        return 0;
    shape_free(s);
    if (bench_data_init_heads(&s->data, H, r->L, r->d, r->dv, r->m) != 0 ||
        !(s->exact_out = malloc(sizeof(float) * out_len(r)))) {
        snprintf(err, len, "out of memory");
        return -1;
    }
    s->H = H, s->L = r->L, s->d = r->d, s->dv = r->dv, s->m = r->m, s->causal = r->causal;
    if (run_once(b, r, "exact", RFJIT_BACKEND_JIT, s->exact_out, err, len) != 0)
        return -1;
    s->valid = 1;
    return 0;
}

/* A peer's output against rfjit's: WRONG beyond rounding (tol, max-norm) or beyond frob in
 * the Frobenius norm (PEER_TOL, as before the rounding bound existed; PEER_TOL_BF16). */
static void check_peer(peer_res *res, const float *out, const float *ref, size_t n, double tol,
                       double frob)
{
    res->err = bench_max_rel_err(out, ref, n);
    res->frob = bench_rel_err(out, ref, n);
    res->wrong = !(res->err <= tol) || !(res->frob <= frob);
    res->bf16_excess = NAN;
}

/* Each entry's weighted |v| on the shape, sum_j p_ij |v_jc| (bench_bf16_excess): float32
 * exact attention of q, k and |v| into wv. */
static int weighted_abs_v(bench *b, const bench_row *r, float *wv, char *err, size_t len)
{
    bench_data p = b->sh.data;
    const size_t n = out_len(r);
    float *av = malloc(sizeof(float) * n);
    rfjit_ctx *ctx = ctx_for(b, r->threads);
    rfjit_plan *plan = NULL;
    rfjit_attn_desc a = desc_of(r, &p, "exact");
    a.compute = RFJIT_F32;
    int rc = -1;
    if (!av || !ctx)
        snprintf(err, len, "out of memory");
    else if (rfjit_plan_create(ctx, &a, &plan) != RFJIT_OK)
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    if (av && plan) {
        for (size_t i = 0; i < n; i++)
            av[i] = fabsf(p.v[i]);
        rfjit_tensor tq = rfjit_tensor_contiguous(p.q, 1, p.H, p.L, p.d);
        rfjit_tensor tk = rfjit_tensor_contiguous(p.k, 1, p.H, p.L, p.d);
        rfjit_tensor tv = rfjit_tensor_contiguous(av, 1, p.H, p.L, p.dv);
        rfjit_tensor to = rfjit_tensor_contiguous(wv, 1, p.H, p.L, p.dv);
        rc = rfjit_plan_execute(plan, &tq, &tk, &tv, &to) == RFJIT_OK ? 0 : -1;
        if (rc)
            snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    }
    rfjit_plan_destroy(plan);
    free(av);
    return rc;
}

/* Time a peer: 2 warm-ups, then runs; err against ref. */
static void time_blas(bench *b, int exact, int causal, peer_ws *w, float *out,
                      const float *ref, peer_res *res)
{
    double ms[1000];
    const bench_data *p = &b->sh.data;
    for (int i = 0; i < 2 + b->runs; i++) {
        const double t0 = cli_now();
        if (exact)
            peer_blas_exact(b->blas, p, causal, w, out);
        else
            peer_blas_favor(b->blas, p, causal, w, out);
        if (i >= 2)
            ms[i - 2] = 1e3 * (cli_now() - t0);
    }
    bench_time t;
    bench_time_of(ms, b->runs, &t);
    res->ran = 1;
    res->ms = t.med, res->min = t.min, res->max = t.max;
    res->compile_ms = NAN;
    check_peer(res, out, ref, (size_t)p->H * (size_t)p->L * (size_t)p->dv,
               exact ? b->sh.tol_exact : b->sh.tol_favor, PEER_TOL);
}

/* The Python peers' server for a thread count, started on first use; NULL when it cannot
 * start (noted once). */
static bench_py *py_for(bench *b, int threads)
{
    int i = 0;
    for (; i < MAX_CTX && b->py[i].threads; i++)
        if (b->py[i].threads == threads)
            return b->py[i].py;
    if (i == MAX_CTX)
        return NULL;
    char about[4096], why[512];
    b->py[i].threads = threads;
    b->py[i].py = bench_py_open(threads, b->cache_dir, about, sizeof about, why, sizeof why);
    if (!b->py[i].py)
        note(b, "Python peers skipped: %s", why);
    else if (!b->about[0])
        snprintf(b->about, sizeof b->about, "%s", about);
    return b->py[i].py;
}

/* The Python peers on the current shape: torch eager FAVOR+ always, SDPA where the OpenBLAS
 * exact peer runs, the compiled and library FAVOR+ peers on bidirectional shapes (they
 * implement the bidirectional formula only). */
static void run_py_peers(bench *b, const bench_row *r, int with_exact)
{
    shape *s = &b->sh;
    bench_py *py = py_for(b, r->threads);
    if (!py)
        return;
    int want[N_PY] = {0};
    want[PY_TORCH_FAVOR] = 1;
    want[PY_TORCH_SDPA] = with_exact;
    want[PY_TORCH_COMPILE] = want[PY_JAX] = want[PY_ORT] = want[PY_PERFORMER] = !r->causal;
    bench_py_out res[N_PY];
    char why[256];
    if (bench_py_run(py, &s->data, r->causal, b->runs, want, res, why, sizeof why) != 0) {
        note(b, "Python peers skipped on this shape: %s", why);
        return;
    }
    const size_t n = out_len(r);
    for (int i = 0; i < N_PY; i++) {
        peer_res *f = &s->peer[PY0 + i];
        if (!want[i])
            continue;
        if (!res[i].out) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s: %s", bench_py_name[i], res[i].why);
            if (!b->py_noted[i]++) /* a peer that cannot import says so once, not per shape */
                note(b, "peer skipped (the first shape it failed on; see the rows): %s", msg);
            continue;
        }
        const int exact = i == PY_TORCH_SDPA;
        f->ran = 1;
        f->ms = f->min = f->max = res[i].ms;
        f->compile_ms = res[i].compile_ms;
        check_peer(f, res[i].out, exact ? s->exact_out : s->pos_out, n,
                   exact ? s->tol_exact : s->tol_favor, PEER_TOL);
    }
    bench_py_free(res);
}

/* A bf16 row's peers, run for the row itself and timed next to it: SDPA in float32 and on
 * bfloat16 tensors, each checked against rfjit's bf16 output out: WRONG beyond what
 * bfloat16 rounding explains in some entry (bench_bf16_excess) or beyond PEER_TOL_BF16 in
 * the Frobenius norm. 0, or -1 with err. */
static int run_bf16_peers(bench *b, const bench_row *r, const float *out, row_res *x, char *err,
                          size_t len)
{
    bench_py *py = py_for(b, r->threads);
    if (!py)
        return 0;
    float *wv = malloc(sizeof(float) * out_len(r));
    if (!wv || weighted_abs_v(b, r, wv, err, len) != 0) {
        if (!wv)
            snprintf(err, len, "out of memory");
        free(wv);
        return -1;
    }
    int want[N_PY] = {0};
    want[PY_TORCH_SDPA] = want[PY_TORCH_SDPA_BF16] = 1;
    bench_py_out res[N_PY];
    char why[256];
    if (bench_py_run(py, &b->sh.data, r->causal, b->runs, want, res, why, sizeof why) != 0) {
        note(b, "Python peers skipped on this shape: %s", why);
        free(wv);
        return 0;
    }
    for (int i = 0; i < N_PY; i++) {
        peer_res *f = &x->peer[PY0 + i];
        if (!want[i])
            continue;
        if (!res[i].out) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s: %s", bench_py_name[i], res[i].why);
            if (!b->py_noted[i]++)
                note(b, "peer skipped (the first shape it failed on; see the rows): %s", msg);
            continue;
        }
        f->ran = 1;
        f->ms = f->min = f->max = res[i].ms;
        f->compile_ms = NAN;
        check_peer(f, res[i].out, out, out_len(r), INFINITY, PEER_TOL_BF16);
        f->bf16_excess = bench_bf16_excess(&b->sh.data, wv, res[i].out, out);
        f->wrong |= !(f->bf16_excess <= 1);
    }
    bench_py_free(res);
    free(wv);
    return 0;
}

/* A bf16 row the library refuses: RFJIT_E_ISA where the CPU (or context) has no bf16
 * instruction (2: every bf16 row is skipped), RFJIT_E_NOT_APPLICABLE where it has no bf16
 * kernel for this estimator (positive without AMX; 1: this row is), with the library's
 * message in err; 0 when the plan can be made (or fails otherwise, which the row's own run
 * then reports). */
static int bf16_refused(rfjit_ctx *ctx, const rfjit_attn_desc *a, char *err, size_t len)
{
    rfjit_plan *plan = NULL;
    const rfjit_status s = rfjit_plan_create(ctx, a, &plan);
    rfjit_plan_destroy(plan);
    if (s != RFJIT_E_ISA && s != RFJIT_E_NOT_APPLICABLE)
        return 0;
    snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    return s == RFJIT_E_ISA ? 2 : 1;
}

static int run_peers(bench *b, const bench_row *r, char *err, size_t len)
{
    shape *s = &b->sh;
    if (s->peers_threads == r->threads)
        return 0;
    memset(s->peer, 0, sizeof s->peer);
    s->peers_threads = r->threads;
    const size_t n = out_len(r);
    if (!s->pos_out) {
        if (!(s->pos_out = malloc(sizeof(float) * n))) {
            snprintf(err, len, "out of memory");
            return -1;
        }
        if (run_once(b, r, "positive", RFJIT_BACKEND_JIT, s->pos_out, err, len) != 0)
            return -1;
    }
    /* the exact peers are quadratic: past 8192^2 pairs in all (L = 4096 with 8 heads) a call
     * of theirs takes seconds and says nothing the linear rows need */
    const int with_exact = (double)bench_row_heads(r) * r->L * r->L <=
                           (double)EXACT_PEER_MAX_L * EXACT_PEER_MAX_L;
    s->tol_favor = bench_rounding_tol(&s->data, 0, s->pos_out);
    s->tol_exact = bench_rounding_tol(&s->data, 1, s->exact_out);
    if (b->blas) {
        bench_blas_threads(b->blas, r->threads);
        peer_ws *w = peer_ws_create(&s->data);
        float *out = malloc(sizeof(float) * n);
        if (!w || !out) {
            peer_ws_destroy(w);
            free(out);
            snprintf(err, len, "out of memory");
            return -1;
        }
        time_blas(b, 0, r->causal, w, out, s->pos_out, &s->peer[OB_FAVOR]);
        if (with_exact)
            time_blas(b, 1, r->causal, w, out, s->exact_out, &s->peer[OB_EXACT]);
        peer_ws_destroy(w);
        free(out);
    }
    if (b->torch)
        run_py_peers(b, r, with_exact);
    return 0;
}

/* The flop model of the header, times the heads. */
static double flops_of(const bench_row *r, int64_t M)
{
    const double H = bench_row_heads(r), L = r->L, d = r->d, dv = r->dv;
    if (!strcmp(r->estimator, "exact"))
        return H * (r->causal ? 1.0 : 2.0) * L * L * (d + dv);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    const double P = r->m + (strcmp(r->estimator, "hybrid") ? 0 : a.hybrid_signs);
    return H * (4 * L * P * d + 4 * L * (double)M * dv);
}

/* 4 N + 1 rounds for N timed runs: with the default 5, 21, which the machine's drift leaves
 * within a few percent; at most 101. */
static int paired_rounds(const bench *b)
{
    return b->runs < 25 ? 4 * b->runs + 1 : 101;
}

/* res->vs_f32 for a bf16 row: float32 exact against the row's bf16 plan on the same context,
 * timed in alternation (bench_rfjit_paired_plans; paired_rounds of them). */
static int paired_vs_f32(bench *b, const bench_row *r, rfjit_ctx *ctx, const rfjit_attn_desc *a,
                         row_res *res, char *err, size_t len)
{
    rfjit_attn_desc f32 = *a;
    f32.compute = RFJIT_F32;
    rfjit_ctx *const ctxs[2] = {ctx, ctx};
    const rfjit_attn_desc *const d[2] = {&f32, a};
    float *out = malloc(sizeof(float) * out_len(r));
    int rc = -1;
    if (!out)
        snprintf(err, len, "out of memory");
    else
        rc = bench_rfjit_paired_plans(ctxs, d, &b->sh.data, paired_rounds(b), out, &res->vs_f32,
                                      err, len);
    free(out);
    return rc;
}

/* res->speedup: rfjit on r->threads against one thread, timed in alternation on the shape's
 * data (bench_rfjit_paired; paired_rounds of them). */
static int paired_speedup(bench *b, const bench_row *r, rfjit_ctx *many, const rfjit_attn_desc *a,
                          row_res *res, char *err, size_t len)
{
    rfjit_ctx *one = ctx_for(b, 1);
    float *out = malloc(sizeof(float) * out_len(r));
    int rc = -1;
    if (!one || !out)
        snprintf(err, len, out ? "cannot create a context for 1 thread" : "out of memory");
    else
        rc = bench_rfjit_paired(one, many, a, &b->sh.data, paired_rounds(b), out, &res->speedup,
                                err, len);
    free(out);
    return rc;
}

/* 0, -1 with err, or 1 when a bf16 row is refused by the library (its message in err). */
static int run_row(bench *b, const bench_row *r, const char *suite, row_res *res, char *err,
                   size_t len)
{
    memset(res, 0, sizeof *res);
    res->r = *r;
    res->suite = suite;
    res->cold_ms = res->cold1_ms = res->disk_ms = res->rel_err = res->tol_favor = res->tol_exact =
        NAN;
    res->speedup = res->vs_f32 = NAN;
    const int bf16 = r->compute == RFJIT_BF16;
    if (bf16 && b->bf16_refused)
        return 1;
    if (shape_for(b, r, err, len) != 0)
        return -1;
    shape *s = &b->sh;
    const size_t n = out_len(r);
    float *out = malloc(sizeof(float) * n);
    rfjit_ctx *ctx = ctx_for(b, r->threads);
    if (!out || !ctx) {
        free(out);
        snprintf(err, len, out ? "cannot create a context for %d threads" : "out of memory",
                 r->threads);
        return -1;
    }
    rfjit_attn_desc a = desc_of(r, &s->data, r->estimator);
    const int refused = bf16 ? bf16_refused(ctx, &a, err, len) : 0;
    if (refused) {
        free(out);
        b->bf16_refused = refused == 2;
        return 1;
    }
    int rc = bench_rfjit_exec(ctx, &a, &s->data, b->runs, out, &res->x, err, len);
    /* a random-feature bf16 row is a float32 row's plan with bf16 products: its peers are
     * that row's FAVOR+ peers, which run and are checked as there */
    const int bf16_exact = bf16 && !strcmp(r->estimator, "exact");
    if (rc == 0 && bf16 && !bf16_exact) {
        res->rel_err = bench_rel_err(out, s->exact_out, n);
        rc = paired_vs_f32(b, r, ctx, &a, res, err, len);
    } else if (rc == 0 && bf16) {
        /* against float32 exact: what bf16 compute costs in accuracy */
        res->rel_err = bench_rel_err(out, s->exact_out, n);
        rc = paired_vs_f32(b, r, ctx, &a, res, err, len);
        if (rc == 0 && r->peers && b->torch)
            rc = run_bf16_peers(b, r, out, res, err, len);
    } else if (rc == 0 && !strcmp(r->estimator, "exact")) {
        /* exact against itself says nothing: check it against the double-precision
         * reference where that takes seconds, not minutes (no more work than one head at
         * REF_CHECK_MAX_L) */
        const double L = r->L, work = bench_row_heads(r) * L * L;
        if (work <= (double)REF_CHECK_MAX_L * REF_CHECK_MAX_L) {
            float *ref = malloc(sizeof(float) * n);
            rc = ref ? run_once(b, r, "exact", RFJIT_BACKEND_REFERENCE, ref, err, len) : -1;
            if (rc == 0)
                res->rel_err = bench_rel_err(out, ref, n);
            free(ref);
        }
    } else if (rc == 0) {
        res->rel_err = bench_rel_err(out, s->exact_out, n);
        if (!strcmp(r->estimator, "positive") && !s->pos_out) {
            s->pos_out = out;
            out = NULL;
        }
    }
    free(out);
    if (rc == 0 && r->threads > 1)
        rc = paired_speedup(b, r, ctx, &a, res, err, len);
    if (rc != 0)
        return -1;
    res->gflops = flops_of(r, res->x.M) / (res->x.t.med * 1e6);
    res->pct = res->gflops / b->peak;
    if (r->compile && bench_rfjit_compile(&a, b->cache_dir, b->compile_samples, &res->cold_ms,
                                          &res->cold1_ms, &res->disk_ms, err, len) != 0)
        return -1;
    if (r->peers && !bf16_exact && (b->blas || b->torch)) {
        if (run_peers(b, r, err, len) != 0)
            return -1;
        memcpy(res->peer, s->peer, sizeof res->peer);
        res->tol_favor = s->tol_favor;
        res->tol_exact = s->tol_exact;
    }
    return 0;
}

/* ------------------------------------------------------------------ output */

static void jnum(const char *key, double v)
{
    if (isfinite(v))
        printf(",\"%s\":%.6g", key, v);
    else
        printf(",\"%s\":null", key);
}

static void print_json_row(const row_res *x)
{
    const bench_row *r = &x->r;
    printf("{\"suite\":\"%s\",\"estimator\":\"%s\",\"compute\":\"%s\",\"causal\":%d,\"L\":%d,"
           "\"d\":%d,\"dv\":%d,\"m\":%d,\"M\":%lld,\"threads\":%d,\"heads\":%d,\"runs\":%d",
           x->suite, r->estimator, r->compute == RFJIT_BF16 ? "bf16" : "f32", r->causal, r->L, r->d,
           r->dv, r->m, (long long)x->x.M, r->threads, bench_row_heads(r), x->x.t.runs);
    jnum("ms", x->x.t.med);
    jnum("ms_min", x->x.t.min);
    jnum("ms_max", x->x.t.max);
    jnum("gflops", x->gflops);
    jnum("pct_peak", x->pct);
    jnum("rel_err", x->rel_err);
    jnum("minflt_per_run", x->x.minflt_per_run);
    printf(",\"maxrss_kib\":%ld", x->x.maxrss_kib);
    jnum("cold_compile_ms", x->cold_ms);
    jnum("cold_compile_1t_ms", x->cold1_ms);
    jnum("disk_cache_ms", x->disk_ms);
    jnum("speedup_paired", x->speedup);
    jnum("vs_rfjit_f32_paired", x->vs_f32);
    for (int i = 0; i < N_PEERS; i++) {
        const peer_res *p = &x->peer[i];
        char k[64];
        /* the Python peers' ratios are always there, null when the peer did not run */
        if (!p->ran) {
            snprintf(k, sizeof k, "vs_%s", peer_key(i));
            if (i >= PY0)
                jnum(k, NAN);
            continue;
        }
        snprintf(k, sizeof k, "%s_ms", peer_key(i));
        jnum(k, p->ms);
        snprintf(k, sizeof k, "vs_%s", peer_key(i));
        jnum(k, p->wrong ? NAN : p->ms / x->x.t.med);
        snprintf(k, sizeof k, "peer_err_%s", peer_key(i));
        jnum(k, p->err);
        snprintf(k, sizeof k, "peer_frob_%s", peer_key(i));
        jnum(k, p->frob);
        if (isfinite(p->compile_ms)) {
            snprintf(k, sizeof k, "%s_compile_ms", peer_key(i));
            jnum(k, p->compile_ms);
        }
        if (x->r.compute == RFJIT_BF16) {
            snprintf(k, sizeof k, "peer_bf16_excess_%s", peer_key(i));
            jnum(k, p->bf16_excess);
        }
        printf(",\"%s_wrong\":%s", peer_key(i), p->wrong ? "true" : "false");
    }
    jnum("peer_tol_favor", x->tol_favor);
    jnum("peer_tol_exact", x->tol_exact);
    puts("}");
    fflush(stdout);
}

static void print_text_head(void)
{
    printf("%-10s %-6s %6s %4s %4s %5s %3s %3s %9s %19s %8s %6s %9s %7s", "estimator", "mode", "L",
           "d", "dv", "m", "thr", "H", "ms", "(min-max)", "GFLOP/s", "%peak", "rel_err", "flt/run");
    for (int i = 0; i < N_PEERS; i++)
        printf(" | %-16s", peer_title[i]);
    putchar('\n');
}

static void print_peer_text(const peer_res *p, double ms)
{
    if (!p->ran)
        printf(" | %-16s", "-");
    else if (p->wrong)
        printf(" | %-16s", "WRONG");
    else
        printf(" | %9.3f %5.2fx", p->ms, p->ms / ms);
}

/* The estimator column: its name, with "-bf16" for bf16 compute. */
static const char *row_name(const bench_row *r)
{
    static char buf[32];
    if (r->compute != RFJIT_BF16)
        return r->estimator;
    snprintf(buf, sizeof buf, "%s-bf16", r->estimator);
    return buf;
}

static void print_text_row(const row_res *x)
{
    const bench_row *r = &x->r;
    char spread[40];
    snprintf(spread, sizeof spread, "(%.3f-%.3f)", x->x.t.min, x->x.t.max);
    printf("%-10s %-6s %6d %4d %4d %5d %3d %3d %9.3f %19s %8.1f %5.1f%% ", row_name(r),
           r->causal ? "causal" : "bidir", r->L, r->d, r->dv, r->m, r->threads, bench_row_heads(r),
           x->x.t.med, spread, x->gflops, 100 * x->pct);
    if (isfinite(x->rel_err))
        printf("%9.2e", x->rel_err);
    else
        printf("%9s", "-");
    printf(" %7.1f", x->x.minflt_per_run);
    for (int i = 0; i < N_PEERS; i++)
        print_peer_text(&x->peer[i], x->x.t.med);
    putchar('\n');
    fflush(stdout);
}

static const row_res *find_row(const bench *b, const char *est, const bench_row *like,
                               int threads)
{
    for (int i = 0; i < b->n_rows; i++) {
        const bench_row *r = &b->rows[i].r;
        if (!strcmp(r->estimator, est) && r->causal == like->causal && r->L == like->L &&
            r->m == like->m && r->d == like->d && r->threads == threads &&
            bench_row_heads(r) == bench_row_heads(like) && r->compute == like->compute)
            return &b->rows[i];
    }
    return NULL;
}

static void print_summaries(const bench *b)
{
    int any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        if (!x->r.compile)
            continue;
        if (!any++)
            printf("\ncompile of the kernel, ms (median of %d, minus a reference-backend plan's "
                   "creation): cold = a context without disk cache and one thread per core "
                   "(the default; a kernel's parts compile side by side), cold_1t = the same "
                   "with one thread, disk = a fresh context loading from the cache a first one "
                   "filled\n",
                   b->compile_samples);
        printf("  %-10s %-6s L=%-6d cold %8.2f  cold_1t %8.2f  disk %7.2f\n", x->r.estimator,
               x->r.causal ? "causal" : "bidir", x->r.L, x->cold_ms, x->cold1_ms, x->disk_ms);
    }
    any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        int ran = 0;
        for (int p = 0; p < N_PEERS; p++)
            ran |= x->peer[p].ran;
        /* the previous row of the same compute: bf16 rows sit between float32 rows of one
         * shape and have peers of their own */
        const row_res *prev = NULL;
        for (int j = i - 1; j >= 0 && !prev; j--)
            if (b->rows[j].r.compute == x->r.compute)
                prev = &b->rows[j];
        if (!ran || (prev && prev->r.L == x->r.L && prev->r.causal == x->r.causal &&
                     prev->r.m == x->r.m && prev->r.threads == x->r.threads &&
                     prev->r.d == x->r.d && bench_row_heads(&prev->r) == bench_row_heads(&x->r)))
            continue;
        if (!any++)
            printf("\npeer agreement: max-norm error |O_peer - O_rfjit|_inf / |O_rfjit|_inf "
                   "against rfjit's positive (FAVOR+ peers) or exact (exact peers) output; tol = "
                   "what float32 rounding can explain (worst case, from the data's norms); a "
                   "peer beyond tol, or beyond %.0e in the Frobenius norm, is WRONG and not "
                   "compared\n",
                   PEER_TOL);
        const int bf16 = x->r.compute == RFJIT_BF16 && !strcmp(x->r.estimator, "exact");
        if (bf16)
            printf("  %-6s L=%-6d H=%d thr=%d: bf16 compute, against rfjit's bf16 output; WRONG "
                   "beyond the bf16 bound in some entry (2 (2 e_i + 2 u) sum_j p_ij |v_jc| + "
                   "u |o_ic|, u = 2^-8, e_i = 2 u |q_i| max|k| / sqrt d) or beyond %.1e in the "
                   "Frobenius norm\n",
                   x->r.causal ? "causal" : "bidir", x->r.L, bench_row_heads(&x->r), x->r.threads,
                   PEER_TOL_BF16);
        else
            printf("  %-6s L=%-6d H=%d thr=%d: tol FAVOR+ %.1e, exact %.1e\n",
                   x->r.causal ? "causal" : "bidir", x->r.L, bench_row_heads(&x->r), x->r.threads,
                   x->tol_favor, x->tol_exact);
        for (int p = 0; p < N_PEERS; p++) {
            const peer_res *q = &x->peer[p];
            if (!q->ran)
                continue;
            const int beyond =
                bf16 ? !(q->bf16_excess <= 1)
                     : !(q->err <= (p == OB_EXACT || p == TH_SDPA ? x->tol_exact : x->tol_favor));
            printf("    %-20s %.2e (Frobenius %.2e", peer_key(p), q->err, q->frob);
            if (bf16)
                printf("; %.2g of the bf16 bound", q->bf16_excess);
            printf(")%s\n", !q->wrong ? ""
                            : !beyond ? "  WRONG (Frobenius)"
                            : bf16    ? "  WRONG: BEYOND BF16 ROUNDING"
                                      : "  WRONG: BEYOND FLOAT32 ROUNDING");
        }
        for (int p = PY0; p < N_PEERS; p++)
            if (x->peer[p].ran && isfinite(x->peer[p].compile_ms))
                printf("    %-20s compile (first call, not in the ratio) %.0f ms\n", peer_key(p),
                       x->peer[p].compile_ms);
    }
    any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *e = &b->rows[i];
        const row_res *p = find_row(b, "positive", &e->r, e->r.threads);
        if (strcmp(e->r.estimator, "exact") || e->r.causal || !p)
            continue;
        if (!any++)
            printf("\ncrossover (bidirectional, m = %d):\n", e->r.m);
        const int exact_wins = e->x.t.med < p->x.t.med;
        printf("  L=%-6d exact %8.3f ms  positive %8.3f ms  -> %s faster (%.2fx)\n", e->r.L,
               e->x.t.med, p->x.t.med, exact_wins ? "exact" : "positive",
               exact_wins ? p->x.t.med / e->x.t.med : e->x.t.med / p->x.t.med);
    }
    any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        const row_res *p = find_row(b, "positive", &x->r, x->r.threads);
        if (!p || !strcmp(x->r.estimator, "positive") || !strcmp(x->r.estimator, "exact") ||
            strcmp(x->suite, "headline"))
            continue;
        if (!any++)
            printf("\nagainst positive at the same m (time ratio; > 1 is slower):\n");
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        printf("  %-8s L=%-6d m=%d: %.2fx", x->r.estimator, x->r.L, x->r.m,
               x->x.t.med / p->x.t.med);
        if (!strcmp(x->r.estimator, "hybrid"))
            printf("  (m = projections of its positive base and its trig part, n = %d sign "
                   "features, M = 3m(n + 1) = %lld features)",
                   a.hybrid_signs, (long long)x->x.M);
        else
            printf("  (M = %lld features)", (long long)x->x.M);
        printf("  rel_err %.2e vs positive %.2e\n", x->rel_err, p->rel_err);
    }
    any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        if (x->r.threads <= 1 || !isfinite(x->speedup))
            continue;
        if (!any++)
            printf("\nthreads (speed-up over one thread: the median ratio of the two timed in "
                   "alternation, %d rounds; the rows' own medians, timed apart, in "
                   "brackets):\n",
                   paired_rounds(b));
        const row_res *one = find_row(b, x->r.estimator, &x->r, 1);
        printf("  %-15s %-6s L=%-6d H=%d %d threads: speed-up %.2fx", row_name(&x->r),
               x->r.causal ? "causal" : "bidir", x->r.L, bench_row_heads(&x->r), x->r.threads,
               x->speedup);
        if (one)
            printf("  (1 thread %.3f ms, %d threads %.3f ms: %.2fx)", one->x.t.med, x->r.threads,
                   x->x.t.med, one->x.t.med / x->x.t.med);
        putchar('\n');
    }
    any = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        if (x->r.compute != RFJIT_BF16)
            continue;
        if (!any++)
            printf("\nbf16 compute (products on bfloat16 operands, float32 sums; issue 20's "
                   "targets at L = 4096: >= 1.6x rfjit float32, exact >= 1.8x SDPA, FAVOR+ >= 2x "
                   "torch.compile): vs f32 = rfjit float32 / bf16 of the same plan, the median "
                   "ratio of the two timed in alternation, %d rounds; vs <peer> = peer median / "
                   "rfjit bf16 median (exact: torch SDPA on float32 and on bf16 tensors; positive: "
                   "the float32 FAVOR+ peers); rel_err against rfjit float32 exact\n",
                   paired_rounds(b));
        const int ex = !strcmp(x->r.estimator, "exact");
        const int shown[2][3] = {{PY0 + PY_TORCH_COMPILE, PY0 + PY_JAX, PY0 + PY_ORT},
                                 {TH_SDPA, TH_SDPA_BF16, -1}};
        static const char *const label[2][3] = {{"torch.compile", "JAX", "ORT"},
                                                {"SDPA f32", "SDPA bf16", NULL}};
        printf("  %-8s %-6s L=%-6d H=%d thr=%d: bf16 %8.3f ms  vs f32 %.2fx", x->r.estimator,
               x->r.causal ? "causal" : "bidir", x->r.L, bench_row_heads(&x->r), x->r.threads,
               x->x.t.med, x->vs_f32);
        for (int k = 0; k < 3 && shown[ex][k] >= 0; k++) {
            const peer_res *q = &x->peer[shown[ex][k]];
            if (!q->ran)
                printf("  vs %s -", label[ex][k]);
            else if (q->wrong)
                printf("  vs %s WRONG", label[ex][k]);
            else
                printf("  vs %s %.2fx", label[ex][k], q->ms / x->x.t.med);
        }
        printf("  rel_err %.2e\n", x->rel_err);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("\npeak RSS of the whole run: %.1f MiB\n", ru.ru_maxrss / 1024.0);
}

/* ------------------------------------------------------------------ machine */

/* The "cpu" value of rfjit_info's JSON into out. */
static void info_cpu(rfjit_ctx *ctx, char *out, size_t len)
{
    snprintf(out, len, "unknown");
    for (size_t n = 16384; n <= ((size_t)1 << 22); n *= 4) {
        char *buf = malloc(n);
        if (!buf)
            return;
        if (rfjit_info(ctx, 1, buf, n) == RFJIT_OK) {
            const char *p = strstr(buf, "\"cpu\":\"");
            if (p) {
                p += 7;
                const size_t k = strcspn(p, "\"");
                snprintf(out, len, "%.*s", (int)(k < len ? k : len - 1), p);
            }
            free(buf);
            return;
        }
        free(buf);
    }
}

static void json_str(const char *key, const char *v)
{
    printf(",\"%s\":", key);
    if (!v) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (; *v; v++)
        if (*v == '"' || *v == '\\')
            printf("\\%c", *v);
        else if ((unsigned char)*v >= 0x20)
            putchar(*v);
    putchar('"');
}

static const char flop_model[] =
    "linear: 4*L*P*d + 4*L*M*dv (P projection rows: m, m + n for hybrid; M features; "
    "= 8*L*m*d for positive at d = dv); exact: 2*L^2*(d + dv), causal L^2*(d + dv) "
    "(= 4*L^2*d and 2*L^2*d at d = dv); per head, times H; exps and reductions not counted";

static void print_machine(const bench *b, const char *suites, const char *cpu,
                          const char *torch_version)
{
    const char *core = b->blas ? bench_blas_core(b->blas) : NULL;
    const char *config = b->blas ? bench_blas_config(b->blas) : NULL;
    if (b->json) {
        printf("{\"machine\":true");
        json_str("suite", suites);
        jnum("peak_gflops", b->peak);
        json_str("cpu", cpu);
        json_str("openblas_core", core);
        json_str("openblas_config", config);
        json_str("torch", torch_version);
        json_str("python", b->torch ? bench_py_python() : NULL);
        /* the probe's own JSON object: versions, BLAS and kernels of every Python peer */
        printf(",\"python_peers\":%s", b->torch && b->about[0] == '{' ? b->about : "null");
        printf(",\"runs\":%d,\"warmups\":2", b->runs);
        json_str("flop_model", flop_model);
        json_str("torch_env", b->torch ? bench_torch_tunables : NULL);
        puts("}");
        fflush(stdout);
        return;
    }
    printf("rfjit bench, suite %s: cpu %s, one-core fp32 FMA peak %.1f GFLOP/s "
           "(rfjit_fma_peak, measured now)\n",
           suites, cpu, b->peak);
    printf("data: B = 1, H heads (column H; all heads in one rfjit call and one call of each "
           "Python peer, one after another in the OpenBLAS peers); q, k entries N(0, 1/sqrt d) "
           "(scaled norm ~1), v entries N(0, 1), each head its own; one W = m x d "
           "block-orthogonal Gaussian rows (Gram-Schmidt blocks, chi_d norms) for all heads, "
           "given to rfjit (RFJIT_PROJ_USER) and to every FAVOR+ peer\n");
    printf("timing: median (min-max) of %d runs after 2 warm-ups; vs_<peer> = peer median / "
           "rfjit median (> 1: rfjit faster)\n",
           b->runs);
    printf("flops: %s; %%peak is of ONE core's peak, also for multi-thread rows\n", flop_model);
    printf("rel_err: |O - O_exact|_F / |O_exact|_F, O_exact = rfjit exact (JIT) on the same "
           "inputs; exact rows against rfjit's double-precision reference backend (L <= %d), "
           "-bf16 rows (bf16 compute) against rfjit's float32 exact; their %%peak is still of "
           "the fp32 FMA peak\n",
           REF_CHECK_MAX_L);
    if (b->blas)
        printf("OpenBLAS: core %s (%s), OPENBLAS_CORETYPE removed before loading, threads = "
               "rfjit's; exact: sgemm in blocks of %d queries (causal: no keys past the "
               "block), polynomial-exp softmax vectorised by gcc; FAVOR+: sgemm projections, "
               "polynomial exp, sgemm and sgemv (causal: chunks of %d); exact peers for "
               "H L^2 <= %d^2\n",
               core, config, PEER_EXACT_BLOCK, PEER_FAVOR_CHUNK, EXACT_PEER_MAX_L);
    if (b->torch)
        bench_py_print_header(b->about, b->runs);
    putchar('\n');
}

/* ------------------------------------------------------------------ the verb */

static int suites_have_peers(const char *const *suites, int n)
{
    bench_row rows[MAX_ROWS];
    for (int s = 0; s < n; s++) {
        const int k = bench_suite_rows(suites[s], rows, MAX_ROWS);
        for (int i = 0; i < k && i < MAX_ROWS; i++)
            if (rows[i].peers)
                return 1;
    }
    return 0;
}

static int run_suite(bench *b, const char *suite, int threads_override)
{
    bench_row rows[MAX_ROWS];
    const int n = bench_suite_rows(suite, rows, MAX_ROWS);
    char skipped[512] = ""; /* the last reason bf16 rows were skipped for */
    for (int i = 0; i < n; i++) {
        if (b->n_rows == MAX_ROWS)
            return cli_error("bench", CLI_FAILED, "more than %d rows", MAX_ROWS);
        bench_row r = rows[i];
        if (threads_override)
            r.threads = threads_override;
        char err[512] = "";
        row_res *x = &b->rows[b->n_rows];
        const int rc = run_row(b, &r, suite, x, err, sizeof err);
        if (rc == 1) { /* no bf16 instruction or kernel here: said once per reason */
            if (err[0] && strcmp(err, skipped) != 0)
                note(b, "bf16 compute rows skipped: %s", err);
            snprintf(skipped, sizeof skipped, "%s", err[0] ? err : skipped);
            err[0] = 0;
            continue;
        }
        if (rc != 0) {
            if (!strcmp(suite, "error")) { /* an estimator without a JIT kernel: not plotted */
                note(b, "error suite: %s", err);
                continue;
            }
            return cli_error("bench", CLI_FAILED, "%s %s L=%d H=%d: %s", r.estimator,
                             r.causal ? "causal" : "bidir", r.L, bench_row_heads(&r), err);
        }
        b->n_rows++;
        if (b->json)
            print_json_row(x);
        else
            print_text_row(x);
    }
    return CLI_OK;
}

static int plot(const bench *b, const char *path)
{
    bench_point *pts = calloc((size_t)b->n_rows + 1, sizeof *pts);
    if (!pts)
        return cli_error("bench", CLI_FAILED, "out of memory");
    for (int i = 0; i < b->n_rows; i++) {
        const row_res *x = &b->rows[i];
        const peer_res *p = x->peer;
        pts[i] = (bench_point){x->r.estimator,
                               x->r.causal,
                               x->r.L,
                               x->r.m,
                               x->r.threads,
                               x->suite,
                               x->x.t.med,
                               x->rel_err,
                               p[OB_FAVOR].ran && !p[OB_FAVOR].wrong ? p[OB_FAVOR].ms : NAN,
                               p[OB_EXACT].ran && !p[OB_EXACT].wrong ? p[OB_EXACT].ms : NAN,
                               p[TH_FAVOR].ran && !p[TH_FAVOR].wrong ? p[TH_FAVOR].ms : NAN,
                               p[TH_SDPA].ran && !p[TH_SDPA].wrong ? p[TH_SDPA].ms : NAN};
    }
    char why[512];
    const int rc = bench_plot_write(path, pts, b->n_rows, why, sizeof why);
    free(pts);
    if (rc != 0)
        return cli_error("bench", CLI_FAILED, "%s", why);
    if (!b->json)
        printf("\nplot written to %s\n", path);
    return CLI_OK;
}

static void bench_free(bench *b)
{
    shape_free(&b->sh);
    for (int i = 0; i < MAX_CTX; i++)
        rfjit_ctx_destroy(b->ctx[i].ctx);
    bench_blas_close(b->blas);
    for (int i = 0; i < MAX_CTX; i++)
        bench_py_close(b->py[i].py);
    if (b->cache_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", b->cache_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "rfjit bench: could not remove %s\n", b->cache_dir);
    }
    free(b);
}

/* The decode suites: one- and two-thread contexts, torch's recurrent loop if it imports. */
static int run_decode(bench *b, int smoke, int no_torch, const char *suite_names, const char *cpu)
{
    char why[512], torch_version[64] = "";
    if (!no_torch) {
        b->torch = bench_torch_probe(torch_version, sizeof torch_version, why, sizeof why) == 0;
        if (!b->torch)
            note(b, "torch peer skipped: %s", why);
    }
    if (b->json)
        print_machine(b, suite_names, cpu, b->torch ? torch_version : NULL);
    else
        printf("rfjit bench, suite %s: cpu %s%s%s\n", suite_names, cpu, b->torch ? ", torch " : "",
               b->torch ? torch_version : "");
    rfjit_ctx *const ctx[2] = {ctx_for(b, 1), ctx_for(b, 2)};
    if (!ctx[0] || !ctx[1])
        return cli_error("bench", CLI_FAILED, "cannot create a context");
    return bench_decode(ctx, smoke, b->runs, b->torch, b->json);
}

int cmd_bench(int argc, char **argv)
{
    const char *suite = "headline", *plot_path = NULL;
    int json = 0, runs = 0, threads = 0, no_blas = 0, no_torch = 0, suite_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val = NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        }
        int *flag = !strcmp(o, "--json")       ? &json
                    : !strcmp(o, "--no-blas")  ? &no_blas
                    : !strcmp(o, "--no-torch") ? &no_torch
                                               : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        if (!(val = cli_value(argc, argv, &i)))
            return cli_error("bench", CLI_USAGE, "option '%s' is unknown or lacks its value", o);
        int bad = 0;
        if (!strcmp(o, "--suite")) {
            suite = val, suite_given = 1;
            bad = bench_suite_rows(val, NULL, 0) < 0;
        } else if (!strcmp(o, "--runs"))
            bad = cli_parse_int(val, 1, 1000, &runs);
        else if (!strcmp(o, "--threads"))
            bad = cli_parse_int(val, 1, 1024, &threads);
        else if (!strcmp(o, "--plot"))
            plot_path = val;
        else
            return cli_error("bench", CLI_USAGE, "unknown option '%s' (rfjit bench --help)", o);
        if (bad)
            return cli_error("bench", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    /* --plot needs the scaling and error suites; a suite asked for explicitly runs first */
    const char *suites[3];
    int n_suites = 0;
    if (!plot_path || suite_given)
        suites[n_suites++] = suite;
    if (plot_path) {
        char why[256];
        if (!bench_plot_path_ok(plot_path, why, sizeof why))
            return cli_error("bench", CLI_USAGE, "%s", why);
        if (bench_plot_available() != 0)
            return cli_error("bench", CLI_FAILED,
                             "--plot needs gnuplot (Debian: apt-get install gnuplot-nox)");
        if (strcmp(suite, "scaling") || !suite_given)
            suites[n_suites++] = "scaling";
        if (strcmp(suite, "error") || !suite_given)
            suites[n_suites++] = "error";
    }
    char suite_names[64] = "";
    for (int i = 0; i < n_suites; i++)
        snprintf(suite_names + strlen(suite_names), sizeof suite_names - strlen(suite_names),
                 "%s%s", i ? "+" : "", suites[i]);

    bench *b = calloc(1, sizeof *b);
    if (!b)
        return cli_error("bench", CLI_FAILED, "out of memory");
    const int smoke = !strcmp(suites[0], "smoke") && n_suites == 1;
    const int serving = !strcmp(suites[0], "serving") && n_suites == 1;
    if (!strcmp(suite, "serving") && !serving)
        return cli_error("bench", CLI_USAGE, "--suite serving has no plot (drop --plot)");
    const int decode_smoke = !strcmp(suites[0], "decode-smoke");
    const int decode = (decode_smoke || !strcmp(suites[0], "decode")) && n_suites == 1;
    if ((!strcmp(suite, "decode") || !strcmp(suite, "decode-smoke")) && !decode)
        return cli_error("bench", CLI_USAGE, "--suite %s has no plot (drop --plot)", suite);
    const int real = !strncmp(suites[0], "real", 4) && n_suites == 1;
    const int eva = !strcmp(suites[0], "eva") && n_suites == 1;
    if (!strcmp(suite, "eva") && !eva)
        return cli_error("bench", CLI_USAGE, "--suite eva has no plot (drop --plot)");
    if (!strncmp(suite, "real", 4) && !real)
        return cli_error("bench", CLI_USAGE, "--suite %s has no plot (drop --plot)", suite);
    b->json = json;
    b->runs = runs ? runs : bench_suite_runs(suites[0]);
    b->threads = threads;
    b->compile_samples = n_suites == 1 ? bench_suite_compile_samples(suites[0]) : 3;
    snprintf(b->cache_dir, sizeof b->cache_dir, "/tmp/rfjit_bench_cache_XXXXXX");
    if (!mkdtemp(b->cache_dir)) {
        b->cache_dir[0] = 0;
        bench_free(b);
        return cli_error("bench", CLI_FAILED, "cannot create a temporary cache directory");
    }
    rfjit_ctx *ctx = ctx_for(b, 1);
    if (!ctx) {
        bench_free(b);
        return cli_error("bench", CLI_FAILED, "cannot create a context");
    }
    /* the peak first, on an otherwise idle process: no peer threads exist yet */
    if (rfjit_fma_peak(ctx, smoke ? 0.2 : 1.0, &b->peak) != RFJIT_OK || !(b->peak > 0)) {
        const int rc = cli_error("bench", CLI_FAILED, "FMA peak: %s", rfjit_ctx_last_error(ctx));
        bench_free(b);
        return rc;
    }
    char cpu[128], why[512], torch_version[64] = "";
    info_cpu(ctx, cpu, sizeof cpu);
    if (serving) {
        rfjit_ctx *sctx = ctx_for(b, threads ? threads : 1);
        if (json)
            print_machine(b, suite_names, cpu, NULL);
        else
            printf("rfjit bench, suite serving: cpu %s, %d thread%s\n", cpu, threads ? threads : 1,
                   threads > 1 ? "s" : "");
        const int rc = sctx ? bench_serving(sctx, b->runs, json)
                            : cli_error("bench", CLI_FAILED, "cannot create a context");
        bench_free(b);
        return rc;
    }
    if (decode) {
        const int rc = run_decode(b, decode_smoke, no_torch, suite_names, cpu);
        bench_free(b);
        return rc;
    }
    if (eva) {
        if (json)
            print_machine(b, suite_names, cpu, NULL);
        else
            printf("rfjit bench, suite eva: cpu %s, one thread\n", cpu);
        const int rc = bench_eva(ctx, b->runs, json);
        bench_free(b);
        return rc;
    }
    if (real) {
        if (json)
            print_machine(b, suite_names, cpu, NULL);
        else
            printf("rfjit bench, suite %s: cpu %s, one thread\n", suite_names, cpu);
        const int rc = bench_real(ctx, !strcmp(suite, "real-smoke"), b->runs, json);
        bench_free(b);
        return rc;
    }
    if (!no_blas && !(b->blas = bench_blas_open(why, sizeof why)))
        note(b, "OpenBLAS peers skipped: %s", why);
    if (!no_torch && suites_have_peers(suites, n_suites)) {
        /* the first row's thread count (or --threads) starts the first server, whose probe
         * line says what each Python peer is */
        b->torch = py_for(b, threads ? threads : 1) != NULL;
        if (b->torch &&
            bench_json_string(b->about, "torch", torch_version, sizeof torch_version) != 0) {
            if (bench_json_string(b->about, "torch_error", why, sizeof why) != 0)
                snprintf(why, sizeof why, "no torch version in the probe line");
            note(b, "Python peers skipped: %s", why);
            b->torch = 0;
        }
    }
    print_machine(b, suite_names, cpu, b->torch ? torch_version : NULL);
    if (!json)
        print_text_head();
    int rc = CLI_OK;
    for (int i = 0; i < n_suites && rc == CLI_OK; i++)
        rc = run_suite(b, suites[i], threads);
    if (rc == CLI_OK && !json)
        print_summaries(b);
    if (rc == CLI_OK && plot_path)
        rc = plot(b, plot_path);
    bench_free(b);
    return rc;
}
