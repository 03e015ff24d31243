/* SPDX-License-Identifier: MIT */
/*
 * This file declares what the CLI tests share to run the built rfjit (RFJIT_CLI_PATH) in a
 * test's own directory and read back what it wrote there.
 */
#ifndef RJ_CLI_TESTUTIL_H
#define RJ_CLI_TESTUTIL_H

/* Run "cd dir && prefix rfjit args" with stdout and stderr in dir/out.txt and dir/err.txt.
 * prefix goes before the binary: environment assignments, a wrapper such as "timeout 60", or
 * "". The exit code, or -1 when the shell did not exit normally. */
int tu_cli_run(const char *dir, const char *prefix, const char *args);

/* The first 64 KiB of dir/name as a string ("" when it cannot be read). The buffer is static:
 * each call overwrites what the previous one returned. */
char *tu_slurp(const char *dir, const char *name);

#endif
