/* SPDX-License-Identifier: MIT */
/*
 * This file is the public wisdom calls (include/rfjit.h, Wisdom): export, import and forget,
 * on the context's wisdom that runtime/ctx_wisdom.c opened. Writes to disk are explicit and
 * merge with what other processes saved meanwhile.
 */
#include "api/facade.h"
#include "runtime/fsutil.h"
#include "runtime/hash.h"
#include "tuner/tune_record.h"
#include "runtime/wisdom.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

rfjit_status rfjit_wisdom_export(rfjit_ctx *ctx, const char *path)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_wisdom_export: ctx is NULL");
    const char *to = path ? path : ctx->wisdom_path;
    char none[4096];
    rj_diag why = {{0}};
    /* no file because the default had no directory (wisdom_path "" is the caller's choice) */
    if (!to && rj_wisdom_default_path(none, sizeof none, &why) != RFJIT_OK)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "no wisdom file and no path given (%s)",
                            why.msg);
    if (!to || !to[0])
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG,
                            "no wisdom file: the context has none and no path was given");
    rj_diag dg = {{0}};
    pthread_mutex_lock(&ctx->lock);
    rfjit_status s = rj_wisdom_save(ctx->wisdom, to, &dg);
    pthread_mutex_unlock(&ctx->lock);
    return rj_ctx_fail(ctx, s, &dg);
}

rfjit_status rfjit_wisdom_import(rfjit_ctx *ctx, const char *path)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_wisdom_import: ctx is NULL");
    if (!path)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "rfjit_wisdom_import: path is NULL");
    if (access(path, F_OK) != 0)
        return rj_ctx_failf(ctx, RFJIT_E_IO, "cannot import wisdom: %s does not exist", path);
    rj_diag dg = {{0}};
    rj_wisdom_report rep = {0};
    pthread_mutex_lock(&ctx->lock);
    rfjit_status s = rj_wisdom_load(ctx->wisdom, path, 1, &rep, &dg);
    pthread_mutex_unlock(&ctx->lock);
    if (s != RFJIT_OK && s != RFJIT_E_NOMEM && s != RFJIT_E_IO)
        s = RFJIT_E_WISDOM_FORMAT;
    return rj_ctx_fail(ctx, s, &dg);
}

rfjit_status rfjit_wisdom_forget(rfjit_ctx *ctx, int on_disk)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_wisdom_forget: ctx is NULL");
    pthread_mutex_lock(&ctx->lock);
    rj_wisdom_forget(ctx->wisdom);
    pthread_mutex_unlock(&ctx->lock);
    const char *p = ctx->wisdom_path;
    struct stat sb;
    if (!on_disk || !p || !p[0] || lstat(p, &sb) != 0)
        return RFJIT_OK;
    /* a device or FIFO planted at the wisdom path is not wisdom to remove (a symlink is:
     * unlinking it removes the link, never what it points to) */
    if (!S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode))
        return rj_ctx_failf(ctx, RFJIT_E_IO, "wisdom file %s is a %s, not a regular file: not "
                                             "removed", p, rj_file_kind(sb.st_mode));
    if (unlink(p) != 0 && errno != ENOENT)
        return rj_ctx_failf(ctx, RFJIT_E_IO, "cannot remove %s: %s", p, strerror(errno));
    return RFJIT_OK;
}

rfjit_status rfjit_wisdom_to_string(rfjit_ctx *ctx, char **text)
{
    if (!ctx)
        return rj_ctx_failf(NULL, RFJIT_E_INVALID_ARG, "rfjit_wisdom_to_string: ctx is NULL");
    if (!text)
        return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "rfjit_wisdom_to_string: text is NULL");
    *text = NULL;
    rj_diag dg = {{0}};
    size_t len = 0;
    pthread_mutex_lock(&ctx->lock);
    rfjit_status s = rj_wisdom_to_text(ctx->wisdom, text, &len, &dg);
    pthread_mutex_unlock(&ctx->lock);
    return rj_ctx_fail(ctx, s, &dg);
}

const char *rfjit_wisdom_path(const rfjit_ctx *ctx)
{
    return ctx && ctx->wisdom_path ? ctx->wisdom_path : "";
}
