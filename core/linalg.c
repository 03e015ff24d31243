/* SPDX-License-Identifier: MIT */
/*
 * This file implements core/linalg.h with textbook algorithms chosen for accuracy and a fixed
 * operation order rather than peak speed (n <= 512, run once per plan or per (batch, head)):
 *
 *   rj_qr    Householder: H_k = I - beta_k v_k v_k^T maps column k of R below the diagonal to
 *            alpha_k e_k, alpha_k = -sign(x_0) |x| (no cancellation in v = x - alpha e_k), the
 *            LAPACK sign convention; Q = H_0 H_1 ... H_(n-2).
 *   rj_eigh  cyclic Jacobi (Rutishauser's rotation formulas), stopping when the off-diagonal
 *            Frobenius norm is below 2^-52 ||A||_F; eigenvalues to about eps ||A||, V orthogonal
 *            to rounding.
 *   rj_svd   one-sided (Hestenes) Jacobi: rotate column pairs of A until every pair satisfies
 *            |a_p . a_q| <= tol |a_p| |a_q|; then s_j = |a_j|, u_j = a_j / s_j. Unlike eigh of
 *            A^T A it never squares the condition number: small singular values of A = B D
 *            (well-conditioned B, any column scaling D) come out to relative accuracy.
 *
 * Every routine first scales A by a power of two so that max |a_ij| is in [1, 2): exact, so
 * the bits are the same as unscaled whenever nothing over- or underflows, and squared norms
 * cannot overflow. Matrices are worked on row-wise (rows of the transposes where the
 * algorithm is column-wise) so every inner loop is contiguous.
 */
#include "core/linalg.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define EPS DBL_EPSILON /* 2^-52 */
#define MAX_SWEEPS 100  /* Jacobi converges quadratically: ~10 sweeps at n = 512 */

/* Exponent e with max |a| 2^-e in [1, 2) (0 for a zero matrix); false if any a is not finite. */
static bool scale_exponent(size_t count, const double *a, int *e)
{
    double amax = 0;
    for (size_t i = 0; i < count; i++) {
        const double v = fabs(a[i]);
        if (!(v <= DBL_MAX))
            return false;
        if (v > amax)
            amax = v;
    }
    *e = 0;
    if (amax > 0) {
        frexp(amax, e); /* amax = f 2^e, f in [1/2, 1) */
        *e -= 1;
    }
    return true;
}

/* Rotation tangent t, the root of t^2 + 2 zeta t - 1 = 0 of smaller magnitude (angle <= pi/4),
 * t = sign(zeta) / (|zeta| + sqrt(1 + zeta^2)); for huge zeta 1 / (2 zeta) (zeta^2 would
 * overflow, and the two agree there). */
static double rotation_tangent(double zeta)
{
    const double az = fabs(zeta);
    const double t = az > 0x1.0p500 ? 0.5 / az : 1.0 / (az + sqrt(1.0 + az * az));
    return zeta < 0 ? -t : t;
}

rfjit_status rj_qr(int n, const double *A, double *Q, double *rdiag)
{
    const size_t nn = (size_t)n * (size_t)n, un = (size_t)n;
    double *R = rj_alloc_array(nn, sizeof(double));
    double *V = rj_alloc_array(nn, sizeof(double)); /* v_k in row k, entries k .. n-1 */
    double *beta = rj_alloc_array(un, sizeof(double));
    double *w = rj_alloc_array(un, sizeof(double));
    if (!R || !V || !beta || !w) {
        rj_free(R);
        rj_free(V);
        rj_free(beta);
        rj_free(w);
        return RFJIT_E_NOMEM;
    }
    int e = 0;
    if (!scale_exponent(nn, A, &e))
        e = 0; /* non-finite input: no scaling; NaN propagates to the outputs */
    for (size_t i = 0; i < nn; i++)
        R[i] = ldexp(A[i], -e);

    for (int k = 0; k < n - 1; k++) {
        double *v = V + (size_t)k * un;
        double norm2 = 0;
        for (int i = k; i < n; i++)
            norm2 += R[(size_t)i * un + k] * R[(size_t)i * un + k];
        if (norm2 == 0) { /* column already zero: H_k = I */
            beta[k] = 0;
            rdiag[k] = 0;
            continue;
        }
        const double x0 = R[(size_t)k * un + k];
        const double alpha = x0 >= 0 ? -sqrt(norm2) : sqrt(norm2);
        double vnorm2 = 0;
        for (int i = k; i < n; i++) {
            v[i] = i == k ? x0 - alpha : R[(size_t)i * un + k];
            vnorm2 += v[i] * v[i];
        }
        beta[k] = 2.0 / vnorm2; /* vnorm2 >= norm2 > 0: |x0 - alpha| >= |alpha| */
        /* R <- H_k R on columns k+1 .. n-1: w_j = sum_i v_i R_ij, R_ij -= beta w_j v_i */
        for (int j = k + 1; j < n; j++)
            w[j] = 0;
        for (int i = k; i < n; i++) {
            const double *ri = R + (size_t)i * un;
            for (int j = k + 1; j < n; j++)
                w[j] += v[i] * ri[j];
        }
        for (int i = k; i < n; i++) {
            double *ri = R + (size_t)i * un;
            for (int j = k + 1; j < n; j++)
                ri[j] -= beta[k] * w[j] * v[i];
        }
        rdiag[k] = alpha;
        for (int i = k; i < n; i++) /* column k is now alpha e_k exactly */
            R[(size_t)i * un + k] = i == k ? alpha : 0;
    }
    if (n > 0)
        rdiag[n - 1] = R[nn - 1];
    for (int k = 0; k < n; k++)
        rdiag[k] = ldexp(rdiag[k], e);

    /* Q = H_0 (H_1 (... (H_(n-2) I))): before H_k is applied, rows and columns < k+1 are still
     * the identity's, so H_k touches rows and columns k .. n-1 only. */
    memset(Q, 0, nn * sizeof(double));
    for (int i = 0; i < n; i++)
        Q[(size_t)i * un + i] = 1;
    for (int k = n - 2; k >= 0; k--) {
        if (beta[k] == 0)
            continue;
        const double *v = V + (size_t)k * un;
        for (int j = k; j < n; j++)
            w[j] = 0;
        for (int i = k; i < n; i++) {
            const double *qi = Q + (size_t)i * un;
            for (int j = k; j < n; j++)
                w[j] += v[i] * qi[j];
        }
        for (int i = k; i < n; i++) {
            double *qi = Q + (size_t)i * un;
            for (int j = k; j < n; j++)
                qi[j] -= beta[k] * w[j] * v[i];
        }
    }
    rj_free(R);
    rj_free(V);
    rj_free(beta);
    rj_free(w);
    return RFJIT_OK;
}

static void swap_rows(double *M, size_t n, size_t a, size_t b)
{
    for (size_t k = 0; k < n; k++) {
        const double t = M[a * n + k];
        M[a * n + k] = M[b * n + k];
        M[b * n + k] = t;
    }
}

/* Selection sort of val ascending (dir = 1) or descending (dir = -1), permuting the rows of
 * M1 and M2 (NULL: none) alike; the first extreme wins ties, so the order is deterministic. */
static void sort_rows(int n, double *val, double *M1, double *M2, int dir)
{
    for (int a = 0; a < n; a++) {
        int best = a;
        for (int b = a + 1; b < n; b++)
            if (dir * val[b] < dir * val[best])
                best = b;
        if (best == a)
            continue;
        const double t = val[a];
        val[a] = val[best];
        val[best] = t;
        swap_rows(M1, (size_t)n, (size_t)a, (size_t)best);
        if (M2)
            swap_rows(M2, (size_t)n, (size_t)a, (size_t)best);
    }
}

static void transpose(int n, const double *in, double *out)
{
    for (size_t i = 0; i < (size_t)n; i++)
        for (size_t j = 0; j < (size_t)n; j++)
            out[j * (size_t)n + i] = in[i * (size_t)n + j];
}

rfjit_status rj_eigh(int n, const double *A, double *lam, double *V)
{
    const size_t nn = (size_t)n * (size_t)n, un = (size_t)n;
    int e;
    if (!scale_exponent(nn, A, &e))
        return RFJIT_E_FIT;
    double *S = rj_alloc_array(nn, sizeof(double));
    double *Vt = rj_alloc_array(nn, sizeof(double)); /* row j = eigenvector j */
    if (!S || !Vt) {
        rj_free(S);
        rj_free(Vt);
        return RFJIT_E_NOMEM;
    }
    double frob2 = 0;
    for (size_t i = 0; i < un; i++)
        for (size_t j = 0; j < un; j++) {
            const double s = 0.5 * (ldexp(A[i * un + j], -e) + ldexp(A[j * un + i], -e));
            S[i * un + j] = s;
            frob2 += s * s;
        }
    memset(Vt, 0, nn * sizeof(double));
    for (size_t i = 0; i < un; i++)
        Vt[i * un + i] = 1;

    /* Rotations only move weight from off-diagonal to diagonal (||S||_F is invariant), and the
     * zeroed entry is set to 0 exactly, so off(S) keeps shrinking instead of stalling at
     * rounding level. */
    const double tol2 = EPS * EPS * frob2;
    /* Entries below eps ||A||_F / n are left alone: if all were, off(S)^2 < tol2 / 2 already,
     * so skipping them never blocks convergence and saves most of the last sweeps' work. */
    const double skip = EPS * sqrt(frob2) / (double)(n > 1 ? n : 1);
    bool converged = false;
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
        double off2 = 0;
        for (size_t p = 0; p < un; p++)
            for (size_t q = p + 1; q < un; q++)
                off2 += S[p * un + q] * S[p * un + q];
        if (off2 <= tol2) {
            converged = true;
            break;
        }
        for (size_t p = 0; p < un; p++)
            for (size_t q = p + 1; q < un; q++) {
                const double apq = S[p * un + q];
                if (fabs(apq) <= skip)
                    continue;
                /* J^T S J zeroes S_pq: theta = (S_qq - S_pp) / (2 S_pq), t = tan of the angle,
                 * S_pp -= t S_pq, S_qq += t S_pq, and for k != p, q (tau = s / (1 + c)):
                 * S_kp = g - s (h + tau g), S_kq = h + s (g - tau h), g = S_kp, h = S_kq. */
                const double t = rotation_tangent((S[q * un + q] - S[p * un + p]) / (2 * apq));
                const double c = 1 / sqrt(1 + t * t), s = t * c, tau = s / (1 + c);
                double *sp = S + p * un, *sq = S + q * un;
                for (size_t k = 0; k < un; k++) {
                    if (k == p || k == q)
                        continue;
                    const double g = sp[k], h = sq[k];
                    sp[k] = g - s * (h + tau * g);
                    sq[k] = h + s * (g - tau * h);
                    S[k * un + p] = sp[k];
                    S[k * un + q] = sq[k];
                }
                sp[p] -= t * apq;
                sq[q] += t * apq;
                sp[q] = sq[p] = 0;
                double *vp = Vt + p * un, *vq = Vt + q * un; /* V <- V J, on rows of V^T */
                for (size_t k = 0; k < un; k++) {
                    const double g = vp[k], h = vq[k];
                    vp[k] = g - s * (h + tau * g);
                    vq[k] = h + s * (g - tau * h);
                }
            }
    }
    if (converged) {
        for (size_t i = 0; i < un; i++)
            lam[i] = S[i * un + i];
        sort_rows(n, lam, Vt, NULL, 1);
        for (size_t i = 0; i < un; i++)
            lam[i] = ldexp(lam[i], e);
        transpose(n, Vt, V);
    }
    rj_free(S);
    rj_free(Vt);
    return converged ? RFJIT_OK : RFJIT_E_FIT;
}

/* |x| for x of length n without under- or overflow in the squares. */
static double norm2_scaled(size_t n, const double *x)
{
    double amax = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > amax)
            amax = fabs(x[i]);
    if (amax == 0)
        return 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        const double y = x[i] / amax;
        s += y * y;
    }
    return amax * sqrt(s);
}

rfjit_status rj_svd(int n, const double *A, double *U, double *s, double *V)
{
    const size_t nn = (size_t)n * (size_t)n, un = (size_t)n;
    int e;
    if (!scale_exponent(nn, A, &e))
        return RFJIT_E_FIT;
    double *X = rj_alloc_array(nn, sizeof(double));  /* row j = column j of A, rotated */
    double *Vt = rj_alloc_array(nn, sizeof(double)); /* row j = column j of V */
    if (!X || !Vt) {
        rj_free(X);
        rj_free(Vt);
        return RFJIT_E_NOMEM;
    }
    for (size_t i = 0; i < un; i++)
        for (size_t j = 0; j < un; j++)
            X[j * un + i] = ldexp(A[i * un + j], -e);
    memset(Vt, 0, nn * sizeof(double));
    for (size_t i = 0; i < un; i++)
        Vt[i * un + i] = 1;

    /* A pair counts as orthogonal when |gamma| <= tol sqrt(alpha beta), which makes U
     * orthogonal to about tol. The computed gamma of two exactly orthogonal columns carries
     * rounding of at most ~sqrt(n) eps |a_p| |a_q| (typically far less), so tol must sit above
     * that or the sweeps never end: tol = 4 sqrt(max(n, 4)) eps, LAPACK dgesvj's sqrt(n) eps
     * with a margin (measured: U^T U - I ~ 4e-15 at n = 64, 1e-14 at n = 512).
     * Rank deficiency: a column that is numerically in the span of the others (|a_j| ~ eps ||A||
     * from cancellation) can never pass that test; each sweep only shrinks it by another factor
     * ~eps. Columns below nu = eps^2 ||A||_F are therefore zero: skipped here, s_j = 0 below.
     * Genuine small singular values of graded matrices (columns independent of the others)
     * keep their size from sweep to sweep and stay exact down to nu, about 5e-32 ||A||_F. */
    const double tol = 4.0 * sqrt(n > 4 ? (double)n : 4.0) * EPS;
    double frob2 = 0;
    for (size_t i = 0; i < nn; i++)
        frob2 += X[i] * X[i];
    const double nu2 = EPS * EPS * EPS * EPS * frob2; /* frob2 >= 1 after scaling: no underflow */
    bool converged = false;
    for (int sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
        converged = true;
        for (size_t p = 0; p < un; p++)
            for (size_t q = p + 1; q < un; q++) {
                double *xp = X + p * un, *xq = X + q * un;
                double alpha = 0, beta = 0, gamma = 0;
                for (size_t i = 0; i < un; i++) {
                    alpha += xp[i] * xp[i];
                    beta += xq[i] * xq[i];
                    gamma += xp[i] * xq[i];
                }
                if (alpha <= nu2 || beta <= nu2 || fabs(gamma) <= tol * sqrt(alpha) * sqrt(beta))
                    continue;
                converged = false;
                /* [x_p x_q] <- [x_p x_q] [[c, s], [-s, c]] zeroes the inner product when
                 * t = tan satisfies t^2 + 2 zeta t - 1 = 0, zeta = (beta - alpha) / (2 gamma). */
                const double t = rotation_tangent((beta - alpha) / (2 * gamma));
                const double c = 1 / sqrt(1 + t * t), sn = c * t;
                for (size_t i = 0; i < un; i++) {
                    const double a = xp[i], b = xq[i];
                    xp[i] = c * a - sn * b;
                    xq[i] = sn * a + c * b;
                }
                double *vp = Vt + p * un, *vq = Vt + q * un;
                for (size_t i = 0; i < un; i++) {
                    const double a = vp[i], b = vq[i];
                    vp[i] = c * a - sn * b;
                    vq[i] = sn * a + c * b;
                }
            }
    }
    if (!converged) {
        rj_free(X);
        rj_free(Vt);
        return RFJIT_E_FIT;
    }

    /* Dropping the columns below nu costs at most sqrt(n) nu in A = U S V^T. */
    const double nu = sqrt(nu2);
    for (size_t j = 0; j < un; j++) {
        double *xj = X + j * un;
        s[j] = norm2_scaled(un, xj);
        if (s[j] <= nu)
            s[j] = 0;
        for (size_t i = 0; i < un; i++)
            xj[i] = s[j] > 0 ? xj[i] / s[j] : 0;
    }
    sort_rows(n, s, X, Vt, -1);
    int rank = 0;
    while (rank < n && s[rank] > 0)
        rank++;
    rfjit_status st = RFJIT_OK;
    if (rank < n) {
        /* Columns with s_j = 0 carry no direction: complete U's first `rank` columns to an
         * orthonormal basis with the trailing columns of the Householder Q of [U_r | 0], which
         * are orthogonal to span(U_r) = span(Q's first rank columns). */
        double *B = rj_alloc_array(nn, sizeof(double));
        double *Qc = rj_alloc_array(nn, sizeof(double));
        double *rd = rj_alloc_array(un, sizeof(double));
        if (!B || !Qc || !rd)
            st = RFJIT_E_NOMEM;
        if (st == RFJIT_OK) {
            transpose(n, X, B); /* zero rows of X (s_j = 0) become zero columns */
            st = rj_qr(n, B, Qc, rd);
        }
        if (st == RFJIT_OK)
            for (size_t j = (size_t)rank; j < un; j++)
                for (size_t i = 0; i < un; i++)
                    X[j * un + i] = Qc[i * un + j];
        rj_free(B);
        rj_free(Qc);
        rj_free(rd);
    }
    if (st == RFJIT_OK) {
        for (size_t j = 0; j < un; j++)
            s[j] = ldexp(s[j], e);
        transpose(n, X, U);
        transpose(n, Vt, V);
    }
    rj_free(X);
    rj_free(Vt);
    return st;
}
