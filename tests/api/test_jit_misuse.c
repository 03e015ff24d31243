/* SPDX-License-Identifier: MIT */
/*
 * This file feeds the JIT-side entry points bad input and checks the status and the message:
 * an unknown ISA name and an ISA above the host's, an unknown backend, rfjit_emit with an
 * unknown kind or target, and the CLI's --isa and emit usage errors (one line, exit code).
 */
#include <criterion/criterion.h>

#include "rfjit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void keep(void *user, int level, const char *msg)
{
    if (level == 0)
        snprintf(user, 512, "%s", msg);
}

Test(jit_misuse, unknown_isa_is_refused_with_a_message)
{
    char msg[512] = "";
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    cd.isa = "avx9";
    cd.log = keep;
    cd.log_user = msg;
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_E_INVALID_ARG);
    cr_assert_null(c);
    cr_assert(strstr(msg, "unknown ISA 'avx9'"), "message: %s", msg);
}

Test(jit_misuse, unknown_backend_is_refused)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 16;
    a.backend = 7;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(c, &a, &p), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(rfjit_ctx_last_error(c), "backend = 7 is unknown"), "%s",
              rfjit_ctx_last_error(c));
    rfjit_ctx_destroy(c);
}

/* Found by tests/fuzz/fuzz_desc.c: a huge vector width sized the default tiling (2 vw, a
 * signed overflow) before the check refused it. UBSan (CI's sanitizer stage) catches a
 * regression; every build checks the status and message. */
Test(jit_misuse, absurd_tiling_is_refused_before_use)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    static const rfjit_tiling bad[] = {
        {1694695425, 0, 0, 0}, {-16, 0, 0, 0}, {16, 1 << 30, 0, 0}, {16, 0, 1 << 30, 0},
        {16, 0, 0, -1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = 16;
        a.m = 16;
        a.backend = RFJIT_BACKEND_JIT;
        a.tiling = bad[i];
        rfjit_plan *p = NULL;
        cr_expect_eq(rfjit_plan_create(c, &a, &p), RFJIT_E_INVALID_ARG, "tiling %zu", i);
        cr_expect_null(p);
        cr_expect(strstr(rfjit_ctx_last_error(c), "tile") ||
                      strstr(rfjit_ctx_last_error(c), "vector width"),
                  "tiling %zu: %s", i, rfjit_ctx_last_error(c));
        rfjit_plan_destroy(p);
    }
    rfjit_ctx_destroy(c);
}

Test(jit_misuse, emit_bad_kind_and_target)
{
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    cd.cache_dir = "";
    rfjit_ctx *c = NULL;
    cr_assert_eq(rfjit_ctx_create(&cd, &c), RFJIT_OK);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.d = 16;
    a.m = 16;
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    void *buf = NULL;
    size_t n = 0;
    t.kind = 9;
    cr_assert_eq(rfjit_emit(c, &a, &t, &buf, &n, NULL, 0), RFJIT_E_INVALID_ARG);
    cr_assert(strstr(rfjit_ctx_last_error(c), "kind 9 is unknown"), "%s", rfjit_ctx_last_error(c));
    cr_assert_null(buf);
    t.kind = RFJIT_EMIT_OBJECT;
    t.triple = "nonesuch-unknown-none";
    cr_assert_eq(rfjit_emit(c, &a, &t, &buf, &n, NULL, 0), RFJIT_E_TARGET);
    cr_assert(strstr(rfjit_ctx_last_error(c), "unknown target 'nonesuch-unknown-none'"), "%s",
              rfjit_ctx_last_error(c));
    cr_assert_null(buf);
    cr_assert_eq(rfjit_emit(c, NULL, &t, &buf, &n, NULL, 0), RFJIT_E_INVALID_ARG);
    rfjit_ctx_destroy(c);
}

/* Run the CLI; return its exit code and its stderr in err (through a pipe: a fixed file
 * name would be shared with the same test of another build running at the same time). */
static int cli(const char *args, char *err, size_t n)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null", RFJIT_CLI_PATH, args);
    FILE *f = popen(cmd, "r");
    size_t got = f ? fread(err, 1, n - 1, f) : 0;
    err[got] = 0;
    const int rc = f ? pclose(f) : -1;
    return rc == -1 ? -1 : (rc >> 8) & 0xff;
}

static int lines(const char *s)
{
    int k = 0;
    for (; *s; s++)
        k += *s == '\n';
    return k;
}

Test(jit_misuse, cli_errors_are_one_line)
{
    char err[2048];
    cr_assert_eq(cli("check --isa avx9", err, sizeof err), 1);
    cr_assert(strstr(err, "rfjit check: cannot create a context: unknown ISA 'avx9'"), "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert_eq(cli("check --backend fastest", err, sizeof err), 2);
    cr_assert(strstr(err, "bad value 'fastest' for --backend"), "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
    cr_assert_eq(cli("emit --estimator positive --m 16 --obj -o /tmp/x.o", err, sizeof err), 2);
    cr_assert(strstr(err, "--d and -o are required"), "%s", err);
    cr_assert_eq(cli("emit --d 16 --m 16 --obj --asm -o /tmp/x.o", err, sizeof err), 2);
    cr_assert(strstr(err, "exactly one of --ir, --asm, --obj"), "%s", err);
    cr_assert_eq(cli("emit --d 16 --m 16 --obj --target nonesuch-x-y -o /tmp/rfjit_x.o", err,
                     sizeof err),
                 1);
    cr_assert(strstr(err, "unknown target"), "%s", err);
    cr_assert_eq(lines(err), 1, "%s", err);
}
