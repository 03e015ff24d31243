/* SPDX-License-Identifier: MIT */
/*
 * This file connects a context to its wisdom (architecture.md 6, runtime/wisdom.h): loaded
 * once at creation, never fatal (a missing file is empty wisdom; a foreign, corrupt or
 * truncated one is ignored with a warning through the log); rfjit_tune reads and adds
 * records; writes to disk are explicit (rfjit_wisdom_export, the CLI's tune and wisdom
 * verbs) and merge with what other processes saved meanwhile.
 *
 * The signature ties a file to this machine and this build: rfjit version, a hash of the
 * estimator registry (names and versions, in order), CPU name and features, LLVM version.
 */
#include "ctx.h"
#include "fsutil.h"
#include "hash.h"
#include "tune_record.h"
#include "wisdom.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void signature(const rfjit_ctx *ctx, char *buf, size_t n)
{
    char reg[1024] = "";
    size_t at = 0;
    for (int i = 0; i < rj_est_count && at < sizeof reg; i++)
        at += (size_t)snprintf(reg + at, sizeof reg - at, "%s:%d;", rj_est_registry[i]->name,
                               rj_est_registry[i]->version);
    rj_hash h;
    rj_hash_bytes(reg, strlen(reg), &h);
    char hex[65];
    rj_hash_hex(&h, hex);
    snprintf(buf, n, "rfjit=%s est=%.16s cpu=%s llvm=%s features=%s", rfjit_version_string(),
             hex, ctx->host.cpu, ctx->host.llvm_version, ctx->host.features);
}

static void note_report(rfjit_ctx *ctx, const char *path, const rj_wisdom_report *rep)
{
    char msg[640];
    if (rep->ignored_file || rep->foreign) {
        snprintf(msg, sizeof msg, "wisdom file %s ignored: %s", path, rep->why);
        rj_ctx_note(ctx, 1, msg);
    }
    if (rep->bad_lines) {
        snprintf(msg, sizeof msg, "wisdom file %s: %s", path, rep->why);
        rj_ctx_note(ctx, 1, msg);
    }
}

rfjit_status rj_ctx_wisdom_open(rfjit_ctx *ctx, rj_diag *dg)
{
    char sig[4400];
    signature(ctx, sig, sizeof sig);
    RJ_TRY(rj_wisdom_create(sig, &ctx->wisdom));
    rj_wisdom_set_check(ctx->wisdom, rj_tune_record_ok, NULL);
    if (!ctx->wisdom_path) {
        char path[4096];
        rj_diag why = {{0}};
        if (rj_wisdom_default_path(path, sizeof path, &why) != RFJIT_OK) {
            rj_ctx_note(ctx, 2, why.msg); /* not an error: tuning works, it is not remembered */
            return RFJIT_OK;
        }
        size_t n = strlen(path) + 1;
        RJ_FAIL_IF(dg, !(ctx->wisdom_path = rj_alloc(n)), RFJIT_E_NOMEM, "no memory");
        memcpy(ctx->wisdom_path, path, n);
    }
    if (!ctx->wisdom_path[0])
        return RFJIT_OK;
    rj_wisdom_report rep = {0};
    rj_diag ig = {{0}};
    if (rj_wisdom_load(ctx->wisdom, ctx->wisdom_path, 0, &rep, &ig) == RFJIT_E_NOMEM)
        return rj_fail(dg, RFJIT_E_NOMEM, "no memory for wisdom");
    ctx->wisdom_ignored = rep.ignored_file || rep.foreign;
    ctx->wisdom_bad_lines = rep.bad_lines;
    note_report(ctx, ctx->wisdom_path, &rep);
    return RFJIT_OK;
}

int rj_ctx_wisdom_get(rfjit_ctx *ctx, const char *key, int min_patience, char *val, size_t n,
                      int *patience)
{
    pthread_mutex_lock(&ctx->lock);
    const char *v = ctx->wisdom ? rj_wisdom_get(ctx->wisdom, key, min_patience, patience) : NULL;
    if (v)
        snprintf(val, n, "%s", v);
    pthread_mutex_unlock(&ctx->lock);
    return v != NULL;
}

rfjit_status rj_ctx_wisdom_put(rfjit_ctx *ctx, const char *key, int patience, const char *val,
                               rj_diag *dg)
{
    pthread_mutex_lock(&ctx->lock);
    rfjit_status s = ctx->wisdom ? rj_wisdom_put(ctx->wisdom, key, patience, val, dg) : RFJIT_OK;
    pthread_mutex_unlock(&ctx->lock);
    return s;
}

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
