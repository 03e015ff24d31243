/* SPDX-License-Identifier: MIT */
/*
 * This file holds what several estimators share word for word: the range checks of valid(),
 * |x|^2, the parameter block of the estimators whose parameters are W itself (positive,
 * hyperbolic, trig), and the GERF closed forms, fit checks, feature loop, objective and cost
 * of the fitted ones. It is not an estimator: the registry test lists it among est/'s other
 * files.
 */
#ifndef RJ_EST_COMMON_H
#define RJ_EST_COMMON_H

#include "est/est.h"

/* valid(): 1 <= d <= RJ_MAX_D and m >= 1. */
bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n);
/* valid() of the estimators without a projection (m is not theirs to check):
 * 1 <= d <= RJ_MAX_D and dv >= 1. */
bool rj_est_valid_ddv(const rj_spec *s, char *why, size_t n);

/* |x|^2 = sum_j x_j^2 of one row of d entries, summed in index order. */
double rj_est_sqnorm(int d, const double *x);

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

/*
 * Each fitted estimator is OPRF in coordinates x' (queries) and y' (keys) that keep
 * x'^T y' = x^T y: x' = x (oprf), psi o x and y / psi (saderf), B1' x and B2' y (aderf), and per
 * eigendirection for sderf. What follows is written once for all of them.
 */

/* fit()'s preconditions: a projection W and statistics of the spec's d with at least one
 * query and one key. what names the fit in the messages ("fitting A" for oprf). */
rfjit_status rj_gerf_check_fit(const rj_spec *s, const double *W, const rj_stats *st,
                               const char *what, rj_diag *dg);
/* OPRF's scalars for rho = mean |x' + y'|^2 / d: *a = A*(rho), *sb = sqrt(1 - 4a) and
 * *c = (d/4) ln(1-4a) - (1/2) ln m. Errors: RFJIT_E_FIT when a or c is not finite. */
rfjit_status rj_gerf_scalars(const rj_spec *s, double rho, double *a, double *sb, double *c,
                             rj_diag *dg);

/* Var = SM^2 expm1(g) / m for the pair's x^T y and excess g, where e^g alone may overflow. */
double rj_gerf_variance(const rj_spec *s, double xy, double g);

/* features() of one row: ell_r = b_r + (W x)_r - sq/2, h = max_r ell_r, f_r = e^{ell_r - h},
 * with the role's fitted bias b (m), projection W (m x d row-major) and sq = |x'|^2. */
void rj_gerf_features(const rj_spec *s, const double *bias, const double *W, double sq,
                      const double *x, double *h, double *f);

/* |x'|^2 of one row of the given role in the estimator's coordinates, from its parameters. */
typedef double (*rj_gerf_norm)(const rj_spec *s, const double *params, rj_role role,
                               const double *x);

/* objective() of est.h for parameter A: per pair g = rj_gerf_log_excess(d, A,
 * |x'_i|^2 + |y'_j|^2 + 2 x_i^T y_j), with each row's norm computed once. */
rfjit_status rj_gerf_objective(const rj_spec *s, const double *params, double A,
                               rj_gerf_norm norm, const double *x, int64_t lq, const double *y,
                               int64_t lk, double *obj, double *var_obj, rj_diag *dg);

/* One pair's terms of the objectives, ln E[(f1 f2)^2] = 2 x^T y + g and
 * ln Var = 2 x^T y + ln expm1(g), added to the running sums *so and *sv. */
void rj_gerf_pair(double xy, double g, double *so, double *sv);
/* The means over lq x lk pairs of the sums rj_gerf_pair built. */
void rj_gerf_means(double so, double sv, int64_t lq, int64_t lk, double *obj, double *var_obj);

/* cost() of est.h: features 2 x (2md + norm_flops + 4m + m exp) (spec 4.6), stat_flops of
 * statistics, linear attention 4 M dv + 3M + dv with M = m (spec 1.1); bytes as positive.c. */
void rj_gerf_cost(const rj_spec *s, double norm_flops, double stat_flops, double *flops,
                  double *bytes);

#endif
