/* SPDX-License-Identifier: MIT */
/*
 * This file is the shared harness of the reference-loop suites (tests/est/test_ref_attention.c,
 * test_hybrid.c, test_eva.c): seeded test data, one estimator instance (spec, W, fitted
 * parameters) for the non-fitted estimators, the kernel phi_q . phi_k of explicit features,
 * an independent quadratic-form oracle for linear attention (check C4), and error measures.
 * Helpers abort the calling test (Criterion assertions) on any setup failure.
 */
#ifndef RJ_REF_TESTUTIL_H
#define RJ_REF_TESTUTIL_H

#include "est/est.h"

#include <stddef.h>
#include <stdint.h>

/* x[i] = scale * N(0, 1), i < n, from (seed, RJ_STREAM_TEST, row). */
void rt_normals(double *x, size_t n, double scale, uint64_t seed, uint32_t row);

/* A zero-filled spec for a registered estimator: EVA window 0 and 1 chunk, hybrid n = 3 with
 * the positive base (callers change fields before rt_inst_init). */
rj_spec rt_spec(const char *name, int d, int dv, int m, int causal);

/* One estimator instance; everything on the heap, freed by rt_inst_free. */
typedef struct rt_inst {
    rj_spec s;
    double *W;      /* m x d, NULL for RJ_EST_NOPROJ */
    double *params; /* params_size (+ 1) doubles */
} rt_inst;

/* Draw W = rj_proj_draw(proj, seed) (unless RJ_EST_NOPROJ) and fit with the same seed (no
 * statistics: not for RJ_EST_FITTED estimators). */
void rt_inst_init(rt_inst *e, const rj_spec *s, int proj, uint64_t seed);
void rt_inst_free(rt_inst *e);

/* phi_q(x) . phi_k(y) = e^{h_q + h_k} f_q . f_k for the instance (RJ_TMPL_LINEAR). */
double rt_kernel(const rt_inst *e, const double *x, const double *y);

/* Linear attention as the masked (causal) or unmasked quadratic form of explicit features,
 * out_i = sum_{j in J(i)} k_ij v_j / sum_{j in J(i)} k_ij, k_ij = rt_kernel(x_i, y_j):
 * spec 1.2's tril(Q'K'^T) V / rowsum, with no stabilisation (moderate norms only). */
void rt_quadratic(const rt_inst *e, const double *x, int64_t lq, const double *y,
                  const double *v, int64_t lk, double *out);

/* max_i |a_i - b_i| / max_i |b_i| (b is the reference; 0 if both are all zero; infinity if
 * any entry of a or b is not finite). */
double rt_max_rel_err(const double *a, const double *b, size_t n);

/* Whether every entry is finite. */
int rt_all_finite(const double *a, size_t n);

#endif
