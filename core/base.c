/* SPDX-License-Identifier: MIT */
/* This file implements core/base.h: error recording and the allocation wrappers. */
#include "core/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#ifdef RFJIT_TESTING
#include "core/testing.h"

#include <stdatomic.h>
#endif

/* Length of the valid UTF-8 sequence at s that encodes a printable character, 0 otherwise:
 * overlong forms, surrogates, code points past U+10FFFF and the C1 controls U+0080..U+009F
 * (which some terminals obey, e.g. U+009B as CSI) are not printable. */
static size_t printable_utf8(const unsigned char *s)
{
    const unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, lo = c == 0xC2 ? 0xA0 : 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

size_t rj_escape(char *dst, size_t n, const char *src)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t w = 0;
    if (n == 0)
        return 0;
    while (*s) {
        const size_t u = *s >= 0x80 ? printable_utf8(s) : (size_t)(*s >= 0x20 && *s != 0x7F);
        const size_t len = u ? u : 4;
        if (w + len >= n)
            break; /* whole characters and escapes only */
        if (u) {
            memcpy(dst + w, s, u);
            s += u;
        } else {
            const char e[4] = {'\\', 'x', hex[*s >> 4], hex[*s & 15]};
            memcpy(dst + w, e, 4);
            s++;
        }
        w += len;
    }
    dst[w] = 0;
    return w;
}

rfjit_status rj_fail(rj_diag *dg, rfjit_status s, const char *fmt, ...)
{
    if (dg) {
        /* formatted apart from dg->msg, which may be one of the arguments */
        char raw[sizeof dg->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        rj_escape(dg->msg, sizeof dg->msg, raw);
    }
    return s;
}

bool rj_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

bool rj_fits_memory(size_t bytes)
{
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t phys;
    if (pages <= 0 || page <= 0 || !rj_mul_size((size_t)pages, (size_t)page, &phys))
        return true; /* unknown: let the allocation decide */
    return bytes <= phys;
}

#ifdef RFJIT_TESTING
/* The test seams of core/testing.h: the library's only process-wide mutable state, so it
 * exists in the tests' build alone. */
static _Atomic long fault_countdown = -1, live_blocks;

void rj_test_fail_alloc_after(long n)
{
    atomic_store(&fault_countdown, n < 0 ? -1 : n);
}

long rj_test_fail_alloc_left(void)
{
    return atomic_load(&fault_countdown);
}

long rj_test_live_allocs(void)
{
    return atomic_load(&live_blocks);
}

/* Whether this allocation is the injected failure: the countdown passes 0 exactly once. */
static bool fault_now(void)
{
    if (atomic_load_explicit(&fault_countdown, memory_order_relaxed) < 0)
        return false;
    long c = atomic_load(&fault_countdown);
    while (c >= 0 && !atomic_compare_exchange_weak(&fault_countdown, &c, c - 1))
        ;
    return c == 0;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    return p;
}

static void uncounted(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
}
#else
static bool fault_now(void)
{
    return false;
}

static void *counted(void *p)
{
    return p;
}

static void uncounted(void *p)
{
    (void)p;
}
#endif

void *rj_alloc(size_t n)
{
    return fault_now() ? NULL : counted(malloc(n ? n : 1));
}

void *rj_alloc_zero(size_t n)
{
    return fault_now() ? NULL : counted(calloc(n ? n : 1, 1));
}

void *rj_alloc_array(size_t n, size_t size)
{
    size_t bytes;
    if (!rj_mul_size(n, size, &bytes))
        return NULL;
    return rj_alloc(bytes);
}

void *rj_alloc_array_zero(size_t n, size_t size)
{
    size_t bytes;
    if (!rj_mul_size(n, size, &bytes))
        return NULL;
    return rj_alloc_zero(bytes);
}

void *rj_alloc_aligned(size_t n, size_t size)
{
    size_t bytes;
    void *p = NULL;
    if (fault_now() || !rj_mul_size(n ? n : 1, size, &bytes) ||
        posix_memalign(&p, 64, bytes) != 0)
        return NULL;
    return counted(p);
}

void rj_free(void *p)
{
    uncounted(p);
    free(p);
}

bool rj_grow(void **arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? 2 * *cap : 16;
    void *p = rj_alloc_array(c, size);
    if (!p)
        return false;
    if (n)
        memcpy(p, *arr, n * size);
    rj_free(*arr);
    *arr = p;
    *cap = c;
    return true;
}

char *rj_strndup(const char *s, size_t n)
{
    char *p = rj_alloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

bool rj_has_feature(const char *features, const char *feature)
{
    const size_t n = strlen(feature);
    for (const char *p = features; p && (p = strstr(p, feature)) != NULL; p += n)
        if ((p == features || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return true;
    return false;
}

char *rj_strdup(const char *s)
{
    return rj_strndup(s, strlen(s));
}

double rj_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rj_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
