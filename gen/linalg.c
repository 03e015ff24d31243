/* SPDX-License-Identifier: MIT */
/*
 * This file implements gen/linalg.h with textbook algorithms chosen for accuracy and a fixed
 * operation order rather than speed (n <= a few hundred, once per plan or per (batch, head)):
 * Householder QR, cyclic Jacobi for symmetric eigenproblems (relative accuracy, orthogonal V
 * to rounding) and one-sided (Hestenes) Jacobi for the SVD.
 */
#include "linalg.h"

#include <math.h>
#include <string.h>

#define MAX_SWEEPS 60

rfjit_status rj_qr(int n, const double *A, double *Q, double *rdiag)
{
    const size_t nn = (size_t)n * (size_t)n;
    double *R = rj_alloc_array(nn, sizeof(double));
    double *V = rj_alloc_array_zero(nn, sizeof(double)); /* reflector k in row k */
    if (!R || !V) {
        rj_free(R);
        rj_free(V);
        return RFJIT_E_NOMEM;
    }
    memcpy(R, A, nn * sizeof(double));
    for (int k = 0; k < n - 1; k++) {
        double norm2 = 0;
        for (int i = k; i < n; i++)
            norm2 += R[i * n + k] * R[i * n + k];
        if (norm2 == 0)
            continue;
        /* H = I - 2 v v^T maps R[k:, k] to alpha e_1, alpha = -sign(x0)|x| (no cancellation) */
        const double x0 = R[k * n + k], alpha = x0 >= 0 ? -sqrt(norm2) : sqrt(norm2);
        double *v = V + (size_t)k * n;
        double vnorm2 = 0;
        for (int i = k; i < n; i++) {
            v[i] = R[i * n + k] - (i == k ? alpha : 0);
            vnorm2 += v[i] * v[i];
        }
        const double inv = 1.0 / sqrt(vnorm2);
        for (int i = k; i < n; i++)
            v[i] *= inv;
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int i = k; i < n; i++)
                dot += v[i] * R[i * n + j];
            for (int i = k; i < n; i++)
                R[i * n + j] -= 2 * v[i] * dot;
        }
    }
    for (int k = 0; k < n; k++)
        rdiag[k] = R[k * n + k];
    /* Q = H_0 H_1 ... H_{n-2} I, applied right to left. */
    memset(Q, 0, nn * sizeof(double));
    for (int i = 0; i < n; i++)
        Q[i * n + i] = 1;
    for (int k = n - 2; k >= 0; k--) {
        const double *v = V + (size_t)k * n;
        double any = 0;
        for (int i = k; i < n; i++)
            any += fabs(v[i]);
        if (any == 0)
            continue;
        for (int j = 0; j < n; j++) {
            double dot = 0;
            for (int i = k; i < n; i++)
                dot += v[i] * Q[i * n + j];
            for (int i = k; i < n; i++)
                Q[i * n + j] -= 2 * v[i] * dot;
        }
    }
    rj_free(R);
    rj_free(V);
    return RFJIT_OK;
}

/* Selection sort of (value, column) pairs: ascending (dir = 1) or descending (dir = -1). */
static void sort_columns(int n, double *val, double *M1, double *M2, int dir)
{
    for (int a = 0; a < n; a++) {
        int best = a;
        for (int b = a + 1; b < n; b++)
            if (dir * val[b] < dir * val[best])
                best = b;
        if (best == a)
            continue;
        double t = val[a];
        val[a] = val[best];
        val[best] = t;
        for (int i = 0; i < n; i++) {
            double *mats[2] = {M1, M2};
            for (int k = 0; k < 2; k++)
                if (mats[k]) {
                    t = mats[k][i * n + a];
                    mats[k][i * n + a] = mats[k][i * n + best];
                    mats[k][i * n + best] = t;
                }
        }
    }
}

rfjit_status rj_eigh(int n, const double *A, double *lam, double *V)
{
    const size_t nn = (size_t)n * (size_t)n;
    double *S = rj_alloc_array(nn, sizeof(double));
    if (!S)
        return RFJIT_E_NOMEM;
    double frob = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            S[i * n + j] = 0.5 * (A[i * n + j] + A[j * n + i]);
            frob += S[i * n + j] * S[i * n + j];
        }
    memset(V, 0, nn * sizeof(double));
    for (int i = 0; i < n; i++)
        V[i * n + i] = 1;
    const double tol = 1e-30 * (frob > 0 ? frob : 1);
    int converged = 0;
    for (int sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
        double off = 0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++)
                off += S[p * n + q] * S[p * n + q];
        if (off <= tol) {
            converged = 1;
            break;
        }
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                const double apq = S[p * n + q];
                if (apq == 0)
                    continue;
                /* Rotation zeroing S[p][q] (Golub-Van Loan 8.5.2, the smaller angle). */
                const double theta = (S[q * n + q] - S[p * n + p]) / (2 * apq);
                const double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(1 + theta * theta));
                const double c = 1 / sqrt(1 + t * t), s = t * c;
                for (int k = 0; k < n; k++) { /* S <- S J (columns p, q) */
                    const double skp = S[k * n + p], skq = S[k * n + q];
                    S[k * n + p] = c * skp - s * skq;
                    S[k * n + q] = s * skp + c * skq;
                }
                for (int k = 0; k < n; k++) { /* S <- J^T S (rows p, q) */
                    const double spk = S[p * n + k], sqk = S[q * n + k];
                    S[p * n + k] = c * spk - s * sqk;
                    S[q * n + k] = s * spk + c * sqk;
                }
                for (int k = 0; k < n; k++) {
                    const double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++)
        lam[i] = S[i * n + i];
    rj_free(S);
    if (!converged)
        return RFJIT_E_FIT;
    sort_columns(n, lam, V, NULL, 1);
    return RFJIT_OK;
}

/* Fill zero columns of U (from zero singular values) with an orthonormal completion. */
static void complete_basis(int n, double *U, const double *s)
{
    for (int j = 0; j < n; j++) {
        if (s[j] > 0)
            continue;
        for (int e = 0; e < n; e++) {
            double col[512], norm2 = 0;
            double *c = n <= 512 ? col : NULL;
            if (!c)
                return;
            for (int i = 0; i < n; i++)
                c[i] = i == e ? 1 : 0;
            for (int k = 0; k < n; k++) { /* Gram-Schmidt twice against filled columns */
                if (k == j || (s[k] <= 0 && k > j))
                    continue;
                for (int pass = 0; pass < 2; pass++) {
                    double dot = 0;
                    for (int i = 0; i < n; i++)
                        dot += U[i * n + k] * c[i];
                    for (int i = 0; i < n; i++)
                        c[i] -= dot * U[i * n + k];
                }
            }
            for (int i = 0; i < n; i++)
                norm2 += c[i] * c[i];
            if (norm2 > 0.25) {
                for (int i = 0; i < n; i++)
                    U[i * n + j] = c[i] / sqrt(norm2);
                break;
            }
        }
    }
}

rfjit_status rj_svd(int n, const double *A, double *U, double *s, double *V)
{
    const size_t nn = (size_t)n * (size_t)n;
    memcpy(U, A, nn * sizeof(double));
    memset(V, 0, nn * sizeof(double));
    for (int i = 0; i < n; i++)
        V[i * n + i] = 1;
    double frob2 = 0;
    for (size_t i = 0; i < nn; i++)
        frob2 += A[i] * A[i];
    int converged = 0;
    for (int sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
        converged = 1;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double alpha = 0, beta = 0, gamma = 0;
                for (int i = 0; i < n; i++) {
                    alpha += U[i * n + p] * U[i * n + p];
                    beta += U[i * n + q] * U[i * n + q];
                    gamma += U[i * n + p] * U[i * n + q];
                }
                /* Columns already orthogonal to rounding, or one of them numerically zero
                 * (rank deficiency: its partner's rotation would never settle). */
                if (fabs(gamma) <= 1e-15 * sqrt(alpha * beta) || fabs(gamma) <= 1e-30 * frob2)
                    continue;
                converged = 0;
                const double zeta = (beta - alpha) / (2 * gamma);
                const double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1 + zeta * zeta));
                const double c = 1 / sqrt(1 + t * t), sn = c * t;
                for (int i = 0; i < n; i++) {
                    const double up = U[i * n + p], uq = U[i * n + q];
                    U[i * n + p] = c * up - sn * uq;
                    U[i * n + q] = sn * up + c * uq;
                    const double vp = V[i * n + p], vq = V[i * n + q];
                    V[i * n + p] = c * vp - sn * vq;
                    V[i * n + q] = sn * vp + c * vq;
                }
            }
    }
    if (!converged)
        return RFJIT_E_FIT;
    double smax = 0;
    for (int j = 0; j < n; j++) {
        double norm2 = 0;
        for (int i = 0; i < n; i++)
            norm2 += U[i * n + j] * U[i * n + j];
        s[j] = sqrt(norm2);
        if (s[j] > smax)
            smax = s[j];
    }
    for (int j = 0; j < n; j++) {
        if (s[j] <= 1e-300 || s[j] <= 1e-15 * smax * n) {
            s[j] = 0;
            for (int i = 0; i < n; i++)
                U[i * n + j] = 0;
            continue;
        }
        for (int i = 0; i < n; i++)
            U[i * n + j] /= s[j];
    }
    sort_columns(n, s, U, V, -1);
    complete_basis(n, U, s);
    return RFJIT_OK;
}
