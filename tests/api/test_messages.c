/* SPDX-License-Identifier: MIT */
/*
 * This file checks that messages are the truth and cannot be forged: user strings with
 * control characters (paths, names, environment variables) come out escaped, in the library's
 * last error, its log and the CLI's stderr alike, one line per message; last errors are per
 * context (threads failing at once on one: the concurrency suite); context creation names
 * the argument it refuses; RFJIT_VERBOSE reaches the CLI's stderr (a value that is not a
 * level is named in a warning); a warning says "warning:" once.
 */
#include <criterion/criterion.h>

#include "npy.h"
#include "rfjit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Whether s holds a byte a terminal would obey: C0 controls, DEL or a C1 control's lead. */
static int has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F || (p[0] == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F))
            return 1;
    return 0;
}

Test(messages, escape_rules)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain/path.npy", "plain/path.npy"},
        {"a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"},
        {"\x1b[31mred", "\\x1b[31mred"},
        {"del\x7f", "del\\x7f"},
        {"csi\xc2\x9b" "2J", "csi\\xc2\\x9b2J"},           /* C1 control U+009B */
        {"caf\xc3\xa9 \xe6\x97\xa5", "caf\xc3\xa9 \xe6\x97\xa5"}, /* printable UTF-8 kept */
        {"nbsp\xc2\xa0", "nbsp\xc2\xa0"},
        {"bad\xff\xc3", "bad\\xff\\xc3"},                  /* invalid and truncated UTF-8 */
        {"over\xc0\xaf", "over\\xc0\\xaf"},                /* overlong '/' */
        {"surr\xed\xa0\x80", "surr\\xed\\xa0\\x80"},       /* UTF-16 surrogate */
        {"back\\x0a", "back\\x0a"},                        /* already escaped: unchanged */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[128], twice[128];
        const size_t n = rfjit_escape(out, sizeof out, cases[i].in);
        cr_assert_str_eq(out, cases[i].out, "case %zu", i);
        cr_assert_eq(n, strlen(cases[i].out));
        rfjit_escape(twice, sizeof twice, out);
        cr_assert_str_eq(twice, out, "escaping twice changed case %zu", i);
    }
    /* truncation keeps whole escapes and characters */
    char small[7];
    cr_assert_eq(rfjit_escape(small, sizeof small, "ab\ncd"), 6);
    cr_assert_str_eq(small, "ab\\x0a");
    cr_assert_eq(rfjit_escape(small, 6, "ab\ncd"), 2);
    cr_assert_str_eq(small, "ab");
    cr_assert_eq(rfjit_escape(small, sizeof small, "abcd\xc3\xa9"), 6);
    cr_assert_str_eq(small, "abcd\xc3\xa9");
    cr_assert_eq(rfjit_escape(small, 6, "abcd\xc3\xa9"), 4);
    cr_assert_eq(rfjit_escape(NULL, 4, "x"), 0);
    cr_assert_eq(rfjit_escape(small, sizeof small, NULL), 0);
    cr_assert_str_eq(small, "");
}

static rfjit_ctx *quiet_ctx(void)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK, "%s", rfjit_ctx_last_error(NULL));
    return ctx;
}

Test(messages, library_escapes_user_strings)
{
    rfjit_ctx *ctx = quiet_ctx();
    const char *path = "/nonexistent-rfjit/line\nrfjit: forged\x1b[31m";
    cr_assert_eq(rfjit_wisdom_import(ctx, path), RFJIT_E_IO);
    const char *m = rfjit_ctx_last_error(ctx);
    cr_assert(!has_control(m), "raw control character in '%s'", m);
    cr_assert(strstr(m, "line\\x0arfjit: forged\\x1b[31m"), "path not escaped: '%s'", m);

    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 8;
    a.m = 4;
    a.estimator = "bogus\r\x9b\xc2\x9b";
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_NO_ESTIMATOR);
    m = rfjit_ctx_last_error(ctx);
    cr_assert(strstr(m, "'bogus\\x0d\\x9b\\xc2\\x9b'"), "name not escaped: '%s'", m);
    rfjit_ctx_destroy(ctx);
}

static char logged[1024];
static void keep_log(void *user, int level, const char *msg)
{
    (void)user;
    if (level == 0)
        snprintf(logged, sizeof logged, "%s", msg);
}

Test(messages, context_creation_names_the_argument)
{
    static const struct {
        int32_t threads, verbose;
        int64_t cache_max;
        const char *isa, *needle;
    } cases[] = {
        {-1, 0, 0, NULL, "threads = -1 is outside [0, 1024]"},
        {5000, 0, 0, NULL, "threads = 5000 is outside [0, 1024]"},
        {0, -3, 0, NULL, "verbose = -3 is negative"},
        {0, 0, -7, NULL, "cache_max_bytes = -7 is negative"},
        {0, 0, 0, "avx9\n\x1b", "unknown ISA 'avx9\\x0a\\x1b' (avx512, avx2, sse4.2, generic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
        cd.cache_dir = "";
        cd.wisdom_path = "";
        cd.threads = cases[i].threads;
        cd.verbose = cases[i].verbose;
        cd.cache_max_bytes = cases[i].cache_max;
        cd.isa = cases[i].isa;
        cd.log = keep_log;
        logged[0] = 0;
        rfjit_ctx *ctx = (rfjit_ctx *)&cd;
        cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_E_INVALID_ARG, "case %zu", i);
        cr_assert_null(ctx);
        const char *m = rfjit_ctx_last_error(NULL);
        cr_assert(strstr(m, cases[i].needle), "case %zu: '%s' lacks '%s'", i, m,
                  cases[i].needle);
        cr_assert_str_eq(logged, m, "the log got '%s'", logged);
    }
}

Test(messages, last_error_is_per_context_and_survives_destroyed_ones)
{
    rfjit_ctx *a = quiet_ctx(), *b = quiet_ctx();
    rfjit_attn_desc d = RFJIT_ATTN_DESC_INIT;
    d.m = 4;
    d.d = 0;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(a, &d, &p), RFJIT_E_INVALID_ARG);
    d.d = 5000;
    cr_assert_eq(rfjit_plan_create(b, &d, &p), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(rfjit_ctx_last_error(a), "d = 0 is outside"), "%s", rfjit_ctx_last_error(a));
    cr_assert(strstr(rfjit_ctx_last_error(b), "d = 5000 is outside"), "%s",
              rfjit_ctx_last_error(b));
    /* a new context (perhaps at a's address) starts without a message */
    rfjit_ctx_destroy(a);
    a = quiet_ctx();
    cr_assert_str_eq(rfjit_ctx_last_error(a), "");
    rfjit_ctx_destroy(a);
    rfjit_ctx_destroy(b);
}

/* ------------------------------------------------------------------------------------- */
/* The CLI, run without a shell so that arguments hold any byte.                          */

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit-msg-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Run the CLI in dir with argv and extra "K=V" environment entries, with no cache, no wisdom
 * and none of the switches set otherwise; stderr into err (NUL-terminated), stdout dropped.
 * Returns the exit code. */
static int run_cli(char *const argv[], const char *const env[], char *err, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    const pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int null = open("/dev/null", O_WRONLY);
        if (fd < 0 || null < 0 || chdir(dir) != 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
            _exit(126);
        setenv("RFJIT_CACHE_DIR", "", 1);
        setenv("RFJIT_WISDOM", "", 1);
        unsetenv("RFJIT_VERBOSE");
        unsetenv("RFJIT_ISA");
        for (size_t i = 0; env && env[i]; i++) {
            char kv[256];
            snprintf(kv, sizeof kv, "%s", env[i]);
            char *eq = strchr(kv, '=');
            *eq = 0;
            setenv(kv, eq + 1, 1);
        }
        execv(RFJIT_CLI_PATH, argv);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    const size_t got = fread(err, 1, n - 1, f);
    fclose(f);
    err[got] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lines(const char *s)
{
    int k = 0;
    for (; *s; s++)
        k += *s == '\n';
    return k;
}

static void write_inputs(void)
{
    float x[16 * 8];
    for (int i = 0; i < 16 * 8; i++)
        x[i] = 0.1f * (float)((i * 7) % 11) - 0.5f;
    const int64_t shape[2] = {16, 8};
    for (const char *const *n = (const char *const[]){"q.npy", "k.npy", "v.npy", NULL}; *n; n++) {
        char path[128], err[256];
        snprintf(path, sizeof path, "%s/%s", dir, *n);
        cr_assert_eq(npy_write(path, x, 2, shape, err, sizeof err), 0, "%s", err);
    }
}

Test(messages, cli_forged_newline_and_escape_stay_one_line, .init = setup, .fini = teardown)
{
    write_inputs();
    char err[4096];
    char *bad[] = {"rfjit", "attention", "--queries", "no\nrfjit attention: forged\x1b[31m.npy",
                   "--keys", "k.npy", "--values", "v.npy", "-o", "o.npy", NULL};
    cr_assert_eq(run_cli(bad, NULL, err, sizeof err), 1, "stderr: %s", err);
    cr_assert_eq(lines(err), 1, "stderr has %d lines: %s", lines(err), err);
    *strchr(err, '\n') = 0;
    cr_assert(!has_control(err), "raw control in '%s'", err);
    cr_assert(strstr(err, "no\\x0arfjit attention: forged\\x1b[31m.npy"), "%s", err);
    cr_assert_eq(access("o.npy", F_OK), -1);

    char *opt[] = {"rfjit", "info", "--js\ron", NULL};
    cr_assert_eq(run_cli(opt, NULL, err, sizeof err), 2);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert(strstr(err, "rfjit info: unknown option '--js\\x0don'"), "%s", err);

    /* an environment variable quoted by the library, through the CLI */
    char *info[] = {"rfjit", "info", NULL};
    const char *env[] = {"RFJIT_ISA=avx2\nrfjit: forged", NULL};
    cr_assert_eq(run_cli(info, env, err, sizeof err), 1);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert(strstr(err, "rfjit info: cannot create a context: unknown ISA "
                          "'avx2\\x0arfjit: forged' (avx512, avx2, sse4.2, generic or native)"),
              "%s", err);
}

Test(messages, cli_verbose_prints_the_library_notes, .init = setup, .fini = teardown)
{
    write_inputs();
    char err[8192];
    char *args[] = {"rfjit", "attention", "--queries", "q.npy", "--keys", "k.npy", "--values",
                    "v.npy", "-o", "o.npy", NULL};
    cr_assert_eq(run_cli(args, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(err, "", "quiet by default, got: %s", err);
    const char *env[] = {"RFJIT_VERBOSE=1", NULL};
    cr_assert_eq(run_cli(args, env, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "rfjit: kernel rfjit_k_positive_") && strstr(err, " compiled ("),
              "RFJIT_VERBOSE=1 printed: '%s'", err);
    /* a value that is not a level is ignored, and the warning says so */
    const char *junk[] = {"RFJIT_VERBOSE=yes\x1b[2J", NULL};
    cr_assert_eq(run_cli(args, junk, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(err, "rfjit: warning: RFJIT_VERBOSE='yes\\x1b[2J' ignored: not a level in "
                          "[0, 9]\n");
}

Test(messages, cli_warning_says_warning_once, .init = setup, .fini = teardown)
{
    char path[128];
    snprintf(path, sizeof path, "%s/wisdom", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not a wisdom file\n", f);
    fclose(f);
    char env_w[160], err[4096];
    snprintf(env_w, sizeof env_w, "RFJIT_WISDOM=%s", path);
    const char *env[] = {env_w, NULL};
    char *args[] = {"rfjit", "info", NULL};
    cr_assert_eq(run_cli(args, env, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(err, "rfjit: warning: wisdom file "), "no warning: '%s'", err);
    cr_assert_null(strstr(err, "warning: warning"), "doubled prefix: '%s'", err);
}
