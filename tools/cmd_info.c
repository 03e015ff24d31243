/* SPDX-License-Identifier: MIT */
/* This file is `rfjit info [--json]`. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cmd_info(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--help")) {
            puts("usage: rfjit info [--json]\n"
                 "Prints the CPU name and feature string as LLVM sees them, the LLVM version,\n"
                 "the hwloc topology (cores, PUs, L1d/L2/L3 and where each size came from) and\n"
                 "the estimators; --json prints one JSON object.");
            return CLI_OK;
        } else
            return cli_error("info", CLI_USAGE, "unknown option '%s'", argv[i]);
    }
    rfjit_ctx *ctx = NULL;
    rfjit_status s = rfjit_ctx_create(NULL, &ctx);
    if (s != RFJIT_OK)
        return cli_error("info", CLI_FAILED, "cannot create a context: %s",
                         rfjit_status_string(s));
    static char buf[16384];
    s = rfjit_info(ctx, json, buf, sizeof buf);
    int rc = s == RFJIT_OK ? CLI_OK
                           : cli_error("info", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    if (rc == CLI_OK)
        printf("%s%s", buf, json ? "\n" : "");
    rfjit_ctx_destroy(ctx);
    return rc;
}
