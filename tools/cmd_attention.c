/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit attention`: attention of .npy queries, keys and values through one
 * rfjit plan, written as a .npy of the queries' type (float16 stays float16). The CLI checks
 * what it owns (options, files, ranks, a user projection's shape, the length of the lengths
 * and mask arrays, which the library cannot see); the library checks everything else (shapes
 * against each other, grouped heads, causal lengths, length values, non-finite values) and
 * its message is passed through.
 */
#include "cli.h"
#include "runtime/fsutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The help is four strings: one C string may portably hold 4095 bytes, fewer than this. */
static const char help_options[] =
    "  --transform LIST   exact transforms that shrink the estimate's variance, comma-separated\n"
    "                     (rfjit.h RFJIT_XFORM_*): k (centre the keys), q (centre the queries,\n"
    "                     each key's weight kept exactly; positive, hyperbolic, oprf, saderf,\n"
    "                     sderf, aderf), balance (equal query and key scales per coordinate),\n"
    "                     whiten (the same with a full symmetric matrix); none (default)\n"
    "  --window W         eva: exact local window (default 16)\n"
    "  --chunks C         eva: number of chunk summaries (default 8)\n"
    "  --eva-variant V    eva: principled (default, rfjit's estimator) or official (the\n"
    "                     HKUNLP EVA code in eval mode with identity learned maps; needs\n"
    "                     --window >= 1, Lq = Lk and no key mask)\n"
    "  --sparse-block B   blocksparse: tokens per query and key block (default 64)\n"
    "  --sparse-exact K   blocksparse: key blocks each query block takes exactly, those of\n"
    "                     largest logit bound (default 4; 0 = positive, all = exact)\n";

static const char help_compat[] =
    "  --compat MODE      reproduce another implementation's numerics at its defaults, to\n"
    "                     serve a model trained with it (with --projection W.npy, its trained\n"
    "                     projection): none (default), performer-pytorch (positive),\n"
    "                     google-performer (positive, trig), fast-transformers (hyperbolic);\n"
    "                     positive in the Performer modes runs a float32 path, the others\n"
    "                     the reference backend\n";

static const char help[] =
    "usage: rfjit attention --queries Q.npy --keys K.npy --values V.npy -o OUT.npy\n"
    "         [--estimator NAME] [--m M] [--seed S] [--iid|--orthogonal]\n"
    "         [--projection W.npy] [--causal] [--window W] [--chunks C] [--signs N]\n"
    "         [--hybrid-base positive|hyperbolic] [--backend auto|jit|reference] [--fallback]\n"
    "         [--isa avx512|avx2|sse4.2|generic] [--no-warn]\n"
    "         [--scale X] [--key-lengths KL.npy] [--query-lengths QL.npy] [--key-mask M.npy]\n"
    "         [--dtype f32|f16|bf16] [--compute f32|bf16] [--compat MODE]\n"
    "         [--eva-variant principled|official]\n"
    "         [--transform k,q,balance,whiten] [--sparse-block B] [--sparse-exact K]\n"
    "         [--plan-from-wisdom EPS [--budget-kind output|kernel] [--synthetic-scale S]]\n"
    "Computes softmax(X q k^T) v (X = 1/sqrt(d) by default), exactly or as estimated by NAME,\n"
    "for raw q, k, v. Q and K are (Lq, d) and (Lk, d), V is (Lk, dv), or Q is (B, H, Lq, d)\n"
    "and K, V (B, Hkv, Lk, .) with Hkv dividing H (grouped-query heads: head h reads\n"
    "h / (H / Hkv)); float32, float64 or float16 .npy, C order, one type for the three\n"
    "(float64 is read as float32). OUT has the rank of Q, (Lq, dv) or (B, H, Lq, dv), and is\n"
    "float16 for float16 inputs, else float32.\n"
    "  --estimator NAME   exact positive hyperbolic trig oprf saderf sderf aderf hybrid eva\n"
    "                     blocksparse (default positive; rfjit info lists them)\n"
    "  --m M, --features M  random projections m (default 256; ignored by exact and eva;\n"
    "                     --m as in check, tune and bench)\n"
    "  --seed S           projection and sampling seed (default 0)\n"
    "  --iid, --orthogonal  i.i.d. Gaussian or block-orthogonal projection (default)\n"
    "  --projection W.npy use this (m, d) projection matrix; m is taken from its shape\n"
    "  --causal           bottom-right causal: query i sees keys 0 .. i + Lk - Lq (Lq <= Lk,\n"
    "                     per sequence with lengths); oprf, saderf, sderf and aderf cannot\n"
    "                     run causally here (they need a calibration sample)\n"
    "  --scale X          softmax scale, finite and > 0 (default 1/sqrt(d))\n"
    "  --key-lengths KL.npy    int32/int64 (B,): keys past KL[b] are padding, never read\n"
    "  --query-lengths QL.npy  int32/int64 (B,): rows past QL[b] are not computed, written 0\n"
    "  --key-mask M.npy   bool/uint8 (B, Lk) (or (Lk,)): keys with 0 are seen by no query,\n"
    "                     in no numerator or normaliser; a query that sees no key gets 0\n"
    "  --dtype T          compute on f32, f16 or bf16 inputs, converting Q, K, V to T first\n"
    "                     (default: the files' type); bf16 writes a float32 OUT (.npy has no\n"
    "                     bfloat16)\n"
    "  --compute C        precision of the kernel's products: f32 (default) or bf16\n"
    "                     (operands rounded to bfloat16, float32 sums): exact (AMX or\n"
    "                     AVX512-BF16), bidirectional positive and hyperbolic (AMX); other\n"
    "                     plans and CPUs without the instructions are refused\n"
    "  --signs N          hybrid: sign features n (default 8)\n"
    "  --hybrid-base B    hybrid: positive (default) or hyperbolic base estimator\n"
    "  --fallback         if the JIT fails to compile or link, run on the reference instead\n"
    "  --backend B        auto (default: the JIT kernel where the estimator has one), jit,\n"
    "                     or reference (the portable double-precision C loops)\n"
    "  --isa ISA          compile for a lower instruction set than the host's (as RFJIT_ISA)\n"
    "  --plan-from-wisdom EPS  run the plan `rfjit tune` chose for this shape (d, dv, causal,\n"
    "                     length bucket of Lq) and budget EPS (of --budget-kind, default\n"
    "                     output; tuned on the synthetic set of --synthetic-scale, default 1);\n"
    "                     fails if\n"
    "                     wisdom has none. Estimator options are then ignored\n"
    "  --no-warn          do not print the warning below\n";

static const char help_warning[] =
    "A random-feature estimate is only useful where the d^-1/4-scaled rows of q and k have\n"
    "norms of about 1 or less (its variance grows like e^{|x+y|^2}). When the estimator's\n"
    "variance model (the tuner's, rfjit tune --patience estimate) predicts a relative output\n"
    "error ||O_hat - O||_F / ||O||_F above 1 on the given inputs (measured on the first\n"
    "(batch, head): its first 1024 tokens, 256 value columns), attention still writes OUT\n"
    "but prints one line 'rfjit attention: warning: ...' on stderr. exact, eva and\n"
    "blocksparse have no such model and are not checked, nor is a --projection matrix (the\n"
    "model assumes Gaussian projections).\n";

typedef struct attn_args {
    const char *q, *k, *v, *out, *w, *isa;
    const char *key_lengths, *query_lengths, *key_mask;
    int32_t dtype;    /* --dtype, or -1: the files' */
    int32_t compute;  /* --compute, or -1: the descriptor's default (or wisdom's plan) */
    int proj_flag;    /* 1 if --iid or --orthogonal was given */
    int features_set; /* times --features was given */
    int no_warn;      /* --no-warn: no useless-estimate warning */
    double wisdom_budget, wisdom_scale; /* --plan-from-wisdom (0: off) */
    int32_t wisdom_kind;
    rfjit_attn_desc a;
} attn_args;

/* "none" or a comma-separated list of k, q, balance into RFJIT_XFORM_* flags; 1 if bad. */
static int parse_transform(const char *val, int32_t *flags)
{
    *flags = 0;
    if (!strcmp(val, "none"))
        return 0;
    for (const char *p = val;;) {
        const size_t n = strcspn(p, ",");
        if (n == 1 && *p == 'k')
            *flags |= RFJIT_XFORM_CENTER_K;
        else if (n == 1 && *p == 'q')
            *flags |= RFJIT_XFORM_CENTER_Q;
        else if (n == 7 && !strncmp(p, "balance", 7))
            *flags |= RFJIT_XFORM_BALANCE;
        else if (n == 6 && !strncmp(p, "whiten", 6))
            *flags |= RFJIT_XFORM_WHITEN;
        else
            return 1;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

/* Returns CLI_OK, or an exit code after printing the error; -1 after printing --help. */
static int parse(int argc, char **argv, attn_args *x)
{
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            fputs(help_options, stdout);
            fputs(help_compat, stdout);
            fputs(help_warning, stdout);
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
        static const char *const valued[] = {"--queries",       "--keys",
                                             "--values",        "-o",
                                             "--projection",    "--estimator",
                                             "--features",      "--m",
                                             "--seed",          "--window",
                                             "--chunks",        "--signs",
                                             "--hybrid-base",   "--backend",
                                             "--isa",           "--plan-from-wisdom",
                                             "--budget-kind",   "--synthetic-scale",
                                             "--scale",         "--key-lengths",
                                             "--query-lengths", "--key-mask",
                                             "--dtype",         "--compute",
                                             "--compat",        "--eva-variant",
                                             "--transform",     "--sparse-block",
                                             "--sparse-exact"};
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
        else if (!strcmp(o, "--compat"))
            x->a.compat = val;
        else if (!strcmp(o, "--eva-variant"))
            x->a.eva_variant = val;
        else if (!strcmp(o, "--transform"))
            bad = parse_transform(val, &x->a.transform);
        else if ((!strcmp(o, "--features") || !strcmp(o, "--m")) && ++x->features_set)
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.m);
        else if (!strcmp(o, "--seed"))
            bad = cli_parse_u64(val, &x->a.seed);
        else if (!strcmp(o, "--window"))
            bad = cli_parse_int(val, 0, INT32_MAX, &x->a.eva_window);
        else if (!strcmp(o, "--chunks"))
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.eva_chunks);
        else if (!strcmp(o, "--sparse-block"))
            bad = cli_parse_int(val, 1, INT32_MAX, &x->a.sparse_block);
        else if (!strcmp(o, "--sparse-exact"))
            bad = cli_parse_int(val, 0, INT32_MAX, &x->a.sparse_exact);
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
        else if (!strcmp(o, "--synthetic-scale"))
            bad = cli_parse_double(val, &x->wisdom_scale) || !(x->wisdom_scale > 0);
        else if (!strcmp(o, "--scale"))
            bad = cli_parse_double(val, &x->a.scale) || !(x->a.scale > 0);
        else if (!strcmp(o, "--key-lengths"))
            x->key_lengths = val;
        else if (!strcmp(o, "--query-lengths"))
            x->query_lengths = val;
        else if (!strcmp(o, "--key-mask"))
            x->key_mask = val;
        else if (!strcmp(o, "--dtype"))
            bad = (x->dtype = !strcmp(val, "f32")    ? RFJIT_F32
                              : !strcmp(val, "f16")  ? RFJIT_F16
                              : !strcmp(val, "bf16") ? RFJIT_BF16
                                                     : -2) == -2;
        else if (!strcmp(o, "--compute")) {
            /* f16 is a storage type here (--dtype), not a kernel precision */
            x->compute = !strcmp(val, "f32") ? RFJIT_F32 : !strcmp(val, "bf16") ? RFJIT_BF16 : -1;
            if (x->compute < 0)
                return cli_error("attention", CLI_USAGE,
                                 "bad value '%s' for --compute (f32 or bf16; float16 inputs "
                                 "are --dtype f16)",
                                 val);
            x->a.compute = x->compute;
        } else if (strcmp(o, "--hybrid-base"))
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

/* An input array and its view: float32 (data) or half bits (bytes), contiguous rank 4. */
typedef struct input {
    npy_array arr;
    rfjit_tensor_ex t;
} input;

static void input_view(input *in)
{
    const int64_t *s = in->arr.shape;
    const int64_t d4[4] = {in->arr.rank == 4 ? s[0] : 1, in->arr.rank == 4 ? s[1] : 1,
                           in->arr.rank == 4 ? s[2] : s[0], in->arr.rank == 4 ? s[3] : s[1]};
    rfjit_tensor_ex t = RFJIT_TENSOR_EX_INIT;
    t.data = in->arr.kind == NPY_F32 ? (void *)in->arr.data : in->arr.bytes;
    t.dtype = in->arr.kind == NPY_F32 ? RFJIT_F32 : (int32_t)in->t.dtype;
    for (int i = 3; i >= 0; i--) {
        t.shape[i] = d4[i];
        t.stride[i] = i == 3 ? 1 : t.stride[i + 1] * d4[i + 1];
    }
    in->t = t;
}

/* Read a float32/float64/float16 (L, d) or (B, H, L, d) file. */
static int load_input(const char *path, input *in)
{
    char err[512];
    if (npy_read_kinds(path, 1u << NPY_F32 | 1u << NPY_F16, &in->arr, err, sizeof err) != 0)
        return cli_error("attention", CLI_FAILED, "%s", err);
    const char *why = NULL;
    if (in->arr.rank != 2 && in->arr.rank != 4)
        why = "need rank 2 (L, d) or rank 4 (B, H, L, d)";
    for (int i = 0; !why && i < in->arr.rank; i++)
        if (in->arr.shape[i] > INT32_MAX)
            why = "a dimension exceeds 2^31 - 1";
    if (why) {
        char shape[128];
        int n = snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < in->arr.rank && n > 0 && (size_t)n < sizeof shape; i++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", i ? ", " : "",
                          (long long)in->arr.shape[i]);
        return cli_error("attention", CLI_FAILED, "%s: shape %s%s: %s", path, shape,
                         in->arr.rank == 1 ? ",)" : ")", why);
    }
    in->t.dtype = RFJIT_F16; /* what a non-float32 kind holds */
    input_view(in);
    return CLI_OK;
}

static size_t elem_size(int32_t dtype)
{
    return dtype == RFJIT_F32 ? sizeof(float) : sizeof(uint16_t);
}

/* Element i of data (of dtype) as a float. */
static float load_f32(const void *data, int64_t i, int32_t dtype)
{
    if (dtype == RFJIT_F32)
        return ((const float *)data)[i];
    const uint16_t h = ((const uint16_t *)data)[i];
    return dtype == RFJIT_F16 ? cli_f16_to_f32(h) : cli_bf16_to_f32(h);
}

/* Convert in to dtype (--dtype): a new buffer of that type replaces the file's. */
static int convert_input(input *in, int32_t dtype)
{
    const int32_t from = in->t.dtype;
    if (dtype < 0 || dtype == from)
        return CLI_OK;
    const size_t n = in->arr.count;
    void *to = malloc(n ? n * elem_size(dtype) : 1);
    if (!to)
        return cli_error("attention", CLI_FAILED, "out of memory converting the inputs");
    for (size_t i = 0; i < n; i++) {
        const float x = load_f32(in->t.data, (int64_t)i, from);
        if (dtype == RFJIT_F32)
            ((float *)to)[i] = x;
        else
            ((uint16_t *)to)[i] = dtype == RFJIT_F16 ? cli_f32_to_f16(x) : cli_f32_to_bf16(x);
    }
    npy_free(&in->arr);
    if (dtype == RFJIT_F32) {
        in->arr.data = to;
        in->arr.kind = NPY_F32;
    } else {
        in->arr.bytes = to;
        in->arr.kind = NPY_F16;
    }
    in->t.dtype = dtype;
    input_view(in);
    return CLI_OK;
}

/* A float32 copy of the first (batch, head)'s first n tokens of t, at most cols columns: the
 * variance model's sample (bounded, whatever the inputs' size or type). */
static int sample_f32(const rfjit_tensor_ex *t, int64_t n, int64_t cols, float **buf,
                      rfjit_tensor *out)
{
    const int64_t c = t->shape[3] < cols ? t->shape[3] : cols;
    if (!(*buf = malloc((size_t)(n * c) * sizeof(float))))
        return -1;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c; j++)
            (*buf)[i * c + j] = load_f32(t->data, i * t->stride[2] + j, t->dtype);
    *out = rfjit_tensor_contiguous(*buf, 1, 1, n, c);
    return 0;
}

/* The relative output error ||O_hat - O||_F / ||O||_F the estimator's variance model predicts
 * for plan descriptor a on these inputs: rfjit_tune's closed-form estimate (patience ESTIMATE:
 * no candidate is compiled or timed) on a sample of the inputs, rescaled from the m of the
 * tuner's row to a's (the model's squared error is e1 / m). NaN where there is no model or
 * the estimate failed: the warning is advice, so its failure is not the command's. */
static double predicted_error(rfjit_ctx *ctx, const rfjit_attn_desc *a, const rfjit_tensor_ex *tq,
                              const rfjit_tensor_ex *tk, const rfjit_tensor_ex *tv)
{
    int64_t n = tq->shape[2] < tk->shape[2] ? tq->shape[2] : tk->shape[2];
    n = n < 1024 ? n : 1024;
    /* Its exact attention costs n^2 (d + dv): bounded, whatever the inputs' size. */
    float *bq = NULL, *bk = NULL, *bv = NULL;
    rfjit_tensor cq, ck, cv;
    double err = NAN;
    if (sample_f32(tq, n, a->d, &bq, &cq) || sample_f32(tk, n, a->d, &bk, &ck) ||
        sample_f32(tv, n, 256, &bv, &cv))
        goto done;
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
    t.scale = a->scale;
    rfjit_tune_result *r = NULL;
    if (rfjit_tune(ctx, &t, &r) != RFJIT_OK)
        goto done;
    for (size_t i = 0; i < rfjit_tune_result_rows(r); i++) {
        rfjit_tune_row row;
        if (rfjit_tune_result_row(r, i, &row) == RFJIT_OK && !strcmp(row.estimator, t.estimators) &&
            row.m > 0 && isfinite(row.predicted_error))
            err = sqrt(row.predicted_error * row.m / a->m);
    }
    rfjit_tune_result_destroy(r);
done:
    free(bq);
    free(bk);
    free(bv);
    return err;
}

/* The predicted error worth a warning (above 1), or 0: none, or no model to ask. The model
 * knows no masks or lengths, so those runs are not judged. */
static double useless_error(rfjit_ctx *ctx, const attn_args *x, const input *in)
{
    const char *name = x->a.estimator ? x->a.estimator : "positive";
    if (x->no_warn || x->a.projection == RFJIT_PROJ_USER || !strcmp(name, "exact") ||
        !strcmp(name, "eva") || !strcmp(name, "blocksparse") || x->key_mask || x->key_lengths)
        return 0;
    const double e = predicted_error(ctx, &x->a, &in[0].t, &in[1].t, &in[2].t);
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

/* The per-call arrays: lengths (int32 or int64 (B,)) and a key mask (bool or uint8 (B, Lk),
 * or (Lk,) when B is 1). Their sizes are checked here since the library reads B entries
 * and B x Lk bytes as the tensors' shapes say. */
typedef struct call_arrays {
    npy_array kl, ql, mask;
    int32_t *key_lengths, *query_lengths;
} call_arrays;

static int load_lengths(const char *path, const char *opt, int64_t B, npy_array *arr, int32_t **out)
{
    char err[512];
    if (npy_read_kinds(path, 1u << NPY_I32 | 1u << NPY_I64, arr, err, sizeof err) != 0)
        return cli_error("attention", CLI_FAILED, "%s", err);
    if (arr->rank != 1 || arr->shape[0] != B)
        return cli_error("attention", CLI_FAILED,
                         "%s: %s needs shape (%lld,), one per batch "
                         "entry",
                         path, opt, (long long)B);
    if (!(*out = malloc((size_t)B * sizeof **out)))
        return cli_error("attention", CLI_FAILED, "out of memory");
    for (int64_t b = 0; b < B; b++) {
        const int64_t v = arr->kind == NPY_I32 ? ((const int32_t *)arr->bytes)[b]
                                               : ((const int64_t *)arr->bytes)[b];
        if (v < 0 || v > INT32_MAX)
            return cli_error("attention", CLI_FAILED,
                             "%s: %s[%lld] = %lld is outside "
                             "[0, 2^31 - 1]",
                             path, opt, (long long)b, (long long)v);
        (*out)[b] = (int32_t)v;
    }
    return CLI_OK;
}

static int load_call_arrays(const attn_args *x, const input *in, call_arrays *c)
{
    const int64_t B = in[0].t.shape[0], lk = in[1].t.shape[2];
    int rc = CLI_OK;
    if (x->key_lengths)
        rc = load_lengths(x->key_lengths, "--key-lengths", B, &c->kl, &c->key_lengths);
    if (rc == CLI_OK && x->query_lengths)
        rc = load_lengths(x->query_lengths, "--query-lengths", B, &c->ql, &c->query_lengths);
    if (rc == CLI_OK && x->key_mask) {
        char err[512];
        if (npy_read_kinds(x->key_mask, 1u << NPY_U8 | 1u << NPY_BOOL, &c->mask, err, sizeof err) !=
            0)
            return cli_error("attention", CLI_FAILED, "%s", err);
        const int ok = (c->mask.rank == 2 && c->mask.shape[0] == B && c->mask.shape[1] == lk) ||
                       (c->mask.rank == 1 && B == 1 && c->mask.shape[0] == lk);
        if (!ok)
            rc = cli_error("attention", CLI_FAILED,
                           "%s: --key-mask needs shape (%lld, %lld), "
                           "one byte per (batch entry, key)",
                           x->key_mask, (long long)B, (long long)lk);
    }
    return rc;
}

static void free_call_arrays(call_arrays *c)
{
    npy_free(&c->kl);
    npy_free(&c->ql);
    npy_free(&c->mask);
    free(c->key_lengths);
    free(c->query_lengths);
}

static int run(attn_args *x, input *in, const call_arrays *c)
{
    rfjit_ctx *ctx = NULL;
    rfjit_plan *plan = NULL;
    void *out = NULL;
    int rc = CLI_OK;
    const rfjit_tensor_ex *tq = &in[0].t, *tv = &in[2].t;
    if (!(ctx = cli_context("attention", x->isa)))
        return CLI_FAILED;
    x->a.d = (int32_t)tq->shape[3];
    x->a.dv = (int32_t)tv->shape[3];
    x->a.dtype = tq->dtype;
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
        t.scale = x->a.scale;
        const int32_t backend = x->a.backend, dtype = x->a.dtype;
        const char *compat = x->a.compat, *eva_variant = x->a.eva_variant;
        const double scale = x->a.scale;
        const int32_t transform = x->a.transform;
        if (rfjit_tune(ctx, &t, &wis) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s (run rfjit tune first)",
                           rfjit_ctx_last_error(ctx));
        else
            rfjit_tune_result_plan(wis, &x->a);
        x->a.backend = backend;
        x->a.dtype = dtype;
        x->a.scale = scale;
        x->a.compat = compat;
        x->a.eva_variant = eva_variant;
        x->a.transform = transform;
        if (x->compute >= 0)
            x->a.compute = x->compute;
    }
    if (rc == CLI_OK && rfjit_plan_create(ctx, &x->a, &plan) != RFJIT_OK)
        rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    /* Output (B, H, Lq, dv) of the queries' type (bf16 has no .npy type: float32). */
    rfjit_tensor_ex to = RFJIT_TENSOR_EX_INIT;
    to.dtype = tq->dtype == RFJIT_F16 ? RFJIT_F16 : RFJIT_F32;
    const int64_t shape[4] = {tq->shape[0], tq->shape[1], tq->shape[2], tv->shape[3]};
    /* B*H*Lq <= the query count, which fits in memory already. */
    const size_t rows = (size_t)(shape[0] * shape[1] * shape[2]), es = elem_size(to.dtype);
    if (rc == CLI_OK && (size_t)shape[3] > SIZE_MAX / es / rows)
        rc = cli_error("attention", CLI_FAILED, "output of %zu x %lld values is too large",
                       rows, (long long)shape[3]);
    if (rc == CLI_OK && !(out = malloc(rows * (size_t)shape[3] * es)))
        rc = cli_error("attention", CLI_FAILED, "out of memory for the output");
    if (rc == CLI_OK) {
        to.data = out;
        for (int i = 3; i >= 0; i--) {
            to.shape[i] = shape[i];
            to.stride[i] = i == 3 ? 1 : to.stride[i + 1] * shape[i + 1];
        }
        rfjit_attn_args args = RFJIT_ATTN_ARGS_INIT;
        args.q = &in[0].t;
        args.k = &in[1].t;
        args.v = &in[2].t;
        args.out = &to;
        args.key_lengths = c->key_lengths;
        args.query_lengths = c->query_lengths;
        args.key_mask = c->mask.bytes;
        if (rfjit_plan_execute_args(plan, &args) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    }
    const double useless = rc == CLI_OK ? useless_error(ctx, x, in) : 0;
    if (rc == CLI_OK) {
        char err[512];
        const int rank = in[0].arr.rank;
        const int64_t *sh = rank == 4 ? shape : shape + 2;
        if (to.dtype == RFJIT_F16 ? npy_write_f16(x->out, out, rank, sh, err, sizeof err)
                                  : npy_write(x->out, out, rank, sh, err, sizeof err))
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
    x.dtype = -1;
    x.compute = -1;
    int rc = parse(argc, argv, &x);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    input in[3] = {0};
    npy_array aw = {0};
    call_arrays c = {0};
    const char *paths[3] = {x.q, x.k, x.v};
    for (int i = 0; i < 3 && rc == CLI_OK; i++)
        rc = load_input(paths[i], &in[i]);
    if (rc == CLI_OK && (in[0].arr.rank != in[1].arr.rank || in[0].arr.rank != in[2].arr.rank))
        rc = cli_error("attention", CLI_FAILED,
                       "queries, keys and values must have the same rank (got %d, %d, %d)",
                       in[0].arr.rank, in[1].arr.rank, in[2].arr.rank);
    for (int i = 0; i < 3 && rc == CLI_OK; i++)
        rc = convert_input(&in[i], x.dtype);
    if (rc == CLI_OK && x.w)
        rc = load_projection(&x, &aw, in[0].t.shape[3]);
    if (rc == CLI_OK)
        rc = load_call_arrays(&x, in, &c);
    if (rc == CLI_OK)
        rc = run(&x, in, &c);
    for (int i = 0; i < 3; i++)
        npy_free(&in[i].arr);
    npy_free(&aw);
    free_call_arrays(&c);
    return rc;
}
