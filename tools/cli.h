/* SPDX-License-Identifier: MIT */
/*
 * This file is shared by the rfjit CLI verbs: strict number parsing, one-line errors, .npy
 * loading into tensors and a small deterministic data generator. The CLI sees the library
 * only through include/rfjit.h.
 */
#ifndef RFJIT_CLI_H
#define RFJIT_CLI_H

#include "npy.h"
#include "rfjit.h"

#include <stdint.h>

/* Exit codes: 0 success, 1 operation or check failed, 2 usage error. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Print "rfjit <verb>: <message>" as one line on stderr and return code. */
int cli_error(const char *verb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Strict parses of a whole string; 0 on success. */
int cli_parse_int(const char *s, long lo, long hi, int *out);
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out);

/* Value of option argv[*i] (advancing *i), or NULL when missing. */
const char *cli_value(int argc, char **argv, int *i);

/* Load a rank-2 (L, D) or rank-4 (B, H, L, D) .npy file as a tensor over arr. */
int cli_load_tensor(const char *verb, const char *path, npy_array *arr, rfjit_tensor *t);

/* Fill x with n normal numbers of standard deviation scale (splitmix64 + Box-Muller). */
void cli_normals(float *x, size_t n, double scale, uint64_t seed);

/* Monotonic seconds. */
double cli_now(void);

int cmd_info(int argc, char **argv);
int cmd_attention(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_check(int argc, char **argv);

#endif
