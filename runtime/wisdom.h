/* SPDX-License-Identifier: MIT */
/*
 * This file is the wisdom store (architecture.md 6): an in-memory, sorted set of records
 * "problem key -> answer" with the patience that produced each, and its plain-text file:
 *
 *     rfjit-wisdom 1
 *     signature <signature>
 *     <key> patience=<0..3>[ <value>]       one record per line, sorted by key (strcmp)
 *     ...
 *
 * Every line ends with '\n' (no CR); a record line is at most RJ_WISDOM_LINE_MAX bytes
 * without it; an empty value leaves no trailing space. The same records always give the same
 * bytes. Signature and value are printable ASCII (0x20..0x7e); a key is printable ASCII
 * without spaces or '='. Keys and values are opaque here: the tuner gives them meaning.
 * Patience 0..3 is ESTIMATE, MEASURE, PATIENT, EXHAUSTIVE.
 *
 * Not thread-safe: the context serialises access. Not for: the signature's contents (the
 * caller builds it) and the public API (api/api_wisdom.c).
 */
#ifndef RJ_WISDOM_H
#define RJ_WISDOM_H

#include "core/base.h"

/* Longest record line without its '\n'; put refuses longer records, loads drop longer lines. */
#define RJ_WISDOM_LINE_MAX 4096
/* Largest file a load reads; a larger one is ignored whole. */
#define RJ_WISDOM_MAX_BYTES (16u << 20)
/* Longest a save waits for another process's lock before failing (rfjit.h documents it). */
#define RJ_WISDOM_LOCK_WAIT_MS 5000

typedef struct rj_wisdom rj_wisdom;

typedef struct rj_wisdom_report {
    int foreign;      /* signature of another machine or build: text ignored */
    int bad_lines;    /* malformed record lines dropped (strict: found) */
    int ignored_file; /* not a wisdom text (header), or a file not to read (symlink,
                       * not regular, too large, unreadable): ignored */
    char why[256];    /* for a warning: the reason, or the count and the first bad line */
} rj_wisdom_report;

/* signature: printable ASCII, one line. RFJIT_E_INVALID_ARG or RFJIT_E_NOMEM (no diag: the
 * only failures are those two). */
rfjit_status rj_wisdom_create(const char *signature, rj_wisdom **out);
void rj_wisdom_destroy(rj_wisdom *w); /* NULL is a no-op */
/* Insert key, or replace its record if patience >= the record's (else a successful no-op).
 * RFJIT_E_INVALID_ARG: NULL, key empty, unprintable, with a space or '='; value unprintable;
 * the line longer than RJ_WISDOM_LINE_MAX; patience outside 0..3. RFJIT_E_NOMEM: w as it was. */
rfjit_status rj_wisdom_put(rj_wisdom *w, const char *key, int patience, const char *value,
                           rj_diag *dg);
/* key's value if its patience >= min_patience, else NULL; owned by w and valid until the
 * next put, forget, from_text, load, save or destroy. patience_out may be NULL. */
const char *rj_wisdom_get(const rj_wisdom *w, const char *key, int min_patience,
                          int *patience_out);
size_t rj_wisdom_count(const rj_wisdom *w); /* 0 for NULL */
void rj_wisdom_forget(rj_wisdom *w); /* drop every record */
/* What a record means is its owner's business: check (NULL: none) is asked about every
 * well-formed line a load or from_text reads, key and value NUL-terminated, and returns 1 to
 * keep it, or 0 with the reason in why (n bytes) to drop it as a malformed line (reported
 * with its line number like any other; strict: the whole text is refused). put does not ask:
 * its caller writes what it will read. */
typedef int (*rj_wisdom_check_fn)(void *user, const char *key, const char *value, char *why,
                                  size_t n);
void rj_wisdom_set_check(rj_wisdom *w, rj_wisdom_check_fn check, void *user);
/* Merge the text of a wisdom file (any bytes; text may be NULL when len is 0). rep (may be
 * NULL) is cleared and filled. Non-strict: a wrong header (rep->ignored_file) or another
 * signature (rep->foreign) ignores the whole text; a malformed line, and a last line without
 * its '\n' (cut short), is dropped alone (rep->bad_lines); returns RFJIT_OK.
 * strict (explicit import): each of those is RFJIT_E_WISDOM_FORMAT with the reason (and the
 * first bad line's number) in dg, and nothing is merged. Merged records follow put's rule.
 * Also RFJIT_E_INVALID_ARG (NULL w), RFJIT_E_NOMEM (some records may be merged). */
rfjit_status rj_wisdom_from_text(rj_wisdom *w, const char *text, size_t len, int strict,
                                 rj_wisdom_report *rep, rj_diag *dg);
/* The file text, NUL-terminated (*len excludes the NUL); rj_free it. */
rfjit_status rj_wisdom_to_text(const rj_wisdom *w, char **text, size_t *len, rj_diag *dg);
/* $XDG_DATA_HOME/rfjit/wisdom (absolute XDG_DATA_HOME only, as the XDG spec says), else
 * $HOME/.local/share/rfjit/wisdom (HOME absolute and an existing directory: it is never
 * created). RFJIT_E_IO without either (dg says why), RFJIT_E_INVALID_ARG if buf is too small
 * (buf is then ""). */
rfjit_status rj_wisdom_default_path(char *buf, size_t n, rj_diag *dg);
/* Merge a file. Missing (ENOENT): RFJIT_OK, nothing merged, strict or not (callers that
 * want an error for a missing import check first). A symlink (O_NOFOLLOW), a non-regular
 * file or one over RJ_WISDOM_MAX_BYTES is ignored with rep->ignored_file, strict:
 * RFJIT_E_WISDOM_FORMAT; one that cannot be opened or read likewise, strict: RFJIT_E_IO.
 * Otherwise as rj_wisdom_from_text; dg's message starts with the path. */
rfjit_status rj_wisdom_load(rj_wisdom *w, const char *path, int strict, rj_wisdom_report *rep,
                            rj_diag *dg);
/* Save so that concurrent savers merge and a crash never leaves a torn file: an existing
 * path that is not a regular file (symlink, as loads do not follow one; directory, FIFO,
 * device, socket) is refused with RFJIT_E_IO and left as it is. Create path's directory (0700
 * for levels it creates); flock "<path>.lock" (created 0600, kept; waiting at most
 * RJ_WISDOM_LOCK_WAIT_MS, then RFJIT_E_IO naming the lock file); remove
 * orphaned "<path>.tmp-XXXXXX" files of savers that died; re-read path (non-strict: a
 * foreign or corrupt file contributes nothing, a same-signature file its valid lines) and
 * merge it into w (per key the higher patience wins, w's record on a tie); write w to a
 * temporary file next to path (runtime/fsutil.h: 0600 when new, else the old mode), fsync,
 * rename over path, fsync the directory; unlock.
 * w keeps the merged set even when the write then fails. RFJIT_E_INVALID_ARG (NULL, empty,
 * over 4000 bytes or ending in '/'), RFJIT_E_IO (directory, lock, write or rename; the old
 * file is then untouched), RFJIT_E_NOMEM (w unchanged). */
rfjit_status rj_wisdom_save(rj_wisdom *w, const char *path, rj_diag *dg);

#endif
