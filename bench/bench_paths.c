/* SPDX-License-Identifier: MIT */
/*
 * This file finds what `rfjit bench` reads besides its arguments (the peers' scripts, the
 * real heads): an installed rfjit (<prefix>/bin/rfjit) reads <prefix>/share/rfjit, a
 * binary in its build tree reads the source tree it was built from.
 */
#include "bench.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int bench_installed_path(char *path, size_t n, const char *rel)
{
    char exe[4096];
    const ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0)
        return 0;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return 0;
    *slash = 0;
    snprintf(path, n, "%s/../share/rfjit/%s", exe, rel);
    return access(path, R_OK) == 0;
}
