/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit tune`: the fastest plan within a variance budget for one shape on this
 * machine (rfjit_tune), printed as the Pareto table it chose from and the plan, or as one
 * JSON object; the answer is saved to the wisdom file so later runs (and `rfjit attention
 * --plan-from-wisdom`) reuse it. A progress bar goes to stderr only when it is a terminal.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: rfjit tune --d D [--dv DV] --L L --budget EPS [--budget-kind output|kernel]\n"
    "         [--calib-queries Q.npy --calib-keys K.npy --calib-values V.npy] [--scale S]\n"
    "         [--profile real-like|gaussian] [--causal]\n"
    "         [--patience estimate|measure|patient|exhaustive|wisdom-only]\n"
    "         [--estimators LIST] [--seed S] [--no-transforms] [--json] [--no-save] [--run]\n"
    "         [--isa ISA]\n"
    "Finds the fastest attention plan (estimator, feature count m, or eva's window and chunk\n"
    "count, blocksparse's exact blocks k with m, tiling) whose error stays within EPS, and\n"
    "remembers it in the wisdom file. The table shows blocksparse's block size and k as\n"
    "B=64 and k=4 in the window and chunks columns. Where the CPU has AVX512-BF16, exact\n"
    "attention in bfloat16 (compute bf16) is a candidate too, with its error measured\n"
    "against float32 exact.\n"
    "  --budget EPS       output: E|O_hat - O|^2 / |O|^2 over the calibration set (default\n"
    "                     kind); kernel: mean Var(K_hat)/K^2 over query/key pairs\n"
    "  --calib-*          calibration sample (L, d) / (L, dv) or (B, H, L, .) .npy files;\n"
    "                     without them a synthetic set of --profile is drawn and the\n"
    "                     output says so\n"
    "  --profile P        real-like (default): q and k rows shaped like a trained model's\n"
    "                     heads (d^-1/4-scaled norms of median 3 x S, a shared mean of norm\n"
    "                     2 x S, a dominant direction with 0.4 of the variance); signed\n"
    "                     estimators (trig, hybrid) whose errors are heavy-tailed there are\n"
    "                     refused; gaussian: q and k entries N(0, S^2/sqrt d), scaled rows of\n"
    "                     norm about S (S: --scale, default 1)\n"
    "  --patience P       estimate: models only; measure (default): Monte Carlo and timing;\n"
    "                     patient, exhaustive: wider tiling searches; wisdom-only: answer\n"
    "                     from wisdom or fail\n"
    "  --estimators LIST  comma-separated candidates (default: all; exact always competes,\n"
    "                     its bf16 row only when LIST names exact)\n"
    "  --no-transforms    no exact transforms (attention --transform): by default each\n"
    "                     candidate takes the one with the least calibration error (output\n"
    "                     budgets); plans for rfjit_decode_create must have none\n"
    "  --json             print the chosen plan and the table as one JSON object\n"
    "  --no-save          do not write the answer to the wisdom file\n"
    "  --run              then run the chosen plan once on a fresh synthetic problem of\n"
    "                     length L (the profile, another seed) and print its time and its\n"
    "                     error against exact attention\n";

static void bar(void *user, double done, const char *what)
{
    (void)user;
    int w = (int)(done * 30 + 0.5);
    fprintf(stderr, "\r[%.*s%*s] %3d%% %-12s", w, "==============================", 30 - w, "",
            (int)(done * 100 + 0.5), what);
    fflush(stderr);
}

static int parse_kind(const char *s, int32_t *k)
{
    if (!strcmp(s, "output"))
        *k = RFJIT_BUDGET_OUTPUT;
    else if (!strcmp(s, "kernel"))
        *k = RFJIT_BUDGET_KERNEL;
    else
        return -1;
    return 0;
}

static int parse_patience(const char *s, int32_t *p)
{
    static const char *const names[] = {"estimate", "measure", "patient", "exhaustive",
                                        "wisdom-only"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(s, names[i])) {
            *p = i;
            return 0;
        }
    return -1;
}

static int parse_profile(const char *s, int32_t *p)
{
    if (!strcmp(s, "real-like"))
        *p = RFJIT_PROFILE_REAL_LIKE;
    else if (!strcmp(s, "gaussian"))
        *p = RFJIT_PROFILE_GAUSSIAN;
    else
        return -1;
    return 0;
}

static void print_ms(double x)
{
    if (isfinite(x))
        printf(" %10.3f", x);
    else
        printf(" %10s", "-");
}

static void print_err(double x)
{
    if (isfinite(x))
        printf(" %10.3g", x);
    else
        printf(" %10s", "-");
}

/* A transform as `rfjit attention --transform` takes it, "-" for none. */
static const char *xform_text(int32_t flags, char buf[32])
{
    static const char *const names[] = {"k", "q", "balance", "whiten"};
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < 4; i++)
        if (flags & (1 << i))
            at += (size_t)snprintf(buf + at, 32 - at, "%s%s", at ? "," : "", names[i]);
    return flags ? buf : "-";
}

/* An eva parameter, "-" for the other estimators (whose chunk count is 0). */
static void print_param(int32_t x, int32_t chunks)
{
    if (chunks > 0)
        printf(" %6d", x);
    else
        printf(" %6s", "-");
}

/* The window and chunks columns: eva's, blocksparse's block size and exact blocks as B=64 and
 * k=4 (the same places in its plan), "-" for the others. */
static void print_params(const rfjit_tune_row *x)
{
    if (x->sparse_block > 0) {
        char b[16], k[16];
        snprintf(b, sizeof b, "B=%d", x->sparse_block);
        snprintf(k, sizeof k, "k=%d", x->sparse_exact);
        printf(" %6s %6s", b, k);
        return;
    }
    print_param(x->eva_window, x->eva_chunks);
    print_param(x->eva_chunks, x->eva_chunks);
}

static void print_table(const rfjit_tune_result *r)
{
    printf("%-11s %6s %6s %6s %-11s %-7s %10s %10s %10s %10s  %-6s %-6s %s\n", "estimator", "m",
           "window", "chunks", "transform", "compute", "predicted", "measured", "bound95",
           "time_ms", "meets", "pareto", "note");
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row x;
        rfjit_tune_result_row(r, i, &x);
        printf("%-11s %6d", x.estimator, x.m);
        print_params(&x);
        char xf[32];
        printf(" %-11s %-7s", xform_text(x.transform, xf),
               x.compute == RFJIT_BF16 ? "bf16" : "f32");
        print_err(x.predicted_error);
        print_err(x.measured_error);
        print_err(x.error_bound);
        print_ms(x.time_ms);
        printf("  %-6s %-6s %s%s\n", x.meets_budget ? "yes" : "no", x.pareto ? "yes" : "",
               x.chosen ? "<- chosen " : "", x.note);
    }
}

/* The chosen plan on a fresh problem drawn like the synthetic calibration set. */
static int run_plan(rfjit_ctx *ctx, const rfjit_tune_desc *t, const rfjit_tune_result *res)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    rfjit_tune_result_plan(res, &a);
    const int64_t L = t->L;
    const int d = t->d, dv = t->dv ? t->dv : t->d;
    const size_t nq = (size_t)L * (size_t)d, nv = (size_t)L * (size_t)dv;
    float *q = malloc(nq * sizeof(float)), *k = malloc(nq * sizeof(float));
    float *v = malloc(nv * sizeof(float)), *o = malloc(nv * sizeof(float));
    float *x = malloc(nv * sizeof(float));
    int rc = q && k && v && o && x ? CLI_OK : cli_error("tune", CLI_FAILED, "out of memory");
    rfjit_plan *p = NULL, *pe = NULL;
    if (rc == CLI_OK) {
        /* the tuner's synthetic profile with another seed; after a tune on the user's data,
         * Gaussian rows of scaled norm 1 */
        rfjit_tune_desc draw = *t;
        draw.seed = t->seed + 7001;
        if (t->calib_q) {
            draw.synthetic_profile = RFJIT_PROFILE_GAUSSIAN;
            draw.synthetic_scale = 1.0;
        }
        if (rfjit_tune_synthetic(&draw, L, q, k, v) != RFJIT_OK)
            rc = cli_error("tune", CLI_FAILED, "%s", rfjit_ctx_last_error(NULL));
    }
    if (rc == CLI_OK) {
        rfjit_attn_desc ex = a;
        ex.estimator = "exact";
        ex.compute = RFJIT_F32; /* the reference a bf16 plan is measured against */
        ex.tiling = (rfjit_tiling){0, 0, 0, 0};
        if (rfjit_plan_create(ctx, &a, &p) != RFJIT_OK ||
            rfjit_plan_create(ctx, &ex, &pe) != RFJIT_OK)
            rc = cli_error("tune", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    }
    if (rc == CLI_OK) {
        rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, d);
        rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, d);
        rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, dv);
        rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, dv);
        rfjit_tensor tx = rfjit_tensor_contiguous(x, 1, 1, L, dv);
        rfjit_plan_execute(p, &tq, &tk, &tv, &to); /* warm */
        const double t0 = cli_now();
        rfjit_status s = rfjit_plan_execute(p, &tq, &tk, &tv, &to);
        const double ms = 1e3 * (cli_now() - t0);
        if (s == RFJIT_OK)
            s = rfjit_plan_execute(pe, &tq, &tk, &tv, &tx);
        if (s != RFJIT_OK) {
            rc = cli_error("tune", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
        } else {
            double num = 0, den = 0;
            for (size_t i = 0; i < nv; i++) {
                num += ((double)o[i] - x[i]) * ((double)o[i] - x[i]);
                den += (double)x[i] * x[i];
            }
            printf("ran the plan on a fresh problem (L = %lld, seed %llu): %.3f ms, error "
                   "|O - O_exact|^2 / |O_exact|^2 = %.4g (budget %g, %s)\n",
                   (long long)L, (unsigned long long)(t->seed + 7001), ms, num / den, t->budget,
                   t->budget_kind == RFJIT_BUDGET_KERNEL ? "kernel kind: not this measure"
                                                         : "output kind");
        }
    }
    rfjit_plan_destroy(p);
    rfjit_plan_destroy(pe);
    free(q);
    free(k);
    free(v);
    free(o);
    free(x);
    return rc;
}

int cmd_tune(int argc, char **argv)
{
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    const char *cq = NULL, *ck = NULL, *cv = NULL, *isa = NULL;
    int json = 0, save = 1, run = 0, have_d = 0, have_L = 0, have_budget = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val = NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        }
        if (!strcmp(o, "--causal")) {
            t.causal = 1;
            continue;
        }
        if (!strcmp(o, "--json")) {
            json = 1;
            continue;
        }
        if (!strcmp(o, "--no-save")) {
            save = 0;
            continue;
        }
        if (!strcmp(o, "--no-transforms")) {
            t.transforms = 0;
            continue;
        }
        if (!strcmp(o, "--run")) {
            run = 1;
            continue;
        }
        if (!(val = cli_value(argc, argv, &i)))
            return cli_error("tune", CLI_USAGE, "option '%s' is unknown or lacks its value", o);
        int bad = 0;
        if (!strcmp(o, "--d"))
            bad = cli_parse_int(val, 1, 1024, &t.d), have_d = 1;
        else if (!strcmp(o, "--dv"))
            bad = cli_parse_int(val, 1, 1 << 20, &t.dv);
        else if (!strcmp(o, "--L")) {
            int Li = 0;
            bad = cli_parse_int(val, 1, 1 << 24, &Li), have_L = 1;
            t.L = Li;
        } else if (!strcmp(o, "--budget"))
            bad = cli_parse_double(val, &t.budget), have_budget = 1;
        else if (!strcmp(o, "--budget-kind"))
            bad = parse_kind(val, &t.budget_kind);
        else if (!strcmp(o, "--patience"))
            bad = parse_patience(val, &t.patience);
        else if (!strcmp(o, "--profile"))
            bad = parse_profile(val, &t.synthetic_profile);
        else if (!strcmp(o, "--scale"))
            bad = cli_parse_double(val, &t.synthetic_scale);
        else if (!strcmp(o, "--seed"))
            bad = cli_parse_u64(val, &t.seed);
        else if (!strcmp(o, "--estimators"))
            t.estimators = val;
        else if (!strcmp(o, "--calib-queries"))
            cq = val;
        else if (!strcmp(o, "--calib-keys"))
            ck = val;
        else if (!strcmp(o, "--calib-values"))
            cv = val;
        else if (!strcmp(o, "--isa"))
            isa = val;
        else
            return cli_error("tune", CLI_USAGE, "unknown option '%s' (rfjit tune --help)", o);
        if (bad)
            return cli_error("tune", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    if (!have_d || !have_L || !have_budget)
        return cli_error("tune", CLI_USAGE, "--d, --L and --budget are required");
    if ((cq || ck || cv) && !(cq && ck && cv))
        return cli_error("tune", CLI_USAGE,
                         "--calib-queries, --calib-keys and --calib-values go together");
    npy_array aq = {0}, ak = {0}, av = {0};
    rfjit_tensor tq, tk, tv;
    int rc = CLI_OK;
    if (cq) {
        rc = cli_load_tensor("tune", cq, &aq, &tq);
        if (rc == CLI_OK)
            rc = cli_load_tensor("tune", ck, &ak, &tk);
        if (rc == CLI_OK)
            rc = cli_load_tensor("tune", cv, &av, &tv);
        t.calib_q = &tq;
        t.calib_k = &tk;
        t.calib_v = &tv;
    }
    rfjit_ctx *ctx = rc == CLI_OK ? cli_context("tune", isa) : NULL;
    if (rc == CLI_OK && !ctx)
        rc = CLI_FAILED;
    rfjit_tune_result *res = NULL;
    if (rc == CLI_OK) {
        if (isatty(2) && !json)
            t.progress = bar;
        rfjit_status s = rfjit_tune(ctx, &t, &res);
        if (t.progress)
            fputs("\r\033[K", stderr);
        if (s != RFJIT_OK)
            rc = cli_error("tune", s == RFJIT_E_BUDGET || s == RFJIT_E_INVALID_ARG ? CLI_USAGE
                                                                                   : CLI_FAILED,
                           "%s", rfjit_ctx_last_error(ctx));
    }
    if (rc == CLI_OK && save && rfjit_wisdom_export(ctx, NULL) != RFJIT_OK)
        cli_warn("tune", "wisdom not saved: %s", rfjit_ctx_last_error(ctx));
    if (rc == CLI_OK && json) {
        size_t cap = 1 << 16;
        char *buf = malloc(cap);
        if (buf && rfjit_tune_result_json(res, buf, cap) == RFJIT_OK)
            puts(buf);
        else
            rc = cli_error("tune", CLI_FAILED, "cannot format the result as JSON");
        free(buf);
    } else if (rc == CLI_OK) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        rfjit_tune_result_plan(res, &a);
        printf("%s\n\n", rfjit_tune_result_info(res));
        print_table(res);
        rfjit_tune_row c;
        rfjit_tune_result_row(res, 0, &c);
        char eva[64] = "";
        if (c.eva_chunks > 0)
            snprintf(eva, sizeof eva, " window=%d chunks=%d", c.eva_window, c.eva_chunks);
        if (c.sparse_block > 0)
            snprintf(eva, sizeof eva, " sparse_block=%d sparse_exact=%d", c.sparse_block,
                     c.sparse_exact);
        char xf[32];
        printf("\nplan: estimator=%s m=%d%s transform=%s%s tiling vw=%d T=%d ri=%d rj=%d (0 = "
               "default)%s\n",
               a.estimator, c.m, eva, xform_text(a.transform, xf),
               a.compute == RFJIT_BF16 ? " compute=bf16" : "", a.tiling.vw, a.tiling.T, a.tiling.ri,
               a.tiling.rj, a.causal ? " causal" : "");
    }
    if (rc == CLI_OK && run)
        rc = run_plan(ctx, &t, res);
    rfjit_tune_result_destroy(res);
    rfjit_ctx_destroy(ctx);
    npy_free(&aq);
    npy_free(&ak);
    npy_free(&av);
    return rc;
}
