/* SPDX-License-Identifier: MIT */
/*
 * This file holds the context's internal services that every layer above it uses: reading a
 * versioned descriptor and sending a note to the context's log.
 */
#include "runtime/ctx.h"

#include <stdio.h>
#include <string.h>

rfjit_status rj_desc_read(void *dst, size_t our_size, const void *src, size_t src_size,
                          rj_diag *dg)
{
    RJ_FAIL_IF(dg, src_size < sizeof(size_t), RFJIT_E_DESC_SIZE,
               "descriptor size %zu is smaller than its size field", src_size);
    /* Every version of a descriptor starts with a size_t, so its sizeof is a multiple of
     * size_t's alignment; any other size is not a version's, and would end inside a field
     * (half a pointer: found by fuzzing). On the supported 64-bit targets no field is torn by
     * a size that is such a multiple. */
    RJ_FAIL_IF(dg, src_size % _Alignof(size_t) != 0, RFJIT_E_DESC_SIZE,
               "descriptor size %zu is not a multiple of %zu, so not the size of any version "
               "of it", src_size, (size_t)_Alignof(size_t));
    if (src_size > our_size) {
        const unsigned char *tail = (const unsigned char *)src + our_size;
        for (size_t i = 0; i < src_size - our_size; i++)
            RJ_FAIL_IF(dg, tail[i] != 0, RFJIT_E_DESC_SIZE,
                       "descriptor of %zu bytes has non-zero fields this library (%zu bytes) "
                       "does not know",
                       src_size, our_size);
    }
    memcpy(dst, src, src_size < our_size ? src_size : our_size);
    *(size_t *)dst = our_size;
    return RFJIT_OK;
}

void rj_ctx_note(void *user, int level, const char *msg)
{
    rfjit_ctx *ctx = user;
    char line[1024];
    rj_escape(line, sizeof line, msg);
    if (ctx->log) {
        if (level <= 1 || ctx->verbose >= 1)
            ctx->log(ctx->log_user, level, line);
        return;
    }
    /* Without a log callback the library prints only when asked to (RFJIT_VERBOSE). */
    if (ctx->verbose >= 1)
        fprintf(stderr, "rfjit: %s\n", line);
}
