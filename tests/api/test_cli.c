/* SPDX-License-Identifier: MIT */
/*
 * This file runs the built rfjit CLI (RFJIT_CLI_PATH) as a user would, on files in a fresh
 * temporary directory per test: attention round trips against a double-precision softmax
 * computed here (rank 2 and 4, causal), a user projection against the library called
 * directly with the same matrix, Fortran-order inputs against their C-order twins, fit
 * --json keys, small checks, and each bad input class, which must exit non-zero (2 usage,
 * 1 failed operation) with exactly one line on stderr.
 */
#include <criterion/criterion.h>

#include "cli_testutil.h"
#include "core/half.h"
#include "npy.h"
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];

static int run(const char *args)
{
    return tu_cli_run(dir, "", args);
}

static char *slurp(const char *name)
{
    return tu_slurp(dir, name);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void path_in_dir(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", dir, name);
}

/* Deterministic values in [-1, 1) scaled by s (an LCG: the test must not depend on rand()). */
static void fill(float *x, size_t n, unsigned seed, float s)
{
    uint32_t st = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = s * ((float)(st >> 8) / 8388608.0f - 1.0f);
    }
}

static void write_arr(const char *name, int rank, const int64_t *shape, unsigned seed)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    float *x = malloc(sizeof(float) * n);
    cr_assert_not_null(x);
    fill(x, n, seed, 1.5f);
    char path[256], err[512];
    path_in_dir(path, sizeof path, name);
    cr_assert_eq(npy_write(path, x, rank, shape, err, sizeof err), 0, "%s", err);
    free(x);
}

static void read_arr(const char *name, npy_array *a)
{
    char path[256], err[512];
    path_in_dir(path, sizeof path, name);
    cr_assert_eq(npy_read(path, a, err, sizeof err), 0, "%s", err);
}

static void write_raw(const char *name, const char *descr, int rank, const int64_t *shape,
                      const void *data, size_t elem);

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit_cli_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    const int64_t q[2] = {20, 8}, v[2] = {20, 5}, k7[2] = {20, 7}, k4[4] = {2, 3, 9, 8},
                  v4[4] = {2, 3, 9, 6};
    write_arr("q.npy", 2, q, 1);
    write_arr("k.npy", 2, q, 2);
    write_arr("v.npy", 2, v, 3);
    write_arr("k7.npy", 2, k7, 4);
    write_arr("q4.npy", 4, k4, 5);
    write_arr("k4.npy", 4, k4, 6);
    write_arr("v4.npy", 4, v4, 7);
    write_arr("r3.npy", 3, k4 + 1, 8);
    const int64_t v9[2] = {9, 5};
    write_arr("v9.npy", 2, v9, 10);
    const int64_t w[2] = {16, 8};
    write_arr("w.npy", 2, w, 9);
    /* serving inputs for the bad-file cases: lengths and masks of wrong size or value, a
     * float16 file of q4.npy's shape and keys with 2 heads, which do not divide q4's 3 */
    const int64_t n3[1] = {3}, n2[1] = {2}, m7[2] = {2, 7}, k3h[4] = {2, 2, 9, 8},
                  v3h[4] = {2, 2, 9, 6};
    const int32_t kl3[3] = {1, 2, 3}, klbig[2] = {10, 9}, klneg[2] = {3, -1}, kl2[2] = {9, 9},
                  kl39[2] = {3, 9};
    const unsigned char m7b[14] = {1};
    write_raw("kl3.npy", "<i4", 1, n3, kl3, 4);
    write_raw("klbig.npy", "<i4", 1, n2, klbig, 4);
    write_raw("klneg.npy", "<i4", 1, n2, klneg, 4);
    write_raw("kl2.npy", "<i4", 1, n2, kl2, 4);
    write_raw("kl39.npy", "<i4", 1, n2, kl39, 4);
    write_raw("m7.npy", "|u1", 2, m7, m7b, 1);
    uint16_t h4[2 * 3 * 9 * 8] = {0};
    write_raw("hq4.npy", "<f2", 4, k4, h4, 2);
    write_arr("k3h.npy", 4, k3h, 11);
    write_arr("v3h.npy", 4, v3h, 12);
    char path[256];
    path_in_dir(path, sizeof path, "junk.npy");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("this is not numpy", f);
    fclose(f);
    /* A valid header whose data stop short: 6 floats announced, 2 present. */
    path_in_dir(path, sizeof path, "short.npy");
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    static const char hdr[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n";
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, sizeof hdr - 1, 0};
    const float two[2] = {1, 2};
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, sizeof hdr - 1, f);
    fwrite(two, sizeof(float), 2, f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* softmax(q k^T / sqrt(d)) v for one (batch, head) in double, causal if asked. */
static void softmax_attention(const float *q, const float *k, const float *v, int L, int d,
                              int dv, int causal, double *out)
{
    for (int i = 0; i < L; i++) {
        double w[64], mx = -INFINITY, z = 0;
        const int nj = causal ? i + 1 : L;
        cr_assert_leq(nj, 64);
        for (int j = 0; j < nj; j++) {
            double s = 0;
            for (int c = 0; c < d; c++)
                s += (double)q[i * d + c] * k[j * d + c];
            w[j] = s / sqrt((double)d);
            mx = fmax(mx, w[j]);
        }
        for (int j = 0; j < nj; j++)
            z += (w[j] = exp(w[j] - mx));
        for (int c = 0; c < dv; c++) {
            double o = 0;
            for (int j = 0; j < nj; j++)
                o += w[j] * v[j * dv + c];
            out[i * dv + c] = o / z;
        }
    }
}

/* Compare the CLI's output file with softmax attention of the three input files. */
static void expect_exact(const char *qn, const char *kn, const char *vn, const char *on,
                         int causal)
{
    npy_array q, k, v, o;
    read_arr(qn, &q);
    read_arr(kn, &k);
    read_arr(vn, &v);
    read_arr(on, &o);
    const int r = q.rank;
    cr_assert_eq(o.rank, r, "output rank %d, queries rank %d", o.rank, r);
    const int L = (int)q.shape[r - 2], d = (int)q.shape[r - 1], dv = (int)v.shape[r - 1];
    const int bh = r == 4 ? (int)(q.shape[0] * q.shape[1]) : 1;
    for (int i = 0; i < r - 1; i++)
        cr_assert_eq(o.shape[i], q.shape[i]);
    cr_assert_eq(o.shape[r - 1], dv);
    double ref[64 * 8];
    for (int b = 0; b < bh; b++) {
        softmax_attention(q.data + (size_t)b * L * d, k.data + (size_t)b * L * d,
                          v.data + (size_t)b * L * dv, L, d, dv, causal, ref);
        for (int i = 0; i < L * dv; i++)
            cr_assert(fabs(o.data[(size_t)b * L * dv + i] - ref[i]) <= 1e-5,
                      "%s (b*h %d, element %d): %.9g vs %.9g", on, b, i,
                      o.data[(size_t)b * L * dv + i], ref[i]);
    }
    npy_free(&q), npy_free(&k), npy_free(&v), npy_free(&o);
}

Test(cli, attention_exact_rank2_rank4_causal)
{
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                     "--estimator exact"),
                 0, "%s", slurp("err.txt"));
    expect_exact("q.npy", "k.npy", "v.npy", "o.npy", 0);
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o oc.npy "
                     "--estimator exact --causal"),
                 0, "%s", slurp("err.txt"));
    expect_exact("q.npy", "k.npy", "v.npy", "oc.npy", 1);
    cr_assert_eq(run("attention --queries q4.npy --keys k4.npy --values v4.npy -o o4.npy "
                     "--estimator exact"),
                 0, "%s", slurp("err.txt"));
    expect_exact("q4.npy", "k4.npy", "v4.npy", "o4.npy", 0);
    cr_assert_str_empty(slurp("err.txt"));
}

/* --transform: exact attention stays exact under every transform; a list the CLI does not
 * know, and query centring of an estimator without exponential key features, are errors
 * that name the problem. */
Test(cli, attention_transform)
{
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                     "--estimator exact --transform k,q,balance"),
                 0, "%s", slurp("err.txt"));
    expect_exact("q.npy", "k.npy", "v.npy", "o.npy", 0);
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                     "--transform none --features 16"),
                 0, "%s", slurp("err.txt"));
    cr_assert_neq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                      "--transform k,x"),
                  0);
    cr_assert(strstr(slurp("err.txt"), "--transform"), "%s", slurp("err.txt"));
    cr_assert_neq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                      "--estimator trig --transform q"),
                  0);
    cr_assert(strstr(slurp("err.txt"), "RFJIT_XFORM_CENTER_Q"), "%s", slurp("err.txt"));
}

/* A .npy of any element type from raw little-endian bytes (the host is little-endian on
 * every target rfjit builds for), for the lengths, masks and float16 files. */
static void write_raw(const char *name, const char *descr, int rank, const int64_t *shape,
                      const void *data, size_t elem)
{
    char hdr[128], path[256];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s%lld", i ? ", " : "",
                      (long long)shape[i]);
        count *= (size_t)shape[i];
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%s), }\n", rank == 1 ? "," : "");
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0};
    path_in_dir(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, (size_t)n, f);
    fwrite(data, elem, count, f);
    fclose(f);
}

/* Exact attention of one (batch, head) in double with the serving semantics: scale, key
 * length lk, query length lq (rows past it 0), key mask, bottom-right causal within the
 * lengths, zeros for a query that sees no key. */
static void serving_reference(const float *q, const float *k, const float *v, int Lq, int d, int dv,
                              int lq, int lk, const unsigned char *mask, int causal, double scale,
                              double *out)
{
    for (int i = 0; i < Lq; i++) {
        double w[64], mx = -INFINITY, z = 0;
        for (int j = 0; j < lk; j++) {
            w[j] = -INFINITY;
            if (i >= lq || (mask && !mask[j]) || (causal && j > i + lk - lq))
                continue;
            double s = 0;
            for (int c = 0; c < d; c++)
                s += (double)q[i * d + c] * k[j * d + c];
            mx = fmax(mx, w[j] = scale * s);
        }
        for (int j = 0; j < lk; j++)
            z += (w[j] = mx == -INFINITY ? 0 : exp(w[j] - mx));
        for (int c = 0; c < dv; c++) {
            double o = 0;
            for (int j = 0; j < lk; j++)
                o += w[j] * v[j * dv + c];
            out[i * dv + c] = z > 0 ? o / z : 0;
        }
    }
}

enum { SB = 2, SH = 4, SHKV = 2, SLQ = 5, SLK = 9, SD = 8, SDV = 6 };

/* rfjit attention on sq.npy, sk.npy, sv.npy (Q (2, 4, 5, 8), K, V (2, 2, 9, .): grouped
 * heads by shape) with --scale 0.3 and the options given, against the double reference
 * with lengths ql, kl (NULL: full) and mask (NULL: none). */
static void expect_serving(const char *opts, const int64_t *ql, const int32_t *kl,
                           unsigned char (*mask)[SLK], int causal)
{
    const int64_t sq[4] = {SB, SH, SLQ, SD}, sk[4] = {SB, SHKV, SLK, SD},
                  sv[4] = {SB, SHKV, SLK, SDV};
    write_arr("sq.npy", 4, sq, 21);
    write_arr("sk.npy", 4, sk, 22);
    write_arr("sv.npy", 4, sv, 23);
    char args[512];
    snprintf(args, sizeof args,
             "attention --queries sq.npy --keys sk.npy --values sv.npy -o so.npy "
             "--estimator exact --scale 0.3 %s%s",
             opts, causal ? " --causal" : "");
    cr_assert_eq(run(args), 0, "%s: %s", args, slurp("err.txt"));
    npy_array q, k, v, o;
    read_arr("sq.npy", &q);
    read_arr("sk.npy", &k);
    read_arr("sv.npy", &v);
    read_arr("so.npy", &o);
    cr_assert_eq(o.rank, 4);
    cr_assert_eq(o.shape[1], SH);
    cr_assert_eq(o.shape[3], SDV);
    for (int b = 0; b < SB; b++)
        for (int h = 0; h < SH; h++) {
            const int g = h / (SH / SHKV);
            double ref[SLQ * SDV];
            serving_reference(q.data + ((size_t)b * SH + h) * SLQ * SD,
                              k.data + ((size_t)b * SHKV + g) * SLK * SD,
                              v.data + ((size_t)b * SHKV + g) * SLK * SDV, SLQ, SD, SDV,
                              ql ? (int)ql[b] : SLQ, kl ? kl[b] : SLK, mask ? mask[b] : NULL,
                              causal, 0.3, ref);
            const float *got = o.data + ((size_t)b * SH + h) * SLQ * SDV;
            for (int i = 0; i < SLQ * SDV; i++)
                cr_assert(fabs(got[i] - ref[i]) <= 1e-5, "%s: b %d h %d [%d]: %.9g vs %.9g", args,
                          b, h, i, got[i], ref[i]);
        }
    npy_free(&q), npy_free(&k), npy_free(&v), npy_free(&o);
}

/* --scale, --key-lengths (int32), --query-lengths (int64) and grouped-query heads by shape,
 * causal with as many queries as keys in each sequence. */
Test(cli, attention_scale_lengths_grouped_heads)
{
    const int32_t kl[SB] = {5, 3};
    const int64_t ql[SB] = {5, 3}, nb[1] = {SB};
    write_raw("kl.npy", "<i4", 1, nb, kl, 4);
    write_raw("ql.npy", "<i8", 1, nb, ql, 8);
    expect_serving("", NULL, NULL, NULL, 0);
    for (int causal = 0; causal < 2; causal++)
        expect_serving("--key-lengths kl.npy --query-lengths ql.npy", ql, kl, NULL, causal);
}

/* --key-mask (bool) with lengths, and causal with fewer queries than keys (bottom-right). */
Test(cli, attention_key_mask_and_causal_offset)
{
    const int32_t kl[SB] = {9, 6};
    const int64_t ql[SB] = {5, 3}, nb[1] = {SB}, sm[2] = {SB, SLK};
    unsigned char mask[SB][SLK];
    memset(mask, 1, sizeof mask);
    mask[0][2] = mask[0][8] = mask[1][0] = 0;
    write_raw("kl.npy", "<i4", 1, nb, kl, 4);
    write_raw("ql.npy", "<i8", 1, nb, ql, 8);
    write_raw("mask.npy", "|b1", 2, sm, mask, 1);
    for (int causal = 0; causal < 2; causal++) {
        expect_serving("--key-mask mask.npy", NULL, NULL, mask, causal);
        expect_serving("--key-lengths kl.npy --query-lengths ql.npy --key-mask mask.npy", ql, kl,
                       mask, causal);
    }
    expect_serving("", NULL, NULL, NULL, 1); /* 5 queries after 4 earlier keys */
}

/* float16 files give a float16 output equal to the float32 run on the same (half) values
 * rounded once; --dtype f16 converts float32 files to the same thing, and --dtype bf16 runs
 * and writes float32. */
Test(cli, attention_float16_is_preserved)
{
    enum { L = 12, D = 8 };
    float x[3][L * D];
    uint16_t h[3][L * D];
    const int64_t s[2] = {L, D};
    for (int a = 0; a < 3; a++) {
        fill(x[a], L * D, 31 + (unsigned)a, 1.0f);
        for (int i = 0; i < L * D; i++) {
            h[a][i] = rj_f32_to_f16(x[a][i]);
            x[a][i] = rj_f16_to_f32(h[a][i]); /* the float32 run sees the same values */
        }
    }
    write_raw("hq.npy", "<f2", 2, s, h[0], 2);
    write_raw("hk.npy", "<f2", 2, s, h[1], 2);
    write_raw("hv.npy", "<f2", 2, s, h[2], 2);
    char path[256], err[512];
    const char *names[3] = {"fq.npy", "fk.npy", "fv.npy"};
    for (int a = 0; a < 3; a++) {
        path_in_dir(path, sizeof path, names[a]);
        cr_assert_eq(npy_write(path, x[a], 2, s, err, sizeof err), 0, "%s", err);
    }
    cr_assert_eq(run("attention --queries hq.npy --keys hk.npy --values hv.npy -o ho.npy "
                     "--estimator exact --causal"),
                 0, "%s", slurp("err.txt"));
    cr_assert_eq(run("attention --queries fq.npy --keys fk.npy --values fv.npy -o fo.npy "
                     "--estimator exact --causal"),
                 0, "%s", slurp("err.txt"));
    cr_assert_eq(run("attention --queries fq.npy --keys fk.npy --values fv.npy -o co.npy "
                     "--estimator exact --causal --dtype f16"),
                 0, "%s", slurp("err.txt"));
    cr_assert_eq(run("attention --queries fq.npy --keys fk.npy --values fv.npy -o bo.npy "
                     "--estimator exact --causal --dtype bf16"),
                 0, "%s", slurp("err.txt"));
    npy_array ho, co, fo, bo;
    path_in_dir(path, sizeof path, "ho.npy");
    cr_assert_eq(npy_read_kinds(path, 1u << NPY_F16, &ho, err, sizeof err), 0, "%s", err);
    path_in_dir(path, sizeof path, "co.npy");
    cr_assert_eq(npy_read_kinds(path, 1u << NPY_F16, &co, err, sizeof err), 0, "%s", err);
    read_arr("fo.npy", &fo);
    read_arr("bo.npy", &bo);
    cr_assert_eq(ho.kind, NPY_F16);
    for (int i = 0; i < L * D; i++) {
        const uint16_t *hb = ho.bytes, *cb = co.bytes;
        cr_assert_eq(hb[i], cb[i], "element %d", i);
        /* the float32 result rounded once to half, up to the kernel's float32 rounding */
        cr_assert(fabsf(rj_f16_to_f32(hb[i]) - fo.data[i]) <=
                      ldexpf(fabsf(fo.data[i]), -11) + 1e-5f,
                  "element %d", i);
        /* bf16 inputs: |x| <= 1 rounded to 8 bits moves an output by at most ~2^-7 */
        cr_assert(fabsf(bo.data[i] - fo.data[i]) <= 0.02f, "bf16 element %d", i);
    }
    npy_free(&ho), npy_free(&co), npy_free(&fo), npy_free(&bo);
}

static void expect_error(const char *args, int code, const char *needle);

#define QKV "attention --queries q.npy --keys k.npy --values v.npy -o o.npy"
#define QKV_EXACT QKV " --estimator exact"

/* What the library says to a bf16-compute exact plan of d = 8 on a default context, as the
 * CLI's own context (no --isa) is made: RFJIT_OK where the CPU has AVX512-BF16, else its
 * refusal, which the CLI must then pass on. */
static rfjit_status bf16_compute_status(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = 8;
    a.dv = 5;
    a.compute = RFJIT_BF16;
    rfjit_plan *plan = NULL;
    const rfjit_status s = rfjit_plan_create(ctx, &a, &plan);
    rfjit_plan_destroy(plan);
    rfjit_ctx_destroy(ctx);
    return s;
}

/* --compute bf16 against the double softmax of the float32 files. Rounding q and k to
 * bfloat16 (unit roundoff u = 2^-8) moves each score X q_i.k_j by at most
 * 2u X |q_i| |k_j| (float32 accumulation adds far less), which scales weight w_ij by up to
 * e^{+-that}, about 1 +- 2u X |q_i| max|k| to first order; a weight change of relative size
 * e moves o_ic = sum_j w_ij v_jc / sum_j w_ij by at most 2e sum_j w_ij |v_jc| (numerator and
 * normaliser). Rounding the weights and v to bfloat16 for the second product adds u each:
 * 2u sum_j w_ij |v_jc| (w normalised). Hence the tolerance below, plus float32 rounding.
 * That the output moved at all (beyond float32 rounding) shows the option reached the
 * kernel. --compute f16 and other values are usage errors; where the CPU has no bf16
 * instruction the library's refusal is passed on, as it always is under --isa avx2 (run
 * the test under RFJIT_ISA=avx2 to see that side). */
Test(cli, attention_compute_bf16)
{
    expect_error(QKV_EXACT " --compute f16", 2, "bad value 'f16' for --compute (f32 or bf16");
    expect_error(QKV_EXACT " --compute fp32", 2, "bad value 'fp32' for --compute");
    expect_error(QKV_EXACT " --compute bf16 --isa avx2", 1, "needs AVX512-BF16");
    expect_error(QKV_EXACT " --compute bf16 --backend reference", 1,
                 "the reference backend computes in double");
    cr_assert_eq(run(QKV_EXACT " --compute f32"), 0, "%s", slurp("err.txt"));
    expect_exact("q.npy", "k.npy", "v.npy", "o.npy", 0);
    const rfjit_status s = bf16_compute_status();
    if (s != RFJIT_OK) {
        cr_assert_eq(s, RFJIT_E_ISA, "%s", rfjit_status_string(s));
        expect_error(QKV_EXACT " --compute bf16", 1, "needs AVX512-BF16");
        return;
    }
    /* checked after the instruction set, so only where that passes */
    expect_error(QKV " --estimator trig --compute bf16", 1,
                 "estimator 'trig' has no bfloat16 kernel");
    npy_array q, k, v, o;
    read_arr("q.npy", &q);
    read_arr("k.npy", &k);
    read_arr("v.npy", &v);
    enum { L = 20, D = 8, DV = 5 };
    const double u = 0x1p-8, X = 1 / sqrt((double)D);
    for (int causal = 0; causal < 2; causal++) {
        cr_assert_eq(run(causal ? QKV_EXACT " --compute bf16 --causal"
                                : QKV_EXACT " --compute bf16"),
                     0, "%s", slurp("err.txt"));
        cr_assert_str_empty(slurp("err.txt"));
        read_arr("o.npy", &o);
        cr_assert_eq(o.count, (size_t)L * DV);
        double ref[L * DV], moved = 0;
        softmax_attention(q.data, k.data, v.data, L, D, DV, causal, ref);
        double kmax = 0;
        for (int j = 0; j < L; j++) {
            double n2 = 0;
            for (int c = 0; c < D; c++)
                n2 += (double)k.data[j * D + c] * k.data[j * D + c];
            kmax = fmax(kmax, sqrt(n2));
        }
        for (int i = 0; i < L; i++) {
            double w[L], z = 0, mx = -INFINITY, qn = 0;
            const int nj = causal ? i + 1 : L;
            for (int c = 0; c < D; c++)
                qn += (double)q.data[i * D + c] * q.data[i * D + c];
            qn = sqrt(qn);
            for (int j = 0; j < nj; j++) {
                double sc = 0;
                for (int c = 0; c < D; c++)
                    sc += (double)q.data[i * D + c] * k.data[j * D + c];
                mx = fmax(mx, w[j] = X * sc);
            }
            for (int j = 0; j < nj; j++)
                z += (w[j] = exp(w[j] - mx));
            for (int c = 0; c < DV; c++) {
                double wv = 0;
                for (int j = 0; j < nj; j++)
                    wv += w[j] / z * fabs(v.data[j * DV + c]);
                const double tol = (2 * u + 2 * (2 * u * X * qn * kmax)) * wv + 1e-5;
                const double err = fabs(o.data[i * DV + c] - ref[i * DV + c]);
                moved = fmax(moved, err);
                cr_assert(err <= tol, "causal %d, row %d, column %d: %.9g vs %.9g (tol %.3g)",
                          causal, i, c, o.data[i * DV + c], ref[i * DV + c], tol);
            }
        }
        cr_assert_gt(moved, 1e-4, "causal %d: bf16 output within float32 rounding of exact",
                     causal);
        npy_free(&o);
    }
    npy_free(&q), npy_free(&k), npy_free(&v);
}

Test(cli, attention_estimators_run_and_are_seeded)
{
    /* Every estimator runs through the CLI (bidirectional: no calibration needed); a fixed
     * seed gives the same file twice. */
    const char *names[] = {"positive", "hyperbolic", "trig",   "oprf", "saderf",
                           "sderf",    "aderf",      "hybrid", "eva",  "blocksparse"};
    for (size_t e = 0; e < sizeof names / sizeof *names; e++) {
        char args[512];
        snprintf(args, sizeof args,
                 "attention --queries q.npy --keys k.npy --values v.npy "
                 "-o a.npy --estimator %s --features 32 --seed 5 --signs 2 "
                 "--window 4 --chunks 3 --sparse-block 3 --sparse-exact 1",
                 names[e]);
        cr_assert_eq(run(args), 0, "%s: %s", names[e], slurp("err.txt"));
        snprintf(args, sizeof args,
                 "attention --queries q.npy --keys k.npy --values v.npy "
                 "-o b.npy --estimator %s --features 32 --seed 5 --signs 2 "
                 "--window 4 --chunks 3 --sparse-block 3 --sparse-exact 1",
                 names[e]);
        cr_assert_eq(run(args), 0, "%s: %s", names[e], slurp("err.txt"));
        npy_array a, b, v;
        read_arr("a.npy", &a);
        read_arr("b.npy", &b);
        read_arr("v.npy", &v);
        cr_assert_eq(a.count, 100u);
        cr_assert_eq(memcmp(a.data, b.data, sizeof(float) * a.count), 0, "%s not deterministic",
                     names[e]);
        /* Non-negative weights (all but the signed trig and hybrid): every output lies in
         * its column's range of v. */
        const int is_signed = !strcmp(names[e], "trig") || !strcmp(names[e], "hybrid");
        for (int i = 0; i < 20 && !is_signed; i++)
            for (int c = 0; c < 5; c++) {
                float lo = INFINITY, hi = -INFINITY;
                for (int j = 0; j < 20; j++)
                    lo = fminf(lo, v.data[j * 5 + c]), hi = fmaxf(hi, v.data[j * 5 + c]);
                const float x = a.data[i * 5 + c];
                cr_assert(x >= lo - 1e-5f && x <= hi + 1e-5f, "%s (%d, %d): %g outside [%g, %g]",
                          names[e], i, c, x, lo, hi);
            }
        for (size_t i = 0; i < a.count; i++)
            cr_assert(isfinite(a.data[i]), "%s: element %zu not finite", names[e], i);
        npy_free(&a), npy_free(&b), npy_free(&v);
    }
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o p.npy "
                     "--iid --hybrid-base hyperbolic --estimator hybrid"),
                 0, "%s", slurp("err.txt"));
    npy_array p;
    read_arr("p.npy", &p);
    for (size_t i = 0; i < p.count; i++)
        cr_assert(isfinite(p.data[i]), "element %zu not finite", i);
    npy_free(&p);
}

/* --eva-variant: official runs where its chunk size tiles the padded length and gives another
 * output than principled; a bad name, another estimator or a chunk size the official code
 * cannot use exits 1 with the library's one-line message. */
Test(cli, attention_eva_variant)
{
    const int64_t s[2] = {48, 16};
    write_arr("eq.npy", 2, s, 21);
    write_arr("ek.npy", 2, s, 22);
    write_arr("ev.npy", 2, s, 23);
    const char *base = "attention --queries eq.npy --keys ek.npy --values ev.npy --window 8";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --estimator eva --chunks 4 --eva-variant official -o eo.npy",
             base);
    cr_assert_eq(run(cmd), 0, "%s", slurp("err.txt"));
    snprintf(cmd, sizeof cmd, "%s --estimator eva --chunks 4 -o ep.npy", base);
    cr_assert_eq(run(cmd), 0, "%s", slurp("err.txt"));
    npy_array o, p;
    read_arr("eo.npy", &o);
    read_arr("ep.npy", &p);
    double diff = 0;
    for (size_t i = 0; i < o.count; i++)
        diff = fmax(diff, fabs((double)o.data[i] - p.data[i]));
    cr_assert_gt(diff, 1e-3, "the variants gave the same output");
    npy_free(&o);
    npy_free(&p);
    const char *bad[][2] = {{"--estimator eva --chunks 4 --eva-variant oficial",
                             "principled, official"},
                            {"--estimator positive --eva-variant official", "eva only"},
                            {"--estimator eva --chunks 5 --eva-variant official", "chunk size"}};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s %s -o ex.npy", base, bad[i][0]);
        cr_assert_eq(run(cmd), 1, "%s", bad[i][0]);
        const char *err = slurp("err.txt");
        cr_assert(strstr(err, bad[i][1]) && count_lines(err) == 1, "%s: %s", bad[i][0], err);
    }
}

Test(cli, user_projection_matches_the_library)
{
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o w.out.npy "
                     "--estimator positive --projection w.npy"),
                 0, "%s", slurp("err.txt"));
    npy_array q, k, v, w, o;
    read_arr("q.npy", &q);
    read_arr("k.npy", &k);
    read_arr("v.npy", &v);
    read_arr("w.npy", &w);
    read_arr("w.out.npy", &o);
    rfjit_ctx *ctx;
    rfjit_plan *plan;
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "positive";
    a.d = 8;
    a.dv = 5;
    a.m = 16;
    a.projection = RFJIT_PROJ_USER;
    a.projection_matrix = w.data;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &plan), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    float out[100];
    rfjit_tensor tq = rfjit_tensor_contiguous(q.data, 1, 1, 20, 8);
    rfjit_tensor tk = rfjit_tensor_contiguous(k.data, 1, 1, 20, 8);
    rfjit_tensor tv = rfjit_tensor_contiguous(v.data, 1, 1, 20, 5);
    rfjit_tensor to = rfjit_tensor_contiguous(out, 1, 1, 20, 5);
    cr_assert_eq(rfjit_plan_execute(plan, &tq, &tk, &tv, &to), RFJIT_OK);
    cr_assert_eq(o.count, 100u);
    cr_assert_eq(memcmp(out, o.data, sizeof out), 0, "CLI output differs from the library's");
    /* ... and differs from the default (orthogonal, seed 0) projection's output. */
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o d.npy "
                     "--estimator positive --m 16"),
                 0, "%s", slurp("err.txt"));
    npy_array dflt;
    read_arr("d.npy", &dflt);
    cr_assert_neq(memcmp(dflt.data, o.data, sizeof out), 0);
    rfjit_plan_destroy(plan);
    rfjit_ctx_destroy(ctx);
    npy_free(&q), npy_free(&k), npy_free(&v), npy_free(&w), npy_free(&o), npy_free(&dflt);
}

/* name holds what c_name holds, stored as np.save stores a transposed array: in Fortran
 * order ('fortran_order': True, first index fastest). */
static void write_fortran(const char *name, const char *c_name)
{
    npy_array a;
    read_arr(c_name, &a);
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': True, 'shape': (");
    for (int k = 0; k < a.rank; k++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", k ? ", " : "",
                      (long long)a.shape[k]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }\n", a.rank == 1 ? "," : "");
    float *f = malloc(a.count * sizeof *f);
    cr_assert_not_null(f);
    for (size_t i = 0; i < a.count; i++) {
        size_t rest = i, at = 0, stride = 1;
        size_t idx[NPY_MAX_RANK];
        for (int k = a.rank - 1; k >= 0; k--) {
            idx[k] = rest % (size_t)a.shape[k];
            rest /= (size_t)a.shape[k];
        }
        for (int k = 0; k < a.rank; k++) {
            at += idx[k] * stride;
            stride *= (size_t)a.shape[k];
        }
        f[at] = a.data[i];
    }
    char path[256];
    path_in_dir(path, sizeof path, name);
    FILE *out = fopen(path, "wb");
    cr_assert_not_null(out);
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)n, 0};
    fwrite(pre, 1, sizeof pre, out);
    fwrite(dict, 1, (size_t)n, out);
    fwrite(f, sizeof *f, a.count, out);
    cr_assert_eq(fclose(out), 0);
    free(f);
    npy_free(&a);
}

/* Fortran-order inputs (queries, keys, values, projection; rank 2 and 4) give the bytes their
 * C-order twins give, in attention and in fit. */
Test(cli, fortran_order_inputs_read_as_their_c_twins)
{
    const char *const names[] = {"q", "k", "v", "w", "q4", "k4", "v4"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char c[32], f[32];
        snprintf(c, sizeof c, "%s.npy", names[i]);
        snprintf(f, sizeof f, "%sF.npy", names[i]);
        write_fortran(f, c);
    }
    static const char *const runs[][2] = {
        {"attention --queries q.npy --keys k.npy --values v.npy -o c.npy --estimator positive "
         "--projection w.npy",
         "attention --queries qF.npy --keys kF.npy --values vF.npy -o f.npy --estimator "
         "positive --projection wF.npy"},
        {"attention --queries q4.npy --keys k4.npy --values v4.npy -o c.npy --estimator exact",
         "attention --queries q4F.npy --keys k4F.npy --values v4F.npy -o f.npy --estimator "
         "exact"},
    };
    for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
        cr_assert_eq(run(runs[i][0]), 0, "%s", slurp("err.txt"));
        cr_assert_eq(run(runs[i][1]), 0, "%s: %s", runs[i][1], slurp("err.txt"));
        npy_array a, b;
        read_arr("c.npy", &a);
        read_arr("f.npy", &b);
        cr_assert_eq(a.count, b.count);
        cr_assert_eq(memcmp(a.data, b.data, a.count * sizeof *a.data), 0,
                     "%s: output differs from the C-order inputs'", runs[i][1]);
        npy_free(&a);
        npy_free(&b);
    }
    cr_assert_eq(run("fit --estimator oprf --queries q.npy --keys k.npy --json"), 0, "%s",
                 slurp("err.txt"));
    char *want = strdup(slurp("out.txt"));
    cr_assert_eq(run("fit --estimator oprf --queries qF.npy --keys kF.npy --json"), 0, "%s",
                 slurp("err.txt"));
    cr_expect_str_eq(slurp("out.txt"), want);
    free(want);
}

Test(cli, fit_text_and_json)
{
    cr_assert_eq(run("fit --estimator oprf --queries q.npy --keys k.npy --json"), 0, "%s",
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    const char *keys[] = {"\"estimator\":\"oprf\"", "\"objective\":", "\"variance_objective\":",
                          "\"A\":", "\"rho\":"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        cr_assert(strstr(out, keys[i]), "fit --json lacks %s: %s", keys[i], out);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    cr_assert(out[0] == '{' && strstr(out, "}\n"), "%s", out);
    const char *ests[] = {"saderf", "sderf", "aderf"};
    for (int e = 0; e < 3; e++) {
        char args[256];
        snprintf(args, sizeof args, "fit --estimator %s --queries q.npy --keys k.npy", ests[e]);
        cr_assert_eq(run(args), 0, "%s: %s", ests[e], slurp("err.txt"));
        out = slurp("out.txt");
        double obj = NAN, vobj = NAN;
        const char *p = strstr(out, "\nobjective");
        const char *pv = strstr(out, "variance_objective");
        cr_assert(p && pv, "%s", out);
        cr_assert_eq(sscanf(p, " objective %lf", &obj), 1, "%s", out);
        cr_assert_eq(sscanf(pv, "variance_objective %lf", &vobj), 1, "%s", out);
        /* ln Var <= ln E[X^2]: Var = E[X^2] - E[X]^2 for every pair, so the means obey it. */
        cr_assert(isfinite(obj) && isfinite(vobj) && vobj <= obj, "%s: %s", ests[e], out);
    }
    /* A rank-4 sample with B = H = 1 is accepted; B*H > 1 is not. */
    const int64_t s4[4] = {1, 1, 20, 8};
    write_arr("q11.npy", 4, s4, 1);
    cr_assert_eq(run("fit --estimator oprf --queries q11.npy --keys k.npy"), 0, "%s",
                 slurp("err.txt"));
}

Test(cli, check_small_problem)
{
    cr_assert_eq(run("check --d 16 --L 64 --m 64"), 0, "%s%s", slurp("out.txt"),
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    for (int e = 0; rfjit_estimator_name(e); e++)
        cr_assert(strstr(out, rfjit_estimator_name(e)), "check output lacks %s:\n%s",
                  rfjit_estimator_name(e), out);
    cr_assert_null(strstr(out, "INCONSISTENT"), "%s", out);
    cr_assert_null(strstr(out, "ERROR"), "%s", out);
    cr_assert(strstr(out, "consistent with their own variance: 11 of 11"), "%s", out);
    cr_assert_str_empty(slurp("err.txt"));
    cr_assert_eq(run("check --d 8 --dv 4 --L 32 --m 16 --causal --estimator oprf --json"), 0,
                 "%s%s", slurp("out.txt"), slurp("err.txt"));
    out = slurp("out.txt");
    cr_assert(strstr(out, "\"estimator\":\"oprf\"") && strstr(out, "\"consistent\":true") &&
                  strstr(out, "\"inconsistent\":0") && strstr(out, "\"causal\":1"),
              "%s", out);
    cr_assert_null(strstr(out, "verdict"), "%s", out);
    cr_assert_eq(run("info --json"), 0, "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "\"llvm_version\""));
    cr_assert_eq(run("info"), 0, "%s", slurp("err.txt"));
    cr_assert(strstr(slurp("out.txt"), "estimators:"));
}

/* The number after "key": in a one-object JSON line; NAN if absent. */
static double json_num(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(json, k);
    return p ? strtod(p + strlen(k), NULL) : NAN;
}

Test(cli, check_tells_consistent_from_accurate)
{
    /* q, k entries N(0, 1) at d = 16: scaled rows of norm 2, where positive features are
     * consistent with their own variance and far from exact. Consistency alone exits 0. */
    cr_assert_eq(run("check --d 16 --L 64 --m 64 --estimator positive --json"), 0, "%s",
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    cr_assert(strstr(out, "\"consistent\":true,\"accurate\":false") &&
                  strstr(out, "\"inaccurate\":1") && strstr(out, "\"tol\":0.1"),
              "%s", out);
    cr_assert_gt(json_num(out, "rel_err"), 0.1, "%s", out);
    /* At scaled norm 0.5 (entries N(0, 0.25^2)) and m = 512 the same estimator is accurate. */
    cr_assert_eq(run("check --d 16 --L 64 --m 512 --scale 0.25 --estimator positive --json"),
                 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_assert(strstr(out, "\"consistent\":true,\"accurate\":true") &&
                  strstr(out, "\"inaccurate\":0"),
              "%s", out);
    cr_assert_leq(json_num(out, "rel_err"), 0.1, "%s", out);
    /* --tol moves the accuracy line, never the consistency one; the text says both. */
    cr_assert_eq(run("check --d 16 --L 64 --m 64 --estimator positive --tol 1e6"), 0, "%s",
                 slurp("err.txt"));
    out = slurp("out.txt");
    cr_assert(strstr(out, "tol=1e+06") && strstr(out, "consistent   accurate") &&
                  strstr(out, "accurate (rel_err <= 1e+06): 1 of 1 (positive); consistent "
                              "with their own variance: 1 of 1"),
              "%s", out);
    expect_error("check --tol 0", 2, "bad value '0' for --tol");
    expect_error("check --tol -1", 2, "bad value '-1' for --tol");
}

/* (L, d) arrays q, k with entries uniform in [-s, s] and v (L, 4), written as named. */
static void write_qkv(const char *prefix, int L, int d, float s)
{
    float *x = malloc(sizeof(float) * (size_t)L * d);
    cr_assert_not_null(x);
    const int64_t shape[2] = {L, d}, vshape[2] = {L, 4};
    const char *names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; i++) {
        char path[256], name[64], err[512];
        fill(x, (size_t)L * d, 40 + i, i == 2 ? 1.0f : s);
        snprintf(name, sizeof name, "%s%s.npy", prefix, names[i]);
        path_in_dir(path, sizeof path, name);
        cr_assert_eq(npy_write(path, x, 2, i == 2 ? vshape : shape, err, sizeof err), 0, "%s",
                     err);
    }
    free(x);
}

Test(cli, attention_warns_when_the_estimate_is_noise)
{
    /* d = 32, entries uniform in [-2.5, 2.5] (variance 2.08): scaled rows of norm ~3.4, where
     * the variance model predicts an error many times the output's norm. */
    write_qkv("raw_", 128, 32, 2.5f);
    write_qkv("ok_", 128, 32, 0.2f);
#define RAW "attention --queries raw_q.npy --keys raw_k.npy --values raw_v.npy"
    cr_assert_eq(run(RAW " --estimator positive --m 64 -o raw.npy"), 0, "%s",
                 slurp("err.txt"));
    const char *err = slurp("err.txt");
    cr_assert_eq(count_lines(err), 1, "%s", err);
    cr_assert(strstr(err, "rfjit attention: warning: the variance model of positive at m = 64 "
                          "predicts a relative output error ") &&
                  strstr(err, "--no-warn"),
              "%s", err);
    npy_array o;
    read_arr("raw.npy", &o); /* a warning, not an error: the output is written */
    cr_assert_eq(o.count, 128u * 4u);
    npy_free(&o);
    /* Every estimator with a variance model warns; --no-warn, exact and eva do not. */
    const char *ests[] = {"trig", "oprf", "hybrid"};
    for (int e = 0; e < 3; e++) {
        char args[256];
        snprintf(args, sizeof args, RAW " --estimator %s --m 64 -o raw.npy", ests[e]);
        cr_assert_eq(run(args), 0, "%s", slurp("err.txt"));
        cr_assert(strstr(slurp("err.txt"), "warning: "), "%s: no warning", ests[e]);
    }
    cr_assert_eq(run(RAW " --estimator positive --m 64 --no-warn -o raw.npy"), 0);
    cr_assert_str_empty(slurp("err.txt"));
    cr_assert_eq(run(RAW " --estimator exact -o raw.npy"), 0);
    cr_assert_str_empty(slurp("err.txt"));
    /* Scaled rows of norm ~0.26: the estimate is useful, nothing is said. */
    cr_assert_eq(run("attention --queries ok_q.npy --keys ok_k.npy --values ok_v.npy "
                     "--estimator positive --m 64 -o ok.npy"),
                 0);
    cr_assert_str_empty(slurp("err.txt"));
#undef RAW
}

static void expect_error(const char *args, int code, const char *needle)
{
    const int rc = run(args);
    const char *err = slurp("err.txt");
    cr_assert_eq(rc, code, "'%s' exited %d, expected %d; stderr: %s", args, rc, code, err);
    cr_assert_eq(count_lines(err), 1, "'%s': stderr has %d lines:\n%s", args, count_lines(err),
                 err);
    cr_assert(strncmp(err, "rfjit", 5) == 0 && strstr(err, needle),
              "'%s': stderr '%s' lacks '%s'", args, err, needle);
}

Test(cli, bad_files_exit_1_with_one_line)
{
    expect_error("attention --queries missing.npy --keys k.npy --values v.npy -o o.npy", 1,
                 "rfjit attention: missing.npy: cannot open");
    expect_error("attention --queries junk.npy --keys k.npy --values v.npy -o o.npy", 1,
                 "junk.npy: not a .npy file");
    expect_error("attention --queries q.npy --keys short.npy --values v.npy -o o.npy", 1,
                 "short.npy: truncated data");
    expect_error("attention --queries r3.npy --keys k.npy --values v.npy -o o.npy", 1,
                 "r3.npy: shape (3, 9, 8): need rank 2");
    expect_error("attention --queries q.npy --keys k7.npy --values v.npy -o o.npy", 1,
                 "last dimension");
    expect_error("attention --queries q4.npy --keys k.npy --values v.npy -o o.npy", 1,
                 "same rank");
    expect_error("attention --queries q.npy --keys k.npy --values v9.npy -o o.npy", 1,
                 "rfjit attention: ");
    expect_error(QKV " --estimator nope", 1, "unknown estimator 'nope'");
    expect_error(QKV " --estimator oprf --causal", 1, "calib");
    expect_error(QKV " --projection k7.npy", 1, "k7.npy: projection must have shape (m, d)");
    expect_error("attention --queries q.npy --keys k.npy --values v.npy -o /nonexistent/o.npy",
                 1, "/nonexistent/o.npy: cannot open for writing");
    expect_error(QKV " --key-lengths q.npy", 1,
                 "q.npy: unsupported dtype '<f4' (need '<i4' or "
                 "'<i8')");
    expect_error(QKV " --key-mask q.npy", 1, "need '|u1' or '|b1'");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-lengths kl3.npy",
                 1, "--key-lengths needs shape (2,)");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-lengths kl3.npy --key-mask m7.npy",
                 1, "--key-lengths needs shape");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-mask m7.npy",
                 1, "--key-mask needs shape (2, 9)");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-lengths klbig.npy",
                 1, "rfjit attention: ");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-lengths klneg.npy",
                 1, "klneg.npy: --key-lengths[1] = -1 is outside");
    expect_error("attention --queries q4.npy --keys k4.npy --values v4.npy -o o.npy "
                 "--key-lengths kl39.npy --query-lengths kl2.npy --causal",
                 1, "lq <= lk");
    expect_error("attention --queries hq4.npy --keys k4.npy --values v4.npy -o o.npy", 1,
                 "one dtype");
    expect_error("attention --queries q4.npy --keys k3h.npy --values v3h.npy -o o.npy", 1,
                 "rfjit attention: ");
    expect_error("fit --estimator positive --queries q.npy --keys k.npy", 1, "positive");
    expect_error("fit --estimator oprf --queries q4.npy --keys k4.npy", 1, "B = H = 1");
    expect_error("fit --estimator oprf --queries q.npy --keys k7.npy", 1, "same d");
}

Test(cli, bad_command_lines_exit_2_with_one_line)
{
    expect_error(QKV " --features 12x", 2, "bad value '12x' for --features");
    expect_error(QKV " --features 0", 2, "bad value '0'");
    expect_error(QKV " --features 99999999999", 2, "bad value");
    expect_error(QKV " --seed -1", 2, "bad value '-1' for --seed");
    expect_error(QKV " --window -2", 2, "--window");
    expect_error(QKV " --hybrid-base cosine", 2, "--hybrid-base");
    expect_error(QKV " --projection w.npy --iid", 2, "cannot be combined");
    expect_error(QKV " --projection w.npy --features 8", 2, "disagrees");
    expect_error(QKV " --frobnicate", 2, "unknown option '--frobnicate'");
    expect_error(QKV " --scale 0", 2, "bad value '0' for --scale");
    expect_error(QKV " --scale inf", 2, "--scale");
    expect_error(QKV " --dtype f64", 2, "bad value 'f64' for --dtype");
    expect_error("attention --queries q.npy", 2, "required");
    expect_error("attention --queries", 2, "--queries needs a value");
    expect_error("fit --queries q.npy --keys k.npy", 2, "required");
    expect_error("check --m -3", 2, "bad value '-3' for --m");
    expect_error("check --scale 0", 2, "bad value '0' for --scale");
    expect_error("check --scale nan", 2, "--scale");
    expect_error("check --L 1e3", 2, "--L");
    expect_error("check --estimator nope", 2, "unknown estimator 'nope'");
    expect_error("info --verbose", 2, "unknown option");
    expect_error("frobnicate", 2, "unknown verb 'frobnicate'");
    expect_error("", 2, "no verb");
    const char *verbs[] = {"info", "attention", "fit", "check"};
    for (int i = 0; i < 4; i++) {
        char args[64], want[64];
        snprintf(args, sizeof args, "%s --help", verbs[i]);
        snprintf(want, sizeof want, "usage: rfjit %s", verbs[i]);
        cr_assert_eq(run(args), 0, "%s", args);
        cr_assert(strstr(slurp("out.txt"), want), "%s", args);
        cr_assert_str_empty(slurp("err.txt"));
    }
    cr_assert_eq(run("--help"), 0);
    cr_assert(strstr(slurp("out.txt"), "verbs:"));
}

/* tune prints the table and the plan, saves wisdom, answers again from it; --json is one
 * object; wisdom show/export/import/forget; attention --plan-from-wisdom runs that plan.
 * Wisdom lives in the test's directory (RFJIT_WISDOM), never in the user's. */
Test(cli, tune_wisdom_and_plan_from_wisdom, .timeout = 300)
{
    char w[320];
    snprintf(w, sizeof w, "RFJIT_WISDOM=%s/wis/wisdom RFJIT_CACHE_DIR= ", dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s%s tune --d 8 --dv 5 --L 20 --budget 0.05", w,
             RFJIT_CLI_PATH);
    /* run() prefixes the binary: build the line by hand for the environment */
    char line[4096];
    snprintf(line, sizeof line, "cd %s && %s >out.txt 2>err.txt", dir, cmd);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    const char *out = slurp("out.txt");
    cr_expect(strstr(out, "<- chosen"), "%s", out);
    cr_expect(strstr(out, "plan: estimator="), "%s", out);
    cr_expect(strstr(out, "synthetic calibration set"), "%s", out);
    cr_expect(strstr(out, " transform ") && strstr(out, "transforms chosen per estimator"), "%s",
              out);
    cr_expect_str_empty(slurp("err.txt"), "no progress bar when stderr is not a terminal");
    /* without transforms: another wisdom key, every row and the plan without one */
    snprintf(line, sizeof line, "cd %s && %s --no-transforms --json >out.txt 2>err.txt", dir, cmd);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_expect(strstr(out, "\"from_wisdom\": false"), "%s", out);
    cr_expect(!strstr(out, "\"transform\": 1") && !strstr(out, "\"transform\": 3") &&
                  !strstr(out, "\"transform\": 5") && !strstr(out, "\"transform\": 7"),
              "%s", out);
    snprintf(line, sizeof line, "cd %s && %s --json >out.txt 2>err.txt", dir, cmd);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_expect(out[0] == '{' && count_lines(out) == 1, "%s", out);
    cr_expect(strstr(out, "\"from_wisdom\": true"), "second tune not from wisdom: %s", out);
    for (int i = 0; i < 6; i++) {
        static const char *const keys[] = {"\"estimator\"", "\"features\"",
                                           "\"tiling\"",    "\"predicted_error\"",
                                           "\"measured_error\"", "\"time_ms\""};
        cr_expect(strstr(out, keys[i]), "JSON lacks %s: %s", keys[i], out);
    }
    snprintf(line, sizeof line,
             "cd %s && %s%s attention --queries q.npy --keys k.npy --values v.npy -o ow.npy "
             "--plan-from-wisdom 0.05 >out.txt 2>err.txt",
             dir, w, RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    snprintf(line, sizeof line,
             "cd %s && %s%s attention --queries q.npy --keys k.npy --values v.npy -o ow.npy "
             "--plan-from-wisdom 0.001 >out.txt 2>err.txt",
             dir, w, RFJIT_CLI_PATH);
    cr_expect_neq(system(line), 0);
    cr_expect(strstr(slurp("err.txt"), "no wisdom"), "%s", slurp("err.txt"));
    snprintf(line, sizeof line, "cd %s && %s%s wisdom show >out.txt 2>err.txt", dir, w,
             RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_expect(strstr(out, "rfjit-wisdom 1") && strstr(out, "tune.output.bidir.d8.dv5.L32"), "%s",
              out);
    snprintf(line, sizeof line, "cd %s && %s%s wisdom show --json >out.txt 2>err.txt", dir, w,
             RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_expect(strstr(out, "{\"file\": \"") && strstr(out, "\"header\": \"rfjit-wisdom 1\"") &&
                  strstr(out, "\"records\": [{\"key\": \"tune.output.bidir.d8.dv5.L32") &&
                  strstr(out, "\"patience\": ") && strstr(out, "\"value\": \"est="),
              "%s", out);
    snprintf(line, sizeof line,
             "cd %s && %s%s wisdom export ex.txt && %s%s wisdom forget && %s%s wisdom import "
             "ex.txt && %s%s wisdom show >out.txt 2>err.txt",
             dir, w, RFJIT_CLI_PATH, w, RFJIT_CLI_PATH, w, RFJIT_CLI_PATH, w, RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    cr_expect(strstr(slurp("out.txt"), "tune.output.bidir.d8.dv5.L32"), "%s", slurp("out.txt"));
    /* a foreign file is refused on import with the reason, and ignored (warning) on load */
    char path[256];
    path_in_dir(path, sizeof path, "foreign.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("rfjit-wisdom 1\nsignature rfjit=0.0.0 est=0 cpu=pdp11 llvm=1 features=\nk patience=1 "
          "est=exact\n",
          f);
    fclose(f);
    snprintf(line, sizeof line, "cd %s && %s%s wisdom import foreign.txt >out.txt 2>err.txt", dir,
             w, RFJIT_CLI_PATH);
    cr_expect_eq(system(line) >> 8, 1);
    cr_expect(strstr(slurp("err.txt"), "another machine"), "%s", slurp("err.txt"));
    snprintf(line, sizeof line,
             "cd %s && RFJIT_WISDOM=%s %s wisdom show >out.txt 2>err.txt", dir, path,
             RFJIT_CLI_PATH);
    cr_expect_eq(system(line), 0);
    cr_expect(strstr(slurp("err.txt"), "warning") && strstr(slurp("err.txt"), "ignored"), "%s",
              slurp("err.txt"));
}

/* blocksparse's rows show their block size and exact block count where eva's window and
 * chunks go (B=64, k=1 and k=2 at 4 key blocks; k=4 would be exact attention), the JSON has
 * them, and the plan line has them when it is chosen. */
Test(cli, tune_blocksparse_rows_show_their_blocks, .timeout = 300)
{
    char line[1024];
    snprintf(line, sizeof line,
             "cd %s && RFJIT_WISDOM= RFJIT_CACHE_DIR= %s tune --d 16 --L 256 --budget 0.5 "
             "--estimators blocksparse --no-save >out.txt 2>err.txt",
             dir, RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    const char *out = slurp("out.txt");
    cr_expect(strstr(out, "   B=64    k=1 ") && strstr(out, "   B=64    k=2 "), "%s", out);
    cr_expect(!strstr(out, "k=4") && !strstr(out, "k=8"), "%s", out);
    if (strstr(out, "plan: estimator=blocksparse"))
        cr_expect(strstr(out, "sparse_block=64 sparse_exact="), "%s", out);
    snprintf(line, sizeof line,
             "cd %s && RFJIT_WISDOM= RFJIT_CACHE_DIR= %s tune --d 16 --L 256 --budget 0.5 "
             "--estimators blocksparse --no-save --json >out.txt 2>err.txt",
             dir, RFJIT_CLI_PATH);
    cr_assert_eq(system(line), 0, "%s", slurp("err.txt"));
    out = slurp("out.txt");
    cr_expect(strstr(out, "\"sparse_block\": 64, \"sparse_exact\": 2"), "%s", out);
}

Test(cli, tune_usage_errors)
{
    expect_error("tune --d 8 --L 20", 2, "required");
    expect_error("tune --d 8 --L 20 --budget 0", 2, "budget");
    expect_error("tune --d 8 --L 20 --budget 0.1 --budget-kind both", 2, "--budget-kind");
    expect_error("tune --d 8 --L 20 --budget 0.1 --patience lazy", 2, "--patience");
    expect_error("tune --d 8 --L 20 --budget 0.1 --profile real", 2, "--profile");
    expect_error("tune --d 8 --L 20 --budget 0.1 --calib-queries q.npy", 2, "together");
    expect_error("wisdom", 2, "no action");
    expect_error("wisdom export", 2, "needs a FILE");
    expect_error("wisdom import /nonexistent/w", 1, "does not exist");
}
