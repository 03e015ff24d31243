/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit attention`: attention of .npy queries, keys and values through one
 * rfjit plan, written as a float32 .npy. The CLI checks what it owns (options, files, ranks,
 * a user projection's shape); the library checks everything else (shapes against each other,
 * causal lengths, non-finite values) and its message is passed through.
 */
#include "cli.h"
#include "runtime/fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rfjit attention --queries Q.npy --keys K.npy --values V.npy -o OUT.npy\n"
    "         [--estimator NAME] [--m M] [--seed S] [--iid|--orthogonal]\n"
    "         [--projection W.npy] [--causal] [--window W] [--chunks C] [--signs N]\n"
    "         [--hybrid-base positive|hyperbolic] [--backend auto|jit|reference] [--fallback]\n"
    "         [--isa avx512|avx2|sse4.2|generic] [--no-warn]\n"
    "         [--plan-from-wisdom EPS [--budget-kind output|kernel] [--scale S]]\n"
    "Computes softmax(q k^T / sqrt(d)) v, exactly or as estimated by NAME, for raw q, k, v\n"
    "(rfjit applies the d^-1/4 scaling). Q and K are (Lq, d) and (Lk, d), V is (Lk, dv), or\n"
    "all three are (B, H, L, .); float32 or float64 .npy, C order. OUT is float32 with the\n"
    "rank of Q: (Lq, dv) or (B, H, Lq, dv).\n"
    "  --estimator NAME   exact positive hyperbolic trig oprf saderf sderf aderf hybrid eva\n"
    "                     (default positive; rfjit info lists them)\n"
    "  --m M, --features M  random projections m (default 256; ignored by exact and eva;\n"
    "                     --m as in check, tune and bench)\n"
    "  --seed S           projection and sampling seed (default 0)\n"
    "  --iid, --orthogonal  i.i.d. Gaussian or block-orthogonal projection (default)\n"
    "  --projection W.npy use this (m, d) projection matrix; m is taken from its shape\n"
    "  --causal           query i sees keys 0..i (needs Lq = Lk); oprf, saderf, sderf and\n"
    "                     aderf cannot run causally here (they need a calibration sample)\n"
    "  --window W         eva: exact local window (default 16)\n"
    "  --chunks C         eva: number of chunk summaries (default 8)\n"
    "  --signs N          hybrid: sign features n (default 8)\n"
    "  --hybrid-base B    hybrid: positive (default) or hyperbolic base estimator\n"
    "  --fallback         if the JIT fails to compile or link, run on the reference instead\n"
    "  --backend B        auto (default: the JIT kernel where the estimator has one), jit,\n"
    "                     or reference (the portable double-precision C loops)\n"
    "  --isa ISA          compile for a lower instruction set than the host's (as RFJIT_ISA)\n"
    "  --plan-from-wisdom EPS  run the plan `rfjit tune` chose for this shape (d, dv, causal,\n"
    "                     length bucket of Lq) and budget EPS (of --budget-kind, default\n"
    "                     output; tuned on the synthetic set of --scale, default 1); fails if\n"
    "                     wisdom has none. Estimator options are then ignored\n"
    "  --no-warn          do not print the warning below\n"
    "A random-feature estimate is only useful where the d^-1/4-scaled rows of q and k have\n"
    "norms of about 1 or less (its variance grows like e^{|x+y|^2}). When the estimator's\n"
    "variance model (the tuner's, rfjit tune --patience estimate) predicts a relative output\n"
    "error ||O_hat - O||_F / ||O||_F above 1 on the given inputs (measured on the first\n"
    "(batch, head): its first 1024 tokens, 256 value columns), attention still writes OUT\n"
    "but prints one line 'rfjit attention: warning: ...' on stderr. exact and eva have no\n"
    "such model and are not checked, nor is a --projection matrix (the model assumes\n"
    "Gaussian projections).\n";

typedef struct attn_args {
    const char *q, *k, *v, *out, *w, *isa;
    int proj_flag;    /* 1 if --iid or --orthogonal was given */
    int features_set; /* times --features was given */
    int no_warn;      /* --no-warn: no useless-estimate warning */
    double wisdom_budget, wisdom_scale; /* --plan-from-wisdom (0: off) */
    int32_t wisdom_kind;
    rfjit_attn_desc a;
} attn_args;

/* Returns CLI_OK, or an exit code after printing the error; -1 after printing --help. */
static int parse(int argc, char **argv, attn_args *x)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return -1;
        }
        if (!strcmp(o, "--fallback")) {
            x->a.fallback = 1;
            continue;
        }
        if (!strcmp(o, "--no-warn")) {
            x->no_warn = 1;
            continue;
        }
        if (!strcmp(o, "--causal") || !strcmp(o, "--iid") || !strcmp(o, "--orthogonal")) {
            if (o[2] == 'c') {
                x->a.causal = 1;
            } else {
                x->a.projection = o[2] == 'i' ? RFJIT_PROJ_IID : RFJIT_PROJ_ORTHOGONAL;
                x->proj_flag = 1;
            }
            continue;
        }
        static const char *const valued[] = {
            "--queries", "--keys",  "--values", "-o",      "--projection", "--estimator",
            "--features", "--m", "--seed", "--window", "--chunks", "--signs", "--hybrid-base",
            "--backend", "--isa", "--plan-from-wisdom", "--budget-kind", "--scale"};
        int known = 0;
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            known |= !strcmp(o, valued[j]);
        if (!known)
            return cli_error("attention", CLI_USAGE, "unknown option '%s' (see --help)", o);
        const char *val = cli_value(argc, argv, &i);
        if (!val)
            return cli_error("attention", CLI_USAGE, "%s needs a value", o);
        int bad = 0;
        if (!strcmp(o, "--queries"))
            x->q = val;
        else if (!strcmp(o, "--keys"))
            x->k = val;
        else if (!strcmp(o, "--values"))
            x->v = val;
        else if (!strcmp(o, "-o"))
            x->out = val;
        else if (!strcmp(o, "--projection"))
            x->w = val;
        else if (!strcmp(o, "--estimator"))
            x->a.estimator = val;
        else if ((!strcmp(o, "--features") || !strcmp(o, "--m")) && ++x->features_set)
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.m);
        else if (!strcmp(o, "--seed"))
            bad = cli_parse_u64(val, &x->a.seed);
        else if (!strcmp(o, "--window"))
            bad = cli_parse_int(val, 0, INT32_MAX, &x->a.eva_window);
        else if (!strcmp(o, "--chunks"))
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.eva_chunks);
        else if (!strcmp(o, "--signs"))
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.hybrid_signs);
        else if (!strcmp(o, "--backend"))
            bad = cli_parse_backend(val, &x->a.backend);
        else if (!strcmp(o, "--isa"))
            x->isa = val;
        else if (!strcmp(o, "--plan-from-wisdom"))
            bad = cli_parse_double(val, &x->wisdom_budget) || !(x->wisdom_budget > 0);
        else if (!strcmp(o, "--budget-kind"))
            bad = strcmp(val, "output") && strcmp(val, "kernel"),
            x->wisdom_kind = strcmp(val, "kernel") ? RFJIT_BUDGET_OUTPUT : RFJIT_BUDGET_KERNEL;
        else if (!strcmp(o, "--scale"))
            bad = cli_parse_double(val, &x->wisdom_scale) || !(x->wisdom_scale > 0);
        else if (strcmp(o, "--hybrid-base"))
            bad = 1;
        else if (!strcmp(val, "positive") || !strcmp(val, "hyperbolic"))
            x->a.hybrid_base = !strcmp(val, "hyperbolic") ? RFJIT_HYBRID_BASE_HYPERBOLIC
                                                          : RFJIT_HYBRID_BASE_POSITIVE;
        else
            bad = 1;
        if (bad)
            return cli_error("attention", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    if (!x->q || !x->k || !x->v || !x->out)
        return cli_error("attention", CLI_USAGE,
                         "--queries, --keys, --values and -o are required (see --help)");
    if (x->w && x->proj_flag)
        return cli_error("attention", CLI_USAGE,
                         "--projection cannot be combined with --iid or --orthogonal");
    /* an output that will be refused is refused before the inputs are read and computed on */
    char real[RJ_PATH_BYTES], why[RJ_PATH_BYTES + 160];
    int mode;
    if (rj_output_target(x->out, real, &mode, why, sizeof why) != 0)
        return cli_error("attention", CLI_FAILED, "%s", why);
    return CLI_OK;
}

/* Load W (m, d) for RFJIT_PROJ_USER; m comes from its shape. */
static int load_projection(attn_args *x, npy_array *aw, int64_t d)
{
    char err[512];
    if (npy_read(x->w, aw, err, sizeof err) != 0)
        return cli_error("attention", CLI_FAILED, "%s", err);
    if (aw->rank != 2 || aw->shape[1] != d || aw->shape[0] > INT32_MAX)
        return cli_error("attention", CLI_FAILED,
                         "%s: projection must have shape (m, d) with d = %lld from the queries",
                         x->w, (long long)d);
    if (x->features_set && x->a.m != aw->shape[0])
        return cli_error("attention", CLI_USAGE, "--features %d disagrees with the %lld rows of %s",
                         x->a.m, (long long)aw->shape[0], x->w);
    x->a.projection = RFJIT_PROJ_USER;
    x->a.projection_matrix = aw->data;
    x->a.m = (int32_t)aw->shape[0];
    return CLI_OK;
}

/* The first (batch, head)'s first n tokens of t and at most cols of their columns, a view
 * with t's strides. */
static rfjit_tensor calib_slice(const rfjit_tensor *t, int64_t n, int64_t cols)
{
    rfjit_tensor s = *t;
    s.shape[0] = s.shape[1] = 1;
    s.shape[2] = n;
    s.shape[3] = s.shape[3] < cols ? s.shape[3] : cols;
    return s;
}

/* The relative output error ||O_hat - O||_F / ||O||_F the estimator's variance model predicts
 * for plan descriptor a on these inputs: rfjit_tune's closed-form estimate (patience ESTIMATE:
 * no candidate is compiled or timed) on a sample of the inputs, rescaled from the m of the
 * tuner's row to a's (the model's squared error is e1 / m). NaN where there is no model or
 * the estimate failed: the warning is advice, so its failure is not the command's. */
static double predicted_error(rfjit_ctx *ctx, const rfjit_attn_desc *a, const rfjit_tensor *tq,
                              const rfjit_tensor *tk, const rfjit_tensor *tv)
{
    int64_t n = tq->shape[2] < tk->shape[2] ? tq->shape[2] : tk->shape[2];
    n = n < 1024 ? n : 1024;
    /* Its exact attention costs n^2 (d + dv): bounded, whatever the inputs' size. */
    const rfjit_tensor cq = calib_slice(tq, n, a->d), ck = calib_slice(tk, n, a->d),
                       cv = calib_slice(tv, n, 256);
    rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
    t.d = a->d;
    t.dv = (int32_t)cv.shape[3];
    t.causal = a->causal;
    t.L = n;
    t.budget = 1e300; /* every row at the smallest m, so that its predicted error is finite */
    t.patience = RFJIT_PATIENCE_ESTIMATE;
    t.calib_q = &cq;
    t.calib_k = &ck;
    t.calib_v = &cv;
    t.estimators = a->estimator ? a->estimator : "positive";
    rfjit_tune_result *r = NULL;
    double err = NAN;
    if (rfjit_tune(ctx, &t, &r) != RFJIT_OK)
        return NAN;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        if (rfjit_tune_result_row(r, i, &row) == RFJIT_OK && !strcmp(row.estimator, t.estimators) &&
            row.m > 0 && isfinite(row.predicted_error))
            err = sqrt(row.predicted_error * row.m / a->m);
    }
    rfjit_tune_result_destroy(r);
    return err;
}

/* The predicted error worth a warning (above 1), or 0: none, or no model to ask. */
static double useless_error(rfjit_ctx *ctx, const attn_args *x, const rfjit_tensor *tq,
                            const rfjit_tensor *tk, const rfjit_tensor *tv)
{
    const char *name = x->a.estimator ? x->a.estimator : "positive";
    if (x->no_warn || x->a.projection == RFJIT_PROJ_USER || !strcmp(name, "exact") ||
        !strcmp(name, "eva"))
        return 0;
    const double e = predicted_error(ctx, &x->a, tq, tk, tv);
    return e > 1 ? e : 0;
}

/* One line on stderr, printed once the output is written (a failed command prints only its
 * error line). */
static void warn_useless(const rfjit_attn_desc *a, double e)
{
    const char *name = a->estimator ? a->estimator : "positive";
    cli_warn("attention",
             "the variance model of %s at m = %d predicts a relative output error "
             "||O_hat - O|| / ||O|| of %.2g on these inputs (above 1: the output is mostly "
             "noise); use --estimator exact, more features, or inputs whose d^-1/4-scaled rows "
             "have norm about 1 (--no-warn hides this)",
             name, a->m, e);
}

static int run(attn_args *x, const npy_array *aq, rfjit_tensor *tq, rfjit_tensor *tk,
               rfjit_tensor *tv)
{
    rfjit_ctx *ctx = NULL;
    rfjit_plan *plan = NULL;
    float *out = NULL;
    int rc = CLI_OK;
    if (!(ctx = cli_context("attention", x->isa)))
        return CLI_FAILED;
    x->a.d = (int32_t)tq->shape[3];
    x->a.dv = (int32_t)tv->shape[3];
    rfjit_tune_result *wis = NULL;
    if (x->wisdom_budget > 0) {
        rfjit_tune_desc t = RFJIT_TUNE_DESC_INIT;
        t.d = x->a.d;
        t.dv = x->a.dv;
        t.causal = x->a.causal;
        t.L = tq->shape[2];
        t.budget = x->wisdom_budget;
        t.budget_kind = x->wisdom_kind;
        t.synthetic_scale = x->wisdom_scale > 0 ? x->wisdom_scale : 1.0;
        t.patience = RFJIT_PATIENCE_WISDOM_ONLY;
        const int32_t backend = x->a.backend;
        if (rfjit_tune(ctx, &t, &wis) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s (run rfjit tune first)",
                           rfjit_ctx_last_error(ctx));
        else
            rfjit_tune_result_plan(wis, &x->a);
        x->a.backend = backend;
    }
    if (rc == CLI_OK && rfjit_plan_create(ctx, &x->a, &plan) != RFJIT_OK)
        rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    /* Output (B, H, Lq, dv); B*H*Lq <= the query count, which fits in memory already. */
    const int64_t shape[4] = {tq->shape[0], tq->shape[1], tq->shape[2], tv->shape[3]};
    const size_t rows = (size_t)(shape[0] * shape[1] * shape[2]);
    if (rc == CLI_OK && (size_t)shape[3] > SIZE_MAX / sizeof(float) / rows)
        rc = cli_error("attention", CLI_FAILED, "output of %zu x %lld values is too large",
                       rows, (long long)shape[3]);
    if (rc == CLI_OK && !(out = malloc(rows * (size_t)shape[3] * sizeof(float))))
        rc = cli_error("attention", CLI_FAILED, "out of memory for the output");
    if (rc == CLI_OK) {
        rfjit_tensor to = rfjit_tensor_contiguous(out, shape[0], shape[1], shape[2], shape[3]);
        if (rfjit_plan_execute(plan, tq, tk, tv, &to) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    }
    const double useless = rc == CLI_OK ? useless_error(ctx, x, tq, tk, tv) : 0;
    if (rc == CLI_OK) {
        char err[512];
        if (npy_write(x->out, out, aq->rank, aq->rank == 4 ? shape : shape + 2, err,
                      sizeof err))
            rc = cli_error("attention", CLI_FAILED, "%s", err);
    }
    if (rc == CLI_OK && useless > 0)
        warn_useless(&x->a, useless);
    free(out);
    rfjit_plan_destroy(plan);
    rfjit_tune_result_destroy(wis);
    rfjit_ctx_destroy(ctx);
    return rc;
}

int cmd_attention(int argc, char **argv)
{
    attn_args x = {0};
    rfjit_attn_desc init = RFJIT_ATTN_DESC_INIT;
    x.a = init;
    int rc = parse(argc, argv, &x);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    npy_array aq = {0}, ak = {0}, av = {0}, aw = {0};
    rfjit_tensor tq, tk, tv;
    rc = cli_load_tensor("attention", x.q, &aq, &tq);
    if (rc == CLI_OK)
        rc = cli_load_tensor("attention", x.k, &ak, &tk);
    if (rc == CLI_OK)
        rc = cli_load_tensor("attention", x.v, &av, &tv);
    if (rc == CLI_OK && (aq.rank != ak.rank || aq.rank != av.rank))
        rc = cli_error("attention", CLI_FAILED,
                       "queries, keys and values must have the same rank (got %d, %d, %d)",
                       aq.rank, ak.rank, av.rank);
    if (rc == CLI_OK && x.w)
        rc = load_projection(&x, &aw, tq.shape[3]);
    if (rc == CLI_OK)
        rc = run(&x, &aq, &tq, &tk, &tv);
    npy_free(&aq);
    npy_free(&ak);
    npy_free(&av);
    npy_free(&aw);
    return rc;
}
