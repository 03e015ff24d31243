/* SPDX-License-Identifier: MIT */
/* This file checks QR, eigh and SVD by reconstruction and orthogonality, including rank
 * deficient and repeated-value inputs. */
#include <criterion/criterion.h>

#include "linalg.h"
#include "philox.h"

#include <math.h>
#include <stdlib.h>

TestSuite(linalg);

static double orth_err(int n, const double *Q)
{
    double e = 0;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            double dot = 0;
            for (int i = 0; i < n; i++)
                dot += Q[i * n + a] * Q[i * n + b];
            e = fmax(e, fabs(dot - (a == b)));
        }
    return e;
}

static const int sizes[] = {1, 2, 7, 64, 128};

Test(linalg, qr_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t];
        double *A = malloc(sizeof(double) * n * n), *Q = malloc(sizeof(double) * n * n);
        double *rd = malloc(sizeof(double) * n);
        for (int i = 0; i < n; i++)
            rj_normals(5, RJ_STREAM_TEST, (uint32_t)i, A + i * n, (size_t)n);
        cr_assert_eq(rj_qr(n, A, Q, rd), RFJIT_OK);
        cr_assert_leq(orth_err(n, Q), 1e-12 * n, "n = %d", n);
        /* R = Q^T A is upper triangular with diagonal rd */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double r = 0;
                for (int k = 0; k < n; k++)
                    r += Q[k * n + i] * A[k * n + j];
                if (i > j)
                    cr_assert_leq(fabs(r), 1e-11 * n, "n=%d R[%d][%d] = %g", n, i, j, r);
                if (i == j)
                    cr_assert_leq(fabs(r - rd[i]), 1e-11 * n);
            }
        free(A);
        free(Q);
        free(rd);
    }
}

Test(linalg, eigh_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t];
        double *G = malloc(sizeof(double) * n * n), *A = malloc(sizeof(double) * n * n);
        double *V = malloc(sizeof(double) * n * n), *lam = malloc(sizeof(double) * n);
        for (int i = 0; i < n; i++)
            rj_normals(6, RJ_STREAM_TEST, (uint32_t)i, G + i * n, (size_t)n);
        double norm = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                A[i * n + j] = G[i * n + j] + G[j * n + i];
                norm = fmax(norm, fabs(A[i * n + j]));
            }
        cr_assert_eq(rj_eigh(n, A, lam, V), RFJIT_OK);
        cr_assert_leq(orth_err(n, V), 1e-12 * n);
        for (int i = 1; i < n; i++)
            cr_assert_leq(lam[i - 1], lam[i]);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double r = 0;
                for (int k = 0; k < n; k++)
                    r += V[i * n + k] * lam[k] * V[j * n + k];
                cr_assert_leq(fabs(r - A[i * n + j]), 1e-12 * n * norm, "n=%d", n);
            }
        free(G);
        free(A);
        free(V);
        free(lam);
    }
    double D[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5}, lam[3], V[9];
    cr_assert_eq(rj_eigh(3, D, lam, V), RFJIT_OK);
    cr_assert_float_eq(lam[0], 1, 1e-14);
    cr_assert_float_eq(lam[1], 3, 1e-14);
    cr_assert_float_eq(lam[2], 5, 1e-14);
}

static void check_svd(int n, const double *A)
{
    double *U = malloc(sizeof(double) * n * n), *V = malloc(sizeof(double) * n * n);
    double *s = malloc(sizeof(double) * n);
    cr_assert_eq(rj_svd(n, A, U, s, V), RFJIT_OK);
    cr_assert_leq(orth_err(n, U), 1e-12 * n, "U, n = %d", n);
    cr_assert_leq(orth_err(n, V), 1e-12 * n, "V, n = %d", n);
    double norm = s[0] > 0 ? s[0] : 1;
    for (int i = 0; i < n; i++) {
        if (i)
            cr_assert_leq(s[i], s[i - 1]);
        cr_assert_geq(s[i], 0);
        for (int j = 0; j < n; j++) {
            double r = 0;
            for (int k = 0; k < n; k++)
                r += U[i * n + k] * s[k] * V[j * n + k];
            cr_assert_leq(fabs(r - A[i * n + j]), 1e-12 * n * norm, "n=%d (%d,%d)", n, i, j);
        }
    }
    free(U);
    free(V);
    free(s);
}

Test(linalg, svd_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        int n = sizes[t];
        double *A = malloc(sizeof(double) * n * n);
        for (int i = 0; i < n; i++)
            rj_normals(7, RJ_STREAM_TEST, (uint32_t)i, A + i * n, (size_t)n);
        check_svd(n, A);
        if (n >= 2) { /* rank deficient: last row copies the first */
            for (int j = 0; j < n; j++)
                A[(n - 1) * n + j] = A[j];
            check_svd(n, A);
        }
        free(A);
    }
    double D[9] = {2, 0, 0, 0, 2, 0, 0, 0, 0};
    check_svd(3, D);
}
