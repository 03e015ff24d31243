/* SPDX-License-Identifier: MIT */
/*
 * This file is how rfjit_tune drops a candidate estimator before its full search: only ones
 * that cannot win, each with a note saying why it was not measured (tune_prune.c says why
 * each rule is safe). Not for: eva (tune_eva.c prunes its grid by the cost model) or exact.
 */
#ifndef RJ_TUNE_PRUNE_H
#define RJ_TUNE_PRUNE_H

#include "tuner/tune_search.h"

/* Whether the cost model puts est, at the smallest m, above RJ_PRUNE_COST_FACTOR times exact's
 * cost; if so row's note says so. */
int rj_prune_by_cost(const rj_search *S, rj_tune_row *row);

/* The largest m (a multiple of the step, at least one step) at which the cost model puts row's
 * estimator, at row's other parameters, at most `factor` times exact's cost. */
int32_t rj_prune_cost_m(const rj_search *S, const rj_tune_row *row, double factor);

/* The two-point rule: the least error over the search seeds at two small m, extrapolated as
 * 1/m with a safety factor, needs m past the tuner's largest. *pruned says whether row was
 * dropped (with its note and its near miss at the larger m); S->need keeps the extrapolation
 * for rj_prune_past_cap. */
rfjit_status rj_prune_by_error(rj_search *S, rj_tune_row *row, int *pruned, rj_diag *dg);

/* The same rule against the m where timings put the estimator at exact's time (cap), once
 * known: whether row was dropped, with its note. */
int rj_prune_past_cap(rj_search *S, rj_tune_row *row, int32_t cap);

#endif
