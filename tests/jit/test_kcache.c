/* SPDX-License-Identifier: MIT */
/*
 * This file checks the kernel caches through the public API and the verbose log: a second
 * process loads a kernel from the disk cache without compiling; a corrupted or truncated
 * entry is detected, dropped and recompiled (and the rewritten entry is good again); two
 * processes filling one cache at the same time leave only valid entries; within a context
 * a kernel is compiled once; an RFJIT_DUMP directory that cannot be written warns once and
 * fails nothing.
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct counts {
    int compiled, loaded, dropped, warned;
} counts;

static void on_log(void *user, int level, const char *msg)
{
    counts *c = user;
    if (strstr(msg, " compiled ("))
        c->compiled++;
    if (strstr(msg, "loaded from the disk cache"))
        c->loaded++;
    if (strstr(msg, "dropped"))
        c->dropped++;
    if (level == 1 && strstr(msg, "disk cache not used"))
        c->warned++;
}

/* Create a context on dir, build plans for m in ms[0..n), return the log counts. */
static counts run_plans(const char *dir, const int *ms, int n)
{
    counts c = {0, 0, 0, 0};
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = dir;
    cd.verbose = 1;
    cd.log = on_log;
    cd.log_user = &c;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    for (int i = 0; i < n; i++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = ms[i];
        a.backend = RFJIT_BACKEND_JIT;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
    return c;
}

static char *temp_dir(void)
{
    char *t = strdup("/tmp/rfjit_kcache_XXXXXX");
    cr_assert_not_null(mkdtemp(t));
    return t;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' || strlen(e->d_name) > 2) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* The one cache entry in dir (asserting there is exactly one and no temporary file). */
static void only_entry(const char *dir, char *path, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".o")) {
            cr_assert(strncmp(e->d_name, ".tmp", 4) != 0, "temporary file left: %s", e->d_name);
            snprintf(path, n, "%s/%s", dir, e->d_name);
            found++;
        }
    closedir(d);
    cr_assert_eq(found, 1);
}

/* Run in a child process, return its counts through a pipe. */
static counts in_child(const char *dir, const int *ms, int n)
{
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        counts c = run_plans(dir, ms, n);
        ssize_t w = write(fd[1], &c, sizeof c);
        _exit(w == (ssize_t)sizeof c ? 0 : 1);
    }
    counts c = {-1, -1, -1, -1};
    cr_assert_eq(read(fd[0], &c, sizeof c), (ssize_t)sizeof c);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd[0]);
    close(fd[1]);
    return c;
}

Test(kcache, second_process_loads_from_disk)
{
    char *dir = temp_dir();
    const int m[1] = {16};
    counts a = in_child(dir, m, 1);
    cr_assert_eq(a.compiled, 1);
    cr_assert_eq(a.loaded, 0);
    counts b = in_child(dir, m, 1);
    cr_assert_eq(b.compiled, 0, "the second process compiled instead of loading");
    cr_assert_eq(b.loaded, 1);
    struct stat sb;
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    remove_dir(dir);
    free(dir);
}

static void damage(const char *path, int truncate_it)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    if (truncate_it) {
        cr_assert_eq(ftruncate(fileno(f), 40), 0);
    } else {
        fseek(f, -100, SEEK_END);
        int ch = fgetc(f);
        fseek(f, -100, SEEK_END);
        fputc(ch ^ 0x5a, f);
    }
    fclose(f);
}

Test(kcache, bad_entries_are_recompiled)
{
    char *dir = temp_dir();
    const int m[1] = {16};
    char path[512];
    counts a = run_plans(dir, m, 1);
    cr_assert_eq(a.compiled, 1);
    for (int kind = 0; kind < 2; kind++) {
        only_entry(dir, path, sizeof path);
        damage(path, kind);
        counts b = run_plans(dir, m, 1);
        cr_assert_eq(b.dropped, 1, "damage kind %d not detected", kind);
        cr_assert_eq(b.compiled, 1);
        counts c = run_plans(dir, m, 1);
        cr_assert_eq(c.loaded, 1, "the rewritten entry did not load (kind %d)", kind);
        cr_assert_eq(c.compiled + c.dropped, 0);
    }
    remove_dir(dir);
    free(dir);
}

Test(kcache, concurrent_processes_leave_a_valid_cache, .timeout = 120)
{
    char *dir = temp_dir();
    const int ms[4] = {16, 32, 48, 64};
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            counts c = run_plans(dir, ms, 4);
            _exit(c.compiled + c.loaded == 4 && c.dropped == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer %d failed", i);
    }
    counts c = run_plans(dir, ms, 4);
    cr_assert_eq(c.loaded, 4);
    cr_assert_eq(c.compiled + c.dropped, 0);
    remove_dir(dir);
    free(dir);
}

Test(kcache, compiled_once_per_context)
{
    counts c = {0, 0, 0, 0};
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.verbose = 1;
    cd.log = on_log;
    cd.log_user = &c;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    for (int i = 0; i < 3; i++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = 16;
        a.seed = (uint64_t)i; /* a new seed is new data, not a new kernel */
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        rfjit_plan_destroy(p);
    }
    cr_assert_eq(c.compiled, 1);
    rfjit_ctx_destroy(ctx);
}

typedef struct racer {
    rfjit_ctx *ctx;
    int m;
    rfjit_status st;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 32;
    a.m = r->m;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    r->st = rfjit_plan_create(r->ctx, &a, &p);
    rfjit_plan_destroy(p);
    return NULL;
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_log_locked(void *user, int level, const char *msg)
{
    pthread_mutex_lock(&log_mu);
    on_log(user, level, msg);
    pthread_mutex_unlock(&log_mu);
}

/* 8 threads asking for 2 kernels at once on one context: each is compiled exactly once. */
Test(kcache, concurrent_requests_compile_once, .timeout = 120)
{
    counts c = {0, 0, 0, 0};
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.verbose = 1;
    cd.log = on_log_locked;
    cd.log_user = &c;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    pthread_t t[8];
    racer r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (racer){ctx, i % 2 ? 64 : 32, RFJIT_E_INTERNAL};
        cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(r[i].st, RFJIT_OK, "thread %d: %s", i, rfjit_ctx_last_error(ctx));
    }
    cr_assert_eq(c.compiled, 2, "%d compiles for 2 kernels", c.compiled);
    rfjit_ctx_destroy(ctx);
}

/* A cache directory writable by others, or a symlink to one, is not used: a warning, the
 * kernels still compile (memory only), and nothing is written there. */
Test(kcache, unsafe_directory_is_refused_with_a_warning)
{
    char *dir = temp_dir();
    cr_assert_eq(chmod(dir, 0777), 0);
    char link[600];
    snprintf(link, sizeof link, "%s.link", dir);
    cr_assert_eq(symlink(dir, link), 0);
    const char *dirs[2] = {dir, link};
    for (int k = 0; k < 2; k++) {
        counts c = {0, 0, 0, 0};
        rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
        cd.cache_dir = dirs[k];
        cd.verbose = 1;
        cd.log = on_log;
        cd.log_user = &c;
        rfjit_ctx *ctx = NULL;
        cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = 16;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
        rfjit_plan_destroy(p);
        rfjit_ctx_destroy(ctx);
        cr_assert_eq(c.compiled, 1);
        cr_assert_eq(c.warned, 1, "%s: no warning for an unsafe cache directory", dirs[k]);
        DIR *d = opendir(dir);
        struct dirent *e;
        int files = 0;
        while ((e = readdir(d)))
            files += e->d_name[0] != '.';
        closedir(d);
        cr_assert_eq(files, 0, "%s: an unsafe cache directory was written to", dirs[k]);
    }
    unlink(link);
    remove_dir(dir);
    free(dir);
}

/* Warnings about RFJIT_DUMP, and the last one. */
typedef struct dump_log {
    int warned, compiled;
    char last[640];
} dump_log;

static void on_dump_log(void *user, int level, const char *msg)
{
    dump_log *l = user;
    l->compiled += strstr(msg, " compiled (") != NULL;
    if (level <= 1 && strstr(msg, "RFJIT_DUMP")) {
        l->warned++;
        snprintf(l->last, sizeof l->last, "%s", msg);
    }
}

/* Plans for m = 16, 32 and 48 (three compiles) with RFJIT_DUMP=dump; the log's counts. */
static dump_log plans_with_dump(const char *dump)
{
    dump_log l = {0, 0, ""};
    cr_assert_eq(setenv("RFJIT_DUMP", dump, 1), 0);
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.verbose = 1;
    cd.log = on_dump_log;
    cd.log_user = &l;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    for (int m = 16; m <= 48; m += 16) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = m;
        a.backend = RFJIT_BACKEND_JIT;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "RFJIT_DUMP=%s: %s", dump,
                     rfjit_ctx_last_error(ctx));
        float x[4 * 16] = {0}, o[4 * 16];
        rfjit_tensor t = rfjit_tensor_contiguous(x, 1, 1, 4, 16);
        rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, 4, 16);
        cr_assert_eq(rfjit_plan_execute(p, &t, &t, &t, &to), RFJIT_OK, "%s",
                     rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
    unsetenv("RFJIT_DUMP");
    return l;
}

/* RFJIT_DUMP is a debugging aid: a directory that is missing or cannot be written to (a
 * regular file in its path: root writes anywhere else) warns once per context, naming it, and
 * every plan is still made; a usable one gets the dumps. */
Test(kcache, unusable_dump_directory_warns_once_and_plans_work)
{
    char *dir = temp_dir();
    char missing[600], file[600], under_file[700];
    snprintf(missing, sizeof missing, "%s/missing/sub", dir);
    snprintf(file, sizeof file, "%s/file", dir);
    snprintf(under_file, sizeof under_file, "%s/dumps", file);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fclose(f);
    const char *bad[] = {missing, file, under_file};
    for (int i = 0; i < 3; i++) {
        const dump_log l = plans_with_dump(bad[i]);
        cr_expect_eq(l.compiled, 3, "%s: %d compiles", bad[i], l.compiled);
        cr_expect_eq(l.warned, 1, "%s: %d warnings, last: %s", bad[i], l.warned, l.last);
        cr_expect(strstr(l.last, bad[i]), "the warning does not name %s: %s", bad[i], l.last);
    }
    struct stat sb;
    cr_expect_neq(stat(missing, &sb), 0, "the missing dump directory was created");
    char good[600];
    snprintf(good, sizeof good, "%s/good", dir);
    cr_assert_eq(mkdir(good, 0700), 0);
    const dump_log l = plans_with_dump(good);
    cr_expect_eq(l.warned, 0, "%s", l.last);
    int spec = 0;
    DIR *d = opendir(good);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        spec += strstr(e->d_name, ".spec.txt") != NULL;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", good, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    closedir(d);
    cr_expect_eq(spec, 3, "%d kernels dumped", spec);
    rmdir(good);
    unlink(file);
    remove_dir(dir);
    free(dir);
}

/* Total bytes and count of the entries in dir. */
static long long entry_bytes(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long long total = 0;
    *count = 0;
    char path[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strstr(e->d_name, ".o")) {
            struct stat sb;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (stat(path, &sb) == 0) {
                total += sb.st_size;
                ++*count;
            }
        }
    if (d)
        closedir(d);
    return total;
}

/* rfjit_ctx_desc.cache_max_bytes reaches the disk cache: with room for about two kernels,
 * four compiles leave at most the bound on disk, the latest kernel among them; a negative
 * bound is refused. */
Test(kcache, cache_max_bytes_bounds_the_directory, .timeout = 120)
{
    char *dir = temp_dir();
    static const int ms[1] = {16};
    run_plans(dir, ms, 1);
    int n = 0;
    const long long one = entry_bytes(dir, &n);
    cr_assert_eq(n, 1);
    remove_dir(dir);
    cr_assert_eq(mkdir(dir, 0700), 0);

    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = dir;
    cd.cache_max_bytes = one * 5 / 2;
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    for (int m = 16; m <= 64; m += 16) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = m;
        a.backend = RFJIT_BACKEND_JIT;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(ctx);
    const long long total = entry_bytes(dir, &n);
    cr_expect(n >= 1 && total <= cd.cache_max_bytes, "%d entries, %lld bytes over a %lld bound",
              n, total, (long long)cd.cache_max_bytes);
    /* the last compile (m = 64) is the one a reopened context finds */
    static const int last[1] = {64};
    counts c = run_plans(dir, last, 1);
    cr_expect_eq(c.loaded, 1, "the newest kernel was evicted");
    cd.cache_max_bytes = -1;
    cr_expect_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_E_INVALID_ARG);
    remove_dir(dir);
    free(dir);
}
