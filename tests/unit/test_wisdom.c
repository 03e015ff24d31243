/* SPDX-License-Identifier: MIT */
/*
 * This file checks the wisdom store (runtime/wisdom.h): the patience rule and what put
 * refuses; byte-determinism and round trips of the text; texts that must be ignored whole
 * (wrong header, another signature) or line by line (malformed, cut short); truncation at
 * every byte and seeded garbage (RFJIT_TEST_SEED replays a run); files a load must refuse
 * (symlink, directory, FIFO, over the size cap); the default path; and saving: private
 * directory and file, orphaned temporary files and a saver killed holding the lock, merging
 * with what another writer saved (patience rule, ties), foreign or corrupt files replaced,
 * symlinks refused and not followed, and four processes saving at once losing nothing.
 *
 * Every test runs in its own mkdtemp directory under /tmp, removed afterwards. Texts handed
 * to from_text sit in buffers of exactly their length, so AddressSanitizer sees any read
 * past the end.
 */
#include <criterion/criterion.h>

#include "runtime/wisdom.h"
#include "core/testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char SIG[] = "rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 features=+avx2,+fma";

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/rfjit_wisdom_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(wisdom, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ------------------------------------------------------------------------------ */

static rj_wisdom *make(void)
{
    rj_wisdom *w = NULL;
    cr_assert_eq(rj_wisdom_create(SIG, &w), RFJIT_OK);
    return w;
}

static void put(rj_wisdom *w, const char *k, int p, const char *v)
{
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_put(w, k, p, v, &dg), RFJIT_OK, "put %s: %s", k, dg.msg);
}

static char *text_of(const rj_wisdom *w, size_t *len)
{
    char *t = NULL;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_to_text(w, &t, len, &dg), RFJIT_OK, "%s", dg.msg);
    cr_assert_eq(strlen(t), *len, "to_text must NUL-terminate after len bytes");
    return t;
}

/* from_text on a private copy of exactly len bytes (no NUL after it). */
static rfjit_status parse(rj_wisdom *w, const char *text, size_t len, int strict,
                          rj_wisdom_report *rep, rj_diag *dg)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, text, len);
    const rfjit_status s = rj_wisdom_from_text(w, copy, len, strict, rep, dg);
    free(copy);
    return s;
}

/* w holds key with exactly this patience and value. */
static int has(const rj_wisdom *w, const char *key, int p, const char *value)
{
    int got = -1;
    const char *v = rj_wisdom_get(w, key, 0, &got);
    return v && got == p && strcmp(v, value) == 0;
}

static void path_of(char *p, size_t n, const char *name)
{
    snprintf(p, n, "%s/%s", dir, name);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* The whole file, NUL-terminated; *n its size. */
static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 8192;
            cr_assert_not_null(buf = realloc(buf, cap));
        }
        const size_t r = fread(buf + len, 1, 4096, f);
        len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Entries of d whose name contains part. */
static int count_names(const char *d, const char *part)
{
    DIR *dd = opendir(d);
    cr_assert_not_null(dd, "%s: %s", d, strerror(errno));
    int c = 0;
    for (const struct dirent *e; (e = readdir(dd));)
        c += strstr(e->d_name, part) != NULL;
    closedir(dd);
    return c;
}

/* splitmix64: a seeded, portable stream for the garbage tests. */
static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t test_seed(uint64_t dflt)
{
    const char *e = getenv("RFJIT_TEST_SEED");
    return e && *e ? strtoull(e, NULL, 0) : dflt;
}

/* A valid three-record text, as to_text writes it. */
static const char GOOD[] = "rfjit-wisdom 1\n"
                           "signature rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 "
                           "features=+avx2,+fma\n"
                           "positive/d64/dv64/c0/L4096/b1e-02/t1 patience=1 est=positive m=64\n"
                           "trig/d32/dv32/c1/L512/b1e-03/t4 patience=2 est=trig m=32 t_ns=812\n"
                           "zz patience=0 est=exact\n";

/* ---- records ------------------------------------------------------------------------------ */

Test(wisdom, put_get_and_patience)
{
    rj_wisdom *w = make();
    cr_expect_eq(rj_wisdom_count(w), 0);
    put(w, "a.b", 1, "est=positive m=64");
    put(w, "a.b", 0, "est=trig m=16"); /* less patient: ignored */
    int p = -1;
    cr_expect_str_eq(rj_wisdom_get(w, "a.b", 0, &p), "est=positive m=64");
    cr_expect_eq(p, 1);
    cr_expect_str_eq(rj_wisdom_get(w, "a.b", 1, NULL), "est=positive m=64");
    cr_expect_null(rj_wisdom_get(w, "a.b", 2, &p), "a MEASURE record must not serve PATIENT");
    put(w, "a.b", 1, "est=positive m=96"); /* as patient: replaces */
    cr_expect(has(w, "a.b", 1, "est=positive m=96"));
    put(w, "a.b", 3, "est=exact");
    cr_expect_str_eq(rj_wisdom_get(w, "a.b", 2, NULL), "est=exact", "higher serves lower");
    cr_expect(has(w, "a.b", 3, "est=exact"));
    /* keys that share a prefix are different keys */
    cr_expect_null(rj_wisdom_get(w, "a", 0, NULL));
    cr_expect_null(rj_wisdom_get(w, "a.b.c", 0, NULL));
    cr_expect_null(rj_wisdom_get(w, "a.a", 0, NULL));
    put(w, "a", 0, "x=1");
    put(w, "a.b.c", 2, "x=2");
    put(w, "A", 0, "x=3");
    put(w, "empty", 0, "");
    cr_expect(has(w, "a", 0, "x=1") && has(w, "a.b.c", 2, "x=2") && has(w, "A", 0, "x=3"));
    cr_expect(has(w, "a.b", 3, "est=exact") && has(w, "empty", 0, ""));
    cr_assert_eq(rj_wisdom_count(w), 5);
    /* record() walks in strcmp order */
    const char *want[] = {"A", "a", "a.b", "a.b.c", "empty"};
    for (size_t i = 0; i < 5; i++) {
        const char *k, *v;
        rj_test_wisdom_record(w, i, &k, &p, &v);
        cr_expect_str_eq(k, want[i], "record %zu", i);
        cr_expect_str_eq(v, rj_wisdom_get(w, k, 0, NULL));
    }
    rj_wisdom_forget(w);
    cr_expect_eq(rj_wisdom_count(w), 0);
    cr_expect_null(rj_wisdom_get(w, "a.b", 0, NULL));
    put(w, "a.b", 0, "after=forget");
    cr_expect(has(w, "a.b", 0, "after=forget"));
    cr_expect_null(rj_wisdom_get(NULL, "a.b", 0, NULL));
    cr_expect_eq(rj_wisdom_count(NULL), 0);
    rj_wisdom_destroy(w);
    rj_wisdom_destroy(NULL);
}

Test(wisdom, put_refuses_bad_records)
{
    rj_wisdom *w = make();
    put(w, "k", 1, "x=1");
    struct {
        const char *k, *v;
        int p;
    } bad[] = {
        {"has space", "x=1", 1}, {"k=v", "x=1", 1},     {"", "x=1", 1},
        {"tab\tkey", "x=1", 1},  {"k", "x=1\nevil", 1}, {"k", "x=1\r", 1},
        {"k", "x=\t1", 1},       {"k", "x=\x7f", 1},    {"k", "x=\xc3\xa9", 1},
        {"k\x01", "x=1", 1},     {"k", "x=1", 4},       {"k", "x=1", -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rj_diag dg = {{0}};
        cr_expect_eq(rj_wisdom_put(w, bad[i].k, bad[i].p, bad[i].v, &dg), RFJIT_E_INVALID_ARG,
                     "case %zu accepted", i);
        cr_expect_neq(dg.msg[0], 0, "case %zu: no message", i);
    }
    cr_expect_eq(rj_wisdom_put(NULL, "k", 1, "x", NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_put(w, NULL, 1, "x", NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_put(w, "k", 1, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect(has(w, "k", 1, "x=1") && rj_wisdom_count(w) == 1, "a refused put changed w");
    /* the longest line fits exactly; one byte more is refused, never truncated */
    const size_t vl = RJ_WISDOM_LINE_MAX - strlen("k patience=1 ");
    char *v = malloc(vl + 2);
    memset(v, 'v', vl + 1);
    v[vl + 1] = 0;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_wisdom_put(w, "k", 1, v, &dg), RFJIT_E_INVALID_ARG, "%zu-byte line", vl + 14);
    cr_expect(strstr(dg.msg, "4096"), "%s", dg.msg);
    v[vl] = 0;
    put(w, "k", 1, v);
    cr_expect_eq(strlen(rj_wisdom_get(w, "k", 0, NULL)), vl);
    free(v);
    rj_wisdom *x = (rj_wisdom *)1;
    cr_expect_eq(rj_wisdom_create("two\nlines", &x), RFJIT_E_INVALID_ARG);
    cr_expect_null(x);
    cr_expect_eq(rj_wisdom_create(NULL, &x), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_create(SIG, NULL), RFJIT_E_INVALID_ARG);
    rj_wisdom_destroy(w);
}

/* ---- text --------------------------------------------------------------------------------- */

Test(wisdom, text_is_byte_deterministic)
{
    enum { N = 60, ORDERS = 6 };
    char keys[N][32], vals[N][48];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "p/d%d/dv%d/c%d", 8 << (i % 4), 8 + i, i % 2);
        if (i % 7)
            snprintf(vals[i], sizeof vals[i], "est=trig m=%d t_ns=%d", 16 * i, 1000 - i);
        else
            vals[i][0] = 0;
    }
    char *first = NULL;
    size_t first_len = 0;
    uint64_t s = 42;
    for (int o = 0; o < ORDERS; o++) {
        int idx[N];
        for (int i = 0; i < N; i++)
            idx[i] = i;
        for (int i = N - 1; o && i > 0; i--) { /* order 0 is the identity */
            const int j = (int)(next(&s) % (uint64_t)(i + 1)), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        rj_wisdom *w = make();
        for (int i = 0; i < N; i++) {
            const int r = idx[i];
            put(w, keys[r], 0, "stale=1"); /* replaced below: history must not show */
            put(w, keys[r], r % 4, vals[r]);
        }
        size_t len;
        char *t = text_of(w, &len);
        if (!first) {
            first = t;
            first_len = len;
        } else {
            cr_assert(len == first_len && memcmp(t, first, len) == 0,
                      "order %d gives other bytes:\n%s\n---\n%s", o, t, first);
            rj_free(t);
        }
        rj_wisdom_destroy(w);
    }
    /* the exact bytes: header, signature, sorted records, no space after an empty value */
    rj_wisdom *w = make();
    put(w, "zz", 0, "est=exact");
    put(w, "trig/d32/dv32/c1/L512/b1e-03/t4", 2, "est=trig m=32 t_ns=812");
    put(w, "positive/d64/dv64/c0/L4096/b1e-02/t1", 1, "est=positive m=64");
    size_t len;
    char *t = text_of(w, &len);
    cr_expect(len == strlen(GOOD) && memcmp(t, GOOD, len) == 0, "%s", t);
    rj_free(t);
    put(w, "m", 3, "");
    t = text_of(w, &len);
    cr_expect(strstr(t, "\nm patience=3\npositive/"), "%s", t);
    rj_free(t);
    rj_free(first);
    rj_wisdom_destroy(w);
}

Test(wisdom, text_round_trips)
{
    rj_wisdom *a = make();
    put(a, "k1", 2, "x=1 y=3");
    put(a, "k2", 0, "");
    put(a, "k3", 3, "  two  spaces  kept ");
    put(a, "~!@#$%^&*()_+{}|:\"<>?`-[]\\;',./", 1, "punct=ok");
    char *long_v = malloc(RJ_WISDOM_LINE_MAX);
    const size_t vl = RJ_WISDOM_LINE_MAX - strlen("k4 patience=1 ");
    memset(long_v, 'q', vl);
    long_v[vl] = 0;
    put(a, "k4", 1, long_v);
    size_t la;
    char *ta = text_of(a, &la);
    rj_wisdom *b = make();
    rj_wisdom_report rep;
    rj_diag dg = {{0}};
    cr_assert_eq(parse(b, ta, la, 1, &rep, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(!rep.foreign && !rep.ignored_file && !rep.bad_lines);
    cr_assert_eq(rj_wisdom_count(b), rj_wisdom_count(a));
    for (size_t i = 0; i < rj_wisdom_count(a); i++) {
        const char *k, *v;
        int p;
        rj_test_wisdom_record(a, i, &k, &p, &v);
        cr_expect(has(b, k, p, v), "record %s lost or changed", k);
    }
    size_t lb;
    char *tb = text_of(b, &lb);
    cr_expect(la == lb && memcmp(ta, tb, la) == 0);
    /* merging the same text again changes nothing */
    cr_assert_eq(parse(b, ta, la, 0, &rep, NULL), RFJIT_OK);
    rj_free(tb);
    tb = text_of(b, &lb);
    cr_expect(la == lb && memcmp(ta, tb, la) == 0);
    free(long_v);
    rj_free(ta);
    rj_free(tb);
    rj_wisdom_destroy(a);
    rj_wisdom_destroy(b);
}

Test(wisdom, wrong_header_is_ignored)
{
    const char *body = "signature rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 "
                       "features=+avx2,+fma\nk patience=1 x=1\n";
    const char *heads[] = {"",
                           "rfjit-wisdom 2\n",
                           "rfjit-wisdom 1\r\n",
                           "RFJIT-WISDOM 1\n",
                           "\xef\xbb\xbfrfjit-wisdom 1\n",
                           "rfjit-wisdom 1 \n",
                           "rfjit-wisdom\n",
                           "\n"};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        char text[512];
        const int n = snprintf(text, sizeof text, "%s%s", heads[i], body);
        rj_wisdom *w = make();
        put(w, "mine", 1, "kept=1");
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        cr_expect_eq(parse(w, text, (size_t)n, 0, &rep, &dg), RFJIT_OK, "head %zu", i);
        cr_expect(rep.ignored_file && !rep.foreign && rep.bad_lines == 0, "head %zu", i);
        cr_expect(strstr(rep.why, "not a wisdom file"), "head %zu: %s", i, rep.why);
        cr_expect_eq(rj_wisdom_count(w), 1, "head %zu merged something", i);
        cr_expect_eq(parse(w, text, (size_t)n, 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT, "head %zu",
                     i);
        cr_expect(strstr(dg.msg, "not a wisdom file"), "%s", dg.msg);
        cr_expect(has(w, "mine", 1, "kept=1") && rj_wisdom_count(w) == 1);
        rj_wisdom_destroy(w);
    }
    /* only the header line: a header without its newline is cut short */
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_expect_eq(rj_wisdom_from_text(w, "rfjit-wisdom 1", 14, 0, &rep, NULL), RFJIT_OK);
    cr_expect(rep.ignored_file);
    cr_expect_eq(rj_wisdom_from_text(w, NULL, 0, 0, &rep, NULL), RFJIT_OK);
    cr_expect(rep.ignored_file);
    cr_expect_eq(rj_wisdom_from_text(w, NULL, 5, 0, &rep, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_from_text(NULL, GOOD, strlen(GOOD), 0, &rep, NULL),
                 RFJIT_E_INVALID_ARG);
    rj_wisdom_destroy(w);
}

Test(wisdom, other_signature_is_foreign)
{
    const char *sigs[] = {
        "signature rfjit=0.3.0 est=0123abcd cpu=tost llvm=19.1.7 features=+avx2,+fma\n",
        "signature rfjit=0.3.1 est=0123abcd cpu=test llvm=19.1.7 features=+avx2,+fma\n",
        "signature rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 features=+avx2\n",
        "signature rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 features=+avx2,+fma,+x\n",
        "signature  rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 features=+avx2,+fma\n",
        "signature rfjit=0.3.0 est=0123abcd cpu=test llvm=19.1.7 features=+avx2,+fma \n",
        "signature\n",
        "k patience=1 x=1\n",
    };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        char text[512];
        const int n = snprintf(text, sizeof text, "rfjit-wisdom 1\n%sk patience=1 x=1\n", sigs[i]);
        rj_wisdom *w = make();
        put(w, "mine", 1, "kept=1");
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        cr_expect_eq(parse(w, text, (size_t)n, 0, &rep, &dg), RFJIT_OK, "sig %zu", i);
        cr_expect(rep.foreign && !rep.ignored_file, "sig %zu not foreign", i);
        cr_expect(strstr(rep.why, "another machine"), "%s", rep.why);
        cr_expect_eq(rj_wisdom_count(w), 1, "sig %zu merged a foreign record", i);
        cr_expect_eq(parse(w, text, (size_t)n, 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT);
        cr_expect(strstr(dg.msg, "another machine"), "%s", dg.msg);
        cr_expect(has(w, "mine", 1, "kept=1") && rj_wisdom_count(w) == 1);
        rj_wisdom_destroy(w);
    }
    /* the same text under its own signature is accepted: the test can tell them apart */
    rj_wisdom *w = NULL;
    cr_assert_eq(rj_wisdom_create("rfjit=0.3.0 est=0123abcd cpu=tost llvm=19.1.7 "
                                  "features=+avx2,+fma",
                                  &w),
                 RFJIT_OK);
    char text[512];
    const int n = snprintf(text, sizeof text, "rfjit-wisdom 1\n%sk patience=1 x=1\n", sigs[0]);
    cr_expect_eq(parse(w, text, (size_t)n, 1, NULL, NULL), RFJIT_OK);
    cr_expect(has(w, "k", 1, "x=1"));
    rj_wisdom_destroy(w);
}

/* Cut at every byte: never a crash or an over-read (exact-size buffer), never a record that
 * was not in the original, exactly the records whose line (newline included) survived, and
 * strict mode refuses every cut that is not at the end of a record line, merging nothing. */
Test(wisdom, truncation_at_every_byte)
{
    const size_t n = strlen(GOOD);
    const size_t body = (size_t)(strchr(strchr(GOOD, '\n') + 1, '\n') - GOOD) + 1;
    rj_wisdom *orig = make();
    cr_assert_eq(parse(orig, GOOD, n, 1, NULL, NULL), RFJIT_OK);
    cr_assert_eq(rj_wisdom_count(orig), 3);
    for (size_t cut = 0; cut <= n; cut++) {
        size_t whole = 0; /* record lines complete within the cut */
        for (size_t i = body; i < cut; i++)
            whole += GOOD[i] == '\n';
        rj_wisdom *w = make();
        rj_wisdom_report rep;
        cr_assert_eq(parse(w, GOOD, cut, 0, &rep, NULL), RFJIT_OK, "cut %zu", cut);
        cr_expect_eq(rj_wisdom_count(w), whole, "cut at %zu: %zu records, want %zu", cut,
                     rj_wisdom_count(w), whole);
        for (size_t i = 0; i < rj_wisdom_count(w); i++) {
            const char *k, *v, *ov;
            int p, op = -1;
            rj_test_wisdom_record(w, i, &k, &p, &v);
            ov = rj_wisdom_get(orig, k, 0, &op);
            cr_expect(ov && op == p && strcmp(ov, v) == 0, "cut at %zu: invented %s", cut, k);
        }
        const int clean = cut >= body && GOOD[cut - 1] == '\n';
        cr_expect(clean || rep.ignored_file || rep.foreign || rep.bad_lines == 1,
                  "cut at %zu: damage not reported", cut);
        rj_wisdom *s = make();
        rj_diag dg = {{0}};
        const rfjit_status st = parse(s, GOOD, cut, 1, &rep, &dg);
        if (clean) {
            cr_expect_eq(st, RFJIT_OK, "strict refused a clean cut at %zu: %s", cut, dg.msg);
        } else {
            cr_expect_eq(st, RFJIT_E_WISDOM_FORMAT, "strict accepted a cut at %zu", cut);
            cr_expect_neq(dg.msg[0], 0);
            cr_expect_eq(rj_wisdom_count(s), 0, "strict merged from a cut at %zu", cut);
        }
        rj_wisdom_destroy(s);
        rj_wisdom_destroy(w);
    }
    rj_wisdom_destroy(orig);
}

/* Where the byte string needle occurs in hay (both may hold NULs). */
static int contains(const char *hay, size_t hn, const char *needle, size_t nn)
{
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(hay + i, needle, nn) == 0)
            return 1;
    return 0;
}

/* Whatever the bytes: RFJIT_OK; every record merged is one whose canonical line stands whole
 * in the text after the signature; every original line that survived intact is merged (only
 * damaged lines are lost); strict merges all of that or nothing. */
static void check_garbage(const char *buf, size_t len, uint64_t seed, int round)
{
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_assert_eq(parse(w, buf, len, 0, &rep, NULL), RFJIT_OK, "seed %llu round %d",
                 (unsigned long long)seed, round);
    const size_t body = (size_t)(strchr(strchr(GOOD, '\n') + 1, '\n') - GOOD) + 1;
    const int head = len >= body && memcmp(buf, GOOD, body) == 0;
    cr_assert(head || rj_wisdom_count(w) == 0, "seed %llu round %d: records without a header",
              (unsigned long long)seed, round);
    char line[1200]; /* longer than any line of buf */
    for (size_t i = 0; i < rj_wisdom_count(w); i++) {
        const char *k, *v;
        int p;
        rj_test_wisdom_record(w, i, &k, &p, &v);
        cr_assert(*k && p >= 0 && p <= 3, "seed %llu round %d", (unsigned long long)seed, round);
        for (const char *c = k; *c; c++)
            cr_assert(*c > ' ' && *c < 127 && *c != '=', "seed %llu round %d: key byte %d",
                      (unsigned long long)seed, round, *c);
        for (const char *c = v; *c; c++)
            cr_assert(*c >= ' ' && *c < 127, "seed %llu round %d: value byte %d",
                      (unsigned long long)seed, round, *c);
        const int ln =
            snprintf(line, sizeof line, "\n%s patience=%d%s%s\n", k, p, *v ? " " : "", v);
        cr_assert(contains(buf + body - 1, len - body + 1, line, (size_t)ln),
                  "seed %llu round %d: record '%s' is not a line of the text",
                  (unsigned long long)seed, round, k);
    }
    for (const char *l = strchr(GOOD, '\n') + 1; head && (l = strchr(l, '\n') + 1) && *l;) {
        const size_t ll = (size_t)(strchr(l, '\n') - l) + 1;
        line[0] = '\n';
        memcpy(line + 1, l, ll);
        if (!contains(buf + body - 1, len - body + 1, line, ll + 1))
            continue;
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(strchr(l, ' ') - l), l);
        cr_assert_not_null(rj_wisdom_get(w, key, 0, NULL),
                           "seed %llu round %d: intact line of %s dropped",
                           (unsigned long long)seed, round, key);
    }
    rj_wisdom *s = make();
    const rfjit_status st = parse(s, buf, len, 1, &rep, NULL);
    cr_assert(st == RFJIT_OK || st == RFJIT_E_WISDOM_FORMAT, "seed %llu round %d: status %d",
              (unsigned long long)seed, round, (int)st);
    cr_assert_eq(rj_wisdom_count(s), st == RFJIT_OK ? rj_wisdom_count(w) : 0,
                 "seed %llu round %d: strict merged part of a bad text",
                 (unsigned long long)seed, round);
    rj_wisdom_destroy(s);
    rj_wisdom_destroy(w);
}

/* The bytes that break parsers most, often; any byte sometimes. */
static char nasty(uint64_t *s)
{
    static const char pick[] = {'\0', '\r', '\n', ' ', '=', '\t', '\x7f', '\xff', '0', '9'};
    const uint64_t r = next(s);
    return r % 3 ? pick[(r >> 8) % sizeof pick] : (char)(r >> 16);
}

Test(wisdom, random_garbage_never_crashes)
{
    const uint64_t seed = test_seed(20240611);
    uint64_t s = seed;
    const size_t n = strlen(GOOD);
    char buf[1024];
    int saw_nul = 0, saw_cr = 0;
    for (int round = 0; round < 3000; round++) {
        size_t len;
        const int kind = round % 3;
        if (kind == 0) { /* pure garbage of any length */
            len = next(&s) % 600;
            for (size_t i = 0; i < len; i++)
                buf[i] = (next(&s) & 1) ? nasty(&s) : (char)next(&s);
        } else { /* a good text with a few bytes replaced, inserted or deleted */
            memcpy(buf, GOOD, n);
            len = n;
            for (int m = 0, muts = 1 + (int)(next(&s) % 4); m < muts; m++) {
                const size_t at = next(&s) % len;
                const uint64_t op = next(&s) % 3;
                if (op == 0) {
                    buf[at] = nasty(&s);
                } else if (op == 1 && len < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = nasty(&s);
                    len++;
                } else if (len > 1) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
            }
        }
        saw_nul |= memchr(buf, '\0', len) != NULL;
        saw_cr |= memchr(buf, '\r', len) != NULL;
        check_garbage(buf, len, seed, round);
    }
    cr_expect(saw_nul && saw_cr, "seed %llu never produced a NUL and a CR",
              (unsigned long long)seed);
}

Test(wisdom, malformed_lines_drop_only_themselves)
{
    char long_line[RJ_WISDOM_LINE_MAX + 2], max_line[RJ_WISDOM_LINE_MAX + 2];
    const size_t pre = strlen("long patience=1 ");
    memcpy(long_line, "long patience=1 ", pre);
    memset(long_line + pre, 'x', RJ_WISDOM_LINE_MAX + 1 - pre); /* 4097 bytes */
    long_line[RJ_WISDOM_LINE_MAX + 1] = 0;
    memcpy(max_line, "max patience=1 ", pre - 1);
    memset(max_line + pre - 1, 'y', RJ_WISDOM_LINE_MAX - pre + 1); /* 4096 bytes */
    max_line[RJ_WISDOM_LINE_MAX] = 0;
    char text[3 * RJ_WISDOM_LINE_MAX];
    size_t len = 0;
    const char *lines[] = {
        "k1 patience=1 est=positive", /* good */
        "k2 patience=9 est=trig",     "k3 est=exact",
        "k4 patience=1x est=exact",   "k=5 patience=1 est=exact",
        "",                           "k6 patience=1 est=exact\r",
        "k7\tpatience=1 est=exact",   " patience=1 est=exact",
        "k8 patience=1 ",             "k9 patience=1 est=\x80",
        "k10 patience=-1 x=1",        "k11 patience=",
        long_line,                    max_line, /* good */
        "k12 patience=1 nul=\0x",     "k13 patience=2 est=exact", /* good */
        "k14 patience=3",             /* good: empty value */
        "k16 patience=4 x=1",
    };
    const size_t ll[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 21, 0, 0, 0};
    len += (size_t)snprintf(text, sizeof text, "rfjit-wisdom 1\nsignature %s\n", SIG);
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        const size_t l = ll[i] ? ll[i] : strlen(lines[i]);
        memcpy(text + len, lines[i], l);
        len += l;
        text[len++] = '\n';
    }
    memcpy(text + len, "k15 patience=1 x=1", 18); /* no newline: cut short */
    len += 18;
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    cr_assert_eq(parse(w, text, len, 0, &rep, NULL), RFJIT_OK);
    cr_expect_eq(rep.bad_lines, 16, "%d bad lines", rep.bad_lines);
    cr_expect(!rep.foreign && !rep.ignored_file);
    cr_expect(strstr(rep.why, "line 4:"), "%s", rep.why); /* k2, after two header lines */
    cr_expect_eq(rj_wisdom_count(w), 4);
    cr_expect(has(w, "k1", 1, "est=positive"));
    cr_expect(has(w, "max", 1, max_line + pre - 1));
    cr_expect(has(w, "k13", 2, "est=exact"));
    cr_expect(has(w, "k14", 3, ""));
    rj_wisdom *s = make();
    rj_diag dg = {{0}};
    cr_expect_eq(parse(s, text, len, 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(dg.msg, "16 malformed") && strstr(dg.msg, "line 4"), "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(s), 0, "strict merged the good lines of a bad text");
    rj_wisdom_destroy(s);
    rj_wisdom_destroy(w);
}

/* ---- load --------------------------------------------------------------------------------- */

Test(wisdom, load_missing_file_is_empty)
{
    char path[128], deep[128];
    path_of(path, sizeof path, "wisdom");
    path_of(deep, sizeof deep, "no/such/dir/wisdom");
    rj_wisdom *w = make();
    put(w, "mine", 1, "kept=1");
    for (int strict = 0; strict < 2; strict++) {
        rj_wisdom_report rep;
        memset(&rep, 0x55, sizeof rep);
        rj_diag dg = {{0}};
        cr_expect_eq(rj_wisdom_load(w, path, strict, &rep, &dg), RFJIT_OK, "%s", dg.msg);
        cr_expect(!rep.ignored_file && !rep.foreign && !rep.bad_lines && !rep.why[0]);
        cr_expect_eq(rj_wisdom_load(w, deep, strict, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    }
    cr_expect(has(w, "mine", 1, "kept=1") && rj_wisdom_count(w) == 1);
    write_file(path, GOOD, strlen(GOOD));
    cr_expect_eq(rj_wisdom_load(w, path, 1, NULL, NULL), RFJIT_OK);
    cr_expect_eq(rj_wisdom_count(w), 4, "the test's good file did not load");
    cr_expect_eq(rj_wisdom_load(NULL, path, 0, NULL, NULL), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_load(w, NULL, 0, NULL, NULL), RFJIT_E_INVALID_ARG);
    rj_wisdom_destroy(w);
}

Test(wisdom, load_refuses_symlinks)
{
    char path[128], link[128], dangling[128];
    path_of(path, sizeof path, "real");
    path_of(link, sizeof link, "wisdom");
    path_of(dangling, sizeof dangling, "dangling");
    write_file(path, GOOD, strlen(GOOD));
    cr_assert_eq(symlink(path, link), 0);
    cr_assert_eq(symlink("/nonexistent/rfjit", dangling), 0);
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    rj_diag dg = {{0}};
    cr_expect_eq(rj_wisdom_load(w, link, 0, &rep, &dg), RFJIT_OK);
    cr_expect(rep.ignored_file && strstr(rep.why, "symlink"), "%s", rep.why);
    cr_expect_eq(rj_wisdom_count(w), 0, "followed a symlink");
    cr_expect_eq(rj_wisdom_load(w, link, 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT);
    cr_expect(strstr(dg.msg, "symlink") && strstr(dg.msg, link), "%s", dg.msg);
    cr_expect_eq(rj_wisdom_load(w, dangling, 0, &rep, &dg), RFJIT_OK);
    cr_expect(rep.ignored_file, "a dangling symlink is not a missing file");
    cr_expect_eq(rj_wisdom_count(w), 0);
    cr_expect_eq(rj_wisdom_load(w, path, 1, &rep, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(w), 3, "the target itself is good wisdom");
    rj_wisdom_destroy(w);
}

Test(wisdom, load_refuses_directories_and_fifos)
{
    char sub[128], fifo[128];
    path_of(sub, sizeof sub, "d");
    path_of(fifo, sizeof fifo, "fifo");
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *paths[] = {sub, fifo};
    for (int i = 0; i < 2; i++) {
        rj_wisdom *w = make();
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        cr_expect_eq(rj_wisdom_load(w, paths[i], 0, &rep, &dg), RFJIT_OK);
        cr_expect(rep.ignored_file && strstr(rep.why, "not a regular file"), "%s", rep.why);
        cr_expect_eq(rj_wisdom_load(w, paths[i], 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT);
        cr_expect(strstr(dg.msg, paths[i]), "%s", dg.msg);
        cr_expect_eq(rj_wisdom_count(w), 0);
        rj_wisdom_destroy(w);
    }
}

Test(wisdom, load_refuses_oversize)
{
    char path[128];
    path_of(path, sizeof path, "wisdom");
    /* a good text padded with NULs (sparse) to the cap, then one byte past it */
    for (int over = 0; over < 2; over++) {
        write_file(path, GOOD, strlen(GOOD));
        cr_assert_eq(truncate(path, (off_t)RJ_WISDOM_MAX_BYTES + over), 0);
        rj_wisdom *w = make();
        rj_wisdom_report rep;
        rj_diag dg = {{0}};
        cr_expect_eq(rj_wisdom_load(w, path, 0, &rep, &dg), RFJIT_OK);
        if (over) {
            cr_expect(rep.ignored_file && strstr(rep.why, "larger"), "%s", rep.why);
            cr_expect_eq(rj_wisdom_count(w), 0, "read a file over the cap");
            cr_expect_eq(rj_wisdom_load(w, path, 1, &rep, &dg), RFJIT_E_WISDOM_FORMAT);
            cr_expect(strstr(dg.msg, "larger"), "%s", dg.msg);
        } else { /* at the cap: read; the NUL padding is one bad (cut short) line */
            cr_expect(!rep.ignored_file && rep.bad_lines == 1, "%s", rep.why);
            cr_expect_eq(rj_wisdom_count(w), 3);
        }
        rj_wisdom_destroy(w);
    }
}

/* ---- default path ------------------------------------------------------------------------- */

Test(wisdom, default_path_follows_xdg_then_home)
{
    char buf[256], want[256];
    rj_diag dg = {{0}};
    cr_assert_eq(setenv("XDG_DATA_HOME", "/x/data", 1), 0);
    cr_assert_eq(setenv("HOME", dir, 1), 0); /* HOME must exist (runtime/xdg.h) */
    cr_expect_eq(rj_wisdom_default_path(buf, sizeof buf, &dg), RFJIT_OK);
    cr_expect_str_eq(buf, "/x/data/rfjit/wisdom");
    snprintf(want, sizeof want, "%s/.local/share/rfjit/wisdom", dir);
    cr_assert_eq(setenv("XDG_DATA_HOME", "relative/data", 1), 0);
    cr_expect_eq(rj_wisdom_default_path(buf, sizeof buf, &dg), RFJIT_OK);
    cr_expect_str_eq(buf, want, "a relative XDG_DATA_HOME");
    cr_assert_eq(unsetenv("XDG_DATA_HOME"), 0);
    cr_expect_eq(rj_wisdom_default_path(buf, sizeof buf, &dg), RFJIT_OK);
    cr_expect_str_eq(buf, want);
    const size_t need = strlen(want) + 1;
    cr_expect_eq(rj_wisdom_default_path(buf, need - 1, &dg), RFJIT_E_INVALID_ARG,
                 "%zu bytes fit?", need - 1);
    cr_expect_str_eq(buf, "");
    char needs[32];
    snprintf(needs, sizeof needs, "%zu", need);
    cr_expect(strstr(dg.msg, needs), "%s", dg.msg);
    cr_expect_eq(rj_wisdom_default_path(buf, need, &dg), RFJIT_OK);
    cr_assert_eq(unsetenv("HOME"), 0);
    cr_expect_eq(rj_wisdom_default_path(buf, sizeof buf, &dg), RFJIT_E_IO);
    cr_expect(strstr(dg.msg, "HOME is not set"), "%s", dg.msg);
    cr_expect_eq(rj_wisdom_default_path(NULL, 0, &dg), RFJIT_E_INVALID_ARG);
}

/* ---- save --------------------------------------------------------------------------------- */

Test(wisdom, save_creates_private_dir_and_file)
{
    umask(022);
    char path[128], d1[128], d2[128], lock[160];
    path_of(path, sizeof path, "new/sub/wisdom");
    path_of(d1, sizeof d1, "new");
    path_of(d2, sizeof d2, "new/sub");
    snprintf(lock, sizeof lock, "%s.lock", path);
    rj_wisdom *a = make();
    put(a, "k1", 1, "from=a");
    put(a, "k2", 0, "");
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    struct stat sb;
    cr_assert_eq(stat(d1, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0700, "new: %o", sb.st_mode & 0777);
    cr_assert_eq(stat(d2, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0700, "new/sub: %o", sb.st_mode & 0777);
    cr_assert_eq(lstat(path, &sb), 0);
    cr_expect(S_ISREG(sb.st_mode) && (sb.st_mode & 0777) == 0600, "file mode %o", sb.st_mode);
    cr_expect(exists(lock));
    cr_expect_eq(count_names(d2, ".tmp-"), 0, "temporary file left behind");
    size_t fl, tl;
    char *f = read_file(path, &fl), *t = text_of(a, &tl);
    cr_expect(fl == tl && memcmp(f, t, fl) == 0, "file is not to_text:\n%s", f);
    free(f);
    rj_free(t);
    /* an existing directory keeps its mode */
    char open_dir[128], p2[160];
    path_of(open_dir, sizeof open_dir, "shared");
    cr_assert_eq(mkdir(open_dir, 0755), 0);
    snprintf(p2, sizeof p2, "%s/wisdom", open_dir);
    cr_assert_eq(rj_wisdom_save(a, p2, &dg), RFJIT_OK, "%s", dg.msg);
    cr_assert_eq(stat(open_dir, &sb), 0);
    cr_expect_eq(sb.st_mode & 0777, 0755);
    rj_wisdom *b = make();
    cr_assert_eq(rj_wisdom_load(b, p2, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(has(b, "k1", 1, "from=a") && has(b, "k2", 0, "") && rj_wisdom_count(b) == 2);
    rj_wisdom_destroy(a);
    rj_wisdom_destroy(b);
}

/* A saver that died: its lock held when it was killed, its temporary file left behind, one
 * with records that were never renamed into place. None of it may block, break or leak into
 * the next save. */
Test(wisdom, save_survives_a_crashed_saver)
{
    char path[128], lock[160], t1[160], other[160], longer[160];
    path_of(path, sizeof path, "wisdom");
    snprintf(lock, sizeof lock, "%s.lock", path);
    snprintf(t1, sizeof t1, "%s.tmp-abc123", path);
    snprintf(other, sizeof other, "%s/other.tmp-abc123", dir);
    snprintf(longer, sizeof longer, "%s.tmp-abc1234", path);
    rj_wisdom *a = make();
    put(a, "k1", 1, "from=a");
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    const pid_t kid = fork();
    cr_assert_geq(kid, 0);
    if (kid == 0) { /* lock, start a temporary file, die with both */
        const int lfd = open(lock, O_RDWR);
        if (lfd < 0 || flock(lfd, LOCK_EX) != 0)
            _exit(1);
        char tmp[160];
        snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
        const int fd = mkstemp(tmp);
        if (fd < 0 || write(fd, "rfjit-wisdom 1\nsignature ", 25) != 25)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    const ssize_t got = read(ready[0], &c, 1);
    close(ready[0]);
    kill(kid, SIGKILL); /* before any assert, so the child never outlives the test */
    int st;
    cr_assert_eq(waitpid(kid, &st, 0), kid);
    cr_assert_eq(got, 1, "the crashing saver did not get the lock (status %d)", st);
    cr_assert(WIFSIGNALED(st));
    char ghost[600];
    const int gl = snprintf(ghost, sizeof ghost, "rfjit-wisdom 1\nsignature %s\nghost patience=3 "
                            "x=1\nk1 patience=3 from=ghost\n", SIG);
    write_file(t1, ghost, (size_t)gl); /* complete, but never renamed: not wisdom */
    write_file(other, ghost, (size_t)gl);
    write_file(longer, ghost, (size_t)gl);
    cr_assert_eq(count_names(dir, "wisdom.tmp-"), 3);
    put(a, "k2", 2, "from=a");
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    rj_wisdom *r = make();
    cr_assert_eq(rj_wisdom_load(r, path, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(r), 2);
    cr_expect(has(r, "k1", 1, "from=a") && has(r, "k2", 2, "from=a"));
    cr_expect_null(rj_wisdom_get(r, "ghost", 0, NULL), "an orphaned temporary file was merged");
    cr_expect_eq(count_names(dir, "wisdom.tmp-"), 1, "orphans not swept, or too much swept");
    cr_expect(exists(longer) && exists(other), "swept a file that is not ours");
    rj_wisdom_destroy(r);
    rj_wisdom_destroy(a);
}

Test(wisdom, save_merges_with_another_writer)
{
    char path[128];
    path_of(path, sizeof path, "wisdom");
    rj_wisdom *a = make(), *b = make();
    put(a, "k1", 1, "from=a");
    put(a, "k2", 1, "from=a");
    put(a, "k3", 2, "from=a");
    put(a, "k4", 1, "from=a");
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    /* b never loaded the file: a's records reach it only through save's merge */
    put(b, "k2", 2, "from=b"); /* more patient: b wins */
    put(b, "k3", 1, "from=b"); /* less patient: a's record on disk wins */
    put(b, "k4", 1, "from=b"); /* a tie: the saver (b) wins */
    put(b, "k5", 0, "from=b");
    cr_assert_eq(rj_wisdom_save(b, path, &dg), RFJIT_OK, "%s", dg.msg);
    rj_wisdom *c = make();
    cr_assert_eq(rj_wisdom_load(c, path, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(c), 5);
    cr_expect(has(c, "k1", 1, "from=a"), "another writer's record lost");
    cr_expect(has(c, "k2", 2, "from=b"));
    cr_expect(has(c, "k3", 2, "from=a"), "a less patient record replaced a better one");
    cr_expect(has(c, "k4", 1, "from=b"), "a tie must go to the saver");
    cr_expect(has(c, "k5", 0, "from=b"));
    /* the saver holds the merged set, the same bytes as the file */
    size_t lb, lf;
    char *tb = text_of(b, &lb), *f = read_file(path, &lf);
    cr_expect(lb == lf && memcmp(tb, f, lb) == 0, "saver's set differs from the file");
    free(f);
    rj_free(tb);
    /* a saves again: its k4 ties with b's on disk and wins; b's better k2 stays */
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(has(a, "k2", 2, "from=b") && has(a, "k4", 1, "from=a") && has(a, "k5", 0, "from=b"));
    rj_wisdom_forget(c);
    cr_assert_eq(rj_wisdom_load(c, path, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(has(c, "k4", 1, "from=a") && has(c, "k3", 2, "from=a") && rj_wisdom_count(c) == 5);
    rj_wisdom_destroy(a);
    rj_wisdom_destroy(b);
    rj_wisdom_destroy(c);
}

Test(wisdom, save_replaces_foreign_and_corrupt_files)
{
    char path[128];
    path_of(path, sizeof path, "wisdom");
    rj_wisdom *a = make();
    put(a, "mine", 1, "x=1");
    const char *foreign = "rfjit-wisdom 1\nsignature rfjit=0.0.1 cpu=pdp11\nold patience=3 x=9\n";
    write_file(path, foreign, strlen(foreign));
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_null(rj_wisdom_get(a, "old", 0, NULL), "merged a foreign record");
    rj_wisdom *r = make();
    cr_assert_eq(rj_wisdom_load(r, path, 1, NULL, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect(rj_wisdom_count(r) == 1 && has(r, "mine", 1, "x=1"));
    /* same signature, one damaged line: the good lines are kept, the damage is gone */
    char text[512];
    const int n = snprintf(text, sizeof text,
                           "rfjit-wisdom 1\nsignature %s\nkept patience=2 y=2\nbroken\x01 "
                           "patience=1\nalso patience=0 z=3\ncut patience=1",
                           SIG);
    write_file(path, text, (size_t)n);
    cr_assert_eq(rj_wisdom_save(a, path, &dg), RFJIT_OK, "%s", dg.msg);
    rj_wisdom_forget(r);
    cr_assert_eq(rj_wisdom_load(r, path, 1, NULL, &dg), RFJIT_OK, "saved a bad file: %s", dg.msg);
    cr_expect_eq(rj_wisdom_count(r), 3);
    cr_expect(has(r, "kept", 2, "y=2") && has(r, "also", 0, "z=3") && has(r, "mine", 1, "x=1"));
    rj_wisdom_destroy(r);
    rj_wisdom_destroy(a);
}

Test(wisdom, save_refuses_bad_paths_and_symlinks)
{
    rj_wisdom *a = make();
    put(a, "k", 1, "x=1");
    rj_diag dg = {{0}};
    char p[160], file[128], target[128], link[128];
    cr_expect_eq(rj_wisdom_save(a, "", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_save(NULL, "x", &dg), RFJIT_E_INVALID_ARG);
    cr_expect_eq(rj_wisdom_save(a, NULL, &dg), RFJIT_E_INVALID_ARG);
    snprintf(p, sizeof p, "%s/d/", dir);
    cr_expect_eq(rj_wisdom_save(a, p, &dg), RFJIT_E_INVALID_ARG);
    path_of(file, sizeof file, "plain");
    write_file(file, "x", 1);
    snprintf(p, sizeof p, "%s/wisdom", file); /* parent is a regular file */
    cr_expect_eq(rj_wisdom_save(a, p, &dg), RFJIT_E_IO);
    cr_expect(strstr(dg.msg, "directory"), "%s", dg.msg);
    path_of(p, sizeof p, "isdir");
    cr_assert_eq(mkdir(p, 0700), 0);
    dg.msg[0] = 0;
    cr_expect_eq(rj_wisdom_save(a, p, &dg), RFJIT_E_IO, "replaced a directory");
    cr_expect(strstr(dg.msg, p), "%s", dg.msg);
    cr_expect_eq(count_names(dir, "isdir.tmp-"), 0, "temporary file left after a failure");
    /* a symlink at path is refused (loads would ignore what a save wrote through it) and
     * neither replaced nor written through */
    path_of(target, sizeof target, "target");
    path_of(link, sizeof link, "wisdom");
    write_file(target, "precious", 8);
    cr_assert_eq(symlink(target, link), 0);
    cr_expect_eq(rj_wisdom_save(a, link, &dg), RFJIT_E_IO);
    cr_expect(strstr(dg.msg, link) && strstr(dg.msg, "symbolic link"), "%s", dg.msg);
    size_t n;
    char *t = read_file(target, &n);
    cr_expect(n == 8 && memcmp(t, "precious", 8) == 0, "wrote through a symlink");
    free(t);
    struct stat sb;
    cr_assert_eq(lstat(link, &sb), 0);
    cr_expect(S_ISLNK(sb.st_mode), "the symlink was replaced");
    cr_expect_eq(count_names(dir, "wisdom.tmp-"), 0, "temporary file left after a refusal");
    rj_wisdom_destroy(a);
}

/* Four processes, 25 saves each of one new record: every save merges under the lock, so
 * none may lose another's records; released together so the saves overlap. */
Test(wisdom, concurrent_writers_lose_nothing, .timeout = 300)
{
    enum { KIDS = 4, EACH = 25 };
    char path[128];
    path_of(path, sizeof path, "deep/wisdom");
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t kids[KIDS];
    for (int c = 0; c < KIDS; c++) {
        kids[c] = fork();
        cr_assert_geq(kids[c], 0);
        if (kids[c] == 0) {
            close(go[1]);
            char x;
            if (read(go[0], &x, 1) != 0) /* EOF: the parent released everyone */
                _exit(3);
            rj_wisdom *w = NULL;
            if (rj_wisdom_create(SIG, &w) != RFJIT_OK)
                _exit(2);
            for (int i = 0; i < EACH; i++) {
                char k[32];
                snprintf(k, sizeof k, "w%d.r%02d", c, i);
                if (rj_wisdom_put(w, k, i % 4, "x=1", NULL) != RFJIT_OK ||
                    rj_wisdom_save(w, path, NULL) != RFJIT_OK)
                    _exit(1);
            }
            rj_wisdom_destroy(w);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    /* reap all before asserting: a writer still running after teardown would re-create
     * the directory */
    int st[KIDS];
    for (int c = 0; c < KIDS; c++)
        while (waitpid(kids[c], &st[c], 0) != kids[c])
            cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    for (int c = 0; c < KIDS; c++)
        cr_assert(WIFEXITED(st[c]) && WEXITSTATUS(st[c]) == 0, "writer %d failed (%d)", c,
                  st[c]);
    rj_wisdom *w = make();
    rj_wisdom_report rep;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_wisdom_load(w, path, 1, &rep, &dg), RFJIT_OK, "%s", dg.msg);
    cr_expect_eq(rj_wisdom_count(w), KIDS * EACH, "%zu records survived", rj_wisdom_count(w));
    for (int c = 0; c < KIDS; c++)
        for (int i = 0; i < EACH; i++) {
            char k[32];
            snprintf(k, sizeof k, "w%d.r%02d", c, i);
            cr_expect(has(w, k, i % 4, "x=1"), "%s lost", k);
        }
    char d[128];
    path_of(d, sizeof d, "deep");
    cr_expect_eq(count_names(d, ".tmp-"), 0, "temporary files left behind");
    rj_wisdom_destroy(w);
}
