/* SPDX-License-Identifier: MIT */
/*
 * This file is rfjit_tune's search of blocksparse (architecture.md 6): its error and cost are
 * set by its feature count m and by how many key blocks each query block takes exactly
 * (est/blocksparse.c), so it gets one row per exact block count k in {1, 2, 4, 8} at
 * RJ_TUNE_BS_BLOCK = 64 tokens per block, its default, and each row's m is searched like any
 * other estimator's (tune_search.c step 2: pruning, transform, bracket, bisection, and the
 * confirmation's bound over fresh seeds, which applies since blocksparse's rest goes through
 * positive features drawn from the seed). The choice among the rows is tune_search.c's.
 *
 * Nothing here assumes how the error moves with k: a larger k takes more of every query's
 * largest logits exactly, which usually lowers the m it needs, but its exact part costs
 * 2 B k (d + dv) flops per token, so each row is searched on its own and the cost model
 * prunes each at its k. A k at or past the key blocks of the shorter of L and the calibration
 * keys is not tried: blocksparse is then exact attention there (est/blocksparse.c), and on a
 * calibration set that short its error of zero says nothing about L.
 */
#include "tuner/tune_search.h"

#include <math.h>
#include <stdio.h>

static const int32_t exact_blocks[RJ_TUNE_BS_ROWS] = {1, 2, 4, 8};

rfjit_status rj_search_blocksparse(rj_search *S, const rj_est_ops *bs, rj_tune_row *rows, size_t *n,
                                   int measure, rj_diag *dg)
{
    const rj_tune_req *r = S->r;
    const int64_t keys = r->L < S->cal.lk ? r->L : S->cal.lk;
    const int64_t blocks = (keys + RJ_TUNE_BS_BLOCK - 1) / RJ_TUNE_BS_BLOCK;
    for (int i = 0; i < RJ_TUNE_BS_ROWS; i++) {
        rj_tune_row *row = &rows[*n];
        *row = (rj_tune_row){.est = bs,
                             .seed = r->seed,
                             .sparse_block = RJ_TUNE_BS_BLOCK,
                             .sparse_exact = exact_blocks[i],
                             .predicted = NAN,
                             .measured = NAN,
                             .bound = NAN,
                             .time_ms = NAN,
                             .near_err = NAN};
        if (exact_blocks[i] >= blocks) {
            if (i > 0)
                break;
            snprintf(row->note, sizeof row->note,
                     "%d exact blocks of %d hold all %lld keys: that is exact attention",
                     exact_blocks[i], RJ_TUNE_BS_BLOCK, (long long)keys);
            ++*n;
            break;
        }
        ++*n;
        RJ_TRY(rj_search_row(S, row, measure, dg));
    }
    return RFJIT_OK;
}
