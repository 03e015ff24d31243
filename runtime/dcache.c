/* SPDX-License-Identifier: MIT */
/*
 * This file implements the disk cache of runtime/dcache.h. An entry is
 *
 *     "RFJITOBJ" | u32 format (1) | u32 0 | key (32) | u64 size | BLAKE3(object) (32) | object
 *
 * and everything is checked (regular file, our uid, not a symlink: O_NOFOLLOW + fstat; magic,
 * format, key, size, hash) before a byte of it is returned, so a truncated, corrupted,
 * planted or foreign file can only cost a recompile.
 */
#include "dcache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "RFJITOBJ"
#define FORMAT 1u
#define HEADER (8 + 4 + 4 + 32 + 8 + 32)

struct rj_dcache {
    char dir[4096];
    pthread_mutex_t mu;
    rj_dcache_stats st;
};

/* mkdir -p with mode 0700 for the parts we create. */
static int make_dirs(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

rfjit_status rj_dcache_open(const char *dir, rj_dcache **out, char *warn, size_t n)
{
    *out = NULL;
    if (n)
        warn[0] = 0;
    if (!dir || !*dir)
        return RFJIT_OK;
    if (strlen(dir) > 3000) {
        snprintf(warn, n, "cache directory path is too long");
        return RFJIT_OK;
    }
    if (make_dirs(dir) != 0) {
        snprintf(warn, n, "cannot create %s: %s", dir, strerror(errno));
        return RFJIT_OK;
    }
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        snprintf(warn, n, "cannot stat %s: %s", dir, strerror(errno));
        return RFJIT_OK;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(warn, n, "%s is not a directory (symlinks are refused)", dir);
        return RFJIT_OK;
    }
    if (sb.st_uid != geteuid()) {
        snprintf(warn, n, "%s belongs to uid %u, not to us", dir, (unsigned)sb.st_uid);
        return RFJIT_OK;
    }
    if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(warn, n, "%s is writable by group or others (mode %03o)", dir,
                 (unsigned)(sb.st_mode & 0777));
        return RFJIT_OK;
    }
    rj_dcache *c = rj_alloc_zero(sizeof *c);
    if (!c)
        return RFJIT_E_NOMEM;
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return RFJIT_OK;
}

void rj_dcache_close(rj_dcache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    rj_free(c);
}

static void entry_path(const rj_dcache *c, const rj_hash *key, char *path, size_t n)
{
    char hex[65];
    rj_hash_hex(key, hex);
    snprintf(path, n, "%s/%s.o", c->dir, hex);
}

static void count(rj_dcache *c, uint64_t *field)
{
    pthread_mutex_lock(&c->mu);
    (*field)++;
    pthread_mutex_unlock(&c->mu);
}

static int read_all(int fd, void *p, size_t n)
{
    unsigned char *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Check one opened entry; returns NULL and fills why on any mismatch. */
static void *verify(int fd, const rj_hash *key, size_t *size, char *why, size_t n)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid()) {
        snprintf(why, n, "not a regular file of ours");
        return NULL;
    }
    unsigned char h[HEADER];
    if ((size_t)sb.st_size < HEADER || read_all(fd, h, HEADER) != 0) {
        snprintf(why, n, "truncated header");
        return NULL;
    }
    uint32_t fmt;
    uint64_t len;
    memcpy(&fmt, h + 8, 4);
    memcpy(&len, h + 48, 8);
    if (memcmp(h, MAGIC, 8) != 0 || fmt != FORMAT) {
        snprintf(why, n, "wrong magic or format");
        return NULL;
    }
    if (memcmp(h + 16, key->b, 32) != 0) {
        snprintf(why, n, "key mismatch");
        return NULL;
    }
    if (len == 0 || (uint64_t)sb.st_size != HEADER + len) {
        snprintf(why, n, "size mismatch (%llu bytes for a %llu-byte object)",
                 (unsigned long long)sb.st_size, (unsigned long long)len);
        return NULL;
    }
    void *obj = rj_alloc((size_t)len);
    if (!obj) {
        snprintf(why, n, "no memory");
        return NULL;
    }
    rj_hash got;
    if (read_all(fd, obj, (size_t)len) != 0) {
        snprintf(why, n, "short read");
        rj_free(obj);
        return NULL;
    }
    rj_hash_bytes(obj, (size_t)len, &got);
    if (memcmp(got.b, h + 56, 32) != 0) {
        snprintf(why, n, "content hash mismatch");
        rj_free(obj);
        return NULL;
    }
    *size = (size_t)len;
    return obj;
}

int rj_dcache_load(rj_dcache *c, const rj_hash *key, void **obj, size_t *size, char *note,
                   size_t n)
{
    if (n)
        note[0] = 0;
    *obj = NULL;
    *size = 0;
    char path[4200];
    entry_path(c, key, path, sizeof path);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP) {
            snprintf(note, n, "%s is a symlink", path);
            unlink(path);
            count(c, &c->st.bad);
        }
        count(c, &c->st.misses);
        return 0;
    }
    char why[256] = "";
    *obj = verify(fd, key, size, why, sizeof why);
    close(fd);
    if (!*obj) {
        snprintf(note, n, "%s: %s", path, why);
        unlink(path);
        count(c, &c->st.bad);
        count(c, &c->st.misses);
        return 0;
    }
    count(c, &c->st.hits);
    return 1;
}

static int write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

rfjit_status rj_dcache_store(rj_dcache *c, const rj_hash *key, const void *obj, size_t size,
                             rj_diag *dg)
{
    char path[4200], tmp[4200];
    entry_path(c, key, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s/.tmp.XXXXXX", c->dir);
    int fd = mkstemp(tmp);
    RJ_FAIL_IF(dg, fd < 0, RFJIT_E_IO, "cannot create a file in %s: %s", c->dir,
               strerror(errno));
    unsigned char h[HEADER] = {0};
    uint32_t fmt = FORMAT;
    uint64_t len = size;
    rj_hash hh;
    rj_hash_bytes(obj, size, &hh);
    memcpy(h, MAGIC, 8);
    memcpy(h + 8, &fmt, 4);
    memcpy(h + 16, key->b, 32);
    memcpy(h + 48, &len, 8);
    memcpy(h + 56, hh.b, 32);
    int bad = write_all(fd, h, HEADER) != 0 || write_all(fd, obj, size) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return rj_fail(dg, RFJIT_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    count(c, &c->st.stores);
    return RFJIT_OK;
}

void rj_dcache_get_stats(const rj_dcache *c, rj_dcache_stats *st)
{
    rj_dcache *m = (rj_dcache *)c;
    pthread_mutex_lock(&m->mu);
    *st = c->st;
    pthread_mutex_unlock(&m->mu);
}

const char *rj_dcache_dir(const rj_dcache *c)
{
    return c->dir;
}
