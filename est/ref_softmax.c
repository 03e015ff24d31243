/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference exact softmax attention for one (batch, head), in double: the
 * oracle every estimator is measured against (through the `exact` estimator) and the exact
 * template's fallback. Quadratic in the length; not meant to be fast.
 *
 *     s_ij = x_i . y_j   (= scale q_i . k_j: x, y are already scaled by sqrt(scale))
 *     out_i = sum_{j in J(i)} e^{s_ij - mu_i} v_j / sum_{j in J(i)} e^{s_ij - mu_i}
 *     mu_i = max_{j in J(i)} s_ij,   J(i) = j < nvis[i]; without nvis, all keys, or j <= i
 *                                   when causal (Lq == Lk)
 *
 * The row max mu_i makes the largest weight exactly 1, so the denominator is >= 1 and the
 * output is finite for any finite input. A query with no key (J(i) empty) gets a zero row, as
 * in rj_ref_linear.
 */
#include "est/ref.h"

#include <math.h>

rfjit_status rj_ref_softmax(const rj_spec *s, const double *x, int64_t lq, const double *y,
                            const double *v, int64_t lk, const int64_t *nvis, double *out,
                            rj_diag *dg)
{
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    const int d = s->d, dv = s->dv;
    double *logit = rj_alloc_array(lk > 0 ? (size_t)lk : 1, sizeof(double));
    RJ_FAIL_IF(dg, !logit, RFJIT_E_NOMEM, "no memory for %lld logits", (long long)lk);
    for (int64_t i = 0; i < lq; i++) {
        const int64_t nk = nvis ? nvis[i] : s->causal ? i + 1 : lk;
        const double *xi = x + i * d;
        double mu = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            double sij = 0;
            for (int a = 0; a < d; a++)
                sij += xi[a] * y[j * d + a];
            logit[j] = sij;
            if (sij > mu)
                mu = sij;
        }
        double *o = out + i * dv, Z = 0;
        for (int a = 0; a < dv; a++)
            o[a] = 0;
        for (int64_t j = 0; j < nk; j++) {
            const double w = exp(logit[j] - mu);
            Z += w;
            for (int a = 0; a < dv; a++)
                o[a] += w * v[j * dv + a];
        }
        if (nk > 0)
            for (int a = 0; a < dv; a++)
                o[a] /= Z;
    }
    rj_free(logit);
    return RFJIT_OK;
}
