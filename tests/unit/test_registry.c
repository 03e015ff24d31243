/* SPDX-License-Identifier: MIT */
/*
 * This file checks the estimator registry against the tree: every est/<name>.c other than
 * the registry, the shared helpers, the reference loops and eva's official variant (part of
 * eva) is registered under <name>, names are unique, and each ops table is complete for its
 * template.
 */
#include <criterion/criterion.h>

#include "est/est.h"

#include <dirent.h>
#include <stdbool.h>
#include <string.h>

TestSuite(registry);

/* The files of est/ that are not an estimator. */
static bool not_an_estimator(const char *file)
{
    static const char *const others[] = {"registry.c",    "est_common.c", "ref_linear.c",
                                         "ref_softmax.c", "ref_compat.c", "eva_official.c"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        if (!strcmp(file, others[i]))
            return true;
    return false;
}

Test(registry, every_file_is_registered)
{
    DIR *dir = opendir(RFJIT_SOURCE_DIR "/est");
    cr_assert_not_null(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        size_t n = strlen(e->d_name);
        if (n < 3 || strcmp(e->d_name + n - 2, ".c") != 0 || not_an_estimator(e->d_name))
            continue;
        char name[64];
        cr_assert_lt(n - 2, sizeof name);
        memcpy(name, e->d_name, n - 2);
        name[n - 2] = 0;
        cr_assert_not_null(rj_est_find(name), "est/%s is not in the registry", e->d_name);
        files++;
    }
    closedir(dir);
    cr_assert_eq(files, rj_est_count, "%d estimator files, %d registered", files, rj_est_count);
}

Test(registry, ops_tables_complete)
{
    for (int i = 0; i < rj_est_count; i++) {
        const rj_est_ops *e = rj_est_registry[i];
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(e->name, rj_est_registry[j]->name);
        cr_assert_geq(e->version, 1, "%s", e->name);
        cr_assert(e->feature_dim && e->valid && e->params_size && e->fit && e->variance &&
                      e->cost,
                  "%s: missing op", e->name);
        if (e->tmpl == RJ_TMPL_LINEAR)
            cr_assert(e->features && !e->attend, "%s: linear needs features only", e->name);
        else
            cr_assert(e->attend && !e->features, "%s: own loop needs attend only", e->name);
        cr_assert_eq(!!(e->flags & RJ_EST_FITTED), !!e->objective,
                     "%s: fitted estimators report objectives, others do not", e->name);
        cr_assert_gt(e->ref_tol, 0, "%s", e->name);
    }
}
