/* SPDX-License-Identifier: MIT */
/*
 * This file declares the decode state behind rfjit_decode_* (include/rfjit.h, "Incremental
 * decoding"): a table of slots, each a causal sequence at its own position. Two modes:
 *
 * - constant state (linear JIT plans): per (slot, key/value head) the causal kernel's
 *   (S, z, zabs, c), so a prefill is the causal kernel continuing it and a step is
 *   rj_decode_step_states. A plan fitted per call instead keeps, per slot, the parameters
 *   fitted on its first prefill; the fit is per query head (as an execute fits per (batch,
 *   head)), so such a slot holds one state per query head.
 * - history (exact, hybrid, eva, the reference backend): each slot's key and value rows, and
 *   new rows come from the plan's own causal execute of the new queries against them
 *   (bottom-right aligned), never recomputing earlier rows.
 * - compat (plans on the float32 path of the Performer compat modes, runtime/exec_compat.h):
 *   per (slot, key/value head) a constant-size state whose key shift follows the slot's
 *   largest projection so far (runtime/decode_compat.c).
 *
 * Every call checks everything and takes every resource before it changes a slot, so a
 * failed call leaves the slots as they were.
 */
#ifndef RJ_DECODE_H
#define RJ_DECODE_H

#include "runtime/plan.h"
#include "runtime/view.h"

typedef enum rj_decode_mode {
    RJ_DECODE_STATE = 1,
    RJ_DECODE_HISTORY = 2,
    RJ_DECODE_COMPAT = 3
} rj_decode_mode;

/* A history slot's rows, token-major ([t][Hkv][d] and [t][Hkv][dv]) so growing keeps them. */
typedef struct rj_hist {
    float *k, *v;
    int64_t cap;
} rj_hist;

/* Reusable buffers of a state's calls (nothing here is state a caller can see). */
enum {
    RJ_DSCR_Q,
    RJ_DSCR_K,
    RJ_DSCR_V,
    RJ_DSCR_OUT,
    RJ_DSCR_PAR,
    RJ_DSCR_X,
    RJ_DSCR_Y,
    RJ_DSCRATCH
};

struct rfjit_decode {
    const rfjit_plan *p;
    int64_t slots, H, Hkv;
    rj_decode_mode mode;
    int fitted;   /* state mode with parameters per slot (a plan fitted per call) */
    int64_t nst;  /* states per slot: Hkv, or H when fitted */
    int64_t *pos; /* per slot */
    float *st;    /* state mode: slots x nst x st_floats; compat: slots x Hkv x compat floats */
    float *par;   /* fitted: slots x H x (pq | pk), 2 role_floats each */
    uint8_t *has_par;
    rj_hist *hist;           /* history mode: per slot */
    struct rj_step_ws *stws; /* the one-token step's scratch, kept so a step allocates nothing */
    /* per-call arrays of `slots` entries */
    int64_t *idx;
    int32_t *len;
    uint8_t *mark, *fresh;
    float **stp;
    const float **parp;
    void *scr[RJ_DSCRATCH];
    size_t nscr[RJ_DSCRATCH];
};

/* One prefill or step after its checks. */
typedef struct rj_dcall {
    rj_view q, k, v, out; /* out.data NULL: no outputs (a prefill) */
    int64_t n, L;
    const int64_t *slot; /* n distinct slots */
    const int32_t *len;  /* n lengths in [0, L] */
} rj_dcall;

rfjit_status rj_decode_create(const rfjit_plan *p, int64_t slots, int64_t H, int64_t Hkv,
                              rfjit_decode **out, rj_diag *dg);
void rj_decode_free(rfjit_decode *s);
/* Scratch buffer `which` of at least n bytes (NULL: no memory). */
void *rj_decode_scratch(rfjit_decode *s, int which, size_t n);
/* Check a public call's arguments into *c (step: L must be 1 and out given). */
rfjit_status rj_decode_check(rfjit_decode *s, const rfjit_decode_args *args, bool step, rj_dcall *c,
                             rj_diag *dg);
rfjit_status rj_decode_prefill(rfjit_decode *s, const rfjit_decode_args *args, rj_diag *dg);
rfjit_status rj_decode_step(rfjit_decode *s, const rfjit_decode_args *args, rj_diag *dg);
/* Put slot i at position 0 with nothing fitted. */
void rj_decode_reset_slot(rfjit_decode *s, int64_t i);

/* Constant-state mode (runtime/decode_state.c). */
rfjit_status rj_decode_state_prefill(rfjit_decode *s, const rj_dcall *c, rj_diag *dg);
rfjit_status rj_decode_state_step(rfjit_decode *s, const rj_dcall *c, rj_diag *dg);
/* History mode (runtime/decode_hist.c): a prefill and a step are the same call. */
rfjit_status rj_decode_hist_run(rfjit_decode *s, const rj_dcall *c, rj_diag *dg);

/* Compat mode (runtime/decode_compat.c): floats of one (slot, key/value head) state, and a
 * prefill or step (the same call). */
int64_t rj_decode_compat_floats(const rj_spec *s);
rfjit_status rj_decode_compat_run(rfjit_decode *s, const rj_dcall *c, rj_diag *dg);

/* Snapshots (runtime/decode_snap.c). */
size_t rj_decode_snap_size(const rfjit_decode *s, int64_t slot);
void rj_decode_snap_write(const rfjit_decode *s, int64_t slot, unsigned char *buf);
rfjit_status rj_decode_snap_restore(rfjit_decode *s, int64_t slot, const unsigned char *buf,
                                    size_t size, rj_diag *dg);

#endif
