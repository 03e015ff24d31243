/* SPDX-License-Identifier: MIT */
/* This file runs the built CLI for the CLI tests and reads back the files it left. */
#include "cli_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int tu_cli_run(const char *dir, const char *prefix, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s %s >out.txt 2>err.txt", dir, prefix,
             RFJIT_CLI_PATH, args);
    const int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *tu_slurp(const char *dir, const char *name)
{
    static char buf[1 << 16];
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}
