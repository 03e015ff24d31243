/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit bench --suite real`: every estimator on real attention heads (data/real,
 * bench/real_data.c), where random features meet the norms and mean components of a trained
 * model rather than Gaussian data. Per head of the held-out split, both directions, each
 * estimator at m = 64 and 256 (exact and eva once: they have no m; eva with a window of 16
 * and 8 chunks) gives
 *   error  |O_hat - O|^2 / |O|^2 against the double-precision reference of exact attention,
 *          mean and max over 4 projection seeds (fitted estimators' parameters are frozen on
 *          the calibration split of the same head: the held-out tokens are never fitted on)
 *   time   the median execute of the first seed's plan against exact attention's JIT plan,
 *          timed in the same run on the same head
 * The text output ends with a summary per (estimator, m, direction) over the heads: the
 * smallest, median and largest error and the median time against exact.
 * The estimators whose features are e^{w.y + ...} (positive, hyperbolic, oprf, sderf) run
 * again with each exact transform of rfjit_attn_desc.transform (k: centred keys, q: centred
 * queries, b: balance, and the combinations kq, kqb and kqw, w: whitening with the matrix
 * the calibration split fixes), same seeds: rows with a transform column, a summary of the
 * error ratio against no transform, and a table per head.
 * blocksparse runs once per count of exact key blocks sparse_exact in {1, 2, 4, 8} (blocks of
 * 64 tokens: L = 512 is 8 of them), labelled bsparse-k<count>.
 * real-smoke runs the easiest and the hardest head at m = 64 with one seed, for the tests,
 * and of the transforms positive with kqb only.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SEEDS = 4, EVA_WINDOW = 16, EVA_CHUNKS = 8, MAX_RUNS = 1000 };
enum { MAX_EST = 32, MAX_M = 2, MAX_HEADS = 64 };
/* blocksparse's counts of exact key blocks: each a row (and a summary line) of its own */
static const int BS_EXACT[] = {1, 2, 4, 8};
enum { NBS = sizeof BS_EXACT / sizeof *BS_EXACT };

/* The transforms the suite compares, by label, and the estimators it runs them on. */
static const struct {
    const char *label;
    int32_t flags;
} XFORMS[] = {{"none", 0},
              {"k", RFJIT_XFORM_CENTER_K},
              {"q", RFJIT_XFORM_CENTER_Q},
              {"b", RFJIT_XFORM_BALANCE},
              {"kq", RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q},
              {"kqb", RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_BALANCE},
              {"kqw", RFJIT_XFORM_CENTER_K | RFJIT_XFORM_CENTER_Q | RFJIT_XFORM_WHITEN}};
enum { NXF = sizeof XFORMS / sizeof *XFORMS, SMOKE_XF = 5 /* kqb */ };
static const char *const XF_EST[] = {"positive", "hyperbolic", "oprf", "sderf"};
enum { NXE = sizeof XF_EST / sizeof *XF_EST };

/* Per (transformed estimator, m index, direction, transform): each head's error and time;
 * NaN where it did not run. */
typedef struct xf_summary {
    double err[NXE][MAX_M][2][NXF][MAX_HEADS], ms[NXE][MAX_M][2][NXF][MAX_HEADS];
    int64_t head[MAX_HEADS]; /* the set's index of each row */
} xf_summary;

/* Per (estimator, m index, direction): the error and time ratio of each head run. */
typedef struct real_summary {
    double err[MAX_EST][MAX_M][2][MAX_HEADS], vs[MAX_EST][MAX_M][2][MAX_HEADS];
    int n[MAX_EST][MAX_M][2];
} real_summary;

typedef struct real_run {
    rfjit_ctx *ctx;
    const real_set *s;
    int runs, seeds, json;
    float *out, *ref; /* L x d each */
    real_summary *sum;
    xf_summary *xs;
    int64_t heads; /* heads run so far: the rows of xs filled */
} real_run;

typedef struct real_case {
    int64_t head;
    int causal, m;
    const char *est;
    int xf;     /* index into XFORMS */
    int sparse; /* blocksparse: sparse_exact; -1 for every other estimator */
} real_case;

typedef struct real_res {
    double err, err_max, ms, exact_ms;
    int64_t M;
    char note[200]; /* why the case did not run, or "" */
} real_res;

static rfjit_attn_desc desc_for(const real_run *r, const real_case *c, uint64_t seed, int backend,
                                const rfjit_tensor *cq, const rfjit_tensor *ck)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = a.dv = (int32_t)r->s->d;
    a.causal = c->causal;
    a.m = c->m ? c->m : 64;
    a.estimator = c->est;
    a.seed = seed;
    a.backend = backend;
    a.eva_window = EVA_WINDOW;
    a.eva_chunks = EVA_CHUNKS;
    a.calib_q = cq; /* only fitted estimators read them */
    a.calib_k = ck;
    a.transform = XFORMS[c->xf].flags;
    if (c->sparse >= 0)
        a.sparse_exact = c->sparse;
    return a;
}

/* Execute plan on head c->head of the held-out split into r->out; with ms non-NULL, that was
 * the first of two warm-ups before r->runs timed executes, *ms their median. */
static int execute(const real_run *r, const rfjit_plan *plan, const real_case *c, double *ms)
{
    rfjit_tensor q = real_set_view(r->s, REAL_HELDOUT, REAL_Q, c->head),
                 k = real_set_view(r->s, REAL_HELDOUT, REAL_K, c->head),
                 v = real_set_view(r->s, REAL_HELDOUT, REAL_V, c->head),
                 o = rfjit_tensor_contiguous(r->out, 1, 1, r->s->L, r->s->d);
    if (rfjit_plan_execute(plan, &q, &k, &v, &o) != RFJIT_OK)
        return -1;
    if (!ms)
        return 0;
    if (rfjit_plan_execute(plan, &q, &k, &v, &o) != RFJIT_OK) /* the second warm-up */
        return -1;
    double t[MAX_RUNS];
    for (int i = 0; i < r->runs; i++) {
        const double t0 = cli_now();
        if (rfjit_plan_execute(plan, &q, &k, &v, &o) != RFJIT_OK)
            return -1;
        t[i] = 1e3 * (cli_now() - t0);
    }
    bench_time bt;
    bench_time_of(t, r->runs, &bt);
    *ms = bt.med;
    return 0;
}

/* One plan per seed: the error of each against r->ref, the time of the first (but the
 * reference's, which only gives r->ref). A plan the estimator cannot make (e.g. no causal
 * form) is a note, not a failure. */
static int run_case(const real_run *r, const real_case *c, int backend, real_res *x)
{
    rfjit_tensor cq = real_set_view(r->s, REAL_CALIB, REAL_Q, c->head),
                 ck = real_set_view(r->s, REAL_CALIB, REAL_K, c->head);
    const int seeds = strcmp(c->est, "exact") ? r->seeds : 1;
    x->err = 0, x->err_max = 0, x->note[0] = 0;
    const size_t n = (size_t)r->s->L * (size_t)r->s->d;
    for (int i = 0; i < seeds; i++) {
        const rfjit_attn_desc a = desc_for(r, c, 1000 + (uint64_t)i, backend, &cq, &ck);
        rfjit_plan *plan = NULL;
        rfjit_status st = rfjit_plan_create(r->ctx, &a, &plan);
        if (st == RFJIT_E_NOT_APPLICABLE) {
            snprintf(x->note, sizeof x->note, "%s", rfjit_ctx_last_error(r->ctx));
            return 0;
        }
        double *ms = i || backend == RFJIT_BACKEND_REFERENCE ? NULL : &x->ms;
        if (st != RFJIT_OK || execute(r, plan, c, ms) != 0) {
            rfjit_plan_destroy(plan);
            return -1;
        }
        x->M = rfjit_plan_feature_dim(plan);
        rfjit_plan_destroy(plan);
        const double e = bench_rel_err2(r->out, r->ref, n);
        x->err += e / seeds;
        x->err_max = e > x->err_max ? e : x->err_max;
    }
    return 0;
}

/* The row label of a case: the estimator, or blocksparse with its exact block count. */
static const char *label_of(const real_case *c, char *buf, size_t n)
{
    if (c->sparse < 0)
        return c->est;
    snprintf(buf, n, "bsparse-k%d", c->sparse);
    return buf;
}

static void print_res(const real_run *r, const real_case *c, const real_res *x)
{
    const int32_t *lh = r->s->layer_head + 2 * c->head;
    char lb[32];
    const char *label = label_of(c, lb, sizeof lb);
    if (r->json) {
        printf("{\"suite\":\"real\",\"index\":%lld,\"layer\":%d,\"head\":%d,\"L\":%lld,\"d\":%lld,"
               "\"causal\":%d,\"estimator\":\"%s\",\"transform\":\"%s\",\"m\":%d,"
               "\"features\":%lld,\"seeds\":%d",
               (long long)c->head, lh[0], lh[1], (long long)r->s->L, (long long)r->s->d, c->causal,
               c->est, XFORMS[c->xf].label, c->m, (long long)x->M,
               strcmp(c->est, "exact") ? r->seeds : 1);
        if (c->sparse >= 0)
            printf(",\"sparse_exact\":%d", c->sparse);
        if (x->note[0]) {
            char esc[400];
            rfjit_escape(esc, sizeof esc, x->note);
            for (char *p = esc; *p; p++) /* keep the JSON string valid */
                if (*p == '"' || *p == '\\')
                    *p = '\'';
            printf(",\"error\":null,\"note\":\"%s\"}\n", esc);
        } else {
            printf(",\"error\":%.6g,\"error_max\":%.6g,\"ms\":%.4g,\"exact_ms\":%.4g,"
                   "\"time_vs_exact\":%.4g}\n",
                   x->err, x->err_max, x->ms, x->exact_ms, x->ms / x->exact_ms);
        }
    } else if (x->note[0]) {
        printf("%2lld  %d.%-2d  %-6s  %-10s %-4s %5d  n/a: %.100s\n", (long long)c->head, lh[0],
               lh[1], c->causal ? "causal" : "bidir", label, XFORMS[c->xf].label, c->m, x->note);
    } else {
        printf("%2lld  %d.%-2d  %-6s  %-10s %-4s %5d %6lld  %10.3g %10.3g  %8.3f %8.2f\n",
               (long long)c->head, lh[0], lh[1], c->causal ? "causal" : "bidir", label,
               XFORMS[c->xf].label, c->m, (long long)x->M, x->err, x->err_max, x->ms,
               x->ms / x->exact_ms);
    }
    fflush(stdout);
}

/* The double reference into r->ref and exact attention's JIT time into *exact_ms. */
static int reference(real_run *r, int64_t head, int causal, double *exact_ms)
{
    real_case c = {head, causal, 0, "exact", 0, -1};
    real_res x;
    float *out = r->out;
    r->out = r->ref;
    int rc = run_case(r, &c, RFJIT_BACKEND_REFERENCE, &x);
    r->out = out;
    if (rc == 0)
        rc = run_case(r, &c, RFJIT_BACKEND_AUTO, &x);
    *exact_ms = x.ms;
    return rc;
}

static int xf_estimator(const char *est)
{
    for (int i = 0; i < NXE; i++)
        if (!strcmp(XF_EST[i], est))
            return i;
    return -1;
}

/* The transforms of estimator est (index xe of XF_EST) at m index i, after its untransformed
 * row x0: every one in the full suite, kqb of positive in the smoke suite. */
static int run_transforms(real_run *r, real_case c, int xe, int i, const real_res *x0, int smoke)
{
    xf_summary *xs = r->xs;
    const int64_t hk = r->heads;
    if (hk >= MAX_HEADS) /* a set larger than the table: its untransformed rows only */
        return 0;
    xs->head[hk] = c.head;
    xs->err[xe][i][c.causal][0][hk] = x0->note[0] ? NAN : x0->err;
    xs->ms[xe][i][c.causal][0][hk] = x0->note[0] ? NAN : x0->ms;
    for (c.xf = 1; c.xf < NXF; c.xf++) {
        if (smoke && (xe != 0 || c.xf != SMOKE_XF))
            continue;
        real_res x = {0};
        x.exact_ms = x0->exact_ms;
        if (run_case(r, &c, RFJIT_BACKEND_AUTO, &x) != 0)
            return -1;
        print_res(r, &c, &x);
        xs->err[xe][i][c.causal][c.xf][hk] = x.note[0] ? NAN : x.err;
        xs->ms[xe][i][c.causal][c.xf][hk] = x.note[0] ? NAN : x.ms;
    }
    return 0;
}

static int n_estimators(void)
{
    int n = 0;
    while (rfjit_estimator_name(n))
        n++;
    return n;
}

/* The summary row of estimator e (blocksparse: of its variant v, after the registry's). */
static int summary_row(int e, int v)
{
    return v < 0 ? e : n_estimators() + v;
}

static int run_head(real_run *r, int64_t head, int causal, const int *ms, int n_m, int smoke)
{
    double exact_ms;
    if (reference(r, head, causal, &exact_ms) != 0)
        return -1;
    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *est = rfjit_estimator_name(e);
        const int no_m = !strcmp(est, "exact") || !strcmp(est, "eva");
        const int nv = strcmp(est, "blocksparse") ? 1 : smoke ? 1 : NBS;
        for (int i = 0; i < (no_m ? 1 : n_m); i++)
            for (int v = 0; v < nv; v++) {
                const int bs = nv > 1 || !strcmp(est, "blocksparse");
                const real_case c = {head, causal, no_m ? 0 : ms[i],
                                     est,  0,      bs ? BS_EXACT[smoke ? 2 : v] : -1};
                real_res x = {0};
                x.exact_ms = exact_ms;
                if (run_case(r, &c, RFJIT_BACKEND_AUTO, &x) != 0)
                    return -1;
                print_res(r, &c, &x);
                const int row = summary_row(e, bs ? (smoke ? 2 : v) : -1);
                int *k = row < MAX_EST ? &r->sum->n[row][i][causal] : NULL;
                if (k && !x.note[0] && *k < MAX_HEADS) {
                    r->sum->err[row][i][causal][*k] = x.err;
                    r->sum->vs[row][i][causal][(*k)++] = x.ms / x.exact_ms;
                }
                const int xe = xf_estimator(est);
                if (xe >= 0 && run_transforms(r, c, xe, i, &x, smoke) != 0)
                    return -1;
            }
    }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n)
{
    qsort(x, (size_t)n, sizeof *x, by_value);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void print_summary(real_summary *sm, const int *ms, int n_m)
{
    printf("\nover the heads: estimator, m, direction: error smallest, median, largest; median "
           "time against exact\n");
    const int ne = n_estimators();
    for (int e = 0; e < MAX_EST && e < ne + NBS; e++)
        for (int i = 0; i < n_m; i++)
            for (int causal = 0; causal < 2; causal++) {
                const int n = sm->n[e][i][causal];
                if (!n)
                    continue;
                double *err = sm->err[e][i][causal];
                const double mid = median(err, n); /* sorts err */
                char lb[32];
                const real_case bc = {0, 0, 0, "blocksparse", 0, e < ne ? -1 : BS_EXACT[e - ne]};
                const char *est = e < ne ? rfjit_estimator_name(e) : label_of(&bc, lb, sizeof lb);
                const int no_m = !strcmp(est, "exact") || !strcmp(est, "eva");
                printf("%-10s %5d  %-6s  %10.3g %10.3g %10.3g   %6.2f\n", est, no_m ? 0 : ms[i],
                       causal ? "causal" : "bidir", err[0], mid, err[n - 1],
                       median(sm->vs[e][i][causal], n));
            }
}

/* The median over the heads that ran (NaN if none) of f(err or ms of transform xf, of none). */
static double xf_median(const double *v, const double *base, int64_t n, int ratio)
{
    double t[MAX_HEADS];
    int k = 0;
    for (int64_t h = 0; h < n; h++)
        if (!isnan(v[h]) && (!ratio || (!isnan(base[h]) && base[h] > 0)))
            t[k++] = ratio ? v[h] / base[h] : v[h];
    return k ? median(t, k) : NAN;
}

/* Over the heads, per (estimator, m, direction): each transform's median error, median
 * error ratio to no transform and median time ratio; then the error of every head. */
static void print_xf_summary(const real_run *r, const int *ms, int n_m)
{
    const xf_summary *xs = r->xs;
    printf("\ntransforms over the heads: estimator, m, direction, transform: median error, "
           "median of error / error without, median of time / time without\n");
    for (int e = 0; e < NXE; e++)
        for (int i = 0; i < n_m; i++)
            for (int c = 0; c < 2; c++)
                for (int t = 0; t < NXF; t++) {
                    const double *err = xs->err[e][i][c][t], *ms0 = xs->ms[e][i][c][0];
                    const double mid = xf_median(err, NULL, r->heads, 0);
                    if (isnan(mid))
                        continue;
                    printf("%-10s %5d  %-6s  %-4s  %10.3g  %8.3f  %6.2f\n", XF_EST[e], ms[i],
                           c ? "causal" : "bidir", XFORMS[t].label, mid,
                           xf_median(err, xs->err[e][i][c][0], r->heads, 1),
                           xf_median(xs->ms[e][i][c][t], ms0, r->heads, 1));
                }
    printf("\ntransforms per head: error with each transform (none k q b kq kqb kqw)\n");
    for (int e = 0; e < NXE; e++)
        for (int i = 0; i < n_m; i++)
            for (int c = 0; c < 2; c++)
                for (int64_t h = 0; h < r->heads; h++) {
                    if (isnan(xs->err[e][i][c][0][h]))
                        continue;
                    const int32_t *lh = r->s->layer_head + 2 * xs->head[h];
                    printf("%-10s %5d  %-6s  %2lld %d.%-2d", XF_EST[e], ms[i],
                           c ? "causal" : "bidir", (long long)xs->head[h], lh[0], lh[1]);
                    for (int t = 0; t < NXF; t++)
                        printf(" %9.3g", xs->err[e][i][c][t][h]);
                    printf("\n");
                }
}

int bench_real(rfjit_ctx *ctx, int smoke, int runs, int json)
{
    real_set s;
    char err[512];
    if (real_set_load(real_set_dir(), &s, err, sizeof err) != 0)
        return cli_error("bench", CLI_FAILED, "real suite: %s", err);
    const size_t n = (size_t)s.L * (size_t)s.d;
    real_run r = {ctx,
                  &s,
                  runs,
                  smoke ? 1 : SEEDS,
                  json,
                  malloc(n * sizeof(float)),
                  malloc(n * sizeof(float)),
                  calloc(1, sizeof(real_summary)),
                  malloc(sizeof(xf_summary)),
                  0};
    static const int full_m[] = {64, 256}, smoke_m[] = {64};
    const int *ms = smoke ? smoke_m : full_m, n_m = smoke ? 1 : 2;
    int rc = r.out && r.ref && r.sum && r.xs ? CLI_OK
                                             : cli_error("bench", CLI_FAILED, "out of memory");
    if (r.xs) /* NaN: not run */
        for (size_t i = 0; i < sizeof *r.xs / sizeof(double); i++)
            ((double *)r.xs)[i] = NAN;
    if (rc == CLI_OK && !json)
        printf("real: %lld heads of all-MiniLM-L6-v2 (data/real, held-out text), L = %lld, "
               "d = %lld; error = |O - O_exact|^2 / |O_exact|^2 against the double reference, "
               "mean and max over %d seed%s; ms: median of %d executes; vs_exact: time / exact "
               "attention's in this run\n"
               "idx layer.head dir  estimator  xf       m      M       error    err_max        ms "
               "vs_exact\n",
               smoke ? 2LL : (long long)s.H, (long long)s.L, (long long)s.d, r.seeds,
               r.seeds > 1 ? "s" : "", runs);
    for (int64_t h = 0; rc == CLI_OK && h < s.H; h++) {
        if (smoke && h != 0 && h != s.H - 1)
            continue; /* the easiest and the hardest head */
        for (int causal = 0; causal < 2 && rc == CLI_OK; causal++)
            if (run_head(&r, h, causal, ms, n_m, smoke) != 0)
                rc = cli_error("bench", CLI_FAILED, "real suite, head %lld: %s", (long long)h,
                               rfjit_ctx_last_error(ctx));
        r.heads++;
    }
    if (rc == CLI_OK && !json) {
        print_summary(r.sum, ms, n_m);
        print_xf_summary(&r, ms, n_m);
    }
    free(r.out), free(r.ref), free(r.sum), free(r.xs);
    real_set_free(&s);
    return rc;
}
