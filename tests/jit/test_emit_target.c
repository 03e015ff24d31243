/* SPDX-License-Identifier: MIT */
/*
 * This file checks that rfjit_emit validates the CPU and feature names it is given: an
 * unknown CPU, an unknown feature or one without its sign is RFJIT_E_TARGET naming the value
 * (LLVM itself only prints a warning on stderr, several times, and compiles for a default);
 * the CLI says so in one line with nothing from LLVM; and the name lists rfjit checks against
 * (runtime/target_names.c) are exactly what the installed LLVM's llc lists.
 */
#include <criterion/criterion.h>

#include "runtime/jit.h"
#include "rfjit.h"
#include "runtime/target_names.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static rfjit_ctx *ctx;

static void setup(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
}

static void teardown(void)
{
    rfjit_ctx_destroy(ctx);
}

TestSuite(emit_target, .init = setup, .fini = teardown);

static rfjit_status emit(const char *triple, const char *cpu, const char *features)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "positive";
    a.d = 8;
    a.m = 16;
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    t.triple = triple;
    t.cpu = cpu;
    t.features = features;
    t.kind = RFJIT_EMIT_ASSEMBLY;
    void *buf = (void *)&a;
    size_t n = 1;
    const rfjit_status s = rfjit_emit(ctx, &a, &t, &buf, &n, NULL, 0);
    if (s != RFJIT_OK)
        cr_assert(buf == NULL && n == 0, "a failed emit left output behind");
    rfjit_free(buf);
    return s;
}

Test(emit_target, unknown_names_are_refused)
{
    static const char *const aarch = "aarch64-unknown-linux-gnu";
    static const struct {
        const char *triple, *cpu, *features, *needle;
    } bad[] = {
        {NULL, "notacpu", NULL, "unknown CPU 'notacpu' for "},
        {NULL, "help", NULL, "unknown CPU 'help'"},
        {NULL, NULL, "+bogus", "unknown feature 'bogus' for "},
        {NULL, NULL, "+avx2,-bogus2,+fma", "unknown feature 'bogus2'"},
        {NULL, NULL, "avx2", "feature 'avx2' needs a sign"},
        {NULL, NULL, "+avx2\n+fma", "unknown feature 'avx2\\x0a+fma'"},
        {"aarch64-unknown-linux-gnu", "skylake", NULL, "unknown CPU 'skylake' for aarch64"},
        {"aarch64-unknown-linux-gnu", NULL, "+avx2", "unknown feature 'avx2' for aarch64"},
        {"bogus-x-y", NULL, NULL, "unknown target 'bogus-x-y'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const rfjit_status s = emit(bad[i].triple, bad[i].cpu, bad[i].features);
        const char *m = rfjit_ctx_last_error(ctx);
        cr_expect_eq(s, RFJIT_E_TARGET, "case %zu: %s (%s)", i, rfjit_status_string(s), m);
        cr_expect(strstr(m, bad[i].needle), "case %zu: '%s' lacks '%s'", i, m, bad[i].needle);
    }
    /* known names, empty items and the empty CPU are what LLVM accepts */
    cr_expect_eq(emit(NULL, "x86-64-v3", "+avx2,,-avx512f,"), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_expect_eq(emit(aarch, "neoverse-n1", "+neon,+sve"), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_expect_eq(emit(aarch, "", ""), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
}

Test(emit_target, unknown_kind_says_which_are_known)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 8;
    a.m = 16;
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    t.kind = 9;
    void *buf = NULL;
    size_t n = 0;
    cr_assert_eq(rfjit_emit(ctx, &a, &t, &buf, &n, NULL, 0), RFJIT_E_INVALID_ARG);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "kind 9 is unknown (0 object, 1 assembly, 2 IR)"),
              "%s", rfjit_ctx_last_error(ctx));
    cr_expect_null(buf);
}

/* Run the CLI's emit with one extra option pair; stderr into err. Exit code. */
static int run_emit(const char *opt, const char *val, char *err, size_t n)
{
    char dir[] = "/tmp/rfjit-emit-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char errp[64], outp[64];
    snprintf(errp, sizeof errp, "%s/err.txt", dir);
    snprintf(outp, sizeof outp, "%s/k.s", dir);
    const pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        const int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
            _exit(126);
        setenv("RFJIT_CACHE_DIR", "", 1);
        setenv("RFJIT_WISDOM", "", 1);
        execl(RFJIT_CLI_PATH, "rfjit", "emit", "--estimator", "positive", "--d", "8", "--m",
              "16", "--asm", "-o", outp, opt, val, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    FILE *f = fopen(errp, "r");
    cr_assert_not_null(f);
    err[fread(err, 1, n - 1, f)] = 0;
    fclose(f);
    cr_expect_eq(access(outp, F_OK), -1, "a refused emit wrote %s", outp);
    unlink(errp);
    unlink(outp);
    rmdir(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(emit_target, cli_says_it_once_and_llvm_says_nothing)
{
    static const char *const cases[][3] = {
        {"--cpu", "notacpu", "rfjit emit: unknown CPU 'notacpu' for "},
        {"--features", "+bogus", "rfjit emit: unknown feature 'bogus' for "},
    };
    for (size_t i = 0; i < 2; i++) {
        char err[4096];
        const int rc = run_emit(cases[i][0], cases[i][1], err, sizeof err);
        cr_expect_eq(rc, 1, "%s %s: exit %d, stderr: %s", cases[i][0], cases[i][1], rc, err);
        cr_expect(strstr(err, cases[i][2]) == err, "stderr: '%s'", err);
        cr_expect_eq(strchr(err, '\n') - err + 1, (long)strlen(err), "more than one line: %s",
                     err);
        cr_expect_null(strstr(err, "not a recognized"), "LLVM printed: %s", err);
    }
}

/* The names section `want` (1 CPUs, 2 features) of llc -mcpu=help for triple, each checked
 * with rj_jit_check_target; returns how many there were. */
static size_t check_llc_names(const char *triple, int want)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -mtriple=%s -mcpu=help </dev/null 2>&1", RFJIT_LLC_PATH,
             triple);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "cannot run %s", RFJIT_LLC_PATH);
    char line[512];
    int section = 0;
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "Available CPUs", 14))
            section = 1;
        else if (!strncmp(line, "Available features", 18))
            section = 2;
        else if (section == want && line[0] == ' ' && line[1] == ' ' && line[2] != ' ') {
            char name[128], arg[130];
            cr_assert_eq(sscanf(line, " %127s", name), 1);
            snprintf(arg, sizeof arg, "+%s", name);
            rj_diag dg = {{0}};
            const rfjit_status s = want == 1 ? rj_jit_check_target(triple, name, NULL, &dg)
                                             : rj_jit_check_target(triple, NULL, arg, &dg);
            cr_expect_eq(s, RFJIT_OK, "llc lists '%s' for %s: %s", name, triple, dg.msg);
            n++;
        }
    }
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    return n;
}

static size_t count(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

Test(emit_target, name_lists_are_what_llc_lists)
{
    static const char *const x86 = "x86_64-unknown-linux-gnu", *const arm =
                                                                  "aarch64-unknown-linux-gnu";
    const size_t counts[4] = {check_llc_names(x86, 1), check_llc_names(x86, 2),
                              check_llc_names(arm, 1), check_llc_names(arm, 2)};
    const size_t ours[4] = {count(rj_x86_cpus), count(rj_x86_features), count(rj_aarch64_cpus),
                            count(rj_aarch64_features)};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(counts[i], ours[i],
                     "list %d: llc lists %zu names, runtime/target_names.c %zu: run "
                     "scripts/gen_target_names.sh", i, counts[i], ours[i]);
}
