/* SPDX-License-Identifier: MIT */
/*
 * This file implements runtime/wisdom.h. Reading trusts nothing: the file is opened without
 * following symlinks, must be a regular file of at most WISDOM_MAX_BYTES, and every line is
 * checked (printable ASCII, at most LINE_MAX_BYTES, key, patience, value) before it is
 * merged; a last line without its newline was cut short and is not trusted. Writing never
 * tears a file (temporary file in the same directory, fsync, rename, fsync of the directory)
 * and never loses another writer's records (an flock on a sidecar lock file around re-read,
 * merge and rename; the lock file is never renamed or removed, so every writer locks the
 * same inode).
 *
 * Not for: deciding what keys and values mean (the tuner does), thread safety (the context
 * serialises access), owner or mode checks on the file (a writer with our uid is trusted, as
 * in the disk cache).
 */
#include "runtime/wisdom.h"

#include "runtime/fsutil.h"
#include "runtime/xdg.h"

#ifdef RFJIT_TESTING
#include "core/testing.h"
#endif

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER "rfjit-wisdom 1"
#define SIG_PREFIX "signature "
#define PAT_PREFIX " patience="
#define PATIENCE_MAX 3
/* A bound on what a load may cost whatever the file holds. A record line is ~100-300 bytes,
 * so this is 50,000 or more tuned problems, far beyond any real history. */
#define WISDOM_MAX_BYTES RJ_WISDOM_MAX_BYTES
/* Longest record line, newline excluded. Nothing is ever truncated to fit: put refuses a
 * record whose line would be longer, and a longer line in a file is a malformed line. */
#define LINE_MAX_BYTES RJ_WISDOM_LINE_MAX
_Static_assert(LINE_MAX_BYTES == 4096, "parse_line's message names the limit");
/* Longest path save accepts: leaves room for ".lock" and ".tmp-XXXXXX" under PATH_MAX. */
#define PATH_MAX_BYTES 4000
/* runtime/fsutil.h's temporary file suffix; orphan_sweep recognises leftovers by it. */
#define TMP_SUFFIX ".tmp-XXXXXX"

typedef struct rec {
    char *key, *value;
    int patience;
} rec;

/* Invariant: r[0..n) sorted by strcmp of key, keys unique. */
struct rj_wisdom {
    char *sig;
    rec *r;
    size_t n, cap;
    rj_wisdom_check_fn check; /* NULL: every well-formed line is a record */
    void *check_user;
};

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
    return n > 0 && printable(k, n, 0) && !memchr(k, '=', n);
}

/* Length of "<key> patience=<p>[ <value>]", the record's line without its newline. */
static size_t line_len(size_t kl, size_t vl)
{
    return kl + strlen(PAT_PREFIX) + 1 + (vl ? 1 + vl : 0);
}

rfjit_status rj_wisdom_create(const char *signature, rj_wisdom **out)
{
    if (!out)
        return RFJIT_E_INVALID_ARG;
    *out = NULL;
    if (!signature || !printable(signature, strlen(signature), 1))
        return RFJIT_E_INVALID_ARG;
    rj_wisdom *w = rj_alloc_zero(sizeof *w);
    if (!w || !(w->sig = rj_strdup(signature))) {
        rj_free(w);
        return RFJIT_E_NOMEM;
    }
    *out = w;
    return RFJIT_OK;
}

void rj_wisdom_set_check(rj_wisdom *w, rj_wisdom_check_fn check, void *user)
{
    w->check = check;
    w->check_user = user;
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

/* Index of key (klen bytes, not NUL-terminated), or where it would go (*found = 0). The
 * order is strcmp's, so it does not depend on the locale. */
static size_t find(const rj_wisdom *w, const char *key, size_t klen, int *found)
{
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
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

/* Insert, or replace when patience >= the old one's. Key and value are already checked;
 * RFJIT_E_NOMEM leaves w as it was. */
static rfjit_status put_n(rj_wisdom *w, const char *key, size_t klen, int patience,
                          const char *value, size_t vlen)
{
    int found;
    const size_t at = find(w, key, klen, &found);
    if (found && patience < w->r[at].patience)
        return RFJIT_OK;
    char *v = rj_strndup(value, vlen);
    if (!v)
        return RFJIT_E_NOMEM;
    if (found) {
        rj_free(w->r[at].value);
        w->r[at].value = v;
        w->r[at].patience = patience;
        return RFJIT_OK;
    }
    char *k = rj_strndup(key, klen);
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
               "wisdom key \"%.100s\" must be non-empty printable ASCII without spaces or '='",
               key);
    RJ_FAIL_IF(dg, !printable(value, vl, 1), RFJIT_E_INVALID_ARG,
               "wisdom value for %.100s must be printable ASCII (no newline)", key);
    RJ_FAIL_IF(dg, line_len(kl, vl) > LINE_MAX_BYTES, RFJIT_E_INVALID_ARG,
               "wisdom record for %.100s is %zu bytes, longer than the %d a line may hold", key,
               line_len(kl, vl), LINE_MAX_BYTES);
    RJ_FAIL_IF(dg, patience < 0 || patience > PATIENCE_MAX, RFJIT_E_INVALID_ARG,
               "wisdom patience %d is outside 0..%d", patience, PATIENCE_MAX);
    RJ_FAIL_IF(dg, put_n(w, key, kl, patience, value, vl) != RFJIT_OK, RFJIT_E_NOMEM,
               "no memory for a wisdom record");
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

#ifdef RFJIT_TESTING
void rj_test_wisdom_record(const rj_wisdom *w, size_t i, const char **key, int *patience,
                           const char **value)
{
    assert(w && i < w->n);
    *key = w->r[i].key;
    *patience = w->r[i].patience;
    *value = w->r[i].value;
}
#endif

/* ---- text ------------------------------------------------------------------------------ */

typedef struct line_view {
    const char *k, *v;
    size_t kl, vl;
    int patience;
} line_view;

/* Parse one record line (n bytes, newline excluded): NULL, or why it is malformed. */
static const char *parse_line(const char *s, size_t n, line_view *lv)
{
    if (n > LINE_MAX_BYTES)
        return "longer than 4096 bytes";
    if (!printable(s, n, 1))
        return "a byte that is not printable ASCII";
    const char *sp = memchr(s, ' ', n);
    if (!sp || !key_ok(s, (size_t)(sp - s)))
        return "no key, or a key with '='";
    const size_t kl = (size_t)(sp - s), pl = strlen(PAT_PREFIX);
    const size_t used = kl + pl + 1;
    if (n < used || memcmp(sp, PAT_PREFIX, pl) != 0 || sp[pl] < '0' ||
        sp[pl] > '0' + PATIENCE_MAX || (used < n && s[used] != ' '))
        return "no \"patience=0..3\" after the key";
    /* only what to_text writes: an empty value has no space after the patience */
    if (used + 1 == n)
        return "a space but no value after the patience";
    *lv = (line_view){.k = s,
                      .kl = kl,
                      .patience = sp[pl] - '0',
                      .v = used < n ? s + used + 1 : s + n,
                      .vl = used < n ? n - used - 1 : 0};
    return NULL;
}

/* The owner's verdict on a well-formed line: NULL, or why (in why, n bytes) it means
 * nothing. */
static const char *checked(const rj_wisdom *w, const line_view *lv, char *why, size_t n)
{
    if (!w->check)
        return NULL;
    char key[LINE_MAX_BYTES + 1], value[LINE_MAX_BYTES + 1];
    memcpy(key, lv->k, lv->kl);
    key[lv->kl] = 0;
    memcpy(value, lv->v, lv->vl);
    value[lv->vl] = 0;
    why[0] = 0;
    if (w->check(w->check_user, key, value, why, n))
        return NULL;
    return why[0] ? why : "a record its reader refuses";
}

/* The two header lines: 1 and *body set, or 0 with rep filled. */
static int head_ok(const rj_wisdom *w, const char *text, size_t len, rj_wisdom_report *rep,
                   const char **body)
{
    const char *end = text + len;
    const char *nl = memchr(text, '\n', len);
    const size_t hl = strlen(HEADER);
    if (!nl || (size_t)(nl - text) != hl || memcmp(text, HEADER, hl) != 0) {
        rep->ignored_file = 1;
        snprintf(rep->why, sizeof rep->why, "not a wisdom file (first line is not \"%s\")",
                 HEADER);
        return 0;
    }
    const char *p = nl + 1;
    nl = memchr(p, '\n', (size_t)(end - p));
    const size_t sp = strlen(SIG_PREFIX), sl = strlen(w->sig);
    if (!nl || (size_t)(nl - p) != sp + sl || memcmp(p, SIG_PREFIX, sp) != 0 ||
        memcmp(p + sp, w->sig, sl) != 0) {
        rep->foreign = 1;
        snprintf(rep->why, sizeof rep->why,
                 "written on another machine or by another build (signature differs)");
        return 0;
    }
    *body = nl + 1;
    return 1;
}

/* Walk the record lines of body: merge the good ones if merge, count the bad ones in rep
 * and remember the first (line number from 1, header included, and why: first_why holds
 * n bytes). */
static rfjit_status walk(rj_wisdom *w, const char *body, const char *end, int merge,
                         rj_wisdom_report *rep, size_t *first_bad, char *first_why, size_t n_why)
{
    size_t lineno = 3;
    for (const char *q = body; q < end; lineno++) {
        const char *e = memchr(q, '\n', (size_t)(end - q));
        const size_t n = e ? (size_t)(e - q) : (size_t)(end - q);
        line_view lv;
        char refused[200];
        const char *why = e ? parse_line(q, n, &lv) : "cut short (no newline at the end)";
        if (!why)
            why = checked(w, &lv, refused, sizeof refused);
        if (why) {
            if (!rep->bad_lines++) {
                *first_bad = lineno;
                snprintf(first_why, n_why, "%s", why);
            }
        } else if (merge && put_n(w, lv.k, lv.kl, lv.patience, lv.v, lv.vl) != RFJIT_OK) {
            return RFJIT_E_NOMEM;
        }
        q += n + (e != NULL);
    }
    return RFJIT_OK;
}

rfjit_status rj_wisdom_from_text(rj_wisdom *w, const char *text, size_t len, int strict,
                                 rj_wisdom_report *rep, rj_diag *dg)
{
    rj_wisdom_report none;
    if (!rep)
        rep = &none;
    memset(rep, 0, sizeof *rep);
    RJ_FAIL_IF(dg, !w || (!text && len), RFJIT_E_INVALID_ARG, "wisdom: NULL argument");
    if (!text)
        text = "";
    const char *body;
    if (!head_ok(w, text, len, rep, &body)) {
        RJ_FAIL_IF(dg, strict, RFJIT_E_WISDOM_FORMAT, "%s", rep->why);
        return RFJIT_OK;
    }
    size_t first = 0;
    char why[200] = "";
    /* strict merges all or nothing, so it checks every line before merging one */
    if (strict) {
        RJ_TRY(walk(w, body, text + len, 0, rep, &first, why, sizeof why));
        RJ_FAIL_IF(dg, rep->bad_lines, RFJIT_E_WISDOM_FORMAT,
                   "%d malformed wisdom line(s), the first is line %zu: %s", rep->bad_lines,
                   first, why);
    }
    RJ_FAIL_IF(dg, walk(w, body, text + len, 1, rep, &first, why, sizeof why) != RFJIT_OK,
               RFJIT_E_NOMEM, "no memory for wisdom records");
    if (rep->bad_lines)
        snprintf(rep->why, sizeof rep->why,
                 "%d malformed line(s) dropped, the first is line %zu: %s", rep->bad_lines, first,
                 why);
    return RFJIT_OK;
}

static void append(char *t, size_t *at, const char *s, size_t n)
{
    memcpy(t + *at, s, n);
    *at += n;
}

rfjit_status rj_wisdom_to_text(const rj_wisdom *w, char **text, size_t *len, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !w || !text || !len, RFJIT_E_INVALID_ARG, "wisdom: NULL argument");
    *text = NULL;
    *len = 0;
    const size_t hl = strlen(HEADER), sp = strlen(SIG_PREFIX), sl = strlen(w->sig);
    size_t n = hl + 1 + sp + sl + 1;
    for (size_t i = 0; i < w->n; i++) /* each at most LINE_MAX_BYTES + 1: no overflow */
        n += line_len(strlen(w->r[i].key), strlen(w->r[i].value)) + 1;
    char *t = rj_alloc(n + 1);
    RJ_FAIL_IF(dg, !t, RFJIT_E_NOMEM, "no memory for %zu bytes of wisdom text", n);
    size_t at = 0;
    append(t, &at, HEADER "\n" SIG_PREFIX, hl + 1 + sp);
    append(t, &at, w->sig, sl);
    append(t, &at, "\n", 1);
    for (size_t i = 0; i < w->n; i++) {
        const rec *r = &w->r[i];
        const size_t vl = strlen(r->value);
        append(t, &at, r->key, strlen(r->key));
        append(t, &at, PAT_PREFIX, strlen(PAT_PREFIX));
        const char p = (char)('0' + r->patience);
        append(t, &at, &p, 1);
        if (vl) { /* an empty value leaves no trailing space */
            append(t, &at, " ", 1);
            append(t, &at, r->value, vl);
        }
        append(t, &at, "\n", 1);
    }
    assert(at == n);
    t[at] = 0;
    *text = t;
    *len = at;
    return RFJIT_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

rfjit_status rj_wisdom_default_path(char *buf, size_t n, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !buf || !n, RFJIT_E_INVALID_ARG, "wisdom path: no buffer");
    char why[512];
    const int r = rj_xdg_path("XDG_DATA_HOME", ".local/share", "rfjit/wisdom", buf, n, why,
                              sizeof why);
    RJ_FAIL_IF(dg, r == RJ_XDG_TOO_LONG, RFJIT_E_INVALID_ARG, "wisdom path: %s", why);
    RJ_FAIL_IF(dg, r != 0, RFJIT_E_IO, "no directory for the wisdom file: %s", why);
    return RFJIT_OK;
}

/* A file that is not wisdom to read: reported, and an error only when strict. */
static rfjit_status refuse(rj_wisdom_report *rep, int strict, rfjit_status s, const char *path,
                           const char *why, rj_diag *dg)
{
    rep->ignored_file = 1;
    snprintf(rep->why, sizeof rep->why, "%s", why);
    RJ_FAIL_IF(dg, strict, s, "wisdom file %s: %s", path, why);
    return RFJIT_OK;
}

rfjit_status rj_wisdom_load(rj_wisdom *w, const char *path, int strict, rj_wisdom_report *rep,
                            rj_diag *dg)
{
    rj_wisdom_report none;
    if (!rep)
        rep = &none;
    memset(rep, 0, sizeof *rep);
    RJ_FAIL_IF(dg, !w || !path, RFJIT_E_INVALID_ARG, "wisdom: NULL argument");
    /* O_NONBLOCK: a FIFO planted at path must not hang the open; fstat then refuses it */
    const int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        const int e = errno;
        if (e == ENOENT) /* no wisdom saved yet */
            return RFJIT_OK;
        if (e == ELOOP)
            return refuse(rep, strict, RFJIT_E_WISDOM_FORMAT, path, "it is a symlink", dg);
        char why[160];
        snprintf(why, sizeof why, "cannot open it: %s", strerror(e));
        return refuse(rep, strict, RFJIT_E_IO, path, why, dg);
    }
    struct stat sb;
    const char *bad = NULL;
    char kind[80];
    rfjit_status bad_s = RFJIT_E_WISDOM_FORMAT;
    if (fstat(fd, &sb) != 0) {
        bad = "cannot stat it";
        bad_s = RFJIT_E_IO;
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(kind, sizeof kind, "it is a %s, not a regular file", rj_file_kind(sb.st_mode));
        bad = kind;
    } else if ((uint64_t)sb.st_size > WISDOM_MAX_BYTES) {
        bad = "larger than 16 MiB";
    }
    char *text = NULL;
    if (!bad && !(text = rj_alloc((size_t)sb.st_size + 1))) {
        close(fd);
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory to read %s", path);
    }
    /* writers replace the file by rename and never write into it, so a short read means
     * someone else did: the text is not trusted */
    if (!bad && rj_read_full(fd, text, (size_t)sb.st_size) != 0) {
        bad = "cannot read it (it changed while read)";
        bad_s = RFJIT_E_IO;
    }
    close(fd);
    if (bad) {
        rj_free(text);
        return refuse(rep, strict, bad_s, path, bad, dg);
    }
    rj_diag why = {{0}};
    const rfjit_status s = rj_wisdom_from_text(w, text, (size_t)sb.st_size, strict, rep, &why);
    rj_free(text);
    if (s != RFJIT_OK)
        return rj_fail(dg, s, "wisdom file %s: %.400s", path, why.msg);
    return RFJIT_OK;
}

/* Move d's records into w (both sorted: one linear merge). Per key the more patient record
 * wins, w's on a tie. d is left empty; on RFJIT_E_NOMEM both are unchanged. */
static rfjit_status merge_from(rj_wisdom *w, rj_wisdom *d)
{
    const size_t cap = w->n + d->n;
    rec *m = rj_alloc_array(cap, sizeof *m);
    if (!m)
        return RFJIT_E_NOMEM;
    size_t i = 0, j = 0, n = 0;
    while (i < w->n || j < d->n) {
        const int c = i == w->n ? 1 : j == d->n ? -1 : strcmp(w->r[i].key, d->r[j].key);
        if (c < 0) {
            m[n++] = w->r[i++];
        } else if (c > 0) {
            m[n++] = d->r[j++];
        } else {
            const int theirs = d->r[j].patience > w->r[i].patience;
            rec *drop = theirs ? &w->r[i] : &d->r[j];
            m[n++] = theirs ? d->r[j] : w->r[i];
            rj_free(drop->key);
            rj_free(drop->value);
            i++;
            j++;
        }
    }
    rj_free(w->r);
    w->r = m;
    w->n = n;
    w->cap = cap;
    d->n = 0;
    return RFJIT_OK;
}

/* Temporary files of writers that died between creating and renaming them. Every writer
 * makes its temporary file while holding the lock, so under the lock any left are orphans. */
static void orphan_sweep(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    const size_t bl = strlen(base), sl = strlen(TMP_SUFFIX);
    for (const struct dirent *e; (e = readdir(d));) {
        const char *nm = e->d_name;
        if (strlen(nm) == bl + sl && memcmp(nm, base, bl) == 0 &&
            memcmp(nm + bl, TMP_SUFFIX, sl - 6) == 0)
            unlinkat(dirfd(d), nm, 0); /* never a directory: flags 0 refuses those */
    }
    closedir(d);
}

/* Write w to a temporary file next to path, fsync, rename over path, fsync the directory. */
static rfjit_status replace_file(const rj_wisdom *w, const char *path, rj_diag *dg)
{
    char *text = NULL;
    size_t len = 0;
    RJ_TRY(rj_wisdom_to_text(w, &text, &len, dg));
    char why[RJ_PATH_BYTES + 160];
    /* mode 0600 for a new file: wisdom is private to its user */
    const int rc = rj_write_file(path, text, len, 0600, 1, why, sizeof why);
    rj_free(text);
    RJ_FAIL_IF(dg, rc != 0, RFJIT_E_IO, "wisdom file %.3900s", why);
    return RFJIT_OK;
}

/* Under the lock: drop orphans, merge what is on disk into w, replace the file. */
static rfjit_status save_locked(rj_wisdom *w, const char *path, const char *dir,
                                const char *base, rj_diag *dg)
{
    orphan_sweep(dir, base);
    rj_wisdom *disk = NULL;
    RJ_FAIL_IF(dg, rj_wisdom_create(w->sig, &disk) != RFJIT_OK, RFJIT_E_NOMEM,
               "no memory to merge wisdom");
    rj_wisdom_set_check(disk, w->check, w->check_user); /* a refused record is not kept */
    /* non-strict: a foreign or corrupt file gives nothing and is overwritten */
    rfjit_status s = rj_wisdom_load(disk, path, 0, NULL, dg);
    if (s == RFJIT_OK && merge_from(w, disk) != RFJIT_OK)
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory to merge wisdom");
    rj_wisdom_destroy(disk);
    return s == RFJIT_OK ? replace_file(w, path, dg) : s;
}

/* flock with a bounded wait: a lock held by a stuck or stopped process must not hang the
 * caller. 0, or -1 with errno (EWOULDBLOCK once RJ_WISDOM_LOCK_WAIT_MS have passed). */
static int lock_bounded(int fd)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        const double ms = 1e3 * (double)(now.tv_sec - t0.tv_sec) +
                          1e-6 * (double)(now.tv_nsec - t0.tv_nsec);
        if (ms >= RJ_WISDOM_LOCK_WAIT_MS) {
            errno = EWOULDBLOCK;
            return -1;
        }
        const struct timespec nap = {0, 20 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

rfjit_status rj_wisdom_save(rj_wisdom *w, const char *path, rj_diag *dg)
{
    RJ_FAIL_IF(dg, !w || !path, RFJIT_E_INVALID_ARG, "wisdom: NULL argument");
    const size_t pl = strlen(path);
    RJ_FAIL_IF(dg, pl == 0 || pl > PATH_MAX_BYTES, RFJIT_E_INVALID_ARG,
               "wisdom path is empty or longer than %d bytes", PATH_MAX_BYTES);
    RJ_FAIL_IF(dg, path[pl - 1] == '/', RFJIT_E_INVALID_ARG,
               "wisdom path %s names a directory, not a file", path);
    /* Loads never follow a symlink, so a save through one would write wisdom that is then
     * ignored: a link is refused like a device, FIFO or directory, before anything is
     * created or locked, and left as it is. */
    struct stat sb;
    RJ_FAIL_IF(dg, lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode), RFJIT_E_IO,
               "wisdom file %s is a symbolic link: refused, it is left as it is (wisdom is "
               "read and written only as a regular file)", path);
    char real[RJ_PATH_BYTES], why[RJ_PATH_BYTES + 160];
    int old_mode;
    RJ_FAIL_IF(dg, rj_output_target(path, real, &old_mode, why, sizeof why) != 0, RFJIT_E_IO,
               "wisdom file %.3900s", why);
    char dir[PATH_MAX_BYTES + 1], lock[PATH_MAX_BYTES + 8];
    memcpy(dir, path, pl + 1);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? path + (slash - dir) + 1 : path;
    if (!slash)
        memcpy(dir, ".", 2);
    else
        slash[slash == dir] = 0; /* "/w" keeps "/" */
    RJ_FAIL_IF(dg, rj_mkdir_p(dir) != 0, RFJIT_E_IO, "cannot create the directory of %s: %s",
               path, strerror(errno));
    snprintf(lock, sizeof lock, "%s.lock", path);
    const int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
    RJ_FAIL_IF(dg, lfd < 0, RFJIT_E_IO, "cannot open %s: %s", lock, strerror(errno));
    if (lock_bounded(lfd) != 0) {
        const int e = errno;
        close(lfd);
        if (e == EWOULDBLOCK)
            return rj_fail(dg, RFJIT_E_IO,
                           "wisdom file %s not saved: its lock %s is held by another process "
                           "(waited %d s)", path, lock, RJ_WISDOM_LOCK_WAIT_MS / 1000);
        return rj_fail(dg, RFJIT_E_IO, "cannot lock %s: %s", lock, strerror(e));
    }
    const rfjit_status s = save_locked(w, path, dir, base, dg);
    close(lfd); /* releases the lock */
    return s;
}
