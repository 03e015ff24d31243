/* SPDX-License-Identifier: MIT */
/* A context for a test: default threads, no disk cache, no wisdom (never the user's). */
#ifndef RJ_CTX_TESTUTIL_H
#define RJ_CTX_TESTUTIL_H

#include "rfjit.h"

/* Fails the test (Criterion) when the context cannot be made. */
rfjit_ctx *tu_ctx_isolated(void);

#endif
