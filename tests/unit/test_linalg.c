/* SPDX-License-Identifier: MIT */
/*
 * This file checks core/linalg.c: QR, eigh and SVD reconstruct their input to 1e-12 of its
 * norm with orthogonal factors, for random n in {1, 2, 7, 64, 128}; plus known eigenvalues,
 * repeated eigenvalues and singular values, rank deficiency, the zero matrix, a graded matrix
 * whose tiny singular values one-sided Jacobi must get to relative accuracy, extreme scales,
 * non-finite input, and bit determinism.
 */
#include <criterion/criterion.h>

#include "core/linalg.h"
#include "core/philox.h"
#include "core/testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TestSuite(linalg);

static const int sizes[] = {1, 2, 7, 64, 128};

static double *mat(int n)
{
    double *a = calloc((size_t)n * (size_t)n, sizeof(double));
    cr_assert(a);
    return a;
}

static void gaussian(int n, uint64_t seed, double *A)
{
    for (int i = 0; i < n; i++)
        rj_normals(seed, RJ_STREAM_TEST, (uint32_t)i, A + (size_t)i * n, (size_t)n);
}

static double frob(int n, const double *A)
{
    double s = 0;
    for (int i = 0; i < n * n; i++)
        s += A[i] * A[i];
    return sqrt(s);
}

/* max |M^T M - I| over the columns of M */
static double orth_err(int n, const double *M)
{
    double e = 0;
    for (int a = 0; a < n; a++)
        for (int b = a; b < n; b++) {
            double d = 0;
            for (int i = 0; i < n; i++)
                d += M[i * n + a] * M[i * n + b];
            e = fmax(e, fabs(d - (a == b)));
        }
    return e;
}

/* max |L diag(mid) R^T - A| */
static double recon_err(int n, const double *L, const double *mid, const double *R,
                        const double *A)
{
    double e = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double r = 0;
            for (int k = 0; k < n; k++)
                r += L[i * n + k] * mid[k] * R[j * n + k];
            e = fmax(e, fabs(r - A[i * n + j]));
        }
    return e;
}

/* Q orthogonal, Q^T A upper triangular with diagonal rdiag, to 1e-12 ||A||_F. */
static void check_qr(int n, const double *A, const char *what)
{
    double *Q = mat(n), *rd = calloc((size_t)n, sizeof(double));
    cr_assert_eq(rj_qr(n, A, Q, rd), RFJIT_OK);
    const double norm = fmax(frob(n, A), 1e-300);
    cr_assert_leq(orth_err(n, Q), 1e-12, "%s n=%d: Q^T Q - I = %g", what, n, orth_err(n, Q));
    double e = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) { /* R = Q^T A: below the diagonal 0, on it rdiag */
            double r = 0;
            for (int k = 0; k < n; k++)
                r += Q[k * n + i] * A[k * n + j];
            e = fmax(e, fabs(r - (i == j ? rd[i] : 0)));
        }
    cr_assert_leq(e, 1e-12 * norm, "%s n=%d: |lower(Q^T A)|, |diag - rdiag| = %g", what, n, e);
    free(Q);
    free(rd);
}

Test(linalg, qr_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        const int n = sizes[t];
        double *A = mat(n);
        gaussian(n, 5, A);
        check_qr(n, A, "gaussian");
        for (int i = 0; i < n; i++) /* a zero column: that reflector is skipped */
            A[i * n + n / 2] = 0;
        check_qr(n, A, "zero column");
        memset(A, 0, sizeof(double) * n * n);
        check_qr(n, A, "zero matrix");
        free(A);
    }
}

Test(linalg, qr_sign_convention_and_determinism)
{
    enum { N = 16 };
    double A[N * N], Q1[N * N], Q2[N * N], r1[N], r2[N];
    gaussian(N, 12, A);
    cr_assert_eq(rj_qr(N, A, Q1, r1), RFJIT_OK);
    cr_assert_eq(rj_qr(N, A, Q2, r2), RFJIT_OK);
    cr_assert_eq(memcmp(Q1, Q2, sizeof Q1), 0);
    cr_assert_eq(memcmp(r1, r2, sizeof r1), 0);
    /* LAPACK convention (what the sign fix corrects): R_00 = -sign(A_00) |A e_0| */
    double c0 = 0;
    for (int i = 0; i < N; i++)
        c0 += A[i * N] * A[i * N];
    cr_assert_float_eq(r1[0], (A[0] >= 0 ? -1 : 1) * sqrt(c0), 1e-13 * sqrt(c0));
    /* Power-of-two scaling is exact: 2^-600 A has the same Q bits and 2^-600 R */
    double B[N * N];
    for (int i = 0; i < N * N; i++)
        B[i] = ldexp(A[i], -600);
    cr_assert_eq(rj_qr(N, B, Q2, r2), RFJIT_OK);
    cr_assert_eq(memcmp(Q1, Q2, sizeof Q1), 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(r2[i], ldexp(r1[i], -600));
}

static void check_eigh(int n, const double *A, const char *what)
{
    double *V = mat(n), *lam = calloc((size_t)n, sizeof(double));
    cr_assert_eq(rj_eigh(n, A, lam, V), RFJIT_OK, "%s n=%d", what, n);
    const double norm = fmax(frob(n, A), 1e-300);
    cr_assert_leq(orth_err(n, V), 1e-12, "%s n=%d: V^T V - I = %g", what, n, orth_err(n, V));
    for (int i = 1; i < n; i++)
        cr_assert_leq(lam[i - 1], lam[i], "%s n=%d: not ascending at %d", what, n, i);
    const double e = recon_err(n, V, lam, V, A);
    cr_assert_leq(e, 1e-12 * norm, "%s n=%d: |V diag(lam) V^T - A| = %g", what, n, e);
    free(V);
    free(lam);
}

Test(linalg, eigh_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        const int n = sizes[t];
        double *G = mat(n), *A = mat(n);
        gaussian(n, 6, G);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                A[i * n + j] = G[i * n + j] + G[j * n + i];
        check_eigh(n, A, "gaussian");
        for (int i = 0; i < n; i++) /* positive semidefinite, rank <= 2: repeated zeros */
            for (int j = 0; j < n; j++)
                A[i * n + j] = G[i] * G[j] + (n > 1 ? G[n + i] * G[n + j] : 0);
        check_eigh(n, A, "rank 2");
        free(G);
        free(A);
    }
}

Test(linalg, eigh_known_values)
{
    /* [[2,1,0],[1,2,0],[0,0,5]]: 1 on (1,-1,0)/sqrt 2, 3 on (1,1,0)/sqrt 2, 5 on e_2 */
    const double A[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5};
    double lam[3], V[9];
    cr_assert_eq(rj_eigh(3, A, lam, V), RFJIT_OK);
    const double want[3] = {1, 3, 5}, h = sqrt(0.5);
    const double vec[3][3] = {{h, -h, 0}, {h, h, 0}, {0, 0, 1}};
    for (int j = 0; j < 3; j++) {
        cr_assert_float_eq(lam[j], want[j], 1e-14, "lambda_%d = %.17g", j, lam[j]);
        const double sgn = V[0 * 3 + j] * vec[j][0] + V[1 * 3 + j] * vec[j][1] +
                           V[2 * 3 + j] * vec[j][2]; /* eigenvectors are defined up to sign */
        cr_assert_float_eq(fabs(sgn), 1, 1e-14, "eigenvector %d", j);
    }
    /* Only the average of the triangles is used: the same answer from an unsymmetric input */
    const double B[9] = {2, 2, -1, 0, 2, 3, 1, -3, 5};
    double lam2[3], V2[9];
    cr_assert_eq(rj_eigh(3, B, lam2, V2), RFJIT_OK);
    for (int j = 0; j < 3; j++)
        cr_assert_float_eq(lam2[j], want[j], 1e-14);
    /* Repeated eigenvalues: Q diag(-1, 2, 2, 2, 7, 7) Q^T, Q from a QR */
    enum { N = 6 };
    double G[N * N], Q[N * N], rd[N], M[N * N], l[N], W[N * N];
    const double d[N] = {2, 7, -1, 2, 7, 2}, sorted[N] = {-1, 2, 2, 2, 7, 7};
    gaussian(N, 13, G);
    cr_assert_eq(rj_qr(N, G, Q, rd), RFJIT_OK);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            M[i * N + j] = 0;
            for (int k = 0; k < N; k++)
                M[i * N + j] += Q[i * N + k] * d[k] * Q[j * N + k];
        }
    cr_assert_eq(rj_eigh(N, M, l, W), RFJIT_OK);
    for (int j = 0; j < N; j++)
        cr_assert_float_eq(l[j], sorted[j], 1e-13, "lambda_%d = %.17g", j, l[j]);
    check_eigh(N, M, "repeated");
}

Test(linalg, eigh_scale_and_nonfinite)
{
    enum { N = 5 };
    double A[N * N], B[N * N], lam[N], lb[N], V[N * N];
    gaussian(N, 14, A);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++)
            A[i * N + j] = A[j * N + i];
    cr_assert_eq(rj_eigh(N, A, lam, V), RFJIT_OK);
    const double scales[2] = {0x1.0p900, 0x1.0p-1000};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < N * N; i++)
            B[i] = A[i] * scales[s];
        cr_assert_eq(rj_eigh(N, B, lb, V), RFJIT_OK, "scale %g", scales[s]);
        for (int i = 0; i < N; i++)
            cr_assert_eq(lb[i], lam[i] * scales[s], "scale %g: lambda_%d", scales[s], i);
    }
    B[7] = NAN;
    cr_assert_eq(rj_eigh(N, B, lb, V), RFJIT_E_FIT);
    B[7] = INFINITY;
    cr_assert_eq(rj_eigh(N, B, lb, V), RFJIT_E_FIT);
}

static void check_svd(int n, const double *A, double *s_out, const char *what)
{
    double *U = mat(n), *V = mat(n), *s = calloc((size_t)n, sizeof(double));
    cr_assert_eq(rj_svd(n, A, U, s, V), RFJIT_OK, "%s n=%d", what, n);
    cr_assert_leq(orth_err(n, U), 1e-12, "%s n=%d: U^T U - I = %g", what, n, orth_err(n, U));
    cr_assert_leq(orth_err(n, V), 1e-12, "%s n=%d: V^T V - I = %g", what, n, orth_err(n, V));
    for (int i = 0; i < n; i++) {
        cr_assert_geq(s[i], 0, "%s n=%d: s_%d = %g", what, n, i, s[i]);
        if (i)
            cr_assert_leq(s[i], s[i - 1], "%s n=%d: not descending at %d", what, n, i);
    }
    const double norm = fmax(frob(n, A), 1e-300), e = recon_err(n, U, s, V, A);
    cr_assert_leq(e, 1e-12 * norm, "%s n=%d: |U S V^T - A| = %g", what, n, e);
    if (s_out)
        memcpy(s_out, s, sizeof(double) * n);
    free(U);
    free(V);
    free(s);
}

Test(linalg, svd_reconstructs)
{
    for (size_t t = 0; t < sizeof sizes / sizeof *sizes; t++) {
        const int n = sizes[t];
        double *A = mat(n), *s = calloc((size_t)n, sizeof(double));
        gaussian(n, 7, A);
        check_svd(n, A, NULL, "gaussian");
        if (n >= 2) { /* rank deficient: the last row copies the first */
            for (int j = 0; j < n; j++)
                A[(n - 1) * n + j] = A[j];
            check_svd(n, A, s, "rank deficient");
            cr_assert_leq(s[n - 1], 1e-14 * s[0], "n=%d: s_min = %g", n, s[n - 1]);
        }
        if (n >= 3) { /* rank 1 */
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    A[i * n + j] = (i + 1.0) * (j - 0.5);
            check_svd(n, A, s, "rank 1");
            cr_assert_leq(s[1], 1e-14 * s[0], "n=%d: s_1 = %g", n, s[1]);
        }
        memset(A, 0, sizeof(double) * n * n);
        check_svd(n, A, s, "zero");
        for (int i = 0; i < n; i++)
            cr_assert_eq(s[i], 0);
        free(A);
        free(s);
    }
}

Test(linalg, svd_known_values)
{
    /* diagonal with repeated values, zeros and a negative entry: s = (3, 2, 2, 0, 0) */
    enum { N = 5 };
    double D[N * N] = {0}, s[N];
    D[0 * N + 0] = 2, D[1 * N + 1] = 0, D[2 * N + 2] = -3, D[3 * N + 3] = 2, D[4 * N + 4] = 0;
    check_svd(N, D, s, "diagonal");
    const double want[N] = {3, 2, 2, 0, 0};
    for (int i = 0; i < N; i++)
        cr_assert_eq(s[i], want[i], "s_%d = %.17g", i, s[i]);
    /* Graded: A = Q diag(1, 1e-5, ..., 1e-25) (columns of an orthogonal Q scaled), so s is
     * that diagonal. One-sided Jacobi gets every s_j to relative accuracy; eigh of A^T A
     * would lose everything below sqrt(eps) ~ 1e-8. */
    enum { M = 6 };
    double G[M * M], Q[M * M], rd[M], A[M * M], sg[M];
    gaussian(M, 15, G);
    cr_assert_eq(rj_qr(M, G, Q, rd), RFJIT_OK);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            A[i * M + j] = Q[i * M + j] * pow(10, -5.0 * j);
    check_svd(M, A, sg, "graded");
    for (int j = 0; j < M; j++)
        cr_assert_leq(fabs(sg[j] / pow(10, -5.0 * j) - 1), 1e-12, "s_%d = %.17g", j, sg[j]);
}

Test(linalg, svd_scale_nonfinite_and_determinism)
{
    enum { N = 9 };
    double A[N * N], B[N * N], U[N * N], V[N * N], s[N], U2[N * N], V2[N * N], s2[N];
    gaussian(N, 16, A);
    cr_assert_eq(rj_svd(N, A, U, s, V), RFJIT_OK);
    cr_assert_eq(rj_svd(N, A, U2, s2, V2), RFJIT_OK);
    cr_assert(!memcmp(U, U2, sizeof U) && !memcmp(s, s2, sizeof s) && !memcmp(V, V2, sizeof V));
    const double scales[2] = {0x1.0p1000, 0x1.0p-1000};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N * N; i++)
            B[i] = A[i] * scales[k];
        cr_assert_eq(rj_svd(N, B, U2, s2, V2), RFJIT_OK, "scale %g", scales[k]);
        cr_assert_eq(memcmp(U, U2, sizeof U), 0, "scale %g", scales[k]);
        for (int i = 0; i < N; i++)
            cr_assert_eq(s2[i], s[i] * scales[k], "scale %g: s_%d", scales[k], i);
    }
    B[3] = NAN;
    cr_assert_eq(rj_svd(N, B, U2, s2, V2), RFJIT_E_FIT);
    B[3] = -INFINITY;
    cr_assert_eq(rj_svd(N, B, U2, s2, V2), RFJIT_E_FIT);
}
