/* SPDX-License-Identifier: MIT */
/*
 * This file is the official EVA (eva_variant "official"): the attention of the HKUNLP
 * efficient-attention code (efficient_attention/eva.py, bidirectional, and causal_eva.py,
 * causal; spec estimators.md 6.5) in eval mode, with the learned maps as identities (its
 * adaptive_mu_q/k and the q, k, v, output projections: q, k, v as given), no relative position
 * bias, no overlapping windows and no dropout. est/eva.c's attend runs it through these ops;
 * there the principled variant is described, and the README compares the two.
 *
 * Written for scaled rows x = sqrt(scale) q, y = sqrt(scale) k (scale = d^-1/2 by default, the
 * official code's only one), so that its d^-1/2 q.k is x.y and its beta weights
 * d^-1/2 (mu.k - |k|^2/2) are mu_x.y - |y|^2/2 with mu_x = sqrt(scale) mu. L = Lq = Lk (the
 * code is self-attention), w = eva_window >= 1, C = eva_chunks:
 *   padding   Np = ceil(L / w) w positions; positions >= L are zero rows, masked as keys
 *   chunks    size s = floor(Np / C) (num_landmarks), P_c = [c s, (c+1) s) for c < Np / s;
 *             the code's reshape needs s >= 1 and s | Np (else RFJIT_E_SHAPE here)
 *   summary   kbar_c = (1/s) sum_{j in P_c, j < L} y_j, qbar_c likewise over x (padding
 *             counts in the means as zeros); mu_c = (qbar_c + kbar_c) / 2 (eva.py) or
 *             qbar_c + kbar_c (causal_eva.py, adaptive-proj qk), the proposal mean used as
 *             the sample in eval; beta_c = softmax_j(mu_c . y_j - |y_j|^2/2) . v_j over the
 *             chunk's real keys (padding masked), 0 for a chunk of padding only
 *   window    Block(i) = [b w, (b+1) w), b = floor(i / w), keys j < L in it; causal: j <= i
 *   chunks seen   all of them, bidirectional, including those the window covers (the
 *             window's keys count twice); causal, c < floor(i / s), the chunks before the
 *             query's own (whose keys the window may or may not cover)
 *   out_i = softmax([x_i . y_j, j in window] ++ [x_i . kbar_c, c seen]) . [v_j ; beta_c]
 * (no ln n_c term). With one chunk, causal_eva.py fails (it takes a branch that leaves its
 * mask undefined); here every query then sees its window only. Lq != Lk (a decode step among
 * them) or a key mask: RFJIT_E_NOT_APPLICABLE.
 */
#include "est/est.h"

#include "est/est_common.h"

static int64_t padded(const rj_spec *s, int64_t L)
{
    const int64_t w = s->eva_window;
    return (L + w - 1) / w * w;
}

static int64_t official_chunks(const rj_spec *s, int64_t lk, int64_t *size)
{
    const int64_t np = padded(s, lk);
    *size = np / s->eva_chunks;
    return *size ? np / *size : 0;
}

static rfjit_status official_check(const rj_spec *s, int64_t lq, int64_t lk, const int64_t *nvis,
                                   rj_diag *dg)
{
    RJ_FAIL_IF(dg, lq != lk, RFJIT_E_NOT_APPLICABLE,
               "the official eva variant is self-attention over whole calls: it needs as many "
               "queries as keys (%lld queries, %lld visible keys), so it has no decode steps",
               (long long)lq, (long long)lk);
    RJ_TRY(rj_est_check_nvis(s, lq, lk, nvis, dg));
    for (int64_t i = 0; nvis && i < lq; i++)
        RJ_FAIL_IF(dg, nvis[i] != (s->causal ? i + 1 : lk), RFJIT_E_NOT_APPLICABLE,
                   "the official eva variant takes no key mask or padding");
    int64_t size;
    const int64_t count = official_chunks(s, lk, &size), np = padded(s, lk);
    RJ_FAIL_IF(dg, lk > 0 && (size < 1 || count * size != np), RFJIT_E_SHAPE,
               "the official eva variant needs its padded length %lld (a multiple of the window "
               "%d) to be a multiple of its chunk size floor(%lld / %d chunks) = %lld",
               (long long)np, s->eva_window, (long long)np, s->eva_chunks, (long long)size);
    return RFJIT_OK;
}

static void official_row(const rj_spec *s, int64_t lk, int64_t i, int64_t vis, rj_eva_row *r)
{
    int64_t size;
    const int64_t count = official_chunks(s, lk, &size), w = s->eva_window;
    r->elo = i / w * w;
    r->ehi = s->causal ? vis : r->elo + w < lk ? r->elo + w : lk;
    r->plo = s->causal ? i / size : count;
    r->phi = count;
    r->lp = r->elo, r->rp = r->ehi; /* no pieces: chunks are summarised whole */
}

static void official_summaries(const rj_spec *s, const double *x, int64_t lq, const double *y,
                               const double *v, int64_t lk, const int64_t *nvis, double *kbar,
                               double *loff, double *beta)
{
    (void)lq, (void)nvis;
    int64_t size;
    const int64_t count = official_chunks(s, lk, &size);
    for (int64_t c = 0; c < count; c++) {
        const int64_t lo = c * size < lk ? c * size : lk;
        const int64_t hi = lo + size < lk ? lo + size : lk;
        rj_eva_summary(s, x, y, v, lo, hi, (double)size, s->causal ? 1.0 : 0.5, 1.0,
                       kbar + c * s->d, beta + c * s->dv);
        loff[c] = 0;
    }
}

const rj_eva_ops rj_eva_official_ops = {official_check, official_chunks, official_row,
                                        official_summaries, NULL};
