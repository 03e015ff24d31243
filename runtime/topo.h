/* SPDX-License-Identifier: MIT */
/*
 * This file summarises the hwloc topology a context runs on: cores, PUs and per-core cache
 * sizes, each with where the number came from (hwloc, sysconf, sysfs or a default), because
 * virtual machines report wrong or no caches and the numbers are only hints.
 */
#ifndef RJ_TOPO_H
#define RJ_TOPO_H

#include "core/base.h"

typedef struct rj_topo {
    int cores, pus, numa_nodes;
    int64_t l1d, l2, l3;            /* bytes; 0 if unknown */
    int l3_sharing_cores;
    const char *l1d_src, *l2_src, *l3_src; /* static strings */
} rj_topo;

/* Load with default flags (PUs outside the allowed set are dropped). synthetic may be NULL or
 * an hwloc synthetic description (tests). Errors: RFJIT_E_INTERNAL. */
rfjit_status rj_topo_load(rj_topo *t, const char *synthetic, rj_diag *dg);

#endif
