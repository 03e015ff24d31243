/* SPDX-License-Identifier: MIT */
/*
 * This file checks the deterministic contract of the seven linear estimators' ops tables
 * (est/est.h): names, flags, template, projection kinds, feature dimensions, valid(),
 * the (h, f) representation of the feature maps (the non-fitted maps against their textbook
 * formulas of spec estimators.md 2.1-2.3, max_r f_r = 1 for exponential maps, no overflow for
 * |x| = 1e3), that queries and keys share the map where the estimator is symmetric, and that
 * cost() grows with m, d and dv.
 */
#include <criterion/criterion.h>

#include "est_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(est_ops);

enum { D = 6, M = 5 };

static const struct {
    const char *name;
    unsigned flags;
    int mult; /* M = mult * m */
    int symmetric;
} table[] = {
    {"positive", 0, 1, 1},        {"hyperbolic", 0, 2, 1},         {"trig", RJ_EST_SIGNED, 2, 1},
    {"oprf", RJ_EST_FITTED | RJ_EST_MOM_NONE, 1, 1},
    {"saderf", RJ_EST_FITTED | RJ_EST_MOM_DIAG, 1, 0}, {"sderf", RJ_EST_FITTED, 1, 1},
    {"aderf", RJ_EST_FITTED, 1, 0},
};
#define NEST ((int)(sizeof table / sizeof table[0]))

/* A spec with rfjit's defaults for everything but the shape and projection. */
static rj_spec spec_of(const rj_est_ops *e, int d, int dv, int m, int proj)
{
    return (rj_spec){.est = e,
                     .d = d,
                     .dv = dv,
                     .m = m,
                     .proj = proj,
                     .eva_chunks = 1,
                     .hrf_n = 1,
                     .compat = RJ_COMPAT_NONE,
                     .eva_variant = RJ_EVA_PRINCIPLED};
}

Test(est_ops, tables)
{
    const unsigned all = (1u << RFJIT_PROJ_IID) | (1u << RFJIT_PROJ_ORTHOGONAL) |
                         (1u << RFJIT_PROJ_USER);
    for (int i = 0; i < NEST; i++) {
        const rj_est_ops *e = rj_est_find(table[i].name);
        cr_assert_not_null(e, "%s", table[i].name);
        cr_expect_str_eq(e->name, table[i].name);
        cr_expect_eq(e->version, 1, "%s", e->name);
        cr_expect_eq(e->tmpl, RJ_TMPL_LINEAR, "%s", e->name);
        cr_expect_eq(e->flags, table[i].flags, "%s: flags %u", e->name, e->flags);
        cr_expect_eq(e->proj_kinds, all, "%s: projection kinds %u", e->name, e->proj_kinds);
        cr_expect(e->features && !e->attend && e->variance && e->cost && e->fit, "%s", e->name);
        cr_expect_eq(!!e->objective, !!(e->flags & RJ_EST_FITTED), "%s", e->name);
        cr_expect_eq(e->ref_tol, 1e-4, "%s", e->name);
        rj_spec s = spec_of(e, D, D, M, RFJIT_PROJ_ORTHOGONAL);
        cr_expect_eq(e->feature_dim(&s), table[i].mult * M, "%s", e->name);
        cr_expect_gt(e->params_size(&s), 0, "%s", e->name);
    }
}

Test(est_ops, valid)
{
    for (int i = 0; i < NEST; i++) {
        const rj_est_ops *e = rj_est_find(table[i].name);
        char why[128];
        rj_spec s = spec_of(e, D, D, M, RFJIT_PROJ_IID);
        why[0] = 0;
        cr_expect(e->valid(&s, why, sizeof why), "%s: %s", e->name, why);
        s.d = RJ_MAX_D;
        cr_expect(e->valid(&s, why, sizeof why), "%s at d = RJ_MAX_D: %s", e->name, why);
        const int bad[][2] = {{0, M}, {-1, M}, {RJ_MAX_D + 1, M}, {D, 0}, {D, -3}};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            s.d = bad[k][0];
            s.m = bad[k][1];
            why[0] = 0;
            cr_expect(!e->valid(&s, why, sizeof why), "%s accepts d = %d, m = %d", e->name,
                      s.d, s.m);
            cr_expect_neq(why[0], 0, "%s: no reason for d = %d, m = %d", e->name, s.d, s.m);
        }
        s.d = D;
        s.m = M;
        s.causal = 1;
        cr_expect(e->valid(&s, why, sizeof why), "%s: causal specs are the runtime's call",
                  e->name);
    }
}

/* The textbook feature values (spec 2.1-2.3) of the non-fitted maps. */
static double textbook(const char *name, const double *W, int r, int m, const double *x)
{
    double u = 0, sq = 0;
    const int row = r % m;
    for (int j = 0; j < D; j++) {
        u += W[row * D + j] * x[j];
        sq += x[j] * x[j];
    }
    if (!strcmp(name, "positive"))
        return exp(u - sq / 2) / sqrt(m);
    if (!strcmp(name, "hyperbolic"))
        return exp((r < m ? u : -u) - sq / 2) / sqrt(2.0 * m);
    return exp(sq / 2) * (r < m ? cos(u) : sin(u)) / sqrt(m);
}

Test(est_ops, features)
{
    et_sample smp;
    et_sample_make(&smp, D, 12, 12, 0.6, 5);
    double x[D];
    for (int i = 0; i < NEST; i++) {
        et_inst e;
        et_inst_init(&e, table[i].name, D, M);
        const int exponential = !(e.s.est->flags & RJ_EST_SIGNED);
        cr_assert_eq(et_inst_draw(&e, 17, &smp.st, NULL), RFJIT_OK, "%s", table[i].name);
        for (int c = 0; c < 6; c++) {
            /* Norms 0.1 .. 1e3 along a fixed random direction. */
            const double norm = c < 5 ? 0.1 * pow(3.0, c) : 1e3;
            et_pair(D, norm, norm, 0, 40 + (uint64_t)c, x, x);
            double hq, hk;
            e.s.est->features(&e.s, e.params, RJ_ROLE_Q, x, &hq, e.fq);
            e.s.est->features(&e.s, e.params, RJ_ROLE_K, x, &hk, e.fk);
            cr_expect(isfinite(hq) && isfinite(hk), "%s |x| = %g: h = %g, %g", table[i].name,
                      norm, hq, hk);
            double fmax = 0;
            int same = 1;
            for (int64_t r = 0; r < e.M; r++) {
                cr_expect(isfinite(e.fq[r]) && fabs(e.fq[r]) <= 1, "%s |x| = %g: f_%lld = %g",
                          table[i].name, norm, (long long)r, e.fq[r]);
                fmax = fmax > fabs(e.fq[r]) ? fmax : fabs(e.fq[r]);
                same &= e.fq[r] == e.fk[r];
                if (!(e.s.est->flags & RJ_EST_FITTED) && norm < 10) {
                    const double ref = textbook(table[i].name, e.W, (int)r, M, x);
                    const double got = exp(hq) * e.fq[r];
                    cr_expect_leq(fabs(got - ref), 1e-13 * fabs(exp(hq)),
                                  "%s |x| = %g: phi_%lld = %.17g, formula %.17g",
                                  table[i].name, norm, (long long)r, got, ref);
                }
            }
            if (exponential)
                cr_expect_eq(fmax, 1.0, "%s |x| = %g: max f = %.17g, h must be the max",
                             table[i].name, norm, fmax);
            if (table[i].symmetric)
                cr_expect(same && hq == hk, "%s: queries and keys must share the map",
                          table[i].name);
            else
                cr_expect(!same || hq != hk, "%s: asymmetric map gave identical q/k features",
                          table[i].name);
        }
        et_inst_free(&e);
    }
    et_sample_free(&smp);
}

Test(est_ops, cost_grows)
{
    for (int i = 0; i < NEST; i++) {
        const rj_est_ops *e = rj_est_find(table[i].name);
        rj_spec s = spec_of(e, 64, 64, 128, RFJIT_PROJ_ORTHOGONAL);
        double f0, b0, f1, b1;
        e->cost(&s, &f0, &b0);
        cr_expect(f0 > 0 && b0 > 0, "%s: cost %g flops %g bytes", e->name, f0, b0);
        /* Linear attention alone is 4 M dv + 3M + dv (spec 1.1). */
        const double M_ = (double)e->feature_dim(&s);
        cr_expect_gt(f0, 4 * M_ * 64 + 3 * M_ + 64, "%s", e->name);
        s.m = 256;
        e->cost(&s, &f1, &b1);
        cr_expect(f1 > f0 && b1 > b0, "%s: cost must grow with m", e->name);
        s.m = 128;
        s.d = 128;
        e->cost(&s, &f1, &b1);
        cr_expect(f1 > f0 && b1 > b0, "%s: cost must grow with d", e->name);
        s.d = 64;
        s.dv = 128;
        e->cost(&s, &f1, &b1);
        cr_expect(f1 > f0 && b1 > b0, "%s: cost must grow with dv", e->name);
    }
}

Test(est_ops, objective_rejects_empty)
{
    for (int i = 0; i < NEST; i++) {
        const rj_est_ops *e = rj_est_find(table[i].name);
        if (!e->objective)
            continue;
        et_sample smp;
        et_sample_make(&smp, D, 10, 10, 0.5, 3);
        et_inst in;
        et_inst_init(&in, table[i].name, D, 2);
        cr_assert_eq(et_inst_draw(&in, 1, &smp.st, NULL), RFJIT_OK);
        double o, v;
        rj_diag dg = {{0}};
        cr_expect_eq(e->objective(&in.s, in.params, smp.x, 0, smp.y, 10, &o, &v, &dg),
                     RFJIT_E_INVALID_ARG, "%s", e->name);
        cr_expect_neq(dg.msg[0], 0, "%s", e->name);
        et_inst_free(&in);
        et_sample_free(&smp);
    }
}
