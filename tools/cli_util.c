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

/* "rfjit[ verb]: [kind]message" on stderr as one line, the message escaped as the library
 * escapes its own: user strings in it (paths, option values) can neither add a line nor
 * drive the terminal. */
static void print_line(const char *verb, const char *kind, const char *fmt, va_list ap)
{
    char raw[1024], msg[1024];
    vsnprintf(raw, sizeof raw, fmt, ap);
    rfjit_escape(msg, sizeof msg, raw);
    fprintf(stderr, "rfjit%s%s: %s%s\n", *verb ? " " : "", verb, kind, msg);
}

int cli_error(const char *verb, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(verb, "", fmt, ap);
    va_end(ap);
    return code;
}

void cli_warn(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_line(verb, "warning: ", fmt, ap);
    va_end(ap);
}

int cli_parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    /* strtoull accepts "-1" as 2^64 - 1 and leading blanks; a seed should be what it says. */
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    const double v = strtod(s, &end);
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
    const char *why = NULL;
    if (arr->rank != 2 && arr->rank != 4)
        why = "need rank 2 (L, d) or rank 4 (B, H, L, d)";
    for (int i = 0; !why && i < arr->rank; i++)
        if (arr->shape[i] > INT32_MAX)
            why = "a dimension exceeds 2^31 - 1";
    if (why) {
        char shape[128];
        int n = snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < arr->rank && n > 0 && (size_t)n < sizeof shape; i++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", i ? ", " : "",
                          (long long)arr->shape[i]);
        npy_free(arr);
        return cli_error(verb, CLI_FAILED, "%s: shape %s%s: %s", path, shape,
                         arr->rank == 1 ? ",)" : ")", why);
    }
    const int64_t *s = arr->shape;
    *t = arr->rank == 4 ? rfjit_tensor_contiguous(arr->data, s[0], s[1], s[2], s[3])
                        : rfjit_tensor_contiguous(arr->data, 1, 1, s[0], s[1]);
    return CLI_OK;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cli_normals(float *x, size_t n, double scale, uint64_t seed)
{
    uint64_t s = seed;
    /* 53-bit uniforms in (0, 1): the +0.5 keeps log(u1) finite. Both Box-Muller outputs are
     * used, so pairs of numbers come from one pair of uniforms. */
    const double two53 = 9007199254740992.0, two_pi = 6.283185307179586;
    for (size_t i = 0; i < n; i += 2) {
        const double u1 = ((double)(splitmix64(&s) >> 11) + 0.5) / two53;
        const double u2 = ((double)(splitmix64(&s) >> 11) + 0.5) / two53;
        const double r = scale * sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_parse_backend(const char *s, int32_t *out)
{
    if (!strcmp(s, "auto"))
        *out = RFJIT_BACKEND_AUTO;
    else if (!strcmp(s, "reference"))
        *out = RFJIT_BACKEND_REFERENCE;
    else if (!strcmp(s, "jit"))
        *out = RFJIT_BACKEND_JIT;
    else
        return -1;
    return 0;
}

/* Errors are left for the verb's one error line; warnings (an unusable cache directory) are
 * worth a line of their own, and so are the notes the library sends only when RFJIT_VERBOSE
 * asks for them. */
static void cli_log(void *user, int level, const char *msg)
{
    (void)user;
    if (level == 1)
        cli_warn("", "%s", msg);
    else if (level >= 2)
        cli_error("", 0, "%s", msg);
}

rfjit_ctx *cli_context(const char *verb, const char *isa)
{
    return cli_context_wisdom(verb, isa, NULL);
}

rfjit_ctx *cli_context_wisdom(const char *verb, const char *isa, const char *wisdom_path)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.isa = isa;
    cd.wisdom_path = wisdom_path;
    cd.log = cli_log;
    rfjit_ctx *ctx = NULL;
    if (rfjit_ctx_create(&cd, &ctx) != RFJIT_OK) {
        cli_error(verb, CLI_FAILED, "cannot create a context: %s", rfjit_ctx_last_error(NULL));
        return NULL;
    }
    return ctx;
}

uint16_t cli_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint32_t sign = x >> 16 & 0x8000, e = x >> 23 & 0xff;
    uint32_t m = x & 0x7fffff;
    if (e == 0xff)
        return (uint16_t)(sign | 0x7c00 | (m ? 0x200 | m >> 13 : 0));
    const int32_t he = (int32_t)e - 127 + 15;
    if (he >= 0x1f)
        return (uint16_t)(sign | 0x7c00);
    if (he <= 0) { /* a subnormal half: units of 2^-24 */
        if (he < -10)
            return (uint16_t)sign;
        m |= 0x800000;
        const uint32_t shift = (uint32_t)(14 - he), half = 1u << (shift - 1);
        uint32_t hm = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1);
        hm += rem > half || (rem == half && (hm & 1));
        return (uint16_t)(sign | hm);
    }
    const uint32_t hm = m >> 13, rem = m & 0x1fff;
    /* a carry out of the mantissa rounds up into the exponent, up to Inf: as it should */
    return (uint16_t)((sign | (uint32_t)he << 10 | hm) +
                      (rem > 0x1000 || (rem == 0x1000 && (hm & 1))));
}

float cli_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff;
    if (!e) {
        const float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    const uint32_t x = sign | (e == 0x1f ? 0x7f800000 | m << 13 : (e + 112) << 23 | m << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

uint16_t cli_f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)(x >> 16 | 0x40);
    return (uint16_t)((x + 0x7fff + (x >> 16 & 1)) >> 16);
}

float cli_bf16_to_f32(uint16_t h)
{
    const uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}
