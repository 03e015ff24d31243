/* SPDX-License-Identifier: MIT */
/*
 * This file connects a context to its wisdom (runtime/wisdom.h): opened once at creation,
 * then read and written under the context's lock.
 */
#ifndef RJ_CTX_WISDOM_H
#define RJ_CTX_WISDOM_H

#include "runtime/ctx.h"
#include "runtime/wisdom.h"

/* Open the context's wisdom file (never fatal: a missing, foreign or corrupt file is empty
 * wisdom, with a note); check validates each record as it is loaded or imported. */
rfjit_status rj_ctx_wisdom_open(rfjit_ctx *ctx, rj_wisdom_check_fn check, rj_diag *dg);
/* Copy the value of key's record of at least min_patience into val; 0 if there is none. */
int rj_ctx_wisdom_get(rfjit_ctx *ctx, const char *key, int min_patience, char *val, size_t n,
                      int *patience);
rfjit_status rj_ctx_wisdom_put(rfjit_ctx *ctx, const char *key, int patience, const char *val,
                               rj_diag *dg);

#endif
