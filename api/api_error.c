/* SPDX-License-Identifier: MIT */
/*
 * This file holds the last-error slots that the public calls write (api/facade.h) and
 * rfjit_ctx_last_error reads. Layers below the facade never write them: their messages travel
 * back to the facade in the caller's rj_diag.
 */
#include "api/facade.h"

#include <stdarg.h>
#include <stdio.h>

/*
 * Last errors are kept per thread, so that concurrent failing calls on one context each read
 * their own message back: a thread holds the messages of the RJ_ERR_SLOTS contexts it failed
 * on most recently, keyed by the context's id (never reused, unlike its address); key 0 is
 * for failures without a context (rfjit_ctx_create, a NULL handle). Nothing to free: a slot
 * lives as long as its thread and is recycled by later failures.
 */
enum { RJ_ERR_SLOTS = 8 };
typedef struct err_slot {
    uint64_t ctx_id;
    uint64_t used; /* when it was last written, in this thread's failures */
    char msg[sizeof(((rj_diag *)0)->msg)];
} err_slot;
static _Thread_local err_slot err_slots[RJ_ERR_SLOTS];
static _Thread_local uint64_t err_clock;

/* The slot of ctx_id, or NULL if this thread has no message for it. */
static err_slot *err_find(uint64_t ctx_id)
{
    for (int i = 0; i < RJ_ERR_SLOTS; i++)
        if (err_slots[i].used && err_slots[i].ctx_id == ctx_id)
            return &err_slots[i];
    return NULL;
}

static void err_record(uint64_t ctx_id, const char *msg)
{
    err_slot *e = err_find(ctx_id);
    if (!e) {
        e = &err_slots[0]; /* the least recently written; unused ones have used == 0 */
        for (int i = 1; i < RJ_ERR_SLOTS; i++)
            if (err_slots[i].used < e->used)
                e = &err_slots[i];
    }
    e->ctx_id = ctx_id;
    e->used = ++err_clock;
    rj_escape(e->msg, sizeof e->msg, msg);
}

rfjit_status rj_ctx_fail(rfjit_ctx *ctx, rfjit_status s, const rj_diag *dg)
{
    if (s != RFJIT_OK)
        err_record(ctx ? ctx->id : 0, dg && dg->msg[0] ? dg->msg : rj_status_text(s));
    return s;
}

rfjit_status rj_ctx_failf(rfjit_ctx *ctx, rfjit_status s, const char *fmt, ...)
{
    rj_diag dg; /* escaped when recorded */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dg.msg, sizeof dg.msg, fmt, ap);
    va_end(ap);
    return rj_ctx_fail(ctx, s, &dg);
}

rfjit_status rj_api_args(rfjit_ctx *ctx, const char *fn, const rj_api_arg *args, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!args[i].p)
            return rj_ctx_failf(ctx, RFJIT_E_INVALID_ARG, "%s: %s is NULL", fn, args[i].name);
    return RFJIT_OK;
}

rfjit_status rj_api_desc_read(rfjit_ctx *ctx, void *dst, size_t our_size, const void *src,
                              size_t src_size)
{
    rj_diag dg = {{0}};
    return rj_ctx_fail(ctx, rj_desc_read(dst, our_size, src, src_size, &dg), &dg);
}

const char *rfjit_ctx_last_error(const rfjit_ctx *ctx)
{
    const err_slot *e = err_find(ctx ? ctx->id : 0);
    if (e)
        return e->msg;
    return ctx ? "" : "no context (NULL rfjit_ctx)";
}
