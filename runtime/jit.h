/* SPDX-License-Identifier: MIT */
/*
 * This file is the runtime's door to LLVM, implemented by runtime/jit.c, the only runtime
 * file that calls LLVM: the host as LLVM sees it, the ISA class and target machine of a
 * context, compiling a kernel plan to an object, cross emission for other targets, and one
 * ORC LLJIT per context that links objects and hands back function pointers. No LLVM type
 * crosses this header.
 */
#ifndef RJ_JIT_H
#define RJ_JIT_H

#include "core/base.h"
#include "runtime/host.h"
#include "core/kabi.h"
#include "gen/kplan.h"

/* What a context compiles for (after the RFJIT_ISA clamp). */
typedef struct rj_isa {
    char name[16];       /* avx512, avx2, sse4.2, generic, neon */
    char cpu[64];        /* LLVM CPU name given to the target machine */
    char features[4096]; /* LLVM feature string given to the target machine */
    char triple[96];
    int max_vw;          /* float lanes of the widest vector */
    int fma;
    int bf16dot; /* AVX512-BF16's vdpbf16ps (rfjit_attn_desc.compute = RFJIT_BF16) */
    int amx;     /* AMX-BF16 tiles, with the kernel's permission for this process */
} rj_isa;

typedef struct rj_jit rj_jit;

/* Query LLVM for the host. Errors: RFJIT_E_INTERNAL with LLVM's message. */
rfjit_status rj_jit_host_query(rj_host *h, rj_diag *dg);

/* Resolve the ISA: `want` NULL or "" or "native" is the host's class; otherwise one of
 * avx512, avx2, sse4.2, generic, which must not exceed the host (RFJIT_E_ISA). */
rfjit_status rj_jit_isa_resolve(const rj_host *h, const char *want, rj_isa *isa, rj_diag *dg);

/* One LLJIT and target machine for `isa`. Errors: RFJIT_E_TARGET, RFJIT_E_INTERNAL. */
rfjit_status rj_jit_create(const rj_isa *isa, rj_jit **out, rj_diag *dg);
void rj_jit_destroy(rj_jit *j);

/* Threads a compile may use (1 to 8; default 1): a kernel generated in parts (gen.h) has
 * them compiled side by side. Set before the first compile. */
void rj_jit_set_threads(rj_jit *j, int threads);

typedef enum rj_emit_kind { RJ_EMIT_OBJ = 0, RJ_EMIT_ASM = 1, RJ_EMIT_IR = 2 } rj_emit_kind;

/* Compile kp for the jit's target into an object, or for a kernel of several parts the blob
 * of their objects (runtime/kbundle.h; rj_alloc'd, *n bytes). dump_dir non-NULL
 * writes <sym>.spec.txt, .pre.ll, .ll, .s and .o there; a dump that cannot be written is
 * RFJIT_E_IO, which no other failure returns. Not thread-safe per rj_jit: the caller holds
 * its compile lock. */
rfjit_status rj_jit_compile(rj_jit *j, const rj_kplan *kp, const char *sym,
                            const char *dump_dir, void **obj, size_t *n, rj_diag *dg);

/* Link an object or a blob of them (rj_jit_compile) into the JIT and look sym up. The JIT keeps the
 * code until destroy. */
rfjit_status rj_jit_link(rj_jit *j, const void *obj, size_t n, const char *sym,
                         rj_kernel_fn *fn, rj_diag *dg);

/* Check the names a caller gives for another target before LLVM sees them (LLVM would only
 * print a warning and compile for a default): the triple must be registered, cpu (NULL or ""
 * to skip) one of its CPUs, features (NULL to skip) a comma-separated list of +name or -name
 * of its features. RFJIT_E_TARGET with a message naming the value otherwise. */
rfjit_status rj_jit_check_target(const char *triple, const char *cpu, const char *features,
                                 rj_diag *dg);

/* Ahead-of-time emission for any registered target (x86-64 or AArch64): object, assembly
 * or optimised IR text (rj_alloc'd, *n bytes). Thread-safe (own context and machine). */
rfjit_status rj_jit_emit(const rj_kplan *kp, const char *sym, const char *triple,
                         const char *cpu, const char *features, rj_emit_kind kind, void **out,
                         size_t *n, rj_diag *dg);

#endif
