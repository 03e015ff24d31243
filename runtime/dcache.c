/* SPDX-License-Identifier: MIT */
/*
 * This file implements the disk cache of runtime/dcache.h. An entry is a 96-byte header and
 * the object, all integers little-endian so the layout does not depend on the host:
 *
 *     off  0  "RFJITOBJ"            off 16  key (32)               off 64  BLAKE3(object) (32)
 *     off  8  u32 format (1)        off 48  u64 object size        off 96  object
 *     off 12  u32 reserved (0)
 *
 * Trust: the directory is used only if it is ours and not writable by anyone else, and each
 * entry is opened with O_NOFOLLOW and checked with fstat (regular, our euid) before a byte is
 * read; then magic, format, reserved, key, size against the file size, and the content hash.
 * So a truncated, torn (crash before the data reached the disk: there is no fsync, the hash
 * catches it), corrupted, planted, renamed or foreign file costs a recompile and nothing
 * else. The hash is not a MAC; a writer with our uid is trusted.
 *
 * Writers: mkstemp (0600) in the directory, write, close, rename over the final name. Rename
 * within one directory is atomic, so concurrent readers and writers of one key need no lock,
 * and a writer killed at any point leaves at most a ".tmp-" file, never a torn entry. There
 * is no fsync: after a power cut an entry may be torn, and the content hash drops it.
 *
 * Size bound: a hit sets the entry's mtime to now (futimens on the descriptor it verified),
 * so mtime is the last use across processes. After each store the directory is swept: our
 * own regular entries are summed and, above the bound, the least recently used are unlinked
 * (never the one just written), and ".tmp-" files older than STALE_TMP_S (writers that
 * died) are removed. Sweeps race harmlessly: an entry already gone is simply gone. An object
 * larger than the bound is not stored. Stores follow compiles (tens of ms each), so one
 * directory scan per store costs nothing that matters.
 */
#include "runtime/dcache.h"

#include "core/le.h"
#include "runtime/fsutil.h"

#ifdef RFJIT_TESTING
#include "core/testing.h"

#include <pthread.h>
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FORMAT_VERSION 1u
/* A temporary file this old belongs to a writer that died (a store takes milliseconds). */
#define STALE_TMP_S 600
#define HEADER_SIZE 96
/* Longest directory we accept: leaves room for "/<64 hex>.o" and the temporary name in the
 * fixed path buffers below, and stays under Linux's PATH_MAX of 4096. */
#define DIR_MAX 3968
#define PATH_BUF (DIR_MAX + 128)

static const char magic[8] = {'R', 'F', 'J', 'I', 'T', 'O', 'B', 'J'};

struct rj_dcache {
#ifdef RFJIT_TESTING
    /* The counters of rj_test_dcache_get_stats (core/testing.h), which only tests read. */
    pthread_mutex_t mu; /* guards st only; the files need no lock (see the top comment) */
    rj_test_dcache_stats st;
#endif
    uint64_t max_bytes; /* the size bound; UINT64_MAX: none */
    char dir[]; /* no trailing slash, so lstat sees a symlink rather than its target */
};

/* ---- directory ---------------------------------------------------------------------------- */


rfjit_status rj_dcache_open(const char *dir, rj_dcache **out, char *warn, size_t n)
{
    *out = NULL;
    if (n)
        warn[0] = 0;
    if (!dir || !*dir)
        return RFJIT_OK;
    size_t len = strlen(dir);
    if (len > DIR_MAX) {
        snprintf(warn, n, "cache directory path is longer than %d bytes", DIR_MAX);
        return RFJIT_OK;
    }
    rj_dcache *c = rj_alloc_zero(sizeof *c + len + 1);
    if (!c)
        return RFJIT_E_NOMEM;
    memcpy(c->dir, dir, len + 1);
    c->max_bytes = RJ_DCACHE_DEFAULT_MAX;
    /* "link/" would make lstat follow the link, so the symlink check needs them gone. */
    while (len > 1 && c->dir[len - 1] == '/')
        c->dir[--len] = 0;

    const char *why = NULL;
    char reason[160] = "";
    struct stat sb;
    if (rj_mkdir_p(c->dir) != 0)
        snprintf(reason, sizeof reason, "cannot create it: %s", strerror(errno));
    else if (lstat(c->dir, &sb) != 0)
        snprintf(reason, sizeof reason, "cannot stat it: %s", strerror(errno));
    else if (S_ISLNK(sb.st_mode))
        why = "it is a symlink";
    else if (!S_ISDIR(sb.st_mode))
        why = "it is not a directory";
    else if (sb.st_uid != geteuid())
        snprintf(reason, sizeof reason, "it belongs to uid %lu, not to us (%lu)",
                 (unsigned long)sb.st_uid, (unsigned long)geteuid());
    else if (sb.st_mode & (S_IWGRP | S_IWOTH))
        snprintf(reason, sizeof reason, "it is writable by group or others (mode %03lo)",
                 (unsigned long)(sb.st_mode & 0777));
    if (why || reason[0]) {
        snprintf(warn, n, "%s: %s", c->dir, why ? why : reason);
        rj_free(c);
        return RFJIT_OK;
    }
#ifdef RFJIT_TESTING
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rj_free(c);
        return RFJIT_E_NOMEM;
    }
#endif
    *out = c;
    return RFJIT_OK;
}

void rj_dcache_close(rj_dcache *c)
{
    if (!c)
        return;
#ifdef RFJIT_TESTING
    pthread_mutex_destroy(&c->mu);
#endif
    rj_free(c);
}

void rj_dcache_set_limit(rj_dcache *c, uint64_t max_bytes)
{
    if (c)
        c->max_bytes = max_bytes;
}

const char *rj_dcache_dir(const rj_dcache *c)
{
    return c ? c->dir : NULL;
}

#ifdef RFJIT_TESTING
void rj_test_dcache_get_stats(const rj_dcache *c, rj_test_dcache_stats *st)
{
    *st = (rj_test_dcache_stats){0, 0, 0, 0};
    if (!c)
        return;
    /* Reading the counters is logically const; the lock is not (c is always heap-allocated). */
    pthread_mutex_t *mu = (pthread_mutex_t *)&c->mu;
    pthread_mutex_lock(mu);
    *st = c->st;
    pthread_mutex_unlock(mu);
}

static void count(rj_dcache *c, uint64_t *field)
{
    pthread_mutex_lock(&c->mu);
    (*field)++;
    pthread_mutex_unlock(&c->mu);
}
#define COUNT(c, field) count((c), &(c)->st.field)
#else
#define COUNT(c, field) ((void)(c))
#endif

static void entry_path(const rj_dcache *c, const rj_hash *key, char path[PATH_BUF])
{
    char hex[65];
    rj_hash_hex(key, hex);
    snprintf(path, PATH_BUF, "%s/%s.o", c->dir, hex);
}

/* ---- load --------------------------------------------------------------------------------- */


/* V_SKIP: the entry could not be judged (no memory, fstat failed) and may be fine: it stays. */
typedef enum { V_OK, V_BAD, V_SKIP } verdict;

/* Check the opened entry sb describes and read its object; on V_BAD, why says what failed. */
static verdict verify(int fd, const struct stat *sb, const rj_hash *key, void **obj,
                      size_t *size, char *why, size_t n)
{
    if (!S_ISREG(sb->st_mode)) {
        snprintf(why, n, "not a regular file");
        return V_BAD;
    }
    if (sb->st_uid != geteuid()) {
        snprintf(why, n, "owned by uid %lu, not by us", (unsigned long)sb->st_uid);
        return V_BAD;
    }
    unsigned char h[HEADER_SIZE];
    if (sb->st_size < HEADER_SIZE) {
        snprintf(why, n, "truncated header (%lld bytes)", (long long)sb->st_size);
        return V_BAD;
    }
    if (rj_read_full(fd, h, HEADER_SIZE) != 0) {
        snprintf(why, n, "cannot read the header: %s", strerror(errno));
        return V_BAD;
    }
    if (memcmp(h, magic, sizeof magic) != 0) {
        snprintf(why, n, "wrong magic");
        return V_BAD;
    }
    if (rj_le_get_u32(h + 8) != FORMAT_VERSION || rj_le_get_u32(h + 12) != 0) {
        snprintf(why, n, "format %lu.%lu, expected %u.0", (unsigned long)rj_le_get_u32(h + 8),
                 (unsigned long)rj_le_get_u32(h + 12), FORMAT_VERSION);
        return V_BAD;
    }
    if (memcmp(h + 16, key->b, sizeof key->b) != 0) {
        snprintf(why, n, "the header holds another key");
        return V_BAD;
    }
    /* The stated size must account for the file exactly: this also bounds the allocation
     * by the real file size, whatever the header says. */
    uint64_t len = rj_le_get_u64(h + 48);
    uint64_t body = (uint64_t)sb->st_size - HEADER_SIZE;
    if (len == 0 || len != body || len != (uint64_t)(size_t)len) {
        snprintf(why, n, "size mismatch (header %llu, file holds %llu)", (unsigned long long)len,
                 (unsigned long long)body);
        return V_BAD;
    }
    unsigned char *o = rj_alloc((size_t)len);
    if (!o)
        return V_SKIP;
    if (rj_read_full(fd, o, (size_t)len) != 0) {
        snprintf(why, n, "cannot read the object: %s", strerror(errno));
        rj_free(o);
        return V_BAD;
    }
    rj_hash got;
    rj_hash_bytes(o, (size_t)len, &got);
    if (memcmp(got.b, h + 64, sizeof got.b) != 0) {
        snprintf(why, n, "content hash mismatch");
        rj_free(o);
        return V_BAD;
    }
    *obj = o;
    *size = (size_t)len;
    return V_OK;
}

/* Remove a bad entry, but only if the name still refers to what we judged (same inode, or a
 * symlink when same is NULL): a writer may have renamed a good entry over it meanwhile, and
 * deleting that would waste its compile. The window between lstat and unlink remains; losing
 * it costs one recompile, never a wrong load. */
static void drop(const char *path, const struct stat *same)
{
    struct stat now;
    if (lstat(path, &now) != 0)
        return;
    if (same ? now.st_dev == same->st_dev && now.st_ino == same->st_ino : S_ISLNK(now.st_mode))
        unlink(path);
}

int rj_dcache_load(rj_dcache *c, const rj_hash *key, void **obj, size_t *size, char *note,
                   size_t n)
{
    if (n)
        note[0] = 0;
    *obj = NULL;
    *size = 0;
    if (!c)
        return 0;
    char path[PATH_BUF];
    entry_path(c, key, path);
    /* O_NONBLOCK: a FIFO planted at the name must not hang the open; no effect on files. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        /* Linux reports a symlink under O_NOFOLLOW as ELOOP. Anything else (ENOENT, EACCES) is
         * a plain miss: there is nothing we could judge, and a store will replace it. */
        if (errno == ELOOP) {
            snprintf(note, n, "%s: a symlink", path);
            drop(path, NULL);
            COUNT(c, bad);
        }
        COUNT(c, misses);
        return 0;
    }
    struct stat sb;
    char why[192] = "";
    verdict v = fstat(fd, &sb) != 0 ? V_SKIP : verify(fd, &sb, key, obj, size, why, sizeof why);
    if (v == V_OK)
        (void)futimens(fd, NULL); /* last use, for the size bound; best effort */
    close(fd);
    if (v == V_OK) {
        COUNT(c, hits);
        return 1;
    }
    if (v == V_BAD) {
        snprintf(note, n, "%s: %s", path, why);
        drop(path, &sb);
        COUNT(c, bad);
    }
    COUNT(c, misses);
    return 0;
}

/* ---- size bound ---------------------------------------------------------------------------- */

typedef struct cached_file {
    char name[72]; /* 64 hex + ".o" */
    uint64_t bytes;
    struct timespec used;
} cached_file;

static int entry_name(const char *s)
{
    size_t i = 0;
    for (; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return !strcmp(s + 64, ".o");
}

static int older_first(const void *a, const void *b)
{
    const struct timespec *x = &((const cached_file *)a)->used,
                          *y = &((const cached_file *)b)->used;
    if (x->tv_sec != y->tv_sec)
        return x->tv_sec < y->tv_sec ? -1 : 1;
    return x->tv_nsec < y->tv_nsec ? -1 : x->tv_nsec > y->tv_nsec;
}

/* Remove dead writers' temporaries, then least recently used entries until the directory's
 * entries fit the bound; `keep` (the entry just stored) stays. Only our own regular files
 * with the entry or temporary name pattern are looked at; lstat semantics throughout. A
 * failure (no memory, unreadable directory) leaves the directory as it was. */
static void sweep(rj_dcache *c, const char *keep)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    const int dfd = dirfd(d);
    const time_t now = time(NULL);
    cached_file *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const int tmp = !strncmp(e->d_name, ".tmp-", 5);
        if (!tmp && !entry_name(e->d_name))
            continue;
        struct stat sb;
        if (fstatat(dfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode) ||
            sb.st_uid != geteuid())
            continue;
        if (tmp) {
            if (now - sb.st_mtime > STALE_TMP_S)
                (void)unlinkat(dfd, e->d_name, 0);
            continue;
        }
        void *grown = v;
        if (!rj_grow(&grown, n, &cap, sizeof *v))
            break;
        v = grown;
        memcpy(v[n].name, e->d_name, 67); /* entry_name: exactly 66 characters and the NUL */
        v[n].bytes = (uint64_t)sb.st_size;
        v[n].used = sb.st_mtim;
        total += v[n++].bytes;
    }
    if (total > c->max_bytes && e == NULL) {
        qsort(v, n, sizeof *v, older_first);
        for (size_t i = 0; i < n && total > c->max_bytes; i++)
            if (strcmp(v[i].name, keep) && (unlinkat(dfd, v[i].name, 0) == 0 || errno == ENOENT))
                total -= v[i].bytes;
    }
    rj_free(v);
    closedir(d);
}

/* ---- store -------------------------------------------------------------------------------- */


rfjit_status rj_dcache_store(rj_dcache *c, const rj_hash *key, const void *obj, size_t size,
                             rj_diag *dg)
{
    if (!c)
        return RFJIT_OK;
    RJ_FAIL_IF(dg, !obj || size == 0, RFJIT_E_INVALID_ARG, "refusing to cache an empty object");
    if (size > c->max_bytes - HEADER_SIZE || c->max_bytes < HEADER_SIZE)
        return RFJIT_OK; /* it would evict everything and itself: not kept */
    unsigned char h[HEADER_SIZE] = {0};
    rj_hash sum;
    rj_hash_bytes(obj, size, &sum);
    memcpy(h, magic, sizeof magic);
    rj_le_put_u32(h + 8, FORMAT_VERSION);
    rj_le_put_u32(h + 12, 0);
    memcpy(h + 16, key->b, sizeof key->b);
    rj_le_put_u64(h + 48, (uint64_t)size);
    memcpy(h + 64, sum.b, sizeof sum.b);

    char path[PATH_BUF], tmp[PATH_BUF];
    entry_path(c, key, path);
    /* The leading dot keeps temporaries apart from entries; readers never open them. */
    snprintf(tmp, sizeof tmp, "%s/.tmp-%.16s-XXXXXX", c->dir, path + strlen(c->dir) + 1);
    int fd = mkstemp(tmp);
    RJ_FAIL_IF(dg, fd < 0, RFJIT_E_IO, "cannot create a temporary file in %s: %s", c->dir,
               strerror(errno));
    int err = rj_write_full(fd, h, sizeof h) != 0 || rj_write_full(fd, obj, size) != 0 ? errno : 0;
    err = rj_replace_file(fd, tmp, path, 0, err); /* no fsync: see the top comment */
    RJ_FAIL_IF(dg, err, RFJIT_E_IO, "cannot write %s: %s", path, strerror(err));
    COUNT(c, stores);
    sweep(c, path + strlen(c->dir) + 1);
    return RFJIT_OK;
}
