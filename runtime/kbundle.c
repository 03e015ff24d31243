/* SPDX-License-Identifier: MIT */
#include "runtime/kbundle.h"

#include <stdint.h>
#include <string.h>

static const char magic[4] = {'R', 'J', 'K', 'B'};

static void put_le(unsigned char *p, uint64_t x, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(x >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++)
        x |= (uint64_t)p[i] << (8 * i);
    return x;
}

rfjit_status rj_kbundle_pack(void *const *obj, const size_t *size, int n, void **out, size_t *len,
                             rj_diag *dg)
{
    RJ_FAIL_IF(dg, n < 1 || n > RJ_KBUNDLE_MAX, RFJIT_E_INTERNAL, "a kernel of %d parts (1 to %d)",
               n, RJ_KBUNDLE_MAX);
    size_t total = n == 1 ? 0 : 8 + 8 * (size_t)n;
    for (int i = 0; i < n; i++)
        total += size[i];
    unsigned char *p = rj_alloc(total ? total : 1);
    RJ_FAIL_IF(dg, !p, RFJIT_E_NOMEM, "no memory for a %zu-byte kernel", total);
    size_t at = 0;
    if (n > 1) {
        memcpy(p, magic, 4);
        put_le(p + 4, (uint64_t)n, 4);
        for (int i = 0; i < n; i++)
            put_le(p + 8 + 8 * i, size[i], 8);
        at = 8 + 8 * (size_t)n;
    }
    for (int i = 0; i < n; i++) {
        memcpy(p + at, obj[i], size[i]);
        at += size[i];
    }
    *out = p;
    *len = total;
    return RFJIT_OK;
}

rfjit_status rj_kbundle_open(const void *blob, size_t len, const void **obj, size_t *size, int *n,
                             rj_diag *dg)
{
    const unsigned char *p = blob;
    if (len < 8 || memcmp(p, magic, 4) != 0) {
        obj[0] = blob;
        size[0] = len;
        *n = 1;
        return RFJIT_OK;
    }
    const uint64_t k = get_le(p + 4, 4);
    RJ_FAIL_IF(dg, k < 2 || k > RJ_KBUNDLE_MAX || len < 8 + 8 * k, RFJIT_E_JIT,
               "a kernel blob of %zu bytes claims %llu parts", len, (unsigned long long)k);
    size_t at = 8 + 8 * (size_t)k;
    for (uint64_t i = 0; i < k; i++) {
        const uint64_t s = get_le(p + 8 + 8 * i, 8);
        RJ_FAIL_IF(dg, s > len - at, RFJIT_E_JIT,
                   "part %llu of a %zu-byte kernel blob runs past its end", (unsigned long long)i,
                   len);
        obj[i] = p + at;
        size[i] = (size_t)s;
        at += (size_t)s;
    }
    RJ_FAIL_IF(dg, at != len, RFJIT_E_JIT, "a kernel blob has %zu bytes past its %llu parts",
               len - at, (unsigned long long)k);
    *n = (int)k;
    return RFJIT_OK;
}
