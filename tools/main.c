/* SPDX-License-Identifier: MIT */
/*
 * This file is the rfjit CLI's entry point and its only main(): it dispatches to one verb per
 * tools/cmd_<verb>.c (CMake leaves this file out of the test binary, which links the verbs).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: rfjit <verb> [options]      (rfjit <verb> --help describes each verb)\n"
    "verbs:\n"
    "  info       library version, CPU, LLVM and topology as rfjit sees them\n"
    "  attention  attention of .npy queries, keys and values, written as .npy\n"
    "  fit        closed-form parameters and objectives of a data-fitted estimator\n"
    "  check      every estimator against exact attention on random data\n"
    "  emit       one kernel as an object, assembly or IR, for this or another target\n"
    "  tune       the fastest plan within a variance budget on this machine\n"
    "  wisdom     show, export, import or forget the remembered plans\n"
    "  bench      rfjit against the FMA peak and OpenBLAS and torch peers\n"
    "exit codes: 0 success, 1 failed operation or check, 2 usage error; errors are one line\n"
    "on stderr: \"rfjit <verb>: <message>\"\n";

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_error("", CLI_USAGE, "no verb given (rfjit --help lists them)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("rfjit %s\n", rfjit_version_string());
        return CLI_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } verbs[] = {{"info", cmd_info},
                 {"attention", cmd_attention},
                 {"fit", cmd_fit},
                 {"check", cmd_check},
                 {"emit", cmd_emit},
                 {"tune", cmd_tune},
                 {"wisdom", cmd_wisdom},
                 {"bench", cmd_bench}};
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].fn(argc - 1, argv + 1);
    return cli_error("", CLI_USAGE, "unknown verb '%s' (rfjit --help lists them)", argv[1]);
}
