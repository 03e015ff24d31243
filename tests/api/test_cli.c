/* SPDX-License-Identifier: MIT */
/*
 * This file runs the built rfjit CLI as a user would: an attention round trip against the
 * exact estimator, fit --json keys, a small check, and each bad input class, which must exit
 * non-zero with exactly one line on stderr.
 */
#include <criterion/criterion.h>

#include "npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/rfjit_cli_XXXXXX";

/* Run a shell command; return its exit code; stdout and stderr go to files in dir. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s >out.txt 2>err.txt", dir, RFJIT_CLI_PATH, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *name)
{
    static char buf[65536];
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

static int lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void write_arr(const char *name, int L, int d, unsigned seed)
{
    float *x = malloc(sizeof(float) * L * d);
    srand(seed);
    for (int i = 0; i < L * d; i++)
        x[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int64_t shape[2] = {L, d};
    cr_assert_eq(npy_write(path, x, 2, shape, err, sizeof err), 0, "%s", err);
    free(x);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    write_arr("q.npy", 20, 8, 1);
    write_arr("k.npy", 20, 8, 2);
    write_arr("v.npy", 20, 5, 3);
    write_arr("k7.npy", 20, 7, 4);
    char junk[256];
    snprintf(junk, sizeof junk, "%s/junk.npy", dir);
    FILE *f = fopen(junk, "w");
    fputs("this is not numpy", f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

Test(cli, attention_exact_round_trip)
{
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o o.npy "
                     "--estimator exact"),
                 0, "%s", slurp("err.txt"));
    cr_assert_eq(run("attention --queries q.npy --keys k.npy --values v.npy -o p.npy "
                     "--estimator positive --features 4096 --seed 3"),
                 0, "%s", slurp("err.txt"));
    char p1[256], p2[256], err[256];
    snprintf(p1, sizeof p1, "%s/o.npy", dir);
    snprintf(p2, sizeof p2, "%s/q.npy", dir);
    npy_array o, q, k, v;
    cr_assert_eq(npy_read(p1, &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(npy_read(p2, &q, err, sizeof err), 0, "%s", err);
    snprintf(p2, sizeof p2, "%s/k.npy", dir);
    cr_assert_eq(npy_read(p2, &k, err, sizeof err), 0);
    snprintf(p2, sizeof p2, "%s/v.npy", dir);
    cr_assert_eq(npy_read(p2, &v, err, sizeof err), 0);
    cr_assert_eq(o.rank, 2);
    cr_assert_eq(o.shape[0], 20);
    cr_assert_eq(o.shape[1], 5);
    for (int i = 0; i < 20; i++) { /* softmax(q k^T / sqrt(8)) v in double */
        double w[20], Z = 0, mx = -1e300;
        for (int j = 0; j < 20; j++) {
            double s = 0;
            for (int c = 0; c < 8; c++)
                s += (double)q.data[i * 8 + c] * k.data[j * 8 + c];
            w[j] = s / sqrt(8.0);
            mx = fmax(mx, w[j]);
        }
        for (int j = 0; j < 20; j++)
            Z += (w[j] = exp(w[j] - mx));
        for (int c = 0; c < 5; c++) {
            double ref = 0;
            for (int j = 0; j < 20; j++)
                ref += w[j] * v.data[j * 5 + c] / Z;
            cr_assert_float_eq(o.data[i * 5 + c], ref, 1e-5, "(%d, %d)", i, c);
        }
    }
    npy_free(&o), npy_free(&q), npy_free(&k), npy_free(&v);
}

Test(cli, fit_json_and_check)
{
    cr_assert_eq(run("fit --estimator oprf --queries q.npy --keys k.npy --json"), 0, "%s",
                 slurp("err.txt"));
    const char *out = slurp("out.txt");
    cr_assert(strstr(out, "\"estimator\":\"oprf\"") && strstr(out, "\"objective\":") &&
                  strstr(out, "\"variance_objective\":") && strstr(out, "\"A\":") &&
                  strstr(out, "\"rho\":"),
              "%s", out);
    cr_assert_eq(run("check --d 16 --L 64 --m 64 --seeds 4"), 0, "%s%s", slurp("out.txt"),
                 slurp("err.txt"));
    out = slurp("out.txt");
    for (int e = 0; e < 3; e++) {
        const char *name[] = {"exact", "positive", "eva"};
        cr_assert(strstr(out, name[e]), "check output lacks %s:\n%s", name[e], out);
    }
    cr_assert_eq(run("info --json"), 0);
    cr_assert(strstr(slurp("out.txt"), "\"llvm_version\""));
}

static void expect_one_line_error(const char *args, const char *needle)
{
    int rc = run(args);
    const char *err = slurp("err.txt");
    cr_assert_neq(rc, 0, "'%s' succeeded", args);
    cr_assert_eq(lines(err), 1, "'%s': stderr has %d lines:\n%s", args, lines(err), err);
    cr_assert(strstr(err, needle), "'%s': stderr '%s' lacks '%s'", args, err, needle);
}

Test(cli, bad_inputs_one_line)
{
    expect_one_line_error("attention --queries missing.npy --keys k.npy --values v.npy -o o.npy",
                          "missing.npy");
    expect_one_line_error("attention --queries junk.npy --keys k.npy --values v.npy -o o.npy",
                          "junk.npy: not a .npy file");
    expect_one_line_error("attention --queries q.npy --keys k7.npy --values v.npy -o o.npy",
                          "last dimension");
    expect_one_line_error(
        "attention --queries q.npy --keys k.npy --values v.npy -o o.npy --estimator nope",
        "unknown estimator 'nope'");
    expect_one_line_error(
        "attention --queries q.npy --keys k.npy --values v.npy -o o.npy --features 12x",
        "bad value '12x'");
    expect_one_line_error("attention --queries q.npy", "required");
    expect_one_line_error("check --m -3", "bad value");
    expect_one_line_error("check --estimator nope", "unknown estimator");
    expect_one_line_error("fit --estimator positive --queries q.npy --keys k.npy", "positive");
    expect_one_line_error("frobnicate", "unknown verb");
    cr_assert_eq(run("attention --help"), 0);
    cr_assert(strstr(slurp("out.txt"), "usage: rfjit attention"));
}
