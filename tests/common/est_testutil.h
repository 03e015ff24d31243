/* SPDX-License-Identifier: MIT */
/*
 * This file is the shared harness of the estimator suites in tests/est/test_est_*.c: one
 * estimator instance per projection seed (i.i.d. W, fitted parameters), the kernel estimate
 * phi_q(x)^T phi_k(y) = e^{h_q + h_k} f_q . f_k, controlled query/key pairs, a fixed fitting
 * sample, moments of a Monte Carlo sample, and an independent oracle: the general DERF
 * formulas of spec estimators.md 4.1 (features and ln E[(f1 f2)^2] for any valid A, B1, B2),
 * against which the fitted estimators' own closed forms are checked.
 */
#ifndef RJ_EST_TESTUTIL_H
#define RJ_EST_TESTUTIL_H

#include "est/est.h"

#include <stdint.h>

/* One estimator with its projection and parameters (all heap, freed by et_inst_free). */
typedef struct et_inst {
    rj_spec s;
    double *W;      /* m x d */
    double *params; /* params_size doubles */
    double *fq, *fk;
    int64_t M;
} et_inst;

/* Set up name at (d, m) with i.i.d. projections; aborts the test on failure. */
void et_inst_init(et_inst *e, const char *name, int d, int m);
void et_inst_free(et_inst *e);
/* Draw W = rj_proj_draw(IID, seed) and fit (st: statistics for fitted estimators, else NULL).
 * Returns fit's status. */
rfjit_status et_inst_draw(et_inst *e, uint64_t seed, const rj_stats *st, rj_fit_info *info);
/* phi_q(x)^T phi_k(y) of the current instance. */
double et_kernel(et_inst *e, const double *x, const double *y);

/* x with |x| = a and y with |y| = b at angle theta, in the plane of two fixed orthonormal
 * vectors drawn from seed (so every coordinate is used). */
void et_pair(int d, double a, double b, double theta, uint64_t seed, double *x, double *y);

/* A fixed fitting sample: lq queries and lk keys, anisotropic per dimension, with different
 * means for x and y (so psi, B1', B2' and M3's eigenvectors are all non-trivial), entries of
 * order scale. Statistics accumulated in st. */
typedef struct et_sample {
    int d;
    int64_t lq, lk;
    double *x, *y;
    rj_stats st;
} et_sample;

void et_sample_make(et_sample *smp, int d, int64_t lq, int64_t lk, double scale, uint64_t seed);
void et_sample_free(et_sample *smp);

/* Moments of n values: mean, sample variance s2 (n - 1), fourth central moment m4 (n). */
typedef struct et_moments {
    double mean, s2, m4;
} et_moments;

et_moments et_moments_of(const double *v, int64_t n);
/* Standard error of s2 from the sample's own fourth moment: sqrt((m4 - s2^2 (n-3)/(n-1)) / n). */
double et_s2_stderr(et_moments mo, int64_t n);

/*
 * General DERF (spec 4.1) for A (d x d symmetric, 8A < I), B1, B2 (d x d, row-major) with
 * B1^T (I-4A)^{-1} B2 = I. A derf struct holds the derived matrices so one set of parameters
 * serves many pairs.
 */
typedef struct et_derf {
    int d;
    double logD;          /* ln D = (1/4) ln det(I - 4A) */
    double logmom;        /* ln(D^4 det(I - 8A)^{-1/2}) */
    double *A, *B1, *B2;  /* copies */
    double *C1, *C2;      /* C^k = -(1/2) B^k^T (I-4A)^{-1} B^k */
    double *G1, *G2, *G12; /* C^k + B^k^T N B^k, B1^T N B2, N = (I - 8A)^{-1} */
} et_derf;

/* Returns 0 if I - 8A is not positive definite (invalid parameters). */
int et_derf_init(et_derf *g, int d, const double *A, const double *B1, const double *B2);
void et_derf_free(et_derf *g);
/* ln f^k(w, x) = ln D + w^T A w + w^T B^k x + x^T C^k x (k = 1 query, 2 key). */
double et_derf_log_feature(const et_derf *g, int k, const double *w, const double *x);
/* ln E_w[(f1(w,x) f2(w,y))^2] (the first term of the 4.1 variance). */
double et_derf_log_moment(const et_derf *g, const double *x, const double *y);
/* Mean over all lq x lk pairs of ln E[(f1 f2)^2], and of ln(E[(f1 f2)^2] - SM^2). */
void et_derf_objective(const et_derf *g, const double *x, int64_t lq, const double *y,
                       int64_t lk, double *obj, double *var_obj);

/*
 * The DERF parameters (A, B1, B2, each d x d) equivalent to a fitted estimator's parameter
 * block, read through the layouts documented at the top of est/<name>.c (version 1):
 * oprf A = aI, B1 = B2 = sqrt(1-4a) I; saderf A = aI, B1 = sqrt(1-4a) diag(psi),
 * B2 = sqrt(1-4a) diag(1/psi); sderf A = Q diag(a) Q^T, B1 = B2 = Q diag(sqrt(1-4a)) Q^T;
 * aderf A = aI, Bk = sqrt(1-4a) Bk'. sderf's features use the rows of W as w' = Q^T w, so
 * its projection row r corresponds to the DERF vector w = Q w_r: et_derf_w maps it.
 */
void et_derf_params(const et_inst *e, double *A, double *B1, double *B2);
void et_derf_w(const et_inst *e, const double *wrow, double *w);

/* Small dense helpers (row-major d x d). */
void et_matmul(int d, const double *X, const double *Y, double *Z); /* Z = X Y */
int et_inverse(int d, const double *X, double *Xi);                  /* 0 if singular */

#endif
