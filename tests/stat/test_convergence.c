/* SPDX-License-Identifier: MIT */
/*
 * This file checks that the attention error of every random-feature estimator falls like
 * 1/sqrt(m): for unbiased kernel estimates with i.i.d. projections the output error is, to
 * first order, err = (num_hat - o den_hat) / Z, an average of m i.i.d. terms, so the mean
 * relative squared error E||O_hat - O||^2 / ||O||^2 scales as 1/m. The ratio of the means at
 * m = 64 and m = 1024 must be 16 within 5 standard errors (from the seed-to-seed spread).
 */
#include <criterion/criterion.h>

#include "data_testutil.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L = 96, D = 16, R = 24 };


static float q[L * D], k[L * D], v[L * D], o_exact[L * D], o[L * D];

/* Mean and standard error of the relative squared error over R seeds at m. */
static void rel_mse(rfjit_ctx *ctx, const char *name, int m, double *mean, double *se)
{
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor to = rfjit_tensor_contiguous(o, 1, 1, L, D);
    double s1 = 0, s2 = 0, norm = 0;
    for (int i = 0; i < L * D; i++)
        norm += (double)o_exact[i] * o_exact[i];
    for (int r = 0; r < R; r++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.estimator = name;
        a.d = D;
        a.m = m;
        a.projection = RFJIT_PROJ_IID;
        a.seed = 1000 + (uint64_t)r;
        a.hybrid_signs = 2;
        rfjit_plan *p = NULL;
        cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK, "%s", rfjit_ctx_last_error(ctx));
        cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
        double e = 0;
        for (int i = 0; i < L * D; i++)
            e += ((double)o[i] - o_exact[i]) * ((double)o[i] - o_exact[i]);
        e /= norm;
        s1 += e;
        s2 += e * e;
        rfjit_plan_destroy(p);
    }
    *mean = s1 / R;
    *se = sqrt((s2 / R - *mean * *mean) / (R - 1));
}

Test(convergence, error_falls_like_inverse_sqrt_m, .timeout = 120)
{
    rfjit_ctx *ctx = NULL;
    cr_assert_eq(rfjit_ctx_create(NULL, &ctx), RFJIT_OK);
    /* Raw entries N(0, 0.4^2) at d = 16: |x + y|^2 ~ 0.6, moderate variance, so the
     * first-order regime holds already at m = 64 (hybrid's signed features, whose
     * denominators can approach zero, leave it at larger norms). */
    tu_fill_normal(q, L * D, 0.4, 31);
    tu_fill_normal(k, L * D, 0.4, 32);
    tu_fill_normal(v, L * D, 1.0, 33);
    rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
    a.estimator = "exact";
    a.d = D;
    rfjit_plan *p = NULL;
    cr_assert_eq(rfjit_plan_create(ctx, &a, &p), RFJIT_OK);
    rfjit_tensor tq = rfjit_tensor_contiguous(q, 1, 1, L, D);
    rfjit_tensor tk = rfjit_tensor_contiguous(k, 1, 1, L, D);
    rfjit_tensor tv = rfjit_tensor_contiguous(v, 1, 1, L, D);
    rfjit_tensor to = rfjit_tensor_contiguous(o_exact, 1, 1, L, D);
    cr_assert_eq(rfjit_plan_execute(p, &tq, &tk, &tv, &to), RFJIT_OK);
    rfjit_plan_destroy(p);

    for (int e = 0; rfjit_estimator_name(e); e++) {
        const char *name = rfjit_estimator_name(e);
        /* blocksparse's rate is positive's on the pairs it does not take exactly */
        if (!strcmp(name, "exact") || !strcmp(name, "eva") || !strcmp(name, "blocksparse"))
            continue;
        double m1, se1, m2, se2;
        rel_mse(ctx, name, 64, &m1, &se1);
        rel_mse(ctx, name, 1024, &m2, &se2);
        double ratio = m1 / m2;
        double rel_se = sqrt((se1 / m1) * (se1 / m1) + (se2 / m2) * (se2 / m2));
        cr_log_info("%s: rel mse m=64 %.3e +- %.1e, m=1024 %.3e +- %.1e, ratio %.2f +- %.2f",
                    name, m1, se1, m2, se2, ratio, ratio * rel_se);
        cr_assert(fabs(ratio / 16.0 - 1.0) <= 5 * rel_se,
                  "%s: mse ratio m=64/m=1024 = %.2f, expected 16 +- %.2f (5 se); "
                  "mse %.3e / %.3e (seeds 1000..%d)",
                  name, ratio, 16 * 5 * rel_se, m1, m2, 1000 + R - 1);
    }
    rfjit_ctx_destroy(ctx);
}
