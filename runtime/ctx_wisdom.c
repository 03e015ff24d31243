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
#include "runtime/ctx_wisdom.h"
#include "runtime/hash.h"

#include <stdio.h>
#include <string.h>

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
    snprintf(buf, n, "rfjit=%s est=%.16s cpu=%s llvm=%s features=%s", RFJIT_VERSION_STRING,
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

rfjit_status rj_ctx_wisdom_open(rfjit_ctx *ctx, rj_wisdom_check_fn check, rj_diag *dg)
{
    char sig[4400];
    signature(ctx, sig, sizeof sig);
    RJ_TRY(rj_wisdom_create(sig, &ctx->wisdom));
    rj_wisdom_set_check(ctx->wisdom, check, NULL);
    if (!ctx->wisdom_path) {
        char path[4096];
        rj_diag why = {{0}};
        if (rj_wisdom_default_path(path, sizeof path, &why) != RFJIT_OK) {
            rj_ctx_note(ctx, 2, why.msg); /* not an error: tuning works, it is not remembered */
            return RFJIT_OK;
        }
        RJ_FAIL_IF(dg, !(ctx->wisdom_path = rj_strdup(path)), RFJIT_E_NOMEM, "no memory");
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
