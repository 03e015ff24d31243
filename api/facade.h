/* SPDX-License-Identifier: MIT */
/*
 * This file is the facade's own header: what every public call does with a failure. Only
 * api/ includes it, so only the public calls write a context's last error; the layers below
 * return a status and fill the caller's rj_diag.
 */
#ifndef RJ_FACADE_H
#define RJ_FACADE_H

#include "runtime/ctx.h"

/* Record dg's message (or s's text) as the calling thread's last error on ctx (ctx NULL: of
 * rfjit_ctx_create) and return s. */
rfjit_status rj_ctx_fail(rfjit_ctx *ctx, rfjit_status s, const rj_diag *dg);
/* Record a formatted message as ctx's last error and return s. */
rfjit_status rj_ctx_failf(rfjit_ctx *ctx, rfjit_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
