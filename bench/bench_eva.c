/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit bench --suite eva`: the error and time of both eva variants
 * (rfjit_attn_desc.eva_variant, principled and official) against their window and chunk
 * count, windows {0, 16, 64} x chunk counts {4, 16, 64}, both directions, on three kinds of
 * data:
 *   gaussian  the bench's problem (bench_data_init): L = 1024, d = dv = 64, q, k with scaled
 *             rows of norm ~1, v N(0, 1): attention close to uniform, no locality
 *   local     L = 1024, d = dv = 64, keys an AR(1) walk u_j = rho u_{j-1} + sqrt(1 - rho^2) g_j
 *             (rho = 0.95, about 20 tokens of memory) scaled to rows of norm 2.5, queries the
 *             keys plus noise of norm 0.75, v N(0, 1): each query attends mostly to the tokens
 *             around it (logit ~6 there, ~0 +- 0.8 far away)
 *   real      the held-out split of every head of data/real (a trained BERT encoder on real
 *             text; L = 512, d = dv = 32), the error averaged over the heads, the time summed
 * Per cell: error |O_hat - O|^2 / |O|^2 against exact attention on the double-precision
 * reference, and the median execute time in ms (JIT, process CPU time on one thread), with
 * exact attention's JIT time on the same data in the same run for scale. The official
 * variant needs a window (w = 0: "-").
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { EVA_L = 1024, EVA_D = 64, NW = 3, NC = 3, NV = 2, SEED_LOCAL = 41, MAX_RUNS = 1000 };
static const int windows[NW] = {0, 16, 64}, chunk_counts[NC] = {4, 16, 64};
static const char *const variants[NV] = {"principled", "official"};

/* One cell of the table: error (NaN when the variant does not apply) and time. */
typedef struct eva_cell {
    double err, ms;
} eva_cell;

typedef struct eva_table {
    eva_cell c[NV][NW][NC];
    double exact_ms;
} eva_table;

/* The local set: AR(1) keys of scaled norm 2.5, queries near them (file comment). */
static int local_init(bench_data *p)
{
    if (bench_data_init(p, EVA_L, EVA_D, EVA_D, 1) != 0)
        return -1;
    const size_t n = (size_t)EVA_L * EVA_D;
    float *g = malloc(sizeof(float) * n), *h = malloc(sizeof(float) * n);
    if (!g || !h) {
        free(g);
        free(h);
        return -1;
    }
    cli_normals(g, n, 1.0, SEED_LOCAL);
    cli_normals(h, n, 1.0, SEED_LOCAL + 1);
    const double rho = 0.95, r = 2.5, raw = r / sqrt((double)EVA_D) * pow(EVA_D, 0.25);
    double u[EVA_D];
    for (int a = 0; a < EVA_D; a++)
        u[a] = g[a];
    for (int j = 0; j < EVA_L; j++)
        for (int a = 0; a < EVA_D; a++) {
            const size_t i = (size_t)j * EVA_D + (size_t)a;
            if (j)
                u[a] = rho * u[a] + sqrt(1 - rho * rho) * g[i];
            p->k[i] = (float)(raw * u[a]);
            p->q[i] = (float)(raw * (u[a] + 0.3 * h[i]));
        }
    free(g);
    free(h);
    return 0;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Plan a on p into out; with ms, after two warm-ups, the median process CPU time of runs
 * executes (a one-thread context: the call's own work, which a loaded machine does not
 * inflate as it does wall time). */
static int run_one(rfjit_ctx *ctx, const rfjit_attn_desc *a, const bench_data *p, int runs,
                   float *out, double *ms, char *err, size_t len)
{
    rfjit_plan *plan = NULL;
    if (rfjit_plan_create(ctx, a, &plan) != RFJIT_OK) {
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
        return -1;
    }
    rfjit_tensor tq = rfjit_tensor_contiguous(p->q, 1, 1, p->L, p->d);
    rfjit_tensor tk = rfjit_tensor_contiguous(p->k, 1, 1, p->L, p->d);
    rfjit_tensor tv = rfjit_tensor_contiguous(p->v, 1, 1, p->L, p->dv);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, p->L, p->dv);
    double t[MAX_RUNS];
    const int n = ms ? 2 + (runs < MAX_RUNS ? runs : MAX_RUNS) : 1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const double t0 = cpu_now();
        rc = rfjit_plan_execute(plan, &tq, &tk, &tv, &to) == RFJIT_OK ? 0 : -1;
        if (i >= 2)
            t[i - 2] = 1e3 * (cpu_now() - t0);
    }
    if (rc)
        snprintf(err, len, "%s", rfjit_ctx_last_error(ctx));
    else if (ms) {
        bench_time bt;
        bench_time_of(t, n - 2, &bt);
        *ms = bt.med;
    }
    rfjit_plan_destroy(plan);
    return rc;
}

static rfjit_attn_desc desc_of(const bench_data *p, const char *est, int causal)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = p->d;
    a.dv = p->dv;
    a.causal = causal;
    a.estimator = est;
    return a;
}

/* Accumulate one problem's table into t with weight wt (errors) and 1 (times). */
static int table_add(rfjit_ctx *ctx, const bench_data *p, int causal, int runs, double wt,
                     eva_table *t, char *err, size_t len)
{
    const size_t n = (size_t)p->L * (size_t)p->dv;
    float *ref = malloc(sizeof(float) * n), *out = malloc(sizeof(float) * n);
    int rc = ref && out ? 0 : -1;
    if (rc)
        snprintf(err, len, "out of memory");
    rfjit_attn_desc a = desc_of(p, "exact", causal);
    a.backend = RFJIT_BACKEND_REFERENCE;
    if (!rc)
        rc = run_one(ctx, &a, p, runs, ref, NULL, err, len);
    a.backend = RFJIT_BACKEND_JIT;
    double ms = 0;
    if (!rc && (rc = run_one(ctx, &a, p, runs, out, &ms, err, len)) == 0)
        t->exact_ms += ms;
    for (int v = 0; v < NV && !rc; v++)
        for (int w = 0; w < NW && !rc; w++)
            for (int c = 0; c < NC && !rc; c++) {
                eva_cell *x = &t->c[v][w][c];
                a = desc_of(p, "eva", causal);
                a.backend = RFJIT_BACKEND_JIT;
                a.eva_window = windows[w];
                a.eva_chunks = chunk_counts[c];
                a.eva_variant = variants[v];
                if (v == 1 && windows[w] == 0) {
                    x->err = x->ms = NAN;
                    continue;
                }
                if ((rc = run_one(ctx, &a, p, runs, out, &ms, err, len)) == 0) {
                    x->err += wt * bench_rel_err2(out, ref, n);
                    x->ms += ms;
                }
            }
    free(ref);
    free(out);
    return rc;
}

static void print_table(const char *data, int causal, const bench_data *p, int heads,
                        const eva_table *t, int json)
{
    for (int w = 0; w < NW; w++)
        for (int c = 0; c < NC; c++)
            for (int v = 0; v < NV && json; v++)
                printf("{\"suite\":\"eva\",\"data\":\"%s\",\"causal\":%d,\"L\":%d,\"d\":%d,"
                       "\"heads\":%d,\"variant\":\"%s\",\"window\":%d,\"chunks\":%d,"
                       "\"err\":%.6g,\"ms\":%.4f,\"exact_ms\":%.4f}\n",
                       data, causal, p->L, p->d, heads, variants[v], windows[w], chunk_counts[c],
                       t->c[v][w][c].err, t->c[v][w][c].ms, t->exact_ms);
    if (json)
        return;
    printf("\n%s, %s, L = %d, d = dv = %d%s; exact attention %.3f ms\n", data,
           causal ? "causal" : "bidirectional", p->L, p->d,
           heads > 1 ? " (error: mean over the heads, time: their sum)" : "", t->exact_ms);
    printf("| window | chunks | principled error | ms | official error | ms |\n");
    printf("|---:|---:|---:|---:|---:|---:|\n");
    for (int w = 0; w < NW; w++)
        for (int c = 0; c < NC; c++) {
            const eva_cell *a = &t->c[0][w][c], *b = &t->c[1][w][c];
            printf("| %d | %d | %.4f | %.3f |", windows[w], chunk_counts[c], a->err, a->ms);
            if (isnan(b->err))
                printf(" - | - |\n");
            else
                printf(" %.4f | %.3f |\n", b->err, b->ms);
        }
}

/* Every head of the real set (held out), one direction. */
static int real_table(rfjit_ctx *ctx, const real_set *s, int causal, int runs, int json, char *err,
                      size_t len)
{
    eva_table t;
    memset(&t, 0, sizeof t);
    bench_data p = {(int)s->L, (int)s->d, (int)s->d, 1, NULL, NULL, NULL, NULL, 1};
    for (int64_t h = 0; h < s->H; h++) {
        const size_t off = (size_t)h * (size_t)s->L * (size_t)s->d;
        p.q = s->x[REAL_HELDOUT][REAL_Q] + off;
        p.k = s->x[REAL_HELDOUT][REAL_K] + off;
        p.v = s->x[REAL_HELDOUT][REAL_V] + off;
        if (table_add(ctx, &p, causal, runs, 1.0 / (double)s->H, &t, err, len) != 0)
            return -1;
    }
    print_table("real", causal, &p, (int)s->H, &t, json);
    return 0;
}

int bench_eva(rfjit_ctx *ctx, int runs, int json)
{
    char err[512] = "";
    bench_data g, l;
    const int gi = bench_data_init(&g, EVA_L, EVA_D, EVA_D, 1), li = local_init(&l);
    int rc = gi || li ? -1 : 0;
    if (rc)
        snprintf(err, sizeof err, "out of memory");
    for (int causal = 0; causal < 2 && !rc; causal++)
        for (int set = 0; set < 2 && !rc; set++) {
            eva_table t;
            memset(&t, 0, sizeof t);
            const bench_data *p = set ? &l : &g;
            if ((rc = table_add(ctx, p, causal, runs, 1.0, &t, err, sizeof err)) == 0)
                print_table(set ? "local" : "gaussian", causal, p, 1, &t, json);
            fflush(stdout);
        }
    if (!gi)
        bench_data_free(&g);
    if (!li)
        bench_data_free(&l);
    if (rc)
        return cli_error("bench", CLI_FAILED, "eva suite: %s", err);
    real_set s;
    if (real_set_load(real_set_dir(), &s, err, sizeof err) != 0) {
        fprintf(stderr, "rfjit bench: eva suite: real heads skipped: %s\n", err);
        return CLI_OK;
    }
    for (int causal = 0; causal < 2 && !rc; causal++)
        rc = real_table(ctx, &s, causal, runs, json, err, sizeof err);
    real_set_free(&s);
    return rc ? cli_error("bench", CLI_FAILED, "eva suite: %s", err) : CLI_OK;
}
