/* SPDX-License-Identifier: MIT */
/*
 * This file is the small dense linear algebra the estimators need, in double, in a fixed
 * operation order (so results are reproducible): Householder QR, symmetric eigendecomposition
 * (cyclic Jacobi) and SVD (one-sided Jacobi) of n x n row-major matrices, n <= a few hundred.
 */
#ifndef RJ_LINALG_H
#define RJ_LINALG_H

#include "core/base.h"

/* A = Q R. Q: n x n orthogonal (row-major), rdiag: the n diagonal entries of R (signs
 * included, as Householder QR produces them). A is not modified. Errors: RFJIT_E_NOMEM. */
rfjit_status rj_qr(int n, const double *A, double *Q, double *rdiag);

/* Symmetric A = V diag(lam) V^T; lam ascending; V's columns are the eigenvectors
 * (V row-major, V[i*n + j] = component i of eigenvector j). Only A's upper and lower
 * triangles' average is used. Errors: RFJIT_E_NOMEM, RFJIT_E_FIT (no convergence). */
rfjit_status rj_eigh(int n, const double *A, double *lam, double *V);

/* A = U diag(s) V^T, s descending and >= 0, U and V orthogonal (row-major, columns are the
 * singular vectors). Errors: RFJIT_E_NOMEM, RFJIT_E_FIT (no convergence). */
rfjit_status rj_svd(int n, const double *A, double *U, double *s, double *V);

#endif
