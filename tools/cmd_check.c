/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit check`: every estimator against exact attention on random data, judged
 * twice: against the spread of its own randomness (consistent: a defect shows) and against a
 * fixed tolerance (accurate: the answer is usable). The two are different questions: at
 * scale 1 and d = 64 every random-feature estimator is consistent with its own (enormous)
 * variance and off by hundreds of percent.
 *
 * Data: q, k ~ N(0, scale^2) and v ~ N(0, 1) entries from the CLI's splitmix64 generator,
 * seeded by --seed (so the data are the same on every machine and independent of the
 * library's Philox streams). Reference: O = the exact plan's output. For an estimator E:
 *
 *   rel_err(s) = ||O_hat_s - O||_F / ||O||_F,   O_hat_s = E's output with seed s
 *   tested     = rel_err(seed)
 *   fresh      = rel_err(seed*1000 + r), r = 1..R (default R = 8), skipping the tested seed
 *   predicted  = mean +- sd of fresh (printed as the estimator's expected error)
 *   limit      = exp(mean(ln fresh) + 5 sd(ln fresh)) + 1e-6
 *   consistent = tested <= limit, every error finite and the library did not refuse
 *   accurate   = tested <= tol (default 0.1), finite
 *
 * so a defect tied to the tested seed (a broken projection draw, a failed fit, a stray NaN)
 * shows, while the estimator's ordinary variance (large at scale 1: it grows like
 * e^{|x+y|^2}) does not. The limit is taken on ln(rel_err) because rel_err is a ratio whose
 * denominator can come close to zero for the signed estimators (trig, hybrid): its
 * distribution is heavy-tailed, and mean + 5 sd of 8 linear values is no 5-sigma bound there.
 * Measured with d 16, L 64, m 64 over seeds 1..200 (1800 estimator checks of correct code):
 * the linear rule mean + 5 sd + 1e-6 failed 38 (hybrid 18, trig 13), the log rule 5. The
 * 1e-6 keeps an estimator whose error does not depend on the seed (sd = 0) from failing on
 * rounding. eva depends on the seed only through its chunk noise and is treated the same way.
 * exact is checked against the CLI's own double-precision softmax attention instead (the only
 * independent oracle here): FAIL if its rel_err > 1e-5.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: rfjit check [--estimator NAME|all] [--d D] [--dv DV] [--m M] [--L L] [--causal]\n"
    "         [--seed S] [--scale X] [--seeds R] [--signs N] [--tol T] [--json]\n"
    "         [--backend auto|jit|reference] [--isa avx512|avx2|sse4.2|generic]\n"
    "Runs each estimator (all: every one, in rfjit info's order) on random data and compares\n"
    "it with exact attention. Data: q, k entries N(0, X^2), v entries N(0, 1), from a\n"
    "generator seeded by S. Defaults: D = 64, DV = D, M = 256, L = 1024, S = 1, X = 1, R = 8,\n"
    "T = 0.1. The estimators see q and k scaled by d^-1/4, rows of norm about X d^1/4; they\n"
    "are accurate only near norm 1 or below, i.e. X <= d^-1/4 (0.35 at D = 64).\n"
    "Columns:\n"
    "  M          feature dimension of the estimator's map (rfjit_plan_feature_dim)\n"
    "  m          random projections (- where the estimator has none)\n"
    "  rel_err    ||O_hat - O||_F / ||O||_F with seed S, O = the exact plan's output\n"
    "  predicted  mean +- sd of rel_err over R fresh seeds S*1000+1 .. S*1000+R\n"
    "  limit      exp(mean + 5 sd of ln rel_err over the fresh seeds) + 1e-6: the log\n"
    "             scale because the signed estimators' errors are heavy-tailed; exact is\n"
    "             compared with a double-precision softmax computed by the CLI, limit 1e-5\n"
    "  time_ms    median time of one rfjit_plan_execute over the runs\n"
    "  consistent yes when rel_err <= limit and every output is finite, else INCONSISTENT:\n"
    "             a defect tied to the tested seed, not noise; exit 1 on any INCONSISTENT\n"
    "             (or a library refusal, printed as ERROR)\n"
    "  accurate   yes when rel_err <= T, else no: whether the estimate is usable at all.\n"
    "             An estimator can be consistent and useless (its variance is that large)\n"
    "--causal checks causal attention; oprf, saderf, sderf and aderf are then calibrated on a\n"
    "second sample from the same distribution. --signs sets hybrid's n (library default 8);\n"
    "eva uses the library defaults (window 16, 8 chunks). --json prints one JSON object.\n"
    "--backend picks the kernels (auto: the JIT where an estimator has one); --isa compiles\n"
    "for a lower instruction set than the host's (as RFJIT_ISA).\n"
    "At X = 1 random features are far from exact (variance grows like e^{|x+y|^2}): expect\n"
    "consistent yes and accurate no there.\n";

typedef struct check_cfg {
    const char *estimator; /* a name or "all" */
    int d, dv, m, L, causal, seeds, signs, json;
    uint64_t seed;
    double scale, tol;
    int32_t backend;
    const char *isa;
} check_cfg;

typedef struct check_data {
    float *q, *k, *v, *cq, *ck, *exact, *out;
    rfjit_tensor tq, tk, tv, tcq, tck;
} check_data;

typedef struct check_row {
    const char *name;
    int64_t M;
    double rel, mean, sd, limit, ms;
    int consistent, accurate;
    char error[384]; /* non-empty: the library refused; the row is neither */
} check_row;

static int parse(int argc, char **argv, check_cfg *c)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return -1;
        }
        if (!strcmp(o, "--causal") || !strcmp(o, "--json")) {
            *(o[2] == 'c' ? &c->causal : &c->json) = 1;
            continue;
        }
        static const char *const valued[] = {"--estimator", "--d",    "--dv",   "--m",
                                             "--L",         "--seed", "--scale", "--seeds",
                                             "--signs", "--backend", "--isa", "--tol"};
        int known = 0;
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            known |= !strcmp(o, valued[j]);
        if (!known)
            return cli_error("check", CLI_USAGE, "unknown option '%s' (see --help)", o);
        if (!(val = cli_value(argc, argv, &i)))
            return cli_error("check", CLI_USAGE, "%s needs a value", o);
        int bad = 0;
        if (!strcmp(o, "--estimator"))
            c->estimator = val;
        else if (!strcmp(o, "--d"))
            bad = cli_parse_int(val, 1, 4096, &c->d);
        else if (!strcmp(o, "--dv"))
            bad = cli_parse_int(val, 1, 1 << 16, &c->dv);
        else if (!strcmp(o, "--m"))
            bad = cli_parse_int(val, 1, 1 << 20, &c->m);
        else if (!strcmp(o, "--L"))
            bad = cli_parse_int(val, 1, 1 << 20, &c->L);
        else if (!strcmp(o, "--seeds"))
            bad = cli_parse_int(val, 2, 1000, &c->seeds);
        else if (!strcmp(o, "--signs"))
            bad = cli_parse_int(val, 1, 1 << 16, &c->signs);
        else if (!strcmp(o, "--seed"))
            bad = cli_parse_u64(val, &c->seed);
        else if (!strcmp(o, "--backend"))
            bad = cli_parse_backend(val, &c->backend);
        else if (!strcmp(o, "--isa"))
            c->isa = val;
        else if (!strcmp(o, "--tol"))
            bad = cli_parse_double(val, &c->tol) || !(c->tol > 0);
        else
            bad = cli_parse_double(val, &c->scale) || !(c->scale > 0);
        if (bad)
            return cli_error("check", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    if (strcmp(c->estimator, "all")) {
        int known = 0;
        for (int e = 0; !known && rfjit_estimator_name(e); e++)
            known = !strcmp(c->estimator, rfjit_estimator_name(e));
        if (!known)
            return cli_error("check", CLI_USAGE, "unknown estimator '%s' (rfjit info lists them)",
                             c->estimator);
    }
    return CLI_OK;
}

/* ||a - b||_F / ||b||_F in double; NaN or Inf anywhere in a gives a non-finite result. */
static double rel_err(const float *a, const double *bd, const float *bf, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double b = bd ? bd[i] : (double)bf[i], e = (double)a[i] - b;
        num += e * e;
        den += b * b;
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

/* Softmax attention in double, the CLI's own oracle for the exact estimator:
 * O_i = sum_{j in V(i)} e^{s_ij - max_i} v_j / sum_{j in V(i)} e^{s_ij - max_i},
 * s_ij = q_i . k_j / sqrt(d), V(i) = all j (or j <= i when causal). */
static void softmax_reference(const check_cfg *c, const check_data *D, double *out, double *s)
{
    const double inv = 1.0 / sqrt((double)c->d);
    for (int i = 0; i < c->L; i++) {
        const int nj = c->causal ? i + 1 : c->L;
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < nj; j++) {
            double dot = 0;
            for (int t = 0; t < c->d; t++)
                dot += (double)D->q[(size_t)i * c->d + t] * D->k[(size_t)j * c->d + t];
            s[j] = dot * inv;
            mx = fmax(mx, s[j]);
        }
        double *o = out + (size_t)i * c->dv;
        memset(o, 0, sizeof(double) * (size_t)c->dv);
        for (int j = 0; j < nj; j++) {
            const double w = exp(s[j] - mx);
            z += w;
            for (int t = 0; t < c->dv; t++)
                o[t] += w * D->v[(size_t)j * c->dv + t];
        }
        for (int t = 0; t < c->dv; t++)
            o[t] /= z;
    }
}

/* One plan for `name` with `seed`, executed once into D->out. 0, or -1 with the library's
 * message in err. */
static int run_one(rfjit_ctx *ctx, const check_cfg *c, check_data *D, const char *name,
                   uint64_t seed, double *secs, int64_t *M, char *err, size_t errlen)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = name;
    a.d = c->d;
    a.dv = c->dv;
    a.m = c->m;
    a.causal = c->causal;
    a.seed = seed;
    a.backend = c->backend;
    if (c->signs)
        a.hybrid_signs = c->signs;
    if (c->causal) {
        a.calib_q = &D->tcq;
        a.calib_k = &D->tck;
    }
    rfjit_plan *p = NULL;
    if (rfjit_plan_create(ctx, &a, &p) != RFJIT_OK) {
        snprintf(err, errlen, "%s", rfjit_ctx_last_error(ctx));
        return -1;
    }
    *M = rfjit_plan_feature_dim(p);
    rfjit_tensor to = rfjit_tensor_contiguous(D->out, 1, 1, c->L, c->dv);
    const double t0 = cli_now();
    const rfjit_status s = rfjit_plan_execute(p, &D->tq, &D->tk, &D->tv, &to);
    *secs = cli_now() - t0;
    if (s != RFJIT_OK)
        snprintf(err, errlen, "%s", rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
    return s == RFJIT_OK ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void progress(const char *name, int run, int runs)
{
    if (isatty(2)) {
        fprintf(stderr, "\r  checking %-11s run %d/%d ", name, run, runs);
        fflush(stderr);
    }
}

/* The tested seed, then the fresh ones; fills row. times has room for seeds + 1 values. */
static void check_estimator(rfjit_ctx *ctx, const check_cfg *c, check_data *D,
                            const double *ref, check_row *row, double *times)
{
    const int is_exact = !strcmp(row->name, "exact");
    const int runs = is_exact ? 1 : 1 + c->seeds;
    const size_t n = (size_t)c->L * c->dv;
    double s1 = 0, s2 = 0, l1 = 0, l2 = 0;
    int finite = 1;
    uint64_t seed = c->seed, next = c->seed * 1000;
    for (int r = 0; r < runs; r++) {
        progress(row->name, r + 1, runs);
        if (r > 0) { /* fresh seeds seed*1000 + 1, + 2, ...; never the tested one */
            do
                next++;
            while (next == c->seed);
            seed = next;
        }
        if (run_one(ctx, c, D, row->name, seed, &times[r], &row->M, row->error,
                    sizeof row->error))
            return;
        const double e = is_exact ? rel_err(D->out, ref, NULL, n) : rel_err(D->out, NULL,
                                                                            D->exact, n);
        finite &= isfinite(e);
        if (r == 0) {
            row->rel = e;
        } else {
            const double le = log(fmax(e, 1e-300));
            s1 += e;
            s2 += e * e;
            l1 += le;
            l2 += le * le;
        }
    }
    qsort(times, (size_t)runs, sizeof *times, cmp_double);
    row->ms = 1e3 * times[runs / 2];
    if (is_exact) {
        row->mean = row->sd = NAN;
        row->limit = 1e-5;
    } else {
        const int k = c->seeds;
        row->mean = s1 / k;
        row->sd = sqrt(fmax(0.0, (s2 - k * row->mean * row->mean) / (k - 1)));
        const double lmean = l1 / k, lsd = sqrt(fmax(0.0, (l2 - k * lmean * lmean) / (k - 1)));
        row->limit = exp(lmean + 5 * lsd) + 1e-6;
    }
    row->consistent = finite && row->rel <= row->limit;
    row->accurate = finite && row->rel <= c->tol;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else
            putchar((unsigned char)*s < 32 ? ' ' : *s);
    }
    putchar('"');
}

static void json_number(const char *key, double v)
{
    if (isfinite(v))
        printf(",\"%s\":%.6e", key, v);
    else
        printf(",\"%s\":null", key);
}

static void print_row(const check_cfg *c, const check_row *r, int first)
{
    if (c->json) {
        printf("%s{\"estimator\":\"%s\"", first ? "" : ",", r->name);
        if (r->error[0]) {
            printf(",\"consistent\":false,\"accurate\":false,\"error\":");
            json_string(r->error);
        } else {
            printf(",\"M\":%lld,\"m\":%d,\"time_ms\":%.3f,\"consistent\":%s,"
                   "\"accurate\":%s",
                   (long long)r->M, r->M ? c->m : 0, r->ms, r->consistent ? "true" : "false",
                   r->accurate ? "true" : "false");
            json_number("rel_err", r->rel);
            json_number("pred_mean", r->mean);
            json_number("pred_sd", r->sd);
            json_number("limit", r->limit);
        }
        printf("}");
        return;
    }
    if (r->error[0]) {
        printf("%-11s ERROR: %s\n", r->name, r->error);
        return;
    }
    char pred[40] = "-", mm[16] = "-", MM[24] = "-";
    if (isfinite(r->mean))
        snprintf(pred, sizeof pred, "%.4e +- %.2e", r->mean, r->sd);
    if (r->M) {
        snprintf(mm, sizeof mm, "%d", c->m);
        snprintf(MM, sizeof MM, "%lld", (long long)r->M);
    }
    printf("%-11s %7s %6s %11.4e %24s %11.4e %10.2f  %-12s %s\n", r->name, MM, mm, r->rel,
           pred, r->limit, r->ms, r->consistent ? "yes" : "INCONSISTENT",
           r->accurate ? "yes" : "no");
}

/* Data, the exact plan's output and the double reference; CLI_OK or an error code. */
static int prepare(rfjit_ctx *ctx, const check_cfg *c, check_data *D, double *ref)
{
    const size_t nqk = (size_t)c->L * c->d, nv = (size_t)c->L * c->dv;
    /* One generator stream per array, so changing dv does not change q or k. */
    cli_normals(D->q, nqk, c->scale, c->seed * 8 + 1);
    cli_normals(D->k, nqk, c->scale, c->seed * 8 + 2);
    cli_normals(D->v, nv, 1.0, c->seed * 8 + 3);
    cli_normals(D->cq, nqk, c->scale, c->seed * 8 + 4);
    cli_normals(D->ck, nqk, c->scale, c->seed * 8 + 5);
    D->tq = rfjit_tensor_contiguous(D->q, 1, 1, c->L, c->d);
    D->tk = rfjit_tensor_contiguous(D->k, 1, 1, c->L, c->d);
    D->tcq = rfjit_tensor_contiguous(D->cq, 1, 1, c->L, c->d);
    D->tck = rfjit_tensor_contiguous(D->ck, 1, 1, c->L, c->d);
    D->tv = rfjit_tensor_contiguous(D->v, 1, 1, c->L, c->dv);
    double secs;
    int64_t M;
    char err[384];
    if (run_one(ctx, c, D, "exact", c->seed, &secs, &M, err, sizeof err))
        return cli_error("check", CLI_FAILED, "exact: %s", err);
    memcpy(D->exact, D->out, sizeof(float) * nv);
    double *scores = malloc(sizeof(double) * (size_t)c->L);
    if (!scores)
        return cli_error("check", CLI_FAILED, "out of memory");
    softmax_reference(c, D, ref, scores);
    free(scores);
    return CLI_OK;
}

/* Append ", name" (or "name" first) to a list kept within len. */
static void append_name(char *list, size_t len, int count, const char *name)
{
    const size_t used = strlen(list);
    snprintf(list + used, len - used, "%s%s", count ? ", " : "", name);
}

static int check_all(rfjit_ctx *ctx, const check_cfg *c, check_data *D, const double *ref)
{
    double *times = malloc(sizeof(double) * (size_t)(c->seeds + 1));
    if (!times)
        return cli_error("check", CLI_FAILED, "out of memory");
    if (c->json)
        printf("{\"d\":%d,\"dv\":%d,\"m\":%d,\"L\":%d,\"causal\":%d,\"seed\":%llu,"
               "\"scale\":%.17g,\"fresh_seeds\":%d,\"tol\":%.15g,\"results\":[",
               c->d, c->dv, c->m, c->L, c->causal, (unsigned long long)c->seed, c->scale,
               c->seeds, c->tol);
    else
        printf("rfjit check: d=%d dv=%d L=%d m=%d %s scale=%g (scaled row norm ~%.2g) seed=%llu, "
               "%d fresh seeds, tol=%g\n"
               "%-11s %7s %6s %11s %24s %11s %10s  %-12s %s\n",
               c->d, c->dv, c->L, c->m, c->causal ? "causal" : "bidirectional", c->scale,
               c->scale * pow(c->d, 0.25), (unsigned long long)c->seed, c->seeds, c->tol,
               "estimator", "M", "m", "rel_err", "predicted (mean +- sd)", "limit", "time_ms",
               "consistent", "accurate");
    int failures = 0, checked = 0, accurate = 0;
    char failed[256] = "", good[256] = "";
    for (int e = 0; rfjit_estimator_name(e); e++) {
        check_row row = {.name = rfjit_estimator_name(e)};
        if (strcmp(c->estimator, "all") && strcmp(c->estimator, row.name))
            continue;
        check_estimator(ctx, c, D, ref, &row, times);
        if (isatty(2))
            fprintf(stderr, "\r%40s\r", "");
        print_row(c, &row, checked == 0);
        fflush(stdout);
        checked++;
        if (row.accurate && !row.error[0])
            append_name(good, sizeof good, accurate++, row.name);
        if (row.error[0] || !row.consistent) {
            append_name(failed, sizeof failed, failures++, row.name);
        }
    }
    if (c->json)
        printf("],\"inconsistent\":%d,\"inaccurate\":%d}\n", failures, checked - accurate);
    else
        printf("accurate (rel_err <= %g): %d of %d%s%s%s; consistent with their own variance: "
               "%d of %d\n", c->tol, accurate, checked, accurate ? " (" : "", good,
               accurate ? ")" : "", checked - failures, checked);
    free(times);
    if (failures)
        return cli_error("check", CLI_FAILED,
                         "%d of %d estimators are inconsistent with their own variance (or "
                         "refused): %s", failures, checked, failed);
    return CLI_OK;
}

int cmd_check(int argc, char **argv)
{
    check_cfg c = {"all", 64, 0, 256, 1024, 0, 8, 0, 0, 1, 1.0, 0.1, RFJIT_BACKEND_AUTO, NULL};
    int rc = parse(argc, argv, &c);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!c.dv)
        c.dv = c.d;
    check_data D = {0};
    const size_t nqk = (size_t)c.L * c.d, nv = (size_t)c.L * c.dv;
    D.q = malloc(nqk * sizeof(float));
    D.k = malloc(nqk * sizeof(float));
    D.cq = malloc(nqk * sizeof(float));
    D.ck = malloc(nqk * sizeof(float));
    D.v = malloc(nv * sizeof(float));
    D.out = malloc(nv * sizeof(float));
    D.exact = malloc(nv * sizeof(float));
    double *ref = malloc(nv * sizeof(double));
    rfjit_ctx *ctx = NULL;
    if (!D.q || !D.k || !D.cq || !D.ck || !D.v || !D.out || !D.exact || !ref)
        rc = cli_error("check", CLI_FAILED, "out of memory for L = %d", c.L);
    else if (!(ctx = cli_context("check", c.isa)))
        rc = CLI_FAILED;
    if (rc == CLI_OK)
        rc = prepare(ctx, &c, &D, ref);
    if (rc == CLI_OK)
        rc = check_all(ctx, &c, &D, ref);
    rfjit_ctx_destroy(ctx);
    free(D.q);
    free(D.k);
    free(D.cq);
    free(D.ck);
    free(D.v);
    free(D.out);
    free(D.exact);
    free(ref);
    return rc;
}
