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

/*
 * Emit the kernel `void sym(const rj_kargs *)` of kp into M. A kernel is made of *nparts
 * functions (tmpl.h rj_tmpl_part): part 0 is sym, which calls parts 1 .. *nparts - 1
 * (`sym_p<i>`), and out-of-line helpers the parts share (ir.h rj_ir_transpose_block).
 * With part = RJ_GEN_ALL all of them go into M, internal but for sym. Otherwise M defines
 * only that part and declares what it calls, or with RJ_GEN_HELPERS only the helpers (none,
 * for a kernel that calls none), so that each can be built in its own LLVM context and
 * compiled on its own thread, and the objects linked together: parts 0 .. *nparts - 1 and
 * the helpers make the kernel. *nparts (NULL: not wanted) is the same for every part. Errors:
 * RFJIT_E_INTERNAL (a template produced invalid IR, the verifier's text in dg; no such part),
 * RFJIT_E_TARGET (bf16 products on a target without them).
 */
#define RJ_GEN_ALL (-1)
#define RJ_GEN_HELPERS (-2)
rfjit_status rj_gen_kernel(const rj_kplan *kp, LLVMModuleRef M, const char *sym,
                           const rj_gen_target *tg, int part, int *nparts, rj_diag *dg);

#endif
