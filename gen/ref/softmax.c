/* SPDX-License-Identifier: MIT */
/*
 * This file is the reference exact softmax attention for one (batch, head), in double:
 * out_i = sum_j e^{s_ij - max_j s_ij} v_j / sum_j e^{s_ij - max_j s_ij}, s_ij = x_i . y_j
 * (x, y already scaled by d^{-1/4}, so s_ij = q_i . k_j / sqrt(d)); causal uses j <= i.
 */
#include "ref.h"

#include <math.h>

rfjit_status rj_ref_softmax(const rj_spec *s, const double *x, int64_t lq, const double *y,
                            const double *v, int64_t lk, double *out, rj_diag *dg)
{
    RJ_FAIL_IF(dg, s->causal && lq != lk, RFJIT_E_SHAPE,
               "causal attention needs lq == lk (%lld vs %lld)", (long long)lq, (long long)lk);
    double *logit = rj_alloc_array((size_t)lk, sizeof(double));
    RJ_FAIL_IF(dg, !logit, RFJIT_E_NOMEM, "no memory for %lld logits", (long long)lk);
    for (int64_t i = 0; i < lq; i++) {
        const int64_t nk = s->causal ? i + 1 : lk;
        double mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            double dot = 0;
            for (int c = 0; c < s->d; c++)
                dot += x[i * s->d + c] * y[j * s->d + c];
            logit[j] = dot;
            if (dot > mx)
                mx = dot;
        }
        double *o = out + i * s->dv, Z = 0;
        for (int c = 0; c < s->dv; c++)
            o[c] = 0;
        for (int64_t j = 0; j < nk; j++) {
            const double w = exp(logit[j] - mx);
            Z += w;
            for (int c = 0; c < s->dv; c++)
                o[c] += w * v[j * s->dv + c];
        }
        for (int c = 0; c < s->dv; c++)
            o[c] /= Z;
    }
    rj_free(logit);
    return RFJIT_OK;
}
