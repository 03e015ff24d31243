/* SPDX-License-Identifier: MIT */
/*
 * This file is one attention call after its checks: the four views, the head grouping and
 * the per-sequence geometry that rfjit_attn_args describes (padded lengths, key mask, packed
 * offsets, bottom-right causal offset). rj_call_make does every check before anything is
 * read for computing or written, so a call that fails leaves out untouched.
 */
#ifndef RJ_CALL_H
#define RJ_CALL_H

#include "runtime/plan.h"
#include "runtime/view.h"

typedef struct rj_call {
    rj_view q, k, v, out;
    int64_t B;                  /* sequences */
    int64_t H, Hkv;             /* query heads, key/value heads (Hkv divides H) */
    const int32_t *klen, *qlen; /* padded layout, or NULL */
    const int32_t *cuq, *cuk;   /* packed layout, or NULL */
    const uint8_t *mask;
    int64_t mask_stride; /* padded: bytes between batch entries */
    bool untouched;      /* rows past a query length are left as they are */
    bool causal;         /* the plan's: sequences are bottom-right aligned (rj_seq.qoff) */
    bool plain;          /* one full-length sequence per batch entry, no mask, qoff 0 */
    int64_t max_lq, max_lk; /* the longest lq and lk: one (sequence, head)'s scratch */
    /* Query centring (runtime/xform.h), per (sequence, key/value head) g = b Hkv + kvh:
     * xu + g d, the vector whose e^{u.y} each key's features carry, and for frozen linear
     * JIT plans xpk + g role_floats, the key-role parameters with it folded in; NULL: none. */
    const double *xu;
    const float *xpk;
} rj_call;

/* One sequence of a call. Rows are of the views' slices (qb, h) and (kb, h / group). */
typedef struct rj_seq {
    int64_t qb, kb;      /* batch index of q/out and of k/v in the views */
    int64_t q0, k0;      /* first query row, first key row */
    int64_t lq, lk;      /* queries computed, keys read */
    int64_t rows;        /* rows of out that belong to the sequence (lq and the padding) */
    int64_t qoff;        /* causal: query i sees keys j <= i + qoff (lk - lq); else 0 */
    const uint8_t *mask; /* lk bytes for keys k0 .. k0 + lk - 1, or NULL */
} rj_seq;

/* Check a public call against the plan and build *c. */
rfjit_status rj_call_make(const rfjit_plan *p, const rfjit_attn_args *args, rj_call *c,
                          rj_diag *dg);
rj_seq rj_call_seq(const rj_call *c, int64_t b);
/* The key/value head of query head h. */
static inline int64_t rj_call_kv_head(const rj_call *c, int64_t h)
{
    return h / (c->H / c->Hkv);
}

/* Execute a checked call (runtime/exec.c). */
rfjit_status rj_plan_execute_call(const rfjit_plan *p, const rj_call *c, rj_diag *dg);

/* Rows r0 .. r0 + n - 1 of slice (b, h) of t as row-major doubles times scale. */
void rj_view_gather(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n, double scale,
                    double *out);
/* The visible keys of sequence s at key/value head h, in order: y = scale k, v rows, and in
 * pos (if not NULL) each one's row within the sequence. Returns their count. */
int64_t rj_call_gather_keys(const rj_call *c, const rj_seq *s, int64_t h, double scale, double *y,
                            double *v, int64_t *pos);
/* Where one (sequence, query head) lands in double: the scaled queries (lq x d), the visible
 * keys scaled and their values (rj_call_gather_keys), each key's row in the sequence (lk + 1)
 * and room for the queries' visible-key counts (lq + 1). */
typedef struct rj_head_rows {
    double *x, *y, *v;
    int64_t *pos, *nvis;
} rj_head_rows;
/* The rows of query head h of sequence s, at the plan's input scale, as the paths that run a
 * head in double read them (the references, EVA, blocksparse), and in *nvis the counts of
 * est.h's rj_est_nvis (NULL: every query sees every key). Returns the visible key count; at
 * 0, every key is masked and the head's output rows have been zeroed. */
int64_t rj_call_gather_head(const rfjit_plan *p, const rj_call *c, const rj_seq *s, int64_t h,
                            const rj_head_rows *r, const int64_t **nvis);
/* Rows r0 .. r0 + n - 1 of slice (b, h) of t written from row-major doubles. */
void rj_view_scatter(const rj_view *t, int64_t b, int64_t h, int64_t r0, int64_t n,
                     const double *in);

#endif
