/* SPDX-License-Identifier: MIT */
/*
 * This file is the decode suites' harness: B sequences of q, k, v in one dtype (with float
 * copies of the same values), the tokens of a prefill or step gathered into contiguous
 * entries, and the plan's causal attention over a sequence's tokens as the reference.
 */
#ifndef RJ_DECODE_TESTUTIL_H
#define RJ_DECODE_TESTUTIL_H

#include "rfjit.h"

#include <stdint.h>

typedef struct dt_seqs {
    int64_t B, H, Hkv, L, d, dv;
    int dt;              /* rfjit_dtype of q, k, v */
    float *fq, *fk, *fv; /* (B, H | Hkv, L, d | dv) float copies of the dtype's values */
    void *q, *k, *v;     /* the same in dt */
} dt_seqs;

/* Random sequences (standard normal times sd, values rounded to dt), fixed by seed. */
void dtu_seqs_init(dt_seqs *s, int64_t B, int64_t H, int64_t Hkv, int64_t L, int64_t d, int64_t dv,
                   int dt, double sd, uint64_t seed);
void dtu_seqs_free(dt_seqs *s);
/* Store x (as dt) at element i of a dt buffer. */
void dtu_store(void *p, int64_t i, int dt, float x);
/* Copy token t of sequence b into token u of sequence c of dst (same sizes). */
void dtu_copy_token(dt_seqs *dst, int64_t c, int64_t u, const dt_seqs *src, int64_t b, int64_t t);

/* Contiguous (n, heads, L, dim) buffers of entry i = tokens t0[i] .. t0[i] + len[i] - 1 of
 * sequence seq[i] (rows past len zero): the q, k, v of one decode call. */
typedef struct dt_call {
    void *q, *k, *v;
    rfjit_tensor_ex tq, tk, tv;
} dt_call;
void dtu_call_make(dt_call *c, const dt_seqs *s, const int64_t *seq, const int64_t *t0,
                   const int32_t *len, int64_t n, int64_t L);
void dtu_call_free(dt_call *c);
/* A float32 (n, H, L, dv) output tensor over out. */
rfjit_tensor_ex dtu_out(float *out, int64_t n, int64_t H, int64_t L, int64_t dv);

/* Rows q0 .. q0 + lq - 1 of sequence b's causal attention over its keys 0 .. q0 + lq - 1
 * (bottom-right), every head: out (H, lq, dv) float32. Returns the status. */
rfjit_status dtu_reference(const rfjit_plan *p, const dt_seqs *s, int64_t b, int64_t q0, int64_t lq,
                           float *out);

#endif
