/* SPDX-License-Identifier: MIT */
/* This file implements the shared helpers of tools/cli.h. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int cli_error(const char *verb, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) /* one line, whatever the message held */
        if (*p == '\n')
            *p = ' ';
    fprintf(stderr, "rfjit %s: %s\n", verb, msg);
    return code;
}

int cli_parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

const char *cli_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

int cli_load_tensor(const char *verb, const char *path, npy_array *arr, rfjit_tensor *t)
{
    char err[512];
    if (npy_read(path, arr, err, sizeof err) != 0)
        return cli_error(verb, CLI_FAILED, "%s", err);
    if (arr->rank != 2 && arr->rank != 4) {
        npy_free(arr);
        return cli_error(verb, CLI_FAILED, "%s: rank %d array, need (L, d) or (B, H, L, d)",
                         path, arr->rank);
    }
    int64_t b = 1, h = 1, l, d;
    if (arr->rank == 4) {
        b = arr->shape[0], h = arr->shape[1], l = arr->shape[2], d = arr->shape[3];
    } else {
        l = arr->shape[0], d = arr->shape[1];
    }
    *t = rfjit_tensor_contiguous(arr->data, b, h, l, d);
    return CLI_OK;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cli_normals(float *x, size_t n, double scale, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        double u1 = ((double)(splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(splitmix(&s) >> 11) + 0.5) / 9007199254740992.0;
        x[i] = (float)(scale * sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
