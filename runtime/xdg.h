/* SPDX-License-Identifier: MIT */
/*
 * This file chooses rfjit's directories under the XDG base directory specification: the
 * variable (XDG_CACHE_HOME, XDG_DATA_HOME) when it holds an absolute path, since the spec
 * says a relative one is invalid and must be ignored; else a directory under HOME, and only
 * when HOME is an absolute path to a directory that exists: rfjit creates its own
 * directories below a base, never the home directory itself. With neither there is no such
 * directory, which is not an error: the caller runs without it and says so in a note.
 *
 * Not for: creating the directories (the disk cache and the wisdom store do, 0700).
 */
#ifndef RJ_XDG_H
#define RJ_XDG_H

#include <stddef.h>

#define RJ_XDG_NONE (-1)     /* neither the variable nor HOME can be used */
#define RJ_XDG_TOO_LONG (-2) /* the path does not fit the buffer */

/* "<$var>/<tail>" or "$HOME/<home_rel>/<tail>" into buf (n bytes): 0. Otherwise buf is ""
 * and why (wn bytes) says why: RJ_XDG_NONE names each variable and why it is unusable,
 * RJ_XDG_TOO_LONG the bytes the path needs. */
int rj_xdg_path(const char *var, const char *home_rel, const char *tail, char *buf, size_t n,
                char *why, size_t wn);

#endif
