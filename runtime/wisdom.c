/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/wisdom.h. Reading trusts nothing: the file is opened without
 * following symlinks, must be a regular file under WISDOM_MAX_BYTES, and every line is
 * checked (printable ASCII, at most LINE_MAX_BYTES, key, patience, value) before it is
 * merged. Writing never tears a file (temporary file in the same directory, fsync, rename)
 * and never loses another writer's records (an flock on a sidecar lock file around
 * re-read, merge and rename; the lock file is never renamed, so every writer locks the same
 * inode).
 */
#include "wisdom.h"

#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "rfjit-wisdom 1"
#define WISDOM_MAX_BYTES (16u << 20)
#define LINE_MAX_BYTES 4096
#define PATIENCE_MAX 3

typedef struct rec {
    char *key, *value;
    int patience;
} rec;

struct rj_wisdom {
    char *sig;
    rec *r;
    size_t n, cap;
};

static char *dup_n(const char *s, size_t n)
{
    char *p = rj_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int printable(const char *s, size_t n, int allow_space)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || (!allow_space && c == ' '))
            return 0;
    }
    return 1;
}

static int key_ok(const char *k, size_t n)
{
    return n > 0 && n < LINE_MAX_BYTES && printable(k, n, 0) && !memchr(k, '=', n);
}

rfjit_status rj_wisdom_create(const char *signature, rj_wisdom **out)
{
    *out = NULL;
    if (!signature || !printable(signature, strlen(signature), 1))
        return RFJIT_E_INVALID_ARG;
    rj_wisdom *w = rj_alloc_zero(sizeof *w);
    if (!w || !(w->sig = dup_n(signature, strlen(signature)))) {
        rj_free(w);
        return RFJIT_E_NOMEM;
    }
    *out = w;
    return RFJIT_OK;
}

void rj_wisdom_forget(rj_wisdom *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        rj_free(w->r[i].key);
        rj_free(w->r[i].value);
    }
    w->n = 0;
}

void rj_wisdom_destroy(rj_wisdom *w)
{
    if (!w)
        return;
    rj_wisdom_forget(w);
    rj_free(w->r);
    rj_free(w->sig);
    rj_free(w);
}

/* Index of key, or of where it would go (*found = 0). */
static size_t find(const rj_wisdom *w, const char *key, size_t klen, int *found)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        const char *k = w->r[mid].key;
        int c = strncmp(k, key, klen);
        if (c == 0)
            c = k[klen] ? 1 : 0;
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/* Insert or replace (when patience >= the old one's); key, value already checked. */
static rfjit_status put_n(rj_wisdom *w, const char *key, size_t klen, int patience,
                          const char *value, size_t vlen)
{
    int found;
    const size_t at = find(w, key, klen, &found);
    if (found && patience < w->r[at].patience)
        return RFJIT_OK;
    char *v = dup_n(value, vlen);
    if (!v)
        return RFJIT_E_NOMEM;
    if (found) {
        rj_free(w->r[at].value);
        w->r[at].value = v;
        w->r[at].patience = patience;
        return RFJIT_OK;
    }
    char *k = dup_n(key, klen);
    void *arr = w->r;
    if (!k || !rj_grow(&arr, w->n, &w->cap, sizeof *w->r)) {
        rj_free(k);
        rj_free(v);
        return RFJIT_E_NOMEM;
    }
    w->r = arr;
    memmove(w->r + at + 1, w->r + at, (w->n - at) * sizeof *w->r);
    w->r[at] = (rec){k, v, patience};
    w->n++;
    return RFJIT_OK;
}

rfjit_status rj_wisdom_put(rj_wisdom *w, const char *key, int patience, const char *value,
                           rj_diag *dg)
{
    RJ_FAIL_IF(dg, !w || !key || !value, RFJIT_E_INVALID_ARG, "wisdom: NULL argument");
    const size_t kl = strlen(key), vl = strlen(value);
    RJ_FAIL_IF(dg, !key_ok(key, kl), RFJIT_E_INVALID_ARG,
               "wisdom key must be printable ASCII without spaces or '='");
    RJ_FAIL_IF(dg, !printable(value, vl, 1) || kl + vl + 16 > LINE_MAX_BYTES,
               RFJIT_E_INVALID_ARG, "wisdom value must be printable ASCII and short");
    RJ_FAIL_IF(dg, patience < 0 || patience > PATIENCE_MAX, RFJIT_E_INVALID_ARG,
               "wisdom patience %d is outside 0..%d", patience, PATIENCE_MAX);
    RJ_FAIL_IF(dg, put_n(w, key, kl, patience, value, vl) != RFJIT_OK, RFJIT_E_NOMEM,
               "no memory for wisdom");
    return RFJIT_OK;
}

const char *rj_wisdom_get(const rj_wisdom *w, const char *key, int min_patience,
                          int *patience_out)
{
    if (!w || !key)
        return NULL;
    int found;
    const size_t at = find(w, key, strlen(key), &found);
    if (!found || w->r[at].patience < min_patience)
        return NULL;
    if (patience_out)
        *patience_out = w->r[at].patience;
    return w->r[at].value;
}

size_t rj_wisdom_count(const rj_wisdom *w)
{
    return w ? w->n : 0;
}

void rj_wisdom_record(const rj_wisdom *w, size_t i, const char **key, int *patience,
                      const char **value)
{
    *key = w->r[i].key;
    *patience = w->r[i].patience;
    *value = w->r[i].value;
}

/* One record line "<key> patience=<p> <value>" (no newline): 0 if malformed. */
static int parse_line(const char *s, size_t n, const char **k, size_t *kl, int *p,
                      const char **v, size_t *vl)
{
    if (n == 0 || n > LINE_MAX_BYTES || !printable(s, n, 1))
        return 0;
    const char *sp = memchr(s, ' ', n);
    if (!sp || !key_ok(s, (size_t)(sp - s)))
        return 0;
    *k = s;
    *kl = (size_t)(sp - s);
    const char *rest = sp + 1;
    const size_t rn = n - *kl - 1;
    static const char pat[] = "patience=";
    if (rn < sizeof pat || memcmp(rest, pat, sizeof pat - 1) != 0)
        return 0;
    const char d = rest[sizeof pat - 1];
    if (d < '0' || d > '0' + PATIENCE_MAX)
        return 0;
    *p = d - '0';
    if (rn == sizeof pat) { /* no value */
        *v = rest + rn;
        *vl = 0;
        return 1;
    }
    if (rest[sizeof pat] != ' ')
        return 0;
    *v = rest + sizeof pat + 1;
    *vl = rn - sizeof pat - 1;
    return 1;
}

static void report(rj_wisdom_report *rep, const char *fmt, const char *arg)
{
    if (rep)
        snprintf(rep->why, sizeof rep->why, fmt, arg);
}

rfjit_status rj_wisdom_from_text(rj_wisdom *w, const char *text, size_t len, int strict,
                                 rj_wisdom_report *rep, rj_diag *dg)
{
    rj_wisdom_report none;
    if (!rep)
        rep = &none;
    memset(rep, 0, sizeof *rep);
    /* header and signature lines */
    const char *end = text + len, *p = text;
    const char *nl = memchr(p, '\n', len);
    if (!nl || (size_t)(nl - p) != strlen(HEADER) || memcmp(p, HEADER, strlen(HEADER)) != 0) {
        rep->ignored_file = 1;
        report(rep, "%s", "not a wisdom file (first line is not \"" HEADER "\")");
        RJ_FAIL_IF(dg, strict, RFJIT_E_WISDOM_FORMAT, "%s", rep->why);
        return RFJIT_OK;
    }
    p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p));
    const size_t sl = strlen(w->sig);
    if (!nl || (size_t)(nl - p) != sl + 10 || memcmp(p, "signature ", 10) != 0 ||
        memcmp(p + 10, w->sig, sl) != 0) {
        rep->foreign = 1;
        report(rep, "%s",
               "written on another machine or by another build (signature differs)");
        RJ_FAIL_IF(dg, strict, RFJIT_E_WISDOM_FORMAT, "%s", rep->why);
        return RFJIT_OK;
    }
    p = nl + 1;
    /* strict: check everything before merging anything */
    for (int pass = strict ? 0 : 1; pass < 2; pass++) {
        for (const char *q = p; q < end;) {
            const char *e = memchr(q, '\n', (size_t)(end - q));
            const size_t n = e ? (size_t)(e - q) : (size_t)(end - q);
            const char *k, *v;
            size_t kl, vl;
            int pat;
            /* a last line without its newline was cut short: it is not trusted */
            const int ok = e && parse_line(q, n, &k, &kl, &pat, &v, &vl);
            if (!ok) {
                RJ_FAIL_IF(dg, strict, RFJIT_E_WISDOM_FORMAT,
                           "malformed wisdom record at byte %zu", (size_t)(q - text));
                rep->bad_lines++;
            } else if (pass == 1 && put_n(w, k, kl, pat, v, vl) != RFJIT_OK) {
                return rj_fail(dg, RFJIT_E_NOMEM, "no memory for wisdom");
            }
            q += n + (e != NULL);
        }
    }
    if (rep->bad_lines)
        snprintf(rep->why, sizeof rep->why, "%d malformed record(s) dropped", rep->bad_lines);
    return RFJIT_OK;
}

rfjit_status rj_wisdom_to_text(const rj_wisdom *w, char **text, size_t *len, rj_diag *dg)
{
    size_t n = strlen(HEADER) + 12 + strlen(w->sig) + 1;
    for (size_t i = 0; i < w->n; i++)
        n += strlen(w->r[i].key) + strlen(w->r[i].value) + 14;
    char *t = rj_alloc(n);
    RJ_FAIL_IF(dg, !t, RFJIT_E_NOMEM, "no memory for wisdom text");
    size_t at = (size_t)snprintf(t, n, "%s\nsignature %s\n", HEADER, w->sig);
    for (size_t i = 0; i < w->n; i++)
        at += (size_t)snprintf(t + at, n - at, "%s patience=%d%s%s\n", w->r[i].key,
                               w->r[i].patience, w->r[i].value[0] ? " " : "", w->r[i].value);
    *text = t;
    *len = at;
    return RFJIT_OK;
}

rfjit_status rj_wisdom_default_path(char *buf, size_t n, rj_diag *dg)
{
    const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int r;
    if (x && x[0] == '/')
        r = snprintf(buf, n, "%s/rfjit/wisdom", x);
    else if (home && home[0])
        r = snprintf(buf, n, "%s/.local/share/rfjit/wisdom", home);
    else
        return rj_fail(dg, RFJIT_E_IO, "no XDG_DATA_HOME or HOME for the wisdom file");
    RJ_FAIL_IF(dg, r < 0 || (size_t)r >= n, RFJIT_E_IO, "wisdom path too long");
    return RFJIT_OK;
}


rfjit_status rj_wisdom_load(rj_wisdom *w, const char *path, int strict, rj_wisdom_report *rep,
                            rj_diag *dg)
{
    rj_wisdom_report none;
    if (!rep)
        rep = &none;
    memset(rep, 0, sizeof *rep);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT && !strict)
            return RFJIT_OK;
        rep->ignored_file = 1;
        snprintf(rep->why, sizeof rep->why, "cannot open it: %s",
                 errno == ELOOP ? "a symlink" : strerror(errno));
        RJ_FAIL_IF(dg, strict, errno == ELOOP ? RFJIT_E_WISDOM_FORMAT : RFJIT_E_IO, "%s: %s",
                   path, rep->why);
        return RFJIT_OK;
    }
    struct stat sb;
    const char *bad = NULL;
    if (fstat(fd, &sb) != 0)
        bad = "cannot stat it";
    else if (!S_ISREG(sb.st_mode))
        bad = "not a regular file";
    else if ((uint64_t)sb.st_size > WISDOM_MAX_BYTES)
        bad = "larger than 16 MiB";
    char *text = NULL;
    if (!bad && !(text = rj_alloc((size_t)sb.st_size + 1))) {
        close(fd);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory to read %s", path);
    }
    if (!bad && rj_read_full(fd, text, (size_t)sb.st_size) != 0)
        bad = "cannot read it (it changed while read)";
    close(fd);
    if (bad) {
        rj_free(text);
        rep->ignored_file = 1;
        snprintf(rep->why, sizeof rep->why, "%s", bad);
        RJ_FAIL_IF(dg, strict, RFJIT_E_WISDOM_FORMAT, "%s: %s", path, bad);
        return RFJIT_OK;
    }
    rj_diag why = {{0}};
    rfjit_status s = rj_wisdom_from_text(w, text, (size_t)sb.st_size, strict, rep, &why);
    rj_free(text);
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "%s: %.400s", path, why.msg);
    return s;
}

/* mkdir -p of path's directory, 0700 for what it creates. */
static int make_parent(const char *path, char *dir, size_t n)
{
    snprintf(dir, n, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, n, ".");
        return 0;
    }
    if (slash == dir) {
        dir[1] = 0;
        return 0;
    }
    *slash = 0;
    return rj_mkdir_p(dir);
}


rfjit_status rj_wisdom_save(rj_wisdom *w, const char *path, rj_diag *dg)
{
    const size_t pl = strlen(path);
    RJ_FAIL_IF(dg, pl == 0 || pl > 4000, RFJIT_E_INVALID_ARG, "bad wisdom path");
    char dir[4096], lock[4112], tmp[4112];
    RJ_FAIL_IF(dg, make_parent(path, dir, sizeof dir) != 0, RFJIT_E_IO,
               "cannot create the directory of %s: %s", path, strerror(errno));
    snprintf(lock, sizeof lock, "%s.lock", path);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    RJ_FAIL_IF(dg, lfd < 0, RFJIT_E_IO, "cannot open %s: %s", lock, strerror(errno));
    while (flock(lfd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(lfd);
            return rj_fail(dg, RFJIT_E_IO, "cannot lock %s: %s", lock, strerror(errno));
        }
    /* what others saved meanwhile: theirs win where more patient, ours on ties */
    rj_wisdom *disk = NULL;
    rfjit_status s = rj_wisdom_create(w->sig, &disk);
    rj_wisdom_report rep;
    if (s == RFJIT_OK)
        s = rj_wisdom_load(disk, path, 0, &rep, dg);
    for (size_t i = 0; s == RFJIT_OK && i < disk->n; i++) {
        int p;
        if (!rj_wisdom_get(w, disk->r[i].key, 0, &p) || disk->r[i].patience > p)
            s = put_n(w, disk->r[i].key, strlen(disk->r[i].key), disk->r[i].patience,
                      disk->r[i].value, strlen(disk->r[i].value));
    }
    rj_wisdom_destroy(disk);
    char *text = NULL;
    size_t len = 0;
    if (s == RFJIT_OK)
        s = rj_wisdom_to_text(w, &text, &len, dg);
    int fd = -1;
    if (s == RFJIT_OK) {
        snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
        fd = mkstemp(tmp);
        if (fd < 0)
            s = rj_fail(dg, RFJIT_E_IO, "cannot create a temporary file next to %s: %s", path,
                        strerror(errno));
    }
    if (s == RFJIT_OK) {
        int err = rj_write_full(fd, text, len) != 0 || fsync(fd) != 0 ? errno : 0;
        if (close(fd) != 0 && !err)
            err = errno;
        if (!err && rename(tmp, path) != 0)
            err = errno;
        if (err) {
            unlink(tmp);
            s = rj_fail(dg, RFJIT_E_IO, "cannot write %s: %s", path, strerror(err));
        } else {
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    }
    rj_free(text);
    flock(lfd, LOCK_UN);
    close(lfd);
    return s;
}
