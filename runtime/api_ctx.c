/* SPDX-License-Identifier: MIT */
/*
 * This file implements the context: creation from a versioned descriptor plus the RFJIT_*
 * environment switches (read here and nowhere else), the last-error slot, and teardown.
 */
#include "ctx.h"
#include "pool.h"
#include "xdg.h"
#include "wisdom.h"

#include <stdio.h>
#include <stdlib.h>
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

rfjit_status rj_ctx_fail(rfjit_ctx *ctx, rfjit_status s, const rj_diag *dg)
{
    if (ctx && s != RFJIT_OK) {
        pthread_mutex_lock(&ctx->lock);
        snprintf(ctx->last_error, sizeof ctx->last_error, "%s",
                 dg && dg->msg[0] ? dg->msg : rfjit_status_string(s));
        pthread_mutex_unlock(&ctx->lock);
    }
    return s;
}

rfjit_status rj_ctx_failf(rfjit_ctx *ctx, rfjit_status s, const char *fmt, ...)
{
    rj_diag dg;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dg.msg, sizeof dg.msg, fmt, ap);
    va_end(ap);
    return rj_ctx_fail(ctx, s, &dg);
}

void rj_ctx_note(void *user, int level, const char *msg)
{
    rfjit_ctx *ctx = user;
    if (ctx->log) {
        if (level <= 1 || ctx->verbose >= 1)
            ctx->log(ctx->log_user, level, msg);
        return;
    }
    /* Without a log callback the library prints only when asked to (RFJIT_VERBOSE). */
    if (ctx->verbose >= 1)
        fprintf(stderr, "rfjit: %s\n", msg);
}

/* $XDG_CACHE_HOME/rfjit, else ~/.cache/rfjit (runtime/xdg.h); without either, NULL (no disk
 * cache) and a note saying why. */
static char *default_cache_dir(rfjit_ctx *ctx, int *nomem)
{
    char buf[4096], why[512], msg[600];
    *nomem = 0;
    if (rj_xdg_path("XDG_CACHE_HOME", ".cache", "rfjit", buf, sizeof buf, why, sizeof why)) {
        snprintf(msg, sizeof msg, "no disk cache: %s", why);
        rj_ctx_note(ctx, 2, msg);
        return NULL;
    }
    size_t n = strlen(buf) + 1;
    char *p = rj_alloc(n);
    if (p)
        memcpy(p, buf, n);
    *nomem = !p;
    return p;
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = rj_alloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

rfjit_status rfjit_ctx_create(const rfjit_ctx_desc *desc_in, rfjit_ctx **out)
{
    if (!out)
        return RFJIT_E_INVALID_ARG;
    *out = NULL;
    rfjit_ctx_desc desc = RFJIT_CTX_DESC_INIT;
    rj_diag dg = {{0}};
    if (desc_in) {
        rfjit_status s = rj_desc_read(&desc, sizeof desc, desc_in, desc_in->size, &dg);
        if (s != RFJIT_OK)
            return s;
    }
    if (desc.threads < 0 || desc.verbose < 0 || desc.cache_max_bytes < 0)
        return RFJIT_E_INVALID_ARG;

    rfjit_ctx *ctx = rj_alloc_zero(sizeof *ctx);
    if (!ctx)
        return RFJIT_E_NOMEM;
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        rj_free(ctx);
        return RFJIT_E_THREAD;
    }
    ctx->threads = desc.threads;
    ctx->verbose = desc.verbose;
    if (ctx->verbose == 0) {
        const char *v = getenv("RFJIT_VERBOSE");
        if (v && *v)
            ctx->verbose = atoi(v) > 0 ? atoi(v) : 0;
    }
    ctx->log = desc.log;
    ctx->log_user = desc.log_user;
    const char *cache = desc.cache_dir ? desc.cache_dir : getenv("RFJIT_CACHE_DIR");
    int nomem = 0;
    ctx->cache_dir = cache ? dup_or_null(cache) : default_cache_dir(ctx, &nomem);
    const char *wisdom = desc.wisdom_path ? desc.wisdom_path : getenv("RFJIT_WISDOM");
    ctx->wisdom_path = dup_or_null(wisdom);
    rfjit_status s = RFJIT_OK;
    if (nomem || (cache && !ctx->cache_dir) || (wisdom && !ctx->wisdom_path))
        s = RFJIT_E_NOMEM;
    if (s == RFJIT_OK)
        s = rj_jit_host_query(&ctx->host, &dg);
    if (s == RFJIT_OK)
        s = rj_topo_load(&ctx->topo, NULL, &dg);
    const char *isa = desc.isa ? desc.isa : getenv("RFJIT_ISA");
    if (s == RFJIT_OK)
        s = rj_jit_isa_resolve(&ctx->host, isa, &ctx->isa, &dg);
    if (s == RFJIT_OK)
        s = rj_jit_create(&ctx->isa, &ctx->jit, &dg);
    if (s == RFJIT_OK) {
        const char *dump = getenv("RFJIT_DUMP");
        s = rj_kcache_create(ctx->jit, &ctx->isa, ctx->host.llvm_version, ctx->cache_dir,
                             dump && *dump ? dump : NULL, rj_ctx_note, ctx, &ctx->kc, &dg);
        if (s == RFJIT_OK && desc.cache_max_bytes > 0)
            rj_kcache_set_disk_limit(ctx->kc, (uint64_t)desc.cache_max_bytes);
    }
    if (s == RFJIT_OK) {
        /* 0 threads: one per core (not per hardware thread: kernels saturate the FMA units) */
        if (!ctx->threads)
            ctx->threads = ctx->topo.cores > 0 ? ctx->topo.cores : 1;
        if (ctx->threads > 1024)
            s = rj_fail(&dg, RFJIT_E_INVALID_ARG, "threads = %d is above 1024", ctx->threads);
        else
            s = rj_pool_create(ctx->threads, &ctx->pool, &dg);
    }
    if (s == RFJIT_OK)
        s = rj_ctx_wisdom_open(ctx, &dg);
    if (s != RFJIT_OK) {
        /* No context exists to hold the message: send it where notes go, if anywhere. */
        if (dg.msg[0])
            rj_ctx_note(ctx, 0, dg.msg);
        rfjit_ctx_destroy(ctx);
        return s;
    }
    *out = ctx;
    return RFJIT_OK;
}

void rfjit_ctx_destroy(rfjit_ctx *ctx)
{
    if (!ctx)
        return;
    rj_pool_destroy(ctx->pool);
    rj_kcache_destroy(ctx->kc);
    rj_jit_destroy(ctx->jit);
    rj_wisdom_destroy(ctx->wisdom);
    rj_free(ctx->cache_dir);
    rj_free(ctx->wisdom_path);
    pthread_mutex_destroy(&ctx->lock);
    rj_free(ctx);
}

const char *rfjit_ctx_last_error(const rfjit_ctx *ctx)
{
    if (!ctx)
        return "no context (NULL rfjit_ctx)";
    return ctx->last_error;
}
