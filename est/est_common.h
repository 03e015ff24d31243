/* SPDX-License-Identifier: MIT */
/*
 * This file holds what several estimators share word for word: the d/m range check, the
 * parameter block of the estimators whose parameters are W itself (positive, hyperbolic,
 * trig), and the GERF closed forms of the fitted ones. It lives beside est/ rather than in it because every
 * file in est/ is an estimator in the registry.
 */
#ifndef RJ_EST_COMMON_H
#define RJ_EST_COMMON_H

#include "est/est.h"

/* valid(): 1 <= d <= RJ_MAX_D and m >= 1. */
bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n);
/* valid() of the estimators without a projection (m is not theirs to check):
 * 1 <= d <= RJ_MAX_D and dv >= 1. */
bool rj_est_valid_ddv(const rj_spec *s, char *why, size_t n);

/* params_size() and fit() of an estimator whose parameter block is W (m x d), unchanged. */
size_t rj_est_params_w(const rj_spec *s);
rfjit_status rj_est_fit_w(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                          double *params, rj_fit_info *info, rj_diag *dg);

/* The GERF closed forms oprf, saderf, sderf and aderf share (spec 3.1, 3.2). */

/* A*(rho) of spec 3.2, the negative root of 16u^2 - (2 - 4 rho) u - rho = 0, in a form that
 * neither cancels for small rho nor overflows for large rho. */
double rj_gerf_a_star(double rho);
/* g = ln E[(f1 f2)^2] - 2 x^T y = d ln(1-4A) - (d/2) ln(1-8A) + |z|^2/(1-8A), one projection. */
double rj_gerf_log_excess(int d, double A, double zz);
/* ln(e^g - 1) without overflow for large g; -inf for g <= 0. */
double rj_log_expm1(double g);

#endif
