/* SPDX-License-Identifier: MIT */
/*
 * This file reads back the tuner's wisdom records (architecture.md 6), written by
 * api/api_tune.c:
 *
 *   key    tune.<output|kernel>.<bidir|causal>.d<d>.dv<dv>[.scale<s>].L<bucket>.b<budget>.
 *          <calib>.cand<hex>.x<0|1>.v5     (no .scale: the default softmax scale 1/sqrt(d);
 *                                          .x1: transforms were considered, .x0: not)
 *   value  est=<name> m=<m> vw=<vw> T=<T> ri=<ri> rj=<rj> predicted=<x> measured=<x>
 *          bound=<x> ms=<x> seed=<u64> window=<w> chunks=<c> xform=<flags> sblock=<B>
 *          sexact=<k> compute=<c>
 *
 * window and chunks are eva's (0 for the other estimators); xform is the plan's
 * rfjit_attn_desc.transform (0 in every .x0 record); sblock and sexact are blocksparse's
 * sparse_block and sparse_exact (0 for the other estimators); compute is the plan's
 * rfjit_attn_desc.compute (RFJIT_BF16 for exact only). Older versions still load and are kept,
 * but rfjit_tune never asks for them, since their search differs: version 1 (no suffix, the
 * value ends at the seed) did not try eva; version 2 (.v2, the value ends at chunks, read as
 * xform 0) took no transform and bounded eva over seeds, where its error has no spread;
 * version 3 (.v3, the value ends at xform, read as sblock and sexact 0) did not search
 * blocksparse, so a version 3 record naming it is refused; version 4 (.v4, the value ends at
 * sexact, read as compute 0, float32) never tried bf16.
 *
 * A wisdom file is data from disk, so nothing in it is trusted: every number is parsed whole
 * with overflow detection (no blanks, no '+', nothing after it, no narrowing to a smaller
 * type), and the record must describe a plan rfjit_plan_create accepts (rj_plan_check on the
 * descriptor rfjit_tune_result_plan would build, rj_kplan_make on its tiling).
 *
 * Not for: writing records (api_tune.c does) or the file format around them (wisdom.c).
 */
#ifndef RJ_TUNE_RECORD_H
#define RJ_TUNE_RECORD_H

#include "core/base.h"

#include <stddef.h>

/* tuner/tune.h; declared here so that the wisdom fuzz target needs only runtime's headers */
typedef struct rj_tune_row rj_tune_row;

/* The widest vector any target has: a record is checked against it when it is loaded (a
 * record tuned for wider vectors than the context's ISA is not malformed, only unusable). */
#define RJ_TUNE_RECORD_ANY_VW 16

/* Parse key and value and check them as above for a target of max_vw lanes; on RFJIT_OK *row
 * holds the chosen row (est, m, tiling, errors, time, seed). RFJIT_E_WISDOM_FORMAT with the
 * offending field, its text and the accepted range in dg otherwise. */
rfjit_status rj_tune_record_check(const char *key, const char *value, int max_vw,
                                  rj_tune_row *row, rj_diag *dg);
/* The same for a target with AMX (amx 1, as rj_tune_record_check assumes: the best bf16
 * unit there is) or without (0), whose bf16 kernels then are AVX512-BF16's: a bf16 record
 * with no kernel on such a target is refused. */
rfjit_status rj_tune_record_check_for(const char *key, const char *value, int max_vw, int amx,
                                      rj_tune_row *row, rj_diag *dg);

/* rj_wisdom_check_fn (wisdom.h) for a context's wisdom: rj_tune_record_check with
 * RJ_TUNE_RECORD_ANY_VW; user is unused. */
int rj_tune_record_ok(void *user, const char *key, const char *value, char *why, size_t n);

#endif
