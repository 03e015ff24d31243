/* SPDX-License-Identifier: MIT */
/*
 * This file is the exact variance-reducing transforms of an attention call
 * (rfjit_attn_desc.transform, rfjit.h RFJIT_XFORM_*): per (sequence, key/value head), the
 * means and balancing scales of the rows the call reads, the transformed q and k rows in
 * float32 copies, and for query centring each key's exact weight e^{xbar.y} as a vector u
 * that the executors fold into the key features (the JIT: added to every row of the
 * key-role W; the reference: added to each key's log-scale).
 */
#ifndef RJ_XFORM_H
#define RJ_XFORM_H

#include "gen/kplan.h"
#include "runtime/call.h"

/* The descriptor's transform flags into s->xform, refused where they cannot apply; s has
 * its estimator, sizes and compat mode already. */
rfjit_status rj_xform_check(int32_t flags, rj_spec *s, rj_diag *dg);

typedef struct rj_xform {
    rj_call call;     /* c on the transformed rows: its q and k (and v for half inputs) views
                         are the copies below, everything else is c's */
    float *q, *k, *v; /* the copies (v only when the inputs are not float32) */
    double *u;        /* query centring: d doubles per (sequence, key/value head); else NULL */
    float *pk;        /* frozen linear JIT plans with u: the key-role parameter block per
                         (sequence, key/value head), u folded in */
    double *stats;    /* 8 d doubles: one slice's statistics and scratch */
    const rfjit_plan *p;
    rj_exec_scratch *sc; /* JIT plans: the pool's scratch that holds the buffers above */
} rj_xform;

/* Whether executes of p transform their calls. */
static inline bool rj_xform_on(const rfjit_plan *p)
{
    return p->spec.xform != 0;
}
/* Transform a checked call into *x (to be freed with rj_xform_free; on failure nothing is
 * left to free). Only memory can fail, before anything is written. */
rfjit_status rj_xform_make(const rfjit_plan *p, const rj_call *c, rj_xform *x, rj_diag *dg);
void rj_xform_free(rj_xform *x);
/* Add u (d doubles) to every projection row of a key-role parameter block of kp's layout, so
 * that each key feature gains the factor e^{u.y}. */
void rj_xform_fold(const rj_kplan *kp, float *pk, const double *u);

/* Calibration (runtime/plan.c): a fit frozen on a sample must see the rows the executes
 * will transform, transformed alike. rj_xform_calib_scales: the balancing scales a (d) of
 * calibration tensors t[0] (queries) and t[1] (keys), each (batch, head) slice centred on
 * its own mean as its role asks; buf holds the rows of the longest slice, m2 2 d doubles.
 * rj_xform_calib_rows: n rows of one slice (d doubles each) of role 0 (queries) or 1 (keys)
 * transformed in place with a, or with p->xA where the plan has it. */
void rj_xform_calib_scales(const rj_spec *s, const rfjit_tensor *t[2], double *buf, double *m2,
                           double *a);
void rj_xform_calib_rows(const rfjit_plan *p, int role, double *x, int64_t n, const double *a);
/* RFJIT_XFORM_WHITEN on a calibration sample (queries tq, keys tk): p->xA from the sample's
 * covariances, each (batch, head) slice centred as its role asks, so that executes skip the
 * per-call eigendecompositions; a singular sample leaves p->xA NULL (per call). Errors:
 * those of the sample's checks, RFJIT_E_NOMEM. */
rfjit_status rj_xform_plan_whiten(rfjit_plan *p, const rfjit_tensor *tq, const rfjit_tensor *tk,
                                  rj_diag *dg);

#endif
