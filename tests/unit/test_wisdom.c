/* SPDX-License-Identifier: MIT */
/*
 * This file checks the wisdom store (runtime/wisdom.h): the patience rule, byte-determinism
 * and round trips of the text, files that must be ignored (wrong header, another signature,
 * truncation at every byte, garbage, symlinks, directories), line-level damage, and saving:
 * merge with another writer's records, and four processes saving at once losing nothing.
 */
#include <criterion/criterion.h>

#include "wisdom.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *SIG = "rfjit=test est=0123 cpu=test llvm=19 features=+x";

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit_wisdom_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(wisdom, .init = setup, .fini = teardown, .timeout = 120);

static rj_wisdom *make(void)
{
    rj_wisdom *w = NULL;
    cr_assert_eq(rj_wisdom_create(SIG, &w), RFJIT_OK);
    return w;
}

static void put(rj_wisdom *w, const char *k, int p, const char *v)
{
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_put(w, k, p, v, &dg), RFJIT_OK, "%s", dg.msg);
}

static char *text_of(const rj_wisdom *w, size_t *len)
{
    char *t = NULL;
    cr_assert_eq(rj_wisdom_to_text(w, &t, len, NULL), RFJIT_OK);
    return t;
}

Test(wisdom, patience_rule_and_bad_records)
{
    rj_wisdom *w = make();
    put(w, "a.b", 1, "est=positive m=64");
    put(w, "a.b", 0, "est=trig m=16"); /* less patient: ignored */
    int p = -1;
    cr_expect_str_eq(rj_wisdom_get(w, "a.b", 0, &p), "est=positive m=64");
    cr_expect_eq(p, 1);
    cr_expect_null(rj_wisdom_get(w, "a.b", 2, NULL), "a MEASURE answer must not serve PATIENT");
    put(w, "a.b", 3, "est=exact");
    cr_expect_str_eq(rj_wisdom_get(w, "a.b", 2, NULL), "est=exact");
    cr_expect_null(rj_wisdom_get(w, "a", 0, NULL));
    cr_expect_null(rj_wisdom_get(w, "a.b.c", 0, NULL));
    rj_diag dg = {{0}};
    cr_expect_eq(rj_wisdom_put(w, "has space", 1, "x=1", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_put(w, "k=v", 1, "x=1", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_put(w, "k", 1, "x=1\nevil", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_put(w, "k", 4, "x=1", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_count(w), 1);
    rj_wisdom_destroy(w);
    rj_wisdom_destroy(NULL);
}

Test(wisdom, text_is_deterministic_and_round_trips)
{
    rj_wisdom *a = make(), *b = make();
    put(a, "k2", 1, "x=2");
    put(a, "k1", 2, "x=1 y=3");
    put(a, "k3", 0, "");
    put(b, "k3", 0, "");
    put(b, "k1", 2, "x=1 y=3");
    put(b, "k2", 1, "x=2");
    size_t la, lb;
    char *ta = text_of(a, &la), *tb = text_of(b, &lb);
    cr_assert_eq(la, lb);
    cr_assert(memcmp(ta, tb, la) == 0, "%s\n---\n%s", ta, tb);
    cr_expect(strncmp(ta, "rfjit-wisdom 1\nsignature ", 25) == 0, "%s", ta);
    rj_wisdom *c = make();
    rj_wisdom_report rep;
    cr_assert_eq(rj_wisdom_from_text(c, ta, la, 1, &rep, NULL), RFJIT_OK);
    size_t lc;
    char *tc = text_of(c, &lc);
    cr_expect(lc == la && memcmp(ta, tc, la) == 0);
    rj_free(ta);
    rj_free(tb);
    rj_free(tc);
    rj_wisdom_destroy(a);
    rj_wisdom_destroy(b);
    rj_wisdom_destroy(c);
}

static const char GOOD[] = "rfjit-wisdom 1\n"
                           "signature rfjit=test est=0123 cpu=test llvm=19 features=+x\n"
                           "k1 patience=1 est=positive m=64\n"
                           "k2 patience=2 est=trig m=32\n"
                           "k3 patience=0 est=exact\n";

Test(wisdom, foreign_and_headerless_files_are_ignored)
{
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    rj_diag dg = {{0}};
    char other[sizeof GOOD];
    memcpy(other, GOOD, sizeof GOOD);
    memcpy(strstr(other, "cpu=test"), "cpu=tost", 8);
    cr_expect_eq(rj_wisdom_from_text(w, other, strlen(other), 0, &rep, &dg), RFJIT_OK);
    cr_expect(rep.foreign && rj_wisdom_count(w) == 0);
    cr_expect_eq(rj_wisdom_from_text(w, other, strlen(other), 1, &rep, &dg),
                 RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(dg.msg, "another machine"), "%s", dg.msg);
    const char *nohdr = "rfjit-wisdom 2\nsignature x\n";
    cr_expect_eq(rj_wisdom_from_text(w, nohdr, strlen(nohdr), 0, &rep, &dg), RFJIT_OK);
    cr_expect(rep.ignored_file && rj_wisdom_count(w) == 0);
    rj_wisdom_destroy(w);
}

/* Cut at every byte: never a crash, never a record that was not there, never a record whose
 * line was cut (its newline is missing), and strict mode refuses the cut ones. */
Test(wisdom, truncation_at_every_byte)
{
    const size_t n = strlen(GOOD);
    for (size_t cut = 0; cut <= n; cut++) {
        rj_wisdom *w = make();
        rj_wisdom_report rep;
        cr_assert_eq(rj_wisdom_from_text(w, GOOD, cut, 0, &rep, NULL), RFJIT_OK);
        size_t whole = 0;
        for (const char *p = strstr(GOOD, "k1"); p && (size_t)(p - GOOD) < cut;
             p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            if (strchr(p, '\n') && (size_t)(strchr(p, '\n') - GOOD) < cut)
                whole++;
        cr_expect_eq(rj_wisdom_count(w), whole, "cut at %zu: %zu records", cut,
                     rj_wisdom_count(w));
        for (size_t i = 0; i < rj_wisdom_count(w); i++) {
            const char *k, *v;
            int p;
            rj_wisdom_record(w, i, &k, &p, &v);
            char line[128];
            snprintf(line, sizeof line, "%s patience=%d %s\n", k, p, v);
            cr_expect(strstr(GOOD, line), "cut at %zu: invented '%s'", cut, line);
        }
        if (cut < n && cut > 0 && GOOD[cut - 1] != '\n')
            cr_expect_neq(rj_wisdom_from_text(w, GOOD, cut, 1, &rep, NULL), RFJIT_OK,
                          "strict accepted a cut at %zu", cut);
        rj_wisdom_destroy(w);
    }
}

Test(wisdom, garbage_and_damaged_lines)
{
    uint64_t s = 12345;
    char buf[600];
    for (int round = 0; round < 500; round++) {
        memcpy(buf, GOOD, sizeof GOOD);
        /* keep the two header lines, scramble the rest with any bytes (NUL, CR included) */
        size_t start = (size_t)(strchr(strchr(GOOD, '\n') + 1, '\n') - GOOD) + 1;
        for (size_t i = start; i < sizeof GOOD; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            if ((s >> 60) < 3)
                buf[i] = (char)(s >> 33);
        }
        rj_wisdom *w = make();
        rj_wisdom_report rep;
        cr_assert_eq(rj_wisdom_from_text(w, buf, sizeof GOOD - 1, 0, &rep, NULL), RFJIT_OK,
                     "round %d (seed 12345)", round);
        for (size_t i = 0; i < rj_wisdom_count(w); i++) {
            const char *k, *v;
            int p;
            rj_wisdom_record(w, i, &k, &p, &v);
            for (const char *c = k; *c; c++)
                cr_assert(*c > ' ' && *c < 127 && *c != '=', "round %d: bad key byte", round);
            for (const char *c = v; *c; c++)
                cr_assert(*c >= ' ' && *c < 127, "round %d: bad value byte", round);
        }
        rj_wisdom_destroy(w);
    }
    const char *one_bad = "rfjit-wisdom 1\n"
                          "signature rfjit=test est=0123 cpu=test llvm=19 features=+x\n"
                          "k1 patience=1 est=positive\n"
                          "k2 patience=9 est=trig\n"
                          "k3 est=exact\n"
                          "k4 patience=2 est=exact\n";
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_assert_eq(rj_wisdom_from_text(w, one_bad, strlen(one_bad), 0, &rep, NULL), RFJIT_OK);
    cr_expect_eq(rep.bad_lines, 2);
    cr_expect_eq(rj_wisdom_count(w), 2);
    cr_expect_not_null(rj_wisdom_get(w, "k4", 0, NULL));
    rj_wisdom_destroy(w);
}

static void path_of(char *p, size_t n, const char *name)
{
    snprintf(p, n, "%s/%s", dir, name);
}

Test(wisdom, files_that_are_not_files)
{
    char path[128], link[128], sub[128];
    path_of(path, sizeof path, "w");
    path_of(link, sizeof link, "ln");
    path_of(sub, sizeof sub, "d");
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_expect_eq(rj_wisdom_load(w, path, 0, &rep, NULL), RFJIT_OK, "missing file");
    cr_expect(!rep.ignored_file && rj_wisdom_count(w) == 0);
    FILE *f = fopen(path, "w");
    fputs(GOOD, f);
    fclose(f);
    cr_assert_eq(symlink(path, link), 0);
    cr_expect_eq(rj_wisdom_load(w, link, 0, &rep, NULL), RFJIT_OK);
    cr_expect(rep.ignored_file && rj_wisdom_count(w) == 0, "followed a symlink");
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_expect_eq(rj_wisdom_load(w, sub, 0, &rep, NULL), RFJIT_OK);
    cr_expect(rep.ignored_file);
    rj_diag dg = {{0}};
    cr_expect_neq(rj_wisdom_load(w, sub, 1, &rep, &dg), RFJIT_OK);
    cr_expect_eq(rj_wisdom_load(w, path, 1, &rep, NULL), RFJIT_OK);
    cr_expect_eq(rj_wisdom_count(w), 3);
    rj_wisdom_destroy(w);
}

Test(wisdom, save_creates_0700_dir_and_merges)
{
    char path[128];
    path_of(path, sizeof path, "new/sub/wisdom");
    rj_wisdom *a = make(), *b = make();
    put(a, "k1", 1, "from=a");
    put(a, "k2", 1, "from=a");
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    char d[128];
    path_of(d, sizeof d, "new/sub");
    struct stat sb;
    cr_assert_eq(stat(d, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0700);
    /* a stale temporary file from a crashed writer changes nothing */
    char stale[160];
    snprintf(stale, sizeof stale, "%s.tmp-abc123", path);
    FILE *f = fopen(stale, "w");
    fputs("rfjit-wisdom 1\ngarbage", f);
    fclose(f);
    /* b knows k2 more patiently and k3; a's k1 must survive b's save */
    put(b, "k2", 2, "from=b");
    put(b, "k3", 0, "from=b");
    cr_assert_eq(rj_wisdom_save(b, path, &dg), RFJIT_OK, "%s", dg.msg);
    rj_wisdom *c = make();
    cr_assert_eq(rj_wisdom_load(c, path, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(c), 3);
    cr_expect_str_eq(rj_wisdom_get(c, "k1", 0, NULL), "from=a");
    cr_expect_str_eq(rj_wisdom_get(c, "k2", 0, NULL), "from=b");
    /* a saving again keeps b's more patient k2 */
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK);
    cr_expect_str_eq(rj_wisdom_get(a, "k2", 0, NULL), "from=b");
    rj_wisdom_destroy(a);
    rj_wisdom_destroy(b);
    rj_wisdom_destroy(c);
}

Test(wisdom, concurrent_writers_lose_nothing, .timeout = 120)
{
    char path[128];
    path_of(path, sizeof path, "w");
    pid_t kids[4];
    for (int c = 0; c < 4; c++) {
        kids[c] = fork();
        cr_assert_geq(kids[c], 0);
        if (kids[c] == 0) {
            rj_wisdom *w = NULL;
            if (rj_wisdom_create(SIG, &w) != RFJIT_OK)
                _exit(2);
            for (int i = 0; i < 25; i++) {
                char k[32];
                snprintf(k, sizeof k, "w%d.r%02d", c, i);
                if (rj_wisdom_put(w, k, 1, "x=1", NULL) != RFJIT_OK ||
                    rj_wisdom_save(w, path, NULL) != RFJIT_OK)
                    _exit(1);
            }
            rj_wisdom_destroy(w);
            _exit(0);
        }
    }
    for (int c = 0; c < 4; c++) {
        int st = 0;
        cr_assert_eq(waitpid(kids[c], &st, 0), kids[c]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d failed", c);
    }
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_assert_eq(rj_wisdom_load(w, path, 1, &rep, NULL), RFJIT_OK);
    cr_expect_eq(rj_wisdom_count(w), 100, "%zu records survived", rj_wisdom_count(w));
    rj_wisdom_destroy(w);
}
