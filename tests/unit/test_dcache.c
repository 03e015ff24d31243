/* SPDX-License-Identifier: MIT */
/*
 * This file checks the disk cache (runtime/dcache.c) and the BLAKE3 wrapper under it, below
 * the public API so every bad-entry reason can be aimed at exactly: the entry layout the
 * architecture names (offsets are restated here on purpose, so a silent format change fails),
 * the directory rules (created 0700, refused when shared, symlinked or foreign), each way an
 * entry can be bad (detected, unlinked, counted, a miss), and concurrent writers and readers
 * in separate processes and threads. Each test works in its own mkdtemp directory, removed by
 * the suite's fini even when an assertion fails. Tests needing root (chown) skip otherwise.
 */
#include <criterion/criterion.h>

#include "runtime/dcache.h"
#include "runtime/hash.h"
#include "core/testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Entry layout (architecture.md 5): magic, u32 format, u32 reserved, key, u64 size, hash. */
#define HDR 96
#define OFF_FORMAT 8
#define OFF_KEY 16
#define OFF_SIZE 48
#define OFF_HASH 64

static char tdir[64]; /* this test's directory; Criterion runs each test in its own process */

static void rm_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    char sub[1024];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
    if (d)
        closedir(d);
    rmdir(path);
}

static void setup(void)
{
    snprintf(tdir, sizeof tdir, "/tmp/rfjit_dcache_XXXXXX");
    cr_assert_not_null(mkdtemp(tdir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
    rm_tree(tdir);
}

TestSuite(dcache, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------------------ */

static void key_of(int i, rj_hash *k)
{
    char s[32];
    int n = snprintf(s, sizeof s, "test key %d", i);
    rj_hash_bytes(s, (size_t)n, k);
}

/* Object bytes that depend on i and on the offset (xorshift), so no two keys share content. */
static unsigned char *obj_of(int i, size_t n)
{
    unsigned char *o = malloc(n);
    cr_assert_not_null(o);
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
    for (size_t j = 0; j < n; j++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        o[j] = (unsigned char)(x >> 24);
    }
    return o;
}

static void sub_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tdir, name);
}

static void entry_of(const char *dir, const rj_hash *k, char *out, size_t n)
{
    char hex[65];
    rj_hash_hex(k, hex);
    snprintf(out, n, "%s/%s.o", dir, hex);
}

static rj_dcache *open_ok(const char *dir)
{
    rj_dcache *c = (rj_dcache *)1;
    char warn[512];
    memset(warn, 'x', sizeof warn - 1);
    warn[sizeof warn - 1] = 0;
    cr_assert_eq(rj_dcache_open(dir, &c, warn, sizeof warn), RFJIT_OK);
    cr_assert_not_null(c, "cache on %s refused: %s", dir, warn);
    cr_assert_eq(warn[0], 0, "unexpected warning: %s", warn);
    return c;
}

/* The directory is refused: RFJIT_OK, no cache, a one-line warning containing want. */
static void expect_refused(const char *dir, const char *want)
{
    rj_dcache *c = (rj_dcache *)1;
    char warn[512] = "";
    cr_assert_eq(rj_dcache_open(dir, &c, warn, sizeof warn), RFJIT_OK);
    cr_assert_null(c, "%s was accepted", dir);
    cr_assert(strstr(warn, want), "warning for %s: \"%s\", want \"%s\"", dir, warn, want);
    cr_assert_null(strchr(warn, '\n'));
}

static void store_ok(rj_dcache *c, const rj_hash *k, const void *o, size_t n)
{
    rj_diag dg = {{0}};
    cr_assert_eq(rj_dcache_store(c, k, o, n, &dg), RFJIT_OK, "%s", dg.msg);
}

static void expect_hit(rj_dcache *c, const rj_hash *k, const unsigned char *o, size_t n)
{
    void *got = NULL;
    size_t sz = 0;
    char note[512] = "x";
    cr_assert_eq(rj_dcache_load(c, k, &got, &sz, note, sizeof note), 1, "miss: %s", note);
    cr_assert_eq(note[0], 0, "note on a hit: %s", note);
    cr_assert_eq(sz, n);
    cr_assert_eq(memcmp(got, o, n), 0, "loaded bytes differ");
    rj_free(got);
}

static void expect_stats(const rj_dcache *c, uint64_t hits, uint64_t misses, uint64_t bad,
                         uint64_t stores)
{
    rj_test_dcache_stats st;
    rj_test_dcache_get_stats(c, &st);
    cr_assert(st.hits == hits && st.misses == misses && st.bad == bad && st.stores == stores,
              "stats hits %llu misses %llu bad %llu stores %llu, want %llu %llu %llu %llu",
              (unsigned long long)st.hits, (unsigned long long)st.misses,
              (unsigned long long)st.bad, (unsigned long long)st.stores,
              (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)bad,
              (unsigned long long)stores);
}

static int count_names(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void read_file(const char *path, unsigned char *buf, size_t n)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(read(fd, buf, n), (ssize_t)n);
    close(fd);
}

static void write_file(const char *path, const unsigned char *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

static void xor_byte(const char *path, off_t off, unsigned char mask)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= mask;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* ---- BLAKE3 ------------------------------------------------------------------------------- */

/* The official BLAKE3 test vectors (input byte j is j % 251), first 32 bytes of output. */
Test(dcache, blake3_known_answers)
{
    static const struct {
        size_t len;
        const char *hex;
    } v[] = {
        {0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
        {1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
        {2, "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63"},
        {3, "e1be4d7a8ab5560aa4199eea339849ba8e293d55ca0a81006726d184519e647f"},
        {63, "e9bc37a594daad83be9470df7f7b3798297c3d834ce80ba85d6e207627b7db7b"},
        {64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"},
        {1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
    };
    unsigned char in[1023];
    for (size_t j = 0; j < sizeof in; j++)
        in[j] = (unsigned char)(j % 251);
    for (size_t t = 0; t < sizeof v / sizeof v[0]; t++) {
        rj_hash h;
        char hex[65];
        rj_hash_bytes(in, v[t].len, &h);
        rj_hash_hex(&h, hex);
        cr_assert_str_eq(hex, v[t].hex, "length %zu", v[t].len);
        /* Split anywhere into three parts: the same digest. */
        for (size_t a = 0; a <= v[t].len; a += 1 + v[t].len / 5) {
            size_t b = a + (v[t].len - a) / 2;
            const void *parts[3] = {in, in + a, in + b};
            size_t sizes[3] = {a, b - a, v[t].len - b};
            rj_hash g;
            rj_hash_parts(parts, sizes, 3, &g);
            cr_assert_eq(memcmp(g.b, h.b, 32), 0, "length %zu split at %zu, %zu", v[t].len, a,
                         b);
        }
    }
}

/* ---- directory ---------------------------------------------------------------------------- */

Test(dcache, disabled_when_dir_is_null_or_empty)
{
    const char *dirs[2] = {NULL, ""};
    for (int i = 0; i < 2; i++) {
        rj_dcache *c = (rj_dcache *)1;
        char warn[64] = "stale";
        cr_assert_eq(rj_dcache_open(dirs[i], &c, warn, sizeof warn), RFJIT_OK);
        cr_assert_null(c);
        cr_assert_eq(warn[0], 0, "warning: %s", warn);
    }
    /* A disabled cache is a valid argument everywhere: always a miss, stores nothing. */
    rj_hash k;
    key_of(0, &k);
    void *o = (void *)1;
    size_t n = 9;
    char note[32] = "stale";
    cr_assert_eq(rj_dcache_load(NULL, &k, &o, &n, note, sizeof note), 0);
    cr_assert(o == NULL && n == 0 && note[0] == 0);
    cr_assert_eq(rj_dcache_store(NULL, &k, "x", 1, NULL), RFJIT_OK);
    expect_stats(NULL, 0, 0, 0, 0);
    cr_assert_null(rj_dcache_dir(NULL));
    rj_dcache_close(NULL);
    cr_assert_eq(count_names(tdir), 0);
}

Test(dcache, creates_missing_dirs_with_mode_0700)
{
    /* With umask 0 the mode is exactly what mkdir was given, so 0755 or 0777 would show. */
    mode_t old = umask(0);
    char dir[256], want[256];
    snprintf(dir, sizeof dir, "%s/a/b/c//", tdir);
    snprintf(want, sizeof want, "%s/a/b/c", tdir);
    rj_dcache *c = open_ok(dir);
    umask(old);
    cr_assert_str_eq(rj_dcache_dir(c), want);
    const char *levels[3] = {"a", "a/b", "a/b/c"};
    for (int i = 0; i < 3; i++) {
        char p[256];
        struct stat sb;
        sub_path(p, sizeof p, levels[i]);
        cr_assert_eq(lstat(p, &sb), 0, "%s: %s", p, strerror(errno));
        cr_assert(S_ISDIR(sb.st_mode));
        cr_assert_eq(sb.st_mode & 07777, 0700, "%s has mode %o", p,
                     (unsigned)(sb.st_mode & 07777));
    }
    rj_dcache_close(c);
    /* Reopening an existing private directory is fine. */
    rj_dcache_close(open_ok(want));
}

Test(dcache, refuses_a_directory_writable_by_others)
{
    static const mode_t modes[3] = {0777, 0770, 0702};
    char dir[256];
    sub_path(dir, sizeof dir, "shared");
    cr_assert_eq(mkdir(dir, 0700), 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(chmod(dir, modes[i]), 0);
        expect_refused(dir, "writable by group or others");
        /* Left untouched: neither repaired nor written to. */
        struct stat sb;
        cr_assert_eq(stat(dir, &sb), 0);
        cr_assert_eq(sb.st_mode & 07777, modes[i]);
        cr_assert_eq(count_names(dir), 0);
    }
    /* Readable by others is not a risk: accepted. */
    cr_assert_eq(chmod(dir, 0755), 0);
    rj_dcache_close(open_ok(dir));
}

Test(dcache, refuses_a_symlinked_directory_or_a_file)
{
    char real[256], link[256], slash[300], file[256];
    sub_path(real, sizeof real, "real");
    sub_path(link, sizeof link, "link");
    sub_path(file, sizeof file, "file");
    snprintf(slash, sizeof slash, "%s/", link);
    cr_assert_eq(mkdir(real, 0700), 0);
    cr_assert_eq(symlink(real, link), 0);
    expect_refused(link, "symlink");
    /* A trailing slash makes lstat follow the link; it must not get through that way. */
    expect_refused(slash, "symlink");
    cr_assert_eq(count_names(real), 0);
    write_file(file, (const unsigned char *)"x", 1);
    expect_refused(file, "not a directory");
}

Test(dcache, refuses_a_directory_of_another_user)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to chown");
    char dir[256];
    sub_path(dir, sizeof dir, "foreign");
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(chown(dir, 65534, 65534), 0);
    expect_refused(dir, "not to us");
}

/* ---- round trip --------------------------------------------------------------------------- */

Test(dcache, store_then_load_round_trip)
{
    rj_dcache *c = open_ok(tdir);
    cr_assert_str_eq(rj_dcache_dir(c), tdir);
    static const size_t sizes[3] = {1, 4096, 300001};
    unsigned char *objs[3];
    rj_hash keys[3];
    for (int i = 0; i < 3; i++) {
        key_of(i, &keys[i]);
        objs[i] = obj_of(i, sizes[i]);
        store_ok(c, &keys[i], objs[i], sizes[i]);
    }
    expect_stats(c, 0, 0, 0, 3);
    for (int i = 0; i < 3; i++)
        expect_hit(c, &keys[i], objs[i], sizes[i]);
    expect_stats(c, 3, 0, 0, 3);
    cr_assert_eq(count_names(tdir), 3);

    /* The file: its name, mode, size and every header field as the architecture states it. */
    char path[400];
    entry_of(tdir, &keys[1], path, sizeof path);
    struct stat sb;
    cr_assert_eq(lstat(path, &sb), 0, "%s: %s", path, strerror(errno));
    cr_assert(S_ISREG(sb.st_mode));
    cr_assert_eq(sb.st_mode & 07777, 0600);
    cr_assert_eq((size_t)sb.st_size, HDR + sizes[1]);
    unsigned char h[HDR];
    read_file(path, h, HDR);
    static const unsigned char want_head[16] = {'R', 'F', 'J', 'I', 'T', 'O', 'B', 'J',
                                                1,   0,   0,   0,   0,   0,   0,   0};
    cr_assert_eq(memcmp(h, want_head, 16), 0, "magic, format or reserved");
    cr_assert_eq(memcmp(h + OFF_KEY, keys[1].b, 32), 0);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = len << 8 | h[OFF_SIZE + i];
    cr_assert_eq(len, sizes[1]);
    rj_hash sum;
    rj_hash_bytes(objs[1], sizes[1], &sum);
    cr_assert_eq(memcmp(h + OFF_HASH, sum.b, 32), 0);

    /* A second store of a key replaces the entry. */
    unsigned char *other = obj_of(7, 777);
    store_ok(c, &keys[0], other, 777);
    expect_hit(c, &keys[0], other, 777);
    expect_stats(c, 4, 0, 0, 4);
    cr_assert_eq(count_names(tdir), 3, "the replaced entry or a temporary file is left over");
    free(other);
    for (int i = 0; i < 3; i++)
        free(objs[i]);
    rj_dcache_close(c);

    /* Another instance (another process, in real use) sees the same entries. */
    c = open_ok(tdir);
    key_of(2, &keys[2]);
    objs[2] = obj_of(2, sizes[2]);
    expect_hit(c, &keys[2], objs[2], sizes[2]);
    free(objs[2]);
    rj_dcache_close(c);
}

Test(dcache, miss_on_an_absent_key)
{
    rj_dcache *c = open_ok(tdir);
    rj_hash k1, k2;
    key_of(1, &k1);
    key_of(2, &k2);
    unsigned char *o = obj_of(1, 100);
    store_ok(c, &k1, o, 100);
    void *got = (void *)1;
    size_t sz = 5;
    char note[256] = "stale";
    cr_assert_eq(rj_dcache_load(c, &k2, &got, &sz, note, sizeof note), 0);
    cr_assert_null(got);
    cr_assert_eq(sz, 0);
    cr_assert_eq(note[0], 0, "a plain miss has no note: %s", note);
    expect_stats(c, 0, 1, 0, 1);
    cr_assert_eq(count_names(tdir), 1);
    expect_hit(c, &k1, o, 100);
    free(o);
    rj_dcache_close(c);
}

Test(dcache, store_of_an_empty_object_is_refused)
{
    rj_dcache *c = open_ok(tdir);
    rj_hash k;
    key_of(0, &k);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_dcache_store(c, &k, "", 0, &dg), RFJIT_E_INVALID_ARG);
    cr_assert_eq(count_names(tdir), 0);
    rj_dcache_close(c);
}

Test(dcache, store_failure_is_an_io_error_with_the_errno_text)
{
    char dir[256];
    sub_path(dir, sizeof dir, "gone");
    rj_dcache *c = open_ok(dir);
    rj_hash k;
    key_of(0, &k);
    unsigned char *o = obj_of(0, 64);
    /* The directory vanishes under an open cache ("deleting the directory is always safe"). */
    rm_tree(dir);
    rj_diag dg = {{0}};
    cr_assert_eq(rj_dcache_store(c, &k, o, 64, &dg), RFJIT_E_IO);
    cr_assert(strstr(dg.msg, strerror(ENOENT)), "message: %s", dg.msg);
    expect_stats(c, 0, 0, 0, 0);

    /* A directory squatting on the entry name makes the rename fail: the temporary goes. */
    cr_assert_eq(mkdir(dir, 0700), 0);
    char path[400];
    entry_of(dir, &k, path, sizeof path);
    cr_assert_eq(mkdir(path, 0700), 0);
    dg.msg[0] = 0;
    cr_assert_eq(rj_dcache_store(c, &k, o, 64, &dg), RFJIT_E_IO);
    cr_assert(strstr(dg.msg, strerror(EISDIR)), "message: %s", dg.msg);
    cr_assert_eq(count_names(dir), 1, "the temporary file was left behind");
    free(o);
    rj_dcache_close(c);
}

/* ---- bad entries -------------------------------------------------------------------------- */

typedef void mutator(const char *path, size_t n);

/* Store a good entry, damage it with mut, and expect the load to reject it for the reason
 * want: a miss, no bytes, the file gone, counted as bad. Then a fresh store works again. */
static void expect_rejected(mutator *mut, const char *want)
{
    rj_dcache *c = open_ok(tdir);
    rj_hash k;
    key_of(3, &k);
    const size_t n = 5000;
    unsigned char *o = obj_of(3, n);
    store_ok(c, &k, o, n);
    char path[400];
    entry_of(tdir, &k, path, sizeof path);
    mut(path, n);

    void *got = (void *)1;
    size_t sz = 5;
    char note[512] = "";
    cr_assert_eq(rj_dcache_load(c, &k, &got, &sz, note, sizeof note), 0, "bad entry loaded");
    cr_assert_null(got);
    cr_assert_eq(sz, 0);
    cr_assert(strstr(note, want), "note \"%s\", want \"%s\"", note, want);
    cr_assert_null(strchr(note, '\n'));
    struct stat sb;
    cr_assert(lstat(path, &sb) != 0 && errno == ENOENT, "the bad entry was not unlinked");
    expect_stats(c, 0, 1, 1, 1);

    store_ok(c, &k, o, n);
    expect_hit(c, &k, o, n);
    expect_stats(c, 1, 1, 1, 2);
    free(o);
    rj_dcache_close(c);
}

static void truncate_object(const char *path, size_t n)
{
    cr_assert_eq(truncate(path, (off_t)(HDR + n - 1)), 0);
}

static void truncate_header(const char *path, size_t n)
{
    (void)n;
    cr_assert_eq(truncate(path, 40), 0);
}

static void append_byte(const char *path, size_t n)
{
    cr_assert_eq(truncate(path, (off_t)(HDR + n + 1)), 0);
}

static void flip_object_byte(const char *path, size_t n)
{
    xor_byte(path, (off_t)(HDR + n / 2), 0x01);
}

static void flip_last_object_byte(const char *path, size_t n)
{
    xor_byte(path, (off_t)(HDR + n - 1), 0x80);
}

static void flip_key_byte(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, OFF_KEY + 31, 0x10);
}

static void flip_magic(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, 3, 0x20); /* "RFJiTOBJ" */
}

static void bump_format(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, OFF_FORMAT, 0x03); /* 1 -> 2 */
}

static void set_reserved(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, OFF_FORMAT + 4, 0x01);
}

static void flip_size_field(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, OFF_SIZE, 0x01);
}

static void flip_stored_hash(const char *path, size_t n)
{
    (void)n;
    xor_byte(path, OFF_HASH + 7, 0x04);
}

Test(dcache, truncated_object_is_dropped)
{
    expect_rejected(truncate_object, "size mismatch");
}

Test(dcache, truncated_header_is_dropped)
{
    expect_rejected(truncate_header, "truncated header");
}

Test(dcache, trailing_bytes_are_dropped)
{
    expect_rejected(append_byte, "size mismatch");
}

Test(dcache, flipped_object_byte_is_dropped)
{
    expect_rejected(flip_object_byte, "content hash mismatch");
    expect_rejected(flip_last_object_byte, "content hash mismatch");
}

Test(dcache, flipped_header_key_byte_is_dropped)
{
    expect_rejected(flip_key_byte, "another key");
}

Test(dcache, wrong_magic_is_dropped)
{
    expect_rejected(flip_magic, "wrong magic");
}

Test(dcache, wrong_format_or_reserved_is_dropped)
{
    expect_rejected(bump_format, "format 2.0");
    expect_rejected(set_reserved, "format 1.1");
}

Test(dcache, wrong_size_field_is_dropped)
{
    expect_rejected(flip_size_field, "size mismatch");
}

Test(dcache, wrong_stored_hash_is_dropped)
{
    expect_rejected(flip_stored_hash, "content hash mismatch");
}

/* A symlink at the entry name pointing at a perfectly valid entry: following it would load. */
static void plant_symlink(const char *path, size_t n)
{
    (void)n;
    char target[256];
    sub_path(target, sizeof target, "elsewhere.o");
    cr_assert_eq(rename(path, target), 0);
    cr_assert_eq(symlink(target, path), 0);
}

Test(dcache, symlink_at_the_entry_name_is_dropped)
{
    expect_rejected(plant_symlink, "symlink");
    char target[256];
    struct stat sb;
    sub_path(target, sizeof target, "elsewhere.o");
    cr_assert_eq(lstat(target, &sb), 0, "the symlink's target must be left alone");
    cr_assert(S_ISREG(sb.st_mode));
}

static void plant_fifo(const char *path, size_t n)
{
    (void)n;
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(mkfifo(path, 0600), 0);
}

/* Opening a FIFO for reading blocks until a writer appears unless the load takes care. */
Test(dcache, fifo_at_the_entry_name_is_dropped_without_blocking, .timeout = 10)
{
    expect_rejected(plant_fifo, "not a regular file");
}

static void give_away(const char *path, size_t n)
{
    (void)n;
    cr_assert_eq(chown(path, 65534, 65534), 0);
}

Test(dcache, entry_of_another_user_is_dropped)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to chown");
    expect_rejected(give_away, "not by us");
}

/* A valid entry of key A copied to key B's name: ours, well-formed, hash right, wrong key. */
Test(dcache, entry_under_another_keys_name_is_dropped)
{
    rj_dcache *c = open_ok(tdir);
    rj_hash ka, kb;
    key_of(10, &ka);
    key_of(11, &kb);
    unsigned char *o = obj_of(10, 3000);
    store_ok(c, &ka, o, 3000);
    char pa[400], pb[400];
    entry_of(tdir, &ka, pa, sizeof pa);
    entry_of(tdir, &kb, pb, sizeof pb);
    unsigned char buf[HDR + 3000];
    read_file(pa, buf, sizeof buf);
    write_file(pb, buf, sizeof buf);

    void *got = (void *)1;
    size_t sz = 1;
    char note[512] = "";
    cr_assert_eq(rj_dcache_load(c, &kb, &got, &sz, note, sizeof note), 0);
    cr_assert_null(got);
    cr_assert(strstr(note, "another key"), "note: %s", note);
    struct stat sb;
    cr_assert(lstat(pb, &sb) != 0 && errno == ENOENT);
    expect_stats(c, 0, 1, 1, 1);
    expect_hit(c, &ka, o, 3000);
    free(o);
    rj_dcache_close(c);
}

/* ---- concurrency -------------------------------------------------------------------------- */

#define NKEYS 7 /* key 0 is shared by both writers every round; 1..6 rotate */
#define ROUNDS 200

static size_t size_of_key(int i)
{
    return 20000 + 9973 * (size_t)i;
}

/* 0 if the load missed cleanly or hit with exactly the right bytes; nonzero otherwise. */
static int check_load(rj_dcache *c, int i, const unsigned char *want, int *hits)
{
    rj_hash k;
    key_of(i, &k);
    void *got = NULL;
    size_t sz = 0;
    char note[512] = "";
    int hit = rj_dcache_load(c, &k, &got, &sz, note, sizeof note);
    int bad = note[0] != 0 || (hit ? sz != size_of_key(i) || memcmp(got, want, sz) != 0 : 0);
    if (note[0])
        fprintf(stderr, "unexpected bad entry: %s\n", note);
    rj_free(got);
    *hits += hit;
    return bad;
}

/* Child bodies: exit codes, never Criterion assertions (the child is not the test). */
static void writer(int w, int gate)
{
    char b;
    if (read(gate, &b, 1) != 0)
        _exit(10);
    rj_dcache *c = NULL;
    if (rj_dcache_open(tdir, &c, NULL, 0) != RFJIT_OK || !c)
        _exit(11);
    unsigned char *objs[NKEYS];
    rj_hash keys[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        key_of(i, &keys[i]);
        objs[i] = obj_of(i, size_of_key(i));
    }
    for (int r = 0; r < ROUNDS; r++) {
        int other = 1 + (r + 3 * w) % (NKEYS - 1);
        rj_diag dg = {{0}};
        if (rj_dcache_store(c, &keys[0], objs[0], size_of_key(0), &dg) != RFJIT_OK ||
            rj_dcache_store(c, &keys[other], objs[other], size_of_key(other), &dg) != RFJIT_OK) {
            fprintf(stderr, "writer %d: %s\n", w, dg.msg);
            _exit(12);
        }
    }
    _exit(0);
}

static void reader(int gate, int stop)
{
    char b;
    if (read(gate, &b, 1) != 0)
        _exit(20);
    rj_dcache *c = NULL;
    if (rj_dcache_open(tdir, &c, NULL, 0) != RFJIT_OK || !c)
        _exit(21);
    unsigned char *objs[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        objs[i] = obj_of(i, size_of_key(i));
    fcntl(stop, F_SETFL, O_NONBLOCK);
    int hits = 0, loads = 0, last = 0;
    while (!last) {
        last = read(stop, &b, 1) == 1; /* one more full pass after the writers are done */
        for (int i = 0; i < NKEYS; i++, loads++)
            if (check_load(c, i, objs[i], &hits))
                _exit(22);
    }
    /* After the writers finished every key exists, so the last pass alone gives NKEYS hits. */
    _exit(hits >= NKEYS && loads > NKEYS ? 0 : 23);
}

static int exit_code(pid_t pid)
{
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(dcache, concurrent_writers_and_a_reader_in_separate_processes, .timeout = 120)
{
    int gate[2], stop[2];
    cr_assert_eq(pipe(gate), 0);
    cr_assert_eq(pipe(stop), 0);
    pid_t pids[3];
    for (int p = 0; p < 3; p++) {
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            close(gate[1]);
            close(stop[1]);
            if (p < 2)
                writer(p, gate[0]);
            reader(gate[0], stop[0]);
        }
    }
    close(gate[0]);
    close(stop[0]);
    close(gate[1]); /* all three start together */
    int w0 = exit_code(pids[0]);
    int w1 = exit_code(pids[1]);
    /* A reader that already failed has closed its end: EPIPE, not a fatal SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    ssize_t wr = write(stop[1], "x", 1);
    (void)wr;
    close(stop[1]);
    int r = exit_code(pids[2]);
    cr_assert(w0 == 0 && w1 == 0, "writers exited %d and %d", w0, w1);
    cr_assert_eq(r, 0, "reader exited %d (22: bad load, 23: too few hits)", r);

    /* Every entry whole, and nothing else in the directory (no temporary file left). */
    rj_dcache *c = open_ok(tdir);
    for (int i = 0; i < NKEYS; i++) {
        rj_hash k;
        key_of(i, &k);
        unsigned char *o = obj_of(i, size_of_key(i));
        expect_hit(c, &k, o, size_of_key(i));
        free(o);
    }
    rj_dcache_close(c);
    DIR *d = opendir(tdir);
    cr_assert_not_null(d);
    struct dirent *e;
    int entries = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int known = 0;
        for (int i = 0; i < NKEYS && !known; i++) {
            rj_hash k;
            char hex[65], name[80];
            key_of(i, &k);
            rj_hash_hex(&k, hex);
            snprintf(name, sizeof name, "%s.o", hex);
            known = strcmp(name, e->d_name) == 0;
        }
        cr_assert(known, "unexpected file %s", e->d_name);
        entries++;
    }
    closedir(d);
    cr_assert_eq(entries, NKEYS);
}

typedef struct thread_arg {
    rj_dcache *c;
    int t, failures;
} thread_arg;

#define THREADS 4
#define THREAD_ROUNDS 100

static void *thread_body(void *p)
{
    thread_arg *a = p;
    unsigned char *objs[NKEYS];
    for (int i = 0; i < NKEYS; i++)
        objs[i] = obj_of(i, size_of_key(i));
    int hits = 0;
    for (int r = 0; r < THREAD_ROUNDS; r++) {
        int i = (r + a->t) % NKEYS;
        rj_hash k;
        key_of(i, &k);
        rj_diag dg = {{0}};
        a->failures += rj_dcache_store(a->c, &k, objs[i], size_of_key(i), &dg) != RFJIT_OK;
        a->failures += check_load(a->c, (i + 1) % NKEYS, objs[(i + 1) % NKEYS], &hits);
    }
    for (int i = 0; i < NKEYS; i++)
        free(objs[i]);
    return NULL;
}

/* One rj_dcache shared by threads: the counters add up exactly (no lost updates). */
Test(dcache, one_cache_shared_by_threads, .timeout = 60)
{
    rj_dcache *c = open_ok(tdir);
    pthread_t th[THREADS];
    thread_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (thread_arg){c, t, 0};
        cr_assert_eq(pthread_create(&th[t], NULL, thread_body, &args[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        cr_assert_eq(pthread_join(th[t], NULL), 0);
        cr_assert_eq(args[t].failures, 0, "thread %d", t);
    }
    rj_test_dcache_stats st;
    rj_test_dcache_get_stats(c, &st);
    cr_assert_eq(st.stores, THREADS * THREAD_ROUNDS);
    cr_assert_eq(st.hits + st.misses, THREADS * THREAD_ROUNDS);
    cr_assert_eq(st.bad, 0);
    cr_assert_gt(st.hits, 0);
    cr_assert_eq(count_names(tdir), NKEYS);
    rj_dcache_close(c);
}

/* ---------------------------------------------------------------- the size bound */

static int present(const char *dir, const rj_hash *k)
{
    char path[400];
    entry_of(dir, k, path, sizeof path);
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Pretend entry k was last used `age` seconds ago (mtime is the last use). */
static void age_entry(const char *dir, const rj_hash *k, time_t age)
{
    char path[400];
    entry_of(dir, k, path, sizeof path);
    const struct timespec t[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0, "%s: %s", path, strerror(errno));
}

/* Four 1000-byte objects (1096 bytes as entries) under a 3500-byte bound: the fourth store
 * evicts the least recently used; a hit makes an old entry recent again, so the next
 * eviction takes another. */
Test(dcache, size_bound_evicts_the_least_recently_used)
{
    rj_dcache *c = open_ok(tdir);
    rj_dcache_set_limit(c, 3500);
    rj_hash k[5];
    unsigned char *o[5];
    for (int i = 0; i < 5; i++) {
        key_of(i, &k[i]);
        o[i] = obj_of(i, 1000);
    }
    for (int i = 0; i < 3; i++) {
        store_ok(c, &k[i], o[i], 1000);
        age_entry(tdir, &k[i], 300 - 100 * i); /* 0 oldest, then 1, then 2 */
    }
    expect_hit(c, &k[0], o[0], 1000); /* 0 is now the most recent */
    store_ok(c, &k[3], o[3], 1000);
    cr_expect(present(tdir, &k[0]), "the entry just used was evicted");
    cr_expect(!present(tdir, &k[1]), "the least recently used entry survived");
    cr_expect(present(tdir, &k[2]) && present(tdir, &k[3]));
    cr_expect_eq(count_names(tdir), 3);
    age_entry(tdir, &k[3], 1000); /* the newest store is never its own victim, even if old */
    store_ok(c, &k[4], o[4], 1000);
    cr_expect(!present(tdir, &k[3]) && present(tdir, &k[4]) && count_names(tdir) == 3,
              "LRU order not followed");
    for (int i = 0; i < 5; i++)
        free(o[i]);
    rj_dcache_close(c);
}

/* An object the bound cannot hold is not stored (it would evict everything, itself too);
 * files that are not our entries are never touched by a sweep; a dead writer's temporary
 * file is removed once stale, a live one's is left alone. */
Test(dcache, size_bound_spares_what_is_not_an_entry)
{
    rj_dcache *c = open_ok(tdir);
    rj_dcache_set_limit(c, 1500);
    rj_hash k[3];
    key_of(0, &k[0]);
    key_of(1, &k[1]);
    key_of(2, &k[2]);
    unsigned char *big = obj_of(0, 2000), *small = obj_of(1, 1000);
    store_ok(c, &k[0], big, 2000);
    cr_expect(!present(tdir, &k[0]), "an entry larger than the bound was kept");
    char path[400], stale[400], fresh[400], link[400];
    snprintf(path, sizeof path, "%s/notes.txt", tdir);
    snprintf(stale, sizeof stale, "%s/.tmp-0123456789abcdef-dead01", tdir);
    snprintf(fresh, sizeof fresh, "%s/.tmp-0123456789abcdef-live01", tdir);
    const char *files[3] = {path, stale, fresh};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(files[i], "w");
        cr_assert_not_null(f);
        for (int j = 0; j < 5000; j++)
            fputc('x', f);
        fclose(f);
    }
    const struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, stale, old, 0), 0);
    cr_assert_eq(utimensat(AT_FDCWD, path, old, 0), 0);
    entry_of(tdir, &k[2], link, sizeof link);
    cr_assert_eq(symlink(path, link), 0); /* an entry name that is a symlink: not ours */
    store_ok(c, &k[1], small, 1000);
    store_ok(c, &k[1], small, 1000);
    struct stat sb;
    cr_expect_eq(lstat(path, &sb), 0, "a foreign file was removed");
    cr_expect_eq(lstat(link, &sb), 0, "a symlink at an entry name was removed");
    cr_expect_neq(lstat(stale, &sb), 0, "a dead writer's temporary file was kept");
    cr_expect_eq(lstat(fresh, &sb), 0, "a live writer's temporary file was removed");
    expect_hit(c, &k[1], small, 1000);
    free(big);
    free(small);
    rj_dcache_close(c);
}
