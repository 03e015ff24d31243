/* SPDX-License-Identifier: MIT */
/*
 * This file describes the machine as LLVM sees it (CPU name, feature string, triple, LLVM
 * version): plain data, filled by rj_jit_host_query (runtime/jit.h).
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

#endif
