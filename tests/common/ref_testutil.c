/* SPDX-License-Identifier: MIT */
/* This file implements tests/common/ref_testutil.h, the reference-loop suites' harness. */
#include "ref_testutil.h"

#include <criterion/criterion.h>

#include "core/philox.h"
#include "core/proj.h"
#include "core/testing.h"
#include "rfjit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rt_normals(double *x, size_t n, double scale, uint64_t seed, uint32_t row)
{
    rj_normals(seed, RJ_STREAM_TEST, row, x, n);
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
}

rj_spec rt_spec(const char *name, int d, int dv, int m, int causal)
{
    rj_spec s;
    memset(&s, 0, sizeof s);
    s.est = rj_est_find(name);
    cr_assert_not_null(s.est, "estimator '%s' is not registered", name);
    s.d = d;
    s.dv = dv;
    s.m = m;
    s.causal = causal;
    s.proj = RFJIT_PROJ_ORTHOGONAL;
    s.eva_window = 0;
    s.eva_chunks = 1;
    s.hrf_n = 3;
    s.hrf_base = RFJIT_HYBRID_BASE_POSITIVE;
    return s;
}

void rt_inst_init(rt_inst *e, const rj_spec *s, int proj, uint64_t seed)
{
    memset(e, 0, sizeof *e);
    e->s = *s;
    e->s.proj = proj;
    char why[256] = "";
    cr_assert(s->est->valid(&e->s, why, sizeof why), "%s: invalid spec: %s", s->est->name, why);
    cr_assert(!(s->est->flags & RJ_EST_FITTED), "%s needs statistics", s->est->name);
    if (!(s->est->flags & RJ_EST_NOPROJ)) {
        e->W = malloc(sizeof(double) * (size_t)s->m * (size_t)s->d);
        cr_assert_not_null(e->W);
        cr_assert_eq(rj_proj_draw(proj, seed, s->m, s->d, e->W, NULL), RFJIT_OK,
                     "rj_proj_draw(%d, %llu, %d, %d)", proj, (unsigned long long)seed, s->m,
                     s->d);
    }
    e->params = malloc(sizeof(double) * (s->est->params_size(&e->s) + 1));
    cr_assert_not_null(e->params);
    rj_diag dg = {{0}};
    cr_assert_eq(s->est->fit(&e->s, e->W, seed, NULL, e->params, NULL, &dg), RFJIT_OK,
                 "%s fit: %s", s->est->name, dg.msg);
}

void rt_inst_free(rt_inst *e)
{
    free(e->W);
    free(e->params);
    memset(e, 0, sizeof *e);
}

double rt_kernel(const rt_inst *e, const double *x, const double *y)
{
    const int64_t M = e->s.est->feature_dim(&e->s);
    double *fq = malloc(sizeof(double) * (size_t)M), *fk = malloc(sizeof(double) * (size_t)M);
    cr_assert(fq && fk);
    double hq, hk, dot = 0;
    e->s.est->features(&e->s, e->params, RJ_ROLE_Q, x, &hq, fq);
    e->s.est->features(&e->s, e->params, RJ_ROLE_K, y, &hk, fk);
    for (int64_t r = 0; r < M; r++)
        dot += fq[r] * fk[r];
    free(fq);
    free(fk);
    return exp(hq + hk) * dot;
}

void rt_quadratic(const rt_inst *e, const double *x, int64_t lq, const double *y,
                  const double *v, int64_t lk, double *out)
{
    const int d = e->s.d, dv = e->s.dv;
    for (int64_t i = 0; i < lq; i++) {
        double *o = out + i * dv, den = 0;
        for (int a = 0; a < dv; a++)
            o[a] = 0;
        const int64_t nk = e->s.causal ? i + 1 : lk;
        for (int64_t j = 0; j < nk; j++) {
            const double k = rt_kernel(e, x + i * d, y + j * d);
            den += k;
            for (int a = 0; a < dv; a++)
                o[a] += k * v[j * dv + a];
        }
        for (int a = 0; a < dv; a++)
            o[a] /= den;
    }
}

double rt_max_rel_err(const double *a, const double *b, size_t n)
{
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY; /* fmax would silently drop a NaN */
        err = fmax(err, fabs(a[i] - b[i]));
        ref = fmax(ref, fabs(b[i]));
    }
    if (ref == 0)
        return err == 0 ? 0 : INFINITY;
    return err / ref;
}

int rt_all_finite(const double *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return 0;
    return 1;
}
