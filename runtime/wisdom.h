/* SPDX-License-Identifier: MIT */
/*
 * This file is the wisdom store (architecture.md 6): an in-memory, sorted set of records
 * "problem key -> answer" with the patience that produced each, and its plain-text file:
 *
 *     rfjit-wisdom 1
 *     signature <one line: rfjit version, estimator set, CPU, LLVM>
 *     <key> patience=<0..3> <value: space-separated key=value pairs>
 *     ...                                   (one record per line, sorted by key)
 *
 * The same records always give the same bytes. Keys and values are opaque printable ASCII
 * (keys without spaces or '='); the tuner gives them meaning. Not thread-safe: the context
 * serialises access.
 */
#ifndef RJ_WISDOM_H
#define RJ_WISDOM_H

#include "base.h"

typedef struct rj_wisdom rj_wisdom;

typedef struct rj_wisdom_report {
    int foreign;      /* signature of another machine or build: file ignored */
    int ignored_file; /* not a wisdom file (header, size, type): file ignored */
    int bad_lines;    /* malformed records dropped */
    char why[256];
} rj_wisdom_report;

rfjit_status rj_wisdom_create(const char *signature, rj_wisdom **out);
void rj_wisdom_destroy(rj_wisdom *w);
/* Replace key's record if patience >= its patience. Errors: RFJIT_E_INVALID_ARG (key or
 * value not printable, key with a space or '=', patience outside 0..3), RFJIT_E_NOMEM. */
rfjit_status rj_wisdom_put(rj_wisdom *w, const char *key, int patience, const char *value,
                           rj_diag *dg);
/* key's value if its patience >= min_patience (valid until the next change), else NULL. */
const char *rj_wisdom_get(const rj_wisdom *w, const char *key, int min_patience,
                          int *patience_out);
size_t rj_wisdom_count(const rj_wisdom *w);
void rj_wisdom_record(const rj_wisdom *w, size_t i, const char **key, int *patience,
                      const char **value);
void rj_wisdom_forget(rj_wisdom *w);
/* Merge file text: a wrong header or another signature ignores it all, a malformed line only
 * itself (counted in rep). strict: those are errors (RFJIT_E_WISDOM_FORMAT) and nothing is
 * merged. */
rfjit_status rj_wisdom_from_text(rj_wisdom *w, const char *text, size_t len, int strict,
                                 rj_wisdom_report *rep, rj_diag *dg);
/* The file text (rj_free it). */
rfjit_status rj_wisdom_to_text(const rj_wisdom *w, char **text, size_t *len, rj_diag *dg);
/* $XDG_DATA_HOME/rfjit/wisdom, else $HOME/.local/share/rfjit/wisdom. */
rfjit_status rj_wisdom_default_path(char *buf, size_t n, rj_diag *dg);
/* Merge a file: a missing one is empty; a symlink, non-regular or oversized one is ignored
 * (strict: RFJIT_E_WISDOM_FORMAT), an unreadable one is RFJIT_E_IO when strict. */
rfjit_status rj_wisdom_load(rj_wisdom *w, const char *path, int strict, rj_wisdom_report *rep,
                            rj_diag *dg);
/* Save under an exclusive lock on "<path>.lock": re-read the file, merge (per key the higher
 * patience wins, ties keep w's), write a temporary file, fsync, rename over path. w becomes
 * the merged set. The parent directory is created (0700) if missing. */
rfjit_status rj_wisdom_save(rj_wisdom *w, const char *path, rj_diag *dg);

#endif
