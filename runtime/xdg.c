/* SPDX-License-Identifier: MIT */
/* This file implements runtime/xdg.h. */
#include "runtime/xdg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Values are quoted up to this many bytes: the reason must fit a note. */
#define QUOTE 200

/* 1 if HOME can hold rfjit's directories; else 0 and why (wn bytes). */
static int home_usable(const char *home, char *why, size_t wn)
{
    struct stat sb;
    if (!home || !home[0])
        snprintf(why, wn, "HOME is not set");
    else if (home[0] != '/')
        snprintf(why, wn, "HOME=%.*s is not an absolute path", QUOTE, home);
    else if (stat(home, &sb) != 0 || !S_ISDIR(sb.st_mode))
        snprintf(why, wn, "HOME=%.*s is not an existing directory (rfjit does not create it)",
                 QUOTE, home);
    else
        return 1;
    return 0;
}

int rj_xdg_path(const char *var, const char *home_rel, const char *tail, char *buf, size_t n,
                char *why, size_t wn)
{
    const char *x = getenv(var), *home = getenv("HOME");
    if (n)
        buf[0] = 0;
    if (wn)
        why[0] = 0;
    char xwhy[QUOTE + 100], hwhy[QUOTE + 100];
    int r;
    if (x && x[0] == '/') {
        r = snprintf(buf, n, "%s/%s", x, tail);
    } else if (home_usable(home, hwhy, sizeof hwhy)) {
        r = snprintf(buf, n, "%s/%s/%s", home, home_rel, tail);
    } else {
        if (x && x[0])
            snprintf(xwhy, sizeof xwhy, "%s=%.*s is relative, which the XDG spec says to ignore",
                     var, QUOTE, x);
        else
            snprintf(xwhy, sizeof xwhy, "%s is not set", var);
        snprintf(why, wn, "%s, and %s", xwhy, hwhy);
        return RJ_XDG_NONE;
    }
    if (r < 0 || (size_t)r >= n) {
        if (n)
            buf[0] = 0;
        snprintf(why, wn, "the path needs %d bytes, the buffer has %zu", r + 1, n);
        return RJ_XDG_TOO_LONG;
    }
    return 0;
}
