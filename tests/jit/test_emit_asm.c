/* SPDX-License-Identifier: MIT */
/*
 * This file inspects what the generator emits for x86: the hot loops are vector FMAs on the
 * ISA's widest registers (zmm for avx512, ymm for avx2; mul + add on 4 lanes for generic),
 * and every object leaves at most memcpy/memmove/memset undefined (no libm, no calls).
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *emit(rfjit_ctx *ctx, const char *est, int causal, int kind, size_t *n)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = est;
    a.d = 64;
    a.m = 256;
    a.causal = causal;
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    t.kind = kind;
    void *buf = NULL;
    cr_assert_eq(rfjit_emit(ctx, &a, &t, &buf, n, NULL, 0), RFJIT_OK, "%s",
                 rfjit_ctx_last_error(ctx));
    char *s = malloc(*n + 1);
    memcpy(s, buf, *n);
    s[*n] = 0;
    rfjit_free(buf);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        c++;
    return c;
}

/* Calls that leave the kernel: every call must reach the module's own out-of-line block
 * transpose or one of the kernel's parts (gen.h; all in the one module rfjit_emit writes). */
static int outside_calls(const char *s)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, "\tcall")); p++) {
        const char *t = p + 5;
        while (*t && *t != '\t' && *t != '\n')
            t++; /* "call" or "callq" */
        if (*t != '\t') {
            n++;
            continue;
        }
        t++;
        const size_t len = strcspn(t, "\n@");
        const int transpose = strncmp(t, "rj_transpose_block", 18) == 0;
        int part = 0;
        if (strncmp(t, "rfjit_k_", 8) == 0)
            for (size_t i = 0; i + 2 < len; i++)
                part |= t[i] == '_' && t[i + 1] == 'p' && t[i + 2] >= '1' && t[i + 2] <= '9';
        n += !transpose && !part;
    }
    return n;
}

static void check_isa(const char *isa, const char *reg, const char *op)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.isa = isa;
    rfjit_ctx *ctx = NULL;
    if (rfjit_ctx_create(&cd, &ctx) == RFJIT_E_ISA)
        cr_skip_test("this CPU has no %s", isa);
    const char *ests[] = {"positive", "trig", "aderf", "exact"};
    for (int e = 0; e < 4; e++)
        for (int causal = 0; causal < 2; causal++) {
            if (causal && !strcmp(ests[e], "aderf"))
                continue; /* fitted per call: causal needs a calibration sample */
            size_t n = 0;
            char *s = emit(ctx, ests[e], causal, RFJIT_EMIT_ASSEMBLY, &n);
            char want[64];
            snprintf(want, sizeof want, "%s", op);
            cr_expect(count(s, want) >= 8, "%s %s causal=%d: fewer than 8 '%s' in the assembly",
                      isa, ests[e], causal, op);
            cr_expect(count(s, reg) >= 16, "%s %s causal=%d: the kernel barely uses %s", isa,
                      ests[e], causal, reg);
            cr_expect(outside_calls(s) == 0, "%s %s causal=%d: the kernel calls out", isa, ests[e],
                      causal);
            free(s);
            /* the object's undefined symbols */
            char *o = emit(ctx, ests[e], causal, RFJIT_EMIT_OBJECT, &n);
            char path[] = "/tmp/rfjit_nm_XXXXXX";
            int fd = mkstemp(path);
            FILE *f = fdopen(fd, "wb");
            cr_assert(f && fwrite(o, 1, n, f) == n && fclose(f) == 0);
            char cmd[256];
            snprintf(cmd, sizeof cmd, "nm -u %s | grep -vEq ' (memcpy|memmove|memset)$'", path);
            cr_expect_eq(system(cmd), 256, "%s %s: undefined symbols besides mem*", isa, ests[e]);
            remove(path);
            free(o);
        }
    rfjit_ctx_destroy(ctx);
}

Test(emit_asm, avx512)
{
    check_isa("avx512", "%zmm", "vfmadd");
}

Test(emit_asm, avx2)
{
    check_isa("avx2", "%ymm", "vfmadd");
}

Test(emit_asm, generic)
{
    check_isa("generic", "%xmm", "mulps");
}
