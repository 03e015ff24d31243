/* SPDX-License-Identifier: MIT */
/*
 * This file declares the decode step of the constant-size states: one token for each of n
 * entries (a slot of a decode state each) of a linear JIT plan with fixed or per-slot
 * parameters. The state of an entry's key/value head is the causal linear kernel's (S, z,
 * zabs, c) in rj_kplan's st layout, so a prefill (the causal kernel over a prompt) and steps
 * continue each other.
 */
#ifndef RJ_DECODE_STEP_H
#define RJ_DECODE_STEP_H

#include "runtime/plan.h"
#include "runtime/view.h"

/* Scratch a caller keeps across the steps of one plan, so that a step allocates nothing and
 * looks its feature kernel up once (opaque; rj_step_ws_free releases it). */
typedef struct rj_step_ws rj_step_ws;

typedef struct rj_step {
    int64_t n, H, Hkv; /* entries, query heads, key/value heads (Hkv divides H) */
    /* q (n, H, 1, d), k (n, Hkv, 1, d), v (n, Hkv, 1, dv), out (n, H, 1, dv): any dtype, q, k
     * and v one; elements of a row contiguous (stride[3] == 1) */
    rj_view q, k, v, out;
    float *const *st;         /* st[i]: entry i's Hkv states of st_floats each, consecutive */
    const float *const *kpar; /* kpar[i]: entry i's role parameters (pq; pk role_floats on),
                                 or NULL for the plan's own */
    const uint8_t *fresh;     /* fresh[i] != 0: entry i's states are empty (position 0) */
} rj_step;

/* Every entry takes its token: its keys and values into its states, its queries' rows into
 * out. Inputs are checked by the caller. A row whose float denominator underflows comes out
 * NaN (the state still takes the token): *bad is then the first such entry * H + head, else
 * -1. Errors: RFJIT_E_NOMEM, and the kernel lookup's (RFJIT_E_JIT ...); the states are
 * untouched when the call fails. */
rfjit_status rj_decode_step_states(const rfjit_plan *p, const rj_step *s, int64_t *bad,
                                   rj_diag *dg);
/* The same with the caller's scratch *ws, which serves one plan: NULL at first, created here
 * and kept there (freed with rj_step_ws_free), so later steps allocate nothing and look
 * nothing up. */
rfjit_status rj_decode_step_states_ws(const rfjit_plan *p, const rj_step *s, rj_step_ws **ws,
                                      int64_t *bad, rj_diag *dg);

void rj_step_ws_free(rj_step_ws *w);

#endif
