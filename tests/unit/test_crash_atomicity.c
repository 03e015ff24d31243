/* SPDX-License-Identifier: MIT */
/*
 * This file kills writers with SIGKILL mid-write and checks that nothing they leave behind
 * breaks the next run. A child process stores disk-cache entries (objects of 0.5-2 MB, so a
 * store takes long enough to be interrupted) or saves a wisdom file of a few thousand
 * records, in a loop; the parent kills it after a pseudo-random delay (fixed seed, printed),
 * then opens what is on disk as the next run would: every cache entry present must load
 * (none dropped as torn), and the wisdom file must load strictly and hold a whole save. The
 * rounds in which a kill landed mid-write are counted from the temporary files left behind;
 * rounds continue until WANT of them did, or it would prove nothing.
 */
#include <criterion/criterion.h>

#include "runtime/dcache.h"
#include "runtime/wisdom.h"
#include "core/testing.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Rounds go on until WANT kills have landed mid-write (a store spends most of its time
 * hashing, so about one kill in ten does), at most MAX_ROUNDS. */
enum { WANT = 10, MAX_ROUNDS = 400 };
#define SEED 20261123u

static char tdir[64];

static void setup(void)
{
    snprintf(tdir, sizeof tdir, "/tmp/rfjit_crash_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", tdir);
}

TestSuite(crash_atomicity, .init = setup, .fini = teardown, .timeout = 120);

static uint32_t next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Files in dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

/* Start a writer, let it run delay_us, kill it; whether it was killed (not already dead). */
static int run_and_kill(void (*writer)(const char *), const char *arg, unsigned delay_us)
{
    const pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        writer(arg);
        _exit(0);
    }
    const struct timespec d = {delay_us / 1000000, (long)(delay_us % 1000000) * 1000};
    nanosleep(&d, NULL);
    kill(pid, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* ------------------------------------------------------------------ disk cache */

static void cache_writer(const char *dir)
{
    rj_dcache *c = NULL;
    char warn[256];
    if (rj_dcache_open(dir, &c, warn, sizeof warn) != RFJIT_OK || !c)
        _exit(3);
    const size_t max = 2u << 20;
    unsigned char *obj = malloc(max);
    if (!obj)
        _exit(4);
    for (size_t j = 0; j < max; j++)
        obj[j] = (unsigned char)(j * 31);
    /* the loop does little but store, so a kill mostly lands inside one */
    for (uint32_t i = (uint32_t)getpid();; i++) {
        rj_hash key = {{0}};
        key.b[0] = (uint8_t)(i % 8);
        memcpy(obj, &i, sizeof i);
        rj_diag dg = {{0}};
        rj_dcache_store(c, &key, obj, (512u << 10) + (i % 4) * (512u << 10), &dg);
    }
}

Test(crash_atomicity, killed_cache_writers_leave_no_torn_entry)
{
    char dir[128];
    snprintf(dir, sizeof dir, "%s/cache", tdir);
    uint32_t rng = SEED;
    int mid_write = 0, killed = 0, entries_seen = 0, r = 0;
    for (; r < MAX_ROUNDS && mid_write < WANT; r++) {
        const int tmp_before = count_prefixed(dir, ".tmp-");
        killed += run_and_kill(cache_writer, dir, 2000 + next(&rng) % 30000);
        mid_write += count_prefixed(dir, ".tmp-") > tmp_before;
        /* the next run: every entry on disk loads whole */
        rj_dcache *c = NULL;
        char warn[256];
        cr_assert_eq(rj_dcache_open(dir, &c, warn, sizeof warn), RFJIT_OK);
        cr_assert_not_null(c, "%s", warn);
        for (int k = 0; k < 8; k++) {
            rj_hash key = {{0}};
            key.b[0] = (uint8_t)k;
            void *obj = NULL;
            size_t n = 0;
            char note[256];
            entries_seen += rj_dcache_load(c, &key, &obj, &n, note, sizeof note);
            cr_assert_eq(note[0], 0, "round %d (seed %u): %s", r, SEED, note);
            free(obj);
        }
        rj_test_dcache_stats st;
        rj_test_dcache_get_stats(c, &st);
        cr_assert_eq(st.bad, 0, "round %d (seed %u): a torn entry", r, SEED);
        rj_dcache_close(c);
    }
    fprintf(stderr, "crash: cache: %d rounds, %d kills, %d mid-write, %d entries loaded whole\n",
            r, killed, mid_write, entries_seen);
    cr_expect_geq(mid_write, WANT, "only %d of %d kills landed mid-write (seed %u)", mid_write,
                  r, SEED);
    cr_expect_gt(entries_seen, 0);
}

/* ------------------------------------------------------------------ wisdom */

static const char sig[] = "rfjit=test est=0 cpu=crash llvm=19 features=";
enum { RECORDS = 4000 };

/* The RECORDS records of generation gen. */
static void put_records(rj_wisdom *w, int gen)
{
    char key[64], value[160];
    for (int i = 0; i < RECORDS; i++) {
        snprintf(key, sizeof key, "crash.k%05d", i);
        snprintf(value, sizeof value, "gen=%d pad=%0120d", gen, i);
        rj_wisdom_put(w, key, 1 + gen % 3, value, NULL);
    }
}

/* Save after save, each adding records, every one carrying its save's generation. */
static void wisdom_writer(const char *path)
{
    rj_wisdom *w = NULL;
    if (rj_wisdom_create(sig, &w) != RFJIT_OK)
        _exit(3);
    for (int gen = 0;; gen++) {
        put_records(w, gen);
        rj_diag dg = {{0}};
        rj_wisdom_save(w, path, &dg);
    }
}

Test(crash_atomicity, killed_wisdom_savers_leave_a_whole_file)
{
    char path[128];
    snprintf(path, sizeof path, "%s/wisdom", tdir);
    uint32_t rng = SEED + 1;
    int mid_write = 0, killed = 0, whole = 0, r = 0;
    for (; r < MAX_ROUNDS && mid_write < WANT; r++) {
        killed += run_and_kill(wisdom_writer, path, 5000 + next(&rng) % 40000);
        mid_write += count_prefixed(tdir, "wisdom.tmp-") > 0;
        rj_wisdom *w = NULL;
        cr_assert_eq(rj_wisdom_create(sig, &w), RFJIT_OK);
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        struct stat sb;
        if (stat(path, &sb) == 0) {
            cr_assert_eq(rj_wisdom_load(w, path, 1, &rep, &dg), RFJIT_OK,
                         "round %d (seed %u): %s", r, SEED + 1, dg.msg);
            cr_assert_eq(rj_wisdom_count(w), RECORDS, "round %d: %zu records, not a whole save",
                         r, rj_wisdom_count(w));
            whole++;
        } else {
            /* the writer died before its first save (likely on a slow or loaded machine): this
             * save must be whole too, or the next round would find an empty file */
            put_records(w, 0);
        }
        /* the next saver is not blocked by the dead one's lock and sweeps its temporaries */
        cr_assert_eq(rj_wisdom_save(w, path, &dg), RFJIT_OK, "round %d: %s", r, dg.msg);
        cr_assert_eq(count_prefixed(tdir, "wisdom.tmp-"), 0, "round %d: temporaries left", r);
        rj_wisdom_destroy(w);
    }
    fprintf(stderr, "crash: wisdom: %d rounds, %d kills, %d mid-write, %d whole files\n", r,
            killed, mid_write, whole);
    cr_expect_geq(mid_write, WANT, "only %d of %d kills landed mid-write (seed %u)", mid_write,
                  r, SEED + 1);
}
