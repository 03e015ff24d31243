/* SPDX-License-Identifier: MIT */
/*
 * This file feeds the built rfjit CLI (and the wisdom API) the paths that used to destroy or
 * hang: a character device, a FIFO, a directory, a full file system, a symlink to stdout, a
 * held wisdom lock. Each must be refused (or bounded) with one line naming the path and what
 * it is, and leave what the user had exactly as it was: device nodes stay device nodes, an
 * existing output keeps its bytes, no temporary file is left behind. Commands run under
 * timeout(1), so a hang fails the test (exit 124) instead of stalling the suite.
 */
#define _GNU_SOURCE /* mknod, mount */
#include <criterion/criterion.h>

#include "bench.h"
#include "cli_testutil.h"
#include "npy.h"
#include "rfjit.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static int mounted;

/* Run "cd dir && [env] rfjit args" under a 60 s timeout, stdout and stderr to out.txt and
 * err.txt there; the exit code (124: it hung). */
/* Every run is kept off the user's kernel cache and wisdom (env may set others after). */
static int run_env(const char *env, const char *args)
{
    char prefix[1280];
    snprintf(prefix, sizeof prefix, "export RFJIT_CACHE_DIR= RFJIT_WISDOM=; %s timeout 60", env);
    return tu_cli_run(dir, prefix, args);
}

static int run(const char *args)
{
    return run_env("RFJIT_CACHE_DIR=", args);
}

static const char *slurp(const char *name)
{
    return tu_slurp(dir, name);
}

static void at(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", dir, name);
}

/* Exit code, exactly one stderr line starting "rfjit", holding every needle. */
static void expect_refused(const char *env, const char *args, int code, const char *needle1,
                           const char *needle2)
{
    const int rc = run_env(env, args);
    const char *err = slurp("err.txt");
    cr_assert_neq(rc, 124, "'%s' hung", args);
    cr_assert_eq(rc, code, "'%s' exited %d, expected %d; stderr: %s", args, rc, code, err);
    int lines = 0;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 1, "'%s': stderr has %d lines:\n%s", args, lines, err);
    cr_assert(!strncmp(err, "rfjit", 5) && strstr(err, needle1) &&
                  (!needle2 || strstr(err, needle2)),
              "'%s': stderr '%s' lacks '%s' / '%s'", args, err, needle1,
              needle2 ? needle2 : "");
}

static void write_arr(const char *name, int64_t rows, int64_t cols, unsigned seed)
{
    const size_t n = (size_t)(rows * cols);
    float *x = malloc(sizeof(float) * n);
    cr_assert_not_null(x);
    uint32_t st = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = 0.3f * ((float)(st >> 8) / 8388608.0f - 1.0f);
    }
    char path[256], err[512];
    at(path, sizeof path, name);
    const int64_t shape[2] = {rows, cols};
    cr_assert_eq(npy_write(path, x, 2, shape, err, sizeof err), 0, "%s", err);
    free(x);
}

static void write_text(const char *name, const char *text)
{
    char path[256];
    at(path, sizeof path, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static mode_t type_of(const char *name)
{
    char path[256];
    at(path, sizeof path, name);
    struct stat sb;
    cr_assert_eq(lstat(path, &sb), 0, "%s is gone: %s", path, strerror(errno));
    return sb.st_mode & S_IFMT;
}

/* Entries of dir (or dir/sub) whose name contains ".tmp-": leftovers of a failed write. */
static int leftovers(const char *sub)
{
    char path[256];
    at(path, sizeof path, sub ? sub : ".");
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    for (const struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit_out_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    mounted = 0;
    write_arr("q.npy", 16, 8, 1);
    write_arr("k.npy", 16, 8, 2);
    write_arr("v.npy", 16, 4, 3);
}

static void teardown(void)
{
    char cmd[256];
    if (mounted) {
        snprintf(cmd, sizeof cmd, "%s/small", dir);
        umount2(cmd, MNT_DETACH);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(outputs, .init = setup, .fini = teardown, .timeout = 240);

#define QKV "attention --queries q.npy --keys k.npy --values v.npy"

/* A character device as -o, emit -o, wisdom export and bench --plot: refused by type, and
 * still the same device afterwards (as root, -o /dev/full used to delete /dev/full). */
Test(outputs, character_device_is_refused_and_kept)
{
    char path[256];
    at(path, sizeof path, "full");
    if (mknod(path, S_IFCHR | 0666, makedev(1, 7)) != 0)
        cr_skip_test("mknod needs root here (%s): the device case is not run", strerror(errno));
    cr_assert_eq(symlink("full", (at(path, sizeof path, "tofull"), path)), 0);
    expect_refused("", QKV " -o full", 1, "full: is a character device", "left as it is");
    expect_refused("", QKV " -o tofull", 1, "tofull: is a symbolic link to a character device",
                   NULL);
    expect_refused("", "emit --estimator positive --d 8 --m 16 --obj -o full", 1,
                   "full: is a character device", NULL);
    expect_refused("", "wisdom export full --file w", 1, "full: is a character device", NULL);
    at(path, sizeof path, "full.svg");
    cr_assert_eq(mknod(path, S_IFCHR | 0666, makedev(1, 7)), 0);
    /* bench treats a plot path it cannot use as a bad command line, as for a bad extension */
    expect_refused("", "bench --plot full.svg", 2, "full.svg: is a character device", NULL);
    const char *names[] = {"full", "full.svg"};
    for (int i = 0; i < 2; i++) {
        at(path, sizeof path, names[i]);
        struct stat sb;
        cr_assert_eq(lstat(path, &sb), 0, "%s was removed", names[i]);
        cr_expect(S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(1, 7), "%s was replaced",
                  names[i]);
    }
    cr_expect_eq(type_of("tofull"), S_IFLNK);
    cr_expect_eq(leftovers(NULL), 0);
}

/* A FIFO as an output and as every kind of input: refused at once, never opened for a
 * blocking read or write (each of these hung forever), and still a FIFO. */
Test(outputs, fifo_is_refused_without_hanging)
{
    char path[256];
    at(path, sizeof path, "fifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    expect_refused("", QKV " -o fifo", 1, "fifo: is a FIFO, not a regular file", NULL);
    expect_refused("", "attention --queries fifo --keys k.npy --values v.npy -o o.npy", 1,
                   "fifo: is a FIFO, not a regular file", NULL);
    expect_refused("", QKV " -o o.npy --projection fifo", 1, "fifo: is a FIFO", NULL);
    expect_refused("", "fit --estimator oprf --queries q.npy --keys fifo", 1,
                   "fifo: is a FIFO", NULL);
    expect_refused("", "tune --d 8 --L 16 --budget 0.5 --calib-queries q.npy --calib-keys fifo "
                       "--calib-values v.npy",
                   1, "fifo: is a FIFO", NULL);
    expect_refused("", "emit --estimator positive --d 8 --m 16 --ir -o fifo", 1,
                   "fifo: is a FIFO", NULL);
    expect_refused("", "wisdom export fifo --file w", 1, "fifo: is a FIFO", NULL);
    expect_refused("", "wisdom import fifo --file w", 1, "fifo", "FIFO, not a regular file");
    cr_expect_eq(type_of("fifo"), S_IFIFO);
    cr_expect_eq(access((at(path, sizeof path, "o.npy"), path), F_OK), -1, "o.npy written");
}

/* A directory given as an input is named as one (it used to report "out of memory for
 * 9223372036854775807 bytes"); as an output it is refused and kept. */
Test(outputs, directory_is_named_as_a_directory)
{
    char path[256];
    at(path, sizeof path, "sub");
    cr_assert_eq(mkdir(path, 0700), 0);
    expect_refused("", "attention --queries sub --keys k.npy --values v.npy -o o.npy", 1,
                   "sub: is a directory, not a regular file", NULL);
    cr_expect_null(strstr(slurp("err.txt"), "memory"), "%s", slurp("err.txt"));
    expect_refused("", QKV " -o sub", 1, "sub: is a directory", NULL);
    expect_refused("", QKV " -o sub/", 1, "sub/: is a directory", NULL);
    expect_refused("", QKV " -o nosuch/", 1, "nosuch/: names a directory", NULL);
    cr_expect_eq(type_of("sub"), S_IFDIR);
}

/* 16 x 4 floats fit; 4000 x 8 floats (128 KB) do not fit in 64 KiB or under a 16 KiB file
 * size limit. The earlier output must keep its bytes and no temporary file may remain. */
static void expect_kept_after_failed_write(const char *env, const char *out, const char *sub,
                                           const char *reason)
{
    write_arr("bq.npy", 4000, 8, 4);
    write_arr("bv.npy", 4000, 8, 5);
    char args[512];
    snprintf(args, sizeof args, QKV " -o %s --estimator exact", out);
    cr_assert_eq(run_env(env, args), 0, "%s", slurp("err.txt"));
    char path[256], err[512];
    at(path, sizeof path, out);
    npy_array before, after;
    cr_assert_eq(npy_read(path, &before, err, sizeof err), 0, "%s", err);
    snprintf(args, sizeof args,
             "attention --queries bq.npy --keys bq.npy --values bv.npy -o %s --estimator exact",
             out);
    expect_refused(env, args, 1, "cannot write it", reason);
    cr_expect(strstr(slurp("err.txt"), "existing file is left unchanged"), "%s",
              slurp("err.txt"));
    cr_assert_eq(npy_read(path, &after, err, sizeof err), 0, "the old output is damaged: %s",
                 err);
    cr_assert_eq(after.count, before.count);
    cr_expect_eq(memcmp(after.data, before.data, sizeof(float) * before.count), 0);
    cr_expect_eq(leftovers(sub), 0, "a temporary file was left");
    npy_free(&before);
    npy_free(&after);
}

Test(outputs, full_file_system_keeps_the_old_output)
{
    char path[256];
    at(path, sizeof path, "small");
    cr_assert_eq(mkdir(path, 0700), 0);
    if (mount("tmpfs", path, "tmpfs", 0, "size=64k") != 0)
        cr_skip_test("cannot mount a 64 KiB tmpfs (%s, needs root): the file size limit case "
                     "covers the failed write",
                     strerror(errno));
    mounted = 1;
    expect_kept_after_failed_write("", "small/o.npy", "small", "No space left on device");
}

/* The same failure without root: a file size limit gives EFBIG (SIGXFSZ ignored, as a
 * shell's trap '' passes on to the command it runs). */
Test(outputs, file_size_limit_keeps_the_old_output)
{
    /* no kernel cache: the limit is for the output, and a cached kernel may be larger */
    expect_kept_after_failed_write("trap '' XFSZ; ulimit -f 16; export RFJIT_CACHE_DIR=;", "o.npy",
                                   NULL, "File too large");
}

/* A symlink to /proc/self/fd/1 is refused whether stdout is a pipe or a file (it used to be
 * replaced by a regular file); a symlink to a regular file stays a link and its file gets the
 * output. */
Test(outputs, symlinks_to_stdout_are_refused_links_to_files_written_through)
{
    char path[256];
    cr_assert_eq(symlink("/proc/self/fd/1", (at(path, sizeof path, "so"), path)), 0);
    expect_refused("", "wisdom export so --file w", 1, "so is a symbolic link: refused",
                   NULL);
    expect_refused("", QKV " -o so", 1, "so: is a symbolic link", "standard output");
    cr_expect_str_empty(slurp("out.txt"), "stdout's file was replaced");
    /* stdout a pipe: the link resolves to a FIFO */
    const char *piped[2][2] = {{"wisdom export so --file w", "so is a symbolic link: refused"},
                               {QKV " -o so", "so: is a symbolic link to a FIFO"}};
    for (int i = 0; i < 2; i++) {
        char cmd[1024], bash[1200];
        snprintf(
            cmd, sizeof cmd,
            "cd %s && RFJIT_CACHE_DIR= RFJIT_WISDOM= timeout 60 %s %s 2>err.txt | cat >out.txt; "
            "exit ${PIPESTATUS[0]}",
            dir, RFJIT_CLI_PATH, piped[i][0]);
        snprintf(bash, sizeof bash, "bash -c '%s'", cmd);
        const int st = system(bash);
        cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s: exit %d", piped[i][0],
                  WEXITSTATUS(st));
        cr_expect(strstr(slurp("err.txt"), piped[i][1]), "%s", slurp("err.txt"));
        cr_expect_str_empty(slurp("out.txt"));
    }
    cr_expect_eq(type_of("so"), S_IFLNK);
    /* a link to a regular file: the file is replaced, the link stays, the mode is kept */
    write_text("target.npy", "old");
    at(path, sizeof path, "target.npy");
    cr_assert_eq(chmod(path, 0640), 0);
    cr_assert_eq(symlink("target.npy", (at(path, sizeof path, "link.npy"), path)), 0);
    cr_assert_eq(run(QKV " -o link.npy --estimator exact"), 0, "%s", slurp("err.txt"));
    cr_expect_eq(type_of("link.npy"), S_IFLNK);
    npy_array o;
    char err[512];
    at(path, sizeof path, "target.npy");
    cr_assert_eq(npy_read(path, &o, err, sizeof err), 0, "%s", err);
    cr_expect(o.rank == 2 && o.shape[0] == 16 && o.shape[1] == 4);
    npy_free(&o);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 07777, 0640, "mode %o", (unsigned)(sb.st_mode & 07777));
    cr_expect_eq(leftovers(NULL), 0);
}

/* Holds path's lock (an flock of this process's own open file description, which the CLI's
 * open of the same file conflicts with); returns the descriptor to close. */
static int hold_lock(const char *name)
{
    char path[256];
    at(path, sizeof path, name);
    const int fd = open(path, O_RDWR | O_CREAT, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    return fd;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *file_bytes(const char *name, size_t *n)
{
    char path[256];
    at(path, sizeof path, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[2][1 << 16];
    static int which;
    char *b = buf[which ^= 1];
    *n = fread(b, 1, sizeof buf[0], f);
    fclose(f);
    return b;
}

/* A held wisdom lock used to block tune, tune --patience wisdom-only and wisdom import
 * forever. Now: tune answers and warns that wisdom was not saved, naming the lock; import
 * fails naming it; both within the documented 5 s wait (plus the command's own time); the
 * wisdom file keeps its bytes. */
Test(outputs, held_wisdom_lock_is_waited_for_boundedly)
{
    char env[512];
    snprintf(env, sizeof env, "RFJIT_CACHE_DIR= RFJIT_WISDOM=%s/w", dir);
    const char *tune = "tune --d 8 --L 16 --budget 0.5 --patience estimate";
    cr_assert_eq(run_env(env, tune), 0, "%s", slurp("err.txt"));
    cr_assert_eq(run_env(env, "wisdom export w2"), 0, "%s", slurp("err.txt"));
    size_t n0, n1;
    char *before = file_bytes("w", &n0);
    const int fd = hold_lock("w.lock");
    double t0 = now();
    cr_assert_eq(run_env(env, tune), 0, "%s", slurp("err.txt"));
    double dt = now() - t0;
    cr_expect(dt >= 4.5 && dt < 30, "tune took %.1f s with the lock held", dt);
    const char *err = slurp("err.txt");
    cr_expect(strstr(err, "warning: wisdom not saved") && strstr(err, "/w.lock is held by "
                                                                      "another process"),
              "%s", err);
    cr_expect(strstr(slurp("out.txt"), "plan: estimator="), "tune gave no answer");
    t0 = now();
    cr_assert_eq(run_env(env, "tune --d 8 --L 16 --budget 0.5 --patience wisdom-only"), 0,
                 "%s", slurp("err.txt"));
    dt = now() - t0;
    cr_expect(dt < 30, "wisdom-only took %.1f s", dt);
    cr_expect(strstr(slurp("out.txt"), "answered from wisdom"), "%s", slurp("out.txt"));
    cr_expect(strstr(slurp("err.txt"), "w.lock is held"), "%s", slurp("err.txt"));
    t0 = now();
    expect_refused(env, "wisdom import w2", 1, "w.lock is held by another process",
                   "waited 5 s");
    dt = now() - t0;
    cr_expect(dt >= 4.5 && dt < 30, "import took %.1f s", dt);
    char *after = file_bytes("w", &n1);
    cr_expect(n0 == n1 && !memcmp(before, after, n0), "the wisdom file changed");
    close(fd);
    cr_assert_eq(run_env(env, "wisdom import w2"), 0, "%s", slurp("err.txt"));
}

/* The library's own answers for the same paths: a context whose wisdom file is a FIFO is
 * created without blocking; export and forget refuse it with RFJIT_E_IO and keep it. */
Test(outputs, wisdom_api_refuses_a_fifo_and_keeps_it)
{
    char path[256];
    at(path, sizeof path, "wfifo");
    cr_assert_eq(mkfifo(path, 0600), 0);
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.wisdom_path = path;
    cd.cache_dir = "";
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    cr_expect_eq(rfjit_wisdom_export(ctx, NULL), RFJIT_E_IO);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "wfifo: is a FIFO, not a regular file"), "%s",
              rfjit_ctx_last_error(ctx));
    cr_expect_eq(rfjit_wisdom_forget(ctx, 1), RFJIT_E_IO);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "is a FIFO, not a regular file: not removed"),
              "%s", rfjit_ctx_last_error(ctx));
    cr_expect_eq(rfjit_wisdom_import(ctx, path), RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(rfjit_ctx_last_error(ctx), "it is a FIFO"), "%s",
              rfjit_ctx_last_error(ctx));
    rfjit_ctx_destroy(ctx);
    cr_expect_eq(type_of("wfifo"), S_IFIFO);
    cr_expect_eq(leftovers(NULL), 0);
}

/* RFJIT_DUMP's files follow the same rule: with each dump file swapped for a FIFO, a run
 * neither hangs nor replaces them, and says why. (Whether a failed dump fails the run is the
 * dump's own policy; this checks only that the FIFOs survive and are named.) */
Test(outputs, dump_files_that_are_fifos_are_kept)
{
    char env[320], path[512];
    snprintf(env, sizeof env, "RFJIT_CACHE_DIR= RFJIT_DUMP=%s/dump", dir);
    at(path, sizeof path, "dump");
    cr_assert_eq(mkdir(path, 0700), 0);
    cr_assert_eq(run_env(env, QKV " -o o.npy --estimator positive --m 16"), 0, "%s",
                 slurp("err.txt"));
    DIR *d = opendir(path);
    cr_assert_not_null(d);
    int n = 0;
    for (const struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/dump/%s", dir, e->d_name);
        cr_assert_eq(unlink(path), 0);
        cr_assert_eq(mkfifo(path, 0600), 0);
        n++;
    }
    closedir(d);
    cr_assert_gt(n, 0, "RFJIT_DUMP wrote nothing");
    const int rc = run_env(env, QKV " -o o.npy --estimator positive --m 16");
    cr_assert_neq(rc, 124, "hung on a FIFO in the dump directory");
    cr_expect(strstr(slurp("err.txt"), "is a FIFO, not a regular file"), "%s",
              slurp("err.txt"));
    at(path, sizeof path, "dump");
    d = opendir(path);
    cr_assert_not_null(d);
    for (const struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        struct stat sb;
        snprintf(path, sizeof path, "%s/dump/%s", dir, e->d_name);
        cr_assert_eq(lstat(path, &sb), 0);
        cr_expect(S_ISFIFO(sb.st_mode), "%s was replaced", e->d_name);
        n--;
    }
    closedir(d);
    cr_expect_eq(n, 0, "entries of the dump directory added or removed");
}

/* bench --plot: gnuplot draws in a temporary directory and the drawing replaces the user's
 * file only when complete, keeping its mode; a failed draw (no rows) leaves it as it was. */
Test(outputs, plot_replaces_the_file_only_when_drawn)
{
    if (bench_plot_available() != 0)
        cr_skip_test("gnuplot is not installed: the plot is not drawn");
    write_text("p.svg", "old");
    char path[256], why[512];
    at(path, sizeof path, "p.svg");
    cr_assert_eq(chmod(path, 0600), 0);
    cr_expect_eq(bench_plot_write(path, NULL, 0, why, sizeof why), -1);
    cr_expect_str_eq(slurp("p.svg"), "old", "a failed plot touched the file");
    const bench_point pts[] = {
        {"exact", 0, 256, 256, 1, "scaling", 1.0, 0, 2.0, 3.0, NAN, NAN},
        {"positive", 0, 256, 256, 1, "scaling", 0.5, 0, 1.0, 1.5, NAN, NAN},
        {"exact", 0, 512, 256, 1, "scaling", 4.0, 0, 8.0, 9.0, NAN, NAN},
        {"positive", 0, 512, 256, 1, "scaling", 1.0, 0, 2.0, 2.5, NAN, NAN},
        {"positive", 0, 1024, 64, 1, "error", 1.0, 0.2, NAN, NAN, NAN, NAN},
        {"positive", 0, 1024, 128, 1, "error", 1.0, 0.1, NAN, NAN, NAN, NAN}};
    cr_assert_eq(bench_plot_write(path, pts, 6, why, sizeof why), 0, "%s", why);
    cr_expect(strstr(slurp("p.svg"), "<svg"), "not an SVG: %.80s", slurp("p.svg"));
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_eq(sb.st_mode & 07777, 0600);
    cr_expect_eq(leftovers(NULL), 0);
}

/* A replaced output keeps its mode and (when root writes another user's file) its owner:
 * the rename must not turn a user's file into root's. */
Test(outputs, replaced_output_keeps_owner_and_mode)
{
    write_text("own.npy", "old");
    char path[256];
    at(path, sizeof path, "own.npy");
    cr_assert_eq(chmod(path, 0604), 0);
    const int root = geteuid() == 0;
    if (root)
        cr_assert_eq(chown(path, 12345, 23456), 0);
    cr_assert_eq(run(QKV " -o own.npy --estimator exact"), 0, "%s", slurp("err.txt"));
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect_gt(sb.st_size, 3, "not replaced");
    cr_expect_eq(sb.st_mode & 07777, 0604, "mode %o", (unsigned)(sb.st_mode & 07777));
    if (root)
        cr_expect(sb.st_uid == 12345 && sb.st_gid == 23456, "owner %d:%d", (int)sb.st_uid,
                  (int)sb.st_gid);
}
