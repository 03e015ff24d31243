/* SPDX-License-Identifier: MIT */
/* This file is `rfjit attention`: attention of .npy queries, keys and values. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: rfjit attention --queries Q.npy --keys K.npy --values V.npy -o OUT.npy\n"
    "         [--estimator NAME] [--features M] [--seed S] [--iid|--orthogonal]\n"
    "         [--projection W.npy] [--causal] [--window W] [--chunks C] [--signs N]\n"
    "         [--hybrid-base positive|hyperbolic]\n"
    "Arrays are (L, d) or (B, H, L, d) float32/float64 .npy (same rank for all three); the\n"
    "output (float32, rank of the queries) is softmax(q k^T / sqrt(d)) v as estimated by\n"
    "NAME (default positive; see rfjit info for the list). --projection W.npy (m x d) uses\n"
    "that matrix and sets m from it. --window/--chunks are eva's local window and chunk\n"
    "count (default 16, 8); --signs is hybrid's sign-feature count n (default 8).\n";

int cmd_attention(int argc, char **argv)
{
    const char *pq = NULL, *pk = NULL, *pv = NULL, *po = NULL, *pw = NULL;
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *val = NULL;
        int bad = 0;
        if (!strcmp(o, "--help")) {
            fputs(help, stdout);
            return CLI_OK;
        } else if (!strcmp(o, "--causal")) {
            a.causal = 1;
        } else if (!strcmp(o, "--iid")) {
            a.projection = RFJIT_PROJ_IID;
        } else if (!strcmp(o, "--orthogonal")) {
            a.projection = RFJIT_PROJ_ORTHOGONAL;
        } else if (!strcmp(o, "--queries") || !strcmp(o, "--keys") || !strcmp(o, "--values") ||
                   !strcmp(o, "-o") || !strcmp(o, "--projection") ||
                   !strcmp(o, "--estimator") || !strcmp(o, "--hybrid-base")) {
            if (!(val = cli_value(argc, argv, &i)))
                return cli_error("attention", CLI_USAGE, "%s needs a value", o);
            if (!strcmp(o, "--queries"))
                pq = val;
            else if (!strcmp(o, "--keys"))
                pk = val;
            else if (!strcmp(o, "--values"))
                pv = val;
            else if (!strcmp(o, "-o"))
                po = val;
            else if (!strcmp(o, "--projection"))
                pw = val;
            else if (!strcmp(o, "--estimator"))
                a.estimator = val;
            else if (!strcmp(val, "positive") || !strcmp(val, "hyperbolic"))
                a.hybrid_base = !strcmp(val, "hyperbolic");
            else
                return cli_error("attention", CLI_USAGE, "--hybrid-base must be positive or "
                                                         "hyperbolic, not '%s'", val);
        } else if (!strcmp(o, "--features") || !strcmp(o, "--window") ||
                   !strcmp(o, "--chunks") || !strcmp(o, "--signs") || !strcmp(o, "--seed")) {
            if (!(val = cli_value(argc, argv, &i)))
                return cli_error("attention", CLI_USAGE, "%s needs a value", o);
            if (!strcmp(o, "--features"))
                bad = cli_parse_int(val, 1, 1 << 20, &a.m);
            else if (!strcmp(o, "--window"))
                bad = cli_parse_int(val, 0, 1 << 30, &a.eva_window);
            else if (!strcmp(o, "--chunks"))
                bad = cli_parse_int(val, 1, 1 << 20, &a.eva_chunks);
            else if (!strcmp(o, "--signs"))
                bad = cli_parse_int(val, 1, 4096, &a.hybrid_signs);
            else
                bad = cli_parse_u64(val, &a.seed);
            if (bad)
                return cli_error("attention", CLI_USAGE, "bad value '%s' for %s", val, o);
        } else {
            return cli_error("attention", CLI_USAGE, "unknown option '%s' (see --help)", o);
        }
    }
    if (!pq || !pk || !pv || !po)
        return cli_error("attention", CLI_USAGE, "--queries, --keys, --values and -o are required");

    npy_array aq = {0}, ak = {0}, av = {0}, aw = {0};
    rfjit_tensor tq, tk, tv;
    int rc = cli_load_tensor("attention", pq, &aq, &tq);
    if (rc == CLI_OK)
        rc = cli_load_tensor("attention", pk, &ak, &tk);
    if (rc == CLI_OK)
        rc = cli_load_tensor("attention", pv, &av, &tv);
    if (rc == CLI_OK && (aq.rank != ak.rank || aq.rank != av.rank))
        rc = cli_error("attention", CLI_FAILED, "queries, keys and values must have the same "
                                                "rank (got %d, %d, %d)", aq.rank, ak.rank, av.rank);
    if (rc == CLI_OK && pw) {
        char err[512];
        if (npy_read(pw, &aw, err, sizeof err) != 0)
            rc = cli_error("attention", CLI_FAILED, "%s", err);
        else if (aw.rank != 2 || aw.shape[1] != tq.shape[3] || aw.shape[0] > (1 << 20))
            rc = cli_error("attention", CLI_FAILED, "%s: projection must be (m, d) with d = %lld",
                           pw, (long long)tq.shape[3]);
        else {
            a.projection = RFJIT_PROJ_USER;
            a.projection_matrix = aw.data;
            a.m = (int)aw.shape[0];
        }
    }
    rfjit_ctx *ctx = NULL;
    rfjit_plan *plan = NULL;
    float *out = NULL;
    if (rc == CLI_OK && rfjit_ctx_create(NULL, &ctx) != RFJIT_OK)
        rc = cli_error("attention", CLI_FAILED, "cannot create a context");
    if (rc == CLI_OK) {
        a.d = tq.shape[3] > 1 << 20 ? -1 : (int)tq.shape[3];
        a.dv = tv.shape[3] > 1 << 20 ? -1 : (int)tv.shape[3];
        if (rfjit_plan_create(ctx, &a, &plan) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
    }
    if (rc == CLI_OK) {
        size_t n = (size_t)tq.shape[0] * tq.shape[1] * tq.shape[2] * tv.shape[3];
        out = malloc(n * sizeof(float));
        rfjit_tensor to = rfjit_tensor_contiguous(out, tq.shape[0], tq.shape[1], tq.shape[2],
                                                  tv.shape[3]);
        if (!out)
            rc = cli_error("attention", CLI_FAILED, "out of memory");
        else if (rfjit_plan_execute(plan, &tq, &tk, &tv, &to) != RFJIT_OK)
            rc = cli_error("attention", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
        else {
            int64_t shape[4] = {tq.shape[0], tq.shape[1], tq.shape[2], tv.shape[3]};
            char err[512];
            if (npy_write(po, out, aq.rank, aq.rank == 4 ? shape : shape + 2, err, sizeof err))
                rc = cli_error("attention", CLI_FAILED, "%s", err);
        }
    }
    free(out);
    rfjit_plan_destroy(plan);
    rfjit_ctx_destroy(ctx);
    npy_free(&aq), npy_free(&ak), npy_free(&av), npy_free(&aw);
    return rc;
}
