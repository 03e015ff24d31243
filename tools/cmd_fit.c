/* SPDX-License-Identifier: MIT */
/* This file is `rfjit fit`: closed-form parameters and objectives of a fitted estimator. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const char help[] =
    "usage: rfjit fit --estimator oprf|saderf|sderf|aderf --queries Q.npy --keys K.npy [--json]\n"
    "Fits the estimator's closed-form parameters to raw queries and keys (L, d) (scaled by\n"
    "d^-1/4 inside, as attention does) and prints the objectives of spec section 4.1 for one\n"
    "projection: objective = mean over all (i, j) of ln E[(f1 f2)^2], variance_objective =\n"
    "mean of ln Var[f1 f2], and the scalar parameters A and rho where the estimator has them.\n";

int cmd_fit(int argc, char **argv)
{
    const char *est = NULL, *pq = NULL, *pk = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help")) {
            fputs(help, stdout);
            return CLI_OK;
        } else if (!strcmp(o, "--json")) {
            json = 1;
        } else if (!strcmp(o, "--estimator") || !strcmp(o, "--queries") ||
                   !strcmp(o, "--keys")) {
            const char *val = cli_value(argc, argv, &i);
            if (!val)
                return cli_error("fit", CLI_USAGE, "%s needs a value", o);
            *(!strcmp(o, "--estimator") ? &est : !strcmp(o, "--queries") ? &pq : &pk) = val;
        } else {
            return cli_error("fit", CLI_USAGE, "unknown option '%s' (see --help)", o);
        }
    }
    if (!est || !pq || !pk)
        return cli_error("fit", CLI_USAGE, "--estimator, --queries and --keys are required");
    npy_array aq = {0}, ak = {0};
    rfjit_tensor tq, tk;
    int rc = cli_load_tensor("fit", pq, &aq, &tq);
    if (rc == CLI_OK)
        rc = cli_load_tensor("fit", pk, &ak, &tk);
    rfjit_ctx *ctx = NULL;
    if (rc == CLI_OK && rfjit_ctx_create(NULL, &ctx) != RFJIT_OK)
        rc = cli_error("fit", CLI_FAILED, "cannot create a context");
    if (rc == CLI_OK) {
        rfjit_fit_result r;
        char buf[1024];
        if (rfjit_fit(ctx, est, &tq, &tk, &r, buf, sizeof buf) != RFJIT_OK)
            rc = cli_error("fit", CLI_FAILED, "%s", rfjit_ctx_last_error(ctx));
        else if (json)
            printf("%s\n", buf);
        else
            printf("estimator           %s\nobjective           %.10g\n"
                   "variance_objective  %.10g\nA                   %.10g\n"
                   "rho                 %.10g\n",
                   est, r.objective, r.variance_objective, r.A, r.rho);
    }
    rfjit_ctx_destroy(ctx);
    npy_free(&aq), npy_free(&ak);
    return rc;
}
