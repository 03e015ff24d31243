/* SPDX-License-Identifier: MIT */
/* This file is `rfjit info [--json]`: rfjit_info's text (or JSON object) on stdout. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rfjit info [--json]\n"
    "Prints what rfjit_info reports: library and LLVM versions, target triple, the CPU name\n"
    "and feature string as LLVM sees them, the hwloc topology (cores, PUs, NUMA nodes, L1d,\n"
    "L2 and L3 sizes and where each came from), the backend and the estimators in registry\n"
    "order. --json prints one JSON object on one line instead.\n";

int cmd_info(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        } else {
            return cli_error("info", CLI_USAGE, "unknown option '%s' (see --help)", argv[i]);
        }
    }
    rfjit_ctx *ctx = cli_context("info", NULL);
    if (!ctx)
        return CLI_FAILED;
    rfjit_status s;
    /* The feature string alone is a few KiB; grow the buffer while rfjit_info says it is too
     * small (it fails with RFJIT_E_INVALID_ARG then), up to a bound no real machine needs. */
    char *buf = NULL;
    int rc = CLI_OK;
    for (size_t len = 16384;; len *= 4) {
        free(buf);
        buf = malloc(len);
        if (!buf) {
            rc = cli_error("info", CLI_FAILED, "out of memory");
            break;
        }
        s = rfjit_info(ctx, json, buf, len);
        if (s == RFJIT_OK)
            break;
        if (s != RFJIT_E_INVALID_ARG || len >= ((size_t)1 << 22)) {
            rc = cli_error("info", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
            break;
        }
    }
    if (rc == CLI_OK) {
        const size_t n = strlen(buf);
        fputs(buf, stdout);
        if (n == 0 || buf[n - 1] != '\n')
            putchar('\n');
    }
    free(buf);
    rfjit_ctx_destroy(ctx);
    return rc;
}
