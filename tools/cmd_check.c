/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit check`: every estimator against exact attention on random data. The
 * error at the tested seed is judged against the spread its own randomness produces: the same
 * estimator with R fresh seeds gives the distribution of the relative error, and a
 * seed-specific defect (a wrong projection, a broken fit, a non-finite output) shows as an
 * error above the limit exp(mean + 5 sd) of ln(rel_err). The log scale is used because signed
 * estimators (trig, hybrid) have heavy-tailed errors (denominators near zero), for which a
 * linear mean + 5 sd over a few seeds is not a 5-sigma bound. Exact must match to 1e-5.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: rfjit check [--estimator NAME|all] [--d D] [--dv DV] [--m M] [--L L] [--causal]\n"
    "         [--seed S] [--scale X] [--seeds R] [--signs N] [--json]\n"
    "Random data (q, k entries N(0, X^2), v entries N(0, 1); defaults d = dv = 64, m = 256,\n"
    "L = 1024, X = 1, seed 1). For each estimator prints rel_err = ||O_hat - O|| / ||O|| against\n"
    "exact attention, the mean +- sd of rel_err over R fresh seeds (default 8: the spread the\n"
    "estimator's variance produces), the limit exp(mean + 5 sd) of ln(rel_err) over those\n"
    "seeds, the median time per run, and a verdict: FAIL when rel_err > limit (exact: > 1e-5)\n"
    "or an output is not finite. Exit 1 on any FAIL.\n"
    "Hybrid uses n = 4 sign features here (--signs) to keep the default run short; eva uses a\n"
    "window of 16 and 8 chunks. Causal runs calibrate the fitted estimators on a separate\n"
    "sample drawn from the same distribution.\n";

typedef struct check_cfg {
    int d, dv, m, L, causal, seeds, signs, json;
    uint64_t seed;
    double scale;
} check_cfg;

typedef struct check_data {
    float *q, *k, *v, *cq, *ck, *exact, *out;
    rfjit_tensor tq, tk, tv, tcq, tck, texact, tout;
} check_data;

/* Run `name` with `seed`; rel_err and seconds out. Returns 0, or 1 with a message printed. */
static int run_one(rfjit_ctx *ctx, const check_cfg *c, check_data *D, const char *name,
                   uint64_t seed, rfjit_tensor *out, double *rel, double *secs)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = name;
    a.d = c->d;
    a.dv = c->dv;
    a.m = c->m;
    a.causal = c->causal;
    a.seed = seed;
    a.hybrid_signs = c->signs;
    if (c->causal) {
        a.calib_q = &D->tcq;
        a.calib_k = &D->tck;
    }
    rfjit_plan *p = NULL;
    if (rfjit_plan_create(ctx, &a, &p) != RFJIT_OK)
        return cli_error("check", CLI_FAILED, "%s: %s", name, rfjit_ctx_last_error(ctx));
    double t0 = cli_now();
    rfjit_status s = rfjit_plan_execute(p, &D->tq, &D->tk, &D->tv, out);
    *secs = cli_now() - t0;
    rfjit_plan_destroy(p);
    if (s != RFJIT_OK)
        return cli_error("check", CLI_FAILED, "%s: %s", name, rfjit_ctx_last_error(ctx));
    if (!D->exact) {
        *rel = 0;
        return 0;
    }
    double num = 0, den = 0;
    size_t n = (size_t)c->L * c->dv;
    for (size_t i = 0; i < n; i++) {
        double e = (double)out->data[i] - D->exact[i];
        num += e * e;
        den += (double)D->exact[i] * D->exact[i];
    }
    *rel = sqrt(num / den);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int parse(int argc, char **argv, check_cfg *c, const char **est)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val;
        if (!strcmp(o, "--help")) {
            fputs(help, stdout);
            return -1;
        }
        if (!strcmp(o, "--causal")) {
            c->causal = 1;
            continue;
        }
        if (!strcmp(o, "--json")) {
            c->json = 1;
            continue;
        }
        if (!(val = cli_value(argc, argv, &i)))
            return cli_error("check", CLI_USAGE, "%s needs a value (or is unknown)", o);
        int bad = 0;
        if (!strcmp(o, "--estimator"))
            *est = val;
        else if (!strcmp(o, "--d"))
            bad = cli_parse_int(val, 1, 1024, &c->d);
        else if (!strcmp(o, "--dv"))
            bad = cli_parse_int(val, 1, 4096, &c->dv);
        else if (!strcmp(o, "--m"))
            bad = cli_parse_int(val, 1, 1 << 16, &c->m);
        else if (!strcmp(o, "--L"))
            bad = cli_parse_int(val, 1, 1 << 20, &c->L);
        else if (!strcmp(o, "--seeds"))
            bad = cli_parse_int(val, 2, 1000, &c->seeds);
        else if (!strcmp(o, "--signs"))
            bad = cli_parse_int(val, 1, 4096, &c->signs);
        else if (!strcmp(o, "--seed"))
            bad = cli_parse_u64(val, &c->seed);
        else if (!strcmp(o, "--scale"))
            bad = cli_parse_double(val, &c->scale) || !(c->scale > 0);
        else
            return cli_error("check", CLI_USAGE, "unknown option '%s' (see --help)", o);
        if (bad)
            return cli_error("check", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    return 0;
}

int cmd_check(int argc, char **argv)
{
    check_cfg c = {64, 0, 256, 1024, 0, 8, 4, 0, 1, 1.0};
    const char *est = "all";
    int rc = parse(argc, argv, &c, &est);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    if (!c.dv)
        c.dv = c.d;
    int known = !strcmp(est, "all");
    for (int e = 0; !known && rfjit_estimator_name(e); e++)
        known = !strcmp(est, rfjit_estimator_name(e));
    if (!known)
        return cli_error("check", CLI_USAGE, "unknown estimator '%s' (see rfjit info)", est);

    check_data D = {0};
    size_t nqk = (size_t)c.L * c.d, nv = (size_t)c.L * c.dv;
    D.q = malloc(nqk * 4), D.k = malloc(nqk * 4), D.cq = malloc(nqk * 4), D.ck = malloc(nqk * 4);
    D.v = malloc(nv * 4), D.out = malloc(nv * 4);
    float *exact = malloc(nv * 4);
    rfjit_ctx *ctx = NULL;
    if (!D.q || !D.k || !D.cq || !D.ck || !D.v || !D.out || !exact)
        rc = cli_error("check", CLI_FAILED, "out of memory for L = %d", c.L);
    else if (rfjit_ctx_create(NULL, &ctx) != RFJIT_OK)
        rc = cli_error("check", CLI_FAILED, "cannot create a context");
    if (rc == CLI_OK) {
        cli_normals(D.q, nqk, c.scale, c.seed * 4 + 1);
        cli_normals(D.k, nqk, c.scale, c.seed * 4 + 2);
        cli_normals(D.v, nv, 1.0, c.seed * 4 + 3);
        cli_normals(D.cq, nqk, c.scale, c.seed * 4 + 4);
        cli_normals(D.ck, nqk, c.scale, c.seed * 4 + 5);
        D.tq = rfjit_tensor_contiguous(D.q, 1, 1, c.L, c.d);
        D.tk = rfjit_tensor_contiguous(D.k, 1, 1, c.L, c.d);
        D.tcq = rfjit_tensor_contiguous(D.cq, 1, 1, c.L, c.d);
        D.tck = rfjit_tensor_contiguous(D.ck, 1, 1, c.L, c.d);
        D.tv = rfjit_tensor_contiguous(D.v, 1, 1, c.L, c.dv);
        D.tout = rfjit_tensor_contiguous(D.out, 1, 1, c.L, c.dv);
        D.texact = rfjit_tensor_contiguous(exact, 1, 1, c.L, c.dv);
        double rel, secs;
        rc = run_one(ctx, &c, &D, "exact", c.seed, &D.texact, &rel, &secs);
        D.exact = exact;
    }
    if (rc == CLI_OK && !c.json)
        printf("rfjit check: d=%d dv=%d L=%d m=%d %s scale=%g seed=%llu fresh seeds=%d\n"
               "%-11s %7s %5s %11s %25s %11s %10s  %s\n",
               c.d, c.dv, c.L, c.m, c.causal ? "causal" : "bidirectional", c.scale,
               (unsigned long long)c.seed, c.seeds, "estimator", "M", "m", "rel_err",
               "fresh seeds (mean +- sd)", "limit", "time_ms", "verdict");
    int failures = 0, tty = isatty(2);
    double *errs = malloc(sizeof(double) * (size_t)(c.seeds + 1));
    double *times = malloc(sizeof(double) * (size_t)(c.seeds + 1));
    for (int e = 0; rc == CLI_OK && rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        if (strcmp(est, "all") && strcmp(est, name))
            continue;
        if (tty)
            fprintf(stderr, "\r  checking %-12s", name);
        double rel = 0;
        rc = run_one(ctx, &c, &D, name, c.seed, &D.tout, &rel, &times[0]);
        int runs = strcmp(name, "exact") ? c.seeds : 0;
        double s1 = 0, s2 = 0, l1 = 0, l2 = 0;
        for (int r = 0; rc == CLI_OK && r < runs; r++) {
            rc = run_one(ctx, &c, &D, name, c.seed * 1000 + 1 + (uint64_t)r, &D.tout, &errs[r],
                         &times[r + 1]);
            s1 += errs[r];
            s2 += errs[r] * errs[r];
            double le = log(fmax(errs[r], 1e-300));
            l1 += le;
            l2 += le * le;
        }
        if (rc != CLI_OK)
            break;
        double mean = runs ? s1 / runs : 0;
        double sd = runs > 1 ? sqrt(fmax(0, (s2 - runs * mean * mean) / (runs - 1))) : 0;
        double lmean = runs ? l1 / runs : 0;
        double lsd = runs > 1 ? sqrt(fmax(0, (l2 - runs * lmean * lmean) / (runs - 1))) : 0;
        double limit = runs ? exp(lmean + 5 * lsd) : 1e-5;
        int ok = isfinite(rel) && rel <= limit;
        failures += !ok;
        qsort(times, (size_t)runs + 1, sizeof(double), cmp_double);
        double ms = 1e3 * times[runs / 2];
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = name, a.d = c.d, a.m = c.m, a.hybrid_signs = c.signs;
        rfjit_plan *p = NULL;
        int64_t M = rfjit_plan_create(ctx, &a, &p) == RFJIT_OK ? rfjit_plan_feature_dim(p) : 0;
        rfjit_plan_destroy(p);
        if (tty)
            fprintf(stderr, "\r%30s\r", "");
        if (c.json)
            printf("{\"estimator\":\"%s\",\"M\":%lld,\"m\":%d,\"d\":%d,\"dv\":%d,\"L\":%d,"
                   "\"causal\":%d,\"rel_err\":%.6g,\"pred_mean\":%.6g,\"pred_sd\":%.6g,"
                   "\"limit\":%.6g,\"time_ms\":%.3f,\"verdict\":\"%s\"}\n",
                   name, (long long)M, c.m, c.d, c.dv, c.L, c.causal, rel, mean, sd, limit, ms,
                   ok ? "PASS" : "FAIL");
        else
            printf("%-11s %7lld %5d %11.4e %12.4e +- %9.2e %11.4e %10.2f  %s\n", name,
                   (long long)M, M ? c.m : 0, rel, mean, sd, limit, ms, ok ? "PASS" : "FAIL");
        fflush(stdout);
    }
    free(errs);
    free(times);
    rfjit_ctx_destroy(ctx);
    free(D.q), free(D.k), free(D.cq), free(D.ck), free(D.v), free(D.out), free(exact);
    if (rc == CLI_OK && failures)
        return cli_error("check", CLI_FAILED, "%d estimator(s) outside their predicted range",
                         failures);
    return rc;
}
