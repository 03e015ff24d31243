/* SPDX-License-Identifier: MIT */
/*
 * This file is the generator's one entry: build the kernel of a resolved plan into an LLVM
 * module. Only runtime/jit.c includes it (it is part of the IR layer, so it may speak LLVM;
 * architecture.md 1.3); the module's target triple and data layout are set by the caller
 * before this runs, so the IR sees the real layout.
 */
#ifndef RJ_IR_GEN_H
#define RJ_IR_GEN_H

#include "gen/kplan.h"

#include <llvm-c/Core.h>

typedef struct rj_gen_target {
    const char *cpu;      /* "target-cpu" attribute */
    const char *features; /* "target-features" attribute */
    int names;            /* keep IR value names (dumps, debug builds) */
} rj_gen_target;

/* Emit `void sym(const rj_kargs *)` for kp into M. Errors: RFJIT_E_INTERNAL (a template
 * produced invalid IR; the verifier's text is in dg). */
rfjit_status rj_gen_kernel(const rj_kplan *kp, LLVMModuleRef M, const char *sym,
                           const rj_gen_target *tg, rj_diag *dg);

#endif
