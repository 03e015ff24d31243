/* SPDX-License-Identifier: MIT */
/*
 * This file is the portable reference of the attention loops, for one (batch, head), in
 * double: the oracle every JIT kernel is tested against and the fallback backend.
 * Inputs are row-major doubles, already scaled (x = q sqrt(scale), y = k sqrt(scale)).
 */
#ifndef RJ_REF_H
#define RJ_REF_H

#include "est/est.h"

/*
 * Linear attention with the estimator's feature map (spec estimators.md 1.1, 1.2) and the
 * exact log-domain stabilisation of 1.4: queries drop their own h, keys are shifted by the
 * maximum h over the (batch, head) (bidirectional) or by a running maximum with (S, z)
 * rescaled by e^{-delta} when it grows (causal). A relative epsilon guards only the
 * denominator: |den| < 1e-6 * sum_r |f_r| |z|_r is replaced by +-1e-6 * that sum (signed
 * estimators), and den = 0 with a zero sum gives a zero output row. nvis as for the `attend`
 * op (est.h): query i sees keys 0 .. nvis[i] - 1; given, the state is built as a running
 * prefix (as causal) unless every query sees every key.
 */
rfjit_status rj_ref_linear(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg);

/* rj_ref_linear with key j's features times the exact weight e^{ylog[j]} (ylog: lk entries,
 * or NULL for none), taken into the key's log-scale so that the stabilisation covers it
 * (runtime/xform.c: query centring). */
rfjit_status rj_ref_linear_keyw(const rj_spec *s, const double *params, const double *x, int64_t lq,
                                const double *y, const double *ylog, const double *v, int64_t lk,
                                const int64_t *nvis, double *out, rj_diag *dg);

/* Exact softmax attention with weights exp(x_i^T y_j), max-shifted per query row, over keys
 * 0 .. nvis[i] - 1 (NULL: all keys, or j <= i when causal). */
rfjit_status rj_ref_softmax(const rj_spec *s, const double *x, int64_t lq, const double *y,
                            const double *v, int64_t lk, const int64_t *nvis, double *out,
                            rj_diag *dg);

/* Linear attention with another implementation's numerics (rj_spec.compat, rfjit.h
 * rfjit_attn_desc.compat), est/ref_compat.c; arguments as rj_ref_linear. */
rfjit_status rj_ref_compat(const rj_spec *s, const double *params, const double *x, int64_t lq,
                           const double *y, const double *v, int64_t lk, const int64_t *nvis,
                           double *out, rj_diag *dg);

/* The estimators a compat mode reproduces, quoted, for messages ("'positive' and 'trig'");
 * NULL for none. */
const char *rj_compat_estimators(int compat);
/* Whether estimator e runs in compat mode (every estimator does in RJ_COMPAT_NONE). */
bool rj_compat_applies(int compat, const rj_est_ops *e);

#endif
