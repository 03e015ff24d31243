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

/*
 * The prologue of a public call, written once. RJ_API_ARGS(ctx, "rfjit_x", {p, "p"}, ...)
 * records "rfjit_x: p is NULL" on ctx (no context if ctx is NULL) for the first NULL argument
 * in the order given, and returns RFJIT_E_INVALID_ARG; RFJIT_OK when none is NULL.
 * RJ_API_DESC_READ(ctx, &d, src) reads the caller's versioned descriptor src (not NULL) into
 * d, which holds the defaults (rj_desc_read), and records a refusal on ctx.
 */
typedef struct rj_api_arg {
    const void *p;
    const char *name;
} rj_api_arg;
rfjit_status rj_api_args(rfjit_ctx *ctx, const char *fn, const rj_api_arg *args, size_t n);
#define RJ_API_ARGS(ctx, fn, ...)                                                                  \
    rj_api_args((ctx), (fn), (const rj_api_arg[]){__VA_ARGS__},                                    \
                sizeof((const rj_api_arg[]){__VA_ARGS__}) / sizeof(rj_api_arg))
rfjit_status rj_api_desc_read(rfjit_ctx *ctx, void *dst, size_t our_size, const void *src,
                              size_t src_size);
#define RJ_API_DESC_READ(ctx, dst, src)                                                            \
    rj_api_desc_read((ctx), (dst), sizeof *(dst), (src), (src)->size)

#endif
