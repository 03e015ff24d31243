/* SPDX-License-Identifier: MIT */
/* This file is the executes' reusable scratch (see below), shared by exec_jit.c and exec_eva.c. */
#ifndef RJ_EXEC_SCRATCH_H
#define RJ_EXEC_SCRATCH_H

#include "runtime/plan_fit.h"

/*
 * Everything one execute needs besides the kernel, owned by the plan and reused
 * (exec_jit.c): a call takes a scratch from the plan's pool (or makes one), grows what is
 * too small, and gives it back, so warm executes allocate nothing and touch no fresh pages
 * (a 4 KiB first touch costs 2.2 us here; a fitted estimator's gathered rows alone are 2 MB
 * at L = 4096, d = 64). Concurrent calls each hold their own scratch.
 */
#define RJ_SLOTS 12
struct rj_exec_scratch {
    float *ws, *st;            /* the kernel's workspace and state */
    float *kpar;               /* per-call lowered parameters (fitted estimators) */
    double *low;               /* lowering scratch */
    rj_fit_scratch fs;
    int fs_ready;
    void *slot[RJ_SLOTS];      /* growable buffers, numbered by their user */
    size_t nslot[RJ_SLOTS];    /* bytes */
    struct rj_exec_scratch *next;
};
rj_exec_scratch *rj_scratch_take(const rfjit_plan *p, rj_diag *dg);
void rj_scratch_give(const rfjit_plan *p, rj_exec_scratch *c);
/* Slot `slot` with room for n elements of size bytes, 64-byte aligned (contents not kept);
 * NULL: no memory. */
void *rj_scratch_buf(rj_exec_scratch *c, int slot, size_t n, size_t size);

#endif
