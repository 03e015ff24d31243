/* SPDX-License-Identifier: MIT */
/*
 * This file is the runtime's only door to LLVM (architecture.md section 4): the host as LLVM
 * sees it, the ISA clamp, one target machine and ORC LLJIT per context, the optimisation
 * pipeline and object emission, linking objects into the JIT, and cross emission.
 *
 * LLJIT is only ever handed objects (fresh or from the disk cache); its IR layer is unused,
 * so a cache hit never touches the optimiser. Every LLVMErrorRef is consumed here, its text
 * copied into an rj_diag; nothing is printed.
 */
#define _GNU_SOURCE /* syscall(2), for AMX's permission */
#include "runtime/jit.h"

#include "gen/gen.h"
#include "runtime/fsutil.h"
#include "runtime/kbundle.h"
#include "runtime/target_names.h"

#ifdef RFJIT_TESTING
#include "core/testing.h"
#endif

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <pthread.h>
#include <stdatomic.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A kernel's parts compile side by side on up to this many threads (rj_jit_set_threads). */
#define RJ_JIT_MAX_THREADS 8

struct rj_jit {
    rj_isa isa;
    LLVMTargetMachineRef tm; /* ours: optimisation and object emission */
    /* one more per extra compile thread, made on first use: a target machine is not
     * thread-safe */
    LLVMTargetMachineRef aux_tm[RJ_JIT_MAX_THREADS - 1];
    int threads;
    LLVMOrcLLJITRef lljit;
    LLVMOrcResourceTrackerRef *rts; /* one per linked object, released at destroy */
    size_t nrt, caprt;
    char orc_error[512];    /* what ORC's error reporter last said */
    unsigned elf_machine;   /* e_machine of this process: objects for another are refused */
};

static void copy_message(char *dst, size_t n, char *msg)
{
    snprintf(dst, n, "%s", msg ? msg : "");
    if (msg)
        LLVMDisposeMessage(msg);
}

/* Consume err into dg; returns the status. */
static rfjit_status fail_err(rj_diag *dg, rfjit_status s, const char *what, LLVMErrorRef err)
{
    char *m = LLVMGetErrorMessage(err);
    rfjit_status r = rj_fail(dg, s, "%s: %s", what, m ? m : "unknown LLVM error");
    LLVMDisposeErrorMessage(m);
    return r;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_targets(void)
{
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
#if defined(__x86_64__)
    LLVMInitializeAArch64TargetInfo();
    LLVMInitializeAArch64Target();
    LLVMInitializeAArch64TargetMC();
    LLVMInitializeAArch64AsmPrinter();
#endif
}

rfjit_status rj_jit_host_query(rj_host *h, rj_diag *dg)
{
    (void)dg;
    memset(h, 0, sizeof *h);
    copy_message(h->cpu, sizeof h->cpu, LLVMGetHostCPUName());
    copy_message(h->features, sizeof h->features, LLVMGetHostCPUFeatures());
    copy_message(h->triple, sizeof h->triple, LLVMGetDefaultTargetTriple());
    unsigned major = 0, minor = 0, patch = 0;
    LLVMGetVersion(&major, &minor, &patch);
    snprintf(h->llvm_version, sizeof h->llvm_version, "%u.%u.%u", major, minor, patch);
    return RFJIT_OK;
}

/* Linux hands a process AMX's 8 KiB of tile state only when asked (arch_prctl
 * ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA): without it the first tile instruction faults.
 * The permission is the process's, once. */
static int amx_permission;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void request_amx(void)
{
#if defined(__linux__) && defined(__x86_64__)
    amx_permission = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                             18 /* XFEATURE_XTILEDATA */) == 0;
#endif
}

static int amx_permitted(void)
{
    pthread_once(&amx_once, request_amx);
    return amx_permission;
}

/* Class ranks: generic < sse4.2 < avx2 < avx512 (x86); neon stands alone. */
static int host_rank(const rj_host *h)
{
    const char *f = h->features;
    if (rj_has_feature(f, "+avx512f") && rj_has_feature(f, "+avx512bw") &&
        rj_has_feature(f, "+avx512dq") && rj_has_feature(f, "+avx512vl"))
        return 3;
    if (rj_has_feature(f, "+avx2") && rj_has_feature(f, "+fma"))
        return 2;
    if (rj_has_feature(f, "+sse4.2"))
        return 1;
    return 0;
}

rfjit_status rj_jit_isa_resolve(const rj_host *h, const char *want, rj_isa *isa, rj_diag *dg)
{
    static const struct {
        const char *name, *cpu;
        int vw, fma;
    } cls[4] = {{"generic", "x86-64", 4, 0},
                {"sse4.2", "x86-64-v2", 4, 0},
                {"avx2", "x86-64-v3", 8, 1},
                {"avx512", "x86-64-v4", 16, 1}};
    memset(isa, 0, sizeof *isa);
    snprintf(isa->triple, sizeof isa->triple, "%s", h->triple);
    if (strncmp(h->triple, "aarch64", 7) == 0) {
        RJ_FAIL_IF(dg, want && *want && strcmp(want, "native") && strcmp(want, "neon"),
                   RFJIT_E_ISA, "ISA '%s' is not available on %s (only neon)", want, h->triple);
        snprintf(isa->name, sizeof isa->name, "neon");
        snprintf(isa->cpu, sizeof isa->cpu, "%s", h->cpu);
        snprintf(isa->features, sizeof isa->features, "%s", h->features);
        isa->max_vw = 4;
        isa->fma = 1;
        return RFJIT_OK;
    }
    RJ_FAIL_IF(dg, strncmp(h->triple, "x86_64", 6) != 0, RFJIT_E_TARGET,
               "host target %s is not supported (x86-64 or AArch64)", h->triple);
    const int have = host_rank(h);
    int rank = have;
    if (want && *want && strcmp(want, "native") != 0) {
        rank = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(want, cls[i].name) == 0)
                rank = i;
        RJ_FAIL_IF(dg, rank < 0, RFJIT_E_INVALID_ARG,
                   "unknown ISA '%s' (avx512, avx2, sse4.2, generic or native)", want);
        RJ_FAIL_IF(dg, rank > have, RFJIT_E_ISA,
                   "ISA '%s' asked for, but this CPU (%s) offers at most '%s'", want, h->cpu,
                   cls[have].name);
    }
    snprintf(isa->name, sizeof isa->name, "%s", cls[rank].name);
    isa->max_vw = cls[rank].vw;
    isa->fma = cls[rank].fma;
    if (rank == have) {
        /* The host's own name and features: the truth, including what LLVM does not name. */
        snprintf(isa->cpu, sizeof isa->cpu, "%s", h->cpu);
        snprintf(isa->features, sizeof isa->features, "%s", h->features);
        isa->bf16dot = rank == 3 && rj_has_feature(h->features, "+avx512bf16");
        isa->amx = isa->bf16dot && rj_has_feature(h->features, "+amx-tile") &&
                   rj_has_feature(h->features, "+amx-bf16") && amx_permitted();
    } else {
        snprintf(isa->cpu, sizeof isa->cpu, "%s", cls[rank].cpu);
        isa->features[0] = 0;
    }
    return RFJIT_OK;
}

static rfjit_status make_tm(const char *triple, const char *cpu, const char *features,
                            LLVMTargetMachineRef *tm, rj_diag *dg)
{
    LLVMTargetRef T = NULL;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &T, &err)) {
        rfjit_status s = rj_fail(dg, RFJIT_E_TARGET, "unknown target '%s': %s", triple,
                                 err ? err : "?");
        LLVMDisposeMessage(err);
        return s;
    }
    /* Less rather than Aggressive: the same instructions in every estimator's loops (only
     * their order differs, which the out-of-order cores rfjit targets absorb) for 3% fewer
     * compile instructions (docs/performance.md). */
    *tm = LLVMCreateTargetMachine(T, triple, cpu, features, LLVMCodeGenLevelLess, LLVMRelocPIC,
                                  LLVMCodeModelDefault);
    RJ_FAIL_IF(dg, !*tm, RFJIT_E_TARGET, "cannot create a target machine for %s / %s", triple,
               cpu);
    return RFJIT_OK;
}

static bool listed(const char *const *list, const char *name, size_t len)
{
    for (; *list; list++)
        if (strlen(*list) == len && strncmp(*list, name, len) == 0)
            return true;
    return false;
}

static size_t list_size(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

/* One item of a feature string ("+name" or "-name"), n bytes at f. */
static rfjit_status check_feature(const char *const *known, const char *f, size_t n,
                                  const char *triple, const char *eg, rj_diag *dg)
{
    char item[128];
    snprintf(item, sizeof item, "%.*s", (int)(n < 120 ? n : 120), f);
    RJ_FAIL_IF(dg, f[0] != '+' && f[0] != '-', RFJIT_E_TARGET,
               "feature '%s' needs a sign: +%s enables it, -%s disables it", item, item, item);
    RJ_FAIL_IF(dg, !listed(known, f + 1, n - 1), RFJIT_E_TARGET,
               "unknown feature '%s' for %s: LLVM knows %zu, e.g. %s (llc -mtriple=%s "
               "-mattr=help lists them)", item + 1, triple, list_size(known), eg, triple);
    return RFJIT_OK;
}

rfjit_status rj_jit_check_target(const char *triple, const char *cpu, const char *features,
                                 rj_diag *dg)
{
    pthread_once(&init_once, init_targets);
    LLVMTargetRef T = NULL;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(triple, &T, &err)) {
        rfjit_status s = rj_fail(dg, RFJIT_E_TARGET, "unknown target '%s': %s (x86_64-... and "
                                 "aarch64-... triples are supported)", triple, err ? err : "?");
        LLVMDisposeMessage(err);
        return s;
    }
    const int x86 = strncmp(LLVMGetTargetName(T), "x86", 3) == 0;
    const char *const *cpus = x86 ? rj_x86_cpus : rj_aarch64_cpus;
    const char *const *feats = x86 ? rj_x86_features : rj_aarch64_features;
    RJ_FAIL_IF(dg, cpu && *cpu && !listed(cpus, cpu, strlen(cpu)), RFJIT_E_TARGET,
               "unknown CPU '%s' for %s: LLVM knows %zu, e.g. %s (llc -mtriple=%s -mcpu=help "
               "lists them)", cpu, triple, list_size(cpus),
               x86 ? "x86-64, x86-64-v3, x86-64-v4, skylake-avx512, znver4"
                   : "generic, cortex-a76, neoverse-n1, neoverse-v2, apple-m1",
               triple);
    /* LLVM drops empty items of the comma-separated list; so do we */
    for (const char *f = features ? features : ""; *f;) {
        const size_t n = strcspn(f, ",");
        if (n)
            RJ_TRY(check_feature(feats, f, n, triple, x86 ? "+avx2, +fma, +avx512f"
                                                          : "+neon, +sve, +v8.2a", dg));
        f += n + (f[n] == ',');
    }
    return RFJIT_OK;
}

static void report_orc_error(void *ctx, LLVMErrorRef err)
{
    rj_jit *j = ctx;
    char *m = LLVMGetErrorMessage(err);
    snprintf(j->orc_error, sizeof j->orc_error, "%s", m ? m : "");
    LLVMDisposeErrorMessage(m);
}

/* Kernels may only reach memcpy, memmove and memset in the host process; anything else
 * unresolved is a generator bug and must fail to link, not bind to a random symbol. */
static int allow_symbol(void *ctx, LLVMOrcSymbolStringPoolEntryRef sym)
{
    (void)ctx;
    const char *s = LLVMOrcSymbolStringPoolEntryStr(sym);
    return strcmp(s, "memcpy") == 0 || strcmp(s, "memmove") == 0 || strcmp(s, "memset") == 0;
}

rfjit_status rj_jit_create(const rj_isa *isa, rj_jit **out, rj_diag *dg)
{
    *out = NULL;
    pthread_once(&init_once, init_targets);
    rj_jit *j = rj_alloc_zero(sizeof *j);
    RJ_FAIL_IF(dg, !j, RFJIT_E_NOMEM, "no memory for a JIT");
    j->isa = *isa;
    j->threads = 1;
    j->elf_machine = !strncmp(isa->triple, "aarch64", 7) ? 183u : 62u; /* EM_AARCH64, EM_X86_64 */
    rfjit_status s = make_tm(isa->triple, isa->cpu, isa->features, &j->tm, dg);
    LLVMTargetMachineRef tm2 = NULL;
    if (s == RFJIT_OK)
        s = make_tm(isa->triple, isa->cpu, isa->features, &tm2, dg);
    if (s != RFJIT_OK) {
        rj_jit_destroy(j);
        return s;
    }
    LLVMOrcLLJITBuilderRef b = LLVMOrcCreateLLJITBuilder();
    LLVMOrcJITTargetMachineBuilderRef jtmb =
        LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm2);
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(b, jtmb);
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&j->lljit, b);
    if (e) {
        j->lljit = NULL;
        s = fail_err(dg, RFJIT_E_INTERNAL, "cannot create the ORC LLJIT", e);
        rj_jit_destroy(j);
        return s;
    }
    LLVMOrcExecutionSessionSetErrorReporter(LLVMOrcLLJITGetExecutionSession(j->lljit),
                                            report_orc_error, j);
    LLVMOrcDefinitionGeneratorRef g = NULL;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
        &g, LLVMOrcLLJITGetGlobalPrefix(j->lljit), allow_symbol, NULL);
    if (e) {
        s = fail_err(dg, RFJIT_E_INTERNAL, "cannot create the process symbol generator", e);
        rj_jit_destroy(j);
        return s;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->lljit), g);
    *out = j;
    return RFJIT_OK;
}

#ifdef RFJIT_TESTING
rfjit_status rj_test_jit_retarget(rj_jit *j, const char *triple, const char *cpu,
                                  const char *features, rj_diag *dg)
{
    LLVMTargetMachineRef tm = NULL;
    RJ_TRY(make_tm(triple, cpu, features, &tm, dg));
    LLVMDisposeTargetMachine(j->tm);
    j->tm = tm;
    for (int i = 0; i < RJ_JIT_MAX_THREADS - 1; i++)
        if (j->aux_tm[i]) {
            LLVMDisposeTargetMachine(j->aux_tm[i]);
            j->aux_tm[i] = NULL;
        }
    snprintf(j->isa.triple, sizeof j->isa.triple, "%s", triple);
    snprintf(j->isa.cpu, sizeof j->isa.cpu, "%s", cpu);
    snprintf(j->isa.features, sizeof j->isa.features, "%s", features);
    return RFJIT_OK;
}
#endif

void rj_jit_destroy(rj_jit *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->nrt; i++)
        LLVMOrcReleaseResourceTracker(j->rts[i]);
    rj_free(j->rts);
    if (j->lljit) {
        LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
        if (e)
            LLVMConsumeError(e);
    }
    if (j->tm)
        LLVMDisposeTargetMachine(j->tm);
    for (int i = 0; i < RJ_JIT_MAX_THREADS - 1; i++)
        if (j->aux_tm[i])
            LLVMDisposeTargetMachine(j->aux_tm[i]);
    rj_free(j);
}

void rj_jit_set_threads(rj_jit *j, int threads)
{
    j->threads = threads < 1 ? 1 : threads > RJ_JIT_MAX_THREADS ? RJ_JIT_MAX_THREADS : threads;
}

static rfjit_status write_file(const char *dir, const char *sym, const char *ext,
                               const void *p, size_t n, rj_diag *dg)
{
    char path[RJ_PATH_BYTES], why[RJ_PATH_BYTES + 160];
    snprintf(path, sizeof path, "%s/%s%s", dir, sym, ext);
    RJ_FAIL_IF(dg, rj_write_file(path, p, n, 0644, 0, why, sizeof why) != 0, RFJIT_E_IO,
               "RFJIT_DUMP: %.3900s", why);
    return RFJIT_OK;
}

static rfjit_status dump_module(const char *dir, const char *sym, const char *ext,
                                LLVMModuleRef M, rj_diag *dg)
{
    char *s = LLVMPrintModuleToString(M);
    rfjit_status st = write_file(dir, sym, ext, s, strlen(s), dg);
    LLVMDisposeMessage(s);
    return st;
}

static rfjit_status emit_buffer(LLVMTargetMachineRef tm, LLVMModuleRef M, LLVMCodeGenFileType ft,
                                void **out, size_t *n, rj_diag *dg)
{
    char *err = NULL;
    LLVMMemoryBufferRef buf = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, M, ft, &err, &buf)) {
        rfjit_status s = rj_fail(dg, RFJIT_E_INTERNAL, "code generation failed: %s",
                                 err ? err : "?");
        LLVMDisposeMessage(err);
        return s;
    }
    size_t size = LLVMGetBufferSize(buf);
    void *p = rj_alloc(size ? size : 1);
    if (p)
        memcpy(p, LLVMGetBufferStart(buf), size);
    LLVMDisposeMemoryBuffer(buf);
    RJ_FAIL_IF(dg, !p, RFJIT_E_NOMEM, "no memory for a %zu-byte object", size);
    *out = p;
    *n = size;
    return RFJIT_OK;
}

/* The templates emit explicit <vw x float> code with the register tile unrolled, so of
 * default<O1> (itself chosen over O2 for equal kernels at fewer compile instructions) only a
 * few passes change the machine code: promoting the templates' allocas (sroa), reassociating
 * index arithmetic so that licm can split loop-invariant address parts off (before
 * instcombine merges them into or-disjoint indices that LSR cannot take apart), loop rotation,
 * hoisting invariant splats and masks (licm), exit tests on the trip count (indvars, which
 * lets LSR count down to zero), folding the i1 splats of the masks (vector-combine), and
 * constants into the transpose helper (ipsccp, deadargelim). This list gives every
 * estimator's inner loops as O1 does, instruction for instruction but for register moves in
 * one hybrid loop and a compare in a few short ones, in about half O1's optimisation time
 * (docs/performance.md). Every pass left is needed: without any one of them some estimator's
 * object changes, while an instcombine between indvars and vector-combine and ipsccp's
 * function specialisation (the helper is one small function) change no estimator's object.
 * indvars is the dearest pass left (a tenth of a compile), but without it LSR leaves a
 * shift and two moves in one of exact's two hot loops. A plain "instcombine" aborts when it
 * misses its fixpoint; the default pipelines run it without that check. */
static const char pipeline[] =
    "ipsccp<no-func-spec>,deadargelim,function(sroa,early-cse,instcombine<no-verify-fixpoint>,"
    "simplifycfg,reassociate,loop(loop-rotate),loop-mssa(licm),loop(indvars),vector-combine,"
    "instcombine<no-verify-fixpoint>,loop-mssa(licm),simplifycfg)";

/* Build and verify part `part` of kp (RJ_GEN_ALL: every part) into a new module of C for tm;
 * *nparts is how many the kernel has. M is left for the caller to optimise and emit. */
static rfjit_status generate(LLVMContextRef C, LLVMTargetMachineRef tm, const char *triple,
                             const char *cpu, const char *features, const rj_kplan *kp,
                             const char *sym, int part, int *nparts, const char *dump_dir,
                             LLVMModuleRef *Mout, rj_diag *dg)
{
    LLVMModuleRef M = LLVMModuleCreateWithNameInContext(sym, C);
    *Mout = M;
    LLVMSetTarget(M, triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(M, td);
    LLVMDisposeTargetData(td);
    rj_gen_target tg = {cpu, features, dump_dir != NULL};
#ifndef NDEBUG
    tg.names = 1;
#endif
    RJ_TRY(rj_gen_kernel(kp, M, sym, &tg, part, nparts, dg));
    if (dump_dir) {
        char desc[512];
        rj_kplan_describe(kp, desc, sizeof desc);
        /* The feature string alone can pass 1 KiB (every x86 feature is named), so the text is
         * sized to what it holds. */
        static const char fmt[] = "%s\ntriple=%s cpu=%s\nfeatures=%s\n";
        const int k = snprintf(NULL, 0, fmt, desc, triple, cpu, features);
        RJ_FAIL_IF(dg, k < 0, RFJIT_E_INTERNAL, "cannot format the kernel's dump description");
        char *text = rj_alloc((size_t)k + 1);
        RJ_FAIL_IF(dg, !text, RFJIT_E_NOMEM, "no memory for a %d-byte dump description", k + 1);
        snprintf(text, (size_t)k + 1, fmt, desc, triple, cpu, features);
        const rfjit_status st = write_file(dump_dir, sym, ".spec.txt", text, (size_t)k, dg);
        rj_free(text);
        RJ_TRY(st);
        RJ_TRY(dump_module(dump_dir, sym, ".pre.ll", M, dg));
    }
    return RFJIT_OK;
}

/* Run the pipeline on M for tm (and dump the result). */
static rfjit_status optimise(LLVMTargetMachineRef tm, LLVMModuleRef M, const char *sym,
                             const char *dump_dir, rj_diag *dg)
{
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
#ifndef NDEBUG
    LLVMPassBuilderOptionsSetVerifyEach(o, 1);
#endif
    LLVMErrorRef e = LLVMRunPasses(M, pipeline, tm, o);
    LLVMDisposePassBuilderOptions(o);
    if (e)
        return fail_err(dg, RFJIT_E_INTERNAL, "optimisation failed", e);
    if (dump_dir) {
        RJ_TRY(dump_module(dump_dir, sym, ".ll", M, dg));
        LLVMModuleRef copy = LLVMCloneModule(M);
        void *s = NULL;
        size_t n = 0;
        rfjit_status st = emit_buffer(tm, copy, LLVMAssemblyFile, &s, &n, dg);
        LLVMDisposeModule(copy);
        if (st == RFJIT_OK)
            st = write_file(dump_dir, sym, ".s", s, n, dg);
        rj_free(s);
        RJ_TRY(st);
    }
    return RFJIT_OK;
}

/* The modules of one compile, shared by its threads: each takes the next job not taken. Job
 * 0 is part 0, job 1 the helpers (a transpose costs as much to compile as a small part, so
 * it goes early rather than last on one thread), job p > 1 part p - 1. */
typedef struct part_work {
    rj_jit *j;
    const rj_kplan *kp;
    const char *sym;
    int nparts, njobs;
    atomic_int next;
    void *obj[RJ_KBUNDLE_MAX];
    size_t size[RJ_KBUNDLE_MAX];
    rfjit_status st[RJ_KBUNDLE_MAX];
    rj_diag dg[RJ_KBUNDLE_MAX];
} part_work;

typedef struct part_thread {
    part_work *w;
    LLVMTargetMachineRef tm;
} part_thread;

static int job_part(int job)
{
    return job == 1 ? RJ_GEN_HELPERS : job > 1 ? job - 1 : 0;
}

/* Job `job` of the kernel, alone in a context of its own, to an object (none for helpers
 * the kernel does not have). */
static void compile_part(part_work *w, LLVMTargetMachineRef tm, int job)
{
    const int part = job_part(job);
    const rj_isa *isa = &w->j->isa;
    rj_diag *dg = &w->dg[job];
    LLVMContextRef C = LLVMContextCreate();
    LLVMModuleRef M = NULL;
    int n = 0;
    rfjit_status s = generate(C, tm, isa->triple, isa->cpu, isa->features, w->kp, w->sym, part, &n,
                              NULL, &M, dg);
    if (s == RFJIT_OK && n != w->nparts)
        s = rj_fail(dg, RFJIT_E_INTERNAL, "part %d of kernel %s counts %d parts, part 0 %d", job,
                    w->sym, n, w->nparts);
    if (s == RFJIT_OK && LLVMGetFirstFunction(M)) {
        s = optimise(tm, M, w->sym, NULL, dg);
        if (s == RFJIT_OK)
            s = emit_buffer(tm, M, LLVMObjectFile, &w->obj[job], &w->size[job], dg);
    }
    if (M)
        LLVMDisposeModule(M);
    LLVMContextDispose(C);
    w->st[job] = s;
}

static void take_parts(part_work *w, LLVMTargetMachineRef tm)
{
    for (int p; (p = atomic_fetch_add(&w->next, 1)) < w->njobs;)
        compile_part(w, tm, p);
}

static void *part_thread_main(void *arg)
{
    part_thread *t = arg;
    take_parts(t->w, t->tm);
    return NULL;
}

/*
 * LLVM makes some of its shared state on first use (the timers' lock of its pass managers,
 * among others) and publishes it with atomics, which is safe, but which a ThreadSanitizer
 * build cannot see in the uninstrumented libLLVM: it reports the first two threads that run
 * a pipeline at once. So the first compile of the process that runs parts side by side
 * first takes an empty module through the same pipeline and code generation on its own
 * thread, before any other starts (3 ms, once per process), as one compile at a time
 * always did before. warm_tm is the calling thread's machine for pthread_once's routine.
 */
static pthread_once_t warm_once = PTHREAD_ONCE_INIT;
static _Thread_local LLVMTargetMachineRef warm_tm;

static void warm_llvm(void)
{
    LLVMContextRef C = LLVMContextCreate();
    LLVMModuleRef M = LLVMModuleCreateWithNameInContext("rj_warm", C);
    LLVMTypeRef fty = LLVMFunctionType(LLVMVoidTypeInContext(C), NULL, 0, 0);
    LLVMValueRef fn = LLVMAddFunction(M, "rj_warm", fty);
    LLVMBuilderRef B = LLVMCreateBuilderInContext(C);
    LLVMPositionBuilderAtEnd(B, LLVMAppendBasicBlockInContext(C, fn, "entry"));
    LLVMBuildRetVoid(B);
    LLVMDisposeBuilder(B);
    rj_diag ignore = {{0}};
    void *obj = NULL;
    size_t n = 0;
    if (optimise(warm_tm, M, "rj_warm", NULL, &ignore) == RFJIT_OK &&
        emit_buffer(warm_tm, M, LLVMObjectFile, &obj, &n, &ignore) == RFJIT_OK)
        rj_free(obj);
    LLVMDisposeModule(M);
    LLVMContextDispose(C);
}

/* Jobs 1 .. w->njobs - 1 on up to j->threads - 1 threads besides this one, which takes its
 * share after emitting part 0 from M0; a thread that cannot start leaves its share to the
 * others. */
static void compile_rest(part_work *w, LLVMTargetMachineRef tm0, LLVMModuleRef M0)
{
    rj_jit *j = w->j;
    pthread_t th[RJ_JIT_MAX_THREADS - 1];
    part_thread pt[RJ_JIT_MAX_THREADS - 1];
    int started[RJ_JIT_MAX_THREADS - 1] = {0};
    const int extra = j->threads - 1 < w->njobs - 1 ? j->threads - 1 : w->njobs - 1;
    atomic_store(&w->next, 1);
    warm_tm = tm0;
    pthread_once(&warm_once, warm_llvm);
    for (int i = 0; i < extra; i++) {
        rj_diag ignore = {{0}};
        if (!j->aux_tm[i] &&
            make_tm(j->isa.triple, j->isa.cpu, j->isa.features, &j->aux_tm[i], &ignore) != RFJIT_OK)
            continue;
        pt[i] = (part_thread){w, j->aux_tm[i]};
        started[i] = pthread_create(&th[i], NULL, part_thread_main, &pt[i]) == 0;
    }
    w->st[0] = optimise(tm0, M0, w->sym, NULL, &w->dg[0]);
    if (w->st[0] == RFJIT_OK)
        w->st[0] = emit_buffer(tm0, M0, LLVMObjectFile, &w->obj[0], &w->size[0], &w->dg[0]);
    take_parts(w, tm0);
    for (int i = 0; i < extra; i++)
        if (started[i])
            pthread_join(th[i], NULL);
}

/* Every part but the first (already generated into M0), the helpers, and the blob of all
 * their objects. */
static rfjit_status compile_parts(rj_jit *j, const rj_kplan *kp, const char *sym, LLVMModuleRef M0,
                                  int nparts, void **obj, size_t *n, rj_diag *dg)
{
    RJ_FAIL_IF(dg, nparts + 1 > RJ_KBUNDLE_MAX, RFJIT_E_INTERNAL,
               "kernel %s has %d parts (at most %d)", sym, nparts, RJ_KBUNDLE_MAX - 1);
    part_work *w = rj_alloc_zero(sizeof *w);
    RJ_FAIL_IF(dg, !w, RFJIT_E_NOMEM, "no memory for a kernel's compile");
    *w = (part_work){.j = j, .kp = kp, .sym = sym, .nparts = nparts, .njobs = nparts + 1};
    for (int p = 0; p < w->njobs; p++)
        w->st[p] = RFJIT_E_INTERNAL; /* a job no thread took (none should be left) */
    compile_rest(w, j->tm, M0);
    rfjit_status s = RFJIT_OK;
    void *objs[RJ_KBUNDLE_MAX];
    size_t sizes[RJ_KBUNDLE_MAX];
    int k = 0;
    for (int p = 0; p < w->njobs && s == RFJIT_OK; p++) {
        if (w->st[p] != RFJIT_OK && job_part(p) == RJ_GEN_HELPERS)
            s = rj_fail(dg, w->st[p], "the helpers of kernel %s: %s", sym,
                        w->dg[p].msg[0] ? w->dg[p].msg : "not compiled");
        else if (w->st[p] != RFJIT_OK)
            s = rj_fail(dg, w->st[p], "part %d of kernel %s: %s", job_part(p), sym,
                        w->dg[p].msg[0] ? w->dg[p].msg : "not compiled");
        else if (w->obj[p]) {
            objs[k] = w->obj[p];
            sizes[k++] = w->size[p];
        }
    }
    if (s == RFJIT_OK)
        s = rj_kbundle_pack(objs, sizes, k, obj, n, dg);
    for (int p = 0; p < w->njobs; p++)
        rj_free(w->obj[p]);
    rj_free(w);
    return s;
}

rfjit_status rj_jit_compile(rj_jit *j, const rj_kplan *kp, const char *sym,
                            const char *dump_dir, void **obj, size_t *n, rj_diag *dg)
{
    /* parts side by side when there are threads for them; a dump, whose files are named after
     * the kernel, and one thread take the kernel as one module */
    const int split = j->threads > 1 && !dump_dir;
    LLVMContextRef C = LLVMContextCreate();
    LLVMModuleRef M = NULL;
    int nparts = 1;
    rfjit_status s = generate(C, j->tm, j->isa.triple, j->isa.cpu, j->isa.features, kp, sym,
                              split ? 0 : RJ_GEN_ALL, &nparts, dump_dir, &M, dg);
    if (s == RFJIT_OK && split) {
        s = compile_parts(j, kp, sym, M, nparts, obj, n, dg);
    } else if (s == RFJIT_OK) {
        s = optimise(j->tm, M, sym, dump_dir, dg);
        if (s == RFJIT_OK)
            s = emit_buffer(j->tm, M, LLVMObjectFile, obj, n, dg);
        if (s == RFJIT_OK && dump_dir)
            s = write_file(dump_dir, sym, ".o", *obj, *n, dg);
    }
    if (M)
        LLVMDisposeModule(M);
    LLVMContextDispose(C);
    return s;
}

/* ORC links an object of another architecture without complaint (an AArch64 kernel into an
 * x86-64 process: it crashes when called), so the ELF header is checked first: 64-bit,
 * little-endian, relocatable, this process's machine. */
static rfjit_status check_object(const rj_jit *j, const unsigned char *o, size_t n, rj_diag *dg)
{
    RJ_FAIL_IF(dg, n < 64 || memcmp(o, "\177ELF", 4) != 0 || o[4] != 2 || o[5] != 1,
               RFJIT_E_JIT, "the kernel object is not a 64-bit little-endian ELF file");
    const unsigned type = o[16] | (unsigned)o[17] << 8, machine = o[18] | (unsigned)o[19] << 8;
    RJ_FAIL_IF(dg, type != 1, RFJIT_E_JIT, "the kernel object is ELF type %u, not relocatable",
               type);
    RJ_FAIL_IF(dg, machine != j->elf_machine, RFJIT_E_JIT,
               "the kernel object is for ELF machine %u, this process is %u: not linked",
               machine, j->elf_machine);
    return RFJIT_OK;
}

rfjit_status rj_jit_link(rj_jit *j, const void *obj, size_t n, const char *sym,
                         rj_kernel_fn *fn, rj_diag *dg)
{
    const void *part[RJ_KBUNDLE_MAX];
    size_t size[RJ_KBUNDLE_MAX];
    int nparts = 0;
    RJ_TRY(rj_kbundle_open(obj, n, part, size, &nparts, dg));
    for (int p = 0; p < nparts; p++)
        RJ_TRY(check_object(j, part[p], size[p], dg));
    void *rts = j->rts;
    RJ_FAIL_IF(dg, !rj_grow(&rts, j->nrt, &j->caprt, sizeof *j->rts), RFJIT_E_NOMEM,
               "no memory for the JIT's trackers");
    j->rts = rts;
    LLVMOrcResourceTrackerRef rt =
        LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(j->lljit));
    j->rts[j->nrt++] = rt;
    LLVMErrorRef e = NULL;
    for (int p = 0; p < nparts; p++) {
        char name[256]; /* the buffer's identifier in LLVM's messages */
        snprintf(name, sizeof name, "%s#%d", sym, p);
        LLVMMemoryBufferRef buf = LLVMCreateMemoryBufferWithMemoryRangeCopy(part[p], size[p], name);
        e = LLVMOrcLLJITAddObjectFileWithRT(j->lljit, rt, buf);
        if (e)
            return fail_err(dg, RFJIT_E_INTERNAL, "cannot add the kernel object to the JIT", e);
    }
    LLVMOrcExecutorAddress addr = 0;
    j->orc_error[0] = 0;
    e = LLVMOrcLLJITLookup(j->lljit, &addr, sym);
    if (e)
        return fail_err(dg, RFJIT_E_INTERNAL, "cannot link the kernel", e);
    RJ_FAIL_IF(dg, !addr, RFJIT_E_INTERNAL, "kernel %s linked at address 0: %s", sym,
               j->orc_error);
    /* ISO C forbids object-to-function pointer casts; POSIX guarantees they work. */
    union {
        uintptr_t a;
        rj_kernel_fn f;
    } u;
    u.a = (uintptr_t)addr;
    *fn = u.f;
    return RFJIT_OK;
}

rfjit_status rj_jit_emit(const rj_kplan *kp, const char *sym, const char *triple,
                         const char *cpu, const char *features, rj_emit_kind kind, void **out,
                         size_t *n, rj_diag *dg)
{
    pthread_once(&init_once, init_targets);
    LLVMTargetMachineRef tm = NULL;
    RJ_TRY(make_tm(triple, cpu, features, &tm, dg));
    LLVMContextRef C = LLVMContextCreate();
    LLVMModuleRef M = NULL;
    rfjit_status s = generate(C, tm, triple, cpu, features, kp, sym, RJ_GEN_ALL, NULL, NULL, &M,
                              dg);
    if (s == RFJIT_OK)
        s = optimise(tm, M, sym, NULL, dg);
    if (s == RFJIT_OK && kind == RJ_EMIT_IR) {
        char *t = LLVMPrintModuleToString(M);
        const size_t len = strlen(t);
        void *p = rj_strndup(t, len);
        LLVMDisposeMessage(t);
        if (!p)
            s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for the IR text");
        *out = p;
        *n = len;
    } else if (s == RFJIT_OK) {
        s = emit_buffer(tm, M, kind == RJ_EMIT_ASM ? LLVMAssemblyFile : LLVMObjectFile, out, n,
                        dg);
    }
    if (M)
        LLVMDisposeModule(M);
    LLVMContextDispose(C);
    LLVMDisposeTargetMachine(tm);
    return s;
}
