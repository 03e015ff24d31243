/* SPDX-License-Identifier: MIT */
/*
 * This file holds the ops-table entries several estimators share word for word: the
 * d/m range check, and the parameter block of the estimators whose parameters are W itself
 * (positive, hyperbolic, trig). It lives beside gen/est/ rather than in it because every
 * file in gen/est/ is an estimator in the registry.
 */
#ifndef RJ_EST_COMMON_H
#define RJ_EST_COMMON_H

#include "est/est.h"

/* valid(): 1 <= d <= RJ_MAX_D and m >= 1. */
bool rj_est_valid_dm(const rj_spec *s, char *why, size_t n);

/* params_size() and fit() of an estimator whose parameter block is W (m x d), unchanged. */
size_t rj_est_params_w(const rj_spec *s);
rfjit_status rj_est_fit_w(const rj_spec *s, const double *W, uint64_t seed, const rj_stats *st,
                          double *params, rj_fit_info *info, rj_diag *dg);

#endif
