/* SPDX-License-Identifier: MIT */
/*
 * This file checks cross emission for AArch64 + NEON end to end: `rfjit_emit` builds the
 * kernel object on this x86 machine, aarch64-linux-gnu-gcc links it with
 * tests/cross/neon_driver.c into a static program, qemu-aarch64 runs it on .npy inputs this
 * test wrote, and its output must match the x86 reference backend within the JIT tolerance
 * (1e-4 of max |output|). The object must be AArch64 (readelf), use vector fmla
 * (llvm-objdump-19) and leave no undefined symbol beyond memcpy/memmove/memset (nm -u).
 * Needs qemu-user and gcc-aarch64-linux-gnu, which scripts/deps.sh installs.
 */
#include <criterion/criterion.h>

#include "runtime/exec.h"
#include "npy.h"
#include "rfjit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static void write_npy(const char *dir, const char *name, const float *x, int rank,
                      const int64_t *shape)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(npy_write(path, x, rank, shape, err, sizeof err), 0, "%s", err);
}

static void one(rfjit_ctx *ctx, const char *dir, const char *est, int causal)
{
    enum { L = 45, D = 16, DV = 12, M = 32 };
    float q[L * D], k[L * D], v[L * DV], ref[L * DV];
    srand(9);
    for (int i = 0; i < L * D; i++) {
        q[i] = (float)(rand() / (double)RAND_MAX - 0.5);
        k[i] = (float)(rand() / (double)RAND_MAX - 0.5);
    }
    for (int i = 0; i < L * DV; i++)
        v[i] = (float)(rand() / (double)RAND_MAX);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = D;
    a.dv = DV;
    a.m = M;
    a.causal = causal;
    a.seed = 4;
    a.backend = RFJIT_BACKEND_REFERENCE;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D), tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, DV), tr = rfjit_tensor_contiguous(ref, 1, 1, L, DV);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &tr), RFJIT_OK);

    /* the AArch64 kernel plan (4 lanes) and its lowered parameters */
    rj_diag dg = {{0}};
    rfjit_tiling tl = rj_tiling_default(4);
    cr_assert_eq(rj_kplan_make(&p->spec, &tl, 4, 1, &p->kp, &dg), RFJIT_OK, "%s", dg.msg);
    float *par = calloc((size_t)(2 * p->kp.role_floats + 1), sizeof(float));
    cr_assert_eq(rj_lower_params(p, p->params, par, &dg), RFJIT_OK, "%s", dg.msg);
    const int64_t npar = 2 * p->kp.role_floats + 1;
    write_npy(dir, "params.npy", par, 1, &npar);
    const int64_t sq[2] = {L, D}, sv[2] = {L, DV};
    write_npy(dir, "q.npy", q, 2, sq);
    write_npy(dir, "k.npy", k, 2, sq);
    write_npy(dir, "v.npy", v, 2, sv);

    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    t.triple = "aarch64-unknown-linux-gnu";
    t.cpu = "neoverse-n1";
    t.features = "+neon";
    t.symbol = "rfjit_neon_kernel";
    void *obj = NULL;
    size_t n = 0;
    a.backend = RFJIT_BACKEND_AUTO;
    cr_assert_eq(rfjit_emit(ctx, &a, &t, &obj, &n, NULL, 0), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    char path[512];
    snprintf(path, sizeof path, "%s/k.o", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f && fwrite(obj, 1, n, f) == n && fclose(f) == 0);
    rfjit_free(obj);

    cr_assert_eq(sh("readelf -h %s/k.o | grep -q 'Machine: *AArch64'", dir), 0, "not AArch64");
    cr_assert_eq(sh("llvm-objdump-19 -d %s/k.o | grep -Eq 'fmla\\s+v[0-9]+\\.4s'", dir), 0,
                 "%s: no vector fmla in the object", est);
    cr_assert_eq(sh("nm -u %s/k.o | grep -vEq ' (memcpy|memmove|memset)$'", dir), 256,
                 "%s: unexpected undefined symbols", est);
    cr_assert_eq(sh("aarch64-linux-gnu-gcc -std=c11 -O1 -static -I%s -I%s/tools "
                    "-I%s/include %s/tests/cross/neon_driver.c %s/tools/npy.c "
                    "%s/runtime/fsutil.c %s/k.o -lm -o %s/driver",
                    RFJIT_SOURCE_DIR, RFJIT_SOURCE_DIR, RFJIT_SOURCE_DIR, RFJIT_SOURCE_DIR,
                    RFJIT_SOURCE_DIR, RFJIT_SOURCE_DIR, dir, dir),
                 0, "cross link failed");
    cr_assert_eq(sh("qemu-aarch64 %s/driver %s/params.npy %s/q.npy %s/k.npy %s/v.npy "
                    "%s/out.npy %lld %lld %lld",
                    dir, dir, dir, dir, dir, dir, (long long)p->kp.role_floats,
                    (long long)p->kp.ws_floats, (long long)p->kp.st_floats),
                 0, "the AArch64 kernel failed under qemu");
    npy_array out;
    char err[256];
    snprintf(path, sizeof path, "%s/out.npy", dir);
    cr_assert_eq(npy_read(path, &out, err, sizeof err), 0, "%s", err);
    cr_assert_eq(out.count, (size_t)(L * DV));
    double e = 0, mx = 0;
    for (int i = 0; i < L * DV; i++) {
        e = fmax(e, fabs((double)out.data[i] - ref[i]));
        mx = fmax(mx, fabs((double)ref[i]));
    }
    cr_expect(e <= 1e-4 * mx, "%s causal=%d: max |neon - reference| = %.3g (max %.3g)", est,
              causal, e, mx);
    npy_free(&out);
    free(par);
    rfjit_plan_destroy(p);
}

Test(neon, aarch64_object_runs_under_qemu, .timeout = 300)
{
    char dir[] = "/tmp/rfjit_neon_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &ctx), RFJIT_OK);
    const char *ests[] = {"positive", "hyperbolic", "trig", "hybrid", "exact"};
    for (int e = 0; e < 5; e++)
        for (int causal = 0; causal < 2; causal++)
            one(ctx, dir, ests[e], causal);
    rfjit_ctx_destroy(ctx);
    sh("rm -rf %s", dir);
}
