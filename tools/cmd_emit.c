/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit emit`: ahead-of-time emission of one kernel (object, assembly or IR)
 * for the host or another target, e.g. an AArch64 + NEON object built on x86 and linked into
 * a program for that machine (tests/cross/neon_driver.c shows the calling convention).
 */
#include "cli.h"
#include "runtime/fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rfjit emit --estimator NAME --d D --m M [--dv DV] [--causal] [--target TRIPLE]\n"
    "         [--cpu CPU] [--features +neon,...] [--vector-width 4|8|16] [--symbol NAME]\n"
    "         (--ir | --asm | --obj) -o FILE\n"
    "Writes the kernel rfjit would run for this operator, compiled for TRIPLE (default: this\n"
    "machine, with its CPU and features) as an ELF object (--obj), assembly (--asm) or\n"
    "optimised LLVM IR (--ir). The kernel is `void NAME(const rj_kargs *)` (core/kabi.h); its\n"
    "name is printed on stdout. Other targets default to CPU generic, no extra features and\n"
    "4 float lanes, e.g. --target aarch64-unknown-linux-gnu --cpu neoverse-n1 --features +neon.\n"
    "Estimators fitted per call (oprf, saderf, sderf, aderf) take their parameters at run time,\n"
    "so they emit like any other, causal ones too (their causal kernel is the one decoding "
    "runs).\n";

int cmd_emit(int argc, char **argv)
{
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    rfjit_emit_desc t = RFJIT_EMIT_DESC_INIT;
    const char *out = NULL;
    int kinds = 0, have_d = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        }
        if (!strcmp(o, "--causal")) {
            a.causal = 1;
            continue;
        }
        if (!strcmp(o, "--ir") || !strcmp(o, "--asm") || !strcmp(o, "--obj")) {
            t.kind = o[2] == 'i' ? RFJIT_EMIT_IR : o[2] == 'a' ? RFJIT_EMIT_ASSEMBLY
                                                              : RFJIT_EMIT_OBJECT;
            kinds++;
            continue;
        }
        static const char *const valued[] = {"--estimator", "--d",        "--m",
                                             "--dv",        "--target",   "--cpu",
                                             "--features",  "--vector-width", "--symbol",
                                             "-o"};
        int known = 0;
        for (size_t j = 0; j < sizeof valued / sizeof *valued; j++)
            known |= !strcmp(o, valued[j]);
        if (!known)
            return cli_error("emit", CLI_USAGE, "unknown option '%s' (see --help)", o);
        if (!(val = cli_value(argc, argv, &i)))
            return cli_error("emit", CLI_USAGE, "%s needs a value", o);
        int bad = 0;
        if (!strcmp(o, "--estimator"))
            a.estimator = val;
        else if (!strcmp(o, "--d"))
            bad = cli_parse_int(val, 1, 4096, &a.d), have_d = 1;
        else if (!strcmp(o, "--m"))
            bad = cli_parse_int(val, 1, 1 << 20, &a.m);
        else if (!strcmp(o, "--dv"))
            bad = cli_parse_int(val, 1, 1 << 16, &a.dv);
        else if (!strcmp(o, "--target"))
            t.triple = val;
        else if (!strcmp(o, "--cpu"))
            t.cpu = val;
        else if (!strcmp(o, "--features"))
            t.features = val;
        else if (!strcmp(o, "--vector-width"))
            bad = cli_parse_int(val, 4, 16, &t.vector_width);
        else if (!strcmp(o, "--symbol"))
            t.symbol = val;
        else
            out = val;
        if (bad)
            return cli_error("emit", CLI_USAGE, "bad value '%s' for %s", val, o);
    }
    if (!have_d || !out)
        return cli_error("emit", CLI_USAGE, "--d and -o are required (see --help)");
    if (kinds != 1)
        return cli_error("emit", CLI_USAGE, "give exactly one of --ir, --asm, --obj");
    char real[RJ_PATH_BYTES], why[RJ_PATH_BYTES + 160];
    int mode;
    if (rj_output_target(out, real, &mode, why, sizeof why) != 0)
        return cli_error("emit", CLI_FAILED, "%s", why);
    rfjit_ctx *ctx = cli_context("emit", NULL);
    if (!ctx)
        return CLI_FAILED;
    void *buf = NULL;
    size_t n = 0;
    char sym[128] = "";
    int rc = CLI_OK;
    if (rfjit_emit(ctx, &a, &t, &buf, &n, sym, sizeof sym) != RFJIT_OK) {
        rc = cli_error("emit", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    } else {
        if (rj_write_file(out, buf, n, 0644, 0, why, sizeof why) != 0)
            rc = cli_error("emit", CLI_FAILED, "%s", why);
        else
            printf("%s\n", sym);
    }
    rfjit_free(buf);
    rfjit_ctx_destroy(ctx);
    return rc;
}
