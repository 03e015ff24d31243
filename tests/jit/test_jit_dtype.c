/* SPDX-License-Identifier: MIT */
/*
 * This file checks float16 and bfloat16 tensors from the bits up.
 *
 * Conversions (core/half.c): every one of the 65536 bit patterns of each type widens to the
 * float an ldexp formula gives; narrowing is checked at every rounding boundary: each value
 * maps to itself, and the midpoint of two neighbours goes to the even one while the floats
 * just below and above it go down and up (which, the rounding being monotonic, pins it
 * everywhere), overflow included.
 *
 * The kernels' conversions (gen/ir_half.c) are compiled on their own, both the hardware path
 * and the integer one, and must give core/half.c's bits on every pattern and boundary.
 *
 * Kernels: the linear template (positive, trig, hybrid) and softmax (exact), bidirectional
 * and causal, d = dv = 64 and 5, element strides wider than rows. Inputs are rounded to the
 * dtype first, so the float32 kernel sees exactly the values the half kernels load. A half
 * kernel widens exactly and then runs the float32 kernel's arithmetic, so:
 *  - half in, float32 out: bit for bit the float32 kernel's output;
 *  - half in, half out: that float rounded once to nearest even, i.e. exactly
 *    rj_f32_to_f16/bf16 of the float32 output; within half an ulp of the dtype of it, so
 *    well inside the one ulp asked for. (AVX512-BF16's conversion flushes float subnormals,
 *    outputs below 2^-126, which these outputs never are.)
 */
#include <criterion/criterion.h>

#include "core/half.h"
#include "data_testutil.h"
#include "gen/ir.h"
#include "gen/kplan.h"
#include "rfjit.h"
#include "runtime/jit.h"
#include "runtime/plan.h"

#include <llvm-c/Core.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* The value of a 16-bit pattern with `mb` mantissa bits and exponent bias `bias` (f16: 10,
 * 15; bf16: 7, 127), by arithmetic rather than by moving bits. */
static double value_of(uint16_t h, int mb, int bias)
{
    const int eb = 15 - mb;
    const int e = (h >> mb) & ((1 << eb) - 1), m = h & ((1 << mb) - 1);
    const double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == (1 << eb) - 1)
        return m ? NAN : s * INFINITY;
    if (e == 0)
        return s * ldexp(m, 1 - bias - mb);
    return s * ldexp(m + (1 << mb), e - bias - mb);
}

typedef struct fmt {
    int dt, mb, bias;
    uint16_t max_finite, inf;
    float (*widen)(uint16_t);
    uint16_t (*narrow)(float);
} fmt;

static const fmt F16 = {RFJIT_F16, 10, 15, 0x7bff, 0x7c00, rj_f16_to_f32, rj_f32_to_f16};
static const fmt BF16 = {RFJIT_BF16, 7, 127, 0x7f7f, 0x7f80, rj_bf16_to_f32, rj_f32_to_bf16};

static void check_widen(const fmt *f)
{
    for (uint32_t h = 0; h < 65536; h++) {
        const double want = value_of((uint16_t)h, f->mb, f->bias);
        const float got = f->widen((uint16_t)h);
        const bool finite = !isnan(want) && !isinf(want);
        cr_assert_eq(rj_half_finite((uint16_t)h, f->dt), finite, "finite(0x%04x)", h);
        if (isnan(want)) {
            cr_assert(isnan(got), "0x%04x widens to %g, not NaN", h, got);
            cr_assert_eq(signbit(got) != 0, (h & 0x8000) != 0, "NaN 0x%04x loses its sign", h);
            cr_assert_eq(f->narrow(got) & 0x8000, h & 0x8000);
            cr_assert(!rj_half_finite(f->narrow(got), f->dt), "NaN 0x%04x narrows finite", h);
            continue;
        }
        cr_assert_eq(bits_of(got), bits_of((float)want), "0x%04x widens to %a, not %a", h,
                     (double)got, want);
        cr_assert_eq(f->narrow(got), h, "0x%04x does not come back from %a", h, (double)got);
    }
}

/* Value of the pattern after h in magnitude; past the largest finite one, the power of two
 * the format would reach with one more exponent. */
static double next_up(const fmt *f, uint16_t h)
{
    if ((h & 0x7fff) == f->max_finite)
        return ldexp(h & 0x8000 ? -1.0 : 1.0, f->bias + 1);
    return value_of((uint16_t)(h + 1), f->mb, f->bias);
}

static void check_ties(const fmt *f)
{
    for (uint32_t s = 0; s <= 0x8000; s += 0x8000)
        for (uint32_t m = 0; m <= f->max_finite; m++) {
            const uint16_t h = (uint16_t)(s | m), up = (uint16_t)(h + 1);
            const double a = value_of(h, f->mb, f->bias), b = next_up(f, h);
            const float mid = (float)((a + b) / 2); /* one more bit than the format: exact */
            cr_assert_eq((double)mid, (a + b) / 2);
            const uint16_t even = (h & 1) ? up : h;
            cr_assert_eq(f->narrow(mid), even, "tie %a -> 0x%04x, not 0x%04x", (double)mid,
                         f->narrow(mid), even);
            const float below = nextafterf(mid, 0.0f), above = nextafterf(mid, mid * 2);
            cr_assert_eq(f->narrow(below), h, "%a -> 0x%04x, not 0x%04x", (double)below,
                         f->narrow(below), h);
            cr_assert_eq(f->narrow(above), up, "%a -> 0x%04x, not 0x%04x", (double)above,
                         f->narrow(above), up);
        }
    cr_assert_eq(f->narrow(INFINITY), f->inf);
    cr_assert_eq(f->narrow(-INFINITY), f->inf | 0x8000);
    cr_assert_eq(f->narrow(FLT_MAX), f->inf);
    cr_assert_eq(f->narrow(0x1p-149f), 0);
    cr_assert_eq(f->narrow(-0x1p-149f), 0x8000);
}

Test(jit_dtype, f16_conversions_exhaustive)
{
    check_widen(&F16);
    check_ties(&F16);
}

Test(jit_dtype, bf16_conversions_exhaustive)
{
    check_widen(&BF16);
    check_ties(&BF16);
}

Test(jit_dtype, dtype_sizes)
{
    cr_assert_eq(rj_dtype_size(RFJIT_F32), 4);
    cr_assert_eq(rj_dtype_size(RFJIT_F16), 2);
    cr_assert_eq(rj_dtype_size(RFJIT_BF16), 2);
    cr_assert_eq(rj_dtype_size(3), 0);
    cr_assert_eq(rj_dtype_size(-1), 0);
}

/* ---- the kernels' conversions, compiled alone ---------------------------------------- */

typedef void (*conv_fn)(const uint16_t *h, float *wide, const float *x, uint16_t *narrow,
                        float *wide_s, uint16_t *narrow_s, int64_t n);

/* Vector loop, then scalar loop: wide = widen(h), narrow = narrow(x), for i < n (n a
 * multiple of vw). */
static void build_conv(rj_ir *ir, int dt, const rj_isa *isa, int hardware)
{
    LLVMTypeRef args[7] = {ir->ty_ptr, ir->ty_ptr, ir->ty_ptr, ir->ty_ptr,
                           ir->ty_ptr, ir->ty_ptr, ir->ty_i64};
    ir->fn = LLVMAddFunction(ir->M, "rj_test_conv",
                             LLVMFunctionType(LLVMVoidTypeInContext(ir->C), args, 7, 0));
    if (hardware) { /* without these attributes the helpers take the integer path */
        LLVMAddTargetDependentFunctionAttr(ir->fn, "target-cpu", isa->cpu);
        LLVMAddTargetDependentFunctionAttr(ir->fn, "target-features", isa->features);
    }
    ir->entry = LLVMAppendBasicBlockInContext(ir->C, ir->fn, "entry");
    LLVMBasicBlockRef start = LLVMAppendBasicBlockInContext(ir->C, ir->fn, "start");
    LLVMPositionBuilderAtEnd(ir->B, start);
    rj_v a[7];
    for (unsigned i = 0; i < 7; i++)
        a[i] = LLVMGetParam(ir->fn, i);
    for (int vec = 1; vec >= 0; vec--) {
        rj_loop l = rj_ir_loop_begin(ir, "i", rj_ir_i(ir, 0), a[6], vec ? ir->vw : 1);
        rj_v w = rj_ir_ld_dt(ir, rj_ir_at_dt(ir, a[0], l.i, dt), dt, vec, "w");
        rj_ir_st(ir, w, rj_ir_at(ir, a[vec ? 1 : 4], l.i));
        rj_v x = vec ? rj_ir_ldv(ir, rj_ir_at(ir, a[2], l.i), "x")
                     : rj_ir_ld(ir, rj_ir_at(ir, a[2], l.i), "x");
        rj_ir_st_dt(ir, x, rj_ir_at_dt(ir, a[vec ? 3 : 5], l.i, dt), dt);
        rj_ir_loop_end(ir, &l);
    }
    LLVMBuildRetVoid(ir->B);
    LLVMPositionBuilderAtEnd(ir->B, ir->entry);
    LLVMBuildBr(ir->B, start);
}

static conv_fn compile_conv(const char *isa_name, int dt, int hardware, rj_jit **jit_out)
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
    LLVMModuleRef M = LLVMModuleCreateWithNameInContext("conv", C);
    LLVMSetTarget(M, isa.triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(M, td);
    LLVMDisposeTargetData(td);
    rj_ir ir;
    rj_ir_init(&ir, C, M, isa.max_vw, isa.fma, 1);
    build_conv(&ir, dt, &isa, hardware);
    rj_ir_dispose(&ir);
    LLVMPassBuilderOptionsRef o = LLVMCreatePassBuilderOptions();
    cr_assert_null(LLVMRunPasses(M, "default<O2>", tm, o));
    LLVMDisposePassBuilderOptions(o);
    LLVMMemoryBufferRef buf = NULL;
    cr_assert_eq(LLVMTargetMachineEmitToMemoryBuffer(tm, M, LLVMObjectFile, &err, &buf), 0);
    rj_kernel_fn fn = NULL;
    cr_assert_eq(rj_jit_link(*jit_out, LLVMGetBufferStart(buf), LLVMGetBufferSize(buf),
                             "rj_test_conv", &fn, &dg),
                 RFJIT_OK, "%s", dg.msg);
    LLVMDisposeMemoryBuffer(buf);
    LLVMDisposeModule(M);
    LLVMContextDispose(C);
    LLVMDisposeTargetMachine(tm);
    union {
        rj_kernel_fn k;
        conv_fn c;
    } u = {fn};
    return u.c;
}

/* Every pattern, each one's value, and the midpoints of neighbours with the floats either
 * side of them, plus float subnormals, overflow and NaN payloads. */
static size_t narrow_inputs(const fmt *f, float *x)
{
    size_t n = 0;
    for (uint32_t h = 0; h < 65536; h++)
        x[n++] = f->widen((uint16_t)h);
    for (uint32_t s = 0; s <= 0x8000; s += 0x8000)
        for (uint32_t m = 0; m <= f->max_finite; m++) {
            const uint16_t h = (uint16_t)(s | m);
            const float mid = (float)((value_of(h, f->mb, f->bias) + next_up(f, h)) / 2);
            x[n++] = mid;
            x[n++] = nextafterf(mid, 0.0f);
            x[n++] = nextafterf(mid, mid * 2);
        }
    const float extra[] = {0x1p-149f,
                           -0x1p-149f,
                           0x1p-127f,
                           FLT_MIN,
                           FLT_MAX,
                           -FLT_MAX,
                           float_of(0x7fc00001u),
                           float_of(0xff812345u),
                           float_of(0x7f800001u),
                           65520.0f,
                           65519.996f,
                           0x1p-25f,
                           0x1.000002p-25f,
                           0x1p-26f};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++)
        x[n++] = extra[i];
    while (n % 16)
        x[n++] = 1.0f;
    return n;
}

static void check_conv(const char *isa, const fmt *f, int hardware)
{
    rj_jit *jit = NULL;
    conv_fn fn = compile_conv(isa, f->dt, hardware, &jit);
    const size_t cap = 65536 + 3 * 2 * 65536 + 64;
    float *x = malloc(cap * sizeof(float)), *wide = malloc(cap * sizeof(float));
    float *wide_s = malloc(cap * sizeof(float));
    uint16_t *h = malloc(cap * sizeof(uint16_t)), *nar = malloc(cap * sizeof(uint16_t));
    uint16_t *nar_s = malloc(cap * sizeof(uint16_t));
    const size_t n = narrow_inputs(f, x);
    for (size_t i = 0; i < n; i++)
        h[i] = (uint16_t)i;
    fn(h, wide, x, nar, wide_s, nar_s, (int64_t)n);
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = f->narrow(x[i]);
        for (int s = 0; s < 2; s++) {
            const float w = s ? wide_s[i] : wide[i];
            const uint16_t got = s ? nar_s[i] : nar[i];
            const float ww = f->widen(h[i]);
            if (isnan(ww))
                cr_assert(isnan(w) && signbit(w) == signbit(ww), "%s %s: 0x%04x widens to %a", isa,
                          s ? "scalar" : "vector", h[i], (double)w);
            else
                cr_assert_eq(bits_of(w), bits_of(ww), "%s %s: 0x%04x widens to %a, not %a", isa,
                             s ? "scalar" : "vector", h[i], (double)w, (double)ww);
            if (isnan(x[i]))
                cr_assert(!rj_half_finite(got, f->dt) && (got & 0x7fff) != f->inf &&
                              (got & 0x8000) == (want & 0x8000),
                          "%s: NaN %08x narrows to 0x%04x", isa, bits_of(x[i]), got);
            else if (hardware && f->dt == RFJIT_BF16 && !s && fpclassify(x[i]) == FP_SUBNORMAL &&
                     got == (signbit(x[i]) ? 0x8000 : 0))
                continue; /* AVX512-BF16's vector conversion flushes float subnormals (ir_half.c) */
            else
                cr_assert_eq(got, want, "%s %s%s: %a narrows to 0x%04x, not 0x%04x", isa,
                             s ? "scalar" : "vector", hardware ? "" : " (integer)", (double)x[i],
                             got, want);
        }
    }
    free(x);
    free(wide);
    free(wide_s);
    free(h);
    free(nar);
    free(nar_s);
    rj_jit_destroy(jit);
}

Test(jit_dtype, ir_f16_conversions, .timeout = 120)
{
    check_conv("native", &F16, 1);
    check_conv("native", &F16, 0);
    check_conv("generic", &F16, 1);
}

Test(jit_dtype, ir_bf16_conversions, .timeout = 120)
{
    check_conv("native", &BF16, 1);
    check_conv("native", &BF16, 0);
    check_conv("generic", &BF16, 1);
}

/* ---- kernels ------------------------------------------------------------------------- */

enum { L = 150 };

/* Row strides in elements, wider than the rows so that a stride counted in bytes or floats
 * would read the wrong rows. */
typedef struct layout {
    int64_t d, dv, sq, sk, sv, so;
} layout;

static layout layout_of(int64_t d, int64_t dv)
{
    return (layout){d, dv, d + 3, d + 3, dv + 1, dv + 2};
}

static void run(const rfjit_plan *p, int dt_in, int dt_out, const void *q, const void *k,
                const void *v, void *out, const layout *ly)
{
    rj_kernel_fn fn = NULL;
    rj_diag dg = {{0}};
    cr_assert_eq(rj_plan_kernel_for(p, dt_in, dt_out, &fn, &dg), RFJIT_OK, "%s", dg.msg);
    const size_t wsb = ((size_t)p->kp.ws_floats * 4 + 63) / 64 * 64;
    const size_t stb = ((size_t)p->kp.st_floats * 4 + 64) / 64 * 64;
    float *ws = aligned_alloc(64, wsb), *st = aligned_alloc(64, stb);
    cr_assert(ws && st);
    rj_kargs a = {0};
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.pq = p->kpar;
    a.pk = p->kpar + p->kp.role_floats;
    a.ws = ws;
    a.st = st;
    a.lq = a.lk = L;
    a.sq = ly->sq;
    a.sk = ly->sk;
    a.sv = ly->sv;
    a.so = ly->so;
    a.flags = RJ_KFLAG_INIT;
    fn(&a);
    free(ws);
    free(st);
}

/* n floats drawn N(0, scale^2) and rounded to f's type: x (floats) and hx (bits). */
static void draw(const fmt *f, size_t n, double scale, uint64_t seed, float *x, uint16_t *hx)
{
    tu_fill_normal(x, n, scale, seed);
    for (size_t i = 0; i < n; i++) {
        hx[i] = f->narrow(x[i]);
        x[i] = f->widen(hx[i]);
    }
}

static void check_kernel(rfjit_ctx *ctx, const char *est, int causal, int d, const fmt *f)
{
    const layout ly = layout_of(d, d);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = d;
    a.dv = d;
    a.m = 32;
    a.causal = causal;
    a.seed = 7;
    a.backend = RFJIT_BACKEND_JIT;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s: %s", est,
                 rfjit_ctx_last_error(ctx));
    const size_t nq = (size_t)(L * ly.sq), nv = (size_t)(L * ly.sv), no = (size_t)(L * ly.so);
    float *q = malloc(nq * 4), *k = malloc(nq * 4), *v = malloc(nv * 4);
    uint16_t *hq = malloc(nq * 2), *hk = malloc(nq * 2), *hv = malloc(nv * 2);
    float *ref = calloc(no, 4), *wide = calloc(no, 4);
    uint16_t *hout = calloc(no, 2);
    draw(f, nq, 0.5, 11, q, hq);
    draw(f, nq, 0.5, 12, k, hk);
    draw(f, nv, 1.0, 13, v, hv);
    run(p, RFJIT_F32, RFJIT_F32, q, k, v, ref, &ly);
    run(p, f->dt, RFJIT_F32, hq, hk, hv, wide, &ly);
    run(p, f->dt, f->dt, hq, hk, hv, hout, &ly);
    const char *dn = rj_dtype_name(f->dt);
    for (int64_t i = 0; i < L; i++)
        for (int64_t c = 0; c < ly.dv; c++) {
            const size_t at = (size_t)(i * ly.so + c);
            cr_assert(isfinite(ref[at]), "%s causal=%d d=%d: out[%ld][%ld] = %g", est, causal, d,
                      (long)i, (long)c, ref[at]);
            cr_assert_eq(bits_of(wide[at]), bits_of(ref[at]),
                         "%s causal=%d d=%d %s->f32: out[%ld][%ld] %a != %a", est, causal, d, dn,
                         (long)i, (long)c, (double)wide[at], (double)ref[at]);
            cr_assert_eq(hout[at], f->narrow(ref[at]),
                         "%s causal=%d d=%d %s->%s: out[%ld][%ld] 0x%04x != 0x%04x (%a)", est,
                         causal, d, dn, dn, (long)i, (long)c, hout[at], f->narrow(ref[at]),
                         (double)ref[at]);
        }
    /* the gaps between rows are not written */
    for (int64_t i = 0; i < L; i++)
        for (int64_t c = ly.dv; c < ly.so; c++)
            cr_assert(hout[i * ly.so + c] == 0 && wide[i * ly.so + c] == 0.0f);
    free(q);
    free(k);
    free(v);
    free(hq);
    free(hk);
    free(hv);
    free(ref);
    free(wide);
    free(hout);
    rfjit_plan_destroy(p);
}

static rfjit_ctx *context(const char *isa)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.wisdom_path = "";
    cd.threads = 1;
    cd.isa = isa;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    return c;
}

static void kernels(const char *isa, const char *est)
{
    rfjit_ctx *ctx = context(isa);
    for (int causal = 0; causal < 2; causal++)
        for (int di = 0; di < 2; di++) {
            check_kernel(ctx, est, causal, di ? 5 : 64, &F16);
            check_kernel(ctx, est, causal, di ? 5 : 64, &BF16);
        }
    rfjit_ctx_destroy(ctx);
}

Test(jit_dtype, positive, .timeout = 300)
{
    kernels("native", "positive");
}

Test(jit_dtype, trig, .timeout = 300)
{
    kernels("native", "trig");
}

Test(jit_dtype, hybrid, .timeout = 300)
{
    kernels("native", "hybrid");
}

Test(jit_dtype, exact, .timeout = 300)
{
    kernels("native", "exact");
}

/* Targets without F16C take the integer conversions in the kernels too. */
Test(jit_dtype, generic_isa, .timeout = 300)
{
    rfjit_ctx *ctx = context("generic");
    check_kernel(ctx, "positive", 0, 64, &F16);
    check_kernel(ctx, "positive", 1, 5, &F16);
    check_kernel(ctx, "exact", 1, 64, &F16);
    check_kernel(ctx, "exact", 0, 5, &BF16);
    rfjit_ctx_destroy(ctx);
}

typedef struct asker {
    const rfjit_plan *p;
    rj_kernel_fn fn;
    rfjit_status s;
} asker;

static void *ask(void *arg)
{
    asker *a = arg;
    rj_diag dg = {{0}};
    a->s = rj_plan_kernel_for(a->p, RFJIT_F16, RFJIT_F16, &a->fn, &dg);
    return NULL;
}

/* A variant is compiled once and then shared, also when threads ask for it at once; unknown
 * dtypes are refused. */
Test(jit_dtype, variants)
{
    rfjit_ctx *ctx = context("native");
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 16;
    a.m = 16;
    a.backend = RFJIT_BACKEND_JIT;
    a.dtype = RFJIT_BF16;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    rj_diag dg = {{0}};
    rj_kernel_fn f1 = NULL, f2 = NULL, f3 = NULL;
    cr_assert_eq(rj_plan_kernel_for(p, RFJIT_BF16, RFJIT_BF16, &f1, &dg), RFJIT_OK);
    cr_assert_eq(f1, p->fn, "the plan's own dtype is compiled at creation");
    cr_assert_eq(rj_plan_kernel_for(p, RFJIT_F16, RFJIT_F32, &f2, &dg), RFJIT_OK);
    cr_assert_eq(rj_plan_kernel_for(p, RFJIT_F16, RFJIT_F32, &f3, &dg), RFJIT_OK);
    cr_assert(f2 && f2 == f3 && f2 != f1);
    cr_assert_eq(rj_plan_kernel_for(p, 3, RFJIT_F32, &f3, &dg), RFJIT_E_DTYPE);
    cr_assert_null(f3);
    cr_assert(strstr(dg.msg, "dtype 3"), "%s", dg.msg);
    cr_assert_eq(rj_plan_kernel_for(p, RFJIT_F32, -1, &f3, &dg), RFJIT_E_DTYPE);
    asker as[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        as[i] = (asker){.p = p};
        cr_assert_eq(pthread_create(&th[i], NULL, ask, &as[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(as[i].s, RFJIT_OK);
        cr_assert(as[i].fn && as[i].fn == as[0].fn);
    }
    rfjit_plan_destroy(p);
    a.dtype = 7;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_E_DTYPE);
    cr_assert(strstr(rfjit_ctx_last_error(ctx), "dtype = 7"), "%s", rfjit_ctx_last_error(ctx));
    rfjit_ctx_destroy(ctx);
}

/* Assembly of est's kernel for dtype dt on a target; rj_free'd by the caller. */
static char *emit_asm(rfjit_ctx *ctx, const char *est, int causal, int dt, const char *triple,
                      const char *cpu, const char *features, int vw, int fma)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = 16;
    a.m = 16;
    a.causal = causal;
    a.backend = RFJIT_BACKEND_REFERENCE;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    rj_diag dg = {{0}};
    rj_kplan kp;
    const rfjit_tiling tl = rj_tiling_default(vw);
    cr_assert_eq(rj_kplan_make(&p->spec, &tl, vw, fma, &kp, &dg), RFJIT_OK, "%s", dg.msg);
    cr_assert_eq(rj_kplan_set_dtypes(&kp, dt, dt, &dg), RFJIT_OK);
    void *out = NULL;
    size_t n = 0;
    cr_assert_eq(rj_jit_emit(&kp, "rj_test_kernel", triple, cpu, features, RJ_EMIT_ASM, &out, &n,
                             &dg),
                 RFJIT_OK, "%s", dg.msg);
    char *s = rj_alloc_array(n + 1, 1);
    memcpy(s, out, n);
    s[n] = 0;
    rj_free(out);
    rfjit_plan_destroy(p);
    return s;
}

/* No call to a runtime library's conversion (which a JIT or a cross link may lack), and the
 * conversion instructions expected where the target has them (NULL: none expected). */
static void check_asm(rfjit_ctx *ctx, int dt, const char *triple, const char *cpu,
                      const char *features, int vw, int fma, const char *widen, const char *narrow)
{
    for (int e = 0; e < 2; e++)
        for (int causal = 0; causal < 2; causal++) {
            const char *est = e ? "exact" : "positive";
            char *s = emit_asm(ctx, est, causal, dt, triple, cpu, features, vw, fma);
            cr_assert_null(strstr(s, "__extend"), "%s %s: calls a widening libcall", triple, est);
            cr_assert_null(strstr(s, "__trunc"), "%s %s: calls a narrowing libcall", triple, est);
            cr_assert(!widen || strstr(s, widen), "%s %s: no %s", triple, est, widen);
            cr_assert(!narrow || strstr(s, narrow), "%s %s: no %s", triple, est, narrow);
            rj_free(s);
        }
}

Test(jit_dtype, emitted_conversions, .timeout = 300)
{
    rfjit_ctx *ctx = context("native");
    static const char *const a64 = "aarch64-unknown-linux-gnu", *x86 = "x86_64-unknown-linux-gnu";
    check_asm(ctx, RFJIT_F16, a64, "neoverse-n1", "+neon", 4, 1, "fcvtl", "fcvtn");
    check_asm(ctx, RFJIT_BF16, a64, "neoverse-n1", "+neon", 4, 1, NULL, NULL);
    check_asm(ctx, RFJIT_F16, x86, "x86-64-v3", "", 8, 1, "vcvtph2ps", "vcvtps2ph");
    check_asm(ctx, RFJIT_F16, x86, "x86-64", "", 4, 0, NULL, NULL);
    check_asm(ctx, RFJIT_BF16, x86, "x86-64", "", 4, 0, NULL, NULL);
    check_asm(ctx, RFJIT_BF16, x86, "sapphirerapids", "+avx512bf16,+avx512vl", 16, 1, NULL,
              "vcvtneps2bf16");
    rfjit_ctx_destroy(ctx);
}
