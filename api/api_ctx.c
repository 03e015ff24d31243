/* SPDX-License-Identifier: MIT */
/*
 * This file implements the context: creation from a versioned descriptor plus the RFJIT_*
 * environment switches, and teardown. The environment is read while a context is created:
 * the RFJIT_* switches here, XDG_CACHE_HOME and HOME for the default cache directory (here,
 * through runtime/xdg.c), XDG_DATA_HOME and HOME for the default wisdom file
 * (runtime/ctx_wisdom.c through runtime/wisdom.c). rfjit_wisdom_export reads the latter two
 * again, only to say why a context without a wisdom file has none.
 */
#include "api/facade.h"
#include "runtime/ctx_wisdom.h"
#include "runtime/pool.h"
#include "runtime/xdg.h"
#include "runtime/wisdom.h"
#include "tuner/tune_record.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t next_ctx_id = 1;

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
    char *p = rj_strdup(buf);
    *nomem = !p;
    return p;
}

static char *dup_or_null(const char *s)
{
    return s ? rj_strdup(s) : NULL;
}

/* RFJIT_VERBOSE: a level 0 .. 9; anything else is ignored with a warning that says so. */
static void verbose_from_env(rfjit_ctx *ctx)
{
    const char *v = getenv("RFJIT_VERBOSE");
    if (!v || !*v)
        return;
    char *end;
    errno = 0;
    const long n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > 9) {
        char msg[256];
        snprintf(msg, sizeof msg, "RFJIT_VERBOSE='%.200s' ignored: not a level in [0, 9]", v);
        rj_ctx_note(ctx, 1, msg);
        return;
    }
    ctx->verbose = (int32_t)n;
}

static rfjit_status check_ctx_desc(const rfjit_ctx_desc *d, rj_diag *dg)
{
    RJ_FAIL_IF(dg, d->threads < 0 || d->threads > 1024, RFJIT_E_INVALID_ARG,
               "threads = %d is outside [0, 1024] (0: one per core)", d->threads);
    RJ_FAIL_IF(dg, d->verbose < 0, RFJIT_E_INVALID_ARG,
               "verbose = %d is negative (0 quiet, 1 or 2 notes)", d->verbose);
    RJ_FAIL_IF(dg, d->cache_max_bytes < 0, RFJIT_E_INVALID_ARG,
               "cache_max_bytes = %lld is negative (0: the default bound)",
               (long long)d->cache_max_bytes);
    return RFJIT_OK;
}

/* A creation that fails before a context exists: the message is kept for
 * rfjit_ctx_last_error(NULL) and sent to the descriptor's log, if any. */
static rfjit_status create_fail(const rfjit_ctx_desc *d, rfjit_status s, const rj_diag *dg)
{
    rj_ctx_fail(NULL, s, dg);
    if (d && d->log)
        d->log(d->log_user, 0, rfjit_ctx_last_error(NULL));
    return s;
}

rfjit_status rfjit_ctx_create(const rfjit_ctx_desc *desc_in, rfjit_ctx **out)
{
    rfjit_ctx_desc desc = RFJIT_CTX_DESC_INIT;
    rj_diag dg = {{0}};
    if (!out) {
        rj_fail(&dg, RFJIT_E_INVALID_ARG, "rfjit_ctx_create: out is NULL");
        return create_fail(NULL, RFJIT_E_INVALID_ARG, &dg);
    }
    *out = NULL;
    rfjit_status s = desc_in ? rj_desc_read(&desc, sizeof desc, desc_in, desc_in->size, &dg)
                             : RFJIT_OK;
    if (s == RFJIT_OK)
        s = check_ctx_desc(&desc, &dg);
    if (s != RFJIT_OK) /* desc holds the defaults (no log) unless it was read */
        return create_fail(&desc, s, &dg);

    rfjit_ctx *ctx = rj_alloc_zero(sizeof *ctx);
    if (!ctx) {
        rj_fail(&dg, RFJIT_E_NOMEM, "no memory for a context");
        return create_fail(&desc, RFJIT_E_NOMEM, &dg);
    }
    if (pthread_mutex_init(&ctx->lock, NULL) != 0) {
        rj_free(ctx);
        rj_fail(&dg, RFJIT_E_THREAD, "cannot create a context's lock");
        return create_fail(&desc, RFJIT_E_THREAD, &dg);
    }
    ctx->id = atomic_fetch_add(&next_ctx_id, 1);
    ctx->threads = desc.threads;
    ctx->verbose = desc.verbose;
    ctx->log = desc.log;
    ctx->log_user = desc.log_user;
    if (ctx->verbose == 0)
        verbose_from_env(ctx);
    const char *cache = desc.cache_dir ? desc.cache_dir : getenv("RFJIT_CACHE_DIR");
    int nomem = 0;
    ctx->cache_dir = cache ? dup_or_null(cache) : default_cache_dir(ctx, &nomem);
    const char *wisdom = desc.wisdom_path ? desc.wisdom_path : getenv("RFJIT_WISDOM");
    ctx->wisdom_path = dup_or_null(wisdom);
    if (nomem || (cache && !ctx->cache_dir) || (wisdom && !ctx->wisdom_path))
        s = rj_fail(&dg, RFJIT_E_NOMEM, "no memory for the context's paths");
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
        s = rj_pool_create(ctx->threads, &ctx->pool, &dg);
        /* a cold compile uses the threads an execute may, no more */
        rj_jit_set_threads(ctx->jit, ctx->threads);
    }
    if (s == RFJIT_OK)
        s = rj_ctx_wisdom_open(ctx, rj_tune_record_ok, &dg);
    if (s != RFJIT_OK) {
        rfjit_ctx_destroy(ctx);
        return create_fail(&desc, s, &dg);
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
