/* SPDX-License-Identifier: MIT */
/*
 * This file is shared by the rfjit CLI verbs (tools/cmd_<verb>.c): strict number parsing,
 * one-line errors, .npy loading into tensors and a small deterministic data generator. The
 * CLI sees the library only through include/rfjit.h, plus runtime/fsutil.h so that the files
 * it reads and writes follow the library's rules (no blocking on FIFOs, no replaced devices,
 * no torn or lost outputs). Not for the library or its tests to use beyond npy.h.
 *
 * Error convention: a verb prints at most one line on stderr, "rfjit <verb>: <message>",
 * and returns CLI_USAGE (2) for a bad command line, CLI_FAILED (1) for a failed operation or
 * check, CLI_OK (0) otherwise. Results go to stdout.
 */
#ifndef RFJIT_CLI_H
#define RFJIT_CLI_H

#include "npy.h"
#include "rfjit.h"

#include <stddef.h>
#include <stdint.h>

enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Print "rfjit <verb>: <message>" as one line on stderr (control characters in the message
 * shown as \xNN, as rfjit_escape does) and return code. */
int cli_error(const char *verb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same as "rfjit <verb>: warning: <message>", for problems that do not stop the verb. */
void cli_warn(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict parses of a whole decimal string (no trailing characters, no overflow, in range);
 * 0 on success, -1 otherwise with *out untouched. */
int cli_parse_int(const char *s, long lo, long hi, int *out);
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_double(const char *s, double *out); /* finite values only */

/* --backend auto|reference|jit -> RFJIT_BACKEND_*; 0 or -1 as the parsers above. */
int cli_parse_backend(const char *s, int32_t *out);
/* A context for --isa (NULL: the default); prints the error for verb and returns NULL. */
rfjit_ctx *cli_context(const char *verb, const char *isa);
/* The same with a wisdom file (NULL: $RFJIT_WISDOM or the default). */
rfjit_ctx *cli_context_wisdom(const char *verb, const char *isa, const char *wisdom_path);

/* The value of option argv[*i], advancing *i; NULL when argv[*i] is the last argument. */
const char *cli_value(int argc, char **argv, int *i);

/* Load a .npy file of rank 2 (L, D) or 4 (B, H, L, D) with every dimension <= 2^31 - 1 as a
 * contiguous tensor over arr->data (arr owns it: npy_free). On failure prints the one-line
 * error for verb, leaves arr freed and returns CLI_FAILED. */
int cli_load_tensor(const char *verb, const char *path, npy_array *arr, rfjit_tensor *t);

/* Fill x with n independent N(0, scale^2) numbers: splitmix64 (Steele, Lea, Flood 2014)
 * feeding Box-Muller. Deterministic for a seed on every machine up to libm's last bits. */
void cli_normals(float *x, size_t n, double scale, uint64_t seed);

/* Seconds from CLOCK_MONOTONIC. */
double cli_now(void);

/* IEEE half and bfloat16 bits from and to float, rounding to nearest even (NaN stays NaN,
 * overflow gives Inf): the CLI's conversions of .npy data for --dtype, float16 files and the
 * serving benchmark. */
uint16_t cli_f32_to_f16(float x);
float cli_f16_to_f32(uint16_t h);
uint16_t cli_f32_to_bf16(float x);
float cli_bf16_to_f32(uint16_t h);

int cmd_info(int argc, char **argv);
int cmd_attention(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_emit(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_wisdom(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* bench/cmd_bench.c */

#endif
