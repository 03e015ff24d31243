/* SPDX-License-Identifier: MIT */
/*
 * This file describes the machine as LLVM sees it (CPU name, feature string, triple, LLVM
 * version). runtime/jit.c fills it: it is the only runtime file that calls LLVM.
 */
#ifndef RJ_HOST_H
#define RJ_HOST_H

#include "core/base.h"

typedef struct rj_host {
    char cpu[64];
    char triple[96];
    char features[4096];
    char llvm_version[32];
} rj_host;

/* Query LLVM for the host. Errors: RFJIT_E_INTERNAL with LLVM's message. */
rfjit_status rj_jit_host_query(rj_host *h, rj_diag *dg);

#endif
