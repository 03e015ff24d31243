/* SPDX-License-Identifier: MIT */
/*
 * This file measures the inline exp and sin/cos of gen/ir_math.c against double libm, as
 * compiled code: a small function built with the rj_ir helpers, optimised and emitted by
 * LLVM for the host (and, without FMA, 4 lanes as the sse4.2/generic plans use), linked with
 * the same ORC path as the kernels. The bounds asserted are the ones ir_math.c states:
 * exp relative error <= 1.5e-7 over [-87, 88], 0 below -87.34 (and for -inf);
 * sin/cos absolute error <= 2e-7 over |x| <= 2^13.
 */
#include <criterion/criterion.h>

#include "gen/ir.h"
#include "runtime/jit.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef void (*math_fn)(const float *x, float *e, float *s, float *c, int64_t n);

/* for (i = 0; i < n; i += vw) { e = exp(x); s, c = sincos(x) } */
static void build(rj_ir *ir)
{
    LLVMTypeRef args[5] = {ir->ty_ptr, ir->ty_ptr, ir->ty_ptr, ir->ty_ptr, ir->ty_i64};
    ir->fn = LLVMAddFunction(ir->M, "rj_test_math",
                             LLVMFunctionType(LLVMVoidTypeInContext(ir->C), args, 5, 0));
    ir->entry = LLVMAppendBasicBlockInContext(ir->C, ir->fn, "entry");
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(ir->C, ir->fn, "start");
    LLVMPositionBuilderAtEnd(ir->B, start);
    rj_loop l = rj_ir_loop_begin(ir, "i", rj_ir_i(ir, 0), LLVMGetParam(ir->fn, 4), ir->vw);
    rj_v x = rj_ir_ldv(ir, rj_ir_at(ir, LLVMGetParam(ir->fn, 0), l.i), "x");
    rj_ir_stv(ir, rj_ir_exp(ir, x, "e"), rj_ir_at(ir, LLVMGetParam(ir->fn, 1), l.i));
    rj_v s, c;
    rj_ir_sincos(ir, x, &s, &c);
    rj_ir_stv(ir, s, rj_ir_at(ir, LLVMGetParam(ir->fn, 2), l.i));
    rj_ir_stv(ir, c, rj_ir_at(ir, LLVMGetParam(ir->fn, 3), l.i));
    rj_ir_loop_end(ir, &l);
    LLVMBuildRetVoid(ir->B);
    LLVMPositionBuilderAtEnd(ir->B, ir->entry);
    LLVMBuildBr(ir->B, start);
}

static math_fn compile(const char *isa_name, rj_jit **jit_out)
{
    rj_host h;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_jit_host_query(&h, &dg), RFJIT_OK);
    rj_isa isa;
    cr_assert_eq(rj_jit_isa_resolve(&h, isa_name, &isa, &dg), RFJIT_OK, "%s", dg.msg);
    cr_assert_eq(rj_jit_create(&isa, jit_out, &dg), RFJIT_OK, "%s", dg.msg);
    LLVMTargetRef T;
    char *err = NULL;
    cr_assert_eq(LLVMGetTargetFromTriple(isa.triple, &T, &err), 0);
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(T, isa.triple, isa.cpu, isa.features,
                                                      LLVMCodeGenLevelDefault, LLVMRelocPIC,
                                                      LLVMCodeModelDefault);
    LLVMContextRef C = LLVMContextCreate();
    LLVMModuleRef M = LLVMModuleCreateWithNameInContext("math", C);
    LLVMSetTarget(M, isa.triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(M, td);
    LLVMDisposeTargetData(td);
    rj_ir ir;
    rj_ir_init(&ir, C, M, isa.max_vw, isa.fma, 1);
    build(&ir);
    rj_ir_dispose(&ir);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    cr_assert_null(LLVMRunPasses(M, "default<O2>", tm, o));
    LLVMDisposePassBuilderOptions(o);
    LLVMMemoryBufferRef buf = NULL;
    cr_assert_eq(LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &err, &buf), 0);
    rj_kernel_fn fn = NULL;
    cr_assert_eq(rj_jit_link(*jit_out, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf),
                             "rj_test_math", &fn, &dg),
                 RFJIT_OK, "%s", dg.msg);
    LLVMDisposeMemoryBuffer(buf);
    LLVMDisposeModule(M);
    LLVMContextDispose(C);
    LLVMDisposeTargetMachine(tm);
    union {
        rj_kernel_fn k;
        math_fn m;
    } u = {fn};
    return u.m;
}

static void measure(const char *isa)
{
    rj_jit *jit = NULL;
    math_fn f = compile(isa, &jit);
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof(float)), *e = malloc(N * sizeof(float));
    float *s = malloc(N * sizeof(float)), *c = malloc(N * sizeof(float));
    /* exp over [-87, 88] */
    for (int i = 0; i < N; i++)
        x[i] = (float)(-87.0 + 175.0 * i / (N - 1));
    f(x, e, s, c, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double t = exp((double)x[i]);
        worst = fmax(worst, fabs(e[i] - t) / t);
    }
    cr_expect(worst <= 1.5e-7, "%s: exp relative error %.3g > 1.5e-7", isa, worst);
    /* sin/cos over |x| <= 2^13 */
    for (int i = 0; i < N; i++)
        x[i] = (float)(-8192.0 + 16384.0 * i / (N - 1));
    f(x, e, s, c, N);
    double ws = 0, wc = 0;
    for (int i = 0; i < N; i++) {
        ws = fmax(ws, fabs(s[i] - sin((double)x[i])));
        wc = fmax(wc, fabs(c[i] - cos((double)x[i])));
    }
    cr_expect(ws <= 2e-7 && wc <= 2e-7, "%s: sin error %.3g, cos error %.3g > 2e-7", isa, ws, wc);
    /* flush to zero below the float range, and -inf */
    const float lows[16] = {-87.5f, -100.f, -1e30f, -INFINITY, -88.f, -87.4f, -200.f, -1e6f,
                            -87.5f, -100.f, -1e30f, -INFINITY, -88.f, -87.4f, -200.f, -1e6f};
    f(lows, e, s, c, 16);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(e[i], 0.0f, "%s: exp(%g) = %g, not 0", isa, lows[i], e[i]);
    free(x);
    free(e);
    free(s);
    free(c);
    rj_jit_destroy(jit);
}

Test(ir_math, native, .timeout = 120)
{
    measure("native");
}

Test(ir_math, generic, .timeout = 120)
{
    measure("generic");
}
