/* SPDX-License-Identifier: MIT */
/*
 * This file is `rfjit fit`: the closed-form parameters of a data-fitted estimator (oprf,
 * saderf, sderf, aderf) on one set of queries and keys, and the objectives of spec
 * estimators.md 4.1 for one projection, as rfjit_fit reports them.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: rfjit fit --estimator oprf|saderf|sderf|aderf --queries Q.npy --keys K.npy [--json]\n"
    "Fits the estimator's closed-form parameters to raw queries Q (Lq, d) and keys K (Lk, d)\n"
    "(rank 4 with B = H = 1 is accepted too; scaled by d^-1/4 inside, as attention does) and\n"
    "prints, for one projection (m = 1), over all Lq x Lk pairs:\n"
    "  objective           mean ln E[(f1 f2)^2]\n"
    "  variance_objective  mean ln Var[f1 f2]\n"
    "  A, rho              the scalar parameters where the estimator has them (nan otherwise)\n"
    "--json prints the JSON object rfjit_fit produced instead (null for nan).\n";

/* (L, d) or (1, 1, L, d): rfjit_fit takes one (batch, head). */
static int load_sample(const char *path, npy_array *arr, rfjit_tensor *t)
{
    int rc = cli_load_tensor("fit", path, arr, t);
    if (rc == CLI_OK && (t->shape[0] != 1 || t->shape[1] != 1)) {
        rc = cli_error("fit", CLI_FAILED, "%s: shape (%lld, %lld, %lld, %lld): fit takes one "
                                          "(L, d) sample (rank 4 only with B = H = 1)",
                       path, (long long)t->shape[0], (long long)t->shape[1],
                       (long long)t->shape[2], (long long)t->shape[3]);
        npy_free(arr);
    }
    return rc;
}

int cmd_fit(int argc, char **argv)
{
    const char *est = NULL, *pq = NULL, *pk = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(help, stdout);
            return CLI_OK;
        } else if (!strcmp(o, "--json")) {
            json = 1;
        } else if (!strcmp(o, "--estimator") || !strcmp(o, "--queries") ||
                   !strcmp(o, "--keys")) {
            const char *val = cli_value(argc, argv, &i);
            if (!val)
                return cli_error("fit", CLI_USAGE, "%s needs a value", o);
            if (o[2] == 'e')
                est = val;
            else if (o[2] == 'q')
                pq = val;
            else
                pk = val;
        } else {
            return cli_error("fit", CLI_USAGE, "unknown option '%s' (see --help)", o);
        }
    }
    if (!est || !pq || !pk)
        return cli_error("fit", CLI_USAGE, "--estimator, --queries and --keys are required");
    npy_array aq = {0}, ak = {0};
    rfjit_tensor tq, tk;
    int rc = load_sample(pq, &aq, &tq);
    if (rc == CLI_OK)
        rc = load_sample(pk, &ak, &tk);
    rfjit_ctx *ctx = NULL;
    if (rc == CLI_OK && !(ctx = cli_context("fit", NULL)))
        rc = CLI_FAILED;
    if (rc == CLI_OK) {
        rfjit_fit_result r;
        char buf[4096];
        if (rfjit_fit(ctx, est, &tq, &tk, &r, json ? buf : NULL, sizeof buf) != RFJIT_OK)
            rc = cli_error("fit", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
        else if (json)
            printf("%s\n", buf);
        else
            printf("estimator           %s\n"
                   "objective           %.10g\n"
                   "variance_objective  %.10g\n"
                   "A                   %.10g\n"
                   "rho                 %.10g\n",
                   est, r.objective, r.variance_objective, r.A, r.rho);
    }
    rfjit_ctx_destroy(ctx);
    npy_free(&aq);
    npy_free(&ak);
    return rc;
}
