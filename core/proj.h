/* SPDX-License-Identifier: MIT */
/*
 * This file draws the random projection matrix W (m x d, row-major, double) shared by queries
 * and keys: i.i.d. N(0, 1), or block-orthogonal (spec estimators.md 1.3): each block of d rows
 * is Q^T from a Householder QR of a Gaussian d x d block, with column j of Q multiplied by
 * sign(R_jj) (Haar sign fix, required for unbiasedness: check C2) and each row scaled by an
 * independent chi_d norm. A final partial block takes the first m mod d rows of another block.
 */
#ifndef RJ_PROJ_H
#define RJ_PROJ_H

#include "core/base.h"

/* kind: RFJIT_PROJ_IID or RFJIT_PROJ_ORTHOGONAL. W: caller-owned m * d doubles.
 * Errors: RFJIT_E_INVALID_ARG (kind, m < 1, d < 1), RFJIT_E_NOMEM. */
rfjit_status rj_proj_draw(int kind, uint64_t seed, int m, int d, double *W, rj_diag *dg);

#endif
