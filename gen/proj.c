/* SPDX-License-Identifier: MIT */
/*
 * This file implements gen/proj.h. Orthogonal blocks follow spec estimators.md 1.3 with the
 * Haar sign fix: Householder QR returns Q with a fixed sign convention (not Haar distributed);
 * multiplying column j by sign(R_jj) makes Q Haar, so each row of W is marginally N(0, I_d)
 * after the chi_d norm, and the exp/trig estimators stay unbiased (check C2).
 */
#include "proj.h"

#include "linalg.h"
#include "philox.h"

static rfjit_status orthogonal(uint64_t seed, int m, int d, double *W, rj_diag *dg)
{
    double *G = rj_alloc_array((size_t)d * (size_t)d, sizeof(double));
    double *Q = rj_alloc_array((size_t)d * (size_t)d, sizeof(double));
    double *rdiag = rj_alloc_array((size_t)d, sizeof(double));
    double *g = rj_alloc_array((size_t)d, sizeof(double));
    rfjit_status s = (G && Q && rdiag && g) ? RFJIT_OK
                                            : rj_fail(dg, RFJIT_E_NOMEM, "no memory for QR");
    for (int b = 0; s == RFJIT_OK && b * d < m; b++) {
        for (int i = 0; i < d; i++)
            rj_normals(seed, RJ_STREAM_PROJ, (uint32_t)(b * d + i), G + (size_t)i * d,
                       (size_t)d);
        s = rj_qr(d, G, Q, rdiag);
        for (int i = 0; s == RFJIT_OK && i < d && b * d + i < m; i++) {
            const int r = b * d + i;
            rj_normals(seed, RJ_STREAM_NORMS, (uint32_t)r, g, (size_t)d);
            double norm2 = 0;
            for (int j = 0; j < d; j++)
                norm2 += g[j] * g[j];
            const double scale = __builtin_sqrt(norm2) * (rdiag[i] < 0 ? -1.0 : 1.0);
            for (int j = 0; j < d; j++) /* row r = column i of Q, sign-fixed, chi_d norm */
                W[(size_t)r * d + j] = scale * Q[(size_t)j * d + i];
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
    RJ_FAIL_IF(dg, m < 1 || d < 1, RFJIT_E_INVALID_ARG, "projection needs m, d >= 1 (got %d, %d)",
               m, d);
    if (kind == RFJIT_PROJ_IID) {
        for (int r = 0; r < m; r++)
            rj_normals(seed, RJ_STREAM_PROJ, (uint32_t)r, W + (size_t)r * d, (size_t)d);
        return RFJIT_OK;
    }
    RJ_FAIL_IF(dg, kind != RFJIT_PROJ_ORTHOGONAL, RFJIT_E_INVALID_ARG,
               "projection kind %d cannot be drawn", kind);
    return orthogonal(seed, m, d, W, dg);
}
