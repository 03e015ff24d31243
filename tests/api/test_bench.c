/* SPDX-License-Identifier: MIT */
/*
 * This file tests `rfjit bench`: the smoke suite through the built CLI (every line a JSON
 * object with the row keys, plausible numbers, peers agreeing with rfjit on one head and on
 * two; Python peers that fail are skipped, not fatal), and the OpenBLAS peers themselves
 * against exact attention and FAVOR+ computed here in double, head by head, at sizes that
 * leave ragged blocks and chunks, so a wrong peer cannot pass for a fast one. No timing is
 * asserted.
 */
#include <criterion/criterion.h>

#include "bench.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ------------------------------------------------------------------ a JSON validator */

static const char *ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

static const char *value(const char *s);

static const char *string(const char *s)
{
    if (*s++ != '"')
        return NULL;
    for (; *s && *s != '"'; s++)
        if (*s == '\\' && !*++s)
            return NULL;
    return *s == '"' ? s + 1 : NULL;
}

static const char *object(const char *s)
{
    s = ws(s + 1);
    if (*s == '}')
        return s + 1;
    for (;;) {
        if (!(s = string(ws(s))))
            return NULL;
        s = ws(s);
        if (*s++ != ':' || !(s = value(ws(s))))
            return NULL;
        s = ws(s);
        if (*s == '}')
            return s + 1;
        if (*s++ != ',')
            return NULL;
    }
}

static const char *value(const char *s)
{
    if (*s == '{')
        return object(s);
    if (*s == '"')
        return string(s);
    if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
        return s + 4;
    if (!strncmp(s, "false", 5))
        return s + 5;
    char *end;
    strtod(s, &end);
    return end == s || (!isdigit((unsigned char)end[-1])) ? NULL : end;
}

static int is_json_object(const char *line)
{
    const char *s = ws(line);
    return *s == '{' && (s = object(s)) && !*ws(s);
}

/* The number after "key": (NaN for null or absent). */
static double num(const char *line, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    char *end;
    const double v = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? NAN : v;
}

static int has(const char *line, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    return strstr(line, pat) != NULL;
}

/* 1 when this machine runs bf16 compute for est (d = 16: the smoke suite's bf16 rows), else
 * 0: the library refuses it with RFJIT_E_ISA (no instruction) or, for positive without AMX,
 * RFJIT_E_NOT_APPLICABLE, and the bench skips the row with a note. */
static int bf16_runs(const char *est)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = 16;
    a.m = 32;
    a.compute = RFJIT_BF16;
    rfjit_plan *plan = NULL;
    const rfjit_status s = rfjit_plan_create(ctx, &a, &plan);
    rfjit_plan_destroy(plan);
    rfjit_ctx_destroy(ctx);
    cr_assert(s == RFJIT_OK || s == RFJIT_E_ISA ||
                  (s == RFJIT_E_NOT_APPLICABLE && strcmp(est, "exact") != 0),
              "%s: %s", est, rfjit_status_string(s));
    return s == RFJIT_OK;
}

Test(bench, smoke_suite_json, .timeout = 120)
{
    const int bf16 = bf16_runs("exact") + bf16_runs("positive");
    FILE *f = popen(RFJIT_CLI_PATH " bench --suite smoke --json --no-torch 2>/dev/null", "r");
    cr_assert_not_null(f);
    static char line[8192];
    int n = 0, blas = 0, multi_head = 0, bf16_rows = 0;
    double f32_positive_err = NAN;
    double peak = NAN;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        cr_assert(is_json_object(line), "not a JSON object: %s", line);
        if (n++ == 0) {
            static const char *mk[] = {"peak_gflops", "cpu", "openblas_core", "torch"};
            for (int i = 0; i < 4; i++)
                cr_assert(has(line, mk[i]), "machine line lacks %s: %s", mk[i], line);
            peak = num(line, "peak_gflops");
            cr_assert_gt(peak, 0);
            blas = !strstr(line, "\"openblas_core\":null");
            continue;
        }
        static const char *rk[] = {"estimator", "causal",  "L",        "d",      "dv",
                                   "m",         "threads", "heads",    "ms",     "ms_min",
                                   "ms_max",    "gflops",  "pct_peak", "rel_err"};
        for (int i = 0; i < 14; i++)
            cr_assert(has(line, rk[i]), "row lacks %s: %s", rk[i], line);
        cr_assert(num(line, "heads") >= 1, "%s", line);
        multi_head += num(line, "heads") > 1;
        cr_assert_gt(num(line, "ms"), 0, "%s", line);
        cr_assert(num(line, "ms_min") <= num(line, "ms") && num(line, "ms") <= num(line, "ms_max"),
                  "%s", line);
        /* derived from the timings, not bounded by them: a loaded machine can measure a peak
         * below what a later row reaches */
        const double gflops = num(line, "gflops"), pct = num(line, "pct_peak");
        cr_assert_gt(gflops, 0, "%s", line);
        cr_assert(fabs(pct - gflops / peak) <= 1e-5 * pct, "pct_peak %g is not gflops %g / "
                  "peak %g: %s", pct, gflops, peak, line);
        cr_assert(isfinite(num(line, "rel_err")), "%s", line);
        cr_assert(has(line, "vs_rfjit_f32_paired"), "%s", line);
        const int bf16_row = strstr(line, "\"compute\":\"bf16\"") != NULL;
        const int exact_row = strstr(line, "\"estimator\":\"exact\"") != NULL;
        if (!bf16_row && !exact_row && num(line, "heads") == 1 && num(line, "causal") == 0)
            f32_positive_err = num(line, "rel_err");
        if (bf16_row) {
            /* against float32 exact: for exact about one bfloat16 roundoff, far below 2^-5;
             * for positive its estimate's own error, which the rounding moves by far less than
             * 2^-5 of itself (its float32 row comes first); the paired ratio is there (its
             * size is the headline's business, not a test's) */
            bf16_rows++;
            if (exact_row)
                cr_assert_lt(num(line, "rel_err"), 0x1p-5, "%s", line);
            else
                cr_assert_lt(fabs(num(line, "rel_err") - f32_positive_err),
                             0x1p-5 * f32_positive_err, "float32 %g: %s", f32_positive_err, line);
            cr_assert_gt(num(line, "vs_rfjit_f32_paired"), 0, "%s", line);
        } else {
            cr_assert(strstr(line, "\"compute\":\"f32\""), "%s", line);
            cr_assert(isnan(num(line, "vs_rfjit_f32_paired")), "%s", line);
        }
        cr_assert(!has(line, "torch_favor_ms"), "--no-torch ran torch: %s", line);
        cr_assert(has(line, "vs_torch_sdpa") && isnan(num(line, "vs_torch_sdpa")), "%s", line);
        /* exact's bf16 row has SDPA's peers, float32 and bf16; positive's the FAVOR+ ones */
        if (blas && !(bf16_row && exact_row)) {
            cr_assert_lt(num(line, "peer_err_openblas_favor"), 1e-3, "%s", line);
            cr_assert_lt(num(line, "peer_err_openblas_exact"), 1e-3, "%s", line);
            cr_assert(isfinite(num(line, "vs_openblas_favor")), "%s", line);
        }
    }
    cr_assert_eq(pclose(f), 0, "rfjit bench failed");
    cr_assert_eq(bf16_rows, bf16, "bf16 rows %d where bf16 compute %s", bf16_rows,
                 bf16 ? "runs" : "is refused");
    cr_assert_eq(n, 7 + bf16, "machine line + 6 smoke rows (+ up to 2 bf16), got %d lines", n);
    cr_assert_eq(multi_head, 2, "two smoke rows on two heads, got %d", multi_head);
}

/* An interpreter standing in for RFJIT_BENCH_PYTHON that answers the probe and then fails
 * every peer (or, with quit, stops answering): the run goes on without them. */
static void fake_python(const char *path, int quit)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\n"
          "echo '{\"torch\": \"0.0-fake\", \"torch_about\": \"none\"}'\n",
          f);
    if (!quit)
        fputs("while read line; do echo '{\"torch_favor_error\": \"RuntimeError: fake\", "
              "\"compiled_error\": \"ImportError: fake\"}'; done\n",
              f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0755), 0);
}

Test(bench, failing_python_peers_are_skipped, .timeout = 120)
{
    const int bf16 = bf16_runs("exact") + bf16_runs("positive");
    char dir[] = "/tmp/rfjit_test_fakepy_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    for (int quit = 0; quit < 2; quit++) {
        char py[128], cmd[512];
        snprintf(py, sizeof py, "%s/python%d", dir, quit);
        fake_python(py, quit);
        snprintf(cmd, sizeof cmd,
                 "RFJIT_BENCH_PYTHON=%s %s bench --suite smoke --json --no-blas 2>%s/err", py,
                 RFJIT_CLI_PATH, dir);
        FILE *f = popen(cmd, "r");
        cr_assert_not_null(f);
        static char line[8192];
        int n = 0;
        while (fgets(line, sizeof line, f)) {
            if (n++ == 0) {
                cr_assert(strstr(line, "\"torch\":\"0.0-fake\""), "%s", line);
                continue;
            }
            static const char *vs[] = {"vs_torch_favor",         "vs_torch_sdpa",
                                       "vs_torch_compile_favor", "vs_jax_favor",
                                       "vs_ort_favor",           "vs_performer_favor",
                                       "vs_torch_sdpa_bf16"};
            for (int i = 0; i < 7; i++)
                cr_assert(has(line, vs[i]) && isnan(num(line, vs[i])), "%s: %s", vs[i], line);
        }
        cr_assert_eq(pclose(f), 0, "a failing peer stopped rfjit bench (quit %d)", quit);
        cr_assert_eq(n, 7 + bf16, "machine line + 6 smoke rows (+ up to 2 bf16), got %d lines", n);
        char err[256], text[4096] = "";
        snprintf(err, sizeof err, "%s/err", dir);
        FILE *e = fopen(err, "r");
        cr_assert_not_null(e);
        text[fread(text, 1, sizeof text - 1, e)] = 0;
        fclose(e);
        cr_assert(strstr(text, quit ? "stopped answering" : "RuntimeError: fake"), "%s", text);
        unlink(err);
        unlink(py);
    }
    rmdir(dir);
}

/* Run `rfjit bench ARGS`, keep the first line of its stderr in msg; the exit status. */
static int bench_fails(const char *args, char *msg, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s bench %s 2>&1 >/dev/null", RFJIT_CLI_PATH, args);
    FILE *f = popen(cmd, "r");
    cr_assert(f != NULL);
    msg[0] = 0;
    if (!fgets(msg, (int)n, f))
        msg[0] = 0;
    char rest[256];
    while (fgets(rest, sizeof rest, f))
        ;
    const int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(bench, usage_errors)
{
    static const struct {
        const char *args, *msg;
        int code;
    } cases[] = {{"--suite nope", "rfjit bench: bad value 'nope' for --suite", 2},
                 {"--runs 0", "rfjit bench: bad value '0' for --runs", 2},
                 {"--frobnicate", "rfjit bench: option '--frobnicate' is unknown", 2},
                 {"--plot /tmp/x.gif", "rfjit bench: plot file '/tmp/x.gif' must end in .svg or .png", 2}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char msg[256];
        const int code = bench_fails(cases[i].args, msg, sizeof msg);
        cr_expect_eq(code, cases[i].code, "%s: exit %d", cases[i].args, code);
        cr_expect(strstr(msg, cases[i].msg) != NULL, "%s: message '%s'", cases[i].args, msg);
    }
}

/* ------------------------------------------------------------------ the peers */

/* softmax(q k^T / sqrt d) v in double. */
static void naive_exact(const bench_data *p, int causal, double *out)
{
    const int L = p->L, d = p->d, dv = p->dv;
    double *w = malloc(sizeof(double) * (size_t)L);
    for (int i = 0; i < L; i++) {
        const int n = causal ? i + 1 : L;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int c = 0; c < d; c++)
                s += (double)p->q[i * d + c] * p->k[j * d + c];
            w[j] = s / sqrt((double)d);
            mx = fmax(mx, w[j]);
        }
        for (int j = 0; j < n; j++)
            sum += (w[j] = exp(w[j] - mx));
        for (int a = 0; a < dv; a++) {
            double o = 0;
            for (int j = 0; j < n; j++)
                o += w[j] * p->v[j * dv + a];
            out[i * dv + a] = o / sum;
        }
    }
    free(w);
}

/* phi(x)_r = m^{-1/2} exp(w_r . x - |x|^2 / 2), x = q d^{-1/4}, unstabilised: the test's
 * norms are small. */
static void phi(const bench_data *p, const float *row, double *f)
{
    const double s = pow((double)p->d, -0.25);
    double sq = 0;
    for (int c = 0; c < p->d; c++)
        sq += (s * row[c]) * (s * row[c]);
    for (int r = 0; r < p->m; r++) {
        double u = 0;
        for (int c = 0; c < p->d; c++)
            u += (double)p->W[r * p->d + c] * s * row[c];
        f[r] = exp(u - 0.5 * sq) / sqrt((double)p->m);
    }
}

static void naive_favor(const bench_data *p, int causal, double *out)
{
    const int L = p->L, m = p->m, dv = p->dv;
    double *fq = malloc(sizeof(double) * (size_t)m), *fk = malloc(sizeof(double) * (size_t)m);
    for (int i = 0; i < L; i++) {
        phi(p, p->q + i * p->d, fq);
        double den = 0;
        for (int a = 0; a < dv; a++)
            out[i * dv + a] = 0;
        for (int j = 0; j < (causal ? i + 1 : L); j++) {
            phi(p, p->k + j * p->d, fk);
            double kij = 0;
            for (int r = 0; r < m; r++)
                kij += fq[r] * fk[r];
            den += kij;
            for (int a = 0; a < dv; a++)
                out[i * dv + a] += kij * p->v[j * dv + a];
        }
        for (int a = 0; a < dv; a++)
            out[i * dv + a] /= den;
    }
    free(fq);
    free(fk);
}

static double rel(const float *x, const double *ref, size_t n)
{
    double num2 = 0, den2 = 0;
    for (size_t i = 0; i < n; i++) {
        num2 += (x[i] - ref[i]) * (x[i] - ref[i]);
        den2 += ref[i] * ref[i];
    }
    return sqrt(num2 / den2);
}

Test(bench, blas_peers_match_double_precision, .timeout = 60)
{
    char why[256];
    bench_blas *b = bench_blas_open(why, sizeof why);
    if (!b)
        cr_skip_test("%s", why);
    bench_blas_threads(b, 1);
    /* L = 300: two exact row blocks (256 + 44) and three FAVOR+ chunks (128 + 128 + 44);
     * m = 12 is not a multiple of d = 8 (a partial orthogonal block), dv != d; two heads, so
     * each head's output must be its own */
    bench_data p;
    cr_assert_eq(bench_data_init_heads(&p, 2, 300, 8, 5, 12), 0);
    peer_ws *w = peer_ws_create(&p);
    cr_assert_not_null(w);
    const size_t n = (size_t)p.L * (size_t)p.dv;
    float *out = malloc(sizeof(float) * n * 2);
    double *ref = malloc(sizeof(double) * n);
    for (int causal = 0; causal < 2; causal++)
        for (int exact = 0; exact < 2; exact++) {
            (exact ? peer_blas_exact : peer_blas_favor)(b, &p, causal, w, out);
            for (int h = 0; h < 2; h++) {
                const bench_data x = bench_data_head(&p, h);
                const float *o = out + (size_t)h * n;
                (exact ? naive_exact : naive_favor)(&x, causal, ref);
                cr_assert_lt(rel(o, ref, n), 1e-5, "%s peer, causal %d, head %d: %g",
                             exact ? "exact" : "FAVOR+", causal, h, rel(o, ref, n));
                /* causal row 0 attends to key 0 alone: both give v_0 */
                if (causal)
                    for (int a = 0; a < p.dv; a++)
                        cr_assert_float_eq(o[a], x.v[a], 1e-5);
            }
        }
    free(out);
    free(ref);
    peer_ws_destroy(w);
    bench_data_free(&p);
    bench_blas_close(b);
}

Test(bench, peer_exp_is_accurate)
{
    enum { N = 4001 };
    float *x = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = -87.0f + 175.0f * (float)i / (N - 1);
    float *y = malloc(sizeof(float) * N);
    memcpy(y, x, sizeof(float) * N);
    peer_exp(y, N);
    for (int i = 0; i < N; i++) {
        const double e = exp((double)x[i]);
        cr_assert_lt(fabs(y[i] - e) / e, 1e-6, "exp(%g) = %g, want %g", x[i], y[i], e);
    }
    free(x);
    free(y);
}

Test(bench, orthogonal_rows_are_orthogonal_in_blocks)
{
    enum { M = 20, D = 8 };
    float W[M * D];
    bench_orthogonal_rows(W, M, D, 4);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < i; j++) {
            if (i / D != j / D)
                continue;
            double dot = 0, ni = 0, nj = 0;
            for (int c = 0; c < D; c++) {
                dot += (double)W[i * D + c] * W[j * D + c];
                ni += (double)W[i * D + c] * W[i * D + c];
                nj += (double)W[j * D + c] * W[j * D + c];
            }
            cr_assert_lt(fabs(dot) / sqrt(ni * nj), 1e-5, "rows %d, %d", i, j);
        }
}
