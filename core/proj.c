/* SPDX-License-Identifier: MIT */
/*
 * This file implements core/proj.h, the projection matrix W (m x d) shared by queries and keys.
 *
 *   iid:        W[r] = row r of stream RJ_STREAM_PROJ (d normals)
 *   orthogonal: block b = rows b d .. b d + d - 1 of W (spec estimators.md 1.3):
 *                 G = rows b d .. b d + d - 1 of RJ_STREAM_PROJ, G = Q R (Householder, rj_qr),
 *                 W[b d + i] = |g_(b d + i)| sign(R_ii) Q[:, i],  g_r = row r of RJ_STREAM_NORMS
 *
 * Why the sign fix: Householder QR returns Q with a fixed sign convention, so Q is not Haar
 * distributed; Q diag(sign(R_ii)) is the QR factor with a positive diagonal R, which is unique
 * and, for Gaussian G, Haar. Each row is then a uniform direction times an independent chi_d
 * length, i.e. marginally N(0, I_d), which the exp/trig estimators' unbiasedness needs (spec
 * check C2: without the fix the PRF estimate at d = 8, |x + y| = 0.5 is 5 % low).
 * A partial last block (m mod d rows) takes the first rows of a full block's draw, so W for m
 * rows is a prefix of W for any larger m with the same seed and d.
 */
#include "core/proj.h"

#include "core/linalg.h"
#include "core/philox.h"

static rfjit_status orthogonal(uint64_t seed, int m, int d, double *W, rj_diag *dg)
{
    const size_t dd = (size_t)d * (size_t)d;
    double *G = rj_alloc_array(dd, sizeof(double));
    double *Q = rj_alloc_array(dd, sizeof(double));
    double *rdiag = rj_alloc_array((size_t)d, sizeof(double));
    double *g = rj_alloc_array((size_t)d, sizeof(double));
    rfjit_status s = RFJIT_OK;
    if (!G || !Q || !rdiag || !g)
        s = rj_fail(dg, RFJIT_E_NOMEM, "no memory for a %d x %d orthogonal projection block", d,
                    d);
    /* b0 = b d is the block's first row; rows b0 + i < m + d <= 2 INT_MAX fit the 32-bit row
     * word of the Philox counter. */
    for (int64_t b0 = 0; s == RFJIT_OK && b0 < m; b0 += d) {
        for (int i = 0; i < d; i++)
            rj_normals(seed, RJ_STREAM_PROJ, (uint32_t)(b0 + i), G + (size_t)i * (size_t)d,
                       (size_t)d);
        s = rj_qr(d, G, Q, rdiag);
        if (s != RFJIT_OK) {
            s = rj_fail(dg, s, "QR of a %d x %d projection block failed", d, d);
            break;
        }
        for (int i = 0; i < d && b0 + i < m; i++) {
            const int64_t r = b0 + i;
            rj_normals(seed, RJ_STREAM_NORMS, (uint32_t)r, g, (size_t)d);
            double norm2 = 0;
            for (int j = 0; j < d; j++)
                norm2 += g[j] * g[j];
            const double scale = __builtin_sqrt(norm2) * (rdiag[i] < 0 ? -1.0 : 1.0);
            double *w = W + (size_t)r * (size_t)d;
            for (int j = 0; j < d; j++)
                w[j] = scale * Q[(size_t)j * (size_t)d + (size_t)i];
        }
    }
    rj_free(G);
    rj_free(Q);
    rj_free(rdiag);
    rj_free(g);
    return s;
}

rfjit_status rj_proj_draw(int kind, uint64_t seed, int m, int d, double *W, rj_diag *dg)
{
    RJ_FAIL_IF(dg, m < 1 || d < 1, RFJIT_E_INVALID_ARG,
               "projection needs m, d >= 1 (got m = %d, d = %d)", m, d);
    RJ_FAIL_IF(dg, !W, RFJIT_E_INVALID_ARG, "projection output W is NULL");
    if (kind == RFJIT_PROJ_IID) {
        for (int r = 0; r < m; r++)
            rj_normals(seed, RJ_STREAM_PROJ, (uint32_t)r, W + (size_t)r * (size_t)d, (size_t)d);
        return RFJIT_OK;
    }
    RJ_FAIL_IF(dg, kind != RFJIT_PROJ_ORTHOGONAL, RFJIT_E_INVALID_ARG,
               "projection kind %d cannot be drawn (only iid %d and orthogonal %d)", kind,
               RFJIT_PROJ_IID, RFJIT_PROJ_ORTHOGONAL);
    return orthogonal(seed, m, d, W, dg);
}
