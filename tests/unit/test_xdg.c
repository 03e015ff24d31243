/* SPDX-License-Identifier: MIT */
/*
 * This file checks where rfjit puts its cache and wisdom when the context is not told
 * (runtime/xdg.h): an absolute XDG_CACHE_HOME / XDG_DATA_HOME, else a directory under an
 * existing absolute HOME; a relative XDG variable is ignored (the XDG spec), and a HOME that
 * does not exist is never created: the context then runs without a disk cache or a wisdom
 * file, says why in a verbose note, and still plans and runs.
 *
 * Each test runs in its own process (Criterion's default), so setenv and chdir stay there;
 * everything is made under a mkdtemp directory, removed afterwards.
 */
#include <criterion/criterion.h>

#include "rfjit.h"
#include "runtime/xdg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit_xdg_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    cr_assert_eq(chdir(dir), 0);
    unsetenv("XDG_CACHE_HOME");
    unsetenv("XDG_DATA_HOME");
    unsetenv("RFJIT_CACHE_DIR");
    unsetenv("RFJIT_WISDOM");
    unsetenv("RFJIT_DUMP");
}

static void teardown(void)
{
    char cmd[128];
    cr_assert_eq(chdir("/"), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(xdg, .init = setup, .fini = teardown, .timeout = 60);

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

Test(xdg, path_rules)
{
    char buf[512], why[512], want[512];
    cr_assert_eq(setenv("HOME", dir, 1), 0);
    cr_assert_eq(setenv("XDG_CACHE_HOME", "/abs/cache", 1), 0);
    cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why,
                             sizeof why), 0);
    cr_expect_str_eq(buf, "/abs/cache/rfjit");
    /* relative: ignored, HOME is used */
    cr_assert_eq(setenv("XDG_CACHE_HOME", "rel/cache", 1), 0);
    snprintf(want, sizeof want, "%s/.cache/rfjit", dir);
    cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why,
                             sizeof why), 0);
    cr_expect_str_eq(buf, want);
    /* HOME missing, relative or unset: none, and why names both variables */
    static const char *const homes[] = {"/nonexistent/rfjit_home", "relative/home", NULL};
    static const char *const says[] = {"HOME=/nonexistent/rfjit_home is not an existing",
                                       "HOME=relative/home is not an absolute path",
                                       "HOME is not set"};
    for (int i = 0; i < 3; i++) {
        if (homes[i])
            cr_assert_eq(setenv("HOME", homes[i], 1), 0);
        else
            cr_assert_eq(unsetenv("HOME"), 0);
        cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why,
                                 sizeof why), RJ_XDG_NONE, "HOME %s", homes[i]);
        cr_expect_str_eq(buf, "");
        cr_expect(strstr(why, says[i]), "%s", why);
        cr_expect(strstr(why, "XDG_CACHE_HOME=rel/cache is relative"), "%s", why);
    }
    cr_assert_eq(unsetenv("XDG_CACHE_HOME"), 0);
    cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why,
                             sizeof why), RJ_XDG_NONE);
    cr_expect(strstr(why, "XDG_CACHE_HOME is not set"), "%s", why);
    /* a HOME that is a regular file is no directory either */
    cr_assert_eq(setenv("HOME", "/etc/passwd", 1), 0);
    cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why,
                             sizeof why), RJ_XDG_NONE);
    cr_assert_eq(setenv("HOME", dir, 1), 0);
    cr_expect_eq(rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, 8, why, sizeof why),
                 RJ_XDG_TOO_LONG);
    cr_expect_str_eq(buf, "");
}

typedef struct notes {
    char all[4096];
} notes;

static void on_log(void *user, int level, const char *msg)
{
    (void)level;
    notes *n = user;
    const size_t at = strlen(n->all);
    snprintf(n->all + at, sizeof n->all - at, "%s\n", msg);
}

/* A context with the defaults (no cache_dir, no wisdom_path), verbose into n; a JIT plan is
 * made and run so that the disk cache would be written if there were one. */
static void run_default_context(notes *n)
{
    memset(n, 0, sizeof *n);
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.verbose = 1;
    cd.log = on_log;
    cd.log_user = n;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK, "%s", n->all);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 8;
    a.m = 16;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
    float x[4 * 8] = {0}, o[4 * 8];
    rfjit_tensor t = rfjit_tensor_contiguous(x, 1, 1, 4, 8);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, 4, 8);
    cr_assert_eq(rfjit_plan_execute(p, &t, &t, &t, &to), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    cr_assert_eq(rfjit_wisdom_export(ctx, NULL) == RFJIT_OK, rfjit_wisdom_path(ctx)[0] != 0,
                 "export without a wisdom file: %s", rfjit_ctx_last_error(ctx));
    rfjit_plan_destroy(p);
    rfjit_ctx_destroy(ctx);
}

/* The reported case: HOME=/nonexistent made rfjit create that directory. */
Test(xdg, missing_home_is_not_created)
{
    char home[128];
    snprintf(home, sizeof home, "%s/nonexistent", dir);
    cr_assert_eq(setenv("HOME", home, 1), 0);
    notes n;
    run_default_context(&n);
    cr_expect(!exists(home), "%s was created", home);
    cr_expect(strstr(n.all, "no disk cache: XDG_CACHE_HOME is not set, and HOME="), "%s", n.all);
    cr_expect(strstr(n.all, "no directory for the wisdom file: XDG_DATA_HOME is not set"),
              "%s", n.all);
    cr_expect(strstr(n.all, home), "%s", n.all);
}

/* The reported case: a relative XDG_CACHE_HOME was honoured (a cache in the working
 * directory); it is ignored and HOME's is used. */
Test(xdg, relative_xdg_is_ignored_for_home)
{
    char home[128], cache[200], data[200];
    snprintf(home, sizeof home, "%s/home", dir);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(setenv("HOME", home, 1), 0);
    cr_assert_eq(setenv("XDG_CACHE_HOME", "relcache", 1), 0);
    cr_assert_eq(setenv("XDG_DATA_HOME", "reldata", 1), 0);
    notes n;
    run_default_context(&n);
    cr_expect(!exists("relcache") && !exists("reldata"), "a relative XDG directory was used");
    snprintf(cache, sizeof cache, "%s/.cache/rfjit", home);
    snprintf(data, sizeof data, "%s/.local/share/rfjit/wisdom", home);
    cr_expect(exists(cache), "no %s: %s", cache, n.all);
    cr_expect(exists(data), "no %s: %s", data, n.all);
}

/* Absolute XDG variables win, and their directories may be created (the spec says so). */
Test(xdg, absolute_xdg_is_used)
{
    char xc[128], xd[128], path[256];
    snprintf(xc, sizeof xc, "%s/xc", dir);
    snprintf(xd, sizeof xd, "%s/xd", dir);
    cr_assert_eq(setenv("HOME", "/nonexistent/rfjit_home", 1), 0);
    cr_assert_eq(setenv("XDG_CACHE_HOME", xc, 1), 0);
    cr_assert_eq(setenv("XDG_DATA_HOME", xd, 1), 0);
    notes n;
    run_default_context(&n);
    snprintf(path, sizeof path, "%s/rfjit", xc);
    cr_expect(exists(path), "no %s: %s", path, n.all);
    snprintf(path, sizeof path, "%s/rfjit/wisdom", xd);
    cr_expect(exists(path), "no %s: %s", path, n.all);
    cr_expect(!exists("/nonexistent/rfjit_home"));
}

/* The CLI as the reporter ran it: HOME=/nonexistent (made unique here), no XDG variables.
 * info and a tune that saves its answer create nothing; the tune still answers, and its
 * warning says why nothing was saved. */
Test(xdg, cli_with_missing_home_creates_nothing, .timeout = 120)
{
    char home[128], cmd[1024], line[512] = "";
    snprintf(home, sizeof home, "%s/nonexistent", dir);
    static const char *const verbs[] = {"info", "tune --d 8 --L 64 --budget 0.05 --patience "
                                                "estimate"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "env -u XDG_CACHE_HOME -u XDG_DATA_HOME -u RFJIT_CACHE_DIR -u RFJIT_WISDOM "
                 "-u RFJIT_DUMP HOME=%s %s %s >out.txt 2>err.txt",
                 home, RFJIT_CLI_PATH, verbs[i]);
        const int st = system(cmd);
        FILE *f = fopen("err.txt", "r");
        cr_assert_not_null(f);
        const size_t n = fread(line, 1, sizeof line - 1, f);
        line[n] = 0;
        fclose(f);
        cr_expect_eq(st, 0, "%s: %s", verbs[i], line);
        cr_expect(!exists(home), "%s created %s", verbs[i], home);
    }
    cr_expect(strstr(line, "wisdom not saved") && strstr(line, "is not an existing directory"),
              "%s", line);
}
